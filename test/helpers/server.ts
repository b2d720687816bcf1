// Server tests' helpers: a tiny random model served on loopback, JSON calls, and reading /metrics.
import { existsSync } from 'node:fs';
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { serve, type ServeOptions, type ServerHandle } from '../../src/server/server.js';
import { makeTempDir, sharedTokenizer, writeTinyModel, type TinyModelOptions } from './tinyModel.js';

export const hasTokenizer = existsSync(sharedTokenizer);

/** A tiny random model folder (the shared tokenizer), loaded. */
export async function tinyModel(o: TinyModelOptions = {}): Promise<EmbeddingModel> {
  const dir = makeTempDir('l2e-serve-');
  writeTinyModel(dir, { seed: 3, ...o });
  return EmbeddingModel.load(dir);
}

export interface Served {
  model: EmbeddingModel;
  handle: ServerHandle;
  url: string;
}

/** Serves `model` on 127.0.0.1 at a free port. */
export async function serveOn(model: EmbeddingModel, options: ServeOptions = {}): Promise<Served> {
  const handle = await serve(model, { port: 0, ...options });
  await handle.ready;
  return { model, handle, url: handle.url };
}

export interface JsonReply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** POSTs `body` (an object as JSON, or raw bytes/text as they are) and parses the JSON reply. */
export async function postJson<T = unknown>(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<JsonReply<T>> {
  const raw = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw, signal });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

export async function getText(url: string): Promise<string> {
  return (await fetch(url)).text();
}

/** The value of one sample in Prometheus text (`name{labels} value`); labels in the order printed. */
export function metricValue(text: string, sample: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1));
  }
  return Number.NaN;
}

export type OpenAIError = { error: { message: string; type: string; param: string | null; code: string | null } };
