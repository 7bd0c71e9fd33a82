#include "tokenizer/hashmap.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: short keys dominate (most pieces are under 10 bytes), where it beats fancier hashes. */
static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Keeps the load factor at or below 1/2 so probe chains stay short. */
static size_t table_cap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 1) cap <<= 1;
    return cap;
}

bool l8_strmap_init(l8_strmap *m, size_t n) {
    m->cap = table_cap(n);
    m->count = 0;
    m->slots = calloc(m->cap, sizeof *m->slots);
    return m->slots != NULL;
}

void l8_strmap_free(l8_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

bool l8_strmap_put(l8_strmap *m, const char *key, size_t len, int32_t val) {
    if (!m->slots || len > UINT32_MAX) return false;
    uint32_t h = hash_bytes(key, len);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        l8_strmap_entry *s = &m->slots[i];
        if (!s->key) {
            if (m->count + 1 >= m->cap) return false;
            s->key = key, s->len = (uint32_t)len, s->hash = h, s->val = val;
            m->count++;
            return true;
        }
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            s->val = val;
            return true;
        }
    }
}

int32_t l8_strmap_get(const l8_strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    uint32_t h = hash_bytes(key, len);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const l8_strmap_entry *s = &m->slots[i];
        if (!s->key) return -1;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s->val;
    }
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

bool l8_pairmap_init(l8_pairmap *m, size_t n) {
    m->cap = table_cap(n);
    m->count = 0;
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) return false;
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
    return true;
}

void l8_pairmap_free(l8_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

bool l8_pairmap_put(l8_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if (!m->slots) return false;
    uint64_t k = pair_key(a, b);
    for (size_t i = pair_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        l8_pairmap_entry *s = &m->slots[i];
        if (s->key == UINT64_MAX) {
            if (m->count + 1 >= m->cap) return false;
            s->key = k, s->rank = rank, s->id = id;
            m->count++;
            return true;
        }
        if (s->key == k) {
            s->rank = rank, s->id = id;
            return true;
        }
    }
}

const l8_pairmap_entry *l8_pairmap_get(const l8_pairmap *m, int32_t a, int32_t b) {
    if (!m->slots) return NULL;
    uint64_t k = pair_key(a, b);
    for (size_t i = pair_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const l8_pairmap_entry *s = &m->slots[i];
        if (s->key == UINT64_MAX) return NULL;
        if (s->key == k) return s;
    }
}
