// File-system errors for users: Node's message ("ENOENT: no such file or directory, open '/x/.y.tmp-1-a'")
// ends with the path the call used, which for atomic writes is a temp file the user never named.
// `fsReason` keeps the code and description and drops that path; callers name the user's own path.
import { dirname } from 'node:path';

export function fsReason(err: unknown, target?: string): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT' && target !== undefined) return `the folder ${dirname(target)} does not exist`;
  if (e.code && e.syscall) return err.message.replace(/, [a-z]+ '[\s\S]*$/, '');
  return err.message;
}
