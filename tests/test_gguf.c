/* GGUF tests: writer -> reader round trip, corrupt files, and the llama.cpp GGUF converter source
 * against the original Hugging Face folders (weights and tokenizers). Run from the project root. */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convert/gguf_tokenizer.h"
#include "convert/source.h"
#include "format/gguf.h"
#include "model/tensor.h"
#include "tokenizer/tokenizer.h"
#include "util/mapfile.h"

static int failures = 0;
static char tmpdir[] = "/tmp/llm8_gguf_XXXXXX";

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                                     \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

static char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k = 0;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* ------------------------------------------------------------------ round trip */

static void test_round_trip(void) {
    printf("== writer -> reader round trip\n");
    l8_err e = {{0}};
    l8_gguf_writer *w;
    const char *path = tmp_path("rt.gguf");
    assert(l8_gguf_writer_create(path, 64, &w, &e) == LLM8_STATUS_OK);
    const char *strs[] = {"alpha", "", "\xE2\x96\x81the", "gamma"};
    int32_t ai[] = {-1, 0, 7, INT32_MAX};
    float af[] = {0.5f, -2.0f, 1e-5f};
    assert(!l8_gguf_add_str(w, "general.architecture", "llama", 5, &e));
    assert(!l8_gguf_add_u32(w, "t.u32", 4000000000u, &e));
    assert(!l8_gguf_add_i32(w, "t.i32", -5, &e));
    assert(!l8_gguf_add_i32(w, "t.i32pos", 12, &e));
    assert(!l8_gguf_add_u64(w, "t.u64", 1ull << 40, &e));
    assert(!l8_gguf_add_f32(w, "t.f32", 0.125f, &e));
    assert(!l8_gguf_add_bool(w, "t.bool", true, &e));
    assert(!l8_gguf_add_arr_i32(w, "t.ai32", ai, 4, &e));
    assert(!l8_gguf_add_arr_f32(w, "t.af32", af, 3, &e));
    assert(!l8_gguf_add_arr_str(w, "t.astr", strs, NULL, 4, &e));
    CHECK(l8_gguf_add_u32(w, "t.u32", 1, &e) != LLM8_STATUS_OK, "duplicate key accepted");
    printf("  duplicate key: %s\n", e.msg);
    l8_gguf_writer_free(w); /* poisoned: start again */
    assert(access(tmp_path("rt.gguf.tmp"), F_OK) != 0);

    assert(l8_gguf_writer_create(path, 64, &w, &e) == LLM8_STATUS_OK);
    assert(!l8_gguf_add_str(w, "general.architecture", "llama", 5, &e));
    assert(!l8_gguf_add_u32(w, "t.u32", 4000000000u, &e));
    assert(!l8_gguf_add_i32(w, "t.i32", -5, &e));
    assert(!l8_gguf_add_i32(w, "t.i32pos", 12, &e));
    assert(!l8_gguf_add_u64(w, "t.u64", 1ull << 40, &e));
    assert(!l8_gguf_add_f32(w, "t.f32", 0.125f, &e));
    assert(!l8_gguf_add_bool(w, "t.bool", true, &e));
    assert(!l8_gguf_add_arr_i32(w, "t.ai32", ai, 4, &e));
    assert(!l8_gguf_add_arr_f32(w, "t.af32", af, 3, &e));
    assert(!l8_gguf_add_arr_str(w, "t.astr", strs, NULL, 4, &e));
    /* tensors of odd sizes so that padding is needed between them */
    float v3[3] = {1, 2, 3};
    uint16_t h10[10];
    for (int i = 0; i < 10; i++) h10[i] = l8_f32_to_f16((float)i * 0.5f);
    unsigned char q[3 * 2 * 34];
    for (size_t i = 0; i < sizeof q; i++) q[i] = (unsigned char)(i * 7);
    int8_t i8[5] = {1, -2, 3, -4, 5};
    assert(!l8_gguf_add_tensor(w, "v3", L8_GGML_F32, 1, (int64_t[]){3}, 12, &e));
    assert(!l8_gguf_add_tensor(w, "h", L8_GGML_F16, 2, (int64_t[]){5, 2}, 20, &e));
    assert(!l8_gguf_add_tensor(w, "q", L8_GGML_Q8_0, 3, (int64_t[]){64, 3, 1}, sizeof q, &e));
    assert(!l8_gguf_add_tensor(w, "i8", L8_GGML_I8, 1, (int64_t[]){5}, 5, &e));
    CHECK(l8_gguf_add_tensor(w, "bad", L8_GGML_Q8_0, 1, (int64_t[]){33}, 34, &e) != LLM8_STATUS_OK, "bad shape");
    printf("  bad declaration: %s\n", e.msg);
    l8_gguf_writer_free(w);

    assert(l8_gguf_writer_create(path, 64, &w, &e) == LLM8_STATUS_OK);
    assert(!l8_gguf_add_str(w, "general.architecture", "llama", 5, &e));
    assert(!l8_gguf_add_u32(w, "t.u32", 4000000000u, &e));
    assert(!l8_gguf_add_i32(w, "t.i32", -5, &e));
    assert(!l8_gguf_add_i32(w, "t.i32pos", 12, &e));
    assert(!l8_gguf_add_u64(w, "t.u64", 1ull << 40, &e));
    assert(!l8_gguf_add_f32(w, "t.f32", 0.125f, &e));
    assert(!l8_gguf_add_bool(w, "t.bool", true, &e));
    assert(!l8_gguf_add_arr_i32(w, "t.ai32", ai, 4, &e));
    assert(!l8_gguf_add_arr_f32(w, "t.af32", af, 3, &e));
    assert(!l8_gguf_add_arr_str(w, "t.astr", strs, NULL, 4, &e));
    assert(!l8_gguf_add_tensor(w, "v3", L8_GGML_F32, 1, (int64_t[]){3}, 12, &e));
    assert(!l8_gguf_add_tensor(w, "h", L8_GGML_F16, 2, (int64_t[]){5, 2}, 20, &e));
    assert(!l8_gguf_add_tensor(w, "q", L8_GGML_Q8_0, 3, (int64_t[]){64, 3, 1}, sizeof q, &e));
    assert(!l8_gguf_add_tensor(w, "i8", L8_GGML_I8, 1, (int64_t[]){5}, 5, &e));
    assert(!l8_gguf_begin_data(w, &e));
    assert(!l8_gguf_write_data(w, v3, 12, &e));
    assert(!l8_gguf_write_data(w, h10, 7, &e)); /* in pieces, across tensor boundaries */
    assert(!l8_gguf_write_data(w, (const char *)h10 + 7, 13, &e));
    assert(!l8_gguf_write_data(w, q, 100, &e));
    assert(!l8_gguf_write_data(w, q + 100, sizeof q - 100, &e));
    assert(access(path, F_OK) != 0 || true);
    CHECK(l8_gguf_writer_finish(w, &e) != LLM8_STATUS_OK, "finish with a missing tensor");
    printf("  short data: %s\n", e.msg);
    l8_gguf_writer_free(w);
    CHECK(access(path, F_OK) != 0 && access(tmp_path("rt.gguf.tmp"), F_OK) != 0, "a failed write left a file");

    assert(l8_gguf_writer_create(path, 64, &w, &e) == LLM8_STATUS_OK);
    assert(!l8_gguf_add_str(w, "general.architecture", "llama", 5, &e));
    assert(!l8_gguf_add_u32(w, "t.u32", 4000000000u, &e));
    assert(!l8_gguf_add_i32(w, "t.i32", -5, &e));
    assert(!l8_gguf_add_i32(w, "t.i32pos", 12, &e));
    assert(!l8_gguf_add_u64(w, "t.u64", 1ull << 40, &e));
    assert(!l8_gguf_add_f32(w, "t.f32", 0.125f, &e));
    assert(!l8_gguf_add_bool(w, "t.bool", true, &e));
    assert(!l8_gguf_add_arr_i32(w, "t.ai32", ai, 4, &e));
    assert(!l8_gguf_add_arr_f32(w, "t.af32", af, 3, &e));
    assert(!l8_gguf_add_arr_str(w, "t.astr", strs, NULL, 4, &e));
    assert(!l8_gguf_add_tensor(w, "v3", L8_GGML_F32, 1, (int64_t[]){3}, 12, &e));
    assert(!l8_gguf_add_tensor(w, "h", L8_GGML_F16, 2, (int64_t[]){5, 2}, 20, &e));
    assert(!l8_gguf_add_tensor(w, "q", L8_GGML_Q8_0, 3, (int64_t[]){64, 3, 1}, sizeof q, &e));
    assert(!l8_gguf_add_tensor(w, "i8", L8_GGML_I8, 1, (int64_t[]){5}, 5, &e));
    assert(!l8_gguf_begin_data(w, &e));
    assert(!l8_gguf_write_data(w, v3, 12, &e));
    assert(!l8_gguf_write_data(w, h10, 20, &e));
    assert(!l8_gguf_write_data(w, q, sizeof q, &e));
    assert(!l8_gguf_write_data(w, i8, 5, &e));
    CHECK(access(path, F_OK) != 0, "final name exists before finish");
    assert(!l8_gguf_writer_finish(w, &e));
    l8_gguf_writer_free(w);

    l8_gguf *g;
    llm8_status st = l8_gguf_open(path, &g, &e);
    CHECK(st == LLM8_STATUS_OK, "%s", e.msg);
    if (st) return;
    CHECK(l8_gguf_version(g) == 3 && l8_gguf_alignment(g) == 64, "version/alignment");
    CHECK(l8_gguf_n_kv(g) == 11, "n_kv %lld", (long long)l8_gguf_n_kv(g)); /* + general.alignment */
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    float f = 0;
    bool b = false;
    const char *s;
    size_t len;
    CHECK(!l8_gguf_get_u32(g, "t.u32", true, &u32, &e) && u32 == 4000000000u, "u32");
    CHECK(!l8_gguf_get_i32(g, "t.i32", true, &i32, &e) && i32 == -5, "i32");
    CHECK(!l8_gguf_get_u32(g, "t.i32pos", true, &u32, &e) && u32 == 12, "i32 -> u32");
    CHECK(!l8_gguf_get_u64(g, "t.u64", true, &u64, &e) && u64 == 1ull << 40, "u64");
    CHECK(!l8_gguf_get_u64(g, "t.u32", true, &u64, &e) && u64 == 4000000000u, "u32 -> u64");
    CHECK(!l8_gguf_get_f32(g, "t.f32", true, &f, &e) && f == 0.125f, "f32");
    CHECK(!l8_gguf_get_bool(g, "t.bool", true, &b, &e) && b, "bool");
    CHECK(!l8_gguf_get_str(g, "general.architecture", true, &s, &len, &e) && len == 5 && !memcmp(s, "llama", 5), "str");
    CHECK(l8_gguf_get_i32(g, "t.u32", true, &i32, &e) == LLM8_STATUS_BAD_FORMAT, "u32 too big for i32");
    printf("  lossy conversion: %s\n", e.msg);
    CHECK(l8_gguf_get_u32(g, "t.i32", true, &u32, &e) == LLM8_STATUS_BAD_FORMAT, "negative to u32");
    printf("  negative: %s\n", e.msg);
    CHECK(l8_gguf_get_u32(g, "t.f32", true, &u32, &e) == LLM8_STATUS_BAD_FORMAT, "f32 as int");
    printf("  wrong type: %s\n", e.msg);
    CHECK(l8_gguf_get_u32(g, "nope", true, &u32, &e) == LLM8_STATUS_BAD_FORMAT, "missing required");
    printf("  missing: %s\n", e.msg);
    u32 = 77;
    CHECK(!l8_gguf_get_u32(g, "nope", false, &u32, &e) && u32 == 77, "missing optional");
    int64_t kv;
    uint32_t et;
    const void *data;
    CHECK(!l8_gguf_get_arr(g, "t.ai32", true, &kv, &et, &u64, &data, &e) && et == L8_GGUF_I32 && u64 == 4 &&
              !memcmp(data, ai, sizeof ai),
          "i32 array");
    CHECK(!l8_gguf_get_arr(g, "t.af32", true, &kv, &et, &u64, &data, &e) && et == L8_GGUF_F32 && u64 == 3 &&
              !memcmp(data, af, sizeof af),
          "f32 array");
    CHECK(!l8_gguf_get_arr(g, "t.astr", true, &kv, &et, &u64, &data, &e) && et == L8_GGUF_STRING && u64 == 4 && !data,
          "str array");
    for (int i = 0; i < 4; i++) {
        s = l8_gguf_arr_str(g, kv, (uint64_t)i, &len);
        CHECK(s && len == strlen(strs[i]) && !memcmp(s, strs[i], len), "string %d", i);
    }
    CHECK(l8_gguf_arr_str(g, kv, 4, &len) == NULL, "out of range string");
    CHECK(l8_gguf_n_tensors(g) == 4, "n_tensors");
    const unsigned char *base = l8_gguf_base(g);
    for (int64_t i = 0; i < l8_gguf_n_tensors(g); i++) {
        const l8_gguf_tensor *t = l8_gguf_tensor_at(g, i);
        CHECK(((const unsigned char *)t->data - base) % 64 == 0, "tensor %s at file offset %td", t->name,
              (const unsigned char *)t->data - base);
    }
    const l8_gguf_tensor *t = l8_gguf_find_tensor(g, "h");
    CHECK(t && t->type == L8_GGML_F16 && t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 2 && t->ne[2] == 1 &&
              t->nbytes == 20 && !memcmp(t->data, h10, 20),
          "tensor h");
    t = l8_gguf_find_tensor(g, "q");
    CHECK(t && t->type == L8_GGML_Q8_0 && t->n_dims == 3 && t->nbytes == sizeof q && !memcmp(t->data, q, sizeof q),
          "tensor q");
    t = l8_gguf_find_tensor(g, "i8");
    CHECK(t && t->nbytes == 5 && !memcmp(t->data, i8, 5), "tensor i8");
    CHECK(l8_gguf_find_tensor(g, "nope") == NULL, "absent tensor");

    /* Every prefix that cuts into the header or the tensor data is rejected without a crash. */
    size_t end = l8_gguf_data_offset(g) + (size_t)l8_gguf_find_tensor(g, "i8")->offset + 5;
    size_t size = 0;
    l8_map m;
    assert(!l8_map_open(&m, path, &e));
    size = m.size;
    int rejected = 0;
    for (size_t n = 0; n < end; n++) {
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, m.data, n);
        l8_gguf *g2 = NULL;
        llm8_status s2 = l8_gguf_open_memory(copy, n, "prefix", &g2, &e);
        CHECK(s2 != LLM8_STATUS_OK, "prefix of %zu bytes accepted", n);
        if (s2 == LLM8_STATUS_OK) l8_gguf_close(g2);
        else rejected++;
        if (n == 3 || n == 20 || n == 100 || n == end - 1) printf("  prefix %zu: %s\n", n, e.msg);
        free(copy);
    }
    printf("  %d of %zu prefixes rejected (file %zu bytes, data ends at %zu)\n", rejected, end, size, end);
    l8_map_close(&m);
    l8_gguf_close(g);
}

/* Write errors: RLIMIT_FSIZE makes write() fail with EFBIG, like a full disk fails with ENOSPC. */
static void test_write_failure(void) {
    printf("== write failure\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {100000, 100000};
        setrlimit(RLIMIT_FSIZE, &rl);
        l8_err e = {{0}};
        l8_gguf_writer *w;
        const char *path = tmp_path("big.gguf");
        if (l8_gguf_writer_create(path, 64, &w, &e)) _exit(2);
        l8_gguf_add_tensor(w, "x", L8_GGML_F32, 1, (int64_t[]){1 << 20}, 4 << 20, &e);
        llm8_status st = l8_gguf_begin_data(w, &e);
        static float zeros[1 << 16];
        for (int i = 0; i < 64 && !st; i++) st = l8_gguf_write_data(w, zeros, sizeof zeros, &e);
        if (!st) st = l8_gguf_writer_finish(w, &e);
        printf("  %s\n", e.msg);
        fflush(stdout);
        l8_gguf_writer_free(w);
        bool left = access(path, F_OK) == 0 || access(tmp_path("big.gguf.tmp"), F_OK) == 0;
        _exit(st == LLM8_STATUS_IO_ERROR && strstr(e.msg, "write failed") && !left ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "write failure not reported cleanly (status %d)", status);
}

/* ------------------------------------------------------------------ corrupt files */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}

typedef struct knobs {
    const char *magic;
    uint32_t version;
    uint64_t n_tensors, n_kv; /* 0: the real counts */
    uint64_t str_len;         /* 0: real; else the length written for the architecture value */
    uint32_t vtype;           /* value type of "t.x" (default u32) */
    uint32_t ggml_type;       /* type of tensor "b" */
    uint32_t n_dims;          /* of tensor "b" */
    uint64_t dim0, dim1;      /* of tensor "b" */
    uint64_t offset_b;        /* of tensor "b" (default 32) */
    bool dup_key, dup_tensor;
    uint32_t alignment;       /* 0: none written */
    uint64_t arr_len;         /* 0: real; string array length written */
} knobs;

/* A small file: kvs {general.architecture, t.x, t.arr[2 strings], (general.alignment)} and tensors
 * a (F32 [8]) and b (F32 [4, 2] unless knobs say otherwise), its data ending the file exactly. */
static buf make(knobs k) {
    buf b = {0};
    put(&b, k.magic ? k.magic : "GGUF", 4);
    u32(&b, k.version ? k.version : 3);
    u64(&b, k.n_tensors ? k.n_tensors : (uint64_t)(2 + k.dup_tensor));
    u64(&b, k.n_kv ? k.n_kv : (uint64_t)(3 + k.dup_key + (k.alignment != 0)));
    str(&b, "general.architecture");
    u32(&b, L8_GGUF_STRING);
    u64(&b, k.str_len ? k.str_len : 5);
    put(&b, "llama", 5);
    str(&b, "t.x");
    u32(&b, k.vtype ? k.vtype : L8_GGUF_U32);
    u32(&b, 7);
    str(&b, "t.arr");
    u32(&b, L8_GGUF_ARRAY);
    u32(&b, L8_GGUF_STRING);
    u64(&b, k.arr_len ? k.arr_len : 2);
    str(&b, "one");
    str(&b, "two");
    if (k.dup_key) {
        str(&b, "t.x");
        u32(&b, L8_GGUF_U32);
        u32(&b, 8);
    }
    if (k.alignment) {
        str(&b, "general.alignment");
        u32(&b, L8_GGUF_U32);
        u32(&b, k.alignment);
    }
    str(&b, "a");
    u32(&b, 1);
    u64(&b, 8);
    u32(&b, L8_GGML_F32);
    u64(&b, 0);
    for (int t = 0; t < 1 + k.dup_tensor; t++) {
        str(&b, "b");
        uint32_t nd = k.n_dims ? k.n_dims : 2;
        u32(&b, nd);
        for (uint32_t d = 0; d < nd && d < 8; d++) u64(&b, d == 0 ? (k.dim0 ? k.dim0 : (uint64_t)4) : d == 1 ? (k.dim1 ? k.dim1 : (uint64_t)2) : (uint64_t)1);
        u32(&b, k.ggml_type);
        u64(&b, k.offset_b ? k.offset_b : 32);
    }
    size_t align = k.alignment && !(k.alignment & (k.alignment - 1)) && k.alignment <= 4096 ? k.alignment : 32;
    while (b.n % align) put(&b, "", 1);
    float data[16];
    for (int i = 0; i < 16; i++) data[i] = (float)i;
    put(&b, data, 32); /* a */
    put(&b, data, 32); /* b (F32 4x2) */
    return b;
}

static void expect_reject(const char *what, knobs k, llm8_status want) {
    buf b = make(k);
    l8_err e = {{0}};
    l8_gguf *g = NULL;
    llm8_status st = l8_gguf_open_memory(b.p, b.n, what, &g, &e);
    CHECK(st != LLM8_STATUS_OK && (want == LLM8_STATUS_OK || st == want), "%s: status %d", what, st);
    if (st == LLM8_STATUS_OK) l8_gguf_close(g);
    printf("  %-22s %s\n", what, e.msg);
    free(b.p);
}

static void test_corrupt(void) {
    printf("== corrupt files\n");
    {
        buf b = make((knobs){0});
        l8_err e = {{0}};
        l8_gguf *g = NULL;
        llm8_status st = l8_gguf_open_memory(b.p, b.n, "valid", &g, &e);
        CHECK(st == LLM8_STATUS_OK, "the valid base file is rejected: %s", e.msg);
        if (!st) l8_gguf_close(g);
        int bad = 0;
        for (size_t n = 0; n < b.n; n++) {
            unsigned char *c = malloc(n ? n : 1);
            memcpy(c, b.p, n);
            if (l8_gguf_open_memory(c, n, "prefix", &g, &e) == LLM8_STATUS_OK) {
                bad++;
                l8_gguf_close(g);
            }
            free(c);
        }
        CHECK(bad == 0, "%d prefixes of the small file accepted", bad);
        printf("  all %zu prefixes of a %zu-byte file rejected\n", b.n, b.n);
        /* a dump of the base file, for the fuzz corpus */
        FILE *f = fopen(tmp_path("small.gguf"), "wb");
        fwrite(b.p, 1, b.n, f);
        fclose(f);
        free(b.p);
    }
    expect_reject("bad magic", (knobs){.magic = "GGML"}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("version 1", (knobs){.version = 1}, LLM8_STATUS_UNSUPPORTED);
    expect_reject("version 99", (knobs){.version = 99}, LLM8_STATUS_UNSUPPORTED);
    expect_reject("absurd kv count", (knobs){.n_kv = 1ull << 60}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("absurd tensor count", (knobs){.n_tensors = UINT64_MAX}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("kv count too big", (knobs){.n_kv = 9}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("string past the end", (knobs){.str_len = 1ull << 40}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("string array too long", (knobs){.arr_len = 1ull << 50}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("unknown value type", (knobs){.vtype = 13}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("unknown ggml type", (knobs){.ggml_type = 31}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("offset misaligned", (knobs){.offset_b = 36}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("data beyond file", (knobs){.offset_b = 64}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("tensor too big", (knobs){.dim0 = 1 << 20}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("duplicate key", (knobs){.dup_key = true}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("duplicate tensor", (knobs){.dup_tensor = true}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("n_dims 4294967295", (knobs){.n_dims = 0xFFFFFFFFu}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("n_dims 5", (knobs){.n_dims = 5}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("dim > INT64_MAX", (knobs){.dim0 = UINT64_MAX}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("dim product overflow", (knobs){.dim0 = 1ull << 32, .dim1 = 1ull << 32}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("Q8_0 row not /32", (knobs){.ggml_type = L8_GGML_Q8_0}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("alignment 3", (knobs){.alignment = 3}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("alignment 2 MiB", (knobs){.alignment = 2u << 20}, LLM8_STATUS_BAD_FORMAT);
    expect_reject("big-endian", (knobs){.magic = "FUGG"}, LLM8_STATUS_UNSUPPORTED);
    /* n_dims 0 and a zero dimension need exact bytes: patch the base file */
    buf b = make((knobs){0});
    size_t at = 0; /* tensor b's n_dims follows its name */
    for (size_t i = 0; i + 9 < b.n; i++)
        if (!memcmp(b.p + i, "\x01\0\0\0\0\0\0\0b", 9)) at = i + 9;
    unsigned char *c = malloc(b.n);
    l8_err e = {{0}};
    l8_gguf *g;
    memcpy(c, b.p, b.n);
    memset(c + at, 0, 4); /* n_dims = 0 */
    CHECK(l8_gguf_open_memory(c, b.n, "n_dims 0", &g, &e) == LLM8_STATUS_BAD_FORMAT, "n_dims 0");
    printf("  %-22s %s\n", "n_dims 0", e.msg);
    memcpy(c, b.p, b.n);
    memset(c + at + 4 + 8, 0, 8); /* ne[1] = 0 */
    CHECK(l8_gguf_open_memory(c, b.n, "dim 0", &g, &e) == LLM8_STATUS_BAD_FORMAT, "dim 0");
    printf("  %-22s %s\n", "dim 0", e.msg);
    free(c);
    free(b.p);
}

/* ------------------------------------------------------------------ llama.cpp GGUF sources */

/* Compares every weight of a GGUF source with the HF source, row by row. q8: Q8_0 tolerance
 * (half a quantization step plus the f16 rounding of the scale, per block of 32). */
static void compare_sources(const char *gguf_path, const char *hf_dir, bool q8) {
    printf("== %s vs %s\n", gguf_path, hf_dir);
    l8_err e = {{0}};
    l8_source *a = NULL, *b = NULL;
    llm8_status st = l8_source_open_llamacpp_gguf(gguf_path, &a, &e);
    CHECK(st == LLM8_STATUS_OK, "%s", e.msg);
    if (st) return;
    st = l8_source_open_hf(hf_dir, &b, &e);
    CHECK(st == LLM8_STATUS_OK, "%s", e.msg);
    if (st) {
        l8_source_free(a);
        return;
    }
    const llm8_model_info *x = &a->info, *y = &b->info;
    printf("  %s; dtype %s, %llu params, rope %s factor %g\n", a->description, x->dtype,
           (unsigned long long)x->n_params, x->rope_scaling, (double)x->rope_factor);
    CHECK(x->n_vocab == y->n_vocab && x->n_embd == y->n_embd && x->n_ff == y->n_ff && x->n_layer == y->n_layer &&
              x->n_head == y->n_head && x->n_kv_head == y->n_kv_head && x->head_dim == y->head_dim &&
              x->n_ctx_train == y->n_ctx_train && x->rms_norm_eps == y->rms_norm_eps &&
              x->rope_theta == y->rope_theta && x->tied_embeddings == y->tied_embeddings && x->bos_id == y->bos_id,
          "hyper-parameters differ");
    CHECK(strcmp(x->rope_scaling, y->rope_scaling) == 0, "rope scaling %s vs %s", x->rope_scaling, y->rope_scaling);
    CHECK(x->n_eos >= 1 && x->eos_ids[0] == y->eos_ids[0], "eos %d vs %d", x->eos_ids[0], y->eos_ids[0]);
    CHECK(x->n_params == y->n_params, "n_params %llu vs %llu", (unsigned long long)x->n_params,
          (unsigned long long)y->n_params);
    if (strcmp(y->rope_scaling, "llama3") == 0) {
        CHECK(a->rope_freqs != NULL && x->rope_factor == y->rope_factor, "llama3 factors");
        /* what convert_hf_to_gguf computes (original context read as 8192: see the tool) */
        int64_t half = x->head_dim / 2;
        for (int64_t i = 0; a->rope_freqs && i < half; i++) {
            double freq = 1.0 / pow((double)x->rope_theta, (double)(2 * i) / x->head_dim);
            double wl = 2 * M_PI / freq, lo = 8192.0 / y->rope_low_freq_factor, hi = 8192.0 / y->rope_high_freq_factor;
            double want = wl < hi ? 1 : wl > lo ? y->rope_factor
                                                : 1 / ((1 - (8192.0 / wl - y->rope_low_freq_factor) /
                                                                 (y->rope_high_freq_factor - y->rope_low_freq_factor)) /
                                                           y->rope_factor +
                                                       (8192.0 / wl - y->rope_low_freq_factor) /
                                                           (y->rope_high_freq_factor - y->rope_low_freq_factor));
            CHECK(fabs(a->rope_freqs[i] - want) <= 1e-4 * want, "rope_freqs[%lld] %g vs %g", (long long)i,
                  (double)a->rope_freqs[i], want);
        }
    }
    /* control: the file really holds llama.cpp's permuted order (HF q row 1 is GGUF row 2) */
    if (!q8) {
        l8_gguf *g;
        assert(!l8_gguf_open(gguf_path, &g, &e));
        const l8_gguf_tensor *t = l8_gguf_find_tensor(g, "blk.0.attn_q.weight");
        float *hf = malloc((size_t)x->n_embd * 2 * sizeof *hf), row[4096];
        assert(t && hf && !b->read_rows(b, L8_ROLE_WQ, 0, 0, 2, hf, &e) && x->n_embd <= 4096);
        for (int64_t c = 0; c < x->n_embd; c++)
            row[c] = t->type == L8_GGML_F32 ? ((const float *)t->data)[2 * x->n_embd + c]
                                            : l8_bf16_to_f32(((const uint16_t *)t->data)[2 * x->n_embd + c]);
        CHECK(memcmp(row, hf + x->n_embd, (size_t)x->n_embd * sizeof *row) == 0, "GGUF q row 2 is not HF q row 1");
        CHECK(memcmp(t->data, hf + x->n_embd, 16) != 0, "GGUF q row 1 equals HF row 1: not permuted?");
        free(hf);
        l8_gguf_close(g);
    }
    double worst = 0;
    long long rows_checked = 0;
    for (int r = 0; r < L8_ROLE_COUNT; r++) {
        int n_layers = l8_role_per_layer((l8_role)r) ? x->n_layer : 1;
        for (int l = 0; l < n_layers; l++) {
            int64_t rows, cols;
            l8_role_shape((l8_role)r, x, &rows, &cols);
            int64_t n = cols ? rows : 1, width = cols ? cols : rows;
            float *p = malloc((size_t)(n * width) * sizeof *p), *q = malloc((size_t)(n * width) * sizeof *q);
            assert(p && q);
            /* in two slices, to exercise r0 */
            int64_t h = cols ? n / 2 : n;
            bool ok = !a->read_rows(a, (l8_role)r, l, 0, h, p, &e) && !b->read_rows(b, (l8_role)r, l, 0, h, q, &e);
            if (ok && h < n)
                ok = !a->read_rows(a, (l8_role)r, l, h, n - h, p + h * width, &e) &&
                     !b->read_rows(b, (l8_role)r, l, h, n - h, q + h * width, &e);
            CHECK(ok, "read_rows role %d layer %d: %s", r, l, e.msg);
            int bad = 0;
            for (int64_t i = 0; ok && i < n * width; i++) {
                double tol = 0;
                if (q8 && cols) {
                    int64_t b0 = i / 32 * 32;
                    double amax = 0;
                    for (int64_t j = b0; j < b0 + 32 && j < n * width; j++) amax = fmax(amax, fabs(q[j]));
                    tol = amax / 254.0 + amax / 1024.0 + 1e-30;
                }
                double d = fabs((double)p[i] - q[i]);
                if (d > tol && bad++ < 3) CHECK(0, "role %d layer %d elem %lld: %g vs %g", r, l, (long long)i, p[i], q[i]);
                if (q[i] != 0) worst = fmax(worst, d / fabs(q[i]) * (cols ? 0 : 1));
            }
            rows_checked += n;
            free(p);
            free(q);
        }
    }
    printf("  %lld rows compared%s\n", rows_checked, q8 ? " (Q8_0 within half a step)" : " (bit-exact)");
    l8_source_free(a);
    l8_source_free(b);
}

/* ------------------------------------------------------------------ tokenizers */

static int32_t *encode(const llm8_tokenizer *tok, const char *s, size_t len, uint32_t flags, size_t *n) {
    size_t need = 0;
    llm8_status st = llm8_tokenize(tok, s, len, flags, NULL, 0, &need);
    if (st != LLM8_STATUS_OK && st != LLM8_STATUS_INVALID_ARGUMENT) {
        *n = SIZE_MAX;
        return NULL;
    }
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    st = llm8_tokenize(tok, s, len, flags, ids, need, n);
    if (st) *n = SIZE_MAX;
    return ids;
}

/* Tokenizes every "text" of a JSONL file (at most max lines) with both tokenizers, with and
 * without BOS and special-token parsing, and compares the ids; also the vocabulary strings. */
static void compare_tokenizers(const char *label, const llm8_tokenizer *a, const llm8_tokenizer *b,
                               const char *jsonl, int max) {
    CHECK(llm8_tokenizer_n_vocab(a) == llm8_tokenizer_n_vocab(b), "%s: n_vocab %d vs %d", label,
          llm8_tokenizer_n_vocab(a), llm8_tokenizer_n_vocab(b));
    CHECK(llm8_tokenizer_bos(a) == llm8_tokenizer_bos(b) && llm8_tokenizer_eos(a) == llm8_tokenizer_eos(b),
          "%s: bos/eos %d/%d vs %d/%d", label, llm8_tokenizer_bos(a), llm8_tokenizer_eos(a), llm8_tokenizer_bos(b),
          llm8_tokenizer_eos(b));
    CHECK(l8_tokenizer_add_bos(a) == l8_tokenizer_add_bos(b), "%s: add_bos", label);
    int piece_diff = 0;
    for (int32_t i = 0; i < llm8_tokenizer_n_vocab(b); i++) {
        const char *p = llm8_tokenizer_piece(a, i), *q = llm8_tokenizer_piece(b, i);
        if (!p || !q || strcmp(p, q) != 0 || llm8_tokenizer_is_special(a, i) != llm8_tokenizer_is_special(b, i))
            if (piece_diff++ < 3) CHECK(0, "%s: token %d: %s vs %s", label, i, p ? p : "(null)", q ? q : "(null)");
    }
    FILE *f = fopen(jsonl, "r");
    CHECK(f != NULL, "cannot open %s", jsonl);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, diffs = 0;
    while (getline(&line, &cap, f) > 0 && lines < max) {
        json_t *j = json_loads(line, JSON_ALLOW_NUL, NULL);
        const json_t *t = json_object_get(j, "text");
        if (!json_is_string(t)) {
            json_decref(j);
            continue;
        }
        lines++;
        for (uint32_t flags = 0; flags < 4; flags++) {
            size_t na, nb;
            int32_t *ia = encode(a, json_string_value(t), json_string_length(t), flags, &na);
            int32_t *ib = encode(b, json_string_value(t), json_string_length(t), flags, &nb);
            if (na != nb || (na != SIZE_MAX && memcmp(ia, ib, na * sizeof *ia) != 0)) {
                if (diffs++ < 5) CHECK(0, "%s: \"%.60s\" (flags %u) tokenizes differently", label, json_string_value(t), flags);
            }
            free(ia);
            free(ib);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    printf("  %s: %d texts x 4 flag sets, %d differences, %d vocabulary differences\n", label, lines, diffs,
           piece_diff);
}

static llm8_tokenizer *gguf_tokenizer(const char *path) {
    l8_err e = {{0}};
    l8_gguf *g;
    if (l8_gguf_open(path, &g, &e)) {
        CHECK(0, "%s", e.msg);
        return NULL;
    }
    char *tj, *cj;
    size_t tl, cl;
    llm8_tokenizer *tok = NULL;
    llm8_status st = l8_gguf_tokenizer_json(g, &tj, &tl, &cj, &cl, &e);
    CHECK(st == LLM8_STATUS_OK, "%s", e.msg);
    if (!st) {
        st = l8_tokenizer_from_json(tj, tl, cj, cl, path, &tok, &e);
        CHECK(st == LLM8_STATUS_OK, "%s", e.msg);
        free(tj);
        free(cj);
    }
    l8_gguf_close(g);
    return tok;
}

static void test_tokenizer_from(const char *label, const char *gguf, const char *hf_dir, const char *jsonl, int max) {
    printf("== tokenizer %s\n", label);
    llm8_tokenizer *a = gguf_tokenizer(gguf), *b = NULL;
    char err[256];
    CHECK(llm8_tokenizer_load(hf_dir, &b, err, sizeof err) == LLM8_STATUS_OK, "%s", err);
    if (a && b) {
        compare_tokenizers(label, a, b, jsonl, max);
        const char *ta = l8_tokenizer_chat_template(a), *tb = l8_tokenizer_chat_template(b);
        CHECK((!ta && !tb) || (ta && tb && strcmp(ta, tb) == 0), "%s: chat templates differ", label);
    }
    llm8_tokenizer_free(a);
    llm8_tokenizer_free(b);
}

/* Runs the Python tool; false (a skip) when Debian's python3 with numpy is not there. */
static bool make_gguf(const char *args, const char *out) {
    if (access("/usr/bin/python3", X_OK) != 0) return false;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/hf_to_llamacpp_gguf.py %s --outfile %s 2>/dev/null", args, out);
    return system(cmd) == 0;
}

static void test_bad_sources(void) {
    printf("== GGUF sources llm8 refuses\n");
    l8_err e = {{0}};
    l8_source *s;
    /* a vocab-only file has no hyper-parameters */
    const char *p = tmp_path("small.gguf");
    CHECK(l8_source_open_llamacpp_gguf(p, &s, &e) != LLM8_STATUS_OK, "small file accepted");
    printf("  %s\n", e.msg);
    /* a Q4_K weight: rewrite the type of blk.0.attn_q.weight in a copy of the f32 fixture (same byte count not
     * needed: the type is checked before the shape) */
    char *fb;
    size_t len;
    assert(!l8_read_file("tests/data/gguf/stories260k-f32.gguf", &fb, &len, &e));
    const char *name = "blk.0.attn_q.weight";
    for (size_t i = 0; i + strlen(name) + 4 + 16 + 4 < len; i++) {
        if (memcmp(fb + i, name, strlen(name)) == 0 && i >= 8) {
            size_t at = i + strlen(name) + 4 + 16; /* n_dims, ne[2] -> type */
            uint32_t q4k = L8_GGML_Q4_K, ne0 = 256;
            memcpy(fb + at, &q4k, 4);
            memcpy(fb + i + strlen(name) + 4, &ne0, 4); /* ne[0] = 256 so the Q4_K block fits */
            break;
        }
    }
    const char *q = tmp_path("q4k.gguf");
    FILE *f = fopen(q, "wb");
    fwrite(fb, 1, len, f);
    fclose(f);
    free(fb);
    llm8_status st = l8_source_open_llamacpp_gguf(q, &s, &e);
    CHECK(st == LLM8_STATUS_UNSUPPORTED && strstr(e.msg, "Q4_K"), "Q4_K: status %d", st);
    printf("  %s\n", e.msg);
    if (!st) l8_source_free(s);
}

int main(void) {
    assert(mkdtemp(tmpdir));
    test_round_trip();
    test_write_failure();
    test_corrupt();
    compare_sources("tests/data/gguf/stories260k-f32.gguf", "models/stories260k", false);
    compare_sources("tests/data/gguf/stories260k-q8_0.gguf", "models/stories260k", true);
    compare_sources("tests/data/gguf/bf16_gqa4_hd128_llama3_untied.gguf",
                    "tests/data/random/bf16_gqa4_hd128_llama3_untied_3shards", false);
    test_bad_sources();
    test_tokenizer_from("stories260k", "tests/data/gguf/stories260k-f32.gguf", "models/stories260k",
                        "models/stories260k/tokenizer_vectors.jsonl", 1000);
    const char *hfs = tmp_path("stories-hf-scores.gguf");
    if (make_gguf("models/stories260k --vocab-only --llama-hf-scores", hfs))
        test_tokenizer_from("stories260k, placeholder scores", hfs, "models/stories260k",
                            "models/stories260k/tokenizer_vectors.jsonl", 1000);
    else
        printf("SKIP: /usr/bin/python3 with numpy is needed to make the placeholder-score GGUF\n");
    const char *l3 = tmp_path("llama3-vocab.gguf");
    if (make_gguf("models/llama3-tokenizer --vocab-only", l3))
        test_tokenizer_from("llama3", l3, "models/llama3-tokenizer", "tests/data/tokenizer/llama3_vectors.jsonl",
                            1000);
    else
        printf("SKIP: /usr/bin/python3 with numpy is needed to make the Llama 3 vocabulary GGUF\n");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("(could not remove %s)\n", tmpdir);
    printf(failures ? "FAILED: %d checks\n" : "all GGUF tests passed\n", failures);
    return failures ? 1 : 0;
}
