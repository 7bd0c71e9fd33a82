/* Quantization types: names, their tensor dtype and group size, and the sizes of the tiled layout
 * described in quant.h. */
#include "quant/quant.h"

#include <string.h>

static const char *const qtype_names[L8_QTYPE_COUNT] = {
    [L8_QTYPE_F32] = "f32",
    [L8_QTYPE_F16] = "f16",
    [L8_QTYPE_BF16] = "bf16",
    [L8_QTYPE_W8A8] = "w8a8",
    [L8_QTYPE_W8A8_G128] = "w8a8_g128",
    [L8_QTYPE_W8A8_G256] = "w8a8_g256",
    [L8_QTYPE_W8A8_G512] = "w8a8_g512",
    [L8_QTYPE_W4A8_G32] = "w4a8_g32",
};

const char *l8_qtype_name(l8_qtype t) {
    if ((unsigned)t >= L8_QTYPE_COUNT) return "?";
    return qtype_names[t];
}

bool l8_qtype_parse(const char *name, l8_qtype *out) {
    if (!name) return false;
    for (int i = 0; i < L8_QTYPE_COUNT; i++) {
        if (strcmp(name, qtype_names[i]) == 0) {
            if (out) *out = (l8_qtype)i;
            return true;
        }
    }
    return false;
}

l8_dtype l8_qtype_dtype(l8_qtype t) {
    switch (t) {
    case L8_QTYPE_F32: return L8_DTYPE_F32;
    case L8_QTYPE_F16: return L8_DTYPE_F16;
    case L8_QTYPE_BF16: return L8_DTYPE_BF16;
    case L8_QTYPE_W8A8:
    case L8_QTYPE_W8A8_G128:
    case L8_QTYPE_W8A8_G256:
    case L8_QTYPE_W8A8_G512: return L8_DTYPE_Q8;
    case L8_QTYPE_W4A8_G32: return L8_DTYPE_Q4;
    default: return L8_DTYPE_COUNT;
    }
}

/* Q8 groups are capped at the row length, so that a G >= cols matrix is one group per row and
 * byte-identical to the per-channel one (group == cols is the one spelling of "per channel").
 * Q4 keeps 32: its kernels are written for that fixed group, and a row shorter than 32 is then
 * one short group, which the layout allows anyway. */
int32_t l8_qtype_group(l8_qtype t, int64_t cols) {
    int64_t g;
    switch (t) {
    case L8_QTYPE_W8A8: g = cols; break;
    case L8_QTYPE_W8A8_G128: g = 128; break;
    case L8_QTYPE_W8A8_G256: g = 256; break;
    case L8_QTYPE_W8A8_G512: g = 512; break;
    case L8_QTYPE_W4A8_G32: return 32;
    default: return 0;
    }
    if (g > cols) g = cols;
    if (g < 1) g = 1;
    if (g > INT32_MAX) g = INT32_MAX;
    return (int32_t)g;
}

int64_t l8_q_rows_padded(int64_t rows) { return (rows + L8_TILE_ROWS - 1) / L8_TILE_ROWS * L8_TILE_ROWS; }

int64_t l8_q_cols_padded(l8_dtype dt, int64_t cols) {
    switch (dt) {
    case L8_DTYPE_Q8: return (cols + 3) / 4 * 4;
    case L8_DTYPE_Q4: return (cols + 7) / 8 * 8;
    default: return cols;
    }
}

int64_t l8_q_n_groups(int64_t cols, int32_t group) {
    if (cols <= 0) return 0;
    if (group <= 0 || group >= cols) return 1;
    return (cols + group - 1) / group;
}

size_t l8_q_data_bytes(l8_dtype dt, int64_t rows, int64_t cols) {
    switch (dt) {
    case L8_DTYPE_Q8: return (size_t)(l8_q_rows_padded(rows) * l8_q_cols_padded(dt, cols));
    case L8_DTYPE_Q4: return (size_t)(l8_q_rows_padded(rows) * l8_q_cols_padded(dt, cols) / 2);
    default: return (size_t)(rows * cols) * l8_dtype_size(dt);
    }
}

size_t l8_q_scale_bytes(l8_dtype dt, int64_t rows, int64_t cols, int32_t group) {
    size_t n = (size_t)(l8_q_rows_padded(rows) * l8_q_n_groups(cols, group));
    switch (dt) {
    case L8_DTYPE_Q8: return n * sizeof(float);
    case L8_DTYPE_Q4: return n * sizeof(uint16_t);
    default: return 0;
    }
}

l8_tensor l8_q_tensor(l8_dtype dt, int32_t group, int64_t rows, int64_t cols, const void *data, const void *scales) {
    l8_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = 2;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.data = data;
    t.nbytes = l8_q_data_bytes(dt, rows, cols);
    if (dt == L8_DTYPE_Q8 || dt == L8_DTYPE_Q4) {
        t.scales = scales;
        t.group = group;
    }
    return t;
}

/* The accessors below spell out the layout formulas of quant.h once; the matmul walks the same
 * layout block by block instead. */
int32_t l8_q_weight(const l8_tensor *t, int64_t r, int64_t k) {
    int64_t kp = l8_q_cols_padded(t->dtype, t->shape[1]);
    const uint8_t *d = t->data;
    if (t->dtype == L8_DTYPE_Q8) return ((const int8_t *)d)[((r / 16) * (kp / 4) + k / 4) * 64 + (r % 16) * 4 + k % 4];
    uint8_t b = d[((r / 16) * (kp / 8) + k / 8) * 64 + (r % 16) * 4 + k % 4];
    return (int32_t)(((k / 4) & 1) ? b >> 4 : b & 15) - 8;
}

float l8_q_weight_scale(const l8_tensor *t, int64_t r, int64_t g) {
    int64_t i = ((r / 16) * l8_q_n_groups(t->shape[1], t->group) + g) * 16 + r % 16;
    if (t->dtype == L8_DTYPE_Q8) return ((const float *)t->scales)[i];
    return l8_f16_to_f32(((const uint16_t *)t->scales)[i]);
}
