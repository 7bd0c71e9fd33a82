/* Binds the tensors of a Hugging Face Llama checkpoint to l8_weights, checking every shape. */
#ifndef L8_HF_WEIGHTS_H
#define L8_HF_WEIGHTS_H

#include <stdint.h>

#include "format/safetensors.h"
#include "model/model.h"
#include "util/error.h"

/*
 * Looks up model.embed_tokens.weight, model.norm.weight, lm_head.weight (or, when
 * info->tied_embeddings, the embedding again: transformers ties them even if a checkpoint also
 * stores lm_head) and the nine tensors of each model.layers.N. Every shape must equal what info
 * implies and every dtype must be F32, F16 or BF16. Tensors the model does not use are ignored.
 * The tensors point into st's mappings, so st must outlive w. On failure w is left zeroed and
 * owns nothing.
 */
llm8_status l8_hf_bind_weights(const l8_safetensors *st, const llm8_model_info *info, l8_weights *w, l8_err *e);

/* Frees the layers array (the tensor data belongs to the safetensors mapping). Safe on a zeroed w. */
void l8_weights_free(l8_weights *w);

/*
 * Totals over the bound tensors, the tied output counted once: element count, data bytes, and the
 * dtype name of the per-layer matrices ("f32", "f16", "bf16", or "mixed"), a static string, for
 * llm8_model_info's n_params, weight_bytes and dtype.
 */
void l8_weights_stats(const l8_weights *w, const llm8_model_info *info, uint64_t *n_params, uint64_t *bytes,
                      const char **dtype_name);

#endif
