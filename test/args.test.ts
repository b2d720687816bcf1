// The CLI option parser: values, flags, negation, lists, optional values, and clear usage errors.
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError, type OptionSpecs } from '../src/cli/args.js';

const specs: OptionSpecs = {
  model: { kind: 'string', help: 'm', required: true },
  steps: { kind: 'integer', help: 's', default: 3 },
  lr: { kind: 'number', help: 'l' },
  shuffle: { kind: 'boolean', help: 'b', default: true },
  fields: { kind: 'list', help: 'f' },
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
  });
});
