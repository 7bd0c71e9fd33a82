/* Token sampling: penalties, then greedy or top-k / top-p / min-p / temperature, llama.cpp's order. */
#ifndef L8_SAMPLER_H
#define L8_SAMPLER_H

#include "llm8.h"

typedef struct l8_candidate {
    int32_t id;
    float logit;
} l8_candidate;

typedef struct l8_sampler {
    llm8_sampling_params p;
    int32_t n_vocab;
    uint64_t rng[4];       /* xoshiro256** state */
    int32_t *history;      /* (cap) ring of the tokens the penalties look at */
    int32_t n_history, cap, head;
    int32_t *counts;       /* (n_vocab) occurrences inside the window, rebuilt per sample */
    l8_candidate *cand;    /* (n_vocab) */
} l8_sampler;

/* n_ctx bounds the penalty window when penalty_last_n is -1 ("the whole context"). */
llm8_status l8_sampler_init(l8_sampler *s, const llm8_sampling_params *p, int32_t n_vocab, int32_t n_ctx);
void l8_sampler_free(l8_sampler *s);
/* Records a token of the context (prompt or generated) for the penalties. */
void l8_sampler_accept(l8_sampler *s, int32_t id);
/* Picks the next token from logits (n_vocab floats; modified in place by the penalties). */
int32_t l8_sampler_sample(l8_sampler *s, float *logits);

/* The next uniform double in [0, 1) of the sampler's generator (exposed for tests). */
double l8_sampler_uniform(l8_sampler *s);

#endif
