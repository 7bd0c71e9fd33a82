/* The i8mm level (ARMv8.6 SMMLA: Cortex-A510/A710/X2 and later, Neoverse V1/N2, Apple M2+): the
 * quantized GEMM (several tokens) with SMMLA; one token (decode) stays on the dotprod GEMV,
 * which needs no reshuffling and is memory bound anyway, and every other entry is the neon
 * level's. i8mm implies dotprod (dispatch.c requires both).
 *
 * SMMLA, vmmlaq_s32(acc, a, b), treats a and b as 2x8 int8 matrices (bytes 0..7 the first row,
 * 8..15 the second) and adds a * b^T, a 2x2 int32 result [a0.b0, a0.b1, a1.b0, a1.b1]: 32
 * multiply-adds per instruction against SDOT's 16. Here a = two weight rows and b = two tokens,
 * each over 8 consecutive columns:
 *   Q8: a block holds 4 columns of a row, so the quads of blocks b and b+1 are interleaved by
 *       32-bit elements (ZIP1/ZIP2: rows 4i, 4i+1 and rows 4i+2, 4i+3, columns 4b .. 4b+7),
 *       and the token rows are the 8 activation bytes at 4b (two 8-byte loads per token pair);
 *       an odd last block of a group pairs with zeros (and its activations are loaded 4 bytes
 *       at a time, so nothing past the group is read).
 *   Q4: a block already holds 8 columns of a row (low nibbles 8b..8b+3, high 8b+4..8b+7), so
 *       ZIP1/ZIP2 of the unpacked nibbles give the rows; the nibble is q + 8 (0..15) and the
 *       accumulators start from -8 * (sum of the token's activations over the group), per
 *       token, i.e. [c(t0), c(t1), c(t0), c(t1)].
 * Blocks of 2 token pairs x 16 rows: 16 accumulators (8 row pairs x 2 token pairs). A last odd
 * token pairs with itself (the same cost as a pair, its duplicate result dropped). At the
 * group's end UZP1/UZP2 turn [r t0, r t1, r' t0, r' t1] pairs back into 4 rows per token for the
 * reference-order rescale ((float)acc * ws) * xs, so outputs are bit-identical to
 * l8_q_matmul_ref (built with -ffp-contract=off). */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define L8_INLINE static inline __attribute__((always_inline))

enum { PAIRS = 2, TOK_BLOCK = 2 * PAIRS };

L8_INLINE float32x4_t rescale_add(float32x4_t o, int32x4_t acc, float32x4_t ws, float32x4_t xs) {
    return vaddq_f32(o, vmulq_f32(vmulq_f32(vcvtq_f32_s32(acc), ws), xs));
}

L8_INLINE float32x4_t load_scales4(const void *scales, int64_t at, int q4) {
    if (q4) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)scales + at)));
    return vld1q_f32((const float *)scales + at);
}

/* The 2x8 token matrix: 8 bytes of token t, then 8 of token u. */
L8_INLINE int8x16_t tok_pair8(const int8_t *t, const int8_t *u) { return vcombine_s8(vld1_s8(t), vld1_s8(u)); }

/* The same with 4 bytes per token, zeros in columns 4..7. */
L8_INLINE int8x16_t tok_pair4(const int8_t *t, const int8_t *u) {
    int32_t a, b;
    memcpy(&a, t, 4);
    memcpy(&b, u, 4);
    return vreinterpretq_s8_s32(vsetq_lane_s32(b, vsetq_lane_s32(a, vdupq_n_s32(0), 0), 2));
}

L8_INLINE int8x16_t zip1_32(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s32(vzip1q_s32(vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b)));
}
L8_INLINE int8x16_t zip2_32(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s32(vzip2q_s32(vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b)));
}

/* Accumulators -> o: a[p][2i] = [r4i t, r4i u, r4i+1 t, r4i+1 u], a[p][2i+1] the same for rows
 * 4i+2, 4i+3. Tokens beyond T (the duplicate of an odd last one) are dropped. */
L8_INLINE void rescale_pairs(const int P, int T, int32x4_t a[PAIRS][8], const void *sc, int64_t at, int q4,
                             const float *xs, float *o) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        float32x4_t ws = load_scales4(sc, at + 4 * i, q4);
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            float *o0 = o + (2 * p) * L8_TILE_ROWS + 4 * i;
            vst1q_f32(o0, rescale_add(vld1q_f32(o0), vuzp1q_s32(a[p][2 * i], a[p][2 * i + 1]), ws,
                                      vdupq_n_f32(xs[2 * p])));
            if (2 * p + 1 < T) {
                float *o1 = o0 + L8_TILE_ROWS;
                vst1q_f32(o1, rescale_add(vld1q_f32(o1), vuzp2q_s32(a[p][2 * i], a[p][2 * i + 1]), ws,
                                          vdupq_n_f32(xs[2 * p + 1])));
            }
        }
    }
}

/* One tile against T tokens (P = ceil(T / 2) pairs); o: T x 16 outputs. */
L8_INLINE void tile_q8(const int P, int T, const l8_qgeom *g, const int8_t *wt, const float *sc, int64_t sc0,
                       const int8_t *x, const float *xs, float *o) {
    const int64_t kp = g->kp;
    const int8_t *xt[TOK_BLOCK];
    for (int t = 0; t < 2 * P; t++) xt[t] = x + (t < T ? t : T - 1) * kp;
    for (int i = 0; i < T * L8_TILE_ROWS; i += 4) vst1q_f32(o + i, vdupq_n_f32(0.0f));
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb, b = b0;
        int32x4_t a[PAIRS][8];
#pragma GCC unroll 2
        for (int p = 0; p < P; p++)
            for (int r = 0; r < 8; r++) a[p][r] = vdupq_n_s32(0);
        for (; b + 2 <= b1; b += 2) {
            int8x16_t xp[PAIRS];
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) xp[p] = tok_pair8(xt[2 * p] + b * 4, xt[2 * p + 1] + b * 4);
            const int8_t *w0 = wt + b * 64;
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                int8x16_t v0 = vld1q_s8(w0 + 16 * i), v1 = vld1q_s8(w0 + 64 + 16 * i);
                int8x16_t r01 = zip1_32(v0, v1), r23 = zip2_32(v0, v1);
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) {
                    a[p][2 * i] = vmmlaq_s32(a[p][2 * i], r01, xp[p]);
                    a[p][2 * i + 1] = vmmlaq_s32(a[p][2 * i + 1], r23, xp[p]);
                }
            }
        }
        if (b < b1) { /* an odd block: columns 4..7 of the pair are zero on both sides */
            int8x16_t xp[PAIRS], z = vdupq_n_s8(0);
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) xp[p] = tok_pair4(xt[2 * p] + b * 4, xt[2 * p + 1] + b * 4);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                int8x16_t v0 = vld1q_s8(wt + b * 64 + 16 * i);
                int8x16_t r01 = zip1_32(v0, z), r23 = zip2_32(v0, z);
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) {
                    a[p][2 * i] = vmmlaq_s32(a[p][2 * i], r01, xp[p]);
                    a[p][2 * i + 1] = vmmlaq_s32(a[p][2 * i + 1], r23, xp[p]);
                }
            }
        }
        rescale_pairs(P, T, a, sc, sc0 + gi * 16, 0, xs, o);
    }
}

L8_INLINE void tile_q4(const int P, int T, const l8_qgeom *g, const uint8_t *wt, const uint16_t *sc, int64_t sc0,
                       const int8_t *x, const float *xs, const int32_t *xcorr, float *o) {
    const int64_t kp = g->kp;
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    const int8_t *xt[TOK_BLOCK];
    int tt[TOK_BLOCK];
    for (int t = 0; t < 2 * P; t++) tt[t] = t < T ? t : T - 1, xt[t] = x + tt[t] * kp;
    for (int i = 0; i < T * L8_TILE_ROWS; i += 4) vst1q_f32(o + i, vdupq_n_f32(0.0f));
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
        int32x4_t a[PAIRS][8];
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            int32x4_t c = vzip1q_s32(vdupq_n_s32(xcorr[tt[2 * p] * g->ng + gi]),
                                     vdupq_n_s32(xcorr[tt[2 * p + 1] * g->ng + gi]));
            for (int r = 0; r < 8; r++) a[p][r] = c;
        }
        for (int64_t b = b0; b < b1; b++) {
            int8x16_t xp[PAIRS];
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) xp[p] = tok_pair8(xt[2 * p] + b * 8, xt[2 * p + 1] + b * 8);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                uint8x16_t v = vld1q_u8(wt + b * 64 + 16 * i);
                int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, low4)), hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
                int8x16_t r01 = zip1_32(lo, hi), r23 = zip2_32(lo, hi);
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) {
                    a[p][2 * i] = vmmlaq_s32(a[p][2 * i], r01, xp[p]);
                    a[p][2 * i + 1] = vmmlaq_s32(a[p][2 * i + 1], r23, xp[p]);
                }
            }
        }
        rescale_pairs(P, T, a, sc, sc0 + gi * 16, 1, xs, o);
    }
}

/* A block of T (1..4) tokens of one tile: one or two token pairs. */
static void block_i8mm(int q4, int T, const l8_qgeom *g, const uint8_t *wt, const void *sc, int64_t sc0,
                       const int8_t *x, const float *xs, const int32_t *xcorr, float *o) {
    if (q4) {
        if (T > 2) tile_q4(2, T, g, wt, sc, sc0, x, xs, xcorr, o);
        else tile_q4(1, T, g, wt, sc, sc0, x, xs, xcorr, o);
    } else {
        if (T > 2) tile_q8(2, T, g, (const int8_t *)wt, sc, sc0, x, xs, o);
        else tile_q8(1, T, g, (const int8_t *)wt, sc, sc0, x, xs, o);
    }
}

static void matmul_i8mm(int q4, float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w,
                        int64_t r0, int64_t r1) {
    l8_qgeom g;
    if (n < 2 || !l8_qgeom_init(&g, w) || g.ng > L8_ARM_XCORR_CAP) {
        /* decode, or grouping the SIMD kernels do not handle (the dotprod level then falls back to scalar) */
        if (q4) l8_matmul_q4_dotprod(out, xq, xs, n, w, r0, r1);
        else l8_matmul_q8_dotprod(out, xq, xs, n, w, r0, r1);
        return;
    }
    if (r1 > g.rows) r1 = g.rows;
    if (r0 >= r1) return;
    l8_arm_matmul(q4, TOK_BLOCK, block_i8mm, out, xq, xs, n, w, &g, r0, r1);
}

static void matmul_q8_i8mm(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                           int64_t r1) {
    matmul_i8mm(0, out, xq, xs, n, w, r0, r1);
}

static void matmul_q4_i8mm(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                           int64_t r1) {
    matmul_i8mm(1, out, xq, xs, n, w, r0, r1);
}

void l8_kernels_fill_i8mm(l8_kernels *k) {
    l8_kernels_fill_dotprod(k);
    k->isa = L8_ISA_I8MM;
    k->name = "i8mm";
    k->matmul_q8 = matmul_q8_i8mm;
    k->matmul_q4 = matmul_q4_i8mm;
}

#endif
