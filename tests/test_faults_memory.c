/* llm8_session_memory_estimate against what llm8_session_create really allocates (glibc's
 * mallinfo2 before and after), for a float model (f32 KV cache) and a quantized one (f16), at
 * several contexts and thread counts; and its argument checks. The CLI's --max-memory refusals
 * rest on this estimate (tests/cli_faults.sh checks them end to end). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "llm8.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* the sanitizer's allocator: mallinfo2 does not see its blocks */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* small blocks in the arenas + large blocks mapped on their own */
}

static void check_model(const char *path, uint64_t kv_el) {
    char err[512];
    llm8_model *m = NULL;
    if (llm8_model_load(path, &m, err, sizeof err)) {
        CHECK(0, "load %s: %s", path, err);
        return;
    }
    const llm8_model_info *info = llm8_model_get_info(m);
    static const int32_t ctxs[] = {1, 64, 512};
    for (size_t c = 0; c < sizeof ctxs / sizeof *ctxs; c++)
        for (int th = 1; th <= 2; th++) {
            llm8_session_params sp = llm8_session_default_params();
            sp.n_ctx = ctxs[c];
            sp.n_threads = th;
            llm8_memory_estimate e;
            CHECK(llm8_session_memory_estimate(m, &sp, &e) == LLM8_STATUS_OK, "estimate");
            uint64_t kv = 2ull * info->n_layer * (uint64_t)ctxs[c] * info->n_kv_head * info->head_dim * kv_el;
            CHECK(e.n_ctx == ctxs[c] && e.kv_cache == kv, "%s ctx %d: KV %llu, expected %llu", path, ctxs[c],
                  (unsigned long long)e.kv_cache, (unsigned long long)kv);
            CHECK(e.weights == info->weight_bytes && e.total == e.weights + e.kv_cache + e.scratch, "%s: sums", path);
            size_t before = heap_in_use();
            llm8_session *s = NULL;
            CHECK(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK, "create: %s", err);
            size_t got = heap_in_use() - before;
            uint64_t want = e.kv_cache + e.scratch;
            /* the session struct, the pool's bookkeeping and malloc's headers come on top: allow 2%
             * and 12 KB, which still catches a buffer the estimate forgot or counts twice */
            bool close = SANITIZED || (got + 12288 >= want && got <= want + want / 50 + 12288);
            CHECK(close, "%s ctx %d threads %d: session_create allocated %zu bytes, the estimate says %llu", path,
                  ctxs[c], th, got, (unsigned long long)want);
            printf("%-34s ctx %4d threads %d: estimate %8llu, allocated %8zu%s\n", path, ctxs[c], th,
                   (unsigned long long)want, got, SANITIZED ? " (not compared under a sanitizer)" : "");
            llm8_session_free(s);
        }
    /* the default context and the limits */
    llm8_memory_estimate e, big;
    CHECK(llm8_session_memory_estimate(m, NULL, &e) == LLM8_STATUS_OK, "NULL params");
    CHECK(e.n_ctx == (info->n_ctx_train < 4096 ? info->n_ctx_train : 4096), "default context %d", e.n_ctx);
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = info->n_ctx_train;
    CHECK(llm8_session_memory_estimate(m, &sp, &big) == LLM8_STATUS_OK && big.total >= e.total, "monotonic");
    sp.n_ctx = info->n_ctx_train + 1;
    CHECK(llm8_session_memory_estimate(m, &sp, &e) == LLM8_STATUS_INVALID_ARGUMENT, "a context beyond the model's");
    CHECK(llm8_session_memory_estimate(NULL, &sp, &e) == LLM8_STATUS_INVALID_ARGUMENT, "NULL model");
    CHECK(llm8_session_memory_estimate(m, &sp, NULL) == LLM8_STATUS_INVALID_ARGUMENT, "NULL out");
    llm8_model_free(m);
}

int main(void) {
    check_model("models/stories260k", 4); /* f32 weights: f32 KV cache */
    const char *bin = getenv("LLM8_BIN") ? getenv("LLM8_BIN") : "build/llm8";
    char out[64], cmd[512];
    snprintf(out, sizeof out, "/tmp/llm8_test_memory_%d.gguf", (int)getpid());
    snprintf(cmd, sizeof cmd, "'%s' convert models/stories260k --quant w8a8 -o %s 2>/dev/null", bin, out);
    CHECK(system(cmd) == 0, "convert the demo model");
    check_model(out, 2); /* quantized: f16 KV cache */
    remove(out);
    printf("memory estimate: %d failures\n", failures);
    return failures ? 1 : 0;
}
