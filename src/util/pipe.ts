// Opening a named pipe (FIFO) for writing without blocking the process. open(2) of a FIFO for writing
// waits until some process opens it for reading; done synchronously (or on libuv's thread pool, which
// Node joins at exit) that wait held the process deaf to Ctrl-C, and unable to exit, until a reader came.
// Here the wait is a poll: an O_NONBLOCK open fails with ENXIO while no process reads (open(2)), and
// succeeds once one does; holding that descriptor, a blocking open then returns at once.
import { closeSync, constants, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { statOrNull } from './fs-error.js';

/** Whether `path` (links followed) is a named pipe. */
export function isNamedPipe(path: string): boolean {
  return statOrNull(path)?.isFIFO() ?? false;
}

export interface PipeWait {
  /** Called once when no process reads the pipe yet. */
  onWait?: () => void;
  /** Ends the wait: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** How often the pipe is tried (default 100 ms); the event loop runs in between. */
  pollMs?: number;
}

/** A blocking descriptor on the named pipe `path`, open for appending, once a process reads it. */
export async function openPipeForWriting(path: string, wait: PipeWait = {}): Promise<number> {
  for (let waited = false; ; waited = true) {
    wait.signal?.throwIfAborted();
    let probe: number;
    try {
      probe = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
      if (!waited) wait.onWait?.();
      try {
        await sleep(wait.pollMs ?? 100, undefined, { signal: wait.signal });
      } catch (slept) {
        wait.signal?.throwIfAborted(); // the signal's reason, not the timer's AbortError
        throw slept;
      }
      continue;
    }
    try {
      return openSync(path, 'a'); // a reader holds it open: no wait
    } finally {
      closeSync(probe);
    }
  }
}
