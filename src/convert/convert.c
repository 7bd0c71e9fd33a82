/*
 * The converter: reads a source tensor by tensor, 16 rows at a time, quantizes, and streams the
 * result into a GGUF file. Memory stays bounded by one tile of rows plus one tensor's scales,
 * whatever the model's size. The layout is docs/FORMAT.md.
 */
#include "convert/convert.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format/gguf.h"
#include "lora/lora.h"

static const char *const ROLE_NAMES[L8_ROLE_COUNT] = {
    "token_embd", "output_norm", "output",   "attn_norm", "attn_q",   "attn_k",
    "attn_v",     "attn_output", "ffn_norm", "ffn_gate",  "ffn_up",   "ffn_down",
};

void l8_role_name(l8_role role, int32_t layer, char *buf, size_t cap) {
    if (l8_role_per_layer(role)) snprintf(buf, cap, "blk.%d.%s", layer, ROLE_NAMES[role]);
    else snprintf(buf, cap, "%s", ROLE_NAMES[role]);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One tensor of the output file, as planned before any data is written. */
typedef struct plan {
    l8_role role;
    int32_t layer;
    int64_t rows, cols; /* logical; cols 0 for a vector */
    l8_dtype dtype;
    int32_t group;
} plan;

static uint32_t ggml_float_type(l8_dtype dt) {
    return dt == L8_DTYPE_F16 ? L8_GGML_F16 : dt == L8_DTYPE_BF16 ? L8_GGML_BF16 : L8_GGML_F32;
}

static bool is_quant(l8_dtype dt) { return dt == L8_DTYPE_Q8 || dt == L8_DTYPE_Q4; }

/* Declares a plan's tensor(s): data (".weight") and, quantized, scales (".scale"). */
static llm8_status declare(l8_gguf_writer *w, const plan *p, uint64_t *bytes, l8_err *e) {
    char base[96], name[112];
    l8_role_name(p->role, p->layer, base, sizeof base);
    snprintf(name, sizeof name, "%s.weight", base);
    llm8_status st;
    if (!is_quant(p->dtype)) {
        int64_t ne[2] = {p->cols ? p->cols : p->rows, p->cols ? p->rows : 1};
        uint64_t nb = (uint64_t)(p->rows * (p->cols ? p->cols : 1)) * l8_dtype_size(p->dtype);
        *bytes = nb;
        return l8_gguf_add_tensor(w, name, ggml_float_type(p->dtype), p->cols ? 2 : 1, ne, nb, e);
    }
    int64_t np = l8_q_rows_padded(p->rows), kp = l8_q_cols_padded(p->dtype, p->cols);
    int64_t ng = l8_q_n_groups(p->cols, p->group);
    int64_t ne_d[2] = {p->dtype == L8_DTYPE_Q4 ? kp / 2 : kp, np};
    size_t db = l8_q_data_bytes(p->dtype, p->rows, p->cols), sb = l8_q_scale_bytes(p->dtype, p->rows, p->cols, p->group);
    if ((st = l8_gguf_add_tensor(w, name, L8_GGML_I8, 2, ne_d, db, e))) return st;
    snprintf(name, sizeof name, "%s.scale", base);
    int64_t ne_s[2] = {L8_TILE_ROWS * ng, np / L8_TILE_ROWS};
    *bytes = db + sb;
    return l8_gguf_add_tensor(w, name, p->dtype == L8_DTYPE_Q4 ? L8_GGML_F16 : L8_GGML_F32, 2, ne_s, sb, e);
}

/* Streams one tensor's data (and scales) from the source into the writer. */
static llm8_status write_tensor(l8_source *src, l8_gguf_writer *w, const plan *p, l8_err *e) {
    llm8_status st = LLM8_STATUS_OK;
    if (!p->cols) { /* a norm vector: stored as is */
        float *v = malloc((size_t)p->rows * sizeof(float));
        if (!v) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
        st = src->read_rows(src, p->role, p->layer, 0, p->rows, v, e);
        if (!st) st = l8_gguf_write_data(w, v, (size_t)p->rows * sizeof(float), e);
        free(v);
        return st;
    }
    int64_t tile_rows = L8_TILE_ROWS;
    float *rows = malloc((size_t)(tile_rows * p->cols) * sizeof(float));
    void *out = NULL, *scales = NULL;
    size_t tile_data = 0, tile_scales = 0;
    if (is_quant(p->dtype)) {
        tile_data = l8_q_data_bytes(p->dtype, L8_TILE_ROWS, p->cols);
        tile_scales = l8_q_scale_bytes(p->dtype, L8_TILE_ROWS, p->cols, p->group);
        out = malloc(tile_data);
        scales = malloc(l8_q_scale_bytes(p->dtype, p->rows, p->cols, p->group));
    } else {
        out = malloc((size_t)(tile_rows * p->cols) * l8_dtype_size(p->dtype));
        scales = malloc(1);
    }
    if (!rows || !out || !scales) st = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    int64_t n_tiles = (p->rows + tile_rows - 1) / tile_rows;
    for (int64_t t = 0; !st && t < n_tiles; t++) {
        int64_t r0 = t * tile_rows, n = p->rows - r0 < tile_rows ? p->rows - r0 : tile_rows;
        st = src->read_rows(src, p->role, p->layer, r0, n, rows, e);
        if (st) break;
        if (is_quant(p->dtype)) {
            /* tile t of the matrix is a contiguous block of the data; its scales are a
             * contiguous block of the scale tensor, written after all the data */
            l8_q_quantize_tile(p->dtype, p->group, rows, n, p->cols, 0, out, (char *)scales + (size_t)t * tile_scales);
            st = l8_gguf_write_data(w, out, tile_data, e);
        } else {
            size_t count = (size_t)(n * p->cols);
            if (p->dtype == L8_DTYPE_F32) {
                memcpy(out, rows, count * sizeof(float));
            } else {
                uint16_t *h = out;
                for (size_t i = 0; i < count; i++)
                    h[i] = p->dtype == L8_DTYPE_F16 ? l8_f32_to_f16(rows[i]) : l8_f32_to_bf16(rows[i]);
            }
            st = l8_gguf_write_data(w, out, count * l8_dtype_size(p->dtype), e);
        }
    }
    if (!st && is_quant(p->dtype))
        st = l8_gguf_write_data(w, scales, l8_q_scale_bytes(p->dtype, p->rows, p->cols, p->group), e);
    free(rows);
    free(out);
    free(scales);
    return st;
}

/* ---------------------------------------------------------------- metadata */

static llm8_status write_metadata(l8_gguf_writer *w, const l8_source *src, l8_qtype qt, l8_err *e) {
    const llm8_model_info *m = &src->info;
    llm8_status st = LLM8_STATUS_OK;
#define TRY(call)                                                                                               \
    do {                                                                                                        \
        if ((st = (call))) return st;                                                                           \
    } while (0)
    TRY(l8_gguf_add_str(w, "general.architecture", "llama", 5, e));
    TRY(l8_gguf_add_u32(w, "llm8.format_version", L8_FORMAT_VERSION, e));
    const char *qn = l8_qtype_name(qt);
    TRY(l8_gguf_add_str(w, "llm8.quant", qn, strlen(qn), e));
    /* 0: per output channel (w8a8) or not quantized */
    uint32_t group = qt == L8_QTYPE_W8A8 || !is_quant(l8_qtype_dtype(qt)) ? 0 : (uint32_t)l8_qtype_group(qt, 1 << 30);
    TRY(l8_gguf_add_u32(w, "llm8.group_size", group, e));
    TRY(l8_gguf_add_str(w, "llm8.layout", "tile16x4", 8, e));
    char made[64];
    snprintf(made, sizeof made, "llm8 %s convert", llm8_version());
    TRY(l8_gguf_add_str(w, "llm8.created_by", made, strlen(made), e));
    if (src->description) TRY(l8_gguf_add_str(w, "llm8.source", src->description, strlen(src->description), e));
    TRY(l8_gguf_add_u32(w, "llama.context_length", (uint32_t)m->n_ctx_train, e));
    TRY(l8_gguf_add_u32(w, "llama.embedding_length", (uint32_t)m->n_embd, e));
    TRY(l8_gguf_add_u32(w, "llama.feed_forward_length", (uint32_t)m->n_ff, e));
    TRY(l8_gguf_add_u32(w, "llama.block_count", (uint32_t)m->n_layer, e));
    TRY(l8_gguf_add_u32(w, "llama.attention.head_count", (uint32_t)m->n_head, e));
    TRY(l8_gguf_add_u32(w, "llama.attention.head_count_kv", (uint32_t)m->n_kv_head, e));
    TRY(l8_gguf_add_u32(w, "llama.attention.key_length", (uint32_t)m->head_dim, e));
    TRY(l8_gguf_add_u32(w, "llama.attention.value_length", (uint32_t)m->head_dim, e));
    TRY(l8_gguf_add_u32(w, "llama.rope.dimension_count", (uint32_t)m->head_dim, e));
    TRY(l8_gguf_add_f32(w, "llama.rope.freq_base", m->rope_theta, e));
    TRY(l8_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", m->rms_norm_eps, e));
    TRY(l8_gguf_add_u32(w, "llama.vocab_size", (uint32_t)m->n_vocab, e));
    TRY(l8_gguf_add_str(w, "llama.rope.scaling.type", m->rope_scaling, strlen(m->rope_scaling), e));
    TRY(l8_gguf_add_f32(w, "llama.rope.scaling.factor", m->rope_factor, e));
    TRY(l8_gguf_add_u32(w, "llama.rope.scaling.original_context_length", (uint32_t)m->rope_original_ctx, e));
    TRY(l8_gguf_add_f32(w, "llm8.rope.scaling.low_freq_factor", m->rope_low_freq_factor, e));
    TRY(l8_gguf_add_f32(w, "llm8.rope.scaling.high_freq_factor", m->rope_high_freq_factor, e));
    TRY(l8_gguf_add_bool(w, "llm8.tie_word_embeddings", m->tied_embeddings, e));
    TRY(l8_gguf_add_i32(w, "tokenizer.ggml.bos_token_id", m->bos_id, e));
    TRY(l8_gguf_add_arr_i32(w, "llm8.eos_token_ids", m->eos_ids, (size_t)m->n_eos, e));
    TRY(l8_gguf_add_f32(w, "llm8.generation.temperature", m->default_temperature, e));
    TRY(l8_gguf_add_f32(w, "llm8.generation.top_p", m->default_top_p, e));
    const char *rot = src->rot_ffn ? "hadamard" : "none";
    TRY(l8_gguf_add_str(w, "llm8.rotation", rot, strlen(rot), e));
    TRY(l8_gguf_add_str(w, "tokenizer.huggingface.json", src->tokenizer_json, src->tokenizer_json_len, e));
    if (src->tokenizer_config_json) {
        TRY(l8_gguf_add_str(w, "llm8.tokenizer_config_json", src->tokenizer_config_json,
                            src->tokenizer_config_json_len, e));
        /* the chat template also under its standard key, for other GGUF tools */
        json_t *cfg = json_loadb(src->tokenizer_config_json, src->tokenizer_config_json_len, 0, NULL);
        json_t *tmpl = cfg ? json_object_get(cfg, "chat_template") : NULL;
        if (json_is_string(tmpl))
            st = l8_gguf_add_str(w, "tokenizer.chat_template", json_string_value(tmpl), json_string_length(tmpl), e);
        json_decref(cfg);
        if (st) return st;
    }
#undef TRY
    return LLM8_STATUS_OK;
}

/* ---------------------------------------------------------------- the conversion */

llm8_status l8_convert(l8_source *src, const char *out_path, l8_qtype qt, l8_convert_progress_fn progress,
                       void *user, l8_convert_report *report, l8_err *e) {
    const llm8_model_info *m = &src->info;
    l8_convert_report rep = {0};
    double t0 = now_s();
    l8_dtype lin = l8_qtype_dtype(qt);
    /* embeddings and the output head: int8 per row whatever the linear layers get */
    l8_dtype head = is_quant(lin) ? L8_DTYPE_Q8 : lin;

    int32_t max_plans = 3 + 9 * m->n_layer;
    plan *plans = calloc((size_t)max_plans, sizeof *plans);
    if (!plans) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    int32_t np = 0;
    for (l8_role r = 0; r < L8_ROLE_COUNT; r++) {
        if (r == L8_ROLE_OUTPUT && m->tied_embeddings) continue; /* the embedding serves as the head */
        for (int32_t l = 0; l < (l8_role_per_layer(r) ? m->n_layer : 1); l++) {
            plan *p = &plans[np++];
            p->role = r;
            p->layer = l;
            l8_role_shape(r, m, &p->rows, &p->cols);
            if (!p->cols) p->dtype = L8_DTYPE_F32;
            else if (r == L8_ROLE_TOK_EMBD || r == L8_ROLE_OUTPUT) p->dtype = head, p->group = (int32_t)p->cols;
            else p->dtype = lin, p->group = is_quant(lin) ? l8_qtype_group(qt, p->cols) : 0;
        }
    }

    l8_gguf_writer *w = NULL;
    uint64_t *sizes = calloc((size_t)np, sizeof *sizes);
    llm8_status st = sizes ? l8_gguf_writer_create(out_path, 64, &w, e)
                           : l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    if (!st) st = write_metadata(w, src, qt, e);
    for (int32_t i = 0; !st && i < np; i++) st = declare(w, &plans[i], &sizes[i], e);
    if (!st && src->rope_freqs) {
        int64_t ne[1] = {m->head_dim / 2};
        st = l8_gguf_add_tensor(w, "rope_freqs.weight", L8_GGML_F32, 1, ne, (uint64_t)(m->head_dim / 2) * 4, e);
    }
    static const char *const rot_names[2][2] = {{"rot_embd.signs", "rot_embd.mix"}, {"rot_ffn.signs", "rot_ffn.mix"}};
    const l8_rot *rots[2] = {src->rot_embd, src->rot_ffn};
    for (int i = 0; i < 2 && !st; i++) {
        if (!rots[i]) continue;
        int64_t ne_s[1] = {rots[i]->n}, ne_m[2] = {rots[i]->m, rots[i]->m};
        st = l8_gguf_add_tensor(w, rot_names[i][0], L8_GGML_F32, 1, ne_s, (uint64_t)rots[i]->n * 4, e);
        if (!st && rots[i]->m > 1)
            st = l8_gguf_add_tensor(w, rot_names[i][1], L8_GGML_F32, 2, ne_m, (uint64_t)rots[i]->m * rots[i]->m * 4, e);
    }
    if (!st && src->final_norm) {
        int64_t ne[1] = {m->n_embd};
        st = l8_gguf_add_tensor(w, "rot_embd.norm", L8_GGML_F32, 1, ne, (uint64_t)m->n_embd * 4, e);
    }
    uint64_t norms_bytes = (uint64_t)m->n_layer * m->n_embd * 4;
    if (!st && src->layer_norms) {
        int64_t ne[2] = {m->n_embd, m->n_layer};
        st = l8_gguf_add_tensor(w, L8_ROT_ATTN_NORMS, L8_GGML_F32, 2, ne, norms_bytes, e);
        if (!st) st = l8_gguf_add_tensor(w, L8_ROT_FFN_NORMS, L8_GGML_F32, 2, ne, norms_bytes, e);
    }
    if (!st) st = l8_gguf_begin_data(w, e);
    for (int32_t i = 0; !st && i < np; i++) {
        double ts = now_s();
        st = write_tensor(src, w, &plans[i], e);
        rep.bytes_by_dtype[plans[i].dtype] += sizes[i];
        if (!st && progress) {
            char name[96];
            l8_role_name(plans[i].role, plans[i].layer, name, sizeof name);
            l8_convert_progress pr = {i + 1, np, name, l8_dtype_name(plans[i].dtype), (double)sizes[i], now_s() - ts};
            progress(user, &pr);
        }
    }
    if (!st && src->rope_freqs) st = l8_gguf_write_data(w, src->rope_freqs, (size_t)(m->head_dim / 2) * 4, e);
    for (int i = 0; i < 2 && !st; i++) {
        if (!rots[i]) continue;
        st = l8_gguf_write_data(w, rots[i]->signs, (size_t)rots[i]->n * 4, e);
        if (!st && rots[i]->m > 1) st = l8_gguf_write_data(w, rots[i]->mix, (size_t)rots[i]->m * rots[i]->m * 4, e);
    }
    if (!st && src->final_norm) st = l8_gguf_write_data(w, src->final_norm, (size_t)m->n_embd * 4, e);
    if (!st && src->layer_norms) st = l8_gguf_write_data(w, src->layer_norms, 2 * (size_t)norms_bytes, e);
    if (!st) st = l8_gguf_writer_finish(w, e);
    l8_gguf_writer_free(w);
    if (!st) {
        FILE *f = fopen(out_path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            rep.file_bytes = (uint64_t)ftell(f);
            fclose(f);
        }
        rep.n_tensors = np;
        rep.seconds = now_s() - t0;
        if (report) *report = rep;
    }
    free(sizes);
    free(plans);
    return st;
}
