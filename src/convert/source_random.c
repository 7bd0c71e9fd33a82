/* Converter source: random weights shaped by a Hugging Face config.json (see source_random.h). */
#include "convert/source_random.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format/hf_config.h"
#include "tokenizer/tokenizer.h"
#include "util/mapfile.h"

#define GOLDEN 0x9E3779B97F4A7C15ull

typedef struct rnd_impl {
    uint64_t key; /* the seed, mixed */
} rnd_impl;

/* splitmix64's finalizer: a bijection whose outputs for consecutive inputs look independent,
 * which is what makes every weight a pure function of its coordinates. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Approximately standard normal from one hash: the sum of its four 16-bit quarters (Irwin-Hall,
 * variance 65536^2 / 3) centred and scaled; bounded by +-sqrt(12), which is all a quantizer
 * benchmark needs and keeps a cheap per-element cost. */
static inline float normal_of(uint64_t h) {
    int32_t s = (int32_t)(h & 0xFFFF) + (int32_t)(h >> 16 & 0xFFFF) + (int32_t)(h >> 32 & 0xFFFF) + (int32_t)(h >> 48);
    return (float)(s - 2 * 65535) * (1.7320508f / 65536.0f);
}

static uint64_t row_key(const rnd_impl *r, l8_role role, int32_t layer, int64_t row) {
    uint64_t t = mix64(r->key ^ ((uint64_t)role << 56 | (uint64_t)(uint32_t)(layer + 1) << 24));
    return mix64(t + (uint64_t)row * GOLDEN);
}

/* The hot loop of a conversion (a 3B model is 3.2e9 weights): the hashes vectorize only with
 * 64-bit vector multiplies, hence a clone for AVX-512 (and AVX2) picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
static void fill_row(float *o, int64_t cols, uint64_t k, float scale) {
    for (int64_t c = 0; c < cols; c++) o[c] = scale * normal_of(mix64(k + (uint64_t)(c + 1) * GOLDEN));
}

static llm8_status rnd_read_rows(l8_source *src, l8_role role, int32_t layer, int64_t r0, int64_t n, float *out,
                                 l8_err *e) {
    const rnd_impl *r = src->impl;
    const llm8_model_info *m = &src->info;
    if ((unsigned)role >= L8_ROLE_COUNT || (l8_role_per_layer(role) ? layer < 0 || layer >= m->n_layer : layer != 0))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "random source: no tensor for role %d layer %d", (int)role,
                       (int)layer);
    if (role == L8_ROLE_OUTPUT && m->tied_embeddings) role = L8_ROLE_TOK_EMBD;
    int64_t rows, cols;
    l8_role_shape(role, m, &rows, &cols);
    if (r0 < 0 || n < 0 || r0 + n > rows)
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "random source: rows [%" PRId64 ", %" PRId64 ") of %" PRId64,
                       r0, r0 + n, rows);
    if (!cols) { /* a norm vector: the index runs along the "row" 0 */
        uint64_t k = row_key(r, role, layer, 0);
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f + 0.02f * normal_of(mix64(k + (uint64_t)(r0 + i + 1) * GOLDEN));
        return LLM8_STATUS_OK;
    }
    float scale = 1.0f / sqrtf((float)cols);
    for (int64_t i = 0; i < n; i++) fill_row(out + i * cols, cols, row_key(r, role, layer, r0 + i), scale);
    return LLM8_STATUS_OK;
}

static void rnd_close(l8_source *src) { free(src->impl); }

/* The folder of a config: the argument itself, or the folder of a file named config.json (the
 * config loader reads DIR/config.json, so any other file name would silently read another file). */
static llm8_status config_dir(const char *path, char **dir, l8_err *e) {
    struct stat sb;
    if (stat(path, &sb) != 0) return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: no such file or folder", path);
    if (S_ISDIR(sb.st_mode)) {
        *dir = strdup(path);
    } else {
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
        if (strcmp(base, "config.json") != 0)
            return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "%s: expected a file named config.json or its folder",
                           path);
        size_t len = slash ? (size_t)(slash - path) : 0;
        *dir = len ? strndup(path, len) : strdup(slash ? "/" : ".");
    }
    return *dir ? LLM8_STATUS_OK : l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
}

llm8_status l8_source_open_random(const char *config_json_path, const char *tokenizer_dir, uint64_t seed,
                                  l8_source **out, l8_err *e) {
    *out = NULL;
    char *dir = NULL;
    llm8_status st = config_dir(config_json_path, &dir, e);
    if (st) return st;
    if (!tokenizer_dir) tokenizer_dir = dir;
    l8_source *src = calloc(1, sizeof *src);
    rnd_impl *r = calloc(1, sizeof *r);
    if (!src || !r) {
        free(src);
        free(r);
        free(dir);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    r->key = mix64(seed ^ 0x6C6C6D3872616E64ull); /* "llm8rand": seed 0 is not the zero key */
    src->impl = r;
    src->read_rows = rnd_read_rows;
    src->close = rnd_close;
    st = l8_hf_config_load(dir, &src->info, e);
    if (!st) st = l8_source_read_tokenizer(src, tokenizer_dir, e);
    if (!st) {
        uint64_t n_params = 0;
        for (l8_role role = 0; role < L8_ROLE_COUNT; role++) {
            if (role == L8_ROLE_OUTPUT && src->info.tied_embeddings) continue;
            int64_t rows, cols;
            l8_role_shape(role, &src->info, &rows, &cols);
            n_params += (uint64_t)(rows * (cols ? cols : 1)) * (l8_role_per_layer(role) ? (uint64_t)src->info.n_layer : 1);
        }
        src->info.n_params = n_params;
        src->info.weight_bytes = 0; /* nothing is stored: every weight is computed when read */
        snprintf(src->info.dtype, sizeof src->info.dtype, "random");
        size_t dl = strlen(dir) + strlen(tokenizer_dir) + 96;
        src->description = malloc(dl);
        if (src->description)
            snprintf(src->description, dl, "random weights (seed %" PRIu64 ") shaped by %s/config.json, tokenizer %s",
                     seed, dir, tokenizer_dir);
    }
    free(dir);
    if (st) {
        l8_source_free(src);
        return st;
    }
    *out = src;
    return LLM8_STATUS_OK;
}
