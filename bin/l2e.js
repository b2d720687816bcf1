#!/usr/bin/env node
// Runs the built CLI (dist/); `npm install` builds dist/ through the prepare script.
import { main } from '../dist/cli/main.js';
import { removeScratch } from '../dist/util/scratch.js';

// Text a command writes straight to stdout (help, eval's table, mine --stats): a reader that has gone
// (`l2e eval ... | less`, quit early) ends the command quietly with 141, as SIGPIPE ends a Unix tool,
// not with Node's stack trace for an unhandled 'error' event. A stderr whose reader has gone takes the
// messages with it, never the result (a finished train exited 1).
// Any other failure (a full disk under `> out.jsonl`) is said before the exit.
process.stdout.on('error', (err) => {
  removeScratch();
  if (err.code !== 'EPIPE') process.stderr.write(`l2e: could not write to stdout: ${err.message}\n`);
  process.exit(err.code === 'EPIPE' ? 141 : 1);
});
process.stderr.on('error', () => {});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`l2e: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
