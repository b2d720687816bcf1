// The golden fixture through the CUDA path: `scripts/fixture-check.mjs DIR OUT --device cuda` (on a
// GPU, or in the CPU emulation build named by L2E_ADDON) against the fixture's expected.safetensors
// (the fp32 reference): embeddings, loss and every parameter's gradient.
//
// Bounds: the CUDA backend holds weights and activations in bf16 (relative rounding 2^-9 each), so
// unlike the CPU harness (1e-4) it is held to bf16 precision:
//  - embeddings (q_emb, p_emb): ~2^-9 per rounding, a few roundings per layer through 2 layers and the
//    head, normwise: EMB = 2e-2 (measured in the emulation build: 7.2e-3 and 9.0e-3);
//  - loss: InfoNCE at temperature 0.02 multiplies the embeddings' error by 1/τ = 50 in the logits,
//    but the loss averages over the batch and its rows' errors partly cancel: LOSS = 1e-2 relative
//    (measured 1.5e-3);
//  - gradients: they flow back through the bf16 activations and are rounded in bf16 at every
//    backward activation (dx, dq, dk, dv), and d loss / d embeddings carries the 1/τ amplification:
//    GRAD = 3e-2 normwise per tensor (measured 9.1e-3 to 1.3e-2 over the 25 tensors). A wrong kernel (a sign, a missing term, a wrong tile) puts a
//    tensor's gradient off by O(1).
// Measured errors are appended to L2E_GPU_ERRORS when set (with the op suite's).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorF32 } from '../../src/model/safetensors.js';
import { hasTinyMha, relError, repoRoot, skipNote, tinyMha } from '../helpers/fixture.js';
import { makeTempDir } from '../helpers/tinyModel.js';
import { cudaDevice, emulated, gpu, gpuNote } from './gpu-helpers.js';

const EMB = 2e-2;
const LOSS = 1e-2;
const GRAD = 3e-2;

const script = join(repoRoot, 'scripts', 'fixture-check.mjs');
const built = existsSync(join(repoRoot, 'dist', 'fixture.js'));

function tensors(file: string): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const t of readSafetensorsHeader(file).tensors) m.set(t.name, readTensorF32(t));
  return m;
}

const note = !hasTinyMha ? skipNote('fixtures/tiny-mha') : built ? gpuNote : '(skipped: run `npm run build:ts` first)';

describe.skipIf(!gpu.usable || !hasTinyMha || !built)(`fixture harness on CUDA ${note}`, () => {
  it('--device cuda: embeddings, loss and every gradient within bf16 bounds of the fp32 reference', () => {
    const out = join(makeTempDir(), 'cuda.safetensors');
    const r = spawnSync(process.execPath, [script, tinyMha, out, '--device', cudaDevice], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const ours = tensors(out);
    const ref = tensors(join(tinyMha, 'expected.safetensors'));
    const grads = [...ref.keys()].filter((n) => n.startsWith('grad.'));
    expect(grads.length).toBeGreaterThan(0);
    // the harness writes these (the reference also holds hidden states and scores, not compared here)
    expect([...ours.keys()].sort()).toEqual(['loss', 'p_emb', 'q_emb', ...grads].sort());
    const measured: string[] = [];
    for (const name of ours.keys()) {
      const expected = ref.get(name)!;
      const bound = name === 'loss' ? LOSS : name.startsWith('grad.') ? GRAD : EMB;
      const err = relError(ours.get(name)!, expected);
      measured.push(JSON.stringify({ op: 'fixture tiny-mha', output: name, kind: 'normwise vs fp32 reference', error: err, bound, emulated }));
      expect(err, name).toBeLessThan(bound);
    }
    const file = process.env['L2E_GPU_ERRORS'];
    if (file) appendFileSync(file, measured.join('\n') + '\n');
  });

  it('--device with anything but cpu or cuda is a usage error naming the value', () => {
    const r = spawnSync(process.execPath, [script, tinyMha, join(makeTempDir(), 'x.safetensors'), '--device', 'tpu'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("fixture-check: --device must be cpu or cuda, got 'tpu'");
  });
});
