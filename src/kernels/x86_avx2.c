/* The avx2 level (AVX2 + FMA + F16C, no VNNI): activation quantization, quantized matmuls with
 * vpmaddubsw, and the float helpers (also used by the avx512 level); and the avxvnni level, the
 * same with AVX-VNNI's 256-bit vpdpbusd in the matmuls (CPUs with AVX-VNNI but no AVX-512:
 * Alder Lake and later client cores, Zen 5 desktop parts).
 *
 * vpmaddubsw multiplies unsigned by signed bytes and adds adjacent pairs into int16 WITH
 * saturation, so the operands must keep every pair sum below 2^15:
 *   Q8: |w| (u8, <= 127) times sign(w)·x (s8, vpsignb): pairs <= 2·127·127 = 32258, exact.
 *       (w + 128 times x would reach 2·255·127 = 64770 and saturate.)
 *   Q4: the stored nibble q + 8 (0..15) times x: pairs <= 2·15·127 = 3810, so up to 8 such
 *       results (one 32-column group) add up in int16 (<= 30480) before one vpmaddwd widens
 *       them; the +8 offset is removed with 8 · (sum of x over the group), as in x86_avx512.c.
 * vpdpbusd (avxvnni) multiplies unsigned by signed bytes and adds groups of four into int32
 * without saturation: Q8 weights go in as w + 128 (one xor per weight load, shared by the block's
 * tokens) and 128 · (sum of x over the group) comes off once per group; Q4 nibbles go in as they
 * are, as above. It is written as assembly, so this file needs no -mavxvnni (with which the
 * compiler could put VNNI instructions into the avx2 level's code too).
 * Blocks of up to 4 tokens per weight load (16 ymm registers bound it). The float rescale is
 * the reference's ((float)acc * ws) * xs, so outputs are bit-identical to l8_q_matmul_ref.
 * The float helpers follow the canonical evaluation order of kernels.h bit for bit. */
#if defined(__x86_64__)

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define L8_INLINE static inline __attribute__((always_inline))

/* PF_DIST: with one token (decode) the weights stream from DRAM, and the hardware prefetcher alone
 * kept these kernels at 10-13 GB/s where the AVX-512 ones reached 18: each weight line is also
 * prefetched this many bytes ahead, as in x86_avx512.c. */
enum { XCORR_CAP = 16384, TOK_BLOCK = 4, PF_DIST = 4096 };

/* ---------------------------------------------------------------- activation quantization */

static float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* q_round of src/quant/quantize.c: divide, NaN -> 0, clamp in float, round to nearest even. */
static int8_t q_round_scalar(float x, float s) {
    float v = x / s;
    if (isnan(v)) return 0;
    v = fminf(fmaxf(v, -127.0f), 127.0f);
    return (int8_t)nearbyintf(v);
}

/* 8 values -> 8 int32 with the same rules; vcvtps2dq rounds to nearest even (default MXCSR). */
L8_INLINE __m256i q_round8(__m256 x, __m256 s) {
    __m256 v = _mm256_div_ps(x, s);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(v);
}

static void quantize_act_avx2(const float *x, int64_t n, int64_t k, int64_t kp, int8_t *xq, float *xs) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int64_t t = 0; t < n; t++) {
        const float *row = x + t * k;
        int8_t *q = xq + t * kp;
        /* max_ps returns its second operand when the first is NaN: NaN never enters m. */
        __m256 m = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= k; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(row + i), absmask), m);
        float amax = hmax8(m);
        for (; i < k; i++) amax = fmaxf(amax, fabsf(row[i]));
        float s = fminf(amax, FLT_MAX) / 127.0f;
        xs[t] = s;
        if (s == 0.0f) {
            memset(q, 0, (size_t)kp);
            continue;
        }
        __m256 sv = _mm256_set1_ps(s);
        const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        i = 0;
        for (; i + 32 <= k; i += 32) {
            __m256i a = q_round8(_mm256_loadu_ps(row + i), sv), b = q_round8(_mm256_loadu_ps(row + i + 8), sv);
            __m256i c = q_round8(_mm256_loadu_ps(row + i + 16), sv), d = q_round8(_mm256_loadu_ps(row + i + 24), sv);
            /* packs work per 128-bit lane: the permute puts the 4-byte pieces back in order */
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
            _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(p, perm));
        }
        for (; i < k; i++) q[i] = q_round_scalar(row[i], s);
        memset(q + k, 0, (size_t)(kp - k));
    }
}

/* ---------------------------------------------------------------- quantized matmuls */

L8_INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

L8_INLINE __m256i load256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

L8_INLINE __m256 load_scales8(const void *scales, int64_t at, int q4) {
    if (q4) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)scales + at)));
    return _mm256_loadu_ps((const float *)scales + at);
}

/* xcorr[t * ng + g] = mult * (sum of token t's activations over group g's blocks): the offset
 * of the unsigned weight operand (8 for Q4 nibbles, 128 for Q8 bytes under vpdpbusd). */
static void group_corrections(int32_t *xcorr, const int8_t *xq, int64_t nt, const l8_qgeom *g, int32_t mult) {
    for (int64_t t = 0; t < nt; t++) {
        const int8_t *x = xq + t * g->kp;
        for (int64_t gi = 0; gi < g->ng; gi++) {
            int64_t c0 = gi * g->gb * g->cpb, c1 = (gi * g->gb + g->gb < g->nb ? gi * g->gb + g->gb : g->nb) * g->cpb;
            int32_t s = 0;
            for (int64_t c = c0; c < c1; c++) s += x[c];
            xcorr[t * g->ng + gi] = s * mult;
        }
    }
}

/* acc + u (unsigned bytes) . s (signed bytes), four products per int32 lane: VEX vpdpbusd. */
L8_INLINE __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
    __asm__("%{vex%} vpdpbusd %[s], %[u], %[acc]" : [acc] "+x"(acc) : [u] "x"(u), [s] "x"(s));
    return acc;
}

L8_INLINE __m256 rescale_add(__m256 o, __m256i acc, int32_t corr, __m256 ws, float xs) {
    __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, _mm256_set1_epi32(corr)));
    return _mm256_add_ps(o, _mm256_mul_ps(_mm256_mul_ps(f, ws), _mm256_set1_ps(xs)));
}

/* Stores the first nr of 16 outputs. */
L8_INLINE void store_rows(float *out, __m256 lo, __m256 hi, int nr) {
    if (nr == 16) {
        _mm256_storeu_ps(out, lo);
        _mm256_storeu_ps(out + 8, hi);
    } else {
        float tmp[16];
        _mm256_storeu_ps(tmp, lo);
        _mm256_storeu_ps(tmp + 8, hi);
        memcpy(out, tmp, (size_t)nr * sizeof(float));
    }
}

/* One tile (two 8-row halves) against T tokens (T constant after inlining). */
L8_INLINE void tile_tokens(const int T, const int q4, const int vnni, const l8_qgeom *g, const uint8_t *wt,
                           const void *sc, int64_t sc0, const int8_t *x, const float *xs, const int32_t *xcorr,
                           float *out, int64_t ldo, int nr) {
    const __m256i ones16 = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0F), flip = _mm256_set1_epi8(-128);
    __m256 o[TOK_BLOCK][2];
    __m256i acc[TOK_BLOCK][2];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) o[t][0] = o[t][1] = _mm256_setzero_ps();
    for (int64_t gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->gb, b1 = b0 + g->gb < g->nb ? b0 + g->gb : g->nb;
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
        if (vnni) {
            for (int64_t b = b0; b < b1; b++) {
                if (T == 1) _mm_prefetch((const char *)(wt + b * 64 + PF_DIST), _MM_HINT_T0);
                __m256i v0 = load256(wt + b * 64), v1 = load256(wt + b * 64 + 32);
                if (q4) {
                    __m256i lo0 = _mm256_and_si256(v0, low4), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low4);
                    __m256i lo1 = _mm256_and_si256(v1, low4), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) {
                        __m256i xl = bcast4(x + t * g->kp + b * 8), xh = bcast4(x + t * g->kp + b * 8 + 4);
                        acc[t][0] = dpbusd(dpbusd(acc[t][0], lo0, xl), hi0, xh);
                        acc[t][1] = dpbusd(dpbusd(acc[t][1], lo1, xl), hi1, xh);
                    }
                } else {
                    __m256i u0 = _mm256_xor_si256(v0, flip), u1 = _mm256_xor_si256(v1, flip);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) {
                        __m256i xb = bcast4(x + t * g->kp + b * 4);
                        acc[t][0] = dpbusd(acc[t][0], u0, xb);
                        acc[t][1] = dpbusd(acc[t][1], u1, xb);
                    }
                }
            }
        } else if (q4) {
            for (int64_t b = b0; b < b1;) {
                int64_t be = b + 4 < b1 ? b + 4 : b1; /* <= 8 vpmaddubsw results per int16 lane */
                __m256i s16[TOK_BLOCK][2];
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) s16[t][0] = s16[t][1] = _mm256_setzero_si256();
                for (; b < be; b++) {
                    if (T == 1) _mm_prefetch((const char *)(wt + b * 64 + PF_DIST), _MM_HINT_T0);
                    __m256i v0 = load256(wt + b * 64), v1 = load256(wt + b * 64 + 32);
                    __m256i lo0 = _mm256_and_si256(v0, low4), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low4);
                    __m256i lo1 = _mm256_and_si256(v1, low4), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) {
                        __m256i xl = bcast4(x + t * g->kp + b * 8), xh = bcast4(x + t * g->kp + b * 8 + 4);
                        s16[t][0] = _mm256_add_epi16(
                            s16[t][0], _mm256_add_epi16(_mm256_maddubs_epi16(lo0, xl), _mm256_maddubs_epi16(hi0, xh)));
                        s16[t][1] = _mm256_add_epi16(
                            s16[t][1], _mm256_add_epi16(_mm256_maddubs_epi16(lo1, xl), _mm256_maddubs_epi16(hi1, xh)));
                    }
                }
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    acc[t][0] = _mm256_add_epi32(acc[t][0], _mm256_madd_epi16(s16[t][0], ones16));
                    acc[t][1] = _mm256_add_epi32(acc[t][1], _mm256_madd_epi16(s16[t][1], ones16));
                }
            }
        } else {
            for (int64_t b = b0; b < b1; b++) {
                if (T == 1) _mm_prefetch((const char *)(wt + b * 64 + PF_DIST), _MM_HINT_T0);
                __m256i w0 = load256(wt + b * 64), w1 = load256(wt + b * 64 + 32);
                __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    __m256i xb = bcast4(x + t * g->kp + b * 4);
                    __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(xb, w0));
                    __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(xb, w1));
                    acc[t][0] = _mm256_add_epi32(acc[t][0], _mm256_madd_epi16(p0, ones16));
                    acc[t][1] = _mm256_add_epi32(acc[t][1], _mm256_madd_epi16(p1, ones16));
                }
            }
        }
        __m256 ws0 = load_scales8(sc, sc0 + gi * 16, q4), ws1 = load_scales8(sc, sc0 + gi * 16 + 8, q4);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            int32_t corr = q4 || vnni ? xcorr[t * g->ng + gi] : 0;
            o[t][0] = rescale_add(o[t][0], acc[t][0], corr, ws0, xs[t]);
            o[t][1] = rescale_add(o[t][1], acc[t][1], corr, ws1, xs[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) store_rows(out + t * ldo, o[t][0], o[t][1], nr);
}

L8_INLINE void tile_block(const int q4, const int vnni, int T, const l8_qgeom *g, const uint8_t *wt, const void *sc,
                          int64_t sc0, const int8_t *x, const float *xs, const int32_t *xcorr, float *out, int64_t ldo,
                          int nr) {
    switch (T) {
    case 4: tile_tokens(4, q4, vnni, g, wt, sc, sc0, x, xs, xcorr, out, ldo, nr); break;
    case 3: tile_tokens(3, q4, vnni, g, wt, sc, sc0, x, xs, xcorr, out, ldo, nr); break;
    case 2: tile_tokens(2, q4, vnni, g, wt, sc, sc0, x, xs, xcorr, out, ldo, nr); break;
    default: tile_tokens(1, q4, vnni, g, wt, sc, sc0, x, xs, xcorr, out, ldo, nr); break;
    }
}

L8_INLINE void matmul_avx2(const int q4, const int vnni, float *out, const int8_t *xq, const float *xs, int64_t n,
                           const l8_tensor *w, int64_t r0, int64_t r1) {
    l8_qgeom g;
    if (!l8_qgeom_init(&g, w) || g.ng > XCORR_CAP) {
        l8_matmul_q_scalar(out, xq, xs, n, w, r0, r1);
        return;
    }
    if (r1 > g.rows) r1 = g.rows;
    if (n <= 0 || r0 >= r1) return;
    int32_t xcorr[XCORR_CAP];
    const int corr = q4 || vnni;
    int64_t chunk = corr ? XCORR_CAP / g.ng : n;
    int64_t tile_bytes = q4 ? 8 * g.kp : 16 * g.kp;
    const uint8_t *data = (const uint8_t *)w->data;
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
        int64_t nt = n - t0 < chunk ? n - t0 : chunk;
        const int8_t *x0 = xq + t0 * g.kp;
        if (corr) group_corrections(xcorr, x0, nt, &g, q4 ? 8 : 128);
        for (int64_t tile = r0 / L8_TILE_ROWS; tile * L8_TILE_ROWS < r1; tile++) {
            int64_t rb = tile * L8_TILE_ROWS;
            int nr = r1 - rb < L8_TILE_ROWS ? (int)(r1 - rb) : L8_TILE_ROWS;
            const uint8_t *wt = data + tile * tile_bytes;
            int64_t sc0 = tile * g.ng * L8_TILE_ROWS;
            for (int64_t tb = 0; tb < nt; tb += TOK_BLOCK) {
                int T = nt - tb < TOK_BLOCK ? (int)(nt - tb) : TOK_BLOCK;
                tile_block(q4, vnni, T, &g, wt, w->scales, sc0, x0 + tb * g.kp, xs + t0 + tb,
                           corr ? xcorr + tb * g.ng : xcorr, out + (t0 + tb) * g.rows + rb, g.rows, nr);
            }
        }
    }
}

static void matmul_q8_avx2(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                           int64_t r1) {
    matmul_avx2(0, 0, out, xq, xs, n, w, r0, r1);
}

static void matmul_q4_avx2(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                           int64_t r1) {
    matmul_avx2(1, 0, out, xq, xs, n, w, r0, r1);
}

static void matmul_q8_avxvnni(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                              int64_t r1) {
    matmul_avx2(0, 1, out, xq, xs, n, w, r0, r1);
}

static void matmul_q4_avxvnni(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                              int64_t r1) {
    matmul_avx2(1, 1, out, xq, xs, n, w, r0, r1);
}

/* ---------------------------------------------------------------- float helpers */

/* The canonical evaluation order of kernels.h (ref.c spells it out in C): the 16 reduction lanes
 * are two registers, lo = lanes 0..7 and hi = lanes 8..15; a short last block updates only its
 * first lanes (a blend under a lane mask); the exp is the shared algorithm, 8 lanes at a time. */

/* The combining tree: (lo + hi), then [0..3] + [4..7], [0,1] + [2,3], [0] + [1]. */
L8_INLINE float tree_sum(__m256 lo, __m256 hi) { return hsum8(_mm256_add_ps(lo, hi)); }
/* The same tree with maxps(a, b) = a > b ? a : b, a the lower lanes (hmax8 keeps that order). */
L8_INLINE float tree_max(__m256 lo, __m256 hi) { return hmax8(_mm256_max_ps(lo, hi)); }

/* Lanes j < r set (r may be <= 0 or >= 8). */
L8_INLINE __m256i lane_mask(int64_t r) {
    int32_t c = r < 0 ? 0 : r > 8 ? 8 : (int32_t)r;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The first r of 8 floats at p, zeros after (no access beyond p + r). */
L8_INLINE __m256 load_part(const float *p, __m256i m) { return _mm256_maskload_ps(p, m); }

L8_INLINE __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* The first r (0..16) halves at p as two zero-padded 8-lane vectors. */
L8_INLINE void load_f16_part(const uint16_t *p, int64_t r, __m256 *lo, __m256 *hi) {
    uint16_t b[16] = {0};
    memcpy(b, p, (size_t)r * sizeof(uint16_t));
    *lo = load_f16(b);
    *hi = load_f16(b + 8);
}

/* e^x for 8 lanes: the canonical exp of kernels.h, operation for operation. */
L8_INLINE __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(L8_EXP_HI), x); /* min/max return the second operand on NaN */
    x = _mm256_max_ps(_mm256_set1_ps(L8_EXP_LO), x);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(L8_EXP_LOG2E), _mm256_set1_ps(L8_EXP_ROUND));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(L8_EXP_ROUND));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(L8_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(L8_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(L8_EXP_C7);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(L8_EXP_C6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(L8_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(L8_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(L8_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(L8_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(_mm256_set1_ps(L8_EXP_ROUND)));
    __m256i n1 = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(256)), 1),
                                  _mm256_set1_epi32(128));
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* Elementwise tails go through a zero-padded 8-lane buffer so that every element sees the
 * same code. */
L8_INLINE __m256 load_tail(const float *p, int64_t n) {
    float b[8] = {0};
    memcpy(b, p, (size_t)n * sizeof(float));
    return _mm256_loadu_ps(b);
}

L8_INLINE void store_tail(float *p, __m256 v, int64_t n) {
    float b[8];
    _mm256_storeu_ps(b, v);
    memcpy(p, b, (size_t)n * sizeof(float));
}

static void exp_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) store_tail(y + i, exp8(load_tail(x + i, n - i)), n - i);
}

L8_INLINE __m256 swiglu8(__m256 g, __m256 u) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

static void swiglu_avx2(float *out, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) store_tail(out + i, swiglu8(load_tail(g + i, n - i), load_tail(u + i, n - i)), n - i);
}

static void rmsnorm_avx2(float *out, const float *x, const float *w, int64_t n, float eps) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
    }
    if (i < n) {
        __m256i m0 = lane_mask(n - i), m1 = lane_mask(n - i - 8);
        __m256 a = load_part(x + i, m0), b = load_part(x + i + 8, m1);
        s0 = _mm256_blendv_ps(s0, _mm256_fmadd_ps(a, a, s0), _mm256_castsi256_ps(m0));
        s1 = _mm256_blendv_ps(s1, _mm256_fmadd_ps(b, b, s1), _mm256_castsi256_ps(m1));
    }
    float scale = 1.0f / sqrtf(tree_sum(s0, s1) / (float)n + eps);
    __m256 sv = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

static void softmax_avx2(float *x, int64_t n) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) { /* max(x, lane): a NaN x leaves the lane */
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    }
    if (i < n) {
        __m256i k0 = lane_mask(n - i), k1 = lane_mask(n - i - 8);
        m0 = _mm256_blendv_ps(m0, _mm256_max_ps(load_part(x + i, k0), m0), _mm256_castsi256_ps(k0));
        m1 = _mm256_blendv_ps(m1, _mm256_max_ps(load_part(x + i + 8, k1), m1), _mm256_castsi256_ps(k1));
    }
    __m256 mv = _mm256_set1_ps(tree_max(m0, m1)), s0 = _mm256_setzero_ps(), s1 = s0;
    for (i = 0; i + 16 <= n; i += 16) {
        __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    if (i < n) {
        __m256i k0 = lane_mask(n - i), k1 = lane_mask(n - i - 8);
        __m256 e0 = exp8(_mm256_sub_ps(load_part(x + i, k0), mv));
        __m256 e1 = exp8(_mm256_sub_ps(load_part(x + i + 8, k1), mv));
        _mm256_maskstore_ps(x + i, k0, e0);
        _mm256_maskstore_ps(x + i + 8, k1, e1);
        s0 = _mm256_blendv_ps(s0, _mm256_add_ps(s0, e0), _mm256_castsi256_ps(k0));
        s1 = _mm256_blendv_ps(s1, _mm256_add_ps(s1, e1), _mm256_castsi256_ps(k1));
    }
    float inv = 1.0f / tree_sum(s0, s1);
    __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
    for (; i < n; i++) x[i] = x[i] * inv;
}

static float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i < n) {
        __m256i m0 = lane_mask(n - i), m1 = lane_mask(n - i - 8);
        __m256 p0 = _mm256_fmadd_ps(load_part(a + i, m0), load_part(b + i, m0), s0);
        __m256 p1 = _mm256_fmadd_ps(load_part(a + i + 8, m1), load_part(b + i + 8, m1), s1);
        s0 = _mm256_blendv_ps(s0, p0, _mm256_castsi256_ps(m0));
        s1 = _mm256_blendv_ps(s1, p1, _mm256_castsi256_ps(m1));
    }
    return tree_sum(s0, s1);
}

static float dot_f16_avx2(const float *a, const uint16_t *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_f16(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_f16(b + i + 8), s1);
    }
    if (i < n) {
        __m256i m0 = lane_mask(n - i), m1 = lane_mask(n - i - 8);
        __m256 b0, b1;
        load_f16_part(b + i, n - i, &b0, &b1);
        __m256 p0 = _mm256_fmadd_ps(load_part(a + i, m0), b0, s0);
        __m256 p1 = _mm256_fmadd_ps(load_part(a + i + 8, m1), b1, s1);
        s0 = _mm256_blendv_ps(s0, p0, _mm256_castsi256_ps(m0));
        s1 = _mm256_blendv_ps(s1, p1, _mm256_castsi256_ps(m1));
    }
    return tree_sum(s0, s1);
}

/* y = fma(a, x, y) elementwise; the scalar tails use fmaf (one vfmadd with -mfma). */
static void axpy_f32_avx2(float *y, float a, const float *x, int64_t n) {
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static void axpy_f16_avx2(float *y, float a, const uint16_t *x, int64_t n) {
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load_f16(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, l8_f16_to_f32(x[i]), y[i]);
}

/* vcvtps2ph keeps NaN payload bits; l8_f32_to_f16 returns the canonical sign|0x7E00. */
static void f32_to_f16_avx2(uint16_t *out, const float *x, int64_t n) {
    const __m128i expmask = _mm_set1_epi16(0x7FFF), inf = _mm_set1_epi16(0x7C00);
    const __m128i sign = _mm_set1_epi16((short)0x8000), qnan = _mm_set1_epi16(0x7E00);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m128i nanmask = _mm_cmpgt_epi16(_mm_and_si128(h, expmask), inf);
        __m128i canon = _mm_or_si128(_mm_and_si128(h, sign), qnan);
        _mm_storeu_si128((__m128i *)(out + i), _mm_blendv_epi8(h, canon, nanmask));
    }
    for (; i < n; i++) out[i] = l8_f32_to_f16(x[i]);
}

static void f16_to_f32_avx2(float *out, const uint16_t *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load_f16(x + i));
    for (; i < n; i++) out[i] = l8_f16_to_f32(x[i]);
}

/* Attention as the composition of this level's helpers (kernels.h defines it so). */
static void attn_f16_avx2(float *out, const float *q, int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0,
                          const uint16_t *k, const uint16_t *v, int64_t ldkv, float scale, float *scores, int64_t lds) {
    l8_attn_f16_compose(dot_f16_avx2, softmax_avx2, axpy_f16_avx2, out, q, ldq, nt, group, hd, n0, k, v, ldkv, scale,
                        scores, lds);
}

void l8_kernels_fill_avx2(l8_kernels *k) {
    k->isa = L8_ISA_AVX2;
    k->name = "avx2";
    k->quantize_act = quantize_act_avx2;
    k->matmul_q8 = matmul_q8_avx2;
    k->matmul_q4 = matmul_q4_avx2;
    k->rmsnorm = rmsnorm_avx2;
    k->swiglu = swiglu_avx2;
    k->softmax = softmax_avx2;
    k->exp = exp_avx2;
    k->dot_f32 = dot_f32_avx2;
    k->dot_f16 = dot_f16_avx2;
    k->axpy_f32 = axpy_f32_avx2;
    k->axpy_f16 = axpy_f16_avx2;
    k->f32_to_f16 = f32_to_f16_avx2;
    k->f16_to_f32 = f16_to_f32_avx2;
    k->attn_f16 = attn_f16_avx2;
    k->fwht = l8_fwht_scalar;
}

void l8_kernels_fill_avxvnni(l8_kernels *k) {
    l8_kernels_fill_avx2(k);
    k->isa = L8_ISA_AVXVNNI;
    k->name = "avxvnni";
    k->matmul_q8 = matmul_q8_avxvnni;
    k->matmul_q4 = matmul_q4_avxvnni;
}

#endif
