/* What every converter source shares: role shapes and freeing. */
#include "convert/source.h"

#include <stdlib.h>

#include "tokenizer/tokenizer.h"
#include "util/mapfile.h"

void l8_role_shape(l8_role role, const llm8_model_info *m, int64_t *rows, int64_t *cols) {
    int64_t q = (int64_t)m->n_head * m->head_dim, kv = (int64_t)m->n_kv_head * m->head_dim;
    int64_t r = 0, c = 0;
    switch (role) {
    case L8_ROLE_TOK_EMBD:
    case L8_ROLE_OUTPUT: r = m->n_vocab, c = m->n_embd; break;
    case L8_ROLE_OUTPUT_NORM:
    case L8_ROLE_ATTN_NORM:
    case L8_ROLE_FFN_NORM: r = m->n_embd; break;
    case L8_ROLE_WQ: r = q, c = m->n_embd; break;
    case L8_ROLE_WK:
    case L8_ROLE_WV: r = kv, c = m->n_embd; break;
    case L8_ROLE_WO: r = m->n_embd, c = q; break;
    case L8_ROLE_W_GATE:
    case L8_ROLE_W_UP: r = m->n_ff, c = m->n_embd; break;
    case L8_ROLE_W_DOWN: r = m->n_embd, c = m->n_ff; break;
    default: break;
    }
    *rows = r;
    *cols = c;
}

bool l8_role_per_layer(l8_role role) { return role >= L8_ROLE_ATTN_NORM && role < L8_ROLE_COUNT; }

void l8_source_free(l8_source *src) {
    if (!src) return;
    if (src->close) src->close(src);
    free(src->tokenizer_json);
    free(src->tokenizer_config_json);
    free(src->rope_freqs);
    free(src->final_norm);
    free(src->layer_norms);
    free(src->description);
    free(src);
}

llm8_status l8_source_read_tokenizer(l8_source *src, const char *dir, l8_err *e) {
    char *tpath = l8_path_join(dir, "tokenizer.json"), *cpath = l8_path_join(dir, "tokenizer_config.json");
    llm8_status st = tpath && cpath ? LLM8_STATUS_OK : l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    if (!st) st = l8_read_file(tpath, &src->tokenizer_json, &src->tokenizer_json_len, e);
    if (!st && l8_read_file(cpath, &src->tokenizer_config_json, &src->tokenizer_config_json_len, NULL)) {
        src->tokenizer_config_json = NULL; /* optional */
        src->tokenizer_config_json_len = 0;
    }
    if (!st) {
        /* Parse the tokenizer now, so a broken or too large one fails before any writing. */
        llm8_tokenizer *tok = NULL;
        st = l8_tokenizer_from_json(src->tokenizer_json, src->tokenizer_json_len, src->tokenizer_config_json,
                                    src->tokenizer_config_json_len, dir, &tok, e);
        if (!st && llm8_tokenizer_n_vocab(tok) > src->info.n_vocab)
            st = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: the tokenizer has %d tokens but the model's vocab_size is %d",
                         dir, llm8_tokenizer_n_vocab(tok), src->info.n_vocab);
        llm8_tokenizer_free(tok);
    }
    free(tpath);
    free(cpath);
    return st;
}
