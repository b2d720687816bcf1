// Rebuilds the real Llama 2 tokenizer (32,000 SentencePiece BPE pieces with byte fallback) as a
// Hugging Face tokenizer.json, from the vocabulary and merges shipped inside the npm package
// `llama-tokenizer-js` (a devDependency: the demo needs a real tokenizer without network access).
//
// How that package stores its data (1.2.x): the exported instance holds `vocabById` (piece strings,
// index = token id, decoded from a base64 newline-joined list) and `merges`, a Map from
// "left right" (the two pieces joined by one ASCII space) to a priority that grows with the merge's
// position in the original tokenizer.json merges list (2·rank + 1). Sorting the Map by priority
// gives the merges back in rank order.
//
// The output mirrors the structure Hugging Face uses for Llama 2: normaliser Prepend("▁") then
// Replace(" " → "▁"), no pre-tokeniser (the whole text is one BPE word, like SentencePiece), BPE
// with byte_fallback and fuse_unk, the decoder that undoes all that, and <unk>/<s>/</s> as special
// added tokens.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { demoInstallCommand } from './packages.js';

const SPACE_PIECE = '\u2581'; // "▁", SentencePiece's visible space
const LLAMA_VOCAB_SIZE = 32000;
const SPECIAL_TOKENS = ['<unk>', '<s>', '</s>'] as const;

/** The part of llama-tokenizer-js's exported instance that we read. */
interface LlamaTokenizerJsData {
  vocabById: string[];
  merges: Map<string, number>;
}

async function loadLlamaTokenizerJs(): Promise<LlamaTokenizerJsData> {
  let mod: { default?: unknown };
  try {
    mod = (await import('llama-tokenizer-js')) as { default?: unknown };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(
      `the Llama tokenizer demo needs the package llama-tokenizer-js (${msg}). Install the demo's packages with: ${demoInstallCommand()}`,
    );
  }
  const data = mod.default as Partial<LlamaTokenizerJsData> | undefined;
  if (!data || !Array.isArray(data.vocabById) || !(data.merges instanceof Map)) {
    throw new Error('llama-tokenizer-js: unexpected export shape (expected vocabById and merges; version 1.2.x)');
  }
  return data as LlamaTokenizerJsData;
}

/** Splits "left right" into its two pieces; pieces hold no ASCII space (spaces are "▁"), so one split fits. */
function splitMergeKey(key: string, vocab: Map<string, number>): [string, string] {
  const space = key.indexOf(' ');
  const left = key.slice(0, space);
  const right = key.slice(space + 1);
  if (space <= 0 || right.includes(' ') || !vocab.has(left) || !vocab.has(right) || !vocab.has(left + right)) {
    throw new Error(`llama-tokenizer-js: cannot read merge ${JSON.stringify(key)}`);
  }
  return [left, right];
}

/** The Llama 2 tokenizer.json as an object (vocab piece → id, merges as [left, right] pairs in rank order). */
export async function buildLlamaTokenizerJson(): Promise<Record<string, unknown>> {
  const data = await loadLlamaTokenizerJs();
  const pieces = data.vocabById;
  if (pieces.length !== LLAMA_VOCAB_SIZE) {
    throw new Error(`llama-tokenizer-js: expected ${LLAMA_VOCAB_SIZE} pieces, found ${pieces.length}`);
  }
  const vocab = new Map<string, number>();
  pieces.forEach((piece, id) => {
    if (vocab.has(piece)) throw new Error(`llama-tokenizer-js: duplicate piece ${JSON.stringify(piece)}`);
    vocab.set(piece, id);
  });
  SPECIAL_TOKENS.forEach((token, id) => {
    if (pieces[id] !== token) throw new Error(`llama-tokenizer-js: expected ${token} at id ${id}, found ${pieces[id]}`);
  });

  const ranked = [...data.merges.entries()].sort((a, b) => a[1] - b[1]);
  const merges = ranked.map(([key]) => splitMergeKey(key, vocab));

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE_PIECE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE_PIECE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE_PIECE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };
}

/** The recipe's framing: BOS prepended, no EOS, padding with unk (id 0). */
export const LLAMA_TOKENIZER_CONFIG = {
  tokenizer_class: 'LlamaTokenizer',
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  pad_token: '<unk>',
  clean_up_tokenization_spaces: false,
  legacy: true,
  model_max_length: 4096,
} as const;

/** Writes tokenizer.json and tokenizer_config.json for Llama 2 into `dir` (created if needed). */
export async function writeLlamaTokenizer(dir: string): Promise<void> {
  const tokenizerJson = await buildLlamaTokenizerJson();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(LLAMA_TOKENIZER_CONFIG, null, 2) + '\n');
}
