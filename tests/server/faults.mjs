// Raw-socket fault clients for tests/cli_serve_faults.sh (Node's net module, no npm package).
// Each subcommand prints one JSON line and exits 0 (the shell script judges the figures).
//
//   node faults.mjs slow-headers PORT GAP_MS BYTES   send a request's headers one byte every GAP_MS
//                                                    ms (at most BYTES bytes); report when and how
//                                                    the server ended the connection
//   node faults.mjs stalled-body PORT                headers that announce 1000 bytes, 10 sent, then
//                                                    nothing: when the server closed
//   node faults.mjs idle PORT N HOLD_MS              N connections that send nothing for HOLD_MS:
//                                                    how many the server closed, and how soon
//   node faults.mjs cut-stream PORT BODY_JSON AFTER  a streamed request; the client leaves after
//                                                    AFTER SSE events (a hard close)
//   node faults.mjs cut-wait PORT BODY_JSON MS       a non-streamed request; the client leaves
//                                                    after MS milliseconds
//   node faults.mjs raw PORT HEX_OR_@FILE            send bytes, read until the server answers
//                                                    (a status line and headers), closes, or 10 s
//                                                    pass: the status and the time
import net from 'node:net';
import { readFileSync } from 'node:fs';

const [cmd, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const t0 = Date.now();
const ms = () => Date.now() - t0;
const out = o => { console.log(JSON.stringify(o)); process.exit(0); };
const connect = () => new Promise((res, rej) => {
  const s = net.connect({ host: '127.0.0.1', port }, () => res(s));
  s.once('error', rej);
});
// resolves when the socket ends: {how, at, data}
function ended(s) {
  return new Promise(res => {
    let data = '', first = -1;
    s.on('data', d => { if (first < 0) first = ms(); data += d.toString('latin1'); });
    s.on('error', e => res({ how: e.code || 'error', at: ms(), data, first }));
    s.on('close', () => res({ how: 'closed', at: ms(), data, first }));
  });
}
const sleep = t => new Promise(r => setTimeout(r, t));
const status = data => Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] || 0);

if (cmd === 'slow-headers') {
  const [gap, max] = rest.map(Number);
  const req = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ' + 'a'.repeat(4000);
  const s = await connect();
  const end = ended(s);
  let sent = 0, closed = null;
  end.then(r => { closed = r; });
  while (!closed && sent < Math.min(max, req.length)) {
    s.write(req[sent++]);
    await Promise.race([sleep(gap), end]);
  }
  if (!closed) s.destroy();
  const r = closed || { how: 'still open', at: ms(), data: '' };
  out({ how: r.how, at_ms: r.at, bytes_sent: sent, status: status(r.data) });
}

if (cmd === 'stalled-body') {
  const s = await connect();
  const end = ended(s);
  s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt": ');
  const r = await Promise.race([end, sleep(30000).then(() => ({ how: 'still open', at: ms(), data: '' }))]);
  s.destroy();
  out({ how: r.how, at_ms: r.at, status: status(r.data) });
}

if (cmd === 'idle') {
  const [n, hold] = rest.map(Number);
  const socks = [], closes = [];
  let refused = 0;
  for (let i = 0; i < n; i++) {
    try {
      const s = await connect();
      socks.push(s);
      ended(s).then(r => closes.push(r.at));
    } catch { refused++; }
  }
  const opened = ms();
  await sleep(hold);
  const closedEarly = closes.filter(t => t <= opened + 1000).length;
  const closedByServer = closes.length;
  for (const s of socks) s.destroy();
  out({ opened: socks.length, refused, open_ms: opened, closed_within_1s: closedEarly, closed_by_server: closedByServer,
        still_open: socks.length - closedByServer });
}

if (cmd === 'cut-stream' || cmd === 'cut-wait') {
  const body = rest[0], after = Number(rest[1]);
  const s = await connect();
  const end = ended(s);
  const path = JSON.parse(body).messages ? '/v1/chat/completions' : '/v1/completions';
  s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  let data = '', events = 0;
  if (cmd === 'cut-stream') {
    await new Promise(res => {
      s.on('data', d => {
        data += d.toString();
        events = (data.match(/^data: /gm) || []).length;
        // enough events; or a refusal (503 when the queue is full), which keeps the connection
        if (events >= after || (status(data) && status(data) !== 200 && data.includes('\r\n\r\n'))) res();
      });
      end.then(res);
    });
  } else {
    await Promise.race([end, sleep(after)]);
  }
  s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
  out({ status: status(data), events, at_ms: ms(), done: data.includes('[DONE]') });
}

if (cmd === 'raw') {
  const arg = rest[0];
  const bytes = arg.startsWith('@') ? readFileSync(arg.slice(1)) : Buffer.from(arg, 'hex');
  const s = await connect();
  const end = ended(s);
  s.on('error', () => {});
  s.write(bytes, () => {});
  // until the server closes, or has answered (it may keep the connection open after), or 10 s
  let got = '';
  s.on('data', d => { got += d.toString('latin1'); });
  const answered = new Promise(res => s.on('data', () => {
    if (got.includes('\r\n\r\n')) res({ how: 'answered', at: ms(), data: got, first: ms() });
  }));
  const r = await Promise.race([end, answered, sleep(10000).then(() => ({ how: 'still open', at: ms(), data: '', first: -1 }))]);
  s.destroy();
  out({ how: r.how, at_ms: r.at, answer_ms: r.first, status: status(r.data), head: r.data.split('\r\n')[0] });
}
console.error(`faults.mjs: unknown command ${cmd}`);
process.exit(2);
