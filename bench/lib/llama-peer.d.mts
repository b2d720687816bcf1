// Types of llama-peer.mjs (plain JavaScript so that bench/*.mjs can load it too). Only the parts of
// node-llama-cpp that we call are named, so that the project typechecks without it.

export interface LlamaCppModel {
  tokenize(text: string): number[];
}
export interface LlamaCpp {
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<LlamaCppModel>;
}
export function loadLlamaCpp(options?: { threads?: number }): Promise<{ llama: LlamaCpp; version: string } | { skip: string }>;
export interface Embedder {
  model: LlamaCppModel;
  /** The mean-pooled final hidden state of one sequence. */
  embed(tokens: ArrayLike<number>): Promise<Float64Array>;
  dispose(): Promise<void>;
}
export function openEmbedder(llama: LlamaCpp, modelPath: string, options: { threads: number; maxTokens: number }): Promise<Embedder>;
