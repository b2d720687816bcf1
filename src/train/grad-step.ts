// One contrastive step's loss and gradients, GradCache style (DESIGN.md §2):
//   1. embeddings of every chunk of queries and passages (chunks cut by a token budget);
//   2. InfoNCE over the whole batch → loss and d loss / d embeddings;
//   3. each chunk's backward seeded by its slice of those gradients. When the whole step fits in one
//      chunk budget the activations of step 1 are kept and reused (no recompute); otherwise each
//      chunk's forward is re-run during its backward, so memory holds one chunk's activations.
// Gradients accumulate in the native gradient buffer; the optimizer step is separate.
import { packBatch, type NativeModel } from '../model/embedding-model.js';
import { trainNatives } from './native-train.js';

export interface GradStepOptions {
  groupSize: number;
  temperature: number;
  /** Score each query against every passage of the batch (true, the recipe) or only its own group. */
  inBatchNegatives: boolean;
  /** Token budget of one chunk (GradCache); Infinity = never split. */
  chunkTokens: number;
  /** Scale applied to the loss gradient (1 / accumulation steps). */
  gradScale?: number;
}

export interface GradStepResult {
  loss: number;
  /** Real tokens processed (queries + passages). */
  tokens: number;
  /** Chunks whose forward was recomputed during backward. */
  recomputed: number;
}

interface Chunk {
  id: number;
  rows: number[]; // indices into the side's sequences
  tokens: Int32Array;
  cuSeqlens: Int32Array;
}

/** Splits sequences (in order) into chunks of at most `budget` tokens (a longer single one alone). */
export function chunkByTokens(seqs: Int32Array[], budget: number, firstId: number): Chunk[] {
  const chunks: Chunk[] = [];
  let cur: number[] = [];
  let tokens = 0;
  const flush = (): void => {
    if (cur.length === 0) return;
    const packed = packBatch(cur.map((i) => seqs[i]!));
    chunks.push({ id: firstId + chunks.length, rows: cur, tokens: packed.tokens, cuSeqlens: packed.cuSeqlens });
    cur = [];
    tokens = 0;
  };
  seqs.forEach((s, i) => {
    if (cur.length > 0 && tokens + s.length > budget) flush();
    cur.push(i);
    tokens += s.length;
  });
  flush();
  return chunks;
}

/** Forward, loss and backward of one batch: queries [B] and passages [B*G] as token ids. */
export async function gradStep(
  model: NativeModel,
  dim: number,
  queries: Int32Array[],
  passages: Int32Array[],
  o: GradStepOptions,
): Promise<GradStepResult> {
  const nat = trainNatives();
  const B = queries.length;
  const G = o.groupSize;
  if (passages.length !== B * G) throw new Error(`gradStep: ${passages.length} passages for ${B} queries × group ${G}`);
  const total = [...queries, ...passages].reduce((a, s) => a + s.length, 0);
  const keep = total <= o.chunkTokens;
  const budget = keep ? Infinity : o.chunkTokens;
  const qChunks = chunkByTokens(queries, budget, 0);
  const pChunks = chunkByTokens(passages, budget, qChunks.length);

  const embed = async (chunks: Chunk[], rows: number): Promise<Float32Array> => {
    const out = new Float32Array(rows * dim);
    for (const c of chunks) {
      const e = await nat.trainForward(model, c.id, c.tokens, c.cuSeqlens, keep);
      c.rows.forEach((r, j) => out.set(e.subarray(j * dim, (j + 1) * dim), r * dim));
    }
    return out;
  };
  try {
    const q = await embed(qChunks, B);
    const p = await embed(pChunks, B * G);
    const { loss, dq, dp } = nat.trainLoss(model, q, p, B, G, o.temperature, o.inBatchNegatives);
    const scale = o.gradScale ?? 1;
    const backward = async (chunks: Chunk[], grad: Float32Array): Promise<void> => {
      for (const c of chunks) {
        const d = new Float32Array(c.rows.length * dim);
        c.rows.forEach((r, j) => {
          for (let i = 0; i < dim; i++) d[j * dim + i] = grad[r * dim + i]! * scale;
        });
        await nat.trainBackward(model, c.id, c.tokens, c.cuSeqlens, d);
      }
    };
    await backward(qChunks, dq);
    await backward(pChunks, dp);
    return { loss, tokens: total, recomputed: keep ? 0 : qChunks.length + pChunks.length };
  } finally {
    nat.trainRelease(model);
  }
}
