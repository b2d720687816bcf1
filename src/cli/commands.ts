// Every `l2e` sub-command, in the order `l2e --help` lists them.
import type { Command } from './command.js';

export async function loadCommands(): Promise<Command[]> {
  const modules = await Promise.all([
    import('./demo.js'),
    import('./encode.js'),
    import('./tokenize.js'),
    import('./train.js'),
    import('./eval.js'),
    import('./mine.js'),
    import('./combine.js'),
    import('./pull.js'),
    import('./serve.js'),
  ]);
  return modules.map((m) => m.command);
}
