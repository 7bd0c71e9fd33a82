/* Streamed replies: Server-Sent Events that follow a job as the scheduler fills it. MHD calls
 * the reader on the connection's own thread, which may block, so the reader waits on the job's
 * condition variable and wakes every POLL_MS to see whether the client is still there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/internal.h"
#include "server/toolcall.h"

enum {
    POLL_MS = 100,
    KEEPALIVE_US = 15000000, /* an SSE comment while a request waits, for proxies and to detect leavers */
    BLOCK = 16 * 1024,
};

typedef struct stream {
    l8_server *S;
    l8_job *job;
    l8_oai_kind kind;
    char id[48];
    long long created;
    char *model;
    json_t *tool_names;       /* owned reference, or NULL */
    bool include_usage;
    int32_t prompt_tokens;
    int fd;
    size_t sent;              /* bytes of the job's text already sent */
    size_t seen;              /* bytes of it looked at (more than sent while a tool call is held) */
    l8_toolcall_state tool;   /* L8_TOOLCALL_NO when the reply cannot be a call */
    bool began, ended;
    char *out;                /* events not yet handed to MHD */
    size_t len, off, cap;
    uint64_t last_out_us;
} stream;

static bool put(stream *st, char *ev, size_t n) {
    if (!ev) return false;
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4096;
        while (cap < st->len + n) cap *= 2;
        char *o = realloc(st->out, cap);
        if (!o) {
            free(ev);
            return false;
        }
        st->out = o;
        st->cap = cap;
    }
    memcpy(st->out + st->len, ev, n);
    st->len += n;
    free(ev);
    st->last_out_us = l8_now_us();
    return true;
}

static bool put_chunk(stream *st, const char *text, size_t len, const json_t *calls, const char *finish, bool first) {
    l8_oai_reply r = {.kind = st->kind,
                      .id = st->id,
                      .created = st->created,
                      .model = st->model,
                      .text = text,
                      .len = len,
                      .tool_calls = calls,
                      .finish_reason = finish};
    size_t n = 0;
    char *ev = l8_oai_chunk(&r, first, st->include_usage, &n);
    return put(st, ev, n);
}

static bool put_literal(stream *st, const char *s) {
    char *ev = strdup(s);
    return put(st, ev, strlen(s));
}

/* The job ended: what was held back, the finish reason, usage, [DONE]. */
static bool finish(stream *st, const char *text, size_t len) {
    l8_job *j = st->job;
    st->ended = true;
    const char *what = st->kind == L8_OAI_CHAT ? "chat stream" : "completion stream";
    if (j->error_status) {
        l8_oai_error e;
        l8_oai_fail(&e, j->error_status, "server_error", j->error_status == 503 ? "server_busy" : NULL, NULL, "%s",
                    j->error);
        size_t n = 0;
        char *ev = l8_oai_error_event(&e, &n);
        l8_log_job(st->S, what, j->error_status, j, st->prompt_tokens);
        return put(st, ev, n) && put_literal(st, "data: [DONE]\n\n");
    }
    json_t *calls = NULL;
    bool ok = true;
    if (st->tool != L8_TOOLCALL_NO) {
        calls = l8_toolcall_parse(text, len, st->tool_names);
        if (calls) ok = put_chunk(st, NULL, 0, calls, NULL, false);
        else if (len > st->sent) ok = put_chunk(st, text + st->sent, len - st->sent, NULL, NULL, false);
    }
    ok = ok && put_chunk(st, NULL, 0, NULL, l8_finish_reason(j->stop_reason, calls != NULL), false);
    json_decref(calls);
    if (ok && st->include_usage) {
        l8_oai_reply r = {.kind = st->kind,
                          .id = st->id,
                          .created = st->created,
                          .model = st->model,
                          .prompt_tokens = st->prompt_tokens,
                          .completion_tokens = j->completion_tokens,
                          .cached_tokens = j->cached_tokens};
        size_t n = 0;
        char *ev = l8_oai_usage_chunk(&r, &n);
        ok = put(st, ev, n);
    }
    l8_log_job(st->S, what, 200, j, st->prompt_tokens);
    return ok && put_literal(st, "data: [DONE]\n\n");
}

/* Adds the next events to st->out, waiting for them if need be. False: stop the stream (the
 * client left, or memory ran out). */
static bool produce(stream *st) {
    l8_job *j = st->job;
    if (!st->began) {
        st->began = true;
        /* the role comes first, at once: the client sees the stream open even while it waits */
        if (st->kind == L8_OAI_CHAT) return put_chunk(st, "", 0, NULL, NULL, true);
    }
    for (;;) {
        l8_job_wait(j, st->seen, POLL_MS);
        pthread_mutex_lock(&j->mu);
        bool done = j->done;
        size_t len = j->len;
        st->seen = len;
        if (st->tool == L8_TOOLCALL_UNDECIDED || st->tool == L8_TOOLCALL_MAYBE)
            st->tool = l8_toolcall_classify(j->text ? j->text : "", len);
        /* after the end nothing writes the text: it is read below without the lock */
        char *fresh = NULL;
        size_t n = 0;
        if (!done && st->tool == L8_TOOLCALL_NO && len > st->sent) {
            n = len - st->sent;
            if ((fresh = malloc(n))) memcpy(fresh, j->text + st->sent, n);
        }
        pthread_mutex_unlock(&j->mu);
        if (done) {
            bool ok = true;
            if (st->tool == L8_TOOLCALL_NO && len > st->sent)
                ok = put_chunk(st, j->text + st->sent, len - st->sent, NULL, NULL, false);
            if (st->tool == L8_TOOLCALL_NO) st->sent = len;
            return ok && finish(st, j->text ? j->text : "", len);
        }
        if (n) {
            bool ok = fresh && put_chunk(st, fresh, n, NULL, NULL, false);
            free(fresh);
            st->sent += n;
            return ok;
        }
        if (l8_http_client_gone(st->fd)) return false;
        if (l8_now_us() - st->last_out_us > KEEPALIVE_US) return put_literal(st, ": keep-alive\n\n");
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->off == st->len) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        st->off = st->len = 0;
        if (!produce(st)) {
            atomic_store(&st->job->cancel, true);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(buf, st->out + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

/* MHD is done with the response: finished, failed to write, or the server is stopping. */
static void stream_free(void *cls) {
    stream *st = cls;
    l8_job *j = st->job;
    pthread_mutex_lock(&j->mu);
    bool done = j->done;
    pthread_mutex_unlock(&j->mu);
    if (!done) atomic_store(&j->cancel, true); /* the scheduler frees the slot at its next step */
    if (!st->ended && !st->S->o.quiet)
        fprintf(stderr, "llm8 serve: %s stream: the client went away; generation cancelled\n",
                st->kind == L8_OAI_CHAT ? "chat" : "completion");
    atomic_fetch_sub(&st->S->in_flight, 1);
    l8_job_unref(j);
    json_decref(st->tool_names);
    free(st->model);
    free(st->out);
    free(st);
}

enum MHD_Result l8_stream_start(l8_server *S, struct MHD_Connection *c, l8_job *j, const l8_stream_info *info) {
    stream *st = calloc(1, sizeof *st);
    if (!st || !(st->model = strdup(info->model))) {
        free(st);
        atomic_fetch_sub(&S->in_flight, 1);
        return MHD_NO;
    }
    st->S = S;
    st->job = j;
    l8_job_ref(j);
    st->kind = info->kind;
    l8_oai_make_id(st->id, sizeof st->id, info->kind == L8_OAI_CHAT ? "chatcmpl-" : "cmpl-");
    st->created = (long long)time(NULL);
    st->tool_names = info->tool_names ? json_incref(info->tool_names) : NULL;
    st->tool = info->tool_names ? L8_TOOLCALL_UNDECIDED : L8_TOOLCALL_NO;
    st->include_usage = info->include_usage;
    st->prompt_tokens = info->prompt_tokens;
    st->fd = l8_http_fd(c);
    st->last_out_us = l8_now_us();
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx in front: do not buffer the stream */
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r); /* frees st through stream_free when the connection is done with it */
    l8_metrics_count_http(&S->metrics, 200);
    return ok;
}
