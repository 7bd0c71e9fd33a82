/* llm8 serve: an OpenAI-compatible HTTP server over one model, with continuous batching.
 *
 * Lifecycle: l8_server_start binds and answers at once (GET /health is 503 "loading" until the
 * model is in), l8_server_load loads the model and starts the scheduler, l8_server_stop stops
 * accepting, ends queued and running requests (streams get an error event and [DONE]) and
 * joins every thread, l8_server_free releases the rest. Signals are the caller's business. */
#ifndef L8_SERVER_H
#define L8_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "llm8.h"

typedef struct l8_server_opts {
    const char *model_path;
    const char *alias;       /* the model's name in /v1/models and responses; NULL: folder name */
    const char *host;        /* address to bind; "127.0.0.1" by default */
    int port;                /* 0: any free port (see l8_server_port) */
    int parallel;            /* slots decoding together */
    int n_ctx;               /* tokens of context per slot; 0: min(model maximum, 4096) */
    int n_threads;           /* compute threads; 0: one per physical core */
    int queue;               /* requests that may wait for a slot; < 0: 4 x parallel */
    const char *api_key;     /* NULL: no authentication */
    size_t max_body;         /* request body limit in bytes (413 beyond) */
    int max_conns;           /* simultaneous connections */
    int timeout_s;           /* an idle connection (a slow client) is closed after this long */
    bool quiet;              /* no log line per request */
} l8_server_opts;

l8_server_opts l8_server_default_opts(void);

typedef struct l8_server l8_server;

llm8_status l8_server_start(const l8_server_opts *o, l8_server **out, char *err, size_t errcap);
/* The bound port (the one chosen when opts.port was 0). */
int l8_server_port(const l8_server *srv);
llm8_status l8_server_load(l8_server *srv, char *err, size_t errcap);
void l8_server_stop(l8_server *srv);
void l8_server_free(l8_server *srv);

#endif
