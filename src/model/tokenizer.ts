// Text → token ids for the embedding model: a Hugging Face tokenizer.json run by the pure-JS
// @huggingface/tokenizers, with the recipe's framing done here (BOS prepended, no EOS, truncation at
// maxLength counting the special tokens, no padding — batching packs sequences instead).
//
// We always encode WITHOUT the tokenizer.json post-processor and add BOS/EOS ourselves from
// tokenizer_config.json: Llama tokenizer.json files carry a TemplateProcessing that already adds <s>,
// and transformers rewrites it from add_bos_token/add_eos_token; doing the framing in one place gives
// exactly one BOS whatever the file says, and honours the config like transformers does.
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { readFailure } from '../util/fs-error.js';
import { readRegularFileText } from '../util/regular-file.js';
import { missingModelFile } from './config.js';
import { createPrefixCutter, type PrefixCutter } from './tokenizer-prefix.js';
import { parseJson } from '../util/json.js';
import { describeValue } from '../util/describe.js';
import { TextError } from './text-error.js';
import { tokenizerJsonProblem } from './tokenizer-check.js';
import { checkOptions, checkPathArg, optionKeys, wrongOption } from '../util/options.js';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readJsonFile(path: string, required: boolean): Json | null {
  let text: string;
  try {
    text = readRegularFileText(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return null;
    // a model folder without its tokenizer (config.json and weights copied alone) is the common case
    if (code === 'ENOENT') throw new Error(`tokenizer: ${missingModelFile(path).message}`);
    throw readFailure(path, err);
  }
  let parsed: unknown;
  try {
    parsed = parseJson(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`tokenizer: ${path} is not valid JSON (${msg})`);
  }
  if (!isObject(parsed)) throw new Error(`tokenizer: ${path} must hold a JSON object`);
  return parsed;
}

/** tokenizer_config.json names tokens either as strings or as AddedToken objects `{content: ...}`. */
function tokenName(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value['content'] === 'string') return value['content'];
  return null;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * @huggingface/tokenizers 0.2.0 treats Split's MergedWithNext/MergedWithPrevious like Isolated (the
 * delimiter becomes its own piece), which breaks Llama files that split on "▁" that way. Both
 * behaviours equal an Isolated split on a regex whose every match is one delimiter plus the text up
 * to the next one (after it, for MergedWithPrevious), so rewrite them into that before loading.
 */
function rewritePreTokenizer(preTokenizer: unknown): unknown {
  if (!isObject(preTokenizer)) return preTokenizer;
  if (preTokenizer['type'] === 'Sequence' && Array.isArray(preTokenizer['pretokenizers'])) {
    return { ...preTokenizer, pretokenizers: preTokenizer['pretokenizers'].map(rewritePreTokenizer) };
  }
  if (preTokenizer['type'] !== 'Split') return preTokenizer;
  const behavior = String(preTokenizer['behavior'] ?? '').toLowerCase();
  if (behavior !== 'mergedwithnext' && behavior !== 'mergedwithprevious' && behavior !== 'contiguous') {
    return preTokenizer;
  }
  const pattern = preTokenizer['pattern'];
  if (preTokenizer['invert'] || !isObject(pattern) || typeof pattern['String'] !== 'string' || behavior === 'contiguous') {
    throw new Error(`tokenizer: unsupported Split pre-tokenizer ${JSON.stringify(preTokenizer)}`);
  }
  const delim = escapeRegExp(pattern['String']);
  // one code point: a plain negated class (fast); longer delimiters: a tempered dot
  const notDelim = Array.from(pattern['String']).length === 1 ? `[^${delim}]` : `(?:(?!${delim})[\\s\\S])`;
  const regex = behavior === 'mergedwithnext' ? `${delim}${notDelim}*` : `${notDelim}*${delim}`;
  return { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false };
}

const SPACE_PIECE = '\u2581'; // "▁", SentencePiece's visible space

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

/** Replaces unpaired UTF-16 surrogates with U+FFFD so that normalising and byte fallback never fail. */
export function toWellFormed(text: string): string {
  return ANY_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

/** The bits of @huggingface/tokenizers 0.2.0's BPE model that `speedUpMergeLookup` replaces. */
interface BpeInternals {
  bpe_ranks?: unknown;
  add_node?: unknown;
}
interface BpeNode {
  token: string;
  bias: number;
  score?: number;
  next: BpeNode;
}

/**
 * Speed only, same ranks: the library's BPE looks every candidate pair up as JSON.stringify([a, b])
 * in one Map, a third of all tokenising time. Swap in a two-level Map built from that same Map, so
 * ranks (including which of duplicated merges wins) are unchanged. Skipped when the internals do not
 * look as expected (another library version): the library's own lookup then runs.
 */
function speedUpMergeLookup(model: unknown): void {
  const bpe = model as BpeInternals;
  if (!(bpe.bpe_ranks instanceof Map) || typeof bpe.add_node !== 'function' || bpe.add_node.length !== 2) return;
  const ranks = new Map<string, Map<string, number>>();
  for (const [key, rank] of bpe.bpe_ranks as Map<unknown, unknown>) {
    if (typeof key !== 'string' || typeof rank !== 'number') return;
    const pair: unknown = JSON.parse(key);
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return;
    let right = ranks.get(pair[0]);
    if (right === undefined) ranks.set(pair[0], (right = new Map()));
    right.set(pair[1], rank);
  }
  bpe.add_node = (queue: { push(node: BpeNode): void }, node: BpeNode): void => {
    const rank = ranks.get(node.token)?.get(node.next.token);
    if (rank !== undefined) {
      node.score = rank + node.bias;
      queue.push(node);
    }
  };
}

/** First guess of characters per token when cutting long texts (real texts average ~4). */
const CUT_CHARS_PER_TOKEN = 8;

/**
 * Most characters in a row that are tokenised with no safe cut between them (tokenizer-prefix.ts), as in
 * one character repeated: the BPE of such a run is one piece, synchronous on the main thread (the
 * event loop held throughout), and a little worse than linear: ~0.8 s a 2^16-character run of dots on
 * a 2-core EPYC, 12-18 s at 2^20, and 2^23 dashes ran Node out of memory (an abort). Longer runs are
 * refused; 2^16 is also as long as a served text may be by default (serve's --max-chars).
 */
const MAX_UNCUT_CHARS = 1 << 16;

export interface TextTokenizerOptions {
  /** Prepend BOS (tokenizer_config `add_bos_token`, default true). */
  addBos?: boolean;
  /** Append EOS (tokenizer_config `add_eos_token`, default false). */
  addEos?: boolean;
}

const TOKENIZER_OPTIONS = optionKeys<TextTokenizerOptions>({ addBos: true, addEos: true });

function checkTokenizerOptions(where: string, options: TextTokenizerOptions): void {
  checkOptions(where, options, TOKENIZER_OPTIONS);
  for (const key of ['addBos', 'addEos'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw wrongOption(where, key, 'true or false', options[key]);
  }
}


/** encode(texts[i]) for each i; a TextError names its text's index. */
function encodeEach(texts: readonly string[], i: number, encode: (text: string) => Int32Array): Int32Array {
  try {
    return encode(texts[i]!);
  } catch (err) {
    throw err instanceof TextError && err.index === undefined ? err.at(i) : err;
  }
}

/** Throws a TypeError naming `where` unless texts is an array of strings (the first that is not named). */
export function checkTexts(where: string, texts: unknown): asserts texts is string[] {
  if (!Array.isArray(texts)) throw new TypeError(`${where}: texts must be an array of strings, got ${describeValue(texts)}`);
  for (let i = 0; i < texts.length; i++) {
    if (typeof texts[i] !== 'string') throw new TypeError(`${where}: texts[${i}] must be a string, got ${describeValue(texts[i])}`);
  }
}

export class TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** Padding id: the config's pad_token when it exists, else unk (the recipe pads with unk = 0). */
  readonly padId: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  private readonly tokenizer: Tokenizer;
  private readonly cutter: PrefixCutter | null;
  /** What made addBos false, for errors: the option, or tokenizer_config.json's add_bos_token. */
  private readonly noBosBecause: string;

  /** Loads `dir/tokenizer.json` (required) and `dir/tokenizer_config.json` (optional). */
  static fromDir(dir: string, options: TextTokenizerOptions = {}): TextTokenizer {
    checkPathArg('TextTokenizer.fromDir', 'dir', dir, 'folder');
    checkTokenizerOptions('TextTokenizer.fromDir', options);
    const file = join(dir, 'tokenizer.json');
    const tokenizerJson = readJsonFile(file, true) as Json;
    const config = readJsonFile(join(dir, 'tokenizer_config.json'), false) ?? {};
    return new TextTokenizer(tokenizerJson, config, options, file);
  }

  /**
   * Builds from parsed tokenizer.json / tokenizer_config.json objects; options override the config.
   * `source` names the tokenizer.json in errors.
   */
  constructor(tokenizerJson: Json, config: Json = {}, options: TextTokenizerOptions = {}, private readonly source = 'tokenizer.json') {
    if (!isObject(tokenizerJson)) throw new TypeError(`TextTokenizer: tokenizerJson must be a parsed tokenizer.json (an object), got ${describeValue(tokenizerJson)}`);
    if (!isObject(config)) throw new TypeError(`TextTokenizer: config must be a parsed tokenizer_config.json (an object), got ${describeValue(config)}`);
    checkTokenizerOptions('TextTokenizer', options);
    const problem = tokenizerJsonProblem(tokenizerJson);
    if (problem !== null) throw new Error(`tokenizer: ${source}: ${problem}`);
    const loadable: Json = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...tokenizerJson,
    };
    this.cutter = createPrefixCutter(tokenizerJson);
    loadable['pre_tokenizer'] = rewritePreTokenizer(loadable['pre_tokenizer']) ?? this.wordSplitter();
    // the post-processor never runs (see the header): drop it so nothing can add tokens behind our back
    loadable['post_processor'] = null;
    try {
      this.tokenizer = new Tokenizer(loadable, config);
    } catch (err) {
      throw new Error(`tokenizer: ${source} cannot be loaded: ${err instanceof Error ? err.message : String(err)}`);
    }
    speedUpMergeLookup(this.tokenizer.model);

    let maxId = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.addBos = options.addBos ?? (typeof config['add_bos_token'] === 'boolean' ? config['add_bos_token'] : true);
    this.noBosBecause =
      options.addBos !== undefined
        ? 'it was made with addBos: false'
        : `add_bos_token is false in the tokenizer_config.json beside ${source}`;
    this.addEos = options.addEos ?? (typeof config['add_eos_token'] === 'boolean' ? config['add_eos_token'] : false);
    const modelUnk = (tokenizerJson['model'] as Json)['unk_token'];
    this.unkId = this.idOf(tokenName(config['unk_token']) ?? tokenName(modelUnk) ?? '<unk>', false, source);
    this.bosId = this.idOf(tokenName(config['bos_token']) ?? '<s>', this.addBos, source);
    this.eosId = this.idOf(tokenName(config['eos_token']) ?? '</s>', this.addEos, source);
    const pad = tokenName(config['pad_token']);
    const padId = pad === null ? undefined : this.tokenizer.token_to_id(pad);
    this.padId = padId ?? (this.unkId >= 0 ? this.unkId : 0);
  }

  /** Number of special tokens framing every sequence. */
  get specialCount(): number {
    return (this.addBos ? 1 : 0) + (this.addEos ? 1 : 0);
  }

  /** Throws unless `maxLength` is an integer that leaves room for the special tokens, or Infinity. */
  checkMaxLength(maxLength: number): void {
    const least = Math.max(1, this.specialCount);
    if (!(maxLength === Infinity || (Number.isInteger(maxLength) && maxLength >= least))) {
      throw new (typeof maxLength === 'number' ? RangeError : TypeError)(`tokenizer: maxLength must be an integer >= ${least} or Infinity, got ${describeValue(maxLength)}`);
    }
  }

  /**
   * Token ids of one text: [BOS] + text ids (+ [EOS]), at most maxLength ids in all.
   * maxLength may be Infinity for no truncation.
   */
  encode(text: string, maxLength: number): Int32Array {
    if (typeof text !== 'string') throw new TypeError(`tokenizer: text must be a string, got ${describeValue(text)}`);
    this.checkMaxLength(maxLength);
    const special = this.specialCount;
    const budget = maxLength - special; // ids left for the text itself
    const body = this.encodeBody(toWellFormed(text), budget);
    const kept = Math.min(body.length, budget);
    if (kept + special === 0) {
      const what = text.length === 0 ? 'the text is empty' : `${JSON.stringify(text.slice(0, 24))} gives no tokens`;
      throw new TextError('tokenizer', `${what} and the tokenizer adds no BOS (${this.noBosBecause}): a model has nothing to embed`);
    }
    const out = new Int32Array(kept + special);
    let at = 0;
    if (this.addBos) out[at++] = this.bosId;
    for (let i = 0; i < kept; i++) {
      const id = body[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`tokenizer: ${this.source} produced id ${id} outside its vocabulary [0, ${this.vocabSize}) for text ${JSON.stringify(text.slice(0, 80))}`);
      }
      out[at++] = id;
    }
    if (this.addEos) out[at++] = this.eosId;
    return out;
  }

  encodeBatch(texts: readonly string[], maxLength: number): Int32Array[] {
    checkTexts('encodeBatch', texts);
    return texts.map((_, i) => encodeEach(texts, i, (text) => this.encode(text, maxLength)));
  }

  /**
   * encodeBatch without holding the event loop: tokenises for at most `sliceMs` at a time (default
   * 10 ms), then lets timers and I/O run (setImmediate) before going on. For large corpora, where
   * encodeBatch would block the process for seconds.
   */
  async encodeBatchAsync(texts: readonly string[], maxLength: number, options: { sliceMs?: number } = {}): Promise<Int32Array[]> {
    checkTexts('encodeBatchAsync', texts);
    checkOptions('encodeBatchAsync', options, ['sliceMs']);
    const sliceMs = options.sliceMs ?? 10;
    if (!(typeof sliceMs === 'number' && sliceMs >= 0 && sliceMs !== Infinity)) throw wrongOption('encodeBatchAsync', 'sliceMs', 'a number of milliseconds >= 0', sliceMs);
    const out: Int32Array[] = new Array<Int32Array>(texts.length);
    let start = performance.now();
    for (let i = 0; i < texts.length; i++) {
      out[i] = encodeEach(texts, i, (text) => this.encode(text, maxLength));
      if (performance.now() - start >= sliceMs && i + 1 < texts.length) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        start = performance.now();
      }
    }
    return out;
  }

  /** Text of ids; special tokens are skipped unless asked for. */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (typeof ids !== 'object' || ids === null || typeof ids.length !== 'number') throw new TypeError(`decode: ids must be an array of token ids, got ${describeValue(ids)}`);
    checkOptions('decode', options, ['skipSpecialTokens']);
    if (options.skipSpecialTokens !== undefined && typeof options.skipSpecialTokens !== 'boolean') {
      throw wrongOption('decode', 'skipSpecialTokens', 'true or false', options.skipSpecialTokens);
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id)) throw new TypeError(`decode: ids[${i}] must be a token id (an integer), got ${describeValue(id)}`);
      if (id < 0 || id >= this.vocabSize) throw new RangeError(`decode: ids[${i}] is ${id}, outside the vocabulary [0, ${this.vocabSize})`);
    }
    if (ids.length === 0) return '';
    return this.tokenizer.decode(Array.from(ids), {
      skip_special_tokens: options.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: false,
    });
  }

  /** Throws when this tokenizer can produce ids that a model with `modelVocabSize` embeddings lacks. */
  assertFitsModel(modelVocabSize: number): void {
    if (this.vocabSize > modelVocabSize) {
      throw new Error(`tokenizer: vocabulary has ${this.vocabSize} ids but the model embeds only ${modelVocabSize}`);
    }
  }

  /** Id of a token string, or undefined when the vocabulary lacks it. */
  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /**
   * Speed only, same ids: without a pre-tokeniser (Llama 2) the whole text is one BPE word, slow and
   * never cached. When no merge joins another character to a following "▁" (true of Llama 2: its
   * pieces are "▁"* then non-"▁" characters), every "non-▁ | ▁" boundary is a safe cut in the sense
   * of tokenizer-prefix.ts, so BPE of the text equals BPE of its words split there, concatenated;
   * splitting there lets the model's word cache hit on common words.
   */
  private wordSplitter(): Json | null {
    if (this.cutter === null || this.cutter.canJoinBefore(SPACE_PIECE.codePointAt(0) as number)) return null;
    return { type: 'Split', pattern: { Regex: `${SPACE_PIECE}*[^${SPACE_PIECE}]+|${SPACE_PIECE}+` }, behavior: 'Isolated', invert: false };
  }

  private idOf(token: string, required: boolean, source: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) {
      if (required) throw new Error(`tokenizer: special token ${JSON.stringify(token)} is not in the vocabulary of ${source}`);
      return -1;
    }
    return id;
  }

  private encodeRaw(text: string): number[] {
    if (text.length === 0) return [];
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Ids of the text without special tokens, at least the first `limit` of them exactly. Long texts are
   * cut first at a point proven not to change the ids before it (tokenizer-prefix.ts); when the kept
   * prefix yields fewer than `limit` ids it is doubled and encoded again.
   */
  private encodeBody(text: string, limit: number): number[] {
    if (limit <= 0) return [];
    if (this.cutter === null) return this.encodeRaw(text);
    if (Number.isFinite(limit)) {
      let from = Math.max(64, limit * CUT_CHARS_PER_TOKEN);
      while (from < text.length) {
        // past a run longer than MAX_UNCUT_CHARS the search stops: encodeCuttable refuses the text
        const cut = this.cutter.findCut(text, from, from + MAX_UNCUT_CHARS + 1);
        if (cut < 0) {
          // a run with no cut follows: the last cut before it may still keep enough ids (it was refused)
          const before = this.lastCutBefore(text, from);
          if (before > 0) {
            const ids = this.encodeCuttable(text.slice(0, before));
            if (ids.length >= limit) return ids;
          }
          break;
        }
        const ids = this.encodeCuttable(text.slice(0, cut));
        if (ids.length >= limit) return ids;
        from = cut * 2;
      }
    }
    return this.encodeCuttable(text);
  }

  /** The last safe cut in [1, end), or -1 (`end` is at most limit · CUT_CHARS_PER_TOKEN: a short walk). */
  private lastCutBefore(text: string, end: number): number {
    let last = -1;
    for (let c = this.cutter!.findCut(text, 1, end); c >= 0; c = this.cutter!.findCut(text, c + 1, end)) last = c;
    return last;
  }

  /** encodeRaw, once no stretch of `text` longer than MAX_UNCUT_CHARS is found without a safe cut. */
  private encodeCuttable(text: string): number[] {
    const cutter = this.cutter!;
    for (let at = 0; text.length - at > MAX_UNCUT_CHARS; ) {
      const cut = cutter.findCut(text, at + 1, at + MAX_UNCUT_CHARS + 1);
      if (cut < 0) {
        throw new TextError(
          'tokenizer',
          `more than ${MAX_UNCUT_CHARS} characters in a row from character ${at} on ` +
            `(${JSON.stringify(text.slice(at, at + 24))}...) have no point between them where the text can be cut ` +
            `(as in one character repeated), and such a run is tokenised as one piece (slow, and out of memory ` +
            `past a few million): split or shorten the text`,
        );
      }
      at = cut;
    }
    return this.encodeRaw(text);
  }
}
