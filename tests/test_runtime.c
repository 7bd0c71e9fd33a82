/*
 * Run control through the public API on the demo model: asynchronous generation, abort from
 * another thread (stops within a step), is-running, a second run refused while one is active,
 * and two sessions on one model in two threads giving the same text as one at a time.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "llm8.h"


typedef struct sink {
    char text[16384];
    size_t len;
    atomic_int pieces;
    atomic_int done_calls;
    llm8_status done_status;
} sink;

static bool collect(void *user, const char *text, size_t len, int32_t token) {
    sink *k = user;
    if (k->len + len < sizeof k->text) {
        memcpy(k->text + k->len, text, len);
        k->len += len;
        k->text[k->len] = 0;
    }
    atomic_fetch_add(&k->pieces, 1);
    return true;
}

static void on_done(void *user, llm8_status st, const llm8_run_stats *rs) {
    sink *k = user;
    k->done_status = st;
    atomic_fetch_add(&k->done_calls, 1);
}

static llm8_generate_params greedy(int n) {
    llm8_generate_params gp = llm8_generate_default_params();
    gp.sampling.temperature = 0;
    gp.ignore_eos = true;
    gp.max_tokens = n;
    return gp;
}

static void sleep_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct worker_arg {
    llm8_model *m;
    const char *prompt;
    sink out;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    llm8_session *s;
    char err[256];
    llm8_session_params sp = llm8_session_default_params();
    sp.n_threads = 1;
    assert(llm8_session_create(a->m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
    llm8_generate_params gp = greedy(200);
    assert(llm8_session_generate(s, a->prompt, strlen(a->prompt), &gp, collect, &a->out, NULL) == LLM8_STATUS_OK);
    llm8_session_free(s);
    return NULL;
}

int main(void) {
    char err[256];
    llm8_model *m;
    assert(llm8_model_load("models/stories260k", &m, err, sizeof err) == LLM8_STATUS_OK);
    llm8_session *s;
    assert(llm8_session_create(m, NULL, &s, err, sizeof err) == LLM8_STATUS_OK);
    const char *prompt = "Once upon a time";

    /* synchronous reference text */
    static sink sync, async_out, aborted, again;
    llm8_generate_params gp = greedy(120);
    assert(llm8_session_generate(s, prompt, strlen(prompt), &gp, collect, &sync, NULL) == LLM8_STATUS_OK);
    CHECK(!llm8_session_is_running(s), "running after a synchronous run");

    /* asynchronous: the same text, done called once, running until then */
    llm8_session_reset(s);
    CHECK(llm8_session_generate_async(s, prompt, strlen(prompt), &gp, collect, on_done, &async_out) == LLM8_STATUS_OK,
          "async start");
    CHECK(llm8_session_generate(s, prompt, strlen(prompt), &gp, collect, &again, NULL) == LLM8_STATUS_INVALID_ARGUMENT,
          "a second run while one is active was not refused");
    CHECK(llm8_session_wait(s) == LLM8_STATUS_OK, "async status");
    CHECK(!llm8_session_is_running(s) && atomic_load(&async_out.done_calls) == 1, "after wait: running %d, done %d",
          llm8_session_is_running(s), atomic_load(&async_out.done_calls));
    CHECK(async_out.len == sync.len && !memcmp(async_out.text, sync.text, sync.len), "async text differs");

    /* abort from this thread while the worker generates a long text */
    llm8_session_reset(s);
    llm8_generate_params longer = greedy(100000);
    assert(llm8_session_generate_async(s, prompt, strlen(prompt), &longer, collect, on_done, &aborted) ==
           LLM8_STATUS_OK);
    while (atomic_load(&aborted.pieces) < 20) sleep_ms(1);
    CHECK(llm8_session_is_running(s), "not running mid-generation");
    int at_abort = atomic_load(&aborted.pieces);
    llm8_session_abort(s);
    llm8_status st = llm8_session_wait(s);
    int after = atomic_load(&aborted.pieces);
    CHECK(st == LLM8_STATUS_ABORTED && aborted.done_status == LLM8_STATUS_ABORTED, "abort status %s",
          llm8_status_to_string(st));
    CHECK(after - at_abort <= 2, "%d pieces came after the abort", after - at_abort);
    printf("abort: %d pieces before, %d after; last error: %s\n", at_abort, after - at_abort,
           llm8_session_last_error(s));

    /* an abort while idle does not poison the next run */
    llm8_session_abort(s);
    llm8_session_reset(s);
    static sink next;
    CHECK(llm8_session_generate(s, prompt, strlen(prompt), &gp, collect, &next, NULL) == LLM8_STATUS_OK &&
              next.len == sync.len,
          "run after an idle abort: %s", llm8_session_last_error(s));

    /* saved state: a prompt prefilled, saved, loaded into a fresh session; the continuation is
     * the same as without the round trip, and nothing is prefilled again */
    llm8_session_reset(s);
    int32_t prompt_ids[64];
    size_t np;
    assert(llm8_tokenize(llm8_model_tokenizer(m), prompt, strlen(prompt), LLM8_TOKENIZE_ADD_BOS, prompt_ids, 64, &np) ==
           LLM8_STATUS_OK);
    assert(llm8_session_eval(s, prompt_ids, np, NULL, false) == LLM8_STATUS_OK);
    const char *state = "/tmp/llm8_test_state.bin";
    CHECK(llm8_session_save(s, state) == LLM8_STATUS_OK, "save: %s", llm8_session_last_error(s));
    llm8_session *s2;
    assert(llm8_session_create(m, NULL, &s2, err, sizeof err) == LLM8_STATUS_OK);
    CHECK(llm8_session_load(s2, state) == LLM8_STATUS_OK && llm8_session_n_past(s2) == (int32_t)np, "load: %s",
          llm8_session_last_error(s2));
    static sink cont;
    llm8_run_stats rs;
    CHECK(llm8_session_generate_ids(s2, NULL, 0, &gp, collect, &cont, &rs) == LLM8_STATUS_OK && rs.prompt_tokens == 0,
          "continue after load: %s", llm8_session_last_error(s2));
    CHECK(cont.len == sync.len && !memcmp(cont.text, sync.text, sync.len), "continuation after load differs:\n[%s]\n[%s]",
          cont.text, sync.text);
    /* damaged and foreign files are refused and leave the context alone */
    FILE *f = fopen(state, "r+b");
    fseek(f, 100, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    int32_t before = llm8_session_n_past(s2);
    CHECK(llm8_session_load(s2, state) == LLM8_STATUS_BAD_FORMAT && llm8_session_n_past(s2) == before,
          "damaged file: %s", llm8_session_last_error(s2));
    printf("damaged state file: %s\n", llm8_session_last_error(s2));
    CHECK(llm8_session_load(s2, "/nonexistent/state") == LLM8_STATUS_IO_ERROR, "missing file");
    CHECK(llm8_session_save(s2, "/nonexistent/dir/state") == LLM8_STATUS_IO_ERROR, "unwritable path");
    remove(state);
    llm8_session_free(s2);
    llm8_session_free(s);

    /* two sessions, two threads, one model: the same texts as one at a time */
    static worker_arg a = {.prompt = "Once upon a time"}, b = {.prompt = "The little dog was sad because"};
    static worker_arg a1 = {.prompt = "Once upon a time"}, b1 = {.prompt = "The little dog was sad because"};
    a.m = b.m = a1.m = b1.m = m;
    worker(&a1);
    worker(&b1);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, worker, &a);
    pthread_create(&tb, NULL, worker, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.out.len == a1.out.len && !memcmp(a.out.text, a1.out.text, a.out.len), "concurrent session A differs");
    CHECK(b.out.len == b1.out.len && !memcmp(b.out.text, b1.out.text, b.out.len), "concurrent session B differs");
    llm8_model_free(m);
    printf("runtime: %d failures\n", failures);
    return failures ? 1 : 0;
}
