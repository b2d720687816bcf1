import { formatOptions, parseArgs, UsageError, type OptionSpecs, type ParsedArgs } from './args.js';

/** One `l2e` sub-command. `run` returns the process exit code. */
export interface Command {
  name: string;
  /** One line for `l2e --help`. */
  summary: string;
  /** Usage line(s) and a paragraph for `l2e NAME --help`. */
  usage: string;
  options: OptionSpecs;
  run(args: ParsedArgs): Promise<number>;
}

export function commandHelp(cmd: Command): string {
  return `${cmd.usage.trim()}\n\nOptions:\n${formatOptions(cmd.options)}\n  --help  show this help\n`;
}

/** The usage synopsis: the usage text up to its first blank line. */
export function usageLines(cmd: Command): string {
  return cmd.usage.trim().split(/\n\s*\n/)[0]!;
}

/**
 * The commands that take positional arguments (combine: its inputs; pull: the repo id; eval: test files
 * after the first --test FILE); the others take none.
 */
const TAKES_POSITIONALS = new Set(['combine', 'pull', 'eval']);

/** Refuses positional arguments a command does not take: `l2e encode --input a.txt b.txt` would encode a.txt only. */
export function refuseStrayPositionals(cmd: Command, args: ParsedArgs): void {
  const stray = args.positionals[0];
  if (stray !== undefined && !TAKES_POSITIONALS.has(cmd.name)) throw new UsageError(`unexpected argument "${stray}"`);
}

export { parseArgs };
