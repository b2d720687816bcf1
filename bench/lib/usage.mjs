// --help for the bench scripts whose usage is their header comment, and a refusal of flags they do not
// know (a typo must not start a long run).
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../dist/util/atomic.js';

/** The value after the flag at argv[i]: a missing one, or the next flag, is refused naming the flag. */
export function valueAfter(argv, i) {
  const v = argv[i + 1];
  // (`--json --quick` wrote a file named --quick, and the run went on without --quick)
  if (v === undefined || v.startsWith('--')) throw new Error(`${argv[i]} needs a value`);
  return v;
}

/**
 * Refuses a --json output before the run, naming `flag`: a folder that does not exist, a folder as the
 * file, or one of the run's inputs (`inputs`, e.g. --compare's file: the results replaced the baseline).
 * A failure at the end lost the whole run.
 */
export function checkJsonOut(flag, path, inputs = []) {
  const folder = dirname(resolve(path));
  if (!existsSync(folder)) throw new Error(`${flag} ${path}: the folder ${folder} does not exist`);
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${flag} ${path}: is a folder; give a file`);
  const real = (p) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const same = inputs.find(([, input]) => input !== null && input !== undefined && real(input) === real(path));
  if (same) throw new Error(`${flag} ${path}: is the run's ${same[0]} file; write the results to another`);
}

/** Writes a --json output whole (a temp file and a rename; through a pipe or device), with a line end. */
export function writeJsonOut(path, value) {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The script's leading comment block, without the comment markers. */
export function headerUsage(url) {
  const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n');
  const out = [];
  for (const line of lines) {
    if (line.startsWith('#!')) continue;
    if (!line.startsWith('//')) break;
    out.push(line.replace(/^\/\/ ?/, ''));
  }
  return out.join('\n');
}

/** Prints the header and exits 0 on --help / -h; exits 2 naming the first flag not in `known`. */
export function checkFlags(url, args, known) {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(headerUsage(url));
    process.exit(0);
  }
  // a negative number is a value (--duration -1 gets the script's own range message), not a flag
  const bad = args.find((a) => a.startsWith('-') && !/^-\d/.test(a) && !known.includes(a));
  if (bad !== undefined) {
    console.error(`bench/${basename(fileURLToPath(url))}: unknown option ${bad} (--help lists them)`);
    process.exit(2);
  }
}

/**
 * Reads `--name value` flags by `spec` (name → { kind: 'int' | 'ints' | 'choice' | 'path' | 'switch', default,
 * choices }), exiting 2 with the flag named on a missing value, a value of the wrong kind (ints: positive
 * integers, comma-separated for 'ints'), a stray argument, or a --json folder that does not exist: a typo
 * must not start a long run, nor a run fail at its end. Call after checkFlags.
 */
export function readFlags(url, args, spec) {
  const script = `bench/${basename(fileURLToPath(url))}`;
  const fail = (message) => {
    console.error(`${script}: ${message} (--help lists the options)`);
    process.exit(2);
  };
  const out = Object.fromEntries(Object.entries(spec).map(([name, s]) => [name, s.default ?? null]));
  const positive = (name, raw) => {
    if (!/^[1-9]\d*$/.test(raw)) fail(`--${name} must be a positive integer, got "${raw}"`);
    return Number(raw);
  };
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') ? args[i].slice(2) : null;
    const s = name === null ? undefined : spec[name];
    if (s === undefined) fail(`unexpected argument "${args[i]}"`);
    if (s.kind === 'switch') {
      out[name] = true;
      continue;
    }
    const raw = args[++i];
    if (raw === undefined || raw.startsWith('--')) fail(`--${name} needs a value`);
    if (s.kind === 'int') out[name] = positive(name, raw);
    else if (s.kind === 'ints') out[name] = raw.split(',').map((x) => positive(name, x));
    else if (s.kind === 'choice') {
      if (!s.choices.includes(raw)) fail(`--${name} must be one of ${s.choices.join(', ')}, got "${raw}"`);
      out[name] = raw;
    } else {
      if (!existsSync(dirname(resolve(raw)))) fail(`--${name} ${raw}: the folder ${dirname(resolve(raw))} does not exist`);
      out[name] = raw;
    }
  }
  return out;
}
