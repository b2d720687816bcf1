// A direct float64 transcription of the Llama2 embedding forward pass (one sequence at a time, full
// causal softmax, no packing) — the independent reference for shapes the golden fixture lacks
// (GQA, cls pooling, head_dim ≠ hidden/heads, no normalisation).
import type { LlamaConfig } from '../../src/model/config.js';

type W = Map<string, Float32Array>;

function linear(x: Float64Array, T: number, K: number, w: Float32Array, N: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++)
    for (let n = 0; n < N; n++) {
      let s = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) s += x[t * K + k]! * w[n * K + k]!;
      y[t * N + n] = s;
    }
  return y;
}

function rmsnorm(x: Float64Array, T: number, H: number, w: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[t * H + i]! ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = w[i]! * x[t * H + i]! * r;
  }
  return y;
}

function rope(x: Float64Array, T: number, heads: number, hd: number, theta: number): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = Math.fround(t * Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / hd)))));
        const o = (t * heads + h) * hd;
        const x1 = x[o + i]!;
        const x2 = x[o + i + half]!;
        x[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        x[o + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
}

/** Embedding of one token sequence. */
export function referenceEmbedding(cfg: LlamaConfig, w: W, ids: number[], dense: number): Float64Array {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: hd, rmsNormEps: eps } = cfg;
  const T = ids.length;
  const get = (n: string): Float32Array => {
    const v = w.get(n);
    if (!v) throw new Error(`reference: no weight ${n}`);
    return v;
  };
  let x = new Float64Array(T * H);
  const emb = get('embed_tokens.weight');
  ids.forEach((id, t) => {
    for (let i = 0; i < H; i++) x[t * H + i] = emb[id * H + i]!;
  });
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `layers.${l}.`;
    const h1 = rmsnorm(x, T, H, get(p + 'input_layernorm.weight'), eps);
    const q = linear(h1, T, H, get(p + 'self_attn.q_proj.weight'), nh * hd);
    const k = linear(h1, T, H, get(p + 'self_attn.k_proj.weight'), nkv * hd);
    const v = linear(h1, T, H, get(p + 'self_attn.v_proj.weight'), nkv * hd);
    rope(q, T, nh, hd, cfg.ropeTheta);
    rope(k, T, nkv, hd, cfg.ropeTheta);
    const att = new Float64Array(T * nh * hd);
    for (let h = 0; h < nh; h++) {
      const kh = Math.floor(h / (nh / nkv));
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
        for (let j = 0; j <= i; j++)
          for (let c = 0; c < hd; c++) att[(i * nh + h) * hd + c] += (e[j]! / z) * v[(j * nkv + kh) * hd + c]!;
      }
    }
    const o = linear(att, T, nh * hd, get(p + 'self_attn.o_proj.weight'), H);
    for (let i = 0; i < T * H; i++) x[i] += o[i]!;
    const h2 = rmsnorm(x, T, H, get(p + 'post_attention_layernorm.weight'), eps);
    const g = linear(h2, T, H, get(p + 'mlp.gate_proj.weight'), I);
    const u = linear(h2, T, H, get(p + 'mlp.up_proj.weight'), I);
    for (let i = 0; i < T * I; i++) g[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
    const d = linear(g, T, I, get(p + 'mlp.down_proj.weight'), H);
    const nx = new Float64Array(T * H);
    for (let i = 0; i < T * H; i++) nx[i] = x[i]! + d[i]!;
    x = nx;
  }
  const hid = rmsnorm(x, T, H, get('norm.weight'), eps);
  const pr = linear(hid, T, H, get('dense_layer.weight'), dense, get('dense_layer.bias'));
  const out = new Float64Array(dense);
  if (cfg.pooling === 'cls') for (let i = 0; i < dense; i++) out[i] = pr[i]!;
  else for (let t = 0; t < T; t++) for (let i = 0; i < dense; i++) out[i] += pr[t * dense + i]! / T;
  if (cfg.normalized) {
    const n = Math.max(Math.sqrt(out.reduce((a, b) => a + b * b, 0)), 1e-12);
    for (let i = 0; i < dense; i++) out[i] /= n;
  }
  return out;
}
