/*
 * Where the converter reads a model from: a Hugging Face folder, a llama.cpp GGUF file, or a
 * random generator. Every source yields the same thing — hyper-parameters, the tokenizer as
 * Hugging Face JSON text, and each weight as f32 rows in Hugging Face orientation and order
 * ([out, in]; q/k rows in rotate_half order) — read a slice at a time so that conversion runs
 * in bounded memory.
 */
#ifndef L8_SOURCE_H
#define L8_SOURCE_H

#include "llm8.h"
#include "quant/rotate.h"
#include "util/error.h"

typedef enum l8_role {
    L8_ROLE_TOK_EMBD = 0, /* (n_vocab, n_embd) */
    L8_ROLE_OUTPUT_NORM,  /* (n_embd) */
    L8_ROLE_OUTPUT,       /* (n_vocab, n_embd); a tied model's source returns the embedding */
    L8_ROLE_ATTN_NORM,    /* per layer: (n_embd) */
    L8_ROLE_WQ,           /* (n_head * head_dim, n_embd) */
    L8_ROLE_WK,           /* (n_kv_head * head_dim, n_embd) */
    L8_ROLE_WV,           /* (n_kv_head * head_dim, n_embd) */
    L8_ROLE_WO,           /* (n_embd, n_head * head_dim) */
    L8_ROLE_FFN_NORM,     /* (n_embd) */
    L8_ROLE_W_GATE,       /* (n_ff, n_embd) */
    L8_ROLE_W_UP,         /* (n_ff, n_embd) */
    L8_ROLE_W_DOWN,       /* (n_embd, n_ff) */
    L8_ROLE_COUNT
} l8_role;

/* The shape [rows, cols] of a role under info (cols = 0 for vectors: rows elements). */
void l8_role_shape(l8_role role, const llm8_model_info *info, int64_t *rows, int64_t *cols);
bool l8_role_per_layer(l8_role role);

typedef struct l8_source l8_source;
struct l8_source {
    llm8_model_info info;         /* dtype names the source's storage ("bf16", "q8_0", ...) */
    char *tokenizer_json;         /* owned, NUL-terminated */
    size_t tokenizer_json_len;
    char *tokenizer_config_json;  /* owned; NULL when the source has none */
    size_t tokenizer_config_json_len;
    float *rope_freqs;            /* owned; (head_dim / 2) llama.cpp-style divisors of the RoPE
                                   * frequencies (llama3 scaling precomputed), or NULL: computed
                                   * from info by l8_rope_init */
    char *description;            /* owned; e.g. "Hugging Face folder DIR (bf16)" for llm8.source */
    float *final_norm;            /* owned; (n_embd) the final RMSNorm weight a rotated source folded
                                   * into the head (to map hidden states back), else NULL */
    float *layer_norms;           /* owned; (2, n_layer, n_embd) the attention then the MLP RMSNorm
                                   * weights a rotated source folded into q/k/v and gate/up (so that
                                   * LoRA adapters can be folded alike at run time), else NULL */
    const l8_rot *rot_embd;       /* rotations a rotated source applied (l8_source_rotate), else NULL: */
    const l8_rot *rot_ffn;        /* the residual stream's (folded) and the down projection input's */
    /* Reads rows [r0, r0 + n) of a weight into out (n x cols f32; a vector: r0 = 0, n = rows). */
    llm8_status (*read_rows)(l8_source *src, l8_role role, int32_t layer, int64_t r0, int64_t n, float *out,
                             l8_err *e);
    void (*close)(l8_source *src); /* frees impl (not the common fields) */
    void *impl;
};

/* Reads DIR/tokenizer.json (and tokenizer_config.json when present) into src and checks that
 * they parse and fit src->info's vocabulary. */
llm8_status l8_source_read_tokenizer(l8_source *src, const char *dir, l8_err *e);

/* Frees a source: its impl through close, then the common fields and the struct. */
void l8_source_free(l8_source *src);

llm8_status l8_source_open_hf(const char *dir, l8_source **out, l8_err *e);
llm8_status l8_source_open_llamacpp_gguf(const char *path, l8_source **out, l8_err *e);

/* Wraps inner (taking ownership) in a source whose weights are rotated (quant/rotate.h): the
 * residual stream by T1 with the RMSNorm weights folded into the following matrices (norms
 * become ones, the head is untied), and the down projection's input by T2, which the runtime
 * applies online. The wrapped model computes the same function; its activations have smaller
 * outliers, so int8 quantization loses less. */
llm8_status l8_source_rotate(l8_source *inner, uint64_t seed, l8_source **out, l8_err *e);

/* Wraps inner (taking ownership, also on failure) in a source whose q/k/v/o/gate/up/down weights
 * have the PEFT LoRA adapter in the folder lora_dir merged: W' = W + scale * (alpha / r) * B A,
 * in f32, before any rotation or quantization. Errors name the adapter's problem (src/lora). */
llm8_status l8_source_lora(l8_source *inner, const char *lora_dir, float scale, l8_source **out, l8_err *e);

#endif
