// Loads the native addon once. Order:
//   1. L2E_ADDON, a .node file named explicitly (a separate build folder);
//   2. the CUDA prebuilt (prebuilds/cuda/<platform>-<arch>/l2e.node) when this machine has an NVIDIA
//      driver and the binary reports a usable GPU and cuBLAS — otherwise a one-line notice and on;
//   3. node-gyp-build: a local build (build/Release) or the CPU prebuilt (prebuilds/<platform>-<arch>).
// Each module declares the typed shape of the natives it uses and reads them through nativeAddon<T>().
import { addonFileProblem } from './addon-file.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
/** Package root: this file lives in src/ (tests) or dist/ (built). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Whether the CUDA backend can run here: the addon's one answer (native/addon/cuda_info_binding.cpp). */
export interface CudaStatus {
  /** This build has the CUDA backend. */
  compiled: boolean;
  /** A GPU, its driver and cuBLAS were found: `{ device: 'cuda' }` works. */
  usable: boolean;
  /** The CUDA backend is the CPU emulation build (native/cuda/emulation): correct, not fast. */
  emulated: boolean;
  /** Why not usable ('' when usable). */
  reason: string;
  /** CUDA devices seen. */
  devices: number;
  /** The first device, when usable. */
  name?: string;
  computeCapability?: string;
  freeBytes?: number;
  totalBytes?: number;
}

interface CudaProbe {
  cudaStatus?: () => CudaStatus;
}

let cached: unknown;
let loadedFrom = '';

/**
 * The CUDA prebuilt of `root` when it exists, this machine has an NVIDIA driver (`driverPresent`) and
 * the binary reports a usable GPU; otherwise undefined, with a one-line notice when one was present
 * but could not be used. Exported for tests.
 */
export function loadCudaPrebuilt(
  root: string,
  opts: { driverPresent?: boolean; notice?: (message: string) => void } = {},
): { module: unknown; file: string } | undefined {
  const notice = opts.notice ?? ((m: string) => process.stderr.write(`${m}\n`));
  if (process.env['L2E_DEVICE'] === 'cpu') return undefined;
  const file = join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`, 'l2e.node');
  if (!existsSync(file) || !(opts.driverPresent ?? existsSync('/dev/nvidiactl'))) return undefined;
  const problem = addonFileProblem(file);
  if (problem) {
    notice(`llama2-embedding: CUDA prebuilt ${file} not used (${problem}); using the CPU build`);
    return undefined;
  }
  try {
    const mod = require(file) as CudaProbe;
    const status = mod.cudaStatus?.();
    if (status?.usable) return { module: mod, file };
    notice(`llama2-embedding: CUDA prebuilt not used (${status?.reason ?? 'it reports no CUDA status'}); using the CPU build`);
  } catch (err) {
    notice(`llama2-embedding: CUDA prebuilt failed to load (${err instanceof Error ? err.message : String(err)}); using the CPU build`);
  }
  return undefined;
}

/** The error a failed addon load throws (exported for tests). */
export function addonLoadError(err: unknown): Error {
  // one line: node-gyp-build's "No native build was found" continues on an indented "loaded from:" line
  const msg = (err instanceof Error ? err.message : String(err)).trim().replace(/\s*\n\s*/g, '; ');
  // A bad L2E_CPU_ISA fails the load on purpose (native/cpu/isa.h): say that, not "rebuild".
  if (msg.startsWith('L2E_CPU_ISA=') || msg.startsWith('L2E_ADDON=')) return new Error(`llama2-embedding: ${msg}`);
  return new Error(`llama2-embedding: the native addon could not be loaded (${msg}). Rebuild it: ${buildCommand(packageRoot, false)}`);
}

function load(): unknown {
  if (cached === undefined) {
    const explicit = process.env['L2E_ADDON'];
    try {
      if (explicit) {
        // a path, relative to the working folder (require would take a bare name for a package)
        const file = resolve(explicit);
        const problem = addonFileProblem(file);
        if (problem) throw new Error(`L2E_ADDON=${explicit}: ${problem} (${file})`);
        // (require takes a name not ending in .node for JavaScript: an addon named l2e.so was "Invalid or
        // unexpected token"); dlopen loads it as an addon whatever its name
        const holder = { exports: {} as Record<string, unknown> };
        try {
          process.dlopen(holder, file);
        } catch (err) {
          // a shared library that is no Node addon ("did not self-register") was told to rebuild the
          // package, which the file L2E_ADDON names does not come from (a bad L2E_CPU_ISA says itself)
          const msg = err instanceof Error ? err.message : String(err);
          if (msg.startsWith('L2E_CPU_ISA=')) throw err;
          throw new Error(`L2E_ADDON=${explicit}: it does not load as a Node addon (${msg.trim().replace(/\.$/, '')}) (${file})`);
        }
        const mod = holder.exports;
        // another package's addon loads, and failed later as "NativeModel is not a constructor"
        if (typeof mod['NativeModel'] !== 'function') throw new Error(`L2E_ADDON=${explicit}: not this package's addon (it has no NativeModel) (${file})`);
        cached = mod;
        loadedFrom = file;
      } else {
        const cuda = loadCudaPrebuilt(packageRoot);
        if (cuda) {
          cached = cuda.module;
          loadedFrom = cuda.file;
        } else {
          const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
          loadedFrom = nodeGypBuild.resolve(packageRoot);
          const problem = addonFileProblem(loadedFrom);
          if (problem) throw new Error(`${loadedFrom}: ${problem}`);
          cached = nodeGypBuild(packageRoot);
        }
      }
    } catch (err) {
      throw addonLoadError(err);
    }
  }
  return cached;
}

/**
 * The command that builds the addon (with the CUDA backend when `cuda`) for the package at `root`:
 * in a checkout, the npm scripts; in an installed dependency (whose dev tools such as cmake-js are
 * absent), `npm rebuild` from the app, or cmake-js fetched by npx in the package folder. npm 12 runs a
 * dependency's install script, `npm rebuild`'s too, only when the app's package.json allows it
 * ("allowScripts"), which `npm install-scripts approve` writes.
 */
export function buildCommand(root: string, cuda: boolean): string {
  const installed = root.split(sep).includes('node_modules');
  if (!installed) return cuda ? '`L2E_CUDA=1 npm run build:native` (needs nvcc and cmake)' : '`npm run build:gyp` or `npm run build:native`';
  if (!cuda) return '`npm rebuild llama2-embedding` in your project (with npm 12, after `npm install-scripts approve llama2-embedding`)';
  return `\`cd ${root} && L2E_CUDA=1 npx --yes cmake-js compile --out build\` (needs nvcc and cmake)`;
}

/** The addon, typed by the caller's view of the functions it needs. */
export function nativeAddon<T>(): T {
  return load() as T;
}

/**
 * Whether device 'cuda' can be used with the loaded addon, and if not, why (a CPU-only build, no GPU
 * or driver, no cuBLAS). Cheap, and never throws for a missing GPU.
 */
export function cudaStatus(): CudaStatus {
  return nativeAddon<{ cudaStatus(): CudaStatus }>().cudaStatus();
}

/** CPU features, as the CPU has them or as the kernels may use them at a level (native/cpu/isa.h). */
export interface CpuFeatures {
  avx2: boolean;
  avx512: boolean;
  avx512Bf16: boolean;
  /** The CPU runs AVX-512 BF16 dot products at full rate (where it does not, the bf16 GEMM widens to fp32). */
  bf16DotFullRate: boolean;
  avx512Vnni: boolean;
  avxVnni: boolean;
  amxBf16: boolean;
  amxInt8: boolean;
}

export type CpuIsaLevel = 'scalar' | 'avx2' | 'avx512' | 'amx';

/** The instruction-set level the CPU kernels use (L2E_CPU_ISA sets it), and what the CPU has. */
export interface CpuIsa {
  /** The level in use: the CPU's best unless L2E_CPU_ISA says otherwise. */
  isa: CpuIsaLevel;
  /** The best level this CPU runs. */
  best: CpuIsaLevel;
  /** The fp32 GEMM's micro-kernel ('avx512' under 'amx': only the bf16 / int8 GEMMs use the tiles). */
  gemm: Exclude<CpuIsaLevel, 'amx'>;
  /** The features the kernels may use at `isa`. */
  features: CpuFeatures;
  /** The features the CPU has. */
  cpu: CpuFeatures;
}

/** The CPU kernels' instruction-set level and the CPU's features, as the loaded addon sees them. */
export function cpuIsa(): CpuIsa {
  return nativeAddon<{ cpuIsa(): CpuIsa }>().cpuIsa();
}

/** The path of the loaded addon binary (after the first nativeAddon() call). */
export function nativeAddonPath(): string {
  load();
  return loadedFrom;
}
