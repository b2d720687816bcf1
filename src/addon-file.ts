// Why a file cannot be loaded as a native addon, told before it is loaded: require() of a file that is
// not a .node runs it as JavaScript, and dlopen() of a truncated shared object maps pages past its end,
// whose first touch kills the process with SIGBUS (no message, exit 135).
import { closeSync, openSync, readSync, statSync } from 'node:fs';

const ELF_MAGIC = 0x7f454c46; // "\x7fELF"
const MACHO_MAGICS = new Set([0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe, 0xbebafeca]);

/** `length` bytes of `fd` from `at` (fewer at the end of the file). */
function readAt(fd: number, at: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, at);
  return buf.subarray(0, n);
}

/**
 * The end of the furthest part an ELF64 file's header names (section headers, each segment's bytes),
 * or null when that is not known (another class or byte order: left to the loader).
 */
function elfEnd(fd: number, header: Buffer): number | null {
  if (header.length < 64 || header[4] !== 2 || header[5] !== 1) return null; // ELF64, little-endian only
  const phoff = Number(header.readBigUInt64LE(0x20));
  const shoff = Number(header.readBigUInt64LE(0x28));
  const phentsize = header.readUInt16LE(0x36);
  const phnum = header.readUInt16LE(0x38);
  const shentsize = header.readUInt16LE(0x3a);
  const shnum = header.readUInt16LE(0x3c);
  let end = Math.max(64, shoff + shnum * shentsize, phoff + phnum * phentsize);
  const table = readAt(fd, phoff, phnum * phentsize);
  for (let i = 0; i + 40 <= table.length && i < phnum * phentsize; i += phentsize) {
    end = Math.max(end, Number(table.readBigUInt64LE(i + 8)) + Number(table.readBigUInt64LE(i + 32))); // p_offset + p_filesz
  }
  return end;
}

/** What keeps `file` from being a native addon (not a regular file, not a shared object, cut short), or null. */
export function addonFileProblem(file: string): string | null {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return st.isDirectory() ? 'it is a folder, not a .node file' : 'it is not a regular file';
    size = st.size;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `it cannot be read (${(err as Error).message})`;
  }
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    return `it cannot be read (${(err as Error).message})`;
  }
  try {
    const header = readAt(fd, 0, 64);
    const magic = header.length >= 4 ? header.readUInt32BE(0) : 0;
    const pe = header.length >= 2 && header[0] === 0x4d && header[1] === 0x5a; // "MZ": a Windows DLL
    if (magic === ELF_MAGIC) {
      // shorter than an ELF header (64 bytes for ELF64, 52 for ELF32) is cut short whatever its class
      if (size < 52) return `it is cut short: ${size} bytes, fewer than an ELF header (an interrupted copy?)`;
      const end = elfEnd(fd, header);
      if (end !== null && end > size) return `it is cut short: ${size} bytes, where its ELF headers reach byte ${end} (an interrupted copy?)`;
      return null;
    }
    if (MACHO_MAGICS.has(magic) || pe) return null;
    return 'it is not a native addon (a .node file is a shared library)';
  } finally {
    closeSync(fd);
  }
}
