/* Server counters and gauges, updated lock-free by the HTTP threads and the scheduler, rendered
 * in the Prometheus text exposition format for GET /metrics. */
#ifndef L8_SERVER_METRICS_H
#define L8_SERVER_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The HTTP statuses the server answers with, counted one series each. */
enum { L8_METRICS_N_CODES = 9 };

typedef struct l8_metrics {
    atomic_uint_fast64_t http[L8_METRICS_N_CODES]; /* responses by status, see metrics.c */
    atomic_uint_fast64_t completions;              /* generations finished (any reason) */
    atomic_uint_fast64_t cancelled;                /* of which the client went away */
    atomic_uint_fast64_t prompt_tokens;            /* prompt tokens of admitted requests */
    atomic_uint_fast64_t cached_tokens;            /* of which reused from a slot's cache */
    atomic_uint_fast64_t prefill_tokens;           /* tokens run through the model as prompt */
    atomic_uint_fast64_t generated_tokens;
    atomic_uint_fast64_t steps;                    /* batched forward passes */
    atomic_uint_fast64_t step_us;                  /* their total time, microseconds */
    atomic_int queue_length, slots_busy, slots_total;
    atomic_int loaded;
    /* decode throughput over the last window (scheduler thread only writes these) */
    atomic_uint_fast64_t rate_milli;               /* generated tokens/s x 1000 */
    uint64_t window_start_us, window_tokens;
    atomic_uint_fast64_t last_token_us;
} l8_metrics;

void l8_metrics_init(l8_metrics *m);
void l8_metrics_count_http(l8_metrics *m, unsigned status);
/* Called by the scheduler after each step that generated n tokens (n may be 0). */
void l8_metrics_count_generated(l8_metrics *m, uint64_t n, uint64_t now_us);
/* The exposition text (heap, NUL-terminated), or NULL when out of memory. */
char *l8_metrics_render(l8_metrics *m, uint64_t now_us, size_t *len);

#endif
