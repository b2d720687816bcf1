#!/usr/bin/env node
// Runs the built CLI (dist/); `npm install` builds dist/ through the prepare script.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`l2e: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
