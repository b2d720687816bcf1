// `cmake-js rebuild --out build` for the running Node, with the CUDA target on or off: shared by
// the CPU and the CUDA prebuild scripts. Returns the exit status (1 when cmake-js did not exit).
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..');

function cmakeRebuild(cuda) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const r = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--out', 'build'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, L2E_CUDA: cuda ? '1' : '0' },
  });
  return r.status === null ? 1 : r.status;
}

module.exports = { cmakeRebuild, root };
