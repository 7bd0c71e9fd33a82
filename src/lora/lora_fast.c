/* LoRA on the production forward pass (forward_fast.c): the kernels' dot and axpy, tokens split
 * across the engine's threads, each sequence of a batch with its own adapter (its cache's). */
#include "lora/lora.h"
#include "model/engine.h"

typedef struct lora_ctx {
    const l8_engine *e;
    const l8_seq *seqs;
    int n_seqs;
    int32_t n, layer;
    l8_lora_target t;
    const float *x;
    float *y;
} lora_ctx;

/* Contiguous token ranges per thread, as the other per-token regions: results do not depend on
 * the thread count. */
static void lora_region(void *arg, int ith, int nth) {
    lora_ctx *c = arg;
    int32_t t0 = (int32_t)((int64_t)c->n * ith / nth), t1 = (int32_t)((int64_t)c->n * (ith + 1) / nth);
    int32_t first = 0;
    for (int i = 0; i < c->n_seqs && first < t1; first += c->seqs[i].n, i++) {
        const l8_lora_use *u = c->seqs[i].kv->lora;
        int32_t a = t0 > first ? t0 : first, b = t1 < first + c->seqs[i].n ? t1 : first + c->seqs[i].n;
        if (u && a < b) l8_lora_apply(u, c->layer, c->t, c->x, c->y, a, b, c->e->k->dot_f32, c->e->k->axpy_f32);
    }
}

void l8_lora_apply_batch(struct l8_engine *e, const struct l8_seq *seqs, int n_seqs, int32_t layer, l8_lora_target t,
                         const float *x, float *y) {
    bool any = false;
    int32_t n = 0;
    for (int i = 0; i < n_seqs; i++) {
        n += seqs[i].n;
        const l8_lora_use *u = seqs[i].kv->lora;
        if (u && l8_peft_pair(u->p, layer, t)->a) any = true;
    }
    if (!any) return; /* the common case: no adapter, no parallel region */
    lora_ctx c = {e, seqs, n_seqs, n, layer, t, x, y};
    if (n > 1) l8_pool_run(e->pool, lora_region, &c);
    else lora_region(&c, 0, 1);
}
