// <output>/.l2e-train.lock: one training run at a time in an output folder. Two runs there (a second
// started with --overwrite or --resume while the first still trains) would each replace the other's
// checkpoints and final model, and both would say "saved".
//
// The lock holds its run's pid and host name ("<pid> <host>"), created exclusively once the folder
// exists and before the run changes anything in it, and removed when the run ends (its checkpoints and
// final model written, or an error or a stop). A run killed outright leaves it: a lock of this host
// whose pid is dead is taken over. Taking over is guarded: removing a stale lock and writing a new one
// are two steps, so two runs that both saw the dead pid could each remove the lock the other had just
// written. Only the holder of <lock>.takeover (created exclusively) replaces a stale lock, after
// reading it again, by renaming a file of its own over it (never a moment without a lock). A takeover
// file is held for milliseconds; one whose writer is dead and that is older than TAKEOVER_STALE_MS is
// removed. Another host's lock (a shared volume) cannot be checked from here: it is refused, saying
// how to remove it.
import { realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { lockHolder, processAlive } from '../util/process.js';
import { fsReason, readTextOrNull } from '../util/fs-error.js';

export const TRAIN_LOCK = '.l2e-train.lock';

/** How old a dead writer's takeover file must be before it is removed (it is held for milliseconds). */
const TAKEOVER_STALE_MS = 10_000;

/** The folders this process's runs hold, by real path (two fits of one process into one folder are refused too). */
const heldHere = new Set<string>();

function realFolder(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir); // not made yet
  }
}

/**
 * Whether a lock's text names a process of this host that is gone (or no process at all), or this
 * process (a fit of it that ended without removing the lock; one still running is in heldHere).
 */
function stale(text: string): boolean {
  const h = lockHolder(text);
  return h.host === hostname() && (h.pid === process.pid || !processAlive(h.pid));
}

/** Why `dir` cannot be trained into now (another live run, or a fit of this process, holds its lock), or null. */
export function lockedBy(dir: string): string | null {
  if (heldHere.has(realFolder(dir))) return `${dir} is being trained into by another fit of this process: train into another folder`;
  const lock = join(dir, TRAIN_LOCK);
  const text = readTextOrNull(lock);
  if (text === null || stale(text)) return null;
  const h = lockHolder(text);
  if (h.host === hostname()) {
    return (
      `${dir} is being trained into by another run (process ${h.pid}, ${lock}): wait for it to end, or train into another ` +
      `folder (if no run is using it, remove ${lock})`
    );
  }
  return (
    `${dir} is locked by a training run on host ${h.host || '(unknown)'} (process ${h.pid}, ${lock}): ` +
    `wait for it to end, or remove ${lock} if no run there is using the folder`
  );
}

/** Sleeps `ms` without giving up the thread (the lock is taken synchronously). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Replaces the stale lock whose text was `seen` with `mine`, under the takeover file. Returns false
 * when the lock is no longer `seen` (another run took it over, or it was removed): the caller looks again.
 */
function takeOver(lock: string, seen: string, mine: string): boolean {
  const guard = `${lock}.takeover`;
  for (let tries = 0; ; tries++) {
    try {
      writeFileSync(guard, mine, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`could not take over the stale lock ${lock}: ${fsReason(err)}`);
      const text = readTextOrNull(guard);
      const age = Date.now() - (statSync(guard, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (text !== null && stale(text) && age > TAKEOVER_STALE_MS) rmSync(guard, { force: true });
      else if (tries > 500) throw new Error(`could not take over the stale lock ${lock}: ${guard} stays held; remove it if no run is starting there`);
      else pause(10);
    }
  }
  try {
    if (readTextOrNull(lock) !== seen) return false;
    const temp = `${lock}.${process.pid}.tmp`;
    writeFileSync(temp, mine);
    renameSync(temp, lock);
    return true;
  } finally {
    rmSync(guard, { force: true });
  }
}

/**
 * Takes `dir`'s lock (a stale one, of a dead process of this host, is taken over); throws when another
 * live run holds it. Returns the release, which removes the lock only while it is still this process's.
 */
export function lockOutput(dir: string): () => void {
  const lock = join(dir, TRAIN_LOCK);
  const key = realFolder(dir);
  const mine = `${process.pid} ${hostname()}\n`;
  for (let tries = 0; ; tries++) {
    const why = lockedBy(dir);
    if (why !== null) throw new Error(why);
    try {
      writeFileSync(lock, mine, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`could not lock ${dir} for training (${lock}): ${fsReason(err)}`);
    }
    const seen = readTextOrNull(lock);
    if (seen !== null && stale(seen) && takeOver(lock, seen, mine)) break;
    if (tries > 20) throw new Error(`could not lock ${dir} for training: ${lock} keeps changing hands; train into another folder`);
  }
  heldHere.add(key);
  return () => {
    heldHere.delete(key);
    if (readTextOrNull(lock) === mine) rmSync(lock, { force: true });
  };
}
