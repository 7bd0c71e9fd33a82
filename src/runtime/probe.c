/* Machine probes: read bandwidth, int8 dot-product peak, CPU topology and thread placement (see
 * probe.h). */
#include "runtime/probe.h"

#include "kernels/kernels.h"

#include <ctype.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define L8_X86 1
#else
#define L8_X86 0
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>
#define L8_ARM 1
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#else
#define L8_ARM 0
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

typedef enum { K_C, K_AVX2, K_AVX512, K_NEON, K_DOTPROD, K_I8MM, K_AVXVNNI, K_AMX } kernel;

static kernel read_kernel(void) {
#ifdef L8_PROBE_FORCE_KERNEL /* to test the fallbacks on a machine that has better */
    return (kernel)L8_PROBE_FORCE_KERNEL;
#endif
#if L8_X86
    if (__builtin_cpu_supports("avx512f")) return K_AVX512;
    if (__builtin_cpu_supports("avx2")) return K_AVX2;
#endif
#if L8_ARM
    return K_NEON; /* Advanced SIMD is part of every aarch64 core */
#endif
    return K_C;
}

const char *l8_probe_read_kernel(void) {
    static const char *names[] = {"c", "avx2", "avx512", "neon", "neon", "neon", "avx2", "avx512"};
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

#if L8_ARM
/* 4 x 16-byte loads per step with 64-bit adds: what LDP/LD1 can stream (n: multiple of 256). */
static uint64_t sum_neon(const unsigned char *p, size_t n) {
    uint64x2_t a0 = vdupq_n_u64(0), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 64) {
        a0 = vaddq_u64(a0, vreinterpretq_u64_u8(vld1q_u8(p + i)));
        a1 = vaddq_u64(a1, vreinterpretq_u64_u8(vld1q_u8(p + i + 16)));
        a2 = vaddq_u64(a2, vreinterpretq_u64_u8(vld1q_u8(p + i + 32)));
        a3 = vaddq_u64(a3, vreinterpretq_u64_u8(vld1q_u8(p + i + 48)));
    }
    uint64x2_t s = vaddq_u64(vaddq_u64(a0, a1), vaddq_u64(a2, a3));
    return vgetq_lane_u64(s, 0) + vgetq_lane_u64(s, 1);
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
#elif L8_ARM
    s = j->k == K_NEON ? sum_neon(p, j->slice) : sum_c(p, j->slice);
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

/* The dot-product instruction of the kernel level in use (LLM8_ISA may force a lower one), so
 * that the percentages `llm8 bench` prints are of the roof of the code that ran. */
static kernel int8_kernel(void) {
#ifdef L8_PROBE_FORCE_KERNEL /* to test the fallbacks on a machine that has better */
    return (kernel)L8_PROBE_FORCE_KERNEL;
#endif
    switch (l8_kernels_get()->isa) {
#if L8_X86
    case L8_ISA_AMX: /* its vector peak; l8_probe_amx_peak measures the tiles */
    case L8_ISA_AVX512: return K_AVX512;
    case L8_ISA_AVXVNNI: return K_AVXVNNI;
    case L8_ISA_AVX2: return K_AVX2;
#endif
#if L8_ARM
    case L8_ISA_I8MM: return K_I8MM;
    case L8_ISA_DOTPROD: return K_DOTPROD;
    case L8_ISA_NEON: return K_NEON;
#endif
    default: return K_C;
    }
}

const char *l8_probe_int8_kernel(void) {
    static const char *names[] = {"c", "avx2", "avx512vnni", "neon", "dotprod", "i8mm", "avxvnni", "amx"};
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
        __asm__ volatile("" : "+x"(x));                                                                         \
        c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b), one));                            \
    } while (0)
    for (uint64_t i = 0; i < iters; i++) {
        __asm__ volatile("" : "+x"(a), "+x"(b)); /* volatile: a plain asm may be merged or hoisted */
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

#if L8_ARM
/* 12 chains of 16-byte registers: SDOT and SMMLA have latencies of 2-4 cycles and up to 2-4
 * issue per cycle on current cores. The operands are hidden from the compiler per round. */
__attribute__((target("arch=armv8.2-a+dotprod"))) static uint64_t int8_sdot(uint64_t iters, uint64_t *sink) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    int32x4_t c[12];
    for (int k = 0; k < 12; k++) c[k] = vdupq_n_s32(0);
    for (uint64_t i = 0; i < iters; i++) {
        __asm__("" : "+w"(a), "+w"(b));
        for (int k = 0; k < 12; k++) c[k] = vdotq_s32(c[k], a, b);
    }
    int32x4_t s = c[0];
    for (int k = 1; k < 12; k++) s = vaddq_s32(s, c[k]); /* wraps: the value is never used */
    *sink += (uint64_t)(uint32_t)vgetq_lane_s32(s, 0);
    return iters * 12 * 16;
}

__attribute__((target("arch=armv8.2-a+dotprod+i8mm"))) static uint64_t int8_smmla(uint64_t iters, uint64_t *sink) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    int32x4_t c[12];
    for (int k = 0; k < 12; k++) c[k] = vdupq_n_s32(0);
    for (uint64_t i = 0; i < iters; i++) {
        __asm__("" : "+w"(a), "+w"(b));
        for (int k = 0; k < 12; k++) c[k] = vmmlaq_s32(c[k], a, b);
    }
    int32x4_t s = c[0];
    for (int k = 1; k < 12; k++) s = vaddq_s32(s, c[k]);
    *sink += (uint64_t)(uint32_t)vgetq_lane_s32(s, 0);
    return iters * 12 * 32;
}

/* ARMv8.0: SMULL + SADALP, the neon level's widening pair (two instructions per 8 products). */
static uint64_t int8_smull(uint64_t iters, uint64_t *sink) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    int32x4_t c[8];
    for (int k = 0; k < 8; k++) c[k] = vdupq_n_s32(0);
    for (uint64_t i = 0; i < iters; i++) {
        __asm__ volatile("" : "+w"(a), "+w"(b)); /* volatile: a plain asm may be merged or hoisted */
#pragma GCC unroll 4 /* the accumulators must live in registers, not in the array */
        for (int k = 0; k < 8; k += 2) { /* a copy per chain pair, hidden, so the products are not merged */
            int8x16_t x = a;
            __asm__ volatile("" : "+w"(x));
            c[k] = vpadalq_s16(c[k], vmull_s8(vget_low_s8(x), vget_low_s8(b)));
            c[k + 1] = vpadalq_s16(c[k + 1], vmull_high_s8(x, b));
        }
    }
    int32x4_t s = c[0];
    for (int k = 1; k < 8; k++) s = vaddq_s32(s, c[k]);
    *sink += (uint64_t)(uint32_t)vgetq_lane_s32(s, 0);
    return iters * 4 * 16;
}
#endif

#if L8_X86
/* AMX-INT8: four independent tdpbssd (C0..C3 += A4|A5 . B6|B7) on full 16 x 64-byte tiles, the
 * pattern of the amx level's matmuls without their loads; 16 x 16 x 64 multiply-adds each.
 * Written as assembly like the kernels (no -mamx flags). */
typedef struct amx_probe_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_probe_cfg;

/* AVX-VNNI: vpdpbusd on ymm (VEX), as assembly like the kernels (x86_avx2.c). */
__attribute__((target("avx2"))) static uint64_t int8_avxvnni(uint64_t iters, uint64_t *sink) {
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
    /* named accumulators: asm operands that are array elements stay in memory */
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
            c9 = c0, c10 = c0, c11 = c0;
#define L8_DP(c) __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(c) : "x"(a), "x"(b))
    for (uint64_t i = 0; i < iters; i++) {
        __asm__("" : "+x"(a), "+x"(b));
        L8_DP(c0); L8_DP(c1); L8_DP(c2); L8_DP(c3); L8_DP(c4); L8_DP(c5);
        L8_DP(c6); L8_DP(c7); L8_DP(c8); L8_DP(c9); L8_DP(c10); L8_DP(c11);
    }
#undef L8_DP
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    t = _mm256_add_epi32(t, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
    *sink += (uint64_t)(uint32_t)_mm256_extract_epi32(t, 0); /* wraps: the value is never used */
    return iters * 12 * 32;
}

static uint64_t int8_amx(uint64_t iters, uint64_t *sink) {
    amx_probe_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) c.colsb[i] = 64, c.rows[i] = 16;
    int8_t src[16 * 64] __attribute__((aligned(64)));
    int32_t out[16 * 16] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 64; i++) src[i] = (int8_t)(i * 7);
    const int64_t s64 = 64;
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
    __asm__ volatile("tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3\n\t"
                     "tileloadd (%[p],%[s],1), %%tmm4\n\ttileloadd (%[p],%[s],1), %%tmm5\n\t"
                     "tileloadd (%[p],%[s],1), %%tmm6\n\ttileloadd (%[p],%[s],1), %%tmm7" ::[p] "r"(src),
                     [s] "r"(s64)
                     : "memory");
    for (uint64_t i = 0; i < iters; i++)
        __asm__ volatile("tdpbssd %%tmm6, %%tmm4, %%tmm0\n\ttdpbssd %%tmm7, %%tmm4, %%tmm1\n\t"
                         "tdpbssd %%tmm6, %%tmm5, %%tmm2\n\ttdpbssd %%tmm7, %%tmm5, %%tmm3" ::
                             : "memory");
    __asm__ volatile("tilestored %%tmm0, (%[p],%[s],1)\n\ttilerelease" ::[p] "r"(out), [s] "r"(s64) : "memory");
    *sink += (uint64_t)(uint32_t)out[0];
    return iters * 4 * 16 * 16 * 64;
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
    if (k == K_AVXVNNI) return int8_avxvnni(iters, sink);
    if (k == K_AMX) return int8_amx(iters, sink);
    if (k == K_AVX2) return int8_avx2(iters, sink);
#endif
#if L8_ARM
    if (k == K_I8MM) return int8_smmla(iters, sink);
    if (k == K_DOTPROD) return int8_sdot(iters, sink);
    if (k == K_NEON) return int8_smull(iters, sink);
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

static double peak_of(kernel k, l8_pool *pool, double seconds) {
    if (seconds <= 0) seconds = 0.2;
    int nth = pool ? l8_pool_size(pool) : 1;
    if (nth > MAX_THREADS) return 0;
    int8_job *j = calloc(1, sizeof *j);
    if (!j) return 0;
    j->k = k;
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

double l8_probe_int8_peak(l8_pool *pool, double seconds) { return peak_of(int8_kernel(), pool, seconds); }


double l8_probe_amx_peak(l8_pool *pool, double seconds) {
    /* no AMX-INT8, or the OS did not grant its state */
    return l8_kernels_for(L8_ISA_AMX) ? peak_of(K_AMX, pool, seconds) : 0;
}

/* ---------------------------------------------------------------- CPU topology */

void l8_cpumask_set(l8_cpumask *m, int cpu) {
    if (cpu >= 0 && cpu < L8_MAX_CPUS) m->w[cpu / 64] |= (uint64_t)1 << (cpu % 64);
}

bool l8_cpumask_has(const l8_cpumask *m, int cpu) {
    return cpu >= 0 && cpu < L8_MAX_CPUS && (m->w[cpu / 64] >> (cpu % 64) & 1);
}

int l8_cpumask_count(const l8_cpumask *m) {
    int n = 0;
    for (int i = 0; i < L8_MAX_CPUS / 64; i++) n += __builtin_popcountll(m->w[i]);
    return n;
}

static void mask_and(l8_cpumask *out, const l8_cpumask *a, const l8_cpumask *b) {
    for (int i = 0; i < L8_MAX_CPUS / 64; i++) out->w[i] = a->w[i] & b->w[i];
}

/* A list "0-3,6,8-9" (the sysfs and taskset -c syntax); trailing whitespace allowed. */
static bool parse_list(const char *s, l8_cpumask *m) {
    memset(m, 0, sizeof *m);
    const char *p = s;
    while (*p && !isspace((unsigned char)*p)) {
        if (!isdigit((unsigned char)*p)) return false;
        char *end;
        long a = strtol(p, &end, 10), b = a;
        p = end;
        if (*p == '-') {
            if (!isdigit((unsigned char)p[1])) return false;
            b = strtol(p + 1, &end, 10);
            p = end;
        }
        if (a < 0 || b < a || b >= L8_MAX_CPUS) return false;
        for (long c = a; c <= b; c++) l8_cpumask_set(m, (int)c);
        if (*p == ',') p++;
        else if (*p && !isspace((unsigned char)*p)) return false;
    }
    while (isspace((unsigned char)*p)) p++;
    return *p == 0;
}

bool l8_cpumask_parse(const char *s, l8_cpumask *out) {
    memset(out, 0, sizeof *out);
    if (!s) return false;
    while (isspace((unsigned char)*s)) s++;
    bool ok;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { /* hex digits from the last: bit 0 = CPU 0 */
        const char *h = s + 2, *e = h;
        while (isxdigit((unsigned char)*e)) e++;
        ok = e > h && *e == 0;
        for (int bit = 0; ok && e > h; bit += 4) {
            char c = *--e;
            int v = isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
            if (v && bit >= L8_MAX_CPUS) ok = false;
            for (int k = 0; ok && k < 4; k++)
                if (v >> k & 1) l8_cpumask_set(out, bit + k);
        }
    } else {
        ok = parse_list(s, out);
    }
    if (!ok || l8_cpumask_count(out) == 0) {
        memset(out, 0, sizeof *out);
        return false;
    }
    return true;
}

char *l8_cpumask_format(const l8_cpumask *m, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (int c = 0; c < L8_MAX_CPUS; c++) {
        if (!l8_cpumask_has(m, c)) continue;
        int e = c;
        while (e + 1 < L8_MAX_CPUS && l8_cpumask_has(m, e + 1)) e++;
        int w = e > c ? snprintf(buf + len, cap - len, "%s%d-%d", len ? "," : "", c, e)
                      : snprintf(buf + len, cap - len, "%s%d", len ? "," : "", c);
        if (w < 0 || (size_t)w >= cap - len) break; /* truncated: what fits */
        len += (size_t)w;
        c = e;
    }
    if (cap && len == 0) snprintf(buf, cap, "none");
    return buf;
}

/* The first line of root/rel, or false. */
static bool read_line(const char *root, const char *rel, char *buf, size_t cap) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok;
}

static bool read_cpu_long(const char *root, int cpu, const char *what, long *out) {
    char rel[128], buf[64];
    snprintf(rel, sizeof rel, "devices/system/cpu/cpu%d/%s", cpu, what);
    if (!read_line(root, rel, buf, sizeof buf)) return false;
    char *end;
    long v = strtol(buf, &end, 10);
    if (end == buf || v <= 0) return false;
    *out = v;
    return true;
}

void l8_cpu_topology_read(const char *sysfs_root, l8_cpu_topology *t) {
    memset(t, 0, sizeof *t);
    const char *root = sysfs_root && *sysfs_root ? sysfs_root : "/sys";
    char buf[4096];
    if (!(read_line(root, "devices/system/cpu/online", buf, sizeof buf) && parse_list(buf, &t->online) &&
          l8_cpumask_count(&t->online) > 0) &&
        !(read_line(root, "devices/system/cpu/present", buf, sizeof buf) && parse_list(buf, &t->online) &&
          l8_cpumask_count(&t->online) > 0)) {
        memset(&t->online, 0, sizeof t->online);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long c = 0; c < (n > 0 ? n : 1) && c < L8_MAX_CPUS; c++) l8_cpumask_set(&t->online, (int)c);
    }
    t->n_cpus = l8_cpumask_count(&t->online);

    /* capacity: every online CPU must have the same kind of figure, or none is used */
    long *c = calloc(L8_MAX_CPUS, sizeof *c); /* 8 KB: off the stack of a library call */
    const char *kinds[] = {"cpu_capacity", "cpufreq/cpuinfo_max_freq"};
    t->source = "none";
    for (int k = 0; c && k < 2; k++) {
        bool all = true;
        for (int cpu = 0; cpu < L8_MAX_CPUS && all; cpu++)
            if (l8_cpumask_has(&t->online, cpu)) all = read_cpu_long(root, cpu, kinds[k], &c[cpu]);
        if (all) {
            t->source = k == 0 ? "cpu_capacity" : "cpuinfo_max_freq";
            break;
        }
    }
    for (int cpu = 0; cpu < L8_MAX_CPUS; cpu++) {
        if (!l8_cpumask_has(&t->online, cpu)) continue;
        long v = c && strcmp(t->source, "none") ? c[cpu] : 1;
        if (v > t->cap_max) t->cap_max = v;
        if (!t->cap_min || v < t->cap_min) t->cap_min = v;
        /* the core: the first CPU of its thread_siblings_list (sorted), itself when unknown */
        char rel[128];
        snprintf(rel, sizeof rel, "devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
        long first = cpu;
        if (read_line(root, rel, buf, sizeof buf) && isdigit((unsigned char)buf[0])) first = strtol(buf, NULL, 10);
        t->core[cpu] = (int16_t)(first >= 0 && first < L8_MAX_CPUS ? first : cpu);
    }
    for (int cpu = 0; cpu < L8_MAX_CPUS; cpu++) {
        if (!l8_cpumask_has(&t->online, cpu)) continue;
        long v = c && strcmp(t->source, "none") ? c[cpu] : 1;
        if (v * 5 >= t->cap_max * 4) l8_cpumask_set(&t->big, cpu);
    }
    t->hetero = t->cap_min * 5 < t->cap_max * 4;
    free(c);
}

static l8_cpu_topology g_topo;
static pthread_once_t g_topo_once = PTHREAD_ONCE_INIT;

static void topo_init(void) { l8_cpu_topology_read("/sys", &g_topo); }

const l8_cpu_topology *l8_cpu_topology_get(void) {
    pthread_once(&g_topo_once, topo_init);
    return &g_topo;
}

int l8_cpu_topology_cores(const l8_cpu_topology *t, const l8_cpumask *m) {
    /* a core counts once, at its first CPU found in m */
    l8_cpumask seen;
    memset(&seen, 0, sizeof seen);
    int n = 0;
    for (int cpu = 0; cpu < L8_MAX_CPUS; cpu++) {
        if (!l8_cpumask_has(m, cpu)) continue;
        int core = l8_cpumask_has(&t->online, cpu) ? t->core[cpu] : cpu;
        if (!l8_cpumask_has(&seen, core)) {
            l8_cpumask_set(&seen, core);
            n++;
        }
    }
    return n;
}

void l8_cpu_plan_make(const l8_cpu_topology *t, const l8_cpumask *allowed, const char *mask_env, int n_threads,
                      l8_cpu_plan *p) {
    memset(p, 0, sizeof *p);
    l8_cpumask ok;
    mask_and(&ok, &t->online, allowed);
    if (l8_cpumask_count(&ok) == 0) ok = t->online; /* an affinity outside the online set: ignore it */
    char list[96], note[112] = "";
    bool decided = false, from_mask = false;
    if (mask_env && *mask_env) {
        l8_cpumask m, use;
        if (!l8_cpumask_parse(mask_env, &m)) {
            snprintf(note, sizeof note, "; LLM8_CPU_MASK=%.24s not understood (0xHEX or a list like 4-7), ignored",
                     mask_env);
        } else {
            mask_and(&use, &m, &ok);
            if (l8_cpumask_count(&use) == 0) {
                snprintf(note, sizeof note, "; LLM8_CPU_MASK=%.24s names no CPU this process may use, ignored",
                         mask_env);
            } else {
                p->cpus = use;
                p->n_default = l8_cpumask_count(&use);
                p->pin = true;
                decided = from_mask = true;
                snprintf(p->why, sizeof p->why, "LLM8_CPU_MASK=%.24s: CPUs %s", mask_env,
                         l8_cpumask_format(&use, list, sizeof list));
            }
        }
    }
    if (!decided && t->hetero) {
        l8_cpumask b;
        mask_and(&b, &t->big, &ok);
        if (l8_cpumask_count(&b) > 0) {
            p->cpus = b;
            p->n_default = l8_cpu_topology_cores(t, &b);
            p->pin = true;
            decided = true;
            snprintf(p->why, sizeof p->why, "big cores %s (%s %ld, the others down to %ld)",
                     l8_cpumask_format(&b, list, sizeof list), t->source, t->cap_max, t->cap_min);
        }
    }
    if (!decided) {
        p->cpus = ok;
        p->n_default = l8_cpu_topology_cores(t, &ok);
        snprintf(p->why, sizeof p->why, "%s CPUs %s", t->hetero ? "allowed" : "all alike,",
                 l8_cpumask_format(&ok, list, sizeof list));
    }
    if (p->n_default < 1) p->n_default = 1;
    p->n_threads = n_threads > 0 ? n_threads : p->n_default;
    /* more threads than big CPUs: pinning would stack them; the scheduler spreads them instead */
    if (p->pin && !from_mask && p->n_threads > l8_cpumask_count(&p->cpus)) p->pin = false;
    size_t len = strlen(p->why);
    snprintf(p->why + len, sizeof p->why - len, "; %d thread%s%s%s", p->n_threads, p->n_threads == 1 ? "" : "s",
             p->pin ? ", pinned" : "", note);
}

/* The CPUs the process may use (taskset, cgroups), read once: the first pool's placement moves
 * the calling thread, whose own mask must not be mistaken for the process's afterwards. */
static l8_cpumask g_allowed;
static pthread_once_t g_allowed_once = PTHREAD_ONCE_INIT;

static void allowed_init(void) {
    const l8_cpu_topology *t = l8_cpu_topology_get();
    g_allowed = t->online;
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        memset(&g_allowed, 0, sizeof g_allowed);
        for (int cpu = 0; cpu < CPU_SETSIZE && cpu < L8_MAX_CPUS; cpu++)
            if (CPU_ISSET(cpu, &set)) l8_cpumask_set(&g_allowed, cpu);
    }
#endif
}

const l8_cpumask *l8_cpu_allowed(void) {
    pthread_once(&g_allowed_once, allowed_init);
    return &g_allowed;
}

void l8_cpu_plan_get(int n_threads, l8_cpu_plan *p) {
    pthread_once(&g_allowed_once, allowed_init);
    l8_cpu_plan_make(l8_cpu_topology_get(), &g_allowed, getenv("LLM8_CPU_MASK"), n_threads, p);
}
