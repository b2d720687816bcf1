// Reading text inputs for the CLI: JSONL with a `text` field, or plain text one per line.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * Reads texts from `path`: each line is either a JSON object with a string `field` (JSONL) or, when
 * the file's first non-empty line is not a JSON object, a plain text. Errors name file:line.
 */
export async function readTexts(path: string, field = 'text'): Promise<string[]> {
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  const texts: string[] = [];
  let mode: 'jsonl' | 'plain' | undefined;
  let lineNo = 0;
  try {
    for await (const line of rl) {
      lineNo++;
      if (mode === undefined) {
        if (line.trim() === '') continue;
        mode = line.trimStart().startsWith('{') ? 'jsonl' : 'plain';
      }
      if (mode === 'plain') {
        texts.push(line);
        continue;
      }
      if (line.trim() === '') continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (e) {
        throw new Error(`${path}:${lineNo}: not valid JSON (${(e as Error).message})`);
      }
      const v = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[field] : undefined;
      if (typeof v !== 'string') throw new Error(`${path}:${lineNo}: expected a JSON object with a string "${field}" field`);
      texts.push(v);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`input file not found: ${path}`);
    throw err;
  }
  return texts;
}
