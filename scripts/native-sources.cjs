#!/usr/bin/env node
// The one list of native sources for the CPU addon, shared by binding.gyp (node-gyp) and checked
// against CMakeLists.txt's glob by test/build-sources.test.ts. Every .cpp under native/{core,cpu,addon}.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const dirs = ['native/core', 'native/cpu', 'native/addon'];

function nativeSources() {
  const out = [];
  for (const d of dirs) {
    const abs = path.join(root, d);
    if (!fs.existsSync(abs)) continue;
    for (const f of fs.readdirSync(abs).sort()) if (f.endsWith('.cpp')) out.push(`${d}/${f}`);
  }
  return out;
}

module.exports = { nativeSources, dirs };
if (require.main === module) process.stdout.write(nativeSources().join('\n') + '\n');
