/*
 * A persistent thread pool for the parallel regions of a forward pass. A decode step runs
 * hundreds of short regions (one per matmul), so the start/stop latency matters more than
 * anything else: the workers are created once, spin briefly on a generation counter after each
 * region so that the next one starts without a system call, and only then go to sleep.
 */
#ifndef L8_THREADPOOL_H
#define L8_THREADPOOL_H

typedef struct l8_pool l8_pool;

/* The work of one parallel region: called once on every thread with ith in [0, nth). */
typedef void (*l8_pool_fn)(void *ctx, int ith, int nth);

/* A pool of n_threads threads counting the caller (n_threads - 1 workers are started now;
 * n_threads <= 0 means l8_default_threads()). NULL when out of memory or threads.
 * Placement follows l8_cpu_plan (probe.h): with LLM8_CPU_MASK, or on a big.LITTLE machine (the
 * big cores), the workers start pinned to those CPUs, and the thread that calls l8_pool_run is
 * moved there on its first run and stays there (it computes a share of every region, and a
 * region lasts as long as its slowest share). Elsewhere nothing is pinned. */
l8_pool *l8_pool_create(int n_threads);

/* Runs fn(ctx, ith, nth) on every thread of the pool — the caller is thread 0 — and returns
 * when all have returned; their writes are visible to the caller afterwards. One region at a
 * time: not reentrant and not to be called from two threads at once or from inside fn. */
void l8_pool_run(l8_pool *pool, l8_pool_fn fn, void *ctx);

/* The pool's thread count (the nth its regions see). */
int l8_pool_size(const l8_pool *pool);

/* Stops and joins the workers; NULL is fine. */
void l8_pool_free(l8_pool *pool);

/* Physical cores this process may run on (hyper-threads of one core count once, by
 * thread_siblings_list: on arm64 core_id repeats across clusters). */
int l8_physical_cores(void);

/* The default thread count: one per big core on a big.LITTLE machine, one per CPU of
 * LLM8_CPU_MASK, else one per physical core (int8 matmuls saturate a core's vector units with
 * one thread). */
int l8_default_threads(void);

#endif
