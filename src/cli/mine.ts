// `l2e mine`: mine {query, pos, neg} training rows from a corpus by embedding distance.
import { corpusFormatOf, type CorpusFormat } from '../mine/corpus.js';
import { corpusNeighbourStats, mineToFile } from '../mine/run.js';
import { MINE_DEFAULTS, thresholdOverlap } from '../mine/mine.js';
import { formatNeighbourStats, parseThreshold, type Threshold } from '../mine/stats.js';
import { flagNamed, opt, SEED_RANGE, UsageError } from './args.js';
import type { Command } from './command.js';
import { checkOutput, isStdout, STDIO } from '../util/output.js';
import { ProgressBar } from './progress.js';
import { ENCODE_OPTIONS, openSourceFromArgs, positiveInt, SOURCE_OPTIONS } from './source-options.js';
import { counted } from '../util/plural.js';

export const command: Command = {
  name: 'mine',
  summary: 'mine positive / negative pairs from a corpus by embedding distance',
  usage: `Usage: l2e mine (--model DIR | --embeddings FILE [--texts FILE]) --input FILE --output pairs.jsonl
                --pos-threshold X --neg-threshold Y [--metric euclidean|cosine] [--max-pos 6] [--max-neg 5]
                [--seed N] [--fields a,b,c] [--k N] [--random-negatives] [--overwrite]
       l2e mine (--model DIR | --embeddings FILE [--texts FILE]) --input FILE --stats [--metric M] [--k N]

Every distinct text is a query. Among its --k nearest texts, positives are at distance <= X and
negatives at distance > Y ("hard" negatives; --random-negatives tops rows up with random texts
beyond Y). Distance is Euclidean on the vectors, or 1 - cos with --metric cosine; X <= Y is
required. Candidates equal to the query or of one character are dropped; up to --max-pos / --max-neg
are sampled (seeded); rows without a positive or a negative are skipped and counted. With --fields,
each input row's fields are versions of one text (e.g. original, English, Malay): they are one
another's positives. Input by name: .jsonl ("text" or --fields), .txt (one text per line), or a .json
array / object of texts; --format text|jsonl|json forces one. "-" reads stdin (with --format) or writes
the pairs to stdout (the summary goes to stderr). An existing output file is replaced only with
--overwrite, and never when it is an input.

Choosing thresholds: --stats is a dry run that embeds the corpus and prints percentiles of the
distances from each text to its nearest and to its --k nearest texts, and writes nothing. A
threshold may also be a percentile of those k-nearest distances: --pos-threshold p5 takes as
positives the closest 5% of candidates (up to 10,000 evenly spaced texts are measured).`,
  options: {
    ...SOURCE_OPTIONS,
    input: { kind: 'string', help: 'corpus to mine (.jsonl, .txt, .json; - for stdin)', metavar: 'FILE', required: true },
    format: { kind: 'string', help: 'input format: text (one per line), jsonl or json; default from the extension (.txt / .jsonl / .json)', metavar: 'text|jsonl|json' },
    output: { kind: 'string', help: 'pairs JSONL; - for stdout (required unless --stats)', metavar: 'FILE' },
    overwrite: { kind: 'boolean', help: 'replace an existing --output file (never an input)' },
    'pos-threshold': { kind: 'string', help: 'positives at distance <= X; pN = the N-th percentile of the k-nearest distances', metavar: 'X' },
    'neg-threshold': { kind: 'string', help: 'negatives at distance > Y; pN as for --pos-threshold', metavar: 'Y' },
    stats: { kind: 'boolean', help: 'dry run: print the percentiles of the nearest-neighbour distances, write nothing' },
    metric: { kind: 'string', help: 'euclidean or cosine (distance 1 - cos)', default: MINE_DEFAULTS.metric },
    'max-pos': { kind: 'integer', help: 'positives per row at most', default: MINE_DEFAULTS.maxPos },
    'max-neg': { kind: 'integer', help: 'negatives per row at most', default: MINE_DEFAULTS.maxNeg },
    seed: { kind: 'integer', help: 'sampling seed', default: MINE_DEFAULTS.seed, range: SEED_RANGE },
    fields: { kind: 'list', commas: true, help: 'JSONL fields holding versions of one text (comma-separated)', metavar: 'a,b,c' },
    k: { kind: 'integer', help: 'nearest neighbours examined per text', default: MINE_DEFAULTS.k },
    'random-negatives': { kind: 'boolean', help: 'top negatives up with random texts beyond Y' },
    'memory-mb': { kind: 'integer', help: 'memory for the vectors; more are kept in a temp file and searched in blocks', default: MINE_DEFAULTS.memoryMb },
    ...ENCODE_OPTIONS,
  },
  async run(args) {
    const metric = opt.str(args, 'metric');
    if (metric !== 'euclidean' && metric !== 'cosine') throw new UsageError(`--metric must be euclidean or cosine, got ${metric}`);
    // usage errors before any work, in --stats mode too
    const k = positiveInt(args, 'k');
    const memoryMb = positiveInt(args, 'memory-mb');
    const maxPos = positiveInt(args, 'max-pos');
    const maxNeg = positiveInt(args, 'max-neg');
    const stats = opt.bool(args, 'stats');
    const fields = opt.list(args, 'fields');
    const input = opt.str(args, 'input')!;
    const format = corpusFormat(input, opt.str(args, 'format'));
    if (fields.length && format !== 'jsonl') {
      throw new UsageError(`--fields names JSONL fields, but ${input === STDIO ? 'stdin' : input} is read as ${format} (--format jsonl reads it as JSONL)`);
    }
    if (stats) {
      // (the options of the mining itself too: --max-pos, --max-neg and --seed choose among pairs a dry run never makes)
      const writing = ['output', 'overwrite', 'pos-threshold', 'neg-threshold', 'random-negatives', 'max-pos', 'max-neg', 'seed'].filter((f) => args.given.has(f));
      if (writing.length) throw new UsageError(`--stats is a dry run that writes nothing: ${writing.map((f) => `--${f}`).join(', ')} would do nothing with it`);
    }
    const bars: Record<string, ProgressBar> = {};
    const onStage = (stage: string, done: number, total: number): void => {
      // made at the stage's first report, after its first block: its rate is clocked from there
      const bar = (bars[stage] ??= new ProgressBar({ label: stage, total, plainLines: true, unclocked: done }));
      bar.update(done);
      if (done >= total) bar.finish();
    };
    if (stats) {
      const source = await openSourceFromArgs(args);
      try {
        const s = await corpusNeighbourStats(source, {
          input,
          format,
          fields: fields.length ? fields : undefined,
          metric,
          k,
          memoryMb,
          onStage,
        }, { optionName: flagNamed });
        process.stdout.write(formatNeighbourStats(s));
        return 0;
      } finally {
        source.close();
      }
    }
    const threshold = (flag: string): Threshold => {
      const raw = opt.str(args, flag);
      if (raw === undefined) throw new UsageError(`--${flag} is required (or --stats to see the distances first)`);
      try {
        return parseThreshold(raw, `--${flag}`);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    };
    const pos = threshold('pos-threshold');
    const neg = threshold('neg-threshold');
    const overlap = thresholdOverlap(pos, neg, metric, flagNamed);
    if (overlap) throw new UsageError(overlap);
    const output = opt.str(args, 'output');
    if (output === undefined) throw new UsageError('--output is required (or --stats for a dry run)');
    const overwrite = opt.bool(args, 'overwrite');
    const inputs = (['input', 'embeddings', 'texts'] as const).flatMap((flag) => {
      const path = opt.str(args, flag);
      return path === undefined ? [] : [{ name: `--${flag}`, path }];
    });
    checkOutput(output, { overwrite, inputs }); // before the model loads
    // the model loads once the output is open (mineToFile)
    const r = await mineToFile(() => openSourceFromArgs(args), {
      input,
      format,
      output,
      overwrite,
      fields: fields.length ? fields : undefined,
      posThreshold: pos,
      negThreshold: neg,
      metric,
      maxPos,
      maxNeg,
      seed: opt.num(args, 'seed'),
      k,
      randomNegatives: opt.bool(args, 'random-negatives'),
      memoryMb,
      onStage,
      onThresholds: (p, n) => process.stderr.write(`thresholds: --pos-threshold ${shown(p, pos)} --neg-threshold ${shown(n, neg)}\n`),
    }, { optionName: flagNamed });
    // with the pairs on stdout, the summary goes to stderr
    (isStdout(output) ? process.stderr : process.stdout).write(
      `${counted(r.rows, 'input row')}, ${counted(r.texts, 'distinct text')} → ${counted(r.written, 'row')} written to ${isStdout(output) ? 'stdout' : output}\n` +
        `skipped: ${r.skippedNoPos} without a positive, ${r.skippedNoNeg} without a negative, ${r.skippedShort} too short\n`,
    );
    return 0;
  },
};

/** The corpus's format: --format's when given, else by name (.jsonl, .txt, .json); stdin and other names need --format. */
function corpusFormat(input: string, forced: string | undefined): CorpusFormat {
  if (forced === 'json') return 'json';
  if (forced !== undefined) {
    if (forced !== 'text' && forced !== 'jsonl') throw new UsageError(`--format must be text, jsonl or json, got ${forced}`);
    return forced;
  }
  const byName = corpusFormatOf(input);
  if (byName !== undefined) return byName;
  if (input === STDIO) throw new UsageError('reading the corpus from stdin (-): give --format text, jsonl or json');
  throw new UsageError(
    `cannot tell the format of ${input} from its name: use .txt (one text per line), .jsonl or .json, or give --format text|jsonl|json`,
  );
}

/** A resolved threshold, with the percentile it came from: "2.0000 (p10)". */
function shown(distance: number, given: Threshold): string {
  return `${distance.toFixed(4)}${typeof given === 'number' ? '' : ` (p${given.percentile})`}`;
}
