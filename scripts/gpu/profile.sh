#!/usr/bin/env bash
# A short diagnostic run on the GPU machine (after scripts/gpu/pack.sh, like run.sh): where the recipe
# step's time goes (bench/gpu-bench.mjs --profile), then Nsight Compute on the attention kernels at
# S = 8192 (d 128, causal, 2 sequences, 32 heads): the sm90 and sm80 forwards and the backward.
#   bash scripts/gpu/profile.sh [step|ncu|all]      (results under $OUT, default /tmp/l2e-gpu)
set -uo pipefail
cd "$(dirname "$0")/../.."
source .gpu/on-device.sh
source scripts/gpu/cublas-path.sh
RES=${OUT:-/tmp/l2e-gpu}
mkdir -p "$RES"
export NO_COLOR=1 L2E_ADDON=$PWD/build/Release/l2e.node
if [ -z "${L2E_TESTING_ADDON:-}" ]; then
  mkdir -p build/Release/testing
  xz -dc .gpu/testing/l2e_testing.node.xz > build/Release/testing/l2e_testing.node
  export L2E_TESTING_ADDON=$PWD/build/Release/testing/l2e_testing.node
fi
PHASE=${1:-all}
if [ "$PHASE" != ncu ]; then
  # (timeout -k 5: a process stuck in the driver may ignore SIGTERM; its exit status ends the log, for loan.sh)
  POOLS_DIR=$PWD/.gpu/shared/data/pools timeout -k 5 "${STEP_S:-150}" node bench/gpu-bench.mjs --profile > "$RES/step-profile.log" 2>&1
  echo "(profile exit $?)" >> "$RES/step-profile.log"; cat "$RES/step-profile.log"
fi
if [ "$PHASE" != step ]; then
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [ -n "$ncu" ] || { echo "no ncu"; exit 0; }
  attn() {  # kernel backward
    node --input-type=module -e "
      import { testingAddon } from './test/helpers/testing-addon.mjs';
      const r = testingAddon().cudaBenchAttention({ lens: [8192, 8192], nh: 32, nkv: 32, hd: 128, reps: 1, backward: $2, kernel: '$1' });
      console.log('$1 backward=$2', r.tflops.toFixed(1), 'TFLOP/s');"
  }
  for run in "sm90 false flash_fwd_sm90" "sm80 false flash_fwd" "sm80 true flash_bwd"; do
    set -- $run
    echo "== ncu: $1 backward=$2 kernels matching $3" >> "$RES/ncu.txt"
    timeout -k 5 "${NCU_S:-60}" "$ncu" --clock-control none -k "regex:$3" -c 1 \
      --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
      bash -c "$(declare -f attn); attn $1 $2" >> "$RES/ncu.txt" 2>&1
    echo "(exit $?)" >> "$RES/ncu.txt"
  done
  grep -E "^== ncu|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Dynamic Shared|Block Limit|Issue Slots Busy|Warp Cycles Per Issued|ERROR|error" "$RES/ncu.txt"
fi
