/*
 * LoRA adapters (PEFT's LoraConfig, Hu et al. 2021): a projection y = W x gains
 * y += s * B (A x), with A (r x in), B (out x r) and s = scale * alpha / r (alpha / sqrt(r) with
 * rsLoRA). llm8 applies them unmerged, in f32, after the (possibly quantized) base matmul, so one
 * mapped model serves any number of adapters and sessions; `llm8 convert --lora` merges one into
 * the weights instead (src/convert/source_lora.c).
 *
 *   peft.c       reads adapter_config.json + adapter_model.safetensors for a model's shapes
 *   lora.c       llm8_lora_*: loading onto a model (into a rotated file's basis), the per-session
 *                choice, and the scalar application the reference forward pass uses
 *   lora_fast.c  the application on the engine's threads and kernels (forward_fast.c)
 */
#ifndef L8_LORA_H
#define L8_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "llm8.h"
#include "util/error.h"

/* The projections an adapter may target; bit i of a target mask is target i. */
typedef enum l8_lora_target {
    L8_LORA_Q = 0, /* self_attn.q_proj */
    L8_LORA_K,     /* self_attn.k_proj */
    L8_LORA_V,     /* self_attn.v_proj */
    L8_LORA_O,     /* self_attn.o_proj */
    L8_LORA_GATE,  /* mlp.gate_proj */
    L8_LORA_UP,    /* mlp.up_proj */
    L8_LORA_DOWN,  /* mlp.down_proj */
    L8_LORA_N_TARGETS
} l8_lora_target;

/* PEFT's module name ("q_proj", ...) of a target. */
const char *l8_lora_target_name(l8_lora_target t);

/* One adapted projection. B is kept transposed so that adding B h is r axpys over contiguous
 * rows (the kernels' axpy_f32) instead of `out` short dot products. */
typedef struct l8_lora_pair {
    int64_t in, out;
    float *a;  /* (rank, in) row-major; NULL: this projection is not adapted */
    float *bt; /* (rank, out) = B^T */
} l8_lora_pair;

/* An adapter read for a model's shapes, every matrix in f32. */
typedef struct l8_peft {
    int32_t rank, n_layer;
    float alpha, scaling;      /* scaling = alpha / r, or alpha / sqrt(r) with rsLoRA */
    bool rslora;
    uint32_t targets;          /* mask of l8_lora_target */
    int32_t n_layers_adapted;
    l8_lora_pair *pairs;       /* (n_layer, L8_LORA_N_TARGETS) */
    uint64_t fingerprint;      /* FNV-1a of the shape and every matrix as applied (lora.c): saved
                                * session states name the adapter their KV cache was made with */
} l8_peft;

static inline const l8_lora_pair *l8_peft_pair(const l8_peft *p, int32_t layer, l8_lora_target t) {
    return &p->pairs[(size_t)layer * L8_LORA_N_TARGETS + t];
}

/* Reads the PEFT adapter folder dir (adapter_config.json, adapter_model.safetensors with F32,
 * F16 or BF16 tensors) for a model of info's shapes, in the model's original basis. Every
 * problem is an error naming the file and the problem: missing files, bad JSON, an unsupported
 * option (DoRA, biases, fan_in_fan_out, modules_to_save, rank/alpha patterns, a regex
 * target_modules), an unknown target module, a missing or unexpected tensor, a rank that
 * differs from r, a shape that does not fit the model, a non-finite value. */
llm8_status l8_peft_load(const char *dir, const llm8_model_info *info, l8_peft *out, l8_err *e);
void l8_peft_free(l8_peft *p);

/* Rotated llm8 files fold each layer's RMSNorm weights into q/k/v and gate/up; the converter also
 * stores the original weights under these names ([n_layer, n_embd] F32) so that an adapter's A
 * can be folded the same way at load (docs/FORMAT.md). */
#define L8_ROT_ATTN_NORMS "rot_embd.attn_norms"
#define L8_ROT_FFN_NORMS "rot_embd.ffn_norms"

/* An adapter as a model uses it (llm8.h's llm8_lora): the matrices moved into the model's basis. */
struct llm8_lora {
    l8_peft p;
    const llm8_model *model;
    llm8_lora_info info;
};

/* What a forward pass applies: an adapter and its factor s = user scale * scaling. The forward
 * passes find it through l8_kv_cache.lora (model/forward.h). */
typedef struct l8_lora_use {
    const l8_peft *p;
    float s;
} l8_lora_use;

/* y (rows t0..t1-1 of `out` floats) += s * B (A x) (rows of `in` floats) for one projection;
 * nothing when it is not adapted. dot and axpy: kernels of the dispatch table, or NULL for plain
 * C (the reference forward pass). */
typedef float (*l8_lora_dot_fn)(const float *a, const float *b, int64_t n);
typedef void (*l8_lora_axpy_fn)(float *y, float a, const float *x, int64_t n);
void l8_lora_apply(const l8_lora_use *u, int32_t layer, l8_lora_target t, const float *x, float *y, int32_t t0,
                   int32_t t1, l8_lora_dot_fn dot, l8_lora_axpy_fn axpy);

/* The same for a batch of the fast forward pass (model/engine.h): x and y hold the batch's
 * tokens, sequence after sequence; each sequence gets its own cache's adapter (seqs[i].kv->lora),
 * tokens split across e's threads. Nothing runs when no sequence adapts this projection. */
struct l8_engine;
struct l8_seq;
void l8_lora_apply_batch(struct l8_engine *e, const struct l8_seq *seqs, int n_seqs, int32_t layer, l8_lora_target t,
                         const float *x, float *y);

#endif
