/*
 * Sampling and generation controls: the sampler's rules on crafted logits (penalties, top-k,
 * top-p, min-p, temperature, the draw's distribution) and, through the public API on the demo
 * model, seeds, stop strings, end tokens and length limits.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "llm8.h"
#include "sample/sampler.h"


static llm8_sampling_params plain(float temp) {
    llm8_sampling_params p = llm8_sampling_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.penalty_last_n = 64;
    return p;
}

/* Draws many samples from logits and returns the frequency of each of the n ids. */
static void histogram(llm8_sampling_params p, const float *logits, int n, int draws, double *freq) {
    l8_sampler s;
    assert(l8_sampler_init(&s, &p, n, 128) == LLM8_STATUS_OK);
    float work[16];
    for (int i = 0; i < n; i++) freq[i] = 0;
    for (int d = 0; d < draws; d++) {
        memcpy(work, logits, (size_t)n * sizeof(float));
        freq[l8_sampler_sample(&s, work)] += 1.0 / draws;
    }
    l8_sampler_free(&s);
}

static void sampler_rules(void) {
    const float lg[4] = {logf(0.5f), logf(0.25f), logf(0.15f), logf(0.10f)};
    double f[4];

    histogram(plain(1.0f), lg, 4, 200000, f);
    CHECK(fabs(f[0] - 0.5) < 0.01 && fabs(f[1] - 0.25) < 0.01 && fabs(f[3] - 0.10) < 0.01,
          "temperature 1 draws %.3f %.3f %.3f %.3f, want .5 .25 .15 .10", f[0], f[1], f[2], f[3]);

    llm8_sampling_params p = plain(1.0f);
    p.top_k = 2; /* renormalised over {0.5, 0.25} */
    histogram(p, lg, 4, 100000, f);
    CHECK(fabs(f[0] - 2.0 / 3) < 0.01 && f[2] == 0 && f[3] == 0, "top-k 2: %.3f %.3f %.3f", f[0], f[1], f[2]);

    p = plain(1.0f);
    p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.75: keeps two */
    histogram(p, lg, 4, 100000, f);
    CHECK(f[2] == 0 && f[3] == 0 && f[1] > 0.3, "top-p 0.7 keeps ids 0 and 1: %.3f %.3f %.3f", f[0], f[1], f[2]);

    p = plain(1.0f);
    p.min_p = 0.25f; /* keeps p >= 0.125: ids 0, 1, 2 */
    histogram(p, lg, 4, 100000, f);
    CHECK(f[3] == 0 && f[2] > 0.1, "min-p 0.25 drops only id 3: %.3f %.3f", f[2], f[3]);

    p = plain(0.5f); /* p^2 renormalised: .25/.395 for id 0 */
    histogram(p, lg, 4, 200000, f);
    double z = 0.25 + 0.0625 + 0.0225 + 0.01;
    CHECK(fabs(f[0] - 0.25 / z) < 0.01, "temperature 0.5: id 0 at %.3f, want %.3f", f[0], 0.25 / z);

    /* penalties act on logits in the window only */
    l8_sampler s;
    float x[4] = {5.0f, 4.0f, -1.0f, 3.0f};
    p = plain(0.0f);
    p.repeat_penalty = 2.0f;
    assert(l8_sampler_init(&s, &p, 4, 128) == LLM8_STATUS_OK);
    l8_sampler_accept(&s, 0);
    l8_sampler_accept(&s, 2);
    CHECK(l8_sampler_sample(&s, x) == 1 && x[0] == 2.5f && x[2] == -2.0f && x[1] == 4.0f,
          "repeat penalty: logits %g %g %g", x[0], x[1], x[2]);
    l8_sampler_free(&s);

    float y[3] = {5.0f, 4.5f, 0.0f};
    p = plain(0.0f);
    p.frequency_penalty = 0.3f;
    p.presence_penalty = 0.1f;
    assert(l8_sampler_init(&s, &p, 3, 128) == LLM8_STATUS_OK);
    l8_sampler_accept(&s, 0);
    l8_sampler_accept(&s, 0);
    CHECK(l8_sampler_sample(&s, y) == 1 && fabsf(y[0] - (5.0f - 0.6f - 0.1f)) < 1e-6f,
          "frequency/presence penalty: logit %g", y[0]);
    l8_sampler_free(&s);

    /* the window: with penalty_last_n 1 only the last token is penalised */
    float w[3] = {5.0f, 4.9f, 0.0f};
    p = plain(0.0f);
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 1;
    assert(l8_sampler_init(&s, &p, 3, 128) == LLM8_STATUS_OK);
    l8_sampler_accept(&s, 1);
    l8_sampler_accept(&s, 2);
    CHECK(l8_sampler_sample(&s, w) == 0 && w[1] == 4.9f, "penalty window of 1 touched id 1: %g", w[1]);
    l8_sampler_free(&s);

    /* top-p over a large vocabulary (the incremental selection path): every draw lies in the
     * nucleus computed by brute force, and the nucleus is sampled in proportion */
    {
        enum { V = 5000 };
        static float big[V], work[V];
        static int order[V];
        uint64_t rng = 99;
        /* 10 strong tokens among 4990 weak ones: the nucleus of 0.5 holds the 10 and about 1750
         * weak ones, and the strong ones get 46% of the draws (53% if the mass were measured
         * over the candidates selected so far instead of the whole vocabulary) */
        for (int i = 0; i < V; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            big[i] = (rng >> 40) % 500 == 0 ? 5.0f : 0.0f;
            order[i] = i;
        }
        int strong = 0;
        for (int i = 0; i < V; i++) strong += big[i] == 5.0f;
        for (int i = 0; i < V; i++) /* brute force: ids by logit, descending (ties: lower id) */
            for (int j = i + 1; j < V; j++)
                if (big[order[j]] > big[order[i]] || (big[order[j]] == big[order[i]] && order[j] < order[i])) {
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        double total = 0, cum = 0;
        for (int i = 0; i < V; i++) total += exp(big[i] - 10.0);
        static bool in[V];
        int nucleus = 0;
        for (int i = 0; i < V && cum < 0.5 * total; i++, nucleus++) {
            cum += exp(big[order[i]] - 10.0);
            in[order[i]] = true;
        }
        llm8_sampling_params tp = plain(1.0f);
        tp.top_p = 0.5f;
        l8_sampler ts;
        assert(l8_sampler_init(&ts, &tp, V, 128) == LLM8_STATUS_OK);
        int outside = 0, top = 0;
        for (int d = 0; d < 20000; d++) {
            memcpy(work, big, sizeof big);
            int id = l8_sampler_sample(&ts, work);
            outside += !in[id];
            top += big[id] == 5.0f;
        }
        l8_sampler_free(&ts);
        double want = strong * exp(5.0 - 10.0) / cum;
        CHECK(outside == 0 && fabs(top / 20000.0 - want) < 0.01 + 3 * sqrt(want / 20000),
              "top-p 0.5 over %d tokens (nucleus %d): %d draws outside, strong ids %.4f want %.4f", V, nucleus, outside,
              top / 20000.0, want);
    }

    /* NaN logits never win */
    float nanl[3] = {NAN, 1.0f, 0.5f};
    histogram(plain(1.0f), nanl, 3, 1000, f);
    CHECK(f[0] == 0, "a NaN logit was sampled");
}

/* ---------------------------------------------------------------- through the public API */

typedef struct out {
    char text[8192];
    size_t len;
    int calls;
    int stop_after; /* callback returns false after this many calls (0: never) */
} out;

static bool collect(void *user, const char *text, size_t len, int32_t token) {
    out *o = user;
    assert(o->len + len < sizeof o->text);
    memcpy(o->text + o->len, text, len);
    o->len += len;
    o->text[o->len] = 0;
    return !(o->stop_after && ++o->calls >= o->stop_after);
}

static llm8_status gen(llm8_model *m, const char *prompt, llm8_generate_params gp, out *o, llm8_run_stats *rs) {
    llm8_session *s;
    char err[256];
    assert(llm8_session_create(m, NULL, &s, err, sizeof err) == LLM8_STATUS_OK);
    int stop_after = o->stop_after;
    memset(o, 0, sizeof *o);
    o->stop_after = stop_after;
    llm8_status st = llm8_session_generate(s, prompt, strlen(prompt), &gp, collect, o, rs);
    llm8_session_free(s);
    return st;
}

static void generation(void) {
    char err[256];
    llm8_model *m;
    assert(llm8_model_load("models/stories260k", &m, err, sizeof err) == LLM8_STATUS_OK);
    llm8_generate_params gp = llm8_generate_default_params();
    llm8_run_stats rs;
    out a = {0}, b = {0};

    gp.max_tokens = 40;
    gp.sampling.seed = 1234;
    gp.sampling.temperature = 1.0f;
    gen(m, "Once upon a time", gp, &a, &rs);
    gen(m, "Once upon a time", gp, &b, &rs);
    CHECK(a.len > 0 && a.len == b.len && !memcmp(a.text, b.text, a.len), "same seed, different text");
    int differ = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        gp.sampling.seed = seed;
        gen(m, "Once upon a time", gp, &b, &rs);
        differ += b.len != a.len || memcmp(a.text, b.text, a.len) != 0;
    }
    CHECK(differ >= 3, "other seeds gave the same text %d of 4 times", 4 - differ);

    /* greedy: top-k 1 at any temperature is greedy too */
    gp = llm8_generate_default_params();
    gp.max_tokens = 30;
    gp.sampling.temperature = 0;
    gen(m, "Once upon a time", gp, &a, &rs);
    CHECK(rs.generated_tokens == 30 && rs.stop_reason == LLM8_STOP_LENGTH, "max tokens: %d, reason %d",
          rs.generated_tokens, rs.stop_reason);
    gp.sampling.temperature = 1.5f;
    gp.sampling.top_k = 1;
    gen(m, "Once upon a time", gp, &b, &rs);
    CHECK(!strcmp(a.text, b.text), "top-k 1 differs from greedy");
    printf("greedy: [%s]\n", a.text);

    /* stop strings: the text before the stop string is emitted, not the string */
    gp = llm8_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = 64;
    const char *stops[] = {"xyzzy", "Lily"};
    gp.stop = stops;
    gp.n_stop = 2;
    gen(m, "Once upon a time", gp, &b, &rs);
    const char *cut = strstr(a.text, "Lily");
    assert(cut);
    CHECK(rs.stop_reason == LLM8_STOP_STRING && b.len == (size_t)(cut - a.text) && !strncmp(a.text, b.text, b.len),
          "stop string: got [%s], reason %d", b.text, rs.stop_reason);
    const char *nl[] = {"."}; /* a stop string that arrives inside a longer piece */
    gp.stop = nl;
    gp.n_stop = 1;
    gen(m, "Once upon a time", gp, &b, &rs);
    CHECK(rs.stop_reason == LLM8_STOP_STRING && !strchr(b.text, '.') && !strncmp(a.text, b.text, b.len),
          "stop '.': got [%s]", b.text);

    /* the callback can stop generation */
    gp = llm8_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = 64;
    b.stop_after = 3;
    gen(m, "Once upon a time", gp, &b, &rs);
    CHECK(rs.stop_reason == LLM8_STOP_CALLBACK && b.calls == 3, "callback stop: %d calls", b.calls);
    b.stop_after = 0;

    /* end of text: from BOS the greedy story ends with BOS (README: its 346th token) */
    gp = llm8_generate_default_params();
    gp.sampling.temperature = 0;
    gen(m, "", gp, &b, &rs);
    CHECK(rs.stop_reason == LLM8_STOP_EOS && rs.generated_tokens == 345, "end token: reason %d after %d tokens",
          rs.stop_reason, rs.generated_tokens);
    gp.ignore_eos = true;
    gp.max_tokens = 400;
    gen(m, "", gp, &b, &rs);
    CHECK(rs.stop_reason == LLM8_STOP_LENGTH && rs.generated_tokens == 400, "--ignore-eos: reason %d after %d",
          rs.stop_reason, rs.generated_tokens);

    /* a full context stops generation, said in the reason; the last token is sampled from the
     * last position's logits, so one more token than the context holds comes out */
    gp.max_tokens = -1;
    gen(m, "Once upon a time", gp, &b, &rs);
    CHECK(rs.stop_reason == LLM8_STOP_CONTEXT && rs.prompt_tokens + rs.generated_tokens == 512 + 1,
          "context full: reason %d, %d + %d tokens", rs.stop_reason, rs.prompt_tokens, rs.generated_tokens);

    /* bad input */
    llm8_session *s;
    assert(llm8_session_create(m, NULL, &s, err, sizeof err) == LLM8_STATUS_OK);
    CHECK(llm8_session_generate(s, "caf\xe9", 4, &gp, NULL, NULL, NULL) == LLM8_STATUS_INVALID_ARGUMENT &&
              strstr(llm8_session_last_error(s), "UTF-8"),
          "invalid UTF-8: %s", llm8_session_last_error(s));
    int32_t bad = 512;
    CHECK(llm8_session_eval(s, &bad, 1, NULL, false) == LLM8_STATUS_INVALID_ARGUMENT, "token id out of range");
    CHECK(llm8_session_n_past(s) == 0, "a failed eval changed the context");
    llm8_session_free(s);
    llm8_model_free(m);
}

int main(void) {
    sampler_rules();
    generation();
    printf("sampling: %d failures\n", failures);
    return failures ? 1 : 0;
}
