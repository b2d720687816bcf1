// The fixture harness's work (scripts/fixture-check.mjs): reproduce what transformers computed for a
// fixture folder's case.json — embeddings, the InfoNCE loss and every parameter's gradient — and
// write our tensors under the reference's names for comparison.
import { EmbeddingModel, packBatch } from './model/embedding-model.js';
import { writeSafetensors, type TensorToWrite } from './model/safetensors.js';
import { gradStep } from './train/grad-step.js';
import { trainNatives } from './train/native-train.js';

export interface FixtureCaseInput {
  queries: string[];
  passages: string[];
  group_size: number;
  temperature: number;
  max_len: number;
  q_ids?: number[][];
  p_ids?: number[][];
}

/** First difference between our ids and the reference's, as a message, or null. */
export function firstIdDifference(side: string, ours: Int32Array[], ref: number[][]): string | null {
  if (ours.length !== ref.length) return `${side}: ${ours.length} rows, reference has ${ref.length}`;
  for (let r = 0; r < ours.length; r++) {
    const a = ours[r]!;
    const b = ref[r]!;
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (a[i] !== b[i]) return `${side}[${r}] differs at token ${i}: ours ${a[i] ?? '(end)'}, reference ${b[i] ?? '(end)'}`;
    }
  }
  return null;
}

export async function runFixtureCase(dir: string, fx: FixtureCaseInput, outPath: string, device: 'cpu' | 'cuda' = 'cpu'): Promise<string> {
  const model = await EmbeddingModel.load(dir, { onNotice: () => {}, device });
  try {
    const qIds = model.tokenize(fx.queries, fx.max_len);
    const pIds = model.tokenize(fx.passages, fx.max_len);
    for (const [side, ours, ref] of [['q_ids', qIds, fx.q_ids], ['p_ids', pIds, fx.p_ids]] as const) {
      if (!ref) continue;
      const diff = firstIdDifference(side, ours, ref);
      if (diff) throw new Error(`token ids differ from case.json: ${diff}`);
    }
    const tensors: TensorToWrite[] = [];
    for (const [name, ids] of [['q_emb', qIds], ['p_emb', pIds]] as const) {
      const { tokens, cuSeqlens } = packBatch(ids);
      const { embeddings } = await model.native.encode(tokens, cuSeqlens);
      tensors.push({ name, dtype: 'F32', shape: [ids.length, model.dim], data: embeddings });
    }
    // loss and every parameter's gradient for the case's contrastive batch (in-batch negatives)
    const nat = trainNatives();
    nat.trainInit(model.native);
    const { loss } = await gradStep(model.native, qIds, pIds, {
      groupSize: fx.group_size,
      temperature: fx.temperature,
      inBatchNegatives: true,
      chunkTokens: Infinity,
    });
    tensors.push({ name: 'loss', dtype: 'F32', shape: [1], data: Float32Array.of(loss) });
    const grads = nat.trainGetBuffer(model.native, 'grads');
    for (const p of model.native.params()) {
      tensors.push({ name: `grad.${p.name}`, dtype: 'F32', shape: p.shape, data: grads.slice(p.offset, p.offset + p.numel) });
    }
    writeSafetensors(outPath, tensors);
    return `wrote q_emb, p_emb, loss (${loss.toFixed(6)}) and ${tensors.length - 3} gradients to ${outPath}`;
  } finally {
    model.dispose();
  }
}
