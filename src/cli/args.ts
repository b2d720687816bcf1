// A small, strict command-line parser shared by every `l2e` command: --name value, --name=value,
// boolean flags, repeated list options, positionals. Errors name the option: an unknown one, a
// non-list option given twice, and a missing or empty value (`--output --max-steps 1` does not take
// the next flag as --output's value; `--output=--x` gives a value that starts with --, and
// `--lr -1` reaches the number check).

import { closest } from '../util/closest.js';
import type { OptionNamer } from '../util/options.js';

export type OptionKind = 'string' | 'number' | 'integer' | 'boolean' | 'list';

export interface OptionSpec {
  kind: OptionKind;
  /** One-line help text. */
  help: string;
  default?: string | number | boolean;
  /** Shown in help as the value's name, e.g. DIR. */
  metavar?: string;
  required?: boolean;
  /** A 'string' option that may stand alone (`--json` as well as `--json FILE`): then its value is ''. */
  optionalValue?: boolean;
  /** An 'integer' option's allowed values, both ends included (e.g. a seed's 32 bits). */
  range?: readonly [number, number];
  /** A 'list' option whose values may also come comma-separated (`--fields a,b`); else each value is one item (a file name may hold a comma). */
  commas?: boolean;
}

/** An option named as its flag, where the flag is the option in kebab case (posThreshold: --pos-threshold): mine's and combine's messages. */
export const flagNamed: OptionNamer = (option) => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The values a seed takes: the generators are seeded with 32 bits (util/random.ts), so larger ones would alias. */
export const SEED_RANGE = [0, 0xffffffff] as const;

/** A decimal number as people write it: no hex, no spaces, no "Infinity" (Number() takes all three). */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export type OptionSpecs = Record<string, OptionSpec>;
export type ParsedValue = string | number | boolean | string[] | undefined;

export interface ParsedArgs {
  options: Record<string, ParsedValue>;
  positionals: string[];
  help: boolean;
  /** The options given on the command line (not defaults). */
  given: ReadonlySet<string>;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

function toNumber(name: string, raw: string, spec: OptionSpec): number {
  const v = Number(raw);
  if (!DECIMAL.test(raw)) throw new UsageError(`--${name} expects a number, got "${raw}"`);
  if (!Number.isFinite(v)) throw new UsageError(`--${name}: ${raw} is a number too large to hold (past 1.8e308)`);
  // (a value so small that it reads as 0, e.g. 1e-330, is said as written, not as "got 0")
  if (v === 0 && /[1-9]/.test(raw.split(/e/i)[0]!)) throw new UsageError(`--${name}: ${raw} is a number too small to hold (it reads as 0)`);
  if (spec.kind !== 'integer') return v;
  if (!Number.isInteger(v)) throw new UsageError(`--${name} expects an integer, got "${raw}"`);
  // above 2^53 integers are not all numbers: 9007199254740993 would quietly be ...992
  if (!Number.isSafeInteger(v)) throw new UsageError(`--${name}: ${raw} is an integer too large to hold exactly (past 2^53)`);
  const [lo, hi] = spec.range ?? [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  if (v < lo || v > hi) throw new UsageError(`--${name} must be an integer from ${lo} to ${hi}, got ${raw}`);
  return v;
}

export function parseArgs(argv: string[], specs: OptionSpecs): ParsedArgs {
  const options: Record<string, ParsedValue> = {};
  const positionals: string[] = [];
  let help = false;
  const given = new Set<string>();
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.kind === 'list') options[name] = [];
    else if (spec.default !== undefined) options[name] = spec.default;
    else if (spec.kind === 'boolean') options[name] = false;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let inline: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let negated = false;
    if (!(name in specs) && name.startsWith('no-') && specs[name.slice(3)]?.kind === 'boolean') {
      name = name.slice(3);
      negated = true;
    }
    const spec = specs[name];
    if (!spec) {
      const near = closest(name, Object.keys(specs));
      throw new UsageError(`unknown option --${name}` + (near ? ` (did you mean --${near}?)` : ''));
    }
    // only a list gathers repeats: a second --data would silently replace the first
    if (spec.kind !== 'list' && given.has(name)) throw new UsageError(`--${name} given twice`);
    given.add(name);
    if (spec.kind === 'boolean') {
      if (inline !== undefined && !['true', 'false', '1', '0'].includes(inline)) {
        throw new UsageError(`--${name} is a flag; got "${inline}"`);
      }
      const v = inline === undefined ? true : inline === 'true' || inline === '1';
      options[name] = negated ? !v : v;
      continue;
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      if (spec.optionalValue && (next === undefined || next.startsWith('--'))) inline = '';
      else if (next === undefined) throw new UsageError(`--${name} needs a value`);
      else if (next.startsWith('--')) throw new UsageError(`--${name} needs a value, got ${next}`);
      else inline = argv[++i]!;
    }
    if (inline === '' && !spec.optionalValue) throw new UsageError(`--${name} needs a value, got ""`);
    if (spec.kind === 'string') options[name] = inline;
    else if (spec.kind === 'list') (options[name] as string[]).push(...(spec.commas ? inline.split(',').filter((s) => s !== '') : [inline]));
    else options[name] = toNumber(name, inline, spec);
  }
  if (!help) {
    for (const [name, spec] of Object.entries(specs)) {
      if (spec.required && options[name] === undefined) throw new UsageError(`--${name} is required`);
    }
  }
  return { options, positionals, help, given };
}

export function formatOptions(specs: OptionSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const meta = s.metavar ?? (s.kind === 'string' || s.kind === 'list' ? 'VALUE' : 'N');
    const flag = s.kind === 'boolean' ? `--${name}` : `--${name} ${s.optionalValue ? `[${meta}]` : meta}`;
    const dflt = s.default !== undefined && s.kind !== 'boolean' ? ` (default ${s.default})` : '';
    const req = s.required ? ' (required)' : '';
    return [flag, `${s.help}${req}${dflt}`] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length), 10);
  return rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`).join('\n');
}

/** Typed accessors for parsed options (the specs guarantee the kinds). */
export const opt = {
  str(p: ParsedArgs, name: string): string | undefined {
    const v = p.options[name];
    return typeof v === 'string' ? v : undefined;
  },
  num(p: ParsedArgs, name: string): number | undefined {
    const v = p.options[name];
    return typeof v === 'number' ? v : undefined;
  },
  bool(p: ParsedArgs, name: string): boolean {
    return p.options[name] === true;
  },
  list(p: ParsedArgs, name: string): string[] {
    const v = p.options[name];
    return Array.isArray(v) ? v : [];
  },
};
