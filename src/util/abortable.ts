// Waiting on a promise that may never settle (a user's data source that stalls), ended by an abort.

/** What `untilAborted` gives when the signal fired first. */
export const ABORTED: unique symbol = Symbol('aborted');

/**
 * `p`'s value, or ABORTED as soon as `signal` aborts (at once when it already has). `p` is not
 * cancelled: it is left to settle, and a rejection after the abort is dropped (it has no reader).
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (signal === undefined) return p;
  p.catch(() => {}); // (its rejection, if it comes first, is still thrown by the race below)
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise<T | typeof ABORTED>((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
