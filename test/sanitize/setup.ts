// Loaded before every test file of `npm run test:sanitize`. After the file's tests: a full GC (so
// wrappers the tests dropped run their finalizers), then LeakSanitizer on the native heap. A leak
// fails the file; the report (what leaked, allocated where) is on stderr above the failure.
import { afterAll } from 'vitest';
import { nativeAddon } from '../../src/native.js';

interface SanitizerAddon {
  sanitizerLeakCheck?: () => boolean;
}

afterAll(async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('test:sanitize needs node --expose-gc (vitest execArgv)');
  // finalizers of collected wrappers run on later ticks: collect, yield, collect again
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  const check = nativeAddon<SanitizerAddon>().sanitizerLeakCheck;
  if (!check) throw new Error(`test:sanitize: L2E_ADDON=${process.env['L2E_ADDON'] ?? ''} is not the sanitizer build (no sanitizerLeakCheck)`);
  if (check()) throw new Error('LeakSanitizer: native memory leaked by this test file (report on stderr)');
});
