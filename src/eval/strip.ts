// Python's str.strip() with no argument, which the original notebooks applied to every string:
// it removes the characters for which str.isspace() is true. JS's String.prototype.trim differs at
// the edges (Python also strips \x1c-\x1f and \x85; JS also strips \ufeff), so pools built with
// trim() could differ from theirs on such texts.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING = new RegExp(`^[${PY_SPACE}]+`);
const TRAILING = new RegExp(`[${PY_SPACE}]+$`);

export function pyStrip(s: string): string {
  return s.replace(LEADING, '').replace(TRAILING, '');
}
