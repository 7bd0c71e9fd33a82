/* The thread pool: every thread runs every region exactly once, results are visible to the
 * caller, runs after the workers went to sleep are not lost, pools of any size coexist. */
#include <assert.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/threadpool.h"

#define MAX_THREADS 8

typedef struct job {
    uint64_t round;
    int nth_seen[MAX_THREADS];
    uint64_t sums[MAX_THREADS * 8]; /* one cache line per thread; plain writes checked by TSan */
    atomic_int calls;
} job;

static void count_fn(void *ctx, int ith, int nth) {
    job *j = ctx;
    assert(ith >= 0 && ith < nth && nth <= MAX_THREADS);
    j->nth_seen[ith] = nth;
    j->sums[ith * 8] += j->round + (uint64_t)ith; /* reads the caller's plain write of round */
    atomic_fetch_add_explicit(&j->calls, 1, memory_order_relaxed);
}

/* Splits a sum over the threads: the usual shape of a region (disjoint slices of one array). */
typedef struct slice_job {
    const uint32_t *v;
    size_t n;
    uint64_t part[MAX_THREADS];
} slice_job;

static void slice_fn(void *ctx, int ith, int nth) {
    slice_job *j = ctx;
    size_t lo = j->n * (size_t)ith / (size_t)nth, hi = j->n * (size_t)(ith + 1) / (size_t)nth;
    uint64_t s = 0;
    for (size_t i = lo; i < hi; i++) s += j->v[i];
    j->part[ith] = s;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check_pool(l8_pool *pool, int n, long rounds) {
    assert(l8_pool_size(pool) == n);
    job *j = calloc(1, sizeof *j);
    assert(j);
    for (long r = 0; r < rounds; r++) {
        j->round = (uint64_t)r;
        l8_pool_run(pool, count_fn, j);
        /* the caller sees every thread's write as soon as run returns */
        assert(atomic_load_explicit(&j->calls, memory_order_relaxed) == (int)((r + 1) * n));
    }
    uint64_t tri = (uint64_t)rounds * (uint64_t)(rounds - 1) / 2;
    for (int i = 0; i < n; i++) {
        assert(j->nth_seen[i] == n);
        assert(j->sums[i * 8] == tri + (uint64_t)rounds * (uint64_t)i);
    }
    free(j);
}

int main(void) {
    int cores = l8_physical_cores();
    printf("physical cores: %d\n", cores);
    assert(cores >= 1);

    /* Many back-to-back tiny regions on every pool size; fewer where the threads outnumber the
     * CPUs, since each region then needs context switches. */
    for (int n = 1; n <= MAX_THREADS; n++) {
        l8_pool *pool = l8_pool_create(n);
        assert(pool);
        long rounds = n <= 2 ? 100000 : 30000;
        clock_t c0 = clock();
        check_pool(pool, n, rounds);
        printf("%d threads: %ld regions ok (%.2f s cpu)\n", n, rounds, (double)(clock() - c0) / CLOCKS_PER_SEC);
        l8_pool_free(pool);
    }

    /* Regions after the workers went to sleep (spin budget is ~100 us): no lost wake-ups. */
    {
        l8_pool *pool = l8_pool_create(4);
        assert(pool);
        for (int k = 0; k < 20; k++) {
            check_pool(pool, 4, 3);
            sleep_ms(k % 4 == 0 ? 5 : 1);
        }
        printf("wake-ups after sleep ok\n");
        l8_pool_free(pool);
    }

    /* Two pools of different sizes used alternately from the same caller, with real work. */
    {
        l8_pool *a = l8_pool_create(3), *b = l8_pool_create(2);
        assert(a && b);
        size_t n = 100003;
        uint32_t *v = malloc(n * sizeof *v);
        assert(v);
        uint64_t want = 0;
        for (size_t i = 0; i < n; i++) want += v[i] = (uint32_t)(i * 2654435761u);
        for (int r = 0; r < 2000; r++) {
            l8_pool *p = r & 1 ? a : b;
            slice_job sj = {v, n, {0}};
            l8_pool_run(p, slice_fn, &sj);
            uint64_t got = 0;
            for (int i = 0; i < l8_pool_size(p); i++) got += sj.part[i];
            assert(got == want);
        }
        free(v);
        l8_pool_free(a);
        l8_pool_free(b);
        printf("alternating pools ok\n");
    }

    /* Default size and create/free without any region. */
    l8_pool *d = l8_pool_create(0);
    assert(d && l8_pool_size(d) == cores);
    l8_pool_free(d);
    l8_pool_free(NULL);
    printf("ok\n");
    return 0;
}
