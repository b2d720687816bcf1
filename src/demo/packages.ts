// The demo's data and tokenizer come from three npm packages that a library install does not pull
// (development dependencies): the CLDR data (cldr-annotations-full, cldr-localenames-full) and the
// Llama 2 vocabulary (llama-tokenizer-js). They are checked together, before any work, and the
// message gives one command installing all three: installed one at a time without --save, each npm
// install prunes the packages the previous one added.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../native.js';

export const DEMO_PACKAGES = ['cldr-annotations-full', 'cldr-localenames-full', 'llama-tokenizer-js'] as const;

const require = createRequire(import.meta.url);

/** `^48.2.0` → `48`, `~1.2.2` → `1.2`: the range of package.json as a shell-safe npm spec. */
function versionSpec(range: string | undefined): string {
  if (!range) return '';
  const m = /^([\^~]?)(\d+)\.(\d+)\.\d+$/.exec(range.trim());
  if (!m) return '';
  const [, op, major, minor] = m;
  if (op === '^' && major !== '0') return `@${major}`;
  if (op === '') return `@${range.trim()}`;
  return `@${major}.${minor}`;
}

/** The one command that installs every demo package, at the versions package.json names. */
export function demoInstallCommand(): string {
  let dev: Record<string, string> = {};
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
    dev = pkg.devDependencies ?? {};
  } catch {
    // no package.json beside dist/: names without versions still work
  }
  return `npm install --no-save ${DEMO_PACKAGES.map((p) => p + versionSpec(dev[p])).join(' ')}`;
}

/** The demo packages that cannot be resolved (`resolve` throws for a missing one). */
export function missingDemoPackages(resolve: (name: string) => unknown = (n) => require.resolve(`${n}/package.json`)): string[] {
  return DEMO_PACKAGES.filter((name) => {
    try {
      resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

/** Throws, naming the missing packages and the one install command, unless all are installed. */
export function checkDemoPackages(resolve?: (name: string) => unknown): void {
  const missing = missingDemoPackages(resolve);
  if (missing.length === 0) return;
  throw new Error(
    `the demo needs packages that are not installed (${missing.join(', ')}): its data comes from Unicode CLDR and its ` +
      `tokenizer from llama-tokenizer-js. Install all three with: ${demoInstallCommand()}`,
  );
}
