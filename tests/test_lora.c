/*
 * test_lora — LoRA adapters through the public APIs (llm8.h, rkllm.h).
 *
 * Fixtures: two random Hugging Face models of tests/data/random and three random PEFT adapters
 * made for them by tools/gen_random_lora.py (in tests/data/lora, all seven targets):
 *   gqa3_r8_bf16        r 8, alpha 16, BF16         for bf16_gqa3_hd32_tied_2shards
 *   gqa3_r4_f32_rslora  r 4, alpha 4, rsLoRA, F32   for the same model
 *   llama3_r6_f16       r 6, alpha 12, F16          for bf16_gqa4_hd128_llama3_untied_3shards
 * The gqa3 model's dimensions (96 = 32*3, 160 = 32*5) give rotations with an odd factor, its
 * q/o width (192) differs from the hidden size, and the llama3 model is untied with GQA 4:1.
 *
 * The oracle is the model converted with the adapter merged (`llm8 convert --lora`, f32):
 *   (a) float model + unmerged adapter (fast and reference paths, the folder and a rotated f32
 *       file) vs the merged f32 file: within 1e-4 of the largest logit
 *   (b) w8a8 (rotated, and unrotated) + unmerged adapter vs the merged w8a8 file and the merged
 *       f32 file: the error of the base w8a8 file against the base f32 one, and greedy tokens
 *   (c) switching adapters between runs: none gives the base logits bit for bit, as does scale
 *       0; every choice gives the same logits as a fresh session with it
 *   (d) bad adapters: the status and a one-line message naming the problem
 *   (e) rkllm_load_lora + rkllm_run with lora_params: the same text as llm8_session_set_lora
 *   and the batched forward pass (src/runtime/batch.h, internal: llm8 serve) with a different
 *   adapter per session gives each session's own logits bit for bit.
 * Run from the project root (ctest does), with LLM8_BIN naming the CLI.
 */
#include <assert.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "llm8.h"
#include "rkllm.h"
#include "runtime/batch.h"

#define GQA3 "tests/data/random/bf16_gqa3_hd32_tied_2shards"
#define LLAMA3 "tests/data/random/bf16_gqa4_hd128_llama3_untied_3shards"
#define A_R8 "tests/data/lora/gqa3_r8_bf16"
#define A_R4 "tests/data/lora/gqa3_r4_f32_rslora"
#define A_L3 "tests/data/lora/llama3_r6_f16"

/* (a): float paths against the merged float file, relative to the largest logit. Measured
 * below 1e-6 (the merge rounds W + sBA once in f32; the unmerged path rounds Wx and sB(Ax)). */
#define FLOAT_TOL 1e-4

static const int32_t IDS[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 4, 77, 509, 260, 31, 300};
enum { N_IDS = sizeof IDS / sizeof *IDS, N_GREEDY = 24, N_SEQ = N_IDS + N_GREEDY };

static char tmpdir[64];
static const char *bin;

static void run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run_cmd(const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    CHECK(rc == 0, "command failed (%d): %s", rc, cmd);
}

static char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* ---------------------------------------------------------------- evaluation helpers */

typedef struct run {
    float *logits; /* N_SEQ x n_vocab: every position of IDS + a continuation (teacher forced) */
    int32_t greedy[N_GREEDY];
    int32_t n_vocab;
} run;

static int32_t argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* On session s: N_GREEDY greedy tokens after IDS, decoded one by one (the free-running
 * continuation), then the logits of every position of IDS + cont in one pass (cont NULL: the
 * session's own greedy tokens), so that two models are compared on the same text even where
 * their greedy choices part. */
static void eval_on(llm8_session *s, int32_t n_vocab, const int32_t *cont, run *r) {
    r->n_vocab = n_vocab;
    r->logits = malloc((size_t)N_SEQ * n_vocab * sizeof(float));
    float *last = malloc((size_t)n_vocab * sizeof(float));
    assert(r->logits && last);
    llm8_session_reset(s);
    CHECK(llm8_session_eval(s, IDS, N_IDS, last, false) == LLM8_STATUS_OK, "eval: %s", llm8_session_last_error(s));
    for (int i = 0; i < N_GREEDY; i++) {
        r->greedy[i] = argmax(last, n_vocab);
        CHECK(llm8_session_eval(s, &r->greedy[i], 1, last, false) == LLM8_STATUS_OK, "decode");
    }
    int32_t seq[N_SEQ];
    memcpy(seq, IDS, sizeof IDS);
    memcpy(seq + N_IDS, cont ? cont : r->greedy, N_GREEDY * sizeof(int32_t));
    llm8_session_reset(s);
    CHECK(llm8_session_eval(s, seq, N_SEQ, r->logits, true) == LLM8_STATUS_OK, "eval: %s", llm8_session_last_error(s));
    free(last);
}

/* Loads path, chooses the adapter (NULL: none) with scale, evaluates. */
static void eval_model(const char *path, const char *lora, float scale, bool reference, const int32_t *cont, run *r) {
    char err[512];
    llm8_model *m;
    llm8_status st = llm8_model_load(path, &m, err, sizeof err);
    CHECK(st == LLM8_STATUS_OK, "%s: %s", path, err);
    assert(st == LLM8_STATUS_OK);
    llm8_session_params sp = llm8_session_default_params();
    sp.reference = reference;
    sp.n_ctx = 64;
    llm8_session *s;
    assert(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
    llm8_lora *a = NULL;
    if (lora) {
        st = llm8_lora_load(m, lora, &a, err, sizeof err);
        CHECK(st == LLM8_STATUS_OK, "%s on %s: %s", lora, path, err);
        assert(st == LLM8_STATUS_OK);
        CHECK(llm8_session_set_lora(s, a, scale) == LLM8_STATUS_OK, "set_lora: %s", llm8_session_last_error(s));
    }
    eval_on(s, llm8_model_get_info(m)->n_vocab, cont, r);
    llm8_session_free(s);
    llm8_lora_free(a);
    llm8_model_free(m);
}

typedef struct diff {
    double max_abs, rel; /* max |a - b|, and that over max |b| */
    double cos_min;      /* the smallest per-position cosine */
    int top1_same;       /* positions whose argmax agree (of N_SEQ, teacher forced) */
    int greedy_same;     /* leading greedy tokens that agree */
} diff;

static diff compare(const run *a, const run *b) {
    diff d = {0, 0, 1, 0, 0};
    double ref_max = 0;
    for (int t = 0; t < N_SEQ; t++) {
        const float *x = a->logits + (size_t)t * a->n_vocab, *y = b->logits + (size_t)t * b->n_vocab;
        double xy = 0, xx = 0, yy = 0;
        for (int32_t i = 0; i < a->n_vocab; i++) {
            d.max_abs = fmax(d.max_abs, fabs((double)x[i] - y[i]));
            ref_max = fmax(ref_max, fabs((double)y[i]));
            xy += (double)x[i] * y[i], xx += (double)x[i] * x[i], yy += (double)y[i] * y[i];
        }
        d.cos_min = fmin(d.cos_min, xy / sqrt(xx * yy));
        d.top1_same += argmax(x, a->n_vocab) == argmax(y, b->n_vocab);
    }
    d.rel = d.max_abs / ref_max;
    while (d.greedy_same < N_GREEDY && a->greedy[d.greedy_same] == b->greedy[d.greedy_same]) d.greedy_same++;
    return d;
}

static void print_diff(const char *what, diff d) {
    printf("  %-58s max |d| %.3e  rel %.3e  cos %.7f  top-1 %2d/%d  greedy %2d/%d\n", what, d.max_abs, d.rel,
           d.cos_min, d.top1_same, N_SEQ, d.greedy_same, N_GREEDY);
}

static bool same_bits(const run *a, const run *b) {
    return !memcmp(a->logits, b->logits, (size_t)N_SEQ * a->n_vocab * sizeof(float)) &&
           !memcmp(a->greedy, b->greedy, sizeof a->greedy);
}

/* ---------------------------------------------------------------- (a) and (b) */

static void check_model(const char *model, const char *lora, float scale, const char *tag) {
    printf("%s + %s (scale %g)\n", model, lora, scale);
    char *merged32 = strdup(tmp_path("merged_f32.gguf")), *merged8 = strdup(tmp_path("merged_w8a8.gguf"));
    char *rot32 = strdup(tmp_path("rot_f32.gguf")), *base8 = strdup(tmp_path("w8a8.gguf"));
    char *norot8 = strdup(tmp_path("w8a8_norot.gguf"));
    run_cmd("'%s' convert %s --lora %s --lora-scale %g -o %s --quant f32 2>/dev/null", bin, model, lora, scale, merged32);
    run_cmd("'%s' convert %s --lora %s --lora-scale %g -o %s --quant w8a8 2>/dev/null", bin, model, lora, scale, merged8);
    run_cmd("'%s' convert %s -o %s --quant f32 --rotate on 2>/dev/null", bin, model, rot32);
    run_cmd("'%s' convert %s -o %s --quant w8a8 2>/dev/null", bin, model, base8);
    run_cmd("'%s' convert %s -o %s --quant w8a8 --rotate off 2>/dev/null", bin, model, norot8);

    run oracle, base, r;
    eval_model(merged32, NULL, 0, false, NULL, &oracle);
    const int32_t *cont = oracle.greedy; /* every comparison with the oracle is on this text */
    eval_model(model, NULL, 0, false, cont, &base);
    diff d = compare(&base, &oracle);
    print_diff("base model (no adapter) vs merged f32", d);
    /* The adapter must matter, or the checks below prove nothing. */
    CHECK(d.rel > 0.05 && d.greedy_same < N_GREEDY, "%s: the adapter changes the logits by only %.3g", tag, d.rel);
    free(base.logits);

    /* (a) float */
    struct {
        const char *path, *what;
        bool reference;
    } fl[] = {{model, "folder + adapter, fast", false},
              {model, "folder + adapter, reference", true},
              {rot32, "rotated f32 file + adapter, fast", false},
              {rot32, "rotated f32 file + adapter, reference", true}};
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
        eval_model(fl[i].path, lora, scale, fl[i].reference, cont, &r);
        d = compare(&r, &oracle);
        char what[128];
        snprintf(what, sizeof what, "%s vs merged f32", fl[i].what);
        print_diff(what, d);
        CHECK(d.rel <= FLOAT_TOL, "%s: %s: relative error %.3g > %g", tag, what, d.rel, FLOAT_TOL);
        CHECK(d.top1_same == N_SEQ && d.greedy_same == N_GREEDY, "%s: %s: tokens differ", tag, what);
        free(r.logits);
    }

    /* (b) w8a8: each file's own quantization error (base file vs base f32) sets the scale */
    run base32, merged8r;
    eval_model(model, NULL, 0, true, NULL, &base32);
    eval_model(merged8, NULL, 0, false, cont, &merged8r);
    diff m8 = compare(&merged8r, &oracle);
    print_diff("merged w8a8 vs merged f32 (merge, then quantize)", m8);
    struct {
        const char *path, *what;
        bool reference;
    } qt[] = {{base8, "w8a8 (rotated) + adapter, fast", false},
              {base8, "w8a8 (rotated) + adapter, reference", true},
              {norot8, "w8a8 (unrotated) + adapter, fast", false}};
    for (size_t i = 0; i < sizeof qt / sizeof *qt; i++) {
        run qb;
        eval_model(qt[i].path, NULL, 0, false, base32.greedy, &qb);
        diff q = compare(&qb, &base32);
        free(qb.logits);
        char what[128];
        snprintf(what, sizeof what, "%s: base file vs base f32", qt[i].path == base8 ? "w8a8" : "w8a8 unrotated");
        print_diff(what, q);
        eval_model(qt[i].path, lora, scale, qt[i].reference, cont, &r);
        for (int vs = 0; vs < 2; vs++) {
            d = compare(&r, vs ? &merged8r : &oracle);
            snprintf(what, sizeof what, "%s vs merged %s", qt[i].what, vs ? "w8a8" : "f32");
            print_diff(what, d);
            /* The same class as the base file's own int8 error: against the oracle within twice
             * it; against the merged w8a8 file (two int8 models, each with its own error) within
             * 1.5 times the sum of the two; cosine >= 0.99 (test_eval_io's bar for int8 hidden
             * states). */
            double bar = vs ? 1.5 * (q.rel + m8.rel) : 2 * q.rel + 1e-3;
            CHECK(d.rel <= bar, "%s: %s: relative error %.3g > %.3g (base file's own: %.3g)", tag, what, d.rel, bar,
                  q.rel);
            CHECK(d.cos_min >= 0.99, "%s: %s: cosine %.5f < 0.99", tag, what, d.cos_min);
            /* Greedy tokens: free-running ones part for good at the first near-tie that int8
             * noise flips, so the bar is on the oracle's text (teacher forced): the next-token
             * choice must agree as often as for the base file against the base f32 model. */
            CHECK(d.top1_same >= q.top1_same - 2, "%s: %s: top-1 agrees at %d of %d positions, the base file at %d",
                  tag, what, d.top1_same, N_SEQ, q.top1_same);
        }
        free(r.logits);
    }
    free(base32.logits);
    free(merged8r.logits);
    free(oracle.logits);
    const char *files[] = {merged32, merged8, rot32, base8, norot8};
    for (size_t i = 0; i < 5; i++) remove(files[i]);
    free(merged32), free(merged8), free(rot32), free(base8), free(norot8);
}

/* ---------------------------------------------------------------- (c) switching */

static void check_switching(void) {
    printf("switching adapters on one session\n");
    char err[512];
    llm8_model *m;
    assert(llm8_model_load(GQA3, &m, err, sizeof err) == LLM8_STATUS_OK);
    int32_t nv = llm8_model_get_info(m)->n_vocab;
    llm8_lora *r8, *r4;
    assert(llm8_lora_load(m, A_R8, &r8, err, sizeof err) == LLM8_STATUS_OK);
    assert(llm8_lora_load(m, A_R4, &r4, err, sizeof err) == LLM8_STATUS_OK);
    const llm8_lora_info *i8 = llm8_lora_get_info(r8), *i4 = llm8_lora_get_info(r4);
    CHECK(i8->rank == 8 && i8->alpha == 16 && i8->scaling == 2 && i8->targets == 0x7f && i8->n_layers == 2,
          "info r8: rank %d alpha %g scaling %g targets %#x layers %d", i8->rank, i8->alpha, i8->scaling, i8->targets,
          i8->n_layers);
    CHECK(i4->rank == 4 && i4->alpha == 4 && i4->scaling == 2 /* rsLoRA: 4 / sqrt(4) */, "info r4: scaling %g",
          i4->scaling);
    CHECK(llm8_lora_get_info(NULL) == NULL, "info of NULL");

    for (int ref = 0; ref < 2; ref++) {
        llm8_session_params sp = llm8_session_default_params();
        sp.reference = ref;
        sp.n_ctx = 64;
        /* fresh sessions give each choice's expected results */
        run want_base, want_r8, want_r4;
        struct {
            llm8_lora *a;
            float scale;
            run *out;
        } fresh[] = {{NULL, 0, &want_base}, {r8, 0.75f, &want_r8}, {r4, 1.5f, &want_r4}};
        for (int i = 0; i < 3; i++) {
            llm8_session *s;
            assert(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
            if (fresh[i].a) assert(llm8_session_set_lora(s, fresh[i].a, fresh[i].scale) == LLM8_STATUS_OK);
            eval_on(s, nv, NULL, fresh[i].out);
            llm8_session_free(s);
        }
        CHECK(!same_bits(&want_r8, &want_base) && !same_bits(&want_r4, &want_r8), "the adapters change the output");

        /* one session through a sequence of choices, and a second one interleaved with it */
        llm8_session *s, *other;
        assert(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_create(m, &sp, &other, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_set_lora(other, r4, 1.5f) == LLM8_STATUS_OK);
        struct {
            llm8_lora *a;
            float scale;
            const run *want;
            const char *what;
        } steps[] = {{r8, 0.75f, &want_r8, "r8"},         {NULL, 3.0f, &want_base, "none"},
                     {r4, 1.5f, &want_r4, "r4"},          {r8, 0.0f, &want_base, "r8 at scale 0"},
                     {r8, 0.75f, &want_r8, "r8 again"},   {NULL, 0.0f, &want_base, "none again"}};
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
            CHECK(llm8_session_set_lora(s, steps[i].a, steps[i].scale) == LLM8_STATUS_OK, "set_lora %s", steps[i].what);
            run got, got_other;
            eval_on(s, nv, NULL, &got);
            eval_on(other, nv, NULL, &got_other);
            CHECK(same_bits(&got, steps[i].want), "%s path, step %zu (%s): not the fresh session's results bit for bit",
                  ref ? "reference" : "fast", i, steps[i].what);
            CHECK(same_bits(&got_other, &want_r4), "the other session's adapter changed");
            free(got.logits);
            free(got_other.logits);
        }
        printf("  %s path: r8 -> none -> r4 -> r8@0 -> r8 -> none: each equals a fresh session bit for bit\n",
               ref ? "reference" : "fast");
        llm8_session_free(s);
        llm8_session_free(other);
        free(want_base.logits);
        free(want_r8.logits);
        free(want_r4.logits);
    }

    /* a saved state names the adapter its keys and values were made with */
    {
        llm8_session *a, *b;
        assert(llm8_session_create(m, NULL, &a, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_create(m, NULL, &b, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_set_lora(a, r8, 0.75f) == LLM8_STATUS_OK);
        assert(llm8_session_eval(a, IDS, 8, NULL, false) == LLM8_STATUS_OK);
        char *state = tmp_path("lora.state"), *plain = tmp_path("plain.state");
        CHECK(llm8_session_save(a, state) == LLM8_STATUS_OK, "save: %s", llm8_session_last_error(a));
        struct {
            llm8_lora *a;
            float scale;
            llm8_status want;
            const char *needle;
        } loads[] = {{NULL, 0, LLM8_STATUS_INVALID_ARGUMENT, "saved with a LoRA adapter; this session has none"},
                     {r4, 0.75f, LLM8_STATUS_INVALID_ARGUMENT, "uses another adapter or scale"},
                     {r8, 1.0f, LLM8_STATUS_INVALID_ARGUMENT, "uses another adapter or scale"},
                     {r8, 0.75f, LLM8_STATUS_OK, NULL}};
        for (size_t i = 0; i < sizeof loads / sizeof *loads; i++) {
            assert(llm8_session_set_lora(b, loads[i].a, loads[i].scale) == LLM8_STATUS_OK);
            llm8_status st = llm8_session_load(b, state);
            CHECK(st == loads[i].want && (!loads[i].needle || strstr(llm8_session_last_error(b), loads[i].needle)),
                  "load %zu: status %d, %s", i, (int)st, llm8_session_last_error(b));
        }
        CHECK(llm8_session_n_past(b) == 8, "the matching load restores 8 tokens (%d)", llm8_session_n_past(b));
        /* and the other way round: a state made without one refuses a session that uses one */
        assert(llm8_session_set_lora(a, NULL, 0) == LLM8_STATUS_OK);
        llm8_session_reset(a);
        assert(llm8_session_eval(a, IDS, 4, NULL, false) == LLM8_STATUS_OK);
        assert(llm8_session_save(a, plain) == LLM8_STATUS_OK);
        CHECK(llm8_session_load(b, plain) == LLM8_STATUS_INVALID_ARGUMENT &&
                  strstr(llm8_session_last_error(b), "saved without a LoRA adapter; this session uses one"),
              "plain state into an adapted session: %s", llm8_session_last_error(b));
        printf("  saved states: loaded only with the adapter and scale they were made with\n");
        llm8_session_free(a);
        llm8_session_free(b);
    }

    /* refusals */
    llm8_model *m2;
    assert(llm8_model_load(LLAMA3, &m2, err, sizeof err) == LLM8_STATUS_OK);
    llm8_lora *l3;
    assert(llm8_lora_load(m2, A_L3, &l3, err, sizeof err) == LLM8_STATUS_OK);
    llm8_session *s;
    assert(llm8_session_create(m, NULL, &s, err, sizeof err) == LLM8_STATUS_OK);
    CHECK(llm8_session_set_lora(s, l3, 1) == LLM8_STATUS_INVALID_ARGUMENT &&
              strstr(llm8_session_last_error(s), "another model"),
          "an adapter of another model: %s", llm8_session_last_error(s));
    CHECK(llm8_session_set_lora(s, r8, NAN) == LLM8_STATUS_INVALID_ARGUMENT &&
              strstr(llm8_session_last_error(s), "finite"),
          "NaN scale: %s", llm8_session_last_error(s));
    CHECK(llm8_session_set_lora(NULL, r8, 1) == LLM8_STATUS_INVALID_ARGUMENT, "NULL session");
    llm8_lora *none = (llm8_lora *)1;
    CHECK(llm8_lora_load(NULL, A_R8, &none, err, sizeof err) == LLM8_STATUS_INVALID_ARGUMENT && none == NULL,
          "NULL model");
    CHECK(llm8_lora_load(m, NULL, &none, err, sizeof err) == LLM8_STATUS_INVALID_ARGUMENT, "NULL path");
    llm8_session_free(s);
    llm8_lora_free(l3);
    llm8_lora_free(NULL);
    llm8_model_free(m2);
    llm8_lora_free(r8);
    llm8_lora_free(r4);
    llm8_model_free(m);
}

/* ---------------------------------------------------------------- batches */

/* Three sessions (adapter r8, none, r4) prefilled and decoded together in batches give the
 * logits of each evaluated alone: the adapter is per sequence inside one pass. */
static void check_batch(void) {
    char err[512];
    llm8_model *m;
    assert(llm8_model_load(GQA3, &m, err, sizeof err) == LLM8_STATUS_OK);
    int32_t nv = llm8_model_get_info(m)->n_vocab;
    llm8_lora *r8, *r4;
    assert(llm8_lora_load(m, A_R8, &r8, err, sizeof err) == LLM8_STATUS_OK);
    assert(llm8_lora_load(m, A_R4, &r4, err, sizeof err) == LLM8_STATUS_OK);
    llm8_lora *ad[3] = {r8, NULL, r4};
    float scale[3] = {0.75f, 0, 1.5f};
    int32_t plen[3] = {N_IDS, 7, 12};
    enum { STEPS = 6 };
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = 64;
    sp.n_threads = 1;
    llm8_session *s[3];
    float *alone = malloc((size_t)3 * (STEPS + 1) * nv * sizeof(float)), *lg = malloc((size_t)3 * nv * sizeof(float));
    int32_t tok[3][STEPS];
    for (int i = 0; i < 3; i++) {
        assert(llm8_session_create(m, &sp, &s[i], err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_set_lora(s[i], ad[i], scale[i]) == LLM8_STATUS_OK);
        float *out = alone + (size_t)i * (STEPS + 1) * nv;
        CHECK(llm8_session_eval(s[i], IDS, (size_t)plen[i], out, false) == LLM8_STATUS_OK, "prefill");
        for (int t = 0; t < STEPS; t++) {
            tok[i][t] = argmax(out + (size_t)t * nv, nv);
            CHECK(llm8_session_eval(s[i], &tok[i][t], 1, out + (size_t)(t + 1) * nv, false) == LLM8_STATUS_OK, "decode");
        }
        llm8_session_reset(s[i]);
    }
    l8_batch *b;
    CHECK(l8_batch_create(m, 64, 64, 2, &b, err, sizeof err) == LLM8_STATUS_OK, "batch: %s", err);
    int mismatches = 0;
    for (int t = 0; t <= STEPS; t++) {
        l8_batch_item items[3];
        for (int i = 0; i < 3; i++)
            items[i] = (l8_batch_item){s[i], t ? &tok[i][t - 1] : IDS, t ? 1 : plen[i], lg + (size_t)i * nv};
        CHECK(l8_batch_eval(b, items, 3, err, sizeof err) == LLM8_STATUS_OK, "batch eval: %s", err);
        for (int i = 0; i < 3; i++)
            mismatches += memcmp(lg + (size_t)i * nv, alone + ((size_t)i * (STEPS + 1) + t) * nv, (size_t)nv * 4) != 0;
    }
    CHECK(mismatches == 0, "batched sessions with adapters r8 / none / r4: %d of %d logit rows differ from alone",
          mismatches, 3 * (STEPS + 1));
    printf("batch of sessions with adapters r8 / none / r4: prefill + %d decode steps equal each session alone bit for bit\n",
           STEPS);
    l8_batch_free(b);
    for (int i = 0; i < 3; i++) llm8_session_free(s[i]);
    free(alone);
    free(lg);
    llm8_lora_free(r8);
    llm8_lora_free(r4);
    llm8_model_free(m);
}

/* ---------------------------------------------------------------- (d) bad adapters */

/* A safetensors file of F32 matrices (rows x cols each; data may be NULL for zeros) or, with
 * dtype "I64", one tensor of that dtype. */
typedef struct st_entry {
    const char *name, *dtype;
    int64_t rows, cols;
    float fill;
} st_entry;

static void write_st(const char *path, const st_entry *t, int n) {
    char header[8192];
    size_t off = 0, len = (size_t)snprintf(header, sizeof header, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)(t[i].rows * t[i].cols) * (strcmp(t[i].dtype, "I64") ? 4 : 8);
        len += (size_t)snprintf(header + len, sizeof header - len,
                                "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                i ? "," : "", t[i].name, t[i].dtype, (long long)t[i].rows, (long long)t[i].cols, off,
                                off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(header + len, sizeof header - len, "}");
    while (len % 8) header[len++] = ' ';
    FILE *f = fopen(path, "wb");
    assert(f);
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(header, 1, len, f);
    for (int i = 0; i < n; i++) {
        int64_t count = t[i].rows * t[i].cols;
        for (int64_t k = 0; k < count; k++) {
            if (!strcmp(t[i].dtype, "I64")) {
                int64_t v = 1;
                fwrite(&v, 8, 1, f);
            } else {
                float v = t[i].fill;
                fwrite(&v, 4, 1, f);
            }
        }
    }
    fclose(f);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert(f);
    fputs(text, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert(a && b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) assert(fwrite(buf, 1, n, b) == n);
    fclose(a);
    fclose(b);
}

/* A fresh adapter folder: config text (NULL: none) and the safetensors of another adapter
 * (NULL: none). */
static const char *make_adapter(const char *name, const char *config, const char *weights_from) {
    char *dir = tmp_path(name);
    char path[512];
    snprintf(path, sizeof path, "mkdir -p '%s'", dir);
    assert(system(path) == 0);
    if (config) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        write_text(path, config);
    }
    if (weights_from) {
        char from[512];
        snprintf(from, sizeof from, "%s/adapter_model.safetensors", weights_from);
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        copy_file(from, path);
    }
    return dir;
}

/* adapter_config.json with every target, rank r, and extra fields */
#define CFG_R(r, extra)                                                                                         \
    "{\"r\": " #r ", \"lora_alpha\": 16, \"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", "    \
    "\"gate_proj\", \"up_proj\", \"down_proj\"]" extra "}"
#define CFG(extra) CFG_R(8, ", \"peft_type\": \"LORA\"" extra)

static void expect_bad(llm8_model *m, const char *what, const char *dir, llm8_status want, const char *needle) {
    char err[512] = "";
    llm8_lora *a = (llm8_lora *)1;
    llm8_status st = llm8_lora_load(m, dir, &a, err, sizeof err);
    CHECK(st == want && a == NULL, "%s: status %s (want %s), message: %s", what, llm8_status_to_string(st),
          llm8_status_to_string(want), err);
    CHECK(strstr(err, needle) != NULL, "%s: the message does not say \"%s\": %s", what, needle, err);
    CHECK(strchr(err, '\n') == NULL && err[0], "%s: not one line: %s", what, err);
    printf("  %-30s %s\n", what, err);
}

static void check_bad_adapters(void) {
    printf("bad adapters\n");
    char err[512];
    llm8_model *m;
    assert(llm8_model_load(GQA3, &m, err, sizeof err) == LLM8_STATUS_OK);
    const int32_t q = 192, kv = 64, d = 96, f = 160;

    expect_bad(m, "no such folder", tmp_path("nope"), LLM8_STATUS_IO_ERROR, "no such LoRA adapter folder");
    expect_bad(m, "a file, not a folder", A_R8 "/adapter_config.json", LLM8_STATUS_INVALID_ARGUMENT, "not a folder");
    expect_bad(m, "empty folder", make_adapter("empty", NULL, NULL), LLM8_STATUS_IO_ERROR, "adapter_config.json");
    expect_bad(m, "no safetensors", make_adapter("noweights", CFG(""), NULL), LLM8_STATUS_IO_ERROR,
               "adapter_model.safetensors");
    expect_bad(m, "bad JSON", make_adapter("badjson", "{\"r\": 8, \"lora_alpha\": ", A_R8), LLM8_STATUS_BAD_FORMAT,
               "invalid JSON");
    expect_bad(m, "no r", make_adapter("nor", "{\"target_modules\": [\"q_proj\"]}", A_R8), LLM8_STATUS_BAD_FORMAT,
               "missing field \"r\"");
    expect_bad(m, "unknown target module",
               make_adapter("lmhead", "{\"r\": 8, \"target_modules\": [\"q_proj\", \"lm_head\"]}", A_R8),
               LLM8_STATUS_UNSUPPORTED, "unknown target module \"lm_head\"");
    expect_bad(m, "regex target_modules", make_adapter("regex", "{\"r\": 8, \"target_modules\": \".*proj\"}", A_R8),
               LLM8_STATUS_UNSUPPORTED, "regular expression");
    expect_bad(m, "rank mismatch", make_adapter("rank", CFG_R(5, ""), A_R8), LLM8_STATUS_BAD_FORMAT,
               "rank mismatch");
    expect_bad(m, "wrong shapes (other model's)", make_adapter("shape", CFG_R(6, ""), A_L3),
               LLM8_STATUS_BAD_FORMAT, "wrong shape");
    expect_bad(m, "tensor of an untargeted module",
               make_adapter("untargeted", "{\"r\": 8, \"target_modules\": [\"q_proj\"]}", A_R8), LLM8_STATUS_BAD_FORMAT,
               "not in target_modules");
    expect_bad(m, "layer not transformed", make_adapter("layers", CFG(", \"layers_to_transform\": [1]"), A_R8),
               LLM8_STATUS_BAD_FORMAT, "layers_to_transform");
    expect_bad(m, "DoRA", make_adapter("dora", CFG(", \"use_dora\": true"), A_R8), LLM8_STATUS_UNSUPPORTED, "DoRA");
    expect_bad(m, "bias", make_adapter("bias", CFG(", \"bias\": \"all\""), A_R8), LLM8_STATUS_UNSUPPORTED, "bias");
    expect_bad(m, "fan_in_fan_out", make_adapter("fifo", CFG(", \"fan_in_fan_out\": true"), A_R8),
               LLM8_STATUS_UNSUPPORTED, "fan_in_fan_out");
    expect_bad(m, "modules_to_save", make_adapter("mts", CFG(", \"modules_to_save\": [\"lm_head\"]"), A_R8),
               LLM8_STATUS_UNSUPPORTED, "modules_to_save");
    expect_bad(m, "rank_pattern", make_adapter("rp", CFG(", \"rank_pattern\": {\"q_proj\": 4}"), A_R8),
               LLM8_STATUS_UNSUPPORTED, "rank_pattern");
    expect_bad(m, "peft_type", make_adapter("ia3", CFG_R(8, ", \"peft_type\": \"IA3\""), A_R8), LLM8_STATUS_UNSUPPORTED,
               "peft_type");

    /* hand-written weights: one layer's q_proj only, under a q_proj-only config */
    const char *qcfg = "{\"r\": 2, \"target_modules\": [\"q_proj\"]}";
    st_entry good[] = {
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", 2, d, 0.01f},
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "F32", q, 2, 0.01f},
        {"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", "F32", 2, d, 0.01f},
        {"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", "F32", q, 2, 0.01f},
    };
    char path[512];
    const char *dir = make_adapter("handmade", qcfg, NULL);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    write_st(path, good, 4);
    llm8_lora *a = NULL;
    CHECK(llm8_lora_load(m, dir, &a, err, sizeof err) == LLM8_STATUS_OK, "hand-made q_proj adapter: %s", err);
    CHECK(a && llm8_lora_get_info(a)->targets == LLM8_LORA_Q_PROJ, "q_proj only");
    llm8_lora_free(a);
    write_st(path, good, 3);
    expect_bad(m, "missing tensor", dir, LLM8_STATUS_BAD_FORMAT,
               "missing tensor base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
    st_entry nan_b[4];
    memcpy(nan_b, good, sizeof good);
    nan_b[3].fill = NAN;
    write_st(path, nan_b, 4);
    expect_bad(m, "NaN values", dir, LLM8_STATUS_BAD_FORMAT, "NaN");
    st_entry extra[5];
    memcpy(extra, good, sizeof good);
    extra[4] = (st_entry){"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "F32", 1, q, 1};
    write_st(path, extra, 5);
    expect_bad(m, "unexpected tensor (DoRA)", dir, LLM8_STATUS_UNSUPPORTED, "unexpected tensor");
    st_entry i64[4];
    memcpy(i64, good, sizeof good);
    i64[0].dtype = "I64";
    write_st(path, i64, 4);
    expect_bad(m, "unsupported dtype", dir, LLM8_STATUS_UNSUPPORTED, "I64");
    st_entry deep[4];
    memcpy(deep, good, sizeof good);
    deep[2].name = "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight";
    write_st(path, deep, 4);
    expect_bad(m, "layer beyond the model", dir, LLM8_STATUS_BAD_FORMAT, "the model has 2 layers");
    (void)kv, (void)f;

    /* a rotated file without the original norm weights (as converted before LoRA support): the
     * tensor names patched so that the reader does not find them */
    const char *old8 = tmp_path("old_rotated.gguf");
    run_cmd("'%s' convert %s -o %s --quant w8a8 2>/dev/null", bin, GQA3, old8);
    FILE *fo = fopen(old8, "r+b");
    if (fo) {
        static char buf[1 << 16];
        size_t got = fread(buf, 1, sizeof buf, fo); /* names are in the header, at the start */
        int patched = 0;
        for (size_t i = 0; i + 19 <= got; i++)
            if (!memcmp(buf + i, "rot_embd.attn_norms", 19) || !memcmp(buf + i, "rot_embd.ffn_norms", 18)) {
                fseek(fo, (long)(i + 9), SEEK_SET); /* rot_embd.Xttn_norms: an unknown tensor */
                fputc('X', fo);
                patched++;
            }
        fclose(fo);
        CHECK(patched == 2, "found %d norm tensors to hide", patched);
        llm8_model *old;
        CHECK(llm8_model_load(old8, &old, err, sizeof err) == LLM8_STATUS_OK, "older rotated file: %s", err);
        expect_bad(old, "rotated file without norms", A_R8, LLM8_STATUS_UNSUPPORTED, "convert the model again");
        llm8_model_free(old);
    }

    /* the converter reports the same problems */
    char out[1024];
    snprintf(out, sizeof out, "'%s' convert %s --lora %s -o %s --quant f32 2>%s", bin, GQA3, tmp_path("rank"),
             tmp_path("x.gguf"), tmp_path("convert.err"));
    CHECK(system(out) != 0, "convert with a bad adapter succeeded");
    FILE *fe = fopen(tmp_path("convert.err"), "r");
    char line[1024] = "";
    if (fe) {
        if (!fgets(line, sizeof line, fe)) line[0] = 0;
        fclose(fe);
    }
    CHECK(strstr(line, "rank mismatch") != NULL, "convert --lora: %s", line);
    CHECK(access(tmp_path("x.gguf"), F_OK) != 0, "convert left an output file behind");
    llm8_model_free(m);
}

/* ---------------------------------------------------------------- (e) RKLLM */

typedef struct rk_out {
    char text[4096];
    int32_t tokens[64];
    int n_tokens, finish, error;
} rk_out;

static void rk_cb(RKLLMResult *r, void *user, LLMCallState state) {
    rk_out *o = user;
    if (state == RKLLM_RUN_NORMAL) {
        strncat(o->text, r->text, sizeof o->text - strlen(o->text) - 1);
        if (o->n_tokens < 64) o->tokens[o->n_tokens++] = r->token_id;
    } else if (state == RKLLM_RUN_FINISH) {
        o->finish++;
    } else if (state == RKLLM_RUN_ERROR) {
        o->error++;
    }
}

static bool collect(void *user, const char *text, size_t len, int32_t token) {
    (void)token;
    strncat(user, text, len < 4095 - strlen(user) ? len : 4095 - strlen(user));
    return true;
}

/* Greedy text of a prompt through llm8.h (tokenized as rkllm_run does: BOS, special tokens),
 * with the adapter at scale (or none). */
static void llm8_text(const char *lora, float scale, const char *prompt, char *out) {
    char err[512];
    llm8_model *m;
    assert(llm8_model_load(GQA3, &m, err, sizeof err) == LLM8_STATUS_OK);
    llm8_session *s;
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = 128;
    assert(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
    llm8_lora *a = NULL;
    if (lora) {
        assert(llm8_lora_load(m, lora, &a, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_set_lora(s, a, scale) == LLM8_STATUS_OK);
    }
    llm8_generate_params g = llm8_generate_default_params();
    g.max_tokens = 24;
    g.sampling.temperature = 0;
    g.add_bos = true;
    g.parse_special = true;
    out[0] = 0;
    CHECK(llm8_session_generate(s, prompt, strlen(prompt), &g, collect, out, NULL) == LLM8_STATUS_OK, "generate");
    llm8_session_free(s);
    llm8_lora_free(a);
    llm8_model_free(m);
}

static void check_rkllm(void) {
    printf("rkllm.h\n");
    RKLLMParam p = rkllm_createDefaultParam();
    p.model_path = GQA3;
    p.max_context_len = 128;
    p.max_new_tokens = 24;
    p.top_k = 1; /* greedy, as llm8_text */
    p.repeat_penalty = 1.0f;
    LLMHandle h;
    CHECK(rkllm_init(&h, &p, rk_cb) == 0, "rkllm_init: %s", rkllm_last_error(NULL));

    RKLLMLoraAdapter ad = {A_R8, "r8", 0.75f};
    CHECK(rkllm_load_lora(h, &ad) == 0, "rkllm_load_lora: %s", rkllm_last_error(h));
    RKLLMLoraAdapter ad4 = {A_R4, "r4", 1.5f};
    CHECK(rkllm_load_lora(h, &ad4) == 0, "rkllm_load_lora r4: %s", rkllm_last_error(h));
    CHECK(rkllm_load_lora(h, &ad) == -1 && strstr(rkllm_last_error(h), "already loaded"), "same name twice: %s",
          rkllm_last_error(h));
    RKLLMLoraAdapter bad = {A_L3, "l3", 1.0f};
    CHECK(rkllm_load_lora(h, &bad) == -1 && strstr(rkllm_last_error(h), "wrong shape"), "other model's adapter: %s",
          rkllm_last_error(h));
    RKLLMLoraAdapter noname = {A_R8, NULL, 1.0f};
    CHECK(rkllm_load_lora(h, &noname) == -1, "NULL name");
    CHECK(rkllm_load_lora(h, NULL) == -1 && rkllm_load_lora(NULL, &ad) == -1, "NULL arguments");

    const char *prompt = "Lily and Ben";
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.input_type = RKLLM_INPUT_PROMPT;
    in.prompt_input = prompt;
    RKLLMLoraParam lp = {"r8"};
    RKLLMInferParam ip;
    memset(&ip, 0, sizeof ip);
    ip.mode = RKLLM_INFER_GENERATE;

    char want_base[4096], want_r8[4096], want_r4[4096];
    llm8_text(NULL, 0, prompt, want_base);
    llm8_text(A_R8, 0.75f, prompt, want_r8);
    llm8_text(A_R4, 1.5f, prompt, want_r4);
    CHECK(strcmp(want_base, want_r8) && strcmp(want_r8, want_r4), "the adapters change the text");

    struct {
        const char *name; /* NULL: no lora_params */
        const char *want;
        bool async;
    } runs[] = {{"r8", want_r8, false}, {NULL, want_base, false}, {"r4", want_r4, false},
                {"r8", want_r8, true},  {NULL, want_base, true}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        rk_out o;
        memset(&o, 0, sizeof o);
        lp.lora_adapter_name = runs[i].name;
        ip.lora_params = runs[i].name ? &lp : NULL;
        int rc = runs[i].async ? rkllm_run_async(h, &in, &ip, &o) : rkllm_run(h, &in, &ip, &o);
        CHECK(rc == 0, "run %zu: %s", i, rkllm_last_error(h));
        while (runs[i].async && rkllm_is_running(h) == 0) usleep(1000);
        CHECK(o.finish == 1 && o.error == 0, "run %zu: finish %d error %d", i, o.finish, o.error);
        CHECK(!strcmp(o.text, runs[i].want), "run %zu (%s%s): [%s] != llm8.h's [%s]", i,
              runs[i].name ? runs[i].name : "none", runs[i].async ? ", async" : "", o.text, runs[i].want);
    }
    printf("  rkllm_run with lora_params r8, none, r4 (sync and async): the same text as llm8_session_set_lora\n");

    /* an unknown name is refused before the run: -1, no callback */
    rk_out o;
    memset(&o, 0, sizeof o);
    lp.lora_adapter_name = "nope";
    ip.lora_params = &lp;
    CHECK(rkllm_run(h, &in, &ip, &o) == -1 && o.finish == 0 && o.error == 0 && !o.text[0], "unknown adapter name");
    CHECK(strstr(rkllm_last_error(h), "no LoRA adapter named \"nope\""), "message: %s", rkllm_last_error(h));
    CHECK(rkllm_run_async(h, &in, &ip, &o) == -1, "unknown adapter name, async");
    rkllm_destroy(h);
}

int main(void) {
    bin = getenv("LLM8_BIN") ? getenv("LLM8_BIN") : "build/llm8";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/llm8_lora_XXXXXX");
    assert(mkdtemp(tmpdir));
    check_model(GQA3, A_R8, 0.75f, "gqa3 r8");
    check_model(LLAMA3, A_L3, 1.0f, "llama3 r6");
    check_switching();
    check_batch();
    check_bad_adapters();
    check_rkllm();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    printf("lora: %d failures\n", failures);
    return failures ? 1 : 0;
}
