/* Builds a tokenizer from tokenizer.json / tokenizer_config.json text: vocabulary, merges,
 * added tokens, BOS/EOS and the chat template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bytelevel.h"
#include "tokenizer/load_internal.h"
#include "util/json.h"

/* Far above any real vocabulary; keeps sizes in 32 bits and rejects absurd ids early. */
#define L8_MAX_VOCAB (1 << 24)

typedef struct load_ctx {
    llm8_tokenizer *tok;
    const char *file, *cfg_file;
    l8_err *e;
    size_t arena_len, arena_cap;
} load_ctx;

static llm8_status oom(load_ctx *c) { return l8_fail(c->e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", c->file); }

static void *xcalloc(size_t n, size_t size) { return n ? calloc(n, size) : calloc(1, 1); }

/* Appends a NUL-terminated copy of s to the piece arena (sized in advance) and returns its offset. */
static uint32_t arena_add(load_ctx *c, const char *s, size_t len) {
    uint32_t off = (uint32_t)c->arena_len;
    memcpy(c->tok->pieces + off, s, len);
    c->tok->pieces[off + len] = 0;
    c->arena_len += len + 1;
    return off;
}

static llm8_status read_id(load_ctx *c, const json_t *v, const char *what, const char *s, int32_t *id) {
    if (!json_is_integer(v))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: id of %s \"%.60s\" is not an integer", c->file, what, s);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x >= L8_MAX_VOCAB)
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: id %lld of %s \"%.60s\" is out of range", c->file,
                       (long long)x, what, s);
    *id = (int32_t)x;
    return LLM8_STATUS_OK;
}

static int cmp_added(const void *pa, const void *pb) {
    const l8_added_token *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(a->content, b->content, n);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

/* Vocabulary and added tokens: sizes the id space, fills the piece arena and the lookup map. */
static llm8_status load_vocab(load_ctx *c, const json_t *vocab, const json_t *added) {
    llm8_tokenizer *tok = c->tok;
    llm8_status st;
    int32_t max_id = -1;
    size_t bytes = 0;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)vocab, key, klen, v) {
        int32_t id = 0;
        if ((st = read_id(c, v, "vocabulary entry", key, &id))) return st;
        if (id > max_id) max_id = id;
        bytes += klen + 1;
    }
    size_t n_added = json_array_size(added);
    for (size_t i = 0; i < n_added; i++) {
        json_t *a = json_array_get(added, i);
        const char *s;
        size_t len;
        if (!json_is_object(a) || !l8_jstr(json_object_get(a, "content"), &s, &len) || len == 0)
            return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: added_tokens[%zu] has no \"content\" string",
                           c->file, i);
        int32_t id = 0;
        if ((st = read_id(c, json_object_get(a, "id"), "added token", s, &id))) return st;
        if (id > max_id) max_id = id;
        bytes += len + 1;
    }
    if (max_id < 0) return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: the vocabulary is empty", c->file);
    if (bytes >= UINT32_MAX) return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: vocabulary too large", c->file);
    tok->n_vocab = max_id + 1;
    size_t n = (size_t)tok->n_vocab;
    tok->pieces = malloc(bytes + 1);
    tok->piece_off = xcalloc(n, sizeof *tok->piece_off);
    tok->piece_len = xcalloc(n, sizeof *tok->piece_len);
    tok->flags = xcalloc(n, 1);
    tok->added = xcalloc(n_added, sizeof *tok->added);
    if (!tok->pieces || !tok->piece_off || !tok->piece_len || !tok->flags || !tok->added) return oom(c);
    if (!l8_strmap_init(&tok->vocab, json_object_size(vocab))) return oom(c);

    json_object_keylen_foreach((json_t *)vocab, key, klen, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (tok->flags[id] & L8_TOKF_PIECE)
            return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: id %d appears twice in the vocabulary (\"%.60s\")",
                           c->file, id, key);
        tok->piece_off[id] = arena_add(c, key, klen);
        tok->piece_len[id] = (uint32_t)klen;
        tok->flags[id] = L8_TOKF_PIECE;
        if (!l8_strmap_put(&tok->vocab, tok->pieces + tok->piece_off[id], klen, id)) return oom(c);
    }
    for (size_t i = 0; i < n_added; i++) {
        json_t *a = json_array_get(added, i);
        l8_added_token *t = &tok->added[tok->n_added++];
        const char *s = "";
        size_t len = 0;
        l8_jstr(json_object_get(a, "content"), &s, &len);
        t->id = (int32_t)json_integer_value(json_object_get(a, "id"));
        t->special = json_is_true(json_object_get(a, "special"));
        t->lstrip = json_is_true(json_object_get(a, "lstrip"));
        t->rstrip = json_is_true(json_object_get(a, "rstrip"));
        t->single_word = json_is_true(json_object_get(a, "single_word"));
        /* An added token usually repeats its vocabulary entry; otherwise its content names the id. */
        if (!(tok->flags[t->id] & L8_TOKF_PIECE) || tok->piece_len[t->id] != len ||
            memcmp(tok->pieces + tok->piece_off[t->id], s, len) != 0) {
            tok->piece_off[t->id] = arena_add(c, s, len);
            tok->piece_len[t->id] = (uint32_t)len;
        }
        t->content = tok->pieces + tok->piece_off[t->id];
        t->len = (uint32_t)len;
        tok->flags[t->id] |= L8_TOKF_PIECE | L8_TOKF_ADDED | (t->special ? L8_TOKF_SPECIAL : 0);
    }
    qsort(tok->added, tok->n_added, sizeof *tok->added, cmp_added);
    size_t j = 0;
    for (unsigned b = 0; b < 256; b++) {
        tok->added_first[b] = (uint32_t)j;
        while (j < tok->n_added && (unsigned char)tok->added[j].content[0] == b) j++;
    }
    tok->added_first[256] = (uint32_t)j;
    return LLM8_STATUS_OK;
}

/* Merges come as "left right" strings or, in newer files, as [left, right] arrays. */
static llm8_status load_merges(load_ctx *c, const json_t *merges) {
    llm8_tokenizer *tok = c->tok;
    size_t n = json_array_size(merges);
    if (n >= INT32_MAX) return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: too many merges", c->file);
    if (!l8_pairmap_init(&tok->merges, n)) return oom(c);
    char *buf = NULL;
    size_t buf_cap = 0;
    llm8_status st = LLM8_STATUS_OK;
    for (size_t i = 0; i < n && !st; i++) {
        json_t *m = json_array_get(merges, i);
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            const char *sp = memchr(s, ' ', len);
            if (sp && !memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
                l = s, ll = (size_t)(sp - s), r = sp + 1, rl = len - ll - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2) {
            if (!l8_jstr(json_array_get(m, 0), &l, &ll) || !l8_jstr(json_array_get(m, 1), &r, &rl)) l = NULL;
        }
        if (!l || ll == 0 || rl == 0) {
            st = l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: merges[%zu] is not a pair of tokens", c->file, i);
            break;
        }
        if (ll + rl > buf_cap) {
            free(buf);
            buf_cap = 2 * (ll + rl);
            if (!(buf = malloc(buf_cap))) {
                st = oom(c);
                break;
            }
        }
        memcpy(buf, l, ll);
        memcpy(buf + ll, r, rl);
        int32_t a = l8_strmap_get(&tok->vocab, l, ll), b = l8_strmap_get(&tok->vocab, r, rl);
        int32_t ab = l8_strmap_get(&tok->vocab, buf, ll + rl);
        if (a < 0 || b < 0 || ab < 0) {
            st = l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: merges[%zu] \"%.*s %.*s\" uses a token not in the vocabulary",
                         c->file, i, (int)(ll > 40 ? 40 : ll), l, (int)(rl > 40 ? 40 : rl), r);
            break;
        }
        if (!l8_pairmap_put(&tok->merges, a, b, (int32_t)i, ab)) st = oom(c);
    }
    free(buf);
    return st;
}

static llm8_status load_model(load_ctx *c, const json_t *root) {
    llm8_tokenizer *tok = c->tok;
    llm8_status st;
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: missing \"model\" object", c->file);
    const json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: model \"type\" is not a string", c->file);
    if (type && strcmp(json_string_value(type), "BPE") != 0)
        return l8_fail(c->e, LLM8_STATUS_UNSUPPORTED, "%s: model type \"%s\" is not supported (only BPE)", c->file,
                       json_string_value(type));
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: missing \"model.vocab\" object", c->file);
    if (!json_is_array(merges))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: missing \"model.merges\" array", c->file);
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added))
        return l8_fail(c->e, LLM8_STATUS_BAD_FORMAT, "%s: \"added_tokens\" is not an array", c->file);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const json_t *a = json_object_get(model, affixes[i]);
        if (a && !json_is_null(a) && !(json_is_string(a) && json_string_length(a) == 0))
            return l8_fail(c->e, LLM8_STATUS_UNSUPPORTED, "%s: BPE \"%s\" is not supported", c->file, affixes[i]);
    }
    if ((st = load_vocab(c, vocab, json_is_array(added) ? added : NULL))) return st;
    if ((st = load_merges(c, merges))) return st;
    tok->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    tok->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    tok->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    tok->unk_id = -1;
    const char *s;
    size_t len;
    if (l8_jstr(json_object_get(model, "unk_token"), &s, &len)) tok->unk_id = l8_tokenizer_find(tok, s, len);
    return LLM8_STATUS_OK;
}

/* Byte tokens: the mapped character of each byte (byte-level) or <0xXX> (byte fallback). */
static void find_byte_ids(llm8_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t len;
        if (tok->byte_level) {
            len = l8_bytelevel_encode((const char *)&(unsigned char){(unsigned char)b}, 1, s);
        } else {
            len = (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
        }
        tok->byte_ids[b] = l8_strmap_get(&tok->vocab, s, len);
    }
}

/* True when no vocabulary piece has U+2581 right after a character other than U+2581. */
static bool words_independent(const llm8_tokenizer *tok) {
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (!(tok->flags[id] & L8_TOKF_PIECE) || (tok->flags[id] & L8_TOKF_ADDED)) continue;
        const char *p = tok->pieces + tok->piece_off[id];
        size_t len = tok->piece_len[id];
        for (size_t i = 1; i + 3 <= len; i++)
            if (memcmp(p + i, "\xE2\x96\x81", 3) == 0 && !(i >= 3 && memcmp(p + i - 3, "\xE2\x96\x81", 3) == 0))
                return false;
    }
    return true;
}

/* "bos_token" may be a string or an AddedToken object {"content": ...}. */
static const json_t *token_field(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? v : NULL;
}

static char *dup_json_string(const json_t *v) {
    size_t len = json_string_length(v);
    char *s = malloc(len + 1);
    if (s) memcpy(s, json_string_value(v), len + 1);
    return s;
}

/* The first special token of a TemplateProcessing "single" template, found at the top level
 * or inside a Sequence post-processor; NULL when the template does not start with one. */
static const json_t *template_first_special(const json_t *pp) {
    if (!json_is_object(pp)) return NULL;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (type && strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pp, "processors");
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *r = template_first_special(json_array_get(list, i));
            if (r) return r;
        }
        return NULL;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0) return NULL;
    const json_t *first = json_array_get(json_object_get(pp, "single"), 0);
    const json_t *sp = json_object_get(first, "SpecialToken");
    const json_t *id = json_object_get(sp, "id");
    return json_is_string(id) ? id : NULL;
}

static llm8_status load_config(load_ctx *c, const json_t *root, const json_t *cfg) {
    llm8_tokenizer *tok = c->tok;
    tok->bos_id = tok->eos_id = -1;
    const json_t *tmpl_bos = template_first_special(json_object_get(root, "post_processor"));
    tok->add_bos = tmpl_bos != NULL;
    const json_t *bos = tmpl_bos, *eos = NULL;
    if (cfg) {
        const json_t *ab = json_object_get(cfg, "add_bos_token");
        if (json_is_boolean(ab)) tok->add_bos = json_is_true(ab);
        if (token_field(cfg, "bos_token")) bos = token_field(cfg, "bos_token");
        eos = token_field(cfg, "eos_token");
        const json_t *ct = json_object_get(cfg, "chat_template");
        if (json_is_array(ct)) {
            /* Several named templates: use "default", else the first. */
            const json_t *pick = NULL;
            for (size_t i = 0; i < json_array_size(ct); i++) {
                const json_t *t = json_array_get(ct, i);
                const char *nm = json_string_value(json_object_get(t, "name"));
                if (!pick || (nm && strcmp(nm, "default") == 0)) pick = t;
            }
            ct = json_object_get(pick, "template");
        }
        if (json_is_string(ct) && !(tok->chat_template = dup_json_string(ct))) return oom(c);
    }
    if (bos) {
        if (!(tok->bos_str = dup_json_string(bos))) return oom(c);
        tok->bos_id = l8_tokenizer_find(tok, json_string_value(bos), json_string_length(bos));
    }
    if (eos) {
        if (!(tok->eos_str = dup_json_string(eos))) return oom(c);
        tok->eos_id = l8_tokenizer_find(tok, json_string_value(eos), json_string_length(eos));
    }
    if (tok->bos_id < 0) tok->add_bos = false;
    return LLM8_STATUS_OK;
}

llm8_status l8_tokenizer_from_json(const char *tok_json, size_t tok_len, const char *cfg_json, size_t cfg_len,
                                   const char *name, llm8_tokenizer **out, l8_err *e) {
    if (!out) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "tokenizer: no output pointer");
    *out = NULL;
    if (!name) name = "tokenizer";
    if (!tok_json) return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "%s: no tokenizer.json text", name);
    size_t nlen = strlen(name);
    char *file = malloc(nlen + 32), *cfg_file = malloc(nlen + 32);
    llm8_tokenizer *tok = calloc(1, sizeof *tok);
    json_t *root = NULL, *cfg = NULL;
    llm8_status st = LLM8_STATUS_OK;
    if (!file || !cfg_file || !tok) {
        st = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
        goto done;
    }
    snprintf(file, nlen + 32, "%s/tokenizer.json", name);
    snprintf(cfg_file, nlen + 32, "%s/tokenizer_config.json", name);
    tok->name = malloc(nlen + 1);
    if (!tok->name) {
        st = l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
        goto done;
    }
    memcpy(tok->name, name, nlen + 1);
    load_ctx c = {.tok = tok, .file = file, .cfg_file = cfg_file, .e = e};
    if ((st = l8_json_load_buffer(file, tok_json, tok_len, &root, e))) goto done;
    if (!json_is_object(root)) {
        st = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: top level is not a JSON object", file);
        goto done;
    }
    if (cfg_json) {
        if ((st = l8_json_load_buffer(cfg_file, cfg_json, cfg_len, &cfg, e))) goto done;
        if (!json_is_object(cfg)) {
            st = l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: top level is not a JSON object", cfg_file);
            goto done;
        }
    }
    if ((st = load_model(&c, root))) goto done;
    if ((st = l8_tok_load_pipeline(tok, root, file, e))) goto done;
    find_byte_ids(tok);
    /* ignore_merges looks the whole pre-token up, so it must not be split. */
    tok->split_words = !tok->byte_level && !tok->ignore_merges && words_independent(tok);
    if ((st = l8_tok_load_decoder(tok, root, file, e))) goto done;
    if ((st = load_config(&c, root, cfg))) goto done;
done:
    json_decref(root);
    json_decref(cfg);
    free(file);
    free(cfg_file);
    if (st) {
        l8_tok_destroy(tok);
        return st;
    }
    *out = tok;
    return LLM8_STATUS_OK;
}
