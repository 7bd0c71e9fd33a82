/* Tests of the kernel table (src/kernels) at every level this machine runs, against the scalar
 * reference of src/quant and plain C:
 *  - activation quantization: byte- and bit-identical to l8_q_quantize_act_ref (ties, NaN, Inf,
 *    zero rows, odd lengths);
 *  - Q8 / Q4 matmuls on odd shapes, group sizes and token counts: float outputs bit-identical to
 *    l8_q_matmul_ref, int32 sums exact (scales 1, integer outputs < 2^24, against a naive sum),
 *    row ranges composing to the full result without writing outside their range;
 *  - float helpers (rmsnorm, swiglu, softmax, exp, dots, axpys): bit-identical to the scalar
 *    level (the canonical order of kernels.h) on every length 1..1000 and a few large ones, with
 *    under/overflowing, special (+-0, +-inf, NaN) and tied inputs, aliasing and misaligned
 *    pointers; the scalar level itself against double precision; exp against expf (< 2e-7);
 *    the f16 conversions on all 2^16 halves and on random floats.
 * Prints one summary line per level. */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                              \
        }                                                                         \
    } while (0)

static uint64_t rng_state = 0x853C49E6748FEA9Bull;

static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_unit(void) { return (float)(rng_u64() >> 40) / (float)(1 << 24); } /* [0, 1) */

static float rng_gauss(void) {
    float u = rng_unit() + 1e-7f, v = rng_unit();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct level_stats {
    long quant_cases, mm_cases, mm_int_cases, split_cases, float_checks, att_cases, fwht_cases;
    double max_exp_rel, max_swiglu_rel, max_rms_rel, max_softmax_rel, max_dot_rel; /* scalar vs double */
} level_stats;

static const l8_kernels *levels[L8_ISA_COUNT];
static level_stats stats[L8_ISA_COUNT];
static int n_levels;
/* LLM8_TEST_QUICK=1 (scripts/test_arm.sh runs this under qemu-user, ~10x slower): fewer shapes
 * and values; every kernel path (token counts, tails, groupings) is still taken. */
static int quick;

/* ---------------------------------------------------------------- activation quantization */

static void test_quantize_act(void) {
    static const int64_t ks[] = {1, 3, 4, 7, 8, 28, 31, 32, 33, 60, 64, 100, 172, 256, 300, 1000};
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        int64_t k = ks[ki];
        for (int n = 1; n <= 9; n += 4) {
            for (int kind = 0; kind < 4; kind++) {
                int64_t kp = l8_q_cols_padded(L8_DTYPE_Q4, k) + 4 * (kind & 1); /* also kp > k + 7 */
                float *x = malloc(sizeof(float) * (size_t)(n * k));
                for (int64_t i = 0; i < n * k; i++) x[i] = rng_gauss() * (kind == 3 ? 1e-30f : 3.0f);
                if (kind == 2) { /* ties: amax 127 makes s = 1, so x/s hits .5 exactly */
                    for (int64_t i = 0; i < n * k; i++) x[i] = (float)((int)(rng_u64() % 254) - 127) + 0.5f;
                    for (int t = 0; t < n; t++) x[t * k] = 127.0f;
                    if (k > 4) x[1] = NAN, x[2] = INFINITY, x[3] = -INFINITY;
                }
                if (n > 1) memset(x + k, 0, sizeof(float) * (size_t)k); /* an all-zero row */
                int8_t *qr = malloc((size_t)(n * kp)), *qk = malloc((size_t)(n * kp));
                float *sr = malloc(sizeof(float) * (size_t)n), *sk = malloc(sizeof(float) * (size_t)n);
                l8_q_quantize_act_ref(x, n, k, kp, qr, sr);
                for (int li = 0; li < n_levels; li++) {
                    memset(qk, 0x5A, (size_t)(n * kp));
                    levels[li]->quantize_act(x, n, k, kp, qk, sk);
                    CHECK(memcmp(qr, qk, (size_t)(n * kp)) == 0);
                    CHECK(memcmp(sr, sk, sizeof(float) * (size_t)n) == 0);
                    stats[li].quant_cases++;
                }
                free(x), free(qr), free(qk), free(sr), free(sk);
            }
        }
    }
}

/* ---------------------------------------------------------------- quantized matmuls */

typedef struct qmat {
    l8_tensor t;
    void *data, *scales;
    int32_t *wq; /* rows x cols integer weights, from l8_q_weight */
} qmat;

static qmat make_qmat(l8_dtype dt, int32_t group, int64_t rows, int64_t cols) {
    float *w = calloc((size_t)(rows * cols), sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        float mag = 0.1f + 10.0f * rng_unit();
        for (int64_t c = 0; c < cols; c++) {
            float v = rng_gauss() * mag;
            if (rng_u64() % 50 == 0) v *= 10.0f;
            w[r * cols + c] = v;
        }
    }
    qmat m;
    CHECK(l8_q_quantize_matrix(dt, group, w, rows, cols, &m.data, &m.scales) == LLM8_STATUS_OK);
    m.t = l8_q_tensor(dt, group, rows, cols, m.data, m.scales);
    m.wq = malloc(sizeof(int32_t) * (size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) m.wq[r * cols + c] = l8_q_weight(&m.t, r, c);
    free(w);
    return m;
}

static void free_qmat(qmat *m) { free(m->data), free(m->scales), free(m->wq); }

/* Same tensor with every scale 1 (pad rows too: the kernels never store pad rows anyway). */
static void *unit_scales(const qmat *m) {
    size_t bytes = l8_q_scale_bytes(m->t.dtype, m->t.shape[0], m->t.shape[1], m->t.group);
    void *s = malloc(bytes);
    if (m->t.dtype == L8_DTYPE_Q8)
        for (size_t i = 0; i < bytes / 4; i++) ((float *)s)[i] = 1.0f;
    else
        for (size_t i = 0; i < bytes / 2; i++) ((uint16_t *)s)[i] = 0x3C00;
    return s;
}

static void test_matmul_case(l8_dtype dt, int32_t group, int64_t rows, int64_t cols, const int *ms, int n_ms) {
    qmat m = make_qmat(dt, group, rows, cols);
    int64_t kp = l8_q_cols_padded(dt, cols);
    void *ones = unit_scales(&m);
    l8_tensor tu = l8_q_tensor(dt, group, rows, cols, m.data, ones);
    for (int mi = 0; mi < n_ms; mi++) {
        int n = ms[mi];
        float *x = malloc(sizeof(float) * (size_t)(n * cols));
        for (int64_t i = 0; i < n * cols; i++) x[i] = rng_gauss() * (1.0f + (i % 97 == 0 ? 20.0f : 0.0f));
        int8_t *xq = malloc((size_t)(n * kp));
        float *xs = malloc(sizeof(float) * (size_t)n), *xs1 = malloc(sizeof(float) * (size_t)n);
        l8_q_quantize_act_ref(x, n, cols, kp, xq, xs);
        for (int t = 0; t < n; t++) xs1[t] = 1.0f;
        size_t osz = sizeof(float) * (size_t)(n * rows);
        float *ref = malloc(osz), *got = malloc(osz), *iref = malloc(osz);
        l8_q_matmul_ref(ref, xq, xs, n, &m.t);
        bool int_case = mi % 3 == 0;
        if (int_case) /* naive int64 sums: exact in float since |sum| <= 127*127*1000 < 2^24 */
            for (int t = 0; t < n; t++)
                for (int64_t r = 0; r < rows; r++) {
                    int64_t s = 0;
                    for (int64_t c = 0; c < cols; c++) s += (int64_t)m.wq[r * cols + c] * xq[t * kp + c];
                    CHECK(llabs(s) < (1 << 24));
                    iref[t * rows + r] = (float)s;
                }
        for (int li = 0; li < n_levels; li++) {
            const l8_kernels *k = levels[li];
            void (*mm)(float *, const int8_t *, const float *, int64_t, const l8_tensor *, int64_t, int64_t) =
                dt == L8_DTYPE_Q8 ? k->matmul_q8 : k->matmul_q4;
            memset(got, 0x7F, osz);
            mm(got, xq, xs, n, &m.t, 0, rows);
            if (memcmp(ref, got, osz) != 0) {
                for (size_t i = 0; i < osz / 4; i++)
                    if (f2u(ref[i]) != f2u(got[i])) {
                        fprintf(stderr, "%s: %s g%d %lldx%lld n=%d: out[%zu] = %.9g, ref %.9g\n", k->name,
                                l8_dtype_name(dt), group, (long long)rows, (long long)cols, n, i, got[i], ref[i]);
                        break;
                    }
                CHECK(!"matmul differs from l8_q_matmul_ref");
            }
            stats[li].mm_cases++;
            if (int_case) {
                memset(got, 0x7F, osz);
                mm(got, xq, xs1, n, &tu, 0, rows);
                CHECK(memcmp(iref, got, osz) == 0);
                stats[li].mm_int_cases++;
            }
            if (rows > 16 && mi % 2 == 0) { /* thread split: [0,16a) [16a,16b) [16b,rows) */
                int64_t a = 1 + (int64_t)(rng_u64() % (uint64_t)((rows - 1) / 16)), b = a + 1;
                int64_t cuts[4] = {0, 16 * a, 16 * b < rows ? 16 * b : rows, rows};
                memset(got, 0x7F, osz);
                for (int c = 0; c < 3; c++) {
                    if (cuts[c] >= cuts[c + 1]) continue;
                    mm(got, xq, xs, n, &m.t, cuts[c], cuts[c + 1]);
                    for (int t = 0; t < n; t++) /* nothing at or beyond the range's end yet */
                        for (int64_t r = cuts[c + 1]; r < rows; r++) CHECK(f2u(got[t * rows + r]) == 0x7F7F7F7Fu);
                }
                CHECK(memcmp(ref, got, osz) == 0);
                stats[li].split_cases++;
            }
        }
        free(x), free(xq), free(xs), free(xs1), free(ref), free(got), free(iref);
    }
    free(ones);
    free_qmat(&m);
}

static void test_matmuls(void) {
    static const int64_t ns[] = {1, 15, 16, 17, 100, 257};
    static const int64_t ks[] = {4, 8, 28, 32, 60, 64, 100, 172, 256, 300, 1000};
    static const int ms_all[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 67};
    /* Q8: per channel (G = K), 32, 128, 512, 100 (rarely divides K), 30 (not a multiple of 4:
     * a group boundary inside a block, the scalar path); Q4: 32, 48 (does not divide 32-col
     * steps evenly), 20 (not a multiple of 8: scalar path). */
    static const int32_t g8[] = {0, 32, 128, 512, 100, 30}, g4[] = {32, 48, 20};
    int rot = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            int64_t rows = ns[ni], cols = ks[ki];
            if (quick && rows > 100) continue;
            int ms[11], n_ms = 0;
            if (rows * cols <= 20000) {
                memcpy(ms, ms_all, sizeof ms_all);
                n_ms = quick ? 8 : 11; /* quick: up to 9 tokens, two blocks and a rest at every level */
            } else { /* big shapes: 1, 67 and a rotating pair */
                ms[n_ms++] = 1;
                ms[n_ms++] = ms_all[1 + rot % 9];
                ms[n_ms++] = ms_all[1 + (rot + 4) % 9];
                if (!quick) ms[n_ms++] = 67;
                rot++;
            }
            for (size_t gi = 0; gi < sizeof g8 / sizeof *g8; gi++) {
                int32_t g = g8[gi] == 0 ? (int32_t)cols : g8[gi];
                if (g8[gi] != 0 && g >= cols) continue; /* same as per channel */
                test_matmul_case(L8_DTYPE_Q8, g, rows, cols, ms, n_ms);
            }
            if (cols % 8 != 0 && cols > 32) continue; /* Q4: Kp%8 shapes, plus the short rows */
            for (size_t gi = 0; gi < sizeof g4 / sizeof *g4; gi++) {
                if (gi > 0 && g4[gi] >= cols) continue;
                test_matmul_case(L8_DTYPE_Q4, g4[gi], rows, cols, ms, n_ms);
            }
        }
}

/* ---------------------------------------------------------------- float helpers */

static double rel(double got, double want, double scale) {
    double d = fabs(got - want);
    return scale > 0 ? d / scale : d;
}

static void note(double *max, double v) {
    if (v > *max) *max = v;
}

/* Bit-identical, except that any NaN equals any NaN (kernels.h leaves NaN payloads open). */
static bool same_bits(const float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (f2u(x[i]) != f2u(y[i]) && !(isnan(x[i]) && isnan(y[i]))) return false;
    return true;
}

static void report_diff(const char *what, const char *level, int64_t n, const float *want, const float *got,
                        int64_t len) {
    for (int64_t i = 0; i < len; i++)
        if (f2u(want[i]) != f2u(got[i]) && !(isnan(want[i]) && isnan(got[i]))) {
            fprintf(stderr, "%s %s n=%lld: [%lld] = %a, scalar %a\n", level, what, (long long)n, (long long)i,
                    got[i], want[i]);
            return;
        }
}

#define SAME(what, want, got, len)                                                          \
    do {                                                                                    \
        if (!same_bits(want, got, len)) {                                                   \
            report_diff(what, k->name, n, want, got, len);                                  \
            CHECK(!"float helper not bit-identical to the scalar level");                   \
        }                                                                                   \
    } while (0)

/* Inputs of one case. kind 0: gaussian; 1: magnitudes spread over 2^-70..2^60 (products under-
 * and overflow, lanes go to -0 or inf); 2: gaussian with +-0, +-inf, NaN and -inf runs sprinkled
 * in; 3: few distinct values (ties in the max, exact cancellations in the sums); 4: tiny
 * negatives (with b = 1e-30 every product rounds to -0: every lane of a dot is -0, so a short
 * last block that added +0 to the unused lanes instead of leaving them would give +0). */
static float gen(int kind) {
    switch (kind) {
    case 1: return rng_gauss() * ldexpf(1.0f, (int)(rng_u64() % 131) - 70);
    case 2: {
        uint64_t r = rng_u64() % 64;
        if (r == 0) return 0.0f;
        if (r == 1) return -0.0f;
        if (r == 2) return INFINITY;
        if (r == 3) return -INFINITY;
        if (r == 4) return NAN;
        return rng_gauss() * 8.0f;
    }
    case 3: return (float)((int)(rng_u64() % 5) - 2) * (rng_u64() % 2 ? 1.0f : -0.0f);
    case 4: return -1e-30f * (1.0f + rng_unit());
    default: return rng_gauss() * 4.0f;
    }
}

/* Every helper of every level against the scalar level, bit for bit, on one length. */
static void float_case(int64_t n, int kind) {
    const l8_kernels *s = levels[0];
    size_t fb = sizeof(float) * (size_t)(n + 1);
    int off = (int)(rng_u64() % 2); /* also misaligned starts */
    float *a0 = malloc(fb), *b0 = malloc(fb), *w0 = malloc(fb), *want = malloc(fb), *got0 = malloc(fb);
    float *want2 = malloc(fb), *got20 = malloc(fb);
    uint16_t *h0 = malloc(sizeof(uint16_t) * (size_t)(n + 1));
    float *a = a0 + off, *b = b0 + off, *w = w0 + off, *got = got0 + off, *got2 = got20 + off;
    uint16_t *h = h0 + off;
    for (int64_t i = 0; i < n; i++) {
        a[i] = gen(kind);
        b[i] = kind == 2 ? rng_gauss() : kind == 4 ? 1e-30f : gen(kind);
        w[i] = 0.5f + rng_unit();
        h[i] = l8_f32_to_f16(kind == 1 ? b[i] : rng_gauss());
    }
    size_t nb = sizeof(float) * (size_t)n;
    float ws, wh;
    float gs = kind == 0 ? 30.0f : 1.0f; /* swiglu gates: e^-g under- and overflows at the ends */
    for (int64_t i = 0; i < n; i++) want2[i] = a[i] * (i % 5 == 0 ? gs : 1.0f);

    s->rmsnorm(want, a, w, n, 1e-5f);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *k = levels[li];
        memcpy(got, a, nb); /* out aliasing x */
        k->rmsnorm(got, got, w, n, 1e-5f);
        SAME("rmsnorm", want, got, n);
        stats[li].float_checks += n;
    }
    s->swiglu(want, want2, b, n);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *k = levels[li];
        memcpy(got, want2, nb); /* out aliasing g */
        k->swiglu(got, got, b, n);
        SAME("swiglu", want, got, n);
        memcpy(got, b, nb); /* out aliasing u */
        k->swiglu(got, want2, got, n);
        SAME("swiglu", want, got, n);
        stats[li].float_checks += 2 * n;
    }
    memcpy(want, a, nb);
    s->softmax(want, n);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *k = levels[li];
        memcpy(got, a, nb);
        k->softmax(got, n);
        SAME("softmax", want, got, n);
        stats[li].float_checks += n;
    }
    s->exp(want, a, n);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *k = levels[li];
        memcpy(got, a, nb); /* y aliasing x */
        k->exp(got, got, n);
        SAME("exp", want, got, n);
        stats[li].float_checks += n;
    }
    ws = s->dot_f32(a, b, n);
    wh = s->dot_f16(a, h, n);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *k = levels[li];
        float gd = k->dot_f32(a, b, n), gh = k->dot_f16(a, h, n);
        SAME("dot_f32", &ws, &gd, 1);
        SAME("dot_f16", &wh, &gh, 1);
        stats[li].float_checks += 2;
    }
    float alpha = kind == 1 ? gen(1) : 0.37f;
    memcpy(want, b, nb), memcpy(want2, b, nb);
    s->axpy_f32(want, alpha, a, n);
    s->axpy_f16(want2, -1.7f, h, n);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *k = levels[li];
        memcpy(got, b, nb), memcpy(got2, b, nb);
        k->axpy_f32(got, alpha, a, n);
        k->axpy_f16(got2, -1.7f, h, n);
        SAME("axpy_f32", want, got, n);
        SAME("axpy_f16", want2, got2, n);
        stats[li].float_checks += 2 * n;
    }
    /* the scalar level itself against double precision (kind 0: no under/overflow), so that
     * the shared order stays accurate (lengths up to 4096: longer sums drift as a random walk) */
    if (kind == 0 && n <= 4096) {
        double d = 0, sab = 0, ss = 0, sah = 0, dh = 0;
        for (int64_t i = 0; i < n; i++) {
            d += (double)a[i] * b[i], sab += fabs((double)a[i] * b[i]), ss += (double)a[i] * a[i];
            double hv = l8_f16_to_f32(h[i]);
            dh += a[i] * hv, sah += fabs(a[i] * hv);
        }
        note(&stats[0].max_dot_rel, rel(ws, d, sab));
        note(&stats[0].max_dot_rel, rel(wh, dh, sah));
        s->rmsnorm(want, a, w, n, 1e-5f);
        double scale = 1.0 / sqrt(ss / (double)n + 1e-5);
        for (int64_t i = 0; i < n; i++) {
            double r = a[i] * scale * w[i];
            note(&stats[0].max_rms_rel, rel(want[i], r, fabs(r) + 1e-30));
        }
        memcpy(want, a, nb);
        s->softmax(want, n);
        float mx = -INFINITY; /* x - max rounded in float as the kernel does: not its error */
        double sum = 0;
        for (int64_t i = 0; i < n; i++) mx = a[i] > mx ? a[i] : mx;
        for (int64_t i = 0; i < n; i++) sum += exp((double)(a[i] - mx));
        for (int64_t i = 0; i < n; i++) {
            double r = exp((double)(a[i] - mx)) / sum;
            note(&stats[0].max_softmax_rel, rel(want[i], r, r));
        }
        s->swiglu(want, a, b, n);
        for (int64_t i = 0; i < n; i++) {
            double r = a[i] / (1.0 + exp(-(double)a[i])) * b[i];
            note(&stats[0].max_swiglu_rel, rel(want[i], r, fabs(r) + 1e-30));
        }
    }
    free(a0), free(b0), free(w0), free(want), free(got0), free(want2), free(got20), free(h0);
}

static void test_float_identical(void) {
    for (int64_t n = 1; n <= (quick ? 300 : 1000); n++) float_case(n, (int)(n % 4));
    for (int64_t n = 1; n <= 100; n++) float_case(n, 4);
    static const int64_t big[] = {4096 + 13, 11008, 2048, 3072, 65536 + 5, 100003};
    for (size_t i = 0; i < (quick ? 2 : sizeof big / sizeof *big); i++)
        for (int kind = 0; kind < 4; kind++) float_case(big[i], kind);
    /* scalar accuracy of the shared order (random rounding walks: a few ulps, loose bounds) */
    CHECK(stats[0].max_dot_rel < 5e-7 && stats[0].max_rms_rel < 1e-6);
    CHECK(stats[0].max_softmax_rel < 2e-6 && stats[0].max_swiglu_rel < 1e-6);
}

static void test_f16(int li) {
    const l8_kernels *k = levels[li];
    const int NR = quick ? 1 << 16 : 1 << 20;
    uint16_t *h = malloc(sizeof(uint16_t) * 65536), *h2 = malloc(sizeof(uint16_t) * NR);
    float *f = malloc(sizeof(float) * NR);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    k->f16_to_f32(f, h, 65536);
    for (int i = 0; i < 65536; i++) {
        float want = l8_f16_to_f32((uint16_t)i);
        CHECK(isnan(want) ? isnan(f[i]) && signbit(want) == signbit(f[i]) : f2u(f[i]) == f2u(want));
        f[i] = want; /* exact halves, NaN payloads included, for the way back */
    }
    k->f32_to_f16(h2, f, 65536);
    for (int i = 0; i < 65536; i++) CHECK(h2[i] == l8_f32_to_f16(f[i]));
    /* random bit patterns, then values near half-way between two halves (rounding ties) */
    for (int i = 0; i < NR; i++) {
        uint32_t u = (uint32_t)rng_u64();
        if (i % 2) u = ((uint32_t)(rng_u64() % 0x47800000u) & ~0x1FFFu) | 0x1000u | (uint32_t)(rng_u64() % 3 == 0);
        f[i] = u2f(u);
    }
    for (int off = 0; off < 8; off++) { /* every tail length */
        k->f32_to_f16(h2 + off, f + off, NR - off - (off & 3));
        for (int i = off; i < NR - off - (off & 3); i++) CHECK(h2[i] == l8_f32_to_f16(f[i]));
    }
    stats[li].float_checks += 65536 * 2 + NR * 8;
    free(h), free(h2), free(f);
}

static void test_exp(int li) {
    const l8_kernels *k = levels[li];
    const int N = quick ? 1 << 16 : 1 << 20;
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    for (int pass = 0; pass < 4; pass++) {
        for (int i = 0; i < N; i++) x[i] = pass < 2 ? -104.0f + 193.0f * ((float)i + pass * 0.5f) / N
                                                    : (rng_unit() * 2 - 1) * (pass == 2 ? 1.0f : 88.0f);
        k->exp(y, x, N);
        for (int i = 0; i < N; i++) {
            float want = expf(x[i]);
            if (want >= FLT_MIN && !isinf(want)) note(&stats[li].max_exp_rel, rel(y[i], want, want));
            else if (isinf(want)) CHECK(isinf(y[i]));
            else CHECK(fabsf(y[i] - want) <= 2 * 1.4013e-45f); /* subnormal results: an ulp or two */
        }
    }
    float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.7f, 88.73f, 200.0f, -200.0f, -87.33f, 1e-30f};
    float spy[11];
    k->exp(spy, sp, 11);
    CHECK(spy[0] == 1.0f && spy[1] == 1.0f && isinf(spy[2]) && spy[3] == 0.0f && isnan(spy[4]));
    CHECK(isinf(spy[6]) && isinf(spy[7]) && spy[8] == 0.0f && spy[10] == 1.0f);
    CHECK(rel(spy[5], expf(88.7f), expf(88.7f)) < 2e-7 && rel(spy[9], expf(-87.33f), expf(-87.33f)) < 2e-7);
    CHECK(stats[li].max_exp_rel < 2e-7);
    stats[li].float_checks += 4 * N;
    free(x), free(y);
}

static void test_float_helpers(int li) {
    test_f16(li);
    test_exp(li);
}

/* ---------------------------------------------------------------- attention, Hadamard */

/* attn_f16 of every level against the scalar level (its definition: the composition of the
 * scalar dot_f16, softmax and axpy_f16), bit for bit, on odd head sizes (masked tails), GQA
 * groups that split unevenly into the kernels' row blocks, key counts around their block sizes,
 * and padded strides (nothing outside the output rows may change); kind 1 adds huge and special
 * values (inf scores: NaN rows, compared as any NaN). The scalar level is also checked against
 * a double-precision attention. */
static double att_max_rel;

static void attention_case(int64_t hd, int64_t group, int64_t nt, int64_t n0, int kind) {
    int64_t ldq = group * hd + 3, ldkv = hd + 5, np = n0 + nt, lds = np + 2;
    size_t qn = (size_t)(nt * ldq), kn = (size_t)(np * ldkv), sn = (size_t)(nt * group * lds);
    float *q = malloc(sizeof(float) * qn), *want = malloc(sizeof(float) * qn), *got = malloc(sizeof(float) * qn);
    float *s = malloc(sizeof(float) * sn);
    uint16_t *k = malloc(sizeof(uint16_t) * kn), *v = malloc(sizeof(uint16_t) * kn);
    for (size_t i = 0; i < qn; i++) q[i] = rng_gauss();
    for (size_t i = 0; i < kn; i++) k[i] = l8_f32_to_f16(rng_gauss()), v[i] = l8_f32_to_f16(rng_gauss());
    if (kind == 1) {
        for (size_t i = 0; i < qn; i += 7) q[i] = rng_gauss() * 3e4f;
        for (size_t i = 0; i < kn; i += 11) k[i] = (uint16_t)(rng_u64() % 3 == 0 ? 0x7C00 : rng_u64() % 2 ? 0x8000 : 0x7BFF);
        for (size_t i = 3; i < kn; i += 13) v[i] = (uint16_t)(rng_u64() % 2 ? 0xFC00 : 0x8000);
    }
    float scale = 1.0f / sqrtf((float)hd);
    for (size_t i = 0; i < qn; i++) want[i] = got[i] = u2f(0x7F7F7F7Fu);
    levels[0]->attn_f16(want, q, ldq, nt, group, hd, n0, k, v, ldkv, scale, s, lds);
    for (int li = 0; li < n_levels; li++) {
        const l8_kernels *kl = levels[li];
        if (!kl->attn_f16) continue;
        for (size_t i = 0; i < qn; i++) got[i] = u2f(0x7F7F7F7Fu);
        for (size_t i = 0; i < sn; i++) s[i] = NAN; /* scratch: no value may be taken from it */
        kl->attn_f16(got, q, ldq, nt, group, hd, n0, k, v, ldkv, scale, s, lds);
        if (!same_bits(want, got, (int64_t)qn)) {
            fprintf(stderr, "%s attn_f16 hd=%lld group=%lld nt=%lld n0=%lld kind %d\n", kl->name, (long long)hd,
                    (long long)group, (long long)nt, (long long)n0, kind);
            report_diff("attn_f16", kl->name, (int64_t)qn, want, got, (int64_t)qn);
            CHECK(!"attn_f16 not bit-identical to the scalar level");
        }
        stats[li].att_cases++;
    }
    for (int64_t t = 0; t < nt; t++) /* the padding between rows is untouched */
        for (int64_t i = group * hd; i < ldq; i++) CHECK(f2u(want[t * ldq + i]) == 0x7F7F7F7Fu);
    if (kind == 0) /* the definition against double precision */
        for (int64_t t = 0; t < nt; t++)
            for (int64_t g = 0; g < group; g++) {
                const float *qr = q + t * ldq + g * hd;
                double sc[512], mx = -1e300, sum = 0;
                for (int64_t p = 0; p <= n0 + t; p++) {
                    double d = 0;
                    for (int64_t i = 0; i < hd; i++) d += (double)qr[i] * l8_f16_to_f32(k[p * ldkv + i]);
                    sc[p] = d * scale;
                    mx = sc[p] > mx ? sc[p] : mx;
                }
                for (int64_t p = 0; p <= n0 + t; p++) sum += (sc[p] = exp(sc[p] - mx));
                for (int64_t i = 0; i < hd; i++) {
                    double o = 0, mag = 0;
                    for (int64_t p = 0; p <= n0 + t; p++) {
                        double vv = l8_f16_to_f32(v[p * ldkv + i]);
                        o += sc[p] / sum * vv, mag += fabs(sc[p] / sum * vv);
                    }
                    note(&att_max_rel, rel(want[t * ldq + g * hd + i], o, mag));
                }
            }
    free(q), free(want), free(got), free(s), free(k), free(v);
}

static void test_attention(void) {
    static const int64_t hds[] = {1, 8, 15, 16, 17, 64, 100, 128, 256, 300};
    static const int64_t groups[] = {1, 3, 4, 5};
    static const int64_t nts[] = {1, 2, 8, 9};
    static const int64_t n0s[] = {0, 1, 15, 16, 40, 100};
    int rot = 0;
    for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++)
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (size_t ti = 0; ti < sizeof nts / sizeof *nts; ti++) {
                if (quick && (ti + gi + hi) % 3 != 0) continue;
                int64_t n0 = n0s[rot++ % (sizeof n0s / sizeof *n0s)];
                attention_case(hds[hi], groups[gi], nts[ti], n0, 0);
                if (ti == 1) attention_case(hds[hi], groups[gi], nts[ti], n0 + 3, 1);
            }
    for (int64_t n0 = 0; n0 < 9; n0++) /* every alignment of the rows' last keys in small blocks */
        for (int64_t group = 1; group <= 5; group++)
            for (int64_t nt = 1; nt <= 5; nt += 2 - (nt == 1)) attention_case(n0 % 2 ? 17 : 16, group, nt, n0, 0);
    attention_case(128, 3, 8, 500, 0); /* several key blocks */
    attention_case(64, 4, 1, 300, 0);  /* decode */
    CHECK(att_max_rel < 1e-5);
}

/* fwht of every level against l8_fwht_scalar, bit for bit (specials included). */
static void test_fwht(void) {
    static const int64_t hs[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 8192};
    for (size_t hi = 0; hi < sizeof hs / sizeof *hs; hi++)
        for (int64_t nb = 1; nb <= 3; nb += 2)
            for (int kind = 0; kind < 3; kind++) {
                int64_t h = hs[hi], n = h * nb;
                float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
                float *got = malloc(sizeof(float) * (size_t)n);
                for (int64_t i = 0; i < n; i++) x[i] = gen(kind == 0 ? 0 : kind == 1 ? 1 : 2);
                float norm = 1.0f / sqrtf((float)h);
                memcpy(want, x, sizeof(float) * (size_t)n);
                l8_fwht_scalar(want, h, nb, norm);
                for (int li = 0; li < n_levels; li++) {
                    const l8_kernels *k = levels[li];
                    if (!k->fwht) continue;
                    memcpy(got, x, sizeof(float) * (size_t)n);
                    k->fwht(got, h, nb, norm);
                    SAME("fwht", want, got, n);
                    stats[li].fwht_cases++;
                }
                free(x), free(want), free(got);
            }
}

/* Shapes for the tile kernels of the amx level (and the register blocks of the others): 64- and
 * 32-column multiples, groups of 64..512, token counts around 16 and 32, tile counts that do not
 * split into pairs. */
static void test_matmul_blocks(void) {
    static const int ms[] = {16, 17, 32, 33, 48, 67, 100};
    static const int64_t shapes[][2] = {{48, 64}, {80, 512}, {160, 192}, {33, 1024}, {16, 3072}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int64_t rows = shapes[si][0], cols = shapes[si][1];
        int n_ms = quick ? 3 : 7;
        test_matmul_case(L8_DTYPE_Q8, (int32_t)cols, rows, cols, ms, n_ms);
        if (cols >= 128) test_matmul_case(L8_DTYPE_Q8, 64, rows, cols, ms, n_ms);
        if (cols >= 256) test_matmul_case(L8_DTYPE_Q8, 128, rows, cols, ms, n_ms);
        test_matmul_case(L8_DTYPE_Q4, 32, rows, cols, ms, n_ms);
    }
}

int main(void) {
    const char *q = getenv("LLM8_TEST_QUICK");
    quick = q && *q && strcmp(q, "0") != 0;
    printf("%s%s\n", l8_kernels_describe(), quick ? " (LLM8_TEST_QUICK: reduced sizes)" : "");
    for (int i = 0; i < L8_ISA_COUNT; i++)
        if (l8_kernels_for((l8_isa)i)) levels[n_levels++] = l8_kernels_for((l8_isa)i);
    CHECK(n_levels >= 1 && levels[0]->isa == L8_ISA_SCALAR);
    CHECK(l8_kernels_get() != NULL);

    test_quantize_act();
    test_matmuls();
    test_matmul_blocks();
    test_float_identical();
    for (int li = 0; li < n_levels; li++) test_float_helpers(li);
    test_attention();
    test_fwht();

    for (int li = 0; li < n_levels; li++) {
        level_stats *s = &stats[li];
        printf("%-12s quantize_act %ld cases byte-identical; matmul %ld cases bit-identical to the reference, "
               "%ld int32-exact, %ld row splits; float helpers %ld values bit-identical to scalar; max rel err "
               "exp %.2e vs expf; attention %ld cases, fwht %ld cases bit-identical",
               levels[li]->name, s->quant_cases, s->mm_cases, s->mm_int_cases, s->split_cases, s->float_checks,
               s->max_exp_rel, s->att_cases, s->fwht_cases);
        if (li == 0)
            printf("; scalar vs double: swiglu %.2e rmsnorm %.2e softmax %.2e dot %.2e attention %.2e",
                   s->max_swiglu_rel, s->max_rms_rel, s->max_softmax_rel, s->max_dot_rel, att_max_rel);
        printf("\n");
    }
    printf("test_kernels: OK\n");
    return 0;
}
