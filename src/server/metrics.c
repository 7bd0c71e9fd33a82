/* Prometheus text for GET /metrics. */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned codes[L8_METRICS_N_CODES] = {200, 400, 401, 404, 405, 413, 500, 503, 0};

/* Throughput is measured over windows of at least this long, so that the gauge is steady. */
enum { WINDOW_US = 1000000, IDLE_US = 3000000 };

void l8_metrics_init(l8_metrics *m) { memset(m, 0, sizeof *m); }

void l8_metrics_count_http(l8_metrics *m, unsigned status) {
    int i = 0;
    while (i < L8_METRICS_N_CODES - 1 && codes[i] != status) i++;
    atomic_fetch_add(&m->http[i], 1); /* the last series counts every other status */
}

void l8_metrics_count_generated(l8_metrics *m, uint64_t n, uint64_t now_us) {
    atomic_fetch_add(&m->generated_tokens, n);
    if (n) atomic_store(&m->last_token_us, now_us);
    if (!m->window_start_us) m->window_start_us = now_us;
    m->window_tokens += n;
    uint64_t dt = now_us - m->window_start_us;
    if (dt >= WINDOW_US) {
        atomic_store(&m->rate_milli, m->window_tokens * 1000000000ull / dt);
        m->window_start_us = now_us;
        m->window_tokens = 0;
    }
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
}

static void counter(sbuf *b, const char *name, const char *help, uint64_t v) {
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void counter_seconds(sbuf *b, const char *name, const char *help, uint64_t us) {
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %.6f\n", name, help, name, name, us / 1e6);
}

static void gauge(sbuf *b, const char *name, const char *help, double v) {
    put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.6g\n", name, help, name, name, v);
}

char *l8_metrics_render(l8_metrics *m, uint64_t now_us, size_t *len) {
    sbuf b = {malloc(4096), 0, 4096, 0};
    if (!b.p) return NULL;
    b.p[0] = 0;
    put(&b, "# HELP llm8_http_requests_total HTTP responses sent, by status code.\n"
            "# TYPE llm8_http_requests_total counter\n");
    for (int i = 0; i < L8_METRICS_N_CODES; i++) {
        if (codes[i])
            put(&b, "llm8_http_requests_total{code=\"%u\"} %llu\n", codes[i],
                (unsigned long long)atomic_load(&m->http[i]));
        else
            put(&b, "llm8_http_requests_total{code=\"other\"} %llu\n", (unsigned long long)atomic_load(&m->http[i]));
    }
    counter(&b, "llm8_completions_total", "Generations finished (completed, stopped or cancelled).",
            atomic_load(&m->completions));
    counter(&b, "llm8_completions_cancelled_total", "Generations cancelled because the client went away.",
            atomic_load(&m->cancelled));
    counter(&b, "llm8_prompt_tokens_total", "Prompt tokens of admitted requests (tokens in).",
            atomic_load(&m->prompt_tokens));
    counter(&b, "llm8_prompt_tokens_cached_total", "Prompt tokens reused from a slot's KV cache.",
            atomic_load(&m->cached_tokens));
    counter(&b, "llm8_prefill_tokens_total", "Prompt tokens run through the model.", atomic_load(&m->prefill_tokens));
    counter(&b, "llm8_generated_tokens_total", "Tokens generated (tokens out).", atomic_load(&m->generated_tokens));
    counter(&b, "llm8_batch_steps_total", "Batched forward passes.", atomic_load(&m->steps));
    counter_seconds(&b, "llm8_batch_seconds_total", "Time spent in batched forward passes.", atomic_load(&m->step_us));
    /* a window that ended long ago no longer describes the present: idle means 0 tokens/s */
    uint64_t last = atomic_load(&m->last_token_us);
    double rate = last && now_us - last < IDLE_US ? atomic_load(&m->rate_milli) / 1000.0 : 0.0;
    gauge(&b, "llm8_tokens_per_second", "Aggregate generation speed over the last second of activity.", rate);
    gauge(&b, "llm8_queue_length", "Requests waiting for a slot.", atomic_load(&m->queue_length));
    gauge(&b, "llm8_slots_busy", "Slots generating or prefilling.", atomic_load(&m->slots_busy));
    gauge(&b, "llm8_slots_total", "Slots (--parallel).", atomic_load(&m->slots_total));
    gauge(&b, "llm8_model_loaded", "1 once the model is loaded.", atomic_load(&m->loaded));
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
