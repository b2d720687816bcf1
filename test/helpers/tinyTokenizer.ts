// A small Llama-style tokenizer.json made in code, so that model tests run in a bare clone without
// ../shared: SentencePiece-BPE layout (prepend "▁", spaces as "▁", split before each "▁"), <unk> <s>
// </s>, the 256 byte-fallback tokens, single characters, and a few merges.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CHARS = '▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?-\'"():;';
const MERGES: [string, string][] = [
  ['▁', 'a'], ['▁', 'b'], ['▁', 'd'], ['▁', 'k'], ['▁', 'm'], ['▁', 's'], ['▁', 't'], ['a', 'n'],
  ['e', 'n'], ['i', 'n'], ['a', 'r'], ['a', 'h'], ['n', 'g'], ['▁m', 'e'], ['▁d', 'i'], ['an', 'g'],
  ['▁s', 'a'], ['▁k', 'a'], ['▁t', 'e'], ['▁b', 'e'],
];

/** The tokenizer.json object; its vocabulary size is `tinyTokenizerVocab`. */
export function tinyTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  const add = (t: string): void => {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  };
  ['<unk>', '<s>', '</s>'].forEach(add);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (const c of CHARS) add(c);
  for (const [a, b] of MERGES) add(a + b);
  const special = (content: string, id: number) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special('<unk>', 0), special('<s>', 1), special('</s>', 2)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
    },
    pre_tokenizer: { type: 'Split', pattern: { String: '▁' }, behavior: 'MergedWithNext', invert: false },
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export const tinyTokenizerVocab = 3 + 256 + [...CHARS].length + MERGES.length;

/** Writes tokenizer.json into `dir`. */
export function writeTinyTokenizer(dir: string): void {
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
}
