/* llm8_model: a Hugging Face folder mapped and bound to the transformer's weight views. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format/hf_config.h"
#include "format/hf_weights.h"
#include "runtime/runtime.h"
#include "format/llm8_file.h"
#include "quant/quant.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

void llm8_model_free(llm8_model *m) {
    if (!m) return;
    l8_rope_free(&m->rope);
    l8_weights_free(&m->w);
    if (m->st) l8_st_close(m->st);
    l8_llm8_close(&m->file);
    llm8_tokenizer_free(m->tok);
    free(m);
}

static llm8_status load_hf_folder(llm8_model *m, const char *dir, l8_err *e) {
    llm8_status st = l8_hf_config_load(dir, &m->info, e);
    if (st) return st;
    char tokerr[512] = "";
    st = llm8_tokenizer_load(dir, &m->tok, tokerr, sizeof tokerr);
    if (st) return l8_fail(e, st, "%s", tokerr);
    if (llm8_tokenizer_n_vocab(m->tok) > m->info.n_vocab)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: the tokenizer has %d tokens but the model's vocab_size is %d",
                       dir, llm8_tokenizer_n_vocab(m->tok), m->info.n_vocab);
    st = l8_st_open_dir(dir, &m->st, e);
    if (st) return st;
    st = l8_hf_bind_weights(m->st, &m->info, &m->w, e);
    if (st) return st;
    const char *dtype = "?";
    l8_weights_stats(&m->w, &m->info, &m->info.n_params, &m->info.weight_bytes, &dtype);
    snprintf(m->info.dtype, sizeof m->info.dtype, "%s", dtype);
    return LLM8_STATUS_OK;
}

static llm8_status load_llm8_file(llm8_model *m, const char *path, l8_err *e) {
    llm8_status st = l8_llm8_open(path, &m->file, &m->info, &m->w, e);
    if (st) return st;
    st = l8_tokenizer_from_json(m->file.tokenizer_json, m->file.tokenizer_json_len, m->file.tokenizer_config_json,
                                m->file.tokenizer_config_json_len, path, &m->tok, e);
    if (st) return st;
    if (llm8_tokenizer_n_vocab(m->tok) > m->info.n_vocab)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: the tokenizer has %d tokens but the model's vocabulary is %d",
                       path, llm8_tokenizer_n_vocab(m->tok), m->info.n_vocab);
    return LLM8_STATUS_OK;
}

/* What one decoded token reads and multiplies: every layer, the final norm and the head (the
 * embedding table contributes one row). */
static void decode_traffic(const l8_weights *w, const llm8_model_info *m, uint64_t *bytes, uint64_t *params) {
    uint64_t b = 0, p = 0;
    const l8_tensor *all[9];
    for (int32_t l = 0; l <= m->n_layer; l++) {
        int n = 0;
        if (l < m->n_layer) {
            const l8_layer *L = &w->layers[l];
            const l8_tensor *t[9] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
            memcpy(all, t, sizeof t);
            n = 9;
        } else {
            all[0] = &w->norm, all[1] = &w->output;
            n = 2;
        }
        for (int i = 0; i < n; i++) {
            const l8_tensor *t = all[i];
            b += t->nbytes;
            if (t->dtype == L8_DTYPE_Q8 || t->dtype == L8_DTYPE_Q4)
                b += l8_q_scale_bytes(t->dtype, t->shape[0], t->shape[1], t->group);
            if (t->ndim == 2) p += (uint64_t)(t->shape[0] * t->shape[1]);
        }
    }
    *bytes = b;
    *params = p;
}

llm8_status llm8_model_load(const char *path, llm8_model **out, char *err, size_t errcap) {
    l8_err e = {""};
    llm8_status st;
    if (!out || !path) {
        st = l8_fail(&e, LLM8_STATUS_INVALID_ARGUMENT, "llm8_model_load: null argument");
        l8_err_copy(&e, err, errcap);
        return st;
    }
    *out = NULL;
    llm8_model *m = calloc(1, sizeof *m);
    if (!m) return LLM8_STATUS_OUT_OF_MEMORY;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = l8_fail(&e, LLM8_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        st = load_hf_folder(m, path, &e);
    } else {
        st = load_llm8_file(m, path, &e);
    }
    if (!st && l8_rope_init(&m->rope, &m->info, m->file.rope_freqs)) st = l8_fail(&e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    if (st) {
        llm8_model_free(m);
        l8_err_copy(&e, err, errcap);
        return st;
    }
    decode_traffic(&m->w, &m->info, &m->info.decode_bytes, &m->info.decode_params);
    *out = m;
    return LLM8_STATUS_OK;
}

const llm8_model_info *llm8_model_get_info(const llm8_model *m) { return m ? &m->info : NULL; }

const llm8_tokenizer *llm8_model_tokenizer(const llm8_model *m) { return m ? m->tok : NULL; }
