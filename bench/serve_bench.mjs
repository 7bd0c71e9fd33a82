#!/usr/bin/env node
// Aggregate decode throughput of llm8 serve at 1, 2, 4 and 8 concurrent streams (continuous
// batching): every stream a greedy completion with ignore_eos and the same max_tokens, so all
// decode the same length; started together. Node 20's fetch, no npm package.
//
//   node bench/serve_bench.mjs -m MODEL [--bin build/llm8] [-t 2] [--parallel 8] [-n 128]
//                              [--streams 1,2,4,8] [--repeat 3] [--port PORT (a running server)]
//
// Per stream, decode tok/s = (tokens - 1) / (time of its last chunk - time of its first), the
// first token being the prefill's; the aggregate is the sum over the streams that ran together.
// Also the wall-clock figure (all tokens / time from the requests to the last byte, prefill
// included) and the mean time to first token. Repeats each point (in rounds over the levels) and
// reports medians, and the machine's load average before and after.
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';

const a = { m: '', bin: 'build/llm8', t: 2, parallel: 8, n: 128, streams: '1,2,4,8', repeat: 3, port: 0,
            prompt: 'The history of the city begins' };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^-+/, '');
  if (!(k in a)) { console.error(`serve_bench: unknown option ${process.argv[i]}`); process.exit(2); }
  a[k] = typeof a[k] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}
const levels = a.streams.split(',').map(Number);

let server = null, port = a.port;
if (!port) {
  if (!a.m) { console.error('serve_bench: -m MODEL (or --port of a running server)'); process.exit(2); }
  server = spawn(a.bin, ['serve', '-m', a.m, '--port', '0', '--parallel', String(a.parallel), '-t', String(a.t), '--quiet'],
                 { stdio: ['ignore', 'ignore', 'pipe'] });
  port = await new Promise((res, rej) => {
    let log = '';
    server.stderr.on('data', d => {
      log += d;
      const m = /listening on http:\/\/\S+:(\d+)/.exec(log);
      if (m) res(Number(m[1]));
    });
    server.on('exit', c => rej(new Error(`the server exited (${c}): ${log}`)));
  });
  const kill = () => { try { server.kill('SIGTERM'); } catch {} };
  process.on('exit', kill);
  process.on('SIGINT', () => process.exit(130));
}
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 1200; i++) { // loading a large model takes a while
  try { if ((await fetch(`${base}/health`)).status === 200) break; } catch {}
  await new Promise(r => setTimeout(r, 100));
}

async function stream(id) {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: `${a.prompt} ${id}`, max_tokens: a.n, temperature: 0, ignore_eos: true, stream: true,
                           stream_options: { include_usage: true } }) });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = '', first = 0, last = 0, tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const o = JSON.parse(ev.slice(6));
      if (o.error) throw new Error(JSON.stringify(o.error));
      if (o.usage) tokens = o.usage.completion_tokens;
      if (o.choices?.[0]?.text) { const now = performance.now(); if (!first) first = now; last = now; }
    }
  }
  if (tokens !== a.n) throw new Error(`a stream made ${tokens} tokens, not ${a.n}`);
  return { t0, first, last, tokens };
}

async function point(k) {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: k }, (_, i) => stream(i)));
  const wall = (Math.max(...rs.map(r => r.last)) - t0) / 1000;
  return {
    decode: rs.reduce((s, r) => s + (r.tokens - 1) / ((r.last - r.first) / 1000), 0),
    wall: rs.reduce((s, r) => s + r.tokens, 0) / wall,
    ttft: rs.reduce((s, r) => s + (r.first - r.t0), 0) / k / 1000,
  };
}
const median = v => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];

const load0 = loadavg()[0];
await point(1); // warm-up: page the weights in
// rounds of every level, so that whatever else the machine does at some moment weighs on all
// levels alike
const runs = new Map(levels.map(k => [k, []]));
for (let r = 0; r < a.repeat; r++)
  for (const k of levels) runs.get(k).push(await point(k));
const results = levels.map(k => {
  const v = runs.get(k);
  return { streams: k, decode: median(v.map(x => x.decode)), wall: median(v.map(x => x.wall)),
           ttft: median(v.map(x => x.ttft)), all: v.map(x => +x.decode.toFixed(2)) };
});
const one = results.find(r => r.streams === 1)?.decode;
const load1 = loadavg()[0];
console.log(`llm8 serve: ${a.m || base}, --parallel ${a.parallel}, -t ${a.t}, ${a.n} tokens per stream, median of ${a.repeat}; ` +
            `load average ${load0.toFixed(2)} before, ${load1.toFixed(2)} after`);
console.log('| streams | aggregate decode tok/s | x 1 stream | per stream | wall-clock tok/s (prefill incl.) | mean TTFT s | runs |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const r of results)
  console.log(`| ${r.streams} | ${r.decode.toFixed(1)} | ${one ? (r.decode / one).toFixed(2) : '-'} | ${(r.decode / r.streams).toFixed(1)} | ` +
              `${r.wall.toFixed(1)} | ${r.ttft.toFixed(2)} | ${r.all.join(', ')} |`);
if (server) server.kill('SIGTERM');
process.exit(0);
