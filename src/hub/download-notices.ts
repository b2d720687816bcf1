// What a model load says while it downloads (EmbeddingModel.load and every command given --model
// org/name): a multi-gigabyte file must not download in silence. Through the load's notices: a line
// as each large file starts, at each quarter of it, and at its end; small files (config, tokenizer)
// are one line when they start.
import { formatBytes } from '../util/format-bytes.js';

/** Files below this size get only their starting line. */
const QUIET_BELOW = 8_000_000;

/** A RetryPolicy's onRetry that says each failed attempt through `notice` (a stalled Hub is not silent). */
export function retryNotices(notice: (message: string) => void): (what: string, reason: string, next: number, attempts: number) => void {
  return (what, reason, next, attempts) => notice(`${what}: ${reason}; trying again (attempt ${next} of ${attempts})`);
}

/** An onProgress for snapshotDownload that says `repo`'s progress through `notice`. */
export function downloadNotices(repo: string, notice: (message: string) => void): (file: string, done: number, total: number | undefined) => void {
  const quarters = new Map<string, number>();
  return (file, done, total) => {
    const seen = quarters.get(file);
    if (seen === undefined) {
      quarters.set(file, 0);
      notice(`downloading ${repo}: ${file}${total !== undefined ? ` (${formatBytes(total)})` : ''}${done > 0 ? `, resuming at ${formatBytes(done)}` : ''}`);
      return;
    }
    if (total === undefined || total < QUIET_BELOW) return;
    const q = Math.floor((4 * done) / total);
    if (q > seen) {
      quarters.set(file, q);
      notice(q >= 4 ? `downloaded ${repo}: ${file}` : `downloading ${repo}: ${file} ${25 * q}% of ${formatBytes(total)}`);
    }
  };
}
