// `l2e tokenize`: token ids of lines read on stdin, one JSON array per line.
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { TextTokenizer } from '../model/tokenizer.js';
import { DEFAULT_MAX_LENGTH } from '../model/embedding-model.js';
import { opt } from './args.js';
import type { Command } from './command.js';

export const command: Command = {
  name: 'tokenize',
  summary: 'token ids of stdin lines (BOS prepended, truncated)',
  usage: `Usage: l2e tokenize --model DIR [--max-length N] < texts.txt

Reads one text per line on stdin and writes one JSON array of token ids per line: the ids the
model sees (BOS prepended, no EOS unless tokenizer_config.json asks, truncated at --max-length).`,
  options: {
    model: { kind: 'string', help: 'model folder holding tokenizer.json', metavar: 'DIR', required: true },
    'max-length': { kind: 'integer', help: 'truncation in tokens, BOS included', default: DEFAULT_MAX_LENGTH },
  },
  async run(args) {
    const tok = TextTokenizer.fromDir(resolve(opt.str(args, 'model')!));
    const maxLength = opt.num(args, 'max-length')!;
    const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of rl) {
      if (!process.stdout.write(JSON.stringify(Array.from(tok.encode(line, maxLength))) + '\n')) {
        await new Promise<void>((r) => process.stdout.once('drain', () => r()));
      }
    }
    return 0;
  },
};
