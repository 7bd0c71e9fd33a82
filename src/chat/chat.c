/* From an OpenAI-style request to prompt text: message normalization, the template context, and
 * the plain format for models without a template. */
#include <stdlib.h>
#include <string.h>

#include "chat/internal.h"
#include "chat/template.h"
#include "tokenizer/tokenizer.h"

llm8_status l8_chat_normalize_messages(const json_t *messages, json_t **out, l8_err *e) {
    *out = NULL;
    if (!json_is_array(messages)) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "\"messages\" must be an array");
    json_t *list = json_array();
    if (!list) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    for (size_t k = 0; k < json_array_size(messages); k++) {
        json_t *m = json_array_get(messages, k);
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) {
            json_decref(list);
            return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "messages[%zu]: expected an object with a string \"role\"", k);
        }
        if (!json_is_array(content)) {
            if (content && !json_is_string(content) && !json_is_null(content)) {
                json_decref(list);
                return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT,
                               "messages[%zu]: \"content\" must be a string, null or an array of parts", k);
            }
            json_array_append(list, m);
            continue;
        }
        /* Parts become one string: templates written for Llama 3 expect a string they can trim. */
        l8_buf b = {0};
        bool ok = true;
        for (size_t p = 0; p < json_array_size(content) && ok; p++) {
            json_t *part = json_array_get(content, p), *text = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(json_object_get(part, "type")) ||
                strcmp(json_string_value(json_object_get(part, "type")), "text") || !json_is_string(text)) {
                free(b.p);
                json_decref(list);
                return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                               "messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported", k, p);
            }
            ok = (!p || l8_buf_put(&b, "\n", 1)) && l8_buf_put(&b, json_string_value(text), json_string_length(text));
        }
        json_t *copy = json_copy(m), *joined = ok ? json_stringn_nocheck(b.p ? b.p : "", b.len) : NULL;
        free(b.p);
        if (!copy || !joined || json_object_set_new(copy, "content", joined) || json_array_append_new(list, copy)) {
            json_decref(list);
            return l8_fail(e, ok ? LLM8_STATUS_OUT_OF_MEMORY : LLM8_STATUS_INVALID_ARGUMENT,
                           "messages[%zu]: content too large", k);
        }
    }
    *out = list;
    return LLM8_STATUS_OK;
}

/* Appends a JSON value in compact form. */
static bool put_json(l8_buf *b, const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    bool ok = s && l8_buf_puts(b, s);
    free(s);
    return ok;
}

/* An OpenAI tool call's function as Llama 3 writes a call: {"name": N, "parameters": ARGS}. */
static bool put_call(l8_buf *b, const json_t *call) {
    const json_t *fn = json_object_get(call, "function");
    if (!fn) fn = call;
    const json_t *args = json_object_get(fn, "arguments");
    json_t *parsed = json_is_string(args) ? json_loads(json_string_value(args), JSON_DECODE_ANY, NULL) : NULL;
    json_t *o = json_object();
    bool ok = o && !json_object_set(o, "name", json_object_get(fn, "name") ? json_object_get(fn, "name") : json_null()) &&
              !json_object_set(o, "parameters", parsed ? parsed : args ? (json_t *)args : json_null()) && put_json(b, o);
    json_decref(parsed);
    json_decref(o);
    return ok;
}

llm8_status l8_chat_render_plain(const json_t *messages, const json_t *tools, bool add_generation_prompt, char **out,
                                 size_t *out_len, l8_err *e) {
    l8_buf b = {0};
    bool ok = true, tools_done = !json_is_array(tools) || !json_array_size(tools);
    *out = NULL;
    if (!json_is_array(messages)) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "\"messages\" must be an array");
    for (size_t k = 0; k < json_array_size(messages) && ok; k++) {
        json_t *m = json_array_get(messages, k), *c = json_object_get(m, "content");
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role) role = "user";
        const char *text = json_is_string(c) ? json_string_value(c) : "";
        size_t len = json_is_string(c) ? json_string_length(c) : 0;
        if (!strcmp(role, "system")) {
            ok = l8_buf_put(&b, text, len) && l8_buf_puts(&b, "\n\n");
            continue;
        }
        if (!tools_done) {
            ok = l8_buf_puts(&b, "Tools: ") && put_json(&b, tools) && l8_buf_puts(&b, "\n\n");
            tools_done = true;
        }
        const char *label = !strcmp(role, "user") ? "User" : !strcmp(role, "assistant") ? "Assistant" : role;
        ok = ok && l8_buf_puts(&b, label) && l8_buf_puts(&b, ": ") && l8_buf_put(&b, text, len);
        const json_t *calls = json_object_get(m, "tool_calls");
        for (size_t i = 0; ok && i < json_array_size(calls); i++)
            ok = l8_buf_puts(&b, i || len ? "; " : "") && put_call(&b, json_array_get(calls, i));
        ok = ok && l8_buf_puts(&b, "\n");
    }
    if (ok && !tools_done) ok = l8_buf_puts(&b, "Tools: ") && put_json(&b, tools) && l8_buf_puts(&b, "\n\n");
    if (ok && add_generation_prompt) ok = l8_buf_puts(&b, "Assistant:");
    if (ok) ok = l8_buf_put(&b, "", 0);
    if (!ok) {
        free(b.p);
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "chat: prompt larger than 16 MiB");
    }
    *out = b.p;
    if (out_len) *out_len = b.len;
    return LLM8_STATUS_OK;
}

llm8_status l8_chat_apply(const llm8_tokenizer *tok, const json_t *request, const l8_chat_opts *opts, char **out,
                          size_t *out_len, l8_err *e) {
    *out = NULL;
    if (!tok || !json_is_object(request))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "chat: the request must be a JSON object");
    json_t *tools = json_object_get(request, "tools"), *kwargs = json_object_get(request, "chat_template_kwargs");
    if (tools && !json_is_array(tools) && !json_is_null(tools))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "\"tools\" must be an array");
    if (kwargs && !json_is_object(kwargs))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "\"chat_template_kwargs\" must be an object");
    json_t *messages;
    llm8_status st = l8_chat_normalize_messages(json_object_get(request, "messages"), &messages, e);
    if (st) return st;
    const char *tmpl = l8_tokenizer_chat_template(tok);
    bool gen = opts ? opts->add_generation_prompt : true;
    if (!tmpl) {
        st = l8_chat_render_plain(messages, json_is_array(tools) ? tools : NULL, gen, out, out_len, e);
        json_decref(messages);
        return st;
    }
    json_t *ctx = json_object();
    if (!ctx) {
        json_decref(messages);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    if (kwargs) json_object_update(ctx, kwargs);
    json_object_set_new(ctx, "messages", messages);
    /* Templates test `tools is not none`; an explicit null stays null, absence stays undefined. */
    if (tools) json_object_set(ctx, "tools", tools);
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(gen));
    const char *bos = l8_tokenizer_bos_str(tok), *eos = l8_tokenizer_eos_str(tok);
    json_object_set_new(ctx, "bos_token", json_string(bos ? bos : ""));
    json_object_set_new(ctx, "eos_token", json_string(eos ? eos : ""));
    if (opts && opts->date_string) json_object_set_new(ctx, "date_string", json_string(opts->date_string));
    st = l8_chat_render(tmpl, ctx, out, out_len, e);
    json_decref(ctx);
    return st;
}
