/* tokenizer.ggml.* -> Hugging Face tokenizer JSON (see gguf_tokenizer.h). */
#include "convert/gguf_tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* The split regex of Llama 3's tokenizer.json (llama.cpp's "llama-bpe" pre-tokenizer). */
static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct vocab {
    const l8_gguf *g;
    const char *file;
    int64_t tokens_kv;
    int64_t n;
    const unsigned char *types; /* raw i32 array, or NULL (all normal) */
    const unsigned char *scores; /* raw f32 array, or NULL */
    int32_t bos, eos, unk;
    bool add_bos, add_space_prefix;
    const char *tmpl;
    size_t tmpl_len;
} vocab;

static int32_t tok_type(const vocab *v, int64_t i) {
    if (!v->types) return TT_NORMAL;
    int32_t t;
    memcpy(&t, v->types + 4 * i, 4);
    return t;
}

static float tok_score(const vocab *v, int64_t i) {
    if (!v->scores) return 0.0f;
    float s;
    memcpy(&s, v->scores + 4 * i, 4);
    return s;
}

static const char *tok_str(const vocab *v, int64_t i, size_t *len) { return l8_gguf_arr_str(v->g, v->tokens_kv, (uint64_t)i, len); }

static bool is_added(int32_t type) { return type == TT_CONTROL || type == TT_USER || type == TT_UNKNOWN; }

static llm8_status oom(const vocab *v, l8_err *e) {
    return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory building the tokenizer", v->file);
}

/* json_stringn checks UTF-8; a NULL result is either bad text or memory. */
static llm8_status jstr(const vocab *v, const char *s, size_t len, int64_t id, json_t **out, l8_err *e) {
    *out = json_stringn(s, len);
    if (!*out) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: token %lld is not valid UTF-8", v->file, (long long)id);
    return LLM8_STATUS_OK;
}

static llm8_status add_token_obj(const vocab *v, json_t *arr, int64_t id, l8_err *e) {
    size_t len;
    const char *s = tok_str(v, id, &len);
    json_t *content;
    llm8_status st = jstr(v, s, len, id, &content, e);
    if (st) return st;
    bool special = tok_type(v, id) != TT_USER;
    json_t *o = json_pack("{s:I, s:o, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)id, "content", content,
                          "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", !special, "special", special);
    if (!o || json_array_append_new(arr, o)) return oom(v, e);
    return LLM8_STATUS_OK;
}

/* vocab object over the tokens `keep` accepts; a repeated string keeps its first id. */
static llm8_status build_vocab(const vocab *v, bool all, json_t **out, l8_err *e) {
    json_t *o = json_object();
    if (!o) return oom(v, e);
    for (int64_t i = 0; i < v->n; i++) {
        if (!all && is_added(tok_type(v, i))) continue;
        size_t len;
        const char *s = tok_str(v, i, &len);
        json_t *id = json_integer(i);
        /* Keys must be valid UTF-8 like any JSON text. */
        json_t *chk;
        llm8_status st = jstr(v, s, len, i, &chk, e);
        json_decref(chk);
        if (st || !id) {
            json_decref(id);
            json_decref(o);
            return st ? st : oom(v, e);
        }
        if (json_object_getn(o, s, len)) {
            json_decref(id);
            continue;
        }
        if (json_object_setn_new_nocheck(o, s, len, id)) {
            json_decref(o);
            return oom(v, e);
        }
    }
    *out = o;
    return LLM8_STATUS_OK;
}

/* ---------------------------------------------------------------- SentencePiece merges */

typedef struct merge {
    int32_t left, right, piece;
    float score;
} merge;

static int cmp_merge(const void *a, const void *b) {
    const merge *x = a, *y = b;
    /* best score first; ties keep generation order (piece id, then left id, then right id) */
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->piece != y->piece) return x->piece < y->piece ? -1 : 1;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return (x->right > y->right) - (x->right < y->right);
}

static int32_t lookup(const json_t *vocab_obj, const char *s, size_t len) {
    json_t *id = json_object_getn(vocab_obj, s, len);
    return id ? (int32_t)json_integer_value(id) : -1;
}

static llm8_status spm_merges(const vocab *v, const json_t *vocab_obj, json_t *merges, l8_err *e) {
    size_t n = 0, cap = 1024;
    merge *m = malloc(cap * sizeof *m);
    if (!m) return oom(v, e);
    for (int64_t i = 0; i < v->n; i++) {
        int32_t t = tok_type(v, i);
        if (t != TT_NORMAL && t != TT_USER) continue;
        size_t len;
        const char *s = tok_str(v, i, &len);
        if (lookup(vocab_obj, s, len) != (int32_t)i) continue; /* a repeated string */
        /* splits at character boundaries, as Python slices a str */
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue;
            int32_t l = lookup(vocab_obj, s, k), r = lookup(vocab_obj, s + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                merge *q = realloc(m, (cap *= 2) * sizeof *m);
                if (!q) {
                    free(m);
                    return oom(v, e);
                }
                m = q;
            }
            m[n++] = (merge){l, r, (int32_t)i, tok_score(v, i)};
        }
    }
    qsort(m, n, sizeof *m, cmp_merge);
    llm8_status st = LLM8_STATUS_OK;
    for (size_t i = 0; i < n && !st; i++) {
        size_t ll, rl;
        const char *ls = tok_str(v, m[i].left, &ll), *rs = tok_str(v, m[i].right, &rl);
        char *buf = malloc(ll + rl + 2);
        if (!buf) {
            st = oom(v, e);
            break;
        }
        memcpy(buf, ls, ll);
        buf[ll] = ' ';
        memcpy(buf + ll + 1, rs, rl);
        if (json_array_append_new(merges, json_stringn(buf, ll + rl + 1))) st = oom(v, e);
        free(buf);
    }
    free(m);
    return st;
}

/* ---------------------------------------------------------------- the two models */

static json_t *template_processing(const vocab *v) {
    size_t len;
    const char *bos = tok_str(v, v->bos, &len);
    json_t *id = json_stringn(bos, len);
    if (!id) return NULL;
    return json_pack("{s:s, s:[{s:{s:O, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:O, s:i}}, {s:{s:s, s:i}}, {s:{s:O, s:i}}, "
                     "{s:{s:s, s:i}}], s:{s:{s:O, s:[I], s:[o]}}}",
                     "type", "TemplateProcessing", "single", "SpecialToken", "id", id, "type_id", 0, "Sequence", "id",
                     "A", "type_id", 0, "pair", "SpecialToken", "id", id, "type_id", 0, "Sequence", "id", "A",
                     "type_id", 0, "SpecialToken", "id", id, "type_id", 1, "Sequence", "id", "B", "type_id", 1,
                     "special_tokens", json_string_value(id), "id", id, "ids", (json_int_t)v->bos, "tokens", id);
}

static llm8_status build_spm(const vocab *v, json_t *root, l8_err *e) {
    json_t *vocab_obj, *merges = json_array();
    if (!merges) return oom(v, e);
    llm8_status st = build_vocab(v, true, &vocab_obj, e);
    if (st) {
        json_decref(merges);
        return st;
    }
    if ((st = spm_merges(v, vocab_obj, merges, e))) {
        json_decref(merges);
        json_decref(vocab_obj);
        return st;
    }
    json_t *unk = json_null();
    if (v->unk >= 0) {
        size_t len;
        const char *s = tok_str(v, v->unk, &len);
        json_decref(unk);
        unk = json_stringn(s, len);
    }
    json_t *model = json_pack("{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                              "unk_token", unk ? unk : json_null(), "continuing_subword_prefix", "end_of_word_suffix",
                              "fuse_unk", 1, "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab_obj, "merges",
                              merges);
    json_t *norms = json_array();
    if (norms && v->add_space_prefix)
        json_array_append_new(norms, json_pack("{s:s, s:s}", "type", "Prepend", "prepend", "\xE2\x96\x81"));
    if (norms)
        json_array_append_new(norms, json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ",
                                               "content", "\xE2\x96\x81"));
    json_t *decoders = json_pack("[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]", "type", "Replace",
                                 "pattern", "String", "\xE2\x96\x81", "content", " ", "type", "ByteFallback", "type",
                                 "Fuse", "type", "Strip", "content", " ", "start", v->add_space_prefix ? 1 : 0, "stop",
                                 0);
    if (!model || !norms || !decoders || json_object_set_new(root, "model", model) ||
        json_object_set_new(root, "normalizer", json_pack("{s:s, s:o}", "type", "Sequence", "normalizers", norms)) ||
        json_object_set_new(root, "pre_tokenizer", json_null()) ||
        json_object_set_new(root, "decoder", json_pack("{s:s, s:o}", "type", "Sequence", "decoders", decoders))) {
        if (!model) json_decref(norms), json_decref(decoders);
        return oom(v, e);
    }
    if (v->bos >= 0 && json_object_set_new(root, "post_processor", template_processing(v))) return oom(v, e);
    return LLM8_STATUS_OK;
}

static llm8_status build_gpt2(const vocab *v, json_t *root, l8_err *e) {
    const l8_gguf *g = v->g;
    const char *pre = "";
    size_t pre_len = 0;
    llm8_status st = l8_gguf_get_str(g, "tokenizer.ggml.pre", false, &pre, &pre_len, e);
    if (st) return st;
    if (!(pre_len == 9 && memcmp(pre, "llama-bpe", 9) == 0))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED,
                       "%s: tokenizer.ggml.pre \"%.*s\" is not supported (llm8 knows the gpt2 pre-tokenizer llama-bpe)",
                       v->file, (int)(pre_len > 64 ? 64 : pre_len), pre);
    int64_t mkv;
    uint32_t et;
    uint64_t nm;
    if ((st = l8_gguf_get_arr(g, "tokenizer.ggml.merges", true, &mkv, &et, &nm, NULL, e))) return st;
    if (et != L8_GGUF_STRING)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tokenizer.ggml.merges is not an array of strings", v->file);
    json_t *merges = json_array(), *vocab_obj;
    if (!merges) return oom(v, e);
    for (uint64_t i = 0; i < nm; i++) {
        size_t len;
        const char *s = l8_gguf_arr_str(g, mkv, i, &len);
        json_t *m = json_stringn(s, len);
        if (!m || json_array_append_new(merges, m)) {
            json_decref(merges);
            return m ? oom(v, e) : l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: merge %llu is not valid UTF-8", v->file,
                                           (unsigned long long)i);
        }
    }
    if ((st = build_vocab(v, false, &vocab_obj, e))) {
        json_decref(merges);
        return st;
    }
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                              "byte_fallback", 0, "ignore_merges", 1, "vocab", vocab_obj, "merges", merges);
    json_t *pre_tok = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
                                "pretokenizers", "type", "Split", "pattern", "Regex", LLAMA3_REGEX, "behavior",
                                "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                                "use_regex", 0);
    json_t *dec = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1,
                            "use_regex", 1);
    if (!model || !pre_tok || !dec || json_object_set_new(root, "model", model) ||
        json_object_set_new(root, "normalizer", json_null()) || json_object_set_new(root, "pre_tokenizer", pre_tok) ||
        json_object_set_new(root, "decoder", dec))
        return oom(v, e);
    if (v->bos >= 0) {
        json_t *tp = template_processing(v);
        json_t *pp = json_pack("{s:s, s:[{s:s, s:b, s:b, s:b}, o]}", "type", "Sequence", "processors", "type",
                               "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0, "use_regex", 1, tp);
        if (!tp || !pp || json_object_set_new(root, "post_processor", pp)) return oom(v, e);
    }
    return LLM8_STATUS_OK;
}

/* ---------------------------------------------------------------- entry point */

static llm8_status special_id(const vocab *v, const char *key, int32_t *out, l8_err *e) {
    uint32_t id;
    *out = -1;
    int64_t k = l8_gguf_find_key(v->g, key);
    if (k < 0) return LLM8_STATUS_OK;
    llm8_status st = l8_gguf_get_u32(v->g, key, true, &id, e);
    if (st) return st;
    if ((int64_t)id >= v->n)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: %s = %u is outside the %lld-token vocabulary", v->file, key, id,
                       (long long)v->n);
    *out = (int32_t)id;
    return LLM8_STATUS_OK;
}

static llm8_status dump(const vocab *v, json_t *root, char **out, size_t *len, l8_err *e) {
    *out = json_dumps(root, JSON_COMPACT);
    if (!*out) return oom(v, e);
    *len = strlen(*out);
    return LLM8_STATUS_OK;
}

static llm8_status set_tok_str(const vocab *v, json_t *cfg, const char *key, int32_t id, l8_err *e) {
    if (id < 0) return LLM8_STATUS_OK;
    size_t len;
    const char *s = tok_str(v, id, &len);
    json_t *j;
    llm8_status st = jstr(v, s, len, id, &j, e);
    if (st) return st;
    return json_object_set_new(cfg, key, j) ? oom(v, e) : LLM8_STATUS_OK;
}

llm8_status l8_gguf_tokenizer_json(const l8_gguf *g, char **tok_json, size_t *tok_len, char **cfg_json,
                                   size_t *cfg_len, l8_err *e) {
    *tok_json = *cfg_json = NULL;
    *tok_len = *cfg_len = 0;
    vocab v = {.g = g, .file = l8_gguf_name(g), .add_bos = true, .add_space_prefix = true};
    const char *model = NULL;
    size_t model_len = 0;
    uint32_t et;
    uint64_t n;
    const void *data;
    int64_t kv;
    llm8_status st = l8_gguf_get_str(g, "tokenizer.ggml.model", true, &model, &model_len, e);
    if (!st) st = l8_gguf_get_arr(g, "tokenizer.ggml.tokens", true, &v.tokens_kv, &et, &n, NULL, e);
    if (st) return st;
    if (et != L8_GGUF_STRING || n == 0 || n > INT32_MAX)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tokenizer.ggml.tokens is not a non-empty array of strings", v.file);
    v.n = (int64_t)n;
    if ((st = l8_gguf_get_arr(g, "tokenizer.ggml.token_type", false, &kv, &et, &n, &data, e))) return st;
    if (kv >= 0) {
        if ((et != L8_GGUF_I32 && et != L8_GGUF_U32) || (int64_t)n != v.n)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tokenizer.ggml.token_type is not %lld 32-bit integers", v.file,
                           (long long)v.n);
        v.types = data;
    }
    if ((st = l8_gguf_get_arr(g, "tokenizer.ggml.scores", false, &kv, &et, &n, &data, e))) return st;
    if (kv >= 0) {
        if (et != L8_GGUF_F32 || (int64_t)n != v.n)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tokenizer.ggml.scores is not %lld float32s", v.file,
                           (long long)v.n);
        v.scores = data;
    }
    if ((st = special_id(&v, "tokenizer.ggml.bos_token_id", &v.bos, e)) ||
        (st = special_id(&v, "tokenizer.ggml.eos_token_id", &v.eos, e)) ||
        (st = special_id(&v, "tokenizer.ggml.unknown_token_id", &v.unk, e)) ||
        (st = l8_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &v.add_bos, e)) ||
        (st = l8_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &v.add_space_prefix, e)) ||
        (st = l8_gguf_get_str(g, "tokenizer.chat_template", false, &v.tmpl, &v.tmpl_len, e)))
        return st;

    bool spm = model_len == 5 && memcmp(model, "llama", 5) == 0;
    bool gpt2 = model_len == 4 && memcmp(model, "gpt2", 4) == 0;
    if (!spm && !gpt2)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2)",
                       v.file, (int)(model_len > 64 ? 64 : model_len), model);
    if (spm && v.unk < 0)
        for (int64_t i = 0; i < v.n && v.unk < 0; i++)
            if (tok_type(&v, i) == TT_UNKNOWN) v.unk = (int32_t)i;

    json_t *root = json_pack("{s:s, s:n, s:n}", "version", "1.0", "truncation", "padding");
    json_t *added = json_array(), *cfg = json_object();
    if (!root || !added || !cfg || json_object_set(root, "added_tokens", added)) {
        st = oom(&v, e);
        goto done;
    }
    for (int64_t i = 0; i < v.n && !st; i++)
        if (is_added(tok_type(&v, i))) st = add_token_obj(&v, added, i, e);
    if (!st) st = spm ? build_spm(&v, root, e) : build_gpt2(&v, root, e);
    if (!st) st = set_tok_str(&v, cfg, "bos_token", v.bos, e);
    if (!st) st = set_tok_str(&v, cfg, "eos_token", v.eos, e);
    if (!st) st = set_tok_str(&v, cfg, "unk_token", v.unk, e);
    if (!st && json_object_set_new(cfg, "add_bos_token", json_boolean(v.add_bos && v.bos >= 0))) st = oom(&v, e);
    if (!st && v.tmpl) {
        json_t *t;
        st = jstr(&v, v.tmpl, v.tmpl_len, -1, &t, e);
        if (st) st = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: tokenizer.chat_template is not valid UTF-8", v.file);
        else if (json_object_set_new(cfg, "chat_template", t)) st = oom(&v, e);
    }
    if (!st) st = dump(&v, root, tok_json, tok_len, e);
    if (!st) st = dump(&v, cfg, cfg_json, cfg_len, e);
done:
    json_decref(added);
    json_decref(root);
    json_decref(cfg);
    if (st) {
        free(*tok_json);
        free(*cfg_json);
        *tok_json = *cfg_json = NULL;
    }
    return st;
}
