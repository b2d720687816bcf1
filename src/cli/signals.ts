// The signals that ask a command to stop, and how it ends on each: Ctrl-C (SIGINT), a service
// manager, `timeout`, docker or Slurm (SIGTERM), a closed terminal or ssh session (SIGHUP). A
// command that stops on one exits with the shell's status for it, 128 + the signal's number.

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

const NUMBER: Record<StopSignal, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. */
export function signalStatus(signal: StopSignal): number {
  return 128 + NUMBER[signal];
}

/**
 * Calls `handler` on each stop signal until the returned function removes it. Meanwhile a failed
 * write to stderr is dropped: a closed terminal (SIGHUP) takes stderr with it, and its EIO would
 * otherwise end the process before the handler's work (a checkpoint) is done.
 */
export function onStopSignals(handler: (signal: StopSignal) => void): () => void {
  const listeners = STOP_SIGNALS.map((s) => [s, (): void => handler(s)] as const);
  for (const [s, l] of listeners) process.on(s, l);
  const dropped = (): void => {};
  process.stderr.on('error', dropped);
  return () => {
    for (const [s, l] of listeners) process.off(s, l);
    process.stderr.off('error', dropped);
  };
}

/** How a message names the signal: "interrupted (Ctrl-C)", "SIGTERM", "SIGHUP". */
export function signalName(signal: StopSignal): string {
  return signal === 'SIGINT' ? 'interrupted' : `${signal} received`;
}

/** On a terminal, a new line first: the line there holds the echoed ^C or a drawn bar. A log has whole lines. */
const breakLine = (): string => (process.stderr.isTTY ? '\n' : '');

/**
 * A command's graceful stop (train, demo): the first stop signal says what the command does now
 * (`doing`) and calls `stop`; a second one exits at once with that signal's status, saying `quitting`.
 * `signal()` is the first signal (null: none), `off()` ends the listening.
 */
export function stopGracefully(
  command: string,
  doing: string | (() => string),
  quitting: string,
  stop: () => void,
): { signal(): StopSignal | null; off(): void } {
  let first: StopSignal | null = null;
  const off = onStopSignals((signal) => {
    if (first !== null) {
      process.stderr.write(`${breakLine()}l2e ${command}: ${signalName(signal)} again, ${quitting}\n`);
      process.exit(signalStatus(signal));
    }
    first = signal;
    const again = signal === 'SIGINT' ? 'Ctrl-C again to quit now' : `${signal} again to quit now`;
    process.stderr.write(`${breakLine()}l2e ${command}: ${signalName(signal)}: ${typeof doing === 'string' ? doing : doing()} (${again})\n`);
    stop();
  });
  return { signal: () => first, off };
}
