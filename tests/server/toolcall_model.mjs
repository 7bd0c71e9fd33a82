// A tiny hand-made Llama 3 model (the real Llama 3 tokenizer and chat template) whose greedy
// reply is known: a tool call the first time, a sentence once a tool result is in the prompt. A
// random model never calls a tool, so this is how the tests see a real model's output become
// message.tool_calls and the conversation go round.
//
// How it works (hidden size 64, one layer, float32, Hugging Face layout):
// - MLP weights are zero, so the residual stream at a position is the token's embedding plus
//   what attention adds. q and k are zero, so attention averages v over all positions so far.
// - Each token of the two replies (a chain of distinct token ids, chosen so that their
//   concatenation spells the reply) has its own basis vector as embedding, and the output head
//   row of its successor is that vector: a bigram model that spells the reply token by token and
//   then <|eot_id|>. The chains start after "\n\n", the last token of the generation prompt.
// - The tokens that only the tool result has ("flags") have an embedding along dimension F; v
//   copies it and o_proj writes the average into dimension G. After "\n\n" the call's first token
//   wins by a hair unless G is non-zero: then the answer's first token wins.
//
//   node toolcall_model.mjs LLM8_BIN OUT_DIR    (writes config.json, generation_config.json,
//                                                model.safetensors, the tokenizer files)
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const TOKENIZER = join(here, '..', '..', 'models', 'llama3-tokenizer');

// The conversation the model is made for (the tests import these).
export const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
export const USER = 'What is the weather in Paris?';
export const CALL_TEXT = '{"name":"get_weather","parameters":{"city":"Paris"}}';
export const CALL = { name: 'get_weather', arguments: { city: 'Paris' } };
export const TOOL_RESULT = '{"forecast": "drizzle", "wind": "breezy"}';
export const ANSWER_TEXT = 'It drizzles in Paris, with a breeze.';

const EOT = 128009, TRIGGER_TEXT = '\n\n';
const D = 64, FF = 64, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 16, VOCAB = 128256;
const F = D - 1, G = D - 2; // the flag's input dimension and the dimension attention writes

// texts: [[text, special], ...] -> their ids, in one run of llm8 tokenize
function tokenize(bin, texts) {
  const out = execFileSync(bin, ['tokenize', '-m', TOKENIZER, '--jsonl'],
                           { input: texts.map(([text, special]) => JSON.stringify({ text, special }) + '\n').join('') });
  return out.toString().trim().split('\n').map(l => JSON.parse(l).ids);
}
function render(bin, messages, tools) {
  return execFileSync(bin, ['template', '-m', TOKENIZER], { input: JSON.stringify({ messages, tools }) }).toString();
}

// Byte-level BPE spells a byte as one character (GPT-2's bytes_to_unicode): printable ASCII as
// itself, space as U+0120, newline as U+010A.
function byteLevel(text) {
  return [...Buffer.from(text, 'utf8')].map(b => {
    if (b > 32 && b < 127) return String.fromCharCode(b);
    if (b === 32) return '\u0120';
    if (b === 10) return '\u010a';
    throw new Error(`byteLevel: byte ${b} not handled`);
  }).join('');
}

// Splits text into vocabulary tokens, none of them in `used` or twice: longest first, backtracking.
function chain(vocab, text, used) {
  const s = byteLevel(text), ids = [];
  const go = i => {
    if (i === s.length) return true;
    for (let j = Math.min(s.length, i + 16); j > i; j--) {
      const id = vocab[s.slice(i, j)];
      if (id === undefined || used.has(id)) continue;
      used.add(id); ids.push(id);
      if (go(j)) return true;
      used.delete(id); ids.pop();
    }
    return false;
  };
  if (!go(0)) throw new Error(`no chain of distinct tokens spells ${text}`);
  return ids;
}

function safetensors(path, tensors) {
  const header = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, shape, data] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + data.byteLength] };
    off += data.byteLength;
  }
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, Buffer.from(h), ...tensors.map(t => Buffer.from(t[2].buffer))]));
}

export function makeModel(bin, out) {
  const vocab = JSON.parse(readFileSync(join(TOKENIZER, 'tokenizer.json'), 'utf8')).model.vocab;
  // the flags: tokens of the tool result that the conversation without it does not have
  const call = { id: 'call_1', type: 'function', function: { name: CALL.name, arguments: CALL.arguments } };
  const before = [{ role: 'user', content: USER }, { role: 'assistant', content: null, tool_calls: [call] }];
  const [trigger, rendered, result] = tokenize(bin, [[TRIGGER_TEXT, false], [render(bin, before, TOOLS), true],
                                                      [TOOL_RESULT, false]]);
  if (trigger.length !== 1) throw new Error('"\\n\\n" is not one token');
  const t0 = trigger[0];
  const first = new Set(rendered);
  const flags = [...new Set(result)].filter(id => !first.has(id));
  if (!flags.length) throw new Error('the tool result has no token of its own');
  const used = new Set([t0, EOT, ...flags]);
  const callIds = chain(vocab, CALL_TEXT, used), answer = chain(vocab, ANSWER_TEXT, used);
  // every chain token gets a basis dimension; the trigger too
  const members = [t0, ...callIds, ...answer];
  if (members.length > G) throw new Error(`${members.length} chain tokens do not fit in ${G} dimensions`);
  const dim = new Map(members.map((id, i) => [id, i]));

  const embed = new Float32Array(VOCAB * D), head = new Float32Array(VOCAB * D);
  for (const [id, i] of dim) embed[id * D + i] = 1;
  for (const id of flags) embed[id * D + F] = 1;
  const A = 10, DELTA = 0.01, B = 10;
  const link = (from, to) => { head[to * D + dim.get(from)] = A; };
  for (const seq of [callIds, answer]) {
    seq.forEach((id, k) => { if (k > 0) link(seq[k - 1], id); });
    link(seq[seq.length - 1], EOT);
  }
  // after "\n\n": the call, unless a flag was seen
  head[callIds[0] * D + dim.get(t0)] = A;
  head[answer[0] * D + dim.get(t0)] = A - DELTA;
  head[answer[0] * D + G] = B;

  const zeros = n => new Float32Array(n), ones = n => new Float32Array(n).fill(1);
  const v = zeros(KV_HEADS * HEAD_DIM * D), o = zeros(D * HEADS * HEAD_DIM);
  v[0 * D + F] = 1;                 // kv head 0, component 0 <- the flag dimension
  o[G * HEADS * HEAD_DIM + 0] = 4;  // dimension G <- query head 0, component 0 (the average)
  const L = 'model.layers.0.';
  const tensors = [
    ['model.embed_tokens.weight', [VOCAB, D], embed],
    ['lm_head.weight', [VOCAB, D], head],
    ['model.norm.weight', [D], ones(D)],
    [L + 'input_layernorm.weight', [D], ones(D)],
    [L + 'post_attention_layernorm.weight', [D], ones(D)],
    [L + 'self_attn.q_proj.weight', [HEADS * HEAD_DIM, D], zeros(HEADS * HEAD_DIM * D)],
    [L + 'self_attn.k_proj.weight', [KV_HEADS * HEAD_DIM, D], zeros(KV_HEADS * HEAD_DIM * D)],
    [L + 'self_attn.v_proj.weight', [KV_HEADS * HEAD_DIM, D], v],
    [L + 'self_attn.o_proj.weight', [D, HEADS * HEAD_DIM], o],
    [L + 'mlp.gate_proj.weight', [FF, D], zeros(FF * D)],
    [L + 'mlp.up_proj.weight', [FF, D], zeros(FF * D)],
    [L + 'mlp.down_proj.weight', [D, FF], zeros(D * FF)],
  ];
  mkdirSync(out, { recursive: true });
  safetensors(join(out, 'model.safetensors'), tensors);
  writeFileSync(join(out, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: D, intermediate_size: FF,
    num_hidden_layers: 1, num_attention_heads: HEADS, num_key_value_heads: KV_HEADS, head_dim: HEAD_DIM,
    vocab_size: VOCAB, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 500000.0,
    hidden_act: 'silu', attention_bias: false, mlp_bias: false, tie_word_embeddings: false,
    bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], torch_dtype: 'float32',
  }, null, 2));
  writeFileSync(join(out, 'generation_config.json'),
                JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], temperature: 0.6, top_p: 0.9 }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(out, f));
  return { call: callIds, answer, flags };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.length !== 4) { console.error('usage: node toolcall_model.mjs LLM8_BIN OUT_DIR'); process.exit(2); }
  const r = makeModel(process.argv[2], process.argv[3]);
  console.log(JSON.stringify(r));
}
