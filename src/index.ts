// Public API of llama2-embedding.
export { EmbeddingModel, DEFAULT_DENSE_SIZE, DEFAULT_MAX_LENGTH, packBatch, planBatches } from './model/embedding-model.js';
export type { BatchInfo, CreateOptions, Device, EncodedPart, EncodeOptions, EncodePartsOptions, LoadOptions, NativeModel, Precision } from './model/embedding-model.js';
export { Embeddings } from './model/embeddings.js';
export { TextTokenizer } from './model/tokenizer.js';
export { TextError } from './model/text-error.js';
export type { TextTokenizerOptions } from './model/tokenizer.js';
export { readConfig, parseConfig, configToJson } from './model/config.js';
export type { LlamaConfig, Pooling } from './model/config.js';
export { isLoadableDType, readSafetensorsHeader, writeSafetensors } from './model/safetensors.js';
export type { DType, SafetensorsHeader, StoredDType, TensorEntry, TensorToWrite } from './model/safetensors.js';
export { openWeights, parameterNames } from './model/weights.js';
export type { WeightEntry, WeightIndex, OpenWeightsOptions, ParameterSpec } from './model/weights.js';
export { cpuIsa, cudaStatus, nativeAddonPath } from './native.js';
export type { CpuFeatures, CpuIsa, CpuIsaLevel, CudaStatus } from './native.js';
// training
export { Trainer, TrainingDivergedError, TrainerOptionError } from './train/trainer.js';
export type { TrainerOptions, TrainerContext, StepInfo, FitOptions, FitResult } from './train/trainer.js';
export type { OptionNamer, ResolvedOptions as ResolvedTrainerOptions } from './train/options.js';
export type { ScheduleName } from './train/schedule.js';
export { saveModel } from './train/checkpoint.js';
export type { SaveModelOptions, TokenizerFiles } from './train/checkpoint.js';
export { PairData, sampleGroup } from './data/pairs.js';
export type { PairDataOptions, DataStats, RowSource, TrainGroup, TrainRow } from './data/pairs.js';
export { readJsonl, readPairRows, LineError } from './data/jsonl.js';
export type { PairRow, JsonLine, LineReadOptions } from './data/jsonl.js';
export { combineFiles } from './data/combine.js';
export type { CombineOptions, CombineResult, FileCount } from './data/combine.js';
// evaluation and mining
export { knn, similarity } from './eval/knn.js';
export type { KnnMatch, KnnMetric, KnnOptions, KnnResult } from './eval/knn.js';
export { computeMetrics, readTestSet, buildTestSet } from './eval/metrics.js';
export type { Metrics, TestRow, TestSet } from './eval/metrics.js';
export { minePairs } from './mine/mine.js';
export type { MineOptions, MineStats } from './mine/mine.js';
export type { VectorStore } from './mine/store.js';
export { readCorpus } from './mine/corpus.js';
export type { Corpus, CorpusFormat } from './mine/corpus.js';
// hub
export { snapshotDownload } from './hub/download.js';
export type { SnapshotOptions, SnapshotResult } from './hub/download.js';
export type { RepoType } from './hub/cache.js';
export { resolveModel } from './hub/resolve.js';
export type { ResolveOptions } from './hub/resolve.js';
export { HubError } from './hub/http.js';
export type { RetryPolicy } from './hub/http.js';
export { Rng } from './util/random.js';
// serving
export { serve } from './server/server.js';
export type { ServeOptions, ServerHandle } from './server/server.js';
export { CorpusVectorsError } from './server/corpus.js';
