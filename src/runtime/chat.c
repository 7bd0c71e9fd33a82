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

/* Drops the oldest exchange (a user message and what followed it up to the next user message)
 * after the system message, never the last message (the turn being asked). false: none left. */
static bool drop_oldest_exchange(llm8_session *s) {
    size_t first = has_system(s) ? 1 : 0, n = json_array_size(s->messages), end = first + 1;
    if (n < first + 2) return false;
    while (end < n - 1) {
        const char *role = json_string_value(json_object_get(json_array_get(s->messages, end), "role"));
        if (role && !strcmp(role, "user")) break;
        end++;
    }
    for (size_t i = first; i < end; i++) json_array_remove(s->messages, first);
    return true;
}

/* The tokens of the system message's rendering that every rendering of the conversation starts
 * with: what a context shift inside the answer keeps. */
static int32_t system_prefix(llm8_session *s, const int32_t *ids, size_t n) {
    if (!has_system(s)) return n > 0 && ids[0] == llm8_tokenizer_bos(s->model->tok) ? 1 : 0;
    json_t *all = s->messages, *sys = json_array();
    if (!sys) return 0;
    json_array_append(sys, json_array_get(all, 0));
    s->messages = sys;
    int32_t *sid = NULL;
    size_t sn = 0, k = 0;
    if (!render_ids(s, &sid, &sn))
        while (k < sn && k < n && sid[k] == ids[k]) k++;
    s->messages = all;
    json_decref(sys);
    free(sid);
    return (int32_t)k;
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
    llm8_generate_params p = params ? *params : llm8_generate_default_params();
    if ((st = render_ids(s, &ids, &n))) {
        json_array_remove(s->messages, json_array_size(s->messages) - 1);
        l8_end_run(s);
        return st;
    }
    if (p.n_keep >= 0) {
        /* context shift: the oldest exchanges leave the conversation until the prompt leaves a
         * quarter of the context (or max_tokens, if less) for the answer */
        size_t room = (size_t)s->n_ctx / 4;
        if (p.max_tokens > 0 && (size_t)p.max_tokens < room) room = (size_t)p.max_tokens;
        while (n + room > (size_t)s->n_ctx && drop_oldest_exchange(s)) {
            free(ids);
            ids = NULL;
            if ((st = render_ids(s, &ids, &n))) {
                json_array_remove(s->messages, json_array_size(s->messages) - 1);
                l8_end_run(s);
                return st;
            }
        }
        int32_t sys = system_prefix(s, ids, n);
        if (p.n_keep < sys) p.n_keep = sys;
        if (p.n_keep >= s->n_ctx / 2) p.n_keep = s->n_ctx / 2 - 1;
    }
    /* the cached prefix: what the context already holds of this rendering (at least one token is
     * fed again, so that there are logits to sample from) */
    size_t keep = 0;
    while (keep < n && keep < (size_t)s->n_past && s->tokens[keep] == ids[keep]) keep++;
    if (keep == n) keep = n - 1;
    s->n_past = (int32_t)keep;

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
