/* Generation: prompt in, streamed text out, with sampling, end tokens, stop strings and limits. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/batch.h"
#include "runtime/runtime.h"
#include "sample/sampler.h"
#include "util/utf8.h"

llm8_sampling_params llm8_sampling_default_params(void) {
    return (llm8_sampling_params){.temperature = 0.8f,
                                  .top_k = 40,
                                  .top_p = 0.95f,
                                  .min_p = 0.05f,
                                  .repeat_penalty = 1.0f,
                                  .frequency_penalty = 0.0f,
                                  .presence_penalty = 0.0f,
                                  .penalty_last_n = 64,
                                  .seed = 0};
}

llm8_generate_params llm8_generate_default_params(void) {
    return (llm8_generate_params){.max_tokens = -1,
                                  .ignore_eos = false,
                                  .add_bos = true,
                                  .parse_special = false,
                                  .stop = NULL,
                                  .n_stop = 0,
                                  .n_keep = -1,
                                  .sampling = llm8_sampling_default_params()};
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- stop strings */

/* Text waits here until it cannot be the start of a stop string. */
typedef struct outbuf {
    char *data;
    size_t len, cap;
} outbuf;

static bool outbuf_append(outbuf *b, const char *s, size_t n) {
    if (n == 0) return true; /* an empty piece (a special token skipped) before anything was kept */
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return true;
}

/* Finds the earliest complete stop string in b; returns its offset or -1. */
static long find_stop(const outbuf *b, const llm8_generate_params *p) {
    long best = -1;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        if (sl == 0 || sl > b->len) continue;
        for (size_t at = 0; at + sl <= b->len; at++)
            if (memcmp(b->data + at, p->stop[i], sl) == 0) {
                if (best < 0 || (long)at < best) best = (long)at;
                break;
            }
    }
    return best;
}

/* Length of the longest suffix of b that is a proper prefix of some stop string. */
static size_t stop_prefix_tail(const outbuf *b, const llm8_generate_params *p) {
    size_t hold = 0;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > hold; k--)
            if (k <= b->len && memcmp(b->data + b->len - k, p->stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    return hold;
}

typedef struct emitter {
    llm8_text_callback cb;
    void *user;
    bool stopped; /* the callback asked to stop */
} emitter;

static void emit(emitter *em, outbuf *b, size_t n, int32_t token) {
    if (n == 0) return;
    if (em->cb && !em->stopped && !em->cb(em->user, b->data, n, token)) em->stopped = true;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* ---------------------------------------------------------------- the loop */

static bool is_end_token(const llm8_model *m, int32_t id) {
    for (int32_t i = 0; i < m->info.n_eos; i++)
        if (m->info.eos_ids[i] == id) return true;
    /* Base models trained on concatenated documents (llama2.c's stories among them) end a
     * document by predicting BOS: a generated BOS ends the text just as EOS does. */
    return id == m->info.bos_id;
}

/* ---------------------------------------------------------------- step-wise generation */

struct l8_gen {
    llm8_session *s;
    llm8_generate_params p;
    char **stops;       /* owned copies of p.stop */
    l8_sampler sampler;
    llm8_decoder *dec;
    outbuf out;
    emitter em;
    int32_t generated;
    llm8_stop_reason reason;
    bool done, oom;
};

void l8_gen_free(l8_gen *g) {
    if (!g) return;
    for (size_t i = 0; g->stops && i < g->p.n_stop; i++) free(g->stops[i]);
    free(g->stops);
    free(g->out.data);
    llm8_decoder_free(g->dec);
    l8_sampler_free(&g->sampler);
    free(g);
}

llm8_status l8_gen_create(llm8_session *s, const llm8_generate_params *params, llm8_text_callback cb, void *user,
                          l8_gen **out) {
    if (!s || !out) return LLM8_STATUS_INVALID_ARGUMENT;
    *out = NULL;
    l8_gen *g = calloc(1, sizeof *g);
    if (!g) return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (generation)");
    g->s = s;
    g->p = params ? *params : llm8_generate_default_params();
    g->em = (emitter){cb, user, false};
    if (g->p.n_stop) {
        g->stops = calloc(g->p.n_stop, sizeof *g->stops);
        for (size_t i = 0; g->stops && i < g->p.n_stop; i++)
            if (!(g->stops[i] = strdup(g->p.stop[i] ? g->p.stop[i] : ""))) goto oom;
        if (!g->stops) goto oom;
        g->p.stop = (const char *const *)g->stops;
    }
    const llm8_model *m = s->model;
    if (l8_sampler_init(&g->sampler, &g->p.sampling, m->info.n_vocab, s->n_ctx)) goto oom;
    if (llm8_decoder_create(m->tok, true, &g->dec)) goto oom;
    /* The decoder sees the context first (its text discarded) so that the continuation decodes
     * as decode(context + new) minus decode(context): SentencePiece's leading-space strip then
     * applies only at the true start of the text. */
    const char *piece;
    size_t plen;
    for (int32_t i = 0; i < s->n_past; i++) {
        if (s->tokens[i] < 0) continue; /* an embedding input has no id */
        l8_sampler_accept(&g->sampler, s->tokens[i]);
        llm8_decoder_push(g->dec, s->tokens[i], &piece, &plen);
    }
    *out = g;
    return LLM8_STATUS_OK;
oom:
    l8_gen_free(g);
    return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (generation)");
}

static bool gen_end(l8_gen *g, llm8_stop_reason reason) {
    g->reason = reason;
    g->done = true;
    if (reason != LLM8_STOP_STRING && reason != LLM8_STOP_CALLBACK) { /* what the decoder still holds */
        const char *tail;
        size_t tlen;
        llm8_decoder_flush(g->dec, &tail, &tlen);
        if (outbuf_append(&g->out, tail, tlen)) emit(&g->em, &g->out, g->out.len, -1);
    }
    return false;
}

bool l8_gen_step(l8_gen *g, float *logits, int32_t *next) {
    if (g->done) return false;
    const llm8_generate_params *p = &g->p;
    if (p->max_tokens >= 0 && g->generated >= p->max_tokens) return gen_end(g, LLM8_STOP_LENGTH);
    int32_t tok = l8_sampler_sample(&g->sampler, logits);
    if (!p->ignore_eos && is_end_token(g->s->model, tok)) return gen_end(g, LLM8_STOP_EOS);
    g->generated++;
    l8_sampler_accept(&g->sampler, tok);
    const char *piece;
    size_t plen;
    llm8_decoder_push(g->dec, tok, &piece, &plen);
    if (!outbuf_append(&g->out, piece, plen)) {
        g->oom = true;
        return gen_end(g, LLM8_STOP_NONE);
    }
    long at = find_stop(&g->out, p);
    if (at >= 0) {
        emit(&g->em, &g->out, (size_t)at, tok);
        g->out.len = 0;
        return gen_end(g, LLM8_STOP_STRING);
    }
    emit(&g->em, &g->out, g->out.len - stop_prefix_tail(&g->out, p), tok);
    if (g->em.stopped) return gen_end(g, LLM8_STOP_CALLBACK);
    /* The sampled token enters the context only when another is to follow it. */
    if (p->max_tokens >= 0 && g->generated >= p->max_tokens) return gen_end(g, LLM8_STOP_LENGTH);
    if (g->s->n_past >= g->s->n_ctx && (p->n_keep < 0 || l8_session_shift(g->s, p->n_keep)))
        return gen_end(g, LLM8_STOP_CONTEXT);
    *next = tok;
    return true;
}

void l8_gen_stats(const l8_gen *g, llm8_run_stats *stats) {
    stats->generated_tokens = g->generated;
    stats->stop_reason = g->reason;
}

/* ---------------------------------------------------------------- the loop */

llm8_status l8_generate_ids(llm8_session *s, const int32_t *ids, size_t n, const llm8_generate_params *params,
                            llm8_text_callback cb, void *user, llm8_run_stats *stats) {
    llm8_generate_params p = params ? *params : llm8_generate_default_params();
    const llm8_model *m = s->model;
    llm8_run_stats rs = {0};
    if (stats) *stats = rs;
    if (p.n_keep >= s->n_ctx / 2)
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "n_keep %d must be below half the context (%d)",
                               p.n_keep, s->n_ctx / 2);
    if (n == 0 && s->n_past == 0)
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "empty prompt and empty context: nothing to continue");
    if (n >= (size_t)(s->n_ctx - s->n_past))
        return l8_session_fail(s, LLM8_STATUS_CONTEXT_FULL,
                               "the prompt is %zu tokens but the context has room for %d more (n_ctx %d)", n,
                               s->n_ctx - s->n_past - 1, s->n_ctx);
    float *logits = malloc((size_t)m->info.n_vocab * sizeof(float));
    if (!logits) return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (logits)");
    llm8_status st = LLM8_STATUS_OK;
    double t0 = now_ms();
    if (n > 0) st = llm8_session_eval(s, ids, n, logits, false);
    else memcpy(logits, s->logits, (size_t)m->info.n_vocab * sizeof(float));
    rs.prompt_tokens = (int32_t)n;
    rs.prefill_ms = now_ms() - t0;
    l8_gen *g = NULL;
    if (!st) st = l8_gen_create(s, &p, cb, user, &g);

    double t1 = now_ms();
    int32_t tok;
    while (!st && l8_gen_step(g, logits, &tok)) {
        if (atomic_load(&s->abort)) {
            st = l8_session_fail(s, LLM8_STATUS_ABORTED, "generation aborted after %d tokens", g->generated);
            break;
        }
        st = llm8_session_eval(s, &tok, 1, logits, false);
    }
    rs.decode_ms = now_ms() - t1;
    if (g) {
        rs.generated_tokens = g->generated;
        rs.stop_reason = g->reason;
        if (!st && g->oom) st = l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (output)");
    }
    l8_gen_free(g);
    free(logits);
    if (stats) *stats = rs;
    return st;
}

static llm8_status generate_text(llm8_session *s, const char *prompt, size_t len, const llm8_generate_params *params,
                                 llm8_text_callback cb, void *user, llm8_run_stats *stats) {
    if (!prompt && len) return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "null prompt");
    llm8_generate_params p = params ? *params : llm8_generate_default_params();
    size_t bad;
    if (len && !l8_utf8_valid(prompt, len, &bad))
        return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "prompt: invalid UTF-8 at byte %zu", bad);
    uint32_t flags = (p.add_bos && s->n_past == 0 ? LLM8_TOKENIZE_ADD_BOS : 0) |
                     (p.parse_special ? LLM8_TOKENIZE_PARSE_SPECIAL : 0);
    size_t cap = len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    if (!ids) return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (prompt)");
    llm8_status st = llm8_tokenize(s->model->tok, prompt ? prompt : "", len, flags, ids, cap, &n);
    if (st == LLM8_STATUS_INVALID_ARGUMENT && n > cap) { /* more ids than bytes + 8: retry at size */
        int32_t *more = realloc(ids, n * sizeof(int32_t));
        if (!more) {
            free(ids);
            return l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "out of memory (prompt)");
        }
        ids = more;
        cap = n;
        st = llm8_tokenize(s->model->tok, prompt ? prompt : "", len, flags, ids, cap, &n);
    }
    if (st) {
        free(ids);
        return l8_session_fail(s, st, "prompt: tokenization failed (%s)", llm8_status_to_string(st));
    }
    st = l8_generate_ids(s, ids, n, &p, cb, user, stats);
    free(ids);
    return st;
}

/* ---------------------------------------------------------------- run control */

/* Marks the session running; false if it already was (one run at a time per session). */
bool l8_begin_run(llm8_session *s) {
    if (atomic_exchange(&s->running, true)) return false;
    atomic_store(&s->abort, false);
    return true;
}

void l8_end_run(llm8_session *s) { atomic_store(&s->running, false); }

void llm8_session_abort(llm8_session *s) {
    if (s) atomic_store(&s->abort, true);
}

bool llm8_session_is_running(const llm8_session *s) { return s && atomic_load(&s->running); }

llm8_status llm8_session_generate_ids(llm8_session *s, const int32_t *ids, size_t n, const llm8_generate_params *params,
                                      llm8_text_callback cb, void *user, llm8_run_stats *stats) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (!l8_begin_run(s)) return LLM8_STATUS_INVALID_ARGUMENT; /* busy: last_error belongs to the running job */
    llm8_status st = l8_generate_ids(s, ids, n, params, cb, user, stats);
    atomic_store(&s->running, false);
    return st;
}

llm8_status llm8_session_generate(llm8_session *s, const char *prompt, size_t len, const llm8_generate_params *params,
                                  llm8_text_callback cb, void *user, llm8_run_stats *stats) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (!l8_begin_run(s)) return LLM8_STATUS_INVALID_ARGUMENT;
    llm8_status st = generate_text(s, prompt, len, params, cb, user, stats);
    atomic_store(&s->running, false);
    return st;
}

/* An asynchronous run owns copies of everything the caller passed. */
typedef struct async_job {
    llm8_session *s;
    char *prompt;
    size_t len;
    llm8_generate_params params;
    char **stops;
    llm8_text_callback cb;
    llm8_done_callback done;
    void *user;
} async_job;

static void job_free(async_job *j) {
    if (!j) return;
    for (size_t i = 0; j->stops && i < j->params.n_stop; i++) free(j->stops[i]);
    free(j->stops);
    free(j->prompt);
    free(j);
}

static void *async_main(void *arg) {
    async_job *j = arg;
    llm8_run_stats rs = {0};
    llm8_status st = generate_text(j->s, j->prompt, j->len, &j->params, j->cb, j->user, &rs);
    j->s->worker_status = st;
    atomic_store(&j->s->running, false);
    if (j->done) j->done(j->user, st, &rs);
    return NULL;
}

llm8_status llm8_session_generate_async(llm8_session *s, const char *prompt, size_t len,
                                        const llm8_generate_params *params, llm8_text_callback cb,
                                        llm8_done_callback done, void *user) {
    if (!s || (!prompt && len)) return LLM8_STATUS_INVALID_ARGUMENT;
    if (!l8_begin_run(s)) return LLM8_STATUS_INVALID_ARGUMENT;
    if (s->has_worker) { /* the previous run ended (running was false) but was not joined yet */
        pthread_join(s->worker, NULL);
        s->has_worker = false;
        job_free(s->job);
        s->job = NULL;
    }
    async_job *j = calloc(1, sizeof *j);
    llm8_status st = LLM8_STATUS_OUT_OF_MEMORY;
    if (!j) goto fail;
    j->s = s, j->cb = cb, j->done = done, j->user = user, j->len = len;
    j->params = params ? *params : llm8_generate_default_params();
    j->prompt = malloc(len + 1);
    if (!j->prompt) goto fail;
    if (len) memcpy(j->prompt, prompt, len);
    j->prompt[len] = 0;
    if (j->params.n_stop) {
        j->stops = calloc(j->params.n_stop, sizeof *j->stops);
        if (!j->stops) goto fail;
        for (size_t i = 0; i < j->params.n_stop; i++)
            if (!(j->stops[i] = strdup(j->params.stop[i] ? j->params.stop[i] : ""))) goto fail;
        j->params.stop = (const char *const *)j->stops;
    }
    s->job = j;
    if (pthread_create(&s->worker, NULL, async_main, j) != 0) {
        s->job = NULL;
        st = l8_session_fail(s, LLM8_STATUS_OUT_OF_MEMORY, "cannot start a thread");
        goto fail;
    }
    s->has_worker = true;
    return LLM8_STATUS_OK;
fail:
    job_free(j);
    atomic_store(&s->running, false);
    return st;
}

llm8_status llm8_session_wait(llm8_session *s) {
    if (!s) return LLM8_STATUS_INVALID_ARGUMENT;
    if (!s->has_worker) return LLM8_STATUS_OK;
    pthread_join(s->worker, NULL);
    s->has_worker = false;
    job_free(s->job);
    s->job = NULL;
    return s->worker_status;
}
