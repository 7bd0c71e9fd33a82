/*
 * The f32 reference forward pass of LlamaForCausalLM, following Hugging Face's modeling_llama:
 * RMSNorm, rotate_half RoPE with llama3 frequency scaling, grouped-query attention over a KV
 * cache with a causal mask, SwiGLU MLP, final norm, LM head.
 *
 * Non-goals: speed and threads. Prefill of n tokens and a one-token decode step run the same
 * code (n = 1), so the fast paths of later kernels have one exact oracle.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "model/forward.h"
#include "quant/quant.h"
#include "quant/rotate.h"

/* ---------------------------------------------------------------- RoPE tables */

llm8_status l8_rope_init(l8_rope *r, const llm8_model_info *info, const float *freq_factors) {
    int32_t half = info->head_dim / 2;
    r->half = half;
    r->inv_freq = malloc((size_t)half * sizeof(float));
    if (!r->inv_freq) return LLM8_STATUS_OUT_OF_MEMORY;
    for (int32_t i = 0; i < half; i++) {
        double f = 1.0 / pow((double)info->rope_theta, (2.0 * i) / (double)info->head_dim);
        if (freq_factors) {
            float div;
            memcpy(&div, freq_factors + i, sizeof div); /* file data: no alignment promise */
            f = div > 0 ? f / div : f;
        } else if (strcmp(info->rope_scaling, "llama3") == 0) {
            /* Llama 3.1 long-context rule: long wavelengths are slowed by `factor`, short ones
             * kept, and the band between is interpolated smoothly. */
            double lo_wavelen = info->rope_original_ctx / (double)info->rope_low_freq_factor;
            double hi_wavelen = info->rope_original_ctx / (double)info->rope_high_freq_factor;
            double wavelen = 2.0 * 3.14159265358979323846 / f;
            if (wavelen > lo_wavelen) {
                f = f / info->rope_factor;
            } else if (wavelen >= hi_wavelen) {
                double smooth = (info->rope_original_ctx / wavelen - info->rope_low_freq_factor) /
                                (info->rope_high_freq_factor - info->rope_low_freq_factor);
                f = (1.0 - smooth) * f / info->rope_factor + smooth * f;
            }
        }
        r->inv_freq[i] = (float)f;
    }
    return LLM8_STATUS_OK;
}

void l8_rope_free(l8_rope *r) {
    free(r->inv_freq);
    r->inv_freq = NULL;
}

/* rotate_half convention: element i pairs with element i + head_dim/2. */
static void rope_apply(const l8_rope *r, float *head, int32_t pos) {
    for (int32_t i = 0; i < r->half; i++) {
        double angle = (double)pos * r->inv_freq[i];
        float c = (float)cos(angle), s = (float)sin(angle);
        float x0 = head[i], x1 = head[i + r->half];
        head[i] = x0 * c - x1 * s;
        head[i + r->half] = x1 * c + x0 * s;
    }
}

/* ---------------------------------------------------------------- KV cache */

llm8_status l8_kv_init(l8_kv_cache *kv, const llm8_model_info *info, int32_t n_ctx, bool f16) {
    kv->n_ctx = n_ctx;
    kv->kv_dim = info->n_kv_head * info->head_dim;
    kv->lora = NULL;
    kv->f16 = f16;
    size_t n = (size_t)info->n_layer * (size_t)n_ctx * (size_t)kv->kv_dim, el = f16 ? 2 : 4;
    /* calloc of large blocks maps fresh zero pages: memory is touched only as the context grows */
    kv->k = calloc(n, el);
    kv->v = calloc(n, el);
    if (!kv->k || !kv->v) {
        l8_kv_free(kv);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    return LLM8_STATUS_OK;
}

/* Element i of the cache as f32, and storing one. */
static inline float kv_get(const l8_kv_cache *kv, const void *base, size_t i) {
    return kv->f16 ? l8_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static void kv_put(const l8_kv_cache *kv, void *base, size_t at, const float *x, int32_t n) {
    if (kv->f16) {
        for (int32_t i = 0; i < n; i++) ((uint16_t *)base)[at + i] = l8_f32_to_f16(x[i]);
    } else {
        memcpy((float *)base + at, x, (size_t)n * sizeof(float));
    }
}

void l8_kv_free(l8_kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

/* ---------------------------------------------------------------- building blocks */

typedef struct l8_qbuf {
    int8_t *q; /* (n, widest padded input) activations quantized per token */
    float *s;  /* (n) their scales */
} l8_qbuf;

static float dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* out (n, rows) = x (n, cols) . W^T for W (rows, cols). Float weights: each row is widened once
 * and serves all n tokens. Quantized weights: x is quantized to int8 per token, as the fast
 * kernels do, and the scalar reference int8 matmul runs. */
static void matmul(float *out, const float *x, const l8_tensor *w, int32_t n, float *row, l8_qbuf *qb) {
    int64_t rows = w->shape[0], cols = w->shape[1];
    if (w->dtype == L8_DTYPE_Q8 || w->dtype == L8_DTYPE_Q4) {
        int64_t kp = l8_q_cols_padded(w->dtype, cols);
        l8_q_quantize_act_ref(x, n, cols, kp, qb->q, qb->s);
        l8_q_matmul_ref(out, qb->q, qb->s, n, w);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        l8_tensor_row_f32(w, r, row);
        for (int32_t t = 0; t < n; t++) out[(size_t)t * rows + r] = dot_f32(row, x + (size_t)t * cols, cols);
    }
}

/* A row of the embedding table as f32, whatever its storage. */
static void embedding_row(const l8_tensor *t, int32_t id, float *out) {
    if (t->dtype == L8_DTYPE_Q8 || t->dtype == L8_DTYPE_Q4) l8_q_dequantize_row(t, id, out);
    else l8_tensor_row_f32(t, id, out);
}

static void rmsnorm(float *out, const float *x, const l8_tensor *w, int32_t dim, float eps, float *wrow) {
    l8_tensor_row_f32(w, 0, wrow);
    float ss = 0.0f;
    for (int32_t i = 0; i < dim; i++) ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int32_t i = 0; i < dim; i++) out[i] = x[i] * scale * wrow[i];
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* y += the sequence's LoRA adapter on one projection (unmerged, after the base matmul). */
static void lora(const l8_kv_cache *kv, int32_t layer, l8_lora_target t, const float *x, float *y, int32_t n) {
    if (kv->lora) l8_lora_apply(kv->lora, layer, t, x, y, 0, n, NULL, NULL);
}

/* ---------------------------------------------------------------- the forward pass */

typedef struct scratch {
    float *x;      /* (n, n_embd) residual stream */
    float *xn;     /* (n, n_embd) normed */
    float *q;      /* (n, n_head * head_dim) */
    float *k;      /* (n, kv_dim) */
    float *v;      /* (n, kv_dim) */
    float *att;    /* (n, n_head * head_dim) attention output */
    float *proj;   /* (n, n_embd) */
    float *gate;   /* (n, n_ff) */
    float *up;     /* (n, n_ff) */
    float *scores; /* (n_ctx) */
    float *row;    /* (widest) one widened weight row, or a K/V row */
    l8_qbuf qb;
} scratch;

static void scratch_free(scratch *s) {
    void *all[] = {s->x, s->xn, s->q, s->k, s->v, s->att, s->proj, s->gate, s->up, s->scores, s->row, s->qb.q, s->qb.s};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

static bool scratch_alloc(scratch *s, const llm8_model_info *m, int32_t n, int32_t n_ctx) {
    size_t q_dim = (size_t)m->n_head * m->head_dim, kv_dim = (size_t)m->n_kv_head * m->head_dim;
    size_t widest = (size_t)m->n_embd;
    if ((size_t)m->n_ff > widest) widest = (size_t)m->n_ff;
    if (q_dim > widest) widest = q_dim;
    size_t fl = sizeof(float);
    s->x = malloc((size_t)n * m->n_embd * fl);
    s->xn = malloc((size_t)n * m->n_embd * fl);
    s->q = malloc((size_t)n * q_dim * fl);
    s->k = malloc((size_t)n * kv_dim * fl);
    s->v = malloc((size_t)n * kv_dim * fl);
    s->att = malloc((size_t)n * q_dim * fl);
    s->proj = malloc((size_t)n * m->n_embd * fl);
    s->gate = malloc((size_t)n * m->n_ff * fl);
    s->up = malloc((size_t)n * m->n_ff * fl);
    s->scores = malloc((size_t)n_ctx * fl);
    s->row = malloc(widest * fl);
    s->qb.q = malloc((size_t)n * (widest + 8));
    s->qb.s = malloc((size_t)n * fl);
    if (s->x && s->xn && s->q && s->k && s->v && s->att && s->proj && s->gate && s->up && s->scores && s->row &&
        s->qb.q && s->qb.s)
        return true;
    scratch_free(s);
    return false;
}

/* Causal attention of token t (at absolute position pos) over cache positions 0..pos. */
static void attend(float *out, const float *q, const l8_kv_cache *kv, int32_t layer, int32_t pos,
                   const llm8_model_info *m, float *scores) {
    int32_t hd = m->head_dim, group = m->n_head / m->n_kv_head;
    size_t layer0 = (size_t)layer * kv->n_ctx * kv->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    for (int32_t h = 0; h < m->n_head; h++) {
        int32_t kvh = h / group; /* repeat_kv: query heads [kvh*group, (kvh+1)*group) share a K/V head */
        const float *qh = q + (size_t)h * hd;
        float maxs = -INFINITY;
        for (int32_t p = 0; p <= pos; p++) {
            size_t at = layer0 + (size_t)p * kv->kv_dim + (size_t)kvh * hd;
            float d = 0.0f;
            for (int32_t i = 0; i < hd; i++) d += qh[i] * kv_get(kv, kv->k, at + i);
            scores[p] = d * scale;
            if (scores[p] > maxs) maxs = scores[p];
        }
        float sum = 0.0f;
        for (int32_t p = 0; p <= pos; p++) {
            scores[p] = expf(scores[p] - maxs);
            sum += scores[p];
        }
        float *oh = out + (size_t)h * hd;
        memset(oh, 0, (size_t)hd * sizeof(float));
        for (int32_t p = 0; p <= pos; p++) {
            float a = scores[p] / sum;
            size_t at = layer0 + (size_t)p * kv->kv_dim + (size_t)kvh * hd;
            for (int32_t i = 0; i < hd; i++) oh[i] += a * kv_get(kv, kv->v, at + i);
        }
    }
}

llm8_status l8_forward_ref(const l8_weights *w, const llm8_model_info *m, const l8_rope *rope,
                           l8_kv_cache *kv, const int32_t *tokens, const float *embd, int32_t n, int32_t pos0, float *logits,
                           bool all_logits, float *hidden) {
    scratch s = {0};
    if (!scratch_alloc(&s, m, n, kv->n_ctx)) return LLM8_STATUS_OUT_OF_MEMORY;
    int32_t dim = m->n_embd, hd = m->head_dim, q_dim = m->n_head * hd, kv_dim = kv->kv_dim, ff = m->n_ff;

    if (embd) memcpy(s.x, embd, (size_t)n * dim * sizeof(float));
    else
        for (int32_t t = 0; t < n; t++) embedding_row(&w->tok_embd, tokens[t], s.x + (size_t)t * dim);

    for (int32_t l = 0; l < m->n_layer; l++) {
        const l8_layer *L = &w->layers[l];
        /* attention block */
        for (int32_t t = 0; t < n; t++)
            rmsnorm(s.xn + (size_t)t * dim, s.x + (size_t)t * dim, &L->attn_norm, dim, m->rms_norm_eps, s.row);
        matmul(s.q, s.xn, &L->wq, n, s.row, &s.qb);
        matmul(s.k, s.xn, &L->wk, n, s.row, &s.qb);
        matmul(s.v, s.xn, &L->wv, n, s.row, &s.qb);
        lora(kv, l, L8_LORA_Q, s.xn, s.q, n);
        lora(kv, l, L8_LORA_K, s.xn, s.k, n);
        lora(kv, l, L8_LORA_V, s.xn, s.v, n);
        for (int32_t t = 0; t < n; t++) {
            int32_t pos = pos0 + t;
            for (int32_t h = 0; h < m->n_head; h++) rope_apply(rope, s.q + (size_t)t * q_dim + (size_t)h * hd, pos);
            for (int32_t h = 0; h < m->n_kv_head; h++)
                rope_apply(rope, s.k + (size_t)t * kv_dim + (size_t)h * hd, pos);
            size_t at = ((size_t)l * kv->n_ctx + (size_t)pos) * kv_dim;
            kv_put(kv, kv->k, at, s.k + (size_t)t * kv_dim, kv_dim);
            kv_put(kv, kv->v, at, s.v + (size_t)t * kv_dim, kv_dim);
        }
        for (int32_t t = 0; t < n; t++)
            attend(s.att + (size_t)t * q_dim, s.q + (size_t)t * q_dim, kv, l, pos0 + t, m, s.scores);
        matmul(s.proj, s.att, &L->wo, n, s.row, &s.qb);
        lora(kv, l, L8_LORA_O, s.att, s.proj, n);
        for (size_t i = 0; i < (size_t)n * dim; i++) s.x[i] += s.proj[i];

        /* MLP block: down(silu(gate(x)) * up(x)) */
        for (int32_t t = 0; t < n; t++)
            rmsnorm(s.xn + (size_t)t * dim, s.x + (size_t)t * dim, &L->ffn_norm, dim, m->rms_norm_eps, s.row);
        matmul(s.gate, s.xn, &L->w_gate, n, s.row, &s.qb);
        matmul(s.up, s.xn, &L->w_up, n, s.row, &s.qb);
        lora(kv, l, L8_LORA_GATE, s.xn, s.gate, n);
        lora(kv, l, L8_LORA_UP, s.xn, s.up, n);
        for (size_t i = 0; i < (size_t)n * ff; i++) s.gate[i] = silu(s.gate[i]) * s.up[i];
        if (w->ffn_rot)
            for (int32_t t = 0; t < n; t++) l8_rot_apply_t(w->ffn_rot, s.gate + (size_t)t * ff, s.row);
        matmul(s.proj, s.gate, &L->w_down, n, s.row, &s.qb);
        lora(kv, l, L8_LORA_DOWN, s.gate, s.proj, n);
        for (size_t i = 0; i < (size_t)n * dim; i++) s.x[i] += s.proj[i];
    }

    for (int32_t t = 0; t < n; t++)
        rmsnorm(s.xn + (size_t)t * dim, s.x + (size_t)t * dim, &w->norm, dim, m->rms_norm_eps, s.row);
    if (hidden) memcpy(hidden, s.xn, (size_t)n * dim * sizeof(float));
    if (logits) {
        if (all_logits) {
            matmul(logits, s.xn, &w->output, n, s.row, &s.qb);
        } else {
            matmul(logits, s.xn + (size_t)(n - 1) * dim, &w->output, 1, s.row, &s.qb);
        }
    }
    scratch_free(&s);
    return LLM8_STATUS_OK;
}
