/* Hugging Face LlamaForCausalLM configuration: config.json plus the optional generation_config.json. */
#ifndef L8_HF_CONFIG_H
#define L8_HF_CONFIG_H

#include "llm8.h"
#include "util/error.h"

/*
 * Fills every field of *info except dtype, n_params and weight_bytes (zeroed here; the weight
 * binder knows them). Defaults follow transformers' LlamaConfig where it has a safe one
 * (num_key_value_heads = heads, head_dim = hidden/heads, rope_theta 10000, rms_norm_eps 1e-6,
 * max_position_embeddings 2048, tie_word_embeddings false); the sizes that define the network
 * (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size) are required.
 *
 * With no rope scaling, rope_scaling is "none", rope_factor 1, the two frequency factors 1 and
 * rope_original_ctx = n_ctx_train, so code that applies them unconditionally changes nothing.
 *
 * Statuses: IO_ERROR when config.json cannot be read; BAD_FORMAT for invalid JSON, missing or
 * out-of-range fields; UNSUPPORTED for a valid config llm8 cannot run (another architecture, rope
 * scaling other than llama3, attention/MLP biases, an activation other than silu).
 */
llm8_status l8_hf_config_load(const char *dir, llm8_model_info *info, l8_err *e);

#endif
