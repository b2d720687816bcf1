// Blob locks of the Hub cache (src/hub/blob-lock.ts). A lock's pid means nothing on another host (a
// container sharing the cache volume has its own PID namespace): a dead pull's pid there could name a
// live process here, and a waiter waited forever. The holder now touches its lock, and another host's
// untouched lock is stale. pid 1 stands for "a live process that is not the holder" (always alive).
import { hostname } from 'node:os';
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockBlob } from '../src/hub/blob-lock.js';
import { makeTempDir } from './helpers/tinyModel.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('blob locks', () => {
  it("another host's lock left untouched for the stale time is taken over, after waiting and saying so once", async () => {
    const blob = join(makeTempDir(), 'abc');
    writeFileSync(`${blob}.lock`, '1 another-host 00\n');
    const waits: [number, string][] = [];
    const t0 = performance.now();
    const release = await lockBlob(blob, 'file x', (holder, lock) => waits.push([holder, lock]), 400);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(400);
    expect(waits).toEqual([[1, `${blob}.lock`]]);
    expect(readFileSync(`${blob}.lock`, 'utf8')).toMatch(new RegExp(`^${process.pid} ${hostname()} [0-9a-f]{16}\\n$`));
    release();
    expect(statSync(`${blob}.lock`, { throwIfNoEntry: false })).toBeUndefined();
  });

  it("another host's lock its holder keeps touching is waited for past the stale time, then taken once untouched", async () => {
    const blob = join(makeTempDir(), 'abc');
    const lock = `${blob}.lock`;
    writeFileSync(lock, '1 another-host 00\n');
    let t = Date.now() / 1000 - 3600; // an old time, moved on at each touch: another machine's clock
    const touch = setInterval(() => {
      t += 1;
      utimesSync(lock, t, t);
    }, 50);
    let acquiredAt = 0;
    const t0 = performance.now();
    const taking = lockBlob(blob, 'file x', () => {}, 1000).then((release) => {
      acquiredAt = performance.now() - t0;
      return release;
    });
    await sleep(2500);
    expect(acquiredAt).toBe(0); // 2.5 stale times: still waiting
    clearInterval(touch);
    const release = await taking;
    expect(acquiredAt).toBeGreaterThanOrEqual(2500 + 1000 - 150);
    release();
  });

  it("this host's lock of a live process is never taken for being untouched", async () => {
    const blob = join(makeTempDir(), 'abc');
    const lock = `${blob}.lock`;
    writeFileSync(lock, `1 ${hostname()} 00\n`);
    let acquired = false;
    const taking = lockBlob(blob, 'file x', () => {}, 200).then((release) => {
      acquired = true;
      return release;
    });
    await sleep(1000);
    expect(acquired).toBe(false);
    writeFileSync(lock, '999999999 \n'); // a lock without a host (an older writer): its pid is dead here
    (await taking)();
    expect(acquired).toBe(true);
  });

  it('the holder touches its lock while it holds it; once taken over, its release and touches leave the new lock alone', async () => {
    const blob = join(makeTempDir(), 'abc');
    const lock = `${blob}.lock`;
    const release = await lockBlob(blob, 'file x', () => {}, 300);
    utimesSync(lock, 0, 0);
    await sleep(250);
    expect(Date.now() - statSync(lock).mtimeMs).toBeLessThan(1000);
    writeFileSync(lock, '1 another-host 11\n'); // taken over (this process was stopped)
    utimesSync(lock, 0, 0);
    await sleep(250);
    expect(statSync(lock).mtimeMs).toBe(0); // not touched
    release();
    expect(readFileSync(lock, 'utf8')).toBe('1 another-host 11\n'); // not removed
  });

  // the holder's touch finds another's token: it must stop writing the .incomplete, now another's
  it('lost() turns true at the first touch after the lock was taken over or removed, and release leaves the new holder\'s lock', async () => {
    const blob = join(makeTempDir(), 'abc');
    const release = await lockBlob(blob, 'file x', () => {}, 120);
    expect(release.lost()).toBe(false);
    await sleep(60);
    expect(release.lost()).toBe(false); // touched, still its own
    writeFileSync(`${blob}.lock`, '1 another-host 11\n');
    await sleep(60);
    expect(release.lost()).toBe(true);
    release();
    expect(readFileSync(`${blob}.lock`, 'utf8')).toBe('1 another-host 11\n');
  });
});
