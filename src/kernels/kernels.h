/*
 * The compute kernels of the runtime behind one dispatch table, filled once from the CPU's
 * features (dispatch.c). Levels: scalar (ref.c: the src/quant reference plus plain C float
 * helpers), avx2 (AVX2 + FMA + F16C, x86_avx2.c) and avx512 (AVX-512 F/BW/VL/VNNI with the OS
 * saving ZMM state, x86_avx512.c). The environment variable LLM8_ISA=scalar|avx2|avx512 forces
 * a lower level than the best available one (an unavailable level falls back and says so in
 * l8_kernels_describe).
 *
 * Exactness contract (tests/test_kernels.c checks it at every level):
 *  - quantize_act writes the same bytes and scales as l8_q_quantize_act_ref (it divides by the
 *    scale, as the reference does; see docs/QUANT.md on why not a reciprocal).
 *  - matmul_q8 / matmul_q4 reproduce the int32 group sums exactly AND apply the float rescale
 *    in the reference's order, ((float)acc * ws) * xs added group after group, so their float
 *    outputs are bit-identical to l8_q_matmul_ref (the ISA files are built with
 *    -ffp-contract=off so that no FMA creeps in).
 *  - f32_to_f16 equals l8_f32_to_f16 for every input, NaN included (NaN -> sign|0x7E00).
 *  - The float helpers (rmsnorm, swiglu, softmax, exp, dots, axpys) sum in another order than
 *    the scalar ones: relative differences of a few ulps; exp has relative error < 2e-7
 *    against expf for results >= FLT_MIN.
 */
#ifndef L8_KERNELS_H
#define L8_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model/tensor.h"

typedef enum l8_isa { L8_ISA_SCALAR = 0, L8_ISA_AVX2, L8_ISA_AVX512, L8_ISA_COUNT } l8_isa;

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

/* ---- internal: the per-level table fillers and the shared scalar pieces (kernels/ only) ---- */
void l8_kernels_fill_scalar(l8_kernels *k);
void l8_kernels_fill_avx2(l8_kernels *k);   /* x86_64 only */
void l8_kernels_fill_avx512(l8_kernels *k); /* x86_64 only */
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

#endif
