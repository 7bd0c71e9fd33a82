/* Text -> ids: added-token matching, normalizer, pre-tokenizer, then the BPE model. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bytelevel.h"
#include "tokenizer/tok_impl.h"
#include "util/utf8.h"

typedef struct vec_i32 {
    int32_t *p;
    size_t len, cap;
} vec_i32;

typedef struct vec_u8 {
    char *p;
    size_t len, cap;
} vec_u8;

/* Per-call state; the tokenizer itself stays read-only, so threads can share it. */
typedef struct enc_ctx {
    const llm8_tokenizer *tok;
    vec_i32 out;
    vec_i32 sym; /* initial symbols of one pre-token */
    vec_u8 mapped;
    l8_bpe_scratch bpe;
    bool at_start; /* the current segment begins the input (Metaspace prepend_scheme "first") */
    llm8_status st;
} enc_ctx;

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

static bool push_id(vec_i32 *v, int32_t id) {
    if (!grow((void **)&v->p, &v->cap, v->len + 1, sizeof *v->p)) return false;
    v->p[v->len++] = id;
    return true;
}

static bool push_bytes(vec_u8 *v, const char *s, size_t n) {
    if (!grow((void **)&v->p, &v->cap, v->len + n + 1, 1)) return false;
    memcpy(v->p + v->len, s, n);
    v->len += n;
    return true;
}

static int fail(enc_ctx *c, llm8_status st) {
    if (!c->st) c->st = st;
    return 1;
}

/* The BPE model on one pre-token. */
static int model_word(enc_ctx *c, const char *s, size_t len) {
    const llm8_tokenizer *tok = c->tok;
    if (len == 0) return 0;
    const char *word = s;
    size_t wlen = len;
    if (tok->byte_level) {
        c->mapped.len = 0;
        if (!grow((void **)&c->mapped.p, &c->mapped.cap, 2 * len + 1, 1)) return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
        wlen = l8_bytelevel_encode(s, len, c->mapped.p);
        word = c->mapped.p;
    }
    if (tok->ignore_merges) {
        int32_t id = l8_strmap_get(&tok->vocab, word, wlen);
        if (id >= 0) return push_id(&c->out, id) ? 0 : fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    }
    c->sym.len = 0;
    if (!grow((void **)&c->sym.p, &c->sym.cap, len + 1, sizeof *c->sym.p)) return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    if (tok->byte_level) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = tok->byte_ids[(unsigned char)s[i]];
            if (id < 0) id = tok->unk_id;
            if (id < 0) return fail(c, LLM8_STATUS_INVALID_ARGUMENT); /* the vocabulary lacks a byte */
            c->sym.p[c->sym.len++] = id;
        }
    } else {
        bool last_unk = false;
        for (size_t i = 0; i < wlen;) {
            size_t n = l8_utf8_next((const unsigned char *)word + i, wlen - i, NULL);
            if (n == 0) n = 1; /* cannot happen on validated text; keeps the loop finite */
            int32_t id = l8_strmap_get(&tok->vocab, word + i, n);
            if (id >= 0) {
                c->sym.p[c->sym.len++] = id;
                last_unk = false;
            } else {
                bool bytes_ok = tok->byte_fallback;
                for (size_t k = 0; bytes_ok && k < n; k++) bytes_ok = tok->byte_ids[(unsigned char)word[i + k]] >= 0;
                if (bytes_ok) {
                    for (size_t k = 0; k < n; k++) c->sym.p[c->sym.len++] = tok->byte_ids[(unsigned char)word[i + k]];
                    last_unk = false;
                } else {
                    if (tok->unk_id < 0) return fail(c, LLM8_STATUS_INVALID_ARGUMENT);
                    if (!(tok->fuse_unk && last_unk)) c->sym.p[c->sym.len++] = tok->unk_id;
                    last_unk = true;
                }
            }
            i += n;
        }
    }
    size_t n = l8_bpe_merge(&tok->merges, c->sym.p, c->sym.len, &c->bpe);
    if (n == (size_t)-1) return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    if (!grow((void **)&c->out.p, &c->out.cap, c->out.len + n, sizeof *c->out.p)) return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    memcpy(c->out.p + c->out.len, c->sym.p, n * sizeof *c->sym.p);
    c->out.len += n;
    return 0;
}

#define L8_SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

/* When no piece has "▁" right after another character (tok->split_words), no merge can join
 * the text before such a "▁" to the text after it, so each word can be merged on its own:
 * same result, but the heap stays small instead of spanning the whole segment. */
static int model_encode(enc_ctx *c, const char *s, size_t len) {
    const llm8_tokenizer *tok = c->tok;
    if (!tok->split_words) return model_word(c, s, len);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= len; i++) {
        if (memcmp(s + i, L8_SPACE_MARK, 3) == 0 && !(i >= 3 && memcmp(s + i - 3, L8_SPACE_MARK, 3) == 0)) {
            if (model_word(c, s + start, i - start)) return 1;
            start = i;
            i += 2;
        }
    }
    return model_word(c, s + start, len - start);
}

static int pre_tokenize(enc_ctx *c, int step, const char *s, size_t len);

typedef struct split_arg {
    enc_ctx *c;
    int next;
} split_arg;

static int split_piece(void *user, const char *s, size_t len) {
    split_arg *a = user;
    return pre_tokenize(a->c, a->next, s, len);
}

/* Metaspace: spaces become the replacement character, a prefix is added per the scheme, and
 * with split the text breaks before each replacement character. */
static int metaspace(enc_ctx *c, int step, const l8_pre_step *p, const char *s, size_t len) {
    vec_u8 b = {0};
    bool prefix = p->scheme == L8_PREPEND_ALWAYS || (p->scheme == L8_PREPEND_FIRST && c->at_start);
    if (prefix && !(len > 0 && s[0] == ' ') && !(len >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0) &&
        !push_bytes(&b, p->repl, p->repl_len))
        return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    for (size_t i = 0; i < len; i++) {
        bool ok = s[i] == ' ' ? push_bytes(&b, p->repl, p->repl_len) : push_bytes(&b, s + i, 1);
        if (!ok) {
            free(b.p);
            return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
        }
    }
    int rc = 0;
    if (!p->split) {
        rc = pre_tokenize(c, step + 1, b.p, b.len);
    } else {
        size_t start = 0;
        for (size_t i = 1; i <= b.len && !rc; i++) {
            if (i == b.len || (i + p->repl_len <= b.len && memcmp(b.p + i, p->repl, p->repl_len) == 0)) {
                rc = pre_tokenize(c, step + 1, b.p + start, i - start);
                start = i;
            }
        }
    }
    free(b.p);
    return rc;
}

static int pre_tokenize(enc_ctx *c, int step, const char *s, size_t len) {
    const llm8_tokenizer *tok = c->tok;
    if (len == 0) return 0;
    if (step == tok->n_pre) return model_encode(c, s, len);
    const l8_pre_step *p = &tok->pre[step];
    switch (p->kind) {
    case L8_PRE_REGEX: {
        split_arg a = {c, step + 1};
        int rc = l8_regex_split(p->re, s, len, split_piece, &a);
        return rc < 0 ? fail(c, LLM8_STATUS_INVALID_ARGUMENT) : rc;
    }
    case L8_PRE_PREFIX_SPACE: {
        if (s[0] == ' ') return pre_tokenize(c, step + 1, s, len);
        char *b = malloc(len + 1);
        if (!b) return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
        b[0] = ' ';
        memcpy(b + 1, s, len);
        int rc = pre_tokenize(c, step + 1, b, len + 1);
        free(b);
        return rc;
    }
    case L8_PRE_METASPACE: return metaspace(c, step, p, s, len);
    }
    return 0;
}

/* Runs the normalizer steps, then the pre-tokenizer, on text between added tokens. */
static int encode_segment(enc_ctx *c, const char *s, size_t len) {
    const llm8_tokenizer *tok = c->tok;
    if (len == 0) return 0;
    if (tok->n_norm == 0) return pre_tokenize(c, 0, s, len);
    vec_u8 cur = {0}, nxt = {0};
    if (!push_bytes(&cur, s, len)) return fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    bool ok = true;
    for (int k = 0; k < tok->n_norm && ok; k++) {
        const l8_norm_step *n = &tok->norm[k];
        nxt.len = 0;
        if (n->kind == L8_NORM_PREPEND) {
            if (cur.len == 0) continue;
            ok = push_bytes(&nxt, n->a, n->a_len) && push_bytes(&nxt, cur.p, cur.len);
        } else {
            for (size_t i = 0; i < cur.len && ok;) {
                if (i + n->a_len <= cur.len && memcmp(cur.p + i, n->a, n->a_len) == 0) {
                    ok = push_bytes(&nxt, n->b, n->b_len);
                    i += n->a_len;
                } else {
                    ok = push_bytes(&nxt, cur.p + i, 1);
                    i++;
                }
            }
        }
        vec_u8 t = cur;
        cur = nxt, nxt = t;
    }
    int rc = ok ? pre_tokenize(c, 0, cur.p, cur.len) : fail(c, LLM8_STATUS_OUT_OF_MEMORY);
    free(cur.p);
    free(nxt.p);
    return rc;
}

static bool is_space(unsigned char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }
static bool is_word(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch >= 0x80;
}

/* The longest added token that may match at text[i], or NULL. */
static const l8_added_token *match_added(const llm8_tokenizer *tok, const char *text, size_t len, size_t i,
                                         bool parse_special) {
    unsigned char b = (unsigned char)text[i];
    const l8_added_token *best = NULL;
    for (uint32_t k = tok->added_first[b]; k < tok->added_first[b + 1]; k++) {
        const l8_added_token *t = &tok->added[k];
        if (t->special && !parse_special) continue;
        if (t->len > len - i || (best && t->len <= best->len)) continue;
        if (memcmp(text + i, t->content, t->len) != 0) continue;
        if (t->single_word && ((i > 0 && is_word((unsigned char)text[i - 1])) ||
                               (i + t->len < len && is_word((unsigned char)text[i + t->len]))))
            continue;
        best = t;
    }
    return best;
}

llm8_status llm8_tokenize(const llm8_tokenizer *tok, const char *text, size_t len, uint32_t flags, int32_t *ids,
                          size_t cap, size_t *n_ids) {
    if (n_ids) *n_ids = 0;
    if (!tok || !n_ids || (!text && len) || (!ids && cap)) return LLM8_STATUS_INVALID_ARGUMENT;
    if (!l8_utf8_valid(text, len, NULL)) return LLM8_STATUS_INVALID_ARGUMENT;
    enc_ctx c = {.tok = tok};
    bool parse_special = flags & LLM8_TOKENIZE_PARSE_SPECIAL;
    if ((flags & LLM8_TOKENIZE_ADD_BOS) && tok->add_bos && tok->bos_id >= 0 && !push_id(&c.out, tok->bos_id))
        fail(&c, LLM8_STATUS_OUT_OF_MEMORY);
    size_t seg = 0;
    for (size_t i = 0; i < len && !c.st;) {
        const l8_added_token *t = tok->n_added ? match_added(tok, text, len, i, parse_special) : NULL;
        if (!t) {
            i++;
            continue;
        }
        size_t seg_end = i, next = i + t->len;
        if (t->lstrip)
            while (seg_end > seg && is_space((unsigned char)text[seg_end - 1])) seg_end--;
        if (t->rstrip)
            while (next < len && is_space((unsigned char)text[next])) next++;
        c.at_start = seg == 0;
        if (encode_segment(&c, text + seg, seg_end - seg)) break;
        if (!push_id(&c.out, t->id)) fail(&c, LLM8_STATUS_OUT_OF_MEMORY);
        seg = i = next;
    }
    c.at_start = seg == 0;
    if (!c.st) encode_segment(&c, text + seg, len - seg);
    l8_bpe_scratch_free(&c.bpe);
    free(c.sym.p);
    free(c.mapped.p);
    llm8_status st = c.st;
    if (!st) {
        *n_ids = c.out.len;
        if (c.out.len > cap) st = LLM8_STATUS_INVALID_ARGUMENT;
        else if (c.out.len) memcpy(ids, c.out.p, c.out.len * sizeof *ids);
    }
    free(c.out.p);
    return st;
}
