// `l2e eval`: the notebook metrics (positive/negative score, top-1/3/5/10) for test files.
import { resolve, sep } from 'node:path';
import { checkOutput, isStdout, openOutput, STDIO, writeOutput } from '../util/output.js';
import { evaluateFile, formatTable, testName, type FileEvaluation } from '../eval/evaluate.js';
import type { Metrics } from '../eval/metrics.js';
import { opt, UsageError } from './args.js';
import type { Command } from './command.js';
import { ProgressBar } from './progress.js';
import { ENCODE_OPTIONS, openSourceFromArgs, SOURCE_OPTIONS } from './source-options.js';

export const command: Command = {
  name: 'eval',
  positionals: true,
  summary: 'evaluate a model (or precomputed embeddings) on JSONL test files',
  usage: `Usage: l2e eval --model DIR --test FILE.jsonl [FILE2 ...] [--limit 1000] [--json [OUT] [--overwrite]]
       l2e eval --embeddings FILE [--texts FILE] --test FILE.jsonl [...]

The pool is every distinct stripped string of the first --limit rows; "positive score" is the mean
cos(query, pos) over their (row, pos) pairs, "negative score" the mean 1 - cos(query, neg); topK is
the share of (query, pos) pairs of the whole file whose query ranks in the top K of the pool by
cosine to the positive (K+1 when the positive itself is in the top K). Vectors come from the model
or from --embeddings: JSONL {"text","embedding"} or a float32/float64 .npy with --texts (one text per
line, or a JSON array). --json writes {"<test name>": {metrics}} to OUT (name = file basename; files
of one name get as many of their folders as tell them apart: d1/test, d2/test); alone or with OUT
"-" it prints the JSON on stdout and the table on stderr. An existing OUT is replaced only with
--overwrite, and never when it is an input.`,
  options: {
    ...SOURCE_OPTIONS,
    test: { kind: 'list', help: 'test JSONL files (repeatable; more may follow as positionals)', metavar: 'FILE' },
    limit: { kind: 'integer', help: 'rows that define the pool and the scores', default: 1000 },
    json: { kind: 'string', help: 'write the metrics as JSON to OUT (alone or -: to stdout)', metavar: 'OUT', optionalValue: true },
    overwrite: { kind: 'boolean', help: 'replace an existing --json OUT file (never an input)' },
    ...ENCODE_OPTIONS,
  },
  async run(args) {
    // `--test a.jsonl b.jsonl`: files after the first come through as positionals
    const tests = [...opt.list(args, 'test'), ...args.positionals];
    if (tests.length === 0) throw new UsageError('--test FILE is required');
    const limit = opt.num(args, 'limit')!;
    if (limit < 1) throw new UsageError('--limit must be at least 1');
    const jsonOut = opt.str(args, 'json');
    const overwrite = opt.bool(args, 'overwrite');
    if (overwrite && (jsonOut === undefined || jsonOut === '')) {
      throw new UsageError('--overwrite replaces an existing --json OUT file; without one it would do nothing');
    }
    if (jsonOut !== undefined && jsonOut !== '') {
      // `--test a.jsonl --json b.jsonl` (b meant as a second test file) must not replace b
      const inputs = tests.map((path) => ({ name: '--test', path }));
      for (const flag of ['embeddings', 'texts'] as const) {
        const path = opt.str(args, flag);
        if (path !== undefined) inputs.push({ name: `--${flag}`, path });
      }
      checkOutput(jsonOut, { name: '--json', overwrite, inputs }); // before the model loads
    }
    // a --json file is opened before the long work: a folder that cannot take it fails now, not after the embedding
    const jsonToStdout = jsonOut === '' || (jsonOut !== undefined && isStdout(jsonOut)); // the table then goes to stderr
    const writer = jsonOut !== undefined && !jsonToStdout ? openOutput(jsonOut, { replace: overwrite }) : undefined;
    try {
      const source = await openSourceFromArgs(args);
      const results: FileEvaluation[] = [];
      try {
        for (const file of tests) {
          let bar: ProgressBar | undefined;
          results.push(
            await evaluateFile(file, source, {
              limit,
              onProgress: (done, total) => {
                // made at the first report, after the first batch: its rate is clocked from there
                bar ??= new ProgressBar({ label: `embed ${file}`, total, plainLines: true, unclocked: done });
                bar.update(done);
              },
            }),
          );
          bar?.finish();
        }
      } finally {
        source.close();
      }
      // two files named test.jsonl in different folders are two rows and two keys, not one
      const names = uniqueTestNames(results.map((r) => r.file));
      const named = results.map((r, i) => ({ ...r, name: names[i]! }));
      const obj: Record<string, Metrics> = {};
      for (const r of named) obj[r.name] = r.metrics;
      const json = JSON.stringify(obj, null, 2) + '\n';
      if (jsonToStdout) {
        process.stderr.write(formatTable(named));
        await writeOutput(STDIO, json);
      } else {
        process.stdout.write(formatTable(named));
        if (writer) {
          await writer.write(json);
          await writer.commit();
        }
      }
    } catch (err) {
      writer?.abort();
      throw err;
    }
    return 0;
  },
};

/**
 * The names of test files in the table and the JSON: the basename without its extension, and for
 * files that share one, the shortest tail of their folders that tells them apart (`d1/test`,
 * `d2/test`); a file given twice is `test (2)` the second time.
 */
export function uniqueTestNames(files: string[]): string[] {
  const names = files.map(testName);
  const folders = files.map((f) => resolve(f).split(sep).slice(0, -1));
  const out = [...names];
  for (const name of new Set(names)) {
    const group = names.flatMap((n, i) => (n === name ? [i] : []));
    const distinct = new Set(group.map((i) => folders[i]!.join(sep))).size;
    if (distinct < 2) continue;
    for (let depth = 1; ; depth++) {
      const tails = group.map((i) => [...folders[i]!.slice(-depth), name].join('/'));
      group.forEach((i, j) => (out[i] = tails[j]!));
      if (new Set(tails).size === distinct) break;
    }
  }
  const seen = new Map<string, number>();
  return out.map((n) => {
    const times = (seen.get(n) ?? 0) + 1;
    seen.set(n, times);
    return times === 1 ? n : `${n} (${times})`;
  });
}
