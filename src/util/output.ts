// Where a command's data goes: a file, written atomically (util/atomic.ts), or standard output when
// the name is `-`. Callers stream through one interface and never care which it is. checkOutput
// refuses, before any work, an output that would replace an input or (without overwrite) a file.
import { dirname, sep } from 'node:path';
import { AtomicWriter, namedDescriptor, writeFileAtomic, writeModeFor, type PublishOptions, type WriteMode } from './atomic.js';
import { fsReason, regularFileOn, statOrNull, targetFolder } from './fs-error.js';

/** The name that means standard input (for inputs) or standard output (for outputs). */
export const STDIO = '-';

/** The exit status of a Unix tool killed by SIGPIPE (128 + 13): what `l2e ... | head` ends with. */
export const SIGPIPE_STATUS = 141;

/**
 * The reader of standard output went away (`l2e encode ... --output - | head`): not a failure to
 * report; the command stops its work quietly and exits with SIGPIPE_STATUS.
 */
export class OutputClosedError extends Error {
  override name = 'OutputClosedError';
  constructor() {
    super('the reader of stdout went away');
  }
}

/** An empty output name would otherwise mean the current folder ("could not write : it is a folder"). */
const emptyOutput = (name: string): string => `${name} is empty: give a file name, or - for stdout`;

/** A file the command reads, as messages name it: `{ name: '--input', path: 'c.jsonl' }`. */
export interface NamedInput {
  /** How the input is named: its flag (`--input`), option (`input`) or `the input`. */
  name: string;
  path: string;
}

export interface OutputCheck {
  /** How the output is named in messages: its flag (`--output`, the default) or option (`output`). */
  name?: string;
  /** Replace an existing file (never an input). */
  overwrite?: boolean;
  /** How the permission to replace is named (default `--overwrite`). */
  overwriteName?: string;
  /** The files the command reads: the output is never one of them. */
  inputs?: NamedInput[];
}

/**
 * Checks, before any work, that `target` can be written and replaces nothing it must not: the folder
 * it goes into exists, it is not a folder, it is none of `inputs` (the same file after following
 * links, or the same path while neither exists), and an existing file is replaced only with
 * `overwrite`. `-`, pipes and devices (written through, see writeModeFor) are never refused.
 */
export function checkOutput(target: string, check: OutputCheck = {}): void {
  const name = check.name ?? '--output';
  if (target === '') throw new Error(emptyOutput(name));
  if (isStdout(target)) refuseInputOnStdout(`${name} ${target === STDIO ? '- (stdout)' : target}`, check.inputs ?? []);
  if (target === STDIO) return;
  // a name ending in a separator is a folder's: writing would make a file under another name
  if (target.endsWith('/') || target.endsWith(sep)) throw new Error(`${name} ${target} ends in ${sep}, as a folder's name does: give a file name`);
  let mode: WriteMode;
  try {
    mode = writeModeFor(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new Error(`${name} ${target}: ${dirname(target)} is not a folder`);
    const msg = fsReason(err);
    throw new Error(`${name} ${target} ${msg === 'it is a folder' ? 'is a folder: give a file name' : `cannot be written: ${msg}`}`);
  }
  if (mode.kind === 'through') return;
  const out = statOrNull(mode.path);
  for (const input of check.inputs ?? []) {
    if (input.path === '') continue;
    // stdin redirected from the very file (`--input - < out.jsonl`) is that file too
    const st = input.path === STDIO ? regularFileOn(0) : statOrNull(input.path);
    if (input.path === STDIO && (st === null || out === null)) continue;
    let same = out !== null && st !== null && out.dev === st.dev && out.ino === st.ino;
    if (!same && out === null) {
      try {
        same = writeModeFor(input.path).path === mode.path; // neither exists yet: the same name
      } catch {
        // an input that is a folder or a link loop: its reader says so
      }
    }
    if (same) throw new Error(`${name} ${target} is also an input: ${input.name} ${input.path === STDIO ? '- (stdin)' : input.path} is the same file`);
  }
  if (out !== null) {
    if (!check.overwrite) throw new Error(`${name} ${target} already exists (pass ${check.overwriteName ?? '--overwrite'} to replace it)`);
    return;
  }
  const folder = targetFolder(target, mode.path);
  const dir = statOrNull(folder);
  if (dir === null) throw new Error(`${name} ${target}: the folder ${folder} does not exist`);
  if (!dir.isDirectory()) throw new Error(`${name} ${target}: ${folder} is not a folder`);
}

/**
 * Refuses a stdout that the shell opened on one of `inputs` (`... --output - >> in.jsonl`): the
 * command would read back what it writes, a streaming one until the disk is full.
 */
export function refuseInputOnStdout(said: string, inputs: NamedInput[]): void {
  const out = regularFileOn(1);
  if (out === null) return; // a terminal, a pipe: nothing read back
  for (const input of inputs) {
    if (input.path === '') continue;
    const st = input.path === STDIO ? regularFileOn(0) : statOrNull(input.path);
    if (st !== null && st.dev === out.dev && st.ino === out.ino) {
      throw new Error(`${said} is also an input: ${input.path === STDIO ? 'stdin' : `${input.name} ${input.path}`} is the same file as stdout`);
    }
  }
}

export interface OutputWriter {
  /** Writes a chunk, waiting while the destination's buffer is full. */
  write(chunk: string | Uint8Array): Promise<void>;
  /** Makes the output final (renames the temp file into place; on stdout, waits for the flush). */
  commit(): Promise<void>;
  /** Drops what was written to a file (stdout cannot take it back). */
  abort(): void;
}

export interface OutputOptions extends PublishOptions {
  /** What `-` writes to (default process.stdout). */
  stream?: NodeJS.WritableStream;
}

/** `-`, or a name of this process's own stdout (/dev/stdout, /dev/fd/1): data there is the command's stdout. */
export function isStdout(target: string): boolean {
  if (target === STDIO) return true;
  try {
    const mode = writeModeFor(target);
    return mode.kind === 'through' && namedDescriptor(mode.path) === 1;
  } catch {
    return false;
  }
}

/**
 * A writer for `target`: `-` streams to stdout, anything else is written atomically. Pass `replace`
 * the command's overwrite: without it a file that appeared after checkOutput is kept (util/atomic.ts).
 */
export function openOutput(target: string, options: OutputOptions = {}): OutputWriter {
  if (target === '') throw new Error(emptyOutput('output'));
  if (!isStdout(target)) return new AtomicWriter(target, options); // /dev/stdout: process.stdout, as `-`
  const stream = options.stream ?? process.stdout;
  let failed: Error | undefined;
  stream.on('error', (e: Error) => {
    failed = e; // e.g. EPIPE when the reader (`| head`) went away
  });
  const check = (): void => {
    if (!failed) return;
    if ((failed as NodeJS.ErrnoException).code === 'EPIPE') throw new OutputClosedError();
    throw new Error(`could not write to stdout: ${failed.message}`);
  };
  return {
    write: async (chunk) => {
      check();
      if (!stream.write(chunk)) await new Promise<void>((resolve) => {
        const done = (): void => {
          stream.off('drain', done);
          stream.off('error', done);
          resolve();
        };
        stream.once('drain', done);
        stream.once('error', done);
      });
      check();
    },
    commit: async () => {
      await new Promise<void>((resolve) => stream.write('', () => resolve()));
      check();
    },
    abort: () => {},
  };
}

/** Whether `target` is a pipe, device or socket (or a link to one): written through, not replaced. */
export function writtenThrough(target: string): boolean {
  try {
    return writeModeFor(target).kind === 'through';
  } catch {
    return false; // writeFileAtomic says why
  }
}

/** Writes the whole of `data` to `target` (`-`: stdout), as openOutput would. */
export async function writeOutput(target: string, data: string | Uint8Array | Uint8Array[], options: OutputOptions = {}): Promise<void> {
  if (target === '') throw new Error(emptyOutput('output'));
  // a file is written at once; a pipe or device goes through openOutput's stream, which opens it off the
  // event loop: a named pipe waits there for its reader, and a signal still stops the command (a
  // synchronous open held the process deaf to Ctrl-C until a reader came)
  if (!isStdout(target) && !writtenThrough(target)) {
    writeFileAtomic(target, data, options);
    return;
  }
  const w = openOutput(target, options);
  for (const part of Array.isArray(data) ? data : [data]) await w.write(part);
  await w.commit();
}
