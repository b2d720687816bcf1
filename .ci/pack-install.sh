#!/usr/bin/env bash
# Install without a compiler: build the CPU prebuilt (prebuildify + cmake-js), pack the library with
# `npm pack`, install the tarball into an empty folder with compilers out of reach (a PATH holding
# only node, npm and basic tools), then load it and encode with the fixture model.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
npm run prebuildify
ls -l prebuilds/*/
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
# A PATH with no g++, cc, make, cmake or python3
nocc="$work/bin"
mkdir -p "$nocc"
for tool in node npm npx sh bash env cat ls mkdir rm cp mv ln tar gzip uname dirname basename sed grep head tail chmod tr wc sort mktemp; do
  src=$(command -v "$tool") && ln -s "$src" "$nocc/$tool"
done
if PATH="$nocc" command -v g++ >/dev/null || PATH="$nocc" command -v cmake >/dev/null || PATH="$nocc" command -v make >/dev/null; then
  echo "pack-install: a compiler is still reachable" >&2
  exit 1
fi
mkdir -p "$work/app"
cd "$work/app"
# npm 11 runs a dependency's install script only when the project allows it
# (a tarball dependency is named by its file: spec there)
echo "{\"name\":\"app\",\"version\":\"1.0.0\",\"type\":\"module\",\"private\":true,\"allowScripts\":{\"file:$work/$tarball\":true}}" > package.json
PATH="$nocc" npm install --no-audit --no-fund --foreground-scripts "$work/$tarball" 2>&1 | tee "$work/install.log"
grep -q "using the prebuilt binary" "$work/install.log" || { echo "pack-install: the prebuilt binary was not used" >&2; exit 1; }
fixture="$root/../shared/fixtures/tiny-mha"
cat > check.mjs <<'JS'
import { EmbeddingModel } from 'llama2-embedding';
import { existsSync } from 'node:fs';
const dir = process.argv[2];
if (!existsSync(dir)) { console.log('pack-install: fixture absent, loaded the package only'); process.exit(0); }
const { nativeAddonPath } = await import('llama2-embedding');
const m = await EmbeddingModel.load(dir);
if (!nativeAddonPath().includes('/prebuilds/')) { console.error('not the prebuilt:', nativeAddonPath()); process.exit(1); }
const e = await m.encode(['Selamat pagi, apa khabar?', 'Good morning']);
const norm = Math.hypot(...e.row(0));
if (e.rows !== 2 || Math.abs(norm - 1) > 1e-5) { console.error('bad embeddings', e.rows, norm); process.exit(1); }
console.log(`pack-install: encoded ${e.rows} texts, dim ${e.dim}, |e0| = ${norm.toFixed(6)}`);
m.dispose();
JS
PATH="$nocc" node check.mjs "$fixture"
PATH="$nocc" npx l2e --help | head -3
# A broken prebuilt: the install hook says so and falls back to a source build, which here (no
# compiler) fails with a message saying what to install.
pkg="$work/app/node_modules/llama2-embedding"
for f in "$pkg"/prebuilds/*/*.node; do echo "not a shared object" > "$f"; done
if PATH="$nocc" node "$pkg/scripts/install.cjs" > "$work/broken.log" 2>&1; then
  echo "pack-install: a broken prebuilt went unnoticed" >&2; cat "$work/broken.log" >&2; exit 1
fi
cat "$work/broken.log"
grep -q "does not load" "$work/broken.log" && grep -q "building the native addon from source" "$work/broken.log" \
  && grep -q "Install a C++ compiler" "$work/broken.log" || { echo "pack-install: unclear fallback message" >&2; exit 1; }
echo "pack-install: OK (installed $tarball without a compiler)"
