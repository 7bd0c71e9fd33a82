#include "format/hf_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fmt_dims(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Fetches one tensor and insists on its exact shape; d1 < 0 means a vector. */
static llm8_status bind(const l8_safetensors *st, const char *name, int64_t d0, int64_t d1, l8_tensor *out,
                        l8_err *e) {
    const l8_tensor *t;
    llm8_status s = l8_st_get(st, name, &t, e);
    if (s) return s;
    int ndim = d1 < 0 ? 1 : 2;
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (!ok) {
        char have_s[96], want_s[64];
        fmt_dims(have_s, sizeof have_s, t->ndim, t->shape);
        fmt_dims(want_s, sizeof want_s, ndim, want);
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s",
                       l8_st_file(st, l8_st_index(st, name)), name, have_s, want_s);
    }
    *out = *t;
    return LLM8_STATUS_OK;
}

static llm8_status bind_layer(const l8_safetensors *st, const llm8_model_info *p, int i, l8_layer *L, l8_err *e) {
    const int64_t E = p->n_embd, F = p->n_ff, Q = (int64_t)p->n_head * p->head_dim,
                  KV = (int64_t)p->n_kv_head * p->head_dim;
    const struct {
        const char *suffix;
        int64_t d0, d1;
        l8_tensor *dst;
    } want[] = {
        {"input_layernorm.weight", E, -1, &L->attn_norm},
        {"self_attn.q_proj.weight", Q, E, &L->wq},
        {"self_attn.k_proj.weight", KV, E, &L->wk},
        {"self_attn.v_proj.weight", KV, E, &L->wv},
        {"self_attn.o_proj.weight", E, Q, &L->wo},
        {"post_attention_layernorm.weight", E, -1, &L->ffn_norm},
        {"mlp.gate_proj.weight", F, E, &L->w_gate},
        {"mlp.up_proj.weight", F, E, &L->w_up},
        {"mlp.down_proj.weight", E, F, &L->w_down},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.%s", i, want[k].suffix);
        llm8_status s = bind(st, name, want[k].d0, want[k].d1, want[k].dst, e);
        if (s) return s;
    }
    return LLM8_STATUS_OK;
}

llm8_status l8_hf_bind_weights(const l8_safetensors *st, const llm8_model_info *info, l8_weights *w, l8_err *e) {
    memset(w, 0, sizeof *w);
    if (!st || !info || info->n_layer <= 0)
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "l8_hf_bind_weights: no tensors or no layers");
    llm8_status s;
    if ((s = bind(st, "model.embed_tokens.weight", info->n_vocab, info->n_embd, &w->tok_embd, e)) ||
        (s = bind(st, "model.norm.weight", info->n_embd, -1, &w->norm, e)))
        goto fail;
    if (info->tied_embeddings) {
        w->output = w->tok_embd;
    } else if (l8_st_index(st, "lm_head.weight") == SIZE_MAX) {
        s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: no tensor \"lm_head.weight\" and tie_word_embeddings is false",
                    l8_st_source(st));
        goto fail;
    } else if ((s = bind(st, "lm_head.weight", info->n_vocab, info->n_embd, &w->output, e))) {
        goto fail;
    }
    w->layers = calloc((size_t)info->n_layer, sizeof *w->layers);
    if (!w->layers) {
        s = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", l8_st_source(st));
        goto fail;
    }
    for (int i = 0; i < info->n_layer; i++)
        if ((s = bind_layer(st, info, i, &w->layers[i], e))) goto fail;
    return LLM8_STATUS_OK;
fail:
    l8_weights_free(w);
    memset(w, 0, sizeof *w);
    return s;
}

void l8_weights_free(l8_weights *w) {
    if (!w) return;
    free(w->layers);
    w->layers = NULL;
}

void l8_weights_stats(const l8_weights *w, const llm8_model_info *info, uint64_t *n_params, uint64_t *bytes,
                      const char **dtype_name) {
    uint64_t n = 0, b = 0;
    const l8_tensor *top[3] = {&w->tok_embd, &w->norm, &w->output};
    for (int k = 0; k < 3; k++) {
        if (k == 2 && (info->tied_embeddings || w->output.data == w->tok_embd.data)) break; /* same bytes */
        n += (uint64_t)l8_tensor_nelem(top[k]);
        b += top[k]->nbytes;
    }
    const char *dt = NULL;
    for (int i = 0; w->layers && i < info->n_layer; i++) {
        const l8_layer *L = &w->layers[i];
        const l8_tensor *all[9] = {&L->attn_norm, &L->ffn_norm, &L->wq,     &L->wk,    &L->wv,
                                   &L->wo,        &L->w_gate,   &L->w_up,   &L->w_down};
        for (int k = 0; k < 9; k++) {
            n += (uint64_t)l8_tensor_nelem(all[k]);
            b += all[k]->nbytes;
            if (k < 2) continue; /* norms are often kept in f32; the matrices set the dtype */
            const char *name = l8_dtype_name(all[k]->dtype);
            if (!dt)
                dt = name;
            else if (strcmp(dt, name) != 0)
                dt = "mixed";
        }
    }
    if (n_params) *n_params = n;
    if (bytes) *bytes = b;
    if (dtype_name) *dtype_name = dt ? dt : "?";
}
