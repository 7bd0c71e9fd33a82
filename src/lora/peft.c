/*
 * Reading a PEFT LoRA adapter folder: adapter_config.json (LoraConfig) and
 * adapter_model.safetensors, whose keys are what PEFT's get_peft_model_state_dict writes for a
 * LlamaForCausalLM: base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight (r x in) and
 * .lora_B.weight (out x r), likewise for k/v/o_proj and mlp.gate/up/down_proj.
 *
 * Strict on purpose: an adapter that would be applied wrongly (a DoRA magnitude ignored, a bias
 * dropped, a rank pattern misread, a module silently skipped) is refused with the reason, since a
 * half-applied adapter gives plausible but wrong text and nothing else would tell.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "lora/lora.h"
#include "util/json.h"
#include "util/mapfile.h"

static const char *const TARGET_NAMES[L8_LORA_N_TARGETS] = {"q_proj",    "k_proj", "v_proj",   "o_proj",
                                                            "gate_proj", "up_proj", "down_proj"};
/* the module's path inside model.layers.N */
static const char *const TARGET_PATHS[L8_LORA_N_TARGETS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                            "mlp.down_proj"};
#define KEY_PREFIX "base_model.model.model.layers."

const char *l8_lora_target_name(l8_lora_target t) { return t < L8_LORA_N_TARGETS ? TARGET_NAMES[t] : "?"; }

/* [out, in] of a target's weight under info. */
static void target_shape(l8_lora_target t, const llm8_model_info *m, int64_t *out, int64_t *in) {
    int64_t q = (int64_t)m->n_head * m->head_dim, kv = (int64_t)m->n_kv_head * m->head_dim;
    switch (t) {
    case L8_LORA_Q: *out = q, *in = m->n_embd; break;
    case L8_LORA_K:
    case L8_LORA_V: *out = kv, *in = m->n_embd; break;
    case L8_LORA_O: *out = m->n_embd, *in = q; break;
    case L8_LORA_GATE:
    case L8_LORA_UP: *out = m->n_ff, *in = m->n_embd; break;
    default: *out = m->n_embd, *in = m->n_ff; break; /* down */
    }
}

/* ---------------------------------------------------------------- adapter_config.json */

typedef struct peft_config {
    long long rank;
    double alpha;
    bool rslora;
    uint32_t targets;
    bool *layers; /* (n_layer) layers_to_transform, or NULL: every layer */
} peft_config;

static bool json_empty(const json_t *v) {
    return !v || json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

static llm8_status parse_targets(const json_t *tm, const char *file, uint32_t *mask, l8_err *e) {
    if (json_is_string(tm)) {
        /* PEFT matches a string as a regular expression against the full module path; the one
         * string that names a fixed set is "all-linear" (every linear layer but the head). */
        if (!strcmp(json_string_value(tm), "all-linear")) {
            *mask = (1u << L8_LORA_N_TARGETS) - 1;
            return LLM8_STATUS_OK;
        }
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                       "%s: target_modules \"%s\" is a regular expression, which llm8 does not match; list the "
                       "modules instead",
                       file, json_string_value(tm));
    }
    if (!json_is_array(tm) || json_array_size(tm) == 0)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: target_modules must be a non-empty list of module names", file);
    *mask = 0;
    for (size_t i = 0; i < json_array_size(tm); i++) {
        const json_t *v = json_array_get(tm, i);
        if (!json_is_string(v))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: target_modules[%zu] is not a string", file, i);
        const char *name = json_string_value(v);
        int t = 0;
        while (t < L8_LORA_N_TARGETS && strcmp(name, TARGET_NAMES[t])) t++;
        if (t == L8_LORA_N_TARGETS)
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                           "%s: unknown target module \"%s\" (llm8 adapts q_proj, k_proj, v_proj, o_proj, gate_proj, "
                           "up_proj, down_proj)",
                           file, name);
        *mask |= 1u << t;
    }
    return LLM8_STATUS_OK;
}

static llm8_status parse_layers(const json_t *lt, int32_t n_layer, const char *file, bool **out, l8_err *e) {
    *out = NULL;
    if (!lt || json_is_null(lt)) return LLM8_STATUS_OK;
    bool *layers = calloc((size_t)n_layer, sizeof *layers);
    if (!layers) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    size_t n = json_is_array(lt) ? json_array_size(lt) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_is_array(lt) ? json_array_get(lt, i) : lt;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_layer) {
            free(layers);
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                           "%s: layers_to_transform must hold layer numbers in [0, %d) (this model's layers)", file,
                           n_layer);
        }
        layers[json_integer_value(v)] = true;
    }
    *out = layers;
    return LLM8_STATUS_OK;
}

static llm8_status read_config(const char *path, int32_t n_layer, peft_config *c, l8_err *e) {
    json_t *root = NULL;
    llm8_status st = l8_json_load_file(path, &root, e);
    if (st) {
        if (st == LLM8_STATUS_IO_ERROR)
            st = l8_fail(e, st, "%s: cannot open (a PEFT adapter folder holds adapter_config.json and "
                                "adapter_model.safetensors)", path);
        return st;
    }
#define FAIL(status, ...)                                                                                       \
    do {                                                                                                        \
        st = l8_fail(e, status, __VA_ARGS__);                                                                   \
        goto done;                                                                                              \
    } while (0)
    if (!json_is_object(root)) FAIL(LLM8_STATUS_BAD_FORMAT, "%s: not a JSON object", path);
    const json_t *pt = json_object_get(root, "peft_type");
    if (pt && !json_is_null(pt) && !(json_is_string(pt) && !strcmp(json_string_value(pt), "LORA")))
        FAIL(LLM8_STATUS_UNSUPPORTED, "%s: peft_type is %s, not LORA", path,
             json_is_string(pt) ? json_string_value(pt) : "not a string");
    c->rank = 0;
    if ((st = l8_json_int(root, "r", true, 1, 1 << 16, &c->rank, path, e))) goto done;
    c->alpha = 8; /* LoraConfig's default */
    if ((st = l8_json_num(root, "lora_alpha", false, -1e9, 1e9, &c->alpha, path, e))) goto done;
    c->rslora = false;
    if ((st = l8_json_bool(root, "use_rslora", &c->rslora, path, e))) goto done;
    bool flag = false;
    if ((st = l8_json_bool(root, "use_dora", &flag, path, e))) goto done;
    if (flag) FAIL(LLM8_STATUS_UNSUPPORTED, "%s: use_dora is true; DoRA adapters are not supported", path);
    flag = false;
    if ((st = l8_json_bool(root, "fan_in_fan_out", &flag, path, e))) goto done;
    if (flag) FAIL(LLM8_STATUS_UNSUPPORTED, "%s: fan_in_fan_out is true; Llama's projections need it false", path);
    const json_t *bias = json_object_get(root, "bias");
    if (bias && !json_is_null(bias) && !(json_is_string(bias) && !strcmp(json_string_value(bias), "none")))
        FAIL(LLM8_STATUS_UNSUPPORTED, "%s: bias must be \"none\" (adapters that train biases are not supported)", path);
    if (!json_empty(json_object_get(root, "modules_to_save")))
        FAIL(LLM8_STATUS_UNSUPPORTED, "%s: modules_to_save is set; adapters with fully trained modules are not supported",
             path);
    if (!json_empty(json_object_get(root, "rank_pattern")) || !json_empty(json_object_get(root, "alpha_pattern")))
        FAIL(LLM8_STATUS_UNSUPPORTED, "%s: rank_pattern / alpha_pattern are not supported (one r and lora_alpha for all)",
             path);
    const json_t *tm = json_object_get(root, "target_modules");
    if (!tm || json_is_null(tm)) FAIL(LLM8_STATUS_BAD_FORMAT, "%s: missing field \"target_modules\"", path);
    if ((st = parse_targets(tm, path, &c->targets, e))) goto done;
    st = parse_layers(json_object_get(root, "layers_to_transform"), n_layer, path, &c->layers, e);
#undef FAIL
done:
    json_decref(root);
    return st;
}

/* ---------------------------------------------------------------- adapter_model.safetensors */

/* Splits a key into (layer, target, is_b); false for anything else. */
static bool parse_key(const char *key, int64_t *layer, l8_lora_target *t, bool *is_b) {
    size_t np = strlen(KEY_PREFIX);
    if (strncmp(key, KEY_PREFIX, np)) return false;
    const char *p = key + np;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return false;
    int64_t l = 0;
    while (*p >= '0' && *p <= '9') {
        l = l * 10 + (*p++ - '0');
        if (l > 1 << 20) return false;
    }
    if (*p++ != '.') return false;
    for (int i = 0; i < L8_LORA_N_TARGETS; i++) {
        size_t n = strlen(TARGET_PATHS[i]);
        if (strncmp(p, TARGET_PATHS[i], n)) continue;
        const char *rest = p + n;
        if (strcmp(rest, ".lora_A.weight") && strcmp(rest, ".lora_B.weight")) return false;
        *layer = l;
        *t = (l8_lora_target)i;
        *is_b = rest[6] == 'B';
        return true;
    }
    return false;
}

/* Copies a checked tensor to f32 (B transposed into bt), refusing NaN and Inf. */
static llm8_status copy_tensor(const l8_tensor *t, const char *name, const char *file, bool transpose, float *dst,
                               float *row, l8_err *e) {
    int64_t rows = t->shape[0], cols = t->shape[1];
    for (int64_t r = 0; r < rows; r++) {
        l8_tensor_row_f32(t, r, row);
        for (int64_t c = 0; c < cols; c++) {
            if (!isfinite(row[c]))
                return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s holds a NaN or infinite value", file, name);
            if (transpose) dst[c * rows + r] = row[c];
            else dst[r * cols + c] = row[c];
        }
    }
    return LLM8_STATUS_OK;
}

void l8_peft_free(l8_peft *p) {
    if (!p) return;
    if (p->pairs)
        for (size_t i = 0; i < (size_t)p->n_layer * L8_LORA_N_TARGETS; i++) {
            free(p->pairs[i].a);
            free(p->pairs[i].bt);
        }
    free(p->pairs);
    memset(p, 0, sizeof *p);
}

llm8_status l8_peft_load(const char *dir, const llm8_model_info *info, l8_peft *out, l8_err *e) {
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(dir, &sb) != 0) return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: no such LoRA adapter folder", dir);
    if (!S_ISDIR(sb.st_mode))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT,
                       "%s: not a folder (a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors)",
                       dir);
    char *cpath = l8_path_join(dir, "adapter_config.json"), *wpath = l8_path_join(dir, "adapter_model.safetensors");
    peft_config c = {0};
    l8_safetensors *st = NULL;
    float *row = NULL;
    int32_t L = info->n_layer;
    llm8_status s = cpath && wpath ? LLM8_STATUS_OK : l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
    if (!s) s = read_config(cpath, L, &c, e);
    if (!s && access(wpath, R_OK) != 0)
        s = l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: cannot open (a PEFT adapter folder holds adapter_config.json and "
                                             "adapter_model.safetensors; .bin adapters are not supported)", wpath);
    if (!s) s = l8_st_open_file(wpath, &st, e);
    if (s) goto fail;

    out->rank = (int32_t)c.rank;
    out->n_layer = L;
    out->alpha = (float)c.alpha;
    out->rslora = c.rslora;
    out->scaling = (float)(c.rslora ? c.alpha / sqrt((double)c.rank) : c.alpha / (double)c.rank);
    out->targets = c.targets;
    out->pairs = calloc((size_t)L * L8_LORA_N_TARGETS, sizeof *out->pairs);
    size_t widest = (size_t)(info->n_embd > info->n_ff ? info->n_embd : info->n_ff);
    if ((size_t)info->n_head * info->head_dim > widest) widest = (size_t)info->n_head * info->head_dim;
    if ((size_t)c.rank > widest) widest = (size_t)c.rank;
    row = malloc(widest * sizeof(float));
    if (!out->pairs || !row) {
        s = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }

    /* Every tensor must be one the adapter's config explains. */
    for (size_t i = 0; i < l8_st_count(st); i++) {
        const char *name = l8_st_name(st, i);
        int64_t layer;
        l8_lora_target t;
        bool is_b;
        if (!parse_key(name, &layer, &t, &is_b)) {
            s = l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                        "%s: unexpected tensor %s (llm8 reads only " KEY_PREFIX "N.{self_attn,mlp}.X_proj.lora_A/lora_B"
                        ".weight: no DoRA, embedding or bias tensors)",
                        wpath, name);
            goto fail;
        }
        if (layer >= L) {
            s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s is for layer %lld but the model has %d layers", wpath,
                        name, (long long)layer, L);
            goto fail;
        }
        if (!(c.targets & (1u << t))) {
            s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s adapts %s, which is not in target_modules", wpath,
                        name, TARGET_NAMES[t]);
            goto fail;
        }
        if (c.layers && !c.layers[layer]) {
            s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s is for layer %lld, which is not in layers_to_transform",
                        wpath, name, (long long)layer);
            goto fail;
        }
    }

    /* Then every targeted projection of every adapted layer must have both matrices. */
    for (int32_t l = 0; l < L; l++) {
        if (c.layers && !c.layers[l]) continue;
        out->n_layers_adapted++;
        for (int t = 0; t < L8_LORA_N_TARGETS; t++) {
            if (!(c.targets & (1u << t))) continue;
            l8_lora_pair *pr = &out->pairs[(size_t)l * L8_LORA_N_TARGETS + t];
            target_shape((l8_lora_target)t, info, &pr->out, &pr->in);
            const l8_tensor *ta = NULL, *tb = NULL;
            char na[160], nb[160];
            snprintf(na, sizeof na, KEY_PREFIX "%d.%s.lora_A.weight", l, TARGET_PATHS[t]);
            snprintf(nb, sizeof nb, KEY_PREFIX "%d.%s.lora_B.weight", l, TARGET_PATHS[t]);
            if (l8_st_index(st, na) == SIZE_MAX || l8_st_index(st, nb) == SIZE_MAX) {
                s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing tensor %s (%s is in target_modules)", wpath,
                            l8_st_index(st, na) == SIZE_MAX ? na : nb, TARGET_NAMES[t]);
                goto fail;
            }
            if ((s = l8_st_get(st, na, &ta, e)) || (s = l8_st_get(st, nb, &tb, e))) goto fail;
            if (ta->ndim != 2 || tb->ndim != 2) {
                s = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tensor %s is not a matrix", wpath, ta->ndim != 2 ? na : nb);
                goto fail;
            }
            if (ta->shape[0] != c.rank || tb->shape[1] != c.rank) {
                bool a_bad = ta->shape[0] != c.rank;
                s = l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                            "%s: rank mismatch: tensor %s has rank %lld but adapter_config.json says r = %lld", wpath,
                            a_bad ? na : nb, (long long)(a_bad ? ta->shape[0] : tb->shape[1]), c.rank);
                goto fail;
            }
            if (ta->shape[1] != pr->in || tb->shape[0] != pr->out) {
                bool a_bad = ta->shape[1] != pr->in;
                const l8_tensor *bad = a_bad ? ta : tb;
                s = l8_fail(e, LLM8_STATUS_BAD_FORMAT,
                            "%s: wrong shape: tensor %s is [%lld, %lld] but this model's %s needs [%lld, %lld]", wpath,
                            a_bad ? na : nb, (long long)bad->shape[0], (long long)bad->shape[1], TARGET_NAMES[t],
                            (long long)(a_bad ? c.rank : pr->out), (long long)(a_bad ? pr->in : c.rank));
                goto fail;
            }
            pr->a = malloc((size_t)(c.rank * pr->in) * sizeof(float));
            pr->bt = malloc((size_t)(c.rank * pr->out) * sizeof(float));
            if (!pr->a || !pr->bt) {
                s = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "out of memory");
                goto fail;
            }
            if ((s = copy_tensor(ta, na, wpath, false, pr->a, row, e))) goto fail;
            if ((s = copy_tensor(tb, nb, wpath, true, pr->bt, row, e))) goto fail;
        }
    }
    goto done;
fail:
    l8_peft_free(out);
done:
    if (st) l8_st_close(st);
    free(row);
    free(c.layers);
    free(cpath);
    free(wpath);
    return s;
}
