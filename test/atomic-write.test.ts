// Atomic writes replace only regular files (or create new ones): a symbolic link keeps being a link
// and its target is written atomically (unless the target is a Hugging Face cache blob); FIFOs, devices and /proc/self/fd/N links are written through,
// never replaced by a regular file.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  constants,
} from 'node:fs';
import { join } from 'node:path';
import { AtomicWriter, writeFileAtomic } from '../src/util/atomic.js';
import { writeOutput } from '../src/util/output.js';
import { makeTempDir } from './helpers/tinyModel.js';


/** Both writers, so every case covers the one-shot and the streaming form. */
const writers: [string, (target: string, text: string) => Promise<void>][] = [
  ['writeFileAtomic', async (target, text) => writeFileAtomic(target, text)],
  [
    'AtomicWriter',
    async (target, text) => {
      const w = new AtomicWriter(target);
      await w.write(text.slice(0, 3));
      await w.write(text.slice(3));
      await w.commit();
    },
  ],
];

/** Reads what a FIFO receives: a `cat` child started before the write (given up after 20 s). */
function fifoReader(fifo: string): Promise<string> {
  const child = spawn('timeout', ['20', 'cat', fifo]);
  let got = '';
  child.stdout.on('data', (d: Buffer) => (got += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', () => resolve(got));
  });
}

describe.each(writers)('%s', (_name, write) => {
  it('replaces a regular file atomically and creates a missing one, leaving no temp file', async () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'a.txt'), 'old');
    await write(join(dir, 'a.txt'), 'new text');
    await write(join(dir, 'b.txt'), 'fresh');
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('new text');
    expect(readFileSync(join(dir, 'b.txt'), 'utf8')).toBe('fresh');
    expect(readdirSync(dir).sort()).toEqual(['a.txt', 'b.txt']);
  });

  it("a replaced file keeps its permissions (a private 600 file stays private); a new one gets the umask's", async () => {
    const dir = makeTempDir();
    for (const [name, perm] of [['private.json', 0o600], ['shared.json', 0o640], ['exec.sh', 0o750]] as const) {
      writeFileSync(join(dir, name), 'old');
      chmodSync(join(dir, name), perm);
      await write(join(dir, name), 'new');
      expect(statSync(join(dir, name)).mode & 0o777, name).toBe(perm);
    }
    await write(join(dir, 'fresh.json'), 'x');
    expect(statSync(join(dir, 'fresh.json')).mode & 0o777).toBe(0o666 & ~process.umask());
  });

  it('a symbolic link stays a link; its target (through a chain of links) is written', async () => {
    const dir = makeTempDir();
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'out.txt'), 'old');
    symlinkSync('real/out.txt', join(dir, 'link1'));
    symlinkSync(join(dir, 'link1'), join(dir, 'link2'));
    await write(join(dir, 'link2'), 'through the links');
    expect(lstatSync(join(dir, 'link2')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(dir, 'link1')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, 'link1'))).toBe('real/out.txt');
    expect(readFileSync(join(dir, 'real', 'out.txt'), 'utf8')).toBe('through the links');
    expect(readdirSync(join(dir, 'real'))).toEqual(['out.txt']);
    expect(readdirSync(dir).sort()).toEqual(['link1', 'link2', 'real']);
  });

  // a model folder of links into a Hugging Face cache (huggingface_hub's local-dir downloads made them):
  // writing through would change a blob that every snapshot linking to it shares
  it('a link that ends at a Hugging Face cache blob is replaced, not written through; the blob is kept', async () => {
    const dir = makeTempDir();
    const blobs = join(dir, 'hub', 'models--org--tiny', 'blobs');
    const snapshot = join(dir, 'hub', 'models--org--tiny', 'snapshots', 'abc');
    mkdirSync(blobs, { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(blobs, 'e3b0c442'), 'cached weights');
    symlinkSync('../../blobs/e3b0c442', join(snapshot, 'model.safetensors'));
    mkdirSync(join(dir, 'local'));
    symlinkSync(join(snapshot, 'model.safetensors'), join(dir, 'local', 'model.safetensors')); // a chain
    await write(join(dir, 'local', 'model.safetensors'), 'finetuned weights');
    expect(lstatSync(join(dir, 'local', 'model.safetensors')).isFile()).toBe(true);
    expect(readFileSync(join(dir, 'local', 'model.safetensors'), 'utf8')).toBe('finetuned weights');
    expect(readFileSync(join(blobs, 'e3b0c442'), 'utf8')).toBe('cached weights');
    expect(readlinkSync(join(snapshot, 'model.safetensors'))).toBe('../../blobs/e3b0c442');
    expect(readdirSync(join(dir, 'local'))).toEqual(['model.safetensors']);
    // a cache made without links holds copies in its snapshots: a link to one is replaced too
    writeFileSync(join(snapshot, 'config.json'), 'cached config');
    symlinkSync(join(snapshot, 'config.json'), join(dir, 'local', 'config.json'));
    await write(join(dir, 'local', 'config.json'), 'new config');
    expect(lstatSync(join(dir, 'local', 'config.json')).isFile()).toBe(true);
    expect(readFileSync(join(snapshot, 'config.json'), 'utf8')).toBe('cached config');
    // a folder that is a link to a snapshot: a write there would replace the snapshot's own entry
    symlinkSync(snapshot, join(dir, 'snap-link'));
    await expect(write(join(dir, 'snap-link', 'model.safetensors'), 'x')).rejects.toThrow(
      `could not write ${join(dir, 'snap-link', 'model.safetensors')}: it is in the Hugging Face cache's snapshot of org/tiny, whose files the cache shares; write it elsewhere`,
    );
    expect(readFileSync(join(blobs, 'e3b0c442'), 'utf8')).toBe('cached weights');
    // a file named like a blob outside a cache repo's folder is an ordinary link target
    mkdirSync(join(dir, 'other', 'blobs'), { recursive: true });
    writeFileSync(join(dir, 'other', 'blobs', 'x'), 'old');
    symlinkSync(join(dir, 'other', 'blobs', 'x'), join(dir, 'plain-link'));
    await write(join(dir, 'plain-link'), 'through');
    expect(lstatSync(join(dir, 'plain-link')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'other', 'blobs', 'x'), 'utf8')).toBe('through');
  });

  it('a dangling symbolic link stays a link and its target is created', async () => {
    const dir = makeTempDir();
    symlinkSync('missing.txt', join(dir, 'link'));
    await write(join(dir, 'link'), 'created');
    expect(lstatSync(join(dir, 'link')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'missing.txt'), 'utf8')).toBe('created');
  });

  it.skipIf(process.platform === 'win32')('a FIFO is written through, not replaced', async () => {
    const dir = makeTempDir();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const received = fifoReader(fifo);
    await write(fifo, 'down the pipe');
    expect(await received).toBe('down the pipe');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir)).toEqual(['pipe']);
  });

  it('a character device (a /dev/null node, or a link to /dev/null) is written through, not replaced', async () => {
    const dir = makeTempDir();
    const node = join(dir, 'null');
    // root can make a private /dev/null node (major 1, minor 3); others test through a link to /dev/null
    const made = process.getuid?.() === 0 && spawnSync('mknod', [node, 'c', '1', '3']).status === 0;
    if (!made) symlinkSync('/dev/null', node);
    await write(node, 'into the void');
    if (made) expect(lstatSync(node).isCharacterDevice()).toBe(true);
    else expect(readlinkSync(node)).toBe('/dev/null');
    expect(statSync(node).isCharacterDevice()).toBe(true);
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(readdirSync(dir)).toEqual(['null']);
  });

  it.skipIf(process.platform !== 'linux')('/proc/self/fd/N (what /dev/stdout points to) writes to the open file, appending', async () => {
    const dir = makeTempDir();
    const file = join(dir, 'redirected.txt');
    writeFileSync(file, 'earlier output\n');
    const inode = statSync(file).ino;
    const fd = openSync(file, 'a');
    try {
      await write(`/proc/self/fd/${fd}`, 'vectors\n');
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(file, 'utf8')).toBe('earlier output\nvectors\n');
    expect(statSync(file).ino).toBe(inode);
    expect(readdirSync(dir)).toEqual(['redirected.txt']);
  });

  // a shell's `> file` opens without O_APPEND: a second open of /proc/self/fd/1 wrote from its own
  // offset, and what the process wrote through fd 1 afterwards (a summary) went over the data
  it.skipIf(process.platform !== 'linux')('/proc/self/fd/N of this process is written through N itself: what N writes next follows the data', async () => {
    const dir = makeTempDir();
    const file = join(dir, 'redirected.txt');
    const fd = openSync(file, 'w');
    try {
      await write(`/proc/self/fd/${fd}`, 'vectors\n');
      await write(`/dev/fd/${fd}`, 'more\n');
      writeSync(fd, 'summary\n');
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(file, 'utf8')).toBe('vectors\nmore\nsummary\n');
  });

  it.skipIf(process.platform !== 'linux')('/proc/self/fd/N of a pipe writes into the pipe', async () => {
    const dir = makeTempDir();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const wfd = openSync(fifo, 'w');
    try {
      await write(`/proc/self/fd/${wfd}`, 'via the fd');
      const buf = Buffer.alloc(64);
      const n = readSync(rfd, buf, 0, buf.length, null);
      expect(buf.subarray(0, n).toString()).toBe('via the fd');
    } finally {
      closeSync(wfd);
      closeSync(rfd);
    }
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('a dangling link into a missing folder names the folder the link points into', async () => {
    const dir = makeTempDir();
    symlinkSync('nonexist-dir/x.jsonl', join(dir, 'dangling.jsonl'));
    await expect(write(join(dir, 'dangling.jsonl'), 'x')).rejects.toThrow(
      `could not write ${join(dir, 'dangling.jsonl')}: the folder ${join(dir, 'nonexist-dir')} does not exist`,
    );
    await expect(write(join(dir, 'nodir', 'x.jsonl'), 'x')).rejects.toThrow(`could not write ${join(dir, 'nodir', 'x.jsonl')}: the folder ${join(dir, 'nodir')} does not exist`);
  });

  it('a folder is refused with a clear error', async () => {
    const dir = makeTempDir();
    mkdirSync(join(dir, 'sub'));
    await expect(write(join(dir, 'sub'), 'x')).rejects.toThrow(`could not write ${join(dir, 'sub')}: it is a folder`);
    expect(readdirSync(dir)).toEqual(['sub']);
  });
});

describe('AtomicWriter.abort', () => {
  // The temp file was opened by the stream in the background: an abort right after the writer was made
  // (mine failing on its thresholds just after opening its output) removed nothing, then the stream's
  // open created the file, left beside the target for good.
  it('right after the writer is made: no temp file left, now or once the stream has closed', async () => {
    const dir = makeTempDir();
    const w = new AtomicWriter(join(dir, 'out.jsonl'));
    expect(readdirSync(dir)).toHaveLength(1); // the temp file exists from the start
    w.abort();
    expect(readdirSync(dir)).toEqual([]);
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(dir)).toEqual([]);
  });

  // a named pipe was opened on libuv's thread pool, whose open(2) waited for a reader: Ctrl-C ran the
  // handler, but the exit joined that thread and waited too
  it.skipIf(process.platform === 'win32')('a named pipe no process reads: the write waits without holding the event loop, for a reader or an abort()', async () => {
    const dir = makeTempDir();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const late = new AtomicWriter(fifo);
    const sent = (async () => {
      await late.write('came ');
      await late.write('late');
      await late.commit();
    })();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    await new Promise((r) => setTimeout(r, 300));
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(10); // the event loop ran while the write waited
    const received = fifoReader(fifo);
    await sent;
    expect(await received).toBe('came late');

    const dropped = new AtomicWriter(fifo);
    const waiting = dropped.write('never read');
    await new Promise((r) => setTimeout(r, 150));
    dropped.abort();
    await expect(waiting).rejects.toThrow(new Error(`could not write ${fifo}: the output was abandoned`));
    expect(readdirSync(dir)).toEqual(['pipe']);
  });

  it.skipIf(process.platform === 'win32')('writeOutput to a named pipe waits for its reader the same way', async () => {
    const dir = makeTempDir();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const sent = writeOutput(fifo, [Buffer.from('one '), Buffer.from('shot')]);
    await new Promise((r) => setTimeout(r, 200));
    const received = fifoReader(fifo);
    await sent;
    expect(await received).toBe('one shot');
  });

  it('a folder it cannot write in fails when the writer is made, naming the target', () => {
    const dir = makeTempDir();
    const target = join(dir, 'missing', 'out.jsonl');
    expect(() => new AtomicWriter(target)).toThrow(`could not write ${target}`);
  });
});
