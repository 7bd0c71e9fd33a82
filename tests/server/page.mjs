// The chat page (GET /) in headless Chromium (Debian's chromium, driven by playwright-core): type a
// message, click Send, and the streamed answer must appear, grow, and end equal to the
// non-streamed greedy answer of the same request. Then a second turn (the page keeps the history)
// and Stop in the middle of a long answer.
//
//   node page.mjs PORT LONG_PORT   (CHROMIUM: the browser, default /usr/bin/chromium)
// PORT serves the demo model; LONG_PORT a model slow enough to stop in the middle of its answer
// (the Stop check, with ignore_eos added to the page's request on its way): the float tool-call
// model of toolcall_model.mjs, some 60 tokens/s. (A fast stream, 500 tokens/s, swamps the page's
// main thread, which then sees the click only after the answer has ended.)
import { chromium } from 'playwright-core';

const [port, longPort] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
let failed = 0;
let page = null;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   page: ${name}`);
  } catch (e) {
    failed++;
    const shown = page ? await page.evaluate(() => [...document.querySelectorAll('.msg')]
      .map(m => `${m.className}: ${m.textContent.slice(0, 80)}`).join(' / ') + ` [${document.getElementById('send').textContent}]`)
      .catch(() => '') : '';
    console.log(`FAIL page: ${name}: ${e && e.message ? e.message.split('\n').slice(0, 4).join(' | ') : e}; the page: ${shown}`);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
async function chat(messages, max_tokens) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'llm8', messages, temperature: 0, max_tokens }) });
  assert(r.status === 200, `HTTP ${r.status}`);
  return (await r.json()).choices[0].message.content;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  timeout: 60000,
});
try {
  page = await browser.newPage();
  page.setDefaultTimeout(30000);
  const errors = [];
  page.on('pageerror', e => errors.push(e.message));
  // what the page reads while the answer streams: the assistant bubble's text, sampled on change
  const seen = [];
  await page.exposeFunction('llm8Seen', t => seen.push(t));
  await check('GET / loads, shows the model name from /v1/models', async () => {
    const r = await page.goto(base + '/');
    assert(r.status() === 200, `HTTP ${r.status()}`);
    await page.waitForFunction(() => document.getElementById('model').textContent.length > 0);
  });
  const user = 'Tell me a story about a cat.';
  const want = await chat([{ role: 'user', content: user }], 40);
  await check('type a message, click Send: the streamed answer equals the non-streamed greedy answer', async () => {
    await page.fill('#temp', '0');
    await page.fill('#maxtok', '40');
    await page.evaluate(() => {
      new MutationObserver(() => {
        const a = document.querySelectorAll('.msg.assistant');
        if (a.length) window.llm8Seen(a[a.length - 1].textContent);
      }).observe(document.getElementById('log'), { childList: true, subtree: true, characterData: true });
    });
    let sent = null, type = null;
    page.once('request', r => { if (r.url().endsWith('/v1/chat/completions')) sent = JSON.parse(r.postData()); });
    page.once('response', r => { if (r.url().endsWith('/v1/chat/completions')) type = r.headers()['content-type']; });
    await page.fill('#prompt', user);
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('send').textContent === 'Send' &&
                                     document.getElementById('status').textContent.includes('tokens'));
    const users = await page.$$eval('.msg.user', els => els.map(e => e.textContent));
    const got = await page.$$eval('.msg.assistant', els => els.map(e => e.textContent));
    assert(JSON.stringify(users) === JSON.stringify([user]), `user bubbles ${JSON.stringify(users)}`);
    assert(got.length === 1 && got[0] === want, `page ${JSON.stringify(got)} vs API ${JSON.stringify(want)}`);
    assert((await page.$$('.msg.error')).length === 0, 'an error bubble');
    const distinct = [...new Set(seen.filter(t => t.length > 0))];
    assert(distinct.length >= 1 && distinct.every(t => want.startsWith(t)),
           `the answer did not grow in pieces that prefix it: ${JSON.stringify(distinct.slice(0, 5))}`);
    assert(sent?.stream === true && sent.messages.at(-1).content === user && sent.temperature === 0 && sent.max_tokens === 40,
           `the page sent ${JSON.stringify(sent)}`);
    assert(/^text\/event-stream/.test(type), `the answer came as ${type}`);
    console.log(`     (the answer was seen in ${distinct.length} states as it streamed)`);
  });
  await check('a second turn sends the history: equals the API answer to the whole conversation', async () => {
    const second = 'What happened next?';
    const want2 = await chat([{ role: 'user', content: user }, { role: 'assistant', content: want },
                              { role: 'user', content: second }], 40);
    await page.fill('#prompt', second);
    await page.press('#prompt', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 2 &&
                                     document.getElementById('send').textContent === 'Send');
    const got = await page.$$eval('.msg.assistant', els => els.map(e => e.textContent));
    assert(got[1] === want2, `page ${JSON.stringify(got[1])} vs API ${JSON.stringify(want2)}`);
  });
  await check('Stop in the middle of a long answer: the page says stopped, the server frees the slot', async () => {
    await page.goto(`http://127.0.0.1:${longPort}/`);
    await page.route('**/v1/chat/completions', route =>
      route.continue({ postData: JSON.stringify({ ...JSON.parse(route.request().postData()), ignore_eos: true }) }));
    await page.fill('#prompt', 'Once upon a time');
    await page.click('#send');
    await page.waitForFunction(() => {
      const a = document.querySelectorAll('.msg.assistant');
      return a.length === 1 && a[0].textContent.length > 0;
    });
    // the Send button is Stop while an answer streams (force: no waiting for the page to be still,
    // which it is not while text streams in)
    await page.click('#send', { force: true });
    await page.waitForFunction(() => document.querySelector('.msg.system')?.textContent === '(stopped)' &&
                                     document.getElementById('send').textContent === 'Send');
    let busy = '';
    for (let i = 0; i < 50; i++) {
      busy = (await (await fetch(`http://127.0.0.1:${longPort}/metrics`)).text()).match(/^llm8_slots_busy (\d+)$/m)?.[1];
      if (busy === '0') break;
      await new Promise(r => setTimeout(r, 100));
    }
    assert(busy === '0', `slots busy ${busy}`);
  });
  await check('no JavaScript error on the page', async () => assert(errors.length === 0, errors.join('; ')));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
