// Renders chat-template fixture cases with @huggingface/jinja, the independent reference for
// llm8's template engine. Run from anywhere:
//   node tools/chat_fixtures/render.mjs tests/data/chat/llama32_cases.json [more_cases.json ...]
// Each X_cases.json is {"model": DIR, "cases": [{name, request, add_generation_prompt, date_string?}]}
// (DIR relative to the repository root, holding tokenizer_config.json); the renderings go to
// X_expected.json next to it: {name: {"text": ...}} or {name: {"error": ...}}.
// The context is built exactly as l8_chat_apply builds it (src/chat/chat.c).
import { Template } from "@huggingface/jinja";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function tokenString(t) {
  return typeof t === "string" ? t : t && typeof t.content === "string" ? t.content : "";
}

// Content part arrays become one string, parts joined with "\n" (as l8_chat_normalize_messages).
function normalize(messages) {
  return messages.map((m) => {
    if (!Array.isArray(m.content)) return m;
    return { ...m, content: m.content.map((p) => p.text).join("\n") };
  });
}

function context(c, cfg) {
  const req = c.request;
  const ctx = { ...(req.chat_template_kwargs || {}) };
  ctx.messages = normalize(req.messages);
  if ("tools" in req) ctx.tools = req.tools;
  ctx.add_generation_prompt = c.add_generation_prompt;
  ctx.bos_token = tokenString(cfg.bos_token);
  ctx.eos_token = tokenString(cfg.eos_token);
  if (c.date_string !== undefined) ctx.date_string = c.date_string;
  return ctx;
}

for (const file of process.argv.slice(2)) {
  const spec = JSON.parse(readFileSync(file, "utf8"));
  const cfg = JSON.parse(readFileSync(join(root, spec.model, "tokenizer_config.json"), "utf8"));
  const template = new Template(cfg.chat_template);
  const out = {};
  for (const c of spec.cases) {
    try {
      out[c.name] = { text: template.render(context(c, cfg)) };
    } catch (err) {
      out[c.name] = { error: String(err.message ?? err) };
    }
  }
  const dest = file.replace(/_cases\.json$/, "_expected.json");
  writeFileSync(dest, JSON.stringify(out, null, 1) + "\n");
  const errors = Object.values(out).filter((v) => v.error).length;
  console.log(`${dest}: ${spec.cases.length} cases (${errors} errors)`);
}
