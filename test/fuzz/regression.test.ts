// Every fuzz target on its seeds, its kept corpus and every crash the fuzzer ever found
// (test/fuzz/crashes/<target>/): each must give a correct result or a clear error. Plus the engine's
// own checks: a planted bug is found, and coverage guides (a multi-byte magic is reached).
import { afterAll, describe, expect, it } from 'vitest';
import { check, fuzz, type FuzzTarget } from './engine.js';
import { keptInputs } from './corpus.js';
import { closeHubServer, removeScratch, targets } from './targets.js';

afterAll(async () => {
  await closeHubServer();
  removeScratch();
});

describe('fuzz regression cases', () => {
  for (const t of targets) {
    it(`${t.name}: seeds, corpus and crashes`, async () => {
      const cases = [
        ...t.seeds().map((data, i) => ({ file: `seed ${i}`, data })),
        ...keptInputs('corpus', t.name),
        ...keptInputs('crashes', t.name),
      ];
      const failures: string[] = [];
      for (const c of cases) {
        const reason = await check(t, c.data);
        if (reason) failures.push(`${c.file}: ${reason}`);
      }
      expect(failures).toEqual([]);
    });
  }
});

describe('the fuzz engine', () => {
  // a planted bug behind a 4-byte magic, compared byte by byte. With the letters as dictionary tokens
  // each step is about 1 in 100 mutations: coverage feedback keeps every step, so it is found in
  // hundreds of runs, where blind mutation would need about 100^4.
  const planted: FuzzTarget = {
    name: 'planted',
    seeds: () => [new TextEncoder().encode('hello')],
    dictionary: ['F', 'U', 'Z'],
    run: (d) => {
      if (d[0] === 0x46) {
        if (d[1] === 0x55) {
          if (d[2] === 0x5a) {
            if (d[3] === 0x5a) throw new TypeError('planted bug');
          }
        }
      }
    },
    accept: () => false,
  };

  it('finds a planted bug by following coverage', async () => {
    const s = await fuzz(planted, { seconds: 15, seed: 7, corpus: [], include: (url) => url.includes('regression.test') });
    expect(s.findings).toHaveLength(1);
    expect(Buffer.from(s.findings[0]!.input.subarray(0, 4)).toString('latin1')).toBe('FUZZ');
    expect(s.findings[0]!.reason).toMatch(/^unexpected TypeError: planted bug/);
    expect(s.corpus).toBeGreaterThanOrEqual(4); // one entry per byte of the magic reached
  });

  it('reports a slow input and accepts a clear error', async () => {
    const t: FuzzTarget = {
      name: 'slow',
      seeds: () => [],
      run: (d) => {
        if (d[0] === 1) throw new Error('in: bad first byte');
        const until = Date.now() + 30;
        while (Date.now() < until);
      },
      accept: (e) => e instanceof Error && e.message.startsWith('in: '),
      slowMs: 10,
    };
    expect(await check(t, Uint8Array.of(1))).toBeNull();
    expect(await check(t, Uint8Array.of(2))).toMatch(/^slow: \d+ ms \(limit 10 ms\)$/);
  });
});
