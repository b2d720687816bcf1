// Our embedding model as a llama.cpp "llama" GGUF (bench/lib/gguf.mjs writes the file), for the peer rows
// of bench/precision.mjs. For the bench only: random-weight models, our own tokenizer files.
//
// What llama.cpp can compute: the Llama decoder, the final RMSNorm and MEAN pooling over a sequence's
// tokens (llama.pooling_type = 1). It has no place for our dense_layer (Linear hidden → 1536 with bias) nor
// the L2 normalisation, so the file holds no dense layer and the comparison is made on llama.cpp's pooled
// hidden states with our projection applied in JS (projectPooled): the projection is affine, so
// mean_t(W h_t + b) = W mean_t(h_t) + b, and projecting llama.cpp's mean gives exactly what our model
// pools, up to rounding. (Its cost, 1536×4096 multiply-adds per token, is ~1.5% of the 600M shape's
// per-token work and is left out of llama.cpp's timing.)
//
// Rotary layout: Hugging Face checkpoints (and we) rotate the two halves of each head ("rotate-half":
// element i pairs with i + d/2); llama.cpp's LLAMA rope pairs adjacent elements (2i, 2i+1). So the rows of
// q_proj and k_proj are permuted per head: GGUF row 2i + s of a head is our row s·d/2 + i (s ∈ {0, 1},
// i < d/2), i.e. the head's rows seen as [2, d/2] are transposed to [d/2, 2]. The dot products q·k are
// unchanged (both sides get the same permutation), and the rotation acts on the same value pairs.
import { GGUF_TYPE } from './gguf.mjs';

/** llama.cpp file types (general.file_type) of the weight types written here. */
const FILE_TYPE = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 };
/** llama.cpp token types (tokenizer.ggml.token_type). */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 };
/** Score of a multi-character piece that no merge produces (the BPE never forms it). */
const UNREACHABLE_SCORE = -1e9;

/** Rows of a [heads·d, cols] projection reordered from rotate-half to adjacent pairs, head by head. */
export function permuteRotaryRows(w, heads, headDim, cols) {
  if (headDim % 2 !== 0) throw new Error(`llama gguf: the head size must be even for rotary, got ${headDim}`);
  if (w.length !== heads * headDim * cols) throw new Error(`llama gguf: a [${heads * headDim}, ${cols}] projection has ${heads * headDim * cols} values, got ${w.length}`);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const from = (h * headDim + s * half + i) * cols;
        const to = (h * headDim + 2 * i + s) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/**
 * The tensors of the GGUF, in llama.cpp's names: 2-D weights in `type`, norms in F32 (as llama.cpp's
 * converter does). `tensor(name)` returns our float32 tensor of that name (parameterNames() names).
 * @param {{ vocab: number, hidden: number, intermediate: number, layers: number, heads: number, kvHeads: number, headDim: number }} c
 */
export function llamaTensors(c, type, tensor) {
  const { vocab: V, hidden: H, intermediate: I, heads, kvHeads, headDim: d } = c;
  const t = (gguf, ours, shape, ggufType, transform) => ({
    name: gguf,
    shape,
    type: ggufType,
    data: () => (transform ? transform(tensor(ours)) : tensor(ours)),
  });
  const out = [t('token_embd.weight', 'embed_tokens.weight', [V, H], type)];
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}.`;
    const b = `blk.${l}.`;
    out.push(
      t(`${b}attn_norm.weight`, `${p}input_layernorm.weight`, [H], 'F32'),
      t(`${b}attn_q.weight`, `${p}self_attn.q_proj.weight`, [heads * d, H], type, (w) => permuteRotaryRows(w, heads, d, H)),
      t(`${b}attn_k.weight`, `${p}self_attn.k_proj.weight`, [kvHeads * d, H], type, (w) => permuteRotaryRows(w, kvHeads, d, H)),
      t(`${b}attn_v.weight`, `${p}self_attn.v_proj.weight`, [kvHeads * d, H], type),
      t(`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`, [H, heads * d], type),
      t(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`, [H], 'F32'),
      t(`${b}ffn_gate.weight`, `${p}mlp.gate_proj.weight`, [I, H], type),
      t(`${b}ffn_up.weight`, `${p}mlp.up_proj.weight`, [I, H], type),
      t(`${b}ffn_down.weight`, `${p}mlp.down_proj.weight`, [H, I], type),
    );
  }
  out.push(t('output_norm.weight', 'norm.weight', [H], 'F32'));
  return out;
}

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * tokenizer.ggml.* entries from a Hugging Face tokenizer.json (a SentencePiece-style BPE with byte
 * fallback, like Llama 2's) and its tokenizer_config.json (add_bos_token / add_eos_token; may be {}).
 * llama.cpp's "llama" (SentencePiece) tokenizer merges the adjacent pair whose merged piece has the
 * highest score; the BPE merges the pair of lowest rank, so a piece's score is minus the rank of the
 * first merge that forms it.
 */
export function llamaTokenizerMetadata(tokenizerJson, tokenizerConfig = {}) {
  const model = tokenizerJson?.model;
  if (!model || model.type !== 'BPE' || typeof model.vocab !== 'object') {
    throw new Error('llama gguf: tokenizer.json must hold a BPE model with a vocab (a Llama-style tokenizer)');
  }
  const vocab = new Map(Object.entries(model.vocab));
  for (const a of tokenizerJson.added_tokens ?? []) vocab.set(a.content, a.id);
  const n = Math.max(...vocab.values()) + 1;
  const tokens = new Array(n).fill(null);
  for (const [piece, id] of vocab) tokens[id] = piece;
  const missing = tokens.findIndex((p) => p === null);
  if (missing >= 0) throw new Error(`llama gguf: tokenizer.json has no piece for id ${missing}`);

  const rankOf = new Map();
  (model.merges ?? []).forEach((m, rank) => {
    const [left, right] = Array.isArray(m) ? m : String(m).split(' ');
    const merged = left + right;
    if (!rankOf.has(merged)) rankOf.set(merged, rank);
  });
  const special = new Set((tokenizerJson.added_tokens ?? []).filter((a) => a.special).map((a) => a.id));
  const unkId = model.unk_token != null ? vocab.get(model.unk_token) : undefined;
  const scores = tokens.map((piece) => (rankOf.has(piece) ? -rankOf.get(piece) || 0 : Array.from(piece).length > 1 && !BYTE_PIECE.test(piece) && !special.has(vocab.get(piece)) ? UNREACHABLE_SCORE : 0));
  const types = tokens.map((piece, id) =>
    id === unkId ? TOKEN_TYPE.UNKNOWN : BYTE_PIECE.test(piece) ? TOKEN_TYPE.BYTE : special.has(id) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.NORMAL,
  );
  const name = (v) => (typeof v === 'string' ? v : v && typeof v.content === 'string' ? v.content : null);
  const idOf = (key, fallback) => {
    const piece = name(tokenizerConfig[key]) ?? fallback;
    const id = vocab.get(piece);
    if (id === undefined) throw new Error(`llama gguf: the ${key} ${JSON.stringify(piece)} is not in tokenizer.json`);
    return id;
  };
  const normalizers = tokenizerJson.normalizer?.normalizers ?? (tokenizerJson.normalizer ? [tokenizerJson.normalizer] : []);
  const spacePrefix = normalizers.some((x) => x.type === 'Prepend' && x.prepend === '\u2581');
  const u32 = (key, value) => ({ key, type: GGUF_TYPE.UINT32, value });
  const bool = (key, value) => ({ key, type: GGUF_TYPE.BOOL, value });
  return [
    { key: 'tokenizer.ggml.model', type: GGUF_TYPE.STRING, value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: GGUF_TYPE.ARRAY, itemType: GGUF_TYPE.STRING, value: tokens },
    { key: 'tokenizer.ggml.scores', type: GGUF_TYPE.ARRAY, itemType: GGUF_TYPE.FLOAT32, value: scores },
    { key: 'tokenizer.ggml.token_type', type: GGUF_TYPE.ARRAY, itemType: GGUF_TYPE.INT32, value: types },
    u32('tokenizer.ggml.bos_token_id', idOf('bos_token', '<s>')),
    u32('tokenizer.ggml.eos_token_id', idOf('eos_token', '</s>')),
    u32('tokenizer.ggml.unknown_token_id', idOf('unk_token', '<unk>')),
    u32('tokenizer.ggml.padding_token_id', idOf('pad_token', '<unk>')),
    bool('tokenizer.ggml.add_bos_token', tokenizerConfig.add_bos_token ?? true),
    bool('tokenizer.ggml.add_eos_token', tokenizerConfig.add_eos_token ?? false),
    bool('tokenizer.ggml.add_space_prefix', spacePrefix),
  ];
}

/** The metadata of a llama GGUF of shape `c` (see llamaTensors) with weights in `type`. */
export function llamaMetadata(c, type, tokenizerMetadata, name = 'l2e bench model') {
  if (!(type in FILE_TYPE)) throw new Error(`llama gguf: unknown weight type ${type} (F32, F16, BF16 or Q8_0)`);
  const u32 = (key, value) => ({ key, type: GGUF_TYPE.UINT32, value });
  const f32 = (key, value) => ({ key, type: GGUF_TYPE.FLOAT32, value });
  return [
    { key: 'general.architecture', type: GGUF_TYPE.STRING, value: 'llama' },
    { key: 'general.name', type: GGUF_TYPE.STRING, value: name },
    u32('general.alignment', 32),
    u32('general.file_type', FILE_TYPE[type]),
    u32('llama.vocab_size', c.vocab),
    u32('llama.context_length', c.maxPositions ?? 4096),
    u32('llama.embedding_length', c.hidden),
    u32('llama.block_count', c.layers),
    u32('llama.feed_forward_length', c.intermediate),
    u32('llama.attention.head_count', c.heads),
    u32('llama.attention.head_count_kv', c.kvHeads),
    u32('llama.attention.key_length', c.headDim),
    u32('llama.attention.value_length', c.headDim),
    u32('llama.rope.dimension_count', c.headDim),
    f32('llama.rope.freq_base', c.ropeTheta ?? 10000),
    f32('llama.attention.layer_norm_rms_epsilon', c.rmsEps ?? 1e-5),
    u32('llama.pooling_type', 1), // MEAN
    ...tokenizerMetadata,
  ];
}

/**
 * Our embedding from llama.cpp's mean-pooled hidden state: the dense layer (weight [P, H], bias [P])
 * applied in float64, then the L2 normalisation.
 */
export function projectPooled(pooled, denseWeight, denseBias) {
  const P = denseBias.length;
  const H = pooled.length;
  const out = new Float32Array(P);
  let norm = 0;
  for (let p = 0; p < P; p++) {
    let s = denseBias[p];
    const row = p * H;
    for (let i = 0; i < H; i++) s += denseWeight[row + i] * pooled[i];
    out[p] = s;
    norm += s * s;
  }
  const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let p = 0; p < P; p++) out[p] *= inv;
  return out;
}
