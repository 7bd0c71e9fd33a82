/* The f32 reference transformer: plain scalar C, kept as the oracle for every faster path. */
#ifndef L8_FORWARD_H
#define L8_FORWARD_H

#include <stdbool.h>

#include "model/model.h"

/* Per-session state of one forward pass: the KV cache and scratch buffers sized for a batch. */
typedef struct l8_kv_cache {
    int32_t n_ctx;
    int32_t kv_dim; /* n_kv_head * head_dim */
    bool f16;       /* elements are IEEE half (uint16_t) instead of float */
    void *k;        /* (n_layer, n_ctx, kv_dim) */
    void *v;        /* (n_layer, n_ctx, kv_dim) */
    /* The LoRA adapter the forward passes apply to this sequence, or NULL (src/lora/lora.h). It
     * rides with the cache because the two belong together — the cached keys and values are the
     * adapter's — and because every pass, batched ones included, already gets each sequence's
     * cache. l8_kv_init sets NULL; the session sets it. */
    const struct l8_lora_use *lora;
} l8_kv_cache;

typedef struct l8_rope {
    int32_t half;   /* head_dim / 2 */
    float *inv_freq; /* (half), llama3 scaling applied */
} l8_rope;

/* freq_factors (may be NULL): llama.cpp-style divisors of each frequency (a model file's
 * rope_freqs tensor); without them, llama3 scaling is computed from info. */
llm8_status l8_rope_init(l8_rope *r, const llm8_model_info *info, const float *freq_factors);
void l8_rope_free(l8_rope *r);

llm8_status l8_kv_init(l8_kv_cache *kv, const llm8_model_info *info, int32_t n_ctx, bool f16);
void l8_kv_free(l8_kv_cache *kv);

/* Runs n tokens (ids, or when embd is not NULL their input embeddings, n x n_embd) at positions
 * pos0..pos0+n-1 through the model, writing their keys and values
 * into the cache. logits receives (n, n_vocab) when all_logits, else (n_vocab) for the last
 * position; hidden (may be NULL) receives the final-norm hidden states (n, n_embd).
 * The caller guarantees pos0 + n <= kv->n_ctx and valid token ids. */
llm8_status l8_forward_ref(const l8_weights *w, const llm8_model_info *info, const l8_rope *rope,
                           l8_kv_cache *kv, const int32_t *tokens, const float *embd, int32_t n, int32_t pos0, float *logits,
                           bool all_logits, float *hidden);

#endif
