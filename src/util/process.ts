// Whether a process id is alive on this machine: how lock files and temp files named by their
// writer's pid are found stale after that writer was killed.
/** A lock file's writer, from its text "<pid> <host> ...": pid NaN when none was written, host '' when none. */
export function lockHolder(text: string): { pid: number; host: string } {
  const [pid = '', host = ''] = text.trim().split(/\s+/);
  return { pid: /^\d+$/.test(pid) ? Number(pid) : NaN, host };
}

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}
