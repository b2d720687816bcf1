// `l2e mine`: mine {query, pos, neg} training rows from a corpus by embedding distance.
import { corpusFormatOf } from '../mine/corpus.js';
import { mineToFile } from '../mine/run.js';
import { opt, UsageError } from './args.js';
import type { Command } from './command.js';
import { STDIO } from '../util/output.js';
import { FORMAT_OPTION, inputFormat } from './io.js';
import { ProgressBar } from './progress.js';
import { ENCODE_OPTIONS, openSourceFromArgs, SOURCE_OPTIONS } from './source-options.js';

export const command: Command = {
  name: 'mine',
  summary: 'mine positive / negative pairs from a corpus by embedding distance',
  usage: `Usage: l2e mine (--model DIR | --embeddings FILE [--texts FILE]) --input FILE --output pairs.jsonl
                --pos-threshold X --neg-threshold Y [--metric euclidean|cosine] [--max-pos 6] [--max-neg 5]
                [--seed N] [--fields a,b,c] [--k N] [--random-negatives]

Every distinct text is a query. Among its --k nearest texts, positives are at distance <= X and
negatives at distance > Y ("hard" negatives; --random-negatives tops rows up with random texts
beyond Y). Distance is Euclidean on the vectors, or 1 - cos with --metric cosine; X <= Y is
required. Candidates equal to the query or of one character are dropped; up to --max-pos / --max-neg
are sampled (seeded); rows without a positive or a negative are skipped and counted. With --fields,
each input row's fields are versions of one text (e.g. original, English, Malay): they are one
another's positives. Input by name: .jsonl ("text" or --fields), .txt (one text per line), or a .json
array / object of texts; --format text|jsonl forces one. "-" reads stdin (with --format) or writes
the pairs to stdout (the summary goes to stderr).`,
  options: {
    ...SOURCE_OPTIONS,
    input: { kind: 'string', help: 'corpus to mine (.jsonl, .txt, .json; - for stdin)', metavar: 'FILE', required: true },
    format: FORMAT_OPTION,
    output: { kind: 'string', help: 'pairs JSONL; - for stdout', metavar: 'FILE', required: true },
    'pos-threshold': { kind: 'number', help: 'positives at distance <= X', metavar: 'X', required: true },
    'neg-threshold': { kind: 'number', help: 'negatives at distance > Y', metavar: 'Y', required: true },
    metric: { kind: 'string', help: 'euclidean or cosine (distance 1 - cos)', default: 'euclidean' },
    'max-pos': { kind: 'integer', help: 'positives per row at most', default: 6 },
    'max-neg': { kind: 'integer', help: 'negatives per row at most', default: 5 },
    seed: { kind: 'integer', help: 'sampling seed', default: 42 },
    fields: { kind: 'list', help: 'JSONL fields holding versions of one text (comma-separated)', metavar: 'a,b,c' },
    k: { kind: 'integer', help: 'nearest neighbours examined per text', default: 100 },
    'random-negatives': { kind: 'boolean', help: 'top negatives up with random texts beyond Y' },
    'memory-mb': { kind: 'integer', help: 'memory for the vectors; more are kept in a temp file and searched in blocks', default: 4096 },
    ...ENCODE_OPTIONS,
  },
  async run(args) {
    const metric = opt.str(args, 'metric');
    if (metric !== 'euclidean' && metric !== 'cosine') throw new UsageError(`--metric must be euclidean or cosine, got ${metric}`);
    const pos = opt.num(args, 'pos-threshold')!;
    const neg = opt.num(args, 'neg-threshold')!;
    if (pos > neg) throw new UsageError(`--pos-threshold ${pos} must not exceed --neg-threshold ${neg} (both are distances)`);
    const input = opt.str(args, 'input')!;
    const forced = opt.str(args, 'format');
    // by name (.jsonl, .txt, .json) unless forced; other names and stdin need --format (a usage error)
    const format = forced !== undefined ? inputFormat(input, forced) : (corpusFormatOf(input) ?? inputFormat(input));
    const source = await openSourceFromArgs(args);
    const bars: Record<string, ProgressBar> = {};
    try {
      const output = opt.str(args, 'output')!;
      const fields = opt.list(args, 'fields');
      const r = await mineToFile(source, {
        input,
        format,
        output,
        fields: fields.length ? fields : undefined,
        posThreshold: pos,
        negThreshold: neg,
        metric,
        maxPos: opt.num(args, 'max-pos'),
        maxNeg: opt.num(args, 'max-neg'),
        seed: opt.num(args, 'seed'),
        k: opt.num(args, 'k'),
        randomNegatives: opt.bool(args, 'random-negatives'),
        memoryMb: opt.num(args, 'memory-mb'),
        onStage: (stage, done, total) => {
          const bar = (bars[stage] ??= new ProgressBar({ label: stage, total }));
          bar.update(done);
          if (done >= total) bar.finish();
        },
      });
      // with the pairs on stdout, the summary goes to stderr
      (output === STDIO ? process.stderr : process.stdout).write(
        `${r.rows} input rows, ${r.texts} distinct texts → ${r.written} rows written to ${output === STDIO ? 'stdout' : output}\n` +
          `skipped: ${r.skippedNoPos} without a positive, ${r.skippedNoNeg} without a negative, ${r.skippedShort} too short\n`,
      );
      return 0;
    } finally {
      source.close();
    }
  },
};
