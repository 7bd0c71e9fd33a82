/* Name tables, the parse arena, output buffers and the text forms of values: JSON as the reference renderer writes it, numbers as
 * JavaScript prints them, and the Unicode whitespace that `trim` removes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/internal.h"

const char *const l8_filter_names[L8_F_COUNT_] = {
    "trim", "length", "tojson", "upper", "lower", "capitalize", "title", "string",
    "default", "first", "last", "join", "list", "replace", "items", "int", "safe",
};
const char *const l8_test_names[L8_T_COUNT_] = {
    "defined", "undefined", "none", "string", "mapping", "iterable", "sequence", "number", "integer",
    "float", "boolean", "true", "false", "callable", "odd", "even", "eq", "ne", "divisibleby", "lower", "upper",
};

/* ------------------------------------------------------------------ arena */

struct l8_arena_block {
    l8_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *l8_arena_alloc(l8_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    l8_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = calloc(1, sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void l8_arena_free(l8_arena *a) {
    for (l8_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

bool l8_buf_put(l8_buf *b, const void *s, size_t n) {
    if (n > L8_TPL_MAX_OUTPUT - b->len) return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

bool l8_buf_puts(l8_buf *b, const char *s) { return l8_buf_put(b, s, strlen(s)); }

/* JSON.stringify's escaping: the two specials, the short forms, other controls as \u00xx; all else
 * (DEL and non-ASCII included) raw. Python's json.dumps(ensure_ascii=False) agrees. */
static bool put_json_string(l8_buf *b, const char *s, size_t n) {
    if (!l8_buf_put(b, "\"", 1)) return false;
    size_t run = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc) continue;
        if (!l8_buf_put(b, s + run, k - run) || !l8_buf_puts(b, esc)) return false;
        run = k + 1;
    }
    return l8_buf_put(b, s + run, n - run) && l8_buf_put(b, "\"", 1);
}

bool l8_tpl_put_number(l8_buf *b, double d) {
    char out[64];
    if (!isfinite(d)) return l8_buf_puts(b, "null"); /* what JSON.stringify writes */
    if (d == 0) return l8_buf_puts(b, "0");
    if (d == trunc(d) && fabs(d) < 1e21) {
        snprintf(out, sizeof out, "%.0f", d);
        return l8_buf_puts(b, out);
    }
    /* Shortest digits that read back as d, then JavaScript's Number::toString layout. */
    char e[40];
    int p = 1;
    for (; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    const char *s = e;
    char *o = out;
    if (*s == '-') *o++ = *s++;
    char digits[20];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int n = atoi(s + 1) + 1; /* digits[0] sits at 10^(n-1) */
    if (n > 0 && n <= 21) {
        for (int k = 0; k < n; k++) *o++ = k < nd ? digits[k] : '0';
        if (nd > n) {
            *o++ = '.';
            for (int k = n; k < nd; k++) *o++ = digits[k];
        }
    } else if (n <= 0 && n > -6) {
        *o++ = '0';
        *o++ = '.';
        for (int k = 0; k < -n; k++) *o++ = '0';
        for (int k = 0; k < nd; k++) *o++ = digits[k];
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int k = 1; k < nd; k++) *o++ = digits[k];
        }
        o += snprintf(o, 8, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    *o = 0;
    return l8_buf_puts(b, out);
}

static bool newline_indent(l8_buf *b, int indent, int depth) {
    if (!l8_buf_put(b, "\n", 1)) return false;
    for (long k = 0; k < (long)indent * depth; k++)
        if (!l8_buf_put(b, " ", 1)) return false;
    return true;
}

bool l8_tpl_tojson(l8_buf *b, const json_t *v, int indent, int depth) {
    if (depth > L8_TPL_MAX_JSON_DEPTH) return false;
    /* indent=0 counts as no indent: JavaScript tests it for truth */
    bool pretty = indent > 0;
    const char *item_sep = pretty ? "," : ", ";
    switch (json_typeof(v)) {
    case JSON_NULL: return l8_buf_puts(b, "null");
    case JSON_TRUE: return l8_buf_puts(b, "true");
    case JSON_FALSE: return l8_buf_puts(b, "false");
    case JSON_INTEGER: {
        char s[32];
        snprintf(s, sizeof s, "%lld", (long long)json_integer_value(v));
        return l8_buf_puts(b, s);
    }
    case JSON_REAL: return l8_tpl_put_number(b, json_real_value(v));
    case JSON_STRING: return put_json_string(b, json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (!l8_buf_put(b, "[", 1)) return false;
        for (size_t k = 0; k < n; k++) {
            if (k && !l8_buf_puts(b, item_sep)) return false;
            if (pretty && !newline_indent(b, indent, depth + 1)) return false;
            if (!l8_tpl_tojson(b, json_array_get(v, k), indent, depth + 1)) return false;
        }
        if (pretty && n && !newline_indent(b, indent, depth)) return false;
        return l8_buf_put(b, "]", 1);
    }
    case JSON_OBJECT: {
        /* jansson keeps insertion order, which is the order the reference writes keys in */
        const char *key;
        json_t *val;
        bool first = true;
        if (!l8_buf_put(b, "{", 1)) return false;
        json_object_foreach((json_t *)v, key, val) {
            if (!first && !l8_buf_puts(b, item_sep)) return false;
            if (pretty && !newline_indent(b, indent, depth + 1)) return false;
            if (!put_json_string(b, key, strlen(key)) || !l8_buf_puts(b, ": ") ||
                !l8_tpl_tojson(b, val, indent, depth + 1))
                return false;
            first = false;
        }
        if (pretty && !first && !newline_indent(b, indent, depth)) return false;
        return l8_buf_put(b, "}", 1);
    }
    }
    return false;
}

size_t l8_tpl_u8len(const char *s, size_t len) {
    unsigned char c = (unsigned char)s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (n > len) return 1;
    for (size_t k = 1; k < n; k++)
        if (((unsigned char)s[k] & 0xC0) != 0x80) return 1;
    return n;
}

/* The code point of a well-formed sequence of length n at s. */
static unsigned cp_of(const unsigned char *s, size_t n) {
    switch (n) {
    case 2: return (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu);
    case 3: return (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
    case 4: return (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
    default: return s[0];
    }
}

static bool js_space(unsigned cp) {
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

size_t l8_tpl_space_at(const char *s, size_t len) {
    if (!len) return 0;
    size_t n = l8_tpl_u8len(s, len);
    return js_space(cp_of((const unsigned char *)s, n)) ? n : 0;
}

size_t l8_tpl_space_before(const char *s, size_t len) {
    if (!len) return 0;
    size_t k = len - 1; /* back up to the lead byte (at most 3 continuation bytes) */
    while (k > 0 && len - k < 4 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    size_t n = l8_tpl_u8len(s + k, len - k);
    if (k + n != len) return l8_tpl_space_at(s + len - 1, 1);
    return l8_tpl_space_at(s + k, n);
}
