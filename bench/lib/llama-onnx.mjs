// Our embedding model as an ONNX graph (bench/lib/onnx.mjs writes the files), for the ONNX Runtime
// peer rows of bench/precision.mjs. For the bench only: random-weight models.
//
// The graph is the one a Hugging Face export of the model would give: standard ONNX operators
// (opset 17), which ONNX Runtime's graph optimiser then fuses as it can; nothing here is tuned to ORT.
//   inputs: input_ids int64 [B, S] (right-padded), attention_mask float [B, S] (1 real, 0 padding)
//   h = embed_tokens[input_ids]                                   [B, S, H]
//   per layer: x = rmsnorm(h) · w            (x / sqrt(mean(x²) + eps), Pow / ReduceMean / Add / Sqrt / Div)
//              q, k, v = x Wq^T, x Wk^T, x Wv^T  -> [B, heads, S, d]     (MatMul on [in, out] weights)
//              q, k rotated: q cos + rotate_half(q) sin, rotate_half(q) = [-q2, q1] (halves of d)
//              k, v repeated to `heads` when kvHeads < heads (GQA)
//              a = softmax(q k^T / sqrt(d) + causal) v -> [B, S, heads·d];  h += a Wo^T
//              x = rmsnorm(h) · w2;  h += (silu(x Wg^T) ⊙ x Wu^T) Wd^T
//   e = rmsnorm(h) · wn; p = Σ_s e·mask / Σ_s mask  [B, H]   (mean over real tokens)
//   y = p Wdense^T + b; output embeddings = y / ||y||             [B, dense]
// Pooling before the dense layer equals the model's dense-then-pool (the layer is affine), up to
// rounding, and costs one row per text instead of one per token, as in llama-gguf.mjs's comparison.
// Right padding needs no padding mask in attention: a causal query never sees a later (padding) key.
//
// Formats: FP32 (the weights as they are); INT8, every projection as com.microsoft's
// DynamicQuantizeMatMul with int8 weights quantised symmetrically per output channel
// (scale = max|w| / 127), activations quantised per tensor at run time: our int8 scheme
// (native/core/lowp.h), which is also what ORT's dynamic quantisation produces; INT8B32, every
// projection as com.microsoft's MatMulNBits with 8-bit weights in blocks of 32 along k, one scale a
// block (symmetric: code = round(w / scale) + 128, the operator's default zero point for 8 bits),
// accuracy_level 4 (activations quantised to int8 too, int8 products): the layout ORT's own LLM
// tools quantise to, and llama.cpp's Q8_0 blocks.
import { ONNX_TYPE, OnnxGraph } from './onnx.mjs';

export const ONNX_FORMATS = ['FP32', 'INT8', 'INT8B32'];
/** MatMulNBits' block along k (INT8B32). */
const NBITS_BLOCK = 32;

/** [rows, cols] row-major -> [cols, rows]. */
export function transpose(w, rows, cols) {
  if (w.length !== rows * cols) throw new Error(`llama onnx: a [${rows}, ${cols}] matrix has ${rows * cols} values, got ${w.length}`);
  const out = new Float32Array(w.length);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B), c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = w[r * cols + c];
    }
  }
  return out;
}

/**
 * W [N, K] (nn.Linear's layout) as int8 [K, N] (MatMul's) with one scale per output channel n:
 * q = round(w / scale) in [-127, 127], scale = max_k |w[n, k]| / 127 (0 for a zero row, q = 0).
 */
export function quantizeColumns(w, N, K) {
  if (w.length !== N * K) throw new Error(`llama onnx: a [${N}, ${K}] matrix has ${N * K} values, got ${w.length}`);
  const q = new Int8Array(N * K);
  const scale = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]));
    const s = max / 127;
    scale[n] = s;
    if (s === 0) continue;
    for (let k = 0; k < K; k++) q[k * N + n] = Math.max(-127, Math.min(127, Math.round(w[n * K + k] / s)));
  }
  return { q, scale };
}

/**
 * W [N, K] as MatMulNBits' 8-bit blocks: codes uint8 [N, ceil(K / 32), 32] (k past K: code 128, zero)
 * and scales [N, ceil(K / 32)], scale = max |w| over the block / 127 (0 for a zero block).
 */
export function quantizeBlocks(w, N, K) {
  if (w.length !== N * K) throw new Error(`llama onnx: a [${N}, ${K}] matrix has ${N * K} values, got ${w.length}`);
  const blocks = Math.ceil(K / NBITS_BLOCK);
  const codes = new Uint8Array(N * blocks * NBITS_BLOCK).fill(128);
  const scale = new Float32Array(N * blocks);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = b * NBITS_BLOCK, k1 = Math.min(K, k0 + NBITS_BLOCK);
      let max = 0;
      for (let k = k0; k < k1; k++) max = Math.max(max, Math.abs(w[n * K + k]));
      const s = max / 127;
      scale[n * blocks + b] = s;
      if (s === 0) continue;
      for (let k = k0; k < k1; k++) codes[(n * blocks + b) * NBITS_BLOCK + (k - k0)] = 128 + Math.max(-127, Math.min(127, Math.round(w[n * K + k] / s)));
    }
  }
  return { codes, scale };
}

/**
 * One quantisation feeding two initializers written one after the other: first() computes it, last()
 * takes it and lets it go, so one matrix's copy is held at a time.
 */
function writtenOnce(compute) {
  let v = null;
  return {
    first: () => (v ??= compute()),
    last: () => {
      const r = v ?? compute();
      v = null;
      return r;
    },
  };
}

const i64 = (...xs) => BigInt64Array.from(xs.map((x) => BigInt(x)));

/**
 * The graph of the model in `format` ('FP32' | 'INT8'). `tensor(name)` returns our float32 tensor of
 * that name (parameterNames() names), called while the file is written. maxPositions: rows of the
 * rotary tables (the longest input).
 * @param {{ vocab: number, hidden: number, intermediate: number, layers: number, heads: number, kvHeads: number, headDim: number, dense: number, rmsEps?: number, ropeTheta?: number, maxPositions?: number }} c
 */
export function llamaOnnxGraph(c, format, tensor) {
  if (!ONNX_FORMATS.includes(format)) throw new Error(`llama onnx: unknown format ${format} (one of ${ONNX_FORMATS.join(', ')})`);
  const { vocab: V, hidden: H, intermediate: I, heads, kvHeads, headDim: d, dense: D } = c;
  if (d % 2 !== 0) throw new Error(`llama onnx: the head size must be even for rotary, got ${d}`);
  if (heads % kvHeads !== 0) throw new Error(`llama onnx: ${heads} heads are not a multiple of ${kvHeads} kv heads`);
  const eps = c.rmsEps ?? 1e-5, theta = c.ropeTheta ?? 10000, P = c.maxPositions ?? 4096;
  const { FLOAT, INT8, INT64, UINT8 } = ONNX_TYPE;
  const g = new OnnxGraph();
  if (format !== 'FP32') g.opset('com.microsoft', 1);

  const ids = g.input('input_ids', INT64, ['batch', 'seq']);
  const mask = g.input('attention_mask', FLOAT, ['batch', 'seq']);
  const f32 = (name, ...xs) => g.constant(name, FLOAT, [], Float32Array.from(xs));
  const two = f32('two', 2), epsC = f32('eps', eps), scale = f32('attn_scale', 1 / Math.sqrt(d));
  const negInf = f32('neg_inf', -Infinity), zero = f32('zero', 0);
  const axisLast = g.constant('axis_last', INT64, [1], i64(-1));
  const axis1 = g.constant('axis_1', INT64, [1], i64(1));

  // rotary tables [P, d], rotate-half layout: column j and j + d/2 share the angle pos · theta^(-2j/d)
  const cosT = new Float32Array(P * d), sinT = new Float32Array(P * d);
  for (let p = 0; p < P; p++) {
    for (let j = 0; j < d / 2; j++) {
      const a = p * Math.pow(theta, (-2 * j) / d);
      cosT[p * d + j] = cosT[p * d + j + d / 2] = Math.cos(a);
      sinT[p * d + j] = sinT[p * d + j + d / 2] = Math.sin(a);
    }
  }
  g.weight('rope_cos', FLOAT, [P, d], () => cosT);
  g.weight('rope_sin', FLOAT, [P, d], () => sinT);
  const seqLen = g.op('Gather', [g.op('Shape', [ids]), g.constant('one_i64', INT64, [], i64(1))], { axis: { i: 0 } });
  const positions = g.op('Range', [g.constant('zero_i64', INT64, [], i64(0)), seqLen, 'one_i64']); // [S]
  const cos = g.op('Gather', ['rope_cos', positions], { axis: { i: 0 } }); // [S, d]
  const sin = g.op('Gather', ['rope_sin', positions], { axis: { i: 0 } });
  // causal: -inf where the key comes after the query
  const later = g.op('Greater', [g.op('Unsqueeze', [positions, g.constant('axis_0', INT64, [1], i64(0))]), g.op('Unsqueeze', [positions, axis1])]);
  const causal = g.op('Where', [later, negInf, zero]); // [S, S]

  const w = (name, shape) => g.weight(name, FLOAT, shape, () => tensor(name));
  /** x [.., K] times nn.Linear weight `name` [N, K]: x W^T [.., N]. */
  const linear = (x, name, N, K) => {
    if (format === 'FP32') return g.op('MatMul', [x, g.weight(`${name}.T`, FLOAT, [K, N], () => transpose(tensor(name), N, K))]);
    if (format === 'INT8B32') {
      const blocks = Math.ceil(K / NBITS_BLOCK);
      const q = writtenOnce(() => quantizeBlocks(tensor(name), N, K));
      const codes = g.weight(`${name}.q8`, UINT8, [N, blocks, NBITS_BLOCK], () => q.first().codes);
      const scales = g.weight(`${name}.q8scale`, FLOAT, [N, blocks], () => q.last().scale);
      const attrs = { K: { i: K }, N: { i: N }, bits: { i: 8 }, block_size: { i: NBITS_BLOCK }, accuracy_level: { i: 4 } };
      return g.op('MatMulNBits', [x, codes, scales], attrs, { domain: 'com.microsoft' });
    }
    const q = writtenOnce(() => quantizeColumns(tensor(name), N, K));
    const bq = g.weight(`${name}.int8`, INT8, [K, N], () => q.first().q);
    const bs = g.weight(`${name}.scale`, FLOAT, [N], () => q.last().scale);
    return g.op('DynamicQuantizeMatMul', [x, bq, bs], {}, { domain: 'com.microsoft' });
  };
  const rmsnorm = (x, name) => {
    const ms = g.op('ReduceMean', [g.op('Pow', [x, two])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, epsC])])]), w(name, [H])]);
  };
  const heads4 = (x, n) => g.op('Transpose', [g.op('Reshape', [x, g.constant(`shape_heads_${n}`, INT64, [4], i64(0, 0, n, d))])], { perm: { ints: [0, 2, 1, 3] } });
  const starts = (v) => g.constant(`slice_${v}`, INT64, [1], i64(v));
  const rotate = (x) => {
    // x [B, n, S, d] -> x cos + [-x2, x1] sin
    const x1 = g.op('Slice', [x, starts(0), starts(d / 2), g.constant('slice_axis', INT64, [1], i64(3))]);
    const x2 = g.op('Slice', [x, starts(d / 2), starts(d), 'slice_axis']);
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: { i: 3 } });
    return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rot, sin])]);
  };
  const repeatKv = (x) => {
    if (kvHeads === heads) return x;
    // [B, kv, S, d] -> [B, kv, r, S, d] -> [B, heads, S, d]
    const r = heads / kvHeads;
    const e = g.op('Expand', [g.op('Unsqueeze', [x, g.constant('axis_2', INT64, [1], i64(2))]), g.constant('expand_kv', INT64, [5], i64(1, 1, r, 1, 1))]);
    return g.op('Reshape', [e, g.constant('shape_kv_heads', INT64, [4], i64(0, heads, -1, d))]);
  };

  let h = g.op('Gather', [w('embed_tokens.weight', [V, H]), ids], { axis: { i: 0 } });
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}.`;
    const x = rmsnorm(h, `${p}input_layernorm.weight`);
    const q = rotate(heads4(linear(x, `${p}self_attn.q_proj.weight`, heads * d, H), heads));
    const k = repeatKv(rotate(heads4(linear(x, `${p}self_attn.k_proj.weight`, kvHeads * d, H), kvHeads)));
    const v = repeatKv(heads4(linear(x, `${p}self_attn.v_proj.weight`, kvHeads * d, H), kvHeads));
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: { ints: [0, 1, 3, 2] } })]), scale]), causal]);
    const attn = g.op('MatMul', [g.op('Softmax', [scores], { axis: { i: -1 } }), v]); // [B, heads, S, d]
    const merged = g.op('Reshape', [g.op('Transpose', [attn], { perm: { ints: [0, 2, 1, 3] } }), g.constant(`shape_merge_${l}`, INT64, [3], i64(0, 0, heads * d))]);
    h = g.op('Add', [h, linear(merged, `${p}self_attn.o_proj.weight`, H, heads * d)]);
    const x2 = rmsnorm(h, `${p}post_attention_layernorm.weight`);
    const gate = linear(x2, `${p}mlp.gate_proj.weight`, I, H);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), linear(x2, `${p}mlp.up_proj.weight`, I, H)]);
    h = g.op('Add', [h, linear(act, `${p}mlp.down_proj.weight`, H, I)]);
  }
  const e = rmsnorm(h, 'norm.weight');
  const m3 = g.op('Unsqueeze', [mask, g.constant('axis_2b', INT64, [1], i64(2))]); // [B, S, 1]
  const pooled = g.op('Div', [g.op('ReduceSum', [g.op('Mul', [e, m3]), axis1], { keepdims: { i: 0 } }), g.op('ReduceSum', [mask, axis1], { keepdims: { i: 1 } })]);
  const y = g.op('Add', [linear(pooled, 'dense_layer.weight', D, H), w('dense_layer.bias', [D])]);
  const norm = g.op('Sqrt', [g.op('ReduceSum', [g.op('Mul', [y, y]), axisLast], { keepdims: { i: 1 } })]);
  g.op('Div', [y, norm], {}, { outputs: ['embeddings'] });
  g.output('embeddings', FLOAT, ['batch', D]);
  return g;
}
