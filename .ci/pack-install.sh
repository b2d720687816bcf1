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
# npm 12 runs a dependency's install script only when the project allows it (npm 11 runs it and warns;
# a tarball dependency is named by its file: spec there)
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
# An app that has not allowed the package's install script, which npm 12 then skips (--ignore-scripts
# here, whatever the npm): the prebuilt loads all the same
mkdir -p "$work/app-noscripts" && cp check.mjs "$work/app-noscripts/"
echo '{"name":"app-noscripts","version":"1.0.0","type":"module","private":true}' > "$work/app-noscripts/package.json"
(cd "$work/app-noscripts" && PATH="$nocc" npm install --no-audit --no-fund --ignore-scripts "$work/$tarball" > "$work/noscripts.log" 2>&1 \
  && PATH="$nocc" node check.mjs "$fixture") || { cat "$work/noscripts.log" >&2; echo "pack-install: without its install script the package does not load" >&2; exit 1; }
# CommonJS: require() of the package (Node's require(esm), see "engines"), and TypeScript compiled
# both ways against the published types: ESM (module nodenext in a "type": "module" app) and CommonJS
# (a "type": "commonjs" folder), each then run.
cat > check.cjs <<'JS'
const { EmbeddingModel, knn, similarity } = require('llama2-embedding');
if (typeof EmbeddingModel.load !== 'function' || typeof knn !== 'function') { console.error('require: exports missing'); process.exit(1); }
console.log(`pack-install: require() works, similarity([1,0],[1,1]) = ${similarity([1, 0], [1, 1]).toFixed(4)}`);
JS
PATH="$nocc" node check.cjs
tsc="$root/node_modules/typescript/bin/tsc"
cat > lib-use.ts <<'TS'
import { cpuIsa, knn, similarity, Embeddings, type CpuIsa, type KnnMatch, type KnnResult, type Precision } from 'llama2-embedding';
export const isa: CpuIsa['isa'] = cpuIsa().isa;
export const precision: Precision = 'bf16';
export async function top(): Promise<KnnMatch[]> {
  const e = new Embeddings(2, 2, Float32Array.of(1, 0, 0.6, 0.8));
  const r: KnnResult = await knn(e, e, 1, { excludeSelf: true });
  const s: number = similarity(e.row(0), e.row(1));
  return r.neighbors(0).map((m) => ({ index: m.index, score: Number((m.score + s - s).toFixed(4)) }));
}
top().then((m) => console.log(`pack-install: TypeScript ${process.argv[2]} build ran: ${JSON.stringify(m)}, CPU kernels ${isa}`));
TS
# esm: nodenext in a "type": "module" folder; cjs: nodenext in a "type": "commonjs" folder (TS >= 5.8
# types require() of ES modules); classic: "module": "commonjs" with node10 resolution (as tsc --init);
# plain: the same without esModuleInterop (the types must not need it: a default import of node:http
# in them failed there, TS1192). classic and plain target es2016, whose lib lacks what ES2022 added (an
# ErrorOptions in the types failed there, TS2304).
for kind in esm cjs classic plain; do
  mkdir -p "ts-$kind" && cp lib-use.ts "ts-$kind/"
  case $kind in
    esm) type=module; mod='"module":"nodenext","moduleResolution":"nodenext","target":"es2022"' ;;
    cjs) type=commonjs; mod='"module":"nodenext","moduleResolution":"nodenext","target":"es2022"' ;;
    classic) type=commonjs; mod='"module":"commonjs","moduleResolution":"node10","esModuleInterop":true,"target":"es2016"' ;;
    plain) type=commonjs; mod='"module":"commonjs","moduleResolution":"node10","target":"es2016"' ;;
  esac
  echo "{\"type\":\"$type\"}" > "ts-$kind/package.json"
  echo "{\"compilerOptions\":{$mod,\"strict\":true,\"typeRoots\":[\"$root/node_modules/@types\"],\"types\":[\"node\"],\"outDir\":\"out\"},\"files\":[\"lib-use.ts\"]}" > "ts-$kind/tsconfig.json"
  (cd "ts-$kind" && PATH="$nocc" node "$tsc" -p . && PATH="$nocc" node out/lib-use.js "$kind")
done
grep -q 'require("llama2-embedding")' ts-cjs/out/lib-use.js && grep -q 'require("llama2-embedding")' ts-classic/out/lib-use.js || { echo "pack-install: the CommonJS build does not require() the package" >&2; exit 1; }
# A broken prebuilt: the install hook says so and falls back to a source build, which here (no
# compiler) fails with a message saying what to install. The hook runs as npm runs it, with npm's
# node-gyp (npm_config_node_gyp): run alone, with no node-gyp on the PATH, it says that node-gyp
# cannot be run, which is true there but not what an install without a compiler meets.
pkg="$work/app/node_modules/llama2-embedding"
for f in "$pkg"/prebuilds/*/*.node; do echo "not a shared object" > "$f"; done
if (cd "$pkg" && PATH="$nocc" npm run install) > "$work/broken.log" 2>&1; then
  echo "pack-install: a broken prebuilt went unnoticed" >&2; cat "$work/broken.log" >&2; exit 1
fi
cat "$work/broken.log"
grep -q "does not load" "$work/broken.log" && grep -q "building the native addon from source" "$work/broken.log" \
  && grep -q "Install a C++ compiler" "$work/broken.log" || { echo "pack-install: unclear fallback message" >&2; exit 1; }
echo "pack-install: OK (installed $tarball without a compiler)"
