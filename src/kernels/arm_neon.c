/* The neon level (ARMv8.0 Advanced SIMD, every aarch64 core: Cortex-A53/A72, the Raspberry Pi
 * 4, RK3399): activation quantization, quantized matmuls with SMULL/SMLAL + SADALP, the float
 * helpers and the f16 row conversions. The float helpers, quantize_act and the conversions are
 * also those of the dotprod and i8mm levels (arm_dotprod.c, arm_i8mm.c replace only the
 * matmuls): they need nothing beyond ARMv8.0.
 *
 * Matmuls. A 16-byte load of a 64-byte block holds 4 rows x 4 columns ("quad" i = rows 4i..4i+3
 * of the tile). Without SDOT the int8 products are widened in two steps:
 *   Q8: SMULL/SMULL2 of the quad against the token's 4 activation bytes (broadcast), SMLAL of
 *       the next block's quad into the same int16 lanes (two products <= 2*127*127 = 32258 fit
 *       int16: weights and activations are within -127..127), then SADALP into int32. Both
 *       operands are signed, so no offset correction is needed.
 *   Q4: the stored nibble q + 8 (0..15, AND / USHR) times the activation (products <= 1905),
 *       so up to 4 blocks (8 products per int16 lane) add up before ADDP pairs the lanes
 *       (<= 30480) and SADALP widens them; the +8 offset is removed by starting the int32
 *       accumulators from -8 * (sum of the token's activations over the group), as x86 does.
 * Blocks of up to 2 tokens per weight load: each token needs 8 (Q8) int32 accumulators for a
 * tile, and the 32 vector registers hold no more. The float rescale is the reference's
 * ((float)acc * ws) * xs added group after group, so outputs are bit-identical to
 * l8_q_matmul_ref (this file is built with -ffp-contract=off: no FMLA fusion of it).
 *
 * Float helpers (and attention, the Walsh-Hadamard transform, both defined through them): the
 * canonical evaluation order of kernels.h with the 16 reduction lanes in four
 * 4-lane registers (v0 = lanes 0..3, ..., v3 = lanes 12..15). Two NEON habits would break the
 * bits and are avoided: FMAX/FMIN propagate NaN (the canonical max is x86 maxps, a > b ? a : b,
 * so it is a compare and a bit select), and the horizontal FADDV/FMAXV add in an order of their
 * own (the tree is written out). Half-precision arithmetic (FEAT_FP16 FMLA on f16 lanes) is
 * not used although the A55/A76 have it: it rounds every step to 11 bits, which the exactness
 * contract (and the quality of q.K over thousands of positions) rules out; the f16 KV cache
 * is widened exactly with FCVTL and narrowed with FCVTN (ARMv8.0), round to nearest even. */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define L8_INLINE static inline __attribute__((always_inline))

enum { TOK_BLOCK = 2, Q4_CHUNK = 4 };

/* ---------------------------------------------------------------- activation quantization */

/* a > b ? a : b (x86 maxps): a NaN a leaves b. */
L8_INLINE float32x4_t max_sel(float32x4_t a, float32x4_t b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }

/* q_round of src/quant/quantize.c: divide, NaN -> 0, clamp in float, round to nearest even. */
static int8_t q_round_scalar(float x, float s) {
    float v = x / s;
    if (isnan(v)) return 0;
    v = fminf(fmaxf(v, -127.0f), 127.0f);
    return (int8_t)nearbyintf(v);
}

/* 4 values with the same rules; FCVTNS rounds to nearest even whatever FPCR says. */
L8_INLINE int32x4_t q_round4(float32x4_t x, float32x4_t s) {
    float32x4_t v = vdivq_f32(x, s);
    v = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vceqq_f32(v, v))); /* NaN -> +0 */
    v = vminq_f32(vmaxq_f32(v, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
    return vcvtnq_s32_f32(v);
}

static void quantize_act_neon(const float *x, int64_t n, int64_t k, int64_t kp, int8_t *xq, float *xs) {
    for (int64_t t = 0; t < n; t++) {
        const float *row = x + t * k;
        int8_t *q = xq + t * kp;
        /* the max of |x| is exact in any order (no NaN enters, all values >= +0) */
        float32x4_t m0 = vdupq_n_f32(0.0f), m1 = m0;
        int64_t i = 0;
        for (; i + 8 <= k; i += 8) {
            m0 = max_sel(vabsq_f32(vld1q_f32(row + i)), m0);
            m1 = max_sel(vabsq_f32(vld1q_f32(row + i + 4)), m1);
        }
        float amax = vmaxvq_f32(max_sel(m1, m0));
        for (; i < k; i++) amax = fmaxf(amax, fabsf(row[i]));
        float s = fminf(amax, FLT_MAX) / 127.0f;
        xs[t] = s;
        if (s == 0.0f) {
            memset(q, 0, (size_t)kp);
            continue;
        }
        float32x4_t sv = vdupq_n_f32(s);
        for (i = 0; i + 16 <= k; i += 16) {
            int16x8_t a = vcombine_s16(vmovn_s32(q_round4(vld1q_f32(row + i), sv)),
                                       vmovn_s32(q_round4(vld1q_f32(row + i + 4), sv)));
            int16x8_t b = vcombine_s16(vmovn_s32(q_round4(vld1q_f32(row + i + 8), sv)),
                                       vmovn_s32(q_round4(vld1q_f32(row + i + 12), sv)));
            vst1q_s8(q + i, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
        }
        for (; i < k; i++) q[i] = q_round_scalar(row[i], s);
        memset(q + k, 0, (size_t)(kp - k));
    }
}

/* ---------------------------------------------------------------- pieces shared by the matmuls */

void l8_arm_q4_corrections(int32_t *xcorr, const int8_t *xq, int64_t nt, const l8_qgeom *g) {
    for (int64_t t = 0; t < nt; t++) {
        const int8_t *x = xq + t * g->kp;
        for (int64_t gi = 0; gi < g->ng; gi++) {
            int64_t c0 = gi * g->gb * g->cpb, b1 = gi * g->gb + g->gb < g->nb ? gi * g->gb + g->gb : g->nb;
            int64_t c1 = b1 * g->cpb, c = c0;
            int32_t s = 0;
            for (; c + 16 <= c1; c += 16) s += vaddlvq_s8(vld1q_s8(x + c)); /* |16 * 127| fits int16 */
            for (; c < c1; c++) s += x[c];
            xcorr[t * g->ng + gi] = -8 * s;
        }
    }
}

void l8_arm_store_rows(float *out, const float *o, int nr) {
    if (nr == L8_TILE_ROWS) {
        for (int i = 0; i < 4; i++) vst1q_f32(out + 4 * i, vld1q_f32(o + 4 * i));
    } else {
        memcpy(out, o, (size_t)nr * sizeof(float));
    }
}

/* 4 activation bytes broadcast to the 4 lanes. */
L8_INLINE int8x16_t bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* o (4 lanes of one quad) += ((float)acc * ws) * xs: the reference's order. */
L8_INLINE float32x4_t rescale_add(float32x4_t o, int32x4_t acc, float32x4_t ws, float32x4_t xs) {
    return vaddq_f32(o, vmulq_f32(vmulq_f32(vcvtq_f32_s32(acc), ws), xs));
}

L8_INLINE float32x4_t load_scales4(const void *scales, int64_t at, int q4) {
    if (q4) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)scales + at)));
    return vld1q_f32((const float *)scales + at);
}

/* ---------------------------------------------------------------- quantized matmuls */

/* One tile against T (1 or 2) tokens. o: T x 16 floats of output (the caller stores them). */
L8_INLINE void tile_q8(const int T, const l8_qgeom *g, const int8_t *wt, const float *sc, int64_t sc0,
                       const int8_t *x, const float *xs, float *o) {
    const int64_t kp = g->kp;
    for (int i = 0; i < T * L8_TILE_ROWS; i += 4) vst1q_f32(o + i, vdupq_n_f32(0.0f));
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb, b = b0;
        /* a[t][i][0]: rows 4i, 4i+1 (two partial lanes each), a[t][i][1]: rows 4i+2, 4i+3 */
        int32x4_t a[TOK_BLOCK][4][2];
#pragma GCC unroll 2
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++) a[t][i][0] = a[t][i][1] = vdupq_n_s32(0);
        for (; b + 2 <= b1; b += 2) {
            int8x16_t x0[TOK_BLOCK], x1[TOK_BLOCK];
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) x0[t] = bcast4(x + t * kp + b * 4), x1[t] = bcast4(x + t * kp + b * 4 + 4);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                int8x16_t v0 = vld1q_s8(wt + b * 64 + 16 * i), v1 = vld1q_s8(wt + b * 64 + 64 + 16 * i);
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) {
                    int16x8_t lo = vmull_s8(vget_low_s8(v0), vget_low_s8(x0[t]));
                    int16x8_t hi = vmull_high_s8(v0, x0[t]);
                    lo = vmlal_s8(lo, vget_low_s8(v1), vget_low_s8(x1[t]));
                    hi = vmlal_high_s8(hi, v1, x1[t]);
                    a[t][i][0] = vpadalq_s16(a[t][i][0], lo);
                    a[t][i][1] = vpadalq_s16(a[t][i][1], hi);
                }
            }
        }
        if (b < b1) { /* an odd block at the group's end */
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                int8x16_t v0 = vld1q_s8(wt + b * 64 + 16 * i);
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) {
                    int8x16_t x0 = bcast4(x + t * kp + b * 4);
                    a[t][i][0] = vpadalq_s16(a[t][i][0], vmull_s8(vget_low_s8(v0), vget_low_s8(x0)));
                    a[t][i][1] = vpadalq_s16(a[t][i][1], vmull_high_s8(v0, x0));
                }
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            float32x4_t ws = vld1q_f32(sc + sc0 + gi * 16 + 4 * i);
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) {
                float *ot = o + t * L8_TILE_ROWS + 4 * i;
                int32x4_t acc = vpaddq_s32(a[t][i][0], a[t][i][1]); /* rows 4i .. 4i+3 */
                vst1q_f32(ot, rescale_add(vld1q_f32(ot), acc, ws, vdupq_n_f32(xs[t])));
            }
        }
    }
}

L8_INLINE void tile_q4(const int T, const l8_qgeom *g, const uint8_t *wt, const uint16_t *sc, int64_t sc0,
                       const int8_t *x, const float *xs, const int32_t *xcorr, float *o) {
    const int64_t kp = g->kp;
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    for (int i = 0; i < T * L8_TILE_ROWS; i += 4) vst1q_f32(o + i, vdupq_n_f32(0.0f));
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
        int32x4_t a[TOK_BLOCK][4]; /* a[t][i]: rows 4i .. 4i+3, from -8 * sum(x) */
#pragma GCC unroll 2
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++) a[t][i] = vdupq_n_s32(xcorr[t * g->ng + gi]);
        for (int64_t b = b0; b < b1;) {
            int64_t be = b + Q4_CHUNK < b1 ? b + Q4_CHUNK : b1;
            int16x8_t plo[TOK_BLOCK][4], phi[TOK_BLOCK][4];
#pragma GCC unroll 2
            for (int t = 0; t < T; t++)
                for (int i = 0; i < 4; i++) plo[t][i] = phi[t][i] = vdupq_n_s16(0);
            for (; b < be; b++) {
                int8x16_t xl[TOK_BLOCK], xh[TOK_BLOCK];
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) xl[t] = bcast4(x + t * kp + b * 8), xh[t] = bcast4(x + t * kp + b * 8 + 4);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    uint8x16_t v = vld1q_u8(wt + b * 64 + 16 * i);
                    int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, low4)), hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
#pragma GCC unroll 2
                    for (int t = 0; t < T; t++) {
                        plo[t][i] = vmlal_s8(plo[t][i], vget_low_s8(lo), vget_low_s8(xl[t]));
                        plo[t][i] = vmlal_s8(plo[t][i], vget_low_s8(hi), vget_low_s8(xh[t]));
                        phi[t][i] = vmlal_high_s8(phi[t][i], lo, xl[t]);
                        phi[t][i] = vmlal_high_s8(phi[t][i], hi, xh[t]);
                    }
                }
            }
#pragma GCC unroll 2
            for (int t = 0; t < T; t++)
                for (int i = 0; i < 4; i++) a[t][i] = vpadalq_s16(a[t][i], vpaddq_s16(plo[t][i], phi[t][i]));
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            float32x4_t ws = load_scales4(sc, sc0 + gi * 16 + 4 * i, 1);
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) {
                float *ot = o + t * L8_TILE_ROWS + 4 * i;
                vst1q_f32(ot, rescale_add(vld1q_f32(ot), a[t][i], ws, vdupq_n_f32(xs[t])));
            }
        }
    }
}

/* A block of T (1 or 2) tokens of one tile. */
static void block_neon(int q4, int T, const l8_qgeom *g, const uint8_t *wt, const void *sc, int64_t sc0,
                       const int8_t *x, const float *xs, const int32_t *xcorr, float *o) {
    if (q4) {
        if (T == 2) tile_q4(2, g, wt, sc, sc0, x, xs, xcorr, o);
        else tile_q4(1, g, wt, sc, sc0, x, xs, xcorr, o);
    } else {
        if (T == 2) tile_q8(2, g, (const int8_t *)wt, sc, sc0, x, xs, o);
        else tile_q8(1, g, (const int8_t *)wt, sc, sc0, x, xs, o);
    }
}

void l8_arm_matmul(int q4, int tok_block, l8_arm_block_fn block, float *out, const int8_t *xq, const float *xs,
                   int64_t n, const l8_tensor *w, const l8_qgeom *g, int64_t r0, int64_t r1) {
    int32_t xcorr[L8_ARM_XCORR_CAP];
    float o[4 * L8_TILE_ROWS];
    int64_t chunk = q4 ? L8_ARM_XCORR_CAP / g->ng : n;
    int64_t tile_bytes = q4 ? 8 * g->kp : 16 * g->kp;
    const uint8_t *data = (const uint8_t *)w->data;
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
        int64_t nt = n - t0 < chunk ? n - t0 : chunk;
        const int8_t *x0 = xq + t0 * g->kp;
        if (q4) l8_arm_q4_corrections(xcorr, x0, nt, g);
        for (int64_t tile = r0 / L8_TILE_ROWS; tile * L8_TILE_ROWS < r1; tile++) {
            int64_t rb = tile * L8_TILE_ROWS;
            int nr = r1 - rb < L8_TILE_ROWS ? (int)(r1 - rb) : L8_TILE_ROWS;
            const uint8_t *wt = data + tile * tile_bytes;
            int64_t sc0 = tile * g->ng * L8_TILE_ROWS;
            for (int64_t tb = 0; tb < nt; tb += tok_block) {
                int T = nt - tb < tok_block ? (int)(nt - tb) : tok_block;
                block(q4, T, g, wt, w->scales, sc0, x0 + tb * g->kp, xs + t0 + tb, xcorr + tb * g->ng, o);
                for (int t = 0; t < T; t++) l8_arm_store_rows(out + (t0 + tb + t) * g->rows + rb, o + t * 16, nr);
            }
        }
    }
}

L8_INLINE void matmul_neon(const int q4, float *out, const int8_t *xq, const float *xs, int64_t n,
                           const l8_tensor *w, int64_t r0, int64_t r1) {
    l8_qgeom g;
    if (!l8_qgeom_init(&g, w) || g.ng > L8_ARM_XCORR_CAP) {
        l8_matmul_q_scalar(out, xq, xs, n, w, r0, r1);
        return;
    }
    if (r1 > g.rows) r1 = g.rows;
    if (n <= 0 || r0 >= r1) return;
    l8_arm_matmul(q4, TOK_BLOCK, block_neon, out, xq, xs, n, w, &g, r0, r1);
}

static void matmul_q8_neon(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                           int64_t r1) {
    matmul_neon(0, out, xq, xs, n, w, r0, r1);
}

static void matmul_q4_neon(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                           int64_t r1) {
    matmul_neon(1, out, xq, xs, n, w, r0, r1);
}

/* ---------------------------------------------------------------- float helpers */

/* 16 canonical lanes: v[0] = lanes 0..3, v[1] = 4..7, v[2] = 8..11, v[3] = 12..15. */
typedef struct lanes16 {
    float32x4_t v[4];
} lanes16;

L8_INLINE lanes16 lanes_set(float f) {
    lanes16 l;
    for (int j = 0; j < 4; j++) l.v[j] = vdupq_n_f32(f);
    return l;
}

/* t8 = lanes [0..7] + [8..15] (v0 + v2, v1 + v3), t4 = t8[0..3] + t8[4..7], t2 = t4[0,1] +
 * t4[2,3], result = t2[0] + t2[1]. */
L8_INLINE float tree_sum16(lanes16 l) {
    float32x4_t t4 = vaddq_f32(vaddq_f32(l.v[0], l.v[2]), vaddq_f32(l.v[1], l.v[3]));
    float32x2_t t2 = vadd_f32(vget_low_f32(t4), vget_high_f32(t4));
    return vget_lane_f32(t2, 0) + vget_lane_f32(t2, 1);
}

/* The same tree with a > b ? a : b, a always the lower lanes. */
L8_INLINE float tree_max16(lanes16 l) {
    float32x4_t t4 = max_sel(max_sel(l.v[0], l.v[2]), max_sel(l.v[1], l.v[3]));
    float32x2_t lo = vget_low_f32(t4), hi = vget_high_f32(t4);
    float32x2_t t2 = vbsl_f32(vcgt_f32(lo, hi), lo, hi);
    float a = vget_lane_f32(t2, 0), b = vget_lane_f32(t2, 1);
    return a > b ? a : b;
}

/* Lane masks of the first r of 16 lanes (r in 0..16). */
L8_INLINE void first_lanes(int64_t r, uint32x4_t m[4]) {
    static const int32_t idx[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    int32x4_t rv = vdupq_n_s32((int32_t)r);
    for (int j = 0; j < 4; j++) m[j] = vcltq_s32(vld1q_s32(idx + 4 * j), rv);
}

/* A short last block goes through a zero-padded copy so that every element sees the same code
 * and nothing beyond the array is touched. */
L8_INLINE lanes16 load16(const float *p) {
    lanes16 l;
    for (int j = 0; j < 4; j++) l.v[j] = vld1q_f32(p + 4 * j);
    return l;
}

L8_INLINE lanes16 load16_tail(const float *p, int64_t r) {
    float b[16] = {0};
    memcpy(b, p, (size_t)r * sizeof(float));
    return load16(b);
}

L8_INLINE void store16(float *p, lanes16 l) {
    for (int j = 0; j < 4; j++) vst1q_f32(p + 4 * j, l.v[j]);
}

L8_INLINE void store16_tail(float *p, lanes16 l, int64_t r) {
    float b[16];
    store16(b, l);
    memcpy(p, b, (size_t)r * sizeof(float));
}

L8_INLINE float32x4_t f16x4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

L8_INLINE lanes16 load16_f16(const uint16_t *p) {
    lanes16 l;
    for (int j = 0; j < 4; j++) l.v[j] = f16x4(p + 4 * j);
    return l;
}

L8_INLINE lanes16 load16_f16_tail(const uint16_t *p, int64_t r) {
    uint16_t b[16] = {0};
    memcpy(b, p, (size_t)r * sizeof(uint16_t));
    return load16_f16(b);
}

/* e^x for 4 lanes: the canonical exp of kernels.h, operation for operation (vfmsq(a, b, c) =
 * a - b * c fused = fma(-b, c, a)). */
L8_INLINE float32x4_t exp4(float32x4_t x) {
    const float32x4_t hi = vdupq_n_f32(L8_EXP_HI), lo = vdupq_n_f32(L8_EXP_LO), rnd = vdupq_n_f32(L8_EXP_ROUND);
    x = vbslq_f32(vcltq_f32(hi, x), hi, x); /* minps(hi, x): a NaN x stays */
    x = vbslq_f32(vcgtq_f32(lo, x), lo, x); /* maxps(lo, x) */
    float32x4_t t = vfmaq_f32(rnd, x, vdupq_n_f32(L8_EXP_LOG2E));
    float32x4_t n = vsubq_f32(t, rnd);
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(L8_EXP_LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(L8_EXP_LN2_LO));
    float32x4_t p = vdupq_n_f32(L8_EXP_C7);
    p = vfmaq_f32(vdupq_n_f32(L8_EXP_C6), p, r);
    p = vfmaq_f32(vdupq_n_f32(L8_EXP_C5), p, r);
    p = vfmaq_f32(vdupq_n_f32(L8_EXP_C4), p, r);
    p = vfmaq_f32(vdupq_n_f32(L8_EXP_C3), p, r);
    p = vfmaq_f32(vdupq_n_f32(L8_EXP_C2), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    uint32x4_t ni = vsubq_u32(vreinterpretq_u32_f32(t), vreinterpretq_u32_f32(rnd));
    uint32x4_t n1 = vsubq_u32(vshrq_n_u32(vaddq_u32(ni, vdupq_n_u32(256)), 1), vdupq_n_u32(128));
    uint32x4_t n2 = vsubq_u32(ni, n1);
    float32x4_t s1 = vreinterpretq_f32_u32(vshlq_n_u32(vaddq_u32(n1, vdupq_n_u32(127)), 23));
    float32x4_t s2 = vreinterpretq_f32_u32(vshlq_n_u32(vaddq_u32(n2, vdupq_n_u32(127)), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

L8_INLINE lanes16 exp16(lanes16 x) {
    for (int j = 0; j < 4; j++) x.v[j] = exp4(x.v[j]);
    return x;
}

static void exp_neon(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) store16(y + i, exp16(load16(x + i)));
    if (i < n) store16_tail(y + i, exp16(load16_tail(x + i, n - i)), n - i);
}

L8_INLINE lanes16 swiglu16(lanes16 g, lanes16 u) {
    for (int j = 0; j < 4; j++) {
        float32x4_t e = exp4(vsubq_f32(vdupq_n_f32(0.0f), g.v[j]));
        g.v[j] = vmulq_f32(vdivq_f32(g.v[j], vaddq_f32(vdupq_n_f32(1.0f), e)), u.v[j]);
    }
    return g;
}

static void swiglu_neon(float *out, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) store16(out + i, swiglu16(load16(g + i), load16(u + i)));
    if (i < n) store16_tail(out + i, swiglu16(load16_tail(g + i, n - i), load16_tail(u + i, n - i)), n - i);
}

static void rmsnorm_neon(float *out, const float *x, const float *w, int64_t n, float eps) {
    lanes16 s = lanes_set(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lanes16 a = load16(x + i);
        for (int j = 0; j < 4; j++) s.v[j] = vfmaq_f32(s.v[j], a.v[j], a.v[j]);
    }
    if (i < n) {
        uint32x4_t m[4];
        first_lanes(n - i, m);
        lanes16 a = load16_tail(x + i, n - i);
        for (int j = 0; j < 4; j++) s.v[j] = vbslq_f32(m[j], vfmaq_f32(s.v[j], a.v[j], a.v[j]), s.v[j]);
    }
    float scale = 1.0f / sqrtf(tree_sum16(s) / (float)n + eps);
    float32x4_t sv = vdupq_n_f32(scale);
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), sv), vld1q_f32(w + i)));
    for (; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

static void softmax_neon(float *x, int64_t n) {
    lanes16 mx = lanes_set(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) { /* max(x, lane): a NaN x leaves the lane */
        lanes16 a = load16(x + i);
        for (int j = 0; j < 4; j++) mx.v[j] = max_sel(a.v[j], mx.v[j]);
    }
    uint32x4_t m[4];
    int64_t tail = n - i;
    if (tail > 0) {
        first_lanes(tail, m);
        lanes16 a = load16_tail(x + i, tail);
        for (int j = 0; j < 4; j++) mx.v[j] = vbslq_f32(m[j], max_sel(a.v[j], mx.v[j]), mx.v[j]);
    }
    float32x4_t mv = vdupq_n_f32(tree_max16(mx));
    lanes16 s = lanes_set(0.0f);
    for (i = 0; i + 16 <= n; i += 16) {
        lanes16 e = load16(x + i);
        for (int j = 0; j < 4; j++) {
            e.v[j] = exp4(vsubq_f32(e.v[j], mv));
            s.v[j] = vaddq_f32(s.v[j], e.v[j]);
        }
        store16(x + i, e);
    }
    if (tail > 0) {
        lanes16 e = load16_tail(x + i, tail);
        for (int j = 0; j < 4; j++) {
            e.v[j] = exp4(vsubq_f32(e.v[j], mv));
            s.v[j] = vbslq_f32(m[j], vaddq_f32(s.v[j], e.v[j]), s.v[j]);
        }
        store16_tail(x + i, e, tail);
    }
    float inv = 1.0f / tree_sum16(s);
    float32x4_t iv = vdupq_n_f32(inv);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), iv));
    for (; i < n; i++) x[i] = x[i] * inv;
}

static float dot_f32_neon(const float *a, const float *b, int64_t n) {
    lanes16 s = lanes_set(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) s.v[j] = vfmaq_f32(s.v[j], vld1q_f32(a + i + 4 * j), vld1q_f32(b + i + 4 * j));
    if (i < n) {
        uint32x4_t m[4];
        first_lanes(n - i, m);
        lanes16 x = load16_tail(a + i, n - i), y = load16_tail(b + i, n - i);
        for (int j = 0; j < 4; j++) s.v[j] = vbslq_f32(m[j], vfmaq_f32(s.v[j], x.v[j], y.v[j]), s.v[j]);
    }
    return tree_sum16(s);
}

static float dot_f16_neon(const float *a, const uint16_t *b, int64_t n) {
    lanes16 s = lanes_set(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) s.v[j] = vfmaq_f32(s.v[j], vld1q_f32(a + i + 4 * j), f16x4(b + i + 4 * j));
    if (i < n) {
        uint32x4_t m[4];
        first_lanes(n - i, m);
        lanes16 x = load16_tail(a + i, n - i), y = load16_f16_tail(b + i, n - i);
        for (int j = 0; j < 4; j++) s.v[j] = vbslq_f32(m[j], vfmaq_f32(s.v[j], x.v[j], y.v[j]), s.v[j]);
    }
    return tree_sum16(s);
}

/* y = fma(a, x, y) elementwise; the scalar tails use fmaf (one FMADD on aarch64). */
static void axpy_f32_neon(float *y, float a, const float *x, int64_t n) {
    float32x4_t av = vdupq_n_f32(a);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), av, vld1q_f32(x + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static void axpy_f16_neon(float *y, float a, const uint16_t *x, int64_t n) {
    float32x4_t av = vdupq_n_f32(a);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), av, f16x4(x + i)));
    for (; i < n; i++) y[i] = fmaf(a, l8_f16_to_f32(x[i]), y[i]);
}

/* FCVTN keeps (most of) a NaN's payload; l8_f32_to_f16 returns the canonical sign|0x7E00. */
static void f32_to_f16_neon(uint16_t *out, const float *x, int64_t n) {
    const uint16x8_t expmask = vdupq_n_u16(0x7FFF), inf = vdupq_n_u16(0x7C00);
    const uint16x8_t sign = vdupq_n_u16(0x8000), qnan = vdupq_n_u16(0x7E00);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t hf = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        uint16x8_t h = vreinterpretq_u16_f16(hf);
        uint16x8_t nanmask = vcgtq_u16(vandq_u16(h, expmask), inf);
        vst1q_u16(out + i, vbslq_u16(nanmask, vorrq_u16(vandq_u16(h, sign), qnan), h));
    }
    for (; i < n; i++) out[i] = l8_f32_to_f16(x[i]);
}

static void f16_to_f32_neon(float *out, const uint16_t *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(out + i, f16x4(x + i));
    for (; i < n; i++) out[i] = l8_f16_to_f32(x[i]);
}

/* ---------------------------------------------------------------- attention */

/* Causal attention (kernels.h's attn_f16: the composition of dot_f16, softmax and axpy_f16)
 * computed a block of keys at a time: the keys and values are widened to f32 once per block
 * (16 KB, L1) and serve every query row of the call (the group's heads and the tokens); the
 * scores of 4 keys are computed together, each key's 16 canonical lanes in 4 registers, and
 * combined by the canonical tree for the 4 keys at once (ZIP of 64-bit halves, then ADDP); the
 * value sums keep up to 4 rows x 16 outputs in registers over a block of keys (each output's
 * chain of FMLA is the axpy one, in key order, from +0). */
enum { ATT_BUF = 4096 /* floats of widened K or V rows */, ATT_HD_MAX = 256, ATT_KEYS = 4 };

/* 4 keys' 16 canonical lanes (a[p][j]: lanes 4j..4j+3 of key p) -> their 4 tree sums, key p in
 * lane p: t8 = v0 + v2, v1 + v3; t4 = t8lo + t8hi; t2 = t4[0,1] + t4[2,3]; t2[0] + t2[1]. */
L8_INLINE float32x4_t tree_sum_4keys(float32x4_t a[ATT_KEYS][4]) {
    float32x4_t t4[ATT_KEYS];
    for (int p = 0; p < ATT_KEYS; p++) t4[p] = vaddq_f32(vaddq_f32(a[p][0], a[p][2]), vaddq_f32(a[p][1], a[p][3]));
    /* [p0, p1, q0, q1] + [p2, p3, q2, q3] = t2 of keys p and q side by side */
    float32x4_t t01 = vaddq_f32(vreinterpretq_f32_f64(vzip1q_f64(vreinterpretq_f64_f32(t4[0]), vreinterpretq_f64_f32(t4[1]))),
                                vreinterpretq_f32_f64(vzip2q_f64(vreinterpretq_f64_f32(t4[0]), vreinterpretq_f64_f32(t4[1]))));
    float32x4_t t23 = vaddq_f32(vreinterpretq_f32_f64(vzip1q_f64(vreinterpretq_f64_f32(t4[2]), vreinterpretq_f64_f32(t4[3]))),
                                vreinterpretq_f32_f64(vzip2q_f64(vreinterpretq_f64_f32(t4[2]), vreinterpretq_f64_f32(t4[3]))));
    return vpaddq_f32(t01, t23);
}

/* The scores of one query row against 4 widened keys (rows hdp floats apart, zero padded). */
L8_INLINE float32x4_t att_scores4(const float *qr, const float *kr, int64_t hdp, int64_t hd, float32x4_t scale) {
    float32x4_t a[ATT_KEYS][4];
    for (int p = 0; p < ATT_KEYS; p++)
        for (int j = 0; j < 4; j++) a[p][j] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= hd; i += 16) {
        lanes16 qv = load16(qr + i);
#pragma GCC unroll 4
        for (int p = 0; p < ATT_KEYS; p++)
            for (int j = 0; j < 4; j++) a[p][j] = vfmaq_f32(a[p][j], qv.v[j], vld1q_f32(kr + p * hdp + i + 4 * j));
    }
    if (i < hd) { /* the short last block: only its lanes are updated */
        uint32x4_t m[4];
        first_lanes(hd - i, m);
        lanes16 qv = load16_tail(qr + i, hd - i);
#pragma GCC unroll 4
        for (int p = 0; p < ATT_KEYS; p++)
            for (int j = 0; j < 4; j++)
                a[p][j] = vbslq_f32(m[j], vfmaq_f32(a[p][j], qv.v[j], vld1q_f32(kr + p * hdp + i + 4 * j)), a[p][j]);
    }
    return vmulq_f32(tree_sum_4keys(a), scale);
}

/* R rows (heads of one token: outputs o + r * hd, weights w + r * lds) += the n widened value
 * rows at vb (hdp apart), for the nc (<= 16) outputs from o on; first: start from +0. */
L8_INLINE void att_values(const int R, float *o, int64_t hd, const float *w, int64_t lds, const float *vb,
                          int64_t hdp, int64_t n, int nc, int first) {
    float32x4_t acc[4][4];
    for (int r = 0; r < R; r++) {
        lanes16 l = first ? lanes_set(0.0f) : nc == 16 ? load16(o + r * hd) : load16_tail(o + r * hd, nc);
        for (int j = 0; j < 4; j++) acc[r][j] = l.v[j];
    }
    for (int64_t p = 0; p < n; p++) {
        const float *vr = vb + p * hdp;
        float32x4_t v0 = vld1q_f32(vr), v1 = vld1q_f32(vr + 4), v2 = vld1q_f32(vr + 8), v3 = vld1q_f32(vr + 12);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float a = w[r * lds + p];
            acc[r][0] = vfmaq_n_f32(acc[r][0], v0, a);
            acc[r][1] = vfmaq_n_f32(acc[r][1], v1, a);
            acc[r][2] = vfmaq_n_f32(acc[r][2], v2, a);
            acc[r][3] = vfmaq_n_f32(acc[r][3], v3, a);
        }
    }
    for (int r = 0; r < R; r++) {
        lanes16 l = {{acc[r][0], acc[r][1], acc[r][2], acc[r][3]}};
        if (nc == 16) store16(o + r * hd, l);
        else store16_tail(o + r * hd, l, nc);
    }
}

/* Rows p0 .. p1 - 1 of an f16 cache (ldkv apart) widened into buf, hdp floats each (zeros after
 * hd), and zero rows up to the next multiple of 4. */
static void att_widen(float *buf, const uint16_t *src, int64_t ldkv, int64_t p0, int64_t p1, int64_t hd, int64_t hdp) {
    int64_t pz = p0 + ((p1 - p0 + ATT_KEYS - 1) & ~(int64_t)(ATT_KEYS - 1));
    for (int64_t p = p0; p < pz; p++) {
        float *d = buf + (p - p0) * hdp;
        int64_t j = 0;
        if (p < p1)
            for (; j + 4 <= hd; j += 4) vst1q_f32(d + j, f16x4(src + p * ldkv + j));
        for (; j < hdp; j++) d[j] = p < p1 && j < hd ? l8_f16_to_f32(src[p * ldkv + j]) : 0.0f;
    }
}

static void attn_f16_neon(float *out, const float *q, int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0,
                          const uint16_t *k, const uint16_t *v, int64_t ldkv, float scale, float *scores, int64_t lds) {
    if (hd > ATT_HD_MAX || hd < 1) {
        l8_attn_f16_compose(dot_f16_neon, softmax_neon, axpy_f16_neon, out, q, ldq, nt, group, hd, n0, k, v, ldkv,
                            scale, scores, lds);
        return;
    }
    float buf[ATT_BUF + 16]; /* + 16: the last chunk of att_values reads 16 outputs */
    const int64_t hdp = (hd + 15) & ~(int64_t)15, kb = (ATT_BUF / hdp) & ~(int64_t)(ATT_KEYS - 1), np = n0 + nt;
    const float32x4_t sv = vdupq_n_f32(scale);
    for (int64_t p0 = 0; p0 < np; p0 += kb) { /* scores, a block of keys at a time */
        int64_t p1 = p0 + kb < np ? p0 + kb : np;
        att_widen(buf, k, ldkv, p0, p1, hd, hdp);
        for (int64_t t = 0; t < nt; t++) {
            int64_t pe = n0 + t + 1 < p1 ? n0 + t + 1 : p1;
            for (int64_t g = 0; g < group; g++) {
                const float *qr = q + t * ldq + g * hd;
                float *s = scores + (t * group + g) * lds;
                for (int64_t ps = p0; ps < pe; ps += ATT_KEYS) {
                    float32x4_t r = att_scores4(qr, buf + (ps - p0) * hdp, hdp, hd, sv);
                    if (pe - ps >= ATT_KEYS) {
                        vst1q_f32(s + ps, r);
                    } else {
                        float tmp[ATT_KEYS];
                        vst1q_f32(tmp, r);
                        memcpy(s + ps, tmp, (size_t)(pe - ps) * sizeof(float));
                    }
                }
            }
        }
    }
    for (int64_t t = 0; t < nt; t++)
        for (int64_t g = 0; g < group; g++) softmax_neon(scores + (t * group + g) * lds, n0 + t + 1);
    for (int64_t p0 = 0; p0 < np; p0 += kb) { /* values */
        int64_t p1 = p0 + kb < np ? p0 + kb : np;
        att_widen(buf, v, ldkv, p0, p1, hd, hdp);
        for (int64_t t = 0; t < nt; t++) {
            int64_t pe = n0 + t + 1 < p1 ? n0 + t + 1 : p1;
            if (pe <= p0) continue;
            for (int64_t c = 0; c < hd; c += 16) {
                int nc = hd - c < 16 ? (int)(hd - c) : 16;
                for (int64_t g = 0; g < group; g += 4) {
                    float *o = out + t * ldq + g * hd + c;
                    const float *w = scores + (t * group + g) * lds + p0;
                    switch (group - g < 4 ? group - g : 4) {
                    case 4: att_values(4, o, hd, w, lds, buf + c, hdp, pe - p0, nc, p0 == 0); break;
                    case 3: att_values(3, o, hd, w, lds, buf + c, hdp, pe - p0, nc, p0 == 0); break;
                    case 2: att_values(2, o, hd, w, lds, buf + c, hdp, pe - p0, nc, p0 == 0); break;
                    default: att_values(1, o, hd, w, lds, buf + c, hdp, pe - p0, nc, p0 == 0); break;
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- Walsh-Hadamard */

/* The stages d = 1, 2, 4, 8 of a 16-float block in 4 registers: within a register the pairs are
 * broadcast by TRN (d = 1) and 64-bit ZIP (d = 2) and the upper lane of each pair takes a - b;
 * d = 4 and 8 pair whole registers. */
L8_INLINE lanes16 fwht16(lanes16 x) {
    const uint32x4_t odd = vreinterpretq_u32_u64(vdupq_n_u64(0xFFFFFFFF00000000ull)); /* lanes 1, 3 */
    const uint32x4_t high = vreinterpretq_u32_u64(vcombine_u64(vdup_n_u64(0), vdup_n_u64(~0ull))); /* lanes 2, 3 */
    for (int j = 0; j < 4; j++) {
        float32x4_t a = vtrn1q_f32(x.v[j], x.v[j]), b = vtrn2q_f32(x.v[j], x.v[j]);
        float32x4_t y = vbslq_f32(odd, vsubq_f32(a, b), vaddq_f32(a, b));
        float64x2_t y64 = vreinterpretq_f64_f32(y);
        a = vreinterpretq_f32_f64(vzip1q_f64(y64, y64)), b = vreinterpretq_f32_f64(vzip2q_f64(y64, y64));
        x.v[j] = vbslq_f32(high, vsubq_f32(a, b), vaddq_f32(a, b));
    }
    float32x4_t y0 = vaddq_f32(x.v[0], x.v[1]), y1 = vsubq_f32(x.v[0], x.v[1]);
    float32x4_t y2 = vaddq_f32(x.v[2], x.v[3]), y3 = vsubq_f32(x.v[2], x.v[3]);
    x.v[0] = vaddq_f32(y0, y2), x.v[2] = vsubq_f32(y0, y2);
    x.v[1] = vaddq_f32(y1, y3), x.v[3] = vsubq_f32(y1, y3);
    return x;
}

/* Each output is the same single addition or subtraction of the same two values as in
 * l8_fwht_scalar, stage after stage, so the bits match; two stages per pass over memory
 * (radix 4), the scaling fused into the last pass (the same product, rounded once). */
static void fwht_neon(float *x, int64_t h, int64_t nblocks, float norm) {
    if (h < 16) {
        l8_fwht_scalar(x, h, nblocks, norm);
        return;
    }
    const float32x4_t nv = vdupq_n_f32(norm);
    for (int64_t bl = 0; bl < nblocks; bl++) {
        float *v = x + bl * h;
        for (int64_t i = 0; i < h; i += 16) {
            lanes16 r = fwht16(load16(v + i));
            if (h == 16)
                for (int j = 0; j < 4; j++) r.v[j] = vmulq_f32(r.v[j], nv);
            store16(v + i, r);
        }
        for (int64_t d = 16; d < h; d <<= 2) {
            if (4 * d <= h) { /* stages d and 2d */
                int last = 4 * d == h;
                for (int64_t i = 0; i < h; i += 4 * d)
                    for (int64_t j = i; j < i + d; j += 4) {
                        float32x4_t x0 = vld1q_f32(v + j), x1 = vld1q_f32(v + j + d);
                        float32x4_t x2 = vld1q_f32(v + j + 2 * d), x3 = vld1q_f32(v + j + 3 * d);
                        float32x4_t y0 = vaddq_f32(x0, x1), y1 = vsubq_f32(x0, x1);
                        float32x4_t y2 = vaddq_f32(x2, x3), y3 = vsubq_f32(x2, x3);
                        float32x4_t z0 = vaddq_f32(y0, y2), z2 = vsubq_f32(y0, y2);
                        float32x4_t z1 = vaddq_f32(y1, y3), z3 = vsubq_f32(y1, y3);
                        if (last) z0 = vmulq_f32(z0, nv), z1 = vmulq_f32(z1, nv), z2 = vmulq_f32(z2, nv), z3 = vmulq_f32(z3, nv);
                        vst1q_f32(v + j, z0);
                        vst1q_f32(v + j + d, z1);
                        vst1q_f32(v + j + 2 * d, z2);
                        vst1q_f32(v + j + 3 * d, z3);
                    }
            } else { /* the last stage alone (d = h / 2) */
                for (int64_t j = 0; j < d; j += 4) {
                    float32x4_t x0 = vld1q_f32(v + j), x1 = vld1q_f32(v + j + d);
                    vst1q_f32(v + j, vmulq_f32(vaddq_f32(x0, x1), nv));
                    vst1q_f32(v + j + d, vmulq_f32(vsubq_f32(x0, x1), nv));
                }
            }
        }
    }
}

void l8_kernels_fill_neon(l8_kernels *k) {
    k->isa = L8_ISA_NEON;
    k->name = "neon";
    k->quantize_act = quantize_act_neon;
    k->matmul_q8 = matmul_q8_neon;
    k->matmul_q4 = matmul_q4_neon;
    k->rmsnorm = rmsnorm_neon;
    k->swiglu = swiglu_neon;
    k->softmax = softmax_neon;
    k->exp = exp_neon;
    k->dot_f32 = dot_f32_neon;
    k->dot_f16 = dot_f16_neon;
    k->axpy_f32 = axpy_f32_neon;
    k->axpy_f16 = axpy_f16_neon;
    k->f32_to_f16 = f32_to_f16_neon;
    k->f16_to_f32 = f16_to_f32_neon;
    k->attn_f16 = attn_f16_neon;
    k->fwht = fwht_neon;
}

#endif
