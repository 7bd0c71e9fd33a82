/* Reads the text pipeline of tokenizer.json: normalizer, pre-tokenizer and decoder. Only the
 * component types Llama-family files use are handled; anything else is reported unsupported
 * rather than silently tokenizing differently. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bytelevel.h"
#include "tokenizer/load_internal.h"
#include "util/utf8.h"

/* GPT-2's split pattern, used by ByteLevel pre-tokenizers with use_regex. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static char *dup_bytes(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

/* Whether s contains "\\E", which would end a \\Q...\\E literal early. */
static bool has_quote_end(const char *s, size_t len) {
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '\\' && s[i + 1] == 'E') return true;
    return false;
}

static const char *type_of(const json_t *v) {
    const char *t = json_string_value(json_object_get(v, "type"));
    return t ? t : "(no type)";
}

/* A {"String": s} pattern; Regex patterns in normalizers/decoders are not supported. */
static bool string_pattern(const json_t *obj, const char **s, size_t *len) {
    return l8_jstr(json_object_get(json_object_get(obj, "pattern"), "String"), s, len);
}

static llm8_status load_normalizer(llm8_tokenizer *tok, const json_t *n, const char *file, l8_err *e) {
    if (!n || json_is_null(n)) return LLM8_STATUS_OK;
    const char *t = type_of(n);
    if (strcmp(t, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        llm8_status st;
        for (size_t i = 0; i < json_array_size(list); i++)
            if ((st = load_normalizer(tok, json_array_get(list, i), file, e))) return st;
        return LLM8_STATUS_OK;
    }
    if (tok->n_norm >= L8_MAX_NORM)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: too many normalizer steps", file);
    l8_norm_step *s = &tok->norm[tok->n_norm];
    const char *a, *b;
    size_t al, bl;
    if (strcmp(t, "Prepend") == 0) {
        if (!l8_jstr(json_object_get(n, "prepend"), &a, &al))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: Prepend normalizer without \"prepend\" string", file);
        s->kind = L8_NORM_PREPEND;
        if (!(s->a = dup_bytes(a, al))) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", file);
        s->a_len = al;
    } else if (strcmp(t, "Replace") == 0) {
        if (!string_pattern(n, &a, &al) || al == 0)
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: Replace normalizer needs a non-empty String pattern", file);
        if (!l8_jstr(json_object_get(n, "content"), &b, &bl))
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: Replace normalizer without \"content\" string", file);
        s->kind = L8_NORM_REPLACE;
        s->a = dup_bytes(a, al), s->a_len = al;
        s->b = dup_bytes(b, bl), s->b_len = bl;
        if (!s->a || !s->b) {
            tok->n_norm++; /* so that destroy frees whichever copy succeeded */
            return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", file);
        }
    } else {
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: normalizer type \"%s\" is not supported", file, t);
    }
    tok->n_norm++;
    return LLM8_STATUS_OK;
}

static llm8_status add_regex(llm8_tokenizer *tok, const char *pat, size_t len, const char *file, l8_err *e) {
    if (tok->n_pre >= L8_MAX_PRE)
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: too many pre-tokenizer steps", file);
    l8_pre_step *p = &tok->pre[tok->n_pre];
    llm8_status st = l8_regex_compile(pat, len, file, &p->re, e);
    if (st) return st;
    p->kind = L8_PRE_REGEX;
    tok->n_pre++;
    return LLM8_STATUS_OK;
}

static llm8_status load_pre(llm8_tokenizer *tok, const json_t *p, const char *file, l8_err *e) {
    if (!p || json_is_null(p)) return LLM8_STATUS_OK;
    const char *t = type_of(p);
    llm8_status st;
    if (strcmp(t, "Sequence") == 0) {
        const json_t *list = json_object_get(p, "pretokenizers");
        for (size_t i = 0; i < json_array_size(list); i++)
            if ((st = load_pre(tok, json_array_get(list, i), file, e))) return st;
        return LLM8_STATUS_OK;
    }
    if (strcmp(t, "Split") == 0) {
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!beh || strcmp(beh, "Isolated") != 0 || json_is_true(json_object_get(p, "invert")))
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: Split pre-tokenizer behaviour \"%s\"%s is not supported",
                           file, beh ? beh : "?", json_is_true(json_object_get(p, "invert")) ? " (inverted)" : "");
        const json_t *pat = json_object_get(p, "pattern");
        const char *s;
        size_t len;
        if (l8_jstr(json_object_get(pat, "Regex"), &s, &len)) return add_regex(tok, s, len, file, e);
        if (l8_jstr(json_object_get(pat, "String"), &s, &len) && len > 0 && !has_quote_end(s, len)) {
            /* A literal string: quote it for PCRE2. */
            char *q = malloc(len + 5);
            if (!q) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", file);
            memcpy(q, "\\Q", 2), memcpy(q + 2, s, len), memcpy(q + 2 + len, "\\E", 2);
            st = add_regex(tok, q, len + 4, file, e);
            free(q);
            return st;
        }
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: Split pre-tokenizer pattern is not supported", file);
    }
    if (strcmp(t, "ByteLevel") == 0) {
        tok->byte_level = true;
        if (json_is_true(json_object_get(p, "add_prefix_space"))) {
            if (tok->n_pre >= L8_MAX_PRE)
                return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: too many pre-tokenizer steps", file);
            tok->pre[tok->n_pre++].kind = L8_PRE_PREFIX_SPACE;
        }
        const json_t *ur = json_object_get(p, "use_regex");
        if (!ur || json_is_true(ur)) return add_regex(tok, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, file, e);
        return LLM8_STATUS_OK;
    }
    if (strcmp(t, "Metaspace") == 0) {
        if (tok->n_pre >= L8_MAX_PRE)
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: too many pre-tokenizer steps", file);
        l8_pre_step *m = &tok->pre[tok->n_pre];
        const char *r = "\xE2\x96\x81";
        size_t rl = 3;
        l8_jstr(json_object_get(p, "replacement"), &r, &rl);
        if (rl == 0 || rl >= sizeof m->repl)
            return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: Metaspace replacement must be one character", file);
        memcpy(m->repl, r, rl);
        m->repl_len = rl;
        const char *scheme = json_string_value(json_object_get(p, "prepend_scheme"));
        const json_t *aps = json_object_get(p, "add_prefix_space");
        m->scheme = L8_PREPEND_ALWAYS;
        if (scheme && strcmp(scheme, "first") == 0) m->scheme = L8_PREPEND_FIRST;
        else if (scheme && strcmp(scheme, "never") == 0) m->scheme = L8_PREPEND_NEVER;
        else if (!scheme && json_is_false(aps)) m->scheme = L8_PREPEND_NEVER;
        const json_t *split = json_object_get(p, "split");
        m->split = !split || json_is_true(split);
        m->kind = L8_PRE_METASPACE;
        tok->n_pre++;
        return LLM8_STATUS_OK;
    }
    return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: pre-tokenizer type \"%s\" is not supported", file, t);
}

llm8_status l8_tok_load_pipeline(llm8_tokenizer *tok, const json_t *root, const char *file, l8_err *e) {
    llm8_status st = load_normalizer(tok, json_object_get(root, "normalizer"), file, e);
    if (!st) st = load_pre(tok, json_object_get(root, "pre_tokenizer"), file, e);
    return st;
}

/* ---------------------------------------------------------------- decoder */

typedef enum dec_kind { DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_BYTE_LEVEL } dec_kind;

typedef struct dec_step {
    dec_kind kind;
    const char *a, *b; /* REPLACE pattern and content (borrowed from the JSON) */
    size_t a_len, b_len;
} dec_step;

typedef struct dec_plan {
    dec_step steps[8];
    int n;
} dec_plan;

static llm8_status plan_decoder(llm8_tokenizer *tok, dec_plan *plan, const json_t *d, const char *file, l8_err *e) {
    if (!d || json_is_null(d)) return LLM8_STATUS_OK;
    const char *t = type_of(d);
    llm8_status st;
    if (strcmp(t, "Sequence") == 0) {
        const json_t *list = json_object_get(d, "decoders");
        for (size_t i = 0; i < json_array_size(list); i++)
            if ((st = plan_decoder(tok, plan, json_array_get(list, i), file, e))) return st;
        return LLM8_STATUS_OK;
    }
    if (strcmp(t, "Fuse") == 0) return LLM8_STATUS_OK; /* a stream is already one string */
    if (plan->n + 2 > (int)(sizeof plan->steps / sizeof plan->steps[0]))
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: too many decoder steps", file);
    dec_step *s = &plan->steps[plan->n];
    if (strcmp(t, "Replace") == 0) {
        if (!string_pattern(d, &s->a, &s->a_len) || s->a_len == 0 ||
            !l8_jstr(json_object_get(d, "content"), &s->b, &s->b_len))
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: Replace decoder needs a String pattern and content", file);
        s->kind = DEC_REPLACE;
    } else if (strcmp(t, "ByteFallback") == 0) {
        s->kind = DEC_BYTE_FALLBACK;
    } else if (strcmp(t, "ByteLevel") == 0) {
        s->kind = DEC_BYTE_LEVEL;
    } else if (strcmp(t, "Strip") == 0) {
        const char *c;
        size_t cl;
        json_t *start = json_object_get(d, "start"), *stop = json_object_get(d, "stop");
        if (!l8_jstr(json_object_get(d, "content"), &c, &cl) || cl != 1 || c[0] != ' ' ||
            (stop && json_integer_value(stop) != 0) || json_integer_value(start) < 0)
            return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: only a Strip decoder of leading spaces is supported", file);
        tok->strip_start = (int)(json_integer_value(start) > 8 ? 8 : json_integer_value(start));
        return LLM8_STATUS_OK;
    } else if (strcmp(t, "Metaspace") == 0) {
        const char *r = "\xE2\x96\x81";
        size_t rl = 3;
        l8_jstr(json_object_get(d, "replacement"), &r, &rl);
        s->kind = DEC_REPLACE, s->a = r, s->a_len = rl, s->b = " ", s->b_len = 1;
        const char *scheme = json_string_value(json_object_get(d, "prepend_scheme"));
        bool prefix = scheme ? strcmp(scheme, "never") != 0 : !json_is_false(json_object_get(d, "add_prefix_space"));
        if (prefix) tok->strip_start = 1;
        if (rl == 0) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: empty Metaspace replacement", file);
    } else {
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: decoder type \"%s\" is not supported", file, t);
    }
    plan->n++;
    return LLM8_STATUS_OK;
}

/* Growable byte buffer for building the decoded-token arena. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static bool buf_reserve(buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p, b->cap = cap;
    return true;
}

/* <0xXX> with two upper-case hex digits, as SentencePiece writes byte pieces. */
static int byte_piece(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Applies one step to the token text in cur (len bytes), writing the result to out. */
static bool apply_step(const dec_step *s, const char *cur, size_t len, buf *out) {
    out->len = 0;
    if (!buf_reserve(out, 4 * len + 8)) return false;
    if (s->kind == DEC_BYTE_FALLBACK) {
        int b = byte_piece(cur, len);
        if (b >= 0) {
            out->p[out->len++] = (char)b;
            return true;
        }
        memcpy(out->p, cur, len);
        out->len = len;
        return true;
    }
    if (s->kind == DEC_BYTE_LEVEL) {
        /* Like Hugging Face: a token with any character outside the mapping stays as it is. */
        size_t i = 0;
        while (i < len) {
            uint32_t cp;
            size_t n = l8_utf8_next((const unsigned char *)cur + i, len - i, &cp);
            int b = n ? l8_bytelevel_byte(cp) : -1;
            if (b < 0) break;
            out->p[out->len++] = (char)b;
            i += n;
        }
        if (i < len) {
            memcpy(out->p, cur, len);
            out->len = len;
        }
        return true;
    }
    for (size_t i = 0; i < len;) {
        if (i + s->a_len <= len && memcmp(cur + i, s->a, s->a_len) == 0) {
            if (!buf_reserve(out, s->b_len + (len - i))) return false;
            memcpy(out->p + out->len, s->b, s->b_len);
            out->len += s->b_len;
            i += s->a_len;
        } else {
            if (!buf_reserve(out, 1 + (len - i))) return false;
            out->p[out->len++] = cur[i++];
        }
    }
    return true;
}

llm8_status l8_tok_load_decoder(llm8_tokenizer *tok, const json_t *root, const char *file, l8_err *e) {
    dec_plan plan = {0};
    llm8_status st = plan_decoder(tok, &plan, json_object_get(root, "decoder"), file, e);
    if (st) return st;
    size_t n = (size_t)tok->n_vocab;
    tok->dec_off = calloc(n, sizeof *tok->dec_off);
    tok->dec_len = calloc(n, sizeof *tok->dec_len);
    buf arena = {0}, t1 = {0}, t2 = {0};
    if (!tok->dec_off || !tok->dec_len) goto oom;
    for (size_t id = 0; id < n; id++) {
        const char *p = tok->pieces + tok->piece_off[id];
        size_t len = tok->piece_len[id];
        /* Added tokens are literal text; the decoder steps apply to vocabulary pieces. */
        if (!(tok->flags[id] & L8_TOKF_ADDED)) {
            for (int k = 0; k < plan.n; k++) {
                buf *dst = (p == t1.p) ? &t2 : &t1;
                if (!apply_step(&plan.steps[k], p, len, dst)) goto oom;
                p = dst->p, len = dst->len;
            }
        }
        if (arena.len + len >= UINT32_MAX || !buf_reserve(&arena, len + 1)) goto oom;
        tok->dec_off[id] = (uint32_t)arena.len;
        tok->dec_len[id] = (uint32_t)len;
        if (len) memcpy(arena.p + arena.len, p, len);
        arena.len += len;
    }
    free(t1.p);
    free(t2.p);
    tok->dec = arena.p ? arena.p : malloc(1);
    if (!tok->dec) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", file);
    return LLM8_STATUS_OK;
oom:
    free(arena.p);
    free(t1.p);
    free(t2.p);
    return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", file);
}
