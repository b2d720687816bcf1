#!/usr/bin/env bash
# Packs .gpu/ for a run on the GPU machine with ../shared/gpu/pack.sh, after checking that
# build/Release holds a CUDA-enabled addon. Packages only the demo and the tokenizer tests use
# (CLDR data, llama-tokenizer-js: ~90 MiB unpacked; the CPU bench peers node-llama-cpp (~720 MiB) and the
# browser and OpenAI-client test packages) are set aside meanwhile, so that .gpu stays
# under the 60 MiB a run may carry. Then, on the device (with .gpu and dist/ carried):
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
aside=$(mktemp -d "$root/.gpu-aside.XXXXXX")
restore() {
  for d in "$aside"/*; do [ -e "$d" ] && mv "$d" node_modules/; done
  rmdir "$aside"
}
trap restore EXIT
for p in cldr-annotations-full cldr-localenames-full cldr-core llama-tokenizer-js node-llama-cpp @node-llama-cpp playwright-core playwright openai; do
  if [ -d "node_modules/$p" ]; then mv "node_modules/$p" "$aside/"; fi
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
size=$(du -sm .gpu | cut -f1)
[ "$size" -lt 62 ] || { echo "gpu-pack: .gpu is ${size} MiB with the test addon: over what a run may carry" >&2; exit 1; }
echo "gpu-pack: packed $addon and $testing (CUDA backend, not emulated); .gpu is ${size} MiB; carry .gpu and dist"
