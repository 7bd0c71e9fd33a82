/* llm8_session: a context (token ids + KV cache) on a model, and evaluation of new tokens. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/runtime.h"
#include "util/error.h"

/* Prompts are run through the model in chunks so that scratch memory stays bounded. */
enum { PREFILL_CHUNK = 256 };

llm8_status l8_session_fail(llm8_session *s, llm8_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
    va_end(ap);
    return st;
}

llm8_session_params llm8_session_default_params(void) {
    return (llm8_session_params){.n_ctx = 0, .n_threads = 0, .reference = false};
}

llm8_status llm8_session_create(llm8_model *model, const llm8_session_params *params, llm8_session **out,
                                char *err, size_t errcap) {
    l8_err e = {""};
    llm8_status st = LLM8_STATUS_OK;
    if (!model || !out) {
        st = l8_fail(&e, LLM8_STATUS_INVALID_ARGUMENT, "llm8_session_create: null argument");
        l8_err_copy(&e, err, errcap);
        return st;
    }
    *out = NULL;
    const llm8_model_info *info = &model->info;
    int32_t n_ctx = params ? params->n_ctx : 0;
    if (n_ctx <= 0) n_ctx = info->n_ctx_train < 4096 ? info->n_ctx_train : 4096;
    if (n_ctx > info->n_ctx_train) {
        st = l8_fail(&e, LLM8_STATUS_INVALID_ARGUMENT, "context of %d tokens exceeds the model's maximum of %d",
                     n_ctx, info->n_ctx_train);
        l8_err_copy(&e, err, errcap);
        return st;
    }
    llm8_session *s = calloc(1, sizeof *s);
    if (!s) return LLM8_STATUS_OUT_OF_MEMORY;
    s->model = model;
    s->n_ctx = n_ctx;
    s->tokens = malloc((size_t)n_ctx * sizeof(int32_t));
    s->logits = malloc((size_t)info->n_vocab * sizeof(float));
    s->reference = params && params->reference;
    if (!s->tokens || !s->logits || l8_kv_init(&s->kv, info, n_ctx, l8_weights_quantized(&model->w)) ||
        l8_engine_init(&s->engine, info, n_ctx, PREFILL_CHUNK, params ? params->n_threads : 0)) {
        llm8_session_free(s);
        st = l8_fail(&e, LLM8_STATUS_OUT_OF_MEMORY, "cannot allocate a context of %d tokens", n_ctx);
        l8_err_copy(&e, err, errcap);
        return st;
    }
    *out = s;
    return LLM8_STATUS_OK;
}

void llm8_session_free(llm8_session *s) {
    if (!s) return;
    llm8_session_abort(s);
    llm8_session_wait(s);
    l8_kv_free(&s->kv);
    l8_engine_free(&s->engine);
    json_decref(s->messages);
    free(s->date_string);
    free(s->tokens);
    free(s->logits);
    free(s);
}

const char *llm8_session_last_error(const llm8_session *s) { return s ? s->last_error : "null session"; }

void llm8_session_reset(llm8_session *s) {
    if (s) s->n_past = 0;
}

int32_t llm8_session_n_past(const llm8_session *s) { return s ? s->n_past : 0; }
int32_t llm8_session_n_ctx(const llm8_session *s) { return s ? s->n_ctx : 0; }

const int32_t *llm8_session_tokens(const llm8_session *s, int32_t *n) {
    if (n) *n = s ? s->n_past : 0;
    return s ? s->tokens : NULL;
}

llm8_status llm8_session_eval(llm8_session *s, const int32_t *ids, size_t n, float *logits, bool all_logits) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (n == 0) return LLM8_STATUS_OK;
    if (!ids) return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "eval: null ids");
    const llm8_model *m = s->model;
    int32_t n_vocab = m->info.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "token id %d at index %zu is outside [0, %d)",
                                   ids[i], i, n_vocab);
    if (n > (size_t)(s->n_ctx - s->n_past))
        return l8_session_fail(s, LLM8_STATUS_CONTEXT_FULL,
                               "%zu tokens do not fit: the context holds %d and %d are used", n, s->n_ctx,
                               s->n_past);
    for (size_t done = 0; done < n;) {
        if (atomic_load(&s->running) && atomic_load(&s->abort))
            return l8_session_fail(s, LLM8_STATUS_ABORTED, "aborted during the prompt (%zu of %zu tokens in)", done, n);
        int32_t chunk = (int32_t)(n - done < PREFILL_CHUNK ? n - done : PREFILL_CHUNK);
        bool last = done + (size_t)chunk == n;
        float *out = all_logits && logits ? logits + done * (size_t)n_vocab : (last ? s->logits : NULL);
        llm8_status st = s->reference ? l8_forward_ref(&m->w, &m->info, &m->rope, &s->kv, ids + done, chunk,
                                                       s->n_past, out, all_logits && logits, NULL)
                                      : l8_forward_fast(&s->engine, &m->w, &m->info, &m->rope, &s->kv, ids + done,
                                                        chunk, s->n_past, out, all_logits && logits, NULL);
        if (st) return l8_session_fail(s, st, "out of memory in the forward pass");
        memcpy(s->tokens + s->n_past, ids + done, (size_t)chunk * sizeof(int32_t));
        s->n_past += chunk;
        done += (size_t)chunk;
    }
    if (all_logits && logits) memcpy(s->logits, logits + (n - 1) * (size_t)n_vocab, (size_t)n_vocab * sizeof(float));
    else if (logits) memcpy(logits, s->logits, (size_t)n_vocab * sizeof(float));
    return LLM8_STATUS_OK;
}
