// Progress after a resume: rate and ETA count only the steps this run did, from when it started
// (the steps before the resume are in done/total, not in the rate), so neither the first step
// (a made-up 1000/s) nor the resumed steps (575/s) inflate it. And the end-of-run summary counts
// only this run's steps.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { canDraw, ProgressBar } from '../src/cli/progress.js';
import { summary } from '../src/cli/train.js';

function fakeStream(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.split('\n').filter((l) => l !== '') };
}

describe('ProgressBar', () => {
  afterEach(() => vi.useRealTimers());

  it('with `initial` (a resumed run) counts only this bar’s work in the rate and ETA', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const { stream, lines } = fakeStream();
    const bar = new ProgressBar({ label: 'train', total: 20, initial: 10, plainLines: true, stream });
    vi.advanceTimersByTime(1000);
    bar.update(11, 'loss 0.5'); // 55%: no new tenth since the 50% it started at
    vi.advanceTimersByTime(1000);
    bar.update(12, 'loss 0.4');
    vi.advanceTimersByTime(2000);
    bar.update(14, 'loss 0.3');
    expect(lines()).toEqual(['train 12/20 1.0/s ETA 8s loss 0.4', 'train 14/20 1.0/s ETA 6s loss 0.3']);
  });

  it('without `initial` behaves as before: rate over all the work since it started', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const { stream, lines } = fakeStream();
    const bar = new ProgressBar({ label: 'encode', total: 10, unit: ' texts', plainLines: true, stream });
    vi.advanceTimersByTime(4000);
    bar.update(2);
    expect(lines()).toEqual(['encode 2/10 texts 0.5 texts/s ETA 16s ']);
  });

  // eval and mine make their bar at a stage's first report, its first block already done
  it('with `unclocked` (a bar made at its first report) clocks the rate from there, and still prints that report', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const { stream, lines } = fakeStream();
    const bar = new ProgressBar({ label: 'embed', total: 300, plainLines: true, unclocked: 32, stream });
    vi.advanceTimersByTime(1);
    bar.update(32); // 'embed 32/300 32000.0/s' before
    vi.advanceTimersByTime(1000);
    bar.update(64);
    expect(lines()).toEqual(['embed 32/300 ?/s ETA ? ', 'embed 64/300 32.0/s ETA 7s ']);
  });
});

describe('whether a bar is drawn', () => {
  afterEach(() => vi.unstubAllEnvs());
  it('on a terminal, not with TERM=dumb (it drew \\r and escapes there), not in CI unless CI is "false" or "0"', () => {
    const tty = { isTTY: true };
    const cases: [Record<string, string>, boolean][] = [
      [{ TERM: 'xterm', CI: '' }, true],
      [{ TERM: 'dumb', CI: '' }, false],
      [{ TERM: 'xterm', CI: 'true' }, false],
      [{ TERM: 'xterm', CI: 'false' }, true],
      [{ TERM: 'xterm', CI: '0' }, true],
    ];
    for (const [env, drawn] of cases) {
      for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
      expect(canDraw(tty), JSON.stringify(env)).toBe(drawn);
    }
    expect(canDraw({ isTTY: false })).toBe(false);
  });
});

describe('train summary', () => {
  it('counts only this run’s steps, and its speed over the time spent in them', () => {
    expect(summary({ step: 4, startStep: 0, seconds: 2, lastLoss: 0.41234 }, '3s')).toBe('4 steps in 3s (2.00 steps/s), last loss 0.4123');
    expect(summary({ step: 6, startStep: 4, seconds: 0.5, lastLoss: 0.3 }, '2s')).toBe(
      '2 steps in 2s (4.00 steps/s: steps 5–6, resumed from step 4), last loss 0.3000',
    );
    expect(summary({ step: 5, startStep: 4, seconds: 0.5, lastLoss: 0.3 }, '1s')).toBe('1 step in 1s (2.00 steps/s: step 5, resumed from step 4), last loss 0.3000');
    expect(summary({ step: 4, startStep: 4, seconds: 0, lastLoss: NaN }, '1s')).toBe('0 steps in 1s (the run was already at step 4)');
    expect(summary({ step: 1000, startStep: 0, seconds: 8, lastLoss: 0.1 }, '8s')).toBe('1000 steps in 8s (125 steps/s), last loss 0.1000');
  });
});
