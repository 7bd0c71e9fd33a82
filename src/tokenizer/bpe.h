/* BPE merging over token ids: repeatedly merge the adjacent pair with the lowest merge rank. */
#ifndef L8_TOK_BPE_H
#define L8_TOK_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/hashmap.h"

/* Reusable working memory, so one tokenize call does not allocate per pre-token. */
typedef struct l8_bpe_scratch {
    struct l8_bpe_sym *syms;
    size_t syms_cap;
    struct l8_bpe_cand *heap;
    size_t heap_cap, heap_len;
} l8_bpe_scratch;

void l8_bpe_scratch_free(l8_bpe_scratch *s);

/* Merges ids[0..n) in place with the ranks in merges; ties go to the leftmost pair (as in
 * Hugging Face tokenizers). Returns the new count, or (size_t)-1 when out of memory. */
size_t l8_bpe_merge(const l8_pairmap *merges, int32_t *ids, size_t n, l8_bpe_scratch *s);

#endif
