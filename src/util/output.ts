// Where a command's data goes: a file, written atomically (util/atomic.ts), or standard output when
// the name is `-`. Callers stream through one interface and never care which it is.
import { AtomicWriter, writeFileAtomic } from './atomic.js';

/** The name that means standard input (for inputs) or standard output (for outputs). */
export const STDIO = '-';

export interface OutputWriter {
  /** Writes a chunk, waiting while the destination's buffer is full. */
  write(chunk: string | Uint8Array): Promise<void>;
  /** Makes the output final (renames the temp file into place; on stdout, waits for the flush). */
  commit(): Promise<void>;
  /** Drops what was written to a file (stdout cannot take it back). */
  abort(): void;
}

/** A writer for `target`: `-` streams to stdout, anything else is written atomically. */
export function openOutput(target: string, stream: NodeJS.WritableStream = process.stdout): OutputWriter {
  if (target !== STDIO) return new AtomicWriter(target);
  let failed: Error | undefined;
  stream.on('error', (e: Error) => {
    failed = e; // e.g. EPIPE when the reader (`| head`) went away
  });
  const check = (): void => {
    if (failed) throw new Error(`could not write to stdout: ${failed.message}`);
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

/** Writes the whole of `data` to `target` (`-`: stdout). */
export async function writeOutput(
  target: string,
  data: string | Uint8Array | Uint8Array[],
  stream: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  if (target !== STDIO) {
    writeFileAtomic(target, data);
    return;
  }
  const w = openOutput(target, stream);
  for (const part of Array.isArray(data) ? data : [data]) await w.write(part);
  await w.commit();
}
