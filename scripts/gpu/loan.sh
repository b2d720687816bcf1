#!/usr/bin/env bash
# The one prepared call of a GPU loan (after scripts/gpu/pack.sh; carry .gpu and dist), about 6 minutes
# of an H200, everything under $OUT (default /tmp/l2e-gpu):
#   1. run.sh all: the GPU suites, our rows, the tile-variant sweep (sm80; sm90wg2 and sm90pp, whose
#      128-key variants decide the hd-128 default; the wgmma backward against the default backward),
#      the reference stack and the ratio table;
#   2. the recipe step's profile (host time per call, device time per op) with the block arena;
#   3. the same with L2E_CUDA_POOL=nosplit (each block its own cudaMalloc, the allocator before it).
#   bash scripts/gpu/loan.sh          (run the call with timeout_s 600)
# Time: a call may run 600 s, less when the machine's start took device time. run.sh's stages share
# RUN_S (default 380) by its DEADLINE, which keeps time for our rows and the reference stack whatever
# an earlier stage does; each profile has STEP_S (default 50). At most about 570 s: that, the unpacking
# (about 10 s), and the floors of the stages once the deadline has passed (10 s each for our rows, their
# retry and the reference stack; 10 s each for the sweep's 5 kinds). (All of run.sh took 168 s on the
# H200 of 2026-11-30.)
# Files: a call brings back at most 8 from $OUT. run.sh leaves env.txt, gpu-tests.log, ours.json,
# ours.log, anchor.json, ref.log, results/<run>.json (and ours-sm80.json if our bench faulted); the
# profiles go to the end of ours.log (our bench's log), not to files of their own.
set -uo pipefail
cd "$(dirname "$0")/../.."
RES=${OUT:-/tmp/l2e-gpu}
mkdir -p "$RES"
DEADLINE=$(( $(date +%s) + ${RUN_S:-380} )) bash scripts/gpu/run.sh all
profile_out=$(mktemp -d)
for pool in arena nosplit; do
  echo "== recipe step profile, device pool: $pool"
  if [ "$pool" = nosplit ]; then export L2E_CUDA_POOL=nosplit; fi
  OUT=$profile_out STEP_S=${STEP_S:-50} bash scripts/gpu/profile.sh step > /dev/null
  { echo "== recipe step profile, device pool: $pool"; cat "$profile_out/step-profile.log"; } >> "$RES/ours.log"
  grep -E "steps/s|wall|device time" "$profile_out/step-profile.log"
done
rm -rf "$profile_out"
files=$(find "$RES" -type f | wc -l)
echo "== $files files under $RES$([ "$files" -le 8 ] || echo ": over the 8 a call brings back, some will not come")"
