/* Round-trip latency of an empty parallel region: l8_pool_run start to return, with the
 * workers hot (back-to-back regions) and cold (asleep after a pause longer than the spin).
 * usage: bench_threadpool [THREADS [REGIONS]]  (default 2 threads, 200000 regions) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/threadpool.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void empty_fn(void *ctx, int ith, int nth) { (void)ctx, (void)ith, (void)nth; }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *label, double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%-28s n=%-7d median %8.0f ns   p10 %8.0f   p90 %8.0f   p99 %8.0f\n", label, n, t[n / 2], t[n / 10],
           t[n * 9 / 10], t[n * 99 / 100]);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int regions = argc > 2 ? atoi(argv[2]) : 200000;
    if (threads < 1 || regions < 100) {
        fprintf(stderr, "usage: bench_threadpool [THREADS [REGIONS >= 100]]\n");
        return 2;
    }
    l8_pool *pool = l8_pool_create(threads);
    double *t = malloc((size_t)regions * sizeof *t);
    if (!pool || !t) return 1;
    printf("threads %d (physical cores %d)\n", threads, l8_physical_cores());

    for (int i = 0; i < 1000; i++) l8_pool_run(pool, empty_fn, NULL); /* warm up */
    for (int i = 0; i < regions; i++) {
        double t0 = now_ns();
        l8_pool_run(pool, empty_fn, NULL);
        t[i] = now_ns() - t0;
    }
    report("hot (back to back)", t, regions);

    int cold = 300;
    struct timespec gap = {0, 2000000}; /* 2 ms: the workers are asleep on the futex */
    for (int i = 0; i < cold; i++) {
        nanosleep(&gap, NULL);
        double t0 = now_ns();
        l8_pool_run(pool, empty_fn, NULL);
        t[i] = now_ns() - t0;
    }
    report("cold (after 2 ms idle)", t, cold);

    /* for scale: what creating and joining threads per region would cost */
    double t0 = now_ns();
    int reps = 2000;
    for (int i = 0; i < reps; i++) {
        l8_pool *p = l8_pool_create(threads);
        l8_pool_run(p, empty_fn, NULL);
        l8_pool_free(p);
    }
    printf("%-28s mean %8.0f ns\n", "create+run+free", (now_ns() - t0) / reps);
    free(t);
    l8_pool_free(pool);
    return 0;
}
