// ONNX Runtime as a peer, through onnxruntime-node (a dev dependency, CPU execution provider only; its
// install script's download of CUDA provider files is off: package.json "allowScripts", .npmrc). A missing
// package or binary is a reason to skip, never a failure.

import { testingAddon } from '../../test/helpers/testing-addon.mjs';

const PACKAGE = 'onnxruntime-node';

/** The runtime, or why not: `{ ort, version }` or `{ skip: reason }`. */
export async function loadOrt() {
  let ort;
  try {
    ort = await import(PACKAGE);
  } catch (err) {
    return { skip: `${PACKAGE} is not installed (${firstLine(err)}); install the dev dependencies with npm ci` };
  }
  const version = String(ort.env?.versions?.node ?? ort.default?.env?.versions?.node ?? 'unknown');
  return { ort: ort.default ?? ort, version };
}

function firstLine(err) {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}

/**
 * Consecutive sequences (sorted by length, longest first) in batches of at most `texts` sequences and
 * `tokens` padded tokens (count x longest), padded tokens at most `padding` times the real ones; a batch
 * of one sequence is never refused.
 */
export function paddedBatches(seqs, { texts, tokens, padding }) {
  const out = [];
  let cur = [];
  let longest = 0, real = 0;
  for (const s of seqs) {
    const l = Math.max(longest, s.length), n = cur.length + 1;
    if (cur.length > 0 && (n > texts || l * n > tokens || l * n > padding * (real + s.length))) {
      out.push(cur);
      cur = [];
      longest = real = 0;
    }
    cur.push(s);
    longest = Math.max(longest, s.length);
    real += s.length;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * Whether ONNX Runtime's int8 matmuls (u8 activations x s8 weights) saturate on this CPU: x86 without
 * VNNI (SSE4.1, AVX2, AVX-512 before VNNI) sums pairs of products in 16 bits (vpmaddubsw), which
 * clamps; VNNI (vpdpbusd) sums them in 32. There the session sets ORT's documented remedy,
 * session.x64quantprecision: the weights made u8 (w + 128, the zero point moved with them, the same
 * products) for its exact, slower u8 x u8 kernels. Not set elsewhere: ORT applies it wherever its
 * u8 x u8 and u8 x s8 kernel tables differ, a VNNI CPU included, which would lose its VNNI kernels for
 * no accuracy. Without it the INT8 graph's embeddings were 0.14 from ours (1 - cos) on an AVX2 AMD
 * EPYC, and the bench dropped the peer as wrong.
 */
export function ortU8S8Saturates() {
  if (process.arch !== 'x64' && process.arch !== 'ia32') return false;
  const { cpu } = testingAddon().cpuIsa();
  return !cpu.avx512Vnni && !cpu.avxVnni;
}

/**
 * Opens a model written by llama-onnx.mjs on `threads` CPU threads with every graph optimisation on.
 * Returns { embed(seqs) → Float32Array (one embedding of `dim` values per sequence, in order), dispose() }:
 * the sequences run as one batch, right-padded to the longest.
 */
export async function openOrtEmbedder(ort, modelPath, { threads, dim }) {
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    ...(ortU8S8Saturates() ? { extra: { session: { x64quantprecision: '1' } } } : {}),
  });
  return {
    async embed(seqs) {
      const B = seqs.length;
      const S = Math.max(...seqs.map((s) => s.length));
      const ids = new BigInt64Array(B * S);
      const mask = new Float32Array(B * S);
      seqs.forEach((s, b) => {
        for (let t = 0; t < s.length; t++) (ids[b * S + t] = BigInt(s[t])), (mask[b * S + t] = 1);
      });
      const out = await session.run({
        input_ids: new ort.Tensor('int64', ids, [B, S]),
        attention_mask: new ort.Tensor('float32', mask, [B, S]),
      });
      const e = out.embeddings;
      if (e.dims.length !== 2 || e.dims[0] !== B || e.dims[1] !== dim) throw new Error(`onnx runtime: embeddings of shape [${e.dims.join(', ')}], expected [${B}, ${dim}]`);
      return Float32Array.from(e.data);
    },
    async dispose() {
      await session.release();
    },
  };
}
