/*
 * The pool's protocol: the caller publishes (fn, ctx), sets `pending` to the worker count and
 * bumps `gen`; each worker waits for gen to move, runs fn, and decrements pending; the caller
 * runs its own share and then waits for pending to reach 0. Every wait spins first (a region
 * usually follows the previous one within microseconds) and then sleeps on a futex — the two
 * sides of each sleep use sequentially consistent operations on a "sleeping" count/flag and
 * the watched word, so that either the waker sees the sleeper or the sleeper sees the change.
 */
#include "runtime/threadpool.h"

#include "runtime/probe.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* How long a waiting thread spins before sleeping: long enough to cover the serial work
 * between two matmuls of a decode step, short enough not to burn a core when idle. */
#define SPIN_NS 100000

typedef struct worker {
    struct l8_pool *pool;
    int ith;
} worker;

struct l8_pool {
    /* Written by the caller, read by the workers: one line, so that the workers' polling
     * does not share a line with the counter they write. */
    _Alignas(64) atomic_uint gen;
    atomic_int n_sleeping;
    atomic_bool stop;
    l8_pool_fn fn; /* published by the release of gen */
    void *ctx;
    int n;
    bool oversubscribed; /* more threads than CPUs: yield the CPU rather than pause */
    /* Written by the workers, read by the caller. */
    _Alignas(64) atomic_uint pending;
    atomic_bool caller_sleeping;
    _Alignas(64) pthread_t *threads;
    worker *workers;
    int n_started;
    /* Placement (probe.h, l8_cpu_plan): the workers start on cpus; the caller is moved there on
     * its first run (it computes share 0 of every region, and a region lasts as long as its
     * slowest share: on a little core, all of them). */
    bool pin, caller_pinned;
    pthread_t pinned_caller;
#ifdef __linux__
    cpu_set_t cpus;
#endif
#ifndef __linux__
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void relax(const l8_pool *pool) {
    if (pool->oversubscribed) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    sched_yield();
#endif
}

/* Sleeps while *word == val (spurious returns are fine: callers loop). */
static void word_wait(l8_pool *pool, atomic_uint *word, unsigned val) {
#ifdef __linux__
    (void)pool;
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    pthread_mutex_lock(&pool->mu);
    while (atomic_load(word) == val) pthread_cond_wait(&pool->cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
#endif
}

static void word_wake(l8_pool *pool, atomic_uint *word) {
#ifdef __linux__
    (void)pool;
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
    pthread_mutex_lock(&pool->mu);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
#endif
}

/* Spins while (*word == val) != until_equal, for at most SPIN_NS; returns the last value seen. */
static unsigned spin(const l8_pool *pool, atomic_uint *word, unsigned val, bool until_equal) {
    uint64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        unsigned v = atomic_load_explicit(word, memory_order_acquire);
        if ((v == val) == until_equal) return v;
        if ((i & 15) == 0) { /* the clock costs more than a pause: read it now and then */
            uint64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return v;
        }
        relax(pool);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    l8_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = spin(pool, &pool->gen, seen, false);
        if (g == seen) {
            atomic_fetch_add(&pool->n_sleeping, 1);
            while ((g = atomic_load(&pool->gen)) == seen) word_wait(pool, &pool->gen, seen);
            atomic_fetch_sub(&pool->n_sleeping, 1);
        }
        seen = g;
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
        pool->fn(pool->ctx, w->ith, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_sleeping))
            word_wake(pool, &pool->pending);
    }
    return NULL;
}

/* Starts a region on the workers (gen moves) and wakes those that went to sleep. */
static void kick(l8_pool *pool) {
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->n_sleeping) > 0) word_wake(pool, &pool->gen);
}

/* Moves the calling thread onto the pool's CPUs, once per thread (a failure is harmless: the
 * thread just stays where the scheduler puts it). */
static void pin_caller(l8_pool *pool) {
#ifdef __linux__
    pthread_t self = pthread_self();
    if (pool->caller_pinned && pthread_equal(pool->pinned_caller, self)) return;
    pthread_setaffinity_np(self, sizeof pool->cpus, &pool->cpus);
    pool->pinned_caller = self;
    pool->caller_pinned = true;
#else
    (void)pool;
#endif
}

void l8_pool_run(l8_pool *pool, l8_pool_fn fn, void *ctx) {
    if (pool->pin) pin_caller(pool);
    if (pool->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, (unsigned)(pool->n - 1), memory_order_relaxed);
    kick(pool);
    fn(ctx, 0, pool->n);
    if (spin(pool, &pool->pending, 0, true) != 0) {
        atomic_store(&pool->caller_sleeping, true);
        unsigned p;
        while ((p = atomic_load(&pool->pending)) != 0) word_wait(pool, &pool->pending, p);
        atomic_store(&pool->caller_sleeping, false);
    }
}

int l8_pool_size(const l8_pool *pool) { return pool->n; }

static void pool_stop(l8_pool *pool) {
    atomic_store_explicit(&pool->stop, true, memory_order_relaxed);
    kick(pool);
    for (int i = 0; i < pool->n_started; i++) pthread_join(pool->threads[i], NULL);
}

l8_pool *l8_pool_create(int n_threads) {
    l8_cpu_plan plan;
    l8_cpu_plan_get(n_threads, &plan);
    n_threads = plan.n_threads;
    size_t size = (sizeof(l8_pool) + 63) & ~(size_t)63;
    l8_pool *pool = aligned_alloc(64, size);
    if (!pool) return NULL;
    memset(pool, 0, sizeof *pool);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->n_sleeping, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->caller_sleeping, false);
    pool->n = n_threads;
    long cpus = plan.pin ? l8_cpumask_count(&plan.cpus) : sysconf(_SC_NPROCESSORS_ONLN);
    pool->oversubscribed = cpus > 0 && n_threads > cpus;
#ifndef __linux__
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
#endif
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    bool ok = pool->threads && pool->workers;
    pthread_attr_t attr, *pattr = NULL;
#ifdef __linux__
    pool->pin = plan.pin;
    CPU_ZERO(&pool->cpus);
    for (int cpu = 0; cpu < L8_MAX_CPUS && cpu < CPU_SETSIZE; cpu++)
        if (l8_cpumask_has(&plan.cpus, cpu)) CPU_SET(cpu, &pool->cpus);
    /* The workers start on the plan's CPUs (all of them: the scheduler spreads the threads),
     * also when not pinned: a thread inherits its creator's mask, and the creator may be the
     * caller of another pool, already moved onto that pool's CPUs. */
    if (pthread_attr_init(&attr) == 0) {
        if (pthread_attr_setaffinity_np(&attr, sizeof pool->cpus, &pool->cpus) == 0) pattr = &attr;
        else pthread_attr_destroy(&attr);
    }
#endif
    for (int i = 1; ok && i < n_threads; i++) {
        pool->workers[i] = (worker){pool, i};
        ok = pthread_create(&pool->threads[pool->n_started], pattr, worker_main, &pool->workers[i]) == 0;
        if (!ok && pattr) /* the CPUs are no longer allowed (the process's mask changed since): unplaced */
            ok = pthread_create(&pool->threads[pool->n_started], NULL, worker_main, &pool->workers[i]) == 0;
        if (ok) pool->n_started++;
    }
    if (pattr) pthread_attr_destroy(pattr);
    if (!ok) {
        l8_pool_free(pool);
        return NULL;
    }
    return pool;
}

void l8_pool_free(l8_pool *pool) {
    if (!pool) return;
    pool_stop(pool);
#ifndef __linux__
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
#endif
    free(pool->threads);
    free(pool->workers);
    free(pool);
}

/* ---------------------------------------------------------------- topology */

int l8_physical_cores(void) {
    const l8_cpu_topology *t = l8_cpu_topology_get();
    l8_cpumask allowed = *l8_cpu_allowed();
    for (int i = 0; i < L8_MAX_CPUS / 64; i++) allowed.w[i] &= t->online.w[i];
    int n = l8_cpu_topology_cores(t, l8_cpumask_count(&allowed) ? &allowed : &t->online);
    return n > 0 ? n : 1;
}

int l8_default_threads(void) {
    l8_cpu_plan plan;
    l8_cpu_plan_get(0, &plan);
    return plan.n_threads;
}
