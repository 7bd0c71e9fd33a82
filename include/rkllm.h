/*
 * rkllm.h — llm8's implementation of the RKLLM 1.1.1 C API (Rockchip rknn-llm), so that programs
 * written for RKLLM build and run unchanged against llm8 on any CPU.
 *
 * Written from the published interface description: names, enum values and struct layouts match
 * RKLLM 1.1.1 so that existing code compiles as is. Behaviour that differs from Rockchip's
 * library (LoRA adapters are PEFT folders, no multimodal input, no mirostat, is_running's
 * inverted result kept) is listed in docs/RKLLM.md. This header does not depend on llm8.h.
 */
#ifndef LLM8_RKLLM_H
#define LLM8_RKLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define RKLLM_API __declspec(dllexport)
#else
#define RKLLM_API __attribute__((visibility("default")))
#endif

/* An opaque handle to one loaded model and its single inference context. */
typedef void *LLMHandle;

typedef enum {
    RKLLM_RUN_NORMAL = 0,                /* result->text holds the next piece of output */
    RKLLM_RUN_WAITING = 1,               /* output so far ends inside a UTF-8 character */
    RKLLM_RUN_FINISH = 2,                /* the run ended (EOS, length, abort) */
    RKLLM_RUN_ERROR = 3,                 /* the run failed */
    RKLLM_RUN_GET_LAST_HIDDEN_LAYER = 4, /* result->last_hidden_layer holds the hidden states */
} LLMCallState;

typedef enum {
    RKLLM_INPUT_PROMPT = 0,
    RKLLM_INPUT_TOKEN = 1,
    RKLLM_INPUT_EMBED = 2,
    RKLLM_INPUT_MULTIMODAL = 3,
} RKLLMInputType;

typedef enum {
    RKLLM_INFER_GENERATE = 0,
    RKLLM_INFER_GET_LAST_HIDDEN_LAYER = 1,
} RKLLMInferMode;

typedef struct {
    int32_t base_domain_id; /* NPU memory domain on Rockchip; ignored by llm8 */
    uint8_t reserved[112];
} RKLLMExtendParam;

typedef struct {
    const char *model_path;   /* an llm8 .gguf file or a Hugging Face model folder */
    int32_t max_context_len;  /* tokens; clipped to the model's maximum */
    int32_t max_new_tokens;   /* per run; <= 0: until the context is full */
    int32_t top_k;
    float top_p;
    float temperature;
    float repeat_penalty;
    float frequency_penalty;
    float presence_penalty;
    int32_t mirostat;         /* 0, 1 or 2; llm8 ignores it (see docs/RKLLM.md) */
    float mirostat_tau;
    float mirostat_eta;
    bool skip_special_token;
    bool is_async;
    const char *img_start;    /* multimodal markers: unused (no multimodal input in llm8) */
    const char *img_end;
    const char *img_content;
    RKLLMExtendParam extend_param;
} RKLLMParam;

typedef struct {
    const char *lora_adapter_path;
    const char *lora_adapter_name;
    float scale;
} RKLLMLoraAdapter;

typedef struct {
    float *embed;    /* n_tokens x hidden size floats */
    size_t n_tokens;
} RKLLMEmbedInput;

typedef struct {
    int32_t *input_ids;
    size_t n_tokens;
} RKLLMTokenInput;

typedef struct {
    char *prompt;
    float *image_embed;
    size_t n_image_tokens;
} RKLLMMultiModelInput;

typedef struct {
    RKLLMInputType input_type;
    union {
        const char *prompt_input;
        RKLLMEmbedInput embed_input;
        RKLLMTokenInput token_input;
        RKLLMMultiModelInput multimodal_input;
    };
} RKLLMInput;

typedef struct {
    const char *lora_adapter_name;
} RKLLMLoraParam;

typedef struct {
    int save_prompt_cache;         /* 1: save the state after the prompt */
    const char *prompt_cache_path; /* NULL: "./prompt_cache.bin" */
} RKLLMPromptCacheParam;

typedef struct {
    RKLLMInferMode mode;
    RKLLMLoraParam *lora_params;                /* may be NULL */
    RKLLMPromptCacheParam *prompt_cache_params; /* may be NULL */
} RKLLMInferParam;

typedef struct {
    const float *hidden_states; /* num_tokens x embd_size floats, valid during the callback */
    int embd_size;
    int num_tokens;
} RKLLMResultLastHiddenLayer;

typedef struct {
    const char *text;  /* NUL-terminated, valid during the callback */
    int32_t token_id;  /* the token that completed the text; -1 when none */
    RKLLMResultLastHiddenLayer last_hidden_layer;
} RKLLMResult;

typedef void (*LLMResultCallback)(RKLLMResult *result, void *userdata, LLMCallState state);

/* Every function but rkllm_createDefaultParam and rkllm_is_running returns 0 on success and
 * -1 on failure. */
RKLLM_API RKLLMParam rkllm_createDefaultParam(void);
RKLLM_API int rkllm_init(LLMHandle *handle, RKLLMParam *param, LLMResultCallback callback);
/* Loads a LoRA adapter: lora_adapter_path is a PEFT adapter folder (adapter_config.json and
 * adapter_model.safetensors), lora_adapter_name the name runs choose it by
 * (RKLLMInferParam.lora_params), scale its strength (1: as trained). -1 for a bad adapter or a
 * name already loaded. */
RKLLM_API int rkllm_load_lora(LLMHandle handle, RKLLMLoraAdapter *lora_adapter);
RKLLM_API int rkllm_load_prompt_cache(LLMHandle handle, const char *prompt_cache_path);
RKLLM_API int rkllm_release_prompt_cache(LLMHandle handle);
RKLLM_API int rkllm_destroy(LLMHandle handle);
/* One independent turn: the callback streams the output and then gets FINISH or ERROR. */
RKLLM_API int rkllm_run(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params,
                        void *userdata);
/* rkllm_run on a worker thread: returns at once (the input is copied); the callback runs on the
 * worker. */
RKLLM_API int rkllm_run_async(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params,
                              void *userdata);
RKLLM_API int rkllm_abort(LLMHandle handle);
/* As in RKLLM 1.1.1: 0 while a task is running, non-zero otherwise (1 when idle, -1 for a NULL
 * handle). RKLLM 1.3 inverted this; code written for 1.1.1 expects the form here. */
RKLLM_API int rkllm_is_running(LLMHandle handle);

/* ---------------------------------------------------------------- llm8 extensions */

/* The message of the handle's last failure ("" if none); with a NULL handle, the message of the
 * calling thread's last failed rkllm_init. Borrowed; valid until the next call that fails.
 * Not part of RKLLM. */
RKLLM_API const char *rkllm_last_error(LLMHandle handle);

#ifdef __cplusplus
}
#endif

#endif /* LLM8_RKLLM_H */
