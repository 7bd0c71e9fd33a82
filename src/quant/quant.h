/*
 * Quantized weights and activations: the on-disk/in-memory layouts and the scalar reference
 * implementation that every fast kernel must match (bit-exact on the int32 sums).
 *
 * Weight layout (part of the file format, FORMAT.md): a matrix of N rows (outputs) by K columns
 * (inputs) is cut into tiles of 16 rows. Rows are padded with zeros to Np = ceil(N/16)*16 and
 * columns to Kp (Q8: a multiple of 4; Q4: a multiple of 8). Inside a tile, the 16 rows are
 * interleaved in steps of 4 columns, so that one 64-byte load holds 4 consecutive inputs of 16
 * outputs — the operand shape of x86 vpdpbusd and ARM sdot:
 *
 *   Q8 byte (r, k) is at  ((r/16) * (Kp/4) + k/4) * 64 + (r%16) * 4 + k%4
 *   Q4: two 4-column steps share one 64-byte block: step 2j in the low nibbles, 2j+1 in the
 *       high nibbles, stored as q + 8 (0..15); nibble (r, k) is in byte
 *        ((r/16) * (Kp/8) + k/8) * 64 + (r%16) * 4 + k%4, high nibble when (k/4) is odd.
 *
 * Groups: row r's inputs [g*G, min((g+1)*G, K)) share one scale (the last group may be
 * shorter: G need not divide K). Q8 per-channel is G = K. Scales are stored per tile so that a
 * kernel working on 16 rows loads 16 consecutive scales:
 *   scale(r, g) at  ((r/16) * n_groups + g) * 16 + r%16      (f32 for Q8, f16 for Q4)
 * Pad rows have scale 0 and weights 0.
 *
 * Quantization: symmetric, round to nearest even, saturating. Q8: s = amax/127,
 * q = clamp(rne(w/s), -127, 127). Q4 (as the Llama 3.2 QAT/SpinQuant releases):
 * s = amax/7.5, q = clamp(rne(w/s), -8, 7), with s first rounded to the stored f16 (q is computed
 * against the scale the reader sees). An all-zero group has s = 0 and q = 0 (so does a group
 * whose s underflows to 0). Non-finite inputs never cause UB: NaN -> q 0 and is ignored by amax;
 * +-Inf counts as FLT_MAX in amax and saturates. Q4 pad nibbles hold q 0, i.e. the value 8.
 * The rules are spelled out with the error bounds in docs/QUANT.md.
 * Activations: int8 per token (one scale per row of x), s = amax/127, same rounding.
 */
#ifndef L8_QUANT_H
#define L8_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm8.h"
#include "model/tensor.h"

enum { L8_TILE_ROWS = 16 };

/* The weight types of the file format and the CLI. */
typedef enum l8_qtype {
    L8_QTYPE_F32 = 0,
    L8_QTYPE_F16,
    L8_QTYPE_BF16,
    L8_QTYPE_W8A8,      /* Q8, group = K (per output channel) */
    L8_QTYPE_W8A8_G128,
    L8_QTYPE_W8A8_G256,
    L8_QTYPE_W8A8_G512,
    L8_QTYPE_W4A8_G32,
    L8_QTYPE_COUNT
} l8_qtype;

const char *l8_qtype_name(l8_qtype t);             /* "w8a8_g128", ... */
bool l8_qtype_parse(const char *name, l8_qtype *out);
/* Tensor dtype and group size a linear weight of `cols` inputs gets under qtype t. */
l8_dtype l8_qtype_dtype(l8_qtype t);
int32_t l8_qtype_group(l8_qtype t, int64_t cols);

/* Padded sizes and byte counts of a quantized matrix. */
int64_t l8_q_rows_padded(int64_t rows);
int64_t l8_q_cols_padded(l8_dtype dt, int64_t cols);
int64_t l8_q_n_groups(int64_t cols, int32_t group);
size_t l8_q_data_bytes(l8_dtype dt, int64_t rows, int64_t cols);
size_t l8_q_scale_bytes(l8_dtype dt, int64_t rows, int64_t cols, int32_t group);

/* Quantizes one tile of up to 16 rows (w: nrows x cols f32, row-major) into its place in
 * data/scales (the whole matrix's buffers). Converters stream a matrix 16 rows at a time. */
void l8_q_quantize_tile(l8_dtype dt, int32_t group, const float *w, int64_t nrows, int64_t cols, int64_t tile,
                        void *data, void *scales);

/* Quantizes a whole rows x cols f32 matrix (row-major) into fresh 64-byte-aligned buffers
 * (release both with free()): for tests and small tools. dt is Q8 or Q4, group >= 1 (a group
 * >= cols is one group per row). */
llm8_status l8_q_quantize_matrix(l8_dtype dt, int32_t group, const float *w, int64_t rows, int64_t cols, void **data,
                                 void **scales);
/* A 2-D tensor view over (data, scales) as laid out above; nothing is copied. */
l8_tensor l8_q_tensor(l8_dtype dt, int32_t group, int64_t rows, int64_t cols, const void *data, const void *scales);
/* One weight q(r, k) (Q4: already minus 8) and one scale (r, group g) of a Q8/Q4 tensor, straight
 * from the layout formulas; valid on pad rows and columns too. */
int32_t l8_q_weight(const l8_tensor *t, int64_t r, int64_t k);
float l8_q_weight_scale(const l8_tensor *t, int64_t r, int64_t g);

/* Reads back row r of a quantized matrix as floats (q * scale): embedding lookup, tests.
 * Float dtypes are accepted too (plain conversion). out holds shape[1] floats. */
void l8_q_dequantize_row(const l8_tensor *t, int64_t r, float *out);

/* Activations: quantizes each of the n rows of x (n x k) to int8 with one scale per row.
 * xq needs n * kp bytes (kp = l8_q_cols_padded of the weight; pad bytes are written 0). */
void l8_q_quantize_act_ref(const float *x, int64_t n, int64_t k, int64_t kp, int8_t *xq, float *xs);

/* The reference quantized matmul: out (n x rows) = dequant(x) . dequant(W)^T with int32
 * accumulation inside each group and the float rescale after each group. */
void l8_q_matmul_ref(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w);
/* The same for the rows [r_begin, r_end) only (r_begin a multiple of 16): the kernels' scalar
 * level and their fallback. */
void l8_q_matmul_ref_rows(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r_begin,
                          int64_t r_end);

#endif
