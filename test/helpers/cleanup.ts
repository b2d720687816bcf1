// A setup file of every vitest config (vitest.config.ts; the sanitizer and fuzz configs merge it): after
// each test file, the folders it made with makeTempDir() are deleted, so a run leaves nothing in os.tmpdir().
// CI runs the suite with TMPDIR set to a fresh folder and fails if anything is left in it (.ci/run).
import { afterAll } from 'vitest';
import { removeTempDirs } from './tinyModel.js';

afterAll(removeTempDirs);
