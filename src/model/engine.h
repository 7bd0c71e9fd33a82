/* The production forward pass: kernels from the dispatch table, threads from a pool. */
#ifndef L8_ENGINE_H
#define L8_ENGINE_H

#include "kernels/kernels.h"
#include "model/forward.h"
#include "runtime/threadpool.h"

enum { ATT_BLOCK = 16 }; /* query tokens per attention task (they share each widened K/V block) */

/* Per-session compute state: the pool and scratch for batches of up to max_n tokens. */
typedef struct l8_engine {
    const l8_kernels *k;
    l8_pool *pool;
    int32_t max_n;
    int32_t n_ctx;     /* the longest context the scratch serves */
    size_t wide;       /* max(n_embd, n_ff, n_head * head_dim) */
    float *x, *xn;     /* (max_n, n_embd) residual stream, normed */
    float *q, *att;    /* (max_n, n_head * head_dim) */
    float *kk, *vv;    /* (max_n, kv_dim) */
    float *proj;       /* (max_n, n_embd) */
    float *gate, *up;  /* (max_n, n_ff) */
    int8_t *xq;        /* (max_n, wide + 8) quantized activations */
    float *xs;         /* (max_n) their scales */
    float *scores;     /* (threads, ATT_BLOCK, heads per KV head, n_ctx) attention scores */
    float *rows;       /* (threads, wide) widened float weight rows */
    float *normw;      /* (n_embd) a norm weight */
    float *cs;         /* (max_n, head_dim) cos | sin of each position's RoPE angles */
} l8_engine;

/* n_threads <= 0: one per physical core. */
llm8_status l8_engine_init(l8_engine *e, const llm8_model_info *m, int32_t n_ctx, int32_t max_n, int n_threads);
void l8_engine_free(l8_engine *e);

/* One sequence of a batch: n tokens at positions pos0.. of the context whose cache is kv. */
typedef struct l8_seq {
    l8_kv_cache *kv;
    int32_t pos0, n;
} l8_seq;

/* Several sequences in one pass (continuous batching): their tokens (or embeddings) concatenated
 * in order, sum of n <= e->max_n, each kv->n_ctx <= e->n_ctx. The matmuls see every token at
 * once, so each weight is read once for the whole batch; attention stays within a sequence.
 * logits receives one row per sequence (its last position), or with all_logits one row per
 * token; hidden (may be NULL) one row per token. Per-token results equal those of separate
 * passes. */
llm8_status l8_forward_fast_batch(l8_engine *e, const l8_weights *w, const llm8_model_info *m, const l8_rope *rope,
                                  const l8_seq *seqs, int n_seqs, const int32_t *tokens, const float *embd,
                                  float *logits, bool all_logits, float *hidden);

/* As l8_forward_ref (same arguments and results), for n <= e->max_n. */
llm8_status l8_forward_fast(l8_engine *e, const l8_weights *w, const llm8_model_info *m, const l8_rope *rope,
                            l8_kv_cache *kv, const int32_t *tokens, const float *embd, int32_t n, int32_t pos0, float *logits,
                            bool all_logits, float *hidden);

#endif
