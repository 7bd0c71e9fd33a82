/* Quantized matmul speed of the kernel levels, one thread, at Llama-3.2-3B shapes.
 * Usage: bench_kernels [scalar|avx2|avxvnni|avx512|amx ...]   (default: every SIMD level of this machine)
 *
 * GEMV (one token, decode) is reported as GB/s of weight bytes streamed (data + scales), twice:
 * "hot" repeats one matrix (it stays in the last-level cache when it fits) and "cold" cycles
 * through copies totalling >= 640 MB, so weights come from DRAM as in a real decode step.
 * GEMM (M = 64, 512 tokens, prefill) is reported as int8 GOPS (2 ops per multiply-add).
 * Each figure is the median of 5 runs after one warm-up run. The scalar reference is timed
 * on a small shape for comparison. Weights and activations are random bytes: the kernels' speed
 * does not depend on the values. Each level also times its attention kernel and Walsh-Hadamard
 * transform (bench_attention). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

enum { REPEATS = 5 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void *alloc64(size_t n) {
    void *p = aligned_alloc(64, (n + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

typedef struct wmat {
    l8_tensor t;
    size_t bytes; /* data + scales */
} wmat;

static wmat make_w(l8_dtype dt, int32_t group, int64_t rows, int64_t cols) {
    size_t db = l8_q_data_bytes(dt, rows, cols), sb = l8_q_scale_bytes(dt, rows, cols, group);
    uint8_t *d = alloc64(db), *s = alloc64(sb);
    for (size_t i = 0; i < db; i++) d[i] = dt == L8_DTYPE_Q8 ? (uint8_t)(int8_t)((int)(rnd() % 255) - 127) : (uint8_t)rnd();
    if (dt == L8_DTYPE_Q8)
        for (size_t i = 0; i < sb / 4; i++) ((float *)s)[i] = 1e-3f * (float)(1 + rnd() % 100);
    else
        for (size_t i = 0; i < sb / 2; i++) ((uint16_t *)s)[i] = (uint16_t)(0x1000 + rnd() % 0x800);
    wmat m = {l8_q_tensor(dt, group, rows, cols, d, s), db + sb};
    return m;
}

static void free_w(wmat *m) {
    free((void *)m->t.data);
    free((void *)m->t.scales);
}

typedef struct acts {
    int8_t *q;
    float *s;
} acts;

static acts make_x(int64_t n, int64_t kp) {
    acts a = {alloc64((size_t)(n * kp)), alloc64(sizeof(float) * (size_t)n)};
    for (int64_t i = 0; i < n * kp; i++) a.q[i] = (int8_t)((int)(rnd() % 255) - 127);
    for (int64_t i = 0; i < n; i++) a.s[i] = 0.01f;
    return a;
}

typedef void (*mm_fn)(float *, const int8_t *, const float *, int64_t, const l8_tensor *, int64_t, int64_t);

static mm_fn pick(const l8_kernels *k, const l8_tensor *t) {
    return t->dtype == L8_DTYPE_Q8 ? k->matmul_q8 : k->matmul_q4;
}

/* Median seconds per call of mm over n tokens, cycling through the nw matrices. */
static double time_mm(mm_fn mm, wmat *w, int nw, const acts *x, int64_t n, float *out) {
    double t[REPEATS];
    for (int r = -1; r < REPEATS; r++) {
        double t0 = now_s();
        for (int i = 0; i < nw; i++) mm(out, x->q, x->s, n, &w[i].t, 0, w[i].t.shape[0]);
        if (r >= 0) t[r] = (now_s() - t0) / nw;
    }
    qsort(t, REPEATS, sizeof *t, cmp_double);
    return t[REPEATS / 2];
}

static const char *type_name(const l8_tensor *t) {
    if (t->dtype == L8_DTYPE_Q4) return "q4_g32";
    return t->group >= t->shape[1] ? "q8_pc" : "q8_g128";
}

static void bench_level(const l8_kernels *k, int big_gemm) {
    static const int64_t shapes[][2] = {{3072, 3072}, {1024, 3072}, {8192, 3072}, {3072, 8192}};
    printf("\n== %s (one thread)\n", k->name);
    printf("%-8s %-11s %12s %12s %12s %12s\n", "type", "rows x cols", "gemv hot", "gemv cold", "gemm M=64",
           big_gemm ? "gemm M=512" : "");
    for (int ty = 0; ty < 3; ty++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int64_t rows = shapes[si][0], cols = shapes[si][1];
            l8_dtype dt = ty == 2 ? L8_DTYPE_Q4 : L8_DTYPE_Q8;
            int32_t group = ty == 0 ? (int32_t)cols : ty == 1 ? 128 : 32;
            int64_t kp = l8_q_cols_padded(dt, cols);
            wmat w0 = make_w(dt, group, rows, cols);
            int nw = (int)((640u << 20) / w0.bytes) + 1;
            wmat *ws = malloc(sizeof(wmat) * (size_t)nw);
            ws[0] = w0;
            for (int i = 1; i < nw; i++) ws[i] = make_w(dt, group, rows, cols);
            acts x = make_x(512, kp);
            float *out = alloc64(sizeof(float) * (size_t)(512 * rows));
            mm_fn mm = pick(k, &w0.t);

            double hot = time_mm(mm, ws, 1, &x, 1, out);
            double cold = time_mm(mm, ws, nw, &x, 1, out);
            double g64 = time_mm(mm, ws, 1, &x, 64, out);
            double ops = 2.0 * (double)rows * (double)cols;
            printf("%-8s %5lldx%-5lld %7.1f GB/s %7.1f GB/s %6.1f GOPS", type_name(&w0.t), (long long)rows,
                   (long long)cols, (double)w0.bytes / hot * 1e-9, (double)w0.bytes / cold * 1e-9, 64 * ops / g64 * 1e-9);
            if (big_gemm) printf(" %6.1f GOPS", 512 * ops / time_mm(mm, ws, 1, &x, 512, out) * 1e-9);
            printf("\n");
            fflush(stdout);
            for (int i = 0; i < nw; i++) free_w(&ws[i]);
            free(ws), free(x.q), free(x.s), free(out);
        }
}

/* Attention (Llama-3.2-3B heads: 8 KV heads, 3 query heads each, head_dim 128) over a 512-token
 * prompt in tasks of 16 tokens, as the forward pass runs it; and the 8192-float Walsh-Hadamard
 * transform of the down projection's input. GFLOPS counts 2 per multiply-add of q.K and
 * softmax.V (the causal half). */
static void bench_attention(const l8_kernels *k) {
    enum { N = 512, HD = 128, GROUP = 3, BLOCK = 16, KVD = 8 * HD };
    if (!k->attn_f16) return;
    float *q = alloc64(sizeof(float) * N * GROUP * HD), *o = alloc64(sizeof(float) * N * GROUP * HD);
    float *s = alloc64(sizeof(float) * BLOCK * GROUP * N);
    uint16_t *kv = alloc64(sizeof(uint16_t) * N * KVD * 2);
    for (int i = 0; i < N * GROUP * HD; i++) q[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    for (int i = 0; i < N * KVD * 2; i++) kv[i] = (uint16_t)(0x3000 + rnd() % 0x800) ^ (uint16_t)((rnd() & 1) << 15);
    double t[REPEATS];
    for (int r = -1; r < REPEATS; r++) {
        double t0 = now_s();
        for (int b = 0; b < N / BLOCK; b++)
            k->attn_f16(o + b * BLOCK * GROUP * HD, q + b * BLOCK * GROUP * HD, GROUP * HD, BLOCK, GROUP, HD, b * BLOCK,
                        kv, kv + N * KVD, KVD, 0.088f, s, N);
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, REPEATS, sizeof *t, cmp_double);
    double flops = 2.0 * 2 * GROUP * HD * (double)N * (N + 1) / 2;
    float *x = alloc64(sizeof(float) * 8192);
    for (int i = 0; i < 8192; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    double tf[REPEATS];
    for (int r = -1; r < REPEATS; r++) {
        double t0 = now_s();
        for (int i = 0; i < 1000; i++) k->fwht(x, 8192, 1, 0.011048543f);
        if (r >= 0) tf[r] = (now_s() - t0) / 1000;
    }
    qsort(tf, REPEATS, sizeof *tf, cmp_double);
    printf("attention (one KV head, 512 tokens): %.2f ms, %.1f GFLOPS; fwht 8192: %.2f us\n", t[REPEATS / 2] * 1e3,
           flops / t[REPEATS / 2] * 1e-9, tf[REPEATS / 2] * 1e6);
    free(q), free(o), free(s), free(kv), free(x);
}

static void bench_scalar(void) {
    const l8_kernels *k = l8_kernels_for(L8_ISA_SCALAR);
    printf("\n== scalar reference (one thread, 1024 x 1024)\n");
    for (int ty = 0; ty < 3; ty += 1) {
        l8_dtype dt = ty == 2 ? L8_DTYPE_Q4 : L8_DTYPE_Q8;
        int32_t group = ty == 0 ? 1024 : ty == 1 ? 128 : 32;
        wmat w = make_w(dt, group, 1024, 1024);
        acts x = make_x(8, 1024);
        float *out = alloc64(sizeof(float) * 8 * 1024);
        double g1 = time_mm(pick(k, &w.t), &w, 1, &x, 1, out), g8 = time_mm(pick(k, &w.t), &w, 1, &x, 8, out);
        double ops = 2.0 * 1024 * 1024;
        printf("%-8s gemv %6.2f GB/s  gemm M=8 %6.2f GOPS\n", type_name(&w.t), (double)w.bytes / g1 * 1e-9,
               8 * ops / g8 * 1e-9);
        free_w(&w), free(x.q), free(x.s), free(out);
    }
}

int main(int argc, char **argv) {
    printf("%s\n", l8_kernels_describe());
    l8_isa best = l8_kernels_best_isa();
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            const l8_kernels *k = NULL;
            for (int j = 0; j < L8_ISA_COUNT; j++)
                if (strcmp(argv[i], l8_isa_name((l8_isa)j)) == 0) k = l8_kernels_for((l8_isa)j);
            if (!k) {
                fprintf(stderr, "level %s unknown or not available here\n", argv[i]);
                return 1;
            }
            if (k->isa == L8_ISA_SCALAR) bench_scalar();
            else bench_level(k, 1);
            bench_attention(k);
        }
        return 0;
    }
    for (int j = L8_ISA_COUNT - 1; j > 0; j--)
        if (l8_kernels_for((l8_isa)j)) {
            bench_level(l8_kernels_for((l8_isa)j), (l8_isa)j == best);
            bench_attention(l8_kernels_for((l8_isa)j));
        }
    bench_scalar();
    return 0;
}
