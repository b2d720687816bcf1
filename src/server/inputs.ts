// Request inputs → model inputs. Texts are checked against the limits and tokenised in slices of a few
// milliseconds with a yield to the event loop between slices, so a request of many long texts never
// holds up the others (or /health). Token-id inputs are checked against the vocabulary.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { TextError } from '../model/text-error.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import { badField, overLimit } from './errors.js';

/** Longest stretch of work (tokenising, serialising) between two yields to the event loop. */
export const EVENT_LOOP_SLICE_MS = 4;

export interface InputLimits {
  /** Most inputs in one request. */
  maxInputs: number;
  /** Most characters (Unicode code points) in one text. */
  maxChars: number;
  /** Most tokens of one input, BOS included (the server's maxLength / --max-length). */
  maxLength: number;
}

/** Most tokens of one request's inputs together (the server's maxQueueTokens), when checked. */
export interface RequestLimits extends InputLimits {
  maxTotalTokens?: number;
}

/** A request's inputs: texts, or token-id sequences sent as they are to the model. */
export type Inputs = ({ kind: 'texts'; texts: string[] } | { kind: 'ids'; ids: number[][] }) & {
  /** A lone string or id list (errors name the field itself, not field[0]). */
  single: boolean;
  /** Each item's name in errors, when the items come from different fields (TEI /similarity). */
  names?: readonly string[];
};

/**
 * Reads an OpenAI-style `input` (or TEI `inputs`): a string, an array of strings, an array of token
 * ids, or an array of token-id arrays. `field` names it in errors.
 */
export function readInputs(value: unknown, field: string, limits: InputLimits, allowIds: boolean): Inputs {
  const shape = allowIds
    ? `'${field}' must be a string, an array of strings, or an array of token-id arrays`
    : `'${field}' must be a string or an array of strings`;
  if (value === undefined || value === null) throw badField(field, `'${field}' is required`, 'missing_field');
  let inputs: Inputs;
  if (typeof value === 'string') {
    inputs = { kind: 'texts', texts: [value], single: true };
  } else if (Array.isArray(value)) {
    if (value.length === 0) throw badField(field, `'${field}' must not be empty`, 'empty_input');
    if (typeof value[0] === 'string') {
      value.forEach((v, i) => {
        if (typeof v !== 'string') throw badField(`${field}[${i}]`, `'${field}[${i}]' must be a string, got ${typeName(v)}`, 'invalid_type');
      });
      inputs = { kind: 'texts', texts: value as string[], single: false };
    } else if (allowIds && typeof value[0] === 'number') {
      inputs = { kind: 'ids', ids: [checkIds(value, field)], single: true };
    } else if (allowIds && Array.isArray(value[0])) {
      inputs = {
        kind: 'ids',
        ids: value.map((v, i) => {
          if (!Array.isArray(v)) throw badField(`${field}[${i}]`, `'${field}[${i}]' must be an array of token ids, got ${typeName(v)}`, 'invalid_type');
          return checkIds(v, `${field}[${i}]`);
        }),
        single: false,
      };
    } else {
      throw badField(`${field}[0]`, `${shape}; '${field}[0]' is ${typeName(value[0])}`, 'invalid_type');
    }
  } else {
    throw badField(field, `${shape}, got ${typeName(value)}`, 'invalid_type');
  }
  const n = inputs.kind === 'texts' ? inputs.texts.length : inputs.ids.length;
  if (n > limits.maxInputs) throw overLimit(field, `'${field}' has ${n} items; the limit is ${limits.maxInputs} per request (the server's --max-inputs)`);
  if (inputs.kind === 'texts') {
    inputs.texts.forEach((t, i) => {
      const name = inputs.single ? field : `${field}[${i}]`;
      if (t.length === 0) throw badField(name, `'${name}' must not be an empty string`, 'empty_input');
      // a text of no more UTF-16 units than the limit has no more characters either
      const chars = t.length > limits.maxChars ? codePoints(t) : 0;
      if (chars > limits.maxChars) throw overLimit(name, `'${name}' has ${chars} characters; the limit is ${limits.maxChars} (the server's --max-chars)`);
      // JSON's \uD800 escapes can spell half a character, which UTF-8 (the tokenizer's input) cannot
      // hold: refused as the body's invalid UTF-8 bytes are, not replaced by U+FFFD
      const lone = LONE_SURROGATE.exec(t);
      if (lone) {
        const unit = lone[0].charCodeAt(0).toString(16).toUpperCase();
        throw badField(name, `'${name}' holds half of a UTF-16 surrogate pair (\\u${unit} at index ${lone.index}), which is not text; send well-formed Unicode`, 'invalid_text');
      }
    });
  }
  return inputs;
}

/** A UTF-16 surrogate that is not part of a pair (the u flag reads a pair as one code point). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function codePoints(t: string): number {
  let n = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    // a high surrogate followed by a low one is one code point
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < t.length) {
      const d = t.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function checkIds(list: unknown[], field: string): number[] {
  if (list.length === 0) throw badField(field, `'${field}' must not be empty`, 'empty_input');
  list.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw badField(`${field}[${i}]`, `'${field}[${i}]' must be an integer token id, got ${typeName(v)}`, 'invalid_type');
    }
  });
  return list as number[];
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' && !Number.isInteger(v)) return `the number ${v}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** How errors name input i of `inputs`, read from request field `field` ("input[2]"). */
export function inputName(inputs: Inputs, field: string, i: number): string {
  return inputs.names?.[i] ?? (inputs.single ? field : `${field}[${i}]`);
}

/**
 * The model inputs of `inputs`: texts tokenised (BOS prepended) in event-loop-friendly slices, ids
 * checked against the vocabulary. Over `maxLength` tokens: cut when `truncate`, else a 413 naming
 * the input. Over `maxTotalTokens` in all: a 413 as soon as the inputs so far pass it (the rest is
 * not tokenised).
 */
export async function toModelInputs(
  inputs: Inputs,
  tokenizer: TextTokenizer,
  vocabSize: number,
  limits: RequestLimits,
  truncate: boolean,
  field: string,
  signal?: AbortSignal,
): Promise<Int32Array[]> {
  const name = (i: number): string => inputName(inputs, field, i);
  const tooLong = (i: number): Error =>
    overLimit(
      name(i),
      `'${name(i)}' is longer than the server's limit of ${limits.maxLength} tokens (--max-length); send "truncate": true to cut it`,
    );
  const n = inputs.kind === 'ids' ? inputs.ids.length : inputs.texts.length;
  let total = 0;
  const count = (ids: Int32Array, i: number): Int32Array => {
    total += ids.length;
    const most = limits.maxTotalTokens ?? Infinity;
    if (total > most) {
      const which = i + 1 < n ? `its first ${i + 1} of ${n} inputs` : `its ${n} inputs`;
      throw overLimit(field, `'${field}' has too many tokens: ${which} hold ${total}, and one request may hold at most ${most} (the server's --max-queue-tokens)`);
    }
    return ids;
  };
  if (inputs.kind === 'ids') {
    return inputs.ids.map((seq, i) => {
      const bad = seq.findIndex((id) => id < 0 || id >= vocabSize);
      if (bad >= 0) {
        throw badField(`${name(i)}[${bad}]`, `'${name(i)}[${bad}]' is ${seq[bad]}, outside the vocabulary [0, ${vocabSize})`);
      }
      if (seq.length > limits.maxLength && !truncate) throw tooLong(i);
      return count(Int32Array.from(seq.length > limits.maxLength ? seq.slice(0, limits.maxLength) : seq), i);
    });
  }
  const out: Int32Array[] = [];
  let sliceStart = performance.now();
  for (let i = 0; i < n; i++) {
    const text = inputs.texts[i]!;
    let ids: Int32Array;
    try {
      // one token past the limit tells whether the text fits (the tokenizer cuts long texts cheaply)
      ids = tokenizer.encode(text, limits.maxLength + 1);
      if (ids.length > limits.maxLength) {
        if (!truncate) throw tooLong(i);
        // the first maxLength ids are those of the text cut there, unless the last is a closing EOS
        ids = tokenizer.addEos ? tokenizer.encode(text, limits.maxLength) : ids.slice(0, limits.maxLength);
      }
    } catch (err) {
      // a text the tokenizer refuses (a long run of characters with no cut) was a 500 naming nothing
      if (err instanceof TextError) throw badField(name(i), `'${name(i)}' cannot be tokenised: ${err.reason}`);
      throw err;
    }
    out.push(count(ids, i));
    if (performance.now() - sliceStart >= EVENT_LOOP_SLICE_MS) {
      await yieldToLoop();
      if (signal?.aborted) throw signal.reason;
      sliceStart = performance.now();
    }
  }
  return out;
}
