/* Lexer and parser for the Jinja2 subset of chat templates. The lexer applies the whitespace rules
 * Hugging Face renders with (trim_blocks, lstrip_blocks, `-` markers, one trailing newline dropped)
 * so that the tree holds exactly the text that is output. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/internal.h"

/* ------------------------------------------------------------------ lexer */

typedef enum {
    T_EOF, T_TEXT, T_OPEN_STMT, T_CLOSE_STMT, T_OPEN_EXPR, T_CLOSE_EXPR, T_NAME, T_STRING, T_INT, T_FLOAT, T_OP,
} tok_type;

typedef struct {
    tok_type type;
    int line, col;
    const char *s; /* text, name, decoded string or operator (arena) */
    size_t len;
    long long i;
    double f;
} token;

typedef struct {
    const char *src;
    size_t n, pos;
    token *toks;
    size_t ntok, cap;
    l8_arena *arena;
    l8_err *e;
    llm8_status st;
    /* parser state */
    size_t at;
    int depth;
    size_t lc_off; /* pos_of's cache */
    int lc_line, lc_col;
} lexer;

/* Line and column (in characters) of a source offset. Offsets mostly grow, so the last answer is
 * the starting point; that keeps lexing linear in the template size. */
static void pos_of(lexer *L, size_t off, int *line, int *col) {
    if (off < L->lc_off) L->lc_off = 0, L->lc_line = 1, L->lc_col = 1;
    for (size_t k = L->lc_off; k < off && k < L->n; k++) {
        if (L->src[k] == '\n') L->lc_line++, L->lc_col = 1;
        else if (((unsigned char)L->src[k] & 0xC0) != 0x80) L->lc_col++;
    }
    L->lc_off = off;
    *line = L->lc_line;
    *col = L->lc_col;
}

static llm8_status fail_at(lexer *L, size_t off, const char *msg, const char *detail) {
    int line, col;
    pos_of(L, off, &line, &col);
    if (L->st == LLM8_STATUS_OK)
        L->st = l8_fail(L->e, LLM8_STATUS_BAD_FORMAT, "chat template line %d col %d: %s%s", line, col, msg,
                        detail ? detail : "");
    return L->st;
}

static token *push(lexer *L, tok_type type, size_t off) {
    if (L->ntok == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        token *t = realloc(L->toks, cap * sizeof *t);
        if (!t) {
            L->st = l8_fail(L->e, LLM8_STATUS_OUT_OF_MEMORY, "chat template: out of memory");
            return NULL;
        }
        L->toks = t;
        L->cap = cap;
    }
    token *t = &L->toks[L->ntok++];
    memset(t, 0, sizeof *t);
    t->type = type;
    pos_of(L, off, &t->line, &t->col);
    return t;
}

static char *arena_str(lexer *L, const char *s, size_t n) {
    char *p = l8_arena_alloc(L->arena, n + 1);
    if (!p) {
        L->st = l8_fail(L->e, LLM8_STATUS_OUT_OF_MEMORY, "chat template: out of memory");
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_word(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 63)); o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A quoted literal at L->pos; escapes as Python's: unknown ones keep their backslash. */
static bool lex_string(lexer *L) {
    size_t start = L->pos;
    char q = L->src[L->pos++];
    char *buf = l8_arena_alloc(L->arena, L->n - L->pos + 1); /* decoded text is never longer */
    if (!buf) return fail_at(L, start, "out of memory", NULL), false;
    size_t o = 0;
    while (L->pos < L->n && L->src[L->pos] != q) {
        char c = L->src[L->pos++];
        if (c != '\\') {
            buf[o++] = c;
            continue;
        }
        if (L->pos >= L->n) break;
        char x = L->src[L->pos++];
        switch (x) {
        case 'n': buf[o++] = '\n'; break;
        case 't': buf[o++] = '\t'; break;
        case 'r': buf[o++] = '\r'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'v': buf[o++] = '\v'; break;
        case '0': buf[o++] = '\0'; break;
        case '\\': case '\'': case '"': buf[o++] = x; break;
        case 'x': case 'u': case 'U': {
            int digits = x == 'x' ? 2 : x == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = L->pos < L->n ? hexval(L->src[L->pos]) : -1;
                if (h < 0) return fail_at(L, L->pos, "bad \\x/\\u escape in a string", NULL), false;
                cp = cp * 16 + (uint32_t)h;
                L->pos++;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
                return fail_at(L, L->pos, "escape is not a Unicode scalar value", NULL), false;
            /* An escape is at least 4 source bytes and encodes in at most 4 bytes, so buf suffices. */
            o += put_utf8(cp, buf + o);
            break;
        }
        default: buf[o++] = '\\'; buf[o++] = x; break;
        }
    }
    if (L->pos >= L->n) return fail_at(L, start, "unterminated string literal", NULL), false;
    L->pos++;
    token *t = push(L, T_STRING, start);
    if (!t) return false;
    buf[o] = 0;
    t->s = buf;
    t->len = o;
    return true;
}

static const char *const OPS[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                  "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};

/* Tokens inside {{ }} or {% %} up to and including the closing marker. */
static bool lex_tag(lexer *L, bool stmt, size_t open_off) {
    int curly = 0;
    for (;;) {
        while (L->pos < L->n && is_space(L->src[L->pos])) L->pos++;
        if (L->pos >= L->n) return fail_at(L, open_off, stmt ? "unclosed '{%' tag" : "unclosed '{{' tag", NULL), false;
        const char *p = L->src + L->pos;
        size_t left = L->n - L->pos;
        bool dash = p[0] == '-' && left >= 3;
        const char *close = stmt ? "%}" : "}}";
        if ((dash && !memcmp(p + 1, close, 2)) || (left >= 2 && !memcmp(p, close, 2) && (stmt || curly == 0))) {
            if (!push(L, stmt ? T_CLOSE_STMT : T_CLOSE_EXPR, L->pos)) return false;
            L->pos += dash ? 3 : 2;
            if (dash) {
                while (L->pos < L->n && is_space(L->src[L->pos])) L->pos++;
            } else if (stmt && L->pos < L->n && L->src[L->pos] == '\n') {
                L->pos++; /* trim_blocks */
            }
            return true;
        }
        char c = *p;
        if (c == '\'' || c == '"') {
            if (!lex_string(L)) return false;
        } else if (is_digit(c)) {
            size_t s = L->pos;
            while (L->pos < L->n && is_digit(L->src[L->pos])) L->pos++;
            bool is_float = L->pos + 1 < L->n && L->src[L->pos] == '.' && is_digit(L->src[L->pos + 1]) &&
                            !(L->ntok && L->toks[L->ntok - 1].type == T_OP && L->toks[L->ntok - 1].s[0] == '.');
            if (is_float) {
                L->pos++;
                while (L->pos < L->n && is_digit(L->src[L->pos])) L->pos++;
            }
            char num[64];
            size_t nl = L->pos - s;
            if (nl >= sizeof num) return fail_at(L, s, "number literal too long", NULL), false;
            memcpy(num, L->src + s, nl);
            num[nl] = 0;
            token *t = push(L, is_float ? T_FLOAT : T_INT, s);
            if (!t) return false;
            if (is_float) t->f = strtod(num, NULL);
            else if ((t->i = strtoll(num, NULL, 10)) == LLONG_MAX) return fail_at(L, s, "integer literal too large", NULL), false;
        } else if (is_word(c)) {
            size_t s = L->pos;
            while (L->pos < L->n && is_word(L->src[L->pos])) L->pos++;
            token *t = push(L, T_NAME, s);
            if (!t || !(t->s = arena_str(L, L->src + s, L->pos - s))) return false;
            t->len = L->pos - s;
        } else {
            size_t k = 0, nops = sizeof OPS / sizeof *OPS;
            for (; k < nops; k++)
                if (strlen(OPS[k]) <= left && !memcmp(p, OPS[k], strlen(OPS[k]))) break;
            if (k == nops) {
                char d[8] = {'\'', c, '\'', 0};
                return fail_at(L, L->pos, "unexpected character ", (unsigned char)c >= 0x20 && (unsigned char)c < 0x7f ? d : "in a tag"), false;
            }
            if (OPS[k][0] == '{') curly++;
            if (OPS[k][0] == '}') curly--;
            token *t = push(L, T_OP, L->pos);
            if (!t) return false;
            t->s = OPS[k];
            t->len = strlen(OPS[k]);
            L->pos += t->len;
        }
    }
}

static bool lex(lexer *L) {
    while (L->pos < L->n) {
        /* Text up to the next tag. */
        size_t tag = L->pos;
        while (tag + 1 < L->n && !(L->src[tag] == '{' && (L->src[tag + 1] == '{' || L->src[tag + 1] == '%' ||
                                                          L->src[tag + 1] == '#')))
            tag++;
        if (tag + 1 >= L->n) tag = L->n;
        size_t text_end = tag;
        char kind = tag < L->n ? L->src[tag + 1] : 0;
        bool dash = tag + 2 < L->n && L->src[tag + 2] == '-';
        if (kind == '%' || kind == '#') {
            /* lstrip_blocks: blanks between a line start and a block or comment tag go. */
            size_t k = tag;
            while (k > L->pos && (L->src[k - 1] == ' ' || L->src[k - 1] == '\t')) k--;
            if (k == 0 || L->src[k - 1] == '\n') text_end = k;
        }
        if (kind && dash)
            while (text_end > L->pos && is_space(L->src[text_end - 1])) text_end--;
        if (text_end > L->pos) {
            token *t = push(L, T_TEXT, L->pos);
            if (!t) return false;
            t->s = L->src + L->pos; /* points into the source, which outlives parsing */
            t->len = text_end - L->pos;
        }
        if (!kind) {
            L->pos = L->n;
            break;
        }
        L->pos = tag + 2 + (dash ? 1 : 0);
        if (kind == '#') {
            size_t k = L->pos;
            while (k + 1 < L->n && !(L->src[k] == '#' && L->src[k + 1] == '}')) k++;
            if (k + 1 >= L->n) return fail_at(L, tag, "unclosed comment", NULL), false;
            bool strip_after = k > L->pos && L->src[k - 1] == '-';
            L->pos = k + 2;
            if (strip_after) {
                while (L->pos < L->n && is_space(L->src[L->pos])) L->pos++;
            } else if (L->pos < L->n && L->src[L->pos] == '\n') {
                L->pos++;
            }
            continue;
        }
        if (!push(L, kind == '%' ? T_OPEN_STMT : T_OPEN_EXPR, tag)) return false;
        if (!lex_tag(L, kind == '%', tag)) return false;
    }
    return push(L, T_EOF, L->n) != NULL;
}

/* ------------------------------------------------------------------ parser */

static token *peek(lexer *L) { return &L->toks[L->at]; }
static token *next_tok(lexer *L) {
    token *t = &L->toks[L->at];
    if (t->type != T_EOF) L->at++;
    return t;
}
static bool is_op(const token *t, const char *op) { return t->type == T_OP && !strcmp(t->s, op); }
static bool is_name(const token *t, const char *name) { return t->type == T_NAME && !strcmp(t->s, name); }

static const char *tok_desc(const token *t) {
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_TEXT: return "text";
    case T_OPEN_STMT: return "'{%'";
    case T_CLOSE_STMT: return "'%}'";
    case T_OPEN_EXPR: return "'{{'";
    case T_CLOSE_EXPR: return "'}}'";
    case T_STRING: return "a string";
    case T_INT: case T_FLOAT: return "a number";
    default: return t->s;
    }
}

static void *perr(lexer *L, const token *t, const char *msg) {
    if (L->st == LLM8_STATUS_OK) {
        int tl = t->type == T_NAME || t->type == T_OP;
        L->st = l8_fail(L->e, LLM8_STATUS_BAD_FORMAT, "chat template line %d col %d: %s (at %s%s%s)", t->line,
                        t->col, msg, tl ? "'" : "", tok_desc(t), tl ? "'" : "");
    }
    return NULL;
}

static l8_node *mk(lexer *L, l8_node_kind kind, const token *at) {
    l8_node *n = l8_arena_alloc(L->arena, sizeof *n);
    if (!n) {
        if (L->st == LLM8_STATUS_OK) L->st = l8_fail(L->e, LLM8_STATUS_OUT_OF_MEMORY, "chat template: out of memory");
        return NULL;
    }
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static bool expect_op(lexer *L, const char *op) {
    if (is_op(peek(L), op)) {
        next_tok(L);
        return true;
    }
    char msg[48];
    snprintf(msg, sizeof msg, "expected '%s'", op);
    perr(L, peek(L), msg);
    return false;
}

static l8_node *parse_expr(lexer *L, bool condexpr);
static l8_node *parse_unary(lexer *L);

/* Arguments after '(' up to ')': positional expressions and name=value keywords. */
static bool parse_args(lexer *L, l8_node **out) {
    l8_node *head = NULL, **tail = &head;
    while (!is_op(peek(L), ")")) {
        l8_node *arg;
        token *t = peek(L);
        if (t->type == T_NAME && is_op(&L->toks[L->at + 1], "=")) {
            next_tok(L);
            next_tok(L);
            if (!(arg = mk(L, L8_N_KWARG, t))) return false;
            arg->s = t->s;
            if (!(arg->a = parse_expr(L, true))) return false;
        } else if (!(arg = parse_expr(L, true))) {
            return false;
        }
        *tail = arg;
        tail = &arg->next;
        if (!is_op(peek(L), ",")) break;
        next_tok(L);
    }
    *out = head;
    return expect_op(L, ")");
}

static l8_node *parse_primary(lexer *L) {
    token *t = next_tok(L);
    l8_node *n;
    switch (t->type) {
    case T_STRING:
        if (!(n = mk(L, L8_N_STR, t))) return NULL;
        n->s = t->s;
        n->slen = t->len;
        /* Adjacent literals concatenate, as in Python. */
        while (peek(L)->type == T_STRING) {
            token *u = next_tok(L);
            char *cat = l8_arena_alloc(L->arena, n->slen + u->len + 1);
            if (!cat) return perr(L, u, "out of memory");
            memcpy(cat, n->s, n->slen);
            memcpy(cat + n->slen, u->s, u->len);
            n->s = cat;
            n->slen += u->len;
        }
        return n;
    case T_INT:
        if ((n = mk(L, L8_N_INT, t))) n->i = t->i;
        return n;
    case T_FLOAT:
        if ((n = mk(L, L8_N_FLOAT, t))) n->f = t->f;
        return n;
    case T_NAME:
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) return mk(L, L8_N_TRUE, t);
        if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) return mk(L, L8_N_FALSE, t);
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) return mk(L, L8_N_NONE, t);
        if ((n = mk(L, L8_N_NAME, t))) n->s = t->s;
        return n;
    case T_OP:
        if (!strcmp(t->s, "(")) {
            if (!(n = parse_expr(L, true))) return NULL;
            if (is_op(peek(L), ",")) { /* a tuple: a list will do */
                l8_node *list = mk(L, L8_N_LIST, t), **tail;
                if (!list) return NULL;
                list->body = n;
                tail = &n->next;
                while (is_op(peek(L), ",")) {
                    next_tok(L);
                    if (is_op(peek(L), ")")) break;
                    if (!(*tail = parse_expr(L, true))) return NULL;
                    tail = &(*tail)->next;
                }
                n = list;
            }
            return expect_op(L, ")") ? n : NULL;
        }
        if (!strcmp(t->s, "[") || !strcmp(t->s, "{")) {
            bool dict = t->s[0] == '{';
            const char *close = dict ? "}" : "]";
            if (!(n = mk(L, dict ? L8_N_DICT : L8_N_LIST, t))) return NULL;
            l8_node **tail = &n->body;
            while (!is_op(peek(L), close)) {
                l8_node *item = parse_expr(L, true);
                if (!item) return NULL;
                if (dict) {
                    l8_node *pair = mk(L, L8_N_PAIR, t);
                    if (!pair || !expect_op(L, ":")) return NULL;
                    pair->a = item;
                    if (!(pair->b = parse_expr(L, true))) return NULL;
                    item = pair;
                }
                *tail = item;
                tail = &item->next;
                if (!is_op(peek(L), ",")) break;
                next_tok(L);
            }
            return expect_op(L, close) ? n : NULL;
        }
        break;
    default: break;
    }
    return perr(L, t, "expected an expression");
}

static l8_node *parse_postfix(lexer *L, l8_node *n) {
    for (;;) {
        token *t = peek(L);
        l8_node *m;
        if (is_op(t, ".")) {
            next_tok(L);
            token *name = next_tok(L);
            if (name->type == T_INT) {
                if (!(m = mk(L, L8_N_INDEX, name)) || !(m->b = mk(L, L8_N_INT, name))) return NULL;
                m->b->i = name->i;
            } else if (name->type == T_NAME) {
                if (!(m = mk(L, L8_N_ATTR, name))) return NULL;
                m->s = name->s;
            } else {
                return perr(L, name, "expected an attribute name after '.'");
            }
            m->a = n;
        } else if (is_op(t, "[")) {
            next_tok(L);
            l8_node *parts[3] = {NULL, NULL, NULL};
            int k = 0;
            bool slice = false;
            for (;;) {
                if (!is_op(peek(L), ":") && !is_op(peek(L), "]") && !(parts[k] = parse_expr(L, true))) return NULL;
                if (!is_op(peek(L), ":") || k == 2) break;
                next_tok(L);
                slice = true;
                k++;
            }
            if (!expect_op(L, "]")) return NULL;
            if (!slice && !parts[0]) return perr(L, t, "empty subscript");
            if (!(m = mk(L, slice ? L8_N_SLICE : L8_N_INDEX, t))) return NULL;
            m->a = n;
            m->b = parts[0];
            m->c = parts[1];
            m->d = parts[2];
        } else if (is_op(t, "(")) {
            next_tok(L);
            if (!(m = mk(L, L8_N_CALL, t))) return NULL;
            m->a = n;
            if (!parse_args(L, &m->body)) return NULL;
        } else {
            return n;
        }
        n = m;
    }
}

static int lookup_name(const char *const *names, int count, const char *s) {
    for (int k = 0; k < count; k++)
        if (!strcmp(names[k], s)) return k;
    return -1;
}

/* Filters and tests bind tighter than any operator: `a + b | trim` trims b only. */
static l8_node *parse_filters(lexer *L, l8_node *n) {
    for (;;) {
        token *t = peek(L);
        if (is_op(t, "|")) {
            next_tok(L);
            token *name = next_tok(L);
            if (name->type != T_NAME) return perr(L, name, "expected a filter name after '|'");
            int f = lookup_name(l8_filter_names, L8_F_COUNT_, name->s);
            if (!strcmp(name->s, "count")) f = L8_F_LENGTH;
            if (!strcmp(name->s, "d")) f = L8_F_DEFAULT;
            if (f < 0) return perr(L, name, "unknown filter");
            l8_node *m = mk(L, L8_N_FILTER, name);
            if (!m) return NULL;
            m->op = f;
            m->a = n;
            if (is_op(peek(L), "(")) {
                next_tok(L);
                if (!parse_args(L, &m->body)) return NULL;
            }
            n = m;
        } else if (is_name(t, "is")) {
            next_tok(L);
            bool neg = false;
            if (is_name(peek(L), "not")) {
                next_tok(L);
                neg = true;
            }
            token *name = next_tok(L);
            if (name->type != T_NAME) return perr(L, name, "expected a test name after 'is'");
            int k = lookup_name(l8_test_names, L8_T_COUNT_, name->s);
            if (!strcmp(name->s, "equalto") || !strcmp(name->s, "sameas")) k = L8_T_EQ;
            if (k < 0) return perr(L, name, "unknown test");
            l8_node *m = mk(L, L8_N_TEST, name);
            if (!m) return NULL;
            m->op = k;
            m->i = neg;
            m->a = n;
            if (is_op(peek(L), "(")) {
                next_tok(L);
                if (!parse_args(L, &m->body)) return NULL;
            } else if (k == L8_T_EQ || k == L8_T_NE || k == L8_T_DIVISIBLEBY) {
                if (!(m->body = parse_unary(L))) return NULL; /* `x is divisibleby 3` */
            }
            n = m;
        } else {
            return n;
        }
    }
}

static l8_node *parse_unary(lexer *L) {
    token *t = peek(L);
    if (is_op(t, "-") || is_op(t, "+")) {
        next_tok(L);
        if (++L->depth > L8_TPL_MAX_DEPTH) return perr(L, t, "expression nested too deeply");
        l8_node *arg = parse_unary(L);
        L->depth--;
        if (!arg) return NULL;
        if (t->s[0] == '+') return arg;
        l8_node *n = mk(L, L8_N_NEG, t);
        if (n) n->a = arg;
        return n;
    }
    if (++L->depth > L8_TPL_MAX_DEPTH) return perr(L, t, "expression nested too deeply");
    l8_node *n = parse_primary(L);
    L->depth--;
    if (n) n = parse_postfix(L, n);
    if (n) n = parse_filters(L, n);
    return n;
}

/* Binary levels from loosest to tightest, as Jinja2's parser orders them. */
typedef struct {
    const char *tok;
    l8_binop op;
} binop_tok;
static const binop_tok LV_ADD[] = {{"+", L8_OP_ADD}, {"-", L8_OP_SUB}, {0, 0}};
static const binop_tok LV_CONCAT[] = {{"~", L8_OP_CONCAT}, {0, 0}};
static const binop_tok LV_MUL[] = {{"*", L8_OP_MUL}, {"/", L8_OP_DIV}, {"//", L8_OP_FLOORDIV}, {"%", L8_OP_MOD}, {0, 0}};
static const binop_tok LV_POW[] = {{"**", L8_OP_POW}, {0, 0}};
static const binop_tok *const LEVELS[] = {LV_ADD, LV_CONCAT, LV_MUL, LV_POW};

static l8_node *binary(lexer *L, l8_binop op, l8_node *a, l8_node *b, const token *at) {
    if (!b) return NULL;
    l8_node *n = mk(L, L8_N_BINOP, at);
    if (!n) return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static l8_node *parse_level(lexer *L, int level) {
    if (level == 4) return parse_unary(L);
    l8_node *n = parse_level(L, level + 1);
    while (n) {
        token *t = peek(L);
        const binop_tok *b = LEVELS[level];
        while (b->tok && !is_op(t, b->tok)) b++;
        if (!b->tok) break;
        next_tok(L);
        n = binary(L, b->op, n, parse_level(L, level + 1), t);
    }
    return n;
}

static l8_node *parse_compare(lexer *L) {
    static const binop_tok CMP[] = {{"==", L8_OP_EQ}, {"!=", L8_OP_NE}, {"<", L8_OP_LT}, {">", L8_OP_GT},
                                    {"<=", L8_OP_LE}, {">=", L8_OP_GE}, {0, 0}};
    l8_node *n = parse_level(L, 0);
    while (n) {
        token *t = peek(L);
        const binop_tok *b = CMP;
        while (b->tok && !is_op(t, b->tok)) b++;
        if (b->tok) {
            next_tok(L);
            n = binary(L, b->op, n, parse_level(L, 0), t);
        } else if (is_name(t, "in")) {
            next_tok(L);
            n = binary(L, L8_OP_IN, n, parse_level(L, 0), t);
        } else if (is_name(t, "not") && is_name(&L->toks[L->at + 1], "in")) {
            next_tok(L);
            next_tok(L);
            n = binary(L, L8_OP_NOTIN, n, parse_level(L, 0), t);
        } else {
            break;
        }
    }
    return n;
}

static l8_node *parse_not(lexer *L) {
    token *t = peek(L);
    if (!is_name(t, "not")) return parse_compare(L);
    next_tok(L);
    if (++L->depth > L8_TPL_MAX_DEPTH) return perr(L, t, "expression nested too deeply");
    l8_node *arg = parse_not(L);
    L->depth--;
    if (!arg) return NULL;
    l8_node *n = mk(L, L8_N_NOT, t);
    if (n) n->a = arg;
    return n;
}

static l8_node *parse_and(lexer *L) {
    l8_node *n = parse_not(L);
    while (n && is_name(peek(L), "and")) {
        token *t = next_tok(L);
        n = binary(L, L8_OP_AND, n, parse_not(L), t);
    }
    return n;
}

static l8_node *parse_or(lexer *L) {
    l8_node *n = parse_and(L);
    while (n && is_name(peek(L), "or")) {
        token *t = next_tok(L);
        n = binary(L, L8_OP_OR, n, parse_and(L), t);
    }
    return n;
}

/* condexpr is false where a trailing `if` belongs to the statement (`for x in xs if cond`). */
static l8_node *parse_expr(lexer *L, bool condexpr) {
    token *start = peek(L);
    if (++L->depth > L8_TPL_MAX_DEPTH) return perr(L, start, "expression nested too deeply");
    l8_node *n = parse_or(L);
    while (n && condexpr && is_name(peek(L), "if")) {
        token *t = next_tok(L);
        l8_node *c = mk(L, L8_N_COND, t);
        if (!c) return NULL;
        c->a = n;
        if (!(c->b = parse_or(L))) return NULL;
        if (is_name(peek(L), "else")) {
            next_tok(L);
            if (!(c->c = parse_expr(L, true))) return NULL;
        }
        n = c;
    }
    L->depth--;
    return n;
}

static bool expect_close(lexer *L) {
    if (peek(L)->type == T_CLOSE_STMT) {
        next_tok(L);
        return true;
    }
    perr(L, peek(L), "expected '%}'");
    return false;
}

/* Parses nodes until a {% word %} in stop (NULL-terminated) and returns that word's index with the
 * parser just after the word; -1 on error. With stop == NULL, parses to the end of the template. */
static int parse_body(lexer *L, const char *const *stop, l8_node **out);

static l8_node *parse_stmt(lexer *L, token *kw);

static int parse_body(lexer *L, const char *const *stop, l8_node **out) {
    l8_node **tail = out;
    *out = NULL;
    if (++L->depth > L8_TPL_MAX_DEPTH) return perr(L, peek(L), "blocks nested too deeply"), -1;
    for (;;) {
        token *t = next_tok(L);
        l8_node *n = NULL;
        if (t->type == T_EOF) {
            if (!stop) break;
            char msg[64];
            snprintf(msg, sizeof msg, "missing {%% %s %%}", stop[0]);
            for (const char *const *s = stop; *s; s++)
                if (!strncmp(*s, "end", 3)) snprintf(msg, sizeof msg, "missing {%% %s %%}", *s);
            return perr(L, t, msg), -1;
        } else if (t->type == T_TEXT) {
            if (!(n = mk(L, L8_N_TEXT, t))) return -1;
            n->s = t->s;
            n->slen = t->len;
        } else if (t->type == T_OPEN_EXPR) {
            if (!(n = mk(L, L8_N_OUTPUT, t)) || !(n->a = parse_expr(L, true))) return -1;
            if (peek(L)->type != T_CLOSE_EXPR) return perr(L, peek(L), "expected '}}'"), -1;
            next_tok(L);
        } else if (t->type == T_OPEN_STMT) {
            token *kw = next_tok(L);
            if (kw->type != T_NAME) return perr(L, kw, "expected a statement name"), -1;
            for (int k = 0; stop && stop[k]; k++)
                if (!strcmp(kw->s, stop[k])) {
                    L->depth--;
                    return k;
                }
            if (!(n = parse_stmt(L, kw))) {
                if (L->st) return -1;
                continue; /* a tag with no output, e.g. {% generation %} */
            }
        } else {
            return perr(L, t, "unexpected token"), -1;
        }
        *tail = n;
        tail = &n->next;
    }
    L->depth--;
    return 0;
}

static l8_node *parse_if(lexer *L, token *kw) {
    static const char *const STOP[] = {"elif", "else", "endif", NULL};
    static const char *const END[] = {"endif", NULL};
    l8_node *n = mk(L, L8_N_IF, kw);
    if (!n || !(n->a = parse_expr(L, true)) || !expect_close(L)) return NULL;
    int which = parse_body(L, STOP, &n->body);
    if (which < 0) return NULL;
    token *at = &L->toks[L->at - 1];
    if (which == 0) {
        if (!(n->alt = parse_if(L, at))) return NULL; /* elif: a nested if that consumes the endif */
        return n;
    }
    if (!expect_close(L)) return NULL;
    if (which == 1) {
        if (parse_body(L, END, &n->alt) < 0 || !expect_close(L)) return NULL;
    }
    return n;
}

static l8_node *parse_stmt(lexer *L, token *kw) {
    const char *w = kw->s;
    l8_node *n;
    if (!strcmp(w, "if")) return parse_if(L, kw);
    if (!strcmp(w, "for")) {
        static const char *const STOP[] = {"else", "endfor", NULL};
        static const char *const END[] = {"endfor", NULL};
        if (!(n = mk(L, L8_N_FOR, kw))) return NULL;
        l8_node **tail = &n->c;
        for (;;) {
            token *name = next_tok(L);
            if (name->type != T_NAME) return perr(L, name, "expected a loop variable");
            if (!(*tail = mk(L, L8_N_NAME, name))) return NULL;
            (*tail)->s = name->s;
            tail = &(*tail)->next;
            if (!is_op(peek(L), ",")) break;
            next_tok(L);
        }
        if (!is_name(peek(L), "in")) return perr(L, peek(L), "expected 'in'");
        next_tok(L);
        if (!(n->a = parse_expr(L, false))) return NULL;
        if (is_name(peek(L), "if")) {
            next_tok(L);
            if (!(n->b = parse_expr(L, false))) return NULL;
        }
        if (is_name(peek(L), "recursive")) return perr(L, peek(L), "recursive loops are not supported");
        if (!expect_close(L)) return NULL;
        int which = parse_body(L, STOP, &n->body);
        if (which < 0 || !expect_close(L)) return NULL;
        if (which == 0 && (parse_body(L, END, &n->alt) < 0 || !expect_close(L))) return NULL;
        return n;
    }
    if (!strcmp(w, "set")) {
        static const char *const END[] = {"endset", NULL};
        token *name = next_tok(L);
        if (name->type != T_NAME) return perr(L, name, "expected a variable name after 'set'");
        if (!(n = mk(L, L8_N_SET, kw)) || !(n->c = mk(L, L8_N_NAME, name))) return NULL;
        n->c->s = name->s;
        if (is_op(peek(L), ".")) { /* namespace attribute: {% set ns.x = ... %} */
            next_tok(L);
            token *attr = next_tok(L);
            if (attr->type != T_NAME) return perr(L, attr, "expected an attribute name");
            l8_node *target = mk(L, L8_N_ATTR, attr);
            if (!target) return NULL;
            target->a = n->c;
            target->s = attr->s;
            n->c = target;
        }
        if (is_op(peek(L), "=")) {
            next_tok(L);
            if (!(n->a = parse_expr(L, true)) || !expect_close(L)) return NULL;
            return n;
        }
        if (is_op(peek(L), ",")) return perr(L, peek(L), "tuple assignment is not supported");
        if (!expect_close(L) || parse_body(L, END, &n->body) < 0 || !expect_close(L)) return NULL;
        return n;
    }
    if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        if (!(n = mk(L, w[0] == 'b' ? L8_N_BREAK : L8_N_CONTINUE, kw)) || !expect_close(L)) return NULL;
        return n;
    }
    if (!strcmp(w, "generation") || !strcmp(w, "endgeneration")) {
        /* transformers' marker for assistant masks; it renders nothing */
        expect_close(L);
        return NULL;
    }
    if (!strncmp(w, "end", 3) || !strcmp(w, "else") || !strcmp(w, "elif"))
        return perr(L, kw, "unexpected tag with no block to close");
    return perr(L, kw, "unsupported or unknown tag");
}

llm8_status l8_tpl_parse(const char *src, size_t len, l8_template *out, l8_err *e) {
    memset(out, 0, sizeof *out);
    if (len && src[len - 1] == '\n') len--; /* keep_trailing_newline=False */
    lexer L = {.src = src, .n = len, .arena = &out->arena, .e = e, .lc_line = 1, .lc_col = 1};
    if (lex(&L)) parse_body(&L, NULL, &out->body);
    free(L.toks);
    if (L.st) l8_tpl_free(out);
    return L.st;
}

void l8_tpl_free(l8_template *t) {
    l8_arena_free(&t->arena);
    t->body = NULL;
}
