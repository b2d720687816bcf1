#!/usr/bin/env node
// The one list of native sources for the CPU addon, shared by binding.gyp (node-gyp) and checked
// against CMakeLists.txt's glob by test/build-sources.test.ts. Every .cpp under native/{core,cpu,addon};
// `node scripts/native-sources.cjs testing` lists the test addon's (those plus native/testing).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const dirs = ['native/core', 'native/cpu', 'native/addon'];

// The test addon's own folder: its sources are built into l2e_testing.node (with nativeSources()),
// never into the shipped addon; the published package has no such folder.
const testingDir = 'native/testing';

function listCpp(dirList) {
  const out = [];
  for (const d of dirList) {
    const abs = path.join(root, d);
    if (!fs.existsSync(abs)) continue;
    for (const f of fs.readdirSync(abs).sort()) if (f.endsWith('.cpp')) out.push(`${d}/${f}`);
  }
  return out;
}

function nativeSources() {
  return listCpp(dirs);
}

/** The test addon's sources: the addon's plus native/testing's (empty when that folder is absent). */
function testingSources() {
  const own = listCpp([testingDir]);
  return own.length ? [...nativeSources(), ...own] : [];
}

module.exports = { nativeSources, testingSources, dirs, testingDir };
if (require.main === module) {
  const list = process.argv[2] === 'testing' ? testingSources() : nativeSources();
  process.stdout.write(list.join('\n') + '\n');
}
