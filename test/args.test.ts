// The CLI option parser: values, flags, negation, lists, optional values, and clear usage errors.
import { describe, expect, it } from 'vitest';
import { parseArgs, SEED_RANGE, UsageError, type OptionSpecs } from '../src/cli/args.js';

const specs: OptionSpecs = {
  model: { kind: 'string', help: 'm', required: true },
  steps: { kind: 'integer', help: 's', default: 3 },
  lr: { kind: 'number', help: 'l' },
  shuffle: { kind: 'boolean', help: 'b', default: true },
  fields: { kind: 'list', commas: true, help: 'f' },
  test: { kind: 'list', help: 't' },
  json: { kind: 'string', help: 'j', optionalValue: true },
};

describe('parseArgs', () => {
  it('reads values, flags, negations, lists and positionals', () => {
    const p = parseArgs(['--model', 'dir', '--steps=5', '--lr', '1e-3', '--no-shuffle', '--fields', 'a,b', '--fields=c', 'x.jsonl'], specs);
    expect(p.options).toMatchObject({ model: 'dir', steps: 5, lr: 1e-3, shuffle: false, fields: ['a', 'b', 'c'] });
    expect(p.positionals).toEqual(['x.jsonl']);
  });

  it('an optional-value option stands alone or takes the next argument', () => {
    expect(parseArgs(['--model', 'm', '--json'], specs).options['json']).toBe('');
    expect(parseArgs(['--json', '--model', 'm'], specs).options['json']).toBe('');
    expect(parseArgs(['--model', 'm', '--json', 'out.json'], specs).options['json']).toBe('out.json');
    expect(parseArgs(['--model', 'm'], specs).options['json']).toBeUndefined();
  });

  it('says what is wrong', () => {
    expect(() => parseArgs(['--model'], specs)).toThrow(UsageError);
    expect(() => parseArgs(['--model', 'm', '--steps', '1.5'], specs)).toThrow(/--steps expects an integer/);
    expect(() => parseArgs(['--model', 'm', '--lr', 'fast'], specs)).toThrow(/--lr expects a number/);
    expect(() => parseArgs(['--model', 'm', '--bogus'], specs)).toThrow(/unknown option --bogus/);
    expect(() => parseArgs([], specs)).toThrow(/--model is required/);
    expect(parseArgs(['--help'], specs).help).toBe(true); // help needs no required option
  });

  // Number() took "0x10", " 5" and "Infinity"; integers above 2^53 came out as other integers, and seeds
  // above 32 bits gave the same sequence as smaller ones
  it('numbers are decimals as written; integers exact; a seed within its 32 bits', () => {
    for (const raw of ['0x10', ' 5', '5 ', 'Infinity', '1_000', '0b1', '']) {
      expect(() => parseArgs(['--model', 'm', '--lr', raw], specs), raw).toThrow(/--lr (expects a number, got|needs a value)/);
    }
    for (const [raw, v] of [['-1', -1], ['.5', 0.5], ['5.', 5], ['+2e-3', 2e-3], ['1E3', 1000]] as const) {
      expect(parseArgs(['--model', 'm', '--lr', raw], specs).options['lr']).toBe(v);
    }
    // past what a double holds exactly, or at all: said as such (they were "expects an integer/a number")
    expect(() => parseArgs(['--model', 'm', '--steps', '1e20'], specs)).toThrow(new UsageError('--steps: 1e20 is an integer too large to hold exactly (past 2^53)'));
    expect(() => parseArgs(['--model', 'm', '--steps', '9007199254740993'], specs)).toThrow(
      new UsageError('--steps: 9007199254740993 is an integer too large to hold exactly (past 2^53)'),
    );
    expect(() => parseArgs(['--model', 'm', '--lr', '1e400'], specs)).toThrow(new UsageError('--lr: 1e400 is a number too large to hold (past 1.8e308)'));
    expect(() => parseArgs(['--model', 'm', '--lr', '1e-330'], specs)).toThrow(new UsageError('--lr: 1e-330 is a number too small to hold (it reads as 0)'));
    expect(parseArgs(['--model', 'm', '--lr', '0.000e5'], specs).options['lr']).toBe(0);
    expect(parseArgs(['--model', 'm', '--steps', '1e3'], specs).options['steps']).toBe(1000);
    const seeded: OptionSpecs = { seed: { kind: 'integer', help: 's', range: SEED_RANGE } };
    expect(parseArgs(['--seed', '4294967295'], seeded).options['seed']).toBe(4294967295);
    expect(() => parseArgs(['--seed', '4294967296'], seeded)).toThrow(new UsageError('--seed must be an integer from 0 to 4294967295, got 4294967296'));
    expect(() => parseArgs(['--seed', '-1'], seeded)).toThrow(new UsageError('--seed must be an integer from 0 to 4294967295, got -1'));
  });

  it('an empty value is a missing value, unless the option stands alone or accepts it', () => {
    expect(() => parseArgs(['--model', ''], specs)).toThrow(new UsageError('--model needs a value, got ""'));
    expect(() => parseArgs(['--model=', '--steps', '2'], specs)).toThrow(new UsageError('--model needs a value, got ""'));
    expect(() => parseArgs(['--model', 'm', '--fields', ''], specs)).toThrow(new UsageError('--fields needs a value, got ""'));
    expect(() => parseArgs(['--model', 'm', '--lr', ''], specs)).toThrow(new UsageError('--lr needs a value, got ""'));
    expect(parseArgs(['--model', 'm', '--json='], specs).options['json']).toBe('');
  });

  it('a value option does not take the next flag as its value; --name=--x does, and -1 is a value', () => {
    expect(() => parseArgs(['--model', '--steps', '1'], specs)).toThrow(new UsageError('--model needs a value, got --steps'));
    expect(() => parseArgs(['--model', 'm', '--lr', '--help'], specs)).toThrow(new UsageError('--lr needs a value, got --help'));
    expect(() => parseArgs(['--model', 'm', '--fields', '--', 'x'], specs)).toThrow(new UsageError('--fields needs a value, got --'));
    expect(parseArgs(['--model=--steps', '--steps', '1'], specs).options).toMatchObject({ model: '--steps', steps: 1 });
    expect(parseArgs(['--model', '-', '--lr', '-1'], specs).options).toMatchObject({ model: '-', lr: -1 });
  });

  it('a non-list option given twice is refused; a list gathers its repeats', () => {
    expect(() => parseArgs(['--model', 'a', '--model', 'b'], specs)).toThrow(new UsageError('--model given twice'));
    expect(() => parseArgs(['--model', 'a', '--steps=1', '--steps', '2'], specs)).toThrow(new UsageError('--steps given twice'));
    expect(() => parseArgs(['--model', 'a', '--shuffle', '--no-shuffle'], specs)).toThrow(new UsageError('--shuffle given twice'));
    expect(parseArgs(['--model', 'a', '--fields', 'x', '--fields', 'y'], specs).options['fields']).toEqual(['x', 'y']);
    // a list of names (files, globs) takes each value whole: 'test,v2.jsonl' was read as "test" and "v2.jsonl"
    expect(parseArgs(['--model', 'a', '--test', 'test,v2.jsonl', '--test=b,c'], specs).options['test']).toEqual(['test,v2.jsonl', 'b,c']);
  });
});
