// <output>/.l2e-train.lock: one training run at a time in an output folder. Two runs there (a second
// started with --overwrite or --resume while the first still trains) would each replace the other's
// checkpoints and final model, and both would say "saved".
//
// The lock holds its run's pid and host name ("<pid> <host>"), created exclusively once the folder
// exists and before the run changes anything in it, and removed when the run ends (its checkpoints and
// final model written, or an error or a stop). A run killed outright leaves it: a lock of this host
// whose pid is dead is taken over. Another host's lock (a shared volume) cannot be checked from here:
// it is refused, saying how to remove it.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { processAlive } from '../util/process.js';
import { fsReason } from '../util/fs-error.js';

export const TRAIN_LOCK = '.l2e-train.lock';

/** The folders this process's runs hold (two fits of one process into one folder are refused too). */
const heldHere = new Set<string>();

interface Holder {
  pid: number;
  host: string;
}

function holderOf(lock: string): Holder | null {
  let text: string;
  try {
    text = readFileSync(lock, 'utf8');
  } catch {
    return null; // gone meanwhile
  }
  const [pid = '', host = ''] = text.trim().split(/\s+/);
  return { pid: /^\d+$/.test(pid) ? Number(pid) : NaN, host };
}

/** Why `dir` cannot be trained into now (another live run holds its lock), or null. */
export function lockedBy(dir: string): string | null {
  const lock = join(dir, TRAIN_LOCK);
  const h = holderOf(lock);
  if (h === null || h.pid === process.pid) return null;
  if (h.host === hostname()) {
    return processAlive(h.pid) ? `${dir} is being trained into by another run (process ${h.pid}): wait for it to end, or train into another folder` : null;
  }
  return (
    `${dir} is locked by a training run on host ${h.host || '(unknown)'} (process ${h.pid}, ${lock}): ` +
    `wait for it to end, or remove ${lock} if no run there is using the folder`
  );
}

/**
 * Takes `dir`'s lock (a stale one, of a dead process of this host, is taken over); throws when another
 * live run holds it. Returns the release, which removes the lock only while it is still this process's.
 */
export function lockOutput(dir: string): () => void {
  const lock = join(dir, TRAIN_LOCK);
  const key = resolve(dir);
  if (heldHere.has(key)) throw new Error(`${dir} is being trained into by another fit of this process: train into another folder`);
  const mine = `${process.pid} ${hostname()}\n`;
  for (let tries = 0; ; tries++) {
    try {
      writeFileSync(lock, mine, { flag: 'wx' });
      heldHere.add(key);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`could not lock ${dir} for training (${lock}): ${fsReason(err)}`);
      const why = lockedBy(dir);
      if (why !== null) throw new Error(why);
      // stale (a dead process's, or this process's from a fit that ended without removing it): taken
      // over once; a second EEXIST
      // means another run took it over first
      if (tries > 0) throw new Error(`${dir} is being trained into by another run that took over its stale lock (${lock}): train into another folder`);
      rmSync(lock, { force: true });
    }
  }
  return () => {
    heldHere.delete(key);
    const h = holderOf(lock);
    if (h !== null && h.pid === process.pid && h.host === hostname()) rmSync(lock, { force: true });
  };
}
