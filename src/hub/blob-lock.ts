// blobs/<etag>.lock: one process at a time fetches a blob into the shared cache; another pull of the
// same file waits for it, then finds the blob done.
//
// The lock holds its writer's pid, host name and a random token ("<pid> <host> <token>"). A lock of
// this host whose pid is dead is taken over at once. A pid says nothing about another host (another
// machine, or a container sharing the cache volume, whose PID namespace is its own): there a dead
// pull's pid may name a live stranger here, and the waiter would wait forever. So the holder touches
// its lock every STALE_MS / 6, and another host's lock whose modification time has not moved for
// STALE_MS, timed on the waiter's monotonic clock (no other machine's clock, no clock step), is taken
// over. The holder's release and touches act only while the lock still holds its token.
import { closeSync, openSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { HubError } from './http.js';
import { readTextOrNull } from '../util/fs-error.js';
import { lockHolder, processAlive } from '../util/process.js';

/** How long another host's lock may stay untouched before it is taken over (its holder touches it 6 times as often). */
export const LOCK_STALE_MS = 120_000;

/** The blob locks this process holds (a lock with our pid that is not here was left by another process). */
const locksHeldHere = new Set<string>();

/** The lock's modification time, or undefined when it is gone. */
function mtimeOf(lock: string): number | undefined {
  return statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
}


/**
 * A held blob lock: calling it releases it; `lost()` says, from the holder's last touch (every
 * staleMs / 6), that the lock file no longer holds this holder's token (another process took it over,
 * or it was removed): the holder must stop writing the blob's `.incomplete`, which is not its own any more.
 */
export type BlobLock = (() => void) & { readonly lock: string; lost(): boolean };

/**
 * Takes `blob`.lock (created exclusively). A lock whose process is gone (killed) is taken over, and
 * its `.incomplete` resumed by the caller; so is another host's left untouched for `staleMs`.
 * `onWait` is called once if another holder is waited for. Returns the release.
 */
export async function lockBlob(
  blob: string,
  what: string,
  onWait: (holder: number, lock: string) => void,
  staleMs: number = LOCK_STALE_MS,
): Promise<BlobLock> {
  const lock = `${blob}.lock`;
  const host = hostname();
  let waited = false;
  let seen: { mtime: number | undefined; at: number } | undefined;
  for (;;) {
    const mine = `${process.pid} ${host} ${randomBytes(8).toString('hex')}\n`;
    try {
      const fd = openSync(lock, 'wx');
      try {
        writeFileSync(fd, mine);
      } catch (err) {
        // ours, and empty (a full disk): a pid-less lock would hold the next run up for 10 s
        closeSync(fd);
        rmSync(lock, { force: true });
        throw err;
      }
      closeSync(fd);
      locksHeldHere.add(lock);
      const stillMine = (): boolean => readTextOrNull(lock) === mine; // not taken over meanwhile
      let lost = false;
      const beat = setInterval(() => {
        const now = new Date();
        try {
          if (stillMine()) utimesSync(lock, now, now);
          else lost = true;
        } catch {
          lost = true; // removed meanwhile
        }
      }, staleMs / 6);
      beat.unref();
      const release = (): void => {
        clearInterval(beat);
        locksHeldHere.delete(lock);
        if (stillMine()) rmSync(lock, { force: true });
      };
      return Object.assign(release, { lock, lost: (): boolean => lost });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new HubError(`${what}: cannot create ${lock} (${(err as Error).message})`);
    }
    const text = readTextOrNull(lock);
    if (text === null) continue; // released between our two calls: try again
    const holder = lockHolder(text);
    const mtime = mtimeOf(lock);
    if (seen === undefined || seen.mtime !== mtime) seen = { mtime, at: performance.now() };
    const untouchedMs = performance.now() - seen.at;
    // stale: one still without a pid after 10 s (its writer killed between creating and writing it);
    // of this host, a dead pid's, or our pid's when this process does not hold it (an earlier process
    // with our pid, a container's pid 1 with the cache on a volume, was killed); of another host, one
    // left untouched for staleMs
    const stale = Number.isNaN(holder.pid)
      ? untouchedMs > Math.min(10_000, staleMs)
      : holder.host !== '' && holder.host !== host
        ? untouchedMs > staleMs
        : holder.pid === process.pid
          ? !locksHeldHere.has(lock)
          : !processAlive(holder.pid);
    if (stale) {
      rmSync(lock, { force: true });
      seen = undefined;
      continue;
    }
    if (!waited) onWait(holder.pid, lock);
    waited = true;
    await new Promise((r) => setTimeout(r, 100));
  }
}
