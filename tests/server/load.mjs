// A load driver for llm8 serve, with Node's own fetch (no npm package): C concurrent clients, each
// sending R requests (or requests until a duration is over), mixed chat/completion and
// streaming/non-streaming, all greedy with fixed lengths so that every answer can be checked
// against the same request answered alone (computed first, one at a time). Every Kth request of a
// client is a stream the client cuts after its first text (a deliberate disconnection, not a
// failure). With --pid, samples the server's VmRSS and open file descriptors.
//
//   node load.mjs --port P [--clients 16] [--requests 10 | --duration S] [--cut-every 4]
//                 [--max-tokens 48] [--pid PID] [--sample S] [--timeout S] [--only-reference]
//                 [--fill N]
//
// --fill N first sends N requests at once that are longer than any of the mix, so that each of
// N slots has written its KV cache further than the mix ever will: memory that is only touched
// the first time a slot reaches a position then does not count as growth in later readings.
//
// Prints one JSON summary on stdout; exit status 0 when no request failed and no answer differed.
import { readFileSync, readdirSync } from 'node:fs';

const args = { port: 0, clients: 16, requests: 10, duration: 0, 'cut-every': 4, 'max-tokens': 48, pid: 0,
               sample: 10, timeout: 120, 'only-reference': false, key: '', fill: 0 };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) { console.error(`load.mjs: unknown option ${process.argv[i]}`); process.exit(2); }
  if (typeof args[k] === 'boolean') args[k] = true;
  else args[k] = typeof args[k] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}
const base = `http://127.0.0.1:${args.port}`;
const headers = { 'Content-Type': 'application/json' };
if (args.key) headers.Authorization = `Bearer ${args.key}`;

const prompts = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park', 'One day, a cat',
                 'Tom had a red ball',
                 // a long one: prefilled in several chunks while the other slots decode
                 'The sun was hot and the children played in the garden all day long. '.repeat(5) + 'Then'];
// request number n of the mix: which endpoint, streamed or not, which prompt and length
function spec(n) {
  const chat = n % 2 === 0, stream = n % 4 < 2, prompt = prompts[Math.floor(n / 2) % prompts.length];
  const max_tokens = args['max-tokens'] - (n % 3) * 8;
  const body = chat ? { messages: [{ role: 'user', content: prompt }] } : { prompt };
  Object.assign(body, { max_tokens, temperature: 0 });
  if (stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
  return { key: `${chat ? 'chat' : 'completion'}|${prompt}|${max_tokens}`, chat, stream, body,
           path: chat ? '/v1/chat/completions' : '/v1/completions' };
}

// one request; returns {text, finish, usage} or throws with what was wrong. cut: abort after the
// first text of a stream.
async function run(s, cut = false) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new Error(`no answer in ${args.timeout} s`)), args.timeout * 1000);
  try {
    const r = await fetch(base + s.path, { method: 'POST', headers, body: JSON.stringify(s.body), signal: ctl.signal });
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`);
    if (!s.stream) {
      const j = await r.json();
      const c = j.choices[0];
      const text = s.chat ? c.message.content : c.text;
      if (typeof text !== 'string') throw new Error(`no text: ${JSON.stringify(j).slice(0, 200)}`);
      if (!['stop', 'length'].includes(c.finish_reason)) throw new Error(`finish_reason ${c.finish_reason}`);
      if (j.usage.completion_tokens > s.body.max_tokens) throw new Error(`usage ${JSON.stringify(j.usage)}`);
      return { text, finish: c.finish_reason, tokens: j.usage.completion_tokens };
    }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = '', text = '', finish = null, usage = null, done = false;
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += dec.decode(value, { stream: true });
      let cut_at;
      while ((cut_at = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, cut_at);
        buf = buf.slice(cut_at + 2);
        if (ev.startsWith(':')) continue;
        if (!ev.startsWith('data: ')) throw new Error(`not an SSE data line: ${ev.slice(0, 100)}`);
        const data = ev.slice(6);
        if (data === '[DONE]') { done = true; continue; }
        if (done) throw new Error('data after [DONE]');
        const o = JSON.parse(data);
        if (o.error) throw new Error(`error event: ${JSON.stringify(o.error)}`);
        if (o.usage) usage = o.usage;
        for (const c of o.choices) {
          text += (s.chat ? c.delta.content : c.text) || '';
          if (c.finish_reason) finish = c.finish_reason;
        }
        if (cut && text) { ctl.abort(); return { cut: true }; }
      }
    }
    if (!done) throw new Error('the stream ended without [DONE]');
    if (!['stop', 'length'].includes(finish)) throw new Error(`finish_reason ${finish}`);
    if (!usage || usage.completion_tokens > s.body.max_tokens) throw new Error(`usage ${JSON.stringify(usage)}`);
    return { text, finish, tokens: usage.completion_tokens };
  } catch (e) {
    if (cut && ctl.signal.aborted && !(ctl.signal.reason instanceof Error)) return { cut: true };
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

function sample() {
  if (!args.pid) return null;
  try {
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${args.pid}/status`, 'utf8'))[1]);
    return { t: Math.round((Date.now() - t0) / 1000), rss_kb: rss, fds: readdirSync(`/proc/${args.pid}/fd`).length };
  } catch { return null; }
}

const t0 = Date.now();
const summary = { requests: 0, ok: 0, failed: 0, cut: 0, mismatches: 0, tokens: 0, errors: [], samples: [] };
if (args.fill) {
  const longest = prompts[prompts.length - 1];
  const fill = { key: 'fill', chat: false, stream: false, path: '/v1/completions',
                 body: { prompt: `User: ${longest}\nAssistant:`, max_tokens: args['max-tokens'] + 16, temperature: 0, ignore_eos: true } };
  try { await Promise.all(Array.from({ length: args.fill }, () => run(fill))); }
  catch (e) { summary.failed++; summary.errors.push(`fill: ${e.message}`); }
}
// the reference: every distinct request of the mix, alone, one after another
const reference = new Map();
for (let n = 0; n < 12; n++) {
  const s = spec(n);
  if (reference.has(s.key)) continue;
  try { reference.set(s.key, (await run(s)).text); }
  catch (e) { summary.failed++; summary.errors.push(`reference ${s.key}: ${e.message}`); }
}
summary.distinct = reference.size;
if (args['only-reference'] || summary.failed) {
  console.log(JSON.stringify(summary));
  process.exit(summary.failed ? 1 : 0);
}

const deadline = args.duration ? t0 + args.duration * 1000 : Infinity;
let sampler = null;
if (args.pid) {
  summary.samples.push(sample());
  sampler = setInterval(() => { const s = sample(); if (s) summary.samples.push(s); }, args.sample * 1000);
}
async function client(c) {
  for (let k = 0; args.duration ? Date.now() < deadline : k < args.requests; k++) {
    const n = c * 7 + k;
    const s = spec(n);
    const cut = args['cut-every'] > 0 && s.stream && (k + c) % args['cut-every'] === 0;
    summary.requests++;
    try {
      const r = await run(s, cut);
      if (r.cut) { summary.cut++; continue; }
      summary.ok++;
      summary.tokens += r.tokens;
      if (r.text !== reference.get(s.key)) {
        summary.mismatches++;
        if (summary.errors.length < 10)
          summary.errors.push(`${s.key}${s.stream ? ' streamed' : ''}: ${JSON.stringify(r.text)} != alone ${JSON.stringify(reference.get(s.key))}`);
      }
    } catch (e) {
      summary.failed++;
      if (summary.errors.length < 10) summary.errors.push(`${s.key}${s.stream ? ' streamed' : ''}: ${e.message}`);
    }
  }
}
await Promise.all(Array.from({ length: args.clients }, (_, c) => client(c)));
if (sampler) { clearInterval(sampler); const s = sample(); if (s) summary.samples.push(s); }
summary.seconds = (Date.now() - t0) / 1000;
console.log(JSON.stringify(summary));
process.exit(summary.failed || summary.mismatches ? 1 : 0);
