/* GGUF reader: one validating pass at open, then plain accessors (see gguf.h). */
#include "format/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/hashmap.h"
#include "util/mapfile.h"

typedef struct kv {
    const char *key; /* into g->names */
    uint32_t type;
    uint32_t elem_type; /* arrays */
    uint64_t n;         /* arrays: element count; strings: byte count */
    const unsigned char *data; /* scalar/numeric array bytes, or the string's bytes */
    uint64_t *str_off;  /* string arrays: offset of element j's u64 length, from the file start */
} kv;

struct l8_gguf {
    l8_map map;   /* zeroed for l8_gguf_open_memory */
    const unsigned char *base;
    size_t size;
    char *name;
    uint32_t version;
    size_t alignment, data_offset;
    int64_t n_kv, n_tensors;
    kv *kvs;
    l8_gguf_tensor *tensors;
    char *names; /* NUL-terminated keys and tensor names */
    l8_strmap kv_index, tensor_index;
};

static const struct {
    const char *name;
    uint32_t block, bytes;
} ggml_types[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},    [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},     [8] = {"Q8_0", 32, 34},    [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},   [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82}, [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},        [25] = {"I16", 1, 2},       [26] = {"I32", 1, 4},      [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},     [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};

const char *l8_ggml_type_name(uint32_t type) {
    return type < sizeof ggml_types / sizeof ggml_types[0] ? ggml_types[type].name : NULL;
}

bool l8_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    if (!l8_ggml_type_name(type)) return false;
    *block_elems = ggml_types[type].block;
    *block_bytes = ggml_types[type].bytes;
    return true;
}

static const char *const vtype_names[] = {"uint8", "int8",  "uint16", "int16", "uint32", "int32", "float32",
                                          "bool",  "string", "array", "uint64", "int64", "float64"};
static const uint8_t vtype_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *l8_gguf_vtype_name(uint32_t t) { return t < L8_GGUF_VTYPE_COUNT ? vtype_names[t] : "?"; }

/* ------------------------------------------------------------------ parsing */

typedef struct cursor {
    const unsigned char *p;
    size_t size, pos;
    const char *name;
    l8_err *e;
} cursor;

static llm8_status truncated(cursor *c, const char *what) {
    return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: truncated: %s at byte %zu runs past the end of the file (%zu bytes)",
                   c->name, what, c->pos, c->size);
}

static llm8_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    *v = 0;
    if (c->size - c->pos < 4) return truncated(c, what);
    const unsigned char *b = c->p + c->pos;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    c->pos += 4;
    return LLM8_STATUS_OK;
}

static llm8_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    *v = 0;
    if (c->size - c->pos < 8) return truncated(c, what);
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = x << 8 | c->p[c->pos + (size_t)i];
    *v = x;
    c->pos += 8;
    return LLM8_STATUS_OK;
}

/* A string: its bytes stay in the file; *len bounded by what is left. */
static llm8_status rd_str(cursor *c, const unsigned char **s, uint64_t *len, const char *what) {
    *s = NULL;
    llm8_status st = rd_u64(c, len, what);
    if (st) return st;
    if (*len > c->size - c->pos) {
        c->pos -= 8;
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: %s at byte %zu has length %" PRIu64 ", beyond the end of the file",
                       c->name, what, c->pos, *len);
    }
    *s = c->p + c->pos;
    c->pos += (size_t)*len;
    return LLM8_STATUS_OK;
}

static uint64_t load_u64(const unsigned char *b, unsigned size) {
    uint64_t x = 0;
    for (int i = (int)size - 1; i >= 0; i--) x = x << 8 | b[i];
    return x;
}

/* Appends a NUL-terminated copy of (s, len) to the name pool; returns its offset. */
static size_t pool_add(l8_gguf *g, size_t *used, const unsigned char *s, size_t len) {
    size_t off = *used;
    memcpy(g->names + off, s, len);
    g->names[off + len] = '\0';
    *used += len + 1;
    return off;
}

static llm8_status parse_kv(l8_gguf *g, cursor *c, int64_t i, size_t *pool_used) {
    kv *k = &g->kvs[i];
    const unsigned char *key;
    uint64_t klen;
    size_t at = c->pos;
    llm8_status st = rd_str(c, &key, &klen, "key");
    if (st) return st;
    if (klen == 0 || klen > 65535 || memchr(key, 0, (size_t)klen))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: key %" PRId64 " at byte %zu is empty, too long or contains NUL",
                       c->name, i, at);
    k->key = g->names + pool_add(g, pool_used, key, (size_t)klen);
    if ((st = rd_u32(c, &k->type, "value type"))) return st;
    if (k->type >= L8_GGUF_VTYPE_COUNT)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: key \"%s\" has unknown value type %u", c->name, k->key, k->type);
    if (k->type == L8_GGUF_STRING) {
        if ((st = rd_str(c, &k->data, &k->n, k->key))) return st;
    } else if (k->type == L8_GGUF_ARRAY) {
        if ((st = rd_u32(c, &k->elem_type, "array element type"))) return st;
        if ((st = rd_u64(c, &k->n, "array length"))) return st;
        if (k->elem_type == L8_GGUF_ARRAY)
            return l8_fail(c->e, LLM8_STATUS_UNSUPPORTED, "%s: key \"%s\" is an array of arrays (not supported)", c->name,
                           k->key);
        if (k->elem_type >= L8_GGUF_VTYPE_COUNT)
            return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: array \"%s\" has unknown element type %u", c->name, k->key,
                           k->elem_type);
        size_t left = c->size - c->pos;
        if (k->elem_type == L8_GGUF_STRING) {
            if (k->n > left / 8)
                return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: array \"%s\" claims %" PRIu64 " strings, more than the file holds",
                               c->name, k->key, k->n);
            /* Indexing every element now keeps later lookups O(1) (a Llama 3 vocab has 128256). */
            k->str_off = malloc((size_t)(k->n ? k->n : 1) * sizeof *k->str_off);
            if (!k->str_off) return l8_fail(c->e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", c->name);
            for (uint64_t j = 0; j < k->n; j++) {
                const unsigned char *s;
                uint64_t len;
                k->str_off[j] = c->pos;
                if ((st = rd_str(c, &s, &len, k->key))) return st;
            }
        } else {
            size_t es = vtype_size[k->elem_type];
            if (k->n > left / es)
                return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT,
                               "%s: array \"%s\" of %" PRIu64 " %s runs past the end of the file", c->name, k->key, k->n,
                               vtype_names[k->elem_type]);
            k->data = c->p + c->pos;
            c->pos += (size_t)k->n * es;
        }
    } else {
        if (c->size - c->pos < vtype_size[k->type]) return truncated(c, k->key);
        k->data = c->p + c->pos;
        c->pos += vtype_size[k->type];
        if (k->type == L8_GGUF_BOOL && k->data[0] > 1)
            return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: bool \"%s\" has value %u", c->name, k->key, k->data[0]);
    }
    if (l8_strmap_get(&g->kv_index, k->key, (size_t)klen) >= 0)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: duplicate key \"%s\"", c->name, k->key);
    l8_strmap_put(&g->kv_index, k->key, (size_t)klen, (int32_t)i);
    return LLM8_STATUS_OK;
}

static llm8_status parse_tensor(l8_gguf *g, cursor *c, int64_t i, size_t *pool_used) {
    l8_gguf_tensor *t = &g->tensors[i];
    const unsigned char *nm;
    uint64_t nlen;
    size_t at = c->pos;
    llm8_status st = rd_str(c, &nm, &nlen, "tensor name");
    if (st) return st;
    if (nlen == 0 || nlen > 65535 || memchr(nm, 0, (size_t)nlen))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %" PRId64 " at byte %zu has an empty, too long or NUL-containing name",
                       c->name, i, at);
    t->name = g->names + pool_add(g, pool_used, nm, (size_t)nlen);
    if ((st = rd_u32(c, &t->n_dims, t->name))) return st;
    if (t->n_dims < 1 || t->n_dims > L8_GGUF_MAX_DIMS)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" has %u dimensions (1 to 4 allowed)", c->name, t->name,
                       t->n_dims);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < L8_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if ((st = rd_u64(c, &v, t->name))) return st;
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" has dimension %u = %" PRIu64, c->name, t->name, d, v);
        if (nel > (uint64_t)INT64_MAX / v)
            return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": element count overflows", c->name, t->name);
        nel *= v;
        t->ne[d] = (int64_t)v;
    }
    if ((st = rd_u32(c, &t->type, t->name))) return st;
    uint32_t blk, bytes;
    if (!l8_ggml_type_block(t->type, &blk, &bytes))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" has unknown ggml type %u", c->name, t->name, t->type);
    if ((uint64_t)t->ne[0] % blk != 0)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" (%s) has rows of %" PRId64 " elements, not a multiple of %u",
                       c->name, t->name, ggml_types[t->type].name, t->ne[0], blk);
    uint64_t nblocks = nel / blk;
    if (nblocks > SIZE_MAX / bytes || nblocks * bytes > c->size)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" (%" PRIu64 " elements) is larger than the file", c->name,
                       t->name, nel);
    t->nbytes = (size_t)(nblocks * bytes);
    if ((st = rd_u64(c, &t->offset, t->name))) return st;
    if (l8_strmap_get(&g->tensor_index, t->name, (size_t)nlen) >= 0)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: duplicate tensor \"%s\"", c->name, t->name);
    l8_strmap_put(&g->tensor_index, t->name, (size_t)nlen, (int32_t)i);
    return LLM8_STATUS_OK;
}

static llm8_status read_alignment(l8_gguf *g, l8_err *e) {
    g->alignment = L8_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = l8_gguf_find_key(g, "general.alignment");
    if (i < 0) return LLM8_STATUS_OK;
    uint64_t a = 0;
    llm8_status st = l8_gguf_get_u64(g, "general.alignment", true, &a, e);
    if (st) return st;
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: general.alignment %" PRIu64 " is not a power of two up to 1 MiB", g->name,
                       a);
    g->alignment = (size_t)a;
    return LLM8_STATUS_OK;
}

static llm8_status parse(l8_gguf *g, l8_err *e) {
    cursor c = {.p = g->base, .size = g->size, .name = g->name, .e = e};
    llm8_status st;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        if (g->size >= 4 && memcmp(g->base, "FUGG", 4) == 0)
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: big-endian GGUF is not supported", g->name);
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: not a GGUF file (bad magic)", g->name);
    }
    c.pos = 4;
    if ((st = rd_u32(&c, &g->version, "version"))) return st;
    if (g->version == 1)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: GGUF version 1 is not supported (re-convert with a current llama.cpp)",
                       g->name);
    if (g->version != 2 && g->version != 3)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)", g->name, g->version);
    uint64_t nt = 0, nkv = 0;
    if ((st = rd_u64(&c, &nt, "tensor count")) || (st = rd_u64(&c, &nkv, "key/value count"))) return st;
    /* Each kv takes at least 13 bytes (key length, type, one value byte), each tensor info 32. */
    size_t left = g->size - c.pos;
    if (nkv > left / 13 || nkv > INT32_MAX)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: key/value count %" PRIu64 " is impossible for a %zu-byte file", g->name,
                       nkv, g->size);
    if (nt > left / 32 || nt > INT32_MAX)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor count %" PRIu64 " is impossible for a %zu-byte file", g->name, nt,
                       g->size);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    /* Every key and name is shorter than the file, and the pool adds one NUL per string. */
    g->kvs = calloc((size_t)nkv + 1, sizeof *g->kvs);
    g->tensors = calloc((size_t)nt + 1, sizeof *g->tensors);
    g->names = malloc(g->size + (size_t)nkv + (size_t)nt + 1);
    if (!g->kvs || !g->tensors || !g->names || !l8_strmap_init(&g->kv_index, (size_t)nkv + 1) ||
        !l8_strmap_init(&g->tensor_index, (size_t)nt + 1))
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", g->name);
    size_t pool_used = 0;
    for (int64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(g, &c, i, &pool_used))) return st;
    if ((st = read_alignment(g, e))) return st;
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor(g, &c, i, &pool_used))) return st;
    size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    g->data_offset = c.pos + pad;
    if (g->n_tensors > 0 && g->data_offset > g->size)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: truncated: the data section would start at byte %zu, past the end (%zu)",
                       g->name, g->data_offset, g->size);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        l8_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" has offset %" PRIu64 ", not a multiple of the alignment %zu",
                           g->name, t->name, t->offset, g->alignment);
        size_t avail = g->size - g->data_offset;
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                           "%s: tensor \"%s\" (%zu bytes at data offset %" PRIu64 ") runs past the end of the file (%zu bytes)",
                           g->name, t->name, t->nbytes, t->offset, g->size);
        t->data = g->base + g->data_offset + t->offset;
    }
    return LLM8_STATUS_OK;
}

static void oom_free(l8_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; g->kvs && i < g->n_kv; i++) free(g->kvs[i].str_off);
    free(g->kvs);
    free(g->tensors);
    free(g->names);
    l8_strmap_free(&g->kv_index);
    l8_strmap_free(&g->tensor_index);
    l8_map_close(&g->map);
    free(g->name);
    free(g);
}

static llm8_status open_common(l8_gguf *g, const char *name, l8_gguf **out, l8_err *e) {
    size_t nl = strlen(name);
    if (!(g->name = malloc(nl + 1))) {
        oom_free(g);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    memcpy(g->name, name, nl + 1);
    llm8_status st = parse(g, e);
    if (st) {
        oom_free(g);
        return st;
    }
    *out = g;
    return LLM8_STATUS_OK;
}

llm8_status l8_gguf_open(const char *path, l8_gguf **out, l8_err *e) {
    if (!path || !out) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "gguf: null argument");
    *out = NULL;
    l8_gguf *g = calloc(1, sizeof *g);
    if (!g) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    llm8_status st = l8_map_open(&g->map, path, e);
    if (st) {
        free(g);
        return st;
    }
    g->base = g->map.data;
    g->size = g->map.size;
    return open_common(g, path, out, e);
}

llm8_status l8_gguf_open_memory(const void *data, size_t size, const char *name, l8_gguf **out, l8_err *e) {
    if (!out || (!data && size)) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "gguf: null argument");
    *out = NULL;
    if (!name) name = "gguf";
    l8_gguf *g = calloc(1, sizeof *g);
    if (!g) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
    g->base = data;
    g->size = size;
    return open_common(g, name, out, e);
}

void l8_gguf_close(l8_gguf *g) { oom_free(g); }

/* ------------------------------------------------------------------ accessors */

const char *l8_gguf_name(const l8_gguf *g) { return g->name; }
uint32_t l8_gguf_version(const l8_gguf *g) { return g->version; }
size_t l8_gguf_alignment(const l8_gguf *g) { return g->alignment; }
size_t l8_gguf_data_offset(const l8_gguf *g) { return g->data_offset; }
const void *l8_gguf_base(const l8_gguf *g) { return g->base; }
int64_t l8_gguf_n_kv(const l8_gguf *g) { return g->n_kv; }

int64_t l8_gguf_find_key(const l8_gguf *g, const char *key) {
    return l8_strmap_get(&g->kv_index, key, strlen(key));
}

const char *l8_gguf_key(const l8_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? g->kvs[i].key : NULL; }
uint32_t l8_gguf_kv_type(const l8_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kvs[i].type : L8_GGUF_VTYPE_COUNT;
}
const void *l8_gguf_kv_data(const l8_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv || g->kvs[i].type == L8_GGUF_STRING || g->kvs[i].type == L8_GGUF_ARRAY) return NULL;
    return g->kvs[i].data;
}

static bool is_int(uint32_t t) { return t <= L8_GGUF_I32 || t == L8_GGUF_U64 || t == L8_GGUF_I64; }
static bool is_signed(uint32_t t) {
    return t == L8_GGUF_I8 || t == L8_GGUF_I16 || t == L8_GGUF_I32 || t == L8_GGUF_I64;
}

/* Looks key up: *k = NULL and OK when absent and optional. */
static llm8_status lookup(const l8_gguf *g, const char *key, bool required, const kv **k, l8_err *e) {
    int64_t i = l8_gguf_find_key(g, key);
    *k = i >= 0 ? &g->kvs[i] : NULL;
    if (!*k && required) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing key \"%s\"", g->name, key);
    return LLM8_STATUS_OK;
}

static llm8_status wrong_type(const l8_gguf *g, const kv *k, const char *want, l8_err *e) {
    return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: key \"%s\" has type %s, expected %s", g->name, k->key,
                   vtype_names[k->type], want);
}

/* An integer kv as a signed 128-ish pair: magnitude in *u, sign in *neg. */
static void int_value(const kv *k, uint64_t *u, bool *neg) {
    unsigned sz = vtype_size[k->type];
    uint64_t x = load_u64(k->data, sz);
    *neg = false;
    if (is_signed(k->type) && (x >> (sz * 8 - 1)) & 1) {
        /* sign-extend, then take the magnitude */
        if (sz < 8) x |= ~(uint64_t)0 << (sz * 8);
        *neg = true;
        x = ~x + 1;
    }
    *u = x;
}

static llm8_status get_int(const l8_gguf *g, const char *key, bool required, int64_t lo, uint64_t hi, bool *found,
                           uint64_t *mag, bool *neg, l8_err *e) {
    const kv *k;
    *found = false;
    llm8_status st = lookup(g, key, required, &k, e);
    if (st || !k) return st;
    if (!is_int(k->type)) return wrong_type(g, k, "an integer", e);
    int_value(k, mag, neg);
    if ((*neg && (lo >= 0 || *mag > (uint64_t)(-(lo + 1)) + 1)) || (!*neg && *mag > hi))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: key \"%s\" = %s%" PRIu64 " is out of range", g->name, key,
                       *neg ? "-" : "", *mag);
    *found = true;
    return LLM8_STATUS_OK;
}

llm8_status l8_gguf_get_u32(const l8_gguf *g, const char *key, bool required, uint32_t *out, l8_err *e) {
    uint64_t m;
    bool neg, found;
    llm8_status st = get_int(g, key, required, 0, UINT32_MAX, &found, &m, &neg, e);
    if (!st && found) *out = (uint32_t)m;
    return st;
}

llm8_status l8_gguf_get_i32(const l8_gguf *g, const char *key, bool required, int32_t *out, l8_err *e) {
    uint64_t m;
    bool neg, found;
    llm8_status st = get_int(g, key, required, INT32_MIN, INT32_MAX, &found, &m, &neg, e);
    if (!st && found) *out = neg ? (int32_t)(-(int64_t)m) : (int32_t)m;
    return st;
}

llm8_status l8_gguf_get_u64(const l8_gguf *g, const char *key, bool required, uint64_t *out, l8_err *e) {
    uint64_t m;
    bool neg, found;
    llm8_status st = get_int(g, key, required, 0, UINT64_MAX, &found, &m, &neg, e);
    if (!st && found) *out = m;
    return st;
}

llm8_status l8_gguf_get_f32(const l8_gguf *g, const char *key, bool required, float *out, l8_err *e) {
    const kv *k;
    llm8_status st = lookup(g, key, required, &k, e);
    if (st || !k) return st;
    if (k->type == L8_GGUF_F32) {
        memcpy(out, k->data, 4);
    } else if (k->type == L8_GGUF_F64) {
        double d;
        memcpy(&d, k->data, 8);
        *out = (float)d;
    } else if (is_int(k->type)) {
        uint64_t m;
        bool neg;
        int_value(k, &m, &neg);
        *out = neg ? -(float)m : (float)m;
    } else {
        return wrong_type(g, k, "a number", e);
    }
    return LLM8_STATUS_OK;
}

llm8_status l8_gguf_get_bool(const l8_gguf *g, const char *key, bool required, bool *out, l8_err *e) {
    const kv *k;
    llm8_status st = lookup(g, key, required, &k, e);
    if (st || !k) return st;
    if (k->type != L8_GGUF_BOOL) return wrong_type(g, k, "bool", e);
    *out = k->data[0] != 0;
    return LLM8_STATUS_OK;
}

llm8_status l8_gguf_get_str(const l8_gguf *g, const char *key, bool required, const char **s, size_t *len,
                            l8_err *e) {
    const kv *k;
    llm8_status st = lookup(g, key, required, &k, e);
    if (st || !k) return st;
    if (k->type != L8_GGUF_STRING) return wrong_type(g, k, "string", e);
    *s = (const char *)k->data;
    *len = (size_t)k->n;
    return LLM8_STATUS_OK;
}

llm8_status l8_gguf_get_arr(const l8_gguf *g, const char *key, bool required, int64_t *kvi, uint32_t *elem_type,
                            uint64_t *n, const void **data, l8_err *e) {
    const kv *k;
    if (kvi) *kvi = -1;
    llm8_status st = lookup(g, key, required, &k, e);
    if (st || !k) return st;
    if (k->type != L8_GGUF_ARRAY) return wrong_type(g, k, "array", e);
    if (kvi) *kvi = k - g->kvs;
    if (elem_type) *elem_type = k->elem_type;
    if (n) *n = k->n;
    if (data) *data = k->elem_type == L8_GGUF_STRING ? NULL : k->data;
    return LLM8_STATUS_OK;
}

const char *l8_gguf_arr_str(const l8_gguf *g, int64_t i, uint64_t j, size_t *len) {
    if (i < 0 || i >= g->n_kv) return NULL;
    const kv *k = &g->kvs[i];
    if (k->type != L8_GGUF_ARRAY || k->elem_type != L8_GGUF_STRING || j >= k->n) return NULL;
    const unsigned char *p = g->base + k->str_off[j];
    *len = (size_t)load_u64(p, 8);
    return (const char *)p + 8;
}

int64_t l8_gguf_n_tensors(const l8_gguf *g) { return g->n_tensors; }

const l8_gguf_tensor *l8_gguf_tensor_at(const l8_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const l8_gguf_tensor *l8_gguf_find_tensor(const l8_gguf *g, const char *name) {
    int32_t i = l8_strmap_get(&g->tensor_index, name, strlen(name));
    return i >= 0 ? &g->tensors[i] : NULL;
}
