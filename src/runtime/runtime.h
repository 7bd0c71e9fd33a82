/* Internal layout of the public handles, shared by the runtime's files. */
#ifndef L8_RUNTIME_H
#define L8_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>

#include "format/llm8_file.h"
#include "format/safetensors.h"
#include "lora/lora.h"
#include "model/engine.h"
#include "model/forward.h"
#include "model/model.h"

struct llm8_model {
    llm8_model_info info;
    l8_safetensors *st;  /* a Hugging Face folder's mapped weight files, or */
    l8_llm8_file file;   /* an llm8 file's mapping */
    l8_weights w;        /* views into st */
    llm8_tokenizer *tok;
    l8_rope rope;
};

struct llm8_session {
    llm8_model *model;
    int32_t n_ctx;
    l8_kv_cache kv;
    bool reference;      /* use l8_forward_ref instead of the engine */
    l8_engine engine;
    int32_t *tokens;     /* (n_ctx) the ids in the context */
    int32_t n_past;
    float *logits;       /* (n_vocab) of the last evaluated position */
    char last_error[512];
    atomic_bool abort;   /* set by llm8_session_abort, cleared when a run starts */
    atomic_bool running;
    bool has_worker;     /* an asynchronous run's thread is to be joined */
    pthread_t worker;
    llm8_status worker_status;
    struct async_job *job;
    struct json_t *messages; /* the conversation (a JSON array), owned */
    char *date_string;       /* fixed for the chat templates of this session (NULL: today) */
    l8_lora_use lora;        /* the chosen adapter (llm8_session_set_lora); kv.lora points here
                              * while one with a non-zero factor is chosen */
};

/* The generation loop on ids appended to the context, without the running/abort bookkeeping. */
llm8_status l8_generate_ids(llm8_session *s, const int32_t *ids, size_t n, const llm8_generate_params *params,
                            llm8_text_callback cb, void *user, llm8_run_stats *stats);
bool l8_begin_run(llm8_session *s);
/* Context shift: keeps the first n_keep tokens and the newer half of the rest, evaluated again
 * from position 0 (s->logits end up those of the last kept token). */
llm8_status l8_session_shift(llm8_session *s, int32_t n_keep);
void l8_end_run(llm8_session *s);

/* Records a message as the session's last error and returns st. */
llm8_status l8_session_fail(llm8_session *s, llm8_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
