/* GGUF writer: buffers the (small) metadata, streams tensor data, publishes by rename (gguf.h). */
#include "format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    uint64_t nbytes, offset;
} wtensor;

typedef struct bytes {
    unsigned char *p;
    size_t len, cap;
} bytes;

enum { W_DECLARE, W_DATA, W_DONE };

struct l8_gguf_writer {
    char *path, *tmp;
    FILE *f;
    uint32_t alignment;
    bytes kvs;
    uint64_t n_kv;
    char **keys; /* for the duplicate check */
    wtensor *t;
    size_t n_t, cap_t;
    uint64_t data_size; /* running end of the data section while declaring */
    int state;
    bool created;       /* the temporary file is ours to unlink */
    llm8_status err;    /* sticky: the first failure */
    char errmsg[512];
    size_t cur;         /* tensor being written */
    uint64_t cur_written;
};

/* Records the first failure so that every later call reports it again. */
static llm8_status poison(l8_gguf_writer *w, l8_err *e, llm8_status st, const char *msg) {
    if (!w->err) {
        w->err = st;
        snprintf(w->errmsg, sizeof w->errmsg, "%s", msg);
    }
    return l8_fail(e, w->err, "%s", w->errmsg);
}

static llm8_status failf(l8_gguf_writer *w, l8_err *e, llm8_status st, const char *fmt, const char *a, const char *b) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    return poison(w, e, st, msg);
}

static llm8_status io_fail(l8_gguf_writer *w, l8_err *e, int err) {
    return failf(w, e, LLM8_STATUS_IO_ERROR, "%s: write failed: %s", w->path, strerror(err ? err : EIO));
}

static bool put(bytes *b, const void *p, size_t n) {
    if (b->cap - b->len < n) {
        size_t c = b->cap ? b->cap : 256;
        while (c - b->len < n) c *= 2;
        unsigned char *q = realloc(b->p, c);
        if (!q) return false;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

static bool put_u32(bytes *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    return put(b, x, 4);
}

static bool put_u64(bytes *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    return put(b, x, 8);
}

static bool put_str(bytes *b, const char *s, size_t len) { return put_u64(b, len) && put(b, s, len); }

llm8_status l8_gguf_writer_create(const char *path, uint32_t alignment, l8_gguf_writer **out, l8_err *e) {
    if (!path || !out) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "gguf writer: null argument");
    *out = NULL;
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1u << 20))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "%s: alignment %u is not a power of two up to 1 MiB", path, alignment);
    l8_gguf_writer *w = calloc(1, sizeof *w);
    size_t pl = strlen(path);
    if (!w || !(w->path = malloc(pl + 1)) || !(w->tmp = malloc(pl + 5))) {
        l8_gguf_writer_free(w);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    memcpy(w->path, path, pl + 1);
    snprintf(w->tmp, pl + 5, "%s.tmp", path);
    w->alignment = alignment;
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int err = errno;
        llm8_status st = l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: cannot create: %s", w->tmp, strerror(err));
        l8_gguf_writer_free(w);
        return st;
    }
    w->created = true;
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    *out = w;
    return LLM8_STATUS_OK;
}

/* Starts a kv: checks the writer state and the key, writes key and type. */
static llm8_status kv_begin(l8_gguf_writer *w, const char *key, uint32_t type, l8_err *e) {
    if (w->err) return l8_fail(e, w->err, "%s", w->errmsg);
    if (w->state != W_DECLARE)
        return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: key \"%s\" added after the data began", w->path, key);
    if (!key || !*key) return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: empty key%s", w->path, "");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: duplicate key \"%s\"", w->path, key);
    char **k = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *k);
    if (!k) return failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
    w->keys = k;
    size_t kl = strlen(key);
    if (!(k[w->n_kv] = malloc(kl + 1))) return failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
    memcpy(k[w->n_kv], key, kl + 1);
    w->n_kv++;
    if (!put_str(&w->kvs, key, kl) || !put_u32(&w->kvs, type))
        return failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
    return LLM8_STATUS_OK;
}

static llm8_status kv_end(l8_gguf_writer *w, bool ok, l8_err *e) {
    return ok ? LLM8_STATUS_OK : failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
}

llm8_status l8_gguf_add_u32(l8_gguf_writer *w, const char *key, uint32_t v, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_U32, e);
    return st ? st : kv_end(w, put_u32(&w->kvs, v), e);
}

llm8_status l8_gguf_add_i32(l8_gguf_writer *w, const char *key, int32_t v, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_I32, e);
    return st ? st : kv_end(w, put_u32(&w->kvs, (uint32_t)v), e);
}

llm8_status l8_gguf_add_u64(l8_gguf_writer *w, const char *key, uint64_t v, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_U64, e);
    return st ? st : kv_end(w, put_u64(&w->kvs, v), e);
}

llm8_status l8_gguf_add_f32(l8_gguf_writer *w, const char *key, float v, l8_err *e) {
    uint32_t u;
    memcpy(&u, &v, 4);
    llm8_status st = kv_begin(w, key, L8_GGUF_F32, e);
    return st ? st : kv_end(w, put_u32(&w->kvs, u), e);
}

llm8_status l8_gguf_add_bool(l8_gguf_writer *w, const char *key, bool v, l8_err *e) {
    unsigned char b = v ? 1 : 0;
    llm8_status st = kv_begin(w, key, L8_GGUF_BOOL, e);
    return st ? st : kv_end(w, put(&w->kvs, &b, 1), e);
}

llm8_status l8_gguf_add_str(l8_gguf_writer *w, const char *key, const char *s, size_t len, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_STRING, e);
    return st ? st : kv_end(w, put_str(&w->kvs, s, len), e);
}

llm8_status l8_gguf_add_arr_i32(l8_gguf_writer *w, const char *key, const int32_t *v, size_t n, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_ARRAY, e);
    if (st) return st;
    bool ok = put_u32(&w->kvs, L8_GGUF_I32) && put_u64(&w->kvs, n);
    for (size_t i = 0; ok && i < n; i++) ok = put_u32(&w->kvs, (uint32_t)v[i]);
    return kv_end(w, ok, e);
}

llm8_status l8_gguf_add_arr_f32(l8_gguf_writer *w, const char *key, const float *v, size_t n, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_ARRAY, e);
    if (st) return st;
    bool ok = put_u32(&w->kvs, L8_GGUF_F32) && put_u64(&w->kvs, n);
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        ok = put_u32(&w->kvs, u);
    }
    return kv_end(w, ok, e);
}

llm8_status l8_gguf_add_arr_str(l8_gguf_writer *w, const char *key, const char *const *s, const size_t *lens,
                                size_t n, l8_err *e) {
    llm8_status st = kv_begin(w, key, L8_GGUF_ARRAY, e);
    if (st) return st;
    bool ok = put_u32(&w->kvs, L8_GGUF_STRING) && put_u64(&w->kvs, n);
    for (size_t i = 0; ok && i < n; i++) ok = put_str(&w->kvs, s[i], lens ? lens[i] : strlen(s[i]));
    return kv_end(w, ok, e);
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

llm8_status l8_gguf_add_tensor(l8_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                               const int64_t *ne, uint64_t nbytes, l8_err *e) {
    if (w->err) return l8_fail(e, w->err, "%s", w->errmsg);
    if (w->state != W_DECLARE)
        return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: tensor \"%s\" declared after the data began", w->path, name);
    uint32_t blk, bsz;
    char msg[512];
    if (!name || !*name || n_dims < 1 || n_dims > 4 || !l8_ggml_type_block(type, &blk, &bsz)) {
        snprintf(msg, sizeof msg, "%s: tensor \"%s\": bad name, %u dims or ggml type %u", w->path, name ? name : "", n_dims,
                 type);
        return poison(w, e, LLM8_STATUS_INVALID_ARGUMENT, msg);
    }
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || nel > (uint64_t)INT64_MAX / (uint64_t)ne[d])
            return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: tensor \"%s\" has a bad shape", w->path, name);
        nel *= (uint64_t)ne[d];
    }
    if ((uint64_t)ne[0] % blk != 0) {
        snprintf(msg, sizeof msg, "%s: tensor \"%s\": rows of %" PRId64 " elements are not a multiple of the %s block (%u)",
                 w->path, name, ne[0], l8_ggml_type_name(type), blk);
        return poison(w, e, LLM8_STATUS_INVALID_ARGUMENT, msg);
    }
    if (nel / blk * bsz != nbytes) {
        snprintf(msg, sizeof msg, "%s: tensor \"%s\": %" PRIu64 " bytes declared, its shape and type %s need %" PRIu64,
                 w->path, name, nbytes, l8_ggml_type_name(type), nel / blk * bsz);
        return poison(w, e, LLM8_STATUS_INVALID_ARGUMENT, msg);
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: duplicate tensor \"%s\"", w->path, name);
    if (w->n_t == w->cap_t) {
        size_t c = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *t = realloc(w->t, c * sizeof *t);
        if (!t) return failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
        w->t = t;
        w->cap_t = c;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    size_t nl = strlen(name);
    if (!(t->name = malloc(nl + 1))) return failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
    memcpy(t->name, name, nl + 1);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->offset = w->data_size;
    w->data_size = align_up(w->data_size + nbytes, w->alignment);
    w->n_t++;
    return LLM8_STATUS_OK;
}

static llm8_status out(l8_gguf_writer *w, const void *p, size_t n, l8_err *e) {
    if (n && fwrite(p, 1, n, w->f) != n) return io_fail(w, e, errno);
    return LLM8_STATUS_OK;
}

static llm8_status zeros(l8_gguf_writer *w, size_t n, l8_err *e) {
    static const unsigned char z[64];
    llm8_status st = LLM8_STATUS_OK;
    while (!st && n > 0) {
        size_t k = n < sizeof z ? n : sizeof z;
        st = out(w, z, k, e);
        n -= k;
    }
    return st;
}

llm8_status l8_gguf_begin_data(l8_gguf_writer *w, l8_err *e) {
    if (w->err) return l8_fail(e, w->err, "%s", w->errmsg);
    if (w->state != W_DECLARE) return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: data already begun%s", w->path, "");
    bool have_align = false;
    for (uint64_t i = 0; i < w->n_kv; i++) have_align |= strcmp(w->keys[i], "general.alignment") == 0;
    llm8_status st;
    if (!have_align && (st = l8_gguf_add_u32(w, "general.alignment", w->alignment, e))) return st;
    bytes h = {0};
    bool ok = put(&h, "GGUF", 4) && put_u32(&h, 3) && put_u64(&h, w->n_t) && put_u64(&h, w->n_kv) &&
              put(&h, w->kvs.p, w->kvs.len);
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        ok = put_str(&h, t->name, strlen(t->name)) && put_u32(&h, t->n_dims);
        for (uint32_t d = 0; ok && d < t->n_dims; d++) ok = put_u64(&h, (uint64_t)t->ne[d]);
        ok = ok && put_u32(&h, t->type) && put_u64(&h, t->offset);
    }
    if (!ok) {
        free(h.p);
        return failf(w, e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory%s", w->path, "");
    }
    st = out(w, h.p, h.len, e);
    if (!st) st = zeros(w, (size_t)(align_up(h.len, w->alignment) - h.len), e);
    free(h.p);
    if (st) return st;
    w->state = W_DATA;
    w->cur = 0;
    w->cur_written = 0;
    return LLM8_STATUS_OK;
}

llm8_status l8_gguf_write_data(l8_gguf_writer *w, const void *p, size_t n, l8_err *e) {
    if (w->err) return l8_fail(e, w->err, "%s", w->errmsg);
    if (w->state != W_DATA) return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: tensor data written %s", w->path,
                                         w->state == W_DECLARE ? "before begin_data" : "after finish");
    const unsigned char *b = p;
    while (n > 0) {
        if (w->cur >= w->n_t)
            return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: more tensor data than declared%s", w->path, "");
        wtensor *t = &w->t[w->cur];
        uint64_t left = t->nbytes - w->cur_written;
        size_t k = n < left ? n : (size_t)left;
        llm8_status st = out(w, b, k, e);
        if (st) return st;
        b += k;
        n -= k;
        w->cur_written += k;
        if (w->cur_written == t->nbytes) {
            if ((st = zeros(w, (size_t)(align_up(t->nbytes, w->alignment) - t->nbytes), e))) return st;
            w->cur++;
            w->cur_written = 0;
        }
    }
    return LLM8_STATUS_OK;
}

/* Makes the rename itself durable (best effort: some filesystems refuse to fsync a directory). */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

llm8_status l8_gguf_writer_finish(l8_gguf_writer *w, l8_err *e) {
    if (w->err) return l8_fail(e, w->err, "%s", w->errmsg);
    llm8_status st;
    if (w->state == W_DECLARE && (st = l8_gguf_begin_data(w, e))) return st;
    if (w->state != W_DATA) return failf(w, e, LLM8_STATUS_INVALID_ARGUMENT, "%s: already finished%s", w->path, "");
    if (w->cur < w->n_t) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: tensor \"%s\" got %" PRIu64 " of its %" PRIu64 " bytes", w->path, w->t[w->cur].name,
                 w->cur_written, w->t[w->cur].nbytes);
        return poison(w, e, LLM8_STATUS_INVALID_ARGUMENT, msg);
    }
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) return io_fail(w, e, errno);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) return io_fail(w, e, errno);
    if (rename(w->tmp, w->path) != 0) {
        int err = errno;
        return failf(w, e, LLM8_STATUS_IO_ERROR, "%s: cannot rename the temporary file: %s", w->path, strerror(err));
    }
    sync_dir(w->path);
    w->state = W_DONE;
    return LLM8_STATUS_OK;
}

void l8_gguf_writer_free(l8_gguf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->state != W_DONE && w->created) unlink(w->tmp);
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kvs.p);
    free(w->path);
    free(w->tmp);
    free(w);
}
