/* AVX-512 VNNI quantized matmuls and the 16-lane float helpers (the avx512 level; activation
 * quantization and the f16 row conversions are the AVX2 ones: on Zen 4 512-bit float ops are
 * double-pumped and those kernels are a small share of the time). The float helpers follow the
 * canonical evaluation order of kernels.h bit for bit, like the other levels.
 *
 * vpdpbusd multiplies unsigned bytes by signed bytes. The signed operand is the one that can
 * come from memory with an embedded {1to16} broadcast, so the activations (4 bytes per token
 * per block) take that place and the weights are made unsigned:
 *   Q8: w + 128 (xor 0x80, once per 64-byte block, shared by all tokens of the block), and
 *   Q4: the stored nibble q + 8 as it is (0..15).
 * Both give  sum (w + off) x = sum w x + off * sum x,  so the exact sum is recovered by
 * subtracting off * (sum of the activations over the group), which depends on the token and
 * group only: it is computed once per call (xcorr below), not per tile. The int32 arithmetic
 * wraps, and wrapping is harmless: the corrected sum is exact whenever it fits (docs/QUANT.md).
 *
 * Loop order: tile (16 rows, 16*Kp bytes: stays in L2) outer, then tokens. With 8 or more
 * tokens, pairs of full tiles go together in blocks of 8 tokens (tile2_tokens): per 64-byte
 * block, 2 weight loads + 2 flips (or nibble unpacks) and 8 broadcast activation loads (into a
 * register) feed 16 vpdpbusd, i.e. 0.6 loads per vpdpbusd instead of 1.1 with one tile and the
 * embedded {1to16} broadcast; the weights get a software prefetch (measured +5-10%). Leftover
 * tokens and an unpaired last tile take the one-tile blocks of up to 8 tokens (tile_tokens),
 * where each 64-byte load feeds up to 8 (Q8) or 16 (Q4) vpdpbusd. Each weight byte comes from
 * memory once per call. One token (decode) takes a GEMV loop with 4 independent accumulators.
 * Measured not to help (single thread, Xeon with AVX-512 VNNI): 10-12 tokens per tile pair
 * (GPR pressure; no gain even without spills), K-blocking for L1 (a tile pair that fits L1
 * runs no faster: the core, not L2, is the limit), one tile x 16 tokens, unrolling over blocks.
 * Q4 with 32-column groups is bound by the vector ALU: per group and token the rescale takes 4
 * float ops per 16 rows against 8 vpdpbusd, which the exactness contract does not let us fuse.
 * The float rescale follows the reference order exactly: ((float)acc * ws) * xs, then added. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define L8_INLINE static inline __attribute__((always_inline))

enum {
    XCORR_CAP = 16384, /* int32 corrections on the stack (64 KB): tokens per chunk = cap / groups */
    TOK_BLOCK = 8,
    GEMM_TOK = 8,  /* tokens per 2-tile block (12 measured no faster; more spill) */
    GEMM_PF = 512, /* GEMM software prefetch distance, bytes ahead in each of the 2 tiles */
    PF_DIST = 1024, /* GEMV software prefetch distance, bytes ahead in the weight stream */
};

/* Broadcasts 4 activation bytes (one block's worth for one token). */
L8_INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

L8_INLINE __m512i load_w(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }

/* acc += w (u8) . 4 activation bytes at p (s8, broadcast to all 16 lanes). GCC 12 compiles the
 * intrinsic with a register copy of the accumulator per call and without the embedded
 * broadcast (measured: ~40% of GEMM peak lost), hence the asm there; clang does it right. */
L8_INLINE __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t *p) {
#if defined(__GNUC__) && !defined(__clang__)
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, w, bcast4(p));
#endif
}

/* The 16 weight scales of one (tile, group) as f32. */
L8_INLINE __m512 load_scales(const void *scales, int64_t at, int q4) {
    if (q4) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)scales + at)));
    return _mm512_loadu_ps((const float *)scales + at);
}

/* Sum of len int8 values. */
static int32_t sum_i8(const int8_t *p, int64_t len) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i acc = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 64 <= len; i += 64) acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512((const void *)(p + i)));
    if (i < len) {
        __mmask64 m = ((__mmask64)1 << (len - i)) - 1;
        acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(m, p + i));
    }
    return _mm512_reduce_add_epi32(acc);
}

/* xcorr[t * ng + g] = -off * (sum of token t's activations over group g's blocks): the value the
 * accumulators start from. */
static void group_corrections(int32_t *xcorr, const int8_t *xq, int64_t nt, const l8_qgeom *g, int off) {
    for (int64_t t = 0; t < nt; t++) {
        const int8_t *x = xq + t * g->kp;
        for (int64_t gi = 0; gi < g->ng; gi++) {
            int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
            uint32_t s = (uint32_t)sum_i8(x + b0 * g->cpb, (b1 - b0) * g->cpb);
            xcorr[t * g->ng + gi] = (int32_t)(0u - s * (uint32_t)off); /* wraps, never UB */
        }
    }
}

/* acc (already corrected) -> float, rescaled in the reference order, added to o. */
L8_INLINE __m512 rescale_add(__m512 o, __m512i acc, __m512 ws, __m512 xs) {
    return _mm512_add_ps(o, _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), ws), xs));
}

/* One tile against T tokens (T constant after inlining). x: the first token's activations,
 * out: the first token's output at the tile's first row. */
L8_INLINE void tile_tokens(const int T, const int q4, const l8_qgeom *g, const uint8_t *wt, const void *sc,
                           int64_t sc0, const int8_t *x, const float *xs, const int32_t *xcorr, float *out,
                           int64_t ldo, __mmask16 rmask) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), low4 = _mm512_set1_epi8(0x0F);
    __m512 o[TOK_BLOCK], xsv[TOK_BLOCK];
    __m512i acc[TOK_BLOCK];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) o[t] = _mm512_setzero_ps(), xsv[t] = _mm512_set1_ps(xs[t]);
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
        /* starting from -off * sum(x) (xcorr) saves a subtraction per token and group (Q4 G = 32 has a
         * rescale every 4 blocks, so these few ops per token are a visible share) */
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[t] = _mm512_set1_epi32(xcorr[t * g->ng + gi]);
        for (int64_t b = b0; b < b1; b++) {
            __m512i v = load_w(wt + b * 64);
            if (q4) {
                __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) {
                    const int8_t *xb = x + t * g->kp + b * 8;
                    acc[t] = dpbusd_bcast(acc[t], lo, xb);
                    acc[t] = dpbusd_bcast(acc[t], hi, xb + 4);
                }
            } else {
                v = _mm512_xor_si512(v, flip);
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) acc[t] = dpbusd_bcast(acc[t], v, x + t * g->kp + b * 4);
            }
        }
        __m512 ws = load_scales(sc, sc0 + gi * 16, q4);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) o[t] = rescale_add(o[t], acc[t], ws, xsv[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(out + t * ldo, rmask, o[t]);
}

/* One tile, one token: memory bound, so 4 accumulators break the vpdpbusd latency chain and the
 * weights stream sequentially (the next tile follows this one in memory). */
L8_INLINE void tile_gemv(const int q4, const l8_qgeom *g, const uint8_t *wt, const void *sc, int64_t sc0,
                         const int8_t *x, float xs, const int32_t *xcorr, float *out, __mmask16 rmask) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), low4 = _mm512_set1_epi8(0x0F);
    __m512 o = _mm512_setzero_ps();
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
        __m512i a0 = _mm512_set1_epi32(xcorr[gi]), a1 = _mm512_setzero_si512(), a2 = a1, a3 = a1;
        int64_t b = b0;
        if (q4) {
            for (; b + 2 <= b1; b += 2) {
                _mm_prefetch((const char *)(wt + b * 64 + PF_DIST), _MM_HINT_T0);
                __m512i v0 = load_w(wt + b * 64), v1 = load_w(wt + b * 64 + 64);
                a0 = dpbusd_bcast(a0, _mm512_and_si512(v0, low4), x + b * 8);
                a1 = dpbusd_bcast(a1, _mm512_and_si512(_mm512_srli_epi16(v0, 4), low4), x + b * 8 + 4);
                a2 = dpbusd_bcast(a2, _mm512_and_si512(v1, low4), x + b * 8 + 8);
                a3 = dpbusd_bcast(a3, _mm512_and_si512(_mm512_srli_epi16(v1, 4), low4), x + b * 8 + 12);
            }
            for (; b < b1; b++) {
                __m512i v0 = load_w(wt + b * 64);
                a0 = dpbusd_bcast(a0, _mm512_and_si512(v0, low4), x + b * 8);
                a1 = dpbusd_bcast(a1, _mm512_and_si512(_mm512_srli_epi16(v0, 4), low4), x + b * 8 + 4);
            }
        } else {
            for (; b + 4 <= b1; b += 4) {
                _mm_prefetch((const char *)(wt + b * 64 + PF_DIST), _MM_HINT_T0);
                a0 = dpbusd_bcast(a0, _mm512_xor_si512(load_w(wt + b * 64), flip), x + b * 4);
                a1 = dpbusd_bcast(a1, _mm512_xor_si512(load_w(wt + b * 64 + 64), flip), x + b * 4 + 4);
                a2 = dpbusd_bcast(a2, _mm512_xor_si512(load_w(wt + b * 64 + 128), flip), x + b * 4 + 8);
                a3 = dpbusd_bcast(a3, _mm512_xor_si512(load_w(wt + b * 64 + 192), flip), x + b * 4 + 12);
            }
            for (; b < b1; b++)
                a0 = dpbusd_bcast(a0, _mm512_xor_si512(load_w(wt + b * 64), flip), x + b * 4);
        }
        __m512i acc = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        o = rescale_add(o, acc, load_scales(sc, sc0 + gi * 16, q4), _mm512_set1_ps(xs));
    }
    _mm512_mask_storeu_ps(out, rmask, o);
}

/* acc += w (u8) . b (s8), both in registers (GCC 12: asm, see dpbusd_bcast). */
L8_INLINE __m512i dpbusd_rr(__m512i acc, __m512i w, __m512i b) {
#if defined(__GNUC__) && !defined(__clang__)
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(b));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, w, b);
#endif
}

/* Two adjacent tiles (32 rows) against T tokens: each weight vector (flipped / unpacked once)
 * feeds T vpdpbusd and each broadcast activation feeds 2 (one per tile), so the loads per
 * vpdpbusd drop to (2 + T) / 2T. The per-group float results go through out (L1-resident):
 * the first group adds to +0.0f like the reference, the next ones load, add and store.
 * Both tiles are full (a masked store then load would defeat store forwarding). */
L8_INLINE void tile2_tokens(const int T, const int q4, const l8_qgeom *g, const uint8_t *wt0, int64_t tile_bytes,
                            const void *sc, int64_t sc0, const int8_t *x, const float *xs, const int32_t *xcorr,
                            float *out, int64_t ldo) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), low4 = _mm512_set1_epi8(0x0F);
    const uint8_t *wt1 = wt0 + tile_bytes;
    const int64_t kp = g->kp;
    __m512i a0[GEMM_TOK], a1[GEMM_TOK];
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) a0[t] = _mm512_set1_epi32(xcorr[t * g->ng + gi]), a1[t] = a0[t];
        for (int64_t b = b0; b < b1; b++) {
            _mm_prefetch((const char *)(wt0 + b * 64 + GEMM_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(wt1 + b * 64 + GEMM_PF), _MM_HINT_T0);
            __m512i v0 = load_w(wt0 + b * 64), v1 = load_w(wt1 + b * 64);
            if (q4) {
                __m512i l0 = _mm512_and_si512(v0, low4), h0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), low4);
                __m512i l1 = _mm512_and_si512(v1, low4), h1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), low4);
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const int8_t *xb = x + t * kp + b * 8;
                    __m512i xl = bcast4(xb), xh = bcast4(xb + 4);
                    a0[t] = dpbusd_rr(a0[t], l0, xl);
                    a1[t] = dpbusd_rr(a1[t], l1, xl);
                    a0[t] = dpbusd_rr(a0[t], h0, xh);
                    a1[t] = dpbusd_rr(a1[t], h1, xh);
                }
            } else {
                v0 = _mm512_xor_si512(v0, flip), v1 = _mm512_xor_si512(v1, flip);
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    __m512i xb = bcast4(x + t * kp + b * 4);
                    a0[t] = dpbusd_rr(a0[t], v0, xb);
                    a1[t] = dpbusd_rr(a1[t], v1, xb);
                }
            }
        }
        __m512 ws0 = load_scales(sc, sc0 + gi * 16, q4), ws1 = load_scales(sc, sc0 + (g->ng + gi) * 16, q4);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            __m512 xsv = _mm512_set1_ps(xs[t]);
            float *o = out + t * ldo;
            __m512 p0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a0[t]), ws0), xsv);
            __m512 p1 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a1[t]), ws1), xsv);
            __m512 o0 = gi ? _mm512_loadu_ps(o) : _mm512_setzero_ps();
            __m512 o1 = gi ? _mm512_loadu_ps(o + 16) : _mm512_setzero_ps();
            _mm512_storeu_ps(o, _mm512_add_ps(o0, p0));
            _mm512_storeu_ps(o + 16, _mm512_add_ps(o1, p1));
        }
    }
}

/* Up to TOK_BLOCK tokens of one tile: a switch so that each count gets its unrolled body. */
L8_INLINE void tile_block(const int q4, int T, const l8_qgeom *g, const uint8_t *wt, const void *sc, int64_t sc0,
                          const int8_t *x, const float *xs, const int32_t *xcorr, float *out, int64_t ldo,
                          __mmask16 rmask) {
    switch (T) {
    case 8: tile_tokens(8, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    case 7: tile_tokens(7, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    case 6: tile_tokens(6, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    case 5: tile_tokens(5, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    case 4: tile_tokens(4, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    case 3: tile_tokens(3, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    case 2: tile_tokens(2, q4, g, wt, sc, sc0, x, xs, xcorr, out, ldo, rmask); break;
    default: tile_gemv(q4, g, wt, sc, sc0, x, xs[0], xcorr, out, rmask); break;
    }
}

L8_INLINE void matmul_vnni(const int q4, float *out, const int8_t *xq, const float *xs, int64_t n,
                           const l8_tensor *w, int64_t r0, int64_t r1) {
    l8_qgeom g;
    if (!l8_qgeom_init(&g, w) || g.ng > XCORR_CAP) {
        l8_matmul_q_scalar(out, xq, xs, n, w, r0, r1);
        return;
    }
    if (r1 > g.rows) r1 = g.rows;
    if (n <= 0 || r0 >= r1) return;
    int32_t xcorr[XCORR_CAP];
    int64_t chunk = XCORR_CAP / g.ng;
    int64_t tile_bytes = q4 ? 8 * g.kp : 16 * g.kp;
    const uint8_t *data = (const uint8_t *)w->data;
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
        int64_t nt = n - t0 < chunk ? n - t0 : chunk;
        const int8_t *x0 = xq + t0 * g.kp;
        group_corrections(xcorr, x0, nt, &g, q4 ? 8 : 128);
        for (int64_t tile = r0 / L8_TILE_ROWS; tile * L8_TILE_ROWS < r1; tile++) {
            int64_t rb = tile * L8_TILE_ROWS;
            int nr = r1 - rb < L8_TILE_ROWS ? (int)(r1 - rb) : L8_TILE_ROWS;
            __mmask16 rmask = (__mmask16)((1u << nr) - 1);
            const uint8_t *wt = data + tile * tile_bytes;
            int64_t sc0 = tile * g.ng * L8_TILE_ROWS;
            int64_t tb = 0;
            int pair = nt >= GEMM_TOK && rb + 2 * L8_TILE_ROWS <= r1;
            if (pair) { /* a pair of full tiles */
                __mmask16 rmask1 = 0xFFFF;
                for (; tb + GEMM_TOK <= nt; tb += GEMM_TOK)
                    tile2_tokens(GEMM_TOK, q4, &g, wt, tile_bytes, w->scales, sc0, x0 + tb * g.kp, xs + t0 + tb,
                                 xcorr + tb * g.ng, out + (t0 + tb) * g.rows + rb, g.rows);
                for (int64_t tb2 = tb; tb2 < nt; tb2 += TOK_BLOCK) {
                    int T = nt - tb2 < TOK_BLOCK ? (int)(nt - tb2) : TOK_BLOCK;
                    tile_block(q4, T, &g, wt + tile_bytes, w->scales, sc0 + g.ng * L8_TILE_ROWS, x0 + tb2 * g.kp,
                               xs + t0 + tb2, xcorr + tb2 * g.ng, out + (t0 + tb2) * g.rows + rb + L8_TILE_ROWS,
                               g.rows, rmask1);
                }
            }
            for (; tb < nt; tb += TOK_BLOCK) {
                int T = nt - tb < TOK_BLOCK ? (int)(nt - tb) : TOK_BLOCK;
                tile_block(q4, T, &g, wt, w->scales, sc0, x0 + tb * g.kp, xs + t0 + tb, xcorr + tb * g.ng,
                           out + (t0 + tb) * g.rows + rb, g.rows, rmask);
            }
            tile += pair;
        }
    }
}

static void matmul_q8_avx512(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w,
                             int64_t r0, int64_t r1) {
    matmul_vnni(0, out, xq, xs, n, w, r0, r1);
}

static void matmul_q4_avx512(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w,
                             int64_t r0, int64_t r1) {
    matmul_vnni(1, out, xq, xs, n, w, r0, r1);
}

/* ---------------------------------------------------------------- float helpers */

/* The canonical evaluation order of kernels.h (ref.c spells it out in C) with the 16 reduction
 * lanes in one register: a short last block updates only its first lanes (write masks), the
 * tree is written out with the AVX2 order (lanes 0..7 + 8..15 first; not _mm512_reduce_add_ps,
 * whose order is the compiler's), and the exp is the shared algorithm, 16 lanes at a time. */

L8_INLINE __mmask16 first_lanes(int64_t r) { return (__mmask16)(r >= 16 ? 0xFFFFu : (1u << r) - 1u); }

L8_INLINE __m256 low8(__m512 v) { return _mm512_castps512_ps256(v); }
L8_INLINE __m256 high8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

/* t8 = lanes [0..7] + [8..15], then [0..3] + [4..7], [0,1] + [2,3], [0] + [1]. */
L8_INLINE float tree_sum16(__m512 v) {
    __m256 t8 = _mm256_add_ps(low8(v), high8(v));
    __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_shuffle_ps(t2, t2, 1)));
}

/* The same tree with maxps(a, b) = a > b ? a : b, a always the lower lanes. */
L8_INLINE float tree_max16(__m512 v) {
    __m256 t8 = _mm256_max_ps(low8(v), high8(v));
    __m128 t4 = _mm_max_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    __m128 t2 = _mm_max_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_max_ss(t2, _mm_shuffle_ps(t2, t2, 1)));
}

L8_INLINE __m512 load_f16x16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
L8_INLINE __m512 load_f16_part(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* e^x for 16 lanes: the canonical exp of kernels.h, operation for operation. */
L8_INLINE __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(L8_EXP_HI), x); /* min/max return the second operand on NaN */
    x = _mm512_max_ps(_mm512_set1_ps(L8_EXP_LO), x);
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(L8_EXP_LOG2E), _mm512_set1_ps(L8_EXP_ROUND));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(L8_EXP_ROUND));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(L8_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(L8_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(L8_EXP_C7);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(L8_EXP_C6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(L8_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(L8_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(L8_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(L8_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(_mm512_set1_ps(L8_EXP_ROUND)));
    __m512i n1 = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(256)), 1),
                                  _mm512_set1_epi32(128));
    __m512i n2 = _mm512_sub_epi32(ni, n1);
    __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, _mm512_set1_epi32(127)), 23));
    __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

static void exp_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

L8_INLINE __m512 swiglu16(__m512 g, __m512 u) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

static void swiglu_avx512(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        __m512 v = swiglu16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

static void rmsnorm_avx512(float *out, const float *x, const float *w, int64_t n, float eps) {
    __m512 s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_loadu_ps(x + i);
        s = _mm512_fmadd_ps(a, a, s);
    }
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        s = _mm512_mask3_fmadd_ps(a, a, s, m); /* lanes outside m keep s */
    }
    float scale = 1.0f / sqrtf(tree_sum16(s) / (float)n + eps);
    __m512 sv = _mm512_set1_ps(scale);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv), _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

static void softmax_avx512(float *x, int64_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(_mm512_loadu_ps(x + i), mx); /* a NaN x leaves the lane */
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        mx = _mm512_mask_max_ps(mx, m, _mm512_maskz_loadu_ps(m, x + i), mx);
    }
    __m512 mv = _mm512_set1_ps(tree_max16(mx)), s = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
        _mm512_storeu_ps(x + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv));
        _mm512_mask_storeu_ps(x + i, m, e);
        s = _mm512_mask_add_ps(s, m, s, e);
    }
    __m512 iv = _mm512_set1_ps(1.0f / tree_sum16(s));
    for (i = 0; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), iv));
    }
}

static float dot_f32_avx512(const float *a, const float *b, int64_t n) {
    __m512 s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        s = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s, m);
    }
    return tree_sum16(s);
}

static float dot_f16_avx512(const float *a, const uint16_t *b, int64_t n) {
    __m512 s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), load_f16x16(b + i), s);
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        s = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), load_f16_part(b + i, m), s, m);
    }
    return tree_sum16(s);
}

static void axpy_f32_avx512(float *y, float a, const float *x, int64_t n) {
    __m512 av = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        __m512 v = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void axpy_f16_avx512(float *y, float a, const uint16_t *x, int64_t n) {
    __m512 av = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, load_f16x16(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = first_lanes(n - i);
        __m512 v = _mm512_fmadd_ps(av, load_f16_part(x + i, m), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

void l8_kernels_fill_avx512(l8_kernels *k) {
    l8_kernels_fill_avx2(k);
    k->isa = L8_ISA_AVX512;
    k->name = "avx512-vnni";
    k->matmul_q8 = matmul_q8_avx512;
    k->matmul_q4 = matmul_q4_avx512;
    k->rmsnorm = rmsnorm_avx512;
    k->swiglu = swiglu_avx512;
    k->softmax = softmax_avx512;
    k->exp = exp_avx512;
    k->dot_f32 = dot_f32_avx512;
    k->dot_f16 = dot_f16_avx512;
    k->axpy_f32 = axpy_f32_avx512;
    k->axpy_f16 = axpy_f16_avx512;
}

#endif
