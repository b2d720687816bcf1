// The search page's script: plain browser JavaScript, no build step, no network beyond this server.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let apiKey = sessionStorage.getItem('l2e-api-key') || '';

  async function call(method, path, body) {
    const headers = { 'content-type': 'application/json' };
    if (apiKey) headers.authorization = 'Bearer ' + apiKey;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => null);
    if (res.status === 401) $('key-row').hidden = false;
    if (!res.ok) throw new Error((data && data.error && data.error.message) || res.status + ' ' + res.statusText);
    return data;
  }

  function show(el, text, isError) {
    el.textContent = text;
    el.className = isError ? 'error' : '';
  }

  async function refreshInfo() {
    try {
      const info = await call('GET', '/info');
      const c = info.corpus;
      const corpus = !c ? 'no corpus (start with --corpus FILE)'
        : c.error ? 'corpus failed: ' + c.error
        : c.ready ? c.texts + ' texts in the corpus'
        : 'embedding the corpus: ' + c.embedded + ' of ' + c.texts;
      show($('status'), info.model + ' · ' + info.dim + ' dims · ' + info.device + ' · ' + corpus, false);
      if (c && !c.ready && !c.error) setTimeout(refreshInfo, 1000);
    } catch (err) {
      show($('status'), err.message, true);
      if (/loading/.test(err.message)) setTimeout(refreshInfo, 1000);
    }
  }

  $('search-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const list = $('results');
    list.replaceChildren();
    const query = $('query').value;
    if (query.trim() === '') return show($('search-msg'), 'type a text first', true);
    show($('search-msg'), 'searching…', false);
    try {
      const r = await call('POST', '/search', { query, k: Number($('k').value) || 10 });
      for (const hit of r.results) {
        const li = document.createElement('li');
        const score = document.createElement('span');
        score.className = 'score';
        score.textContent = hit.score.toFixed(4);
        const text = document.createElement('span');
        text.className = 'text';
        text.textContent = hit.text;
        li.append(score, text);
        list.append(li);
      }
      show($('search-msg'), r.results.length + ' nearest texts (cosine)', false);
    } catch (err) {
      show($('search-msg'), err.message, true);
    }
  });

  $('sim-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const a = $('text-a').value;
    const b = $('text-b').value;
    if (a.trim() === '' || b.trim() === '') return show($('sim-result'), 'fill in both texts', true);
    try {
      // cut at the server's --max-length, as the search's query is (a long text got "send truncate: true",
      // which the page's user cannot do)
      const [score] = await call('POST', '/similarity', { inputs: { source_sentence: a, sentences: [b] }, truncate: true });
      show($('sim-result'), 'cosine similarity: ' + score.toFixed(4), false);
    } catch (err) {
      show($('sim-result'), err.message, true);
    }
  });

  $('key-save').addEventListener('click', () => {
    apiKey = $('apikey').value;
    sessionStorage.setItem('l2e-api-key', apiKey);
    $('key-row').hidden = true;
    refreshInfo();
  });

  refreshInfo();
})();
