// Float64 reference of one contrastive step: the InfoNCE loss over queries and passages and the
// gradient of every parameter, written by hand over referenceForward's activations (independent of
// the native backward, and itself checked against finite differences in model-reference.test.ts).
//
// Loss (native/cpu/loss.cpp): s_ij = q_i·p_j/τ over the scored set (every passage, or the own group),
//   L = (1/B) Σ_i (lse_i − s_{i,iG});  dS_ij = (softmax_ij − [j = iG]) / B;
//   dq_i = Σ_j dS_ij p_j / τ,  dp_j = Σ_i dS_ij q_i / τ.
// Backward, from the embedding down (per sequence, y = x Wᵀ means dx = dy W and dW += dyᵀ x):
//   normalise e = y/‖y‖:  dy = (de − e (e·de)) / ‖y‖
//   dense y = W p + b:    dW += dy pᵀ, db += dy, dp = Wᵀ dy;   mean pool: dh_t = dp / T (cls: dh_0 = dp)
//   rmsnorm y = w x r:    dw += dy x r,  dx = r (w dy) − x r³/H Σ_j w_j dy_j x_j
//   swiglu a = silu(g) u: du = da silu(g),  dg = da u σ(g) (1 + g (1 − σ(g)))
//   attention o_i = Σ_j P_ij v_j, P = softmax_j(q_i·k_j/√d):  dv_j += P_ij do_i,
//     dP_ij = do_i·v_j,  dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij),  dq_i += dS_ij k_j/√d,  dk_j += dS_ij q_i/√d
//   rope (a rotation): the gradient turns back by the same angle
//   embedding: d table[id_t] += dx_t, but for id_t = pad_token_id (nn.Embedding's padding_idx in
//     transformers: that row gets no gradient)
import type { LlamaConfig } from '../../src/model/config.js';
import { parameterNames } from '../../src/model/weights.js';
import { getWeight, referenceForward, rope, type ForwardTape, type RefWeights } from './reference-forward.js';

type Vec = Float32Array | Float64Array;

export interface ContrastiveBatch {
  queries: number[][];
  passages: number[][]; // B*G, group i is [iG, iG+G), its first the positive
  groupSize: number;
  temperature: number;
  inBatchNegatives: boolean;
}

/** dx[T,K] += dy[T,N] w[N,K];  dw[N,K] += dy^T x. */
function linearBack(dy: Float64Array, x: Float64Array, T: number, K: number, w: Vec, N: number, dx: Float64Array, dw: Float64Array): void {
  for (let t = 0; t < T; t++)
    for (let n = 0; n < N; n++) {
      const g = dy[t * N + n]!;
      if (g === 0) continue;
      for (let k = 0; k < K; k++) {
        dx[t * K + k] += g * w[n * K + k]!;
        dw[n * K + k] += g * x[t * K + k]!;
      }
    }
}

/** rmsnorm backward: dx += ..., dw += ... (x the norm's input, r its saved inverse rms). */
function rmsnormBack(dy: Float64Array, x: Float64Array, r: Float64Array, T: number, H: number, w: Vec, dx: Float64Array, dw: Float64Array): void {
  for (let t = 0; t < T; t++) {
    const rt = r[t]!;
    let dot = 0;
    for (let i = 0; i < H; i++) {
      dot += w[i]! * dy[t * H + i]! * x[t * H + i]!;
      dw[i] += dy[t * H + i]! * x[t * H + i]! * rt;
    }
    for (let i = 0; i < H; i++) dx[t * H + i] += rt * w[i]! * dy[t * H + i]! - (x[t * H + i]! * rt * rt * rt * dot) / H;
  }
}

/** Adds d loss / d parameters of one sequence, given d loss / d its embedding. */
function backwardSequence(cfg: LlamaConfig, w: RefWeights, tape: ForwardTape, de: Float64Array, dense: number, grads: Map<string, Float64Array>): void {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: hd } = cfg;
  const T = tape.ids.length;
  const get = (n: string): Vec => getWeight(w, n);
  const g = (n: string): Float64Array => grads.get(n)!;

  const dy = Float64Array.from(de);
  if (cfg.normalized) {
    const n = Math.max(Math.sqrt(tape.projected.reduce((a, b) => a + b * b, 0)), 1e-12);
    let dot = 0;
    for (let i = 0; i < dense; i++) dot += tape.emb[i]! * de[i]!;
    for (let i = 0; i < dense; i++) dy[i] = (de[i]! - tape.emb[i]! * dot) / n;
  }
  const dPooled = new Float64Array(H);
  linearBack(dy, tape.pooled, 1, H, get('dense_layer.weight'), dense, dPooled, g('dense_layer.weight'));
  for (let i = 0; i < dense; i++) g('dense_layer.bias')[i] += dy[i]!;
  const dHidden = new Float64Array(T * H);
  if (cfg.pooling === 'cls') dHidden.set(dPooled, 0);
  else for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) dHidden[t * H + i] = dPooled[i]! / T;
  let dx = new Float64Array(T * H);
  rmsnormBack(dHidden, tape.last, tape.rF, T, H, get('norm.weight'), dx, g('norm.weight'));

  for (let l = cfg.numLayers - 1; l >= 0; l--) {
    const p = `layers.${l}.`;
    const L = tape.layers[l]!;
    // mlp: next = mid + down(silu(gate) * up)
    const dMid = Float64Array.from(dx);
    const dAct = new Float64Array(T * I);
    linearBack(dx, L.act, T, I, get(p + 'mlp.down_proj.weight'), H, dAct, g(p + 'mlp.down_proj.weight'));
    const dGate = new Float64Array(T * I);
    const dUp = new Float64Array(T * I);
    for (let i = 0; i < T * I; i++) {
      const z = L.gate[i]!;
      const sig = 1 / (1 + Math.exp(-z));
      dUp[i] = dAct[i]! * z * sig;
      dGate[i] = dAct[i]! * L.up[i]! * sig * (1 + z * (1 - sig));
    }
    const dH2 = new Float64Array(T * H);
    linearBack(dGate, L.h2, T, H, get(p + 'mlp.gate_proj.weight'), I, dH2, g(p + 'mlp.gate_proj.weight'));
    linearBack(dUp, L.h2, T, H, get(p + 'mlp.up_proj.weight'), I, dH2, g(p + 'mlp.up_proj.weight'));
    rmsnormBack(dH2, L.mid, L.r2, T, H, get(p + 'post_attention_layernorm.weight'), dMid, g(p + 'post_attention_layernorm.weight'));
    // attention: mid = x + o_proj(att)
    const dAtt = new Float64Array(T * nh * hd);
    linearBack(dMid, L.att, T, nh * hd, get(p + 'self_attn.o_proj.weight'), H, dAtt, g(p + 'self_attn.o_proj.weight'));
    const dq = new Float64Array(T * nh * hd);
    const dk = new Float64Array(T * nkv * hd);
    const dv = new Float64Array(T * nkv * hd);
    const scale = 1 / Math.sqrt(hd);
    for (let h = 0; h < nh; h++) {
      const kh = Math.floor(h / (nh / nkv));
      const P = L.probs[h]!;
      for (let i = 0; i < T; i++) {
        const dP = new Float64Array(i + 1);
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) {
            const go = dAtt[(i * nh + h) * hd + c]!;
            d += go * L.v[(j * nkv + kh) * hd + c]!;
            dv[(j * nkv + kh) * hd + c] += P[i * T + j]! * go;
          }
          dP[j] = d;
          sum += P[i * T + j]! * d;
        }
        for (let j = 0; j <= i; j++) {
          const dS = P[i * T + j]! * (dP[j]! - sum) * scale;
          for (let c = 0; c < hd; c++) {
            dq[(i * nh + h) * hd + c] += dS * L.k[(j * nkv + kh) * hd + c]!;
            dk[(j * nkv + kh) * hd + c] += dS * L.q[(i * nh + h) * hd + c]!;
          }
        }
      }
    }
    rope(dq, T, nh, hd, cfg.ropeTheta, -1);
    rope(dk, T, nkv, hd, cfg.ropeTheta, -1);
    const dH1 = new Float64Array(T * H);
    linearBack(dq, L.h1, T, H, get(p + 'self_attn.q_proj.weight'), nh * hd, dH1, g(p + 'self_attn.q_proj.weight'));
    linearBack(dk, L.h1, T, H, get(p + 'self_attn.k_proj.weight'), nkv * hd, dH1, g(p + 'self_attn.k_proj.weight'));
    linearBack(dv, L.h1, T, H, get(p + 'self_attn.v_proj.weight'), nkv * hd, dH1, g(p + 'self_attn.v_proj.weight'));
    const dX = Float64Array.from(dMid);
    rmsnormBack(dH1, L.x, L.r1, T, H, get(p + 'input_layernorm.weight'), dX, g(p + 'input_layernorm.weight'));
    dx = dX;
  }
  const dEmb = g('embed_tokens.weight');
  tape.ids.forEach((id, t) => {
    if (id === cfg.padTokenId) return;
    for (let i = 0; i < H; i++) dEmb[id * H + i] += dx[t * H + i]!;
  });
}

/** InfoNCE loss and d loss / d embeddings (rows of q [B,D] and p [B*G,D]). */
export function referenceInfonce(q: Float64Array[], p: Float64Array[], G: number, tau: number, inBatch: boolean): { loss: number; dq: Float64Array[]; dp: Float64Array[] } {
  const B = q.length;
  const dq = q.map((r) => new Float64Array(r.length));
  const dp = p.map((r) => new Float64Array(r.length));
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const js = inBatch ? p.map((_, j) => j) : Array.from({ length: G }, (_, k) => i * G + k);
    const s = js.map((j) => q[i]!.reduce((a, x, c) => a + x * p[j]![c]!, 0) / tau);
    const m = Math.max(...s);
    const lse = m + Math.log(s.reduce((a, z) => a + Math.exp(z - m), 0));
    loss += (lse - s[js.indexOf(i * G)]!) / B;
    js.forEach((j, n) => {
      const dS = (Math.exp(s[n]! - lse) - (j === i * G ? 1 : 0)) / B / tau;
      for (let c = 0; c < q[i]!.length; c++) {
        dq[i]![c] += dS * p[j]![c]!;
        dp[j]![c] += dS * q[i]![c]!;
      }
    });
  }
  return { loss, dq, dp };
}

/** The loss of a batch and the gradient of every parameter (by canonical name). */
export function referenceLossAndGrads(cfg: LlamaConfig, w: RefWeights, batch: ContrastiveBatch, dense: number): { loss: number; grads: Map<string, Float64Array> } {
  const grads = new Map<string, Float64Array>();
  for (const spec of parameterNames(cfg, dense)) grads.set(spec.name, new Float64Array(spec.shape.reduce((a, b) => a * b, 1)));
  const qt = batch.queries.map((ids) => referenceForward(cfg, w, ids, dense));
  const pt = batch.passages.map((ids) => referenceForward(cfg, w, ids, dense));
  const { loss, dq, dp } = referenceInfonce(qt.map((t) => t.emb), pt.map((t) => t.emb), batch.groupSize, batch.temperature, batch.inBatchNegatives);
  qt.forEach((t, i) => backwardSequence(cfg, w, t, dq[i]!, dense, grads));
  pt.forEach((t, i) => backwardSequence(cfg, w, t, dp[i]!, dense, grads));
  return { loss, grads };
}

/** The loss alone (for finite differences). */
export function referenceLoss(cfg: LlamaConfig, w: RefWeights, batch: ContrastiveBatch, dense: number): number {
  const emb = (ids: number[]): Float64Array => referenceForward(cfg, w, ids, dense).emb;
  return referenceInfonce(batch.queries.map(emb), batch.passages.map(emb), batch.groupSize, batch.temperature, batch.inBatchNegatives).loss;
}

