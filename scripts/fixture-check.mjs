#!/usr/bin/env node
// Fixture harness: node scripts/fixture-check.mjs <fixtureDir> <out.safetensors>
// Loads the model folder, tokenises case.json's queries and passages with its tokenizer (exits
// non-zero naming the first difference from q_ids / p_ids), encodes them, and writes float32
// tensors q_emb [B,P] and p_emb [B*G,P] (plus loss and grad.<name> once training is built).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFixtureCase } from '../dist/fixture.js';

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  process.stderr.write('usage: node scripts/fixture-check.mjs <fixtureDir> <out.safetensors>\n');
  process.exit(2);
}
try {
  const fx = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8'));
  const summary = await runFixtureCase(dir, fx, out);
  process.stdout.write(`${summary}\n`);
} catch (err) {
  process.stderr.write(`fixture-check: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
