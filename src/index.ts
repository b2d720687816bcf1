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
// training
export { Trainer, TrainingDivergedError } from './train/trainer.js';
export type { TrainerOptions, StepInfo, FitOptions, FitResult } from './train/trainer.js';
export { saveModel } from './train/checkpoint.js';
export { PairData, sampleGroup } from './data/pairs.js';
export { readJsonl, readPairRows } from './data/jsonl.js';
export type { PairRow } from './data/jsonl.js';
export { combineFiles } from './data/combine.js';
// evaluation and mining
export { knn } from './eval/knn.js';
export type { KnnMetric, KnnResult } from './eval/knn.js';
export { computeMetrics, readTestSet, buildTestSet } from './eval/metrics.js';
export type { Metrics, TestSet } from './eval/metrics.js';
export { minePairs } from './mine/mine.js';
// hub
export { snapshotDownload } from './hub/download.js';
export { resolveModel } from './hub/resolve.js';
export { Rng } from './util/random.js';
