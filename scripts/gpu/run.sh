#!/bin/bash
# The one GPU-machine run (no build there): GPU tests, our benchmarks, the reference Python stack on the
# same card, and a ratio table last.
# Prepare on the development machine:  npx cmake-js compile --out build   (nvcc present: CUDA on)
#                                      bash scripts/gpu/pack.sh   (checks the addon, then ../shared/gpu/pack.sh)
# Run on the GPU machine, from the repo root:  bash scripts/gpu/run.sh [tests|bench|all]
#   tests: the GPU test suites only; bench: ours + the reference stack + the table; all (default): both.
#   (all of it took 168 s on an H200 on 2026-11-30, the reference stack included; a command may run 10 min)
# Every stage runs under `timeout -k 5` (a process that ignores SIGTERM, e.g. stuck in the driver, is
# killed 5 s later), and a kernel never run on a GPU may fault (which ends the CUDA context for the rest
# of its process) or hang (a synchronous native call blocks the JS thread: no vitest timeout fires). So
# the stages are split where a fault or a hang would cost the most, each in a process of its own:
#   tests: test/gpu but the suites of kernels not yet run on a GPU; then each of those alone (NEW_TESTS_S each);
#   ours: the model rows (a fault, not a time limit: the models still missing again, on the sm_80
#     attention kernel, their rows merged into ours.json and listed as merged.sm80_attention_retry); the
#     attention rows, a process per kernel ('auto' first, sm90pp last); the tile sweep, a process per kind;
#     every process adds each figure to ours.json as soon as it has it;
#   reference stack: when it ends before writing anchor.json, anchor.json is rebuilt from the JSON
#     blocks it printed to ref.log (scripts/gpu/loan-json.cjs).
# The run's timeline (each stage's exit status and seconds, and when it ended, counted from loan.sh's
# start) goes to the end of env.txt, so that the next loan can size its limits.
# Knobs: SKIP_TESTS=1, SKIP_OURS=1, SKIP_SWEEP=1, SKIP_REF=1, OUT=folder (default $OUT or /tmp/l2e-gpu),
#   TESTS_S / NEW_TESTS_S / OURS_S / ATTN_S / SWEEP_S / REF_S: time limits in seconds (default 420; 60
#   for each never-run suite; 200; 60 for all the attention rows; 120 for the whole sweep; 330),
#   EXTRA="gpu-bench args" (EXTRA_S, EXTRA_KERNELS): more of our rows, in a process of their own, merged
#   into ours.json where it has no such figure,
#   COMPILED_S=seconds (COMPILED_MODELS): the torch.compile reference too, last,
#   L2E_SHARED=folder: the shared fixtures and pools (default .gpu/shared, linked as ../shared).
#   DEADLINE=epoch seconds (scripts/gpu/loan.sh sets it): each stage's limit is also cut to what is left
#   before it less the time kept for the stages after it (keep_* below), so that a stage that hangs
#   cannot leave the ratio table without its two halves; a stage with under 10 s left is skipped, so
#   the run ends by DEADLINE plus the last stage's 5 s of grace and the tables,
#   L2E_CUDA_POOL=nosplit: the device pool without the block arena (each block its own cudaMalloc, the
#   policy before it), for a before/after of the recipe rows' cuda_mallocs_in_timed_steps and pool_reserved_peak_GiB.
# Stops at once, with the reason, when CUDA is not usable (driver, cuBLAS, an addon without CUDA or
# the emulation build): every GPU suite would only skip.
set -uo pipefail
cd "$(dirname "$0")/../.."
T0=${L2E_LOAN_T0:-$(date +%s)}  # the timeline counts from loan.sh's start (run.sh's own when run alone)
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
# what does not come back (a call brings back at most 8 files from $OUT) goes to WORK; a process killed
# between writing a file's temporary copy and renaming it leaves a *.tmp-<pid>, deleted here too
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; rm -f "$RES"/*.tmp-* "$RES"/results/*.tmp-*' EXIT

# note TEXT: a line of the timeline, on the console and at the end of env.txt
note() { echo "[+$(( $(date +%s) - T0 )) s] $*" | tee -a "$RES/env.txt"; }
timed_out() { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; }
# The time DEADLINE keeps for the stages after each (seconds): the reference stack 120, our attention rows
# 30 more, our model rows 90 more, and each never-run test suite 30 more.
keep_ref=120 keep_attn=150 keep_models=240 keep_new_suite=30
# limit DEFAULT_S KEEP_S: a stage's time limit, DEFAULT_S, or less under DEADLINE so that KEEP_S seconds
# remain after it; 0 (skip the stage) when that leaves under 10 s
limit() {
  if [ -z "${DEADLINE:-}" ]; then echo "$1"; return; fi
  local left=$(( DEADLINE - $(date +%s) - $2 ))
  [ "$left" -ge 10 ] || left=0
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}
# share END WEIGHT WEIGHTS_LEFT: the limit of one of a group of processes that share the time until END:
# its weight's part of what is left (at least 10 s, never past END; 0 when under 10 s are left)
share() {
  local left=$(( $1 - $(date +%s) )) s
  s=$(( left * $2 / ($3 > 0 ? $3 : 1) )); [ "$s" -ge 10 ] || s=10  # (a plan of 0 measurements: all that is left)
  [ "$s" -le "$left" ] || s=$left
  [ "$s" -ge 10 ] || s=0
  echo "$s"
}
# bounded NAME LIMIT_S COMMAND...: COMMAND under `timeout -k 5 LIMIT_S` (LIMIT_S 0: skipped, as if timed
# out), its exit status and time noted; returns the exit status
bounded() {
  local name=$1 s=$2 t rc
  shift 2
  if [ "$s" -le 0 ]; then note "$name: skipped (no time left before DEADLINE)"; return 124; fi
  t=$(date +%s)
  timeout -k 5 "$s" "$@"; rc=$?
  note "$name: exit $rc$(timed_out "$rc" && echo ' (time limit)') after $(( $(date +%s) - t )) s of $s"
  return "$rc"
}

export L2E_ADDON=${L2E_ADDON:-$PWD/build/Release/l2e.node}
# the test addon the GPU suites load (test/helpers/testing-addon.mjs), packed by gpu-pack.sh
if [ -z "${L2E_TESTING_ADDON:-}" ] && [ -f .gpu/testing/l2e_testing.node.xz ]; then
  mkdir -p build/Release/testing
  xz -dc .gpu/testing/l2e_testing.node.xz > build/Release/testing/l2e_testing.node
fi
export L2E_TESTING_ADDON=${L2E_TESTING_ADDON:-$PWD/build/Release/testing/l2e_testing.node}
source scripts/gpu/cublas-path.sh
# (bounded too: a driver that hangs at the first CUDA call would hold the whole loan). Not usable: exit
# 3, the reason in env.txt too (a call brings $OUT back; the output's tail may be cut), and loan.sh
# runs nothing more
timeout -k 5 60 node -e '
  const a = require(process.env.L2E_ADDON);
  const s = a.cudaStatus?.();
  console.log("addon cudaStatus:", JSON.stringify(s));
  const why = !s || !s.compiled ? "the addon has no CUDA backend (" + process.env.L2E_ADDON + ")"
    : s.emulated ? "the addon is the CPU emulation build"
    : !s.usable ? s.reason : "";
  if (why) { console.error("gpu-run: CUDA is not usable: " + why); process.exit(1); }
' > "$WORK/cuda-status.txt" 2>&1
cuda_rc=$?
cat "$WORK/cuda-status.txt"
if [ "$cuda_rc" -ne 0 ]; then
  cat "$WORK/cuda-status.txt" >> "$RES/env.txt"
  note "stopped: CUDA is not usable (exit $cuda_rc; the lines above)"
  exit 3
fi

# the card, driver and toolkit, and the shipped addon's sm_90a attention kernels: HGMMA (wgmma), no HMMA
{
  date -u
  nvidia-smi
  nvcc --version 2>&1 | tail -2
  if command -v cuobjdump >/dev/null; then
    timeout -k 5 60 cuobjdump -sass "$L2E_ADDON" | awk '
      /^arch = / { a90 = ($3 == "sm_90a") } /Fatbin ptx code/ { a90 = 0 }
      /Function :/ { fn = $3 }
      a90 && fn ~ /flash_fwd_sm90/ && /HGMMA/ { hg[fn]++ } a90 && fn ~ /flash_fwd_sm90/ && /[^A-Z]HMMA/ { hm[fn]++ }
      END { for (f in hg) print "SASS sm_90a " f ": " hg[f] " HGMMA, " (hm[f] + 0) " HMMA"; if (length(hg) == 0) print "SASS: no HGMMA in any flash_fwd_sm90 kernel" }'
  fi
  echo "== timeline (seconds since the loan began)"
} > "$RES/env.txt" 2>&1
grep '^SASS' "$RES/env.txt"
note "setup done (run.sh $PHASE${DEADLINE:+, DEADLINE in $(( DEADLINE - $(date +%s) )) s})"

vitest=(node node_modules/vitest/vitest.mjs run)
if [ -z "${SKIP_TESTS:-}" ]; then
  note "== GPU tests"
  # the suites of kernels not yet run on a GPU, each alone and last: a hang there (nothing interrupts a
  # synchronous native call) costs only that suite, not every suite after it
  new_suites=(test/gpu/attention-sm90.test.ts test/gpu/attention-sm90-backward.test.ts)
  tests_s=$(limit "${TESTS_S:-420}" $((keep_models + ${#new_suites[@]} * keep_new_suite)))
  # the SASS test compiles with nvcc (CPU only): it runs beside the GPU suites
  bounded "CUDA build tests (beside the GPU suites)" "$tests_s" \
    "${vitest[@]}" test/cuda-build.test.ts test/cuda-compile.test.ts > "$WORK/sass-test.log" 2>&1 &
  sass=$!
  excludes=(); for suite in "${new_suites[@]}"; do excludes+=(--exclude "$suite"); done
  bounded "GPU tests (but the never-run kernels')" "$tests_s" "${vitest[@]}" test/gpu "${excludes[@]}" 2>&1 \
    | tee "$RES/gpu-tests.log" | grep -v "^ *✓" | tail -60
  for i in "${!new_suites[@]}"; do
    suite=${new_suites[$i]}
    echo "== $suite (kernels not yet run on a GPU)" >> "$RES/gpu-tests.log"
    bounded "GPU tests $suite" "$(limit "${NEW_TESTS_S:-60}" $((keep_models + (${#new_suites[@]} - i - 1) * keep_new_suite)))" "${vitest[@]}" "$suite" 2>&1 \
      | tee -a "$RES/gpu-tests.log" | grep -v "^ *✓" | tail -30
  done
  wait "$sass"
  echo "== test/cuda-build.test.ts test/cuda-compile.test.ts" >> "$RES/gpu-tests.log"
  cat "$WORK/sass-test.log" >> "$RES/gpu-tests.log"
  grep -E "Test Files|Tests |\] GPU tests|\] CUDA build" "$RES/gpu-tests.log" | tail -16
fi
if [ -z "${SKIP_OURS:-}" ]; then
  note "== ours: the model rows"
  rm -f "$RES/ours.json"  # every process below adds to it
  bounded "ours, model rows" "$(limit "${OURS_S:-200}" "$keep_attn")" \
    env POOLS_DIR="$SHARED/data/pools" node bench/gpu-bench.mjs --models --out "$RES/ours.json" > "$RES/ours.log" 2>&1
  rc=$?
  # a fault ends the CUDA context: the models still missing once more, on the sm_80 attention kernel
  # (the one run on GPUs longest), their rows only filling gaps; a time limit is not retried (a hang
  # would hang again, and its time is spent)
  if [ "$rc" -ne 0 ] && ! timed_out "$rc"; then
    tail -30 "$RES/ours.log"
    note "ours failed (exit $rc): the models still missing again, with L2E_CUDA_ATTENTION=sm80"
    bounded "ours, model rows again (sm80 attention)" "$(limit "${OURS_S:-200}" "$keep_attn")" \
      env L2E_CUDA_ATTENTION=sm80 POOLS_DIR="$SHARED/data/pools" node bench/gpu-bench.mjs --models --resume "$RES/ours.json" --out "$WORK/ours-sm80.json" >> "$RES/ours.log" 2>&1
    node scripts/gpu/loan-json.cjs merge "$RES/ours.json" "$WORK/ours-sm80.json" sm80_attention_retry 2>&1 | tee -a "$RES/ours.log"
  fi
  grep -v "^  " "$RES/ours.log" | tail -40
  note "== ours: the attention rows, a process per kernel"
  # GPU_BENCH_KERNELS names one; each gets its part of ATTN_S by its rows ('auto' has the forward and
  # forward+backward at each length, the others the forward)
  kernels=(auto sm80 sm90 sm90wg2 sm90pp) weights=(2 1 1 1 1)
  attn_end=$(( $(date +%s) + $(limit "${ATTN_S:-60}" "$keep_ref") ))
  left=0; for w in "${weights[@]}"; do left=$(( left + w )); done
  for i in "${!kernels[@]}"; do
    bounded "ours, attention rows: ${kernels[$i]}" "$(share "$attn_end" "${weights[$i]}" "$left")" \
      env GPU_BENCH_KERNELS="${kernels[$i]}" node bench/gpu-bench.mjs --attention --out "$RES/ours.json" >> "$WORK/attn.log" 2>&1
    left=$(( left - weights[i] ))
  done
  cat "$WORK/attn.log" >> "$RES/ours.log"; cat "$WORK/attn.log"
fi
if [ -z "${SKIP_OURS:-}" ] && [ -z "${SKIP_SWEEP:-}" ]; then
  note "== attention tile variants: the wgmma backward, sm90wg2/sm90pp, sm80 (gpu-bench --sweep: its figures join ours.json)"
  # a kind per process: a kernel fault (a sticky CUDA error) or a hang costs only its own kind's rows
  # after it; each kind gets its part of what is left by its number of measurements (gpu-bench
  # --sweep --plan), the kinds that decide defaults first (the sm80 forward was swept on an H200 already)
  sweep_s=$(limit "${SWEEP_S:-120}" "$keep_ref")
  sweep_end=$(( $(date +%s) + sweep_s ))
  declare -A count=()  # (the plan loads the addon: within the sweep's time, and not at all without any)
  [ "$sweep_s" -gt 0 ] && while read -r kind n; do count[$kind]=$n; done \
    < <(timeout -k 5 20 node bench/gpu-bench.mjs --sweep --plan 2>> "$WORK/sweep.log")
  kinds=(bwd90 wg2 pp bwd fwd)
  left=0; for kind in "${kinds[@]}"; do left=$(( left + ${count[$kind]:-1} )); done
  for kind in "${kinds[@]}"; do
    bounded "sweep $kind" "$(share "$sweep_end" "${count[$kind]:-1}" "$left")" \
      node bench/gpu-bench.mjs --sweep --kinds "$kind" --out "$RES/ours.json" >> "$WORK/sweep.log" 2>&1
    left=$(( left - ${count[$kind]:-1} ))
  done
  cat "$WORK/sweep.log" >> "$RES/ours.log"; grep -v "^fwd \|^bwd \|^wg2 \|^pp \|^bwd90 " "$WORK/sweep.log" | tail -70
fi
if [ -z "${SKIP_OURS:-}" ] && [ -n "${EXTRA:-}" ]; then
  # EXTRA: more gpu-bench rows in a process of their own (a kernel fault there costs only those rows),
  # merged into ours.json
  note "== ours, more rows: gpu-bench.mjs $EXTRA"
  # (EXTRA_KERNELS: its GPU_BENCH_KERNELS, e.g. a new kernel's by-name rows with EXTRA=--attention)
  bounded "ours, more rows" "$(limit "${EXTRA_S:-120}" "$keep_ref")" \
    env POOLS_DIR="$SHARED/data/pools" ${EXTRA_KERNELS:+GPU_BENCH_KERNELS=$EXTRA_KERNELS} node bench/gpu-bench.mjs $EXTRA --out "$WORK/extra.json" >> "$RES/ours.log" 2>&1
  node scripts/gpu/loan-json.cjs merge "$RES/ours.json" "$WORK/extra.json" extra 2>&1 | tee -a "$RES/ours.log"
fi
if [ -z "${SKIP_REF:-}" ]; then
  note "== reference stack (PyTorch + transformers, SDPA)"
  rm -f "$RES/anchor.json"
  bounded "reference stack" "$(limit "${REF_S:-330}" 5)" \
    env MODELS="${MODELS:-warm:2,600m:2,1b:4}" OUT="$RES" PYTHONUNBUFFERED=1 python3 "$SHARED/reference_stack.py" "$SHARED"/data/pools/*.json > "$RES/ref.log" 2>&1
  rc=$?
  tail -15 "$RES/ref.log"
  # reference_stack.py (shared, read-only) writes anchor.json only at its very end: a time limit or an
  # exception before it would lose every reference figure, which its log still holds
  node scripts/gpu/loan-json.cjs anchor "$RES/anchor.json" "$RES/ref.log" "reference_stack.py exit $rc before writing anchor.json" 2>&1 | tee -a "$RES/ref.log"
fi
if [ "$PHASE" != tests ]; then
  note "== ratios (same card, same run)"
  node bench/gpu-bench.mjs --table "$RES/ours.json" "$RES/anchor.json"
fi
if [ -z "${SKIP_REF:-}" ] && [ "${COMPILED_S:-0}" -gt 0 ]; then
  # COMPILED_S=seconds: the torch.compile reference (the stronger peer) on COMPILED_MODELS, last, as
  # it compiles for minutes; its anchor.json becomes anchor-compiled.json
  note "== reference stack, torch.compile (COMPILE=1, ${COMPILED_MODELS:-warm:2,600m:2}, at most ${COMPILED_S} s)"
  mkdir -p "$WORK/compiled"
  bounded "reference stack, torch.compile" "$COMPILED_S" \
    env COMPILE=1 SKIP_KERNELS=1 MODELS="${COMPILED_MODELS:-warm:2,600m:2}" OUT="$WORK/compiled" PYTHONUNBUFFERED=1 \
    python3 "$SHARED/reference_stack.py" "$SHARED"/data/pools/*.json > "$WORK/compiled/log" 2>&1
  rc=$?
  tail -5 "$WORK/compiled/log"
  { echo "== COMPILE=1"; cat "$WORK/compiled/log"; } >> "$RES/ref.log"
  node scripts/gpu/loan-json.cjs anchor "$WORK/compiled/anchor.json" "$WORK/compiled/log" "reference_stack.py COMPILE=1 exit $rc before writing anchor.json" \
    && mv "$WORK/compiled/anchor.json" "$RES/anchor-compiled.json"
fi
if [ "$PHASE" != tests ]; then
  # every run is saved under $RES/results (copy it to bench/results/, which keeps the runs)
  compiled=()
  [ -f "$RES/anchor-compiled.json" ] && compiled=("$RES/anchor-compiled.json")
  echo "== ratios with every reference, saved"
  node bench/gpu-bench.mjs --table "$RES/ours.json" "$RES/anchor.json" ${compiled[@]+"${compiled[@]}"} --save "$RES/results" --markdown
  note "run.sh done"
fi
