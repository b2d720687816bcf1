// Synthetic contrastive data for training tests: topics named by keywords (single tokens of the shared
// tokenizer), texts = a keyword + random filler words.
import type { TrainRow } from '../../src/data/pairs.js';
import { Rng } from '../../src/util/random.js';

// whole words of the shared tokenizer (each one token)
const WORDS = (
  'yang untuk saya tidak dengan that with dalam dari pada akan boleh this have from juga will mereka said kepada orang ' +
  'also adalah lagi atau like tahun lebih kita anda seperti they hanya sangat tetapi when oleh there kerana telah lain ' +
  'menjadi hari want their mana anak masa dapat semua sebagai because sama just baik satu baru bagi know daripada banyak only'
).split(' ');

export interface TopicDataOptions {
  /** Random filler words per text (default 4). */
  fillerWords?: number;
  /** Positives carry the query's keyword (true) or the topic's other keyword (false, harder). Default true. */
  sameKeyword?: boolean;
}

/** `rows` training rows over `topics` topics, and one held-out (query, positive) pair per topic. */
export function topicData(
  topics: number,
  rows: number,
  seed: number,
  o: TopicDataOptions = {},
): { rows: TrainRow[]; heldOut: { query: string; pos: string }[] } {
  const fillerWords = o.fillerWords ?? 4;
  const posKey = (o.sameKeyword ?? true) ? 0 : 1;
  const rng = new Rng(seed, 3);
  const words = rng.shuffle(WORDS.slice());
  const keys = Array.from({ length: topics }, (_, t) => words.slice(t * 2, t * 2 + 2));
  const fillers = words.slice(topics * 2);
  const text = (t: number, k: number): string => {
    const parts = [keys[t]![k]!, ...rng.sample(fillers, fillerWords)];
    return rng.shuffle(parts).join(' ');
  };
  const make = (): TrainRow => {
    const t = rng.int(topics);
    const negs = Array.from({ length: 3 }, () => {
      let u = rng.int(topics - 1);
      if (u >= t) u++;
      return text(u, rng.int(2));
    });
    return { query: text(t, 0), pos: [text(t, posKey)], neg: negs };
  };
  const heldOut = Array.from({ length: topics }, (_, t) => ({ query: text(t, 0), pos: text(t, posKey) }));
  return { rows: Array.from({ length: rows }, make), heldOut };
}

