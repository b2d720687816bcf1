// How an error shows a value a plain-JS caller passed where another was expected.

/** Numbers as they are, strings quoted with their type (`the string "8"`), else the kind of value. */
export function describeValue(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `${/^[AEIOU]/.test(v.constructor.name) ? 'an' : 'a'} ${v.constructor.name}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * A value from parsed JSON as its JSON text, for messages: JSON.stringify, except that the numbers JSON
 * cannot write are shown as themselves (a body's 1e999 parses to Infinity, which stringify writes null).
 */
export function jsonShown(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return JSON.stringify(v) ?? String(v);
}

/** v, when it is a positive integer; else a TypeError (not a number) or RangeError naming `name`. */
export function positiveInteger(name: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a positive integer, got ${describeValue(v)}`);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${describeValue(v)}`);
  return v;
}
