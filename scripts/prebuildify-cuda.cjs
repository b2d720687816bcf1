#!/usr/bin/env node
// Builds the CUDA-enabled addon with cmake-js (L2E_CUDA=1) and stores it as the CUDA prebuilt,
// prebuilds/cuda/<platform>-<arch>/l2e.node, which src/native.ts prefers when a GPU is usable.
// (node-gyp-build ignores that folder: "cuda" is no platform.) Run after `npm run prebuildify`:
// it leaves build/ holding the CUDA build.
'use strict';
const { copyFileSync, mkdirSync } = require('fs');
const path = require('path');
const { cmakeRebuild, root } = require('./cmake-rebuild.cjs');

const status = cmakeRebuild(true);
if (status !== 0) process.exit(status);
const dir = path.join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
copyFileSync(path.join(root, 'build', 'Release', 'l2e.node'), path.join(dir, 'l2e.node'));
console.error(`CUDA prebuilt written to ${path.relative(root, dir)}/l2e.node`);
