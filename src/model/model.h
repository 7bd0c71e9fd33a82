/* The Llama transformer's weights and hyper-parameters, as every backend sees them. */
#ifndef L8_MODEL_H
#define L8_MODEL_H

#include "llm8.h"
#include <stdbool.h>

#include "model/tensor.h"

typedef struct l8_layer {
    l8_tensor attn_norm; /* (n_embd) */
    l8_tensor wq;        /* (n_head * head_dim, n_embd) */
    l8_tensor wk;        /* (n_kv_head * head_dim, n_embd) */
    l8_tensor wv;        /* (n_kv_head * head_dim, n_embd) */
    l8_tensor wo;        /* (n_embd, n_head * head_dim) */
    l8_tensor ffn_norm;  /* (n_embd) */
    l8_tensor w_gate;    /* (n_ff, n_embd) */
    l8_tensor w_up;      /* (n_ff, n_embd) */
    l8_tensor w_down;    /* (n_embd, n_ff) */
} l8_layer;

typedef struct l8_weights {
    l8_tensor tok_embd;  /* (n_vocab, n_embd) */
    l8_tensor norm;      /* (n_embd) */
    l8_tensor output;    /* (n_vocab, n_embd); the same data as tok_embd when tied */
    l8_layer *layers;    /* n_layer entries, owned */
    const struct l8_rot *ffn_rot; /* NULL, or the rotation applied online to the down
                                   * projection's input of a rotated model (quant/rotate.h) */
} l8_weights;

/* Quantized models keep an f16 KV cache; float models an f32 one, so that the reference path
 * stays exact. */
static inline bool l8_weights_quantized(const l8_weights *w) {
    return w->layers && (w->layers[0].wq.dtype == L8_DTYPE_Q8 || w->layers[0].wq.dtype == L8_DTYPE_Q4);
}

#endif
