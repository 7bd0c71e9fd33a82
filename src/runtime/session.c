/* llm8_session: a context (token ids + KV cache) on a model, and evaluation of new tokens. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quant/rotate.h"
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

llm8_status l8_session_shift(llm8_session *s, int32_t n_keep) {
    int32_t n = s->n_past, drop = (n - n_keep) / 2;
    if (n_keep < 0 || drop < 1)
        return l8_session_fail(s, LLM8_STATUS_CONTEXT_FULL, "context shift: nothing to drop (n_keep %d, %d tokens)",
                               n_keep, n);
    for (int32_t i = 0; i < n; i++)
        if (s->tokens[i] < 0)
            return l8_session_fail(s, LLM8_STATUS_UNSUPPORTED, "context shift: the context holds embedding inputs");
    /* Re-evaluating is exact; rotating the cached keys to their new positions (llama.cpp's way)
     * would be faster but rounds the f16 cache a second time. */
    int32_t *ids = malloc((size_t)(n - drop) * sizeof(int32_t));
    if (!ids) return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (context shift)");
    memcpy(ids, s->tokens, (size_t)n_keep * sizeof(int32_t));
    memcpy(ids + n_keep, s->tokens + n_keep + drop, (size_t)(n - n_keep - drop) * sizeof(int32_t));
    s->n_past = 0;
    llm8_status st = llm8_session_eval(s, ids, (size_t)(n - drop), NULL, false);
    free(ids);
    return st;
}

int32_t llm8_session_n_past(const llm8_session *s) { return s ? s->n_past : 0; }
int32_t llm8_session_n_ctx(const llm8_session *s) { return s ? s->n_ctx : 0; }

const int32_t *llm8_session_tokens(const llm8_session *s, int32_t *n) {
    if (n) *n = s ? s->n_past : 0;
    return s ? s->tokens : NULL;
}

llm8_status llm8_session_eval_ex(llm8_session *s, const llm8_eval_io *io) {
    if (!s || !io) return LLM8_STATUS_INVALID_ARGUMENT;
    size_t n = io->n;
    if (n == 0) return LLM8_STATUS_OK;
    if (!io->ids == !io->embd)
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "eval: give token ids or embeddings, not %s",
                               io->ids ? "both" : "neither");
    const llm8_model *m = s->model;
    int32_t n_vocab = m->info.n_vocab, dim = m->info.n_embd;
    for (size_t i = 0; io->ids && i < n; i++)
        if (io->ids[i] < 0 || io->ids[i] >= n_vocab)
            return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "token id %d at index %zu is outside [0, %d)",
                                   io->ids[i], i, n_vocab);
    if (n > (size_t)(s->n_ctx - s->n_past))
        return l8_session_fail(s, LLM8_STATUS_CONTEXT_FULL,
                               "%zu tokens do not fit: the context holds %d and %d are used", n, s->n_ctx,
                               s->n_past);
    const l8_rot *rot = m->file.rotated ? &m->file.rot_embd : NULL;
    float *embd = NULL; /* a rotated model's residual stream is rotated: so are its input embeddings */
    if (io->embd && rot) {
        embd = malloc(n * (size_t)dim * sizeof(float));
        if (!embd) return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
        memcpy(embd, io->embd, n * (size_t)dim * sizeof(float));
        for (size_t t = 0; t < n; t++) l8_rot_apply_t(rot, embd + t * dim, s->engine.rows);
    }
    const float *in = embd ? embd : io->embd;
    llm8_status st = LLM8_STATUS_OK;
    for (size_t done = 0; done < n && !st;) {
        if (atomic_load(&s->running) && atomic_load(&s->abort)) {
            st = l8_session_fail(s, LLM8_STATUS_ABORTED, "aborted during the prompt (%zu of %zu tokens in)", done, n);
            break;
        }
        int32_t chunk = (int32_t)(n - done < PREFILL_CHUNK ? n - done : PREFILL_CHUNK);
        bool last = done + (size_t)chunk == n, all = io->all_logits && io->logits;
        float *out = all ? io->logits + done * (size_t)n_vocab : (last ? s->logits : NULL);
        float *hidden = io->hidden ? io->hidden + done * (size_t)dim : NULL;
        const int32_t *ids = io->ids ? io->ids + done : NULL;
        const float *e = in ? in + done * (size_t)dim : NULL;
        st = s->reference ? l8_forward_ref(&m->w, &m->info, &m->rope, &s->kv, ids, e, chunk, s->n_past, out, all, hidden)
                          : l8_forward_fast(&s->engine, &m->w, &m->info, &m->rope, &s->kv, ids, e, chunk, s->n_past,
                                            out, all, hidden);
        if (st) {
            st = l8_session_fail(s, st, "out of memory in the forward pass");
            break;
        }
        for (int32_t i = 0; i < chunk; i++) s->tokens[s->n_past + i] = ids ? ids[i] : -1; /* -1: an embedding */
        if (hidden && rot) /* back to the model's own basis: h = g_out * (T1 x') */
            for (int32_t t = 0; t < chunk; t++) {
                float *h = hidden + (size_t)t * dim;
                l8_rot_apply(rot, h, s->engine.rows);
                if (m->file.final_norm)
                    for (int32_t i = 0; i < dim; i++) h[i] *= m->file.final_norm[i];
            }
        s->n_past += chunk;
        done += (size_t)chunk;
    }
    free(embd);
    if (st) return st;
    if (io->all_logits && io->logits)
        memcpy(s->logits, io->logits + (n - 1) * (size_t)n_vocab, (size_t)n_vocab * sizeof(float));
    else if (io->logits)
        memcpy(io->logits, s->logits, (size_t)n_vocab * sizeof(float));
    return LLM8_STATUS_OK;
}

llm8_status llm8_session_eval(llm8_session *s, const int32_t *ids, size_t n, float *logits, bool all_logits) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (n && !ids) return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "eval: null ids");
    llm8_eval_io io = {.ids = ids, .n = n, .logits = logits, .all_logits = all_logits};
    return llm8_session_eval_ex(s, &io);
}
