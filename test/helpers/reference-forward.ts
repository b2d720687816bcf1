// A direct float64 transcription of the Llama2 embedding forward pass (one sequence at a time, full
// causal softmax, no packing) — the independent reference for shapes the golden fixture lacks
// (GQA, cls pooling, head_dim ≠ hidden/heads, no normalisation), and for the in-repo model tests
// when ../shared is absent. referenceForward also keeps every activation the reference backward
// (reference-backward.ts) needs.
import type { LlamaConfig } from '../../src/model/config.js';

/** Weights by canonical name: float32 as loaded, or float64 (finite-difference checks perturb them). */
export type RefWeights = Map<string, Float32Array | Float64Array>;
type Vec = Float32Array | Float64Array;

/** y[T,N] = x[T,K] w[N,K]^T (+ b). */
export function linear(x: Float64Array, T: number, K: number, w: Vec, N: number, b?: Vec): Float64Array {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++)
    for (let n = 0; n < N; n++) {
      let s = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) s += x[t * K + k]! * w[n * K + k]!;
      y[t * N + n] = s;
    }
  return y;
}

/** y = w * x * r per token, r = 1 / sqrt(mean(x²) + eps); returns y and r [T]. */
export function rmsnorm(x: Float64Array, T: number, H: number, w: Vec, eps: number): { y: Float64Array; r: Float64Array } {
  const y = new Float64Array(T * H);
  const r = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[t * H + i]! ** 2;
    r[t] = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = w[i]! * x[t * H + i]! * r[t]!;
  }
  return { y, r };
}

/** The rotation angle of position t, pair i (computed in float32 like the model's tables). */
export function ropeAngle(t: number, i: number, hd: number, theta: number): number {
  return Math.fround(t * Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / hd)))));
}

/** Rotates (x_i, x_{i+hd/2}) of every head by the position's angle; `sign` -1 applies the inverse. */
export function rope(x: Float64Array, T: number, heads: number, hd: number, theta: number, sign = 1): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = ropeAngle(t, i, hd, theta);
        const c = Math.cos(a);
        const s = sign * Math.sin(a);
        const o = (t * heads + h) * hd;
        const x1 = x[o + i]!;
        const x2 = x[o + i + half]!;
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
}

/** What one layer's backward needs. */
export interface LayerTape {
  x: Float64Array; // [T,H] layer input
  h1: Float64Array; // [T,H] rmsnorm(x)
  r1: Float64Array; // [T]
  q: Float64Array; // [T,nh*hd] after rope
  k: Float64Array; // [T,nkv*hd] after rope
  v: Float64Array; // [T,nkv*hd]
  probs: Float64Array[]; // per head h: [T,T] causal softmax (row i, cols j <= i)
  att: Float64Array; // [T,nh*hd]
  mid: Float64Array; // [T,H] x + o_proj(att)
  h2: Float64Array; // [T,H] rmsnorm(mid)
  r2: Float64Array;
  gate: Float64Array; // [T,I] pre-activation
  up: Float64Array; // [T,I]
  act: Float64Array; // [T,I] silu(gate) * up
}

export interface ForwardTape {
  ids: number[];
  layers: LayerTape[];
  last: Float64Array; // [T,H] input of the final norm
  hidden: Float64Array; // [T,H] final hidden states
  rF: Float64Array;
  pooled: Float64Array; // [H]
  projected: Float64Array; // [dense] before normalisation
  emb: Float64Array; // [dense]
}

export function getWeight(w: RefWeights, name: string): Vec {
  const v = w.get(name);
  if (!v) throw new Error(`reference: no weight ${name}`);
  return v;
}

/** The forward pass of one token sequence, keeping its activations. */
export function referenceForward(cfg: LlamaConfig, w: RefWeights, ids: number[], dense: number): ForwardTape {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: hd, rmsNormEps: eps } = cfg;
  const T = ids.length;
  const get = (n: string): Vec => getWeight(w, n);
  let x = new Float64Array(T * H);
  const emb = get('embed_tokens.weight');
  ids.forEach((id, t) => {
    for (let i = 0; i < H; i++) x[t * H + i] = emb[id * H + i]!;
  });
  const layers: LayerTape[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `layers.${l}.`;
    const { y: h1, r: r1 } = rmsnorm(x, T, H, get(p + 'input_layernorm.weight'), eps);
    const q = linear(h1, T, H, get(p + 'self_attn.q_proj.weight'), nh * hd);
    const k = linear(h1, T, H, get(p + 'self_attn.k_proj.weight'), nkv * hd);
    const v = linear(h1, T, H, get(p + 'self_attn.v_proj.weight'), nkv * hd);
    rope(q, T, nh, hd, cfg.ropeTheta);
    rope(k, T, nkv, hd, cfg.ropeTheta);
    const att = new Float64Array(T * nh * hd);
    const probs: Float64Array[] = [];
    for (let h = 0; h < nh; h++) {
      const kh = Math.floor(h / (nh / nkv));
      const P = new Float64Array(T * T);
      for (let i = 0; i < T; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) d += q[(i * nh + h) * hd + c]! * k[(j * nkv + kh) * hd + c]!;
          s.push(d / Math.sqrt(hd));
        }
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) {
          P[i * T + j] = e[j]! / z;
          for (let c = 0; c < hd; c++) att[(i * nh + h) * hd + c] += P[i * T + j]! * v[(j * nkv + kh) * hd + c]!;
        }
      }
      probs.push(P);
    }
    const o = linear(att, T, nh * hd, get(p + 'self_attn.o_proj.weight'), H);
    const mid = new Float64Array(T * H);
    for (let i = 0; i < T * H; i++) mid[i] = x[i]! + o[i]!;
    const { y: h2, r: r2 } = rmsnorm(mid, T, H, get(p + 'post_attention_layernorm.weight'), eps);
    const gate = linear(h2, T, H, get(p + 'mlp.gate_proj.weight'), I);
    const up = linear(h2, T, H, get(p + 'mlp.up_proj.weight'), I);
    const act = new Float64Array(T * I);
    for (let i = 0; i < T * I; i++) act[i] = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
    const d = linear(act, T, I, get(p + 'mlp.down_proj.weight'), H);
    const nx = new Float64Array(T * H);
    for (let i = 0; i < T * H; i++) nx[i] = mid[i]! + d[i]!;
    layers.push({ x, h1, r1, q, k, v, probs, att, mid, h2, r2, gate, up, act });
    x = nx;
  }
  const { y: hidden, r: rF } = rmsnorm(x, T, H, get('norm.weight'), eps);
  // pooling before the dense layer: the same as after it (mean and cls commute with an affine map)
  const pooled = new Float64Array(H);
  if (cfg.pooling === 'cls') for (let i = 0; i < H; i++) pooled[i] = hidden[i]!;
  else for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) pooled[i] += hidden[t * H + i]! / T;
  const projected = linear(pooled, 1, H, get('dense_layer.weight'), dense, get('dense_layer.bias'));
  const out = Float64Array.from(projected);
  if (cfg.normalized) {
    const n = Math.max(Math.sqrt(out.reduce((a, b) => a + b * b, 0)), 1e-12);
    for (let i = 0; i < dense; i++) out[i] /= n;
  }
  return { ids, layers, last: x, hidden, rF, pooled, projected, emb: out };
}

/** Embedding of one token sequence. */
export function referenceEmbedding(cfg: LlamaConfig, w: RefWeights, ids: number[], dense: number): Float64Array {
  return referenceForward(cfg, w, ids, dense).emb;
}
