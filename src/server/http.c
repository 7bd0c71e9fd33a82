/* HTTP plumbing on libmicrohttpd: the listening socket, the daemon, request bodies and their
 * limit, routing, authentication, and replies.
 *
 * The daemon runs a thread per connection: a streamed reply's content callback may then block
 * while it waits for the scheduler's next tokens, without busy polling or suspend/resume. The
 * connection limit bounds the threads; the connection timeout closes idle clients, and a
 * watchdog closes clients that trickle a request (a byte now and then resets an idle timeout)
 * when it has not fully arrived within the same time. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/internal.h"

/* A body larger than the limit is read and dropped up to this many times the limit, so that the
 * client can read its 413; beyond that the connection is closed. */
enum { DRAIN_FACTOR = 16 };

/* Per-request state, from the first call of the access handler to the completion callback. */
typedef struct request {
    char *body;
    size_t len, cap;
    size_t dropped;   /* bytes read past the limit */
    bool too_large;
    bool answered;    /* a response was queued early (Expect: 100-continue) */
} request;

/* ---------------------------------------------------------------- request deadlines */

/* One per connection (its socket context), from MHD's STARTED to its CLOSED notification. MHD
 * closes the socket only after CLOSED, which removes the entry under mu: the watchdog never
 * shuts down a descriptor that has been reused. */
typedef struct conn_watch {
    int fd;
    uint64_t since_us;   /* when the request now arriving began to (connection opened, last request ended) */
    bool receiving;      /* its request has not fully arrived */
    bool shut;
    struct conn_watch *prev, *next;
} conn_watch;

typedef struct l8_http_watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* signals stop */
    conn_watch *head;
    bool stop;
    pthread_t thread;
    uint64_t limit_us;
} l8_http_watch;

enum { WATCH_PERIOD_MS = 250 };

static void *watchdog_main(void *arg) {
    l8_http_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        uint64_t now = l8_now_us();
        for (conn_watch *cw = w->head; cw; cw = cw->next)
            if (cw->receiving && !cw->shut && now - cw->since_us > w->limit_us) {
                shutdown(cw->fd, SHUT_RDWR); /* MHD's thread sees the end of the stream and closes */
                cw->shut = true;
            }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_ConnectionNotificationCode what) {
    l8_http_watch *w = ((l8_server *)cls)->watch;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_watch *cw = calloc(1, sizeof *cw);
        *ctx = cw;
        if (!cw) return; /* unwatched: the idle timeout still applies */
        cw->fd = l8_http_fd(c);
        cw->since_us = l8_now_us();
        cw->receiving = true;
        pthread_mutex_lock(&w->mu);
        cw->next = w->head;
        if (w->head) w->head->prev = cw;
        w->head = cw;
        pthread_mutex_unlock(&w->mu);
    } else if (*ctx) {
        conn_watch *cw = *ctx;
        pthread_mutex_lock(&w->mu);
        if (cw->prev) cw->prev->next = cw->next;
        else w->head = cw->next;
        if (cw->next) cw->next->prev = cw->prev;
        pthread_mutex_unlock(&w->mu);
        free(cw);
        *ctx = NULL;
    }
}

/* The request has fully arrived (or is answered): no deadline while it is served; or, with
 * receiving, the next request on the connection starts its clock. */
static void watch_mark(l8_server *S, struct MHD_Connection *c, bool receiving) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_watch *cw = ci ? ci->socket_context : NULL;
    if (!cw) return;
    pthread_mutex_lock(&S->watch->mu);
    cw->receiving = receiving;
    cw->since_us = l8_now_us();
    pthread_mutex_unlock(&S->watch->mu);
}

/* ---------------------------------------------------------------- replies */

enum MHD_Result l8_http_reply(l8_server *S, struct MHD_Connection *c, unsigned status, const char *content_type,
                              char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? len : 0, body ? body : (void *)"",
                                                             body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    l8_metrics_count_http(&S->metrics, status);
    return ok;
}

enum MHD_Result l8_http_error(l8_server *S, struct MHD_Connection *c, const l8_oai_error *e) {
    size_t len = 0;
    char *body = l8_oai_error_body(e, &len);
    return l8_http_reply(S, c, e->status, "application/json", body, len);
}

static enum MHD_Result fail(l8_server *S, struct MHD_Connection *c, unsigned status, const char *type,
                            const char *code, const char *msg) {
    l8_oai_error e;
    l8_oai_fail(&e, status, type, code, NULL, "%s", msg);
    return l8_http_error(S, c, &e);
}

int l8_http_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

bool l8_http_client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* ---------------------------------------------------------------- authentication */

/* "Bearer KEY", the key compared in time that depends only on its own length. */
static bool authorized(const l8_server *S, struct MHD_Connection *c) {
    if (!S->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    const char *key = S->api_key;
    size_t kl = strlen(key), hl = strlen(h);
    unsigned diff = hl != kl;
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

/* ---------------------------------------------------------------- routing */

typedef enum route {
    ROUTE_NONE,
    ROUTE_PAGE,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_MODELS,
    ROUTE_CHAT,
    ROUTE_COMPLETIONS,
} route;

static route find_route(const char *url, bool *post) {
    static const struct {
        const char *path;
        route r;
        bool post;
    } table[] = {
        {"/", ROUTE_PAGE, false},
        {"/health", ROUTE_HEALTH, false},
        {"/metrics", ROUTE_METRICS, false},
        {"/v1/models", ROUTE_MODELS, false},
        {"/v1/chat/completions", ROUTE_CHAT, true},
        {"/v1/completions", ROUTE_COMPLETIONS, true},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(url, table[i].path)) {
            *post = table[i].post;
            return table[i].r;
        }
    return ROUTE_NONE;
}

/* An answer known before the body is read: wrong path, method, key, or a declared size beyond
 * the limit. Returns 0 when the request may go on. */
/* The Content-Length the client declared (0 without one; "too large" when unreadable). */
static unsigned long long declared_length(struct MHD_Connection *c) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno || end == cl ? ULLONG_MAX : n;
}

static unsigned early_status(l8_server *S, struct MHD_Connection *c, const char *url, const char *method) {
    bool post = false;
    route r = find_route(url, &post);
    if (r == ROUTE_NONE) return 404;
    bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (post ? strcmp(method, "POST") : !is_get) return 405;
    /* /health is for probes; / is a static page that asks for the key itself (a browser cannot
     * attach a bearer token to a navigation) and calls the API with it */
    if (r != ROUTE_HEALTH && r != ROUTE_PAGE && !authorized(S, c)) return 401;
    if (declared_length(c) > S->o.max_body) return 413;
    return 0;
}

static enum MHD_Result answer_status(l8_server *S, struct MHD_Connection *c, unsigned status, const char *url,
                                     const char *method) {
    char msg[300];
    switch (status) {
    case 404:
        snprintf(msg, sizeof msg, "no such endpoint: %.200s (see GET /v1/models, POST /v1/chat/completions)", url);
        return fail(S, c, 404, "invalid_request_error", "not_found", msg);
    case 405:
        snprintf(msg, sizeof msg, "%.20s is not allowed on %.200s", method, url);
        return fail(S, c, 405, "invalid_request_error", "method_not_allowed", msg);
    case 401:
        return fail(S, c, 401, "invalid_request_error", "invalid_api_key",
                    "missing or wrong API key: send the header 'Authorization: Bearer KEY'");
    default:
        snprintf(msg, sizeof msg, "the request body exceeds the limit of %zu bytes (--max-body)", S->o.max_body);
        return fail(S, c, 413, "invalid_request_error", "request_too_large", msg);
    }
}

static enum MHD_Result dispatch(l8_server *S, struct MHD_Connection *c, const char *url, request *rq) {
    bool post;
    switch (find_route(url, &post)) {
    case ROUTE_PAGE: return l8_serve_page(S, c);
    case ROUTE_HEALTH: return l8_serve_health(S, c);
    case ROUTE_METRICS: return l8_serve_metrics(S, c);
    case ROUTE_MODELS: return l8_serve_models(S, c);
    case ROUTE_CHAT: return l8_serve_generate(S, c, L8_OAI_CHAT, rq->body, rq->len);
    case ROUTE_COMPLETIONS: return l8_serve_generate(S, c, L8_OAI_COMPLETION, rq->body, rq->len);
    default: return answer_status(S, c, 404, url, "GET");
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    l8_server *S = cls;
    request *rq = *state;
    if (!rq) { /* headers are in; the body (if any) follows in later calls */
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        *state = rq;
        const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        unsigned st = early_status(S, c, url, method);
        /* a client that waits for "100 Continue" gets the refusal instead, without sending; so
         * does one that declares more than would be drained (its connection closes after) */
        if (st && ((expect && !strcasecmp(expect, "100-continue")) ||
                   (st == 413 && declared_length(c) / DRAIN_FACTOR > S->o.max_body))) {
            rq->answered = true;
            watch_mark(S, c, false);
            return answer_status(S, c, st, url, method);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->answered) return MHD_YES;
        if (rq->too_large || rq->len + n > S->o.max_body) {
            rq->too_large = true;
            rq->dropped += n;
            return rq->dropped / DRAIN_FACTOR > S->o.max_body ? MHD_NO : MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1) cap *= 2;
            char *b = realloc(rq->body, cap);
            if (!b) return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    watch_mark(S, c, false);
    unsigned st = early_status(S, c, url, method);
    if (!st && rq->too_large) st = 413;
    if (st) return answer_status(S, c, st, url, method);
    return dispatch(S, c, url, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    (void)why;
    watch_mark(cls, c, true);
    request *rq = *state;
    if (!rq) return;
    free(rq->body);
    free(rq);
    *state = NULL;
}

/* ---------------------------------------------------------------- the daemon */

static int listen_on(const char *host, int port, int *family, int *bound_port, char *err, size_t errcap) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
                    *res = NULL;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        snprintf(err, errcap, "cannot resolve host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 128)) {
            last = errno;
            close(fd);
            fd = -1;
            continue;
        }
        *family = a->ai_family;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errcap, "cannot listen on %s:%d: %s", host, port, strerror(last));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound_port = port;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

llm8_status l8_http_start(l8_server *S, char *err, size_t errcap) {
    l8_http_watch *w = calloc(1, sizeof *w);
    if (!w) return LLM8_STATUS_OUT_OF_MEMORY;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->limit_us = (uint64_t)S->o.timeout_s * 1000000u;
    S->watch = w;
    if (pthread_create(&w->thread, NULL, watchdog_main, w)) {
        snprintf(err, errcap, "cannot start a thread");
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        S->watch = NULL;
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    int family = AF_INET;
    S->listen_fd = listen_on(S->host, S->o.port, &family, &S->port, err, errcap);
    if (S->listen_fd < 0) return LLM8_STATUS_IO_ERROR;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     (family == AF_INET6 ? MHD_USE_IPv6 : 0);
    S->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, S, MHD_OPTION_LISTEN_SOCKET, S->listen_fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)S->o.max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)S->o.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, S,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, S, MHD_OPTION_END);
    if (!S->daemon) {
        close(S->listen_fd);
        S->listen_fd = -1;
        snprintf(err, errcap, "cannot start the HTTP daemon (libmicrohttpd)");
        return LLM8_STATUS_IO_ERROR;
    }
    S->listen_fd = -1; /* the daemon's now: closed by MHD_stop_daemon, or returned by quiescing */
    return LLM8_STATUS_OK;
}

void l8_http_quiesce(l8_server *S) {
    if (!S->daemon) return;
    MHD_socket fd = MHD_quiesce_daemon(S->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    S->listen_fd = -1;
}

void l8_http_stop(l8_server *S) {
    if (S->daemon) MHD_stop_daemon(S->daemon); /* every connection CLOSED: the watch list is empty */
    S->daemon = NULL;
    if (S->listen_fd >= 0) close(S->listen_fd);
    S->listen_fd = -1;
    l8_http_watch *w = S->watch;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    S->watch = NULL;
}
