/* A view of one weight tensor: borrowed data (usually inside a mapped file) plus its shape. */
#ifndef L8_TENSOR_H
#define L8_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum l8_dtype {
    L8_DTYPE_F32 = 0,
    L8_DTYPE_F16,
    L8_DTYPE_BF16,
    L8_DTYPE_Q8, /* int8 symmetric, one f32 scale per group of `group` inputs; tiled (src/quant/quant.h) */
    L8_DTYPE_Q4, /* int4 symmetric in groups of 32, one f16 scale per group; tiled (src/quant/quant.h) */
    L8_DTYPE_COUNT
} l8_dtype;

const char *l8_dtype_name(l8_dtype t);
size_t l8_dtype_size(l8_dtype t); /* bytes per element of the float types; 0 for quantized ones */

/* Shapes follow PyTorch: a linear weight is [out_features, in_features], row-major, so
 * shape[0] rows of shape[1] elements. A vector has ndim 1. */
typedef struct l8_tensor {
    l8_dtype dtype;
    int ndim;
    int64_t shape[4];     /* logical shape: [rows (out), cols (in)] for a matrix */
    const void *data;
    size_t nbytes;
    /* quantized types only */
    const void *scales;   /* Q8: f32, Q4: f16; layout in src/quant/quant.h */
    int32_t group;        /* inputs per scale (Q8: 32..cols; Q4: 32) */
} l8_tensor;

static inline int64_t l8_tensor_nelem(const l8_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Scalar conversions (IEEE half and bfloat16; round to nearest even on the way down). */
float l8_f16_to_f32(uint16_t h);
uint16_t l8_f32_to_f16(float f);
float l8_bf16_to_f32(uint16_t b);
uint16_t l8_f32_to_bf16(float f);

/* Converts row r of a 2-D tensor (or the whole of a 1-D one, r = 0) to f32. */
void l8_tensor_row_f32(const l8_tensor *t, int64_t r, float *out);

#endif
