/* Conversations on a session: render with the chat template, reuse the cached prefix, prefill
 * the rest, generate, and remember the answer. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "runtime/runtime.h"
#include "tokenizer/tokenizer.h"

static llm8_status ensure_messages(llm8_session *s) {
    if (!s->messages && !(s->messages = json_array())) return LLM8_STATUS_OUT_OF_MEMORY;
    return LLM8_STATUS_OK;
}

static bool has_system(const llm8_session *s) {
    json_t *first = s->messages ? json_array_get(s->messages, 0) : NULL;
    const char *role = first ? json_string_value(json_object_get(first, "role")) : NULL;
    return role && !strcmp(role, "system");
}

void llm8_session_clear_history(llm8_session *s, bool keep_system) {
    if (!s || !s->messages) return;
    size_t keep = keep_system && has_system(s) ? 1 : 0;
    while (json_array_size(s->messages) > keep) json_array_remove(s->messages, json_array_size(s->messages) - 1);
    s->n_past = 0;
}

int32_t llm8_session_n_messages(const llm8_session *s) {
    return s && s->messages ? (int32_t)json_array_size(s->messages) : 0;
}

llm8_status llm8_session_set_system(llm8_session *s, const char *system) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (ensure_messages(s)) return LLM8_STATUS_OUT_OF_MEMORY;
    json_array_clear(s->messages);
    s->n_past = 0;
    if (!system) return LLM8_STATUS_OK;
    json_t *m = json_pack("{s:s, s:s}", "role", "system", "content", system);
    if (!m || json_array_append_new(s->messages, m))
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "system message: not valid UTF-8");
    return LLM8_STATUS_OK;
}

typedef struct reply {
    char *text;
    size_t len, cap;
    llm8_text_callback cb;
    void *user;
} reply;

static bool keep_reply(void *user, const char *text, size_t len, int32_t token) {
    reply *r = user;
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        while (cap < r->len + len + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) return false;
        r->text = t, r->cap = cap;
    }
    memcpy(r->text + r->len, text, len);
    r->len += len;
    r->text[r->len] = 0;
    return r->cb ? r->cb(r->user, text, len, token) : true;
}

/* Renders the conversation and tokenizes it as the model saw it in training: special tokens
 * parsed, BOS only when the template does not write it. */
static llm8_status render_ids(llm8_session *s, int32_t **ids, size_t *n) {
    const llm8_tokenizer *tok = s->model->tok;
    json_t *req = json_pack("{s:O}", "messages", s->messages);
    if (!req) return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    l8_chat_opts opts = {.add_generation_prompt = true, .date_string = s->date_string};
    char *text = NULL;
    size_t len = 0;
    l8_err e = {""};
    llm8_status st = l8_chat_apply(tok, req, &opts, &text, &len, &e);
    json_decref(req);
    if (st) return l8_session_fail(s, st, "chat template: %s", e.msg);
    uint32_t flags = LLM8_TOKENIZE_PARSE_SPECIAL | (l8_tokenizer_chat_template(tok) ? 0 : LLM8_TOKENIZE_ADD_BOS);
    size_t cap = len + 8;
    *ids = malloc(cap * sizeof(int32_t));
    st = *ids ? llm8_tokenize(tok, text, len, flags, *ids, cap, n) : LLM8_STATUS_OUT_OF_MEMORY;
    free(text);
    if (st) {
        free(*ids);
        *ids = NULL;
        return l8_session_fail(s, st, "chat: the rendered conversation does not tokenize (%s)", llm8_status_to_string(st));
    }
    return LLM8_STATUS_OK;
}

llm8_status llm8_session_chat(llm8_session *s, const char *user_message, const llm8_generate_params *params,
                              llm8_text_callback cb, void *user, llm8_run_stats *stats) {
    if (!s || !user_message) return LLM8_STATUS_INVALID_ARGUMENT;
    if (!l8_begin_run(s)) return LLM8_STATUS_INVALID_ARGUMENT;
    llm8_status st = ensure_messages(s);
    json_t *m = st ? NULL : json_pack("{s:s, s:s}", "role", "user", "content", user_message);
    if (!m) {
        l8_end_run(s);
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "user message: not valid UTF-8");
    }
    json_array_append_new(s->messages, m);
    int32_t *ids = NULL;
    size_t n = 0;
    if ((st = render_ids(s, &ids, &n))) {
        json_array_remove(s->messages, json_array_size(s->messages) - 1);
        l8_end_run(s);
        return st;
    }
    /* the cached prefix: what the context already holds of this rendering (at least one token is
     * fed again, so that there are logits to sample from) */
    size_t keep = 0;
    while (keep < n && keep < (size_t)s->n_past && s->tokens[keep] == ids[keep]) keep++;
    if (keep == n) keep = n - 1;
    s->n_past = (int32_t)keep;

    llm8_generate_params p = params ? *params : llm8_generate_default_params();
    p.add_bos = false;
    reply r = {.cb = cb, .user = user};
    st = l8_generate_ids(s, ids + keep, n - keep, &p, keep_reply, &r, stats);
    free(ids);
    /* the answer joins the conversation even when cut short, so that the history matches what
     * the user saw; a failure before any text removes the turn */
    if (r.len || st == LLM8_STATUS_OK) {
        json_t *a = json_pack("{s:s, s:s%}", "role", "assistant", "content", r.text ? r.text : "", r.len);
        if (a) json_array_append_new(s->messages, a);
    } else {
        json_array_remove(s->messages, json_array_size(s->messages) - 1);
    }
    free(r.text);
    l8_end_run(s);
    return st;
}
