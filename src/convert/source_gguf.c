/*
 * Converter source: a GGUF file written by llama.cpp's convert_hf_to_gguf.py for a Llama model.
 *
 * What llama.cpp changed on the way in, and how it is undone here:
 * - Shapes are reversed (ne[0] = in-features); the bytes are the same row-major [out, in] matrix.
 * - q and k rows were permuted (LlamaModel.permute) from Hugging Face's rotate_half order to the
 *   interleaved-pair order: within each head of head_dim rows, HF row i sits at GGUF row
 *   2 * (i % (head_dim / 2)) + i / (head_dim / 2). read_rows maps every row back.
 * - llama3 rope scaling is not stored as parameters but as rope_freqs.weight, the head_dim / 2
 *   frequency divisors. They are passed on as src->rope_freqs (the runtime uses them as they are);
 *   info.rope_scaling says "llama3" and info.rope_factor is their maximum. low_freq_factor,
 *   high_freq_factor and original_max_position_embeddings are not recoverable, so info keeps
 *   the defaults 1, 4 and n_ctx_train for them; they only matter if someone recomputes the
 *   divisors, which must not happen when rope_freqs is set.
 * - The tokenizer becomes tokenizer.ggml.* keys; gguf_tokenizer.c turns them back into JSON.
 * Weights: F32, F16, BF16 and Q8_0 (dequantized: d * q per block of 32) are read; any other type is
 * UNSUPPORTED, naming the tensor.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "convert/gguf_tokenizer.h"
#include "convert/source.h"
#include "format/gguf.h"
#include "model/tensor.h"
#include "tokenizer/tokenizer.h"

typedef struct gguf_impl {
    l8_gguf *g;
    const l8_gguf_tensor *global[3];  /* TOK_EMBD, OUTPUT_NORM, OUTPUT */
    const l8_gguf_tensor *(*layers)[L8_ROLE_COUNT];
} gguf_impl;

static const char *const layer_names[L8_ROLE_COUNT] = {
    [L8_ROLE_ATTN_NORM] = "attn_norm", [L8_ROLE_WQ] = "attn_q",         [L8_ROLE_WK] = "attn_k",
    [L8_ROLE_WV] = "attn_v",           [L8_ROLE_WO] = "attn_output",    [L8_ROLE_FFN_NORM] = "ffn_norm",
    [L8_ROLE_W_GATE] = "ffn_gate",     [L8_ROLE_W_UP] = "ffn_up",       [L8_ROLE_W_DOWN] = "ffn_down",
};

static const l8_gguf_tensor *role_tensor(const gguf_impl *h, l8_role role, int32_t layer) {
    return l8_role_per_layer(role) ? h->layers[layer][role] : h->global[role];
}

/* Converts one row of n elements of a tensor to f32. */
static void row_to_f32(const l8_gguf_tensor *t, const unsigned char *p, int64_t n, float *out) {
    switch (t->type) {
    case L8_GGML_F32: memcpy(out, p, (size_t)n * 4); break;
    case L8_GGML_F16:
    case L8_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->type == L8_GGML_F16 ? l8_f16_to_f32(h) : l8_bf16_to_f32(h);
        }
        break;
    case L8_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const unsigned char *blk = p + 34 * b;
            uint16_t dh;
            memcpy(&dh, blk, 2);
            float d = l8_f16_to_f32(dh);
            for (int j = 0; j < 32; j++) out[32 * b + j] = (float)(int8_t)blk[2 + j] * d;
        }
        break;
    default: break;
    }
}

static size_t row_bytes(const l8_gguf_tensor *t) {
    uint32_t blk = 1, bytes = 4;
    l8_ggml_type_block(t->type, &blk, &bytes);
    return (size_t)t->ne[0] / blk * bytes;
}

static llm8_status gguf_read_rows(l8_source *src, l8_role role, int32_t layer, int64_t r0, int64_t n, float *out,
                                  l8_err *e) {
    gguf_impl *h = src->impl;
    const l8_gguf_tensor *t = role_tensor(h, role, layer);
    int64_t rows, cols;
    l8_role_shape(role, &src->info, &rows, &cols);
    if (cols == 0) {
        row_to_f32(t, t->data, rows, out);
        return LLM8_STATUS_OK;
    }
    if (r0 < 0 || n < 0 || r0 + n > rows)
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "%s: rows [%" PRId64 ", %" PRId64 ") of \"%s\" out of range",
                       l8_gguf_name(h->g), r0, r0 + n, t->name);
    size_t rb = row_bytes(t);
    const unsigned char *base = t->data;
    bool permuted = role == L8_ROLE_WQ || role == L8_ROLE_WK;
    int64_t hd = src->info.head_dim, half = hd / 2;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = r0 + i;
        if (permuted) {
            int64_t head = r / hd, k = r % hd;
            r = head * hd + 2 * (k % half) + k / half;
        }
        row_to_f32(t, base + (size_t)r * rb, cols, out + i * cols);
    }
    /* Read once: drop the pages so that converting a model larger than memory stays small. */
    if (!permuted) {
        uintptr_t lo = (uintptr_t)base + (size_t)r0 * rb, hi = lo + (size_t)n * rb;
        uintptr_t page = 4096, a = (lo + page - 1) & ~(page - 1), b = hi & ~(page - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
    return LLM8_STATUS_OK;
}

static void gguf_close(l8_source *src) {
    gguf_impl *h = src->impl;
    if (!h) return;
    l8_gguf_close(h->g);
    free(h->layers);
    free(h);
}

/* Finds and checks one weight: present, a readable type, the shape info implies. */
static llm8_status bind(l8_source *src, gguf_impl *h, l8_role role, int32_t layer, const char *name, bool optional,
                        const l8_gguf_tensor **out, l8_err *e) {
    const char *file = l8_gguf_name(h->g);
    const l8_gguf_tensor *t = l8_gguf_find_tensor(h->g, name);
    *out = t;
    if (!t) return optional ? LLM8_STATUS_OK : l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: no tensor \"%s\"", file, name);
    if (t->type != L8_GGML_F32 && t->type != L8_GGML_F16 && t->type != L8_GGML_BF16 && t->type != L8_GGML_Q8_0) {
        const char *tn = l8_ggml_type_name(t->type);
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                       "%s: tensor \"%s\" has type %s; llm8 reads F32, F16, BF16 and Q8_0 GGUF weights: re-convert with "
                       "--outtype q8_0 or f16",
                       file, name, tn ? tn : "?");
    }
    int64_t rows, cols;
    l8_role_shape(role, &src->info, &rows, &cols);
    bool ok = cols == 0 ? t->n_dims == 1 && t->ne[0] == rows : t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows;
    if (!ok)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                       "%s: tensor \"%s\" has ne [%" PRId64 ", %" PRId64 "] (%u dims), expected [%" PRId64 ", %" PRId64 "]",
                       file, name, t->ne[0], t->ne[1], t->n_dims, cols ? cols : rows, cols ? rows : (int64_t)1);
    if (cols == 0 && t->type == L8_GGML_Q8_0)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: vector \"%s\" is Q8_0", file, name);
    (void)layer;
    return LLM8_STATUS_OK;
}

static llm8_status get_i32(const l8_gguf *g, const char *key, bool required, int32_t *out, int32_t lo, l8_err *e) {
    uint32_t v;
    int64_t k = l8_gguf_find_key(g, key);
    if (k < 0 && !required) return LLM8_STATUS_OK;
    llm8_status st = l8_gguf_get_u32(g, key, true, &v, e);
    if (st) return st;
    if (v > INT32_MAX || (int32_t)v < lo)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: %s = %u is out of range", l8_gguf_name(g), key, v);
    *out = (int32_t)v;
    return LLM8_STATUS_OK;
}

static void add_eos(llm8_model_info *m, int32_t id) {
    if (id < 0) return;
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == id) return;
    if (m->n_eos < (int)(sizeof m->eos_ids / sizeof m->eos_ids[0])) m->eos_ids[m->n_eos++] = id;
}

static llm8_status read_hparams(l8_gguf *g, llm8_model_info *m, l8_err *e) {
    const char *file = l8_gguf_name(g), *arch;
    size_t alen;
    llm8_status st = l8_gguf_get_str(g, "general.architecture", true, &arch, &alen, e);
    if (st) return st;
    if (alen != 5 || memcmp(arch, "llama", 5) != 0)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: architecture \"%.*s\" is not supported (llama)", file,
                       (int)(alen > 32 ? 32 : alen), arch);
    snprintf(m->architecture, sizeof m->architecture, "llama");
    if ((st = get_i32(g, "llama.embedding_length", true, &m->n_embd, 1, e)) ||
        (st = get_i32(g, "llama.feed_forward_length", true, &m->n_ff, 1, e)) ||
        (st = get_i32(g, "llama.block_count", true, &m->n_layer, 1, e)) ||
        (st = get_i32(g, "llama.attention.head_count", true, &m->n_head, 1, e)))
        return st;
    m->n_kv_head = m->n_head;
    m->head_dim = m->n_head ? m->n_embd / m->n_head : 0;
    m->n_ctx_train = 2048;
    m->rope_theta = 10000.0f;
    int32_t value_len = -1, rope_dim = -1;
    if ((st = get_i32(g, "llama.attention.head_count_kv", false, &m->n_kv_head, 1, e)) ||
        (st = get_i32(g, "llama.attention.key_length", false, &m->head_dim, 2, e)) ||
        (st = get_i32(g, "llama.attention.value_length", false, &value_len, 1, e)) ||
        (st = get_i32(g, "llama.rope.dimension_count", false, &rope_dim, 1, e)) ||
        (st = get_i32(g, "llama.context_length", false, &m->n_ctx_train, 1, e)) ||
        (st = l8_gguf_get_f32(g, "llama.rope.freq_base", false, &m->rope_theta, e)) ||
        (st = l8_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", true, &m->rms_norm_eps, e)))
        return st;
    if (m->n_head % m->n_kv_head != 0 || m->head_dim < 2 || m->head_dim % 2 != 0)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: %d heads, %d kv heads, head size %d are inconsistent", file,
                       m->n_head, m->n_kv_head, m->head_dim);
    if (value_len >= 0 && value_len != m->head_dim)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: value_length %d differs from key_length %d", file, value_len,
                       m->head_dim);
    if (rope_dim >= 0 && rope_dim != m->head_dim)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: partial RoPE (dimension_count %d of %d) is not supported", file,
                       rope_dim, m->head_dim);
    if (!(m->rms_norm_eps > 0.0f && m->rms_norm_eps < 1.0f) || !(m->rope_theta > 0.0f))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rms epsilon %g or rope base %g out of range", file,
                       (double)m->rms_norm_eps, (double)m->rope_theta);
    const char *scal;
    size_t slen = 0;
    if ((st = l8_gguf_get_str(g, "llama.rope.scaling.type", false, &scal, &slen, e))) return st;
    if (slen && !(slen == 4 && memcmp(scal, "none", 4) == 0))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: rope scaling \"%.*s\" is not supported (llama3 only)", file,
                       (int)(slen > 32 ? 32 : slen), scal);
    snprintf(m->rope_scaling, sizeof m->rope_scaling, "none");
    m->rope_factor = m->rope_low_freq_factor = m->rope_high_freq_factor = 1.0f;
    m->rope_original_ctx = m->n_ctx_train;
    m->default_temperature = 0.8f;
    m->default_top_p = 0.95f;
    if ((st = l8_gguf_get_f32(g, "general.sampling.temp", false, &m->default_temperature, e)) ||
        (st = l8_gguf_get_f32(g, "general.sampling.top_p", false, &m->default_top_p, e)))
        return st;
    return LLM8_STATUS_OK;
}

/* bos, the eos ids llama.cpp knows (eos, eot, eom keys) and, as llama.cpp does at load time, the
 * Llama 3 end-of-generation tokens found by name. */
static llm8_status read_special(l8_gguf *g, llm8_model_info *m, l8_err *e) {
    int64_t tkv;
    uint32_t et;
    uint64_t n = 0;
    llm8_status st = l8_gguf_get_arr(g, "tokenizer.ggml.tokens", true, &tkv, &et, &n, NULL, e);
    if (st) return st;
    m->n_vocab = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
    if ((st = get_i32(g, "llama.vocab_size", false, &m->n_vocab, 1, e))) return st;
    if ((uint64_t)m->n_vocab < n)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: llama.vocab_size %d is smaller than the %" PRIu64 " tokens",
                       l8_gguf_name(g), m->n_vocab, n);
    m->bos_id = -1;
    if ((st = get_i32(g, "tokenizer.ggml.bos_token_id", false, &m->bos_id, 0, e))) return st;
    static const char *const eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    for (int i = 0; i < 3; i++) {
        int32_t id = -1;
        if ((st = get_i32(g, eos_keys[i], false, &id, 0, e))) return st;
        add_eos(m, id);
    }
    static const char *const eog[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"};
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const char *s = l8_gguf_arr_str(g, tkv, i, &len);
        for (int k = 0; k < 3; k++)
            if (len == strlen(eog[k]) && memcmp(s, eog[k], len) == 0) add_eos(m, (int32_t)i);
    }
    return LLM8_STATUS_OK;
}

static llm8_status read_rope_freqs(l8_source *src, gguf_impl *h, l8_err *e) {
    const l8_gguf_tensor *t = l8_gguf_find_tensor(h->g, "rope_freqs.weight");
    if (!t) return LLM8_STATUS_OK;
    int64_t half = src->info.head_dim / 2;
    if (t->type != L8_GGML_F32 || t->n_dims != 1 || t->ne[0] != half)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rope_freqs.weight must be %" PRId64 " F32 values", l8_gguf_name(h->g),
                       half);
    if (!(src->rope_freqs = malloc((size_t)half * sizeof(float))))
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", l8_gguf_name(h->g));
    memcpy(src->rope_freqs, t->data, (size_t)half * sizeof(float));
    float mx = 0.0f;
    for (int64_t i = 0; i < half; i++) {
        if (!(src->rope_freqs[i] > 0.0f))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: rope_freqs.weight[%" PRId64 "] is not positive", l8_gguf_name(h->g), i);
        if (src->rope_freqs[i] > mx) mx = src->rope_freqs[i];
    }
    llm8_model_info *m = &src->info;
    snprintf(m->rope_scaling, sizeof m->rope_scaling, "llama3");
    m->rope_factor = mx;
    m->rope_low_freq_factor = 1.0f;
    m->rope_high_freq_factor = 4.0f;
    return LLM8_STATUS_OK;
}

static llm8_status bind_all(l8_source *src, gguf_impl *h, l8_err *e) {
    llm8_model_info *m = &src->info;
    if (!(h->layers = calloc((size_t)m->n_layer, sizeof *h->layers)))
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", l8_gguf_name(h->g));
    llm8_status st;
    if ((st = bind(src, h, L8_ROLE_TOK_EMBD, 0, "token_embd.weight", false, &h->global[L8_ROLE_TOK_EMBD], e)) ||
        (st = bind(src, h, L8_ROLE_OUTPUT_NORM, 0, "output_norm.weight", false, &h->global[L8_ROLE_OUTPUT_NORM], e)) ||
        (st = bind(src, h, L8_ROLE_OUTPUT, 0, "output.weight", true, &h->global[L8_ROLE_OUTPUT], e)))
        return st;
    m->tied_embeddings = h->global[L8_ROLE_OUTPUT] == NULL;
    if (m->tied_embeddings) h->global[L8_ROLE_OUTPUT] = h->global[L8_ROLE_TOK_EMBD];
    for (int32_t l = 0; l < m->n_layer; l++)
        for (int r = L8_ROLE_ATTN_NORM; r < L8_ROLE_COUNT; r++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, layer_names[r]);
            if ((st = bind(src, h, (l8_role)r, l, name, false, &h->layers[l][r], e))) return st;
        }
    /* totals over the model's tensors, the tied output counted once */
    for (int64_t i = 0; i < l8_gguf_n_tensors(h->g); i++) {
        const l8_gguf_tensor *t = l8_gguf_tensor_at(h->g, i);
        if (strcmp(t->name, "rope_freqs.weight") == 0) continue;
        m->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        m->weight_bytes += t->nbytes;
    }
    uint32_t ft = UINT32_MAX;
    if ((st = l8_gguf_get_u32(h->g, "general.file_type", false, &ft, e))) return st;
    const char *dt = ft == 0 ? "f32" : ft == 1 ? "f16" : ft == 7 ? "q8_0" : ft == 32 ? "bf16" : NULL;
    if (!dt) {
        uint32_t t = h->layers[0][L8_ROLE_WQ]->type;
        dt = t == L8_GGML_F32 ? "f32" : t == L8_GGML_F16 ? "f16" : t == L8_GGML_BF16 ? "bf16" : "q8_0";
    }
    snprintf(m->dtype, sizeof m->dtype, "%s", dt);
    return LLM8_STATUS_OK;
}

llm8_status l8_source_open_llamacpp_gguf(const char *path, l8_source **out, l8_err *e) {
    if (!path || !out) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "gguf source: null argument");
    *out = NULL;
    l8_source *src = calloc(1, sizeof *src);
    gguf_impl *h = calloc(1, sizeof *h);
    if (!src || !h) {
        free(src);
        free(h);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    src->impl = h;
    src->read_rows = gguf_read_rows;
    src->close = gguf_close;
    llm8_status st = l8_gguf_open(path, &h->g, e);
    if (!st) st = read_hparams(h->g, &src->info, e);
    if (!st) st = read_special(h->g, &src->info, e);
    if (!st) st = read_rope_freqs(src, h, e);
    if (!st) st = bind_all(src, h, e);
    if (!st)
        st = l8_gguf_tokenizer_json(h->g, &src->tokenizer_json, &src->tokenizer_json_len, &src->tokenizer_config_json,
                                    &src->tokenizer_config_json_len, e);
    if (!st) {
        /* Parse the rebuilt tokenizer now, so that a bad one fails before any writing. */
        llm8_tokenizer *tok = NULL;
        st = l8_tokenizer_from_json(src->tokenizer_json, src->tokenizer_json_len, src->tokenizer_config_json,
                                    src->tokenizer_config_json_len, path, &tok, e);
        if (!st && llm8_tokenizer_n_vocab(tok) > src->info.n_vocab)
            st = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: the tokenizer has %d tokens but llama.vocab_size is %d", path,
                         llm8_tokenizer_n_vocab(tok), src->info.n_vocab);
        llm8_tokenizer_free(tok);
    }
    if (st) {
        l8_source_free(src);
        return st;
    }
    size_t dl = strlen(path) + 64;
    if ((src->description = malloc(dl))) snprintf(src->description, dl, "llama.cpp GGUF %s (%s)", path, src->info.dtype);
    *out = src;
    return LLM8_STATUS_OK;
}
