/* The dotprod level (ARMv8.2 SDOT: Cortex-A55 and A76, i.e. both clusters of the RK3588, and
 * every later core): the quantized matmuls with SDOT; everything else is the neon level's.
 *
 * SDOT by element, vdotq_laneq_s32(acc, w, x, j), adds to each of the 4 int32 lanes the dot
 * product of 4 weight bytes and the 4-byte element j of x. A 16-byte load of a 64-byte block is
 * exactly a quad (rows 4i..4i+3, 4 columns each), so one SDOT does a quad x one block, and one
 * 16-byte activation load serves 4 consecutive blocks (Q8) or 2 (Q4: low nibbles take element
 * 2j, high nibbles 2j+1) through the element index: no broadcast instruction at all.
 *   Q8: signed weights times signed activations, nothing to correct.
 *   Q4: the stored nibble q + 8 (0..15, AND / USHR) as a signed byte; the accumulators start
 *       from -8 * (sum of the token's activations over the group), as on the other levels.
 * One token (decode) takes a GEMV loop with two accumulators per quad, alternating blocks, so
 * that consecutive SDOTs do not wait on each other; more tokens go in blocks of up to 4 per
 * weight load (16 accumulators + 4 activation registers + the weights fill the 32 registers).
 * The float rescale is the reference's ((float)acc * ws) * xs, group after group, so outputs
 * are bit-identical to l8_q_matmul_ref (built with -ffp-contract=off). */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define L8_INLINE static inline __attribute__((always_inline))

enum { TOK_BLOCK = 4 };

L8_INLINE float32x4_t rescale_add(float32x4_t o, int32x4_t acc, float32x4_t ws, float32x4_t xs) {
    return vaddq_f32(o, vmulq_f32(vmulq_f32(vcvtq_f32_s32(acc), ws), xs));
}

L8_INLINE float32x4_t load_scales4(const void *scales, int64_t at, int q4) {
    if (q4) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)scales + at)));
    return vld1q_f32((const float *)scales + at);
}

/* 4 bytes at p in element 0 (the rest zero). */
L8_INLINE int8x16_t load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vsetq_lane_s32(v, vdupq_n_s32(0), 0));
}

/* 8 bytes at p in elements 0 and 1. */
L8_INLINE int8x16_t load8(const int8_t *p) { return vcombine_s8(vld1_s8(p), vdup_n_s8(0)); }

/* ---------------------------------------------------------------- one token */

/* One tile, one token: o receives the 16 outputs. */
L8_INLINE void gemv_q8(const l8_qgeom *g, const int8_t *wt, const float *sc, int64_t sc0, const int8_t *x, float xs,
                       float *o) {
    float32x4_t acc_o[4];
    for (int i = 0; i < 4; i++) acc_o[i] = vdupq_n_f32(0.0f);
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb, b = b0;
        int32x4_t a0[4], a1[4];
        for (int i = 0; i < 4; i++) a0[i] = a1[i] = vdupq_n_s32(0);
        for (; b + 4 <= b1; b += 4) {
            int8x16_t xv = vld1q_s8(x + b * 4);
            const int8_t *p = wt + b * 64;
            __builtin_prefetch(p + 1024);
#define STEP(j, acc)                                                                             \
    for (int i = 0; i < 4; i++) acc[i] = vdotq_laneq_s32(acc[i], vld1q_s8(p + 64 * (j) + 16 * i), xv, j);
            STEP(0, a0)
            STEP(1, a1)
            STEP(2, a0)
            STEP(3, a1)
#undef STEP
        }
        for (; b < b1; b++) {
            int8x16_t xv = load4(x + b * 4);
            for (int i = 0; i < 4; i++) a0[i] = vdotq_laneq_s32(a0[i], vld1q_s8(wt + b * 64 + 16 * i), xv, 0);
        }
        float32x4_t xsv = vdupq_n_f32(xs);
        for (int i = 0; i < 4; i++)
            acc_o[i] = rescale_add(acc_o[i], vaddq_s32(a0[i], a1[i]), vld1q_f32(sc + sc0 + gi * 16 + 4 * i), xsv);
    }
    for (int i = 0; i < 4; i++) vst1q_f32(o + 4 * i, acc_o[i]);
}

L8_INLINE void gemv_q4(const l8_qgeom *g, const uint8_t *wt, const uint16_t *sc, int64_t sc0, const int8_t *x,
                       float xs, const int32_t *xcorr, float *o) {
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    float32x4_t acc_o[4];
    for (int i = 0; i < 4; i++) acc_o[i] = vdupq_n_f32(0.0f);
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb, b = b0;
        int32x4_t a0[4], a1[4];
        for (int i = 0; i < 4; i++) a0[i] = vdupq_n_s32(xcorr[gi]), a1[i] = vdupq_n_s32(0);
        for (; b + 2 <= b1; b += 2) {
            int8x16_t xv = vld1q_s8(x + b * 8);
            const uint8_t *p = wt + b * 64;
            __builtin_prefetch(p + 1024);
#define STEP(j)                                                                                       \
    for (int i = 0; i < 4; i++) {                                                                     \
        uint8x16_t v = vld1q_u8(p + 64 * (j) + 16 * i);                                               \
        a0[i] = vdotq_laneq_s32(a0[i], vreinterpretq_s8_u8(vandq_u8(v, low4)), xv, 2 * (j));          \
        a1[i] = vdotq_laneq_s32(a1[i], vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), xv, 2 * (j) + 1);       \
    }
            STEP(0)
            STEP(1)
#undef STEP
        }
        if (b < b1) {
            int8x16_t xv = load8(x + b * 8);
            for (int i = 0; i < 4; i++) {
                uint8x16_t v = vld1q_u8(wt + b * 64 + 16 * i);
                a0[i] = vdotq_laneq_s32(a0[i], vreinterpretq_s8_u8(vandq_u8(v, low4)), xv, 0);
                a1[i] = vdotq_laneq_s32(a1[i], vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), xv, 1);
            }
        }
        float32x4_t xsv = vdupq_n_f32(xs);
        for (int i = 0; i < 4; i++)
            acc_o[i] = rescale_add(acc_o[i], vaddq_s32(a0[i], a1[i]), load_scales4(sc, sc0 + gi * 16 + 4 * i, 1), xsv);
    }
    for (int i = 0; i < 4; i++) vst1q_f32(o + 4 * i, acc_o[i]);
}

/* ---------------------------------------------------------------- several tokens */

/* One tile against T (2..4) tokens; o: T x 16 outputs, kept in memory (L1) between groups since
 * the 16 int32 accumulators already take half the registers. */
L8_INLINE void tile_q8(const int T, const l8_qgeom *g, const int8_t *wt, const float *sc, int64_t sc0,
                       const int8_t *x, const float *xs, float *o) {
    const int64_t kp = g->kp;
    for (int i = 0; i < T * L8_TILE_ROWS; i += 4) vst1q_f32(o + i, vdupq_n_f32(0.0f));
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb, b = b0;
        int32x4_t a[TOK_BLOCK][4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++) a[t][i] = vdupq_n_s32(0);
        for (; b + 4 <= b1; b += 4) {
            int8x16_t xv[TOK_BLOCK];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) xv[t] = vld1q_s8(x + t * kp + b * 4);
            const int8_t *p = wt + b * 64;
#define STEP(j)                                                                      \
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                            \
        int8x16_t w = vld1q_s8(p + 64 * (j) + 16 * i);                               \
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) a[t][i] = vdotq_laneq_s32(a[t][i], w, xv[t], j); \
    }
            STEP(0)
            STEP(1)
            STEP(2)
            STEP(3)
#undef STEP
        }
        for (; b < b1; b++) {
            int8x16_t xv[TOK_BLOCK];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) xv[t] = load4(x + t * kp + b * 4);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                int8x16_t w = vld1q_s8(wt + b * 64 + 16 * i);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) a[t][i] = vdotq_laneq_s32(a[t][i], w, xv[t], 0);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            float32x4_t ws = vld1q_f32(sc + sc0 + gi * 16 + 4 * i);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                float *ot = o + t * L8_TILE_ROWS + 4 * i;
                vst1q_f32(ot, rescale_add(vld1q_f32(ot), a[t][i], ws, vdupq_n_f32(xs[t])));
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
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb, b = b0;
        int32x4_t a[TOK_BLOCK][4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++) a[t][i] = vdupq_n_s32(xcorr[t * g->ng + gi]);
        for (; b + 2 <= b1; b += 2) {
            int8x16_t xv[TOK_BLOCK];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) xv[t] = vld1q_s8(x + t * kp + b * 8);
            const uint8_t *p = wt + b * 64;
#define STEP(j)                                                                                    \
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                          \
        uint8x16_t v = vld1q_u8(p + 64 * (j) + 16 * i);                                            \
        int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, low4)), hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4)); \
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {                                      \
            a[t][i] = vdotq_laneq_s32(a[t][i], lo, xv[t], 2 * (j));                                \
            a[t][i] = vdotq_laneq_s32(a[t][i], hi, xv[t], 2 * (j) + 1);                            \
        }                                                                                          \
    }
            STEP(0)
            STEP(1)
#undef STEP
        }
        if (b < b1) {
            int8x16_t xv[TOK_BLOCK];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) xv[t] = load8(x + t * kp + b * 8);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                uint8x16_t v = vld1q_u8(wt + b * 64 + 16 * i);
                int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, low4)), hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    a[t][i] = vdotq_laneq_s32(a[t][i], lo, xv[t], 0);
                    a[t][i] = vdotq_laneq_s32(a[t][i], hi, xv[t], 1);
                }
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            float32x4_t ws = load_scales4(sc, sc0 + gi * 16 + 4 * i, 1);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                float *ot = o + t * L8_TILE_ROWS + 4 * i;
                vst1q_f32(ot, rescale_add(vld1q_f32(ot), a[t][i], ws, vdupq_n_f32(xs[t])));
            }
        }
    }
}

/* T tokens (1..4) of one tile: a switch so that each count gets its unrolled body. */
static void tile_block(int q4, int T, const l8_qgeom *g, const uint8_t *wt, const void *sc, int64_t sc0,
                       const int8_t *x, const float *xs, const int32_t *xcorr, float *o) {
    if (q4) {
        switch (T) {
        case 4: tile_q4(4, g, wt, sc, sc0, x, xs, xcorr, o); break;
        case 3: tile_q4(3, g, wt, sc, sc0, x, xs, xcorr, o); break;
        case 2: tile_q4(2, g, wt, sc, sc0, x, xs, xcorr, o); break;
        default: gemv_q4(g, wt, sc, sc0, x, xs[0], xcorr, o); break;
        }
    } else {
        const int8_t *w8 = (const int8_t *)wt;
        switch (T) {
        case 4: tile_q8(4, g, w8, sc, sc0, x, xs, o); break;
        case 3: tile_q8(3, g, w8, sc, sc0, x, xs, o); break;
        case 2: tile_q8(2, g, w8, sc, sc0, x, xs, o); break;
        default: gemv_q8(g, w8, sc, sc0, x, xs[0], o); break;
        }
    }
}

static void matmul_dotprod(int q4, float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w,
                           int64_t r0, int64_t r1) {
    l8_qgeom g;
    if (!l8_qgeom_init(&g, w) || g.ng > L8_ARM_XCORR_CAP) {
        l8_matmul_q_scalar(out, xq, xs, n, w, r0, r1);
        return;
    }
    if (r1 > g.rows) r1 = g.rows;
    if (n <= 0 || r0 >= r1) return;
    l8_arm_matmul(q4, TOK_BLOCK, tile_block, out, xq, xs, n, w, &g, r0, r1);
}

void l8_matmul_q8_dotprod(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                          int64_t r1) {
    matmul_dotprod(0, out, xq, xs, n, w, r0, r1);
}

void l8_matmul_q4_dotprod(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                          int64_t r1) {
    matmul_dotprod(1, out, xq, xs, n, w, r0, r1);
}

void l8_kernels_fill_dotprod(l8_kernels *k) {
    l8_kernels_fill_neon(k);
    k->isa = L8_ISA_DOTPROD;
    k->name = "dotprod";
    k->matmul_q8 = l8_matmul_q8_dotprod;
    k->matmul_q4 = l8_matmul_q4_dotprod;
}

#endif
