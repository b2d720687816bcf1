#!/usr/bin/env bash
# The one prepared call of a GPU loan (after scripts/gpu/pack.sh; carry .gpu and dist), about 6 minutes
# of an H200, each stage under its own time limit, everything under $OUT (default /tmp/l2e-gpu):
#   1. run.sh all: the GPU suites, our rows, the tile-variant sweep (sm80; sm90wg2 and sm90pp, whose
#      128-key variants decide the hd-128 default; the wgmma backward against the default backward),
#      the reference stack and the ratio table;
#   2. the recipe step's profile (host time per call, device time per op) with the block arena;
#   3. the same with L2E_CUDA_POOL=nosplit (each block its own cudaMalloc, the allocator before it).
#   bash scripts/gpu/loan.sh          (its stages' limits sum to under 10 minutes)
set -uo pipefail
cd "$(dirname "$0")/../.."
RES=${OUT:-/tmp/l2e-gpu}
mkdir -p "$RES"
bash scripts/gpu/run.sh all
for pool in arena nosplit; do
  echo "== recipe step profile, device pool: $pool"
  if [ "$pool" = nosplit ]; then export L2E_CUDA_POOL=nosplit; fi
  STEP_S=${STEP_S:-75} bash scripts/gpu/profile.sh step > /dev/null
  mv "$RES/step-profile.log" "$RES/step-profile-$pool.log"
  grep -E "steps/s|wall|device time" "$RES/step-profile-$pool.log"
done
