/*
 * A source that merges a PEFT LoRA adapter into another (see l8_source_lora in source.h):
 *   W' = W + s B A,   s = scale * alpha / r (alpha / sqrt(r) with rsLoRA)
 * row by row, in f32, for every projection the adapter targets. It sits under the rotation and
 * the quantizer (`llm8 convert SRC --lora DIR`), so a merged file is rotated and quantized like
 * any model. Row r of the update is sum_j s B[r, j] A[j, :], r axpys of A's rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/source.h"
#include "lora/lora.h"

typedef struct lora_impl {
    l8_source *inner;
    l8_peft p;
    float s;
} lora_impl;

static bool role_target(l8_role role, l8_lora_target *t) {
    switch (role) {
    case L8_ROLE_WQ: *t = L8_LORA_Q; return true;
    case L8_ROLE_WK: *t = L8_LORA_K; return true;
    case L8_ROLE_WV: *t = L8_LORA_V; return true;
    case L8_ROLE_WO: *t = L8_LORA_O; return true;
    case L8_ROLE_W_GATE: *t = L8_LORA_GATE; return true;
    case L8_ROLE_W_UP: *t = L8_LORA_UP; return true;
    case L8_ROLE_W_DOWN: *t = L8_LORA_DOWN; return true;
    default: return false;
    }
}

static llm8_status lora_read_rows(l8_source *src, l8_role role, int32_t layer, int64_t r0, int64_t n, float *out,
                                  l8_err *e) {
    lora_impl *li = src->impl;
    llm8_status st = li->inner->read_rows(li->inner, role, layer, r0, n, out, e);
    l8_lora_target t;
    if (st || !role_target(role, &t)) return st;
    const l8_lora_pair *pr = l8_peft_pair(&li->p, layer, t);
    if (!pr->a) return LLM8_STATUS_OK;
    for (int64_t i = 0; i < n; i++) {
        float *row = out + i * pr->in;
        for (int32_t j = 0; j < li->p.rank; j++) {
            float c = li->s * pr->bt[(size_t)j * pr->out + (size_t)(r0 + i)];
            const float *a = pr->a + (size_t)j * pr->in;
            for (int64_t k = 0; k < pr->in; k++) row[k] += c * a[k];
        }
    }
    return LLM8_STATUS_OK;
}

static void lora_close(l8_source *src) {
    lora_impl *li = src->impl;
    if (!li) return;
    l8_source_free(li->inner);
    l8_peft_free(&li->p);
    free(li);
}

llm8_status l8_source_lora(l8_source *inner, const char *lora_dir, float scale, l8_source **out, l8_err *e) {
    *out = NULL;
    l8_source *src = calloc(1, sizeof *src);
    lora_impl *li = calloc(1, sizeof *li);
    if (!src || !li) {
        free(src);
        free(li);
        l8_source_free(inner);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    li->inner = inner;
    src->impl = li;
    src->close = lora_close;
    src->read_rows = lora_read_rows;
    src->info = inner->info;
    /* the common fields move to the wrapper */
    src->tokenizer_json = inner->tokenizer_json, inner->tokenizer_json = NULL;
    src->tokenizer_json_len = inner->tokenizer_json_len;
    src->tokenizer_config_json = inner->tokenizer_config_json, inner->tokenizer_config_json = NULL;
    src->tokenizer_config_json_len = inner->tokenizer_config_json_len;
    src->rope_freqs = inner->rope_freqs, inner->rope_freqs = NULL;
    llm8_status st = inner->rot_ffn ? l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT,
                                              "a LoRA adapter is merged before the rotation, not after")
                                    : l8_peft_load(lora_dir, &inner->info, &li->p, e);
    if (st) {
        l8_source_free(src);
        return st;
    }
    li->s = scale * li->p.scaling;
    const char *base = inner->description ? inner->description : "a model";
    size_t dl = strlen(base) + strlen(lora_dir) + 64;
    src->description = malloc(dl);
    if (!src->description) {
        l8_source_free(src);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    snprintf(src->description, dl, "%s + LoRA %s (scale %g)", base, lora_dir, (double)scale);
    *out = src;
    return LLM8_STATUS_OK;
}
