#include "tokenizer/bpe.h"

#include <stdlib.h>

/* Below this length a rescan of all pairs after each merge is cheaper than keeping a heap. */
#define L8_BPE_SMALL 12

struct l8_bpe_sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends; a merged-away symbol gets id -1 */
};

/* A candidate merge of the symbol at pos with its right neighbour; stale once either side
 * changed, which is detected on pop by comparing the ids. */
struct l8_bpe_cand {
    int32_t rank, pos;
    int32_t left, right, merged;
};

void l8_bpe_scratch_free(l8_bpe_scratch *s) {
    free(s->syms);
    free(s->heap);
    *s = (l8_bpe_scratch){0};
}

static size_t merge_small(const l8_pairmap *merges, int32_t *ids, size_t n) {
    while (n > 1) {
        int32_t best_rank = INT32_MAX, best_id = -1;
        size_t best = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const l8_pairmap_entry *m = l8_pairmap_get(merges, ids[i], ids[i + 1]);
            if (m && m->rank < best_rank) best_rank = m->rank, best_id = m->id, best = i;
        }
        if (best_id < 0) break;
        ids[best] = best_id;
        for (size_t i = best + 1; i + 1 < n; i++) ids[i] = ids[i + 1];
        n--;
    }
    return n;
}

static bool cand_less(const struct l8_bpe_cand *a, const struct l8_bpe_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(l8_bpe_scratch *s, struct l8_bpe_cand c) {
    size_t i = s->heap_len++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = c;
}

static struct l8_bpe_cand heap_pop(l8_bpe_scratch *s) {
    struct l8_bpe_cand top = s->heap[0], last = s->heap[--s->heap_len];
    size_t i = 0, n = s->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!cand_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

static void push_pair(const l8_pairmap *merges, l8_bpe_scratch *s, int32_t pos) {
    struct l8_bpe_sym *sy = s->syms;
    if (pos < 0 || sy[pos].next < 0) return;
    int32_t a = sy[pos].id, b = sy[sy[pos].next].id;
    const l8_pairmap_entry *m = l8_pairmap_get(merges, a, b);
    if (m) heap_push(s, (struct l8_bpe_cand){m->rank, pos, a, b, m->id});
}

size_t l8_bpe_merge(const l8_pairmap *merges, int32_t *ids, size_t n, l8_bpe_scratch *s) {
    if (n <= L8_BPE_SMALL) return merge_small(merges, ids, n);
    if (n > INT32_MAX / 2) return (size_t)-1;
    if (s->syms_cap < n) {
        free(s->syms);
        free(s->heap);
        s->heap = NULL;
        s->syms = malloc(n * sizeof *s->syms);
        /* Each merge pushes at most two candidates, so 3n bounds the heap. */
        s->heap = malloc(3 * n * sizeof *s->heap);
        if (!s->syms || !s->heap) {
            l8_bpe_scratch_free(s);
            return (size_t)-1;
        }
        s->syms_cap = n;
        s->heap_cap = 3 * n;
    }
    struct l8_bpe_sym *sy = s->syms;
    for (size_t i = 0; i < n; i++)
        sy[i] = (struct l8_bpe_sym){ids[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    s->heap_len = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(merges, s, (int32_t)i);
    while (s->heap_len > 0) {
        struct l8_bpe_cand c = heap_pop(s);
        int32_t right = sy[c.pos].next;
        if (sy[c.pos].id != c.left || right < 0 || sy[right].id != c.right) continue;
        sy[c.pos].id = c.merged;
        sy[c.pos].next = sy[right].next;
        if (sy[right].next >= 0) sy[sy[right].next].prev = c.pos;
        sy[right].id = -1;
        push_pair(merges, s, sy[c.pos].prev);
        push_pair(merges, s, c.pos);
    }
    size_t out = 0;
    for (int32_t i = 0; i >= 0; i = sy[i].next) ids[out++] = sy[i].id;
    return out;
}
