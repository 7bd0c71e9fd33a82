/* Continuous batching: one forward pass for the new tokens of several sessions of one model. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/batch.h"
#include "runtime/runtime.h"
#include "util/error.h"

struct l8_batch {
    llm8_model *model;
    int32_t n_ctx, max_tokens;
    l8_engine engine;
    int32_t *ids;    /* (max_tokens) the items' ids, concatenated */
    l8_seq *seqs;    /* (max_tokens) */
    float *logits;   /* (cap_rows, n_vocab) one row per item, grown on demand: a server's batch is
                      * mostly many tokens of a few sessions, and a 128k vocabulary makes rows costly */
    int cap_rows;
};

llm8_status l8_batch_create(llm8_model *model, int32_t n_ctx, int32_t max_tokens, int n_threads, l8_batch **out,
                            char *err, size_t errcap) {
    l8_err e = {""};
    llm8_status st = LLM8_STATUS_OK;
    if (!model || !out || n_ctx < 1 || max_tokens < 1) {
        st = l8_fail(&e, LLM8_STATUS_INVALID_ARGUMENT, "l8_batch_create: bad argument");
        l8_err_copy(&e, err, errcap);
        return st;
    }
    *out = NULL;
    l8_batch *b = calloc(1, sizeof *b);
    if (!b) return LLM8_STATUS_OUT_OF_MEMORY;
    b->model = model;
    b->n_ctx = n_ctx;
    b->max_tokens = max_tokens;
    b->ids = malloc((size_t)max_tokens * sizeof *b->ids);
    b->seqs = malloc((size_t)max_tokens * sizeof *b->seqs);
    if (!b->ids || !b->seqs || l8_engine_init(&b->engine, &model->info, n_ctx, max_tokens, n_threads)) {
        l8_batch_free(b);
        st = l8_fail(&e, LLM8_STATUS_OUT_OF_MEMORY, "cannot allocate a batch of %d tokens", max_tokens);
        l8_err_copy(&e, err, errcap);
        return st;
    }
    *out = b;
    return LLM8_STATUS_OK;
}

void l8_batch_free(l8_batch *b) {
    if (!b) return;
    if (b->engine.pool) l8_engine_free(&b->engine);
    free(b->ids);
    free(b->seqs);
    free(b->logits);
    free(b);
}

int32_t l8_batch_max_tokens(const l8_batch *b) { return b ? b->max_tokens : 0; }

static llm8_status bad(char *err, size_t errcap, llm8_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static llm8_status bad(char *err, size_t errcap, llm8_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errcap) vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return st;
}

llm8_status l8_batch_eval(l8_batch *b, const l8_batch_item *items, int n_items, char *err, size_t errcap) {
    if (err && errcap) err[0] = 0;
    if (!b || !items || n_items < 1) return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch: %d items", n_items);
    const llm8_model *m = b->model;
    int32_t total = 0;
    for (int i = 0; i < n_items; i++) {
        const l8_batch_item *it = &items[i];
        if (!it->s || it->s->model != b->model || !it->ids || it->n < 1)
            return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch item %d: no session, another model's, or no ids", i);
        if (it->s->reference)
            return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch item %d: a reference session cannot be batched", i);
        if (it->s->n_ctx > b->n_ctx)
            return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch item %d: context of %d tokens exceeds the batch's %d", i, it->s->n_ctx, b->n_ctx);
        if (it->n > it->s->n_ctx - it->s->n_past)
            return bad(err, errcap, LLM8_STATUS_CONTEXT_FULL, "batch item %d: %d tokens do not fit, %d free in the context", i, it->n, it->s->n_ctx - it->s->n_past);
        for (int j = 0; j < i; j++)
            if (items[j].s == it->s)
                return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch item %d: session repeated (item %d)", i, j);
        for (int32_t t = 0; t < it->n; t++)
            if (it->ids[t] < 0 || it->ids[t] >= m->info.n_vocab)
                return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch item %d: token id %d is outside [0, %d)", i, it->ids[t], m->info.n_vocab);
        total += it->n;
        if (total > b->max_tokens)
            return bad(err, errcap, LLM8_STATUS_INVALID_ARGUMENT, "batch item %d: more than %d tokens in the batch", i, b->max_tokens);
    }
    if (n_items > b->cap_rows) {
        float *rows = realloc(b->logits, (size_t)n_items * m->info.n_vocab * sizeof(float));
        if (!rows) return bad(err, errcap, LLM8_STATUS_OUT_OF_MEMORY, "batch: out of memory for %d logit rows", n_items);
        b->logits = rows;
        b->cap_rows = n_items;
    }
    for (int i = 0, t = 0; i < n_items; i++) {
        memcpy(b->ids + t, items[i].ids, (size_t)items[i].n * sizeof(int32_t));
        b->seqs[i] = (l8_seq){&items[i].s->kv, items[i].s->n_past, items[i].n};
        t += items[i].n;
    }
    llm8_status st = l8_forward_fast_batch(&b->engine, &m->w, &m->info, &m->rope, b->seqs, n_items, b->ids, NULL,
                                           b->logits, false, NULL);
    if (st) return bad(err, errcap, st, "batch: the forward pass failed (%d items)", n_items);
    size_t nv = (size_t)m->info.n_vocab;
    for (int i = 0; i < n_items; i++) {
        llm8_session *s = items[i].s;
        memcpy(s->tokens + s->n_past, items[i].ids, (size_t)items[i].n * sizeof(int32_t));
        s->n_past += items[i].n;
        memcpy(s->logits, b->logits + (size_t)i * nv, nv * sizeof(float));
        if (items[i].logits) memcpy(items[i].logits, b->logits + (size_t)i * nv, nv * sizeof(float));
    }
    return LLM8_STATUS_OK;
}
