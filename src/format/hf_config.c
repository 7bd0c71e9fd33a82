#define _POSIX_C_SOURCE 200809L
#include "format/hf_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/json.h"
#include "util/mapfile.h"

#define MAX_EOS ((int)(sizeof(((llm8_model_info *)0)->eos_ids) / sizeof(int32_t)))

/* Accepts LlamaForCausalLM by name; without an architectures list (older or hand-written
 * configs) model_type "llama" is taken to mean the same thing. A list that names something
 * else wins over model_type, because the head and weight names follow the class. */
static llm8_status check_arch(const json_t *root, const char *file, l8_err *e) {
    json_t *archs = json_object_get(root, "architectures");
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"architectures\" must be a list of strings", file);
        size_t i;
        json_t *a;
        json_array_foreach(archs, i, a) {
            if (json_is_string(a) && strcmp(json_string_value(a), "LlamaForCausalLM") == 0) return LLM8_STATUS_OK;
        }
        if (json_array_size(archs) > 0) {
            json_t *a0 = json_array_get(archs, 0);
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: unknown architecture %s (llm8 runs LlamaForCausalLM)", file,
                           json_is_string(a0) ? json_string_value(a0) : "(not a string)");
        }
    }
    json_t *mt = json_object_get(root, "model_type");
    if (json_is_string(mt) && strcmp(json_string_value(mt), "llama") == 0) return LLM8_STATUS_OK;
    if (json_is_string(mt))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: unknown architecture %s (llm8 runs LlamaForCausalLM)", file,
                       json_string_value(mt));
    return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: neither \"architectures\" nor \"model_type\" names the model",
                   file);
}

/* eos_token_id may be one id or a list; ids from every source are merged in order, once each. */
static llm8_status add_eos(llm8_model_info *info, const json_t *v, const char *file, l8_err *e) {
    if (!v || json_is_null(v)) return LLM8_STATUS_OK;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_array(v) && !json_is_integer(v))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"eos_token_id\" must be an integer or a list of integers",
                       file);
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(x))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"eos_token_id\" must be an integer or a list of integers",
                           file);
        json_int_t id = json_integer_value(x);
        if (id < 0 || id >= info->n_vocab)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"eos_token_id\" %lld is outside the vocabulary (%d)", file,
                           (long long)id, info->n_vocab);
        bool dup = false;
        for (int k = 0; k < info->n_eos; k++) dup |= info->eos_ids[k] == (int32_t)id;
        /* Beyond MAX_EOS ids the rest are dropped: generation would merely not stop on them. */
        if (!dup && info->n_eos < MAX_EOS) info->eos_ids[info->n_eos++] = (int32_t)id;
    }
    return LLM8_STATUS_OK;
}

static llm8_status parse_rope_scaling(const json_t *root, llm8_model_info *info, const char *file, l8_err *e) {
    snprintf(info->rope_scaling, sizeof info->rope_scaling, "none");
    info->rope_factor = 1.0f;
    info->rope_low_freq_factor = 1.0f;
    info->rope_high_freq_factor = 1.0f;
    info->rope_original_ctx = info->n_ctx_train;
    json_t *rs = json_object_get(root, "rope_scaling");
    if (!rs || json_is_null(rs)) return LLM8_STATUS_OK;
    if (!json_is_object(rs))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"rope_scaling\" must be null or an object", file);
    json_t *t = json_object_get(rs, "rope_type");
    if (!t || json_is_null(t)) t = json_object_get(rs, "type"); /* the older key */
    if (!json_is_string(t))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: \"rope_scaling\" has no \"rope_type\" string", file);
    const char *type = json_string_value(t);
    if (strcmp(type, "default") == 0) return LLM8_STATUS_OK;
    if (strcmp(type, "llama3") != 0)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                       "%s: rope_scaling type \"%s\" is not supported (llm8 handles none, default and llama3)", file,
                       type);
    double factor = 0, lo = 0, hi = 0;
    long long orig = 0;
    char where[600];
    snprintf(where, sizeof where, "%s: rope_scaling", file);
    llm8_status s;
    if ((s = l8_json_num(rs, "factor", true, 1.0, 1024.0, &factor, where, e)) ||
        (s = l8_json_num(rs, "low_freq_factor", true, 1e-3, 1e3, &lo, where, e)) ||
        (s = l8_json_num(rs, "high_freq_factor", true, 1e-3, 1e3, &hi, where, e)) ||
        (s = l8_json_int(rs, "original_max_position_embeddings", true, 1, 1 << 24, &orig, where, e)))
        return s;
    /* llama3 interpolates between the two wavelengths; equal factors would divide by zero. */
    if (!(hi > lo))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: high_freq_factor %g must exceed low_freq_factor %g", where, hi,
                       lo);
    snprintf(info->rope_scaling, sizeof info->rope_scaling, "llama3");
    info->rope_factor = (float)factor;
    info->rope_low_freq_factor = (float)lo;
    info->rope_high_freq_factor = (float)hi;
    info->rope_original_ctx = (int32_t)orig;
    return LLM8_STATUS_OK;
}

static llm8_status parse_config(const json_t *root, llm8_model_info *info, const char *file, l8_err *e) {
    if (!json_is_object(root)) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: not a JSON object", file);
    llm8_status s = check_arch(root, file, e);
    if (s) return s;

    long long hidden = 0, ff = 0, layers = 0, heads = 0, kv = -1, hd = -1, vocab = 0, ctx = 2048, bos = -1;
    if ((s = l8_json_int(root, "hidden_size", true, 1, 65536, &hidden, file, e)) ||
        (s = l8_json_int(root, "intermediate_size", true, 1, 1 << 20, &ff, file, e)) ||
        (s = l8_json_int(root, "num_hidden_layers", true, 1, 1024, &layers, file, e)) ||
        (s = l8_json_int(root, "num_attention_heads", true, 1, 1024, &heads, file, e)) ||
        (s = l8_json_int(root, "num_key_value_heads", false, 1, 1024, &kv, file, e)) ||
        (s = l8_json_int(root, "head_dim", false, 2, 4096, &hd, file, e)) ||
        (s = l8_json_int(root, "vocab_size", true, 1, 1 << 22, &vocab, file, e)) ||
        (s = l8_json_int(root, "max_position_embeddings", false, 1, 1 << 24, &ctx, file, e)))
        return s;
    if (kv < 0) kv = heads;
    if (heads % kv != 0)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                       "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", file, heads, kv);
    if (hd < 0) {
        if (hidden % heads != 0)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                           "%s: hidden_size %lld is not divisible by num_attention_heads %lld (and no head_dim)", file,
                           hidden, heads);
        hd = hidden / heads;
    }
    if (hd % 2 != 0) /* RoPE rotates pairs */
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: head_dim %lld must be even", file, hd);
    info->n_embd = (int32_t)hidden;
    info->n_ff = (int32_t)ff;
    info->n_layer = (int32_t)layers;
    info->n_head = (int32_t)heads;
    info->n_kv_head = (int32_t)kv;
    info->head_dim = (int32_t)hd;
    info->n_vocab = (int32_t)vocab;
    info->n_ctx_train = (int32_t)ctx;

    double eps = 1e-6, theta = 10000.0;
    if ((s = l8_json_num(root, "rms_norm_eps", false, -1.0, 1.0, &eps, file, e)) ||
        (s = l8_json_num(root, "rope_theta", false, 1.0, 1e12, &theta, file, e)))
        return s;
    /* Checked as the float the model keeps: 1e-65 is > 0 as a double but 0 as a float, and a zero
     * epsilon makes the norm of a zero vector 0/0. The bounds are the ones an llm8 file must
     * meet too (llm8_file.c), so that whatever loads here still loads after conversion. */
    if (!((float)eps > 0 && (float)eps < 1))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"rms_norm_eps\" = %g must be in (0, 1)", file, eps);
    if (!((float)theta > 1))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"rope_theta\" = %g must be > 1", file, theta);
    info->rms_norm_eps = (float)eps;
    info->rope_theta = (float)theta;
    if ((s = parse_rope_scaling(root, info, file, e))) return s;

    bool tied = false, abias = false, mbias = false;
    if ((s = l8_json_bool(root, "tie_word_embeddings", &tied, file, e)) ||
        (s = l8_json_bool(root, "attention_bias", &abias, file, e)) ||
        (s = l8_json_bool(root, "mlp_bias", &mbias, file, e)))
        return s;
    if (abias || mbias)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: %s is true; llm8 runs Llama without bias terms", file,
                       abias ? "attention_bias" : "mlp_bias");
    info->tied_embeddings = tied;
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !json_is_null(act) && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: hidden_act %s is not supported (llm8 runs silu)", file,
                       json_is_string(act) ? json_string_value(act) : "(not a string)");

    if ((s = l8_json_int(root, "bos_token_id", false, 0, vocab - 1, &bos, file, e))) return s;
    info->bos_id = (int32_t)bos;
    return add_eos(info, json_object_get(root, "eos_token_id"), file, e);
}

static llm8_status parse_generation(const json_t *root, llm8_model_info *info, const char *file, l8_err *e) {
    if (!json_is_object(root)) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: not a JSON object", file);
    llm8_status s;
    double temp = info->default_temperature, top_p = info->default_top_p;
    long long bos = info->bos_id;
    if ((s = l8_json_num(root, "temperature", false, 0.0, 100.0, &temp, file, e)) ||
        (s = l8_json_num(root, "top_p", false, 0.0, 1.0, &top_p, file, e)))
        return s;
    /* config.json's bos wins; generation_config only fills a gap. */
    if (info->bos_id < 0 && (s = l8_json_int(root, "bos_token_id", false, 0, info->n_vocab - 1, &bos, file, e)))
        return s;
    info->default_temperature = (float)temp;
    info->default_top_p = (float)top_p;
    info->bos_id = (int32_t)bos;
    return add_eos(info, json_object_get(root, "eos_token_id"), file, e);
}

llm8_status l8_hf_config_load(const char *dir, llm8_model_info *info, l8_err *e) {
    memset(info, 0, sizeof *info);
    snprintf(info->architecture, sizeof info->architecture, "llama");
    info->bos_id = -1;
    info->default_temperature = 0.8f;
    info->default_top_p = 0.95f;

    char *cpath = l8_path_join(dir, "config.json"), *gpath = l8_path_join(dir, "generation_config.json");
    llm8_status s = LLM8_STATUS_OK;
    json_t *root = NULL;
    if (!cpath || !gpath) {
        s = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", dir);
        goto done;
    }
    if ((s = l8_json_load_file(cpath, &root, e))) goto done;
    if ((s = parse_config(root, info, cpath, e))) goto done;
    json_decref(root);
    root = NULL;

    struct stat sb;
    if (stat(gpath, &sb) == 0) { /* optional, but when present it must be valid */
        if ((s = l8_json_load_file(gpath, &root, e))) goto done;
        s = parse_generation(root, info, gpath, e);
    }
done:
    json_decref(root);
    free(cpath);
    free(gpath);
    if (s) {
        /* Leave no half-filled struct behind for a caller who ignores the status. */
        memset(info, 0, sizeof *info);
    }
    return s;
}
