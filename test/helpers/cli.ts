// Runs `l2e ...args` in-process through main(argv) and returns the exit code with what it wrote.
import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export async function l2e(...args: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  // write(chunk, [encoding], [callback]): the callback is called, as a real stream does once it has the chunk
  const capture = (add: (s: string) => void) => (s: string | Uint8Array, ...rest: unknown[]): boolean => {
    add(String(s));
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    if (cb) queueMicrotask(cb);
    return true;
  };
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(capture((s) => (out += s)));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(capture((s) => (err += s)));
  try {
    return { code: await main(args), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
