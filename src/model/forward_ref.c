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

#include "model/forward.h"

/* ---------------------------------------------------------------- RoPE tables */

llm8_status l8_rope_init(l8_rope *r, const llm8_model_info *info) {
    int32_t half = info->head_dim / 2;
    r->half = half;
    r->inv_freq = malloc((size_t)half * sizeof(float));
    if (!r->inv_freq) return LLM8_STATUS_OUT_OF_MEMORY;
    for (int32_t i = 0; i < half; i++) {
        double f = 1.0 / pow((double)info->rope_theta, (2.0 * i) / (double)info->head_dim);
        if (strcmp(info->rope_scaling, "llama3") == 0) {
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

llm8_status l8_kv_init(l8_kv_cache *kv, const llm8_model_info *info, int32_t n_ctx) {
    kv->n_ctx = n_ctx;
    kv->kv_dim = info->n_kv_head * info->head_dim;
    size_t n = (size_t)info->n_layer * (size_t)n_ctx * (size_t)kv->kv_dim;
    /* calloc of large blocks maps fresh zero pages: memory is touched only as the context grows */
    kv->k = calloc(n, sizeof(float));
    kv->v = calloc(n, sizeof(float));
    if (!kv->k || !kv->v) {
        l8_kv_free(kv);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    return LLM8_STATUS_OK;
}

void l8_kv_free(l8_kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

/* ---------------------------------------------------------------- building blocks */

static float dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* out (n, rows) = x (n, cols) . W^T for W (rows, cols); each weight row is widened once and
 * serves all n tokens. */
static void matmul(float *out, const float *x, const l8_tensor *w, int32_t n, float *row) {
    int64_t rows = w->shape[0], cols = w->shape[1];
    for (int64_t r = 0; r < rows; r++) {
        l8_tensor_row_f32(w, r, row);
        for (int32_t t = 0; t < n; t++) out[(size_t)t * rows + r] = dot_f32(row, x + (size_t)t * cols, cols);
    }
}

static void rmsnorm(float *out, const float *x, const l8_tensor *w, int32_t dim, float eps, float *wrow) {
    l8_tensor_row_f32(w, 0, wrow);
    float ss = 0.0f;
    for (int32_t i = 0; i < dim; i++) ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int32_t i = 0; i < dim; i++) out[i] = x[i] * scale * wrow[i];
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

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
    float *row;    /* (max(n_embd, n_ff, q_dim)) one widened weight row */
} scratch;

static void scratch_free(scratch *s) {
    float **p = (float **)s;
    for (size_t i = 0; i < sizeof *s / sizeof(float *); i++) free(p[i]);
}

static bool scratch_alloc(scratch *s, const llm8_model_info *m, int32_t n, int32_t n_ctx) {
    size_t q_dim = (size_t)m->n_head * m->head_dim, kv_dim = (size_t)m->n_kv_head * m->head_dim;
    size_t widest = (size_t)m->n_embd;
    if ((size_t)m->n_ff > widest) widest = (size_t)m->n_ff;
    if (q_dim > widest) widest = q_dim;
    memset(s, 0, sizeof *s);
    s->x = malloc((size_t)n * m->n_embd * sizeof(float));
    s->xn = malloc((size_t)n * m->n_embd * sizeof(float));
    s->q = malloc((size_t)n * q_dim * sizeof(float));
    s->k = malloc((size_t)n * kv_dim * sizeof(float));
    s->v = malloc((size_t)n * kv_dim * sizeof(float));
    s->att = malloc((size_t)n * q_dim * sizeof(float));
    s->proj = malloc((size_t)n * m->n_embd * sizeof(float));
    s->gate = malloc((size_t)n * m->n_ff * sizeof(float));
    s->up = malloc((size_t)n * m->n_ff * sizeof(float));
    s->scores = malloc((size_t)n_ctx * sizeof(float));
    s->row = malloc(widest * sizeof(float));
    float **p = (float **)s;
    for (size_t i = 0; i < sizeof *s / sizeof(float *); i++)
        if (!p[i]) {
            scratch_free(s);
            return false;
        }
    return true;
}

/* Causal attention of token t (at absolute position pos) over cache positions 0..pos. */
static void attend(float *out, const float *q, const l8_kv_cache *kv, int32_t layer, int32_t pos,
                   const llm8_model_info *m, float *scores) {
    int32_t hd = m->head_dim, group = m->n_head / m->n_kv_head;
    const float *kl = kv->k + (size_t)layer * kv->n_ctx * kv->kv_dim;
    const float *vl = kv->v + (size_t)layer * kv->n_ctx * kv->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    for (int32_t h = 0; h < m->n_head; h++) {
        int32_t kvh = h / group; /* repeat_kv: query heads [kvh*group, (kvh+1)*group) share a K/V head */
        const float *qh = q + (size_t)h * hd;
        float maxs = -INFINITY;
        for (int32_t p = 0; p <= pos; p++) {
            scores[p] = dot_f32(qh, kl + (size_t)p * kv->kv_dim + (size_t)kvh * hd, hd) * scale;
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
            const float *vp = vl + (size_t)p * kv->kv_dim + (size_t)kvh * hd;
            for (int32_t i = 0; i < hd; i++) oh[i] += a * vp[i];
        }
    }
}

llm8_status l8_forward_ref(const l8_weights *w, const llm8_model_info *m, const l8_rope *rope,
                           l8_kv_cache *kv, const int32_t *tokens, int32_t n, int32_t pos0, float *logits,
                           bool all_logits, float *hidden) {
    scratch s;
    if (!scratch_alloc(&s, m, n, kv->n_ctx)) return LLM8_STATUS_OUT_OF_MEMORY;
    int32_t dim = m->n_embd, hd = m->head_dim, q_dim = m->n_head * hd, kv_dim = kv->kv_dim, ff = m->n_ff;

    for (int32_t t = 0; t < n; t++) l8_tensor_row_f32(&w->tok_embd, tokens[t], s.x + (size_t)t * dim);

    for (int32_t l = 0; l < m->n_layer; l++) {
        const l8_layer *L = &w->layers[l];
        /* attention block */
        for (int32_t t = 0; t < n; t++)
            rmsnorm(s.xn + (size_t)t * dim, s.x + (size_t)t * dim, &L->attn_norm, dim, m->rms_norm_eps, s.row);
        matmul(s.q, s.xn, &L->wq, n, s.row);
        matmul(s.k, s.xn, &L->wk, n, s.row);
        matmul(s.v, s.xn, &L->wv, n, s.row);
        for (int32_t t = 0; t < n; t++) {
            int32_t pos = pos0 + t;
            for (int32_t h = 0; h < m->n_head; h++) rope_apply(rope, s.q + (size_t)t * q_dim + (size_t)h * hd, pos);
            for (int32_t h = 0; h < m->n_kv_head; h++)
                rope_apply(rope, s.k + (size_t)t * kv_dim + (size_t)h * hd, pos);
            size_t at = ((size_t)l * kv->n_ctx + (size_t)pos) * kv_dim;
            memcpy(kv->k + at, s.k + (size_t)t * kv_dim, (size_t)kv_dim * sizeof(float));
            memcpy(kv->v + at, s.v + (size_t)t * kv_dim, (size_t)kv_dim * sizeof(float));
        }
        for (int32_t t = 0; t < n; t++)
            attend(s.att + (size_t)t * q_dim, s.q + (size_t)t * q_dim, kv, l, pos0 + t, m, s.scores);
        matmul(s.proj, s.att, &L->wo, n, s.row);
        for (size_t i = 0; i < (size_t)n * dim; i++) s.x[i] += s.proj[i];

        /* MLP block: down(silu(gate(x)) * up(x)) */
        for (int32_t t = 0; t < n; t++)
            rmsnorm(s.xn + (size_t)t * dim, s.x + (size_t)t * dim, &L->ffn_norm, dim, m->rms_norm_eps, s.row);
        matmul(s.gate, s.xn, &L->w_gate, n, s.row);
        matmul(s.up, s.xn, &L->w_up, n, s.row);
        for (size_t i = 0; i < (size_t)n * ff; i++) s.gate[i] = silu(s.gate[i]) * s.up[i];
        matmul(s.proj, s.gate, &L->w_down, n, s.row);
        for (size_t i = 0; i < (size_t)n * dim; i++) s.x[i] += s.proj[i];
    }

    for (int32_t t = 0; t < n; t++)
        rmsnorm(s.xn + (size_t)t * dim, s.x + (size_t)t * dim, &w->norm, dim, m->rms_norm_eps, s.row);
    if (hidden) memcpy(hidden, s.xn, (size_t)n * dim * sizeof(float));
    if (logits) {
        if (all_logits) {
            matmul(logits, s.xn, &w->output, n, s.row);
        } else {
            matmul(logits, s.xn + (size_t)(n - 1) * dim, &w->output, 1, s.row);
        }
    }
    scratch_free(&s);
    return LLM8_STATUS_OK;
}
