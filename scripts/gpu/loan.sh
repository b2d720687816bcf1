#!/usr/bin/env bash
# The one prepared call of a GPU loan (after scripts/gpu/pack.sh; carry .gpu and dist), about 6 minutes
# of an H200, everything under $OUT (default /tmp/l2e-gpu):
#   1. run.sh all: the GPU suites, our rows, the tile-variant sweep (the wgmma backward against the
#      default backward; sm90wg2 and sm90pp, whose 128-key variants decide the hd-128 default; sm80),
#      the reference stack and the ratio table;
#   2. the recipe step's profile (host time per call, device time per op) with the block arena;
#   3. the same with L2E_CUDA_POOL=nosplit (each block its own cudaMalloc, the allocator before it).
#   bash scripts/gpu/loan.sh          (run the call with timeout_s 600)
# Time: a call may run 600 s, less when the machine's start took device time. run.sh's stages share
# RUN_S (default 420) by its DEADLINE: each stage's limit keeps time for the ones after it (the
# reference stack 120 s, our attention rows 30 s more, our model rows 90 s more, each never-run test
# suite 30 s more), and a stage with under 10 s left is skipped, so run.sh ends by DEADLINE + 5 s (the
# last stage's `timeout -k 5` grace) + about 3 s (the tables). Each profile has STEP_S (default 50) + 5 s
# of grace + about 2 s of setup. At most: 420 + 8 + 2 x 57 = 542 s, under 570 s with room for a slow
# unpacking. With a call that got less than 600 s, pass RUN_S = its limit - 180.
# (All of run.sh took 168 s on the H200 of 2026-11-30.) Each stage's exit status and seconds go to the
# end of env.txt (the timeline, counted from this script's start): the figures to size the next loan's
# limits by.
# Files: a call brings back at most 8 from $OUT. run.sh leaves env.txt, gpu-tests.log, ours.json,
# ours.log, anchor.json, ref.log and results/<run>.json (7; its scratch files, a retry's rows among
# them, stay outside $OUT, and it deletes any *.tmp-<pid> a killed writer left); the profiles go to the
# end of ours.log (our bench's log), not to files of their own.
set -uo pipefail
cd "$(dirname "$0")/../.."
RES=${OUT:-/tmp/l2e-gpu}
mkdir -p "$RES"
export L2E_LOAN_T0=$(date +%s)
DEADLINE=$(( L2E_LOAN_T0 + ${RUN_S:-420} )) bash scripts/gpu/run.sh all
# exit 3: CUDA is not usable on this machine (run.sh said why, in env.txt too): the profiles would fail alike
if [ $? -eq 3 ]; then echo "== no recipe step profiles: CUDA is not usable here" >&2; exit 3; fi
# run.sh unpacked the test addon: the profiles load that copy
[ -f build/Release/testing/l2e_testing.node ] && export L2E_TESTING_ADDON=$PWD/build/Release/testing/l2e_testing.node
profile_out=$(mktemp -d)
for pool in arena nosplit; do
  echo "== recipe step profile, device pool: $pool"
  if [ "$pool" = nosplit ]; then export L2E_CUDA_POOL=nosplit; fi
  t=$(date +%s)
  OUT=$profile_out STEP_S=${STEP_S:-50} bash scripts/gpu/profile.sh step > /dev/null
  line="[+$(( $(date +%s) - L2E_LOAN_T0 )) s] recipe step profile, pool $pool: $(grep -o 'profile exit [0-9]*' "$profile_out/step-profile.log" 2>/dev/null || echo 'no log') after $(( $(date +%s) - t )) s"
  echo "$line" >> "$RES/env.txt"
  { echo "== recipe step profile, device pool: $pool"; cat "$profile_out/step-profile.log"; echo "$line"; } >> "$RES/ours.log"
  grep -E "steps/s|wall|device time" "$profile_out/step-profile.log"
  echo "$line"
done
rm -rf "$profile_out"
files=$(find "$RES" -type f | wc -l)
echo "== $files files under $RES$([ "$files" -le 8 ] || echo ": over the 8 a call brings back, some will not come")"
