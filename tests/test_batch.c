/*
 * Continuous batching and step-wise generation (src/runtime/batch.h) on the demo model, as a
 * float folder and as w8a8: several sessions evaluated in one pass give bit-identical logits to
 * the same sessions evaluated one at a time (prefill and decode mixed in one batch), the
 * generation stepper gives the text of llm8_session_generate, bad batches change nothing, and a
 * full context shifts (n_keep) to exactly the state a fresh run on the shortened context has.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "llm8.h"
#include "runtime/batch.h"

enum { NS = 3, STEPS = 24 };
static const char *prompts[NS] = {"Once upon a time", "Lily and Ben went to the park. They", "The cat"};

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int32_t tokenize(llm8_model *m, const char *text, int32_t *ids, size_t cap) {
    size_t n = 0;
    llm8_status st = llm8_tokenize(llm8_model_tokenizer(m), text, strlen(text), LLM8_TOKENIZE_ADD_BOS, ids, cap, &n);
    CHECK(st == LLM8_STATUS_OK, "tokenize %s", text);
    return (int32_t)n;
}

/* Greedy decoding: sessions one at a time, then all together in batches; logits must match. */
static void check_batch_equals_sequential(llm8_model *m, const char *label) {
    int32_t nv = llm8_model_get_info(m)->n_vocab;
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = 128;
    sp.n_threads = 1;
    float *seq_logits = malloc((size_t)NS * STEPS * nv * sizeof(float));
    float *lg = malloc((size_t)nv * sizeof(float));
    int32_t ids[NS][64], n_ids[NS], seq_tok[NS][STEPS];
    for (int i = 0; i < NS; i++) n_ids[i] = tokenize(m, prompts[i], ids[i], 64);

    for (int i = 0; i < NS; i++) {
        llm8_session *s;
        CHECK(llm8_session_create(m, &sp, &s, NULL, 0) == LLM8_STATUS_OK, "session");
        CHECK(llm8_session_eval(s, ids[i], (size_t)n_ids[i], lg, false) == LLM8_STATUS_OK, "prefill");
        for (int t = 0; t < STEPS; t++) {
            memcpy(seq_logits + ((size_t)i * STEPS + t) * nv, lg, (size_t)nv * sizeof(float));
            seq_tok[i][t] = argmax(lg, nv);
            CHECK(llm8_session_eval(s, &seq_tok[i][t], 1, lg, false) == LLM8_STATUS_OK, "decode");
        }
        llm8_session_free(s);
    }

    /* Batched: session 0 and 1 prefill together; session 2 joins (prefills, in two chunks)
     * while the others decode, as a server's scheduler would run it. */
    l8_batch *b;
    char err[256];
    CHECK(l8_batch_create(m, 128, 64, 2, &b, err, sizeof err) == LLM8_STATUS_OK, "batch: %s", err);
    llm8_session *s[NS];
    for (int i = 0; i < NS; i++) CHECK(llm8_session_create(m, &sp, &s[i], NULL, 0) == LLM8_STATUS_OK, "session");
    float *out[NS];
    for (int i = 0; i < NS; i++) out[i] = malloc((size_t)nv * sizeof(float));
    int step[NS] = {0}, fed[NS] = {0}; /* decode steps checked; prompt tokens fed */
    int32_t next[NS];
    bool exact = true;
    for (int round = 0; round < 200; round++) {
        l8_batch_item items[NS];
        int n = 0, who[NS];
        for (int i = 0; i < NS; i++) {
            if (i == 2 && round < 3) continue; /* joins late */
            if (fed[i] < n_ids[i]) {
                int chunk = i == 2 ? (n_ids[i] - fed[i] + 1) / 2 : n_ids[i] - fed[i];
                items[n] = (l8_batch_item){s[i], ids[i] + fed[i], chunk, out[i]};
            } else if (step[i] < STEPS) {
                items[n] = (l8_batch_item){s[i], &next[i], 1, out[i]};
            } else {
                continue;
            }
            who[n++] = i;
        }
        if (n == 0) break;
        llm8_status st = l8_batch_eval(b, items, n, err, sizeof err);
        CHECK(st == LLM8_STATUS_OK, "%s batch eval: %s", label, err);
        if (st) break;
        for (int j = 0; j < n; j++) {
            int i = who[j];
            if (fed[i] < n_ids[i]) {
                fed[i] += items[j].n;
                if (fed[i] < n_ids[i]) continue;
            } else {
                step[i]++;
            }
            if (step[i] >= STEPS) continue;
            const float *want = seq_logits + ((size_t)i * STEPS + step[i]) * nv;
            if (memcmp(out[i], want, (size_t)nv * sizeof(float)) != 0) exact = false;
            next[i] = argmax(out[i], nv);
            CHECK(next[i] == seq_tok[i][step[i]], "%s: session %d step %d: token %d, alone %d", label, i, step[i],
                  next[i], seq_tok[i][step[i]]);
        }
    }
    CHECK(exact, "%s: batched logits differ from one-at-a-time logits", label);
    for (int i = 0; i < NS; i++) {
        CHECK(step[i] == STEPS, "%s: session %d ran %d steps", label, i, step[i]);
        CHECK(llm8_session_n_past(s[i]) == n_ids[i] + STEPS, "%s: session %d n_past %d", label, i,
              llm8_session_n_past(s[i]));
    }

    /* Bad batches are refused whole: nothing changes. */
    int32_t past0 = llm8_session_n_past(s[0]), past1 = llm8_session_n_past(s[1]);
    int32_t bad_id = nv, ok_id = 1;
    l8_batch_item twice[2] = {{s[0], &ok_id, 1, NULL}, {s[0], &ok_id, 1, NULL}};
    CHECK(l8_batch_eval(b, twice, 2, err, sizeof err) == LLM8_STATUS_INVALID_ARGUMENT && strstr(err, "repeated"),
          "repeated session: %s", err);
    l8_batch_item badid[2] = {{s[0], &ok_id, 1, NULL}, {s[1], &bad_id, 1, NULL}};
    CHECK(l8_batch_eval(b, badid, 2, err, sizeof err) == LLM8_STATUS_INVALID_ARGUMENT && strstr(err, "outside"),
          "bad id: %s", err);
    int32_t many[100] = {0};
    l8_batch_item big[1] = {{s[1], many, 100, NULL}};
    CHECK(l8_batch_eval(b, big, 1, err, sizeof err) != LLM8_STATUS_OK, "over max tokens or context: %s", err);
    CHECK(llm8_session_n_past(s[0]) == past0 && llm8_session_n_past(s[1]) == past1, "a refused batch changed nothing");

    for (int i = 0; i < NS; i++) {
        llm8_session_free(s[i]);
        free(out[i]);
    }
    l8_batch_free(b);
    free(seq_logits);
    free(lg);
}

typedef struct text {
    char buf[8192];
    size_t len;
} text;

static bool collect(void *user, const char *t, size_t len, int32_t token) {
    text *x = user;
    if (x->len + len < sizeof x->buf) memcpy(x->buf + x->len, t, len), x->len += len;
    x->buf[x->len] = 0;
    return true;
}

/* The stepper driven by hand equals llm8_session_generate (sampling, stop strings, limits). */
static void check_stepper(llm8_model *m) {
    llm8_session *a, *c;
    CHECK(llm8_session_create(m, NULL, &a, NULL, 0) == LLM8_STATUS_OK, "session");
    CHECK(llm8_session_create(m, NULL, &c, NULL, 0) == LLM8_STATUS_OK, "session");
    const char *stops[] = {"park"};
    llm8_generate_params gp = llm8_generate_default_params();
    gp.sampling.seed = 7;
    gp.sampling.temperature = 0.9f;
    gp.max_tokens = 60;
    gp.stop = stops;
    gp.n_stop = 1;
    text want = {0}, got = {0};
    llm8_run_stats rs;
    CHECK(llm8_session_generate(a, prompts[1], strlen(prompts[1]), &gp, collect, &want, &rs) == LLM8_STATUS_OK,
          "generate");
    int32_t ids[64], n = tokenize(m, prompts[1], ids, 64);
    float *lg = malloc((size_t)llm8_model_get_info(m)->n_vocab * sizeof(float));
    CHECK(llm8_session_eval(c, ids, (size_t)n, lg, false) == LLM8_STATUS_OK, "prefill");
    l8_gen *g;
    CHECK(l8_gen_create(c, &gp, collect, &got, &g) == LLM8_STATUS_OK, "gen");
    int32_t tok;
    while (l8_gen_step(g, lg, &tok)) CHECK(llm8_session_eval(c, &tok, 1, lg, false) == LLM8_STATUS_OK, "eval");
    llm8_run_stats gs;
    l8_gen_stats(g, &gs);
    CHECK(strcmp(want.buf, got.buf) == 0, "stepper text differs:\n[%s]\n[%s]", want.buf, got.buf);
    CHECK(gs.generated_tokens == rs.generated_tokens && gs.stop_reason == rs.stop_reason,
          "stepper stats %d/%d vs %d/%d", gs.generated_tokens, gs.stop_reason, rs.generated_tokens, rs.stop_reason);
    l8_gen_free(g);
    free(lg);
    llm8_session_free(a);
    llm8_session_free(c);
}

/* A full context: an error-free stop by default; with n_keep, generation goes on past it and
 * the shifted state equals a fresh session given the shifted tokens. */
static void check_context_shift(llm8_model *m) {
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = 48;
    llm8_session *s, *f;
    CHECK(llm8_session_create(m, &sp, &s, NULL, 0) == LLM8_STATUS_OK, "session");
    CHECK(llm8_session_create(m, &sp, &f, NULL, 0) == LLM8_STATUS_OK, "session");
    llm8_generate_params gp = llm8_generate_default_params();
    gp.sampling.temperature = 0;
    gp.ignore_eos = true;
    gp.max_tokens = 100;
    llm8_run_stats rs;
    CHECK(llm8_session_generate(s, prompts[0], strlen(prompts[0]), &gp, NULL, NULL, &rs) == LLM8_STATUS_OK, "gen");
    CHECK(rs.stop_reason == LLM8_STOP_CONTEXT && rs.generated_tokens < 48, "default: stop at a full context (%d, %d)",
          rs.stop_reason, rs.generated_tokens);

    llm8_session_reset(s);
    gp.n_keep = 5;
    text t1 = {0};
    CHECK(llm8_session_generate(s, prompts[0], strlen(prompts[0]), &gp, collect, &t1, &rs) == LLM8_STATUS_OK,
          "gen with n_keep: %s", llm8_session_last_error(s));
    CHECK(rs.stop_reason == LLM8_STOP_LENGTH && rs.generated_tokens == 100, "n_keep: went on to 100 tokens (%d, %d)",
          rs.stop_reason, rs.generated_tokens);
    int32_t n, n0;
    const int32_t *toks = llm8_session_tokens(s, &n);
    int32_t first[8];
    n0 = tokenize(m, prompts[0], first, 8);
    CHECK(n <= 48 && memcmp(toks, first, 5 * sizeof(int32_t)) == 0, "the first 5 tokens are kept (%d in context)", n);
    CHECK(n0 >= 5, "prompt has %d tokens", n0);
    /* continue both from the same tokens: the shifted session and a fresh evaluation of them */
    CHECK(llm8_session_eval(f, toks, (size_t)n, NULL, false) == LLM8_STATUS_OK, "fresh eval");
    gp.n_keep = -1;
    gp.max_tokens = 8;
    text a = {0}, b = {0};
    CHECK(llm8_session_generate_ids(s, NULL, 0, &gp, collect, &a, NULL) == LLM8_STATUS_OK, "continue shifted");
    CHECK(llm8_session_generate_ids(f, NULL, 0, &gp, collect, &b, NULL) == LLM8_STATUS_OK, "continue fresh");
    CHECK(a.len > 0 && strcmp(a.buf, b.buf) == 0, "shifted vs fresh: [%s] [%s]", a.buf, b.buf);
    gp.n_keep = 24;
    CHECK(llm8_session_generate(f, "x", 1, &gp, NULL, NULL, NULL) == LLM8_STATUS_INVALID_ARGUMENT,
          "n_keep >= n_ctx/2 refused");
    llm8_session_free(s);
    llm8_session_free(f);
}

int main(void) {
    llm8_model *m;
    char err[256];
    if (llm8_model_load("models/stories260k", &m, err, sizeof err)) {
        printf("FAIL load: %s\n", err);
        return 1;
    }
    check_batch_equals_sequential(m, "f32");
    check_stepper(m);
    check_context_shift(m);
    llm8_model_free(m);

    const char *bin = getenv("LLM8_BIN");
    char cmd[512], path[] = "/tmp/llm8_test_batch_w8a8.gguf";
    snprintf(cmd, sizeof cmd, "'%s' convert models/stories260k -o %s --quant w8a8 >/dev/null 2>&1", bin ? bin : "build/llm8",
             path);
    CHECK(system(cmd) == 0, "convert to w8a8");
    if (llm8_model_load(path, &m, err, sizeof err) == LLM8_STATUS_OK) {
        check_batch_equals_sequential(m, "w8a8");
        llm8_model_free(m);
    } else {
        CHECK(0, "load %s: %s", path, err);
    }
    remove(path);
    if (failures) printf("%d failures\n", failures);
    else printf("batch: all checks passed\n");
    return failures != 0;
}
