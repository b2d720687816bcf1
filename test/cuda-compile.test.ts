// What nvcc makes of the attention kernels, checked without a GPU (nvcc on the PATH; cuobjdump for the
// SASS): the sm_90a kernels do their matrix products on wgmma (HGMMA in the SASS, wgmma and TMA in the
// PTX, no mma.sync), and ptxas spills no register of the kernels near the register limit. Each file is
// compiled once (`nvcc -c -Xptxas -v --keep`: object, PTX and ptxas report from one run) and every check
// reads that. The toolkit runs without the sanitizer runtime that `npm run test:sanitize` preloads (nvcc
// is not our code, and crashes under it); that run leaves this file out (test/sanitize/vitest.sanitize.config.ts).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const toolEnv: NodeJS.ProcessEnv = { ...process.env };
delete toolEnv['LD_PRELOAD'];
const hasTool = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore', env: toolEnv }).status === 0;
const nvcc = hasTool('nvcc');
const toolkit = nvcc && hasTool('cuobjdump');
const nvccArgs = ['-O3', '-std=c++17', '--expt-relaxed-constexpr', '-Inative', '-DL2E_WITH_CUDA'];
const sm90a = ['-gencode=arch=compute_90a,code=sm_90a'];
const sm80and90 = ['80', '90'].map((a) => `-gencode=arch=compute_${a},code=sm_${a}`);

interface Compiled {
  /** the object file */
  obj: string;
  /** the PTX (of a single virtual architecture; '' when there were several) */
  ptx: string;
  /** ptxas -v's report (stderr) */
  log: string;
}
const dirs: string[] = [];
const compiled = new Map<string, Promise<Compiled>>();
const ready = new Map<string, Compiled>();
const keyOf = (file: string, gencodes: string[]): string => `${file} ${gencodes.join(' ')}`;
/** native/cuda/<file>.cu compiled for `gencodes`, once per (file, gencodes), in a child process. */
function compileAsync(file: string, gencodes: string[]): Promise<Compiled> {
  const key = keyOf(file, gencodes);
  const started = compiled.get(key);
  if (started) return started;
  const dir = mkdtempSync(join(tmpdir(), 'l2e-nvcc-'));
  dirs.push(dir);
  const obj = join(dir, `${file}.o`);
  const args = ['-c', ...nvccArgs, ...gencodes, '-Xptxas', '-v', '--keep', '--keep-dir', dir, `native/cuda/${file}.cu`, '-o', obj];
  const done = new Promise<Compiled>((resolve, reject) => {
    const child = spawn('nvcc', args, { env: toolEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`nvcc failed on native/cuda/${file}.cu:\n${log}`));
      const ptx = join(dir, `${file}.ptx`);  // with several architectures: <file>.compute_NN.ptx each
      const out = { obj, ptx: existsSync(ptx) ? readFileSync(ptx, 'utf8') : '', log };
      ready.set(key, out);
      resolve(out);
    });
  });
  compiled.set(key, done);
  return done;
}
/** The compile of (file, gencodes), done by the beforeAll below. */
function compile(file: string, gencodes: string[]): Compiled {
  const out = ready.get(keyOf(file, gencodes));
  if (!out) throw new Error(`native/cuda/${file}.cu (${gencodes.join(' ')}) was not compiled before the tests: add it to the list in beforeAll`);
  return out;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The sm_90a forward kernels: source, kernel name, its instances (hd 64 and 128; sm90wg2: its tile
 * variants, hd 64 and 128 in the default, hd 128 in the others, each also with ping-pong, sm90pp), the
 * keys per tile of S = Q K^T (wgmma n) of an instance, from its template arguments
 * (flash_fwd_sm90wg2_kernel<D, kKeys, kStages, kPingPong>). */
const sm90aKernels = [
  { file: 'attention_sm90', kernel: 'flash_fwd_sm90_kernel', instances: 2, keys: (_args: string[]) => 64, setmaxnreg: false },
  { file: 'attention_sm90wg2', kernel: 'flash_fwd_sm90wg2_kernel', instances: 8, keys: (args: string[]) => Number(args[1]), setmaxnreg: true },
];

/** Every sm_90a kernel: the forwards above and the wgmma backward (attention_bwd_sm90.cu, hd 64 and 128 in 2 and 3 stages,
 * loaded by cp.async or by a TMA producer warp; and in 2 stages with the producer, adding dQ by TMA reduce-add). */
const sm90aAll = [...sm90aKernels, { file: 'attention_bwd_sm90', kernel: 'flash_bwd_sm90_kernel', instances: 10 }];

// The sm80 kernels near 255 registers, in the sm_80 and sm_90 images: the forward's instances (the
// default at hd 64 and 128 and the tile variants, kFwdVariants in attention_fwd.cu), whose 32-row warps
// hold 128 O and 64 S registers and spilled on one architecture or the other until the S loop was left
// rolled and O's rescale skipped when no row's max grew; the split-layout backward (dK, dV: 128).
const sm80Kernels = [
  { file: 'attention_fwd', kernel: 'flash_fwd_kernel', instances: 9 },
  { file: 'attention_bwd_split', kernel: 'flash_bwd_split_kernel', instances: 1 },
];

// The sm80 backward (attention_bwd.cu) where a block gets under 121 KiB of shared memory (compute
// capability 8.6 and 8.9: 99 KiB): the shapes the dispatcher runs there unless a variant is named, read
// from the source: kBwdVariants' default at hd 64, and at hd 128 the variant default_hd128 falls back to
// (0: the default's own). The fully unrolled hd-128 loop (k64q32w4s2: 255 registers, 24 / 36 bytes
// spilled) once ran there. The sm_86 image only: sm_89 compiles the same source to the same registers
// and spills (nvcc 13.0).
const sm86 = ['-gencode=arch=compute_86,code=sm_86'];
/** The mangled BwdShape<...> of each flash_bwd_kernel instance the dispatcher chooses at 99 KiB a block. */
function bwdShapesUnder121KiB(): { what: string; shape: string }[] {
  const src = readFileSync('native/cuda/attention_bwd.cu', 'utf8');
  const table = /kBwdVariants\[\] = \{([\s\S]*?)\n\};/.exec(src)?.[1] ?? '';
  const rows = [...table.matchAll(/\{"(\w+)",\s*(nullptr|\w+(?:<[^>]*>)?),\s*(nullptr|\w+(?:<[^>]*>)?)\}/g)].map((m) => ({ name: m[1]!, hd64: m[2]!, hd128: m[3]! }));
  const fallback = /sharedMemPerBlockOptin\s*>=[^?;]*\?\s*index\("\w+"\)\s*:\s*(?:index\("(\w+)"\)|0)\s*;/.exec(src);
  if (rows.length === 0 || !fallback) throw new Error('attention_bwd.cu: kBwdVariants or default_hd128\'s choice not found');
  const hd128 = fallback[1] === undefined ? rows[0] : rows.find((r) => r.name === fallback[1]);
  if (!hd128) throw new Error(`attention_bwd.cu: default_hd128 names '${fallback[1]}', not in kBwdVariants`);
  const shape = (launch: string): string => {
    const args = /^launch<(\d+), (\d+), (\d+), (\d+)(?:, (\d+))?>$/.exec(launch);
    if (!args) throw new Error(`attention_bwd.cu: '${launch}' is not a flash_bwd_kernel launch<D, Keys, kQ, Stages[, KUnroll]>`);
    const [D, keys, q, stages] = args.slice(1, 5).map(Number) as [number, number, number, number];
    const unroll = args[5] === undefined ? D / 16 : Number(args[5]);
    return `8BwdShapeI${[D, keys, q, stages, unroll].map((n) => `Li${n}E`).join('')}EE`;
  };
  return [
    { what: `hd 64 (${rows[0]!.name}: ${rows[0]!.hd64})`, shape: shape(rows[0]!.hd64) },
    { what: `hd 128 (${hd128.name}: ${hd128.hd128})`, shape: shape(hd128.hd128) },
  ];
}

// The training step's memory-bound passes (optimizer.cu: the norm's partial sums, the one-launch AdamW
// moving 28 bytes a parameter) keep no stack frame: one is local-memory traffic beside the bytes they
// exist to move. A reference to one of two kernel parameters, chosen at run time, put both in a 64-byte
// frame. Its five kernels in the sm_80 and sm_90 images.
const stackFree = [{ file: 'optimizer', instances: 5 }];

// Every compile the checks below read, before them, as many at once as there are cores (one nvcc is one
// process): 43 s one after another on 2 cores.
beforeAll(async () => {
  if (!nvcc) return;
  const jobs: [string, string[]][] = [...sm90aAll.map((k): [string, string[]] => [k.file, sm90a]), ...[...sm80Kernels, ...stackFree].map((k): [string, string[]] => [k.file, sm80and90]), ['attention_bwd', sm86]];
  const worker = async (): Promise<void> => {
    for (let job = jobs.shift(); job; job = jobs.shift()) await compileAsync(...job);
  };
  await Promise.all(Array.from({ length: Math.min(availableParallelism(), jobs.length) }, worker));
}, 600_000);

/** Function name -> SASS text, for the functions of the sm_90a image whose name contains `kernel`. */
function sm90aFunctions(sass: string, kernel: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const image of sass.split(/Fatbin elf code:/).slice(1)) {
    if (!/arch = sm_90a\b/.test(image)) continue;
    for (const fn of image.split(/\n\s*Function : /).slice(1)) {
      const name = fn.slice(0, fn.indexOf('\n')).trim();
      if (name.includes(kernel)) out.set(name, fn);
    }
  }
  return out;
}

// The sm_90a kernels must do their matrix products on wgmma: in the sm_90a image's SASS they hold HGMMA
// and no HMMA (mma.sync). Where cuobjdump is missing, the PTX checks below stand in.
describe.skipIf(!toolkit)(`sm_90a attention SASS ${toolkit ? '' : '(skipped: nvcc or cuobjdump not on the PATH)'}`, () => {
  it.each(sm90aAll)('the wgmma kernels of $file (hd 64 and 128) use HGMMA, not HMMA', ({ file, kernel, instances }) => {
    const { obj } = compile(file, sm90a);
    const fns = sm90aFunctions(execFileSync('cuobjdump', ['-sass', obj], { encoding: 'utf8', maxBuffer: 64 << 20, env: toolEnv }), kernel);
    expect([...fns.keys()].length, 'sm_90a kernels found').toBe(instances);
    for (const [name, body] of fns) {
      expect(body.includes('HGMMA'), `${name} has HGMMA`).toBe(true);
      expect(/\bHMMA\b/.test(body), `${name} has no HMMA`).toBe(false);
    }
  }, 600_000);
});

describe.skipIf(!nvcc)(`sm_90a attention PTX ${nvcc ? '' : '(skipped: nvcc not on the PATH)'}`, () => {
  it.each(sm90aKernels)('the forward kernels of $file (hd 64 and 128) issue wgmma, TMA loads and mbarrier waits, and no mma.sync', ({ file, kernel, instances, keys, setmaxnreg }) => {
    const entries = compile(file, sm90a).ptx.split(/\n\.entry /).slice(1).filter((e) => e.includes(kernel));
    expect(entries.length, 'kernels found').toBe(instances);
    for (const body of entries) {
      const args = [...(new RegExp(`${kernel}I((?:Li\\d+E)+)`).exec(body)?.[1] ?? '').matchAll(/Li(\d+)E/g)].map((m) => m[1]!);
      const D = args[0];
      expect(['64', '128']).toContain(D);
      // S = Q K^T: m64n{keys}k16 in D/16 k-steps, both operands from shared memory (two descriptors);
      // O += P V: m64n{D}k16 with P from registers ({4 registers}, then V's descriptor)
      const n = keys(args);
      expect([64, 128]).toContain(n);
      expect(body).toMatch(new RegExp(`wgmma\\.mma_async\\.sync\\.aligned\\.m64n${n}k16\\.f32\\.bf16\\.bf16 \\{[^}]*\\},\\s*%rd\\d+,\\s*%rd\\d+`));
      expect(body).toMatch(new RegExp(`wgmma\\.mma_async\\.sync\\.aligned\\.m64n${D}k16\\.f32\\.bf16\\.bf16 \\{[^}]*\\}, \\{%r\\d+,\\s*%r\\d+,\\s*%r\\d+,\\s*%r\\d+\\},\\s*%rd\\d+`));
      expect(body).toMatch(/cp\.async\.bulk\.tensor\.3d\.shared::cluster\.global\.tile\.mbarrier::complete_tx::bytes/);
      expect(body).toMatch(/mbarrier\.try_wait\.parity/);
      expect(body).not.toMatch(/\bmma\.sync/);
      if (setmaxnreg) {  // the producer warpgroup gives registers to the consumers
        expect(body).toMatch(/setmaxnreg\.dec\.sync\.aligned\.u32 24;/);
        expect(body).toMatch(/setmaxnreg\.inc\.sync\.aligned\.u32 240;/);
      }
    }
  }, 600_000);

  it('the backward kernels of attention_bwd_sm90 (hd 64 and 128, 2 and 3 stages, cp.async or TMA, dQ by atomics or TMA reduce-add) do their five products on wgmma, and none on mma.sync', () => {
    const entries = compile('attention_bwd_sm90', sm90a).ptx.split(/\n\.entry /).slice(1).filter((e) => e.includes('flash_bwd_sm90_kernel'));
    expect(entries.length, 'kernels found').toBe(10);
    const mma = (n: number | string, a: string, tail: string) =>
      new RegExp(`wgmma\\.mma_async\\.sync\\.aligned\\.m64n${n}k16\\.f32\\.bf16\\.bf16 \\{[^}]*\\},\\s*${a},\\s*%rd\\d+,\\s*p,\\s*${tail};`);
    for (const body of entries) {
      const D = Number(/flash_bwd_sm90_kernelILi(\d+)E/.exec(body)?.[1]);
      expect([64, 128]).toContain(D);
      // S^T = K Q^T, dP^T = V dO^T: both operands K-major from shared memory
      expect(body).toMatch(mma(64, '%rd\\d+', '1, 1, 0, 0'));
      // dV += P^T dO, dK += dS^T Q: A from registers, B N-major (imm-trans-b)
      expect(body).toMatch(mma(D, '\\{%r\\d+,\\s*%r\\d+,\\s*%r\\d+,\\s*%r\\d+\\}', '1, 1, 1'));
      // dQ = dS K over half the columns: both MN-major (imm-trans-a, imm-trans-b)
      expect(body).toMatch(mma(D / 2, '%rd\\d+', '1, 1, 1, 1'));
      expect(body).toMatch(/fence\.proxy\.async\.shared::cta/);
      expect(body).not.toMatch(/\bmma\.sync/);
      // dQ into dq_accum: fp32 reductions per element, or (template flag kTmaDq) one TMA reduce-add per tile
      const tmaDq = /flash_bwd_sm90_kernelILi\d+ELi\d+ELb1ELb1E/.test(body);
      if (tmaDq) {
        expect(body).toMatch(/cp\.reduce\.async\.bulk\.tensor\.3d\.global\.shared::cta\.add\.tile\.bulk_group/);
        expect(body).toMatch(/cp\.async\.bulk\.wait_group\.read 0;/);
        expect(body).not.toMatch(/(red|atom)\.global\.add\.f32/);
      } else {
        expect(body).toMatch(/(red|atom)\.global\.add\.f32/);
        expect(body).not.toMatch(/cp\.reduce\.async\.bulk/);
      }
      const producer = /flash_bwd_sm90_kernelILi\d+ELi\d+ELb1E/.test(body);
      if (producer) {  // a producer warpgroup's TMA loads completing on mbarriers; registers to the consumers
        expect(body).toMatch(/cp\.async\.bulk\.tensor\.3d\.shared::cluster\.global\.tile\.mbarrier::complete_tx::bytes/);
        expect(body).toMatch(/mbarrier\.try_wait\.parity/);
        expect(body).toMatch(/setmaxnreg\.dec\.sync\.aligned\.u32 24;/);
        expect(body).toMatch(/setmaxnreg\.inc\.sync\.aligned\.u32 240;/);
        expect(body).not.toMatch(/cp\.async\.c[ag]\.shared/);
      } else {
        expect(body).toMatch(/cp\.async\.c[ag]\.shared/);
        expect(body).not.toMatch(/cp\.async\.bulk/);
      }
    }
    expect(entries.filter((e) => /flash_bwd_sm90_kernelILi\d+ELi\d+ELb1E/.test(e)).length, 'TMA-fed kernels').toBe(6);
    expect(entries.filter((e) => /flash_bwd_sm90_kernelILi\d+ELi\d+ELb1ELb1E/.test(e)).length, 'dQ by TMA').toBe(2);
  }, 600_000);
});

// ptxas must fit every sm_90a forward kernel in registers: a spill puts local-memory traffic between the
// asynchronous products and their waits. For the two-warpgroup kernels this holds only because ptxas
// allocates the consumers' code within the 240 registers their setmaxnreg.inc asks for (not the 168 a
// 384-thread block gets at launch), which it silently stops doing when the kernel body holds a trap
// (sm90.cuh, bar_wait). Needs nvcc only.
/** Function name -> the spill bytes (stores + loads) ptxas reports for it (`-Xptxas -v` output). */
function ptxasSpills(log: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = /Function properties for (\S+)\n\s*\d+ bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/g;
  for (const m of log.matchAll(re)) out.set(m[1]!, Number(m[2]) + Number(m[3]));
  return out;
}

describe.skipIf(!nvcc)(`attention kernel registers ${nvcc ? '' : '(skipped: nvcc not on the PATH)'}`, () => {
  it.each(sm90aAll)('ptxas spills no register of the wgmma kernels of $file', ({ file, kernel, instances }) => {
    const spills = [...ptxasSpills(compile(file, sm90a).log)].filter(([name]) => name.includes(kernel));
    expect(spills.length, 'kernels found').toBe(instances);
    for (const [name, bytes] of spills) expect(bytes, `${name} spills`).toBe(0);
  }, 600_000);
  // ptxas serialises a kernel's wgmma (a wait after each product, so no product overlaps the softmax or
  // another product) when it finds non-wgmma code reading an accumulator between a product and its wait,
  // and says so as a "Potential Performance Loss" note (C7514 and its kin), which does not fail the build.
  it.each(sm90aAll)('ptxas serialises no wgmma of the kernels of $file', ({ file }) => {
    const notes = compile(file, sm90a).log.split('\n').filter((line) => /Potential Performance Loss/.test(line));
    expect(notes).toEqual([]);
  }, 600_000);
  it.each(sm80Kernels)('ptxas spills no register of the kernels of $file (sm_80 and sm_90 images)', ({ file, kernel, instances }) => {
    // ptxas -v names each function once per image: count the reports, not the distinct names
    const reports = [...compile(file, sm80and90).log.matchAll(/Function properties for (\S+)\n\s*\d+ bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/g)].filter((m) => m[1]!.includes(kernel));
    expect(reports.length, 'kernel images found').toBe(2 * instances);
    for (const m of reports) expect(Number(m[2]) + Number(m[3]), `${m[1]} spills`).toBe(0);
  }, 600_000);
  it('ptxas spills no register of the backward kernels run where a block gets under 121 KiB (attention_bwd, sm_86 image)', () => {
    const spills = [...ptxasSpills(compile('attention_bwd', sm86).log)].filter(([name]) => name.includes('flash_bwd_kernel'));
    for (const { what, shape } of bwdShapesUnder121KiB()) {
      const found = spills.filter(([name]) => name.includes(shape));
      expect(found.length, `${what}: sm_86 kernel found`).toBe(1);
      expect(found[0]![1], `${what} spills (bytes stored + loaded)`).toBe(0);
    }
  }, 600_000);
  it.each(stackFree)('the kernels of $file keep no stack frame (sm_80 and sm_90 images)', ({ file, instances }) => {
    const frames = [...compile(file, sm80and90).log.matchAll(/Function properties for (\S+)\n\s*(\d+) bytes stack frame/g)];
    expect(frames.length, 'kernel images found').toBe(2 * instances);
    for (const m of frames) expect(Number(m[2]), `${m[1]} stack bytes`).toBe(0);
  }, 600_000);
});
