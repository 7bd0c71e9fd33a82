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
 * The float rescale follows the reference order exactly: ((float)acc * ws) * xs, then added.
 * Also here: the amx level's tile matmuls, the attention kernel and the Walsh-Hadamard
 * transform (their sections say how they keep the bits of the definitions in kernels.h). */
#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels/kernels.h"
#include "quant/quant.h"

#define L8_INLINE static inline __attribute__((always_inline))

enum {
    XCORR_CAP = 16384, /* int32 corrections on the stack (64 KB): tokens per chunk = cap / groups */
    TOK_BLOCK = 8,
    GEMM_TOK = 8,  /* tokens per 2-tile block (12 measured no faster; more spill) */
    GEMM_PF = 512, /* GEMM software prefetch distance, bytes ahead in each of the 2 tiles */
    PF_DIST = 4096, /* GEMV software prefetch distance, bytes ahead in the weight stream (1024 was
                     * 10-15% slower on this shared host, Q4 and Q8, 1 and 2 threads) */
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
            /* decode of a few streams at once (continuous batching) is still memory bound */
            _mm_prefetch((const char *)(wt + b * 64 + PF_DIST), _MM_HINT_T0);
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

/* ---------------------------------------------------------------- AMX (the amx level) */

/* Intel AMX (Sapphire Rapids and later) multiplies whole tiles: TDPBSSD adds the product of a
 * 16 x K int8 tile A and a K x 16 int8 tile B (stored K/4 rows of 16 x 4 bytes) to a 16 x 16
 * int32 tile C, 16 x 16 x 64 multiply-adds per instruction. llm8's weight layout is already B's:
 * 16 consecutive 4-column steps of a weight tile are one 64-column B tile (row stride 64), so
 * Q8 weights are read in place; Q4 ones are unpacked to q (-8..7) per 32-column group. A is 16
 * tokens' activations read in place (row stride kp). Both operands are signed: no offset, no
 * correction, and the int32 group sums are exact as everywhere; the float rescale is the
 * reference's, with AVX-512 on the stored C tiles. Tiles: C0..C3 = tmm0..3 (2 x 16 tokens x
 * 2 weight tiles), A = tmm4, 5, B = tmm6, 7. A block of 32 tokens passes over a group of
 * weight tiles (about AMX_GROUP_BYTES, kept in L2) before the next block; the next block's
 * activations and the next group's weights are prefetched to L2 meanwhile, a few lines per
 * product. Grouped rows rescale each group's stored C tiles into a small f32 buffer, written to
 * out at the end (out's rows are 4 KB multiples apart: they would fight over the same cache
 * sets). Leftover tokens (n mod 16) and other shapes take the AVX-512 kernels. Measured (one
 * thread, 3B shapes, 512 tokens): per-channel Q8 about 3x the vpdpbusd kernels, g128 about 2x,
 * Q4 g32 about 1.1x (its exact per-group rescale, not the products, is the work). The
 * instructions are written as assembly, so this file needs no -mamx flags. */
enum { AMX_GROUP_BYTES = 512 << 10 /* weights per block of tokens */, AMX_MIN_N = 16 };

typedef struct amx_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;
_Static_assert(sizeof(amx_cfg) == 64, "the LDTILECFG operand is 64 bytes");

/* kb: bytes of K per product (64, or 32 for Q4's 32-column groups). */
static void amx_configure(int kb) {
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 4; i++) c.colsb[i] = 64, c.rows[i] = 16;               /* C: 16 tokens x 16 int32 */
    for (int i = 4; i < 6; i++) c.colsb[i] = (uint16_t)kb, c.rows[i] = 16;     /* A: 16 tokens x kb bytes */
    for (int i = 6; i < 8; i++) c.colsb[i] = 64, c.rows[i] = (uint8_t)(kb / 4); /* B: kb / 4 steps */
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
}

L8_INLINE void amx_zero(void) {
    __asm__ volatile("tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3" ::: "memory");
}

/* C += A . B for nk products: tokens at x0 (and x0 + 16 kp when two), weight tiles at b0, b1;
 * each product advances x by kb bytes and the weights by bstep bytes (B rows are 64 apart). */
/* Prefetches to L2 spread over the products (a burst would stall on the fill buffers): per
 * product, xn lines of the next block of activations and wn lines of the next weight tiles. */
typedef struct amx_prefetch {
    const char *x, *x_end, *w, *w_end;
    int64_t xn, wn;
} amx_prefetch;

L8_INLINE void amx_products(const int8_t *x0, int64_t kp, int kb, const uint8_t *b0, const uint8_t *b1, int64_t bstep,
                            int64_t nk, int two, amx_prefetch *pf) {
    const int8_t *x1 = x0 + 16 * kp;
    const int64_t s64 = 64;
    for (int64_t k = 0; k < nk; k++, x0 += kb, x1 += kb, b0 += bstep, b1 += bstep) {
        for (int64_t i = 0; i < pf->xn && pf->x < pf->x_end; i++, pf->x += 64) _mm_prefetch(pf->x, _MM_HINT_T1);
        for (int64_t i = 0; i < pf->wn && pf->w < pf->w_end; i++, pf->w += 64) _mm_prefetch(pf->w, _MM_HINT_T1);
        __asm__ volatile("tileloadd (%[x],%[kp],1), %%tmm4\n\t"
                         "tileloadd (%[b0],%[s],1), %%tmm6\n\t"
                         "tdpbssd %%tmm6, %%tmm4, %%tmm0\n\t"
                         "tileloadd (%[b1],%[s],1), %%tmm7\n\t"
                         "tdpbssd %%tmm7, %%tmm4, %%tmm1" ::[x] "r"(x0),
                         [kp] "r"(kp), [b0] "r"(b0), [b1] "r"(b1), [s] "r"(s64)
                         : "memory");
        if (two)
            __asm__ volatile("tileloadd (%[x],%[kp],1), %%tmm5\n\t"
                             "tdpbssd %%tmm6, %%tmm5, %%tmm2\n\t"
                             "tdpbssd %%tmm7, %%tmm5, %%tmm3" ::[x] "r"(x1),
                             [kp] "r"(kp)
                             : "memory");
    }
}

/* The C tiles to c[4][16][16] (C0: tokens 0-15 x tile 0, C1: tokens 0-15 x tile 1, C2 and C3:
 * tokens 16-31). */
L8_INLINE void amx_store(int32_t *c) {
    const int64_t s64 = 64;
    __asm__ volatile("tilestored %%tmm0, (%[c],%[s],1)\n\t"
                     "tilestored %%tmm1, 1024(%[c],%[s],1)\n\t"
                     "tilestored %%tmm2, 2048(%[c],%[s],1)\n\t"
                     "tilestored %%tmm3, 3072(%[c],%[s],1)" ::[c] "r"(c),
                     [s] "r"(s64)
                     : "memory");
}

/* o[t] (16 rows) = (first ? +0 : o[t]) + ((float)c[t] * ws) * xs[t] for 16 tokens. */
L8_INLINE void amx_rescale(float *o, int64_t ldo, const int32_t *c, __m512 ws, const float *xs, int first,
                           __mmask16 m) {
    for (int t = 0; t < 16; t++) {
        __m512 p = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(c + t * 16))), ws),
                                 _mm512_set1_ps(xs[t]));
        __m512 prev = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, o + t * ldo);
        _mm512_mask_storeu_ps(o + t * ldo, m, _mm512_add_ps(prev, p));
    }
}

/* Tile tile's Q4 blocks [j0, j0 + nb) unpacked to q (-8..7) as 2 nb B rows (steps) at dst. */
L8_INLINE void amx_unpack_q4(uint8_t *dst, const uint8_t *tile, int64_t j0, int nb) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    for (int j = 0; j < nb; j++) {
        __m512i v = load_w(tile + (j0 + j) * 64);
        _mm512_store_si512((void *)(dst + j * 128), _mm512_sub_epi8(_mm512_and_si512(v, low4), eight));
        _mm512_store_si512((void *)(dst + j * 128 + 64),
                           _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), eight));
    }
}

/* The AMX path handles this matrix: whole 64-column products (Q8 per channel or in groups of a
 * multiple of 64) or Q4 in 32-column groups, with no partial product at the end of a row. */
static int amx_fits(int q4, const l8_tensor *w, const l8_qgeom *g) {
    if (q4) return w->group == 32 && g->kp % 32 == 0;
    return g->kp % 64 == 0 && (g->ng == 1 || w->group % 64 == 0);
}

static __attribute__((noinline)) void matmul_amx(const int q4, float *out, const int8_t *xq, const float *xs,
                                                 int64_t n, const l8_tensor *w, const l8_qgeom *g, int64_t r0,
                                                 int64_t r1) {
    int32_t c[2 * 4 * 256] __attribute__((aligned(64))); /* two groups' C tiles */
    float ob[4 * 256] __attribute__((aligned(64))); /* grouped rows: the results so far */
    uint8_t bq[2 * 2 * 8 * 64] __attribute__((aligned(64))); /* Q4: two groups of two tiles, unpacked */
    const int kb = q4 ? 32 : 64;
    const int64_t kp = g->kp, ng = g->ng, ldo = g->rows, n16 = n / 16 * 16;
    const int64_t tile_bytes = q4 ? 8 * kp : 16 * kp;
    const int64_t gk = ng == 1 ? kp / kb : w->group / kb; /* products per group */
    const uint8_t *data = (const uint8_t *)w->data;
    const int64_t tiles_end = (r1 + L8_TILE_ROWS - 1) / L8_TILE_ROWS;
    amx_configure(kb);
    /* tiles per block: their weights (about AMX_GROUP_BYTES) stay in L2 beside the activations */
    int64_t gt = (AMX_GROUP_BYTES / tile_bytes) & ~(int64_t)1;
    if (gt < 2) gt = 2;
    for (int64_t tg = r0 / L8_TILE_ROWS; tg < tiles_end; tg += gt) {
        const int64_t tg1 = tg + gt < tiles_end ? tg + gt : tiles_end;
        /* the next group of tiles, prefetched to L2 over this group's products */
        amx_prefetch pf;
        pf.w = (const char *)(data + tg1 * tile_bytes);
        pf.w_end = (const char *)(data + (tiles_end < tg1 + gt ? tiles_end : tg1 + gt) * tile_bytes);
        const int64_t block_products = (tg1 - tg + 1) / 2 * (q4 ? ng : kp / 64);
        const int64_t products = (n16 + 31) / 32 * block_products;
        pf.wn = ((pf.w_end - pf.w) / 64 + products - 1) / products;
        pf.xn = (32 * kp / 64 + block_products - 1) / block_products;
        for (int64_t t0 = 0; t0 < n16; t0 += 32) {
            const int two = t0 + 32 <= n16;
            pf.x = (const char *)(xq + (t0 + 32) * kp); /* the next block's activations */
            pf.x_end = (const char *)(xq + (t0 + 64 < n16 ? t0 + 64 : n16) * kp);
            for (int64_t p = tg; p < tg1; p += 2) {
                const uint8_t *w0 = data + p * tile_bytes, *w1 = p + 1 < tg1 ? w0 + tile_bytes : w0;
                const int np = p + 1 < tg1 ? 2 : 1;
                __mmask16 m[2];
                for (int i = 0; i < 2; i++) {
                    int64_t rows = r1 - (p + i) * L8_TILE_ROWS;
                    m[i] = (__mmask16)(rows >= 16 ? 0xFFFFu : rows > 0 ? (1u << rows) - 1 : 0u);
                }
                float *o = out + t0 * ldo + p * L8_TILE_ROWS;
                /* Group gi's products are issued, then (while the tile unit works on them) the
                 * next group's Q4 weights are unpacked and the previous group's sums rescaled;
                 * then gi's C tiles are stored. */
                if (q4) amx_unpack_q4(bq, w0, 0, 4), amx_unpack_q4(bq + 512, w1, 0, 4);
                for (int64_t gi = 0; gi <= ng; gi++) {
                    if (gi < ng) {
                        amx_zero();
                        if (q4) {
                            const uint8_t *b = bq + (gi & 1) * 1024;
                            amx_products(xq + t0 * kp + gi * 32, kp, kb, b, b + 512, 0, 1, two, &pf);
                            if (gi + 1 < ng) {
                                uint8_t *nb = bq + ((gi + 1) & 1) * 1024;
                                amx_unpack_q4(nb, w0, (gi + 1) * 4, 4), amx_unpack_q4(nb + 512, w1, (gi + 1) * 4, 4);
                            }
                        } else {
                            int64_t k1 = (gi + 1) * gk < kp / 64 ? (gi + 1) * gk : kp / 64;
                            amx_products(xq + t0 * kp + gi * gk * 64, kp, kb, w0 + gi * gk * 1024,
                                         w1 + gi * gk * 1024, 1024, k1 - gi * gk, two, &pf);
                        }
                    }
                    if (gi > 0) { /* group gi - 1's sums */
                        const int64_t gp = gi - 1;
                        const int32_t *cp = c + (gp & 1) * 1024;
                        for (int i = 0; i < np; i++) {
                            __m512 ws = load_scales(w->scales, ((p + i) * ng + gp) * 16, q4);
                            if (ng == 1) { /* the result: straight to out */
                                amx_rescale(o + i * 16, ldo, cp + i * 256, ws, xs + t0, 1, m[i]);
                                if (two) amx_rescale(o + 16 * ldo + i * 16, ldo, cp + (2 + i) * 256, ws, xs + t0 + 16, 1, m[i]);
                            } else { /* partial sums in ob (L1), not in out: its rows are 4 KB multiples apart */
                                amx_rescale(ob + i * 256, 16, cp + i * 256, ws, xs + t0, gp == 0, 0xFFFF);
                                if (two) amx_rescale(ob + (2 + i) * 256, 16, cp + (2 + i) * 256, ws, xs + t0 + 16, gp == 0, 0xFFFF);
                            }
                        }
                    }
                    if (gi < ng) amx_store(c + (gi & 1) * 1024);
                }
                if (ng > 1)
                    for (int i = 0; i < np; i++)
                        for (int h = 0; h < 1 + two; h++)
                            for (int tt = 0; tt < 16; tt++)
                                _mm512_mask_storeu_ps(o + (h * 16 + tt) * ldo + i * 16, m[i],
                                                      _mm512_load_ps(ob + (2 * h + i) * 256 + tt * 16));
            }
        }
    }
    __asm__ volatile("tilerelease" ::: "memory");
}

/* The AMX path for n >= 16 when the matrix fits it (the leftover n mod 16 tokens, and other
 * shapes, take the AVX-512 kernels). */
L8_INLINE void matmul_amx_or_vnni(const int q4, float *out, const int8_t *xq, const float *xs, int64_t n,
                                  const l8_tensor *w, int64_t r0, int64_t r1) {
    l8_qgeom g;
    if (n >= AMX_MIN_N && l8_qgeom_init(&g, w) && amx_fits(q4, w, &g)) {
        if (r1 > g.rows) r1 = g.rows;
        if (r0 >= r1) return;
        matmul_amx(q4, out, xq, xs, n, w, &g, r0, r1);
        int64_t done = n / 16 * 16;
        if (done < n) matmul_vnni(q4, out + done * g.rows, xq + done * g.kp, xs + done, n - done, w, r0, r1);
        return;
    }
    matmul_vnni(q4, out, xq, xs, n, w, r0, r1);
}

static void matmul_q8_amx(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                          int64_t r1) {
    matmul_amx_or_vnni(0, out, xq, xs, n, w, r0, r1);
}

static void matmul_q4_amx(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                          int64_t r1) {
    matmul_amx_or_vnni(1, out, xq, xs, n, w, r0, r1);
}

/* Linux hands out the AMX tile data state (8 KB per thread) only on request, once per process
 * (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without it the first tile instruction
 * faults. */
int l8_kernels_amx_permit(void) {
#if defined(__linux__)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return 0;
#endif
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

/* ---------------------------------------------------------------- attention */

/* Causal attention (kernels.h's attn_f16, defined as the composition of dot_f16, softmax and
 * axpy_f16) computed a block at a time: the keys and values are widened to f32 once per block
 * (32 KB, L1) and serve every query row of the call. Scores: 4 query rows x 4 keys at once, each
 * dot product's 16 canonical lanes in a register (16 accumulators, 2 loads per 4 FMAs), the 16
 * lane vectors then combined by the canonical tree for all 16 dot products together with
 * whole-register shuffles. Values: up to 3 rows x 128 outputs (or 4 x 64) stay in registers over
 * a block of keys; each output's fma chain is the axpy one, in key order. */
enum { ATT_BUF = 8192 /* floats of widened K or V rows */, ATT_HD_MAX = 256 };

/* a[4 m + k] = the 16 lanes of (query row m . key k): returns the 16 canonical trees, (m, k) in
 * lane 4 m + k (t8 = lanes j + j + 8, then t4, t2, the sum: each step one add of whole registers
 * whose lanes were paired by shuffles). */
L8_INLINE __m512 tree_sum_4x4(const __m512 *a) {
    __m512 c[4];
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) { /* t8: keys 0, 1 (and 2, 3) in lanes 0-7 / 8-15; t4: key k in chunk k */
        __m512 b0 = _mm512_add_ps(_mm512_shuffle_f32x4(a[4 * m], a[4 * m + 1], 0x44),
                                  _mm512_shuffle_f32x4(a[4 * m], a[4 * m + 1], 0xEE));
        __m512 b1 = _mm512_add_ps(_mm512_shuffle_f32x4(a[4 * m + 2], a[4 * m + 3], 0x44),
                                  _mm512_shuffle_f32x4(a[4 * m + 2], a[4 * m + 3], 0xEE));
        c[m] = _mm512_add_ps(_mm512_shuffle_f32x4(b0, b1, 0x88), _mm512_shuffle_f32x4(b0, b1, 0xDD));
    }
    /* t2: chunk k holds rows 0, 1 (d0) or 2, 3 (d1) of key k; then the sums: chunk k, element m */
    __m512 d0 = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x44), _mm512_shuffle_ps(c[0], c[1], 0xEE));
    __m512 d1 = _mm512_add_ps(_mm512_shuffle_ps(c[2], c[3], 0x44), _mm512_shuffle_ps(c[2], c[3], 0xEE));
    __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d0, d1, 0x88), _mm512_shuffle_ps(d0, d1, 0xDD));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(order, e);
}

/* The scores of 4 query rows (qr[m]) against 4 widened keys (rows hdp floats apart at kr), scaled:
 * (row m, key k) in lane 4 m + k. */
L8_INLINE __m512 att_scores4x4(const float *const *qr, const float *kr, int64_t hdp, int64_t hd, __m512 scale) {
    __m512 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= hd; j += 16) {
        __m512 q0 = _mm512_loadu_ps(qr[0] + j), q1 = _mm512_loadu_ps(qr[1] + j), q2 = _mm512_loadu_ps(qr[2] + j),
               q3 = _mm512_loadu_ps(qr[3] + j);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m512 kv = _mm512_load_ps(kr + k * hdp + j);
            a[k] = _mm512_fmadd_ps(q0, kv, a[k]);
            a[4 + k] = _mm512_fmadd_ps(q1, kv, a[4 + k]);
            a[8 + k] = _mm512_fmadd_ps(q2, kv, a[8 + k]);
            a[12 + k] = _mm512_fmadd_ps(q3, kv, a[12 + k]);
        }
    }
    if (j < hd) { /* the short last block: only its lanes are updated */
        __mmask16 mk = first_lanes(hd - j);
        __m512 q0 = _mm512_maskz_loadu_ps(mk, qr[0] + j), q1 = _mm512_maskz_loadu_ps(mk, qr[1] + j),
               q2 = _mm512_maskz_loadu_ps(mk, qr[2] + j), q3 = _mm512_maskz_loadu_ps(mk, qr[3] + j);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m512 kv = _mm512_load_ps(kr + k * hdp + j);
            a[k] = _mm512_mask3_fmadd_ps(q0, kv, a[k], mk);
            a[4 + k] = _mm512_mask3_fmadd_ps(q1, kv, a[4 + k], mk);
            a[8 + k] = _mm512_mask3_fmadd_ps(q2, kv, a[8 + k], mk);
            a[12 + k] = _mm512_mask3_fmadd_ps(q3, kv, a[12 + k], mk);
        }
    }
    return _mm512_mul_ps(tree_sum_4x4(a), scale);
}

/* R rows of one token (outputs o + r * hd, weights a + r * lds) += the n widened value rows at vb
 * (hdp apart), for the 16 J outputs from o on (m: their lanes); first: start from +0. */
L8_INLINE void att_values(const int R, const int J, float *o, int64_t hd, const float *a, int64_t lds,
                          const float *vb, int64_t hdp, int64_t n, const __mmask16 *m, int first) {
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++)
            acc[r][j] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m[j], o + r * hd + 16 * j);
    for (int64_t p = 0; p < n; p++) {
        const float *vr = vb + p * hdp;
        __m512 w[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) w[r] = _mm512_set1_ps(a[r * lds + p]);
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            __m512 v = _mm512_load_ps(vr + 16 * j);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][j] = _mm512_fmadd_ps(w[r], v, acc[r][j]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) _mm512_mask_storeu_ps(o + r * hd + 16 * j, m[j], acc[r][j]);
}

/* Rows p0 .. p1 - 1 of an f16 cache (ldkv apart) widened into buf, hdp floats each (zeros after
 * hd), and zero rows up to the next multiple of 4. */
static void att_widen(float *buf, const uint16_t *src, int64_t ldkv, int64_t p0, int64_t p1, int64_t hd, int64_t hdp) {
    int64_t pz = p0 + ((p1 - p0 + 3) & ~(int64_t)3);
    for (int64_t p = p0; p < pz; p++)
        for (int64_t j = 0; j < hdp; j += 16) {
            __m512 v = p < p1 ? load_f16_part(src + p * ldkv + j, first_lanes(hd - j)) : _mm512_setzero_ps();
            _mm512_store_ps(buf + (p - p0) * hdp + j, v);
        }
}

static void attn_f16_avx512(float *out, const float *q, int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0,
                            const uint16_t *k, const uint16_t *v, int64_t ldkv, float scale, float *scores,
                            int64_t lds) {
    if (hd > ATT_HD_MAX || hd < 1) {
        l8_attn_f16_compose(dot_f16_avx512, softmax_avx512, axpy_f16_avx512, out, q, ldq, nt, group, hd, n0, k, v,
                            ldkv, scale, scores, lds);
        return;
    }
    float buf[ATT_BUF + 128] __attribute__((aligned(64))); /* + 128: att_values reads up to 128 outputs */
    const int64_t hdp = (hd + 15) & ~(int64_t)15, kb = (ATT_BUF / hdp) & ~(int64_t)3, np = n0 + nt;
    const int64_t rows = nt * group;
    const __m512 sv = _mm512_set1_ps(scale);
    for (int64_t p0 = 0; p0 < np; p0 += kb) { /* scores, a block of keys at a time */
        int64_t p1 = p0 + kb < np ? p0 + kb : np;
        att_widen(buf, k, ldkv, p0, p1, hd, hdp);
        for (int64_t r0 = 0; r0 < rows; r0 += 4) { /* rows r = t * group + g, 4 at a time */
            const float *qr[4];
            int64_t pe[4], pmax = p0;
            for (int m = 0; m < 4; m++) {
                int64_t r = r0 + m < rows ? r0 + m : rows - 1, t = r / group; /* a short quad repeats a row */
                qr[m] = q + t * ldq + (r % group) * hd;
                pe[m] = r0 + m < rows ? (n0 + t + 1 < p1 ? n0 + t + 1 : p1) : p0; /* keys to store */
                pmax = pe[m] > pmax ? pe[m] : pmax;
            }
            for (int64_t ps = p0; ps < pmax; ps += 4) {
                __m512 sc = att_scores4x4(qr, buf + (ps - p0) * hdp, hdp, hd, sv);
#define L8_ATT_STORE(M)                                                                                        \
    if (pe[M] > ps)                                                                                            \
        _mm_mask_storeu_ps(scores + (r0 + M) * lds + ps, (__mmask8)(pe[M] - ps >= 4 ? 0xF : (1u << (pe[M] - ps)) - 1), \
                           _mm512_extractf32x4_ps(sc, M));
                L8_ATT_STORE(0) L8_ATT_STORE(1) L8_ATT_STORE(2) L8_ATT_STORE(3)
#undef L8_ATT_STORE
            }
        }
    }
    for (int64_t r = 0; r < rows; r++) softmax_avx512(scores + r * lds, n0 + r / group + 1);
    const int J = hd > 64 ? 8 : 4, RM = J == 8 ? 3 : 4; /* 24 or 16 accumulators */
    for (int64_t p0 = 0; p0 < np; p0 += kb) { /* values */
        int64_t p1 = p0 + kb < np ? p0 + kb : np;
        att_widen(buf, v, ldkv, p0, p1, hd, hdp);
        for (int64_t t = 0; t < nt; t++) {
            int64_t pe = n0 + t + 1 < p1 ? n0 + t + 1 : p1;
            if (pe <= p0) continue;
            for (int64_t c = 0; c < hd; c += 16 * J) {
                __mmask16 m[8];
                for (int j = 0; j < 8; j++) m[j] = c + 16 * j < hd ? first_lanes(hd - c - 16 * j) : 0;
                for (int64_t g = 0; g < group; g += RM) {
                    float *o = out + t * ldq + g * hd + c;
                    const float *a = scores + (t * group + g) * lds + p0;
                    const float *vb = buf + c;
                    int R = group - g < RM ? (int)(group - g) : RM;
                    if (J == 8) {
                        switch (R) {
                        case 3: att_values(3, 8, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        case 2: att_values(2, 8, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        default: att_values(1, 8, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        }
                    } else {
                        switch (R) {
                        case 4: att_values(4, 4, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        case 3: att_values(3, 4, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        case 2: att_values(2, 4, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        default: att_values(1, 4, o, hd, a, lds, vb, hdp, pe - p0, m, p0 == 0); break;
                        }
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- Walsh-Hadamard */

/* The stages d = 1, 2, 4, 8 of a 16-float block in one register: lanes that take a - b are the
 * upper of each pair (mask), the others a + b, with a and b broadcast by shuffles. */
L8_INLINE __m512 fwht16(__m512 v) {
    __m512 a = _mm512_moveldup_ps(v), b = _mm512_movehdup_ps(v);
    v = _mm512_mask_sub_ps(_mm512_add_ps(a, b), 0xAAAA, a, b);
    a = _mm512_shuffle_ps(v, v, 0x44), b = _mm512_shuffle_ps(v, v, 0xEE);
    v = _mm512_mask_sub_ps(_mm512_add_ps(a, b), 0xCCCC, a, b);
    a = _mm512_shuffle_f32x4(v, v, 0xA0), b = _mm512_shuffle_f32x4(v, v, 0xF5);
    v = _mm512_mask_sub_ps(_mm512_add_ps(a, b), 0xF0F0, a, b);
    a = _mm512_shuffle_f32x4(v, v, 0x44), b = _mm512_shuffle_f32x4(v, v, 0xEE);
    return _mm512_mask_sub_ps(_mm512_add_ps(a, b), 0xFF00, a, b);
}

/* Each output is the same single addition or subtraction of the same two values as in
 * l8_fwht_scalar, stage after stage, so the bits match; two stages per pass over memory
 * (radix 4), the scaling fused into the last pass (the same product, rounded once). */
static void fwht_avx512(float *x, int64_t h, int64_t nblocks, float norm) {
    if (h < 16) {
        l8_fwht_scalar(x, h, nblocks, norm);
        return;
    }
    const __m512 nv = _mm512_set1_ps(norm);
    for (int64_t bl = 0; bl < nblocks; bl++) {
        float *v = x + bl * h;
        for (int64_t i = 0; i < h; i += 16) {
            __m512 r = fwht16(_mm512_loadu_ps(v + i));
            _mm512_storeu_ps(v + i, h == 16 ? _mm512_mul_ps(r, nv) : r);
        }
        for (int64_t d = 16; d < h; d <<= 2) {
            if (4 * d <= h) { /* stages d and 2d */
                int last = 4 * d == h;
                for (int64_t i = 0; i < h; i += 4 * d)
                    for (int64_t j = i; j < i + d; j += 16) {
                        __m512 x0 = _mm512_loadu_ps(v + j), x1 = _mm512_loadu_ps(v + j + d);
                        __m512 x2 = _mm512_loadu_ps(v + j + 2 * d), x3 = _mm512_loadu_ps(v + j + 3 * d);
                        __m512 y0 = _mm512_add_ps(x0, x1), y1 = _mm512_sub_ps(x0, x1);
                        __m512 y2 = _mm512_add_ps(x2, x3), y3 = _mm512_sub_ps(x2, x3);
                        __m512 z0 = _mm512_add_ps(y0, y2), z2 = _mm512_sub_ps(y0, y2);
                        __m512 z1 = _mm512_add_ps(y1, y3), z3 = _mm512_sub_ps(y1, y3);
                        if (last) z0 = _mm512_mul_ps(z0, nv), z1 = _mm512_mul_ps(z1, nv), z2 = _mm512_mul_ps(z2, nv),
                                  z3 = _mm512_mul_ps(z3, nv);
                        _mm512_storeu_ps(v + j, z0);
                        _mm512_storeu_ps(v + j + d, z1);
                        _mm512_storeu_ps(v + j + 2 * d, z2);
                        _mm512_storeu_ps(v + j + 3 * d, z3);
                    }
            } else { /* the last stage alone (d = h / 2) */
                for (int64_t j = 0; j < d; j += 16) {
                    __m512 x0 = _mm512_loadu_ps(v + j), x1 = _mm512_loadu_ps(v + j + d);
                    _mm512_storeu_ps(v + j, _mm512_mul_ps(_mm512_add_ps(x0, x1), nv));
                    _mm512_storeu_ps(v + j + d, _mm512_mul_ps(_mm512_sub_ps(x0, x1), nv));
                }
            }
        }
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
    k->attn_f16 = attn_f16_avx512;
    k->fwht = fwht_avx512;
}

void l8_kernels_fill_amx(l8_kernels *k) {
    l8_kernels_fill_avx512(k);
    k->isa = L8_ISA_AMX;
    k->name = "amx";
    k->matmul_q8 = matmul_q8_amx;
    k->matmul_q4 = matmul_q4_amx;
}

#endif
