// The device pool's block arena (native/core/block_arena.h), replayed on a fake segment source through
// the test addon's arenaReplay (native/testing/arena_binding.cpp): ranges never overlap a live one and
// lie inside a live segment, alignment, reuse, split and coalesce, best fit, source failure, a seeded
// random trace checked after every op, and a training-like trace against the no-split policy.
import { describe, expect, it } from 'vitest';

import { testingAddon } from './helpers/testing-addon.mjs';
import { seededRandom } from './helpers/tinyModel.js';

type Op = [0, number] | [1, number] | [2];
interface Stats {
  segmentAllocs: number; segmentReleases: number; segmentsLive: number;
  reserved: number; reservedPeak: number; live: number; livePeak: number;
}
interface Replay {
  results: number[]; failures: number[]; error: string; violation: string; stats: Stats; heldAfterDestruction: number;
}
interface ArenaNatives {
  arenaReplay(trace: Op[], options: { capacity: number; split?: boolean; exactSizes?: boolean; releaseBeforeGrowing?: boolean; checkEvery?: boolean }): Replay;
}

const { arenaReplay } = testingAddon<ArenaNatives>();
const KiB = 1024, MiB = 1024 * 1024;
const BIG = 2 ** 40; // a source that never fails

/** Replays and expects no invariant broken and every segment released when the arena goes. */
function replay(trace: Op[], options: Parameters<ArenaNatives['arenaReplay']>[1] = { capacity: BIG }): Replay {
  const r = arenaReplay(trace, options);
  expect(r.violation).toBe('');
  expect(r.heldAfterDestruction).toBe(0);
  return r;
}

describe('block arena', () => {
  it('rounds to 512 B, serves requests up to 1 MiB from one 2 MiB segment, gives large ones segments rounded to 2 MiB', () => {
    const sizes = [1, 100, 513, 3000, MiB, MiB + 1, 5_000_000];
    const r = replay(sizes.map((b): Op => [0, b]));
    for (const a of r.results) expect(a % 512).toBe(0);
    const [a1, a2, a3, a4, a5] = r.results;
    expect([a2 - a1, a3 - a2, a4 - a3, a5 - a4]).toEqual([512, 512, 1024, 3072]); // carved from one segment
    expect(r.stats.segmentAllocs).toBe(3); // 2 MiB small, 2 MiB (for 1 MiB + 512), 6 MiB (for 5e6)
    expect(r.stats.reserved).toBe(10 * MiB);
    // 1 MiB + 512 keeps its whole segment (a remainder under 1 MiB is not worth a block); the 6 MiB
    // segment of 5e6 bytes is split (its remainder of 1291264 bytes can serve a large request)
    expect(r.stats.live).toBe(512 + 512 + 1024 + 3072 + MiB + 2 * MiB + 5_000_192);
  });

  it('reuses a freed block without a new segment', () => {
    const r = replay([[0, 5 * MiB], [1, 0], [0, 4 * MiB], [0, 1000], [1, 3], [0, 900]]);
    expect(r.results[2]).toBe(r.results[0]);
    expect(r.results[5]).toBe(r.results[3]);
    expect(r.stats.segmentAllocs).toBe(2);
  });

  it('splits a segment and coalesces the freed pieces back into one free block', () => {
    // three small blocks side by side, freed middle first: one free block again, so the next 1 MiB
    // request starts at the segment's start and the wholly-free segment is released
    const r = replay([[0, 4096], [0, 4096], [0, 4096], [1, 1], [1, 0], [1, 2], [0, MiB], [1, 6], [2]]);
    const [a, b, c] = r.results;
    expect([b - a, c - b]).toEqual([4096, 4096]);
    expect(r.results[6]).toBe(a);
    expect(r.stats.segmentReleases).toBe(1);
    expect(r.stats.reserved).toBe(0);
    // large: a 6 MiB segment split for 5e6 bytes; its 1 MiB+ remainder serves the next large request
    const l = replay([[0, 5_000_000], [0, 1_200_000], [1, 0], [1, 1], [2]]);
    expect(l.results[1]).toBe(l.results[0] + 5_000_192);
    expect(l.stats.segmentAllocs).toBe(1);
    expect(l.stats.segmentReleases).toBe(1);
  });

  it('release before growing: the wholly-free segments go before a new one is taken, the others stay', () => {
    // a 4 MiB and a 6 MiB segment freed, a 2 MiB small segment live; 7 MiB fits neither
    const trace: Op[] = [[0, 3 * MiB], [0, 5 * MiB], [0, 1000], [1, 0], [1, 1], [0, 7 * MiB], [0, 3 * MiB]];
    const r = replay(trace, { capacity: BIG, releaseBeforeGrowing: true });
    expect(r.stats.segmentReleases).toBe(2);
    expect(r.stats.segmentAllocs).toBe(5); // 4, 6, 2, then 8 for 7 MiB and 4 for 3 MiB (the free ones were gone)
    expect(r.stats.reserved).toBe(2 * MiB + 8 * MiB + 4 * MiB);
    // without it the 3 MiB request is served from the kept 4 MiB segment, and both stay
    const k = replay(trace);
    expect(k.results[6]).toBe(k.results[0]);
    expect([k.stats.segmentReleases, k.stats.segmentAllocs, k.stats.reserved]).toEqual([0, 4, 20 * MiB]);
  });

  it('best fit: the smallest free block that holds the request', () => {
    // 64 KiB, 16 KiB and 32 KiB blocks kept apart by live separators, then freed
    const r = replay([
      [0, 64 * KiB], [0, 512], [0, 16 * KiB], [0, 512], [0, 32 * KiB], [0, 512],
      [1, 0], [1, 2], [1, 4], [0, 20 * KiB], [0, 16 * KiB], [0, 40 * KiB],
    ]);
    expect(r.results[9]).toBe(r.results[4]); // 32 KiB for 20 KiB
    expect(r.results[10]).toBe(r.results[2]); // 16 KiB exactly
    expect(r.results[11]).toBe(r.results[0]); // 64 KiB for 40 KiB
    expect(r.stats.segmentAllocs).toBe(1);
  });

  it('on source failure releases the wholly-free segments and retries once; the error when that fails too', () => {
    const trace: Op[] = [
      [0, 3 * MiB], // 4 MiB segment
      [0, 1000], // 2 MiB small segment
      [1, 0], // the 4 MiB segment is wholly free
      [0, 5 * MiB], // 6 MiB: 12 > 8 MiB fails, the free 4 MiB one is released, the retry fits (all of it live)
      [0, 3 * MiB], // 4 MiB: fails twice (nothing wholly free)
    ];
    const r = replay(trace, { capacity: 8 * MiB });
    expect(r.failures).toEqual([4]);
    expect(r.results[3]).toBeGreaterThan(0);
    expect(r.stats.segmentAllocs).toBe(6); // 4, 2, 6 (failed), 6, 4 (failed), 4 (failed)
    expect(r.stats.segmentReleases).toBe(1);
    expect(r.stats.reserved).toBe(8 * MiB);
    expect(r.error).toBe('CUDA out of memory allocating 4 MiB (0 MiB free of 8 MiB; this model holds 6 MiB): the fake source is full');
  });

  for (const mode of [{ split: true }, { split: true, releaseBeforeGrowing: true }, { split: false }, { split: false, exactSizes: true }]) {
    it(`a seeded random trace of 6000 ops keeps every invariant after every op (${JSON.stringify(mode)})`, () => {
      const rand = seededRandom(13);
      const trace: Op[] = [];
      const live: number[] = [];
      for (let k = 0; k < 6000; k++) {
        const u = rand();
        if (u < 0.01) trace.push([2]);
        else if (u < (live.length < 40 ? 0.7 : 0.4) || live.length === 0) {
          // log-uniform: 1 B .. 1 MiB (small) or 1 MiB .. 32 MiB (large)
          const bytes = rand() < 0.6 ? Math.ceil(2 ** (20 * rand())) : Math.ceil(MiB * 2 ** (5 * rand()));
          live.push(trace.length);
          trace.push([0, bytes]);
        } else trace.push([1, live.splice(Math.floor(rand() * live.length), 1)[0]]);
      }
      const r = replay(trace, { capacity: 256 * MiB, ...mode });
      expect(r.failures.length).toBeGreaterThan(0); // the capacity was reached, and survived
      expect(r.failures.length).toBeLessThan(trace.length / 10);
      expect(r.stats.segmentReleases).toBeGreaterThan(0);
      expect(r.stats.reservedPeak).toBeLessThanOrEqual(256 * MiB);
    });
  }

  // A training-like trace: 8 layers of a d = 1024, ffn = 2816 model, bf16 activations of a batch of
  // T tokens kept through the forward and freed in reverse in the backward, with gradient temporaries
  // and small per-row statistics; T follows the recipe's changing length mix (growing and shrinking
  // between steps). Weights and their gradients stay live throughout.
  function trainingTrace(steps: number): Op[] {
    const rand = seededRandom(600);
    const trace: Op[] = [];
    const alloc = (bytes: number): number => (trace.push([0, bytes]), trace.length - 1);
    for (let l = 0; l < 8; l++) for (const n of [3 * 1024 * 1024, 1024 * 1024, 3 * 2816 * 1024]) alloc(2 * n), alloc(2 * n);
    for (let s = 0; s < steps; s++) {
      const T = 8 * Math.round(16 + 240 * rand() ** 2) + 24 * Math.round(16 + 200 * rand() ** 2);
      const acts: number[] = [];
      for (let l = 0; l < 8; l++)
        for (const w of [1024, 3 * 1024, 1024, 2 * 2816, 2816, 1024]) acts.push(alloc(2 * T * w)), acts.push(alloc(4 * T));
      for (const i of acts.reverse()) {
        const g = alloc(trace[i][1] as number); // the activation's gradient, briefly
        trace.push([1, i]);
        trace.push([1, g]);
      }
    }
    return trace;
  }
  const train = trainingTrace(60);
  const arena = arenaReplay(train, { capacity: BIG, checkEvery: false });
  const nosplit = arenaReplay(train, { capacity: BIG, split: false, checkEvery: false });
  // the first 10 steps are a prefix of the trace: what follows them is the count after a warm-up
  const warm = trainingTrace(10);
  const after = (split: boolean, all: Replay): number =>
    all.stats.segmentAllocs - arenaReplay(warm, { capacity: BIG, split, checkEvery: false }).stats.segmentAllocs;
  const [arenaLate, nosplitLate] = [after(true, arena), after(false, nosplit)];
  const gib = (b: number): string => (b / 2 ** 30).toFixed(2);
  it(
    `training-like trace, 60 steps: ${arena.stats.segmentAllocs} segment allocations (${arenaLate} after the first 10 steps) and ` +
      `${gib(arena.stats.reservedPeak)} GiB peak reserved, against ${nosplit.stats.segmentAllocs} (${nosplitLate}) and ` +
      `${gib(nosplit.stats.reservedPeak)} GiB without splitting (${gib(arena.stats.livePeak)} GiB peak live)`,
    () => {
      for (const r of [arena, nosplit]) {
        expect(r.violation).toBe('');
        expect(r.failures).toEqual([]);
      }
      expect(arena.stats.live).toBe(8 * 2 * 2 * (3 * MiB + MiB + 3 * 2816 * KiB)); // only the weights and gradients are left
      expect(arena.stats.segmentAllocs).toBeLessThan(nosplit.stats.segmentAllocs / 2);
      expect(arenaLate).toBeLessThan(nosplitLate);
      expect(arena.stats.reservedPeak).toBeLessThan(nosplit.stats.reservedPeak);
    },
  );

  // The host pool's policy (cpu/host_pool.h): the free segments released before each new one. The
  // reserved peak comes down to near the live peak, and the steps after the warm-up still take no
  // new segment (the large ones made for the longest steps serve the rest).
  const host = arenaReplay(train, { capacity: BIG, releaseBeforeGrowing: true, checkEvery: false });
  const hostLate = host.stats.segmentAllocs - arenaReplay(warm, { capacity: BIG, releaseBeforeGrowing: true, checkEvery: false }).stats.segmentAllocs;
  it(
    `training-like trace, releasing before growing: ${host.stats.segmentAllocs} segment allocations (${hostLate} after the first ` +
      `10 steps) and ${gib(host.stats.reservedPeak)} GiB peak reserved (${gib(host.stats.livePeak)} GiB peak live)`,
    () => {
      expect(host.violation).toBe('');
      expect(host.stats.live).toBe(arena.stats.live);
      expect(host.stats.reservedPeak).toBeLessThan(1.1 * host.stats.livePeak);
      expect(hostLate).toBeLessThanOrEqual(arenaLate);
    },
  );
});
