// llama.cpp as a peer, through node-llama-cpp (an optional dev dependency): CPU only, its prebuilt binary
// only (build: 'never': nothing is downloaded or compiled; its postinstall is off through package.json
// "config" and "allowScripts"). A missing package or binary is a reason to skip, never a failure.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = 'node-llama-cpp';

/**
 * The llama.cpp runtime, or why not: `{ llama, version }` or `{ skip: reason }`.
 * @param {{ threads?: number }} [options]
 */
export async function loadLlamaCpp(options = {}) {
  let mod;
  try {
    mod = await import(PACKAGE);
  } catch (err) {
    return { skip: `${PACKAGE} is not installed (${firstLine(err)}); install the dev dependencies with npm ci` };
  }
  const version = packageVersion();
  try {
    const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: options.threads ?? 0 });
    return { llama, version };
  } catch (err) {
    return { skip: `${PACKAGE} ${version} has no usable prebuilt llama.cpp binary here (${firstLine(err)})` };
  }
}

/** The installed package's version (its exports do not include package.json): from the folder above its entry. */
function packageVersion() {
  try {
    let dir = dirname(fileURLToPath(import.meta.resolve(PACKAGE)));
    for (; dir !== dirname(dir); dir = dirname(dir)) {
      const file = join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      if (pkg.name === PACKAGE) return String(pkg.version);
    }
  } catch {
    // the version is only reported
  }
  return 'unknown';
}

function firstLine(err) {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}

/**
 * Opens a GGUF for embeddings: a context that takes one sequence of up to `maxTokens` tokens in one
 * batch, on `threads` CPU threads. Returns { embed(tokens) → Float64Array (the pooled hidden state), dispose() }.
 * llama.cpp prepends BOS itself when the file says add_bos_token and the sequence does not start with it.
 */
export async function openEmbedder(llama, modelPath, { threads, maxTokens }) {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const size = maxTokens + 1; // the context must be longer than the input
  const context = await model.createEmbeddingContext({ contextSize: size, batchSize: size, threads });
  return {
    model,
    async embed(tokens) {
      const e = await context.getEmbeddingFor(Array.from(tokens));
      return Float64Array.from(e.vector);
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}
