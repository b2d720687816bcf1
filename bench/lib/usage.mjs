// --help for the bench scripts whose usage is their header comment, and a refusal of flags they do not
// know (a typo must not start a long run).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The script's leading comment block, without the comment markers. */
export function headerUsage(url) {
  const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n');
  const out = [];
  for (const line of lines) {
    if (line.startsWith('#!')) continue;
    if (!line.startsWith('//')) break;
    out.push(line.replace(/^\/\/ ?/, ''));
  }
  return out.join('\n');
}

/** Prints the header and exits 0 on --help / -h; exits 2 naming the first flag not in `known`. */
export function checkFlags(url, args, known) {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(headerUsage(url));
    process.exit(0);
  }
  // a negative number is a value (--duration -1 gets the script's own range message), not a flag
  const bad = args.find((a) => a.startsWith('-') && !/^-\d/.test(a) && !known.includes(a));
  if (bad !== undefined) {
    console.error(`bench/${basename(fileURLToPath(url))}: unknown option ${bad} (--help lists them)`);
    process.exit(2);
  }
}
