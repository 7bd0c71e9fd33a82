/* What the server's files share: the server object and the seams between HTTP plumbing
 * (http.c), the endpoints (endpoints.c), streaming (stream.c) and the lifecycle (server.c). */
#ifndef L8_SERVER_INTERNAL_H
#define L8_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "server/metrics.h"
#include "server/openai.h"
#include "server/scheduler.h"
#include "server/server.h"

struct l8_server {
    l8_server_opts o;          /* strings below are owned copies */
    char *model_path, *model_name, *host, *api_key;
    l8_metrics metrics;
    struct MHD_Daemon *daemon;
    struct l8_http_watch *watch; /* request deadlines (http.c) */
    int listen_fd, port;
    llm8_model *model;
    l8_sched *sched;
    long long created;         /* when the model was loaded (Unix seconds) */
    atomic_bool loaded, stopping;
    atomic_int in_flight;      /* generation requests between admission and their last byte */
};

/* ---------------------------------------------------------------- http.c */

/* Queues a response with body (heap, taken over; may be NULL for an empty body) and counts it. */
enum MHD_Result l8_http_reply(l8_server *S, struct MHD_Connection *c, unsigned status, const char *content_type,
                              char *body, size_t len);
enum MHD_Result l8_http_error(l8_server *S, struct MHD_Connection *c, const l8_oai_error *e);
/* True when the client closed its end (checked without reading what it may have sent). */
bool l8_http_client_gone(int fd);
int l8_http_fd(struct MHD_Connection *c);
/* Binds (opts host and port) and starts the daemon; stops accepting; stops and joins. */
llm8_status l8_http_start(l8_server *S, char *err, size_t errcap);
void l8_http_quiesce(l8_server *S);
void l8_http_stop(l8_server *S);

/* ---------------------------------------------------------------- endpoints.c */

enum MHD_Result l8_serve_generate(l8_server *S, struct MHD_Connection *c, l8_oai_kind kind, const char *body,
                                  size_t len);
enum MHD_Result l8_serve_models(l8_server *S, struct MHD_Connection *c);
enum MHD_Result l8_serve_health(l8_server *S, struct MHD_Connection *c);
enum MHD_Result l8_serve_metrics(l8_server *S, struct MHD_Connection *c);
enum MHD_Result l8_serve_page(l8_server *S, struct MHD_Connection *c);

/* "stop", "length" or "tool_calls" */
const char *l8_finish_reason(llm8_stop_reason why, bool tool_calls);
/* One log line on stderr for a finished generation request (unless --quiet). */
void l8_log_job(l8_server *S, const char *what, unsigned status, const l8_job *j, int32_t prompt_tokens);

/* ---------------------------------------------------------------- stream.c */

/* What a streamed reply needs besides its job. */
typedef struct l8_stream_info {
    l8_oai_kind kind;
    const char *model;
    json_t *tool_names;        /* borrowed; NULL without callable tools */
    bool include_usage;
    int32_t prompt_tokens;
} l8_stream_info;

/* Queues a 200 text/event-stream response that follows the job (referenced) to its end. */
enum MHD_Result l8_stream_start(l8_server *S, struct MHD_Connection *c, l8_job *j, const l8_stream_info *info);

/* ---------------------------------------------------------------- page.c */

extern const char l8_page_html[];

#endif
