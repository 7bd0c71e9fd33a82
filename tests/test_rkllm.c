/* The RKLLM 1.1.1 compatibility layer (include/rkllm.h) on the demo model. Mostly written against
 * rkllm.h alone, as an RKLLM user would; llm8.h only supplies token ids to compare inputs. */
#include "check.h"
#include "llm8.h"
#include "rkllm.h"

#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MODEL "models/stories260k"
#define PROMPT "Once upon a time"
/* llm8 run -p "Once upon a time" -n 32 --temp 0: RKLLM with top_k 1 and no penalty must match. */
#define GREEDY ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw"

typedef struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char text[8192];
    size_t len;
    int n_normal, n_waiting, n_finish, n_error, n_hidden;
    int bad_order;  /* a callback after FINISH/ERROR */
    int bad_token;  /* a NORMAL piece without a token id or text */
    int embd_size, num_tokens, hidden_finite;
    bool gate; /* while set, NORMAL callbacks block: holds a run in progress without timing races */
} rec;

static void rec_init(rec *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void rec_clear(rec *r) {
    pthread_mutex_lock(&r->mu);
    r->text[0] = '\0';
    r->len = 0;
    r->n_normal = r->n_waiting = r->n_finish = r->n_error = r->n_hidden = 0;
    r->bad_order = r->bad_token = 0;
    r->embd_size = r->num_tokens = r->hidden_finite = 0;
    pthread_mutex_unlock(&r->mu);
}

static void callback(RKLLMResult *result, void *userdata, LLMCallState state) {
    rec *r = userdata;
    pthread_mutex_lock(&r->mu);
    if (r->n_finish || r->n_error) r->bad_order++;
    switch (state) {
    case RKLLM_RUN_NORMAL: {
        r->n_normal++;
        if (!result->text || result->token_id < 0) r->bad_token++;
        size_t l = result->text ? strlen(result->text) : 0;
        if (r->len + l < sizeof r->text) {
            memcpy(r->text + r->len, result->text, l);
            r->len += l;
            r->text[r->len] = '\0';
        }
        pthread_cond_broadcast(&r->cv);
        while (r->gate) pthread_cond_wait(&r->cv, &r->mu);
        break;
    }
    case RKLLM_RUN_WAITING: r->n_waiting++; break;
    case RKLLM_RUN_FINISH: r->n_finish++; break;
    case RKLLM_RUN_ERROR: r->n_error++; break;
    case RKLLM_RUN_GET_LAST_HIDDEN_LAYER: {
        r->n_hidden++;
        r->embd_size = result->last_hidden_layer.embd_size;
        r->num_tokens = result->last_hidden_layer.num_tokens;
        r->hidden_finite = 1;
        size_t n = (size_t)r->embd_size * (size_t)r->num_tokens;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(result->last_hidden_layer.hidden_states[i])) r->hidden_finite = 0;
        break;
    }
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits for FINISH or ERROR; false after the timeout. */
static bool rec_wait_end(rec *r, int seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    while (!r->n_finish && !r->n_error && rc == 0) rc = pthread_cond_timedwait(&r->cv, &r->mu, &until);
    bool ok = r->n_finish || r->n_error;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void rec_wait_normal(rec *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->n_normal && !r->n_finish && !r->n_error) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static RKLLMInput prompt_input(const char *text) {
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.input_type = RKLLM_INPUT_PROMPT;
    in.prompt_input = text;
    return in;
}

static RKLLMInput token_input(int32_t *ids, size_t n) {
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.input_type = RKLLM_INPUT_TOKEN;
    in.token_input.input_ids = ids;
    in.token_input.n_tokens = n;
    return in;
}

static void expect_clean_run(rec *r, const char *what) {
    CHECK(r->n_finish == 1, "%s: FINISH %d times", what, r->n_finish);
    CHECK(r->n_error == 0, "%s: %d ERROR callbacks", what, r->n_error);
    CHECK(r->bad_order == 0, "%s: callbacks after the end", what);
    CHECK(r->bad_token == 0, "%s: NORMAL pieces without text or token", what);
}

static void test_defaults(void) {
    RKLLMParam p = rkllm_createDefaultParam();
    CHECK(p.model_path == NULL, "model_path");
    CHECK(p.top_k == 40, "top_k %d", p.top_k);
    CHECK(fabsf(p.top_p - 0.9f) < 1e-6f, "top_p %g", p.top_p);
    CHECK(fabsf(p.temperature - 0.8f) < 1e-6f, "temperature %g", p.temperature);
    CHECK(fabsf(p.repeat_penalty - 1.1f) < 1e-6f, "repeat_penalty %g", p.repeat_penalty);
    CHECK(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f, "penalties");
    CHECK(p.mirostat == 0, "mirostat");
    CHECK(fabsf(p.mirostat_tau - 5.0f) < 1e-6f && fabsf(p.mirostat_eta - 0.1f) < 1e-6f, "mirostat tau/eta");
    CHECK(p.max_context_len == 2048 && p.max_new_tokens == 512, "lengths %d %d", p.max_context_len,
          p.max_new_tokens);
    CHECK(p.skip_special_token && !p.is_async, "flags");
    CHECK(!p.img_start && !p.img_end && !p.img_content, "img");
    static const RKLLMExtendParam zero;
    CHECK(memcmp(&p.extend_param, &zero, sizeof zero) == 0, "extend_param not zeroed");
}

static void test_bad_inputs(void) {
    LLMHandle h = (LLMHandle)1;
    RKLLMParam p = rkllm_createDefaultParam();
    CHECK(rkllm_init(NULL, &p, callback) == -1, "init(NULL handle)");
    CHECK(rkllm_init(&h, NULL, callback) == -1 && h == NULL, "init(NULL param)");
    h = (LLMHandle)1;
    CHECK(rkllm_init(&h, &p, callback) == -1 && h == NULL, "init without model_path");
    CHECK(rkllm_last_error(NULL)[0] != '\0', "no init error message");
    p.model_path = "models/no-such-model";
    CHECK(rkllm_init(&h, &p, callback) == -1 && h == NULL, "init with a missing model");
    RKLLMInput in = prompt_input(PROMPT);
    CHECK(rkllm_run(NULL, &in, NULL, NULL) == -1, "run(NULL)");
    CHECK(rkllm_run_async(NULL, &in, NULL, NULL) == -1, "run_async(NULL)");
    CHECK(rkllm_abort(NULL) == -1, "abort(NULL)");
    CHECK(rkllm_is_running(NULL) != 0, "is_running(NULL)");
    CHECK(rkllm_destroy(NULL) == -1, "destroy(NULL)");
    CHECK(rkllm_load_prompt_cache(NULL, "x") == -1, "load_prompt_cache(NULL)");
    CHECK(rkllm_release_prompt_cache(NULL) == -1, "release_prompt_cache(NULL)");
    CHECK(rkllm_load_lora(NULL, NULL) == -1, "load_lora(NULL)");
}

static void run_prompt(LLMHandle h, rec *r, const char *prompt, RKLLMInferParam *ip) {
    rec_clear(r);
    RKLLMInput in = prompt_input(prompt);
    CHECK(rkllm_run(h, &in, ip, r) == 0, "run(%s): %s", prompt, rkllm_last_error(h));
}

static void test_model(void) {
    RKLLMParam p = rkllm_createDefaultParam();
    p.model_path = MODEL;
    p.max_context_len = 4096; /* clipped to the model's 512 */
    p.max_new_tokens = 32;
    p.top_k = 1;
    p.repeat_penalty = 1.0f;
    LLMHandle h = NULL;
    CHECK(rkllm_init(&h, &p, callback) == 0 && h, "init: %s", rkllm_last_error(NULL));
    if (!h) return;
    rec r;
    rec_init(&r);
    CHECK(rkllm_is_running(h) != 0, "is_running when idle");

    /* greedy prompt run = llm8's greedy generation; runs are independent turns */
    for (int i = 0; i < 2; i++) {
        run_prompt(h, &r, PROMPT, NULL);
        CHECK(strcmp(r.text, GREEDY) == 0, "greedy run %d: [%s]", i, r.text);
        CHECK(r.n_normal > 0, "no NORMAL");
        CHECK(r.n_waiting == 0 && r.n_hidden == 0, "unexpected states");
        expect_clean_run(&r, "prompt");
    }

    /* token input = prompt input for the same ids (BOS included, as the prompt path adds it) */
    llm8_model *m = NULL;
    CHECK(llm8_model_load(MODEL, &m, NULL, 0) == LLM8_STATUS_OK, "llm8_model_load");
    int32_t ids[64];
    size_t n = 0;
    CHECK(llm8_tokenize(llm8_model_tokenizer(m), PROMPT ", there was", strlen(PROMPT ", there was"),
                        LLM8_TOKENIZE_ADD_BOS | LLM8_TOKENIZE_PARSE_SPECIAL, ids, 64, &n) == LLM8_STATUS_OK,
          "tokenize");
    size_t n_first = 0; /* ids of PROMPT alone */
    CHECK(llm8_tokenize(llm8_model_tokenizer(m), PROMPT, strlen(PROMPT),
                        LLM8_TOKENIZE_ADD_BOS | LLM8_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n_first) != LLM8_STATUS_OK ||
              n_first > 0,
          "count");
    llm8_model_free(m);
    CHECK(n_first > 1 && n > n_first, "token counts %zu %zu", n_first, n);
    rec_clear(&r);
    RKLLMInput tin = token_input(ids, n_first);
    CHECK(rkllm_run(h, &tin, NULL, &r) == 0, "token run: %s", rkllm_last_error(h));
    CHECK(strcmp(r.text, GREEDY) == 0, "token run: [%s]", r.text);
    expect_clean_run(&r, "token");

    /* the whole text as tokens: the reference for the prompt cache below */
    char full[8192];
    rec_clear(&r);
    tin = token_input(ids, n);
    CHECK(rkllm_run(h, &tin, NULL, &r) == 0, "full token run");
    snprintf(full, sizeof full, "%s", r.text);
    CHECK(strlen(full) > 0, "empty full run");

    /* prompt cache: save after the first ids, load, run the rest = the whole run */
    const char *cache = "build-rkllm-test-cache.bin";
    remove(cache);
    RKLLMPromptCacheParam pc = {1, cache};
    RKLLMInferParam ip;
    memset(&ip, 0, sizeof ip);
    ip.mode = RKLLM_INFER_GENERATE;
    ip.prompt_cache_params = &pc;
    rec_clear(&r);
    tin = token_input(ids, n_first);
    CHECK(rkllm_run(h, &tin, &ip, &r) == 0, "save run: %s", rkllm_last_error(h));
    CHECK(strcmp(r.text, GREEDY) == 0, "save run text: [%s]", r.text);
    expect_clean_run(&r, "save");
    CHECK(access(cache, F_OK) == 0, "no prompt cache file");
    CHECK(rkllm_load_prompt_cache(h, "no-such-cache.bin") == -1, "load of a missing cache");
    CHECK(rkllm_load_prompt_cache(h, cache) == 0, "load cache: %s", rkllm_last_error(h));
    for (int i = 0; i < 2; i++) { /* each run restarts from the cache */
        rec_clear(&r);
        tin = token_input(ids + n_first, n - n_first);
        CHECK(rkllm_run(h, &tin, NULL, &r) == 0, "cached run: %s", rkllm_last_error(h));
        CHECK(strcmp(r.text, full) == 0, "cached run %d: [%s] vs [%s]", i, r.text, full);
        expect_clean_run(&r, "cached");
    }
    CHECK(rkllm_release_prompt_cache(h) == 0, "release");
    run_prompt(h, &r, PROMPT, NULL);
    CHECK(strcmp(r.text, GREEDY) == 0, "after release: [%s]", r.text);
    remove(cache);

    /* last hidden layer: n x 64 floats through the callback, no text */
    memset(&ip, 0, sizeof ip);
    ip.mode = RKLLM_INFER_GET_LAST_HIDDEN_LAYER;
    rec_clear(&r);
    tin = token_input(ids, n);
    CHECK(rkllm_run(h, &tin, &ip, &r) == 0, "hidden run: %s", rkllm_last_error(h));
    CHECK(r.n_hidden == 1 && r.embd_size == 64 && r.num_tokens == (int)n && r.hidden_finite,
          "hidden: %d calls, %d x %d", r.n_hidden, r.num_tokens, r.embd_size);
    CHECK(r.n_normal == 0, "hidden mode generated text");
    expect_clean_run(&r, "hidden");

    /* embedding input: prefill then generate */
    float embd[3 * 64];
    for (int i = 0; i < 3 * 64; i++) embd[i] = 0.05f * sinf((float)i);
    RKLLMInput ein;
    memset(&ein, 0, sizeof ein);
    ein.input_type = RKLLM_INPUT_EMBED;
    ein.embed_input.embed = embd;
    ein.embed_input.n_tokens = 3;
    rec_clear(&r);
    CHECK(rkllm_run(h, &ein, NULL, &r) == 0, "embed run: %s", rkllm_last_error(h));
    expect_clean_run(&r, "embed");

    /* refused inputs */
    CHECK(rkllm_run(h, NULL, NULL, &r) == -1, "NULL input");
    RKLLMInput mm;
    memset(&mm, 0, sizeof mm);
    mm.input_type = RKLLM_INPUT_MULTIMODAL;
    mm.multimodal_input.prompt = "<image>";
    CHECK(rkllm_run(h, &mm, NULL, &r) == -1, "multimodal accepted");
    CHECK(rkllm_run_async(h, &mm, NULL, &r) == -1, "async multimodal accepted");
    RKLLMLoraParam lp = {"adapter"};
    memset(&ip, 0, sizeof ip);
    ip.lora_params = &lp;
    RKLLMInput in = prompt_input(PROMPT);
    CHECK(rkllm_run(h, &in, &ip, &r) == -1, "lora accepted");
    RKLLMLoraAdapter la = {"a.bin", "adapter", 1.0f};
    CHECK(rkllm_load_lora(h, &la) == -1, "load_lora accepted");

    /* async = sync */
    rec_clear(&r);
    CHECK(rkllm_run_async(h, &in, NULL, &r) == 0, "async");
    CHECK(rec_wait_end(&r, 30), "async run did not end");
    CHECK(strcmp(r.text, GREEDY) == 0, "async text: [%s]", r.text);
    expect_clean_run(&r, "async");

    CHECK(rkllm_destroy(h) == 0, "destroy");
}

static void test_abort(void) {
    RKLLMParam p = rkllm_createDefaultParam();
    p.model_path = MODEL;
    p.max_context_len = 512;
    p.max_new_tokens = -1; /* until the context is full */
    p.temperature = 1.5f;  /* keep it talking past EOS-prone greedy endings */
    LLMHandle h = NULL;
    CHECK(rkllm_init(&h, &p, callback) == 0, "init: %s", rkllm_last_error(NULL));
    if (!h) return;
    rec r;
    rec_init(&r);
    r.gate = true;
    RKLLMInput in = prompt_input(PROMPT);
    CHECK(rkllm_run_async(h, &in, NULL, &r) == 0, "async");
    CHECK(rkllm_is_running(h) == 0, "is_running (1.1.1: 0 = running) right after run_async");
    rec_wait_normal(&r);
    CHECK(rkllm_is_running(h) == 0, "is_running (1.1.1: 0 = running) during the run");
    rec other;
    rec_init(&other);
    CHECK(rkllm_run(h, &in, NULL, &other) == -1, "run while busy accepted");
    CHECK(rkllm_run_async(h, &in, NULL, &other) == -1, "run_async while busy accepted");
    CHECK(rkllm_load_prompt_cache(h, "x.bin") == -1, "load_prompt_cache while busy accepted");
    CHECK(rkllm_abort(h) == 0, "abort");
    pthread_mutex_lock(&r.mu);
    r.gate = false;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    CHECK(rec_wait_end(&r, 5), "the run did not end after abort");
    for (int i = 0; i < 5000 && rkllm_is_running(h) == 0; i++) usleep(1000);
    CHECK(rkllm_is_running(h) != 0, "still running after the end");
    pthread_mutex_lock(&r.mu);
    CHECK(r.n_finish + r.n_error == 1 && r.bad_order == 0, "ends: %d FINISH %d ERROR", r.n_finish, r.n_error);
    CHECK(r.n_normal <= 2, "%d pieces after the abort", r.n_normal);
    pthread_mutex_unlock(&r.mu);

    /* destroy during a run aborts and joins it */
    rec_clear(&r);
    CHECK(rkllm_run_async(h, &in, NULL, &r) == 0, "second async");
    CHECK(rkllm_destroy(h) == 0, "destroy while running");
    CHECK(r.n_finish + r.n_error == 1, "destroy: %d FINISH %d ERROR", r.n_finish, r.n_error);
}

/* The example is an RKLLM program built with the project: it must run and print the story. */
static void test_example(void) {
    const char *bin = getenv("LLM8_BIN");
    if (!bin) {
        printf("LLM8_BIN not set: example not run\n");
        return;
    }
    char dir[4096], cmd[8192];
    snprintf(dir, sizeof dir, "%s", bin);
    snprintf(cmd, sizeof cmd, "'%s/examples/rkllm_demo' " MODEL " 2>&1", dirname(dir));
    FILE *f = popen(cmd, "r");
    CHECK(f, "popen");
    if (!f) return;
    char out[8192];
    size_t len = fread(out, 1, sizeof out - 1, f);
    out[len] = '\0';
    int rc = pclose(f);
    CHECK(rc == 0, "rkllm_demo exit %d: %s", rc, out);
    /* the demo keeps RKLLM's default repeat penalty, so only the start matches plain greedy */
    const char *start = PROMPT ", there was a little girl named Lily.";
    CHECK(strncmp(out, start, strlen(start)) == 0, "rkllm_demo output: %s", out);
    CHECK(strstr(out, "is_running after abort: 1") != NULL, "rkllm_demo abort: %s", out);
}

int main(void) {
    test_defaults();
    test_bad_inputs();
    test_model();
    test_abort();
    test_example();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
