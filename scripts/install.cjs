#!/usr/bin/env node
// `npm install` hook: use a prebuilt binary (prebuilds/<platform>-<arch>/, made by `npm run prebuildify`)
// when one loads on this machine; otherwise build from source with node-gyp (binding.gyp), saying why.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..');

function tryPrebuilt() {
  let file;
  try {
    file = require('node-gyp-build').resolve(root);
  } catch (err) {
    return { ok: false, why: `no prebuilt binary for ${process.platform}-${process.arch}` };
  }
  if (!file || !file.includes(`${path.sep}prebuilds${path.sep}`)) {
    return { ok: false, why: `no prebuilt binary for ${process.platform}-${process.arch}` };
  }
  // load it in a child process: a broken binary must not take this process down. Without the user's
  // L2E_CPU_ISA: a level this build machine lacks would fail the load of a good binary (it is a choice
  // made when the library runs, said then)
  const env = { ...process.env };
  delete env.L2E_CPU_ISA;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8', env });
  if (r.status !== 0) {
    const ended = r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
    const msg = (r.stderr || '').trim().split('\n').find((l) => /Error|error/.test(l)) || ended;
    return { ok: false, why: `the prebuilt binary ${path.relative(root, file)} does not load (${msg.trim()})` };
  }
  return { ok: true, file };
}

function buildFromSource(why) {
  console.error(`llama2-embedding: ${why}; building the native addon from source with node-gyp (needs python3, make and a C++17 compiler)`);
  // npm passes its bundled node-gyp in npm_config_node_gyp; fall back to one on the PATH
  const gyp = process.env.npm_config_node_gyp;
  const cmd = gyp ? process.execPath : 'node-gyp';
  // --jobs max: one compiler per core (node-gyp's default is one in all: 111 s against 62 s on 2 cores)
  const args = [...(gyp ? [gyp] : []), 'rebuild', '--jobs', 'max'];
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) {
    // node-gyp itself could not be run (not on the PATH): not a compiler's fault
    console.error(`llama2-embedding: could not run ${cmd === 'node-gyp' ? 'node-gyp' : `node-gyp (${gyp})`}: ${r.error.message}. Install it (npm install -g node-gyp) or run the install through npm.`);
    process.exit(1);
  }
  if (r.signal) {
    console.error(`llama2-embedding: the source build was stopped (${r.signal})`);
    process.exit(1);
  }
  if (r.status !== 0) {
    console.error(
      'llama2-embedding: the source build failed. Install a C++ compiler, make and python3 ' +
        '(Debian/Ubuntu: apt-get install build-essential python3), or use a platform with a prebuilt binary.',
    );
    process.exit(r.status || 1);
  }
}

// npm sets "true" for --build-from-source; one set by hand may be "1" (anything but empty, "false", "0")
const fromSource = process.env.npm_config_build_from_source;
if (fromSource !== undefined && !['', 'false', '0'].includes(fromSource.trim().toLowerCase())) {
  buildFromSource(fromSource === 'true' ? '--build-from-source was given' : `npm_config_build_from_source=${fromSource}`);
} else {
  const p = tryPrebuilt();
  if (p.ok) console.error(`llama2-embedding: using the prebuilt binary ${path.relative(root, p.file)}`);
  else buildFromSource(p.why);
}
