// The CPU's training step (native/cpu/cpu_step.cpp) reads, clips, steps and clears only the embedding
// table's rows that its batches named (and, in AdamW, the rows whose moments are not zero yet), where
// the step through the op table (L2E_CPU_STEP=ops) goes over every row. The two must agree bit for bit:
// each step's loss, gradient norm and skip, and in the end every weight and moment. The steps below
// name some rows, then others (rows with moments but no gradient), clip and do not, decay the table
// once, and take host writes: moments in rows no batch named, gradients there (added to by the next
// backward), and a NaN gradient there, which must skip the step as the whole-table norm does.
import { afterEach, describe, expect, it } from 'vitest';

import { initRandomWeights, type NativeModel, type NativeModelConfig } from '../src/model/embedding-model.js';
import type { OptimizerHyper, StepOutcome, TrainNatives } from '../src/train/native-train.js';
import { Rng } from '../src/util/random.js';
import { testingAddon } from './helpers/testing-addon.mjs';
import { oneChunkStep } from '../bench/lib/train-step.mjs';

interface StepAddon extends TrainNatives {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
}

const a = testingAddon<StepAddon>();
const cfg: NativeModelConfig = { vocab: 512, hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 16, dense: 32, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true };
const B = 4, G = 2; // 4 queries, 8 passages: one chunk of 12 texts
const H = cfg.hidden;

interface Batch { ids: Int32Array; cu: Int32Array }
/** Texts of 5 to 14 tokens drawn from rows [lo, hi) of the table. */
function batch(seed: number, lo: number, hi: number): Batch {
  const rng = new Rng(seed, 3);
  const lens = Array.from({ length: B * (1 + G) }, () => 5 + Math.floor(rng.next() * 10));
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => (cu[i + 1] = cu[i]! + l));
  const ids = new Int32Array(cu[lens.length]!);
  for (let i = 0; i < ids.length; i++) ids[i] = lo + Math.floor(rng.next() * (hi - lo));
  return { ids, cu };
}
const low = [batch(1, 0, 200), batch(2, 0, 200)], mid = [batch(3, 150, 300), batch(4, 150, 300)];
const unnamed = [320, 400, 511]; // rows no batch names

const hyper = (step: number, o: Partial<OptimizerHyper> = {}): OptimizerHyper => ({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0, step, ...o });

/** Row r of the table (embed_tokens.weight, the layout's first tensor) set to `value` in a copy of buf. */
function withRows(buf: Float32Array, rows: number[], value: (i: number) => number): Float32Array {
  const out = buf.slice();
  for (const r of rows) for (let i = 0; i < H; i++) out[r * H + i] = value(i);
  return out;
}

interface Run { outcomes: StepOutcome[]; state: Float32Array[]; table0: Float32Array; table: Float32Array }
async function run(mode: 'rows' | 'ops'): Promise<Run> {
  process.env['L2E_CPU_STEP'] = mode;
  const m = new a.NativeModel(cfg, 'cpu');
  try {
    initRandomWeights(m, H, 11);
    const table0 = m.getTensor('embed_tokens.weight');
    a.trainInit(m);
    const outcomes: StepOutcome[] = [];
    const step = async (b: Batch, h: OptimizerHyper): Promise<void> => {
      outcomes.push(await oneChunkStep(a, m, b.ids, b.cu, B, G, h, 0.05));
    };
    await step(low[0]!, hyper(1));
    await step(low[1]!, hyper(2, { maxGradNorm: 0.05 })); // clipped
    await step(mid[0]!, hyper(3)); // rows 0-149 have moments and no gradient
    await step(mid[1]!, hyper(4, { weightDecay: 0.01, maxGradNorm: 0.05 })); // every row decays
    // moments written into rows no batch named: AdamW must move them
    const mBuf = a.trainGetBuffer(m, 'm'), vBuf = a.trainGetBuffer(m, 'v');
    a.trainSetBuffer(m, 'm', withRows(mBuf, unnamed.slice(0, 2), (i) => (i % 3) * 1e-3 - 1e-3));
    a.trainSetBuffer(m, 'v', withRows(vBuf, unnamed.slice(0, 2), (i) => (i % 5) * 1e-6));
    await step(low[0]!, hyper(5));
    // gradients written into an unnamed row, which the next backward adds to
    a.trainSetBuffer(m, 'grads', withRows(new Float32Array(a.trainGetBuffer(m, 'grads').length), [unnamed[2]!], (i) => (i - 32) * 1e-2));
    await step(mid[0]!, hyper(6, { maxGradNorm: 0.05 }));
    // a NaN there: the norm is NaN, the step skipped
    a.trainSetBuffer(m, 'grads', withRows(new Float32Array(a.trainGetBuffer(m, 'grads').length), [unnamed[2]!], (i) => (i === 7 ? NaN : 0)));
    outcomes.push(await a.trainStep(m, hyper(7)));
    await step(low[1]!, hyper(7));
    const state = [...m.params().map((p) => m.getTensor(p.name)), a.trainGetBuffer(m, 'm'), a.trainGetBuffer(m, 'v')];
    return { outcomes, state, table0, table: m.getTensor('embed_tokens.weight') };
  } finally {
    m.dispose();
  }
}

const saved = process.env['L2E_CPU_STEP'];
afterEach(() => {
  if (saved === undefined) delete process.env['L2E_CPU_STEP'];
  else process.env['L2E_CPU_STEP'] = saved;
});

const bytes = (t: Float32Array): Buffer => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

describe('CPU training step', () => {
  it("skipping the table's unnamed rows gives the op table's losses, norms, weights and moments bit for bit", async () => {
    const rows = await run('rows'), ops = await run('ops');
    expect(rows.outcomes.map((o) => o.skipped)).toEqual([false, false, false, false, false, false, true, false]);
    expect(rows.outcomes.slice(0, 6).every((o) => Number.isFinite(o.loss) && o.gradNorm > 0.05)).toBe(true); // clipping acts
    expect(rows.outcomes).toEqual(ops.outcomes);
    expect(rows.state.length).toBe(ops.state.length);
    rows.state.forEach((t, i) => {
      expect(t.every(Number.isFinite), `tensor ${i}`).toBe(true);
      expect(bytes(t).equals(bytes(ops.state[i]!)), `tensor ${i}`).toBe(true);
    });
    // the rows with written moments moved, and so did the one with a written gradient; a row no batch
    // named and nothing written to moved only by step 4's weight decay
    const row = (t: Float32Array, r: number): Float32Array => t.subarray(r * H, (r + 1) * H);
    for (const r of unnamed) expect(bytes(row(rows.table, r)).equals(bytes(row(rows.table0, r))), `row ${r}`).toBe(false);
    const decay = Math.fround(1 - 1e-3 * 0.01);
    expect(Array.from(row(rows.table, 450))).toEqual(Array.from(row(rows.table0, 450), (x) => Math.fround(x * decay)));
  });

  // An encode packs the CPU's weights in place for its GEMM (Model::pack_weights); the training calls
  // between which it may run must each find them in nn.Linear's layout again. The step did not (it
  // stepped the packed weights with the gradients' layout): an encode during fit() scrambled them.
  it.each(['rows', 'ops'] as const)('encodes between the calls of a step (%s) leave its losses, weights and moments as without them, bit for bit', async (mode) => {
    process.env['L2E_CPU_STEP'] = mode;
    const other = batch(9, 0, 512);
    const train = async (encodeBetween: boolean): Promise<{ outcomes: StepOutcome[]; state: Float32Array[] }> => {
      const m = new a.NativeModel(cfg, 'cpu');
      try {
        initRandomWeights(m, H, 11);
        a.trainInit(m);
        const between = async (): Promise<void> => {
          if (encodeBetween) expect((await m.encode(other.ids, other.cu)).embeddings.every(Number.isFinite)).toBe(true);
        };
        const outcomes: StepOutcome[] = [];
        for (const [n, b] of [low[0]!, mid[0]!, low[1]!].entries()) {
          await between();
          await a.trainForward(m, 0, b.ids, b.cu, true, false);
          await between();
          a.trainLossChunks(m, Int32Array.from([0]), B, G, 0.05, true, 1);
          await a.trainBackward(m, 0, b.ids, b.cu);
          await between();
          a.trainRelease(m);
          outcomes.push(await a.trainStep(m, hyper(n + 1, { maxGradNorm: 0.05 })));
        }
        await between();
        return { outcomes, state: [...m.params().map((p) => m.getTensor(p.name)), a.trainGetBuffer(m, 'm'), a.trainGetBuffer(m, 'v')] };
      } finally {
        m.dispose();
      }
    };
    const plain = await train(false), interleaved = await train(true);
    expect(interleaved.outcomes).toEqual(plain.outcomes);
    plain.state.forEach((t, i) => expect(bytes(t).equals(bytes(interleaved.state[i]!)), `tensor ${i}`).toBe(true));
  });

  it('L2E_CPU_STEP other than rows, ops or unset: the model is refused, naming the setting', () => {
    process.env['L2E_CPU_STEP'] = 'sparse';
    expect(() => new a.NativeModel(cfg, 'cpu')).toThrow(
      'L2E_CPU_STEP=sparse: expected rows (the default: the embedding table\'s unused rows skipped) or ops (every row, each step)',
    );
    for (const v of ['', 'rows', 'ops']) {
      process.env['L2E_CPU_STEP'] = v;
      new a.NativeModel(cfg, 'cpu').dispose();
    }
  });
});
