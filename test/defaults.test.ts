// Each default lives once, in the library; the CLI shows and uses the same values. A flag whose default
// differs from the library's (mine --memory-mb 4096 vs 1024, train --save-steps 500 vs 0, once) fails here.
import { describe, expect, it } from 'vitest';
import { command as mineCommand } from '../src/cli/mine.js';
import { command as trainCommand, flagOf } from '../src/cli/train.js';
import { MINE_DEFAULTS, validateMineOptions } from '../src/mine/mine.js';
import { RECIPE_DEFAULTS, resolveOptions } from '../src/train/options.js';

describe('defaults', () => {
  it('every `l2e train` default is the trainer default', () => {
    let checked = 0;
    for (const [option, value] of Object.entries(RECIPE_DEFAULTS)) {
      const flag = flagOf(option as keyof typeof RECIPE_DEFAULTS).slice(2);
      const spec = trainCommand.options[flag];
      if (spec?.kind === 'boolean') continue; // a boolean flag's default is its absence
      expect(spec, `--${flag}`).toBeDefined();
      if (option === 'schedule') continue; // the flag takes the schedule's name
      if (flag === 'shuffle-buffer') {
        // no default in the table, so that --no-shuffle can tell it was given: said in its help
        expect(spec!.default).toBeUndefined();
        expect(spec!.help.startsWith(`${String(value)} (default, the recipe's)`)).toBe(true);
        checked++;
        continue;
      }
      expect([flag, spec!.default]).toEqual([flag, value]);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(20);
    expect(trainCommand.options['save-steps']!.default).toBe(500);
    expect(resolveOptions({ batchSize: 8 } as Parameters<typeof resolveOptions>[0]).saveSteps).toBe(500);
  });

  it('every `l2e mine` default is the mining default', () => {
    const flags: Record<string, keyof typeof MINE_DEFAULTS> = {
      metric: 'metric', 'max-pos': 'maxPos', 'max-neg': 'maxNeg', seed: 'seed', k: 'k', 'memory-mb': 'memoryMb',
    };
    for (const [flag, option] of Object.entries(flags)) {
      expect([flag, mineCommand.options[flag]!.default]).toEqual([flag, MINE_DEFAULTS[option]]);
    }
    expect(validateMineOptions({ posThreshold: 0.1, negThreshold: 0.5 }).memoryMb).toBe(4096);
  });
});
