// `l2e`: the command-line entry point. Dispatches to sub-commands; errors become one clear line on
// stderr and a non-zero exit code, never a stack trace for user mistakes.
import { commandHelp, parseArgs, refuseStrayPositionals, usageLines, type Command } from './command.js';
import { UsageError } from './args.js';
import { closest } from '../util/closest.js';
import { loadCommands } from './commands.js';
import { OutputClosedError, SIGPIPE_STATUS } from '../util/output.js';
import { removeScratch } from '../util/scratch.js';
import { onStopSignals, signalStatus, type StopSignal } from './signals.js';

export async function main(argv: string[]): Promise<number> {
  const commands = await loadCommands();
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    // `l2e help encode`, `l2e --help encode`; `l2e help help` is the overview
    const topic = rest[0] !== '--help' && rest[0] !== '-h' && rest[0] !== 'help' ? rest[0] : undefined;
    if (topic === undefined) {
      process.stdout.write(overview(commands));
      return 0;
    }
    const about = commands.find((c) => c.name === topic); // `l2e help encode`
    if (!about) return unknownCommand(topic, commands);
    if (rest.length > 1) {
      process.stderr.write(`l2e help: unexpected argument "${rest[1]}"\nUsage: l2e help [COMMAND]\n`);
      return 2;
    }
    process.stdout.write(commandHelp(about));
    return 0;
  }
  if (name === '--version') {
    if (rest.length > 0) {
      process.stderr.write(`l2e: unexpected argument "${rest[0]}" after --version\n`);
      return 2;
    }
    const { readFileSync } = await import('node:fs');
    const { packageRoot } = await import('../native.js');
    const pkg = JSON.parse(readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) return unknownCommand(name, commands);
  let stopSignals: (() => void) | undefined;
  try {
    // --help wins over the rest of the line (`l2e encode --help --bogus` said "unknown option --bogus")
    const beforeDashes = rest.indexOf('--') < 0 ? rest : rest.slice(0, rest.indexOf('--'));
    if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) {
      process.stdout.write(commandHelp(cmd));
      return 0;
    }
    const args = parseArgs(rest, cmd.options);
    if (args.help) {
      process.stdout.write(commandHelp(cmd));
      return 0;
    }
    refuseStrayPositionals(cmd, args);
    if (!cmd.ownsSignals) stopSignals = onStopSignals(removeScratchAndExit);
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof OutputClosedError) return SIGPIPE_STATUS; // `| head` has what it wanted: no message
    if (err instanceof UsageError) {
      process.stderr.write(`l2e ${name}: ${err.message}\n${usageLines(cmd)}\nRun 'l2e ${name} --help' for all options.\n`);
      return 2;
    }
    // library errors may name the operation ("combine: ..."); the prefix already names the command
    const msg = (err instanceof Error ? err.message : String(err)).replace(new RegExp(`^${name}: `), '');
    process.stderr.write(`l2e ${name}: error: ${msg}\n`);
    if (process.env['L2E_DEBUG'] && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  } finally {
    stopSignals?.();
  }
}

/** A signal's end for the commands without their own: no temp file or store left, the shell's exit code. */
function removeScratchAndExit(signal: StopSignal): void {
  removeScratch();
  process.exit(signalStatus(signal));
}

function unknownCommand(name: string, commands: Command[]): number {
  const near = closest(name, commands.map((c) => c.name));
  process.stderr.write(`l2e: unknown command "${name}"${near ? ` (did you mean "${near}"?)` : ''}\nRun 'l2e --help' for the commands.\n`);
  return 2;
}

function overview(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return (
    'l2e — train, run, evaluate and mine with Llama2 sentence-embedding models\n\n' +
    'Usage: l2e <command> [options]   (l2e <command> --help for its options)\n\nCommands:\n' +
    commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n') +
    '\n\nl2e --version prints the version.\n'
  );
}
