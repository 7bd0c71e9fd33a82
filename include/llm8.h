/*
 * llm8.h — the public C API of llm8, a CPU runtime for Llama-family models.
 *
 * Ownership: every object returned through an out-pointer belongs to the caller and is released
 * with its matching _free function. A model (weights mapped read-only) may be shared by any
 * number of threads; a session (KV cache, sampler state, last error) is used by one thread at a
 * time. Strings passed in are copied when they must outlive the call; strings returned are
 * borrowed and live as long as the object that returned them.
 *
 * Errors: every function that can fail returns an llm8_status. Loaders write a one-line message
 * into the caller's buffer (err, errcap; both may be 0); sessions keep their last message,
 * read with llm8_session_last_error(). The library never calls exit() and never prints.
 */
#ifndef LLM8_H
#define LLM8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LLM8_API __declspec(dllexport)
#else
#define LLM8_API __attribute__((visibility("default")))
#endif

#define LLM8_VERSION_MAJOR 0
#define LLM8_VERSION_MINOR 1
#define LLM8_VERSION_PATCH 0

typedef enum llm8_status {
    LLM8_STATUS_OK = 0,
    LLM8_STATUS_INVALID_ARGUMENT, /* a null pointer, a bad id, an out-of-range parameter */
    LLM8_STATUS_IO_ERROR,         /* a file could not be opened, read, mapped or written */
    LLM8_STATUS_BAD_FORMAT,       /* a file's contents are corrupt, truncated or inconsistent */
    LLM8_STATUS_UNSUPPORTED,      /* valid input that llm8 does not handle (architecture, dtype) */
    LLM8_STATUS_OUT_OF_MEMORY,
    LLM8_STATUS_CONTEXT_FULL,     /* the tokens do not fit in the session's context */
    LLM8_STATUS_ABORTED,          /* stopped by the caller */
} llm8_status;

/* A static English name for a status ("ok", "bad format", ...); never NULL. */
LLM8_API const char *llm8_status_to_string(llm8_status status);
LLM8_API const char *llm8_version(void);

/* ---------------------------------------------------------------- tokenizer */

typedef struct llm8_tokenizer llm8_tokenizer;

enum {
    LLM8_TOKENIZE_ADD_BOS = 1u << 0,       /* prepend BOS if the tokenizer's config asks for it */
    LLM8_TOKENIZE_PARSE_SPECIAL = 1u << 1, /* match added/special token strings in the text */
};

/* Loads tokenizer.json and tokenizer_config.json (optional) from a folder. */
LLM8_API llm8_status llm8_tokenizer_load(const char *dir, llm8_tokenizer **out, char *err, size_t errcap);
LLM8_API void llm8_tokenizer_free(llm8_tokenizer *tok);

/* Encodes len bytes of UTF-8 text (NUL bytes allowed). Writes at most cap ids; *n_ids receives
 * the full count, so a call with cap too small returns LLM8_STATUS_INVALID_ARGUMENT and the size
 * to retry with. Invalid UTF-8 gives LLM8_STATUS_INVALID_ARGUMENT. */
LLM8_API llm8_status llm8_tokenize(const llm8_tokenizer *tok, const char *text, size_t len, uint32_t flags,
                                   int32_t *ids, size_t cap, size_t *n_ids);
LLM8_API int32_t llm8_tokenizer_n_vocab(const llm8_tokenizer *tok);
LLM8_API int32_t llm8_tokenizer_bos(const llm8_tokenizer *tok); /* -1 when there is none */
LLM8_API int32_t llm8_tokenizer_eos(const llm8_tokenizer *tok); /* -1 when there is none */
LLM8_API bool llm8_tokenizer_is_special(const llm8_tokenizer *tok, int32_t id);
/* The token's vocabulary string as stored (e.g. "▁the", "Ġthe", "<0x0A>"); NULL for a bad id. */
LLM8_API const char *llm8_tokenizer_piece(const llm8_tokenizer *tok, int32_t id);

/* Streaming decoder: text comes out only in whole UTF-8 characters, so a token that ends inside
 * a character yields nothing until a later token completes it. */
typedef struct llm8_decoder llm8_decoder;
LLM8_API llm8_status llm8_decoder_create(const llm8_tokenizer *tok, bool skip_special, llm8_decoder **out);
LLM8_API void llm8_decoder_free(llm8_decoder *dec);
/* Feeds one token; *text and *len receive the newly completed text (borrowed until the next call). */
LLM8_API llm8_status llm8_decoder_push(llm8_decoder *dec, int32_t id, const char **text, size_t *len);
/* Ends the stream: bytes still pending (an incomplete character) come out as U+FFFD. */
LLM8_API llm8_status llm8_decoder_flush(llm8_decoder *dec, const char **text, size_t *len);
/* True while bytes of an incomplete character are held back. */
LLM8_API bool llm8_decoder_pending(const llm8_decoder *dec);

/* ---------------------------------------------------------------- model */

typedef struct llm8_model llm8_model;

typedef struct llm8_model_info {
    char architecture[32];   /* "llama" */
    char dtype[16];          /* weight storage of the linear layers: "f32", "bf16", "f16", ... */
    int32_t n_vocab, n_embd, n_ff, n_layer, n_head, n_kv_head, head_dim;
    int32_t n_ctx_train;     /* max_position_embeddings */
    float rms_norm_eps, rope_theta;
    char rope_scaling[16];   /* "none" or "llama3" */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int32_t rope_original_ctx;
    bool tied_embeddings;
    int32_t bos_id;          /* -1 if none */
    int32_t eos_ids[8];      /* from config.json and generation_config.json, deduplicated */
    int32_t n_eos;
    float default_temperature, default_top_p; /* generation_config.json, or 0.8 / 0.95 */
    uint64_t n_params;
    uint64_t weight_bytes;   /* bytes of tensor data mapped */
    uint64_t decode_bytes;   /* weight bytes one decoded token reads (all but the embedding table) */
    uint64_t decode_params;  /* weights one token multiplies (all but the embedding table) */
} llm8_model_info;

/* Loads a Hugging Face model folder (config.json, model.safetensors or shards with
 * model.safetensors.index.json, tokenizer.json, tokenizer_config.json, generation_config.json).
 * Weights are mapped, not copied. */
LLM8_API llm8_status llm8_model_load(const char *path, llm8_model **out, char *err, size_t errcap);
LLM8_API void llm8_model_free(llm8_model *model);
LLM8_API const llm8_model_info *llm8_model_get_info(const llm8_model *model);
/* The model's tokenizer (borrowed; lives as long as the model). */
LLM8_API const llm8_tokenizer *llm8_model_tokenizer(const llm8_model *model);

/* ---------------------------------------------------------------- sessions and generation */

typedef struct llm8_session llm8_session;

typedef struct llm8_session_params {
    int32_t n_ctx;            /* context length in tokens; 0 = min(max_position_embeddings, 4096) */
    int32_t n_threads;        /* compute threads; 0 = one per physical core */
    bool reference;           /* run the scalar f32 reference transformer (the oracle; slow) */
} llm8_session_params;
LLM8_API llm8_session_params llm8_session_default_params(void);

LLM8_API llm8_status llm8_session_create(llm8_model *model, const llm8_session_params *params,
                                         llm8_session **out, char *err, size_t errcap);
LLM8_API void llm8_session_free(llm8_session *s);
/* The message of the session's last failure ("" if none). */
LLM8_API const char *llm8_session_last_error(const llm8_session *s);
/* Forgets every token in the context. */
LLM8_API void llm8_session_reset(llm8_session *s);
LLM8_API int32_t llm8_session_n_past(const llm8_session *s);
LLM8_API int32_t llm8_session_n_ctx(const llm8_session *s);
/* The ids in the context (borrowed, valid until the session changes); *n receives their count. */
LLM8_API const int32_t *llm8_session_tokens(const llm8_session *s, int32_t *n);

/* What a session of model with params would use, in bytes, once its context is full: callers
 * compare it with a budget before llm8_session_create, which allocates (lazily) at once. */
typedef struct llm8_memory_estimate {
    int32_t n_ctx;      /* the context the estimate is for (params->n_ctx, or its default) */
    uint64_t weights;   /* the model's mapped weights (every byte is read by each token) */
    uint64_t kv_cache;  /* keys and values of n_ctx positions */
    uint64_t scratch;   /* the forward pass's buffers (for the session's threads), logits, ids */
    uint64_t total;     /* the sum; weights are shared by every session of the model */
} llm8_memory_estimate;
/* INVALID_ARGUMENT for a null model or out, or a context the session would refuse. */
LLM8_API llm8_status llm8_session_memory_estimate(const llm8_model *model, const llm8_session_params *params,
                                                  llm8_memory_estimate *out);

/* Appends ids to the context and runs them through the model in one pass. When logits is not
 * NULL it receives n_vocab floats for the last position; with all_logits, n * n_vocab floats,
 * one row per position. */
LLM8_API llm8_status llm8_session_eval(llm8_session *s, const int32_t *ids, size_t n, float *logits,
                                       bool all_logits);

/* The general form: ids or embeddings in (RKLLM's token and embedding inputs), logits and/or the
 * last layer's hidden states (after the final norm, n x n_embd: embeddings for retrieval or
 * scoring) out. Embedding positions appear as -1 in llm8_session_tokens. */
typedef struct llm8_eval_io {
    const int32_t *ids;   /* n token ids, or NULL when embd is given */
    const float *embd;    /* n x n_embd input embeddings, or NULL */
    size_t n;
    float *logits;        /* NULL, n_vocab floats (last position) or n x n_vocab with all_logits */
    bool all_logits;
    float *hidden;        /* NULL or n x n_embd */
} llm8_eval_io;
LLM8_API llm8_status llm8_session_eval_ex(llm8_session *s, const llm8_eval_io *io);

typedef struct llm8_sampling_params {
    float temperature;        /* <= 0: greedy */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repeat_penalty;     /* 1: off (divides positive logits, multiplies negative ones) */
    float frequency_penalty;  /* 0: off (subtracts count * penalty) */
    float presence_penalty;   /* 0: off (subtracts penalty once per seen token) */
    int32_t penalty_last_n;   /* window of past tokens the penalties look at; 0: off, -1: context */
    uint64_t seed;
} llm8_sampling_params;
LLM8_API llm8_sampling_params llm8_sampling_default_params(void);

/* Called with each piece of generated text (whole UTF-8 characters). Return false to stop. */
typedef bool (*llm8_text_callback)(void *user, const char *text, size_t len, int32_t token);

typedef enum llm8_stop_reason {
    LLM8_STOP_NONE = 0,
    LLM8_STOP_EOS,         /* an end-of-sequence id was sampled */
    LLM8_STOP_STRING,      /* a stop string appeared in the output */
    LLM8_STOP_LENGTH,      /* max_tokens reached */
    LLM8_STOP_CALLBACK,    /* the callback returned false */
    LLM8_STOP_CONTEXT,     /* the context is full */
} llm8_stop_reason;

typedef struct llm8_generate_params {
    int32_t max_tokens;           /* < 0: until the context is full */
    bool ignore_eos;              /* keep generating through end-of-sequence ids */
    bool add_bos;                 /* tokenize the prompt with BOS (when the tokenizer adds one) */
    bool parse_special;           /* match special-token strings in the prompt */
    const char *const *stop;      /* stop strings (the text up to them is emitted, not them) */
    size_t n_stop;
    /* When the context fills: < 0 (the default) ends the run with LLM8_STOP_CONTEXT; >= 0 keeps
     * the first n_keep tokens (a system prompt, say), drops the older half of the rest and goes on
     * (llama.cpp's --keep). The kept tokens are evaluated again, so the result is exactly what a
     * fresh run on the shortened context gives. Must be below n_ctx / 2. */
    int32_t n_keep;
    llm8_sampling_params sampling;
} llm8_generate_params;
LLM8_API llm8_generate_params llm8_generate_default_params(void);

typedef struct llm8_run_stats {
    int32_t prompt_tokens;
    double prefill_ms;
    int32_t generated_tokens;
    double decode_ms;
    llm8_stop_reason stop_reason;
} llm8_run_stats;

/* Tokenizes prompt (UTF-8, len bytes), appends it to the context, and generates. stats may be NULL. */
LLM8_API llm8_status llm8_session_generate(llm8_session *s, const char *prompt, size_t len,
                                           const llm8_generate_params *params, llm8_text_callback cb,
                                           void *user, llm8_run_stats *stats);
/* The same from token ids. */
LLM8_API llm8_status llm8_session_generate_ids(llm8_session *s, const int32_t *ids, size_t n,
                                               const llm8_generate_params *params, llm8_text_callback cb,
                                               void *user, llm8_run_stats *stats);

/* ---------------------------------------------------------------- saved state */

/* Writes the session's context (token ids, KV cache, conversation) to path: versioned, checked
 * against the model on load, written to path.tmp and renamed, so a failed save never leaves a
 * partial file under the final name. The RKLLM prompt cache is this. */
LLM8_API llm8_status llm8_session_save(llm8_session *s, const char *path);
/* Replaces the session's context with a saved one, so that the next run continues after it
 * without prefilling it. Fails (context unchanged) on a file from another model, a larger
 * context than the session's, or a damaged file. */
LLM8_API llm8_status llm8_session_load(llm8_session *s, const char *path);

/* ---------------------------------------------------------------- chat */

/* A session keeps a conversation. Each turn renders the whole conversation with the model's
 * chat template (tokenizer_config.json; a plain "User:/Assistant:" format for models without
 * one), keeps the KV cache of the longest common prefix with what the context already holds and
 * prefills only the rest, then appends the answer to the conversation. */

/* Sets (text) or removes (NULL) the system message; the conversation starts over. */
LLM8_API llm8_status llm8_session_set_system(llm8_session *s, const char *system);
/* One turn: the user's message in, the assistant's answer streamed to cb (params as for
 * generation; end tokens stop it). The answer is in the history afterwards, even when aborted
 * or stopped by length (what was generated). stats->prompt_tokens counts the tokens prefilled.
 * A turn whose conversation does not fit the context is refused (LLM8_STATUS_CONTEXT_FULL, the
 * conversation unchanged) unless params->n_keep >= 0 (context shift): then the oldest exchanges
 * (a user message and the answers after it; never the system message) leave the conversation
 * until its rendering leaves a quarter of the context, or max_tokens if less, for the answer,
 * and an answer that still fills the context keeps at least the system message's tokens. */
LLM8_API llm8_status llm8_session_chat(llm8_session *s, const char *user_message, const llm8_generate_params *params,
                                       llm8_text_callback cb, void *user, llm8_run_stats *stats);
/* Forgets the conversation (and the context), keeping the system message or not. */
LLM8_API void llm8_session_clear_history(llm8_session *s, bool keep_system);
/* Number of messages in the conversation, the system message included. */
LLM8_API int32_t llm8_session_n_messages(const llm8_session *s);

/* ---------------------------------------------------------------- run control */

/* Asks the session's running generation (from any thread) to stop; it returns
 * LLM8_STATUS_ABORTED within one decode step (or one prefill chunk). Harmless when idle. */
LLM8_API void llm8_session_abort(llm8_session *s);
/* True while a generation runs on the session (synchronous or asynchronous). */
LLM8_API bool llm8_session_is_running(const llm8_session *s);

/* Called once when an asynchronous generation ends, on its worker thread. */
typedef void (*llm8_done_callback)(void *user, llm8_status status, const llm8_run_stats *stats);

/* llm8_session_generate on a worker thread: returns at once (prompt, params and stop strings
 * are copied); cb and done run on the worker. LLM8_STATUS_INVALID_ARGUMENT if the session is
 * already running. Use llm8_session_wait before the next run or before freeing (free also
 * aborts and waits). */
LLM8_API llm8_status llm8_session_generate_async(llm8_session *s, const char *prompt, size_t len,
                                                 const llm8_generate_params *params, llm8_text_callback cb,
                                                 llm8_done_callback done, void *user);
/* Waits for the asynchronous generation to end and returns its status (OK when none ran). */
LLM8_API llm8_status llm8_session_wait(llm8_session *s);

/* ---------------------------------------------------------------- LoRA adapters */

/* A PEFT LoRA adapter (a folder with adapter_config.json and adapter_model.safetensors; targets
 * among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) loaded for one model. A
 * session that chooses it adds scale * (alpha / r) * B (A x) to each targeted projection, in f32,
 * on top of the model's own (possibly quantized) weights: the model is not modified, so any
 * number of adapters and sessions share it. For a rotated llm8 file the matrices are moved into
 * the file's basis at load, so the result is that of the unrotated model with the adapter.
 * An adapter is read-only once loaded (any number of sessions and threads may use it); free it
 * after the sessions that use it and before its model. */
typedef struct llm8_lora llm8_lora;

enum {
    LLM8_LORA_Q_PROJ = 1u << 0,
    LLM8_LORA_K_PROJ = 1u << 1,
    LLM8_LORA_V_PROJ = 1u << 2,
    LLM8_LORA_O_PROJ = 1u << 3,
    LLM8_LORA_GATE_PROJ = 1u << 4,
    LLM8_LORA_UP_PROJ = 1u << 5,
    LLM8_LORA_DOWN_PROJ = 1u << 6,
};

typedef struct llm8_lora_info {
    int32_t rank;       /* r */
    float alpha;        /* lora_alpha */
    float scaling;      /* alpha / r, or alpha / sqrt(r) with use_rslora */
    uint32_t targets;   /* LLM8_LORA_*_PROJ bits */
    int32_t n_layers;   /* layers adapted (layers_to_transform, or all) */
} llm8_lora_info;

/* Reads the adapter folder at path for model. A bad adapter (missing file, invalid JSON, an
 * unknown target module, a rank other than r, shapes that do not fit the model, DoRA and other
 * unsupported options) fails with a message naming the file and the problem. */
LLM8_API llm8_status llm8_lora_load(const llm8_model *model, const char *path, llm8_lora **out, char *err,
                                    size_t errcap);
LLM8_API void llm8_lora_free(llm8_lora *lora);
LLM8_API const llm8_lora_info *llm8_lora_get_info(const llm8_lora *lora);

/* Chooses the adapter the session's next evaluations and runs apply: lora (NULL: none, the
 * default) with scale multiplying its alpha / r (1: as trained; 0: no effect, the base model's
 * results exactly). Tokens already in the context keep the keys and values computed under the
 * previous choice; llm8_session_reset (or clear_history) starts clean. INVALID_ARGUMENT for an
 * adapter loaded for another model, a scale that is not finite, or while the session runs. */
LLM8_API llm8_status llm8_session_set_lora(llm8_session *s, const llm8_lora *lora, float scale);

#ifdef __cplusplus
}
#endif

#endif /* LLM8_H */
