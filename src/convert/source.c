/* What every converter source shares: role shapes and freeing. */
#include "convert/source.h"

#include <stdlib.h>

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
    free(src->description);
    free(src);
}
