// `l2e encode`'s output, checked before any embedding: room for it on its disk, and a target the atomic
// rename may replace (found out only after all the work, before).
import { readFileSync } from 'node:fs';
import { writeModeFor } from '../util/atomic.js';
import { freeBytes } from '../util/disk.js';
import { formatBytes } from '../util/format-bytes.js';
import { statOrNull, targetFolder } from '../util/fs-error.js';
import { npyHeader } from '../util/npy.js';
import { STDIO } from '../util/output.js';
import { counted } from '../util/plural.js';
import { embeddingLine, type EmbeddingFormat, type TextInput } from './io.js';

/** The longest text float32Text (util/float32-text.ts) gives a finite float32, and one with |v| <= 1. */
const FLOAT_TEXT_MAX = 22;
const UNIT_FLOAT_TEXT_MAX = 17;

/**
 * The bytes the output takes: a .npy exactly (its header, then rows × dim float32), a JSONL at most.
 * A JSONL line is the row's members and text as embeddingLine writes them (measured exactly, with an
 * empty embedding) plus dim values and dim - 1 commas. A value is float32Text's shortest decimal that
 * reads back as the float32, printed by String(): at most 9 significant digits. The longest are
 * "-100008730000000000000" (22: |v| in [1e20, 1e21) is printed in full, without an exponent) and,
 * for |v| < 1e16, "-0.00000123456789" (17: |v| in [1e-6, 1e-5) is printed with 5 leading zeros;
 * below 1e-6 String() switches to "-1.23456789e-7"). A normalized embedding has every |v| <= 1, so
 * 17 bounds it; otherwise 22. Typical values ("-0.012345678") take about 12, so the estimate is up to
 * about 1.5× the real size, never below it.
 */
export function outputBytes(format: EmbeddingFormat, input: TextInput, dim: number, normalized: boolean): number {
  const rows = input.texts.length;
  if (format === 'npy') return npyHeader('<f4', rows, dim).length + rows * dim * 4;
  const values = dim * (normalized ? UNIT_FLOAT_TEXT_MAX : FLOAT_TEXT_MAX) + Math.max(0, dim - 1);
  let bytes = 0;
  for (let i = 0; i < rows; i++) bytes += Buffer.byteLength(embeddingLine(input.texts[i]!, input.rows?.[i], [])) + values;
  return bytes;
}

/** The file the output is written to atomically (a link's target); null for stdout, pipes and devices. */
function fileWritten(output: string): string | null {
  if (output === STDIO) return null;
  try {
    const mode = writeModeFor(output);
    return mode.kind === 'atomic' ? mode.path : null;
  } catch {
    return null; // checkOutput and the writer say what is wrong with it
  }
}

/**
 * Refuses, before any embedding, an output whose disk cannot hold it (it was found full only when
 * the embeddings were written, and all the work was lost). The old file at the target stays until
 * the rename, so the whole output must fit beside it. Stdout, pipes and devices are not checked.
 */
export function checkRoom(output: string, format: EmbeddingFormat, input: TextInput, dim: number, normalized: boolean): void {
  const path = fileWritten(output);
  if (path === null) return;
  const free = freeBytes(targetFolder(output, path));
  const needed = outputBytes(format, input, dim, normalized);
  if (free === null || needed <= free) return;
  throw new Error(
    `not enough disk space for --output ${output}: the output (${counted(input.texts.length, 'embedding')}) takes ${format === 'npy' ? '' : 'up to '}` +
      `${formatBytes(needed)}, but only ${formatBytes(free)} is free there; free some space or give another --output`,
  );
}

/** CAP_FOWNER: the capability that lets a process replace another user's file in a sticky folder. */
const CAP_FOWNER = 3n;

/** Whether this process may rename over files it does not own in a sticky folder (Linux: CapEff; else root). */
function hasFowner(): boolean {
  try {
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (eff !== undefined) return ((BigInt(`0x${eff}`) >> CAP_FOWNER) & 1n) === 1n;
  } catch {
    // no /proc: not Linux
  }
  return process.getuid?.() === 0;
}

/**
 * Refuses, before any work, an existing output the atomic rename may not replace: in a sticky folder
 * (/tmp's mode 1777) only the file's owner, the folder's owner or a process with CAP_FOWNER may
 * rename over a file (rename(2): EPERM), even one that is writable by all, as a shell's `>` would
 * have written it. This was found only after all the embedding, as a bare EPERM.
 */
export function checkReplaceable(output: string): void {
  const uid = process.getuid?.();
  const path = uid === undefined ? null : fileWritten(output);
  const file = path === null ? null : statOrNull(path);
  if (path === null || file === null) return;
  const folder = targetFolder(output, path);
  const dir = statOrNull(folder);
  if (dir === null || (dir.mode & 0o1000) === 0 || file.uid === uid || dir.uid === uid || hasFowner()) return;
  throw new Error(
    `--output ${output} cannot be replaced: ${folder} is a sticky folder (as /tmp is), where only the file's owner ` +
      `(uid ${file.uid}) or the folder's owner (uid ${dir.uid}) may replace it; give another --output`,
  );
}
