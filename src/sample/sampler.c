/*
 * Sampling in llama.cpp's default order: repetition/frequency/presence penalties over a window
 * of recent tokens, then top-k, top-p (on the untempered distribution), min-p, temperature,
 * and a draw from a seeded xoshiro256** generator. Temperature <= 0 means argmax.
 */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double l8_sampler_uniform(l8_sampler *s) { return (double)(next_u64(s->rng) >> 11) * 0x1.0p-53; }

llm8_status l8_sampler_init(l8_sampler *s, const llm8_sampling_params *p, int32_t n_vocab, int32_t n_ctx) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    uint64_t seed = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
    s->cap = p->penalty_last_n < 0 ? n_ctx : p->penalty_last_n;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->history = s->cap > 0 ? malloc((size_t)s->cap * sizeof(int32_t)) : NULL;
    if (!s->cand || !s->counts || (s->cap > 0 && !s->history)) {
        l8_sampler_free(s);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    return LLM8_STATUS_OK;
}

void l8_sampler_free(l8_sampler *s) {
    free(s->cand);
    free(s->counts);
    free(s->history);
    memset(s, 0, sizeof *s);
}

void l8_sampler_accept(l8_sampler *s, int32_t id) {
    if (s->cap <= 0) return;
    if (s->n_history < s->cap) {
        s->history[s->n_history++] = id;
        return;
    }
    s->history[s->head] = id; /* window full: overwrite the oldest */
    s->head = (s->head + 1) % s->cap;
}

static void apply_penalties(l8_sampler *s, float *logits) {
    const llm8_sampling_params *p = &s->p;
    if (s->n_history == 0) return;
    if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f) return;
    for (int32_t i = 0; i < s->n_history; i++) {
        int32_t id = s->history[i];
        if (id >= 0 && id < s->n_vocab) s->counts[id]++;
    }
    for (int32_t i = 0; i < s->n_history; i++) {
        int32_t id = s->history[i];
        if (id < 0 || id >= s->n_vocab || s->counts[id] == 0) continue;
        float l = logits[id];
        if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f)
            l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)s->counts[id] * p->frequency_penalty + p->presence_penalty;
        logits[id] = l;
        s->counts[id] = 0; /* once per distinct token; also resets counts for the next call */
    }
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const l8_candidate *)a)->logit, y = ((const l8_candidate *)b)->logit;
    if (x > y) return -1;
    if (x < y) return 1;
    int32_t i = ((const l8_candidate *)a)->id, j = ((const l8_candidate *)b)->id;
    return (i > j) - (i < j); /* ties: lower id first, so results never depend on qsort */
}

/* Restores the heap below j: a parent compares worse than (is "greater" in cmp_desc than) none
 * of its children, so the root is the worst kept candidate. */
static void sift_down(l8_candidate *c, int32_t k, int32_t j) {
    for (;;) {
        int32_t a = 2 * j + 1, b = a + 1, m = j;
        if (a < k && cmp_desc(&c[a], &c[m]) > 0) m = a;
        if (b < k && cmp_desc(&c[b], &c[m]) > 0) m = b;
        if (m == j) return;
        l8_candidate t = c[j];
        c[j] = c[m];
        c[m] = t;
        j = m;
    }
}

/* Keeps the k best candidates of n, sorted best first; returns k. A binary min-heap of size k
 * makes this O(n log k) instead of a full sort of the vocabulary. */
static int32_t top_k_select(l8_candidate *c, int32_t n, int32_t k) {
    if (k <= 0 || k >= n) {
        qsort(c, (size_t)n, sizeof *c, cmp_desc);
        return n;
    }
    /* heap in c[0..k): the root is the worst kept candidate */
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cmp_desc(&c[i], &c[0]) >= 0) continue; /* not better than the worst kept */
        l8_candidate out = c[0]; /* swap, not overwrite: the array stays a permutation */
        c[0] = c[i];
        c[i] = out;
        sift_down(c, k, 0);
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
    return k;
}

int32_t l8_sampler_sample(l8_sampler *s, float *logits) {
    const llm8_sampling_params *p = &s->p;
    int32_t n = s->n_vocab;
    apply_penalties(s, logits);

    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    for (int32_t i = 0; i < n; i++) s->cand[i] = (l8_candidate){i, logits[i]};
    /* NaN logits would poison every comparison: treat them as impossible */
    for (int32_t i = 0; i < n; i++)
        if (isnan(s->cand[i].logit)) s->cand[i].logit = -INFINITY;
    double top_p_norm = 0.0; /* the mass top-p is a fraction of: the candidates it chooses among */
    bool sorted = true;
    if (p->top_k > 0) {
        n = top_k_select(s->cand, n, p->top_k);
    } else if (p->top_p > 0.0f && p->top_p < 1.0f) {
        /* Top-p needs the best candidates in order only until their mass reaches p: select the
         * best 64, then 256, ... (a heap each time) instead of sorting 128k logits. */
        double mx = -INFINITY, total = 0.0;
        for (int32_t i = 0; i < n; i++) mx = s->cand[i].logit > mx ? s->cand[i].logit : mx;
        for (int32_t i = 0; i < n; i++) total += exp((double)s->cand[i].logit - mx);
        for (int32_t k = 64;; k *= 4) {
            if (k >= n) {
                n = top_k_select(s->cand, n, n);
                break;
            }
            top_k_select(s->cand, n, k);
            double mass = 0.0;
            for (int32_t i = 0; i < k; i++) mass += exp((double)s->cand[i].logit - mx);
            if (mass >= p->top_p * total) {
                n = k;
                break;
            }
        }
        top_p_norm = total;
    } else {
        sorted = false; /* sampling from the whole distribution needs no order */
    }
    /* probabilities of the kept candidates, untempered, for top-p and min-p */
    double maxl = s->cand[0].logit, sum = 0.0;
    if (!sorted)
        for (int32_t i = 1; i < n; i++) maxl = s->cand[i].logit > maxl ? s->cand[i].logit : maxl;
    for (int32_t i = 0; i < n; i++) sum += exp((double)s->cand[i].logit - maxl);
    if (top_p_norm == 0.0) top_p_norm = sum;
    if (sorted && p->top_p > 0.0f && p->top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t i = 0; i < n; i++) {
            cum += exp((double)s->cand[i].logit - maxl) / top_p_norm;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        /* keep tokens whose probability is at least min_p times the best one's */
        double floor_logit = maxl + log((double)p->min_p);
        int32_t keep = 0;
        for (int32_t i = 0; i < n; i++) /* stable compaction: sorted input stays sorted */
            if (s->cand[i].logit >= floor_logit) s->cand[keep++] = s->cand[i];
        n = keep;
    }

    double total = 0.0;
    for (int32_t i = 0; i < n; i++) total += exp(((double)s->cand[i].logit - maxl) / p->temperature);
    double r = l8_sampler_uniform(s) * total, acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        acc += exp(((double)s->cand[i].logit - maxl) / p->temperature);
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
