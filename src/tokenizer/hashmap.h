/* Small open-addressing hash maps for the tokenizer: piece string -> id, and id pair -> merge. */
#ifndef L8_TOK_HASHMAP_H
#define L8_TOK_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys are not copied: each entry points into memory the caller keeps alive (the piece arena). */
typedef struct l8_strmap_entry {
    const char *key; /* NULL marks an empty slot */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} l8_strmap_entry;

typedef struct l8_strmap {
    l8_strmap_entry *slots;
    size_t cap; /* power of two */
    size_t count;
} l8_strmap;

/* Sizes the table for n keys; returns false when out of memory. */
bool l8_strmap_init(l8_strmap *m, size_t n);
void l8_strmap_free(l8_strmap *m);
/* Inserts or overwrites; the table never grows, so init must be sized for every key. */
bool l8_strmap_put(l8_strmap *m, const char *key, size_t len, int32_t val);
/* The value for key, or -1. */
int32_t l8_strmap_get(const l8_strmap *m, const char *key, size_t len);

/* (left id, right id) -> (rank, merged id). */
typedef struct l8_pairmap_entry {
    uint64_t key; /* UINT64_MAX marks an empty slot (ids are < 2^31, so no real key collides) */
    int32_t rank;
    int32_t id;
} l8_pairmap_entry;

typedef struct l8_pairmap {
    l8_pairmap_entry *slots;
    size_t cap;
    size_t count;
} l8_pairmap;

bool l8_pairmap_init(l8_pairmap *m, size_t n);
void l8_pairmap_free(l8_pairmap *m);
bool l8_pairmap_put(l8_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
/* Returns the entry or NULL. */
const l8_pairmap_entry *l8_pairmap_get(const l8_pairmap *m, int32_t a, int32_t b);

#endif
