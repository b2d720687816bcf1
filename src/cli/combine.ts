// `l2e combine`: concatenate (and optionally shuffle) JSONL pair files, validating every line.
import { fstatSync, statSync, type Stats } from 'node:fs';
import { combineFiles } from '../data/combine.js';
import { flagNamed, opt, SEED_RANGE, UsageError } from './args.js';
import type { Command } from './command.js';
import { checkOutput, isStdout, STDIO } from '../util/output.js';
import { counted, noun } from '../util/plural.js';
import { ProgressBar } from './progress.js';

export const command: Command = {
  name: 'combine',
  positionals: true,
  summary: 'concatenate / shuffle JSONL pair files, validating every line',
  usage: `Usage: l2e combine A.jsonl B.jsonl ... --output ALL.jsonl [--overwrite] [--shuffle --seed N] [--memory-mb 256]

Streams every input, checks each line is {"query": str, "pos": [str], "neg": [str]} (errors name
file:line; --skip-bad-lines counts and drops them instead) and writes one file atomically. With
--shuffle, inputs larger than the memory budget are shuffled externally (random buckets on disk,
each shuffled in memory, beside the output; with --output - or a pipe or device, in the temporary
folder, TMPDIR). The order depends only on the seed, the inputs and --memory-mb. "-" as an input
reads stdin (with --shuffle, stdin or a pipe is first copied there, as its size is not known before);
--output - writes to stdout (the summary then goes to stderr). An existing output file is replaced
only with --overwrite, and never when it is an input (nor is a stdout redirected onto an input).`,
  options: {
    output: { kind: 'string', help: 'combined JSONL file; - for stdout', metavar: 'FILE', required: true },
    overwrite: { kind: 'boolean', help: 'replace an existing --output file (never an input)' },
    shuffle: { kind: 'boolean', help: 'shuffle all rows (uniform permutation)' },
    seed: { kind: 'integer', help: 'shuffle seed (default 42; with --shuffle)', range: SEED_RANGE },
    'memory-mb': { kind: 'integer', help: 'memory budget for shuffling, MiB', default: 256 },
    'skip-bad-lines': { kind: 'boolean', help: 'count and drop invalid lines instead of failing' },
  },
  async run(args) {
    if (args.positionals.length === 0) throw new UsageError('give at least one input file');
    // flags and inputs that would silently do nothing
    if (args.positionals.filter((p) => p === STDIO).length > 1) throw new UsageError('stdin (-) can be read once: give it as one input');
    const twice = pipeReadTwice(args.positionals);
    if (twice) throw new UsageError(`${twice[0]} and ${twice[1]} are the same pipe, which can be read once (the second read got no rows): give it as one input`);
    if (opt.num(args, 'seed') !== undefined && !opt.bool(args, 'shuffle')) throw new UsageError('--seed orders the --shuffle; without --shuffle it would do nothing');
    const memoryMb = opt.num(args, 'memory-mb')!;
    if (memoryMb < 1) throw new UsageError('--memory-mb must be at least 1');
    const output = opt.str(args, 'output')!;
    const overwrite = opt.bool(args, 'overwrite');
    checkOutput(output, { overwrite, inputs: args.positionals.map((path) => ({ name: 'the input', path })) });
    const bar = new ProgressBar({ label: 'combine', total: 100, unit: '%' });
    const result = await combineFiles(args.positionals, {
      output,
      overwrite,
      shuffle: opt.bool(args, 'shuffle'),
      seed: opt.num(args, 'seed'),
      memoryMb,
      skipBadLines: opt.bool(args, 'skip-bad-lines'),
      onProgress: (done, total) => bar.update(total > 0 ? Math.round((100 * done) / total) : 100),
    }, { optionName: flagNamed });
    bar.finish();
    const width = Math.max(...result.files.map((f) => f.file.length), 4);
    const lines = result.files.map(
      (f) => `  ${f.file.padEnd(width)}  ${String(f.rows).padStart(10)} ${noun(f.rows, 'row')}` + (f.badLines ? `  ${counted(f.badLines, 'bad line')} dropped` : ''),
    );
    const how = result.buckets === 0 ? '' : result.buckets === 1 ? ' (shuffled in memory)' : ` (shuffled through ${result.buckets} buckets)`;
    const toStdout = isStdout(output); // the data stream: the summary goes to stderr
    (toStdout ? process.stderr : process.stdout).write(
      `${lines.join('\n')}\n  ${'total'.padEnd(width)}  ${String(result.rows).padStart(10)} ${noun(result.rows, 'row')} → ${toStdout ? 'stdout' : output}${how}\n`,
    );
    const bad = result.files.filter((f) => f.badLines > 0);
    if (bad.length) {
      const where = bad.map((f) => `${f.file}:${f.firstBadLines.join(',')}${f.badLines > f.firstBadLines.length ? ',…' : ''}`);
      const skipped = bad.reduce((s, f) => s + f.badLines, 0);
      process.stderr.write(`skipped ${counted(skipped, 'bad line')} (${where.join('; ')})\n`);
    }
    return 0;
  },
};

/**
 * Two inputs that are one pipe, device or socket (`- /dev/stdin`, a named pipe twice): the second
 * would read nothing. A regular file may be given twice (each read is whole).
 */
function pipeReadTwice(inputs: string[]): [string, string] | null {
  const seen = new Map<string, string>();
  for (const input of inputs) {
    let st: Stats;
    try {
      st = input === STDIO ? fstatSync(0) : statSync(input);
    } catch {
      continue; // its reader says what is wrong
    }
    if (st.isFile() || st.isDirectory()) continue;
    const key = `${st.dev}:${st.ino}`;
    const first = seen.get(key);
    if (first !== undefined) return [first === STDIO ? '- (stdin)' : first, input === STDIO ? '- (stdin)' : input];
    seen.set(key, input);
  }
  return null;
}
