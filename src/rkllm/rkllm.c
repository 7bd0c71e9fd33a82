/*
 * The RKLLM 1.1.1 C API on top of llm8's own API (include/rkllm.h; differences in docs/RKLLM.md).
 *
 * One handle = one model + one session. Every run is an independent turn (1.1.1 has no history):
 * the session starts empty, or at the loaded prompt cache. Async runs use our own worker thread
 * around the synchronous path, so that every input type (not only text) can run asynchronously
 * and the busy/abort state covers the whole run, prefill included.
 */
#include "llm8.h"
#include "rkllm.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A loaded adapter: a run chooses it by name. Entries are only appended (under mu) and freed by
 * rkllm_destroy, so a run may keep a pointer to one. */
typedef struct rk_lora {
    char *name;
    float scale;
    llm8_lora *lora;
    struct rk_lora *next;
} rk_lora;

typedef struct rk_handle {
    llm8_model *model;
    llm8_session *session;
    LLMResultCallback cb;
    RKLLMParam param;
    char *cache_path;      /* the loaded prompt cache: every run restarts from it */
    rk_lora *loras;        /* rkllm_load_lora's adapters, newest first */
    atomic_bool busy;      /* a run (sync or async) owns the session */
    atomic_bool abort;
    pthread_mutex_t mu;    /* worker bookkeeping and err */
    bool has_worker;
    pthread_t worker;
    char err[512];
} rk_handle;

/* rkllm_init has no handle to keep its message in when it fails. */
static _Thread_local char init_err[512];

static void set_err(rk_handle *h, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!h) {
        memcpy(init_err, buf, sizeof buf);
        return;
    }
    pthread_mutex_lock(&h->mu);
    memcpy(h->err, buf, sizeof buf);
    pthread_mutex_unlock(&h->mu);
}

const char *rkllm_last_error(LLMHandle handle) {
    return handle ? ((rk_handle *)handle)->err : init_err;
}

RKLLMParam rkllm_createDefaultParam(void) {
    RKLLMParam p;
    memset(&p, 0, sizeof p);
    p.model_path = NULL;
    p.max_context_len = 2048;
    p.max_new_tokens = 512;
    p.top_k = 40;
    p.top_p = 0.9f;
    p.temperature = 0.8f;
    p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.mirostat = 0;
    p.mirostat_tau = 5.0f;
    p.mirostat_eta = 0.1f;
    p.skip_special_token = true;
    p.is_async = false;
    return p;
}

int rkllm_init(LLMHandle *handle, RKLLMParam *param, LLMResultCallback callback) {
    if (handle) *handle = NULL;
    if (!handle || !param) {
        set_err(NULL, "rkllm_init: null handle or param");
        return -1;
    }
    if (!param->model_path) {
        set_err(NULL, "rkllm_init: param->model_path is NULL");
        return -1;
    }
    rk_handle *h = calloc(1, sizeof *h);
    if (!h) {
        set_err(NULL, "rkllm_init: out of memory");
        return -1;
    }
    char err[400];
    if (llm8_model_load(param->model_path, &h->model, err, sizeof err)) {
        set_err(NULL, "rkllm_init: %s", err);
        free(h);
        return -1;
    }
    llm8_session_params sp = llm8_session_default_params();
    int32_t max_ctx = llm8_model_get_info(h->model)->n_ctx_train;
    sp.n_ctx = param->max_context_len > 0 ? param->max_context_len : 2048;
    if (max_ctx > 0 && sp.n_ctx > max_ctx) sp.n_ctx = max_ctx;
    if (llm8_session_create(h->model, &sp, &h->session, err, sizeof err)) {
        set_err(NULL, "rkllm_init: %s", err);
        llm8_model_free(h->model);
        free(h);
        return -1;
    }
    h->param = *param;
    h->param.model_path = NULL; /* the caller's string need not outlive init */
    h->cb = callback;
    atomic_init(&h->busy, false);
    atomic_init(&h->abort, false);
    pthread_mutex_init(&h->mu, NULL);
    *handle = h;
    return 0;
}

static rk_lora *find_lora(rk_handle *h, const char *name) {
    pthread_mutex_lock(&h->mu);
    rk_lora *l = h->loras;
    while (l && strcmp(l->name, name)) l = l->next;
    pthread_mutex_unlock(&h->mu);
    return l;
}

int rkllm_load_lora(LLMHandle handle, RKLLMLoraAdapter *lora_adapter) {
    rk_handle *h = handle;
    if (!h) return -1;
    if (!lora_adapter || !lora_adapter->lora_adapter_path) {
        set_err(h, "rkllm_load_lora: null adapter or lora_adapter_path");
        return -1;
    }
    const char *name = lora_adapter->lora_adapter_name;
    if (!name || !name[0]) {
        set_err(h, "rkllm_load_lora: lora_adapter_name is empty (runs choose adapters by name)");
        return -1;
    }
    if (!isfinite(lora_adapter->scale)) {
        set_err(h, "rkllm_load_lora: scale is not a finite number");
        return -1;
    }
    if (find_lora(h, name)) {
        set_err(h, "rkllm_load_lora: an adapter named \"%s\" is already loaded", name);
        return -1;
    }
    rk_lora *l = calloc(1, sizeof *l);
    char err[400];
    if (!l || !(l->name = strdup(name))) {
        free(l);
        set_err(h, "rkllm_load_lora: out of memory");
        return -1;
    }
    if (llm8_lora_load(h->model, lora_adapter->lora_adapter_path, &l->lora, err, sizeof err)) {
        set_err(h, "rkllm_load_lora: %s", err);
        free(l->name);
        free(l);
        return -1;
    }
    l->scale = lora_adapter->scale;
    /* Loading ran unlocked (it reads files); another load of the same name may have won. */
    pthread_mutex_lock(&h->mu);
    rk_lora *dup = h->loras;
    while (dup && strcmp(dup->name, name)) dup = dup->next;
    if (!dup) {
        l->next = h->loras;
        h->loras = l;
    }
    pthread_mutex_unlock(&h->mu);
    if (dup) {
        llm8_lora_free(l->lora);
        free(l->name);
        free(l);
        set_err(h, "rkllm_load_lora: an adapter named \"%s\" is already loaded", name);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- runs */

typedef struct run_ctx {
    rk_handle *h;
    void *userdata;
    char *buf; /* NUL-terminated copy of the current piece */
    size_t cap;
    bool oom;
} run_ctx;

static void deliver(rk_handle *h, void *userdata, const char *text, int32_t token, LLMCallState state) {
    if (!h->cb) return;
    RKLLMResult r;
    memset(&r, 0, sizeof r);
    r.text = text;
    r.token_id = token;
    h->cb(&r, userdata, state);
}

static bool on_text(void *user, const char *text, size_t len, int32_t token) {
    run_ctx *rc = user;
    if (atomic_load(&rc->h->abort)) return false; /* covers an abort that raced the run's start */
    if (len + 1 > rc->cap) {
        char *b = realloc(rc->buf, len + 1);
        if (!b) {
            rc->oom = true;
            return false;
        }
        rc->buf = b;
        rc->cap = len + 1;
    }
    memcpy(rc->buf, text, len);
    rc->buf[len] = '\0';
    deliver(rc->h, rc->userdata, rc->buf, token, RKLLM_RUN_NORMAL);
    return true;
}

static llm8_generate_params gen_params(const RKLLMParam *p) {
    llm8_generate_params g = llm8_generate_default_params();
    g.max_tokens = p->max_new_tokens > 0 ? p->max_new_tokens : -1;
    g.ignore_eos = false;
    g.add_bos = true;
    g.parse_special = true; /* RKLLM users write the chat template's special tokens themselves */
    g.sampling.temperature = p->temperature;
    g.sampling.top_k = p->top_k;
    g.sampling.top_p = p->top_p;
    g.sampling.min_p = 0.0f; /* RKLLM has no min_p: llm8's default would change the distribution */
    g.sampling.repeat_penalty = p->repeat_penalty;
    g.sampling.frequency_penalty = p->frequency_penalty;
    g.sampling.presence_penalty = p->presence_penalty;
    return g;
}

/* Tokenizes a prompt the way llm8_session_generate would, so the save-cache path prefills the
 * same ids as the plain path. */
static int tokenize_prompt(rk_handle *h, const char *prompt, int32_t **out, size_t *n_out) {
    const llm8_tokenizer *tok = llm8_model_tokenizer(h->model);
    size_t len = strlen(prompt);
    uint32_t flags = LLM8_TOKENIZE_PARSE_SPECIAL | (llm8_session_n_past(h->session) == 0 ? LLM8_TOKENIZE_ADD_BOS : 0);
    size_t cap = len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    llm8_status st = llm8_tokenize(tok, prompt, len, flags, ids, cap, &n);
    if (st == LLM8_STATUS_INVALID_ARGUMENT && n > cap) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (!more) {
            free(ids);
            return -1;
        }
        ids = more;
        st = llm8_tokenize(tok, prompt, len, flags, ids, n, &n);
    }
    if (st) {
        free(ids);
        set_err(h, "prompt: tokenization failed (%s)", llm8_status_to_string(st));
        return -1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Checks what can be refused before a run starts, so that rkllm_run_async can refuse it too;
 * *lora receives the adapter the run asks for (NULL: none). */
static int check_args(rk_handle *h, const RKLLMInput *in, const RKLLMInferParam *ip, rk_lora **lora) {
    *lora = NULL;
    if (!in) {
        set_err(h, "rkllm_run: null input");
        return -1;
    }
    if (ip && ip->lora_params && ip->lora_params->lora_adapter_name) {
        const char *name = ip->lora_params->lora_adapter_name;
        if (!(*lora = find_lora(h, name))) {
            set_err(h, "rkllm_run: no LoRA adapter named \"%s\" (load it with rkllm_load_lora)", name);
            return -1;
        }
    }
    if (ip && ip->mode != RKLLM_INFER_GENERATE && ip->mode != RKLLM_INFER_GET_LAST_HIDDEN_LAYER) {
        set_err(h, "rkllm_run: unknown infer mode %d", (int)ip->mode);
        return -1;
    }
    switch (in->input_type) {
    case RKLLM_INPUT_PROMPT:
        if (!in->prompt_input) {
            set_err(h, "rkllm_run: null prompt");
            return -1;
        }
        return 0;
    case RKLLM_INPUT_TOKEN:
        if (!in->token_input.input_ids && in->token_input.n_tokens) {
            set_err(h, "rkllm_run: null input_ids");
            return -1;
        }
        return 0;
    case RKLLM_INPUT_EMBED:
        if (!in->embed_input.embed || !in->embed_input.n_tokens) {
            set_err(h, "rkllm_run: empty embedding input");
            return -1;
        }
        return 0;
    case RKLLM_INPUT_MULTIMODAL:
        set_err(h, "rkllm_run: multimodal input is not supported by llm8");
        return -1;
    }
    set_err(h, "rkllm_run: unknown input type %d", (int)in->input_type);
    return -1;
}

/* The run proper; the caller has set busy and checked the arguments. Clears busy before the
 * final callback so that a caller reacting to FINISH may start the next run at once. */
static int run_locked(rk_handle *h, const RKLLMInput *in, const RKLLMInferParam *ip, rk_lora *lora, void *userdata) {
    llm8_session *s = h->session;
    run_ctx rc = {h, userdata, NULL, 0, false};
    int32_t *ids = NULL;
    size_t n = 0;
    float *hidden = NULL;
    llm8_status st = LLM8_STATUS_OK;
    bool failed = false;

    /* The adapter is chosen per run (none unless lora_params names one), before the prompt
     * cache is loaded: its keys and values are the ones computed when it was saved. */
    if (llm8_session_set_lora(s, lora ? lora->lora : NULL, lora ? lora->scale : 0.0f)) {
        set_err(h, "rkllm_run: %s", llm8_session_last_error(s));
        failed = true;
        goto end;
    }
    if (h->cache_path) {
        st = llm8_session_load(s, h->cache_path);
        if (st) {
            set_err(h, "prompt cache %s: %s", h->cache_path, llm8_session_last_error(s));
            failed = true;
            goto end;
        }
    } else {
        llm8_session_reset(s);
    }

    llm8_eval_io io;
    memset(&io, 0, sizeof io);
    if (in->input_type == RKLLM_INPUT_PROMPT) {
        if (tokenize_prompt(h, in->prompt_input, &ids, &n)) {
            failed = true;
            goto end;
        }
        io.ids = ids;
        io.n = n;
    } else if (in->input_type == RKLLM_INPUT_TOKEN) {
        io.ids = in->token_input.input_ids;
        io.n = in->token_input.n_tokens;
    } else {
        io.embd = in->embed_input.embed;
        io.n = in->embed_input.n_tokens;
    }

    RKLLMInferMode mode = ip ? ip->mode : RKLLM_INFER_GENERATE;
    const RKLLMPromptCacheParam *pc = ip ? ip->prompt_cache_params : NULL;
    bool save = pc && pc->save_prompt_cache;
    /* The plain text/token path prefills inside generation, where an abort can interrupt it;
     * the others need the context filled first. */
    bool prefill = mode == RKLLM_INFER_GET_LAST_HIDDEN_LAYER || save || io.embd;

    if (prefill) {
        if (io.n == 0) {
            set_err(h, "rkllm_run: empty input");
            failed = true;
            goto end;
        }
        if ((size_t)llm8_session_n_past(s) + io.n > (size_t)llm8_session_n_ctx(s)) {
            set_err(h, "rkllm_run: %zu input tokens do not fit in the context (%d)", io.n, llm8_session_n_ctx(s));
            failed = true;
            goto end;
        }
        int32_t n_embd = llm8_model_get_info(h->model)->n_embd;
        if (mode == RKLLM_INFER_GET_LAST_HIDDEN_LAYER) {
            hidden = malloc(io.n * (size_t)n_embd * sizeof(float));
            if (!hidden) {
                set_err(h, "rkllm_run: out of memory (hidden states)");
                failed = true;
                goto end;
            }
            io.hidden = hidden;
        }
        st = llm8_session_eval_ex(s, &io);
        if (st) {
            set_err(h, "rkllm_run: %s", llm8_session_last_error(s));
            failed = true;
            goto end;
        }
        if (save) {
            const char *path = pc->prompt_cache_path ? pc->prompt_cache_path : "./prompt_cache.bin";
            st = llm8_session_save(s, path);
            if (st) {
                set_err(h, "prompt cache %s: %s", path, llm8_session_last_error(s));
                failed = true;
                goto end;
            }
        }
        if (mode == RKLLM_INFER_GET_LAST_HIDDEN_LAYER) {
            if (h->cb) {
                RKLLMResult r;
                memset(&r, 0, sizeof r);
                r.token_id = -1;
                r.last_hidden_layer.hidden_states = hidden;
                r.last_hidden_layer.embd_size = n_embd;
                r.last_hidden_layer.num_tokens = (int)io.n;
                h->cb(&r, userdata, RKLLM_RUN_GET_LAST_HIDDEN_LAYER);
            }
            goto end;
        }
    }

    if (!atomic_load(&h->abort)) {
        llm8_generate_params g = gen_params(&h->param);
        st = prefill ? llm8_session_generate_ids(s, NULL, 0, &g, on_text, &rc, NULL)
                     : llm8_session_generate_ids(s, io.ids, io.n, &g, on_text, &rc, NULL);
        if (rc.oom) {
            set_err(h, "rkllm_run: out of memory (text)");
            failed = true;
        } else if (st && st != LLM8_STATUS_ABORTED) {
            set_err(h, "rkllm_run: %s", llm8_session_last_error(s));
            failed = true;
        }
    }

end:
    free(ids);
    free(hidden);
    free(rc.buf);
    atomic_store(&h->busy, false);
    /* An aborted run ends normally (FINISH), as on Rockchip's library: the caller asked for it. */
    deliver(h, userdata, NULL, -1, failed ? RKLLM_RUN_ERROR : RKLLM_RUN_FINISH);
    return failed ? -1 : 0;
}

static bool claim(rk_handle *h) {
    if (atomic_exchange(&h->busy, true)) {
        set_err(h, "rkllm_run: a run is already in progress");
        return false;
    }
    atomic_store(&h->abort, false);
    return true;
}

int rkllm_run(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params, void *userdata) {
    rk_handle *h = handle;
    if (!h) return -1;
    rk_lora *lora;
    if (check_args(h, rkllm_input, rkllm_infer_params, &lora)) return -1;
    if (!claim(h)) return -1;
    return run_locked(h, rkllm_input, rkllm_infer_params, lora, userdata);
}

/* An async run owns deep copies of everything the caller passed. */
typedef struct async_job {
    rk_handle *h;
    RKLLMInput in;
    RKLLMInferParam ip;
    bool has_ip;
    RKLLMPromptCacheParam pc;
    rk_lora *lora;    /* resolved by check_args; lives as long as the handle */
    void *userdata;
    void *data;       /* the copied prompt, ids or embeddings */
    char *cache_path;
} async_job;

static void job_free(async_job *j) {
    free(j->data);
    free(j->cache_path);
    free(j);
}

static void *async_main(void *arg) {
    async_job *j = arg;
    run_locked(j->h, &j->in, j->has_ip ? &j->ip : NULL, j->lora, j->userdata);
    job_free(j);
    return NULL;
}

static void join_worker(rk_handle *h) {
    pthread_mutex_lock(&h->mu);
    bool has = h->has_worker;
    pthread_t t = h->worker;
    h->has_worker = false;
    pthread_mutex_unlock(&h->mu);
    if (has) pthread_join(t, NULL);
}

int rkllm_run_async(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params, void *userdata) {
    rk_handle *h = handle;
    if (!h) return -1;
    rk_lora *lora;
    if (check_args(h, rkllm_input, rkllm_infer_params, &lora)) return -1;
    pthread_mutex_lock(&h->mu);
    bool self = h->has_worker && pthread_equal(h->worker, pthread_self());
    pthread_mutex_unlock(&h->mu);
    if (self) { /* the worker cannot join itself */
        set_err(h, "rkllm_run_async: cannot start an async run from the async run's callback");
        return -1;
    }
    if (!claim(h)) return -1;
    join_worker(h); /* the previous run has finished (busy was false): reap its thread */

    async_job *j = calloc(1, sizeof *j);
    if (!j) goto oom;
    j->h = h;
    j->lora = lora;
    j->userdata = userdata;
    j->in = *rkllm_input;
    size_t bytes = 0;
    const void *src = NULL;
    if (rkllm_input->input_type == RKLLM_INPUT_PROMPT) {
        bytes = strlen(rkllm_input->prompt_input) + 1;
        src = rkllm_input->prompt_input;
    } else if (rkllm_input->input_type == RKLLM_INPUT_TOKEN) {
        bytes = rkllm_input->token_input.n_tokens * sizeof(int32_t);
        src = rkllm_input->token_input.input_ids;
    } else {
        size_t n_embd = (size_t)llm8_model_get_info(h->model)->n_embd;
        bytes = rkllm_input->embed_input.n_tokens * n_embd * sizeof(float);
        src = rkllm_input->embed_input.embed;
    }
    if (bytes) {
        j->data = malloc(bytes);
        if (!j->data) goto oom;
        memcpy(j->data, src, bytes);
    }
    if (rkllm_input->input_type == RKLLM_INPUT_PROMPT) j->in.prompt_input = j->data;
    else if (rkllm_input->input_type == RKLLM_INPUT_TOKEN) j->in.token_input.input_ids = j->data;
    else j->in.embed_input.embed = j->data;
    if (rkllm_infer_params) {
        j->has_ip = true;
        j->ip = *rkllm_infer_params;
        j->ip.lora_params = NULL; /* the adapter is resolved already (j->lora) */
        if (rkllm_infer_params->prompt_cache_params) {
            j->pc = *rkllm_infer_params->prompt_cache_params;
            if (j->pc.prompt_cache_path) {
                j->cache_path = strdup(j->pc.prompt_cache_path);
                if (!j->cache_path) goto oom;
                j->pc.prompt_cache_path = j->cache_path;
            }
            j->ip.prompt_cache_params = &j->pc;
        }
    }
    pthread_mutex_lock(&h->mu);
    int rc = pthread_create(&h->worker, NULL, async_main, j);
    h->has_worker = rc == 0;
    pthread_mutex_unlock(&h->mu);
    if (rc) {
        set_err(h, "rkllm_run_async: cannot start a thread");
        job_free(j);
        atomic_store(&h->busy, false);
        return -1;
    }
    return 0;
oom:
    if (j) job_free(j);
    set_err(h, "rkllm_run_async: out of memory");
    atomic_store(&h->busy, false);
    return -1;
}

int rkllm_abort(LLMHandle handle) {
    rk_handle *h = handle;
    if (!h) return -1;
    atomic_store(&h->abort, true);
    llm8_session_abort(h->session);
    return 0;
}

int rkllm_is_running(LLMHandle handle) {
    rk_handle *h = handle;
    if (!h) return -1;
    return atomic_load(&h->busy) ? 0 : 1;
}

/* ---------------------------------------------------------------- prompt cache */

int rkllm_load_prompt_cache(LLMHandle handle, const char *prompt_cache_path) {
    rk_handle *h = handle;
    if (!h) return -1;
    if (!prompt_cache_path) {
        set_err(h, "rkllm_load_prompt_cache: null path");
        return -1;
    }
    if (!claim(h)) return -1;
    int ret = 0;
    /* Loading now checks the file against the model, so a bad cache fails here, not in a run. */
    if (llm8_session_load(h->session, prompt_cache_path)) {
        set_err(h, "prompt cache %s: %s", prompt_cache_path, llm8_session_last_error(h->session));
        ret = -1;
    } else {
        char *p = strdup(prompt_cache_path);
        if (!p) {
            set_err(h, "rkllm_load_prompt_cache: out of memory");
            ret = -1;
        } else {
            free(h->cache_path);
            h->cache_path = p;
        }
    }
    atomic_store(&h->busy, false);
    return ret;
}

int rkllm_release_prompt_cache(LLMHandle handle) {
    rk_handle *h = handle;
    if (!h) return -1;
    if (!claim(h)) return -1;
    free(h->cache_path);
    h->cache_path = NULL;
    llm8_session_reset(h->session);
    atomic_store(&h->busy, false);
    return 0;
}

int rkllm_destroy(LLMHandle handle) {
    rk_handle *h = handle;
    if (!h) return -1;
    rkllm_abort(h);
    join_worker(h);
    llm8_session_free(h->session);
    for (rk_lora *l = h->loras, *next; l; l = next) { /* after the session that used them */
        next = l->next;
        llm8_lora_free(l->lora);
        free(l->name);
        free(l);
    }
    llm8_model_free(h->model);
    free(h->cache_path);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return 0;
}
