/*
 * The compute kernels of the runtime behind one dispatch table, filled once from the CPU's
 * features (dispatch.c). Levels: scalar (ref.c: the src/quant reference plus plain C float
 * helpers), avx2 (AVX2 + FMA + F16C, x86_avx2.c), avxvnni (avx2 with AVX-VNNI matmuls, same
 * file), avx512 (AVX-512 F/BW/VL/VNNI with the OS
 * saving ZMM state, x86_avx512.c) and amx (avx512 with the quantized matmuls of 16 tokens or more
 * on AMX-INT8 tiles, when the CPU has them and the OS grants their state; same file). The
 * environment variable LLM8_ISA=scalar|avx2|avxvnni|avx512|amx forces
 * a lower level than the best available one (an unavailable level falls back and says so in
 * l8_kernels_describe).
 * On aarch64 the levels are scalar, neon (ARMv8.0 Advanced SIMD, arm_neon.c), dotprod (+ SDOT,
 * ARMv8.2: Cortex-A55/A76, the RK3588; arm_dotprod.c) and i8mm (+ SMMLA for several tokens,
 * ARMv8.6; arm_i8mm.c), chosen from getauxval(AT_HWCAP / AT_HWCAP2); LLM8_ISA=scalar|neon|
 * dotprod|i8mm. The float helpers of all three are arm_neon.c's: four 4-lane registers hold
 * the 16 canonical lanes below.
 *
 * Exactness contract (tests/test_kernels.c checks it at every level):
 *  - quantize_act writes the same bytes and scales as l8_q_quantize_act_ref (it divides by the
 *    scale, as the reference does; see docs/QUANT.md on why not a reciprocal).
 *  - matmul_q8 / matmul_q4 reproduce the int32 group sums exactly AND apply the float rescale
 *    in the reference's order, ((float)acc * ws) * xs added group after group, so their float
 *    outputs are bit-identical to l8_q_matmul_ref (the ISA files are built with
 *    -ffp-contract=off so that no FMA creeps in).
 *  - f32_to_f16 equals l8_f32_to_f16 for every input, NaN included (NaN -> sign|0x7E00).
 *  - The float helpers (rmsnorm, swiglu, softmax, exp, dots, axpys, f16 rows) are bit-identical
 *    at every level for every input that gives a non-NaN result (a NaN result stays a NaN, its
 *    sign and payload are unspecified): the canonical evaluation order below is the
 *    definition, ref.c writes it in plain C (the portable level and the model for other ISAs),
 *    x86_avx2.c with two 8-lane registers, x86_avx512.c with one 16-lane register.
 *
 * Canonical evaluation order of the float helpers:
 *  - Reductions (dot_f32, dot_f16, the sum of squares of rmsnorm, the sum of softmax) use 16
 *    lanes, each starting at +0.0f: element i goes to lane i % 16, lanes accumulate their
 *    elements in increasing i, and a lane that gets no element of the last (short) block is
 *    left as it is (SIMD: masked update, never "+ 0"). Products accumulate with one fused
 *    multiply-add, lane = fma(a[i], b[i], lane) (fmaf in C, vfmadd in SIMD); plain sums with
 *    lane = lane + v[i]. The 16 lanes are then combined by a fixed tree: t8[j] = l[j] + l[j+8]
 *    (j < 8), t4[j] = t8[j] + t8[j+4], t2[j] = t4[j] + t4[j+2], result = t2[0] + t2[1].
 *    softmax's max uses the same lanes and tree with max(a, b) = a > b ? a : b (the x86 maxps
 *    rule; lane update max(x[i], lane), so a NaN never enters; lanes start at -inf).
 *  - exp (also inside swiglu and softmax): x is clamped to [-104, 88.8] (NaN kept),
 *    t = fma(x, log2e, 1.5*2^23) rounds n = x log2e to the nearest integer (n = t - 1.5*2^23,
 *    its integer value also read from t's low mantissa bits), r = fma(-n, ln2_hi, x),
 *    r = fma(-n, ln2_lo, r), p = the degree-7 Taylor polynomial of e^r in fma Horner form,
 *    result = (p * 2^n1) * 2^n2 with n1 = floor(n / 2), n2 = n - n1 (no special cases down to
 *    the subnormals and up to inf). The constants are the L8_EXP_* below. Relative error
 *    < 2e-7 against expf for results >= FLT_MIN.
 *  - rmsnorm: ss by the reduction (fma of x[i] * x[i]), scale = 1.0f / sqrtf(ss / (float)n +
 *    eps) (correctly rounded division and square root, no rsqrt estimate), out[i] =
 *    (x[i] * scale) * w[i].
 *  - softmax: m = the lane max, e[i] = exp(x[i] - m), sum = the reduction of e, x[i] = e[i] *
 *    (1.0f / sum).
 *  - swiglu: out[i] = (g[i] / (1.0f + exp(0.0f - g[i]))) * u[i].
 *  - axpy_f32 / axpy_f16: y[i] = fma(a, x[i], y[i]), x widened exactly from f16.
 * ref.c is compiled with -ffp-contract=off like the ISA files (cmake/kernels.cmake), so every
 * fused operation is an explicit fmaf and no other multiply-add is fused by the compiler.
 */
#ifndef L8_KERNELS_H
#define L8_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model/tensor.h"

/* Within each architecture a later level is preferred (dispatch.c takes the last one available).
 * x86 levels, then aarch64 ones (neon: ARMv8.0 Advanced SIMD; dotprod: + SDOT, ARMv8.2, the
 * RK3588's A55/A76; i8mm: + SMMLA, ARMv8.6); a build has only its own architecture's. */
typedef enum l8_isa {
    L8_ISA_SCALAR = 0,
    L8_ISA_AVX2,
    L8_ISA_AVXVNNI, /* x86: avx2 with AVX-VNNI's 256-bit vpdpbusd in the matmuls (x86_avx2.c) */
    L8_ISA_AVX512,
    L8_ISA_NEON,
    L8_ISA_DOTPROD,
    L8_ISA_I8MM,
    L8_ISA_AMX, /* x86: avx512 + AMX-INT8 tile matmuls for 16 tokens or more (x86_avx512.c) */
    L8_ISA_COUNT
} l8_isa;

typedef struct l8_kernels {
    l8_isa isa;
    const char *name; /* "scalar", "avx2", "avx512-vnni" */

    /* x (n x k floats, row-major) -> xq (n x kp int8, pad bytes [k, kp) zeroed) and xs (n
     * scales): byte-identical to l8_q_quantize_act_ref. kp = l8_q_cols_padded(weight dtype, k). */
    void (*quantize_act)(const float *x, int64_t n, int64_t k, int64_t kp, int8_t *xq, float *xs);

    /* out[t * rows + r] for tokens t < n and rows r in [r0, min(r1, rows)), rows = w->shape[0]:
     * the quantized matmul of l8_q_matmul_ref restricted to a row range (threads split the rows;
     * r0 and r1 must be multiples of 16, or r1 >= rows). xq holds n rows of kp int8 (zero
     * padded), xs their scales. matmul_q8 takes an L8_DTYPE_Q8 tensor with any group size,
     * matmul_q4 an L8_DTYPE_Q4 tensor (group a multiple of 8, or one group per row). Other
     * grouping (a group boundary inside a 4/8-column step) takes the scalar path, still exact.
     * Thread safe; no allocation (scratch is on the stack, < 70 KB). */
    void (*matmul_q8)(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                      int64_t r1);
    void (*matmul_q4)(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                      int64_t r1);

    /* out = x * (1 / sqrt(mean(x^2) + eps)) * w, n floats (out may alias x). */
    void (*rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps);
    /* out[i] = silu(g[i]) * u[i] = g / (1 + e^-g) * u (out may alias g or u). */
    void (*swiglu)(float *out, const float *g, const float *u, int64_t n);
    /* In place: x <- e^(x - max) / sum. n >= 1. */
    void (*softmax)(float *x, int64_t n);
    /* y[i] = e^x[i] (y may alias x). */
    void (*exp)(float *y, const float *x, int64_t n);
    /* Dot products and y += a * x, for the f32 and the f16 KV cache (q.K and softmax.V). */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    float (*dot_f16)(const float *a, const uint16_t *b, int64_t n);
    void (*axpy_f32)(float *y, float a, const float *x, int64_t n);
    void (*axpy_f16)(float *y, float a, const uint16_t *x, int64_t n);
    /* Row conversions: RNE, identical to l8_f32_to_f16 / l8_f16_to_f32 (bit for bit except
     * that f16 -> f32 may set the quiet bit of a signalling NaN). */
    void (*f32_to_f16)(uint16_t *out, const float *x, int64_t n);
    void (*f16_to_f32)(float *out, const uint16_t *x, int64_t n);
    /* Causal attention of one KV head over its f16 cache, for nt consecutive query tokens and the
     * group query heads sharing that KV head (prefill and decode). Token t < nt, head g < group:
     * query row q + t * ldq + g * hd, output row out + t * ldq + g * hd (hd floats each); it sees
     * keys p = 0 .. n0 + t (rows k + p * ldkv and v + p * ldkv, hd halves each). Defined by the
     * helpers above (ref.c): s[p] = dot_f16(query, k_p, hd) * scale, softmax(s, n0 + t + 1), then
     * the output row +0 and axpy_f16(row, s[p], v_p, hd) for p = 0, 1, ... in order; so every
     * level gives the same bits. scores: scratch of nt * group rows of lds >= n0 + nt floats.
     * May be NULL (a level without it): callers then compose the helpers themselves. */
    void (*attn_f16)(float *out, const float *q, int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0,
                     const uint16_t *k, const uint16_t *v, int64_t ldkv, float scale, float *scores, int64_t lds);
    /* In place, nblocks consecutive blocks of h floats (h a power of two): the fast Walsh-Hadamard
     * transform of each block (x[j], x[j + d] <- x[j] + x[j + d], x[j] - x[j + d] for
     * d = 1, 2, 4, ..., h / 2, in that order), then x[i] * norm. The pairs of a stage are
     * independent, so every level gives the same bits. May be NULL (l8_fwht_scalar then). */
    void (*fwht)(float *x, int64_t h, int64_t nblocks, float norm);
} l8_kernels;

/* The table for this process: chosen on first call (thread safe), never changes after. */
const l8_kernels *l8_kernels_get(void);
/* The table of one level, or NULL when this CPU/OS (or build) cannot run it: tests, benches. */
const l8_kernels *l8_kernels_for(l8_isa isa);
/* Best level the machine supports, ignoring LLM8_ISA. */
l8_isa l8_kernels_best_isa(void);
const char *l8_isa_name(l8_isa isa);
/* One human-readable line for `llm8 info`: CPU features found, OS state support, LLM8_ISA and
 * the kernels chosen. Static storage, valid for the process lifetime. */
const char *l8_kernels_describe(void);

/* Convenience: matmul_q8 or matmul_q4 of the process table by w->dtype, over all rows. */
void l8_kernels_matmul(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w);

/* ---- internal: constants of the canonical exp (hex floats: the same bits in every file) ---- */
#define L8_EXP_HI 0x1.633334p+6f     /* 88.8f: e^x overflows to inf above ~88.72 */
#define L8_EXP_LO (-0x1.ap+6f)       /* -104.0f: e^x rounds to 0 below ~-103.98 */
#define L8_EXP_LOG2E 0x1.715476p+0f  /* 1.44269504 */
#define L8_EXP_ROUND 0x1.8p+23f      /* 1.5 * 2^23: t = v + this rounds v to an integer */
#define L8_EXP_LN2_HI 0x1.63p-1f     /* 0.693359375: n * ln2_hi is exact for |n| < 2^15 */
#define L8_EXP_LN2_LO (-0x1.bd0106p-13f) /* -2.12194440e-4: ln2 - ln2_hi */
#define L8_EXP_C7 0x1.a01a02p-13f    /* 1/5040 */
#define L8_EXP_C6 0x1.6c16c2p-10f    /* 1/720 */
#define L8_EXP_C5 0x1.111112p-7f     /* 1/120 */
#define L8_EXP_C4 0x1.555556p-5f     /* 1/24 */
#define L8_EXP_C3 0x1.555556p-3f     /* 1/6 */
#define L8_EXP_C2 0x1p-1f            /* 1/2 */

/* ---- internal: the per-level table fillers and the shared scalar pieces (kernels/ only) ---- */
void l8_kernels_fill_scalar(l8_kernels *k);
void l8_kernels_fill_avx2(l8_kernels *k);   /* x86_64 only */
void l8_kernels_fill_avxvnni(l8_kernels *k); /* x86_64 only: the avx2 table with vpdpbusd matmuls */
void l8_kernels_fill_avx512(l8_kernels *k); /* x86_64 only */
void l8_kernels_fill_amx(l8_kernels *k);    /* x86_64 only: the avx512 table with AMX matmuls */
int l8_kernels_amx_permit(void);            /* x86_64 only: asks the OS for AMX state; 1 if granted */
void l8_kernels_fill_neon(l8_kernels *k);    /* aarch64 only */
void l8_kernels_fill_dotprod(l8_kernels *k); /* aarch64 only: the neon table with SDOT matmuls */
void l8_kernels_fill_i8mm(l8_kernels *k);    /* aarch64 only: the dotprod table with SMMLA GEMMs */
/* The scalar ranged matmul (the reference restricted to rows [r0, r1)): the fallback for
 * grouping the SIMD kernels do not handle. */
void l8_matmul_q_scalar(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                        int64_t r1);
/* Block geometry of a quantized tensor shared by the SIMD kernels: columns per 64-byte block
 * (4 for Q8, 8 for Q4), blocks per tile row, groups and the group length in blocks; returns 0
 * when a group boundary falls inside a block (the kernels then take the scalar path). */
typedef struct l8_qgeom {
    int64_t rows, kp, nb, ng, gb; /* gb: blocks per group (the last one may be shorter) */
    int cpb;                      /* columns per block */
} l8_qgeom;
int l8_qgeom_init(l8_qgeom *g, const l8_tensor *w);
/* attn_f16 composed from one level's helpers (the scalar level's definition; levels without a
 * dedicated kernel use it with their own helpers), and the scalar fwht. */
void l8_attn_f16_compose(float (*dot_f16)(const float *, const uint16_t *, int64_t), void (*softmax)(float *, int64_t),
                         void (*axpy_f16)(float *, float, const uint16_t *, int64_t), float *out, const float *q,
                         int64_t ldq, int64_t nt, int64_t group, int64_t hd, int64_t n0, const uint16_t *k,
                         const uint16_t *v, int64_t ldkv, float scale, float *scores, int64_t lds);
void l8_fwht_scalar(float *x, int64_t h, int64_t nblocks, float norm);
/* aarch64 pieces shared by the neon, dotprod and i8mm levels (arm_neon.c, arm_dotprod.c):
 * xcorr[t * ng + g] = -8 * (sum of token t's activations over group g's blocks), the start of a
 * Q4 accumulator (the nibble is q + 8); the first nr of 16 floats at o to out; the dotprod
 * matmuls (the i8mm level's decode path). */
void l8_arm_q4_corrections(int32_t *xcorr, const int8_t *xq, int64_t nt, const l8_qgeom *g);
void l8_arm_store_rows(float *out, const float *o, int nr);
/* The loops the three aarch64 levels share (arm_neon.c): over chunks of tokens (Q4: as many as
 * the corrections buffer holds), the tiles of rows [r0, r1) and blocks of up to tok_block (<= 4)
 * tokens; block computes one block's 16 outputs per token into o (token t at o + 16 t). g is w's
 * geometry (l8_qgeom_init succeeded, g->ng <= L8_ARM_XCORR_CAP); n >= 1, r0 < r1 <= rows. */
enum { L8_ARM_XCORR_CAP = 16384 };
typedef void (*l8_arm_block_fn)(int q4, int T, const l8_qgeom *g, const uint8_t *wt, const void *sc, int64_t sc0,
                                const int8_t *x, const float *xs, const int32_t *xcorr, float *o);
void l8_arm_matmul(int q4, int tok_block, l8_arm_block_fn block, float *out, const int8_t *xq, const float *xs,
                   int64_t n, const l8_tensor *w, const l8_qgeom *g, int64_t r0, int64_t r1);
void l8_matmul_q8_dotprod(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                          int64_t r1);
void l8_matmul_q4_dotprod(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                          int64_t r1);

#endif
