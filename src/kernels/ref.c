/* The scalar level of the kernel table: the src/quant reference (activation quantization and
 * a row-ranged copy of the reference matmul) plus plain C float helpers. It runs everywhere and
 * is what the SIMD levels are tested against. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

int l8_qgeom_init(l8_qgeom *g, const l8_tensor *w) {
    int64_t cols = w->shape[1];
    g->rows = w->shape[0];
    g->cpb = w->dtype == L8_DTYPE_Q8 ? 4 : 8;
    g->kp = l8_q_cols_padded(w->dtype, cols);
    g->nb = g->kp / g->cpb;
    g->ng = l8_q_n_groups(cols, w->group);
    if (g->ng <= 1) {
        g->ng = 1;
        g->gb = g->nb;
        return 1;
    }
    /* Several groups: each boundary must fall on a block edge so that a whole 64-byte block
     * belongs to one group. Real files have G = 32..512 (multiples of 8). */
    if (w->group % g->cpb != 0) return 0;
    g->gb = w->group / g->cpb;
    return 1;
}

/* ---------------------------------------------------------------- ranged reference matmul */

/* Same walk as l8_q_matmul_ref (src/quant/matmul_ref.c), columns [k0, k1) of one tile. */
static void tile_dot(int32_t acc[16], const uint8_t *tile, bool q8, const int8_t *x, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1;) {
        int64_t step_end = (k / 4 + 1) * 4 < k1 ? (k / 4 + 1) * 4 : k1;
        if (q8) {
            const int8_t *blk = (const int8_t *)tile + (k / 4) * 64;
            for (int r = 0; r < L8_TILE_ROWS; r++)
                for (int64_t c = k; c < step_end; c++) acc[r] += (int32_t)blk[r * 4 + c % 4] * (int32_t)x[c];
        } else {
            const uint8_t *blk = tile + (k / 8) * 64;
            int shift = ((k / 4) & 1) ? 4 : 0;
            for (int r = 0; r < L8_TILE_ROWS; r++)
                for (int64_t c = k; c < step_end; c++)
                    acc[r] += ((int32_t)((blk[r * 4 + c % 4] >> shift) & 15) - 8) * (int32_t)x[c];
        }
        k = step_end;
    }
}

void l8_matmul_q_scalar(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w, int64_t r0,
                        int64_t r1) {
    int64_t rows = w->shape[0], cols = w->shape[1];
    int64_t kp = l8_q_cols_padded(w->dtype, cols);
    int64_t ng = l8_q_n_groups(cols, w->group);
    int64_t g_len = (w->group <= 0 || w->group > cols) ? cols : w->group;
    bool q8 = w->dtype == L8_DTYPE_Q8;
    int64_t tile_bytes = q8 ? L8_TILE_ROWS * kp : L8_TILE_ROWS * kp / 2;
    if (r1 > rows) r1 = rows;

    for (int64_t tile = r0 / L8_TILE_ROWS; tile * L8_TILE_ROWS < r1; tile++) {
        const uint8_t *td = (const uint8_t *)w->data + tile * tile_bytes;
        int64_t rb = tile * L8_TILE_ROWS;
        int nr = r1 - rb < L8_TILE_ROWS ? (int)(r1 - rb) : L8_TILE_ROWS;
        for (int64_t t = 0; t < n; t++) {
            const int8_t *x = xq + t * kp;
            float o[L8_TILE_ROWS] = {0};
            for (int64_t g = 0; g < ng; g++) {
                int64_t k0 = g * g_len, k1 = k0 + g_len < cols ? k0 + g_len : cols;
                int32_t acc[L8_TILE_ROWS] = {0};
                tile_dot(acc, td, q8, x, k0, k1);
                for (int r = 0; r < nr; r++) o[r] += (float)acc[r] * l8_q_weight_scale(w, rb + r, g) * xs[t];
            }
            for (int r = 0; r < nr; r++) out[t * rows + rb + r] = o[r];
        }
    }
}

/* ---------------------------------------------------------------- float helpers */

static void rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void swiglu_scalar(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void softmax_scalar(float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static void exp_scalar(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

static float dot_f32_scalar(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f16_scalar(const float *a, const uint16_t *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * l8_f16_to_f32(b[i]);
    return s;
}

static void axpy_f32_scalar(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void axpy_f16_scalar(float *y, float a, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * l8_f16_to_f32(x[i]);
}

static void f32_to_f16_scalar(uint16_t *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = l8_f32_to_f16(x[i]);
}

static void f16_to_f32_scalar(float *out, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = l8_f16_to_f32(x[i]);
}

void l8_kernels_fill_scalar(l8_kernels *k) {
    k->isa = L8_ISA_SCALAR;
    k->name = "scalar";
    k->quantize_act = l8_q_quantize_act_ref;
    k->matmul_q8 = l8_matmul_q_scalar;
    k->matmul_q4 = l8_matmul_q_scalar;
    k->rmsnorm = rmsnorm_scalar;
    k->swiglu = swiglu_scalar;
    k->softmax = softmax_scalar;
    k->exp = exp_scalar;
    k->dot_f32 = dot_f32_scalar;
    k->dot_f16 = dot_f16_scalar;
    k->axpy_f32 = axpy_f32_scalar;
    k->axpy_f16 = axpy_f16_scalar;
    k->f32_to_f16 = f32_to_f16_scalar;
    k->f16_to_f32 = f16_to_f32_scalar;
}
