// `l2e encode`: embeddings of a file of texts, as JSONL {"text","embedding"} or a float32 .npy.
import { EmbeddingModel, type BatchInfo, type EncodedPart, type EncodeOptions } from '../model/embedding-model.js';
import { checkOutput, isStdout, openOutput, STDIO } from '../util/output.js';
import { opt, UsageError } from './args.js';
import type { Command } from './command.js';
import { embeddingOutputFormat, EmbeddingsWriter, FORMAT_OPTION, inputFormat, readTexts, type TextInput } from './io.js';
import { atItsLine } from '../model/text-error.js';
import { checkReplaceable, checkRoom } from './encode-output.js';
import { canDraw, formatSeconds, ProgressBar } from './progress.js';
import { deviceOf, ENCODE_OPTIONS, positiveInt, precisionOf } from './source-options.js';
import { counted } from '../util/plural.js';

export const command: Command = {
  name: 'encode',
  summary: 'embed texts with a model (JSONL or .npy output)',
  usage: `Usage: l2e encode --model DIR --input FILE --output FILE [--overwrite] [--format text|jsonl] [--batch-size N] [--max-length N]

Embeds every text of FILE. Input: a .txt file holds one text per line, a .jsonl file one object per
line with a "text" field (--field to name another); --format forces either (needed for other names
and for stdin). Every line of a .txt is a text (a blank line an empty one, so row i is line i; CRLF
or LF); blank lines of a .jsonl are skipped. Output by name: .jsonl writes one line per text, the input
row's fields (e.g. "id") plus "embedding" (plain-text input: {"text", "embedding"}), each value the
shortest decimal that reads back as the same float32; .npy writes a float32 matrix, rows in input
order. Other names are refused. "-" reads stdin / writes JSONL to stdout (messages go to stderr).
An existing output file is replaced only with --overwrite, and never when it is the input.
Every text is tokenised first; rows are then written as each part of 4096 texts is embedded.
The model is a folder (config.json, *.safetensors, tokenizer.json) or a Hugging Face id (org/name).`,
  options: {
    model: { kind: 'string', help: 'model folder or hub id', metavar: 'DIR', required: true },
    input: { kind: 'string', help: 'texts: .txt (one per line) or .jsonl; - for stdin', metavar: 'FILE', required: true },
    output: { kind: 'string', help: 'output .jsonl or .npy; - for JSONL on stdout (JSONL too into a pipe or device, e.g. /dev/stdout)', metavar: 'FILE', required: true },
    overwrite: { kind: 'boolean', help: 'replace an existing --output file (never the input)' },
    format: FORMAT_OPTION,
    field: { kind: 'string', help: 'JSONL field holding the text (default text)', metavar: 'NAME' },
    ...ENCODE_OPTIONS,
  },
  async run(args) {
    const output = opt.str(args, 'output')!;
    const input = opt.str(args, 'input')!;
    // usage errors before any work
    const device = deviceOf(args);
    const precision = precisionOf(args);
    const batchSize = positiveInt(args, 'batch-size');
    const maxLength = positiveInt(args, 'max-length');
    const outFormat = embeddingOutputFormat(output);
    const format = inputFormat(input, opt.str(args, 'format'));
    const field = opt.str(args, 'field');
    if (field !== undefined && format !== 'jsonl') {
      throw new UsageError(`--field names a JSONL field, but ${input === STDIO ? 'stdin' : input} is read as ${format} (--format jsonl reads it as JSONL)`);
    }
    const overwrite = opt.bool(args, 'overwrite');
    checkOutput(output, { overwrite, inputs: [{ name: '--input', path: input }] });
    checkReplaceable(output);
    // opened before the long work: a folder that cannot take the output fails now, not after the embedding
    const w = openOutput(output, { replace: overwrite });
    let model: EmbeddingModel | undefined;
    let texts: TextInput | undefined;
    try {
      texts = await readTexts(input, { field, format });
      model = await EmbeddingModel.load(opt.str(args, 'model')!, { device, precision });
      checkRoom(output, outFormat, texts, model.dim, model.config.normalized);
      const bar = new ProgressBar({ label: 'encode', total: texts.texts.length, plainLines: true });
      // each part written as it comes: memory holds one part's embeddings, and a reader of stdout gets rows early
      const writer = new EmbeddingsWriter(w, output, outFormat, texts, model.dim);
      await encodeWithHeartbeat(model, texts.texts, { batchSize, maxLength }, bar, (part) => writer.append(part.start, part.embeddings));
      bar.finish();
      await writer.commit();
      process.stderr.write(`encoded ${counted(texts.texts.length, 'text')} (${model.dim} dims) → ${isStdout(output) ? 'stdout' : output}\n`);
      return 0;
    } catch (err) {
      w.abort();
      throw atItsLine(err, texts);
    } finally {
      model?.dispose();
    }
  },
};

export interface HeartbeatOptions {
  /** How often a running batch is reported (default 10 s). */
  intervalMs?: number;
  /** Where plain lines go when the bar is not drawn (default stderr). */
  write?: (line: string) => void;
  /** Whether the bar is drawn (a terminal): then the batch shows in the bar, else as plain lines. */
  drawn?: boolean;
}

/**
 * `model.encodeParts`, each part given to `onPart`, with a heartbeat: while one packed batch runs (a
 * single long text can take minutes), its size and elapsed time are reported every `intervalMs`, in
 * the bar on a terminal and as plain lines elsewhere, so long work never looks like a hang.
 */
export async function encodeWithHeartbeat(
  model: { encodeParts(texts: string[], options: EncodeOptions): AsyncIterable<EncodedPart> },
  texts: string[],
  options: EncodeOptions,
  bar: ProgressBar,
  onPart: (part: EncodedPart) => Promise<void>,
  hb: HeartbeatOptions = {},
): Promise<void> {
  const intervalMs = hb.intervalMs ?? 10_000;
  const write = hb.write ?? ((line: string) => process.stderr.write(line));
  const drawn = hb.drawn ?? canDraw(process.stderr);
  let current: BatchInfo | undefined;
  let started = 0;
  let done = 0;
  const describe = (b: BatchInfo): string =>
    `batch ${b.index + 1}/${b.batches} (${counted(b.texts, 'text')}, ${b.tokens} tokens) running ${formatSeconds((Date.now() - started) / 1000)}`;
  const timer = setInterval(
    () => {
      if (!current) return;
      if (drawn) bar.update(done, describe(current));
      else write(`encode: ${current.done}/${current.total} texts done, ${describe(current)}\n`);
    },
    drawn ? Math.min(intervalMs, 1000) : intervalMs,
  );
  try {
    const parts = model.encodeParts(texts, {
      ...options,
      onBatch: (b) => {
        current = b;
        started = Date.now();
      },
      onProgress: (d) => {
        done = d;
        current = undefined;
        bar.update(d);
      },
    });
    for await (const part of parts) await onPart(part);
  } finally {
    clearInterval(timer);
  }
}
