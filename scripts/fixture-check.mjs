#!/usr/bin/env node
// Fixture harness: node scripts/fixture-check.mjs <fixtureDir> <out.safetensors> [--device cpu|cuda]
// Loads the model folder, tokenises case.json's queries and passages with its tokenizer (exits
// non-zero naming the first difference from q_ids / p_ids), encodes them, and writes float32
// tensors q_emb [B,P] and p_emb [B*G,P], the loss and grad.<name> of every parameter.
// --device cuda runs the CUDA backend (a GPU, or the CPU emulation build named by L2E_ADDON).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFixtureCase } from '../dist/fixture.js';

const usage = 'usage: node scripts/fixture-check.mjs <fixtureDir> <out.safetensors> [--device cpu|cuda]\n';
const args = process.argv.slice(2);
let device = 'cpu';
const at = args.indexOf('--device');
if (at >= 0) {
  device = args[at + 1];
  args.splice(at, 2);
  if (device !== 'cpu' && device !== 'cuda') {
    process.stderr.write(`fixture-check: --device must be cpu or cuda, got ${device === undefined ? 'nothing' : `'${device}'`}\n${usage}`);
    process.exit(2);
  }
}
const [dir, out] = args;
if (!dir || !out || args.length > 2) {
  process.stderr.write(usage);
  process.exit(2);
}
try {
  const fx = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8'));
  const summary = await runFixtureCase(dir, fx, out, device);
  process.stdout.write(`${summary}\n`);
} catch (err) {
  process.stderr.write(`fixture-check: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
