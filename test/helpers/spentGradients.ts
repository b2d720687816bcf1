// An optimizer step spends the gradients (native/core/train_state.cpp): the next backward writes them
// (a GEMM with beta 0: no zeroing pass, their old values never read) except the embedding table's,
// which the step zeroes. Checked the same way on every device (test/optimizer-step.test.ts on the
// CPU, test/gpu/step-sync.test.ts on CUDA): after a step the gradients read back as zeros; a batch's
// gradients after two spent steps are those a fresh training state computes for it; a step with no
// backward since the last one sees a zero gradient.
import { expect } from 'vitest';
import type { NativeModel } from '../../src/model/embedding-model.js';
import { accumulateGradients } from '../../src/train/grad-step.js';
import { trainNatives, type OptimizerHyper } from '../../src/train/native-train.js';
import { Rng } from '../../src/util/random.js';
import { relError } from './fixture.js';

/** `model` must have a training state with no gradients yet (trainInit) and vocab > 2. */
export async function checkSpentGradients(model: NativeModel, vocab: number): Promise<void> {
  const nat = trainNatives();
  const rng = new Rng(11, 1);
  const text = (): Int32Array => Int32Array.from({ length: 2 + Math.floor(rng.next() * 6) }, () => 1 + Math.floor(rng.next() * (vocab - 1)));
  const batch = (): [Int32Array[], Int32Array[]] => [[text(), text()], [text(), text(), text(), text()]];
  const backward = (b: [Int32Array[], Int32Array[]]) =>
    accumulateGradients(model, b[0], b[1], { groupSize: 2, temperature: 0.05, inBatchNegatives: true, chunkTokens: 1 << 20 });
  // lr 0: the weights stay as they are, so a batch's gradients are the same at every step
  let step = 1;
  const spend = async (): Promise<number> => (await nat.trainStep(model, { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0, step: step++ } satisfies OptimizerHyper)).gradNorm;
  const a = batch(), b = batch();

  await backward(b);
  const fresh = nat.trainGetBuffer(model, 'grads');
  expect(fresh.some((x) => x !== 0) && fresh.every(Number.isFinite), "b's gradients: finite, not all zero").toBe(true);
  expect(await spend()).toBeGreaterThan(0);
  expect(nat.trainGetBuffer(model, 'grads').every((x) => x === 0), 'gradients after a step').toBe(true);
  await backward(a);
  await spend();
  await backward(b);
  const again = nat.trainGetBuffer(model, 'grads');
  // the same operations on the same inputs; the bound leaves room for a GPU's atomic additions in any order
  expect(relError(again, fresh), "b's gradients after two spent steps vs a fresh state's").toBeLessThan(1e-6);
  await spend();
  expect(await spend(), 'the norm of a step with no backward since the last one').toBe(0);
}
