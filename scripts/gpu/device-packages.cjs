#!/usr/bin/env node
// Prints, one a line, the top-level entries of node_modules/ that a GPU-machine run does not need
// (scripts/gpu/pack.sh sets them aside while it packs, to keep a run under its size limit).
// Needed: the library's dependencies (src/, which the GPU suites and bench/gpu-bench.mjs load) and
// vitest (the test runner), with everything they depend on: dependencies, optionalDependencies and
// peerDependencies that are installed, each found as Node finds it (the nearest node_modules/ up the
// folders). Everything else (the type checker, the native build tools, the CPU bench peers, the
// browser and client test packages, type declarations) stays behind.
//   node scripts/gpu/device-packages.cjs [project root]
'use strict';
const { existsSync, readFileSync, readdirSync } = require('node:fs');
const { dirname, join, relative, resolve, sep } = require('node:path');

const root = resolve(process.argv[2] ?? join(__dirname, '..', '..'));
const top = join(root, 'node_modules');
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** The folder of package `name` as required from folder `from`, or null when not installed. */
function find(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dirname(dir) === dir) return null;
  }
}

/** node_modules/<name> or node_modules/@scope/<name>: the top-level entry holding a package folder. */
function topEntry(folder) {
  const parts = relative(top, folder).split(sep);
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

const own = readJson(join(root, 'package.json'));
const queue = [...Object.keys(own.dependencies ?? {}), 'vitest'].map((name) => ({ name, from: root }));
const seen = new Set();
const needed = new Set();
while (queue.length > 0) {
  const { name, from } = queue.pop();
  const folder = find(name, from);
  if (folder === null) {
    if (from === root) {
      console.error(`device-packages: ${name} is not installed in ${top} (run npm ci)`);
      process.exit(1);
    }
    continue; // an optional or peer dependency that is not installed
  }
  if (seen.has(folder)) continue;
  seen.add(folder);
  needed.add(topEntry(folder));
  const pkg = readJson(join(folder, 'package.json'));
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    for (const dep of Object.keys(pkg[field] ?? {})) queue.push({ name: dep, from: folder });
  }
}

for (const entry of readdirSync(top).sort()) {
  if (entry.startsWith('.')) continue; // .bin, .package-lock.json, .cache
  const names = entry.startsWith('@') ? readdirSync(join(top, entry)).sort().map((n) => `${entry}/${n}`) : [entry];
  for (const name of names) if (!needed.has(name)) console.log(name);
}
