// Where eval and mine get vectors from: a model (encoded now) or a table of precomputed embeddings.
import type { Embeddings } from '../model/embeddings.js';
import { loadVectorTable, type VectorTable } from './vectors.js';

export interface EmbeddingSource {
  /** Vectors of `texts`, one row each, in order. */
  embed(texts: string[], onProgress?: (done: number, total: number) => void): Promise<Embeddings>;
  close(): void;
}

export interface SourceOptions {
  model?: string;
  embeddings?: string;
  textsFile?: string;
  batchSize?: number;
  maxLength?: number;
  device?: 'cpu' | 'cuda';
  precision?: 'fp32' | 'bf16' | 'int8';
  cacheDir?: string;
}

/** Opens the model (`model`) or the precomputed table (`embeddings`); exactly one must be given. */
export async function openEmbeddingSource(opts: SourceOptions): Promise<EmbeddingSource> {
  if ((opts.model === undefined) === (opts.embeddings === undefined)) {
    throw new Error('give exactly one of --model DIR or --embeddings FILE');
  }
  if (opts.embeddings !== undefined) return tableSource(await loadVectorTable(opts.embeddings, { textsFile: opts.textsFile }));
  const { EmbeddingModel } = await import('../model/embedding-model.js');
  const model = await EmbeddingModel.load(opts.model!, { device: opts.device, precision: opts.precision, cacheDir: opts.cacheDir });
  return {
    embed: (texts, onProgress) =>
      model.encode(texts, { batchSize: opts.batchSize, maxLength: opts.maxLength, onProgress }),
    close: () => model.dispose(),
  };
}

export function tableSource(table: VectorTable): EmbeddingSource {
  return {
    embed: async (texts, onProgress) => {
      const e = table.embeddingsFor(texts);
      onProgress?.(texts.length, texts.length);
      return e;
    },
    close: () => {},
  };
}
