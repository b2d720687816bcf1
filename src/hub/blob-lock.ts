// blobs/<etag>.lock: one process at a time fetches a blob into the shared cache; another pull of the
// same file waits for it, then finds the blob done.
//
// The lock holds its writer's pid, and a dead pid's lock is taken over at once. A pid says nothing
// across machines or PID namespaces (containers sharing a cache volume): there a dead pull's pid may
// name a live stranger, and the waiter would wait forever. So the holder also touches the lock every
// STALE_MS / 6, and a lock whose modification time has not moved for STALE_MS, as the waiter's own
// clock measures it (another machine's clock may be off), is stale whatever its pid.
import { closeSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { HubError } from './http.js';
import { processAlive } from '../util/process.js';

/** How long a lock may stay untouched before it is taken over (its holder touches it 6 times as often). */
export const LOCK_STALE_MS = 120_000;

/** The blob locks this process holds (a lock with our pid that is not here was left by another process). */
const locksHeldHere = new Set<string>();

/** The lock's modification time, or undefined when it is gone. */
function mtimeOf(lock: string): number | undefined {
  return statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
}

/**
 * Takes `blob`.lock (created exclusively, holding our pid). A lock whose process is gone (killed) is
 * taken over, and its `.incomplete` resumed by the caller; so is one left untouched for `staleMs`.
 * `onWait` is called once if another holder is waited for. Returns the release.
 */
export async function lockBlob(
  blob: string,
  what: string,
  onWait: (holder: number, lock: string) => void,
  staleMs: number = LOCK_STALE_MS,
): Promise<() => void> {
  const lock = `${blob}.lock`;
  let waited = false;
  let seen: { mtime: number | undefined; at: number } | undefined;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      try {
        writeFileSync(fd, `${process.pid}\n`);
      } catch (err) {
        // ours, and empty (a full disk): a pid-less lock would hold the next run up for 10 s
        closeSync(fd);
        rmSync(lock, { force: true });
        throw err;
      }
      closeSync(fd);
      locksHeldHere.add(lock);
      const beat = setInterval(() => {
        const now = new Date();
        try {
          utimesSync(lock, now, now);
        } catch {
          // removed by a waiter that found it stale (this process was stopped for longer than staleMs)
        }
      }, staleMs / 6);
      beat.unref();
      return () => {
        clearInterval(beat);
        locksHeldHere.delete(lock);
        rmSync(lock, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new HubError(`${what}: cannot create ${lock} (${(err as Error).message})`);
    }
    let holder = NaN;
    try {
      holder = Number.parseInt(readFileSync(lock, 'utf8'), 10);
    } catch {
      continue; // released between our two calls: try again
    }
    const mtime = mtimeOf(lock);
    if (seen === undefined || seen.mtime !== mtime) seen = { mtime, at: Date.now() };
    // a dead holder's lock is stale; so is one still without a pid after 10 s (killed between
    // creating the file and writing to it), and one with our pid that this process does not hold: an
    // earlier process that had our pid (a container's pid 1, with the cache on a volume) was killed;
    // and any other not touched for staleMs (its pid is not of this machine or namespace)
    const untouchedMs = Date.now() - seen.at;
    const pidless = !(Number.isInteger(holder) && holder > 0);
    const pidlessMs = Math.min(10_000, staleMs);
    const stale = pidless
      ? untouchedMs > pidlessMs || Date.now() - (mtime ?? Date.now()) > pidlessMs
      : holder === process.pid
        ? !locksHeldHere.has(lock)
        : !processAlive(holder) || untouchedMs > staleMs;
    if (stale) {
      rmSync(lock, { force: true });
      seen = undefined;
      continue;
    }
    if (!waited) onWait(holder, lock);
    waited = true;
    await new Promise((r) => setTimeout(r, 100));
  }
}
