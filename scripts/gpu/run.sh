#!/bin/bash
# The one GPU-machine run (no build there): GPU tests, our benchmarks, the reference Python stack on the
# same card, and a ratio table last.
# Prepare on the development machine:  npx cmake-js compile --out build   (nvcc present: CUDA on)
#                                      bash scripts/gpu/pack.sh   (checks the addon, then ../shared/gpu/pack.sh)
# Run on the GPU machine, from the repo root:  bash scripts/gpu/run.sh [tests|bench|all]
#   tests: the GPU test suites only; bench: ours + the reference stack + the table; all (default): both.
#   (all of it took 168 s on an H200 on 2026-11-30, the reference stack included; a command may run 10 min)
# Knobs: SKIP_TESTS=1, SKIP_OURS=1, SKIP_SWEEP=1, SKIP_REF=1, OUT=folder (default $OUT or /tmp/l2e-gpu),
#   TESTS_S / OURS_S / SWEEP_S / REF_S: each stage's time limit in seconds (default 420 / 200 / 120 / 330),
#   EXTRA="gpu-bench args" (EXTRA_S, EXTRA_KERNELS): more of our rows, in a process of their own, merged
#   into ours.json,
#   COMPILED_S=seconds (COMPILED_MODELS): the torch.compile reference too, last,
#   L2E_SHARED=folder: the shared fixtures and pools (default .gpu/shared, linked as ../shared).
#   DEADLINE=epoch seconds (scripts/gpu/loan.sh sets it): each stage's limit is also cut to what is left
#   before it less the time kept for the stages after it (keep_ours, keep_ref below), so that
#   a stage that hangs cannot leave the ratio table without its two halves,
#   L2E_CUDA_POOL=nosplit: the device pool without the block arena (each block its own cudaMalloc, the
#   policy before it), for a before/after of the recipe rows' cuda_mallocs_in_timed_steps and pool_reserved_peak_GiB.
# Stops at once, with the reason, when CUDA is not usable (driver, cuBLAS, an addon without CUDA or
# the emulation build): every GPU suite would only skip.
set -uo pipefail
cd "$(dirname "$0")/../.."
source .gpu/on-device.sh
# the tests find fixtures and pools at ../shared, as on the development machine
SHARED=${L2E_SHARED:-$PWD/.gpu/shared}
[ -d "$SHARED" ] || { echo "gpu-run: shared folder $SHARED not found (set L2E_SHARED)" >&2; exit 1; }
[ -e ../shared ] || ln -s "$SHARED" ../shared 2>/dev/null || echo "note: cannot link ../shared; fixture tests will skip"
export NO_COLOR=1 FORCE_COLOR=0  # plain test output in the logs
PHASE=${1:-all}
[ "$PHASE" = bench ] && SKIP_TESTS=1
[ "$PHASE" = tests ] && SKIP_OURS=1 && SKIP_REF=1
RES=${OUT:-/tmp/l2e-gpu}
mkdir -p "$RES"
# limit DEFAULT_S KEEP_S: a stage's time limit, DEFAULT_S, or less under DEADLINE so that KEEP_S seconds
# remain after it (at least 10 s); what DEADLINE keeps for our rows and for the reference stack:
keep_ours=90 keep_ref=120
limit() {
  if [ -z "${DEADLINE:-}" ]; then echo "$1"; return; fi
  local left=$(( DEADLINE - $(date +%s) - $2 ))
  [ "$left" -ge 10 ] || left=10
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}
export L2E_ADDON=${L2E_ADDON:-$PWD/build/Release/l2e.node}
# the test addon the GPU suites load (test/helpers/testing-addon.mjs), packed by gpu-pack.sh
if [ -z "${L2E_TESTING_ADDON:-}" ] && [ -f .gpu/testing/l2e_testing.node.xz ]; then
  mkdir -p build/Release/testing
  xz -dc .gpu/testing/l2e_testing.node.xz > build/Release/testing/l2e_testing.node
fi
export L2E_TESTING_ADDON=${L2E_TESTING_ADDON:-$PWD/build/Release/testing/l2e_testing.node}
source scripts/gpu/cublas-path.sh
node -e '
  const a = require(process.env.L2E_ADDON);
  const s = a.cudaStatus?.();
  console.log("addon cudaStatus:", JSON.stringify(s));
  const why = !s || !s.compiled ? "the addon has no CUDA backend (" + process.env.L2E_ADDON + ")"
    : s.emulated ? "the addon is the CPU emulation build"
    : !s.usable ? s.reason : "";
  if (why) { console.error("gpu-run: CUDA is not usable: " + why); process.exit(1); }
' || exit 1

# the card, driver and toolkit, and the shipped addon's sm_90a attention kernels: HGMMA (wgmma), no HMMA
{
  date -u
  nvidia-smi
  nvcc --version 2>&1 | tail -2
  if command -v cuobjdump >/dev/null; then
    cuobjdump -sass "$L2E_ADDON" | awk '
      /^arch = / { a90 = ($3 == "sm_90a") } /Fatbin ptx code/ { a90 = 0 }
      /Function :/ { fn = $3 }
      a90 && fn ~ /flash_fwd_sm90/ && /HGMMA/ { hg[fn]++ } a90 && fn ~ /flash_fwd_sm90/ && /[^A-Z]HMMA/ { hm[fn]++ }
      END { for (f in hg) print "SASS sm_90a " f ": " hg[f] " HGMMA, " (hm[f] + 0) " HMMA"; if (length(hg) == 0) print "SASS: no HGMMA in any flash_fwd_sm90 kernel" }'
  fi
} > "$RES/env.txt" 2>&1
grep '^SASS' "$RES/env.txt"
if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== GPU tests"
  # the SASS test compiles with nvcc (CPU only): it runs beside the GPU suites
  tests_s=$(limit "${TESTS_S:-420}" $((keep_ours + keep_ref)))
  timeout "$tests_s" node node_modules/vitest/vitest.mjs run test/cuda-build.test.ts test/cuda-compile.test.ts > "$RES/sass-test.log" 2>&1 &
  sass=$!
  timeout "$tests_s" node node_modules/vitest/vitest.mjs run test/gpu 2>&1 | tee "$RES/gpu-tests.log" | grep -v "^ *✓" | tail -60
  wait "$sass"
  echo "== test/cuda-build.test.ts test/cuda-compile.test.ts (exit $?)" | tee -a "$RES/gpu-tests.log"
  cat "$RES/sass-test.log" >> "$RES/gpu-tests.log" && rm -f "$RES/sass-test.log"
  grep -E "Test Files|Tests " "$RES/gpu-tests.log" | tail -4
fi
if [ -z "${SKIP_OURS:-}" ]; then
  echo "== ours"
  if ! POOLS_DIR=$SHARED/data/pools timeout "$(limit "${OURS_S:-200}" "$keep_ref")" node bench/gpu-bench.mjs --out "$RES/ours.json" > "$RES/ours.log" 2>&1; then
    tail -30 "$RES/ours.log"
    # a kernel fault ends the CUDA context: once more on the sm_80 attention kernel alone
    echo "== ours failed; again with L2E_CUDA_ATTENTION=sm80"
    L2E_CUDA_ATTENTION=sm80 GPU_BENCH_KERNELS=sm80 POOLS_DIR=$SHARED/data/pools timeout "$(limit "${OURS_S:-200}" "$keep_ref")" node bench/gpu-bench.mjs --out "$RES/ours-sm80.json" >> "$RES/ours.log" 2>&1
    [ -f "$RES/ours.json" ] || cp "$RES/ours-sm80.json" "$RES/ours.json" 2>/dev/null
  fi
  grep -v "^  " "$RES/ours.log" | tail -40
fi
if [ -z "${SKIP_OURS:-}" ] && [ -z "${SKIP_SWEEP:-}" ]; then
  echo "== attention tile variants: sm80, sm90wg2/sm90pp, the wgmma backward (gpu-bench --sweep: its figures join ours.json)"
  # a kind per process: a kernel fault (a sticky CUDA error) costs only its own kind's rows; each kind
  # gets an equal share of what is left (at least 10 s, so 50 s at most past the stage's limit)
  sweep_end=$(( $(date +%s) + $(limit "${SWEEP_S:-120}" "$keep_ref") ))
  : > /tmp/l2e-sweep.log
  kinds=(fwd bwd wg2 pp bwd90)
  for i in "${!kinds[@]}"; do
    kind=${kinds[$i]}
    share=$(( (sweep_end - $(date +%s)) / (${#kinds[@]} - i) )); [ "$share" -ge 10 ] || share=10
    timeout "$share" node bench/gpu-bench.mjs --sweep --kinds "$kind" --out "$RES/ours.json" >> /tmp/l2e-sweep.log 2>&1
    echo "(sweep $kind: exit $?)" | tee -a /tmp/l2e-sweep.log
  done
  cat /tmp/l2e-sweep.log >> "$RES/ours.log"; grep -v "^fwd \|^bwd \|^wg2 \|^pp \|^bwd90 \|^(sweep" /tmp/l2e-sweep.log | tail -70
fi
if [ -z "${SKIP_OURS:-}" ] && [ -n "${EXTRA:-}" ]; then
  # EXTRA: more gpu-bench rows in a process of their own (a kernel fault there costs only those rows),
  # merged into ours.json
  echo "== ours, more rows: gpu-bench.mjs $EXTRA"
  # (EXTRA_KERNELS: its GPU_BENCH_KERNELS, e.g. a new kernel's by-name rows with EXTRA=--attention)
  env POOLS_DIR="$SHARED/data/pools" ${EXTRA_KERNELS:+GPU_BENCH_KERNELS=$EXTRA_KERNELS} timeout "$(limit "${EXTRA_S:-120}" "$keep_ref")" \
    node bench/gpu-bench.mjs $EXTRA --out "$RES/extra.json" >> "$RES/ours.log" 2>&1
  echo "(exit $?)"
  if [ -f "$RES/extra.json" ]; then
    node -e '
      const fs = require("fs"), [o, x] = process.argv.slice(1);
      const ours = fs.existsSync(o) ? JSON.parse(fs.readFileSync(o, "utf8")) : {};
      fs.writeFileSync(o, JSON.stringify({ ...JSON.parse(fs.readFileSync(x, "utf8")), ...ours }, null, 1) + "\n");
    ' "$RES/ours.json" "$RES/extra.json" && rm -f "$RES/extra.json"
  fi
fi
if [ -z "${SKIP_REF:-}" ]; then
  echo "== reference stack (PyTorch + transformers, SDPA)"
  MODELS=${MODELS:-warm:2,600m:2,1b:4} OUT="$RES" PYTHONUNBUFFERED=1 timeout "$(limit "${REF_S:-330}" 5)" python3 "$SHARED/reference_stack.py" "$SHARED"/data/pools/*.json > "$RES/ref.log" 2>&1
  echo "(exit $?)"; tail -15 "$RES/ref.log"
fi
if [ "$PHASE" != tests ]; then
  echo "== ratios (same card, same run)"
  node bench/gpu-bench.mjs --table "$RES/ours.json" "$RES/anchor.json"
fi
if [ -z "${SKIP_REF:-}" ] && [ "${COMPILED_S:-0}" -gt 0 ]; then
  # COMPILED_S=seconds: the torch.compile reference (the stronger peer) on COMPILED_MODELS, last, as
  # it compiles for minutes; its anchor.json becomes anchor-compiled.json
  echo "== reference stack, torch.compile (COMPILE=1, ${COMPILED_MODELS:-warm:2,600m:2}, at most ${COMPILED_S} s)"
  mkdir -p /tmp/l2e-compiled
  COMPILE=1 SKIP_KERNELS=1 MODELS=${COMPILED_MODELS:-warm:2,600m:2} OUT=/tmp/l2e-compiled PYTHONUNBUFFERED=1 \
    timeout "$COMPILED_S" python3 "$SHARED/reference_stack.py" "$SHARED"/data/pools/*.json > /tmp/l2e-compiled/log 2>&1
  echo "(exit $?)"; tail -5 /tmp/l2e-compiled/log
  { echo "== COMPILE=1"; cat /tmp/l2e-compiled/log; } >> "$RES/ref.log"
  [ -f /tmp/l2e-compiled/anchor.json ] && mv /tmp/l2e-compiled/anchor.json "$RES/anchor-compiled.json"
fi
if [ "$PHASE" != tests ]; then
  # every run is saved under $RES/results (copy it to bench/results/, which keeps the runs)
  compiled=()
  [ -f "$RES/anchor-compiled.json" ] && compiled=("$RES/anchor-compiled.json")
  echo "== ratios with every reference, saved"
  node bench/gpu-bench.mjs --table "$RES/ours.json" "$RES/anchor.json" ${compiled[@]+"${compiled[@]}"} --save "$RES/results" --markdown
fi
