/* The scalar reference of the quantized matmul, the oracle of the fast kernels: the int32 sum of
 * every (token, row, group) is exact, and the fast kernels must reproduce it bit for bit; only
 * the float rescale after it may differ in rounding.
 *
 * It walks the tiled layout the way the kernels do (16 rows at a time, 4 columns per 64-byte
 * block) so that it stays usable as an oracle on real model sizes; a group boundary may fall
 * inside a 4-column step (G need not be a multiple of 4), hence the per-column range clamp. */
#include "quant/quant.h"

/* Adds the products of columns [k0, k1) of one tile into acc[16]. */
static void tile_dot_q8(int32_t acc[16], const int8_t *tile, const int8_t *x, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1;) {
        int64_t step_end = (k / 4 + 1) * 4 < k1 ? (k / 4 + 1) * 4 : k1;
        const int8_t *blk = tile + (k / 4) * 64;
        for (int r = 0; r < L8_TILE_ROWS; r++)
            for (int64_t c = k; c < step_end; c++) acc[r] += (int32_t)blk[r * 4 + c % 4] * (int32_t)x[c];
        k = step_end;
    }
}

static void tile_dot_q4(int32_t acc[16], const uint8_t *tile, const int8_t *x, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1;) {
        int64_t step_end = (k / 4 + 1) * 4 < k1 ? (k / 4 + 1) * 4 : k1;
        const uint8_t *blk = tile + (k / 8) * 64;
        int shift = ((k / 4) & 1) ? 4 : 0;
        for (int r = 0; r < L8_TILE_ROWS; r++)
            for (int64_t c = k; c < step_end; c++)
                acc[r] += ((int32_t)((blk[r * 4 + c % 4] >> shift) & 15) - 8) * (int32_t)x[c];
        k = step_end;
    }
}

void l8_q_matmul_ref(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w) {
    l8_q_matmul_ref_rows(out, xq, xs, n, w, 0, w->shape[0]);
}

void l8_q_matmul_ref_rows(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r_begin,
                          int64_t r_end) {
    int64_t rows = w->shape[0], cols = w->shape[1];
    int64_t kp = l8_q_cols_padded(w->dtype, cols);
    int64_t ng = l8_q_n_groups(cols, w->group);
    int64_t g_len = (w->group <= 0 || w->group > cols) ? cols : w->group;
    bool q8 = w->dtype == L8_DTYPE_Q8;
    int64_t tile_bytes = q8 ? L8_TILE_ROWS * kp : L8_TILE_ROWS * kp / 2;

    if (r_end > rows) r_end = rows;
    for (int64_t tile = r_begin / L8_TILE_ROWS; tile * L8_TILE_ROWS < r_end; tile++) {
        const uint8_t *td = (const uint8_t *)w->data + tile * tile_bytes;
        int64_t r0 = tile * L8_TILE_ROWS;
        int nr = r_end - r0 < L8_TILE_ROWS ? (int)(r_end - r0) : L8_TILE_ROWS;
        for (int64_t t = 0; t < n; t++) {
            const int8_t *x = xq + t * kp;
            float o[L8_TILE_ROWS] = {0};
            for (int64_t g = 0; g < ng; g++) {
                int64_t k0 = g * g_len, k1 = k0 + g_len < cols ? k0 + g_len : cols;
                int32_t acc[L8_TILE_ROWS] = {0};
                if (q8)
                    tile_dot_q8(acc, (const int8_t *)td, x, k0, k1);
                else
                    tile_dot_q4(acc, td, x, k0, k1);
                for (int r = 0; r < nr; r++) o[r] += (float)acc[r] * l8_q_weight_scale(w, r0 + r, g) * xs[t];
            }
            for (int r = 0; r < nr; r++) out[t * rows + r0 + r] = o[r];
        }
    }
}
