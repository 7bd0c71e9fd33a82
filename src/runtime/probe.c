/* Machine probes: read bandwidth and int8 dot-product peak (see probe.h). */
#include "runtime/probe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define L8_X86 1
#else
#define L8_X86 0
#endif

#define MAX_THREADS 1024

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs fn on the pool, or on the caller alone without one. */
static void run(l8_pool *pool, l8_pool_fn fn, void *ctx) {
    if (pool) l8_pool_run(pool, fn, ctx);
    else fn(ctx, 0, 1);
}

/* ---------------------------------------------------------------- read bandwidth */

typedef enum { K_C, K_AVX2, K_AVX512 } kernel;

static kernel read_kernel(void) {
#ifdef L8_PROBE_FORCE_KERNEL /* to test the fallbacks on a machine that has better */
    return (kernel)L8_PROBE_FORCE_KERNEL;
#endif
#if L8_X86
    if (__builtin_cpu_supports("avx512f")) return K_AVX512;
    if (__builtin_cpu_supports("avx2")) return K_AVX2;
#endif
    return K_C;
}

const char *l8_probe_read_kernel(void) {
    static const char *names[] = {"c", "avx2", "avx512"};
    return names[read_kernel()];
}

/* Sums of the words: the result only has to depend on every byte, so that no load is dropped.
 * Four accumulators keep the adds off the critical path; n is a multiple of 256 bytes. */
#if L8_X86
__attribute__((target("avx512f"))) static uint64_t sum_avx512(const unsigned char *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 256) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    /* not _mm512_reduce_add_epi64: it adds in signed long long, and these sums wrap */
    uint64_t w[8], s = 0;
    _mm512_storeu_si512((void *)w, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (int k = 0; k < 8; k++) s += w[k];
    return s;
}

__attribute__((target("avx2"))) static uint64_t sum_avx2(const unsigned char *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t w[4];
    _mm256_storeu_si256((__m256i *)w, s);
    return w[0] + w[1] + w[2] + w[3];
}
#endif

static uint64_t sum_c(const unsigned char *p, size_t n) {
    const uint64_t *w = (const uint64_t *)(const void *)p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n / 8; i += 4) a0 += w[i], a1 += w[i + 1], a2 += w[i + 2], a3 += w[i + 3];
    return a0 + a1 + a2 + a3;
}

typedef struct read_job {
    unsigned char *buf;
    size_t slice; /* bytes per thread, a multiple of the page size */
    kernel k;
    int fill;     /* first pass: write the slice (from its own thread, so that pages land near it) */
    uint64_t sink[MAX_THREADS];
} read_job;

static void read_fn(void *ctx, int ith, int nth) {
    read_job *j = ctx;
    unsigned char *p = j->buf + (size_t)ith * j->slice;
    if (j->fill) {
        memset(p, ith + 1, j->slice);
        return;
    }
    uint64_t s;
#if L8_X86
    if (j->k == K_AVX512) s = sum_avx512(p, j->slice);
    else if (j->k == K_AVX2) s = sum_avx2(p, j->slice);
    else s = sum_c(p, j->slice);
#else
    s = sum_c(p, j->slice);
#endif
    j->sink[ith] += s;
}

double l8_probe_read_bandwidth(l8_pool *pool, size_t bytes, int repeats) {
    if (!bytes) bytes = (size_t)1 << 30;
    if (repeats <= 0) repeats = 5;
    int nth = pool ? l8_pool_size(pool) : 1;
    if (nth > MAX_THREADS) return 0;
    read_job *j = calloc(1, sizeof *j);
    double *t = calloc((size_t)repeats, sizeof *t);
    if (j) j->slice = bytes / (size_t)nth & ~(size_t)4095;
    if (!j || !t || !j->slice) {
        free(j);
        free(t);
        return 0;
    }
    size_t total = j->slice * (size_t)nth;
    void *buf = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        free(j);
        free(t);
        return 0;
    }
#ifdef MADV_HUGEPAGE
    madvise(buf, total, MADV_HUGEPAGE); /* fewer TLB misses: measure the memory, not the page walker */
#endif
    j->buf = buf;
    j->k = read_kernel();
    j->fill = 1;
    run(pool, read_fn, j);
    j->fill = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_s();
        run(pool, read_fn, j);
        double dt = now_s() - t0;
        t[r] = dt > 0 ? (double)total / dt / 1e9 : 0;
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    double gbs = t[repeats / 2];
    munmap(buf, total);
    free(t);
    free(j);
    return gbs;
}

/* ---------------------------------------------------------------- int8 peak */

static kernel int8_kernel(void) {
#ifdef L8_PROBE_FORCE_KERNEL /* to test the fallbacks on a machine that has better */
    return (kernel)L8_PROBE_FORCE_KERNEL;
#endif
#if L8_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")) return K_AVX512;
    if (__builtin_cpu_supports("avx2")) return K_AVX2;
#endif
    return K_C;
}

const char *l8_probe_int8_kernel(void) {
    static const char *names[] = {"c", "avx2", "avx512vnni"};
    return names[int8_kernel()];
}

/* Each loop runs iters rounds of independent dot products and returns the multiply-accumulates
 * done. The operands are hidden from the compiler (empty asm) so it can neither fold nor hoist
 * the products; the accumulators go to *sink so that nothing is dead. */
#if L8_X86
__attribute__((target("avx512f,avx512vnni"))) static uint64_t int8_avx512vnni(uint64_t iters, uint64_t *sink) {
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    __asm__("" : "+v"(a), "+v"(b));
    /* 12 chains: vpdpbusd has a latency of ~5 cycles and up to 2 issue per cycle */
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
            c9 = c0, c10 = c0, c11 = c0;
    for (uint64_t i = 0; i < iters; i++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b);
        c1 = _mm512_dpbusd_epi32(c1, a, b);
        c2 = _mm512_dpbusd_epi32(c2, a, b);
        c3 = _mm512_dpbusd_epi32(c3, a, b);
        c4 = _mm512_dpbusd_epi32(c4, a, b);
        c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b);
        c7 = _mm512_dpbusd_epi32(c7, a, b);
        c8 = _mm512_dpbusd_epi32(c8, a, b);
        c9 = _mm512_dpbusd_epi32(c9, a, b);
        c10 = _mm512_dpbusd_epi32(c10, a, b);
        c11 = _mm512_dpbusd_epi32(c11, a, b);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    uint32_t w[16], t = 0; /* wrapping sums: unsigned, unlike _mm512_reduce_add_epi32 */
    _mm512_storeu_si512((void *)w, s);
    for (int k = 0; k < 16; k++) t += w[k];
    *sink += t;
    return iters * 12 * 64;
}

__attribute__((target("avx2"))) static uint64_t int8_avx2(uint64_t iters, uint64_t *sink) {
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    /* only the add is loop-carried; the operand copy is hidden per chain so the 8 products are
     * not merged into one */
#define STEP(c)                                                                                                 \
    do {                                                                                                        \
        __m256i x = a;                                                                                          \
        __asm__("" : "+x"(x));                                                                                  \
        c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b), one));                           \
    } while (0)
    for (uint64_t i = 0; i < iters; i++) {
        STEP(c0);
        STEP(c1);
        STEP(c2);
        STEP(c3);
        STEP(c4);
        STEP(c5);
        STEP(c6);
        STEP(c7);
    }
#undef STEP
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    uint32_t w[8], t = 0;
    _mm256_storeu_si256((__m256i *)w, s);
    for (int k = 0; k < 8; k++) t += w[k];
    *sink += t;
    return iters * 8 * 32;
}
#endif

static uint64_t int8_c(uint64_t iters, uint64_t *sink) {
    uint8_t a[64];
    int8_t b[64];
    uint32_t c[16] = {0}; /* wrapping: the value is never used */
    for (int k = 0; k < 64; k++) a[k] = (uint8_t)(k * 7), b[k] = (int8_t)(k * 5 - 100);
    for (uint64_t i = 0; i < iters; i++) {
#if defined(__GNUC__)
        __asm__("" : : "r"(a), "r"(b) : "memory"); /* the operands may have changed: no folding */
#endif
        for (int j = 0; j < 64; j += 16) /* 16 lanes: the shape auto-vectorization wants */
            for (int k = 0; k < 16; k++) c[k] += (uint32_t)(a[j + k] * b[j + k]);
    }
    for (int k = 0; k < 16; k++) *sink += c[k];
    return iters * 64;
}

typedef struct int8_job {
    kernel k;
    double seconds;
    double rate[MAX_THREADS]; /* MACs per second of each thread */
    uint64_t sink[MAX_THREADS];
} int8_job;

static uint64_t int8_round(kernel k, uint64_t iters, uint64_t *sink) {
#if L8_X86
    if (k == K_AVX512) return int8_avx512vnni(iters, sink);
    if (k == K_AVX2) return int8_avx2(iters, sink);
#endif
    (void)k;
    return int8_c(iters, sink);
}

static void int8_fn(void *ctx, int ith, int nth) {
    int8_job *j = ctx;
    /* rounds of ~10-50 us, so that the clock is read rarely but the end is not overshot */
    uint64_t iters = j->k == K_C ? 200 : 4000, macs = 0;
    double t0 = now_s(), t;
    do {
        macs += int8_round(j->k, iters, &j->sink[ith]);
        t = now_s();
    } while (t - t0 < j->seconds);
    j->rate[ith] = (double)macs / (t - t0);
}

double l8_probe_int8_peak(l8_pool *pool, double seconds) {
    if (seconds <= 0) seconds = 0.2;
    int nth = pool ? l8_pool_size(pool) : 1;
    if (nth > MAX_THREADS) return 0;
    int8_job *j = calloc(1, sizeof *j);
    if (!j) return 0;
    j->k = int8_kernel();
    /* warm-up: wide vector units power up and the clock settles before the measured run */
    j->seconds = seconds * 0.1 < 0.02 ? seconds * 0.1 : 0.02;
    run(pool, int8_fn, j);
    j->seconds = seconds;
    run(pool, int8_fn, j);
    double total = 0;
    for (int i = 0; i < nth; i++) total += j->rate[i];
    free(j);
    return total * 2 / 1e9;
}
