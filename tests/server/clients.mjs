// llm8 serve driven by the official `openai` npm package, as an application would use it.
//
//   node clients.mjs MODE PORT MODEL
//
// MODE demo:     the demo model (no chat template: the plain fallback), server started with
//                --api-key test-key
// MODE llama3:   a random Llama-3-layout model with the real tokenizer and chat template
// MODE toolcall: the hand-made model of toolcall_model.mjs, whose greedy replies are a tool call,
//                then (once the tool's result is in the conversation) a sentence
// LLM8_BIN: the CLI, for `llm8 run` (the expected greedy text) and `llm8 template`/`tokenize`
// (the expected prompt sizes). Prints ok/FAIL lines; exit status 1 when a check failed.
import { execFileSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import OpenAI from 'openai';
import { ANSWER_TEXT, CALL, CALL_TEXT, TOKENIZER, TOOL_RESULT, TOOLS, USER } from './toolcall_model.mjs';

const [mode, port, model] = process.argv.slice(2);
const bin = process.env.LLM8_BIN || 'build/llm8';
const apiKey = mode === 'demo' ? 'test-key' : 'unused';
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey, timeout: 120000, maxRetries: 0 });

let failed = 0;
async function check(name, fn) {
  try {
    const r = await fn();
    if (r === false) throw new Error('check is false');
    console.log(`ok   ${mode}: ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${mode}: ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
}
function eq(got, want, what = '') {
  if (!isDeepStrictEqual(got, want)) throw new Error(`${what} got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
// llm8 run's stdout without the newline it ends with
function llm8run(args) {
  return execFileSync(bin, ['run', '-m', model, ...args], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().replace(/\n$/, '');
}
// the prompt's token count as the server must make it: the chat template, then tokenize
function promptTokens(messages, tools) {
  const text = execFileSync(bin, ['template', '-m', TOKENIZER], { input: JSON.stringify({ messages, tools }) });
  return execFileSync(bin, ['tokenize', '-m', TOKENIZER, '--special'], { input: text }).toString().trim().split(/\s+/).length;
}
// the demo model's plain fallback: BOS and the text
function plainTokens(text) {
  return execFileSync(bin, ['tokenize', '-m', model, '--bos'], { input: text }).toString().trim().split(/\s+/).length;
}
// a streamed chat: reads every chunk, and returns what it added up to
async function collect(stream) {
  const r = { content: '', roles: 0, finish: null, usage: null, calls: [], ids: new Set(), chunks: 0 };
  for await (const ch of stream) {
    r.ids.add(ch.id);
    r.chunks++;
    if (ch.usage) r.usage = ch.usage;
    for (const c of ch.choices) {
      if (c.delta.role === 'assistant') r.roles++;
      r.content += c.delta.content || '';
      for (const t of c.delta.tool_calls || []) r.calls.push(t);
      if (c.finish_reason) r.finish = c.finish_reason;
    }
  }
  return r;
}
async function rejects(promise, status, param) {
  try {
    await promise;
  } catch (e) {
    assert(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    eq(e.status, status, 'status');
    if (param !== undefined) eq(e.param, param, 'param');
    assert(typeof e.error?.message === 'string' && e.error.message.length > 0, 'no error message');
    return e;
  }
  throw new Error(`no error: expected ${status}`);
}

const greedy = { temperature: 0 };

async function common() {
  const user = mode === 'demo' ? 'Tell me a story.' : 'Hello! Who are you?';
  const messages = [{ role: 'user', content: user }];
  let chat;
  await check('models.list() names the model', async () => {
    const page = await client.models.list();
    assert(page.data.length === 1 && typeof page.data[0].id === 'string' && page.data[0].object === 'model', JSON.stringify(page.data));
  });
  await check('chat.completions.create: greedy text equals llm8 run --chat --temp 0', async () => {
    chat = await client.chat.completions.create({ model: 'm', messages, max_tokens: 24, ...greedy });
    eq(chat.object, 'chat.completion');
    eq(chat.choices.length, 1);
    eq(chat.choices[0].message.role, 'assistant');
    assert(['stop', 'length'].includes(chat.choices[0].finish_reason), `finish_reason ${chat.choices[0].finish_reason}`);
    eq(chat.choices[0].message.content, llm8run(['--chat', '-p', user, '-n', '24', '--temp', '0']), 'content');
  });
  await check('the next turn of a conversation reuses the cached prefix', async () => {
    const turn2 = [...messages, { role: 'assistant', content: chat.choices[0].message.content }, { role: 'user', content: 'And then?' }];
    const r = await client.chat.completions.create({ model: 'm', messages: turn2, max_tokens: 4 });
    const cached = r.usage.prompt_tokens_details?.cached_tokens ?? 0;
    assert(cached >= chat.usage.prompt_tokens - 1, `cached ${cached} of ${chat.usage.prompt_tokens}`);
  });
  await check('usage: prompt tokens as rendered, total = prompt + completion', async () => {
    const u = chat.usage;
    eq(u.total_tokens, u.prompt_tokens + u.completion_tokens, 'total');
    assert(u.completion_tokens > 0 && u.completion_tokens <= 24, `completion_tokens ${u.completion_tokens}`);
    eq(u.prompt_tokens, mode === 'demo' ? plainTokens(`User: ${user}\nAssistant:`) : promptTokens(messages), 'prompt_tokens');
  });
  await check('ignore_eos + max_tokens: exactly max_tokens, finish_reason length', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 20, ignore_eos: true, ...greedy });
    eq([r.usage.completion_tokens, r.choices[0].finish_reason], [20, 'length']);
  });
  await check('streaming chat: role first, the same text, finish_reason, usage chunk, one id', async () => {
    const s = await collect(await client.chat.completions.create({
      model: 'm', messages, max_tokens: 24, ...greedy, stream: true, stream_options: { include_usage: true } }));
    eq(s.roles, 1, 'role chunks');
    eq(s.content, chat.choices[0].message.content, 'content');
    eq(s.finish, chat.choices[0].finish_reason, 'finish_reason');
    const u = ({ prompt_tokens, completion_tokens, total_tokens }) => ({ prompt_tokens, completion_tokens, total_tokens });
    eq(u(s.usage), u(chat.usage), 'usage');
    eq(s.ids.size, 1, 'ids');
  });
  await check('the SDK stream helper (chat.completions.stream) accumulates the same completion', async () => {
    const stream = client.chat.completions.stream({ model: 'm', messages, max_tokens: 24, ...greedy });
    let deltas = 0;
    stream.on('content', () => deltas++);
    const done = await stream.finalChatCompletion();
    eq(done.choices[0].message.content, chat.choices[0].message.content, 'content');
    eq(done.choices[0].finish_reason, chat.choices[0].finish_reason, 'finish_reason');
    assert(deltas >= 1, 'no content event'); // one event may carry several tokens
  });
  let long;
  await check('stop strings: the text before the first match, finish_reason stop (plain and streamed)', async () => {
    long = await client.chat.completions.create({ model: 'm', messages, max_tokens: 48, ignore_eos: true, ...greedy });
    const text = long.choices[0].message.content;
    const words = text.split(/\s+/).filter(w => w.length > 1);
    assert(words.length >= 4, `too few words: ${JSON.stringify(text)}`);
    const stop = words[Math.floor(words.length / 2)];
    const want = text.slice(0, text.indexOf(stop));
    const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 48, ignore_eos: true, ...greedy,
                                                     stop: ['ZZZnever', stop] });
    eq([r.choices[0].message.content, r.choices[0].finish_reason], [want, 'stop'], `stop ${JSON.stringify(stop)}:`);
    const s = await collect(await client.chat.completions.create({ model: 'm', messages, max_tokens: 48, ignore_eos: true,
                                                                   ...greedy, stop, stream: true }));
    eq([s.content, s.finish], [want, 'stop'], 'streamed:');
  });
  await check('seed: the same seed at temperature 1 gives the same text twice', async () => {
    const p = { model: 'm', messages, max_tokens: 24, temperature: 1, seed: 1234 };
    const a = await client.chat.completions.create(p), b = await client.chat.completions.create(p);
    eq(a.choices[0].message.content, b.choices[0].message.content);
  });
  await check('completions.create: greedy text equals llm8 run --temp 0, streamed the same', async () => {
    const prompt = mode === 'demo' ? 'Once upon a time' : 'The capital of France';
    const c = await client.completions.create({ model: 'm', prompt, max_tokens: 16, ...greedy });
    eq(c.object, 'text_completion');
    eq(c.choices[0].text, llm8run(['-p', prompt, '-n', '16', '--temp', '0']), 'text');
    let text = '', finish = null;
    for await (const ch of await client.completions.create({ model: 'm', prompt, max_tokens: 16, ...greedy, stream: true })) {
      text += ch.choices[0]?.text || '';
      finish = ch.choices[0]?.finish_reason || finish;
    }
    eq([text, finish], [c.choices[0].text, c.choices[0].finish_reason]);
  });
  await check('n = 2: BadRequestError 400 naming n', async () => {
    const e = await rejects(client.chat.completions.create({ model: 'm', messages, n: 2 }), 400, 'n');
    assert(e instanceof OpenAI.BadRequestError, 'not a BadRequestError');
  });
  await check('an unknown role: 400 naming it', () =>
    rejects(client.chat.completions.create({ model: 'm', messages: [{ role: 'wizard', content: 'hi' }] }), 400, 'messages[0].role'));
  await check('max_tokens beyond the context: 400 context_length_exceeded', async () => {
    const e = await rejects(client.chat.completions.create({ model: 'm', messages, max_tokens: 100000 }), 400, 'max_tokens');
    eq(e.code, 'context_length_exceeded');
  });
  await check('a forced tool_choice: 400 naming tool_choice', () =>
    rejects(client.chat.completions.create({ model: 'm', messages, tools: TOOLS,
                                             tool_choice: { type: 'function', function: { name: 'get_weather' } } }), 400, 'tool_choice'));
  await check('an error in a stream request: APIError before any chunk', () =>
    rejects(client.chat.completions.create({ model: 'm', messages, n: 3, stream: true }), 400, 'n'));
}

async function demoOnly() {
  await check('--api-key: a wrong key is an AuthenticationError 401', async () => {
    const bad = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'wrong', maxRetries: 0 });
    const e = await rejects(bad.models.list(), 401);
    assert(e instanceof OpenAI.AuthenticationError, 'not an AuthenticationError');
  });
  await check('a tool round trip with the plain fallback: accepted, the tool message rendered', async () => {
    const messages = [{ role: 'user', content: USER }];
    const r = await client.chat.completions.create({ model: 'm', messages, tools: TOOLS, max_tokens: 8, ...greedy });
    assert(['stop', 'length'].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
    const call = { id: 'call_1', type: 'function', function: { name: CALL.name, arguments: JSON.stringify(CALL.arguments) } };
    const turn = [...messages, { role: 'assistant', content: null, tool_calls: [call] }];
    const a = await client.chat.completions.create({ model: 'm', messages: turn, tools: TOOLS, max_tokens: 8, ...greedy });
    const b = await client.chat.completions.create({ model: 'm', tools: TOOLS, max_tokens: 8, ...greedy,
      messages: [...turn, { role: 'tool', tool_call_id: 'call_1', content: TOOL_RESULT }] });
    assert(b.usage.prompt_tokens > a.usage.prompt_tokens + 5, `prompt ${a.usage.prompt_tokens} -> ${b.usage.prompt_tokens}`);
    assert(['stop', 'length'].includes(b.choices[0].finish_reason), b.choices[0].finish_reason);
  });
}

// a tool call round trip whatever the model says: the tools rendered, the assistant's call and the
// tool's answer accepted and rendered (the prompt grows by the template's rendering of them)
async function roundTripRendering() {
  const messages = [{ role: 'user', content: USER }];
  await check('tools in the request: rendered by the chat template (prompt size as llm8 template)', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages, tools: TOOLS, max_tokens: 4, ...greedy });
    eq(r.usage.prompt_tokens, promptTokens(messages, TOOLS), 'prompt_tokens');
    assert(r.choices[0].finish_reason, 'no finish_reason');
  });
  await check('an assistant tool call and a tool message: accepted, rendered as the template does', async () => {
    const call = { id: 'call_abc', type: 'function', function: { name: CALL.name, arguments: JSON.stringify(CALL.arguments) } };
    const turn = [...messages, { role: 'assistant', content: null, tool_calls: [call] },
                  { role: 'tool', tool_call_id: 'call_abc', content: TOOL_RESULT }];
    const r = await client.chat.completions.create({ model: 'm', messages: turn, tools: TOOLS, max_tokens: 4, ...greedy });
    eq(r.usage.prompt_tokens, promptTokens(turn.map(m => m.tool_calls ? { ...m, tool_calls: [{ ...call, function: { ...call.function, arguments: CALL.arguments } }] } : m), TOOLS),
       'prompt_tokens');
    assert(r.choices[0].finish_reason, 'no finish_reason');
  });
}

async function toolcall() {
  const messages = [{ role: 'user', content: USER }];
  let first;
  await check('the model\'s JSON reply becomes message.tool_calls, finish_reason tool_calls', async () => {
    first = await client.chat.completions.create({ model: 'm', messages, tools: TOOLS, max_tokens: 64, ...greedy });
    const m = first.choices[0].message;
    eq(first.choices[0].finish_reason, 'tool_calls');
    eq(m.content, null, 'content');
    eq(m.tool_calls.length, 1, 'calls');
    const c = m.tool_calls[0];
    assert(typeof c.id === 'string' && c.id.length > 0, 'no id');
    eq(c.type, 'function');
    eq(c.function.name, CALL.name);
    eq(JSON.parse(c.function.arguments), CALL.arguments, 'arguments');
  });
  await check('streamed: one tool_calls delta with index, no content, finish_reason tool_calls', async () => {
    const s = await collect(await client.chat.completions.create({ model: 'm', messages, tools: TOOLS, max_tokens: 64, ...greedy,
                                                                   stream: true, stream_options: { include_usage: true } }));
    eq(s.content, '', 'content');
    eq(s.finish, 'tool_calls');
    eq(s.calls.length, 1, 'calls');
    eq([s.calls[0].index, s.calls[0].type, s.calls[0].function.name], [0, 'function', CALL.name]);
    eq(JSON.parse(s.calls[0].function.arguments), CALL.arguments, 'arguments');
    eq(s.usage.completion_tokens, first.usage.completion_tokens, 'usage');
  });
  await check('the SDK stream helper assembles the streamed call', async () => {
    const done = await client.chat.completions.stream({ model: 'm', messages, tools: TOOLS, max_tokens: 64, ...greedy }).finalChatCompletion();
    eq(done.choices[0].message.tool_calls?.[0]?.function?.name, CALL.name);
    eq(JSON.parse(done.choices[0].message.tool_calls[0].function.arguments), CALL.arguments);
  });
  await check('round trip: the call and the tool\'s result sent back, the model answers in text', async () => {
    const call = first.choices[0].message.tool_calls[0];
    const turn = [...messages, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: TOOL_RESULT }];
    const r = await client.chat.completions.create({ model: 'm', messages: turn, tools: TOOLS, max_tokens: 64, ...greedy });
    eq([r.choices[0].message.content, r.choices[0].finish_reason, r.choices[0].message.tool_calls ?? null],
       [ANSWER_TEXT, 'stop', null]);
    assert(r.usage.prompt_tokens_details?.cached_tokens >= first.usage.prompt_tokens - 1,
           `cached ${r.usage.prompt_tokens_details?.cached_tokens} of ${first.usage.prompt_tokens}`);
    const s = await collect(await client.chat.completions.create({ model: 'm', messages: turn, tools: TOOLS, max_tokens: 64, ...greedy,
                                                                   stream: true }));
    eq([s.content, s.finish, s.calls.length], [ANSWER_TEXT, 'stop', 0], 'streamed:');
  });
  await check('the tool result as text parts: the same answer', async () => {
    const call = first.choices[0].message.tool_calls[0];
    const turn = [...messages, first.choices[0].message,
                  { role: 'tool', tool_call_id: call.id, content: [{ type: 'text', text: TOOL_RESULT }] }];
    const r = await client.chat.completions.create({ model: 'm', messages: turn, tools: TOOLS, max_tokens: 64, ...greedy });
    eq(r.choices[0].message.content, ANSWER_TEXT);
  });
  await check('without tools, the same reply is plain content (finish_reason stop)', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 64, ...greedy });
    eq([r.choices[0].message.content, r.choices[0].finish_reason, r.choices[0].message.tool_calls ?? null], [CALL_TEXT, 'stop', null]);
  });
  await check('tool_choice none: plain content', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages, tools: TOOLS, tool_choice: 'none', max_tokens: 64, ...greedy });
    eq([r.choices[0].message.content, r.choices[0].finish_reason], [CALL_TEXT, 'stop']);
  });
  await check('a call of a function the request does not offer stays text (streamed too)', async () => {
    const other = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }];
    const r = await client.chat.completions.create({ model: 'm', messages, tools: other, max_tokens: 64, ...greedy });
    eq([r.choices[0].message.content, r.choices[0].finish_reason], [CALL_TEXT, 'stop']);
    const s = await collect(await client.chat.completions.create({ model: 'm', messages, tools: other, max_tokens: 64, ...greedy, stream: true }));
    eq([s.content, s.finish, s.calls.length], [CALL_TEXT, 'stop', 0], 'streamed:');
  });
  await check('a call cut by max_tokens: text, finish_reason length', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages, tools: TOOLS, max_tokens: 5, ...greedy });
    eq(r.choices[0].finish_reason, 'length');
    assert(CALL_TEXT.startsWith(r.choices[0].message.content) && r.choices[0].message.content.length > 0,
           JSON.stringify(r.choices[0].message.content));
  });
}

if (mode === 'demo') { await common(); await demoOnly(); }
else if (mode === 'llama3') { await common(); await roundTripRendering(); }
else if (mode === 'toolcall') { await roundTripRendering(); await toolcall(); }
else { console.error(`clients.mjs: unknown mode ${mode}`); process.exit(2); }
process.exit(failed ? 1 : 0);
