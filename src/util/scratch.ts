// Files and folders a command is writing before they become its output (an output's temp file, the
// mining store), removed if the process is stopped by a signal before it gets to remove them itself
// (cli/main.ts: the commands without a Ctrl-C handling of their own). A later run removes what a
// kill -9 left (removeStaleTemps, the mining store's removeStaleStores).
import { rmSync } from 'node:fs';

const live = new Set<string>();

/** Registers `path` (a file, or a folder removed with all it holds); returns its unregistering. */
export function trackScratch(path: string): () => void {
  live.add(path);
  return () => {
    live.delete(path);
  };
}

/** Removes every registered path now (synchronously: a signal handler's last act before exiting). */
export function removeScratch(): void {
  for (const path of live) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // nothing more can be done on the way out; a later run removes what is stale
    }
  }
  live.clear();
}
