/* Converter source: a Hugging Face folder (config.json, safetensors, tokenizer files). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "convert/source.h"
#include "format/hf_config.h"
#include "format/hf_weights.h"
#include "tokenizer/tokenizer.h"
#include "util/mapfile.h"

typedef struct hf_impl {
    l8_safetensors *st;
    l8_weights w;
} hf_impl;

static const l8_tensor *role_tensor(const hf_impl *h, l8_role role, int32_t layer) {
    const l8_layer *L = &h->w.layers[layer];
    switch (role) {
    case L8_ROLE_TOK_EMBD: return &h->w.tok_embd;
    case L8_ROLE_OUTPUT_NORM: return &h->w.norm;
    case L8_ROLE_OUTPUT: return &h->w.output;
    case L8_ROLE_ATTN_NORM: return &L->attn_norm;
    case L8_ROLE_WQ: return &L->wq;
    case L8_ROLE_WK: return &L->wk;
    case L8_ROLE_WV: return &L->wv;
    case L8_ROLE_WO: return &L->wo;
    case L8_ROLE_FFN_NORM: return &L->ffn_norm;
    case L8_ROLE_W_GATE: return &L->w_gate;
    case L8_ROLE_W_UP: return &L->w_up;
    case L8_ROLE_W_DOWN: return &L->w_down;
    default: return NULL;
    }
}

static llm8_status hf_read_rows(l8_source *src, l8_role role, int32_t layer, int64_t r0, int64_t n, float *out,
                                l8_err *e) {
    hf_impl *h = src->impl;
    const l8_tensor *t = role_tensor(h, role, layer);
    if (t->ndim == 1) {
        l8_tensor_row_f32(t, 0, out);
        return LLM8_STATUS_OK;
    }
    for (int64_t i = 0; i < n; i++) l8_tensor_row_f32(t, r0 + i, out + i * t->shape[1]);
    /* The rows are read once: let the kernel drop their pages so that converting a model
     * larger than memory keeps a small resident set. */
    size_t row_bytes = (size_t)t->shape[1] * l8_dtype_size(t->dtype);
    uintptr_t lo = (uintptr_t)t->data + (size_t)r0 * row_bytes, hi = lo + (size_t)n * row_bytes;
    uintptr_t page = 4096, a = (lo + page - 1) & ~(page - 1), b = hi & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    return LLM8_STATUS_OK;
}

static void hf_close(l8_source *src) {
    hf_impl *h = src->impl;
    if (!h) return;
    l8_weights_free(&h->w);
    if (h->st) l8_st_close(h->st);
    free(h);
}

llm8_status l8_source_open_hf(const char *dir, l8_source **out, l8_err *e) {
    *out = NULL;
    l8_source *src = calloc(1, sizeof *src);
    hf_impl *h = calloc(1, sizeof *h);
    if (!src || !h) {
        free(src);
        free(h);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    src->impl = h;
    src->read_rows = hf_read_rows;
    src->close = hf_close;
    llm8_status st = l8_hf_config_load(dir, &src->info, e);
    if (!st) st = l8_source_read_tokenizer(src, dir, e);
    if (!st) st = l8_st_open_dir(dir, &h->st, e);
    if (!st) st = l8_hf_bind_weights(h->st, &src->info, &h->w, e);
    if (st) {
        l8_source_free(src);
        return st;
    }
    const char *dtype = "?";
    l8_weights_stats(&h->w, &src->info, &src->info.n_params, &src->info.weight_bytes, &dtype);
    snprintf(src->info.dtype, sizeof src->info.dtype, "%s", dtype);
    size_t dl = strlen(dir) + 64;
    src->description = malloc(dl);
    if (src->description) snprintf(src->description, dl, "Hugging Face folder %s (%s)", dir, dtype);
    *out = src;
    return LLM8_STATUS_OK;
}
