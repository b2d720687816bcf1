// One contrastive step's loss and gradients, GradCache style (DESIGN.md §2):
//   1. embeddings of every chunk of the batch's texts, queries then passages (chunks cut in order by a
//      token budget: a batch within it is one chunk, so one forward and one backward pass over the
//      weights, not one for the queries and one for the passages);
//   2. InfoNCE over the whole batch → loss and d loss / d embeddings;
//   3. each chunk's backward seeded by its slice of those gradients. When the whole step fits in one
//      chunk budget the activations of step 1 are kept and reused (no recompute); otherwise each
//      chunk's forward is re-run during its backward, so memory holds one chunk's activations.
// Embeddings and their gradients stay on the backend (the device, on CUDA); the loss joins the
// native pending loss. Gradients accumulate in the native gradient buffer; the optimizer step is
// separate and reads the pending loss back with the gradient norm (accumulateGradients), or gradStep
// reads each batch's loss at once.
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

export interface AccumulateResult {
  /** Real tokens processed (queries + passages). */
  tokens: number;
  /** Chunks: forward and backward passes over the weights (1 for a batch within the chunk budget). */
  chunks: number;
  /** Chunks whose forward was recomputed during backward. */
  recomputed: number;
}

export interface GradStepResult extends AccumulateResult {
  loss: number;
}

interface Chunk {
  id: number;
  rows: number[]; // indices into the batch's texts (queries, then passages)
  tokens: Int32Array;
  cuSeqlens: Int32Array;
}

/** Splits sequences (in order) into chunks of at most `budget` tokens (a longer single one alone), with ids 0, 1, .... */
export function chunkByTokens(seqs: Int32Array[], budget: number): Chunk[] {
  const chunks: Chunk[] = [];
  let cur: number[] = [];
  let tokens = 0;
  const flush = (): void => {
    if (cur.length === 0) return;
    const packed = packBatch(cur.map((i) => seqs[i]!));
    chunks.push({ id: chunks.length, rows: cur, tokens: packed.tokens, cuSeqlens: packed.cuSeqlens });
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

/**
 * Forward, loss and backward of one batch: queries [B] and passages [B*G] as token ids. The loss is
 * left pending on the backend (the optimizer step's result carries it): nothing is read back.
 */
export async function accumulateGradients(
  model: NativeModel,
  queries: Int32Array[],
  passages: Int32Array[],
  o: GradStepOptions,
): Promise<AccumulateResult> {
  const nat = trainNatives();
  const B = queries.length;
  const G = o.groupSize;
  if (passages.length !== B * G) throw new Error(`gradStep: ${passages.length} passages for ${B} queries × group ${G}`);
  const total = [...queries, ...passages].reduce((a, s) => a + s.length, 0);
  const keep = total <= o.chunkTokens;
  const budget = keep ? Infinity : o.chunkTokens;
  // chunks hold consecutive rows, so their embeddings end to end are the batch's (trainLossChunks)
  const all = chunkByTokens([...queries, ...passages], budget);
  try {
    for (const c of all) await nat.trainForward(model, c.id, c.tokens, c.cuSeqlens, keep, false);
    nat.trainLossChunks(model, Int32Array.from(all.map((c) => c.id)), B, G, o.temperature, o.inBatchNegatives, o.gradScale ?? 1);
    for (const c of all) await nat.trainBackward(model, c.id, c.tokens, c.cuSeqlens);
    return { tokens: total, chunks: all.length, recomputed: keep ? 0 : all.length };
  } finally {
    nat.trainRelease(model);
  }
}

/** accumulateGradients, then this batch's loss read back. */
export async function gradStep(
  model: NativeModel,
  queries: Int32Array[],
  passages: Int32Array[],
  o: GradStepOptions,
): Promise<GradStepResult> {
  const nat = trainNatives();
  nat.trainTakeLoss(model); // a loss left pending by an earlier batch is not this one's
  const r = await accumulateGradients(model, queries, passages, o);
  return { ...r, loss: nat.trainTakeLoss(model) };
}
