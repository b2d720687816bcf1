// `l2e`: the command-line entry point. Dispatches to sub-commands; errors become one clear line on
// stderr and a non-zero exit code, never a stack trace for user mistakes.
import { commandHelp, parseArgs } from './command.js';
import { UsageError } from './args.js';
import { loadCommands } from './commands.js';

export async function main(argv: string[]): Promise<number> {
  const commands = await loadCommands();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const width = Math.max(...commands.map((c) => c.name.length));
    process.stdout.write(
      'l2e — train, run, evaluate and mine with Llama2 sentence-embedding models\n\n' +
        'Usage: l2e <command> [options]   (l2e <command> --help for its options)\n\nCommands:\n' +
        commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n') +
        '\n',
    );
    return name ? 0 : 1;
  }
  if (name === '--version') {
    const { readFileSync } = await import('node:fs');
    const { packageRoot } = await import('../native.js');
    const pkg = JSON.parse(readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`l2e: unknown command "${name}" (see l2e --help)\n`);
    return 2;
  }
  try {
    const args = parseArgs(rest, cmd.options);
    if (args.help) {
      process.stdout.write(commandHelp(cmd));
      return 0;
    }
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`l2e ${name}: ${err.message}\n\n${commandHelp(cmd)}`);
      return 2;
    }
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`l2e ${name}: error: ${msg}\n`);
    if (process.env['L2E_DEBUG'] && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
