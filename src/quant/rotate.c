#include "quant/rotate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double gaussian(uint64_t *s) {
    double u1 = ((splitmix(s) >> 11) + 0.5) * 0x1p-53, u2 = (splitmix(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

llm8_status l8_rot_make(l8_rot *r, int32_t n, uint64_t seed) {
    memset(r, 0, sizeof *r);
    if (n <= 0) return LLM8_STATUS_INVALID_ARGUMENT;
    int32_t h = n & -n, m = n / h;
    if (m > L8_ROT_MAX_M) return LLM8_STATUS_UNSUPPORTED;
    float *buf = malloc(((size_t)n + (size_t)m * m) * sizeof(float));
    if (!buf) return LLM8_STATUS_OUT_OF_MEMORY;
    uint64_t s = seed;
    for (int32_t i = 0; i < n; i++) buf[i] = (splitmix(&s) >> 63) ? -1.0f : 1.0f;
    float *mix = NULL;
    if (m > 1) {
        /* Q_m: modified Gram-Schmidt on a Gaussian matrix, in double, rows orthonormal */
        double *a = malloc((size_t)m * m * sizeof(double));
        if (!a) {
            free(buf);
            return LLM8_STATUS_OUT_OF_MEMORY;
        }
        for (int32_t i = 0; i < m * m; i++) a[i] = gaussian(&s);
        for (int32_t i = 0; i < m; i++) {
            for (int32_t j = 0; j < i; j++) {
                double d = 0;
                for (int32_t k = 0; k < m; k++) d += a[i * m + k] * a[j * m + k];
                for (int32_t k = 0; k < m; k++) a[i * m + k] -= d * a[j * m + k];
            }
            double nrm = 0;
            for (int32_t k = 0; k < m; k++) nrm += a[i * m + k] * a[i * m + k];
            nrm = sqrt(nrm);
            for (int32_t k = 0; k < m; k++) a[i * m + k] /= nrm;
        }
        mix = buf + n;
        for (int32_t i = 0; i < m * m; i++) mix[i] = (float)a[i];
        free(a);
    }
    *r = l8_rot_view(n, m, buf, mix);
    r->owned = buf;
    return LLM8_STATUS_OK;
}

l8_rot l8_rot_view(int32_t n, int32_t m, const float *signs, const float *mix) {
    l8_rot r = {n, m > 0 ? n / m : n, m, signs, m > 1 ? mix : NULL, NULL};
    return r;
}

void l8_rot_free(l8_rot *r) {
    free(r->owned);
    memset(r, 0, sizeof *r);
}

/* The m blocks' Walsh-Hadamard transforms, scaled by 1/sqrt(h): the kernel table's (vectorized;
 * the same bits at every level, kernels.h), else the scalar one (src/kernels/ref.c). */
static void fwht_blocks(const l8_rot *r, float *x) {
    const l8_kernels *k = l8_kernels_get();
    float norm = 1.0f / sqrtf((float)r->h);
    if (k->fwht) k->fwht(x, r->h, r->m, norm);
    else l8_fwht_scalar(x, r->h, r->m, norm);
}

/* For each offset j: the strided vector across blocks <- Q (transpose ? Q^T : Q) times it. */
static void mix_blocks(const l8_rot *r, float *x, float *tmp, bool transpose) {
    int32_t h = r->h, m = r->m;
    for (int32_t j = 0; j < h; j++) {
        for (int32_t i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int32_t k = 0; k < m; k++)
                acc += (transpose ? r->mix[(size_t)k * m + i] : r->mix[(size_t)i * m + k]) * x[(size_t)k * h + j];
            tmp[i] = acc;
        }
        for (int32_t i = 0; i < m; i++) x[(size_t)i * h + j] = tmp[i];
    }
}

void l8_rot_apply(const l8_rot *r, float *x, float *tmp) {
    if (r->m > 1) mix_blocks(r, x, tmp, false);
    fwht_blocks(r, x);
    for (int32_t i = 0; i < r->n; i++) x[i] *= r->signs[i];
}

void l8_rot_apply_t(const l8_rot *r, float *x, float *tmp) {
    for (int32_t i = 0; i < r->n; i++) x[i] *= r->signs[i];
    fwht_blocks(r, x);
    if (r->m > 1) mix_blocks(r, x, tmp, true);
}
