/*
 * safetensors reader. Layout of a file: an 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data
 * section, which offsets are relative to. Every number in the header is untrusted: a bad file
 * must give a message, never an out-of-bounds pointer.
 */
#define _POSIX_C_SOURCE 200809L
#include "format/safetensors.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/json.h"
#include "util/mapfile.h"

/* Real headers are a few hundred KB even for models with thousands of tensors; anything this big
 * is corruption, and refusing it keeps jansson from allocating gigabytes. */
#define L8_ST_MAX_HEADER (100u * 1000u * 1000u)
/* No real dimension comes near 2^40; the cap keeps products far from overflow in practice. */
#define L8_ST_MAX_DIM (1LL << 40)

typedef struct st_entry {
    char *name;
    char dtype[16]; /* as written, truncated for messages */
    bool usable;    /* dtype is F32/F16/BF16 and ndim <= 4 */
    uint32_t file;
    uint64_t nbytes;
    l8_tensor t; /* filled only when usable */
} st_entry;

struct l8_safetensors {
    char *source;
    char **paths;
    l8_map *maps;
    size_t n_files;
    st_entry *ents;
    size_t n, cap;
    uint64_t data_bytes;
};

/* Bits per element of every dtype the format defines; 0 for names we do not know. */
static unsigned dtype_bits(const char *s, bool *usable, l8_dtype *dt) {
    static const struct {
        const char *name;
        unsigned bits;
        int l8; /* l8_dtype, or -1 */
    } tab[] = {
        {"F32", 32, L8_DTYPE_F32}, {"F16", 16, L8_DTYPE_F16}, {"BF16", 16, L8_DTYPE_BF16},
        {"F64", 64, -1},           {"I64", 64, -1},           {"U64", 64, -1},
        {"I32", 32, -1},           {"U32", 32, -1},           {"I16", 16, -1},
        {"U16", 16, -1},           {"I8", 8, -1},             {"U8", 8, -1},
        {"BOOL", 8, -1},           {"F8_E4M3", 8, -1},        {"F8_E5M2", 8, -1},
        {"F8_E8M0", 8, -1},        {"F6_E2M3", 6, -1},        {"F6_E3M2", 6, -1},
        {"F4", 4, -1},
    };
    *usable = false;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(s, tab[i].name) == 0) {
            if (tab[i].l8 >= 0) {
                *usable = true;
                *dt = (l8_dtype)tab[i].l8;
            }
            return tab[i].bits;
        }
    }
    return 0;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static llm8_status oom(l8_err *e, const char *path) {
    return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
}

static llm8_status add_file(l8_safetensors *st, const char *path, l8_err *e) {
    char **np = realloc(st->paths, (st->n_files + 1) * sizeof *np);
    if (!np) return oom(e, path);
    st->paths = np;
    l8_map *nm = realloc(st->maps, (st->n_files + 1) * sizeof *nm);
    if (!nm) return oom(e, path);
    st->maps = nm;
    char *copy = strdup(path);
    if (!copy) return oom(e, path);
    llm8_status s = l8_map_open(&st->maps[st->n_files], path, e);
    if (s) {
        free(copy);
        return s;
    }
    st->paths[st->n_files++] = copy;
    return LLM8_STATUS_OK;
}

/* Formats a shape as "[a, b, c]" for messages. */
static void fmt_shape(char *buf, size_t cap, const json_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (size_t i = 0; i < json_array_size(shape) && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
                              (long long)json_integer_value(json_array_get(shape, i)));
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Validates one header entry and appends it. */
static llm8_status parse_entry(l8_safetensors *st, uint32_t fi, const char *key, json_t *v, uint64_t dsize,
                               const unsigned char *data, l8_err *e) {
    const char *path = st->paths[fi];
    if (!json_is_object(v))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": entry is not a JSON object", path, key);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": \"dtype\" missing or not a string", path, key);
    if (!json_is_array(js))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": \"shape\" missing or not an array", path, key);
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] integers",
                       path, key);

    const char *dts = json_string_value(jd);
    bool usable;
    l8_dtype dt = L8_DTYPE_F32;
    unsigned bits = dtype_bits(dts, &usable, &dt);

    size_t ndim = json_array_size(js);
    uint64_t nelem = 1;
    bool overflow = false;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > L8_ST_MAX_DIM) {
            char sh[128];
            fmt_shape(sh, sizeof sh, js);
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": bad shape %s (dimension %zu)", path, key,
                           json_is_integer(d) ? sh : "(non-integer)", i);
        }
        uint64_t x = (uint64_t)json_integer_value(d);
        if (x != 0 && nelem > UINT64_MAX / 64 / x) overflow = true; /* 64: room for bits */
        nelem *= x;
    }
    if (overflow) {
        char sh[128];
        fmt_shape(sh, sizeof sh, js);
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": shape %s is too large", path, key, sh);
    }

    long long b = json_integer_value(json_array_get(jo, 0)), en = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || en < b)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\": data_offsets [%lld, %lld] are not 0 <= begin <= end",
                       path, key, b, en);
    if ((uint64_t)en > dsize)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                       "%s: tensor \"%s\": data_offsets [%lld, %lld] beyond the data section (%llu bytes)", path,
                       key, b, en, (unsigned long long)dsize);
    uint64_t have = (uint64_t)(en - b);
    if (bits) {
        uint64_t need_bits = nelem * bits;
        if (need_bits % 8 != 0 || need_bits / 8 != have) {
            char sh[128];
            fmt_shape(sh, sizeof sh, js);
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                           "%s: tensor \"%s\": data_offsets [%lld, %lld] hold %llu bytes, but %s %s needs %llu", path,
                           key, b, en, (unsigned long long)have, dts, sh, (unsigned long long)(need_bits / 8));
        }
    }
    /* Unknown dtypes (bits == 0) cannot be size-checked; the bounds check above still holds. */

    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        st_entry *ne = realloc(st->ents, nc * sizeof *ne);
        if (!ne) return oom(e, path);
        st->ents = ne;
        st->cap = nc;
    }
    st_entry *ent = &st->ents[st->n];
    memset(ent, 0, sizeof *ent);
    ent->name = strdup(key);
    if (!ent->name) return oom(e, path);
    snprintf(ent->dtype, sizeof ent->dtype, "%s", dts);
    ent->file = fi;
    ent->nbytes = have;
    ent->usable = usable && ndim <= 4;
    if (ent->usable) {
        ent->t.dtype = dt;
        ent->t.ndim = (int)ndim;
        for (size_t i = 0; i < ndim; i++) ent->t.shape[i] = json_integer_value(json_array_get(js, i));
        ent->t.data = data + b;
        ent->t.nbytes = (size_t)have;
    }
    st->n++;
    st->data_bytes += have;
    return LLM8_STATUS_OK;
}

static llm8_status parse_file(l8_safetensors *st, uint32_t fi, l8_err *e) {
    const char *path = st->paths[fi];
    const l8_map *m = &st->maps[fi];
    if (m->size < 8)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: %zu bytes is too short for a safetensors file", path, m->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | m->data[i];
    if (hlen > L8_ST_MAX_HEADER)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: header length %llu is absurd (limit %u bytes); not a safetensors file?",
                       path, (unsigned long long)hlen, L8_ST_MAX_HEADER);
    if (hlen > m->size - 8)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: header length %llu goes beyond the end of the file (%zu bytes)",
                       path, (unsigned long long)hlen, m->size);
    if (hlen < 2 || m->data[8] != '{')
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: the header is not a JSON object", path);

    size_t nlen = strlen(path) + 16;
    char *name = malloc(nlen);
    if (!name) return oom(e, path);
    snprintf(name, nlen, "%s (header)", path);
    json_t *root;
    llm8_status s = l8_json_load_buffer(name, (const char *)m->data + 8, (size_t)hlen, &root, e);
    free(name);
    if (s) return s;
    if (!json_is_object(root)) {
        json_decref(root);
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: the header is not a JSON object", path);
    }
    const unsigned char *data = m->data + 8 + hlen;
    uint64_t dsize = m->size - 8 - hlen;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue; /* free-form strings; nothing llm8 needs */
        s = parse_entry(st, fi, key, v, dsize, data, e);
        if (s) break;
    }
    json_decref(root);
    return s;
}

static int cmp_ent(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* Sorts for binary search; a name in two shards would make lookups ambiguous, so it is an error. */
static llm8_status finish(l8_safetensors *st, l8_err *e) {
    if (st->n) qsort(st->ents, st->n, sizeof *st->ents, cmp_ent);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->ents[i - 1].name, st->ents[i].name) == 0)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor \"%s\" appears in both %s and %s", st->source,
                           st->ents[i].name, st->paths[st->ents[i - 1].file], st->paths[st->ents[i].file]);
    return LLM8_STATUS_OK;
}

static l8_safetensors *st_new(const char *source) {
    l8_safetensors *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->source = strdup(source);
    if (!st->source) {
        free(st);
        return NULL;
    }
    return st;
}

llm8_status l8_st_open_file(const char *path, l8_safetensors **out, l8_err *e) {
    *out = NULL;
    l8_safetensors *st = st_new(path);
    if (!st) return oom(e, path);
    llm8_status s = add_file(st, path, e);
    if (!s) s = parse_file(st, 0, e);
    if (!s) s = finish(st, e);
    if (s) {
        l8_st_close(st);
        return s;
    }
    *out = st;
    return LLM8_STATUS_OK;
}

/* Shard names come from a file we do not trust; keep them inside the model folder. */
static bool plain_file_name(const char *s) {
    return s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && !strchr(s, '\\');
}

static llm8_status open_index(l8_safetensors *st, const char *dir, const char *ipath, l8_err *e) {
    json_t *root;
    llm8_status s = l8_json_load_file(ipath, &root, e);
    if (s) return s;
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        json_decref(root);
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing \"weight_map\" object", ipath);
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v) || !plain_file_name(json_string_value(v))) {
            s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: weight_map entry \"%s\" is not a plain file name", ipath, key);
            goto done;
        }
        const char *shard = json_string_value(v);
        bool seen = false;
        for (size_t i = 0; i < st->n_files && !seen; i++) {
            const char *p = strrchr(st->paths[i], '/');
            seen = strcmp(p ? p + 1 : st->paths[i], shard) == 0;
        }
        if (seen) continue;
        char *sp = l8_path_join(dir, shard);
        if (!sp) {
            s = oom(e, ipath);
            goto done;
        }
        l8_err inner;
        s = add_file(st, sp, &inner);
        if (s)
            l8_fail(e, s, "%s: shard \"%s\" named in weight_map cannot be opened: %s", ipath, shard, inner.msg);
        free(sp);
        if (s) goto done;
    }
    if (st->n_files == 0) {
        s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"weight_map\" is empty", ipath);
        goto done;
    }
    for (uint32_t i = 0; i < st->n_files && !s; i++) s = parse_file(st, i, e);
    if (!s) s = finish(st, e);
    /* The index is a promise about where each tensor lives; a broken promise means the folder was
     * assembled from different checkpoints. */
    json_object_foreach(wm, key, v) {
        if (s) break;
        size_t k = l8_st_index(st, key);
        const char *shard = json_string_value(v);
        const char *p = k == SIZE_MAX ? NULL : strrchr(st->paths[st->ents[k].file], '/');
        if (k == SIZE_MAX || strcmp(p ? p + 1 : st->paths[st->ents[k].file], shard) != 0)
            s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: weight_map puts tensor \"%s\" in %s, which does not contain it",
                        ipath, key, shard);
    }
done:
    json_decref(root);
    return s;
}

llm8_status l8_st_open_dir(const char *dir, l8_safetensors **out, l8_err *e) {
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) return l8_st_open_file(dir, out, e);
    char *ipath = l8_path_join(dir, "model.safetensors.index.json");
    char *fpath = l8_path_join(dir, "model.safetensors");
    llm8_status s = LLM8_STATUS_OK;
    if (!ipath || !fpath) {
        s = oom(e, dir);
    } else if (file_exists(ipath)) {
        l8_safetensors *st = st_new(ipath);
        if (!st) {
            s = oom(e, ipath);
        } else {
            s = open_index(st, dir, ipath, e);
            if (s)
                l8_st_close(st);
            else
                *out = st;
        }
    } else if (file_exists(fpath)) {
        s = l8_st_open_file(fpath, out, e);
    } else {
        s = l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    free(ipath);
    free(fpath);
    return s;
}

void l8_st_close(l8_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->ents[i].name);
    free(st->ents);
    for (size_t i = 0; i < st->n_files; i++) {
        l8_map_close(&st->maps[i]);
        free(st->paths[i]);
    }
    free(st->maps);
    free(st->paths);
    free(st->source);
    free(st);
}

size_t l8_st_count(const l8_safetensors *st) { return st ? st->n : 0; }

const char *l8_st_name(const l8_safetensors *st, size_t i) { return i < st->n ? st->ents[i].name : NULL; }

const l8_tensor *l8_st_tensor(const l8_safetensors *st, size_t i) {
    return i < st->n && st->ents[i].usable ? &st->ents[i].t : NULL;
}

const char *l8_st_dtype(const l8_safetensors *st, size_t i) { return i < st->n ? st->ents[i].dtype : NULL; }

const char *l8_st_file(const l8_safetensors *st, size_t i) {
    return i < st->n ? st->paths[st->ents[i].file] : NULL;
}

size_t l8_st_index(const l8_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->ents[mid].name);
        if (c == 0) return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

const l8_tensor *l8_st_find(const l8_safetensors *st, const char *name) {
    size_t i = l8_st_index(st, name);
    return i == SIZE_MAX ? NULL : l8_st_tensor(st, i);
}

llm8_status l8_st_get(const l8_safetensors *st, const char *name, const l8_tensor **out, l8_err *e) {
    *out = NULL;
    size_t i = l8_st_index(st, name);
    if (i == SIZE_MAX) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: no tensor \"%s\"", st->source, name);
    const st_entry *ent = &st->ents[i];
    if (!ent->usable) {
        bool computable;
        l8_dtype dt;
        bool known = dtype_bits(ent->dtype, &computable, &dt) != 0;
        if (computable) /* the dtype is fine, so the rank is what ruled it out */
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: tensor \"%s\" has more than 4 dimensions",
                           st->paths[ent->file], name);
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: tensor \"%s\" has %s dtype %s; llm8 reads F32, F16 and BF16",
                       st->paths[ent->file], name, known ? "unsupported" : "unknown", ent->dtype);
    }
    *out = &ent->t;
    return LLM8_STATUS_OK;
}

const char *l8_st_source(const l8_safetensors *st) { return st->source; }

uint64_t l8_st_data_bytes(const l8_safetensors *st) { return st ? st->data_bytes : 0; }
