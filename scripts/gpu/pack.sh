#!/usr/bin/env bash
# Packs .gpu/ for a run on the GPU machine with ../shared/gpu/pack.sh, after checking that
# build/Release holds a CUDA-enabled addon. Packs only the packages a run there loads: every top-level
# entry of node_modules/ that scripts/gpu/device-packages.cjs names (what neither the library's
# dependencies nor vitest need: the CPU bench peers, the demo's CLDR data, the browser and OpenAI-client
# test packages, the build tools; about 890 MiB unpacked) is set aside meanwhile, so that .gpu stays
# under what a run may carry (64 MiB, the working tree and dist/ included). Then, on the device (with
# .gpu and dist/ carried):
#   bash scripts/gpu/run.sh all|tests|bench
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
addon=build/Release/l2e.node
if [ ! -f "$addon" ]; then
  echo "gpu-pack: no $addon — build it first: L2E_CUDA=1 npx cmake-js compile --out build" >&2
  exit 1
fi
# a real CUDA addon: compiled with the CUDA backend and not the CPU emulation build
check_addon() {
  node -e "
    const s = require(require('path').resolve(process.argv[1])).cudaStatus?.();
    if (!s || !s.compiled) { console.error('gpu-pack: ' + process.argv[1] + ' has no CUDA backend — rebuild with: L2E_CUDA=1 npx cmake-js compile --out build'); process.exit(1); }
    if (s.emulated) { console.error('gpu-pack: ' + process.argv[1] + ' is the CPU emulation build — rebuild with: L2E_CUDA=1 npx cmake-js compile --out build'); process.exit(1); }
  " "$1"
}
check_addon "$addon"
# the test addon (native/testing: backendOp and the other hooks the GPU suites use), from the same build
testing=build/Release/testing/l2e_testing.node
[ -f "$testing" ] || { echo "gpu-pack: no $testing — build it first: L2E_CUDA=1 npx cmake-js compile --out build" >&2; exit 1; }
check_addon "$testing"
# the benches import the library's compiled JavaScript: dist/ travels beside .gpu (carry both); built
# before packages are set aside (the demo's tokenizer is one)
npm run --silent build:ts
aside_list=$(node scripts/gpu/device-packages.cjs)
aside=$(mktemp -d "$root/.gpu-aside.XXXXXX")
moved=()
restore() {
  for p in ${moved[@]+"${moved[@]}"}; do mv "$aside/$p" "node_modules/$p"; done
  # only empty folders go: a package that could not be moved back stays there, named in the error
  find "$aside" -depth -type d -empty -delete
  [ ! -e "$aside" ] || echo "gpu-pack: $aside still holds packages: move them back into node_modules/" >&2
}
trap restore EXIT
for p in $aside_list; do
  mkdir -p "$aside/$(dirname "$p")"  # a scoped package (@scope/name) keeps its scope folder
  mv "node_modules/$p" "$aside/$p"
  moved+=("$p")
done
"$root/../shared/gpu/pack.sh"
# what was packed is what runs: check the copy, not only build/Release
packed=$(ls .gpu/addon/*.node)
if [ "$packed" != ".gpu/addon/l2e.node" ]; then
  echo "gpu-pack: .gpu/addon should hold exactly l2e.node, holds: $packed" >&2
  exit 1
fi
check_addon .gpu/addon/l2e.node
cmp -s "$addon" .gpu/addon/l2e.node || { echo "gpu-pack: .gpu/addon/l2e.node differs from $addon" >&2; exit 1; }
mkdir -p .gpu/testing
xz -T2 -6 -c "$testing" > .gpu/testing/l2e_testing.node.xz
# a run carries the working tree (tracked files and untracked ones git does not ignore), .gpu and dist:
# 64 MiB in all
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s + 0 }')
total=$(( tree + $(du -sb .gpu | cut -f1) + $(du -sb dist | cut -f1) ))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
if [ "$total" -gt $(( 64 * 1048576 )) ]; then
  echo "gpu-pack: a run would carry $(mib "$total") MiB (.gpu, dist and the working tree): over its 64 MiB" >&2
  exit 1
fi
echo "gpu-pack: packed $addon and $testing (CUDA backend, not emulated); a run carries $(mib "$total") MiB of its 64 (.gpu $(du -sm .gpu | cut -f1) MiB); carry .gpu and dist"
