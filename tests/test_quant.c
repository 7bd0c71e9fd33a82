/* Tests of the quantization core (src/quant): type names and sizes, the tiled layouts byte by
 * byte, round-trip error bounds on odd shapes, edge cases (zero groups, saturation, ties,
 * non-finite input), the reference matmul against a naive double computation, the derived error
 * bound against the f32 product, and per-token vs per-group activation scales. The figures are
 * printed; docs/QUANT.md quotes them. */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

static int n_checked;
#define CHECK(c)            \
    do {                    \
        assert(c);          \
        n_checked++;        \
    } while (0)

/* ---------------------------------------------------------------- random numbers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_u64() >> 11) * 0x1p-53; } /* [0, 1) */

static float rng_gauss(void) {
    double u = rng_unit(), v = rng_unit();
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

/* Gaussian entries. Harsh (for the layout and bound checks): each row gets its own magnitude in
 * [0.1, 10] and 2% of the entries are 10x outliers, so that the groups of one row see very
 * different scales. Plain: N(0, 1), for error figures that mean something. */
static float *random_matrix_ex(int64_t rows, int64_t cols, int harsh) {
    float *w = malloc((size_t)(rows * cols) * sizeof(float) + 1);
    assert(w);
    for (int64_t r = 0; r < rows; r++) {
        float mag = harsh ? (float)pow(10.0, 2.0 * rng_unit() - 1.0) : 1.0f;
        for (int64_t k = 0; k < cols; k++) {
            float v = rng_gauss() * mag;
            if (harsh && rng_unit() < 0.02) v *= 10.0f;
            w[r * cols + k] = v;
        }
    }
    return w;
}

static float *random_matrix(int64_t rows, int64_t cols) { return random_matrix_ex(rows, cols, 1); }

/* ---------------------------------------------------------------- layout, independently of quant.c */

/* The formulas of quant.h, written again here so that the library's own accessors are checked. */
static int tq(const l8_tensor *t, int64_t r, int64_t k) {
    int64_t kp = t->dtype == L8_DTYPE_Q8 ? (t->shape[1] + 3) / 4 * 4 : (t->shape[1] + 7) / 8 * 8;
    const uint8_t *d = t->data;
    if (t->dtype == L8_DTYPE_Q8) return (int8_t)d[((r / 16) * (kp / 4) + k / 4) * 64 + (r % 16) * 4 + k % 4];
    uint8_t b = d[((r / 16) * (kp / 8) + k / 8) * 64 + (r % 16) * 4 + k % 4];
    return ((k / 4) % 2 ? b >> 4 : b & 15) - 8;
}

static int64_t t_groups(const l8_tensor *t) {
    return t->group >= t->shape[1] ? 1 : (t->shape[1] + t->group - 1) / t->group;
}

static int64_t t_glen(const l8_tensor *t) { return t->group >= t->shape[1] ? t->shape[1] : t->group; }

static float ts(const l8_tensor *t, int64_t r, int64_t g) {
    int64_t i = ((r / 16) * t_groups(t) + g) * 16 + r % 16;
    if (t->dtype == L8_DTYPE_Q8) return ((const float *)t->scales)[i];
    return l8_f16_to_f32(((const uint16_t *)t->scales)[i]);
}

typedef struct qmat {
    void *data, *scales;
    l8_tensor t;
} qmat;

static qmat quantize(l8_dtype dt, int32_t group, const float *w, int64_t rows, int64_t cols) {
    qmat m;
    llm8_status st = l8_q_quantize_matrix(dt, group, w, rows, cols, &m.data, &m.scales);
    assert(st == LLM8_STATUS_OK);
    m.t = l8_q_tensor(dt, group, rows, cols, m.data, m.scales);
    return m;
}

static void qmat_free(qmat *m) {
    free(m->data);
    free(m->scales);
}

typedef struct wtype {
    const char *name;
    l8_dtype dt;
    int32_t group; /* 0: per channel (= cols) */
} wtype;

static const wtype wtypes[] = {
    {"q8 per-channel", L8_DTYPE_Q8, 0}, {"q8 g32", L8_DTYPE_Q8, 32},   {"q8 g128", L8_DTYPE_Q8, 128},
    {"q8 g256", L8_DTYPE_Q8, 256},      {"q8 g512", L8_DTYPE_Q8, 512}, {"q4 g32", L8_DTYPE_Q4, 32},
};
enum { N_WTYPES = sizeof wtypes / sizeof wtypes[0] };

static int32_t group_of(const wtype *wt, int64_t cols) { return wt->group ? wt->group : (int32_t)cols; }

static float amax_of(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* The largest error one element of a group may have: half a step, except that a Q4 value above
 * 7.5 s (possible when the f16 rounding made s smaller than amax/7.5) saturates at 7. */
static double elem_bound(l8_dtype dt, float s, float amax) {
    double b = 0.5 * s;
    if (dt == L8_DTYPE_Q4 && amax - 7.0 * (double)s > b) b = amax - 7.0 * (double)s;
    return b;
}

/* ---------------------------------------------------------------- names and sizes */

static void test_names_sizes(void) {
    static const char *names[] = {"f32", "f16", "bf16", "w8a8", "w8a8_g128", "w8a8_g256", "w8a8_g512", "w4a8_g32"};
    for (int i = 0; i < L8_QTYPE_COUNT; i++) {
        l8_qtype t;
        CHECK(strcmp(l8_qtype_name((l8_qtype)i), names[i]) == 0);
        CHECK(l8_qtype_parse(names[i], &t) && t == (l8_qtype)i);
    }
    l8_qtype t;
    CHECK(!l8_qtype_parse("w8a8_g64", &t) && !l8_qtype_parse("", &t) && !l8_qtype_parse("W8A8", &t));
    CHECK(!l8_qtype_parse(NULL, &t));
    CHECK(strcmp(l8_qtype_name(L8_QTYPE_COUNT), "?") == 0);

    CHECK(l8_qtype_dtype(L8_QTYPE_F32) == L8_DTYPE_F32 && l8_qtype_group(L8_QTYPE_F32, 100) == 0);
    CHECK(l8_qtype_dtype(L8_QTYPE_F16) == L8_DTYPE_F16 && l8_qtype_group(L8_QTYPE_F16, 100) == 0);
    CHECK(l8_qtype_dtype(L8_QTYPE_BF16) == L8_DTYPE_BF16 && l8_qtype_group(L8_QTYPE_BF16, 100) == 0);
    CHECK(l8_qtype_dtype(L8_QTYPE_W8A8) == L8_DTYPE_Q8 && l8_qtype_group(L8_QTYPE_W8A8, 2048) == 2048);
    CHECK(l8_qtype_dtype(L8_QTYPE_W8A8_G128) == L8_DTYPE_Q8 && l8_qtype_group(L8_QTYPE_W8A8_G128, 2048) == 128);
    CHECK(l8_qtype_group(L8_QTYPE_W8A8_G256, 8192) == 256 && l8_qtype_group(L8_QTYPE_W8A8_G512, 8192) == 512);
    /* G > cols: capped, so the matrix is the per-channel one */
    CHECK(l8_qtype_group(L8_QTYPE_W8A8_G512, 300) == 300 && l8_q_n_groups(300, 300) == 1);
    CHECK(l8_qtype_dtype(L8_QTYPE_W4A8_G32) == L8_DTYPE_Q4 && l8_qtype_group(L8_QTYPE_W4A8_G32, 2048) == 32);
    CHECK(l8_qtype_group(L8_QTYPE_W4A8_G32, 20) == 32 && l8_q_n_groups(20, 32) == 1);

    CHECK(l8_q_rows_padded(1) == 16 && l8_q_rows_padded(16) == 16 && l8_q_rows_padded(17) == 32);
    CHECK(l8_q_cols_padded(L8_DTYPE_Q8, 5) == 8 && l8_q_cols_padded(L8_DTYPE_Q8, 4) == 4);
    CHECK(l8_q_cols_padded(L8_DTYPE_Q4, 5) == 8 && l8_q_cols_padded(L8_DTYPE_Q4, 9) == 16);
    CHECK(l8_q_n_groups(300, 128) == 3 && l8_q_n_groups(256, 128) == 2 && l8_q_n_groups(1, 32) == 1);
    CHECK(l8_q_data_bytes(L8_DTYPE_Q8, 17, 5) == 32 * 8 && l8_q_data_bytes(L8_DTYPE_Q4, 17, 5) == 32 * 8 / 2);
    CHECK(l8_q_data_bytes(L8_DTYPE_F16, 17, 5) == 17 * 5 * 2);
    CHECK(l8_q_scale_bytes(L8_DTYPE_Q8, 17, 300, 128) == 32 * 3 * 4);
    CHECK(l8_q_scale_bytes(L8_DTYPE_Q4, 17, 300, 32) == 32 * 10 * 2);
    CHECK(l8_q_scale_bytes(L8_DTYPE_F32, 17, 300, 0) == 0);
    /* Llama 3.2 1B down_proj: 2048 x 8192 */
    CHECK(l8_q_data_bytes(L8_DTYPE_Q4, 2048, 8192) == 2048 * 8192 / 2);

    void *d, *s;
    CHECK(l8_q_quantize_matrix(L8_DTYPE_F32, 32, (const float *)&d, 1, 1, &d, &s) == LLM8_STATUS_INVALID_ARGUMENT);
    CHECK(l8_q_quantize_matrix(L8_DTYPE_Q8, 0, (const float *)&d, 1, 1, &d, &s) == LLM8_STATUS_INVALID_ARGUMENT);
    CHECK(d == NULL && s == NULL);
    printf("names and sizes: ok\n");
}

/* ---------------------------------------------------------------- round trip */

static double rt_max_ratio[N_WTYPES];

static void check_round_trip(const wtype *wt, int64_t n, int64_t k, const float *w) {
    int32_t group = group_of(wt, k);
    qmat m = quantize(wt->dt, group, w, n, k);
    const l8_tensor *t = &m.t;
    int64_t np = l8_q_rows_padded(n), kp = l8_q_cols_padded(wt->dt, k);
    int64_t ng = t_groups(t), gl = t_glen(t);
    float *row = malloc((size_t)k * sizeof(float));
    assert(row);
    for (int64_t r = 0; r < n; r++) {
        l8_q_dequantize_row(t, r, row);
        for (int64_t g = 0; g < ng; g++) {
            int64_t k0 = g * gl, k1 = k0 + gl < k ? k0 + gl : k;
            float amax = amax_of(w + r * k + k0, k1 - k0);
            float s = ts(t, r, g);
            /* the scale is the amax rule, not merely some scale that happens to meet the bound */
            float want = wt->dt == L8_DTYPE_Q8 ? amax / 127.0f : l8_f16_to_f32(l8_f32_to_f16(amax / 7.5f));
            CHECK(s == want && s == l8_q_weight_scale(t, r, g));
            double b = elem_bound(wt->dt, s, amax);
            int qmax = 0;
            for (int64_t c = k0; c < k1; c++) {
                int q = tq(t, r, c);
                CHECK(q == l8_q_weight(t, r, c));
                CHECK(row[c] == (float)q * s);
                double err = fabs((double)row[c] - w[r * k + c]);
                /* + 1e-6 relative: the division w / s is itself rounded before the rounding to int */
                CHECK(err <= b * (1 + 1e-6) + 1e-6 * fabs(w[r * k + c]));
                if (s > 0 && err / (0.5 * s) > rt_max_ratio[wt - wtypes]) rt_max_ratio[wt - wtypes] = err / (0.5 * s);
                if (abs(q) > qmax) qmax = abs(q);
            }
            CHECK(wt->dt == L8_DTYPE_Q8 ? qmax == 127 : (qmax == 7 || qmax == 8));
        }
        for (int64_t c = k; c < kp; c++) CHECK(tq(t, r, c) == 0);
    }
    for (int64_t r = n; r < np; r++) {
        for (int64_t c = 0; c < kp; c++) CHECK(tq(t, r, c) == 0);
        for (int64_t g = 0; g < ng; g++) CHECK(ts(t, r, g) == 0.0f);
    }
    /* Tile by tile into garbage-filled buffers: the same bytes (pads are written, not assumed). */
    size_t db = l8_q_data_bytes(wt->dt, n, k), sb = l8_q_scale_bytes(wt->dt, n, k, group);
    uint8_t *d2 = malloc(db), *s2 = malloc(sb);
    assert(d2 && s2);
    memset(d2, 0xA5, db);
    memset(s2, 0xA5, sb);
    for (int64_t tile = 0; tile * 16 < n; tile++)
        l8_q_quantize_tile(wt->dt, group, w + tile * 16 * k, n - tile * 16, k, tile, d2, s2);
    CHECK(memcmp(d2, m.data, db) == 0 && memcmp(s2, m.scales, sb) == 0);
    free(d2);
    free(s2);
    free(row);
    qmat_free(&m);
}

static void test_round_trip(void) {
    static const int64_t ns[] = {1, 15, 16, 17, 33, 100};
    static const int64_t ks[] = {1, 3, 4, 5, 31, 32, 33, 64, 127, 172, 300, 513};
    int cases = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            float *w = random_matrix(ns[i], ks[j]);
            for (int ti = 0; ti < N_WTYPES; ti++) {
                check_round_trip(&wtypes[ti], ns[i], ks[j], w);
                cases++;
            }
            free(w);
        }
    printf("round trip: %d cases (6 N x 12 K x %d types), max |dequant - w| / (scale/2):\n", cases, N_WTYPES);
    for (int ti = 0; ti < N_WTYPES; ti++) printf("  %-15s %.6f\n", wtypes[ti].name, rt_max_ratio[ti]);
}

/* ---------------------------------------------------------------- known vectors, ties, saturation */

static void test_known_vectors(void) {
    /* Q8 per channel, K = 10, s = 1 and s = 0.5: halves go to even, 127 is representable */
    static const float w8[2 * 10] = {
        1, -2, 0.5f, 127, 1.5f, 2.5f, -1.5f, 3.5f, -2.5f, 0.49f,
        63.5f, 0.25f, 0.75f, -0.25f, 1.25f, -63.5f, 0, 10, -0.75f, 0.1f,
    };
    static const int q8[2][10] = {{1, -2, 0, 127, 2, 2, -2, 4, -2, 0}, {127, 0, 2, 0, 2, -127, 0, 20, -2, 0}};
    qmat m = quantize(L8_DTYPE_Q8, 10, w8, 2, 10);
    CHECK(ts(&m.t, 0, 0) == 1.0f && ts(&m.t, 1, 0) == 0.5f);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 10; c++) CHECK(tq(&m.t, r, c) == q8[r][c]);
    /* raw bytes: row 0 columns 0-3 at bytes 0-3, 4-7 at 64-67, 8-9 at 128-129; row 1 four bytes on */
    const int8_t *b = m.data;
    CHECK(b[0] == 1 && b[1] == -2 && b[2] == 0 && b[3] == 127 && b[64] == 2 && b[67] == 4 && b[128] == -2);
    CHECK(b[4] == 127 && b[69] == -127 && b[71] == 20 && b[132] == -2 && b[130] == 0 && b[131] == 0);
    CHECK(l8_q_data_bytes(L8_DTYPE_Q8, 2, 10) == 192);
    qmat_free(&m);

    /* Q8 G = 4 on K = 10: groups [0,4) [4,8) [8,10), the last one short */
    m = quantize(L8_DTYPE_Q8, 4, w8, 1, 10);
    CHECK(ts(&m.t, 0, 0) == 1.0f && ts(&m.t, 0, 1) == 3.5f / 127 && ts(&m.t, 0, 2) == 2.5f / 127);
    static const int q8g[10] = {1, -2, 0, 127, 54, 91, -54, 127, -127, 25};
    for (int c = 0; c < 10; c++) CHECK(tq(&m.t, 0, c) == q8g[c]);
    /* scales of tile 0: group g of row r at g * 16 + r */
    CHECK(((const float *)m.scales)[16] == 3.5f / 127 && ((const float *)m.scales)[17] == 0.0f);
    qmat_free(&m);

    /* Q4 G32, K = 8: s = 1 and s = 2 (exact in f16); +7.5 s saturates to 7 (not 8 -> -8), -7.5 s is -8 */
    static const float w4[2 * 8] = {7.5f, 0.5f, 1.5f, -2.5f, -7.5f, 3.2f, 0, 6.5f, 15, 1, 3, 5, -15, -7, 0, 0.9f};
    static const int q4[2][8] = {{7, 0, 2, -2, -8, 3, 0, 6}, {7, 0, 2, 2, -8, -4, 0, 0}};
    m = quantize(L8_DTYPE_Q4, 32, w4, 2, 8);
    CHECK(ts(&m.t, 0, 0) == 1.0f && ts(&m.t, 1, 0) == 2.0f);
    CHECK(((const uint16_t *)m.scales)[0] == 0x3C00 && ((const uint16_t *)m.scales)[1] == 0x4000);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 8; c++) CHECK(tq(&m.t, r, c) == q4[r][c]);
    /* low nibbles: columns 0-3 (q + 8); high nibbles: columns 4-7; pad rows are 0x88 (q = 0) */
    const uint8_t *u = m.data;
    CHECK(u[0] == 0x0F && u[1] == 0xB8 && u[2] == 0x8A && u[3] == 0xE6);
    CHECK(u[4] == 0x0F && u[5] == 0x48 && u[6] == 0x8A && u[7] == 0x8A);
    for (int i = 8; i < 64; i++) CHECK(u[i] == 0x88);
    qmat_free(&m);

    /* Activations: s = 1 and s = 0.25, ties to even, pad bytes zeroed */
    static const float xa[2 * 10] = {
        1, -2, 0.5f, 127, 1.5f, 2.5f, -1.5f, 3.5f, -2.5f, 0.49f,
        31.75f, 0.125f, 0.375f, -0.625f, 0.875f, -31.75f, 0, 0, 0, 0,
    };
    static const int qa[2][10] = {{1, -2, 0, 127, 2, 2, -2, 4, -2, 0}, {127, 0, 2, -2, 4, -127, 0, 0, 0, 0}};
    int8_t xq[2 * 12];
    float xs[2];
    memset(xq, 0x55, sizeof xq);
    l8_q_quantize_act_ref(xa, 2, 10, 12, xq, xs);
    CHECK(xs[0] == 1.0f && xs[1] == 0.25f);
    for (int r = 0; r < 2; r++) {
        for (int c = 0; c < 10; c++) CHECK(xq[r * 12 + c] == qa[r][c]);
        CHECK(xq[r * 12 + 10] == 0 && xq[r * 12 + 11] == 0);
    }

    /* A matmul small enough to do by hand: x row 0 (s = 1) . w8 row 0 (s = 1) */
    m = quantize(L8_DTYPE_Q8, 10, w8, 2, 10);
    float out[2 * 2];
    l8_q_matmul_ref(out, xq, xs, 2, &m.t);
    int32_t dot = 0;
    for (int c = 0; c < 10; c++) dot += qa[0][c] * q8[0][c];
    CHECK(dot == 1 + 4 + 127 * 127 + 4 + 4 + 4 + 16 + 4);
    CHECK(out[0] == (float)dot);
    qmat_free(&m);
    printf("known vectors, ties to even, Q4 saturation, raw bytes: ok\n");
}

/* ---------------------------------------------------------------- zeros, tiny and non-finite values */

static void test_edges(void) {
    enum { N = 20, K = 70 };
    float *w = random_matrix(N, K);
    for (int c = 0; c < K; c++) w[3 * K + c] = 0;     /* a zero row */
    for (int c = 32; c < 64; c++) w[5 * K + c] = 0;   /* a zero group (G32: group 1) */
    for (int c = 0; c < K; c++) w[7 * K + c] = c == 9 ? 1e-45f : 0; /* amax/127 underflows to 0 */
    for (int c = 0; c < K; c++) w[8 * K + c] = c == 9 ? 1e-30f : (c == 10 ? -3e-31f : 0); /* tiny but fine */
    for (int ti = 0; ti < N_WTYPES; ti++) {
        const wtype *wt = &wtypes[ti];
        qmat m = quantize(wt->dt, group_of(wt, K), w, N, K);
        float row[K];
        for (int r = 0; r < N; r++) {
            l8_q_dequantize_row(&m.t, r, row);
            for (int c = 0; c < K; c++) CHECK(isfinite(row[c]));
        }
        l8_q_dequantize_row(&m.t, 3, row);
        for (int c = 0; c < K; c++) CHECK(row[c] == 0.0f);
        for (int64_t g = 0; g < t_groups(&m.t); g++) CHECK(ts(&m.t, 3, g) == 0.0f);
        l8_q_dequantize_row(&m.t, 7, row);
        for (int c = 0; c < K; c++) CHECK(row[c] == 0.0f);
        if (wt->group == 32) {
            l8_q_dequantize_row(&m.t, 5, row);
            CHECK(ts(&m.t, 5, 1) == 0.0f && ts(&m.t, 5, 0) > 0 && ts(&m.t, 5, 2) > 0);
            for (int c = 32; c < 64; c++) CHECK(row[c] == 0.0f);
        }
        if (wt->dt == L8_DTYPE_Q8) { /* 1e-30 / 127 is a normal float: the row survives */
            CHECK(tq(&m.t, 8, 9) == 127 && tq(&m.t, 8, 10) == -38);
        } else { /* below the f16 range: the scale underflows to 0 and so does the row */
            CHECK(ts(&m.t, 8, 0) == 0.0f && tq(&m.t, 8, 9) == 0);
        }
        qmat_free(&m);
    }

    /* Non-finite weights: NaN -> 0, +-Inf saturate with a finite scale (the rest of the group is lost) */
    float wn[2 * 8] = {NAN, INFINITY, -INFINITY, 1, 0, -1, 2, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    qmat m = quantize(L8_DTYPE_Q8, 8, wn, 2, 8);
    CHECK(ts(&m.t, 0, 0) == FLT_MAX / 127 && ts(&m.t, 1, 0) == 0.0f);
    CHECK(tq(&m.t, 0, 0) == 0 && tq(&m.t, 0, 1) == 127 && tq(&m.t, 0, 2) == -127 && tq(&m.t, 0, 3) == 0);
    for (int c = 0; c < 8; c++) CHECK(tq(&m.t, 1, c) == 0);
    qmat_free(&m);
    m = quantize(L8_DTYPE_Q4, 32, wn, 2, 8);
    CHECK(ts(&m.t, 0, 0) == 65504.0f && ts(&m.t, 1, 0) == 0.0f);
    CHECK(tq(&m.t, 0, 0) == 0 && tq(&m.t, 0, 1) == 7 && tq(&m.t, 0, 2) == -8 && tq(&m.t, 0, 3) == 0);
    qmat_free(&m);

    /* Activations: a zero row and an underflowing one give s = 0 and q = 0; the matmul gives 0, not NaN */
    float *x = malloc(3 * K * sizeof(float));
    int8_t *xq = malloc(3 * 72);
    float xs[3], out[3 * N];
    assert(x && xq);
    for (int c = 0; c < 3 * K; c++) x[c] = rng_gauss();
    for (int c = 0; c < K; c++) x[K + c] = 0;
    for (int c = 0; c < K; c++) x[2 * K + c] = c == 5 ? -1e-45f : 0;
    l8_q_quantize_act_ref(x, 3, K, 72, xq, xs);
    CHECK(xs[0] > 0 && xs[1] == 0.0f && xs[2] == 0.0f);
    for (int c = 0; c < 72; c++) CHECK(xq[72 + c] == 0 && xq[144 + c] == 0);
    for (int ti = 0; ti < N_WTYPES; ti++) {
        m = quantize(wtypes[ti].dt, group_of(&wtypes[ti], K), w, N, K);
        l8_q_matmul_ref(out, xq, xs, 3, &m.t);
        for (int i = 0; i < 3 * N; i++) CHECK(isfinite(out[i]));
        for (int r = 0; r < N; r++) CHECK(out[N + r] == 0.0f && out[2 * N + r] == 0.0f);
        CHECK(out[3] == 0.0f && out[7] == 0.0f); /* token 0 against the zero weight rows */
        qmat_free(&m);
    }
    float xn[8] = {NAN, 1, -2, INFINITY, 0, 0, 0, 0};
    int8_t xqn[8];
    float xsn;
    l8_q_quantize_act_ref(xn, 1, 8, 8, xqn, &xsn);
    CHECK(xsn == FLT_MAX / 127 && xqn[0] == 0 && xqn[3] == 127 && xqn[1] == 0);
    free(x);
    free(xq);
    free(w);
    printf("zero rows and groups, underflowing scales, NaN/Inf: ok (no NaN out)\n");
}

/* ---------------------------------------------------------------- matmul vs naive */

/* x quantized by the library, as the runtime does it. */
static void quantize_x(const float *x, int64_t n, int64_t k, int64_t kp, int8_t **xq, float **xs) {
    *xq = malloc((size_t)(n * kp));
    *xs = malloc((size_t)n * sizeof(float));
    assert(*xq && *xs);
    l8_q_quantize_act_ref(x, n, k, kp, *xq, *xs);
}

static void test_matmul_vs_naive(void) {
    static const int64_t ms[] = {1, 2, 7, 16, 67};
    static const int64_t ns[] = {1, 15, 17, 33, 100};
    static const int64_t ks[] = {1, 3, 5, 32, 33, 127, 300, 513};
    double worst[N_WTYPES] = {0};
    int cases = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int64_t n = ns[ni], k = ks[ki];
            float *w = random_matrix(n, k);
            for (int ti = 0; ti < N_WTYPES; ti++) {
                qmat m = quantize(wtypes[ti].dt, group_of(&wtypes[ti], k), w, n, k);
                int64_t kp = l8_q_cols_padded(wtypes[ti].dt, k);
                double *wd = malloc((size_t)(n * k) * sizeof(double));
                assert(wd);
                for (int64_t r = 0; r < n; r++)
                    for (int64_t c = 0; c < k; c++) wd[r * k + c] = (double)tq(&m.t, r, c) * ts(&m.t, r, c / t_glen(&m.t));
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                    int64_t nt = ms[mi];
                    float *x = random_matrix(nt, k);
                    int8_t *xq;
                    float *xs;
                    quantize_x(x, nt, k, kp, &xq, &xs);
                    float *out = malloc((size_t)(nt * n) * sizeof(float));
                    assert(out);
                    l8_q_matmul_ref(out, xq, xs, nt, &m.t);
                    for (int64_t t = 0; t < nt; t++)
                        for (int64_t r = 0; r < n; r++) {
                            double sum = 0, mag = 0;
                            for (int64_t c = 0; c < k; c++) {
                                double p = (double)xq[t * kp + c] * xs[t] * wd[r * k + c];
                                sum += p;
                                mag += fabs(p);
                            }
                            double err = fabs(out[t * n + r] - sum);
                            CHECK(err <= 1e-5 * mag + 1e-35);
                            if (mag > 0 && err / mag > worst[ti]) worst[ti] = err / mag;
                        }
                    cases++;
                    free(out);
                    free(xq);
                    free(xs);
                    free(x);
                }
                free(wd);
                qmat_free(&m);
            }
            free(w);
        }
    printf("matmul_ref vs naive double on dequantized values: %d cases (M in 1,2,7,16,67), "
           "max |out - naive| / sum|x_k w_k|:\n", cases);
    for (int ti = 0; ti < N_WTYPES; ti++) printf("  %-15s %.3g\n", wtypes[ti].name, worst[ti]);
}

/* ---------------------------------------------------------------- error bound against f32 */

/* Activations with LLM-like outlier channels: a few fixed input channels are 20x larger in
 * every token (outliers = 0 gives plain Gaussian data). */
static float *random_acts(int64_t n, int64_t k, int outliers) {
    float *x = malloc((size_t)(n * k) * sizeof(float));
    assert(x);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < k; c++) {
            float v = rng_gauss();
            if (outliers && c % 97 == 13) v *= 20.0f;
            x[t * k + c] = v;
        }
    return x;
}

typedef struct err_stats {
    double max_ratio;          /* max err / bound */
    double err2, ref2;         /* for the relative Frobenius error */
} err_stats;

/* outliers: harsh weights and outlier activation channels; otherwise both plain Gaussian. */
static void bound_case(const wtype *wt, int64_t nt, int64_t n, int64_t k, int outliers, err_stats *st) {
    float *w = random_matrix_ex(n, k, outliers);
    float *x = random_acts(nt, k, outliers);
    qmat m = quantize(wt->dt, group_of(wt, k), w, n, k);
    int64_t kp = l8_q_cols_padded(wt->dt, k), gl = t_glen(&m.t);
    int8_t *xq;
    float *xs;
    quantize_x(x, nt, k, kp, &xq, &xs);
    float *out = malloc((size_t)(nt * n) * sizeof(float));
    double *dw = malloc((size_t)(n * k) * sizeof(double));
    assert(out && dw);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) {
            int64_t g = c / gl, k0 = g * gl, k1 = k0 + gl < k ? k0 + gl : k;
            dw[r * k + c] = elem_bound(wt->dt, ts(&m.t, r, g), amax_of(w + r * k + k0, k1 - k0));
        }
    l8_q_matmul_ref(out, xq, xs, nt, &m.t);
    for (int64_t t = 0; t < nt; t++) {
        double dx = 0.5 * xs[t];
        for (int64_t r = 0; r < n; r++) {
            double ref = 0, bound = 0, mag = 0;
            for (int64_t c = 0; c < k; c++) {
                double xv = x[t * k + c], wv = w[r * k + c], dwv = dw[r * k + c];
                ref += xv * wv;
                bound += fabs(xv) * dwv + fabs(wv) * dx + dx * dwv;
                mag += fabs(xv * wv);
            }
            double err = fabs(out[t * n + r] - ref);
            /* the slack covers the float rounding of w / s, x / s and of the rescale */
            CHECK(err <= bound * (1 + 1e-5) + 1e-5 * mag);
            if (bound > 0 && err / bound > st->max_ratio) st->max_ratio = err / bound;
            st->err2 += err * err;
            st->ref2 += ref * ref;
        }
    }
    free(out);
    free(dw);
    free(xq);
    free(xs);
    free(x);
    free(w);
    qmat_free(&m);
}

static void test_error_bound(void) {
    static const int64_t ks[] = {64, 300, 513, 2048};
    printf("quantized vs f32 product (x . W^T, M=4, N=64, K in 64,300,513,2048):\n");
    printf("  %-15s %12s %14s %16s\n", "weights", "max err/bnd", "rel err (gauss)", "rel err (outliers)");
    for (int ti = 0; ti < N_WTYPES; ti++) {
        err_stats plain = {0}, outl = {0};
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            bound_case(&wtypes[ti], 4, 64, ks[ki], 0, &plain);
            bound_case(&wtypes[ti], 4, 64, ks[ki], 1, &outl);
        }
        double mr = plain.max_ratio > outl.max_ratio ? plain.max_ratio : outl.max_ratio;
        printf("  %-15s %12.4f %14.3e %16.3e\n", wtypes[ti].name, mr, sqrt(plain.err2 / plain.ref2),
               sqrt(outl.err2 / outl.ref2));
    }
}

/* ---------------------------------------------------------------- per-token vs per-group activations */

/* The per-group variant the runtime does not use, computed here for comparison: each group of
 * ag inputs of a token gets its own scale; the int32 sums are then taken per (weight group,
 * activation group) intersection. */
static void matmul_act_groups(float *out, const float *x, int64_t nt, const l8_tensor *w, int64_t ag) {
    int64_t n = w->shape[0], k = w->shape[1], gl = t_glen(w);
    int8_t *q = malloc((size_t)k);
    float *s = malloc((size_t)((k + ag - 1) / ag) * sizeof(float));
    assert(q && s);
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t a = 0; a * ag < k; a++) {
            int64_t k1 = (a + 1) * ag < k ? (a + 1) * ag : k;
            l8_q_quantize_act_ref(x + t * k + a * ag, 1, k1 - a * ag, k1 - a * ag, q + a * ag, &s[a]);
        }
        for (int64_t r = 0; r < n; r++) {
            double o = 0;
            for (int64_t c = 0; c < k; c++) o += (double)tq(w, r, c) * ts(w, r, c / gl) * q[c] * s[c / ag];
            out[t * n + r] = (float)o;
        }
    }
    free(q);
    free(s);
}

static void test_act_groups(void) {
    enum { NT = 8, N = 128, K = 2048 };
    static const struct {
        int wt;
        int64_t ag;
    } cases[] = {{0, 128}, {2, 128}, {5, 32}, {5, 128}};
    printf("activation scales, per token vs per group (M=%d, N=%d, K=%d, relative Frobenius error vs f32):\n", NT, N,
           K);
    printf("  %-15s %9s %14s %14s %14s %14s\n", "weights", "act group", "token (gauss)", "group (gauss)",
           "token (outl)", "group (outl)");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const wtype *wt = &wtypes[cases[ci].wt];
        double rel[2][2];
        for (int outl = 0; outl < 2; outl++) {
            /* plain weights: the activation error is what is compared here */
            float *w = random_matrix_ex(N, K, 0);
            float *x = random_acts(NT, K, outl);
            qmat m = quantize(wt->dt, group_of(wt, K), w, N, K);
            int8_t *xq;
            float *xs;
            quantize_x(x, NT, K, K, &xq, &xs);
            float *o_tok = malloc(NT * N * sizeof(float)), *o_grp = malloc(NT * N * sizeof(float));
            assert(o_tok && o_grp);
            l8_q_matmul_ref(o_tok, xq, xs, NT, &m.t);
            matmul_act_groups(o_grp, x, NT, &m.t, cases[ci].ag);
            double e_tok = 0, e_grp = 0, ref2 = 0;
            for (int t = 0; t < NT; t++)
                for (int r = 0; r < N; r++) {
                    double ref = 0;
                    for (int c = 0; c < K; c++) ref += (double)x[t * K + c] * w[r * K + c];
                    e_tok += pow(o_tok[t * N + r] - ref, 2);
                    e_grp += pow(o_grp[t * N + r] - ref, 2);
                    ref2 += ref * ref;
                }
            rel[outl][0] = sqrt(e_tok / ref2);
            rel[outl][1] = sqrt(e_grp / ref2);
            free(o_tok);
            free(o_grp);
            free(xq);
            free(xs);
            free(x);
            free(w);
            qmat_free(&m);
        }
        printf("  %-15s %9lld %14.3e %14.3e %14.3e %14.3e\n", wt->name, (long long)cases[ci].ag, rel[0][0], rel[0][1],
               rel[1][0], rel[1][1]);
    }
}

int main(void) {
    test_names_sizes();
    test_known_vectors();
    test_edges();
    test_round_trip();
    test_matmul_vs_naive();
    test_error_bound();
    test_act_groups();
    printf("test_quant: %d checks passed\n", n_checked);
    return 0;
}
