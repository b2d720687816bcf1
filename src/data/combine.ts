// Concatenates JSONL pair files into one, validating every line ({query: str, pos: [str], neg: [str]}),
// optionally shuffled. Streaming throughout; a shuffle of more data than the memory budget is an
// external shuffle: every line goes to one of K temporary bucket files chosen at random, then each
// bucket (small enough for memory) is shuffled in memory and appended to the output. A uniformly
// random bucket followed by a uniform shuffle inside each bucket gives a uniform permutation.
// The result is a function of the inputs, the seed and K (K = 1 when everything fits in memory).
import { hostname, tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { appendFileSync, createReadStream, createWriteStream, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { dirname, join, resolve } from 'node:path';
import { formatBytes } from '../util/format-bytes.js';
import { fsReason, readFailure, statOrNull } from '../util/fs-error.js';
import { checkOutput, openOutput, writtenThrough } from '../util/output.js';
import { processAlive } from '../util/process.js';
import { Rng } from '../util/random.js';
import { DEFAULT_MAX_LINE_BYTES, invalidJson, LineError, pairRowProblem, readLines, stdinIsFolder } from './jsonl.js';
import { trackScratch } from '../util/scratch.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, NAMING_CONTEXT, optionItself, optionKeys, wrongOption, type NamingContext } from '../util/options.js';

export interface CombineOptions {
  /** The combined file (`-`: stdout); an input `-` is stdin. */
  output: string;
  /** Replace an existing `output` file (never an input); default false: an existing file is refused. */
  overwrite?: boolean;
  shuffle?: boolean;
  seed?: number;
  /** Memory budget for the shuffle, in MiB (default 256). */
  memoryMb?: number;
  /** Count and drop invalid lines instead of failing on the first one. */
  skipBadLines?: boolean;
  /** Where bucket files go (default: beside the output; for `-`, the system's temporary folder). */
  tmpDir?: string;
  /** Called with (bytes read so far, total input bytes). */
  onProgress?: (done: number, total: number) => void;
}

export interface FileCount {
  file: string;
  rows: number;
  badLines: number;
  /** Line numbers of the first few bad lines (at most FIRST_BAD_LINES). */
  firstBadLines: number[];
}

/** Bad lines whose numbers are kept for the report. */
export const FIRST_BAD_LINES = 5;

export interface CombineResult {
  files: FileCount[];
  rows: number;
  /** Bucket files used by the shuffle (1 = in memory; 0 = no shuffle). */
  buckets: number;
}

/** The bucket folder's name (a temp folder beside the output). */
const BUCKET_PREFIX = '.l2e-combine-';

/** JS strings of mostly non-Latin text take ~2 bytes per UTF-8 byte plus per-string overhead. */
const MEMORY_PER_INPUT_BYTE = 3;

/**
 * A bucket is read back whole, as one string: its expected size is kept far below V8's string limit
 * (2^29 - 24 characters; a larger bucket could not be read). A budget of 3 × this or more would give larger buckets.
 */
const MAX_BUCKET_BYTES = 128 * 1024 * 1024;

/**
 * The shuffle's bucket count K for `totalBytes` of input and a memory budget of `budget` bytes: 1 (in
 * memory) when the lines fit, else enough buckets that each fits the budget, and each can be read
 * back as one string (at most MAX_BUCKET_BYTES expected).
 */
export function shuffleBuckets(totalBytes: number, budget: number): number {
  const byMemory = Math.max(1, Math.ceil((totalBytes * MEMORY_PER_INPUT_BYTE) / budget));
  return byMemory === 1 ? 1 : Math.max(byMemory, Math.ceil(totalBytes / MAX_BUCKET_BYTES)); // K = 1 keeps separate strings
}

/** A live run touches its scratch folder this often; one untouched for STALE_MS is no live run's. */
const HEARTBEAT_MS = 60_000;
const STALE_MS = 10 * 60_000;

/**
 * Who can tell whether a scratch folder's pid is alive: processes of this host and pid namespace
 * (a hash of both, in the folder's name). A container sharing the folder has pids that look gone here.
 */
function pidSpace(): string {
  let ns = '';
  try {
    ns = readlinkSync('/proc/self/ns/pid'); // "pid:[4026531836]" (the same number on every host: with the host name)
  } catch {
    // not Linux: the host alone
  }
  return createHash('sha1').update(`${hostname()}\0${ns}`).digest('hex').slice(0, 8);
}
export const PID_SPACE = pidSpace();

/**
 * Bucket folders of combine runs that were killed: their pid is gone (a run of this pid space), or
 * they have not been touched for STALE_MS (a run elsewhere: a live one touches its folder). One that
 * cannot be removed (another user's) is left.
 */
function removeStaleBucketDirs(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return; // no folder (yet): nothing stale; creating the bucket folder then says what is wrong
  }
  for (const name of names) {
    const m = /^\.l2e-combine-(\d+)-(?:([0-9a-f]{8})-)?\w+$/.exec(name);
    if (!m) continue;
    const path = join(parent, name);
    if (m[2] === PID_SPACE) {
      if (processAlive(Number(m[1]))) continue;
    } else {
      const st = statOrNull(path);
      if (st === null || Date.now() - st.mtimeMs < STALE_MS) continue;
    }
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // not ours to remove (EACCES in a shared sticky folder): it stays
    }
  }
}

const COMBINE_OPTIONS = optionKeys<CombineOptions>({
  output: true, overwrite: true, shuffle: true, seed: true, memoryMb: true, skipBadLines: true, tmpDir: true, onProgress: true,
});

/**
 * The options a plain-JS caller may get wrong, refused as the CLI refuses its flags: memoryMb 'lots'
 * failed deep inside as "Rng.int: bad bound NaN", -5 was taken as 1, a seed without shuffle was ignored.
 */
function checkCombineOptions(opts: CombineOptions): void {
  const bad = (key: string, expected: string, got: unknown): never => {
    throw wrongOption('combine', key, expected, got);
  };
  for (const key of ['overwrite', 'shuffle', 'skipBadLines'] as const) {
    if (opts[key] !== undefined && typeof opts[key] !== 'boolean') bad(key, 'true or false', opts[key]);
  }
  if (opts.memoryMb !== undefined && !(typeof opts.memoryMb === 'number' && Number.isFinite(opts.memoryMb) && opts.memoryMb >= 1)) {
    bad('memoryMb', 'a number of MiB, at least 1', opts.memoryMb);
  }
  if (opts.seed !== undefined) {
    if (!(Number.isInteger(opts.seed) && opts.seed >= 0 && opts.seed <= 0xffffffff)) bad('seed', 'an integer from 0 to 4294967295', opts.seed);
    if (!opts.shuffle) throw new Error('combine: seed orders the shuffle; without shuffle: true it would do nothing');
  }
  if (opts.tmpDir !== undefined && typeof opts.tmpDir !== 'string') bad('tmpDir', 'a folder name', opts.tmpDir);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') bad('onProgress', 'a function', opts.onProgress);
}

/** `context.optionName` names the options in messages (the CLI: its flags). */
export async function combineFiles(inputs: string[], opts: CombineOptions, context: NamingContext = {}): Promise<CombineResult> {
  if (!Array.isArray(inputs) || !inputs.every((f) => typeof f === 'string')) throw new TypeError(`combine: inputs must be an array of file names, got ${describeValue(inputs)}`);
  checkOptions('combine', opts, COMBINE_OPTIONS);
  checkOptions('combine: context', context, NAMING_CONTEXT);
  const n = context.optionName ?? optionItself;
  if (typeof opts.output !== 'string') throw new TypeError(`combine: output must be a file name (or - for stdout), got ${describeValue(opts.output)}`);
  checkCombineOptions(opts);
  if (inputs.length === 0) throw new Error('combine: no input files');
  // (before the output check: a missing input named as the output too was called an input of itself)
  for (const f of inputs) if (f !== '-' && statOrNull(f) === null) throw new Error(`${f}: no such file`);
  // the same file through a link counts too (checkOutput compares device and inode)
  const inputNames = inputs.map((path) => ({ name: 'the input', path }));
  checkOutput(opts.output, { name: 'output', overwrite: opts.overwrite, overwriteName: 'overwrite: true', inputs: inputNames });
  const out = resolve(opts.output);
  const budget = (opts.memoryMb ?? 256) * 1024 * 1024;
  const rng = new Rng(opts.seed ?? 42);
  const writer = openOutput(opts.output, { replace: opts.overwrite ?? false }); // `-`: stdout
  const files: FileCount[] = [];
  let readBytes = 0;
  let tmp: string | undefined;
  let untrack = (): void => {};
  // the scratch folder (stdin's copy, the buckets): beside the output, named with the pid so that a
  // later run removes the folder of one that was killed
  // (stdout, a pipe or a device has no folder of its own: /dev/stdout's is /dev: the system's temporary
  // folder, TMPDIR; the current folder may not be writable)
  const folderless = opts.output === '-' || writtenThrough(opts.output);
  const parent = opts.tmpDir ?? (folderless ? tmpdir() : dirname(out));
  // A full disk (or another failed write) under the scratch folder: said with the folder, not Node's
  // bare "ENOSPC: no space left on device, write", which sent users to look at the output's disk.
  const where = opts.tmpDir ?? (folderless ? `the temporary folder ${parent} (TMPDIR)` : `${dirname(opts.output)} (beside the output)`);
  let heartbeat: NodeJS.Timeout | undefined;
  const scratch = (): string => {
    if (tmp) return tmp;
    removeStaleBucketDirs(parent);
    try {
      tmp = mkdtempSync(join(parent, `${BUCKET_PREFIX}${process.pid}-${PID_SPACE}-`));
    } catch (err) {
      throw new Error(`could not make the shuffle's scratch folder in ${where}: ${fsReason(err, join(parent, BUCKET_PREFIX))}`);
    }
    untrack = trackScratch(tmp); // removed on Ctrl-C too (util/scratch.ts)
    const touched = tmp;
    heartbeat = setInterval(() => {
      try {
        const now = new Date();
        utimesSync(touched, now, now);
      } catch {
        // gone: the reads of its files say so
      }
    }, HEARTBEAT_MS).unref();
    return tmp;
  };
  // Output lines are batched into ~1 MiB writes.
  let outBuf: string[] = [];
  let outBytes = 0;
  const emit = async (line: string): Promise<void> => {
    outBuf.push(line, '\n');
    outBytes += line.length + 1;
    if (outBytes >= 1 << 20) await drain();
  };
  const drain = async (): Promise<void> => {
    if (outBuf.length) await writer.write(outBuf.join(''));
    outBuf = [];
    outBytes = 0;
  };
  let buckets = 0;
  try {
    // the size of stdin or of a pipe (`<(zcat x.gz)`) is known only once it is read: a shuffle copies
    // it to a file first, so that --memory-mb bounds it as it bounds a file (held in memory, it grew
    // with the input)
    const sources = new Map<string, string>();
    for (const [i, f] of inputs.entries()) {
      if (!opts.shuffle || sources.has(f) || (f !== '-' && statSync(f).isFile())) continue;
      if (f === '-' && stdinIsFolder()) throw readFailure('stdin', Object.assign(new Error('EISDIR'), { code: 'EISDIR' }));
      const name = f === '-' ? 'stdin' : f;
      const copy = join(scratch(), `input-${i}.jsonl`);
      const file = createWriteStream(copy);
      let writeError: unknown;
      file.on('error', (e) => {
        writeError = e;
      });
      try {
        await pipeline(f === '-' ? process.stdin : createReadStream(f), file);
      } catch (err) {
        if (err === writeError || (err as NodeJS.ErrnoException).path === copy) {
          throw new Error(`could not copy ${name} for the shuffle into ${where}: ${fsReason(err)}; free some space there`);
        }
        throw readFailure(name, err); // a folder on stdin, say
      }
      sources.set(f, copy);
    }
    const totalBytes = inputs.reduce((sum, f) => sum + (f === '-' && !sources.has(f) ? 0 : statSync(sources.get(f) ?? f).size), 0);
    buckets = opts.shuffle ? shuffleBuckets(totalBytes, budget) : 0;
    // Each valid line goes to `sink`: the output (no shuffle), memory (K = 1) or a bucket file.
    const inMemory: string[] = [];
    const pending: string[][] = [];
    const pendingBytes: number[] = [];
    let bucketFiles: string[] = [];
    const written: number[] = []; // bytes appended to each bucket (0: no line landed there, no file)
    if (buckets > 1) {
      const dir = scratch();
      bucketFiles = Array.from({ length: buckets }, (_, i) => join(dir, `bucket-${i}.jsonl`));
      for (let i = 0; i < buckets; i++) {
        pending.push([]);
        pendingBytes.push(0);
        written.push(0);
      }
    }
    const flushLimit = Math.max(64 * 1024, Math.floor(budget / (4 * Math.max(1, buckets))));
    const flush = (b: number): void => {
      if (pending[b]!.length === 0) return;
      try {
        const chunk = pending[b]!.join('');
        appendFileSync(bucketFiles[b]!, chunk);
        written[b]! += Buffer.byteLength(chunk);
      } catch (err) {
        // K = 1 (no bucket files) once the budget holds MEMORY_PER_INPUT_BYTE per input byte
        const inMemoryMb = Math.ceil((totalBytes * MEMORY_PER_INPUT_BYTE) / (1024 * 1024));
        throw new Error(
          `could not write the shuffle's bucket files in ${where}: ${fsReason(err)}; they take about ${formatBytes(totalBytes)}: ` +
            `free some space there, or give --memory-mb ${inMemoryMb} or more to shuffle in memory`,
        );
      }
      pending[b] = [];
      pendingBytes[b] = 0;
    };
    const sink = async (line: string): Promise<void> => {
      if (buckets === 0) await emit(line);
      else if (buckets === 1) inMemory.push(line);
      else {
        const b = rng.int(buckets);
        pending[b]!.push(line + '\n');
        pendingBytes[b]! += line.length + 1;
        if (pendingBytes[b]! >= flushLimit) flush(b);
      }
    };

    for (const file of inputs) {
      const count: FileCount = { file, rows: 0, badLines: 0, firstBadLines: [] };
      for await (const { line, text, bytes, tooLong } of readLines(sources.get(file) ?? file, { yieldTooLong: true, name: file === '-' ? 'stdin' : file })) {
        readBytes += bytes;
        const trimmed = text.trim();
        if (trimmed === '' && !tooLong) continue;
        let problem: string | null;
        try {
          problem = tooLong ? `line longer than ${DEFAULT_MAX_LINE_BYTES} bytes` : pairRowProblem(JSON.parse(trimmed));
        } catch (err) {
          problem = invalidJson(err);
        }
        if (problem) {
          if (!opts.skipBadLines) throw new LineError(file === '-' ? 'stdin' : file, line, `${problem} (use ${n('skipBadLines')} to drop such lines)`);
          if (count.badLines++ < FIRST_BAD_LINES) count.firstBadLines.push(line);
          continue;
        }
        count.rows++;
        await sink(trimmed);
        if (count.rows % 10000 === 0) opts.onProgress?.(readBytes, totalBytes);
      }
      files.push(count);
    }
    opts.onProgress?.(totalBytes, totalBytes);

    if (buckets === 1) {
      rng.shuffle(inMemory);
      for (const line of inMemory) await emit(line);
    } else if (buckets > 1) {
      for (let b = 0; b < buckets; b++) flush(b);
      for (const [b, bf] of bucketFiles.entries()) {
        if (written[b] === 0) continue; // no line landed in this bucket
        // never skipped, nor taken shorter than written: a bucket lost is rows lost
        let bytes: Buffer;
        try {
          bytes = readFileSync(bf);
        } catch (err) {
          throw new Error(`could not read back the shuffle's bucket file ${bf} in ${where}: ${fsReason(err)} (was the scratch folder removed meanwhile?)`);
        }
        if (bytes.length !== written[b]) {
          throw new Error(
            `could not read back the shuffle's bucket file ${bf} in ${where}: it holds ${bytes.length} bytes of the ${written[b]} written (was the scratch folder removed meanwhile?)`,
          );
        }
        const text = bytes.toString('utf8');
        const lines = text.split('\n');
        lines.pop(); // after the final '\n'
        rng.shuffle(lines);
        for (const line of lines) await emit(line);
        rmSync(bf, { force: true });
      }
    }
    await drain();
    await writer.commit();
  } catch (err) {
    writer.abort();
    // a failure on the shuffle's scratch files: said with their folder, not the temp path
    if ((err as NodeJS.ErrnoException).path?.includes(BUCKET_PREFIX)) throw new Error(`could not write the shuffle's scratch files in ${where}: ${fsReason(err)}`);
    throw err;
  } finally {
    clearInterval(heartbeat);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    untrack();
  }
  return { files, rows: files.reduce((s, f) => s + f.rows, 0), buckets };
}

