// `l2e encode`: embeddings of a file of texts, as JSONL {"text","embedding"} or a float32 .npy.
import { AtomicWriter, writeFileAtomic } from '../util/atomic.js';
import { npyBytes } from '../util/npy.js';
import { EmbeddingModel } from '../model/embedding-model.js';
import { opt } from './args.js';
import type { Command } from './command.js';
import { readTexts } from './io.js';
import { ProgressBar } from './progress.js';
import { deviceOf, ENCODE_OPTIONS, positiveInt, precisionOf } from './source-options.js';

export const command: Command = {
  name: 'encode',
  summary: 'embed texts with a model (JSONL or .npy output)',
  usage: `Usage: l2e encode --model DIR --input FILE --output FILE [--batch-size N] [--max-length N]

Embeds every text of FILE. Input: JSONL with a "text" field, or plain text one per line.
Output: JSONL lines {"text", "embedding"}, or a float32 .npy matrix (rows in input order) when
the output name ends in .npy. The model is a folder (config.json, *.safetensors, tokenizer.json)
or a Hugging Face id (org/name) already pulled into the cache.`,
  options: {
    model: { kind: 'string', help: 'model folder or hub id', metavar: 'DIR', required: true },
    input: { kind: 'string', help: 'texts: JSONL with "text" or plain lines', metavar: 'FILE', required: true },
    output: { kind: 'string', help: 'output .jsonl or .npy', metavar: 'FILE', required: true },
    field: { kind: 'string', help: 'JSONL field holding the text', default: 'text' },
    ...ENCODE_OPTIONS,
  },
  async run(args) {
    const output = opt.str(args, 'output')!;
    // usage errors before any work
    const device = deviceOf(args);
    const precision = precisionOf(args);
    const batchSize = positiveInt(args, 'batch-size');
    const maxLength = positiveInt(args, 'max-length');
    const texts = await readTexts(opt.str(args, 'input')!, opt.str(args, 'field'));
    const model = await EmbeddingModel.load(opt.str(args, 'model')!, { device, precision });
    try {
      const bar = new ProgressBar({ label: 'encode', total: texts.length });
      const emb = await model.encode(texts, {
        batchSize,
        maxLength,
        onProgress: (done) => bar.update(done),
      });
      bar.finish();
      if (output.endsWith('.npy')) {
        writeFileAtomic(output, npyBytes(emb.data, emb.rows, emb.dim));
      } else {
        const w = new AtomicWriter(output);
        try {
          for (let i = 0; i < texts.length; i++) {
            await w.write(JSON.stringify({ text: texts[i], embedding: Array.from(emb.row(i)) }) + '\n');
          }
          await w.commit();
        } catch (err) {
          w.abort();
          throw err;
        }
      }
      process.stderr.write(`encoded ${texts.length} texts (${emb.dim} dims) → ${output}\n`);
      return 0;
    } finally {
      model.dispose();
    }
  },
};
