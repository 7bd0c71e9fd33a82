/* The scalar level of the kernel table: the src/quant reference (activation quantization and
 * a row-ranged copy of the reference matmul) plus plain C float helpers that spell out the
 * canonical evaluation order of kernels.h (16 emulated lanes, a fixed combining tree, one exp
 * algorithm). It runs everywhere and is what the SIMD levels are tested against, bit for bit. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

int l8_qgeom_init(l8_qgeom *g, const l8_tensor *w) {
    int64_t cols = w->shape[1];
    g->rows = w->shape[0];
    g->cpb = w->dtype == L8_DTYPE_Q8 ? 4 : 8;
    g->kp = l8_q_cols_padded(w->dtype, cols);
    g->nb = g->kp / g->cpb;
    g->ng = l8_q_n_groups(cols, w->group);
    if (g->ng <= 1) {
        g->ng = 1;
        g->gb = g->nb;
        return 1;
    }
    /* Several groups: each boundary must fall on a block edge so that a whole 64-byte block
     * belongs to one group. Real files have G = 32..512 (multiples of 8). */
    if (w->group % g->cpb != 0) return 0;
    g->gb = w->group / g->cpb;
    return 1;
}

/* ---------------------------------------------------------------- ranged reference matmul */

void l8_matmul_q_scalar(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                        int64_t r1) {
    l8_q_matmul_ref_rows(out, xq, xs, n, w, r0, r1);
}

/* ---------------------------------------------------------------- float helpers */

/* The canonical evaluation order of kernels.h, written out: 16 lanes held in a float[16], the
 * fixed combining tree, the shared exp. The SIMD levels must give exactly these bits, so each
 * operation here is one IEEE operation (fmaf where the SIMD code fuses; the file is compiled
 * with -ffp-contract=off so that nothing else is fused). */
enum { LANES = 16 };

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

/* The combining tree: lanes [0..7] + [8..15], then [0..3] + [4..7], [0,1] + [2,3], [0] + [1]. */
static float lanes_sum(const float l[LANES]) {
    float t8[8], t4[4], t2[2];
    for (int j = 0; j < 8; j++) t8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) t4[j] = t8[j] + t8[j + 4];
    for (int j = 0; j < 2; j++) t2[j] = t4[j] + t4[j + 2];
    return t2[0] + t2[1];
}

/* maxps semantics: a > b ? a : b (the second operand when either is NaN). */
static float max_ps1(float a, float b) { return a > b ? a : b; }

static float lanes_max(const float l[LANES]) {
    float t8[8], t4[4], t2[2];
    for (int j = 0; j < 8; j++) t8[j] = max_ps1(l[j], l[j + 8]);
    for (int j = 0; j < 4; j++) t4[j] = max_ps1(t8[j], t8[j + 4]);
    for (int j = 0; j < 2; j++) t2[j] = max_ps1(t4[j], t4[j + 2]);
    return max_ps1(t2[0], t2[1]);
}

/* 2^k as a float from the integer bits (k + 127) << 23; unsigned, so wrapping is defined (only
 * a NaN input gets an out-of-range k, and its result is NaN whatever the factor). */
static float pow2_bits(uint32_t k) { return u2f((k + 127u) << 23); }

/* The canonical exp (kernels.h), one lane. */
static float exp1(float x) {
    x = L8_EXP_HI < x ? L8_EXP_HI : x; /* minps(hi, x): a NaN x stays */
    x = L8_EXP_LO > x ? L8_EXP_LO : x; /* maxps(lo, x) */
    float t = fmaf(x, L8_EXP_LOG2E, L8_EXP_ROUND);
    float n = t - L8_EXP_ROUND;
    float r = fmaf(-n, L8_EXP_LN2_HI, x);
    r = fmaf(-n, L8_EXP_LN2_LO, r);
    float p = L8_EXP_C7;
    p = fmaf(p, r, L8_EXP_C6);
    p = fmaf(p, r, L8_EXP_C5);
    p = fmaf(p, r, L8_EXP_C4);
    p = fmaf(p, r, L8_EXP_C3);
    p = fmaf(p, r, L8_EXP_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    uint32_t ni = f2u(t) - f2u(L8_EXP_ROUND);     /* n in two's complement, |n| <= 150 */
    uint32_t n1 = ((ni + 256u) >> 1) - 128u, n2 = ni - n1; /* floor(n / 2), n - floor(n / 2) */
    return (p * pow2_bits(n1)) * pow2_bits(n2);
}

static void rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps) {
    float l[LANES] = {0};
    for (int64_t i = 0; i < n; i++) l[i % LANES] = fmaf(x[i], x[i], l[i % LANES]);
    float scale = 1.0f / sqrtf(lanes_sum(l) / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

static void swiglu_scalar(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (g[i] / (1.0f + exp1(0.0f - g[i]))) * u[i];
}

static void softmax_scalar(float *x, int64_t n) {
    float l[LANES];
    for (int j = 0; j < LANES; j++) l[j] = -INFINITY;
    for (int64_t i = 0; i < n; i++) l[i % LANES] = max_ps1(x[i], l[i % LANES]);
    float m = lanes_max(l);
    for (int j = 0; j < LANES; j++) l[j] = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = exp1(x[i] - m);
        l[i % LANES] = l[i % LANES] + x[i];
    }
    float inv = 1.0f / lanes_sum(l);
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * inv;
}

static void exp_scalar(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = exp1(x[i]);
}

static float dot_f32_scalar(const float *a, const float *b, int64_t n) {
    float l[LANES] = {0};
    for (int64_t i = 0; i < n; i++) l[i % LANES] = fmaf(a[i], b[i], l[i % LANES]);
    return lanes_sum(l);
}

static float dot_f16_scalar(const float *a, const uint16_t *b, int64_t n) {
    float l[LANES] = {0};
    for (int64_t i = 0; i < n; i++) l[i % LANES] = fmaf(a[i], l8_f16_to_f32(b[i]), l[i % LANES]);
    return lanes_sum(l);
}

static void axpy_f32_scalar(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static void axpy_f16_scalar(float *y, float a, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = fmaf(a, l8_f16_to_f32(x[i]), y[i]);
}

static void f32_to_f16_scalar(uint16_t *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = l8_f32_to_f16(x[i]);
}

static void f16_to_f32_scalar(float *out, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = l8_f16_to_f32(x[i]);
}

/* ---------------------------------------------------------------- attention, Hadamard */

void l8_attn_f16_compose(float (*dot_f16)(const float *, const uint16_t *, int64_t), void (*softmax)(float *, int64_t),
                         void (*axpy_f16)(float *, float, const uint16_t *, int64_t), float *out, const float *q,
                         int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0, const uint16_t *k,
                         const uint16_t *v, int64_t ldkv, float scale, float *scores, int64_t lds) {
    for (int64_t t = 0; t < nt; t++)
        for (int64_t g = 0; g < group; g++) {
            const float *qr = q + t * ldq + g * hd;
            float *s = scores + (t * group + g) * lds, *o = out + t * ldq + g * hd;
            for (int64_t p = 0; p <= n0 + t; p++) s[p] = dot_f16(qr, k + p * ldkv, hd) * scale;
            softmax(s, n0 + t + 1);
            for (int64_t i = 0; i < hd; i++) o[i] = 0.0f;
            for (int64_t p = 0; p <= n0 + t; p++) axpy_f16(o, s[p], v + p * ldkv, hd);
        }
}

static void attn_f16_scalar(float *out, const float *q, int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0,
                            const uint16_t *k, const uint16_t *v, int64_t ldkv, float scale, float *scores,
                            int64_t lds) {
    l8_attn_f16_compose(dot_f16_scalar, softmax_scalar, axpy_f16_scalar, out, q, ldq, nt, group, hd, n0, k, v, ldkv,
                        scale, scores, lds);
}

void l8_fwht_scalar(float *x, int64_t h, int64_t nblocks, float norm) {
    for (int64_t b = 0; b < nblocks; b++) {
        float *v = x + b * h;
        for (int64_t len = 1; len < h; len <<= 1)
            for (int64_t i = 0; i < h; i += len << 1)
                for (int64_t j = i; j < i + len; j++) {
                    float a = v[j], c = v[j + len];
                    v[j] = a + c;
                    v[j + len] = a - c;
                }
        for (int64_t i = 0; i < h; i++) v[i] *= norm;
    }
}

void l8_kernels_fill_scalar(l8_kernels *k) {
    k->isa = L8_ISA_SCALAR;
    k->name = "scalar";
    k->quantize_act = l8_q_quantize_act_ref;
    k->matmul_q8 = l8_matmul_q_scalar;
    k->matmul_q4 = l8_matmul_q_scalar;
    k->rmsnorm = rmsnorm_scalar;
    k->swiglu = swiglu_scalar;
    k->softmax = softmax_scalar;
    k->exp = exp_scalar;
    k->dot_f32 = dot_f32_scalar;
    k->dot_f16 = dot_f16_scalar;
    k->axpy_f32 = axpy_f32_scalar;
    k->axpy_f16 = axpy_f16_scalar;
    k->f32_to_f16 = f32_to_f16_scalar;
    k->f16_to_f32 = f16_to_f32_scalar;
    k->attn_f16 = attn_f16_scalar;
    k->fwht = l8_fwht_scalar;
}
