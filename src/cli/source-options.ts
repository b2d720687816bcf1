// Options shared by the commands that embed texts (encode, eval, mine), so their names, defaults and
// help read the same everywhere, and the checks that turn bad values into usage errors.
import { isNpyFile } from '../eval/vectors.js';
import { DEFAULT_MAX_LENGTH, PRECISIONS, type Device, type Precision } from '../model/embedding-model.js';
import { openEmbeddingSource, type EmbeddingSource } from '../eval/source.js';
import { opt, UsageError, type OptionSpecs, type ParsedArgs } from './args.js';

/** Where vectors come from: a model, or a table of precomputed embeddings. */
export const SOURCE_OPTIONS: OptionSpecs = {
  model: { kind: 'string', help: 'model folder or hub id', metavar: 'DIR' },
  embeddings: { kind: 'string', help: 'precomputed vectors: .jsonl or .npy', metavar: 'FILE' },
  texts: { kind: 'string', help: 'texts of the .npy rows', metavar: 'FILE' },
};

/** How a model encodes. */
export const ENCODE_OPTIONS: OptionSpecs = {
  'batch-size': { kind: 'integer', help: 'texts per packed encode batch', default: 32 },
  // no parsed default, so that the model can tell an explicit length above its positions (warned about)
  'max-length': { kind: 'integer', help: `truncation in tokens, BOS included (default ${DEFAULT_MAX_LENGTH})`, metavar: 'N' },
  device: { kind: 'string', help: 'cpu or cuda', default: 'cpu' },
  precision: { kind: 'string', help: 'CPU weights: fp32, bf16 (½ the memory) or int8 (¼), converted at load', default: 'fp32' },
};

export function precisionOf(args: ParsedArgs): Precision {
  const p = opt.str(args, 'precision');
  const found = PRECISIONS.find((x) => x === p);
  if (found === undefined) throw new UsageError(`--precision must be fp32, bf16 or int8, got ${p}`);
  if (found !== 'fp32' && deviceOf(args) === 'cuda') {
    throw new UsageError(`--precision ${found} is for --device cpu (the CUDA backend runs its weights in bf16 already)`);
  }
  return found;
}

export function deviceOf(args: ParsedArgs): Device {
  const device = opt.str(args, 'device');
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device must be cpu or cuda, got ${device}`);
  return device;
}

/** The value of a positive integer option (undefined when unset). */
export function positiveInt(args: ParsedArgs, name: string): number | undefined {
  const v = opt.num(args, name);
  if (v !== undefined && v < 1) throw new UsageError(`--${name} must be at least 1, got ${v}`);
  return v;
}

/** Opens --model or --embeddings [--texts] with the encode options. */
export function openSourceFromArgs(args: ParsedArgs): Promise<EmbeddingSource> {
  const model = opt.str(args, 'model');
  const embeddings = opt.str(args, 'embeddings');
  if ((model === undefined) === (embeddings === undefined)) throw new UsageError('give exactly one of --model DIR or --embeddings FILE');
  if (embeddings !== undefined) {
    // how a model encodes: nothing with vectors given (--precision bf16 --device cuda was refused as if a model loaded)
    const unused = Object.keys(ENCODE_OPTIONS).filter((name) => args.given.has(name));
    if (unused.length > 0) {
      throw new UsageError(`${unused.map((n) => `--${n}`).join(', ')}: for --model only; --embeddings ${embeddings} holds the vectors already`);
    }
    // (a JSONL file's rows name their texts: --texts was ignored without a word, the file not even opened)
    if (args.given.has('texts') && !isNpyFile(embeddings)) {
      throw new UsageError(`--texts: names the rows of an --embeddings .npy file; ${embeddings} is read as JSONL, whose rows hold their texts`);
    }
    return openEmbeddingSource({ embeddings, textsFile: opt.str(args, 'texts') });
  }
  if (args.given.has('texts')) throw new UsageError(`--texts: names the rows of an --embeddings .npy file; --model ${model} embeds the texts itself`);
  return openEmbeddingSource({
    model,
    embeddings,
    textsFile: opt.str(args, 'texts'),
    batchSize: positiveInt(args, 'batch-size'),
    maxLength: positiveInt(args, 'max-length'),
    device: deviceOf(args),
    precision: precisionOf(args),
  });
}
