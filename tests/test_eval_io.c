/*
 * llm8_session_eval_ex: embeddings in instead of ids give the same logits; the last hidden
 * states match the f32 reference's (for float, quantized and rotated-quantized models, the
 * rotation undone); bad inputs are refused.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "llm8.h"

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* hidden states of ids from the model at path; embd_out (optional) gets the rows as the
 * embedding input that reproduces them: the f32 folder's embedding table */
static void hidden_of(const char *path, const int32_t *ids, size_t n, float *hidden, float *logits, bool reference) {
    char err[256];
    llm8_model *m;
    assert(llm8_model_load(path, &m, err, sizeof err) == LLM8_STATUS_OK);
    llm8_session_params sp = llm8_session_default_params();
    sp.reference = reference;
    llm8_session *s;
    assert(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
    llm8_eval_io io = {.ids = ids, .n = n, .hidden = hidden, .logits = logits};
    CHECK(llm8_session_eval_ex(s, &io) == LLM8_STATUS_OK, "%s: %s", path, llm8_session_last_error(s));
    llm8_session_free(s);
    llm8_model_free(m);
}

int main(void) {
    const char *bin = getenv("LLM8_BIN") ? getenv("LLM8_BIN") : "build/llm8";
    char cmd[512];
    const char *files[3] = {"/tmp/llm8_io_f32.gguf", "/tmp/llm8_io_w8a8.gguf", "/tmp/llm8_io_w8a8_norot.gguf"};
    const char *quants[3] = {"f32 --rotate on", "w8a8", "w8a8 --rotate off"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "'%s' convert models/stories260k -o %s --quant %s 2>/dev/null", bin, files[i], quants[i]);
        CHECK(system(cmd) == 0, "convert %s", quants[i]);
    }
    int32_t ids[12] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
    size_t n = 12;
    int dim = 64, nv = 512;
    static float ref[12 * 64], got[12 * 64], lg_ref[512], lg[512];
    hidden_of("models/stories260k", ids, n, ref, lg_ref, true);

    /* the fast path on the folder, a rotated f32 file (rotation undone) and the quantized files */
    const char *paths[4] = {"models/stories260k", files[0], files[1], files[2]};
    const double min_cos[4] = {0.999999, 0.999999, 0.99, 0.99};
    for (int p = 0; p < 4; p++) {
        hidden_of(paths[p], ids, n, got, NULL, false);
        double worst = 1;
        for (size_t t = 0; t < n; t++) {
            double c = cosine(ref + t * dim, got + t * dim, dim);
            if (c < worst) worst = c;
        }
        CHECK(worst >= min_cos[p], "%s: hidden states cosine %.6f < %.6f", paths[p], worst, min_cos[p]);
        printf("%s: hidden states vs the f32 reference: min cosine %.7f\n", paths[p], worst);
    }

    /* embeddings in: the embedding rows of the ids give the same logits as the ids */
    for (int p = 0; p < 3; p++) {
        char err[256];
        llm8_model *m;
        assert(llm8_model_load(p == 0 ? "models/stories260k" : files[p], &m, err, sizeof err) == LLM8_STATUS_OK);
        llm8_session *a, *b;
        assert(llm8_session_create(m, NULL, &a, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_create(m, NULL, &b, err, sizeof err) == LLM8_STATUS_OK);
        /* the embedding of each id is what a one-token eval of the id sees first: take it from
         * the f32 folder (exact for the float model; the quantized ones store int8 rows) */
        static float embd[12 * 64];
        llm8_model *f32;
        assert(llm8_model_load("models/stories260k", &f32, err, sizeof err) == LLM8_STATUS_OK);
        FILE *st = fopen("models/stories260k/model.safetensors", "rb");
        uint64_t hl;
        assert(fread(&hl, 8, 1, st) == 1);
        /* model.embed_tokens.weight is the first tensor: data offset 0 (README of the demo) */
        for (size_t t = 0; t < n; t++) {
            fseek(st, (long)(8 + hl + (uint64_t)ids[t] * dim * 4), SEEK_SET);
            assert(fread(embd + t * dim, 4, (size_t)dim, st) == (size_t)dim);
        }
        fclose(st);
        llm8_model_free(f32);
        llm8_eval_io ia = {.ids = ids, .n = n, .logits = lg};
        llm8_eval_io ib = {.embd = embd, .n = n, .logits = lg_ref};
        CHECK(llm8_session_eval_ex(a, &ia) == LLM8_STATUS_OK && llm8_session_eval_ex(b, &ib) == LLM8_STATUS_OK, "eval");
        double maxd = 0;
        /* not fmax(maxd, fabs(float difference)): that reduction crashes GCC 12.2's aarch64
         * vectorizer at -O3 (internal compiler error, Debian 12's native and cross compilers) */
        for (int i = 0; i < nv; i++) {
            double d = fabs((double)lg[i] - lg_ref[i]);
            if (d > maxd) maxd = d;
        }
        /* quantized models look ids up in int8 rows: embeddings in f32 differ by that rounding */
        CHECK(maxd < (p == 0 ? 1e-5 : 0.5), "model %d: embeddings vs ids: max logit difference %g", p, maxd);
        printf("model %d: logits from embeddings vs from ids: max difference %.3g\n", p, maxd);
        int32_t nt;
        const int32_t *ctx = llm8_session_tokens(b, &nt);
        CHECK(nt == (int32_t)n && ctx[0] == -1, "embedding positions are -1 in the context");
        llm8_eval_io bad = {.ids = ids, .embd = embd, .n = 1};
        CHECK(llm8_session_eval_ex(a, &bad) == LLM8_STATUS_INVALID_ARGUMENT, "ids and embeddings both given");
        llm8_session_free(a);
        llm8_session_free(b);
        llm8_model_free(m);
    }
    for (int i = 0; i < 3; i++) remove(files[i]);
    printf("eval io: %d failures\n", failures);
    return failures ? 1 : 0;
}
