/*
 * llm8_lora: a PEFT adapter loaded for one model, and a session's choice of adapter.
 *
 * Rotated files (docs/QUANT.md): with x' = T1^T x the rotated residual stream, u = x / rms(x)
 * and g a layer's RMSNorm weight, the file stores Wq' = Wq diag(g) T1 and computes the normed
 * input as xn' = T1^T u (its norms are ones), so the adapter must see the same input:
 *   q, k, v, gate, up   A' = A diag(g) T1      row j: a'_j = T1^T (g ∘ a_j), B unchanged
 *   o_proj              B' = T1^T B            its output enters the rotated residual stream
 *   down_proj           A' = A T2, B' = T1^T B  its input is the online-rotated m' = T2^T m
 * Then s B' A' (input in the rotated basis) = T1^T s B A (the original input): the same result
 * as the unrotated model with the adapter. g is not recoverable from the folded weights, so the
 * converter keeps it (L8_ROT_ATTN_NORMS, L8_ROT_FFN_NORMS).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "lora/lora.h"
#include "quant/rotate.h"
#include "runtime/runtime.h"

/* llm8_lora_info.targets is the internal target mask as is. */
_Static_assert(LLM8_LORA_Q_PROJ == 1u << L8_LORA_Q && LLM8_LORA_O_PROJ == 1u << L8_LORA_O &&
                   LLM8_LORA_DOWN_PROJ == 1u << L8_LORA_DOWN,
               "LLM8_LORA_*_PROJ bits follow l8_lora_target");

/* The stored per-layer norm weights of a rotated file: (n_layer, n_embd) floats. */
static llm8_status stored_norms(const llm8_model *m, const char *name, const float **out, l8_err *e) {
    const l8_gguf_tensor *t = l8_gguf_find_tensor(m->file.gguf, name);
    if (!t)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                       "%s: a rotated file needs its original RMSNorm weights (%s) to take a LoRA adapter; this one "
                       "was converted before llm8 stored them: convert the model again",
                       l8_gguf_name(m->file.gguf), name);
    if (t->type != L8_GGML_F32 || t->n_dims != 2 || t->ne[0] != m->info.n_embd || t->ne[1] != m->info.n_layer)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s must be f32 [%d, %d]", l8_gguf_name(m->file.gguf),
                       name, m->info.n_layer, m->info.n_embd);
    *out = t->data;
    return LLM8_STATUS_OK;
}

static llm8_status to_rotated_basis(const llm8_model *m, l8_peft *p, l8_err *e) {
    const float *attn = NULL, *ffn = NULL;
    llm8_status st = stored_norms(m, L8_ROT_ATTN_NORMS, &attn, e);
    if (!st) st = stored_norms(m, L8_ROT_FFN_NORMS, &ffn, e);
    if (st) return st;
    const l8_rot *t1 = &m->file.rot_embd, *t2 = &m->file.rot_ffn;
    float *tmp = malloc((size_t)(t1->m > t2->m ? t1->m : t2->m) * sizeof(float));
    if (!tmp) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    int32_t dim = m->info.n_embd;
    for (int32_t l = 0; l < p->n_layer; l++)
        for (int t = 0; t < L8_LORA_N_TARGETS; t++) {
            l8_lora_pair *pr = &p->pairs[(size_t)l * L8_LORA_N_TARGETS + t];
            if (!pr->a) continue;
            for (int32_t j = 0; j < p->rank; j++) {
                float *a = pr->a + (size_t)j * pr->in, *bt = pr->bt + (size_t)j * pr->out;
                if (t == L8_LORA_O || t == L8_LORA_DOWN) {
                    l8_rot_apply_t(t1, bt, tmp);
                    if (t == L8_LORA_DOWN) l8_rot_apply_t(t2, a, tmp);
                } else {
                    const float *g = (t == L8_LORA_GATE || t == L8_LORA_UP ? ffn : attn) + (size_t)l * dim;
                    for (int32_t k = 0; k < dim; k++) a[k] *= g[k];
                    l8_rot_apply_t(t1, a, tmp);
                }
            }
        }
    free(tmp);
    return LLM8_STATUS_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t fingerprint(const l8_peft *p) {
    uint64_t h = fnv(0xcbf29ce484222325ull, &p->rank, sizeof p->rank);
    for (size_t i = 0; i < (size_t)p->n_layer * L8_LORA_N_TARGETS; i++) {
        const l8_lora_pair *pr = &p->pairs[i];
        if (!pr->a) continue;
        h = fnv(h, &i, sizeof i);
        h = fnv(h, pr->a, (size_t)(p->rank * pr->in) * sizeof(float));
        h = fnv(h, pr->bt, (size_t)(p->rank * pr->out) * sizeof(float));
    }
    return h;
}

llm8_status llm8_lora_load(const llm8_model *model, const char *path, llm8_lora **out, char *err, size_t errcap) {
    l8_err e = {""};
    llm8_status st = LLM8_STATUS_OK;
    if (out) *out = NULL;
    if (!model || !path || !out) {
        st = l8_fail(&e, LLM8_STATUS_INVALID_ARGUMENT, "llm8_lora_load: null argument");
        l8_err_copy(&e, err, errcap);
        return st;
    }
    llm8_lora *lo = calloc(1, sizeof *lo);
    if (!lo) {
        st = l8_fail(&e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
        l8_err_copy(&e, err, errcap);
        return st;
    }
    st = l8_peft_load(path, &model->info, &lo->p, &e);
    if (!st && model->file.rotated) st = to_rotated_basis(model, &lo->p, &e);
    if (!st) lo->p.fingerprint = fingerprint(&lo->p);
    if (st) {
        llm8_lora_free(lo);
        l8_err_copy(&e, err, errcap);
        return st;
    }
    lo->model = model;
    lo->info.rank = lo->p.rank;
    lo->info.alpha = lo->p.alpha;
    lo->info.scaling = lo->p.scaling;
    lo->info.targets = lo->p.targets;
    lo->info.n_layers = lo->p.n_layers_adapted;
    *out = lo;
    return LLM8_STATUS_OK;
}

void llm8_lora_free(llm8_lora *lora) {
    if (!lora) return;
    l8_peft_free(&lora->p);
    free(lora);
}

const llm8_lora_info *llm8_lora_get_info(const llm8_lora *lora) { return lora ? &lora->info : NULL; }

llm8_status llm8_session_set_lora(llm8_session *s, const llm8_lora *lora, float scale) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (lora && lora->model != s->model)
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "set_lora: the adapter was loaded for another model");
    if (!isfinite(scale))
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "set_lora: the scale is not a finite number");
    if (atomic_load(&s->running))
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "set_lora: the session is running");
    float f = lora ? scale * lora->p.scaling : 0.0f;
    s->lora = (l8_lora_use){lora ? &lora->p : NULL, f};
    /* A zero factor is no adapter: the forward passes then run the base model's exact code. */
    s->kv.lora = lora && f != 0.0f ? &s->lora : NULL;
    return LLM8_STATUS_OK;
}

/* ---------------------------------------------------------------- application */

static float dot_plain(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_plain(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

enum { RANK_BLOCK = 64 }; /* ranks of A x kept on the stack at a time */

void l8_lora_apply(const l8_lora_use *u, int32_t layer, l8_lora_target t, const float *x, float *y, int32_t t0,
                   int32_t t1, l8_lora_dot_fn dot, l8_lora_axpy_fn axpy) {
    const l8_lora_pair *pr = l8_peft_pair(u->p, layer, t);
    if (!pr->a) return;
    if (!dot) dot = dot_plain;
    if (!axpy) axpy = axpy_plain;
    int32_t r = u->p->rank;
    float h[RANK_BLOCK];
    for (int32_t tok = t0; tok < t1; tok++) {
        const float *xt = x + (size_t)tok * pr->in;
        float *yt = y + (size_t)tok * pr->out;
        for (int32_t j0 = 0; j0 < r; j0 += RANK_BLOCK) {
            int32_t jn = r - j0 < RANK_BLOCK ? r - j0 : RANK_BLOCK;
            for (int32_t j = 0; j < jn; j++) h[j] = dot(pr->a + (size_t)(j0 + j) * pr->in, xt, pr->in);
            for (int32_t j = 0; j < jn; j++) axpy(yt, u->s * h[j], pr->bt + (size_t)(j0 + j) * pr->out, pr->out);
        }
    }
}
