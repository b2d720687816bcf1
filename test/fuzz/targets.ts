// The fuzz targets: every parser that reads untrusted bytes. Each turns the fuzzer's bytes into the
// thing it parses (a file on disk, a string, an HTTP exchange), runs our reader, and checks the
// property: a correct result (checked here) or an Error that names its input; never another
// exception, a crash, a hang or an allocation the input's size does not justify.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FuzzTarget } from './engine.js';
import { parseConfig, type LlamaConfig } from '../../src/model/config.js';
import { isLoadableDType, readSafetensorsHeader, readTensorF32, DTYPE_BYTES } from '../../src/model/safetensors.js';
import { openWeights, parameterNames } from '../../src/model/weights.js';
import { nativeAddon } from '../../src/native.js';
import type { NativeModel, NativeModelConfig } from '../../src/model/embedding-model.js';
import { readPairRows, LineError } from '../../src/data/jsonl.js';
import { loadVectorTable } from '../../src/eval/vectors.js';
import { parseNpy } from '../../src/util/npy.js';
import { TextTokenizer } from '../../src/model/tokenizer.js';
import { writeLlamaTokenizer } from '../../src/demo/llama-tokenizer.js';
import { loadCheckpointMoments, readTrainerState, listCheckpoints } from '../../src/train/checkpoint.js';
import { snapshotDownload } from '../../src/hub/download.js';

const enc = new TextEncoder();
const text = (s: string): Uint8Array => enc.encode(s);

let scratch: string | undefined;
/** One scratch folder per process for the files targets write. */
export function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'l2e-fuzz-'));
  return scratch;
}
export function removeScratch(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

/** An Error whose message starts with (or contains) `where`: a clear error about that input. */
function names(where: string, err: unknown): boolean {
  return err instanceof Error && err.constructor !== TypeError && err.constructor !== RangeError && err.message.includes(where);
}

function fail(what: string): never {
  throw Object.assign(new TypeError(`property violated: ${what}`), { property: true });
}

// ---- safetensors ----

/**
 * Input → safetensors file. An input starting with '{' is the header JSON: the 8-byte length is put in
 * front and the data its tensors ask for behind (the largest data_offsets end, as the reader wants the
 * tensors to fill the data section; `dataBytes` when the header does not parse or asks for over 1 MiB),
 * so mutations explore the header, not the length prefix; any other input is the whole file as is.
 */
function safetensorsFile(data: Uint8Array, file: string, dataBytes = 256): void {
  if (data[0] === 0x7b) {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(data.length));
    const body = Buffer.alloc(dataSectionFor(data, dataBytes));
    for (let i = 0; i < dataBytes; i++) body[i] = (i * 37) & 0xff;
    writeFileSync(file, Buffer.concat([len, data, body]));
  } else {
    writeFileSync(file, data);
  }
}

function dataSectionFor(header: Uint8Array, fallback: number): number {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(header).toString('utf8'));
  } catch {
    return fallback;
  }
  if (typeof json !== 'object' || json === null) return fallback;
  let end = 0;
  for (const v of Object.values(json)) {
    const o: unknown = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['data_offsets'] : undefined;
    if (Array.isArray(o) && Number.isSafeInteger(o[1])) end = Math.max(end, o[1] as number);
  }
  return end <= 1 << 20 ? end : fallback;
}

function headerSeed(tensors: { name: string; dtype: string; shape: number[] }[], meta = true): Uint8Array {
  const h: Record<string, unknown> = meta ? { __metadata__: { format: 'pt' } } : {};
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES as Record<string, number>)[t.dtype]!;
    h[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  return text(JSON.stringify(h));
}

const SAFETENSORS_DICT = [
  '"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"F16"', '"BF16"', '"I64"', '"F64"', '"F4"', '"F6_E2M3"', '"C64"', '"F8_E8M0"',
  '[1000000000000, 1000000000000]', '[0, 18446744073709551615]', '[-1]', '[]', '{}', '\\u0000', '\\ud800', '"model.',
];

export const safetensorsHeader: FuzzTarget = {
  name: 'safetensors-header',
  seeds: () => [
    headerSeed([{ name: 'a', dtype: 'F32', shape: [2, 3] }, { name: 'b', dtype: 'F16', shape: [4] }, { name: 'c', dtype: 'BF16', shape: [1, 1, 2] }]),
    headerSeed([{ name: 'x', dtype: 'F32', shape: [] }], false),
    text('{}'),
    Uint8Array.from([16, 0, 0, 0, 0, 0, 0, 0, ...text('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'), 0, 0, 128, 63]),
  ],
  dictionary: SAFETENSORS_DICT,
  run: (data) => {
    const file = join(scratchDir(), 'fuzz.safetensors');
    safetensorsFile(data, file);
    const h = readSafetensorsHeader(file);
    const spans = h.tensors.map((t) => [t.offset, t.offset + t.byteLength] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    // accepted tensors fill the data section end to end
    let end = h.dataOffset;
    for (const [b, e] of spans) {
      if (b !== end) fail(`tensor span ${b},${e} accepted where the one before ends at ${end}`);
      end = e;
    }
    if (end !== h.fileSize) fail(`tensors ending at ${end} accepted in a file of ${h.fileSize} bytes`);
    for (const t of h.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (n * DTYPE_BYTES[t.dtype] !== t.byteLength) fail(`tensor ${t.name}: shape and byte length disagree`);
      // a dtype the model does not load (F64, I64, ...) is read by no one: only its bytes are checked
      if (isLoadableDType(t.dtype) && t.byteLength <= 4096 && readTensorF32(t).length !== n) fail(`tensor ${t.name}: read back a wrong length`);
    }
  },
  accept: (err) => names(join(scratchDir(), 'fuzz.safetensors'), err),
};

/** The config of the tiny model the native loading target loads into. */
const TINY: LlamaConfig = parseConfig(
  { vocab_size: 6, hidden_size: 4, intermediate_size: 6, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, embedding_size: 3 },
  'tiny/config.json',
);

interface ModelAddon {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
}

function nativeConfig(c: LlamaConfig, dense: number): NativeModelConfig {
  return {
    vocab: c.vocabSize, hidden: c.hiddenSize, intermediate: c.intermediateSize, layers: c.numLayers, heads: c.numHeads,
    kvHeads: c.numKvHeads, headDim: c.headDim, dense, rmsEps: c.rmsNormEps, ropeTheta: c.ropeTheta, pooling: c.pooling, normalized: c.normalized,
  };
}

export const safetensorsLoad: FuzzTarget = {
  name: 'safetensors-load',
  seeds: () => {
    const specs = parameterNames(TINY, 3);
    const f32 = specs.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape }));
    const mixed = specs.map((p, i) => ({ name: `model.${p.name}`, dtype: ['F32', 'F16', 'BF16'][i % 3]!, shape: p.shape }));
    return [headerSeed(f32), headerSeed(mixed, false)];
  },
  dictionary: [...SAFETENSORS_DICT, '"embed_tokens.weight"', '"dense_layer.bias"', '"lm_head.weight"', '"layers.1.', '"layers.0.'],
  maxLen: 8192,
  run: async (data) => {
    const dir = join(scratchDir(), 'load');
    mkdirSync(dir, { recursive: true });
    // the data its header asks for, else enough for the all-F32 tiny model (under 1 KiB)
    safetensorsFile(data, join(dir, 'model.safetensors'), 1024);
    const w = openWeights(dir, TINY);
    const { NativeModel } = nativeAddon<ModelAddon>();
    const native = new NativeModel(nativeConfig(TINY, 3), 'cpu');
    try {
      await native.loadTensors(w.tensors.map((t) => ({ name: t.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype })));
    } finally {
      native.dispose();
    }
  },
  accept: (err) => names(join(scratchDir(), 'load'), err),
};

// ---- config.json ----

const CONFIG_4X = {
  architectures: ['LlamaModelEmbedding'], model_type: 'llama', vocab_size: 32000, hidden_size: 64, intermediate_size: 128,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_act: 'silu', max_position_embeddings: 2048,
  rms_norm_eps: 1e-6, rope_theta: 10000, rope_scaling: null, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0,
  sentence_pooling_method: 'mean', normalized: true, temperature: 0.05, embedding_size: 32,
};
const CONFIG_5X = {
  model_type: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2,
  head_dim: 16, rope_parameters: { rope_theta: 500000, rope_type: 'default' }, eos_token_id: [2, 3], dense_size: 8,
};

export const configJson: FuzzTarget = {
  name: 'config-json',
  seeds: () => [text(JSON.stringify(CONFIG_4X, null, 2)), text(JSON.stringify(CONFIG_5X)), text('{}')],
  dictionary: [
    '"rope_parameters"', '"rope_scaling"', '"rope_type"', '"linear"', '"head_dim"', '"num_key_value_heads"', '"embedding_size"',
    '"dense_size"', '"sentence_pooling_method"', '"cls"', '"hidden_act"', '"gelu"', '"attention_bias"', '"mlp_bias"', '"model_type"', 'true',
  ],
  run: (data) => {
    const c = parseConfig(Buffer.from(data).toString('utf8'), 'config.json');
    const ints = [c.vocabSize, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.maxPositionEmbeddings];
    if (!ints.every((v) => Number.isSafeInteger(v) && v > 0)) fail(`non-positive size accepted: ${ints}`);
    if (c.numHeads % c.numKvHeads !== 0 || c.headDim % 2 !== 0) fail('inconsistent heads accepted');
    if (!(c.rmsNormEps > 0 && Number.isFinite(c.ropeTheta) && c.ropeTheta > 0)) fail('bad eps/theta accepted');
    if (c.denseSize !== null && !(Number.isSafeInteger(c.denseSize) && c.denseSize > 0)) fail('bad dense size accepted');
  },
  accept: (err) => names('config.json: ', err),
};

// ---- JSONL training rows ----

/** The readers' warning about bytes that are not UTF-8 (mutated inputs have them): it must name the file. */
const utf8WarningNames = (file: string) => (message: string): void => {
  if (!message.startsWith(file)) fail(`the invalid UTF-8 warning does not name the file: ${message}`);
};

export const jsonlRows: FuzzTarget = {
  name: 'jsonl-rows',
  seeds: () => [
    text('{"query": "apa khabar", "pos": ["baik"], "neg": ["tidak", "entah"]}\n{"query": "q2", "pos": ["p"], "neg": []}\n'),
    text('\ufeff{"query":"a","pos":["b"],"neg":["c"],"extra":1}\r\n\n   \n{"query":"é","pos":["😀"],"neg":[]}'),
  ],
  dictionary: ['"query"', '"pos"', '"neg"', '\n', '\r\n', '\ufeff', '\\u0000', '\\ud83d', '[]', 'null', '\xff', '\xc3'],
  run: async (data) => {
    const file = join(scratchDir(), 'rows.jsonl');
    writeFileSync(file, data);
    // small chunks and a small line limit: lines cross chunk borders and the limit is reachable
    let last = 0;
    for await (const row of readPairRows(file, { chunkBytes: 7, maxLineBytes: 2048, onInvalidUtf8: utf8WarningNames(file) })) {
      if (row.line <= last) fail('line numbers not increasing');
      last = row.line;
      const v = row.value;
      if (typeof v.query !== 'string' || !v.pos.every((s) => typeof s === 'string') || !v.neg.every((s) => typeof s === 'string')) {
        fail('an invalid row was accepted');
      }
    }
  },
  accept: (err) => err instanceof LineError ? err.file.endsWith('rows.jsonl') && err.line > 0 : names('rows.jsonl', err),
};

// ---- vectors for l2e eval --embeddings ----

function npySeed(rows: number, cols: number, descr = '<f4', fortran = false): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${rows}, ${cols}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const width = descr === '<f8' ? 8 : 4;
  const body = Buffer.alloc(rows * cols * width);
  for (let i = 0; i < rows * cols; i++) width === 4 ? body.writeFloatLE(i / 7, i * 4) : body.writeDoubleLE(i / 7, i * 8);
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

export const vectorsNpy: FuzzTarget = {
  name: 'vectors-npy',
  seeds: () => [npySeed(3, 4), npySeed(2, 2, '<f8', true), npySeed(0, 3)],
  dictionary: ["'descr'", "'<f4'", "'<f8'", "'>f4'", "'fortran_order'", 'True', "'shape'", '(1000000000000, 0)', '(0, 1000000000000)', '(3,)'],
  run: (data) => {
    const m = parseNpy(data, 'in.npy');
    if (!(Number.isSafeInteger(m.rows) && Number.isSafeInteger(m.cols) && m.data.length === m.rows * m.cols)) fail('shape and data disagree');
    if (m.data.length * 4 > data.length * 2 + 64) fail(`allocated ${m.data.length} floats for a ${data.length}-byte input`);
  },
  accept: (err) => names('in.npy: ', err),
};

export const vectorsJsonl: FuzzTarget = {
  name: 'vectors-jsonl',
  seeds: () => [text('{"text": "a", "embedding": [0.1, 0.2, 0.3]}\n{"text": "b", "embedding": [1, 2, 3]}\n{"text": " a ", "embedding": [4, 5, 6]}\n')],
  dictionary: ['"text"', '"embedding"', '1e39', '-1e39', 'NaN', 'null', '[]', '\n'],
  run: async (data) => {
    const file = join(scratchDir(), 'vectors.jsonl');
    writeFileSync(file, data);
    const t = await loadVectorTable(file, { onInvalidUtf8: utf8WarningNames(file) });
    if (!(t.dim > 0 && t.rows > 0)) fail('an empty table was accepted');
  },
  accept: (err) => names('vectors.jsonl', err),
};

// ---- tokenizer on arbitrary bytes ----

let tokenizer: TextTokenizer | undefined;
async function llamaTokenizer(): Promise<TextTokenizer> {
  if (!tokenizer) {
    const dir = join(scratchDir(), 'tokenizer');
    mkdirSync(dir, { recursive: true });
    await writeLlamaTokenizer(dir);
    tokenizer = TextTokenizer.fromDir(dir);
  }
  return tokenizer;
}

/** The bytes as three strings: UTF-8 (invalid sequences become U+FFFD), latin1, and raw UTF-16 units (lone surrogates). */
function stringsOf(data: Uint8Array): string[] {
  const units: number[] = [];
  for (let i = 0; i + 1 < data.length; i += 2) units.push(data[i]! | (data[i + 1]! << 8));
  return [Buffer.from(data).toString('utf8'), Buffer.from(data).toString('latin1'), String.fromCharCode(...units)];
}

export const tokenizerBytes: FuzzTarget = {
  name: 'tokenizer-bytes',
  seeds: () => [text('Saya tak boleh makan nasi lemak kat KL lah 😀 café'), Uint8Array.from([0xff, 0xfe, 0x3d, 0xd8, 0x00, 0xc3, 0x28, 0xe2, 0x82]), text('▁▁ <s></s><unk>\t\r\n\u200b')],
  dictionary: ['<s>', '</s>', '<unk>', '▁', ' ', '\u200b', '😀', '\xff', '\xed\xa0\x80', 'lah', '<0x0A>'],
  maxLen: 2048,
  setup: async () => {
    await llamaTokenizer();
  },
  run: async (data) => {
    const tok = await llamaTokenizer();
    for (const s of stringsOf(data)) {
      for (const max of [Infinity, 5]) {
        const ids = tok.encode(s, max);
        if (ids.length > max) fail(`encode gave ${ids.length} ids for maxLength ${max}`);
        if (tok.addBos && ids[0] !== tok.bosId) fail('no BOS');
        for (const id of ids) if (!(Number.isInteger(id) && id >= 0 && id < tok.vocabSize)) fail(`id ${id} outside the vocabulary`);
      }
    }
  },
  accept: () => false, // a string never makes the tokenizer throw
  slowMs: 10_000,
};

// ---- checkpoint folder reader ----

export const checkpointFolder: FuzzTarget = {
  name: 'checkpoint-folder',
  // trainer_state.json, a NUL byte, then the optimizer.safetensors header (see safetensorsFile)
  seeds: () => [
    Buffer.concat([
      text(JSON.stringify({ step: 3, epoch: 0, rng: [1, 2, 3, 4], lr: 0.001 }, null, 2)),
      Uint8Array.of(0),
      headerSeed([{ name: 'exp_avg', dtype: 'F32', shape: [8] }, { name: 'exp_avg_sq', dtype: 'F32', shape: [8] }]),
    ]),
  ],
  dictionary: [...SAFETENSORS_DICT, '"exp_avg"', '"exp_avg_sq"', '"step"'],
  run: (data) => {
    const out = join(scratchDir(), 'out');
    const dir = join(out, 'checkpoint-3');
    mkdirSync(dir, { recursive: true });
    const cut = data.indexOf(0);
    writeFileSync(join(dir, 'trainer_state.json'), cut < 0 ? data : data.subarray(0, cut));
    safetensorsFile(cut < 0 ? new Uint8Array(0) : data.subarray(cut + 1), join(dir, 'optimizer.safetensors'));
    if (listCheckpoints(out).length !== 1) fail('checkpoint not listed');
    const state = readTrainerState(dir);
    if (typeof state !== 'object' || state === null || Array.isArray(state)) fail('trainer state is not an object');
    const { m, v } = loadCheckpointMoments(dir, 8);
    if (m.length !== 8 || v.length !== 8) fail('moments of the wrong length');
  },
  accept: (err) => names(join(scratchDir(), 'out', 'checkpoint-3'), err),
};

// ---- the hub client against a local server ----

/**
 * A local TCP server answering each request with a raw HTTP response taken from the input: the
 * input holds up to four responses separated by NUL bytes (repo info, then file downloads and
 * redirect targets in request order). Location headers are made relative, so a redirect can only
 * lead back to this server.
 */
let server: Server | undefined;
let port = 0;
let responses: Buffer[] = [];
async function hubServer(): Promise<number> {
  if (!server) {
    server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.once('data', () => {
        const r = responses.shift() ?? Buffer.from('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
        sock.end(r);
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
    server.unref();
  }
  return port;
}
export async function closeHubServer(): Promise<void> {
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
}

/**
 * Keeps every redirect on this machine: a Location that the URL parser (the one the client uses)
 * resolves to another host becomes a path on this server; one it cannot parse at all stays as it
 * is (the client must report it; it cannot lead anywhere).
 */
function localOnly(resp: Buffer, base: string): Buffer {
  const text = resp.toString('latin1').replace(/^(location:[ \t]*)([^\r\n]*)/gim, (_m, name: string, value: string) => {
    let url: URL;
    try {
      url = new URL(value.trim(), base);
    } catch {
      return name + value;
    }
    if (url.origin === new URL(base).origin) return name + value;
    return name + '/' + `${url.pathname}${url.search}`.replace(/^[\/\\]+/, '');
  });
  return Buffer.from(text, 'latin1');
}

const SHA = '0123456789abcdef0123456789abcdef01234567';
const INFO = JSON.stringify({ sha: SHA, siblings: [{ rfilename: 'config.json', size: 2, blobId: 'b1' }] });
const http = (status: string, headers: string, body: string): string =>
  `HTTP/1.1 ${status}\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;

export const hubResponses: FuzzTarget = {
  name: 'hub-responses',
  seeds: () => [
    text([http('200 OK', 'content-type: application/json\r\n', INFO), http('200 OK', '', '{}')].join('\0')),
    text([http('200 OK', '', INFO), http('302 Found', 'location: /cdn/x\r\n', ''), http('200 OK', '', '{}')].join('\0')),
    text([http('200 OK', '', INFO), 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}'].join('\0')),
    text(http('200 OK', '', JSON.stringify({ sha: SHA, siblings: [{ rfilename: 'w.safetensors', lfs: { sha256: 'ab'.repeat(32), size: 3 } }] }))),
  ],
  dictionary: ['\r\n', 'location: ', 'content-length: ', 'transfer-encoding: chunked\r\n', '"sha"', '"siblings"', '"rfilename"', '"lfs"', '"sha256"', '"size"', '"blobId"', '"../', 'HTTP/1.1 ', '301', '416', '500', '\0'],
  slowMs: 10_000,
  run: async (data) => {
    const p = await hubServer();
    const base = `http://127.0.0.1:${p}/api/models/org/name/revision/main`;
    responses = Buffer.from(data).toString('latin1').split('\0').slice(0, 4).map((s) => localOnly(Buffer.from(s, 'latin1'), base));
    const cacheDir = join(scratchDir(), 'hub');
    rmSync(cacheDir, { recursive: true, force: true });
    const r = await snapshotDownload('org/name', { endpoint: `http://127.0.0.1:${p}`, cacheDir, retry: { attempts: 1 } });
    if (!r.dir.startsWith(join(cacheDir, 'models--org--name', 'snapshots') + '/')) fail(`snapshot outside the cache: ${r.dir}`);
  },
  accept: (err) => err instanceof Error && err.constructor !== TypeError && err.constructor !== RangeError && /org\/name|127\.0\.0\.1/.test(err.message),
};

// ---- tokenizer.json ----

/** A small BPE tokenizer.json of the Llama kind (metaspace, byte fallback) with every part the check reads. */
const TINY_TOKENIZER = {
  version: '1.0',
  added_tokens: [
    { id: 0, content: '<unk>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    { id: 1, content: '<s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    { id: 2, content: '</s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
  ],
  normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
  pre_tokenizer: null,
  decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
  model: {
    type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: true, ignore_merges: false,
    vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, '<0x61>': 3, '▁': 4, a: 5, b: 6, '▁a': 7, ab: 8 },
    merges: ['▁ a', 'a b'],
  },
};

export const tokenizerJson: FuzzTarget = {
  name: 'tokenizer-json',
  seeds: () => [
    text(JSON.stringify(TINY_TOKENIZER)),
    text(JSON.stringify({ ...TINY_TOKENIZER, model: { ...TINY_TOKENIZER.model, merges: [['▁', 'a'], ['a', 'b']] } })),
    text(JSON.stringify({ model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['<s>', 0], ['</s>', 0], ['▁a', -1], ['b', -2]] } })),
  ],
  dictionary: ['"vocab"', '"merges"', '"added_tokens"', '"type"', '"BPE"', '"Unigram"', '"WordPiece"', '"Split"', '"Regex"', '"Metaspace"', '"normalizer"', '"pre_tokenizer"', '"decoder"', 'null', '[]', '{}', '-1', '1e9'],
  run: (data) => {
    const dir = join(scratchDir(), 'tokenizer-json');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), data);
    const tok = TextTokenizer.fromDir(dir);
    for (const s of ['ab a b', '', 'ba\u{1F600}']) {
      const ids = tok.encode(s, Infinity);
      for (const id of ids) if (!(Number.isInteger(id) && id >= 0 && id < tok.vocabSize)) fail(`id ${id} outside the vocabulary`);
    }
  },
  accept: (err) => names(join(scratchDir(), 'tokenizer-json', 'tokenizer.json'), err),
};

export const targets: FuzzTarget[] = [
  safetensorsHeader, safetensorsLoad, configJson, jsonlRows, vectorsNpy, vectorsJsonl, tokenizerBytes, tokenizerJson, checkpointFolder, hubResponses,
];
