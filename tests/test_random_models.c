/*
 * test_random_models — the forward pass on small random Llama models against an independent
 * numpy oracle.
 *
 * The fixtures in tests/data/random/<name>/ were made once by tests/oracle/make_fixtures.py
 * (tools/gen_random_model.py writes the models; tests/oracle/llama_oracle.py, a float64 numpy
 * forward of Hugging Face LlamaForCausalLM, writes expected_logits.f32). Each model is evaluated
 * three ways through the public API, and every position's logits are compared with the oracle:
 *   batch    all ids in one llm8_session_eval call with all_logits
 *   decode   one id per call (the KV-cache path)
 *   chunked  a first call of 7 ids, then calls of 5 (multi-token evals on a non-empty cache)
 * Run from the project root (ctest does).
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm8.h"

#define DATA_DIR "tests/data/random"
/* Absolute logit tolerance (the issue asks for 1e-3; tightened since the reference forward lands
 * within 1.3e-5 on every fixture). The oracle is float64; the same forward pass in float32 arithmetic
 * lands within 1.4e-5 of it on these fixtures (recorded as f32_oracle_max_abs_diff), while the
 * mistakes the fixtures were checked against (interleaved RoPE pairs, ignored llama3 scaling,
 * wrong GQA head mapping, lm_head/embedding confusion) move logits by 0.9 or more. */
#define TOLERANCE 2e-4

typedef struct {
    const char *name;
    const char *dtype;        /* expected llm8_model_info.dtype */
    int n_head, n_kv_head, head_dim;
    bool tied;
    bool llama3;
    bool optional;            /* may be skipped when the runtime reports LLM8_STATUS_UNSUPPORTED */
} fixture;

static const fixture FIXTURES[] = {
    {"f32_mha_hd64_tied", "f32", 2, 2, 64, true, false, false},
    {"bf16_gqa4_hd128_llama3_untied_3shards", "bf16", 4, 1, 128, false, true, false},
    {"bf16_gqa3_hd32_tied_2shards", "bf16", 6, 2, 32, true, false, false},
    {"f16_gqa2_hd64_llama3_tied", "f16", 2, 1, 64, true, true, true},
};

typedef struct {
    int32_t *ids;
    size_t n;
    int32_t n_vocab;
    float *logits; /* n * n_vocab */
    double max_abs_logit;
} expected;

static void load_expected(const char *name, expected *e) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/expected.json", DATA_DIR, name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "%s: %s (line %d)\n", path, jerr.text, jerr.line);
        assert(root);
    }
    json_t *ids = json_object_get(root, "ids");
    json_t *nv = json_object_get(root, "n_vocab");
    json_t *lf = json_object_get(root, "logits_file");
    assert(json_is_array(ids) && json_array_size(ids) > 0);
    assert(json_is_integer(nv) && json_is_string(lf));
    e->n = json_array_size(ids);
    e->n_vocab = (int32_t)json_integer_value(nv);
    e->ids = malloc(e->n * sizeof *e->ids);
    assert(e->ids);
    for (size_t i = 0; i < e->n; i++) {
        json_t *v = json_array_get(ids, i);
        assert(json_is_integer(v));
        e->ids[i] = (int32_t)json_integer_value(v);
        assert(e->ids[i] >= 0 && e->ids[i] < e->n_vocab);
    }

    snprintf(path, sizeof path, "%s/%s/%s", DATA_DIR, name, json_string_value(lf));
    json_decref(root);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        assert(f);
    }
    size_t count = e->n * (size_t)e->n_vocab;
    unsigned char *raw = malloc(count * 4);
    e->logits = malloc(count * sizeof *e->logits);
    assert(raw && e->logits);
    size_t got = fread(raw, 4, count, f);
    assert(got == count);
    assert(fgetc(f) == EOF); /* exactly n * n_vocab floats */
    fclose(f);
    e->max_abs_logit = 0;
    for (size_t i = 0; i < count; i++) { /* little-endian on any host */
        const unsigned char *b = raw + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&e->logits[i], &u, 4);
        assert(isfinite(e->logits[i]));
        if (fabs(e->logits[i]) > e->max_abs_logit) e->max_abs_logit = fabs(e->logits[i]);
    }
    free(raw);
}

/* Max abs difference of rows [row0, row0 + rows) of the expected logits against got. */
static double row_error(const expected *e, size_t row0, size_t rows, const float *got) {
    double worst = 0;
    for (size_t i = 0; i < rows * (size_t)e->n_vocab; i++) {
        double d = fabs((double)got[i] - (double)e->logits[row0 * e->n_vocab + i]);
        if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
    }
    return worst;
}

static void check_eval(llm8_session *s, const int32_t *ids, size_t n, float *out, bool all) {
    llm8_status st = llm8_session_eval(s, ids, n, out, all);
    if (st != LLM8_STATUS_OK)
        fprintf(stderr, "llm8_session_eval: %s: %s\n", llm8_status_to_string(st), llm8_session_last_error(s));
    assert(st == LLM8_STATUS_OK);
}

static void check_info(const fixture *fx, const llm8_model_info *info, const expected *e) {
    assert(strcmp(info->architecture, "llama") == 0);
    if (strcmp(info->dtype, fx->dtype) != 0) {
        fprintf(stderr, "%s: info.dtype \"%s\", expected \"%s\"\n", fx->name, info->dtype, fx->dtype);
        assert(0);
    }
    assert(info->n_vocab == e->n_vocab);
    assert(info->n_head == fx->n_head);
    assert(info->n_kv_head == fx->n_kv_head);
    assert(info->head_dim == fx->head_dim);
    assert(info->tied_embeddings == fx->tied);
    assert(strcmp(info->rope_scaling, fx->llama3 ? "llama3" : "none") == 0);
    if (fx->llama3) {
        assert(info->rope_factor == 8.0f);
        assert(info->rope_low_freq_factor == 1.0f);
        assert(info->rope_high_freq_factor == 4.0f);
        assert(info->rope_original_ctx == 32);
        assert(info->rope_theta == 500000.0f);
    }
    assert(info->bos_id == 1);
}

/* Returns false when an optional fixture was skipped. */
static bool run_fixture(const fixture *fx, double *worst_out) {
    char dir[512], err[512] = "";
    snprintf(dir, sizeof dir, "%s/%s", DATA_DIR, fx->name);
    expected e;
    load_expected(fx->name, &e);

    llm8_model *model = NULL;
    llm8_status st = llm8_model_load(dir, &model, err, sizeof err);
    if (st == LLM8_STATUS_UNSUPPORTED && fx->optional) {
        printf("%s: SKIPPED (optional; load says %s: %s)\n", fx->name, llm8_status_to_string(st), err);
        free(e.ids);
        free(e.logits);
        return false;
    }
    if (st != LLM8_STATUS_OK) fprintf(stderr, "%s: load: %s: %s\n", fx->name, llm8_status_to_string(st), err);
    assert(st == LLM8_STATUS_OK && model);
    const llm8_model_info *info = llm8_model_get_info(model);
    assert(info);
    check_info(fx, info, &e);

    llm8_session_params sp = llm8_session_default_params();
    llm8_session *s = NULL;
    st = llm8_session_create(model, &sp, &s, err, sizeof err);
    if (st != LLM8_STATUS_OK) fprintf(stderr, "%s: session: %s: %s\n", fx->name, llm8_status_to_string(st), err);
    assert(st == LLM8_STATUS_OK && s);
    assert(llm8_session_n_ctx(s) >= (int32_t)e.n);

    const size_t V = (size_t)e.n_vocab;
    float *got = malloc(e.n * V * sizeof *got);
    assert(got);

    /* batch: every position in one call */
    for (size_t i = 0; i < e.n * V; i++) got[i] = NAN;
    check_eval(s, e.ids, e.n, got, true);
    assert(llm8_session_n_past(s) == (int32_t)e.n);
    double err_batch = row_error(&e, 0, e.n, got);
    printf("%s: max abs logit error %.3g (max |logit| %.3g) [batch, %zu positions]\n", fx->name, err_batch,
           e.max_abs_logit, e.n);

    /* decode: one id per call, through the KV cache */
    llm8_session_reset(s);
    assert(llm8_session_n_past(s) == 0);
    double err_decode = 0;
    for (size_t p = 0; p < e.n; p++) {
        for (size_t i = 0; i < V; i++) got[i] = NAN;
        check_eval(s, &e.ids[p], 1, got, false);
        assert(llm8_session_n_past(s) == (int32_t)(p + 1));
        double d = row_error(&e, p, 1, got);
        if (!(d <= err_decode)) err_decode = d;
    }
    printf("%s: max abs logit error %.3g (max |logit| %.3g) [decode, 1 id per call]\n", fx->name, err_decode,
           e.max_abs_logit);

    /* chunked: 7 ids, then 5 at a time, on top of the cache */
    llm8_session_reset(s);
    double err_chunk = 0;
    for (size_t p = 0; p < e.n;) {
        size_t k = p == 0 ? 7 : 5;
        if (k > e.n - p) k = e.n - p;
        for (size_t i = 0; i < k * V; i++) got[i] = NAN;
        check_eval(s, &e.ids[p], k, got, true);
        double d = row_error(&e, p, k, got);
        if (!(d <= err_chunk)) err_chunk = d;
        p += k;
        assert(llm8_session_n_past(s) == (int32_t)p);
    }
    printf("%s: max abs logit error %.3g (max |logit| %.3g) [chunked 7+5+...]\n", fx->name, err_chunk,
           e.max_abs_logit);

    double worst = err_batch;
    if (!(err_decode <= worst)) worst = err_decode;
    if (!(err_chunk <= worst)) worst = err_chunk;
    *worst_out = worst;

    free(got);
    llm8_session_free(s);
    llm8_model_free(model);
    free(e.ids);
    free(e.logits);
    return true;
}

int main(void) {
    double worst = 0;
    int failures = 0, ran = 0;
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) {
        double w = 0;
        if (!run_fixture(&FIXTURES[i], &w)) continue;
        ran++;
        if (!(w <= TOLERANCE)) {
            fprintf(stderr, "%s: FAIL: max abs logit error %.3g > %.1g\n", FIXTURES[i].name, w, TOLERANCE);
            failures++;
        }
        if (!(w <= worst)) worst = w;
    }
    printf("random models: %d run, worst max abs logit error %.3g (tolerance %.1g)\n", ran, worst, TOLERANCE);
    assert(failures == 0);
    return 0;
}
