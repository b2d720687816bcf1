// The search page in a real browser: headless Chromium (the system's, driven by playwright-core)
// opens GET /, searches the --corpus and compares two texts; what it shows must be what the API gives,
// and the page must fetch nothing but this server (no CDN, works offline).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { EmbeddingModel } from '../src/model/embedding-model.js';
import { hasTokenizer, postJson, serveOn, tinyModel, type Served } from './helpers/server.js';
import { removeTempDirs } from './helpers/tinyModel.js';
import { skipNote } from './helpers/fixture.js';

const browserPath = [process.env['CHROMIUM_PATH'], '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p && existsSync(p));
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const CORPUS = [
  'saya suka makan nasi lemak',
  'cuaca hari ini sangat panas',
  'kereta itu berwarna merah',
  'dia pergi ke sekolah setiap pagi',
  'harga minyak naik lagi',
  'kucing tidur di atas meja',
];

const why = !hasTokenizer
  ? skipNote('the shared tokenizer')
  : !browserPath
    ? '(skipped: no Chromium at /usr/bin/chromium or $CHROMIUM_PATH; apt-get install chromium)'
    : '';

describe.skipIf(why !== '')(`search page in headless Chromium ${why}`, () => {
  let model: EmbeddingModel;
  let s: Served;
  let browser: Browser;

  beforeAll(async () => {
    model = await tinyModel();
    s = await serveOn(model, { corpus: CORPUS });
    await s.handle.corpusReady;
    browser = await chromium.launch({ executablePath: browserPath, headless: true, args: FLAGS });
  }, 60000);
  afterAll(async () => {
    await browser?.close();
    await s?.handle.close();
    model?.dispose();
    removeTempDirs();
  });

  it('searches the corpus and compares two texts, showing what the API gives', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const fetched: string[] = [];
    page.on('request', (r) => fetched.push(r.url()));
    // (the browser's own GET /favicon.ico was a 404 in the console: the page names an empty icon)
    const consoleErrors: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${s.url}/`);
    await page.locator('#status', { hasText: '6 texts in the corpus' }).waitFor({ timeout: 10000 });
    expect(await page.locator('#status').textContent()).toBe(`${basename(s.model.dir!)} · 16 dims · cpu · 6 texts in the corpus`);

    const query = CORPUS[3]!;
    await page.fill('#query', query);
    await page.fill('#k', '4');
    await page.click('#search-btn');
    await page.locator('#results li').nth(3).waitFor({ timeout: 10000 });
    const shown = await page.locator('#results li').evaluateAll((lis) =>
      lis.map((li) => [li.querySelector('.score')!.textContent, li.querySelector('.text')!.textContent]),
    );
    const api = await postJson<{ results: { text: string; score: number }[] }>(`${s.url}/search`, { query, k: 4 });
    expect(shown).toEqual(api.body.results.map((r) => [r.score.toFixed(4), r.text]));
    expect(shown[0]).toEqual(['1.0000', query]); // a corpus text is its own nearest neighbour
    expect(await page.locator('#search-msg').textContent()).toBe('4 nearest texts (cosine)');

    await page.fill('#text-a', CORPUS[0]!);
    await page.fill('#text-b', CORPUS[5]!);
    await page.click('#sim-btn');
    await page.locator('#sim-result', { hasText: 'cosine similarity' }).waitFor({ timeout: 10000 });
    const [score] = (await postJson<number[]>(`${s.url}/similarity`, { inputs: { source_sentence: CORPUS[0], sentences: [CORPUS[5]] } })).body;
    expect(await page.locator('#sim-result').textContent()).toBe(`cosine similarity: ${score!.toFixed(4)}`);
    // a text past the server's --max-length is cut, as the search's query is (the API said "send truncate: true")
    const long = `${CORPUS[1]} `.repeat(400);
    await page.fill('#text-a', long);
    await page.click('#sim-btn');
    const cut = (await postJson<number[]>(`${s.url}/similarity`, { inputs: { source_sentence: long, sentences: [CORPUS[5]] }, truncate: true })).body;
    await page.locator('#sim-result', { hasText: cut[0]!.toFixed(4) }).waitFor({ timeout: 10000 });
    expect(await page.locator('#sim-result').textContent()).toBe(`cosine similarity: ${cut[0]!.toFixed(4)}`);

    // an empty query is answered on the page, without a request
    await page.fill('#query', '  ');
    await page.click('#search-btn');
    expect(await page.locator('#search-msg').textContent()).toBe('type a text first');

    expect(fetched.length).toBeGreaterThan(0);
    expect(fetched.filter((u) => !u.startsWith(`${s.url}/`))).toEqual([]);
    expect(consoleErrors).toEqual([]);
    await context.close();
  }, 60000);
});
