#!/usr/bin/env node
// prebuildify has no cmake-js backend: it runs `<node-gyp> rebuild --target=… --arch=… --release`
// and then collects build/Release/*.node. This stand-in, passed as --node-gyp, runs cmake-js instead
// (CMakeLists.txt; the CUDA target when L2E_CUDA=1). prebuildify's arguments are not needed: we build
// for the running Node with N-API, which every Node since 8 loads. This is the CPU prebuilt: CUDA is
// off (the CUDA prebuilt has its own script, prebuildify-cuda.cjs).
'use strict';
const { cmakeRebuild } = require('./cmake-rebuild.cjs');

process.exit(cmakeRebuild(false));
