/*
 * The production forward pass: the reference's arithmetic (forward_ref.c) on the dispatch
 * table's kernels and the thread pool. Matmuls split their 16-row weight tiles across threads
 * (q/k/v and gate/up share one quantization of their input and one parallel region); attention
 * splits (kv head, token) pairs, so the query heads of a GQA group read each key and value row
 * while it is hot. Quantized matmuls are bit-identical to the reference; float helpers differ by
 * a few ulps (tests/test_forward.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "model/engine.h"
#include "quant/quant.h"
#include "quant/rotate.h"

static bool is_quant(const l8_tensor *t) { return t->dtype == L8_DTYPE_Q8 || t->dtype == L8_DTYPE_Q4; }

static size_t widest(const llm8_model_info *m) {
    size_t w = (size_t)m->n_embd;
    if ((size_t)m->n_ff > w) w = (size_t)m->n_ff;
    if ((size_t)m->n_head * m->head_dim > w) w = (size_t)m->n_head * m->head_dim;
    return w;
}

llm8_status l8_engine_init(l8_engine *e, const llm8_model_info *m, int32_t n_ctx, int32_t max_n, int n_threads) {
    memset(e, 0, sizeof *e);
    e->k = l8_kernels_get();
    e->pool = l8_pool_create(n_threads);
    if (!e->pool) return LLM8_STATUS_OUT_OF_MEMORY;
    int nth = l8_pool_size(e->pool);
    e->max_n = max_n;
    e->n_ctx = n_ctx;
    size_t n = (size_t)max_n, q = (size_t)m->n_head * m->head_dim, kv = (size_t)m->n_kv_head * m->head_dim, f = 4;
    size_t wide = widest(m);
    e->x = malloc(n * m->n_embd * f);
    e->xn = malloc(n * m->n_embd * f);
    e->q = malloc(n * q * f);
    e->kk = malloc(n * kv * f);
    e->vv = malloc(n * kv * f);
    e->att = malloc(n * q * f);
    e->proj = malloc(n * m->n_embd * f);
    e->gate = malloc(n * m->n_ff * f);
    e->up = malloc(n * m->n_ff * f);
    e->xq = malloc(n * (wide + 8));
    e->xs = malloc(n * f);
    e->scores = malloc((size_t)nth * ATT_BLOCK * (size_t)(m->n_head / m->n_kv_head) * n_ctx * f);
    e->rows = malloc((size_t)nth * wide * f);
    e->cs = malloc(n * (size_t)m->head_dim * f);
    e->normw = malloc((size_t)m->n_embd * f);
    e->wide = wide;
    if (!e->x || !e->xn || !e->q || !e->kk || !e->vv || !e->att || !e->proj || !e->gate || !e->up || !e->xq ||
        !e->xs || !e->scores || !e->rows || !e->cs || !e->normw) {
        l8_engine_free(e);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    return LLM8_STATUS_OK;
}

void l8_engine_free(l8_engine *e) {
    void *all[] = {e->x, e->xn, e->q, e->kk, e->vv, e->att, e->proj, e->gate, e->up, e->xq, e->xs, e->scores, e->rows,
                   e->cs, e->normw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    l8_pool_free(e->pool);
    memset(e, 0, sizeof *e);
}

/* ---------------------------------------------------------------- matmuls */

typedef struct mm_job {
    float *out;
    const l8_tensor *w;
} mm_job;

typedef struct mm_ctx {
    const l8_engine *e;
    mm_job jobs[3];
    int n_jobs;
    int32_t n;
    const float *x; /* float input (for float weights) */
} mm_ctx;

static int64_t tiles_of(const l8_tensor *w) { return (w->shape[0] + 15) / 16; }

/* Thread ith takes a contiguous share of all the jobs' tiles, so q/k/v (or gate/up) of very
 * different sizes still split evenly. */
static void mm_region(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    int64_t total = 0;
    for (int j = 0; j < c->n_jobs; j++) total += tiles_of(c->jobs[j].w);
    int64_t t0 = total * ith / nth, t1 = total * (ith + 1) / nth, base = 0;
    for (int j = 0; j < c->n_jobs && t0 < t1; j++) {
        const l8_tensor *w = c->jobs[j].w;
        int64_t nt = tiles_of(w), a = t0 - base, b = t1 - base;
        base += nt;
        if (b <= 0 || a >= nt) continue;
        if (a < 0) a = 0;
        if (b > nt) b = nt;
        int64_t r0 = a * 16, r1 = b * 16 < w->shape[0] ? b * 16 : w->shape[0];
        if (is_quant(w)) {
            if (w->dtype == L8_DTYPE_Q8) c->e->k->matmul_q8(c->jobs[j].out, c->e->xq, c->e->xs, c->n, w, r0, r1);
            else c->e->k->matmul_q4(c->jobs[j].out, c->e->xq, c->e->xs, c->n, w, r0, r1);
        } else {
            int64_t rows = w->shape[0], cols = w->shape[1];
            float *row = c->e->rows + (size_t)ith * c->e->wide;
            for (int64_t r = r0; r < r1; r++) {
                l8_tensor_row_f32(w, r, row);
                for (int32_t t = 0; t < c->n; t++)
                    c->jobs[j].out[(size_t)t * rows + r] = c->e->k->dot_f32(row, c->x + (size_t)t * cols, cols);
            }
        }
    }
}

/* Per-token work split across threads: token ranges are contiguous, so results do not depend
 * on the thread count. */
typedef struct tok_ctx {
    l8_engine *e;
    const float *x;
    int32_t n;
    int64_t cols, kp;   /* quantize_act */
    const l8_rot *rot;  /* rotate */
    float *y;
    float *res;         /* resid_norm: the residual stream */
    const float *add;   /* resid_norm: added to it first (or NULL) */
    const float *normw; /* resid_norm: the norm's weights (or NULL: no norm) */
    float eps;
} tok_ctx;

static void quant_region(void *arg, int ith, int nth) {
    tok_ctx *c = arg;
    int32_t t0 = (int32_t)((int64_t)c->n * ith / nth), t1 = (int32_t)((int64_t)c->n * (ith + 1) / nth);
    if (t1 > t0)
        c->e->k->quantize_act(c->x + (size_t)t0 * c->cols, t1 - t0, c->cols, c->kp, c->e->xq + (size_t)t0 * c->kp,
                              c->e->xs + t0);
}

/* y = swiglu(y, x) (gate rows y, up rows x), then each row rotated by rot (when given). */
static void swiglu_region(void *arg, int ith, int nth) {
    tok_ctx *c = arg;
    int32_t t0 = (int32_t)((int64_t)c->n * ith / nth), t1 = (int32_t)((int64_t)c->n * (ith + 1) / nth);
    float *tmp = c->e->rows + (size_t)ith * c->e->wide, *y = c->y + (size_t)t0 * c->cols;
    if (t1 > t0) c->e->k->swiglu(y, y, c->x + (size_t)t0 * c->cols, (int64_t)(t1 - t0) * c->cols);
    if (c->rot)
        for (int32_t t = t0; t < t1; t++) l8_rot_apply_t(c->rot, c->y + (size_t)t * c->cols, tmp);
}

/* res += add (when given), then y = rmsnorm(res) * normw (when given), row by row. */
static void resid_norm_region(void *arg, int ith, int nth) {
    tok_ctx *c = arg;
    int32_t t0 = (int32_t)((int64_t)c->n * ith / nth), t1 = (int32_t)((int64_t)c->n * (ith + 1) / nth);
    for (int32_t t = t0; t < t1; t++) {
        float *r = c->res + (size_t)t * c->cols;
        if (c->add)
            for (int64_t i = 0; i < c->cols; i++) r[i] += c->add[(size_t)t * c->cols + i];
        if (c->normw) c->e->k->rmsnorm(c->y + (size_t)t * c->cols, r, c->normw, c->cols, c->eps);
    }
}

/* The per-token regions run inline for one token (decode): no wake-up of the pool. */
static void tok_run(l8_engine *e, void (*fn)(void *, int, int), tok_ctx *c) {
    if (c->n > 1) l8_pool_run(e->pool, fn, c);
    else fn(c, 0, 1);
}

/* out_j = x . W_j^T for up to three weights sharing the input x (n x cols). */
static void matmul(l8_engine *e, const float *x, int32_t n, int n_jobs, mm_job *jobs) {
    mm_ctx c = {.e = e, .n_jobs = n_jobs, .n = n, .x = x};
    memcpy(c.jobs, jobs, (size_t)n_jobs * sizeof *jobs);
    const l8_tensor *w = jobs[0].w;
    if (is_quant(w)) {
        int64_t cols = w->shape[1];
        tok_ctx q = {.e = e, .x = x, .n = n, .cols = cols, .kp = l8_q_cols_padded(w->dtype, cols)};
        if (n > 1) l8_pool_run(e->pool, quant_region, &q);
        else quant_region(&q, 0, 1);
    }
    l8_pool_run(e->pool, mm_region, &c);
}

/* ---------------------------------------------------------------- attention */

typedef struct att_ctx {
    l8_engine *e;
    const llm8_model_info *m;
    const l8_seq *seqs;
    int n_seqs;
    int32_t layer;
} att_ctx;

/* Finds the sequence of a task (tasks are numbered sequence by sequence, kv head fastest). */
static int64_t att_tasks(const llm8_model_info *m, const l8_seq *sq) {
    return (int64_t)m->n_kv_head * ((sq->n + ATT_BLOCK - 1) / ATT_BLOCK);
}

/* Causal attention, tiled: a task is one KV head and a block of up to ATT_BLOCK consecutive
 * query tokens. Each key and value row is widened once per task and serves every query head of
 * the GQA group for every token of the block, instead of once per (token, head). Scores are kept
 * per (token, head) over all positions, then softmaxed; the arithmetic per score is the same
 * dot product as a per-token loop, so results do not depend on the blocking. */
static void att_region(void *arg, int ith, int nth) {
    att_ctx *c = arg;
    const llm8_model_info *m = c->m;
    const l8_kernels *k = c->e->k;
    int32_t hd = m->head_dim, group = m->n_head / m->n_kv_head, q_dim = m->n_head * hd;
    int32_t stride = c->e->n_ctx; /* of the score rows */
    float *scores0 = c->e->scores + (size_t)ith * ATT_BLOCK * group * stride;
    float *row = c->e->rows + (size_t)ith * c->e->wide; /* one widened K or V row */
    float scale = 1.0f / sqrtf((float)hd);
    int64_t tasks = 0;
    for (int i = 0; i < c->n_seqs; i++) tasks += att_tasks(m, &c->seqs[i]);
    for (int64_t task = ith; task < tasks; task += nth) {
        int64_t local = task;
        int32_t first = 0; /* the sequence's first token in the batch */
        const l8_seq *sq = c->seqs;
        while (local >= att_tasks(m, sq)) local -= att_tasks(m, sq), first += sq->n, sq++;
        const l8_kv_cache *kv = sq->kv;
        int32_t kv_dim = kv->kv_dim, pos0 = sq->pos0;
        size_t layer0 = (size_t)c->layer * kv->n_ctx * kv_dim;
        /* scores and att rows are indexed by the token's place in the batch: offset by first */
        float *scores = scores0;
        float *att = c->e->att + (size_t)first * q_dim;
        const float *q = c->e->q + (size_t)first * q_dim;
        int32_t kvh = (int32_t)(local % m->n_kv_head), b = (int32_t)(local / m->n_kv_head);
        int32_t t0 = b * ATT_BLOCK, t1 = t0 + ATT_BLOCK < sq->n ? t0 + ATT_BLOCK : sq->n;
        int32_t last = pos0 + t1 - 1; /* the block's last position sees the most keys */
        if (kv->f16 && k->attn_f16) { /* the same arithmetic as below, in one kernel (kernels.h) */
            size_t head = (size_t)kvh * group * hd;
            k->attn_f16(att + (size_t)t0 * q_dim + head, q + (size_t)t0 * q_dim + head, q_dim, t1 - t0, group, hd,
                        pos0 + t0, (const uint16_t *)kv->k + layer0 + (size_t)kvh * hd,
                        (const uint16_t *)kv->v + layer0 + (size_t)kvh * hd, kv_dim, scale, scores, stride);
            continue;
        }
        for (int32_t p = 0; p <= last; p++) {
            size_t at = layer0 + (size_t)p * kv_dim + (size_t)kvh * hd;
            const float *kr = (const float *)kv->k + at;
            if (kv->f16) k->f16_to_f32(row, (const uint16_t *)kv->k + at, hd), kr = row;
            for (int32_t t = t0 < p - pos0 ? p - pos0 : t0; t < t1; t++) /* causal: p <= pos0 + t */
                for (int32_t g = 0; g < group; g++) {
                    const float *qh = q + (size_t)t * q_dim + (size_t)(kvh * group + g) * hd;
                    scores[((size_t)(t - t0) * group + g) * stride + p] = k->dot_f32(qh, kr, hd) * scale;
                }
        }
        for (int32_t t = t0; t < t1; t++)
            for (int32_t g = 0; g < group; g++) {
                k->softmax(scores + ((size_t)(t - t0) * group + g) * stride, pos0 + t + 1);
                memset(att + (size_t)t * q_dim + (size_t)(kvh * group + g) * hd, 0, (size_t)hd * sizeof(float));
            }
        for (int32_t p = 0; p <= last; p++) {
            size_t at = layer0 + (size_t)p * kv_dim + (size_t)kvh * hd;
            const float *vr = (const float *)kv->v + at;
            if (kv->f16) k->f16_to_f32(row, (const uint16_t *)kv->v + at, hd), vr = row;
            for (int32_t t = t0 < p - pos0 ? p - pos0 : t0; t < t1; t++)
                for (int32_t g = 0; g < group; g++) {
                    float a = scores[((size_t)(t - t0) * group + g) * stride + p];
                    k->axpy_f32(att + (size_t)t * q_dim + (size_t)(kvh * group + g) * hd, a, vr, hd);
                }
        }
    }
}

/* ---------------------------------------------------------------- the pass */

static void rope_rows(const l8_rope *r, float *x, int32_t n_heads, int32_t hd, const float *cs) {
    int32_t half = r->half;
    for (int32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hd;
        for (int32_t i = 0; i < half; i++) {
            float c = cs[i], s = cs[half + i], x0 = v[i], x1 = v[i + half];
            v[i] = x0 * c - x1 * s;
            v[i + half] = x1 * c + x0 * s;
        }
    }
}

static void store_kv(l8_engine *e, l8_kv_cache *kv, void *base, size_t at, const float *x) {
    if (kv->f16) e->k->f32_to_f16((uint16_t *)base + at, x, kv->kv_dim);
    else memcpy((float *)base + at, x, (size_t)kv->kv_dim * sizeof(float));
}

/* RoPE of each token's q and k rows, then its k and v rows into its sequence's cache, for a
 * contiguous range of the batch's tokens per thread. */
typedef struct rope_ctx {
    l8_engine *e;
    const llm8_model_info *m;
    const l8_rope *rope;
    const l8_seq *seqs;
    int32_t layer, n;
} rope_ctx;

static void rope_region(void *arg, int ith, int nth) {
    rope_ctx *c = arg;
    int32_t t0 = (int32_t)((int64_t)c->n * ith / nth), t1 = (int32_t)((int64_t)c->n * (ith + 1) / nth);
    int32_t hd = c->m->head_dim, q_dim = c->m->n_head * hd, kv_dim = c->m->n_kv_head * hd;
    const l8_seq *sq = c->seqs;
    int32_t j = t0; /* t0's place in its sequence */
    while (t0 < t1 && j >= sq->n) j -= sq->n, sq++;
    for (int32_t t = t0; t < t1; t++, j++) {
        if (j == sq->n) sq++, j = 0;
        const float *cs = c->e->cs + (size_t)t * hd;
        rope_rows(c->rope, c->e->q + (size_t)t * q_dim, c->m->n_head, hd, cs);
        rope_rows(c->rope, c->e->kk + (size_t)t * kv_dim, c->m->n_kv_head, hd, cs);
        size_t at = ((size_t)c->layer * sq->kv->n_ctx + (size_t)(sq->pos0 + j)) * kv_dim;
        store_kv(c->e, sq->kv, sq->kv->k, at, c->e->kk + (size_t)t * kv_dim);
        store_kv(c->e, sq->kv, sq->kv->v, at, c->e->vv + (size_t)t * kv_dim);
    }
}

llm8_status l8_forward_fast_batch(l8_engine *e, const l8_weights *w, const llm8_model_info *m, const l8_rope *rope,
                                  const l8_seq *seqs, int n_seqs, const int32_t *tokens, const float *embd,
                                  float *logits, bool all_logits, float *hidden) {
    int32_t n = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (seqs[i].n < 1 || seqs[i].kv->n_ctx > e->n_ctx || seqs[i].pos0 + seqs[i].n > seqs[i].kv->n_ctx)
            return LLM8_STATUS_INVALID_ARGUMENT;
        n += seqs[i].n;
    }
    if (n_seqs < 1 || n > e->max_n) return LLM8_STATUS_INVALID_ARGUMENT;
    const l8_kernels *k = e->k;
    int32_t dim = m->n_embd, hd = m->head_dim, ff = m->n_ff;
    float eps = m->rms_norm_eps;

    for (int i = 0, t = 0; i < n_seqs; i++)
        for (int32_t j = 0; j < seqs[i].n; j++, t++) {
            float *x = e->x + (size_t)t * dim;
            if (embd) memcpy(x, embd + (size_t)t * dim, (size_t)dim * sizeof(float));
            else if (is_quant(&w->tok_embd)) l8_q_dequantize_row(&w->tok_embd, tokens[t], x);
            else l8_tensor_row_f32(&w->tok_embd, tokens[t], x);
            /* cos and sin of this position's angles, in double as the reference computes them */
            float *cs = e->cs + (size_t)t * hd;
            for (int32_t r = 0; r < rope->half; r++) {
                double a = (double)(seqs[i].pos0 + j) * rope->inv_freq[r];
                cs[r] = (float)cos(a);
                cs[rope->half + r] = (float)sin(a);
            }
        }
    float *normw = e->normw;

    for (int32_t l = 0; l < m->n_layer; l++) {
        const l8_layer *L = &w->layers[l];
        l8_tensor_row_f32(&L->attn_norm, 0, normw);
        tok_ctx an = {.e = e, .n = n, .cols = dim, .y = e->xn, .res = e->x, .normw = normw, .eps = eps};
        tok_run(e, resid_norm_region, &an);
        mm_job qkv[3] = {{e->q, &L->wq}, {e->kk, &L->wk}, {e->vv, &L->wv}};
        matmul(e, e->xn, n, 3, qkv);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_Q, e->xn, e->q);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_K, e->xn, e->kk);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_V, e->xn, e->vv);
        rope_ctx rc = {e, m, rope, seqs, l, n};
        if (n > 1) l8_pool_run(e->pool, rope_region, &rc);
        else rope_region(&rc, 0, 1);
        att_ctx ac = {e, m, seqs, n_seqs, l};
        l8_pool_run(e->pool, att_region, &ac);
        mm_job o[1] = {{e->proj, &L->wo}};
        matmul(e, e->att, n, 1, o);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_O, e->att, e->proj);
        l8_tensor_row_f32(&L->ffn_norm, 0, normw);
        tok_ctx fn = {.e = e, .n = n, .cols = dim, .y = e->xn, .res = e->x, .add = e->proj, .normw = normw, .eps = eps};
        tok_run(e, resid_norm_region, &fn);
        mm_job gu[2] = {{e->gate, &L->w_gate}, {e->up, &L->w_up}};
        matmul(e, e->xn, n, 2, gu);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_GATE, e->xn, e->gate);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_UP, e->xn, e->up);
        tok_ctx sw = {.e = e, .n = n, .cols = ff, .x = e->up, .rot = w->ffn_rot, .y = e->gate};
        tok_run(e, swiglu_region, &sw);
        mm_job d[1] = {{e->proj, &L->w_down}};
        matmul(e, e->gate, n, 1, d);
        l8_lora_apply_batch(e, seqs, n_seqs, l, L8_LORA_DOWN, e->gate, e->proj);
        tok_ctx ad = {.e = e, .n = n, .cols = dim, .res = e->x, .add = e->proj};
        tok_run(e, resid_norm_region, &ad);
    }

    l8_tensor_row_f32(&w->norm, 0, normw);
    for (int32_t t = 0; t < n; t++) k->rmsnorm(e->xn + (size_t)t * dim, e->x + (size_t)t * dim, normw, dim, eps);
    if (hidden) memcpy(hidden, e->xn, (size_t)n * dim * sizeof(float));
    if (logits) {
        mm_job head[1] = {{logits, &w->output}};
        if (all_logits) {
            matmul(e, e->xn, n, 1, head);
        } else { /* each sequence's last row, gathered (proj is free by now) */
            for (int i = 0, t = 0; i < n_seqs; i++) {
                t += seqs[i].n;
                memcpy(e->proj + (size_t)i * dim, e->xn + (size_t)(t - 1) * dim, (size_t)dim * sizeof(float));
            }
            matmul(e, e->proj, n_seqs, 1, head);
        }
    }
    return LLM8_STATUS_OK;
}

llm8_status l8_forward_fast(l8_engine *e, const l8_weights *w, const llm8_model_info *m, const l8_rope *rope,
                            l8_kv_cache *kv, const int32_t *tokens, const float *embd, int32_t n, int32_t pos0, float *logits,
                            bool all_logits, float *hidden) {
    l8_seq one = {kv, pos0, n};
    return l8_forward_fast_batch(e, w, m, rope, &one, 1, tokens, embd, logits, all_logits, hidden);
}
