// A plain-JS caller's options object, checked before it is used: not an object, or a key the function
// does not know, is a TypeError naming it (a misspelt option would otherwise be ignored, e.g. an
// `apikey` that left a server open, or a `precison` that left a model in fp32).
import { closest } from './closest.js';
import { describeValue } from './describe.js';

/** How messages name an option: the option itself for library callers, the flag for the CLI. */
export type OptionNamer = (option: string) => string;

export const optionItself: OptionNamer = (option) => option;

/** Every key of an options type, listed once: the compiler checks the list is complete and has nothing else. */
export function optionKeys<T extends object>(keys: Record<keyof Required<T>, true>): readonly string[] {
  return Object.keys(keys);
}

/** A TypeError that begins with `where` unless `options` is an object whose every key is one of `known`. */
export function checkOptions<T>(where: string, options: T, known: readonly string[]): asserts options is NonNullable<T> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = closest(key, [...known]);
    throw new TypeError(`${where}: unknown option ${key}${near ? ` (did you mean ${near}?)` : ''}`);
  }
}

/** A TypeError naming `where` and `name` unless `value` is a non-empty string: a folder's or file's name. */
export function checkPathArg(where: string, name: string, value: unknown, kind: 'folder' | 'file'): asserts value is string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${where}: ${name} must be a ${kind} name, got ${describeValue(value)}`);
}

/** The TypeError for an option of the wrong kind: `where: key must be expected, got <what it got>`. */
export function wrongOption(where: string, key: string, expected: string, got: unknown): TypeError {
  return new TypeError(`${where}: ${key} must be ${expected}, got ${describeValue(got)}`);
}

/** A library function's context argument: how its messages name its options (the CLI passes its flags). */
export interface NamingContext {
  /** How messages name options (default the option's own key). */
  optionName?: OptionNamer;
}

export const NAMING_CONTEXT = optionKeys<NamingContext>({ optionName: true });
