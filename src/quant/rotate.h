/*
 * Orthogonal rotations that spread activation outliers across channels before int8
 * quantization (as QuaRot and SpinQuant, the method of Meta's quantized Llama 3.2 releases).
 * Rotating the residual stream is folded into the weights at conversion and costs nothing at
 * run time; the input of the down projection is rotated online, O(n log n) per token.
 *
 * For a dimension n = h * m with h the largest power of two dividing n:
 *   T = diag(signs) (Q_m ⊗ H_h) / sqrt(h)
 * with random signs, H_h the Sylvester Hadamard matrix and Q_m a random orthogonal m x m matrix
 * (m = 1 for powers of two: then T is a randomized Hadamard transform). Every use in llm8 needs
 * only T^T x, computed as: x *= signs; a fast Walsh-Hadamard transform of each contiguous block
 * of h elements, scaled by 1/sqrt(h); then v <- Q_m^T v for each of the h strided vectors
 * v = (x[j], x[h + j], ..., x[(m-1)h + j]).
 */
#ifndef L8_ROTATE_H
#define L8_ROTATE_H

#include <stdint.h>

#include "llm8.h"

enum { L8_ROT_MAX_M = 256 }; /* the odd factor's dense matrix is m x m */

typedef struct l8_rot {
    int32_t n, h, m;
    const float *signs; /* (n) +1 or -1 */
    const float *mix;   /* (m, m) row-major Q_m; NULL when m == 1 */
    float *owned;       /* the buffer behind signs and mix when made by l8_rot_make */
} l8_rot;

/* A random rotation of size n from seed (deterministic). UNSUPPORTED when n's odd factor exceeds
 * L8_ROT_MAX_M. */
llm8_status l8_rot_make(l8_rot *r, int32_t n, uint64_t seed);
/* A view over stored parameters (signs: n floats; mix: m*m floats or NULL with m == 1). */
l8_rot l8_rot_view(int32_t n, int32_t m, const float *signs, const float *mix);
void l8_rot_free(l8_rot *r);

/* x <- T x (the inverse of l8_rot_apply_t), in place; tmp holds m floats. */
void l8_rot_apply(const l8_rot *r, float *x, float *tmp);
/* x <- T^T x, in place, for one vector of n floats; tmp holds m floats. */
void l8_rot_apply_t(const l8_rot *r, float *x, float *tmp);

#endif
