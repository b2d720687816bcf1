import { formatOptions, parseArgs, type OptionSpecs, type ParsedArgs } from './args.js';

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

export { parseArgs };
