import { formatOptions, parseArgs, UsageError, type OptionSpecs, type ParsedArgs } from './args.js';

/** One `l2e` sub-command. `run` returns the process exit code. */
export interface Command {
  name: string;
  /** One line for `l2e --help`. */
  summary: string;
  /** Usage line(s) and a paragraph for `l2e NAME --help`. */
  usage: string;
  options: OptionSpecs;
  /** Takes positional arguments (combine: its inputs; pull: the repo id; eval: more test files); the others refuse them. */
  positionals?: boolean;
  /**
   * Handles the stop signals itself (train, demo: finish the step and save; serve: finish the
   * requests). For the others main() removes the scratch files on SIGINT, SIGTERM or SIGHUP and exits
   * with the shell's status for it (signals.ts).
   */
  ownsSignals?: boolean;
  run(args: ParsedArgs): Promise<number>;
}

export function commandHelp(cmd: Command): string {
  const flags = Object.values(cmd.options).some((s) => s.kind === 'boolean')
    ? 'On/off options also take --no-NAME, and --NAME=true|false.\n'
    : '';
  return `${cmd.usage.trim()}\n\nOptions:\n${formatOptions({ ...cmd.options, help: { kind: 'boolean', help: 'show this help (also -h)' } })}\n${flags}`;
}

/** The usage synopsis: the usage text up to its first blank line. */
export function usageLines(cmd: Command): string {
  return cmd.usage.trim().split(/\n\s*\n/)[0]!;
}

/** Refuses positional arguments a command does not take: `l2e encode --input a.txt b.txt` would encode a.txt only. */
export function refuseStrayPositionals(cmd: Command, args: ParsedArgs): void {
  const stray = args.positionals[0];
  if (stray !== undefined && !cmd.positionals) throw new UsageError(`unexpected argument "${stray}"`);
}

export { parseArgs };
