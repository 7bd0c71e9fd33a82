/* Chat templates: a renderer for the Jinja2 subset that Hugging Face chat templates use, and the
 * glue that turns an OpenAI-style request into a prompt with a tokenizer's template.
 *
 * Reference behaviour is @huggingface/jinja (the renderer transformers.js uses; the fixtures in
 * tests/data/chat come from it), rendered with trim_blocks and lstrip_blocks as transformers does.
 *
 * Supported: {{ }}, {% %}, {# #}, the `-` whitespace markers; if/elif/else, for (with `else`, an
 * `if` filter, tuple targets, loop.index/index0/revindex/revindex0/first/last/length/previtem/
 * nextitem), break/continue, set (also `{% set ns.x = %}` on a namespace() and block `set`);
 * literals (strings with escapes, integers, floats, lists, dicts, true/false/none in both cases);
 * or/and/not, == != < > <= >=, in / not in, + - * / // % **, ~, `a if b else c`; a.b (key lookup
 * for mappings), a[i] (negative indices), a[i:j:k]; filters trim, length/count, tojson(indent=N),
 * upper, lower, capitalize, title, string, default/d, first, last, join, list, replace, items, int,
 * safe; tests defined, undefined, none, string, mapping, iterable, sequence, number, integer, float,
 * boolean, true, false, callable, odd, even, eq/equalto/sameas, ne, divisibleby, lower, upper;
 * globals raise_exception(msg), strftime_now(fmt), namespace(...), range(...); string methods
 * strip/lstrip/rstrip/upper/lower/title/capitalize/startswith/endswith/split/replace and mapping
 * methods items/keys/values/get.
 * Not supported (a parse error, never a crash): macros, call/filter blocks, include/extends/import,
 * recursive loops, tuple assignment in set, other filters and tests.
 *
 * Value semantics follow Jinja's defaults: undefined names and missing keys/indices are undefined
 * (falsy, render as "", `is defined` false; attribute or index access on them stays undefined as in
 * the reference); + on undefined or none is an error. Where the reference and Python Jinja differ in
 * how a value prints, Python wins: none -> "None", booleans -> "True"/"False"; lists and mappings
 * print as compact JSON; floats print as JavaScript prints them (JSON input has no int/float
 * distinction there either). Strings are UTF-8; indexing, slicing and length count code points;
 * upper/lower/title/capitalize change ASCII letters only; trim removes the whitespace JavaScript's
 * String.prototype.trim removes.
 *
 * Limits: output and any string at most 16 MiB, lists built by the template at most 2^20 items,
 * 1e7 evaluation steps, nesting depth 200 in the source. Exceeding one is an error.
 */
#ifndef L8_CHAT_TEMPLATE_H
#define L8_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "llm8.h"
#include "util/error.h"

/* Renders template_src with the variables of context (a JSON object: messages, tools,
 * add_generation_prompt, bos_token, eos_token, date_string, ...; not modified). On success *out is
 * a NUL-terminated heap string (free()) of *out_len bytes. Errors: BAD_FORMAT for a template that
 * does not parse ("chat template line L col C: ..."), INVALID_ARGUMENT for a render-time failure
 * (raise_exception's message, a type error, a limit), OUT_OF_MEMORY. */
llm8_status l8_chat_render(const char *template_src, const json_t *context, char **out, size_t *out_len, l8_err *e);

typedef struct l8_chat_opts {
    bool add_generation_prompt;
    const char *date_string; /* NULL: the template's own default (strftime_now("%d %b %Y"): today) */
} l8_chat_opts;

/* Renders an OpenAI-style request {"messages": [...], "tools": [...]} with the tokenizer's chat
 * template; bos_token / eos_token come from the tokenizer.
 *   - messages: objects with a string "role"; "content" a string, null, or an array of parts of
 *     type "text", joined with "\n" into one string (other part types are UNSUPPORTED). Other
 *     members (tool_calls, tool_call_id, name, ...) pass through as given.
 *   - tools: passed through as given when present (absent means the template sees it undefined).
 *   - chat_template_kwargs: an optional object whose members become extra template variables
 *     (e.g. tools_in_user_message, custom_tools).
 * A tokenizer without a template uses l8_chat_render_plain. */
llm8_status l8_chat_apply(const llm8_tokenizer *tok, const json_t *request, const l8_chat_opts *opts, char **out,
                          size_t *out_len, l8_err *e);

/* The format used when a model has no chat template (the bundled demo model):
 *   each system message:      CONTENT "\n\n"
 *   tools (a non-empty array): "Tools: " JSON "\n\n" after the leading system messages, JSON
 *                              the array in compact form
 *   each user message:        "User: " CONTENT "\n"
 *   each assistant message:   "Assistant: " CONTENT "\n"; one with tool_calls: the content (if
 *                              any) then each call's function as {"name": N, "parameters": ARGS}
 *                              (Llama 3's form; ARGS parsed from the arguments string when it is
 *                              JSON), separated by "; "
 *   any other role R:         R ": " CONTENT "\n" (so "tool: RESULT")
 *   then, with add_generation_prompt, "Assistant:".
 * No BOS is written (tokenizing with LLM8_TOKENIZE_ADD_BOS adds it). messages must already be
 * normalized (string or null contents); tools may be NULL. */
llm8_status l8_chat_render_plain(const json_t *messages, const json_t *tools, bool add_generation_prompt, char **out,
                                 size_t *out_len, l8_err *e);

/* A copy of messages with every content part array joined into one string (see l8_chat_apply),
 * after checking the shapes; *out is a new reference. */
llm8_status l8_chat_normalize_messages(const json_t *messages, json_t **out, l8_err *e);

#endif
