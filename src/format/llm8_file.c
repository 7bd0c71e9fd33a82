/* Reading an llm8 model file: hyper-parameters from llama.* / llm8.* keys, tensor views bound
 * with every shape, type and size checked against what the hyper-parameters imply. */
#include "format/llm8_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"

static llm8_status get_dim(const l8_gguf *g, const char *key, int32_t lo, int32_t hi, int32_t *out, l8_err *e) {
    uint32_t v = 0;
    llm8_status st = l8_gguf_get_u32(g, key, true, &v, e);
    if (st) return st;
    if (v < (uint32_t)lo || v > (uint32_t)hi)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: %s = %u is out of range [%d, %d]", l8_gguf_name(g), key, v, lo,
                       hi);
    *out = (int32_t)v;
    return LLM8_STATUS_OK;
}

static llm8_status read_info(const l8_gguf *g, llm8_model_info *m, l8_qtype *qt, l8_err *e) {
    const char *name = l8_gguf_name(g), *s;
    size_t len;
    llm8_status st;
#define TRY(call)                                                                                               \
    do {                                                                                                        \
        if ((st = (call))) return st;                                                                           \
    } while (0)
    TRY(l8_gguf_get_str(g, "general.architecture", true, &s, &len, e));
    if (len != 5 || memcmp(s, "llama", 5))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: architecture \"%.*s\" (llm8 runs llama)", name, (int)len, s);
    uint32_t version = 0;
    if (l8_gguf_find_key(g, "llm8.format_version") < 0)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                       "%s: a GGUF file not written by llm8; convert it first: llm8 convert %s -o OUT.gguf --quant w8a8",
                       name, name);
    TRY(l8_gguf_get_u32(g, "llm8.format_version", true, &version, e));
    if (version != L8_FORMAT_VERSION)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: llm8 format version %u (this build reads %d)", name, version,
                       L8_FORMAT_VERSION);
    TRY(l8_gguf_get_str(g, "llm8.quant", true, &s, &len, e));
    char qname[32];
    snprintf(qname, sizeof qname, "%.*s", (int)(len < 31 ? len : 31), s);
    if (!l8_qtype_parse(qname, qt))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: unknown quantization type \"%s\"", name, qname);
    if (l8_gguf_get_str(g, "llm8.layout", false, &s, &len, NULL) == LLM8_STATUS_OK && l8_gguf_find_key(g, "llm8.layout") >= 0 &&
        (len != 8 || memcmp(s, "tile16x4", 8)))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: unknown weight layout \"%.*s\"", name, (int)len, s);

    memset(m, 0, sizeof *m);
    snprintf(m->architecture, sizeof m->architecture, "llama");
    snprintf(m->dtype, sizeof m->dtype, "%.15s", qname);
    TRY(get_dim(g, "llama.embedding_length", 1, 65536, &m->n_embd, e));
    TRY(get_dim(g, "llama.feed_forward_length", 1, 1 << 20, &m->n_ff, e));
    TRY(get_dim(g, "llama.block_count", 1, 1024, &m->n_layer, e));
    TRY(get_dim(g, "llama.attention.head_count", 1, 1024, &m->n_head, e));
    TRY(get_dim(g, "llama.attention.head_count_kv", 1, 1024, &m->n_kv_head, e));
    TRY(get_dim(g, "llama.attention.key_length", 2, 1024, &m->head_dim, e));
    TRY(get_dim(g, "llama.context_length", 1, 1 << 24, &m->n_ctx_train, e));
    TRY(get_dim(g, "llama.vocab_size", 1, 1 << 22, &m->n_vocab, e));
    if (m->n_head % m->n_kv_head || m->head_dim % 2)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: %d heads, %d kv heads, head_dim %d do not fit together", name,
                       m->n_head, m->n_kv_head, m->head_dim);
    TRY(l8_gguf_get_f32(g, "llama.rope.freq_base", true, &m->rope_theta, e));
    TRY(l8_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", true, &m->rms_norm_eps, e));
    if (!(m->rms_norm_eps > 0 && m->rms_norm_eps < 1) || !(m->rope_theta > 1))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rms_norm_eps %g or rope theta %g is absurd", name,
                       m->rms_norm_eps, m->rope_theta);
    snprintf(m->rope_scaling, sizeof m->rope_scaling, "none");
    m->rope_factor = m->rope_low_freq_factor = m->rope_high_freq_factor = 1;
    m->rope_original_ctx = m->n_ctx_train;
    if (l8_gguf_get_str(g, "llama.rope.scaling.type", false, &s, &len, e) == LLM8_STATUS_OK &&
        l8_gguf_find_key(g, "llama.rope.scaling.type") >= 0) {
        if (len == 6 && !memcmp(s, "llama3", 6)) {
            snprintf(m->rope_scaling, sizeof m->rope_scaling, "llama3");
            TRY(l8_gguf_get_f32(g, "llama.rope.scaling.factor", true, &m->rope_factor, e));
            TRY(l8_gguf_get_f32(g, "llm8.rope.scaling.low_freq_factor", true, &m->rope_low_freq_factor, e));
            TRY(l8_gguf_get_f32(g, "llm8.rope.scaling.high_freq_factor", true, &m->rope_high_freq_factor, e));
            TRY(get_dim(g, "llama.rope.scaling.original_context_length", 1, 1 << 24, &m->rope_original_ctx, e));
            if (!(m->rope_factor >= 1) || !(m->rope_high_freq_factor > m->rope_low_freq_factor))
                return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: llama3 rope scaling parameters are absurd", name);
        } else if (!(len == 4 && !memcmp(s, "none", 4))) {
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: rope scaling \"%.*s\"", name, (int)len, s);
        }
    }
    TRY(l8_gguf_get_bool(g, "llm8.tie_word_embeddings", true, &m->tied_embeddings, e));
    m->bos_id = -1;
    TRY(l8_gguf_get_i32(g, "tokenizer.ggml.bos_token_id", false, &m->bos_id, e));
    if (m->bos_id < -1 || m->bos_id >= m->n_vocab)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: bos id %d outside the vocabulary", name, m->bos_id);
    int64_t kv;
    uint32_t et;
    uint64_t n = 0;
    const void *data = NULL;
    TRY(l8_gguf_get_arr(g, "llm8.eos_token_ids", false, &kv, &et, &n, &data, e));
    if (kv >= 0 && (et != 5 /* int32 */ || n > 8))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: llm8.eos_token_ids must hold at most 8 int32", name);
    for (uint64_t i = 0; i < n; i++) {
        int32_t id;
        memcpy(&id, (const char *)data + 4 * i, 4);
        if (id < 0 || id >= m->n_vocab)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: eos id %d outside the vocabulary", name, id);
        m->eos_ids[m->n_eos++] = id;
    }
    m->default_temperature = 0.8f;
    m->default_top_p = 0.95f;
    TRY(l8_gguf_get_f32(g, "llm8.generation.temperature", false, &m->default_temperature, e));
    TRY(l8_gguf_get_f32(g, "llm8.generation.top_p", false, &m->default_top_p, e));
#undef TRY
    return LLM8_STATUS_OK;
}

/* Binds one planned tensor, checking its storage against the logical shape. */
static llm8_status bind(const l8_gguf *g, l8_role role, int32_t layer, const llm8_model_info *m, l8_dtype dt,
                        int32_t group, l8_tensor *t, l8_err *e) {
    char base[96], name[112];
    l8_role_name(role, layer, base, sizeof base);
    snprintf(name, sizeof name, "%s.weight", base);
    int64_t rows, cols;
    l8_role_shape(role, m, &rows, &cols);
    const l8_gguf_tensor *d = l8_gguf_find_tensor(g, name);
    if (!d) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing tensor %s", l8_gguf_name(g), name);
    memset(t, 0, sizeof *t);
    t->data = d->data;
    t->nbytes = d->nbytes;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    if (!cols || dt == L8_DTYPE_F32 || dt == L8_DTYPE_F16 || dt == L8_DTYPE_BF16) {
        l8_dtype want = cols ? dt : L8_DTYPE_F32;
        uint32_t gt = want == L8_DTYPE_F16 ? L8_GGML_F16 : want == L8_DTYPE_BF16 ? L8_GGML_BF16 : L8_GGML_F32;
        if (d->type != gt || d->ne[0] != (cols ? cols : rows) || d->ne[1] != (cols ? rows : 1))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s is %s [%lld, %lld], expected %s [%lld, %lld]",
                           l8_gguf_name(g), name, l8_ggml_type_name(d->type) ? l8_ggml_type_name(d->type) : "?",
                           (long long)d->ne[0], (long long)d->ne[1], l8_ggml_type_name(gt),
                           (long long)(cols ? cols : rows), (long long)(cols ? rows : 1));
        t->dtype = want;
        return LLM8_STATUS_OK;
    }
    int64_t np = l8_q_rows_padded(rows), kp = l8_q_cols_padded(dt, cols), ng = l8_q_n_groups(cols, group);
    if (d->type != L8_GGML_I8 || d->nbytes != l8_q_data_bytes(dt, rows, cols) ||
        d->ne[0] != (dt == L8_DTYPE_Q4 ? kp / 2 : kp) || d->ne[1] != np)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s has the wrong type or shape for %s [%lld, %lld]",
                       l8_gguf_name(g), name, l8_dtype_name(dt), (long long)rows, (long long)cols);
    snprintf(name, sizeof name, "%s.scale", base);
    const l8_gguf_tensor *sc = l8_gguf_find_tensor(g, name);
    uint32_t st = dt == L8_DTYPE_Q4 ? L8_GGML_F16 : L8_GGML_F32;
    if (!sc) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing tensor %s", l8_gguf_name(g), name);
    if (sc->type != st || sc->nbytes != l8_q_scale_bytes(dt, rows, cols, group) || sc->ne[0] != L8_TILE_ROWS * ng ||
        sc->ne[1] != np / L8_TILE_ROWS)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s has the wrong type or shape", l8_gguf_name(g), name);
    t->dtype = dt;
    t->scales = sc->data;
    t->group = group;
    return LLM8_STATUS_OK;
}

/* A stored rotation of size n: signs [n] and, when n has an odd factor m > 1, mix [m, m]. */
static llm8_status bind_rotation(const l8_gguf *g, const char *base, int32_t n, l8_rot *r, l8_err *e) {
    char name[64];
    snprintf(name, sizeof name, "%s.signs", base);
    const l8_gguf_tensor *s = l8_gguf_find_tensor(g, name);
    int32_t h = n & -n, m = n / h;
    if (!s || s->type != L8_GGML_F32 || s->n_dims != 1 || s->ne[0] != n)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rotated model without a valid %s [%d]", l8_gguf_name(g), name, n);
    const float *mix = NULL;
    if (m > 1) {
        snprintf(name, sizeof name, "%s.mix", base);
        const l8_gguf_tensor *x = l8_gguf_find_tensor(g, name);
        if (!x || x->type != L8_GGML_F32 || x->n_dims != 2 || x->ne[0] != m || x->ne[1] != m)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rotated model without a valid %s [%d, %d]", l8_gguf_name(g),
                           name, m, m);
        mix = x->data;
    }
    *r = l8_rot_view(n, m, s->data, mix);
    return LLM8_STATUS_OK;
}

static llm8_status bind_rotations(const l8_gguf *g, const llm8_model_info *m, l8_llm8_file *f, l8_err *e) {
    const char *s;
    size_t len;
    llm8_status st = l8_gguf_get_str(g, "llm8.rotation", false, &s, &len, e);
    if (st || l8_gguf_find_key(g, "llm8.rotation") < 0 || (len == 4 && !memcmp(s, "none", 4))) return st;
    if (len != 8 || memcmp(s, "hadamard", 8))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: unknown rotation \"%.*s\"", l8_gguf_name(g), (int)len, s);
    f->rotated = true;
    const l8_gguf_tensor *fn = l8_gguf_find_tensor(g, "rot_embd.norm");
    if (!fn) /* files of llm8 before the final norm was stored with the rotation */
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: rotated model without rot_embd.norm (an older llm8 file: convert it again)",
                       l8_gguf_name(g));
    if (fn->type != L8_GGML_F32 || fn->n_dims != 1 || fn->ne[0] != m->n_embd)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rotated model without a valid rot_embd.norm [%d]", l8_gguf_name(g),
                       m->n_embd);
    f->final_norm = fn->data;
    if ((st = bind_rotation(g, "rot_embd", m->n_embd, &f->rot_embd, e))) return st;
    return bind_rotation(g, "rot_ffn", m->n_ff, &f->rot_ffn, e);
}

llm8_status l8_llm8_open(const char *path, l8_llm8_file *f, llm8_model_info *m, l8_weights *w, l8_err *e) {
    memset(f, 0, sizeof *f);
    memset(w, 0, sizeof *w);
    llm8_status st = l8_gguf_open(path, &f->gguf, e);
    if (st) return st;
    const l8_gguf *g = f->gguf;
    l8_qtype qt;
    if ((st = read_info(g, m, &qt, e))) goto fail;
    if ((st = l8_gguf_get_str(g, "tokenizer.huggingface.json", true, &f->tokenizer_json, &f->tokenizer_json_len, e)))
        goto fail;
    if ((st = l8_gguf_get_str(g, "llm8.tokenizer_config_json", false, &f->tokenizer_config_json,
                              &f->tokenizer_config_json_len, e)))
        goto fail;

    l8_dtype lin = l8_qtype_dtype(qt), head = (lin == L8_DTYPE_Q8 || lin == L8_DTYPE_Q4) ? L8_DTYPE_Q8 : lin;
    w->layers = calloc((size_t)m->n_layer, sizeof *w->layers);
    if (!w->layers) {
        st = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if ((st = bind(g, L8_ROLE_TOK_EMBD, 0, m, head, m->n_embd, &w->tok_embd, e))) goto fail;
    if ((st = bind(g, L8_ROLE_OUTPUT_NORM, 0, m, L8_DTYPE_F32, 0, &w->norm, e))) goto fail;
    if (m->tied_embeddings) w->output = w->tok_embd;
    else if ((st = bind(g, L8_ROLE_OUTPUT, 0, m, head, m->n_embd, &w->output, e))) goto fail;
    for (int32_t l = 0; l < m->n_layer; l++) {
        l8_layer *L = &w->layers[l];
        struct {
            l8_role role;
            l8_tensor *t;
        } parts[] = {{L8_ROLE_ATTN_NORM, &L->attn_norm}, {L8_ROLE_WQ, &L->wq},         {L8_ROLE_WK, &L->wk},
                     {L8_ROLE_WV, &L->wv},               {L8_ROLE_WO, &L->wo},         {L8_ROLE_FFN_NORM, &L->ffn_norm},
                     {L8_ROLE_W_GATE, &L->w_gate},       {L8_ROLE_W_UP, &L->w_up},     {L8_ROLE_W_DOWN, &L->w_down}};
        for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
            int64_t rows, cols;
            l8_role_shape(parts[i].role, m, &rows, &cols);
            int32_t group = (lin == L8_DTYPE_Q8 || lin == L8_DTYPE_Q4) ? l8_qtype_group(qt, cols) : 0;
            if ((st = bind(g, parts[i].role, l, m, cols ? lin : L8_DTYPE_F32, group, parts[i].t, e))) goto fail;
        }
    }
    const l8_gguf_tensor *rf = l8_gguf_find_tensor(g, "rope_freqs.weight");
    if (rf) {
        if (rf->type != L8_GGML_F32 || rf->ne[0] != m->head_dim / 2 || rf->n_dims != 1) {
            st = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rope_freqs.weight must be f32 [%d]", path, m->head_dim / 2);
            goto fail;
        }
        f->rope_freqs = rf->data;
    }
    if ((st = bind_rotations(g, m, f, e))) goto fail;
    if (f->rotated) w->ffn_rot = &f->rot_ffn;
    uint64_t n_params = 0, bytes = 0;
    for (int64_t i = 0; i < l8_gguf_n_tensors(g); i++) bytes += l8_gguf_tensor_at(g, i)->nbytes;
    n_params = (uint64_t)m->n_vocab * m->n_embd * (m->tied_embeddings ? 1 : 2) + m->n_embd;
    n_params += (uint64_t)m->n_layer * (2ull * m->n_embd + (uint64_t)m->n_embd * m->head_dim * (2ull * m->n_head + 2ull * m->n_kv_head) +
                                        3ull * m->n_embd * m->n_ff);
    m->n_params = n_params;
    m->weight_bytes = bytes;
    return LLM8_STATUS_OK;
fail:
    l8_llm8_close(f);
    free(w->layers);
    memset(w, 0, sizeof *w);
    return st;
}

void l8_llm8_close(l8_llm8_file *f) {
    if (f->gguf) l8_gguf_close(f->gguf);
    memset(f, 0, sizeof *f);
}
