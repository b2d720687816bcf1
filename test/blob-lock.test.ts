// Blob locks of the Hub cache (src/hub/blob-lock.ts). A lock's pid means nothing in another PID
// namespace (containers sharing a cache volume): a dead pull's pid there could name a live process
// here, and a waiter waited forever. The holder now touches its lock, and an untouched one is stale.
// pid 1 stands for "a live process that is not the holder" (it is always alive).
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockBlob } from '../src/hub/blob-lock.js';
import { makeTempDir } from './helpers/tinyModel.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('blob locks', () => {
  it("a live pid's lock left untouched for the stale time is taken over, after waiting and saying so once", async () => {
    const blob = join(makeTempDir(), 'abc');
    writeFileSync(`${blob}.lock`, '1\n');
    const waits: [number, string][] = [];
    const t0 = Date.now();
    const release = await lockBlob(blob, 'file x', (holder, lock) => waits.push([holder, lock]), 400);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(waits).toEqual([[1, `${blob}.lock`]]);
    expect(statSync(`${blob}.lock`).isFile()).toBe(true);
    release();
    expect(statSync(`${blob}.lock`, { throwIfNoEntry: false })).toBeUndefined();
  });

  it('a lock its holder keeps touching is waited for past the stale time, then taken when released', async () => {
    const blob = join(makeTempDir(), 'abc');
    const lock = `${blob}.lock`;
    writeFileSync(lock, '1\n');
    let t = Date.now() / 1000 - 3600; // an old time, moved on at each touch: another machine's clock
    const touch = setInterval(() => {
      t += 1;
      utimesSync(lock, t, t);
    }, 50);
    let acquiredAt = 0;
    const t0 = Date.now();
    const taking = lockBlob(blob, 'file x', () => {}, 400).then((release) => {
      acquiredAt = Date.now() - t0;
      return release;
    });
    await sleep(1200);
    expect(acquiredAt).toBe(0); // three stale times: still waiting
    clearInterval(touch);
    writeFileSync(lock, '1\n'); // still there; now untouched
    const release = await taking;
    expect(acquiredAt).toBeGreaterThanOrEqual(1200 + 400 - 100);
    release();
  });

  it('the holder touches its lock while it holds it', async () => {
    const blob = join(makeTempDir(), 'abc');
    const release = await lockBlob(blob, 'file x', () => {}, 300);
    utimesSync(`${blob}.lock`, 0, 0);
    await sleep(250);
    expect(Date.now() - statSync(`${blob}.lock`).mtimeMs).toBeLessThan(1000);
    release();
  });
});
