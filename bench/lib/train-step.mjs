// The trainer's step (src/train/grad-step.ts: a batch within the chunk budget is one chunk, queries
// then passages, in-batch negatives) through the test addon's training hooks, on a packed batch (ids,
// cu) of B queries and B*G passages: forward keeping the activations, the loss and its gradients left
// on the backend, backward, release, the optimizer step with `hyper`. Nothing is read back but the
// step's outcome. Used by bench/lib/workloads.mjs (the recipe's step) and by the tests.
export async function oneChunkStep(addon, model, ids, cu, B, G, hyper, temperature = 0.02) {
  await addon.trainForward(model, 0, ids, cu, true, false);
  addon.trainLossChunks(model, Int32Array.from([0]), B, G, temperature, true, 1);
  await addon.trainBackward(model, 0, ids, cu);
  addon.trainRelease(model);
  return addon.trainStep(model, hyper);
}
