/* libFuzzer target for the safetensors reader: one file, an index (model.safetensors.index.json)
 * over fixed shards, or an index plus a shard of the fuzzer's own. Whatever opens is walked
 * (names, dtypes, lookups, every byte of every usable tensor) and bound to a tiny Llama's
 * shapes, so that ASan sees each pointer the header produced.
 *
 * Input: byte 0 picks the mode (mod 3), the rest is
 *   0: model.safetensors
 *   1: model.safetensors.index.json (shards a.safetensors and b.safetensors exist)
 *   2: the index, FZ_SEP, then x.safetensors */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/hf_weights.h"
#include "format/safetensors.h"
#include "fuzz_util.h"

/* The shapes of the seed model: 1 layer, n_embd 4, n_ff 8, 2 heads of 2, 1 KV head, vocab 6. */
static llm8_model_info tiny;

/* A safetensors file from a header and a data section of zeros. */
static void write_st(const char *name, const char *header, size_t data_bytes) {
    size_t hl = strlen(header), n = 8 + hl + data_bytes;
    unsigned char *b = calloc(1, n);
    if (!b) abort();
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    fz_write(name, b, n);
    free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_scratch();
    write_st("a.safetensors",
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"y\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]},"
             "\"__metadata__\":{\"format\":\"pt\"}}",
             16);
    write_st("b.safetensors",
             "{\"z\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
             "\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[6,14]}}",
             14);
    tiny = (llm8_model_info){.n_vocab = 6, .n_embd = 4, .n_ff = 8, .n_layer = 1, .n_head = 2, .n_kv_head = 1,
                             .head_dim = 2, .n_ctx_train = 16, .tied_embeddings = true};
    return 0;
}

static void walk(const l8_safetensors *st) {
    size_t n = l8_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const char *name = l8_st_name(st, i);
        FZ_CHECK(name != NULL, "tensor %zu has no name", i);
        fz_touch(name, strlen(name));
        fz_touch(l8_st_dtype(st, i), strlen(l8_st_dtype(st, i)));
        fz_touch(l8_st_file(st, i), strlen(l8_st_file(st, i)));
        FZ_CHECK(l8_st_index(st, name) == i, "l8_st_index(\"%s\") != %zu", name, i);
        const l8_tensor *t = l8_st_tensor(st, i);
        FZ_CHECK(l8_st_find(st, name) == t, "l8_st_find(\"%s\") disagrees with l8_st_tensor", name);
        l8_err e;
        const l8_tensor *g = NULL;
        llm8_status s = l8_st_get(st, name, &g, &e);
        FZ_CHECK((s == LLM8_STATUS_OK) == (t != NULL), "l8_st_get(\"%s\") status %d", name, (int)s);
        if (!t) continue;
        FZ_CHECK(t->ndim >= 0 && t->ndim <= 4, "ndim %d", t->ndim);
        FZ_CHECK((uint64_t)l8_tensor_nelem(t) * l8_dtype_size(t->dtype) == t->nbytes,
                 "\"%s\": %zu bytes for %lld elements", name, t->nbytes, (long long)l8_tensor_nelem(t));
        fz_touch(t->data, t->nbytes);
    }
    l8_err e;
    l8_weights w;
    llm8_status s = l8_hf_bind_weights(st, &tiny, &w, &e);
    FZ_LOG("safetensors: %zu tensors; bind: %s", n, s ? e.msg : "ok");
    if (s == LLM8_STATUS_OK) {
        float row[8];
        l8_tensor_row_f32(&w.tok_embd, tiny.n_vocab - 1, row);
        l8_tensor_row_f32(&w.layers[0].w_down, tiny.n_embd - 1, row);
        l8_tensor_row_f32(&w.norm, 0, row);
        uint64_t np, nb;
        const char *dt;
        l8_weights_stats(&w, &tiny, &np, &nb, &dt);
        l8_weights_free(&w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++, size--;
    fz_remove("model.safetensors");
    fz_remove("model.safetensors.index.json");
    fz_remove("x.safetensors");
    l8_err e;
    l8_safetensors *st = NULL;
    if (mode == 0) {
        const char *path = fz_write("model.safetensors", data, size);
        if (l8_st_open_file(path, &st, &e) == LLM8_STATUS_OK) {
            walk(st);
            l8_st_close(st);
        } else {
            FZ_LOG("safetensors: %s", e.msg);
        }
        return 0;
    }
    if (mode == 1) {
        fz_write("model.safetensors.index.json", data, size);
    } else {
        const uint8_t *a, *b;
        size_t al, bl;
        int found;
        fz_split(data, size, &a, &al, &b, &bl, &found);
        fz_write("model.safetensors.index.json", a, al);
        if (found) fz_write("x.safetensors", b, bl);
    }
    if (l8_st_open_dir(fz_scratch(), &st, &e) == LLM8_STATUS_OK) {
        walk(st);
        l8_st_close(st);
    } else {
        FZ_LOG("safetensors (index): %s", e.msg);
    }
    return 0;
}
