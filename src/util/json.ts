// Where JSON.parse stopped, for people: V8 names a character position ("... in JSON at position
// 5123"), which in a file of many lines means little; errors here say line and column instead.

/**
 * The message of JSON.parse's error `err` on `text`, with "at position N" (and the "(line L column C)"
 * newer V8 versions add after it) said as "at line L, column C", or "at column C" in a text of one
 * line: 1-based, columns counted in UTF-16 units as V8 counts positions. Other messages ("Unexpected
 * end of JSON input", or an unexpected token shown in its context) are left as they are.
 */
export function jsonErrorMessage(err: unknown, text: string): string {
  const msg = err instanceof Error ? err.message : String(err);
  const at = /at position (\d+)(?: \(line \d+ column \d+\))?/.exec(msg);
  if (at) {
    const pos = Math.min(Number(at[1]), text.length);
    const { line, column } = lineColumn(text, pos);
    const where = text.includes('\n') ? `at line ${line}, column ${column}` : `at column ${column}`;
    return msg.slice(0, at.index) + where + msg.slice(at.index + at[0].length);
  }
  return msg;
}

/** JSON.parse, its errors worded by jsonErrorMessage. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new SyntaxError(jsonErrorMessage(err, text));
  }
}

function lineColumn(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: pos - start + 1 };
}
