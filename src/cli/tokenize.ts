// `l2e tokenize`: token ids of lines read on stdin, one JSON array per line.
import { LineError, readLines } from '../data/jsonl.js';
import { resolveModel } from '../hub/resolve.js';
import { TextTokenizer } from '../model/tokenizer.js';
import { TextError } from '../model/text-error.js';
import { DEFAULT_MAX_LENGTH } from '../model/embedding-model.js';
import { opt } from './args.js';
import type { Command } from './command.js';
import { positiveInt } from './source-options.js';
import { openOutput, refuseInputOnStdout, STDIO } from '../util/output.js';

export const command: Command = {
  name: 'tokenize',
  summary: 'token ids of stdin lines (BOS prepended, truncated)',
  usage: `Usage: l2e tokenize --model DIR [--max-length N] < texts.txt

Reads one text per line on stdin, as encode reads a .txt (a leading UTF-8 BOM dropped; LF or CRLF
ends a line) and writes one JSON array of token ids per line: the ids the model sees (BOS
prepended, no EOS unless tokenizer_config.json asks, truncated at --max-length). The model is a
folder or a Hugging Face id (org/name), as for encode.`,
  options: {
    model: { kind: 'string', help: 'model folder holding tokenizer.json, or hub id', metavar: 'DIR', required: true },
    'max-length': { kind: 'integer', help: 'truncation in tokens, BOS included', default: DEFAULT_MAX_LENGTH },
  },
  async run(args) {
    const maxLength = positiveInt(args, 'max-length')!;
    refuseInputOnStdout('stdout', [{ name: 'stdin', path: STDIO }]); // `< f >> f` would read its own output back
    const tok = TextTokenizer.fromDir(await resolveModel(opt.str(args, 'model')!));
    const out = openOutput(STDIO); // a closed pipe ends quietly (141), a full disk is an error
    for await (const { line, text } of readLines('-')) {
      let ids: Int32Array;
      try {
        ids = tok.encode(text, maxLength);
      } catch (err) {
        throw err instanceof TextError ? new LineError('stdin', line, err.reason) : err;
      }
      await out.write(JSON.stringify(Array.from(ids)) + '\n');
    }
    await out.commit();
    return 0;
  },
};
