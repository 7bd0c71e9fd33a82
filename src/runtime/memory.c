/*
 * llm8_session_memory_estimate: the bytes a session will use, computed from the shapes before
 * anything is allocated, so that a program can refuse a context that does not fit (the CLI's
 * --max-memory and its check against the machine's available memory) instead of being killed
 * by the OOM killer half-way through a long prompt.
 *
 * The formulas mirror the allocations of llm8_session_create: the KV cache (l8_kv_init), the
 * engine's scratch (l8_engine_init in model/forward_fast.c) and the session's own arrays.
 * tests/test_faults_memory.c compares them with what malloc really hands out, so a change to
 * one side that forgets the other fails there.
 */
#include "llm8.h"
#include "model/engine.h"
#include "runtime/runtime.h"
#include "runtime/threadpool.h"

/* session.c's PREFILL_CHUNK: the engine's scratch holds this many tokens. */
enum { SCRATCH_TOKENS = 256 };

llm8_status llm8_session_memory_estimate(const llm8_model *model, const llm8_session_params *params,
                                         llm8_memory_estimate *out) {
    if (!model || !out) return LLM8_STATUS_INVALID_ARGUMENT;
    const llm8_model_info *m = &model->info;
    int32_t n_ctx = params ? params->n_ctx : 0;
    if (n_ctx <= 0) n_ctx = m->n_ctx_train < 4096 ? m->n_ctx_train : 4096;
    if (n_ctx > m->n_ctx_train) return LLM8_STATUS_INVALID_ARGUMENT;
    int threads = params && params->n_threads > 0 ? params->n_threads : l8_physical_cores();

    uint64_t ctx = (uint64_t)n_ctx, kv_dim = (uint64_t)m->n_kv_head * (uint64_t)m->head_dim;
    uint64_t kv_el = l8_weights_quantized(&model->w) ? 2 : 4; /* f16 cache for quantized weights */
    out->n_ctx = n_ctx;
    out->weights = m->weight_bytes;
    out->kv_cache = 2 * (uint64_t)m->n_layer * ctx * kv_dim * kv_el;

    uint64_t n = SCRATCH_TOKENS, embd = (uint64_t)m->n_embd, ff = (uint64_t)m->n_ff;
    uint64_t q = (uint64_t)m->n_head * (uint64_t)m->head_dim, wide = embd;
    if (ff > wide) wide = ff;
    if (q > wide) wide = q;
    uint64_t group = (uint64_t)(m->n_head / m->n_kv_head);
    uint64_t floats = n * (3 * embd + 2 * q + 2 * kv_dim + 2 * ff + 1 + (uint64_t)m->head_dim) /* x xn proj q att kk vv
                                                                                           gate up xs cs */
                      + (uint64_t)threads * ATT_BLOCK * group * ctx                        /* scores */
                      + (uint64_t)threads * wide                                          /* rows */
                      + embd;                                                             /* normw */
    out->scratch = floats * 4 + n * (wide + 8) /* xq */ + ctx * 4 /* token ids */ + (uint64_t)m->n_vocab * 4 /* logits */;
    out->total = out->weights + out->kv_cache + out->scratch;
    return LLM8_STATUS_OK;
}
