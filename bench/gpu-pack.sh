#!/usr/bin/env bash
# Packs .gpu/ for a run on the GPU machine with ../shared/gpu/pack.sh, after checking that
# build/Release holds a CUDA-enabled addon. Packages only the demo and the tokenizer tests use
# (CLDR data, llama-tokenizer-js: ~90 MiB unpacked) are set aside meanwhile, so that .gpu stays
# under the 60 MiB a run may carry. Then, on the device:  bash bench/gpu-run.sh tests|bench
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
addon=build/Release/l2e.node
if [ ! -f "$addon" ]; then
  echo "gpu-pack: no $addon — build it first: L2E_CUDA=1 npx cmake-js compile --out build" >&2
  exit 1
fi
if ! node -e "process.exit(require('./$addon').cudaStatus().compiled ? 0 : 1)"; then
  echo "gpu-pack: $addon has no CUDA backend — rebuild with: L2E_CUDA=1 npx cmake-js compile --out build" >&2
  exit 1
fi
aside=$(mktemp -d "$root/.gpu-aside.XXXXXX")
restore() {
  for d in "$aside"/*; do [ -e "$d" ] && mv "$d" node_modules/; done
  rmdir "$aside"
}
trap restore EXIT
for p in cldr-annotations-full cldr-localenames-full cldr-core llama-tokenizer-js; do
  if [ -d "node_modules/$p" ]; then mv "node_modules/$p" "$aside/"; fi
done
"$root/../shared/gpu/pack.sh"
