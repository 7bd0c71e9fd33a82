/* libFuzzer target for the GGUF reader: open any bytes, then walk everything the accessors expose
 * (keys, typed getters, string arrays, tensor data), so that ASan sees every byte they point at. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert/gguf_tokenizer.h"
#include "format/gguf.h"

static volatile unsigned sink;

static void touch(const void *p, size_t n) {
    const unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    sink += s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a copy of exactly size bytes: any over-read is a heap-buffer-overflow */
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    l8_err e;
    l8_gguf *g = NULL;
    if (l8_gguf_open_memory(copy, size, "fuzz", &g, &e) == LLM8_STATUS_OK) {
        for (int64_t i = 0; i < l8_gguf_n_kv(g); i++) {
            const char *key = l8_gguf_key(g, i);
            touch(key, strlen(key));
            uint32_t u32;
            int32_t i32;
            uint64_t u64, n;
            float f;
            bool b;
            const char *s;
            size_t len;
            int64_t kv;
            uint32_t et;
            const void *raw;
            l8_gguf_get_u32(g, key, true, &u32, &e);
            l8_gguf_get_i32(g, key, true, &i32, &e);
            l8_gguf_get_u64(g, key, true, &u64, &e);
            l8_gguf_get_f32(g, key, true, &f, &e);
            l8_gguf_get_bool(g, key, true, &b, &e);
            if (l8_gguf_get_str(g, key, true, &s, &len, &e) == LLM8_STATUS_OK) touch(s, len);
            if (l8_gguf_get_arr(g, key, true, &kv, &et, &n, &raw, &e) == LLM8_STATUS_OK) {
                if (et == L8_GGUF_STRING) {
                    for (uint64_t j = 0; j < n; j++) {
                        s = l8_gguf_arr_str(g, kv, j, &len);
                        if (s) touch(s, len);
                    }
                } else if (raw && n) {
                    static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
                    touch(raw, (size_t)n * es[et]);
                }
            }
        }
        for (int64_t i = 0; i < l8_gguf_n_tensors(g); i++) {
            const l8_gguf_tensor *t = l8_gguf_tensor_at(g, i);
            touch(t->data, t->nbytes);
            if (l8_gguf_find_tensor(g, t->name) != t) abort();
        }
        /* the tokenizer rebuilder reads the same keys a hostile file controls */
        char *tj = NULL, *cj = NULL;
        size_t tl, cl;
        if (l8_gguf_tokenizer_json(g, &tj, &tl, &cj, &cl, &e) == LLM8_STATUS_OK) {
            free(tj);
            free(cj);
        }
        l8_gguf_close(g);
    }
    free(copy);
    return 0;
}
