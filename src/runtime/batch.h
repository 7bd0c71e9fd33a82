/*
 * Continuous batching and step-wise generation: what a scheduler (llm8 serve) needs to advance
 * many sessions of one model together. A batch engine runs one forward pass for the new tokens of
 * several sessions at once, so every weight matrix is read once per step for all of them (decode
 * is bound by memory bandwidth: N streams cost little more than one); a generation object turns
 * each step's logits into a sampled token and streamed text, with the same sampling, end ids,
 * stop strings and limits as llm8_session_generate.
 */
#ifndef L8_BATCH_H
#define L8_BATCH_H

#include "llm8.h"

/* Compute threads and scratch for batches of up to max_tokens tokens over sessions of one model
 * whose contexts are at most n_ctx tokens. n_threads <= 0: one per physical core. */
typedef struct l8_batch l8_batch;
llm8_status l8_batch_create(llm8_model *model, int32_t n_ctx, int32_t max_tokens, int n_threads, l8_batch **out,
                            char *err, size_t errcap);
void l8_batch_free(l8_batch *b);
int32_t l8_batch_max_tokens(const l8_batch *b);

typedef struct l8_batch_item {
    llm8_session *s;     /* distinct sessions of the batch's model (n_ctx <= the batch's n_ctx) */
    const int32_t *ids;  /* n >= 1 ids appended to s's context */
    int32_t n;
    float *logits;       /* NULL, or n_vocab floats: the logits of the last of the n positions */
} l8_batch_item;

/* One forward pass for all the items (sum of n <= max_tokens). Every item is checked (ids in
 * range, room in the context) before anything runs; on failure no session changes and err names
 * the item and the problem. The sessions' last logits are updated as llm8_session_eval does. */
llm8_status l8_batch_eval(l8_batch *b, const l8_batch_item *items, int n_items, char *err, size_t errcap);

/* A generation on a session, advanced one token at a time by its caller: the caller puts the
 * prompt in the session's context (l8_batch_eval or llm8_session_eval), then alternates
 * l8_gen_step (logits in, next token out) with evaluating that token. */
typedef struct l8_gen l8_gen;

/* params and its stop strings are copied. The sampler's penalties and the text decoder start
 * from the session's current context. */
llm8_status l8_gen_create(llm8_session *s, const llm8_generate_params *params, llm8_text_callback cb, void *user,
                          l8_gen **out);
/* Takes the logits of the context's last position (modified by the penalties): samples a token,
 * streams its text to cb, and checks end ids, stop strings, max_tokens, the callback's answer and
 * the room left in the context. Returns true with *next set to the token to evaluate next; false
 * when the generation has ended (its remaining text flushed to cb; l8_gen_stats says why). */
bool l8_gen_step(l8_gen *g, float *logits, int32_t *next);
/* generated_tokens and stop_reason (prefill/decode times are the caller's to measure). */
void l8_gen_stats(const l8_gen *g, llm8_run_stats *stats);
void l8_gen_free(l8_gen *g);

#endif
