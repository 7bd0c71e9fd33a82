/* The server's life: bind and answer, load, serve, stop in order, free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/internal.h"

l8_server_opts l8_server_default_opts(void) {
    return (l8_server_opts){.model_path = NULL,
                            .alias = NULL,
                            .host = "127.0.0.1",
                            .port = 8080,
                            .parallel = 1,
                            .n_ctx = 0,
                            .n_threads = 0,
                            .queue = -1,
                            .api_key = NULL,
                            .max_body = 1u << 20,
                            .max_conns = 64,
                            .timeout_s = 60,
                            .quiet = false};
}

/* The model's name: its folder or file name without extension (what clients put in "model"). */
static char *default_name(const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    char *name = strndup(path + start, len - start);
    char *dot = name ? strrchr(name, '.') : NULL;
    if (dot && dot != name && (!strcmp(dot, ".gguf") || !strcmp(dot, ".llm8"))) *dot = 0;
    return name;
}

llm8_status l8_server_start(const l8_server_opts *o, l8_server **out, char *err, size_t errcap) {
    *out = NULL;
    if (!o->model_path || o->parallel < 1 || o->max_conns < 1 || o->timeout_s < 1 || o->max_body < 1) {
        snprintf(err, errcap, "invalid server options");
        return LLM8_STATUS_INVALID_ARGUMENT;
    }
    l8_server *S = calloc(1, sizeof *S);
    if (!S) return LLM8_STATUS_OUT_OF_MEMORY;
    S->o = *o;
    if (S->o.queue < 0) S->o.queue = 4 * S->o.parallel;
    S->listen_fd = -1;
    l8_metrics_init(&S->metrics);
    S->model_path = strdup(o->model_path);
    S->model_name = o->alias ? strdup(o->alias) : default_name(o->model_path);
    S->host = strdup(o->host ? o->host : "127.0.0.1");
    S->api_key = o->api_key ? strdup(o->api_key) : NULL;
    if (!S->model_path || !S->model_name || !S->host || (o->api_key && !S->api_key)) {
        l8_server_free(S);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    S->o.model_path = S->model_path, S->o.alias = S->model_name, S->o.host = S->host, S->o.api_key = S->api_key;
    llm8_status st = l8_http_start(S, err, errcap);
    if (st) {
        l8_server_free(S);
        return st;
    }
    *out = S;
    return LLM8_STATUS_OK;
}

int l8_server_port(const l8_server *S) { return S ? S->port : 0; }

llm8_status l8_server_load(l8_server *S, char *err, size_t errcap) {
    llm8_status st = llm8_model_load(S->model_path, &S->model, err, errcap);
    if (st) return st;
    l8_sched_opts so = {.parallel = S->o.parallel, .n_ctx = S->o.n_ctx, .n_threads = S->o.n_threads,
                        .queue = S->o.queue};
    if ((st = l8_sched_create(S->model, &so, &S->metrics, &S->sched, err, errcap))) return st;
    S->created = (long long)time(NULL);
    atomic_store(&S->metrics.loaded, 1);
    atomic_store(&S->loaded, true);
    return LLM8_STATUS_OK;
}

void l8_server_stop(l8_server *S) {
    if (!S || atomic_exchange(&S->stopping, true)) return;
    l8_http_quiesce(S);
    l8_sched_stop(S->sched);
    /* every job has ended now; give the streams a moment to send their last events before the
     * daemon closes the connections */
    for (int i = 0; i < 300 && atomic_load(&S->in_flight) > 0; i++) usleep(10000);
    l8_http_stop(S);
}

void l8_server_free(l8_server *S) {
    if (!S) return;
    l8_server_stop(S);
    l8_http_stop(S); /* a server that failed to start */
    l8_sched_free(S->sched);
    llm8_model_free(S->model);
    free(S->model_path);
    free(S->model_name);
    free(S->host);
    free(S->api_key);
    free(S);
}
