// TextTokenizer against the shared fixture's reference ids (made with Hugging Face tokenizers), plus
// the framing rules (BOS/EOS from tokenizer_config.json, truncation counting them) and hostile texts.
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextTokenizer, toWellFormed } from '../src/model/tokenizer.js';
import { TextError } from '../src/model/text-error.js';
import { createPrefixCutter } from '../src/model/tokenizer-prefix.js';
import { hasTinyMha, readCase, skipNote, tinyMha } from './helpers/fixture.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'l2e-tok-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A folder holding the fixture's tokenizer.json and, when given, a tokenizer_config.json. */
function fixtureWithConfig(config?: Record<string, unknown>): string {
  const dir = tempDir();
  copyFileSync(join(tinyMha, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  if (config) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

const list = (ids: Int32Array): number[] => Array.from(ids);

describe('TextTokenizer errors (no fixture needed)', () => {
  it('names the missing tokenizer.json', () => {
    const dir = tempDir();
    expect(() => TextTokenizer.fromDir(dir)).toThrow(`tokenizer: ${dir} has no tokenizer.json (a model folder holds config.json, the weights and tokenizer.json)`);
    const spm = tempDir();
    writeFileSync(join(spm, 'tokenizer.model'), 'x');
    expect(() => TextTokenizer.fromDir(spm)).toThrow(
      `tokenizer: ${spm} has no tokenizer.json, only a SentencePiece tokenizer.model, which is not read: make tokenizer.json ` +
        'with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir))',
    );
    mkdirSync(join(dir, 'tokenizer.json'));
    expect(() => TextTokenizer.fromDir(dir)).toThrow(`${join(dir, 'tokenizer.json')}: it is a folder, not a file`);
    // a link whose target is gone was said as no tokenizer.json at all
    const linked = tempDir();
    symlinkSync('/nonexistent/tokenizer.json', join(linked, 'tokenizer.json'));
    expect(() => TextTokenizer.fromDir(linked)).toThrow(
      `tokenizer: ${join(linked, 'tokenizer.json')} is a link to /nonexistent/tokenizer.json, which does not exist (a model folder holds config.json, the weights and tokenizer.json)`,
    );
  });

  it('names a tokenizer.json that is not JSON', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    expect(() => TextTokenizer.fromDir(dir)).toThrow(/tokenizer\.json is not valid JSON/);
  });

  // what @huggingface/tokenizers meets with errors of its internals ("x.split is not a function"), or
  // loads and then makes ids outside the vocabulary: named, with the file, before it reads them
  it('names a tokenizer.json whose structure is wrong: the part at fault and the file', () => {
    const dir = tempDir();
    const file = join(dir, 'tokenizer.json');
    const bpe = (model: Record<string, unknown>, rest: Record<string, unknown> = {}) => ({
      ...rest,
      model: { type: 'BPE', unk_token: '<unk>', vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, a: 3, b: 4, ab: 5 }, merges: ['a b'], ...model },
    });
    const cases: [unknown, string][] = [
      [bpe({ merges: [1, 2, 3] }), 'model.merges[0] must be an "a b" string or an [a, b] pair, got 1'],
      [bpe({ merges: [['a', 'b'], 'a b'] }), 'model.merges[1] is an "a b" string but model.merges[0] is an [a, b] pair: the list must hold one form'],
      [bpe({ merges: ['a b', ['a', 'b']] }), 'model.merges[1] is an [a, b] pair but model.merges[0] is an "a b" string: the list must hold one form'],
      [bpe({ merges: null }), 'model.merges must be a list of "a b" strings or [a, b] pairs, got null'],
      [bpe({ vocab: undefined }), 'model.vocab must be an object of token → id (a BPE model), got undefined'],
      [bpe({ vocab: [1, 2, 3] }), 'model.vocab must be an object of token → id (a BPE model), got [1,2,3]'],
      [bpe({ vocab: { '<unk>': '0', a: 1 } }), 'model.vocab["<unk>"] must be an id (a whole number ≥ 0), got "0"'],
      [bpe({ vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, a: 3, b: 4, ab: 2 ** 31 - 1 } }), 'model.vocab["ab"] has id 2147483647, far beyond the 6 tokens the file numbers (ids past 267 are refused: a damaged file?)'],
      [bpe({}, { added_tokens: { id: 0, content: '<unk>' } }), 'added_tokens must be a list, got {"id":0,"content":"<unk>"}'],
      [bpe({}, { added_tokens: [{ content: '<unk>' }] }), 'added_tokens[0] must be {"id": <whole number ≥ 0>, "content": <string>, ...}, got {"content":"<unk>"}'],
      [{ model: { type: 'Unigram', vocab: { a: 1 } } }, 'model.vocab must be a list of [piece, score] (a Unigram model), got {"a":1}'],
      [{ version: '1.0' }, 'has no "model" object'],
    ];
    for (const [json, why] of cases) {
      writeFileSync(file, JSON.stringify(json));
      expect(() => TextTokenizer.fromDir(dir), why).toThrow(`tokenizer: ${file}: ${why}`);
    }
    // real shapes that must load: a Unigram vocab numbers its pieces by position, and added tokens may
    // come after it (XLM-R's <mask> after 250k pieces; T5's <extra_id_*>)
    const pieces = Array.from({ length: 1000 }, (_, i): [string, number] => [i < 3 ? ['<unk>', '<s>', '</s>'][i]! : `▁p${i}`, -i]);
    writeFileSync(file, JSON.stringify({ model: { type: 'Unigram', unk_id: 0, vocab: pieces }, added_tokens: [{ id: 0, content: '<unk>' }, { id: 1000, content: '<mask>' }] }));
    expect(TextTokenizer.fromDir(dir).vocabSize).toBe(1001);
    // what only the library knows (its component types, its regular expressions) is its message, with the file
    writeFileSync(file, JSON.stringify(bpe({}, { decoder: { type: 'Nope' } })));
    expect(() => TextTokenizer.fromDir(dir)).toThrow(`tokenizer: ${file} cannot be loaded: Unknown Decoder type: Nope`);
  });

  it('replaces lone surrogates and keeps pairs', () => {
    expect(toWellFormed('a\uD800b')).toBe('a\uFFFDb');
    expect(toWellFormed('\uDC00x\uD83D')).toBe('\uFFFDx\uFFFD');
    expect(toWellFormed('ok 😀')).toBe('ok 😀');
  });
});

describe.skipIf(!hasTinyMha)(`TextTokenizer on tiny-mha ${hasTinyMha ? '' : skipNote('fixtures/tiny-mha')}`, () => {
  const c = hasTinyMha ? readCase(tinyMha) : null;
  const tok = hasTinyMha ? TextTokenizer.fromDir(tinyMha) : null;

  it('reports the special ids and vocabulary', () => {
    expect(tok!.vocabSize).toBe(2000);
    expect([tok!.unkId, tok!.bosId, tok!.eosId, tok!.padId]).toEqual([0, 1, 2, 0]);
    expect([tok!.addBos, tok!.addEos]).toEqual([true, false]);
  });

  it('queries and passages give q_ids / p_ids at max_len', () => {
    expect(c!.queries.map((q) => list(tok!.encode(q, c!.max_len)))).toEqual(c!.q_ids);
    expect(c!.passages.map((p) => list(tok!.encode(p, c!.max_len)))).toEqual(c!.p_ids);
    expect(tok!.encodeBatch(c!.passages, c!.max_len).map(list)).toEqual(c!.p_ids);
  });

  it('all tokenizer_cases match exactly (they were made untruncated: longest 193 ids)', () => {
    const cases = c!.tokenizer_cases;
    expect(cases.length).toBe(200);
    for (const { text, ids } of cases) expect(list(tok!.encode(text, Infinity)), text).toEqual(ids);
    // the same at the recipe's maxLength 8192, which none of them reaches
    expect(cases.map((x) => list(tok!.encode(x.text, 8192)))).toEqual(cases.map((x) => x.ids));
  });

  it('never adds a second BOS although the file post-processor adds <s>', () => {
    for (const { text } of c!.tokenizer_cases.slice(0, 50)) {
      const ids = tok!.encode(text, 512);
      expect(ids[0]).toBe(1);
      expect(ids[1]).not.toBe(1);
    }
  });

  it('truncation counts BOS (and EOS when added)', () => {
    const long = c!.tokenizer_cases.reduce((a, b) => (b.ids.length > a.ids.length ? b : a));
    for (const n of [1, 2, 5, 64]) {
      expect(list(tok!.encode(long.text, n))).toEqual(long.ids.slice(0, n));
    }
    const withEos = TextTokenizer.fromDir(fixtureWithConfig({ add_eos_token: true }));
    expect(list(withEos.encode(long.text, 5))).toEqual([...long.ids.slice(0, 4), 2]);
    expect(() => withEos.encode(long.text, 1)).toThrow('tokenizer: maxLength must be an integer >= 2 or Infinity, got 1');
    expect(() => tok!.encode(long.text, 0)).toThrow('tokenizer: maxLength must be an integer >= 1 or Infinity, got 0');
    expect(() => tok!.encode(long.text, 3.5)).toThrow('tokenizer: maxLength must be an integer >= 1 or Infinity, got 3.5');
  });

  it('honours add_bos_token / add_eos_token from tokenizer_config.json', () => {
    const text = c!.tokenizer_cases[0].text;
    const body = c!.tokenizer_cases[0].ids.slice(1);
    const noBos = TextTokenizer.fromDir(fixtureWithConfig({ add_bos_token: false }));
    expect(list(noBos.encode(text, 512))).toEqual(body);
    const both = TextTokenizer.fromDir(fixtureWithConfig({ add_bos_token: true, add_eos_token: true }));
    expect(list(both.encode(text, 512))).toEqual([1, ...body, 2]);
    const eosOnly = TextTokenizer.fromDir(fixtureWithConfig({ add_bos_token: false, add_eos_token: true }));
    expect(list(eosOnly.encode(text, 512))).toEqual([...body, 2]);
    // AddedToken-object form of token names, and pad_token picked up
    const named = TextTokenizer.fromDir(
      fixtureWithConfig({ bos_token: { content: '<s>' }, eos_token: '</s>', pad_token: '</s>' }),
    );
    expect([named.bosId, named.eosId, named.padId]).toEqual([1, 2, 2]);
    // an invalid tokenizer_config.json is named
    const bad = fixtureWithConfig();
    writeFileSync(join(bad, 'tokenizer_config.json'), 'nope');
    expect(() => TextTokenizer.fromDir(bad)).toThrow(/tokenizer_config\.json is not valid JSON/);
  });

  it('handles empty, whitespace-only and lone-surrogate texts', () => {
    expect(list(tok!.encode('', 64))).toEqual([1]);
    const spaces = list(tok!.encode('   ', 64));
    expect(spaces[0]).toBe(1);
    expect(spaces.length).toBeGreaterThan(1);
    expect(list(tok!.encode('\t\n', 64)).length).toBeGreaterThan(1);
    const lone = list(tok!.encode('a\uD800b\uDC00', 64));
    expect(lone).toEqual(list(tok!.encode('a\uFFFDb\uFFFD', 64)));
    expect(tok!.encodeBatch(['', ' ', '\uD83D'], 8).every((ids) => ids[0] === 1)).toBe(true);
  });

  it('decodes back to the text', () => {
    const text = c!.tokenizer_cases[0].text;
    expect(tok!.decode(tok!.encode(text, 512))).toBe(text);
    expect(tok!.decode([])).toBe('');
  });

  it('cuts 1 MB texts before encoding without changing the kept ids', () => {
    const words = c!.tokenizer_cases.map((x) => x.text).join(' ');
    const big = words.repeat(Math.ceil((1 << 20) / words.length));
    expect(big.length).toBeGreaterThanOrEqual(1 << 20);
    const reference = list(tok!.encode(big.slice(0, 40_000), Infinity));
    for (const n of [64, 512, 2048]) expect(list(tok!.encode(big, n))).toEqual(reference.slice(0, n));
    // the cut really happens for this file: right after a word, before the next "▁"
    const json = JSON.parse(readFileSync(join(tinyMha, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const cutter = createPrefixCutter(json)!;
    expect(cutter).not.toBeNull();
    const cut = cutter.findCut('abc def', 1);
    expect(cut).toBeGreaterThan(0);
    expect(cut).toBeLessThanOrEqual(3);
    expect(cutter.findCut('a', 1)).toBe(-1);
    // a text with no space at all: cuts fall between characters no merge joins, or nowhere
    const glued = c!.tokenizer_cases.map((x) => x.text.replace(/\s+/g, '')).join('').repeat(4);
    expect(list(tok!.encode(glued, 64))).toEqual(list(tok!.encode(glued, Infinity)).slice(0, 64));
  });

  it('refuses a run of more than 2^16 characters with no safe cut (8M dashes ran Node out of memory, 1M held the event loop 18 s), naming where it starts', async () => {
    const reason =
      'more than 65536 characters in a row from character 5 on (" -----------------------"...) have no point between them ' +
      'where the text can be cut (as in one character repeated), and such a run is tokenised as one piece (slow, and out of ' +
      'memory past a few million): split or shorten the text';
    const text = 'hello ' + '-'.repeat((1 << 16) + 1);
    for (const limit of [64, Infinity]) expect(() => tok!.encode(text, limit)).toThrow(`tokenizer: ${reason}`);
    expect(() => tok!.encode(text, 64)).toThrow(TextError);
    // when the ids kept end before the run, a cut before it serves (it was refused too)
    const head = 'hello world apa khabar ';
    const longRun = head + 'a'.repeat((1 << 16) + 10);
    const want = list(tok!.encode(head, Infinity));
    expect(want.length).toBeGreaterThan(4);
    expect(list(tok!.encode(longRun, 4))).toEqual(want.slice(0, 4));
    expect(() => tok!.encode(longRun, want.length + 1)).toThrow(/more than 65536 characters in a row from character/);
    // in a list: the error names the text
    expect(() => tok!.encodeBatch(['hello', text], 64)).toThrow(`tokenizer: texts[1]: ${reason}`);
    await expect(tok!.encodeBatchAsync(['hello', text], 64)).rejects.toMatchObject({ index: 1, reason });
    // the search for a cut stops at `to`
    const json = JSON.parse(readFileSync(join(tinyMha, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const cutter = createPrefixCutter(json)!;
    const cut = cutter.findCut('abc def', 1);
    expect(cutter.findCut('abc def', 1, cut)).toBe(-1);
    expect(cutter.findCut('abc def', 1, cut + 1)).toBe(cut);
  });
});
