// Where a long text may be cut before tokenising without changing the ids of the part kept.
//
// Why: encoding a 1 MB text to keep its first 64 tokens wastes seconds; cutting the TEXT first is only
// allowed when the kept ids are provably unchanged. The argument, for a BPE tokenizer:
//
//   BPE starts from single characters and only ever joins two ADJACENT symbols (a, b) listed in the
//   merges. A cut between characters x|y (after normalisation) can therefore only be crossed by a merge
//   whose left side ENDS with x and whose right side STARTS with y. If no merge has that (last char,
//   first char) pair, no symbol ever spans the cut, so the merges on each side never interact: every
//   merge on the left side sees the same candidates, in the same (rank, position) order, whether or not
//   the right side exists. Hence BPE(left + right) = BPE(left) ++ BPE(right), and the ids of
//   text[0, cut) are exactly the first ids of the whole text. Byte fallback works per final symbol, so
//   it keeps the property.
//
// The argument needs the stages around BPE to be character-local, so a cut is only offered when:
//   - the normaliser is null, Prepend (touches the start only, which both texts share) or Replace of a
//     single code point by a non-empty string (a homomorphism over concatenation), or a Sequence of them;
//   - the pre-tokeniser is null or Split on a single code point (pre-tokenising only adds boundaries);
//   - the model is BPE without dropout, ignore_merges, word suffixes or subword prefixes;
//   - no added token strips spaces, matches whole words or is matched after normalisation, and no added
//     token occurrence spans the cut (added tokens are split off the raw text before anything else).
// Anything else returns null from `createPrefixCutter` and callers encode whole texts (correct, slower).

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The single code point of a `{ String: "x" }` pattern, or null for anything else. */
function singleCodePointPattern(pattern: unknown): string | null {
  if (!isObject(pattern) || typeof pattern['String'] !== 'string') return null;
  const chars = Array.from(pattern['String']);
  return chars.length === 1 ? chars[0] : null;
}

/** Collects the per-character replacements of a local normaliser; false when it is not local. */
function collectReplacements(normalizer: unknown, out: Array<[string, string]>): boolean {
  if (normalizer === null || normalizer === undefined) return true;
  if (!isObject(normalizer)) return false;
  switch (normalizer['type']) {
    case 'Prepend':
      return true;
    case 'Replace': {
      const from = singleCodePointPattern(normalizer['pattern']);
      const to = normalizer['content'];
      if (from === null || typeof to !== 'string' || to.length === 0) return false;
      out.push([from, to]);
      return true;
    }
    case 'Sequence': {
      const parts = normalizer['normalizers'];
      return Array.isArray(parts) && parts.every((part) => collectReplacements(part, out));
    }
    default:
      return false;
  }
}

function isLocalPreTokenizer(preTokenizer: unknown): boolean {
  if (preTokenizer === null || preTokenizer === undefined) return true;
  if (!isObject(preTokenizer)) return false;
  if (preTokenizer['type'] === 'Split') return singleCodePointPattern(preTokenizer['pattern']) !== null;
  if (preTokenizer['type'] === 'Sequence') {
    const parts = preTokenizer['pretokenizers'];
    return Array.isArray(parts) && parts.every(isLocalPreTokenizer);
  }
  return false;
}

function isPlainBpe(model: unknown): model is Json {
  return (
    isObject(model) &&
    model['type'] === 'BPE' &&
    (model['dropout'] ?? null) === null &&
    !model['ignore_merges'] &&
    !model['end_of_word_suffix'] &&
    !model['continuing_subword_prefix']
  );
}

/** Merge entries come as "a b" strings (older files) or [a, b] pairs (newer files). */
function mergeSides(merge: unknown): [string, string] | null {
  if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string') {
    return [merge[0], merge[1]];
  }
  if (typeof merge === 'string') {
    const space = merge.indexOf(' ');
    if (space > 0) return [merge.slice(0, space), merge.slice(space + 1)];
  }
  return null;
}

function firstCodePoint(s: string): number {
  return s.codePointAt(0) ?? -1;
}

function lastCodePoint(s: string): number {
  const last = s.charCodeAt(s.length - 1);
  // a trailing low surrogate belongs to a pair: read the whole code point
  if (last >= 0xdc00 && last <= 0xdfff && s.length >= 2) return s.codePointAt(s.length - 2) ?? last;
  return last;
}

const pairKey = (left: number, right: number): number => left * 0x110000 + right;

export interface PrefixCutter {
  /** True when some merge can join a symbol ending with code point `left` to one starting with `right`. */
  canJoin(left: number, right: number): boolean;
  /** True when some merge joins a symbol ending with any code point other than `cp` to one starting with `cp`. */
  canJoinBefore(cp: number): boolean;
  /**
   * The first index in [from, to) (`to` defaults to the text's length) where text may be cut without
   * changing the ids of text[0, index), or -1 when there is none.
   */
  findCut(text: string, from: number, to?: number): number;
}

/** Builds the cutter for a tokenizer.json, or returns null when the safety argument does not apply. */
export function createPrefixCutter(tokenizerJson: Json): PrefixCutter | null {
  const replacements: Array<[string, string]> = [];
  if (!collectReplacements(tokenizerJson['normalizer'], replacements)) return null;
  if (!isLocalPreTokenizer(tokenizerJson['pre_tokenizer'])) return null;
  const model = tokenizerJson['model'];
  if (!isPlainBpe(model) || !Array.isArray(model['merges'])) return null;

  const addedTokens = Array.isArray(tokenizerJson['added_tokens']) ? tokenizerJson['added_tokens'] : [];
  const addedContents: string[] = [];
  for (const token of addedTokens) {
    if (!isObject(token) || typeof token['content'] !== 'string') return null;
    if (token['lstrip'] || token['rstrip'] || token['single_word'] || token['normalized']) return null;
    if (token['content'].length > 1) addedContents.push(token['content']);
  }
  const longestAdded = addedContents.reduce((m, s) => Math.max(m, s.length), 0);

  // (last char of left side, first char of right side) for every merge: the only cuts BPE can cross
  const crossable = new Set<number>();
  for (const merge of model['merges']) {
    const sides = mergeSides(merge);
    if (sides === null || sides[0].length === 0 || sides[1].length === 0) return null;
    crossable.add(pairKey(lastCodePoint(sides[0]), firstCodePoint(sides[1])));
  }

  const normalizeChar = (ch: string): string => {
    let s = ch;
    for (const [from, to] of replacements) s = s.replaceAll(from, to);
    return s;
  };

  const addedTokenSpans = (text: string, cut: number): boolean => {
    if (longestAdded === 0) return false;
    const start = Math.max(0, cut - longestAdded + 1);
    const window = text.slice(start, cut + longestAdded - 1);
    for (const content of addedContents) {
      for (let at = window.indexOf(content); at >= 0; at = window.indexOf(content, at + 1)) {
        if (start + at < cut && start + at + content.length > cut) return true;
      }
    }
    return false;
  };

  const joinsBefore = new Set<number>(); // right code points some merge reaches from a different left one
  for (const key of crossable) {
    const right = key % 0x110000;
    if ((key - right) / 0x110000 !== right) joinsBefore.add(right);
  }

  return {
    canJoin: (left, right) => crossable.has(pairKey(left, right)),
    canJoinBefore: (cp) => joinsBefore.has(cp),
    findCut(text: string, from: number, to = text.length): number {
      for (let cut = Math.max(1, from), end = Math.min(to, text.length); cut < end; cut++) {
        const code = text.charCodeAt(cut);
        if (code >= 0xdc00 && code <= 0xdfff) continue; // never split a surrogate pair
        const left = normalizeChar(String.fromCodePoint(lastCodePoint(text.slice(Math.max(0, cut - 2), cut))));
        const right = normalizeChar(String.fromCodePoint(text.codePointAt(cut) ?? code));
        if (crossable.has(pairKey(lastCodePoint(left), firstCodePoint(right)))) continue;
        if (addedTokenSpans(text, cut)) continue;
        return cut;
      }
      return -1;
    },
  };
}
