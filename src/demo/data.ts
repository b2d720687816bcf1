// The demo's English ↔ Malay pairs, built at run time from Unicode CLDR data shipped in npm packages
// (development / optional dependencies, not pulled by a library install):
//   cldr-annotations-full   emoji names ("grinning face" ↔ "muka tersengih") and keywords;
//   cldr-localenames-full   territory, language and script names ("Germany" ↔ "Jerman").
// Every concept gives two rows, English → Malay and Malay → English. Hard negatives are the concept's
// nearest neighbours in the target language by character-trigram similarity (exact k-NN in native
// code): texts that look alike but mean something else ("Afrika Barat" for "Afrika Timur").
import { createRequire } from 'node:module';
import { Embeddings } from '../model/embeddings.js';
import { knn } from '../eval/knn.js';
import { Rng } from '../util/random.js';
import type { PairRow } from '../data/jsonl.js';
import { demoInstallCommand } from './packages.js';

const require = createRequire(import.meta.url);

export interface Concept {
  kind: 'emoji' | 'territory' | 'language' | 'script';
  en: string;
  ms: string;
}

export interface DemoPairs {
  train: PairRow[];
  test: PairRow[];
  concepts: number;
}

export interface DemoDataOptions {
  seed?: number;
  /** Share of concepts held out for the test split (default 0.1). */
  testFraction?: number;
  /** Hard negatives per row (default 4). */
  negatives?: number;
}

function requireCldr<T>(path: string): T {
  try {
    return require(path) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new Error(
        `the demo builds its data from Unicode CLDR packages that are not installed (${path.split('/')[0]}). ` +
          `Install the demo's packages with: ${demoInstallCommand()}`,
      );
    }
    throw err;
  }
}

interface Annotations {
  annotations: { annotations: Record<string, { default?: string[]; tts?: string[] }> };
}

type LocaleNames = { main: Record<string, { localeDisplayNames: Record<string, Record<string, string>> }> };

/** Every CLDR concept with a distinct English and Malay name. */
export function loadConcepts(): Concept[] {
  const out: Concept[] = [];
  const seen = new Set<string>();
  const add = (c: Concept): void => {
    const en = c.en.trim();
    const ms = c.ms.trim();
    if (!en || !ms || en.toLowerCase() === ms.toLowerCase()) return; // identical names teach nothing
    const key = `${en}\u0000${ms}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ kind: c.kind, en, ms });
  };
  const en = requireCldr<Annotations>('cldr-annotations-full/annotations/en/annotations.json').annotations.annotations;
  const ms = requireCldr<Annotations>('cldr-annotations-full/annotations/ms/annotations.json').annotations.annotations;
  // An emoji's text is its name followed by its other keywords, "sheaf of rice (ear, grain, plant)":
  // keywords recur across concepts (plant ↔ tumbuhan, leaf ↔ daun), which is what lets a model learn
  // word-level correspondences that carry over to held-out concepts.
  const describe = (name: string, keywords: string[] | undefined): string => {
    const rest = (keywords ?? []).filter((k) => k.toLowerCase() !== name.toLowerCase());
    return rest.length ? `${name} (${rest.join(', ')})` : name;
  };
  for (const [ch, a] of Object.entries(en)) {
    const b = ms[ch];
    const enName = a.tts?.[0];
    const msName = b?.tts?.[0];
    if (enName && msName) add({ kind: 'emoji', en: describe(enName, a.default), ms: describe(msName, b?.default) });
  }
  for (const [kind, file] of [['territory', 'territories'], ['language', 'languages'], ['script', 'scripts']] as const) {
    const e = requireCldr<LocaleNames>(`cldr-localenames-full/main/en/${file}.json`).main['en']!.localeDisplayNames[file]!;
    const m = requireCldr<LocaleNames>(`cldr-localenames-full/main/ms/${file}.json`).main['ms']!.localeDisplayNames[file]!;
    for (const [code, name] of Object.entries(e)) {
      if (code.includes('-alt-')) continue; // variants ("-alt-short") repeat a concept
      const msName = m[code];
      if (msName) add({ kind, en: name, ms: msName });
    }
  }
  return out;
}

/** Hashed character-trigram vectors (lower-cased, padded with spaces), L2-normalised. */
export function trigramVectors(texts: string[], dim = 512): Embeddings {
  const out = new Embeddings(texts.length, dim);
  texts.forEach((t, r) => {
    const s = ` ${t.toLowerCase()} `;
    const row = out.row(r);
    for (let i = 0; i + 3 <= s.length; i++) {
      let h = 2166136261; // FNV-1a over the trigram's code units
      for (let j = i; j < i + 3; j++) h = Math.imul(h ^ s.charCodeAt(j), 16777619);
      row[(h >>> 0) % dim]! += 1;
    }
    let n = 0;
    for (const v of row) n += v * v;
    n = Math.sqrt(n) || 1;
    for (let i = 0; i < dim; i++) row[i]! /= n;
  });
  return out;
}

/**
 * For each concept, up to `count` other concepts whose `side` text is most similar (trigram cosine),
 * excluding those with the same text.
 */
async function nearNeighbours(concepts: Concept[], side: 'en' | 'ms', count: number): Promise<number[][]> {
  const texts = concepts.map((c) => c[side]);
  const vecs = trigramVectors(texts);
  const res = await knn(vecs, vecs, count + 8);
  return concepts.map((c, i) => {
    const picks: number[] = [];
    for (let j = 0; j < res.k && picks.length < count; j++) {
      const n = res.indices[i * res.k + j]!;
      if (n !== i && texts[n]!.toLowerCase() !== c[side].toLowerCase()) picks.push(n);
    }
    return picks;
  });
}

/** Train and test rows (a seeded split by concept, so no test concept is seen in training). */
export async function buildDemoPairs(options: DemoDataOptions = {}): Promise<DemoPairs> {
  const seed = options.seed ?? 42;
  const negatives = options.negatives ?? 4;
  const concepts = loadConcepts();
  const rng = new Rng(seed, 11);
  const order = rng.shuffle(concepts.map((_, i) => i));
  const nTest = Math.max(1, Math.round(concepts.length * (options.testFraction ?? 0.1)));
  const isTest = new Set(order.slice(0, nTest));
  const nearMs = await nearNeighbours(concepts, 'ms', negatives);
  const nearEn = await nearNeighbours(concepts, 'en', negatives);
  const train: PairRow[] = [];
  const test: PairRow[] = [];
  for (const i of order) {
    const c = concepts[i]!;
    const rows: PairRow[] = [
      { query: c.en, pos: [c.ms], neg: nearMs[i]!.map((n) => concepts[n]!.ms) },
      { query: c.ms, pos: [c.en], neg: nearEn[i]!.map((n) => concepts[n]!.en) },
    ];
    (isTest.has(i) ? test : train).push(...rows);
  }
  return { train, test, concepts: concepts.length };
}
