/* The endpoints: generation requests (checked, rendered, tokenized and measured against the
 * context on the connection's thread, so that the scheduler only computes), and the small ones. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chat/template.h"
#include "server/internal.h"
#include "server/toolcall.h"
#include "tokenizer/tokenizer.h"

/* How often a waiting connection looks whether its client is still there. */
enum { POLL_MS = 100 };

const char *l8_finish_reason(llm8_stop_reason why, bool tool_calls) {
    if (tool_calls) return "tool_calls";
    return why == LLM8_STOP_LENGTH || why == LLM8_STOP_CONTEXT ? "length" : "stop";
}

void l8_log_job(l8_server *S, const char *what, unsigned status, const l8_job *j, int32_t prompt_tokens) {
    if (S->o.quiet) return;
    static const char *const reasons[] = {"-", "eos", "stop string", "length", "cancelled", "context full"};
    const char *why = j->stop_reason <= LLM8_STOP_CONTEXT ? reasons[j->stop_reason] : "-";
    if (j->error_status) why = j->error;
    double wait = j->t_start > j->t_submit ? (j->t_start - j->t_submit) / 1e6 : 0;
    double total = j->t_end > j->t_submit ? (j->t_end - j->t_submit) / 1e6 : 0;
    double ttft = j->t_first > j->t_submit ? (j->t_first - j->t_submit) / 1e6 : 0;
    fprintf(stderr, "llm8 serve: %s %u: prompt %d (cached %d), generated %d, %s; queued %.2f s, first text %.2f s, total %.2f s\n",
            what, status, prompt_tokens, j->cached_tokens, j->completion_tokens, why, wait, ttft, total);
}

static uint64_t random_seed(void) {
    uint64_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x) return x;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- the prompt */

static llm8_status tokenize(const llm8_tokenizer *tok, const char *text, size_t len, uint32_t flags, int32_t **ids,
                            size_t *n) {
    size_t cap = len + 8;
    *ids = malloc(cap * sizeof(int32_t));
    if (!*ids) return LLM8_STATUS_OUT_OF_MEMORY;
    llm8_status st = llm8_tokenize(tok, text, len, flags, *ids, cap, n);
    if (st == LLM8_STATUS_INVALID_ARGUMENT && *n > cap) { /* more ids than bytes + 8: retry at size */
        int32_t *more = realloc(*ids, *n * sizeof(int32_t));
        if (!more) return LLM8_STATUS_OUT_OF_MEMORY;
        *ids = more;
        st = llm8_tokenize(tok, text, len, flags, *ids, *n, n);
    }
    return st;
}

/* The prompt's ids: a chat rendered with the model's template (special tokens parsed, BOS only
 * when the template does not write it, as llm8 chat does); a completion tokenized as llm8 run
 * tokenizes -p (BOS added, special-token text left as text). */
static bool prompt_ids(l8_server *S, const l8_oai_request *r, int32_t **ids, size_t *n, l8_oai_error *e) {
    const llm8_tokenizer *tok = llm8_model_tokenizer(S->model);
    *ids = NULL;
    *n = 0;
    if (r->kind == L8_OAI_COMPLETION && r->prompt_ids) {
        int32_t n_vocab = llm8_model_get_info(S->model)->n_vocab;
        for (size_t i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= n_vocab)
                return l8_oai_fail(e, 400, "invalid_request_error", NULL, "prompt",
                                   "prompt[%zu] = %d is not a token id of this model (vocabulary of %d)", i,
                                   r->prompt_ids[i], n_vocab);
        if (!(*ids = malloc(r->n_prompt_ids * sizeof(int32_t))))
            return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(*ids, r->prompt_ids, r->n_prompt_ids * sizeof(int32_t));
        *n = r->n_prompt_ids;
        return true;
    }
    char *text = NULL;
    size_t len = 0;
    uint32_t flags = LLM8_TOKENIZE_ADD_BOS;
    const char *what = "prompt";
    if (r->kind == L8_OAI_CHAT) {
        l8_chat_opts opts = {.add_generation_prompt = true, .date_string = NULL};
        l8_err err = {""};
        llm8_status st = l8_chat_apply(tok, r->chat, &opts, &text, &len, &err);
        if (st == LLM8_STATUS_OUT_OF_MEMORY) return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        /* a template that does not parse is the model's fault, not the client's */
        if (st == LLM8_STATUS_BAD_FORMAT)
            return l8_oai_fail(e, 500, "server_error", NULL, NULL, "the model's chat template: %s", err.msg);
        if (st) return l8_oai_fail(e, 400, "invalid_request_error", NULL, "messages", "chat template: %s", err.msg);
        flags = LLM8_TOKENIZE_PARSE_SPECIAL | (l8_tokenizer_chat_template(tok) ? 0 : LLM8_TOKENIZE_ADD_BOS);
        what = "messages";
    }
    llm8_status st = tokenize(tok, text ? text : r->prompt, text ? len : r->prompt_len, flags, ids, n);
    free(text);
    if (st) {
        free(*ids);
        *ids = NULL;
        if (st == LLM8_STATUS_OUT_OF_MEMORY) return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return l8_oai_fail(e, 400, "invalid_request_error", NULL, what, "the %s does not tokenize (%s)", what,
                           llm8_status_to_string(st));
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return l8_oai_fail(e, 400, "invalid_request_error", NULL, what, "the %s is empty (no tokens)", what);
    }
    return true;
}

/* ---------------------------------------------------------------- generation */

static enum MHD_Result busy(l8_server *S, struct MHD_Connection *c, const char *msg) {
    l8_oai_error e;
    l8_oai_fail(&e, 503, "server_error", "server_busy", NULL, "%s", msg);
    return l8_http_error(S, c, &e);
}

/* A non-streaming request: wait for the end, watching for the client leaving. */
static enum MHD_Result reply_when_done(l8_server *S, struct MHD_Connection *c, l8_job *j, const l8_oai_request *r,
                                       int32_t n_ids) {
    int fd = l8_http_fd(c);
    for (;;) {
        pthread_mutex_lock(&j->mu);
        bool done = j->done;
        pthread_mutex_unlock(&j->mu);
        if (done) break;
        l8_job_wait(j, SIZE_MAX, POLL_MS);
        if (l8_http_client_gone(fd)) {
            atomic_store(&j->cancel, true);
            return MHD_NO; /* nobody to answer: close */
        }
    }
    /* done: the scheduler writes nothing more */
    const char *what = r->kind == L8_OAI_CHAT ? "chat" : "completion";
    if (j->error_status) {
        l8_oai_error e;
        l8_oai_fail(&e, j->error_status, "server_error", j->error_status == 503 ? "server_busy" : NULL, NULL, "%s",
                    j->error);
        l8_log_job(S, what, j->error_status, j, n_ids);
        return l8_http_error(S, c, &e);
    }
    json_t *calls = r->tool_names ? l8_toolcall_parse(j->text ? j->text : "", j->len, r->tool_names) : NULL;
    char id[48];
    l8_oai_make_id(id, sizeof id, r->kind == L8_OAI_CHAT ? "chatcmpl-" : "cmpl-");
    l8_oai_reply reply = {.kind = r->kind,
                          .id = id,
                          .created = (long long)time(NULL),
                          .model = r->model[0] ? r->model : S->model_name,
                          .text = j->text,
                          .len = j->len,
                          .tool_calls = calls,
                          .finish_reason = l8_finish_reason(j->stop_reason, calls != NULL),
                          .prompt_tokens = n_ids,
                          .completion_tokens = j->completion_tokens,
                          .cached_tokens = j->cached_tokens};
    size_t len = 0;
    char *body = l8_oai_response(&reply, &len);
    json_decref(calls);
    l8_log_job(S, what, body ? 200 : 500, j, n_ids);
    if (!body) return busy(S, c, "out of memory");
    /* the wait may have outlasted the idle timeout: the answer restarts the clock */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)S->o.timeout_s);
    return l8_http_reply(S, c, 200, "application/json", body, len);
}

enum MHD_Result l8_serve_generate(l8_server *S, struct MHD_Connection *c, l8_oai_kind kind, const char *body,
                                  size_t len) {
    if (atomic_load(&S->stopping)) return busy(S, c, "the server is shutting down");
    if (!atomic_load(&S->loaded)) return busy(S, c, "the model is still loading");
    l8_oai_request r;
    l8_oai_error e;
    if (!l8_oai_parse(kind, body, len, &r, &e)) return l8_http_error(S, c, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    enum MHD_Result res;
    if (!prompt_ids(S, &r, &ids, &n, &e)) {
        res = l8_http_error(S, c, &e);
        l8_oai_request_free(&r);
        return res;
    }
    int32_t n_ctx = l8_sched_n_ctx(S->sched);
    const char *param = kind == L8_OAI_CHAT ? "messages" : "prompt";
    /* the prompt and at least one generated token must fit */
    if (n >= (size_t)n_ctx) {
        l8_oai_fail(&e, 400, "invalid_request_error", "context_length_exceeded", param,
                    "the prompt is %zu tokens but the context holds %d (one more is needed to answer); "
                    "shorten it or start the server with a larger --ctx",
                    n, n_ctx);
    } else if (r.max_tokens > 0 && n + (size_t)r.max_tokens > (size_t)n_ctx) {
        l8_oai_fail(&e, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
                    "max_tokens is %d but the context holds %d tokens and the prompt takes %zu: at most %zu can be "
                    "generated",
                    r.max_tokens, n_ctx, n, (size_t)n_ctx - n);
    } else {
        e.status = 0;
    }
    l8_job *j = e.status ? NULL : l8_job_create();
    if (e.status || !j || !l8_job_set_stops(j, r.stop, r.n_stop)) {
        free(ids);
        l8_job_unref(j);
        if (!e.status) l8_oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        res = l8_http_error(S, c, &e);
        l8_oai_request_free(&r);
        return res;
    }
    const llm8_model_info *info = llm8_model_get_info(S->model);
    j->ids = ids;
    j->n_ids = (int32_t)n;
    j->gp.max_tokens = r.max_tokens;
    j->gp.ignore_eos = r.ignore_eos;
    j->gp.sampling = r.sampling;
    if (!r.has_temperature) j->gp.sampling.temperature = info->default_temperature;
    if (!r.has_top_p) j->gp.sampling.top_p = info->default_top_p;
    if (!r.has_seed) j->gp.sampling.seed = random_seed();

    atomic_fetch_add(&S->in_flight, 1);
    switch (l8_sched_submit(S->sched, j)) {
    case L8_SUBMIT_OK:
        if (r.stream) {
            l8_stream_info si = {.kind = kind,
                                 .model = r.model[0] ? r.model : S->model_name,
                                 .tool_names = r.tool_names,
                                 .include_usage = r.include_usage,
                                 .prompt_tokens = (int32_t)n};
            res = l8_stream_start(S, c, j, &si); /* the stream takes over in_flight */
        } else {
            res = reply_when_done(S, c, j, &r, (int32_t)n);
            atomic_fetch_sub(&S->in_flight, 1);
        }
        break;
    case L8_SUBMIT_QUEUE_FULL: {
        char msg[200];
        snprintf(msg, sizeof msg, "all slots are busy and %d requests already wait; retry later", S->o.queue);
        res = busy(S, c, msg);
        atomic_fetch_sub(&S->in_flight, 1);
        break;
    }
    default:
        res = busy(S, c, "the server is shutting down");
        atomic_fetch_sub(&S->in_flight, 1);
    }
    l8_job_unref(j);
    l8_oai_request_free(&r);
    return res;
}

/* ---------------------------------------------------------------- the small endpoints */

static enum MHD_Result json_reply(l8_server *S, struct MHD_Connection *c, unsigned status, json_t *v) {
    char *body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!body) return busy(S, c, "out of memory");
    return l8_http_reply(S, c, status, "application/json", body, strlen(body));
}

enum MHD_Result l8_serve_models(l8_server *S, struct MHD_Connection *c) {
    if (!atomic_load(&S->loaded)) return busy(S, c, "the model is still loading");
    const llm8_model_info *info = llm8_model_get_info(S->model);
    return json_reply(S, c, 200,
                      json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:i, s:I, s:s}}]}", "object", "list", "data",
                                "id", S->model_name, "object", "model", "created", (json_int_t)S->created, "owned_by",
                                "llm8", "meta", "n_ctx", l8_sched_n_ctx(S->sched), "slots", S->o.parallel, "n_vocab",
                                info->n_vocab, "n_params", (json_int_t)info->n_params, "dtype", info->dtype));
}

enum MHD_Result l8_serve_health(l8_server *S, struct MHD_Connection *c) {
    const char *status = atomic_load(&S->stopping) ? "stopping" : atomic_load(&S->loaded) ? "ok" : "loading";
    return json_reply(S, c, strcmp(status, "ok") ? 503 : 200, json_pack("{s:s}", "status", status));
}

enum MHD_Result l8_serve_metrics(l8_server *S, struct MHD_Connection *c) {
    size_t len = 0;
    char *text = l8_metrics_render(&S->metrics, l8_now_us(), &len);
    if (!text) return busy(S, c, "out of memory");
    return l8_http_reply(S, c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

enum MHD_Result l8_serve_page(l8_server *S, struct MHD_Connection *c) {
    char *page = strdup(l8_page_html);
    if (!page) return busy(S, c, "out of memory");
    return l8_http_reply(S, c, 200, "text/html; charset=utf-8", page, strlen(page));
}
