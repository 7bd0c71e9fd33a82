/* Quantization of weights (tiled, grouped) and activations (per token), and the way back.
 *
 * Every value goes through q_round: the division by the scale, a clamp in float (so that the
 * float -> int conversion is always defined: NaN and out-of-range conversions are UB in C), then
 * nearbyintf, which rounds to nearest even under the default rounding mode, the same rounding
 * as the cvtps2dq / fcvtns instructions the fast kernels use. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

enum { Q4_PAD_BYTE = 0x88 }; /* two nibbles holding q = 0 (stored as q + 8) */

/* Largest |x| of the group. fmaxf drops NaN operands, so NaN never sets a scale; an infinity is
 * held at FLT_MAX so that the scale stays finite (the infinity itself then saturates). */
static float group_amax(const float *x, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return fminf(m, FLT_MAX);
}

/* s == 0 covers both an all-zero group and one whose amax / qmax underflowed to 0: everything
 * quantizes to 0 there, with no division by zero. NaN quantizes to 0. */
static int32_t q_round(float x, float s, float lo, float hi) {
    if (s == 0.0f) return 0;
    float v = x / s;
    if (isnan(v)) return 0;
    v = fminf(fmaxf(v, lo), hi);
    return (int32_t)nearbyintf(v);
}

static float q4_scale(float amax) {
    /* The stored f16 is what dequantization uses, so the q values are computed against it: the
     * element error is then at most half the scale that the reader actually sees. 65504 (the
     * largest finite f16) keeps the scale finite for absurd weights. */
    return l8_f16_to_f32(l8_f32_to_f16(fminf(amax / 7.5f, 65504.0f)));
}

void l8_q_quantize_tile(l8_dtype dt, int32_t group, const float *w, int64_t nrows, int64_t cols, int64_t tile,
                        void *data, void *scales) {
    int64_t kp = l8_q_cols_padded(dt, cols);
    int64_t ng = l8_q_n_groups(cols, group);
    int64_t g_len = (group <= 0 || group > cols) ? cols : group;
    if (nrows > L8_TILE_ROWS) nrows = L8_TILE_ROWS;

    if (dt == L8_DTYPE_Q8) {
        int8_t *d = (int8_t *)data + tile * (kp / 4) * 64;
        float *sc = (float *)scales + tile * ng * L8_TILE_ROWS;
        /* Writing the whole tile (pads included) lets callers hand in uninitialised buffers. */
        memset(d, 0, (size_t)(L8_TILE_ROWS * kp));
        memset(sc, 0, (size_t)(ng * L8_TILE_ROWS) * sizeof(float));
        for (int64_t r = 0; r < nrows; r++) {
            const float *row = w + r * cols;
            for (int64_t g = 0; g < ng; g++) {
                int64_t k0 = g * g_len, k1 = k0 + g_len < cols ? k0 + g_len : cols;
                float s = group_amax(row + k0, k1 - k0) / 127.0f;
                sc[g * L8_TILE_ROWS + r] = s;
                for (int64_t k = k0; k < k1; k++)
                    d[(k / 4) * 64 + r * 4 + k % 4] = (int8_t)q_round(row[k], s, -127.0f, 127.0f);
            }
        }
    } else if (dt == L8_DTYPE_Q4) {
        uint8_t *d = (uint8_t *)data + tile * (kp / 8) * 64;
        uint16_t *sc = (uint16_t *)scales + tile * ng * L8_TILE_ROWS;
        memset(d, Q4_PAD_BYTE, (size_t)(L8_TILE_ROWS * kp / 2));
        memset(sc, 0, (size_t)(ng * L8_TILE_ROWS) * sizeof(uint16_t));
        for (int64_t r = 0; r < nrows; r++) {
            const float *row = w + r * cols;
            for (int64_t g = 0; g < ng; g++) {
                int64_t k0 = g * g_len, k1 = k0 + g_len < cols ? k0 + g_len : cols;
                float s = q4_scale(group_amax(row + k0, k1 - k0));
                sc[g * L8_TILE_ROWS + r] = l8_f32_to_f16(s);
                for (int64_t k = k0; k < k1; k++) {
                    uint8_t nib = (uint8_t)(q_round(row[k], s, -8.0f, 7.0f) + 8);
                    uint8_t *b = &d[(k / 8) * 64 + r * 4 + k % 4];
                    *b = ((k / 4) & 1) ? (uint8_t)((*b & 0x0F) | (nib << 4)) : (uint8_t)((*b & 0xF0) | nib);
                }
            }
        }
    }
}

/* Rounded up to a multiple of 64 (aligned_alloc wants it) and never 0, so that a 0-row matrix
 * still gets a pointer the caller can free. */
static void *alloc64(size_t n) {
    n = (n + 63) / 64 * 64;
    return aligned_alloc(64, n ? n : 64);
}

llm8_status l8_q_quantize_matrix(l8_dtype dt, int32_t group, const float *w, int64_t rows, int64_t cols, void **data,
                                 void **scales) {
    if (!data || !scales) return LLM8_STATUS_INVALID_ARGUMENT;
    *data = *scales = NULL;
    if ((dt != L8_DTYPE_Q8 && dt != L8_DTYPE_Q4) || group < 1 || rows < 0 || cols < 1 || (rows > 0 && !w))
        return LLM8_STATUS_INVALID_ARGUMENT;
    void *d = alloc64(l8_q_data_bytes(dt, rows, cols));
    void *s = alloc64(l8_q_scale_bytes(dt, rows, cols, group));
    if (!d || !s) {
        free(d);
        free(s);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    for (int64_t t = 0; t * L8_TILE_ROWS < rows; t++) {
        int64_t nr = rows - t * L8_TILE_ROWS;
        l8_q_quantize_tile(dt, group, w + t * L8_TILE_ROWS * cols, nr, cols, t, d, s);
    }
    *data = d;
    *scales = s;
    return LLM8_STATUS_OK;
}

void l8_q_dequantize_row(const l8_tensor *t, int64_t r, float *out) {
    if (t->dtype != L8_DTYPE_Q8 && t->dtype != L8_DTYPE_Q4) {
        l8_tensor_row_f32(t, r, out);
        return;
    }
    int64_t cols = t->shape[1];
    int64_t ng = l8_q_n_groups(cols, t->group);
    int64_t g_len = (t->group <= 0 || t->group > cols) ? cols : t->group;
    for (int64_t g = 0; g < ng; g++) {
        float s = l8_q_weight_scale(t, r, g);
        int64_t k1 = (g + 1) * g_len < cols ? (g + 1) * g_len : cols;
        for (int64_t k = g * g_len; k < k1; k++) out[k] = (float)l8_q_weight(t, r, k) * s;
    }
}

void l8_q_quantize_act_ref(const float *x, int64_t n, int64_t k, int64_t kp, int8_t *xq, float *xs) {
    for (int64_t t = 0; t < n; t++) {
        const float *row = x + t * k;
        int8_t *q = xq + t * kp;
        float s = group_amax(row, k) / 127.0f;
        xs[t] = s;
        for (int64_t i = 0; i < k; i++) q[i] = (int8_t)q_round(row[i], s, -127.0f, 127.0f);
        memset(q + k, 0, (size_t)(kp - k));
    }
}
