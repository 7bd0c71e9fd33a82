#include "model/tensor.h"

#include <math.h>
#include <string.h>

const char *l8_dtype_name(l8_dtype t) {
    switch (t) {
    case L8_DTYPE_F32: return "f32";
    case L8_DTYPE_F16: return "f16";
    case L8_DTYPE_BF16: return "bf16";
    case L8_DTYPE_Q8: return "q8";
    case L8_DTYPE_Q4: return "q4";
    default: return "?";
    }
}

size_t l8_dtype_size(l8_dtype t) {
    switch (t) {
    case L8_DTYPE_F32: return 4;
    case L8_DTYPE_F16:
    case L8_DTYPE_BF16: return 2;
    default: return 0;
    }
}

float l8_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float f = (float)man * 0x1p-24f;
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t l8_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7FFFFFFF;
    if (ax >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (ax > 0x7F800000 ? 0x200 : 0));
    if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00); /* rounds to infinity */
    if (ax < 0x38800000) {                                   /* subnormal or zero in half */
        float a;
        memcpy(&a, &ax, 4);
        /* a * 2^24 rounded to nearest even gives the subnormal mantissa */
        float m = nearbyintf(a * 0x1p24f);
        return (uint16_t)(sign | (uint32_t)m);
    }
    uint32_t r = ax - 0x38000000; /* rebias exponent 127 -> 15 */
    uint32_t h = r >> 13;
    uint32_t rest = r & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float l8_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t l8_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void l8_tensor_row_f32(const l8_tensor *t, int64_t r, float *out) {
    int64_t n = t->ndim == 1 ? t->shape[0] : t->shape[1];
    size_t off = (size_t)(r * n);
    /* Safetensors puts a tensor at any byte offset, so its elements may be
     * misaligned: load them bytewise. */
    const unsigned char *p = (const unsigned char *)t->data;
    switch (t->dtype) {
    case L8_DTYPE_F32: memcpy(out, p + off * sizeof(float), (size_t)n * sizeof(float)); break;
    case L8_DTYPE_F16:
    case L8_DTYPE_BF16: {
        p += off * 2;
        int f16 = t->dtype == L8_DTYPE_F16;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16 ? l8_f16_to_f32(h) : l8_bf16_to_f32(h);
        }
        break;
    }
    default: break;
    }
}
