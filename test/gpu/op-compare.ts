// CUDA op against CPU op on the same inputs, for ops.test.ts and the attention kernel suites
// (attention-*.test.ts, each file a process of its own: a fault of a kernel never run on a GPU ends the
// CUDA context for the rest of its process only). Inputs are rounded to bf16 first, so both backends
// see identical values and only the arithmetic differs. Outputs are poisoned with NaN before each call
// (native/testing/backend_ops_binding.cpp), and relErr is NaN when any element is, which fails every bound.
//
// Bounds (normwise ‖cuda − cpu‖ / ‖cpu‖):
//  - a result stored in bf16 carries a relative rounding error of at most 2^-9 per element; a
//    quantity rounded twice (transformers' RMSNorm order, bias added to a rounded product) at most
//    ~2^-8. Dot products accumulate in fp32 (cuBLAS COMPUTE_32F, our mma), whose error ~K·2^-24 is
//    far below that for K ≤ 11008, so: EXACT_BF16 = 2^-8 ≈ 3.9e-3 per stored result, 2^-7 with a
//    double rounding.
//  - attention: P is rounded to bf16 before P·V (as flash-attention does): another 2^-9 per weight,
//    averaged over keys, plus the output's own rounding: ATTN = 5e-3 normwise (measured in the CPU
//    emulation of the kernels: 1.4e-3 to 1.9e-3). Backward: dS = P (dP − D) subtracts nearly equal
//    numbers when the softmax is peaked, which can amplify those roundings, and dq, dk, dv are
//    rounded once more: ATTN_BWD = 1e-2 (measured 1.6e-3 to 2.4e-3).
//  - attention per row (one token of one head, maxRowRelErr): no averaging over rows, so the worst
//    row carries up to ~2^-8 (two bf16 roundings) plus the luck of its few keys: ATTN_ROW = 1e-2
//    (measured 2.6e-3 to 3.0e-3), ATTN_BWD_ROW = 1.5e-2 (measured up to 4.1e-3). A wrong fragment
//    mapping or a mis-scheduled tile puts whole rows off by O(1), far above either.
//  - fp32-only ops (pooling sums, L2 norm, loss, optimizer): 1e-5 or exact.
import { appendFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { Rng } from '../../src/util/random.js';
import { addon, bf16Array, cuSeqlens, emulated, hasNaN, maxRowRelErr, randBf16, relErr, runOp, sized, type OpArgs } from './gpu-helpers.js';

export const EXACT_BF16 = 2 ** -8;
export const DOUBLE_ROUNDED = 2 ** -7;
export const ATTN = 5e-3;
export const ATTN_BWD = 1e-2;
export const ATTN_ROW = 1e-2;
export const ATTN_BWD_ROW = 1.5e-2;
export const F32 = 1e-5;

// Ops compared in this file's run, and the measured errors (L2E_GPU_ERRORS=FILE appends them as JSON lines).
export const compared = new Set<string>();
const measured: { op: string; output: string; kind: string; error: number; bound: number }[] = [];
/** Notes `op` compared, and one output's measured error against its bound. */
export function record(op: string, output: string, kind: string, error: number, bound: number): void {
  compared.add(op);
  measured.push({ op, output, kind, error, bound });
}

/** For afterAll: appends this file's measured errors to $L2E_GPU_ERRORS when it is set. */
export function writeMeasuredErrors(): void {
  const file = process.env['L2E_GPU_ERRORS'];
  if (file && measured.length > 0) appendFileSync(file, measured.map((m) => JSON.stringify({ ...m, emulated })).join('\n') + '\n');
}

export type BackendOutputs = { cpu: Record<string, Float32Array>; cuda: Record<string, Float32Array> };

export function compare(op: string, args: OpArgs, bounds: Record<string, number>): BackendOutputs {
  const cpu = runOp('cpu', op, args);
  const cuda = runOp('cuda', op, args);
  for (const [name, bound] of Object.entries(bounds)) {
    expect(cpu[name], `${op}: cpu output ${name}`).toBeDefined();
    expect(hasNaN(cpu[name]!), `${op}: cpu ${name} has NaN`).toBe(false);
    const err = relErr(cuda[name]!, cpu[name]!);
    record(op, name, 'normwise', err, bound);
    expect(err, `${op}: ${name} relative error ${err}`).toBeLessThanOrEqual(bound);
  }
  return { cpu, cuda };
}

/** Per-row (one token of one head: hd values) relative error, bounded separately from the normwise one. */
export function compareRows(op: string, r: BackendOutputs, dim: number, bounds: Record<string, number>): void {
  for (const [name, bound] of Object.entries(bounds)) {
    const err = maxRowRelErr(r.cuda[name]!, r.cpu[name]!, dim);
    record(op, name, 'max per row', err, bound);
    expect(err, `${op}: ${name} worst row relative error ${err}`).toBeLessThanOrEqual(bound);
  }
}

/** An attention case: name, head dim, query heads, kv heads, sequence lengths. */
export type AttnCase = [string, number, number, number, number[]];

export const attnCases: AttnCase[] = [
  ['hd64 MHA mixed lengths', 64, 4, 4, [1, 17, 64, 65, 130]],
  ['hd128 GQA 4/2', 128, 4, 2, sized([1, 3, 200, 333], [1, 3, 70, 133])],
  ['hd128 GQA 4/1 long', 128, 4, 1, [sized(1000, 300)]],
  // 5 key tiles: more than the forward's 3 pipeline stages at hd 64, so stages are refilled; the
  // backward's pipeline crosses from one query head of a kv group to the next, and the last rows'
  // dQ sums atomics from 5 key blocks
  ['hd64 GQA 6/2, 263 tokens (pipeline refills, dQ over 5 key blocks)', 64, 6, 2, [263, 2]],
  ['hd16 (simple kernel)', 16, 4, 1, [5, 40, 1]],
  // 8192 tokens under emulation would take an hour: 700 still spans 11 query and key tiles
  [`hd128 one ${sized(8192, 700)}-token sequence`, 128, 2, 1, [sized(8192, 700)]],
  // 8 key tiles of 128 (the sm90wg2 kernel's at hd 64): its 3-stage ring wraps twice
  ['hd64 one 1000-token sequence', 64, 2, 1, [1000]],
];

// The tile variants' structural cases: odd and even tile counts per sequence (a 128-row block with
// one valid half), 1-token sequences, partial tiles, several tiles per sequence, GQA and MQA.
export const variantCases: AttnCase[] = [
  ['hd128 GQA 4/2, lengths 1..200 (odd and even tile counts, partial tiles)', 128, 4, 2, [1, 64, 65, 129, 200]],
  ['hd128 MQA 3/1, 5 and 3 tiles', 128, 3, 1, [sized(300, 263), 130]],
];

// Under the sanitizers (CI runs these files again on the ASan + UBSan emulation build, at 3-4x their
// time) each kernel and variant named explicitly takes the structural cases only: the long sequences
// (a pipeline wrapping over many tiles) repeat the same accesses over more tiles, and run there for the
// default kernels (ops.test.ts), and for every kernel in the plain emulation run.
const sanitized = 'sanitizerLeakCheck' in (addon() as object);
export const structural = (name: string): boolean => !sanitized || !/-token sequence|4\/1 long/.test(name);

/** Each of `kernels` (attentionKernel names) on every structural hd-64 and hd-128 attention case. */
export const kernelCases = (kernels: string[]) =>
  kernels.flatMap((kernel) =>
    attnCases
      .filter(([name, hd]) => (hd === 64 || hd === 128) && structural(name))
      .map(([name, hd, nh, nkv, lens]) => [kernel, name, hd, nh, nkv, lens] as const),
  );

/** The addon's tile variants of one kind (cudaAttentionVariants: "fwd:…", "bwd:…", "wg2:…"), defaults first. */
export const listedVariants = (): string[] => addon().cudaAttentionVariants?.() ?? [];
export const variantsOf = (kind: 'fwd' | 'bwd' | 'wg2'): string[] =>
  listedVariants().filter((v) => v.startsWith(`${kind}:`)).map((v) => v.slice(4));

export function attnInputs(rng: Rng, hd: number, nh: number, nkv: number, lens: number[]): OpArgs {
  const cu = cuSeqlens(lens);
  const T = cu[lens.length]!;
  return { q: randBf16(rng, T * nh * hd, 2), k: randBf16(rng, T * nkv * hd, 2), v: randBf16(rng, T * nkv * hd), cu, nh, nkv, hd };
}

/** The forward against the CPU's; choice: the kernel and variant. */
export function attnForward(rng: Rng, hd: number, nh: number, nkv: number, lens: number[], choice: OpArgs = {}): void {
  const r = compare('attention', { ...attnInputs(rng, hd, nh, nkv, lens), ...choice }, { out: ATTN, lse: 1e-4 });
  compareRows('attention', r, hd, { out: ATTN_ROW });
}

// The backward against the CPU's on random dO, with out and lse from the CPU forward (out rounded to
// bf16, as the CUDA forward would store it); choice: the kernel and variant.
export function attnBackward(rng: Rng, hd: number, nh: number, nkv: number, lens: number[], choice: OpArgs = {}): void {
  const a = attnInputs(rng, hd, nh, nkv, lens);
  const fwd = runOp('cpu', 'attention', a);
  const T = (a['cu'] as Int32Array)[lens.length]!;
  const args: OpArgs = { ...a, out: bf16Array(fwd['out']!), lse: fwd['lse']!, dout: randBf16(rng, T * nh * hd), ...choice };
  const r = compare('attention_backward', args, { dq: ATTN_BWD, dk: ATTN_BWD, dv: ATTN_BWD });
  compareRows('attention_backward', r, hd, { dq: ATTN_BWD_ROW, dk: ATTN_BWD_ROW, dv: ATTN_BWD_ROW });
}
