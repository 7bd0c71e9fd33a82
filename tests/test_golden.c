/*
 * The demo model against golden.json (an independent float32 reference): prompt ids, all 512
 * logits at the last prompt position, the top-5 of the first eight greedy steps, the 64-token
 * greedy continuation, and the same continuation's text through the API and through `llm8 run`.
 */
#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "llm8.h"

#define MODEL "models/stories260k"
static const double TOL = 1e-4;

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

typedef struct textbuf {
    char data[8192];
    size_t len;
} textbuf;

static bool collect(void *user, const char *text, size_t len, int32_t token) {
    textbuf *b = user;
    assert(b->len + len < sizeof b->data);
    memcpy(b->data + b->len, text, len);
    b->len += len;
    return true;
}

/* Runs the CLI on a prompt and returns its stdout (heap). */
static char *run_cli(const char *prompt) {
    const char *bin = getenv("LLM8_BIN");
    if (!bin) bin = "build/llm8";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' run -m " MODEL " -p '%s' -n 64 --temp 0 --ignore-eos 2>/dev/null", bin, prompt);
    FILE *p = popen(cmd, "r");
    assert(p);
    char *out = calloc(1, 16384);
    size_t n = fread(out, 1, 16383, p);
    out[n] = 0;
    CHECK(pclose(p) == 0, "llm8 run exited non-zero for '%s'", prompt);
    return out;
}

int main(void) {
    json_error_t je;
    json_t *golden = json_load_file(MODEL "/golden.json", 0, &je);
    assert(golden);
    json_t *prompts = json_object_get(golden, "prompts");
    assert(json_is_array(prompts) && json_array_size(prompts) == 5);

    char err[512];
    llm8_model *model;
    llm8_status st = llm8_model_load(MODEL, &model, err, sizeof err);
    if (st) {
        printf("load failed: %s\n", err);
        return 1;
    }
    const llm8_model_info *info = llm8_model_get_info(model);
    const llm8_tokenizer *tok = llm8_model_tokenizer(model);
    int nv = info->n_vocab;
    float *logits = malloc((size_t)nv * sizeof(float));
    double worst = 0;

    for (size_t pi = 0; pi < json_array_size(prompts); pi++) {
        json_t *rec = json_array_get(prompts, pi);
        const char *text = json_string_value(json_object_get(rec, "prompt"));
        json_t *want_ids = json_object_get(rec, "input_ids");
        assert(text && want_ids);

        /* 1. prompt ids */
        int32_t ids[256];
        size_t n;
        st = llm8_tokenize(tok, text, strlen(text), LLM8_TOKENIZE_ADD_BOS, ids, 256, &n);
        CHECK(st == LLM8_STATUS_OK && n == json_array_size(want_ids), "prompt %zu: %zu ids, want %zu", pi, n,
              json_array_size(want_ids));
        for (size_t i = 0; i < n && i < json_array_size(want_ids); i++)
            CHECK(ids[i] == json_integer_value(json_array_get(want_ids, i)), "prompt %zu id %zu", pi, i);
        n = json_array_size(want_ids);
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(want_ids, i));

        /* 2. all logits at the last prompt position */
        llm8_session *s;
        assert(llm8_session_create(model, NULL, &s, err, sizeof err) == LLM8_STATUS_OK);
        assert(llm8_session_eval(s, ids, n, logits, false) == LLM8_STATUS_OK);
        json_t *want_logits = json_object_get(rec, "logits_last_prompt_position");
        assert(json_array_size(want_logits) == (size_t)nv);
        double maxd = 0;
        for (int i = 0; i < nv; i++) {
            double d = fabs(logits[i] - json_number_value(json_array_get(want_logits, i)));
            if (d > maxd) maxd = d;
        }
        CHECK(maxd <= TOL, "prompt %zu: max logit error %.3g > %.0e", pi, maxd, TOL);

        /* 3 and 4. greedy decoding: the top-5 of the first steps, then all 64 ids */
        json_t *steps = json_object_get(rec, "steps_top5");
        json_t *greedy = json_object_get(rec, "greedy_ids");
        for (size_t k = 0; k < json_array_size(greedy); k++) {
            if (k < json_array_size(steps)) {
                json_t *top5 = json_object_get(json_array_get(steps, k), "top5");
                if (!top5) top5 = json_array_get(steps, k);
                for (size_t j = 0; j < json_array_size(top5); j++) {
                    json_t *pair = json_array_get(top5, j);
                    int id = (int)json_integer_value(json_array_get(pair, 0));
                    double d = fabs(logits[id] - json_number_value(json_array_get(pair, 1)));
                    if (d > maxd) maxd = d;
                    CHECK(d <= TOL, "prompt %zu step %zu top5 id %d: error %.3g", pi, k, id, d);
                }
            }
            int32_t next = argmax(logits, nv);
            int want = (int)json_integer_value(json_array_get(greedy, k));
            CHECK(next == want, "prompt %zu greedy step %zu: got %d want %d", pi, k, next, want);
            if (next != want) break;
            assert(llm8_session_eval(s, &next, 1, logits, false) == LLM8_STATUS_OK);
        }
        if (maxd > worst) worst = maxd;

        /* 5. the same continuation as text, through the generation API and the CLI */
        const char *want_text = json_string_value(json_object_get(rec, "greedy_text"));
        llm8_session_reset(s);
        llm8_generate_params gp = llm8_generate_default_params();
        gp.sampling.temperature = 0;
        gp.ignore_eos = true;
        gp.max_tokens = 64;
        textbuf out = {.len = 0};
        llm8_run_stats rs;
        st = llm8_session_generate(s, text, strlen(text), &gp, collect, &out, &rs);
        CHECK(st == LLM8_STATUS_OK && rs.generated_tokens == 64, "generate: %s", llm8_session_last_error(s));
        CHECK(out.len == strlen(want_text) && !memcmp(out.data, want_text, out.len),
              "prompt %zu text:\n  got  [%.*s]\n  want [%s]", pi, (int)out.len, out.data, want_text);
        char *cli = run_cli(text);
        size_t cl = strlen(cli);
        CHECK(cl == strlen(want_text) + 1 && !strncmp(cli, want_text, cl - 1) && cli[cl - 1] == '\n',
              "prompt %zu: llm8 run printed [%s]", pi, cli);
        free(cli);
        llm8_session_free(s);
        printf("prompt %zu: %zu ids ok, max logit error %.2e, 64 greedy ids and text ok\n", pi, n, maxd);
    }
    printf("golden: max abs logit error %.3e over 5 prompts (tolerance %.0e), %d failures\n", worst, TOL, failures);
    free(logits);
    llm8_model_free(model);
    json_decref(golden);
    return failures ? 1 : 0;
}
