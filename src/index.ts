// Public API of llama2-embedding.
export { EmbeddingModel, DEFAULT_DENSE_SIZE, DEFAULT_MAX_LENGTH, packBatch, planBatches } from './model/embedding-model.js';
export type { Device, EncodeOptions, LoadOptions } from './model/embedding-model.js';
export { Embeddings } from './model/embeddings.js';
export { TextTokenizer } from './model/tokenizer.js';
export { readConfig, parseConfig, configToJson } from './model/config.js';
export type { LlamaConfig, Pooling } from './model/config.js';
export { readSafetensorsHeader, writeSafetensors } from './model/safetensors.js';
export { openWeights, parameterNames } from './model/weights.js';
export { nativeAddonPath } from './native.js';
