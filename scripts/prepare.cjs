#!/usr/bin/env node
// `prepare`: compile the TypeScript in a development checkout. An installed package already ships
// dist/ (and has neither tsconfig.build.json nor typescript), so there it does nothing.
'use strict';
const { existsSync } = require('fs');
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..');
if (!existsSync(path.join(root, 'tsconfig.build.json'))) process.exit(0);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  console.error('llama2-embedding: typescript is not installed; skipping the TypeScript build (dist/ is used as is)');
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
