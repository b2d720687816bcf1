// The one loader of the test addon, build/Release/testing/l2e_testing.node: built from native/testing/
// next to the shipped addon by both `npm run build:native` and node-gyp, it holds the shipped addon's
// functions plus the test and bench hooks (backendOp(s), gradcheck*, benchOp(s), op timing, sgemm,
// cudaBenchAttention). Tests and bench/ load it through here; src/ never does, and the published
// package has no native/testing. L2E_TESTING_ADDON names another .node file (a separate build).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the test addon is looked for: L2E_TESTING_ADDON, else build/Release/testing/l2e_testing.node. */
export function testingAddonPath() {
  return process.env.L2E_TESTING_ADDON || join(repoRoot, 'build', 'Release', 'testing', 'l2e_testing.node');
}

let cached;

/** The test addon (loaded once); a clear error when it was not built. */
export function testingAddon() {
  if (cached === undefined) {
    const file = testingAddonPath();
    if (!existsSync(file))
      throw new Error(
        `the test addon ${file} does not exist: build it with \`npm run build:native\` (cmake-js) or \`npx node-gyp rebuild\``,
      );
    cached = require(file);
  }
  return cached;
}
