/*
 * A source that rotates another (see l8_source_rotate in source.h). With x' = T1^T x the
 * rotated residual stream and m' = T2^T m the rotated input of the down projection:
 *   embedding rows     e'   = T1^T e
 *   q, k, v, gate, up  w'_r = T1^T (g ∘ w_r)      g: the RMSNorm weight before them
 *   head               h'_v = T1^T (g_out ∘ h_v)
 *   o_proj             W'   = T1^T W              (each column)
 *   down_proj          W'   = T1^T W T2           (each row by T2, then each column by T1)
 *   every RMSNorm weight becomes ones (RMSNorm commutes with an orthogonal rotation).
 * o_proj and down_proj are transformed whole (one matrix in memory at a time); everything else
 * row by row.
 */
#include <stdlib.h>
#include <string.h>

#include "convert/source.h"

typedef struct rot_impl {
    l8_source *inner;
    l8_rot t1, t2;
    float *tmp;          /* (max(m1, m2)) */
    float *norm;         /* (n_embd) a norm weight */
    l8_role norm_role;   /* which one norm holds, with norm_layer */
    int32_t norm_layer;
    float *whole;        /* the cached transformed matrix (o_proj or down_proj) */
    l8_role whole_role;
    int32_t whole_layer;
} rot_impl;

static llm8_status load_norm(rot_impl *r, l8_role role, int32_t layer, l8_err *e) {
    if (r->norm_role == role && r->norm_layer == layer) return LLM8_STATUS_OK;
    int64_t rows, cols;
    l8_role_shape(role, &r->inner->info, &rows, &cols);
    llm8_status st = r->inner->read_rows(r->inner, role, layer, 0, rows, r->norm, e);
    if (st) return st;
    r->norm_role = role;
    r->norm_layer = layer;
    return LLM8_STATUS_OK;
}

static void transform_columns(const l8_rot *t, float *w, int64_t rows, int64_t cols, float *col, float *tmp) {
    for (int64_t c = 0; c < cols; c++) {
        for (int64_t i = 0; i < rows; i++) col[i] = w[i * cols + c];
        l8_rot_apply_t(t, col, tmp);
        for (int64_t i = 0; i < rows; i++) w[i * cols + c] = col[i];
    }
}

static llm8_status load_whole(rot_impl *r, l8_role role, int32_t layer, l8_err *e) {
    if (r->whole && r->whole_role == role && r->whole_layer == layer) return LLM8_STATUS_OK;
    free(r->whole);
    r->whole = NULL;
    int64_t rows, cols;
    l8_role_shape(role, &r->inner->info, &rows, &cols);
    float *w = malloc((size_t)(rows * cols) * sizeof(float)), *col = malloc((size_t)rows * sizeof(float));
    if (!w || !col) {
        free(w);
        free(col);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory rotating a %lld x %lld matrix", (long long)rows,
                       (long long)cols);
    }
    llm8_status st = r->inner->read_rows(r->inner, role, layer, 0, rows, w, e);
    if (!st) {
        if (role == L8_ROLE_W_DOWN)
            for (int64_t i = 0; i < rows; i++) l8_rot_apply_t(&r->t2, w + i * cols, r->tmp);
        transform_columns(&r->t1, w, rows, cols, col, r->tmp);
        r->whole = w;
        r->whole_role = role;
        r->whole_layer = layer;
    } else {
        free(w);
    }
    free(col);
    return st;
}

static llm8_status rot_read_rows(l8_source *src, l8_role role, int32_t layer, int64_t r0, int64_t n, float *out,
                                 l8_err *e) {
    rot_impl *r = src->impl;
    int64_t rows, cols;
    l8_role_shape(role, &src->info, &rows, &cols);
    llm8_status st;
    switch (role) {
    case L8_ROLE_OUTPUT_NORM:
    case L8_ROLE_ATTN_NORM:
    case L8_ROLE_FFN_NORM:
        for (int64_t i = 0; i < rows; i++) out[i] = 1.0f;
        return LLM8_STATUS_OK;
    case L8_ROLE_WO:
    case L8_ROLE_W_DOWN:
        if ((st = load_whole(r, role, layer, e))) return st;
        memcpy(out, r->whole + r0 * cols, (size_t)(n * cols) * sizeof(float));
        return LLM8_STATUS_OK;
    default: break;
    }
    /* row-wise: T1^T (g ∘ w_r), with g = 1 for the embedding */
    l8_role norm = role == L8_ROLE_OUTPUT ? L8_ROLE_OUTPUT_NORM
                   : (role == L8_ROLE_W_GATE || role == L8_ROLE_W_UP) ? L8_ROLE_FFN_NORM
                   : role == L8_ROLE_TOK_EMBD ? L8_ROLE_COUNT : L8_ROLE_ATTN_NORM;
    if (norm != L8_ROLE_COUNT && (st = load_norm(r, norm, l8_role_per_layer(norm) ? layer : 0, e))) return st;
    if ((st = r->inner->read_rows(r->inner, role, layer, r0, n, out, e))) return st;
    for (int64_t i = 0; i < n; i++) {
        float *row = out + i * cols;
        if (norm != L8_ROLE_COUNT)
            for (int64_t k = 0; k < cols; k++) row[k] *= r->norm[k];
        l8_rot_apply_t(&r->t1, row, r->tmp);
    }
    return LLM8_STATUS_OK;
}

static void rot_close(l8_source *src) {
    rot_impl *r = src->impl;
    if (!r) return;
    l8_source_free(r->inner);
    l8_rot_free(&r->t1);
    l8_rot_free(&r->t2);
    free(r->tmp);
    free(r->norm);
    free(r->whole);
    free(r);
}

llm8_status l8_source_rotate(l8_source *inner, uint64_t seed, l8_source **out, l8_err *e) {
    *out = NULL;
    l8_source *src = calloc(1, sizeof *src);
    rot_impl *r = calloc(1, sizeof *r);
    if (!src || !r) {
        free(src);
        free(r);
        l8_source_free(inner);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    r->inner = inner;
    r->norm_role = L8_ROLE_COUNT;
    src->impl = r;
    src->close = rot_close;
    src->read_rows = rot_read_rows;
    src->info = inner->info;
    src->info.tied_embeddings = false; /* the head now differs from the embedding by the final norm */
    /* the common fields move to the wrapper */
    src->tokenizer_json = inner->tokenizer_json, inner->tokenizer_json = NULL;
    src->tokenizer_json_len = inner->tokenizer_json_len;
    src->tokenizer_config_json = inner->tokenizer_config_json, inner->tokenizer_config_json = NULL;
    src->tokenizer_config_json_len = inner->tokenizer_config_json_len;
    src->rope_freqs = inner->rope_freqs, inner->rope_freqs = NULL;
    src->description = inner->description, inner->description = NULL;
    const llm8_model_info *m = &inner->info;
    llm8_status st = l8_rot_make(&r->t1, m->n_embd, seed);
    if (!st) st = l8_rot_make(&r->t2, m->n_ff, seed ^ 0x5eed5eed5eed5eedull);
    if (st) {
        l8_source_free(src);
        return l8_fail(e, st, "cannot rotate: hidden size %d or intermediate size %d has an odd factor above %d",
                       m->n_embd, m->n_ff, L8_ROT_MAX_M);
    }
    int32_t mm = r->t1.m > r->t2.m ? r->t1.m : r->t2.m;
    r->tmp = malloc((size_t)mm * sizeof(float));
    r->norm = malloc((size_t)m->n_embd * sizeof(float));
    if (!r->tmp || !r->norm) {
        l8_source_free(src);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    src->final_norm = malloc((size_t)m->n_embd * sizeof(float));
    if (!src->final_norm) {
        l8_source_free(src);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    int64_t nrows, ncols;
    l8_role_shape(L8_ROLE_OUTPUT_NORM, m, &nrows, &ncols);
    if ((st = inner->read_rows(inner, L8_ROLE_OUTPUT_NORM, 0, 0, nrows, src->final_norm, e))) {
        l8_source_free(src);
        return st;
    }
    /* The per-layer norms vanish into the weights too; kept so that an adapter's A can be folded
     * in the same way when the file is run (src/lora/lora.c). 2 * n_layer * n_embd floats. */
    size_t per = (size_t)m->n_embd;
    src->layer_norms = malloc(2 * (size_t)m->n_layer * per * sizeof(float));
    if (!src->layer_norms) {
        l8_source_free(src);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    for (int32_t l = 0; l < m->n_layer; l++) {
        float *attn = src->layer_norms + (size_t)l * per, *ffn = src->layer_norms + ((size_t)m->n_layer + l) * per;
        if ((st = inner->read_rows(inner, L8_ROLE_ATTN_NORM, l, 0, nrows, attn, e)) ||
            (st = inner->read_rows(inner, L8_ROLE_FFN_NORM, l, 0, nrows, ffn, e))) {
            l8_source_free(src);
            return st;
        }
    }
    src->rot_embd = &r->t1;
    src->rot_ffn = &r->t2;
    *out = src;
    return LLM8_STATUS_OK;
}
