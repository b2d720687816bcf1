// The --log file: one JSON object per optimizer step, appended (StepInfo and the run's id, `run`: a
// log may be shared by runs). Which files may be one, the append, and a resume's trim of the steps it
// trains again.
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, realpathSync, statSync, truncateSync, appendFileSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { TOKENIZER_FILES } from './checkpoint.js';
import { RUN_FILE } from './run.js';
import { TRAIN_LOCK } from './output-lock.js';
import { readLines } from '../data/jsonl.js';
import type { RowSource } from '../data/pairs.js';
import type { OptionNamer } from './options.js';
import { counted } from '../util/plural.js';
import { fsReason, statOrNull } from '../util/fs-error.js';
import { isNamedPipe, openPipeForWriting } from '../util/pipe.js';

/**
 * The log, open for appending for the whole run: opened once, not at each step (a named pipe's reader
 * saw the end of its input after the first line, and the next step's open then waited for a reader
 * that would never come); a named pipe is waited for without holding the process (util/pipe.ts).
 */
export class StepLog {
  private constructor(
    private fd: number | null,
    private readonly log: string,
    private readonly n: OptionNamer,
  ) {}

  /** Opens `log`; `onWait` is told when it is a named pipe that no process reads yet. */
  static async open(log: string, n: OptionNamer, onWait: (m: string) => void, signal?: AbortSignal): Promise<StepLog> {
    const said = `${n('logFile')} ${log}`;
    try {
      const fd = isNamedPipe(log)
        ? await openPipeForWriting(log, { signal, onWait: () => onWait(`${said} is a named pipe that no process reads yet: waiting for its reader`) })
        : openSync(log, 'a');
      return new StepLog(fd, log, n);
    } catch (err) {
      if (signal?.aborted) return new StepLog(null, log, n); // stopped while it waited: the run stops before its first step
      throw new Error(`could not open ${said}: ${fsReason(err, log)}`);
    }
  }

  /** Appends one step's line, with its run's id; a failure names the step, the log and why. */
  append(info: { step: number }, run: string): void {
    if (this.fd === null) throw new Error(`${this.n('logFile')} ${this.log} is closed`);
    const line = Buffer.from(JSON.stringify({ ...info, run }) + '\n');
    const st = fstatSync(this.fd);
    try {
      for (let off = 0; off < line.length; ) off += writeSync(this.fd, line, off);
    } catch (err) {
      // part of the line may be in: cut back to the last whole line (a full disk left a torn line that
      // no resume could read, and every JSONL reader of the log failed on it)
      if (st.isFile()) {
        try {
          ftruncateSync(this.fd, st.size);
        } catch {
          // the message below says why the append failed; the torn tail is ended by the next run's endTornLine
        }
      }
      throw new Error(`could not append step ${info.step} to ${this.n('logFile')} ${this.log}: ${fsReason(err, this.log)}`);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Ends the log's last line when a kill tore it, so that the next step's line starts a line of its own. */
export function endTornLine(log: string): void {
  const st = statOrNull(log);
  if (st === null || !st.isFile() || st.size === 0) return;
  const fd = openSync(log, 'r');
  const last = Buffer.alloc(1);
  try {
    readSync(fd, last, 0, 1, st.size - 1);
  } finally {
    closeSync(fd);
  }
  if (last[0] !== 0x0a) appendFileSync(log, '\n');
}

/** Why the non-empty file `log` is not a step log (its first line is not a step's JSON object), or null. */
function notAStepLog(log: string): string | null {
  const fd = openSync(log, 'r');
  const head = Buffer.alloc(4096);
  let got: number;
  try {
    got = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const text = head.subarray(0, got).toString('utf8');
  const end = text.indexOf('\n');
  if (end < 0 && got === head.length) return 'its first line is longer than a step\'s';
  const first = end < 0 ? text : text.slice(0, end);
  // the log's only line, torn by a kill as it was written (a resume trims it)
  if (end < 0 && /^\{"step":\d/.test(first)) return null;
  try {
    const v = JSON.parse(first) as unknown;
    if (typeof v === 'object' && v !== null && typeof (v as { step?: unknown }).step === 'number') return null;
  } catch {
    // said below
  }
  return 'its first line is not a step\'s JSON object';
}

/** `path` with its links followed as far as it exists: where it really is, or would be. */
function realPath(path: string): string {
  const full = resolve(path);
  try {
    return realpathSync(full);
  } catch {
    const parent = dirname(full);
    return parent === full ? full : join(realPath(parent), basename(full));
  }
}

/**
 * Refuses a log the run itself would replace or remove in its output folder: one of the files it
 * writes there (the model, the tokenizer, its run record and lock) or anything in a checkpoint folder
 * (replaced at the next save of that step, removed by the limit). Such a log was lost without a word.
 */
function refuseLogInOutput(log: string, outputDir: string, n: OptionNamer): void {
  const rel = relative(realPath(outputDir), realPath(log));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return;
  const first = rel.split(sep)[0]!;
  const runs = `the run writes in ${n('outputDir')} ${outputDir}`;
  if (rel === first && OUTPUT_FILES.includes(first)) throw new Error(`${n('logFile')} ${log} is the ${first} ${runs}: give a file the run does not write`);
  if (CHECKPOINT_NAME.test(first)) {
    throw new Error(`${n('logFile')} ${log} is in ${first}, a checkpoint folder ${runs} (replaced when saved again, removed by the limit): give a file outside it`);
  }
}

/** The files a run writes at the top of its output folder. */
const OUTPUT_FILES = ['config.json', 'model.safetensors', ...TOKENIZER_FILES, RUN_FILE, TRAIN_LOCK];
/** A checkpoint folder, or one being written or removed (.checkpoint-N.tmp-PID, .checkpoint-N.del-PID). */
const CHECKPOINT_NAME = /^\.?checkpoint-\d+(\..*)?$/;

/**
 * Refuses, before anything is written, a log that would go where it must not: a folder (appending
 * failed only after step 1, with a bare EISDIR), the training data itself (the same file, links
 * followed: the per-step lines were appended to the data), a file the run writes or removes in its
 * output folder (refuseLogInOutput), or any other file that is not a step log (a model's config.json,
 * a metrics file: appending made it invalid JSON).
 */
export function refuseLogFile(log: string, data: RowSource, outputDir: string | undefined, n: OptionNamer): void {
  if (outputDir) refuseLogInOutput(log, outputDir, n);
  let st: Stats;
  try {
    st = statSync(log);
  } catch {
    return; // a new file
  }
  if (st.isDirectory()) throw new Error(`${n('logFile')} ${log} is a folder: give a file to append the per-step lines to`);
  const d = typeof data === 'string' ? statOrNull(data) : null; // null: the data reader says why
  if (d !== null && d.dev === st.dev && d.ino === st.ino) {
    throw new Error(`${n('logFile')} ${log} is the training data (${data}): the per-step lines would be appended to it; give another file`);
  }
  const notLog = st.isFile() && st.size > 0 ? notAStepLog(log) : null;
  if (notLog !== null) {
    throw new Error(`${n('logFile')} ${log} is not a step log (${notLog}): the per-step lines would be appended to it; give a new file or an earlier run's log`);
  }
}

/**
 * On resume, drops from the log the lines of steps after the checkpoint's (`step`): a run killed after
 * its last checkpoint logged steps that the resumed run does again. Only the lines after the log's
 * last line of `step` of run `run` go, and only when each is a later step of that run or a torn line,
 * so a log shared with other runs keeps theirs (a line without a run, from before runs were logged,
 * counts as any run's, and a step at or below `step` as another run's); without such a line of `step`
 * the log is left as it is.
 */
export async function trimLog(log: string, step: number, run: string, notice: (m: string) => void): Promise<void> {
  const later = await linesAfter(log, step, run);
  if (later === null) return;
  truncateSync(log, later.cut);
  notice(`${log}: dropped ${counted(later.lines, 'line')} of steps after ${step}, the checkpoint's: the resumed run logs them again`);
}

/**
 * The lines trimLog would drop: their count, and the byte offset they start at; null when it would
 * drop none.
 */
export async function linesAfter(log: string, step: number, run: string): Promise<{ cut: number; lines: number } | null> {
  let offset = 0;
  let cut: number | null = null; // the byte offset after the last line of `step`
  let after = 0; // lines after it, all of later steps (or torn)
  let fits = true;
  if (!statOrNull(log)?.isFile()) return null; // no log yet, or a pipe or device: nothing to read back
  for await (const { text, bytes } of readLines(log, { onInvalidUtf8: () => {} })) {
    offset += bytes;
    if (text.trim() === '') continue;
    let logged: number | null = null;
    let ours = true; // of this run, or of no run said
    try {
      const v = JSON.parse(text) as { step?: unknown; run?: unknown };
      logged = typeof v.step === 'number' ? v.step : null;
      ours = v.run === undefined || v.run === run;
    } catch {
      // a line torn by the kill: dropped with the later steps around it
    }
    if (logged === step && ours) {
      cut = offset;
      after = 0;
      fits = true;
    } else if (cut !== null) {
      after++;
      if ((logged !== null && logged <= step) || !ours) fits = false;
    }
  }
  if (cut === null || after === 0 || !fits) return null;
  return { cut, lines: after };
}

