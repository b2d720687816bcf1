// The structure of a tokenizer.json, checked before @huggingface/tokenizers reads it: that library
// meets a malformed file with errors of its internals ("x.split is not a function", "... is not
// iterable"), or loads it and then makes ids outside the vocabulary. Checked: the model's vocab and
// merges, as each model type holds them (BPE, WordPiece, WordLevel: an object of token → id, BPE's
// merges "a b" strings or [a, b] pairs, all of one form; Unigram: a list of [piece, score]), and the added tokens
// (a list of {id, content}). Ids are bounded by the tokens the file holds: vocabularies number their
// tokens 0 … N-1 (the added ones after), and the library allocates by the largest id, so one damaged id
// (2^31) would take a minute and gigabytes; a little slack is left for vocabularies with holes. What
// the library reads beyond these it reports itself.
type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0;
const shown = (v: unknown): string => (JSON.stringify(v) ?? String(v)).slice(0, 60);

/** What is wrong with the structure of `json` (a parsed tokenizer.json), or null. */
export function tokenizerJsonProblem(json: Json): string | null {
  const model = json['model'];
  if (!isObject(model)) return 'has no "model" object';
  const type = model['type'] ?? (model['merges'] !== undefined ? 'BPE' : undefined);
  if (type === 'Unigram') {
    if (!Array.isArray(model['vocab'])) return `model.vocab must be a list of [piece, score] (a Unigram model), got ${shown(model['vocab'])}`;
    const bad = model['vocab'].findIndex((e) => !Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'number');
    if (bad >= 0) return `model.vocab[${bad}] must be [piece, score], got ${shown(model['vocab'][bad])}`;
  } else if (type === 'BPE' || type === 'WordPiece' || type === 'WordLevel') {
    const vocab = model['vocab'];
    if (!isObject(vocab)) return `model.vocab must be an object of token → id (a ${type} model), got ${shown(vocab)}`;
    const bad = Object.entries(vocab).find(([, id]) => !isId(id));
    if (bad) return `model.vocab[${JSON.stringify(bad[0])}] must be an id (a whole number ≥ 0), got ${shown(bad[1])}`;
  }
  if (type === 'BPE') {
    const merges = model['merges'];
    if (!Array.isArray(merges)) return `model.merges must be a list of "a b" strings or [a, b] pairs, got ${shown(merges)}`;
    const bad = merges.findIndex((m) => !(typeof m === 'string' ? m.includes(' ') : Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')));
    if (bad >= 0) return `model.merges[${bad}] must be an "a b" string or an [a, b] pair, got ${shown(merges[bad])}`;
    // the library reads the list in the form of its first entry
    const other = merges.findIndex((m) => typeof m !== typeof merges[0]);
    if (other >= 0) {
      const form = (m: unknown): string => (typeof m === 'string' ? 'an "a b" string' : 'an [a, b] pair');
      return `model.merges[${other}] is ${form(merges[other])} but model.merges[0] is ${form(merges[0])}: the list must hold one form`;
    }
  }
  const added = json['added_tokens'];
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) return `added_tokens must be a list, got ${shown(added)}`;
    const bad = added.findIndex((t) => !isObject(t) || !isId(t['id']) || typeof t['content'] !== 'string');
    if (bad >= 0) return `added_tokens[${bad}] must be {"id": <whole number ≥ 0>, "content": <string>, ...}, got ${shown(added[bad])}`;
  }
  // the ids, where they are named: [where, id]
  const ids: [string, number][] = [];
  if (isObject(model['vocab'])) for (const [token, id] of Object.entries(model['vocab'])) ids.push([`model.vocab[${JSON.stringify(token)}]`, id as number]);
  // a Unigram vocab numbers its pieces by position
  if (Array.isArray(model['vocab'])) model['vocab'].forEach((_, i) => ids.push([`model.vocab[${i}]`, i]));
  if (Array.isArray(added)) added.forEach((t: Json, i) => ids.push([`added_tokens[${i}]`, t['id'] as number]));
  const tokens = new Set(ids.map(([, id]) => id)).size;
  const limit = 2 * tokens + 256;
  const far = ids.find(([, id]) => id >= limit);
  if (far) return `${far[0]} has id ${far[1]}, far beyond the ${tokens} tokens the file numbers (ids past ${limit - 1} are refused: a damaged file?)`;
  return null;
}
