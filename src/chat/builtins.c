/* Filters, tests, global functions and the string / mapping methods chat templates call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/internal.h"

/* ------------------------------------------------------------------ arguments */

enum { MAX_ARGS = 4 };
typedef struct {
    json_t *pos[MAX_ARGS];
    int npos;
    const char *kwname[MAX_ARGS];
    json_t *kw[MAX_ARGS];
    int nkw;
} args_t;

static void args_free(args_t *a) {
    for (int k = 0; k < a->npos; k++) json_decref(a->pos[k]);
    for (int k = 0; k < a->nkw; k++) json_decref(a->kw[k]);
}

static bool eval_args(l8_rctx *r, const l8_node *list, args_t *a) {
    memset(a, 0, sizeof *a);
    for (const l8_node *n = list; n; n = n->next) {
        bool kw = n->kind == L8_N_KWARG;
        if ((kw ? a->nkw : a->npos) >= MAX_ARGS) return l8_rfail(r, n, "too many arguments"), false;
        json_t *v = l8_eval(r, kw ? n->a : n);
        if (r->st) return false;
        if (kw) a->kwname[a->nkw] = n->s, a->kw[a->nkw++] = v;
        else a->pos[a->npos++] = v;
    }
    return true;
}

/* Positional argument idx, else the keyword name; borrowed, NULL when absent or undefined. */
static json_t *arg(const args_t *a, int idx, const char *name) {
    if (idx >= 0 && idx < a->npos) return a->pos[idx];
    for (int k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwname[k], name)) return a->kw[k];
    return NULL;
}

static const char *str_arg(const args_t *a, int idx, const char *name, size_t *len) {
    json_t *v = arg(a, idx, name);
    if (!v || !json_is_string(v)) return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* ------------------------------------------------------------------ string helpers */

static json_t *strip(l8_rctx *r, const l8_node *at, const char *s, size_t n, const char *chars, size_t nchars,
                     bool left, bool right) {
    size_t b = 0, e = n, k;
    if (chars) { /* Python's strip(chars): a set of bytes is enough for the ASCII sets templates use */
        while (left && b < e && memchr(chars, s[b], nchars)) b++;
        while (right && e > b && memchr(chars, s[e - 1], nchars)) e--;
    } else {
        while (left && b < e && (k = l8_tpl_space_at(s + b, e - b))) b += k;
        while (right && e > b && (k = l8_tpl_space_before(s + b, e - b))) e -= k;
    }
    return l8_mkstr(r, at, s + b, e - b);
}

typedef enum { CASE_UPPER, CASE_LOWER, CASE_CAPITALIZE, CASE_TITLE } case_mode;

static json_t *change_case(l8_rctx *r, const l8_node *at, const json_t *v, case_mode mode) {
    json_t *s = l8_str_of(r, at, v);
    if (!s) return NULL;
    size_t n = json_string_length(s);
    char *p = malloc(n + 1);
    if (!p) return json_decref(s), l8_rfail(r, at, "out of memory");
    memcpy(p, json_string_value(s), n);
    bool word_start = true;
    for (size_t k = 0; k < n; k++) {
        char c = p[k];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool up = mode == CASE_UPPER || (mode == CASE_CAPITALIZE && k == 0) || (mode == CASE_TITLE && word_start);
        if (alpha) p[k] = up ? (char)(c & ~0x20) : (char)(c | 0x20);
        word_start = !alpha && !(c >= '0' && c <= '9') && !((unsigned char)c & 0x80);
    }
    json_t *res = l8_mkstr(r, at, p, n);
    free(p);
    json_decref(s);
    return res;
}

static json_t *replace(l8_rctx *r, const l8_node *at, const json_t *v, const args_t *a) {
    size_t lo, ln;
    const char *old = str_arg(a, 0, "old", &lo), *new = str_arg(a, 1, "new", &ln);
    json_t *cnt = arg(a, 2, "count");
    if (!old || !new) return l8_rfail(r, at, "replace() needs two strings");
    long long count = cnt && json_is_integer(cnt) ? json_integer_value(cnt) : -1;
    json_t *s = l8_str_of(r, at, v);
    if (!s) return NULL;
    const char *p = json_string_value(s);
    size_t n = json_string_length(s), k = 0;
    l8_buf b = {0};
    bool ok = true;
    while (ok && k <= n) {
        const char *hit = count != 0 && lo ? memmem(p + k, n - k, old, lo) : NULL;
        if (count != 0 && !lo) hit = p + k; /* Python inserts `new` between characters */
        if (!hit) {
            ok = l8_buf_put(&b, p + k, n - k);
            break;
        }
        size_t at_ = (size_t)(hit - p);
        ok = l8_buf_put(&b, p + k, at_ - k) && l8_buf_put(&b, new, ln);
        if (count > 0) count--;
        if (lo) {
            k = at_ + lo;
        } else {
            if (at_ >= n) break;
            size_t c = l8_tpl_u8len(p + at_, n - at_);
            ok = ok && l8_buf_put(&b, p + at_, c);
            k = at_ + c;
            if (k >= n) {
                if (count != 0) ok = ok && l8_buf_put(&b, new, ln);
                break;
            }
        }
    }
    json_t *res = ok ? l8_mkstr(r, at, b.p ? b.p : "", b.len) : l8_rfail(r, at, "a string grew too large");
    free(b.p);
    json_decref(s);
    return res;
}

static json_t *items_of(l8_rctx *r, const json_t *v) {
    json_t *list = json_array();
    const char *key;
    json_t *x;
    if (!list) return l8_rfail(r, NULL, "out of memory");
    if (v && json_is_object(v)) json_object_foreach((json_t *)v, key, x) json_array_append_new(list, json_pack("[sO]", key, x));
    return list;
}

static size_t count_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t k = 0; k < n; k += l8_tpl_u8len(s + k, n - k)) c++;
    return c;
}

/* ------------------------------------------------------------------ filters */

json_t *l8_apply_filter(l8_rctx *r, const l8_node *n) {
    json_t *v = l8_eval(r, n->a), *res = NULL;
    args_t a;
    if (r->st) return NULL;
    if (!eval_args(r, n->body, &a)) {
        args_free(&a);
        json_decref(v);
        return NULL;
    }
    switch ((l8_filter)n->op) {
    case L8_F_TRIM: {
        size_t nc = 0;
        const char *chars = str_arg(&a, 0, "chars", &nc);
        json_t *s = l8_str_of(r, n, v);
        if (s) res = strip(r, n, json_string_value(s), json_string_length(s), chars, nc, true, true);
        json_decref(s);
        break;
    }
    case L8_F_LENGTH:
        if (!v) res = json_integer(0);
        else if (json_is_string(v)) res = json_integer((json_int_t)count_chars(json_string_value(v), json_string_length(v)));
        else if (json_is_array(v)) res = json_integer((json_int_t)json_array_size(v));
        else if (json_is_object(v)) res = json_integer((json_int_t)json_object_size(v));
        else l8_rfail(r, n, "length of a value that has none");
        break;
    case L8_F_TOJSON: {
        json_t *ind = arg(&a, 0, "indent");
        if (ind && !json_is_null(ind) && !(json_is_integer(ind) && json_integer_value(ind) >= 0 && json_integer_value(ind) <= 64)) {
            l8_rfail(r, n, "tojson: indent must be an integer from 0 to 64 or none");
            break;
        }
        if (l8_fn_of(r, v) >= 0) {
            l8_rfail(r, n, "tojson: cannot convert a function");
            break;
        }
        l8_buf b = {0};
        json_t *nul = json_null(); /* undefined writes as null, as in the reference */
        if (!l8_tpl_tojson(&b, v ? v : nul, ind && json_is_integer(ind) ? (int)json_integer_value(ind) : -1, 0))
            l8_rfail(r, n, "tojson: value too large or too deeply nested");
        else if (l8_charge(r, n, b.len >> 4))
            res = l8_mkstr(r, n, b.p, b.len);
        free(b.p);
        break;
    }
    case L8_F_UPPER: res = change_case(r, n, v, CASE_UPPER); break;
    case L8_F_LOWER: res = change_case(r, n, v, CASE_LOWER); break;
    case L8_F_TITLE: res = change_case(r, n, v, CASE_TITLE); break;
    case L8_F_CAPITALIZE: {
        json_t *low = change_case(r, n, v, CASE_LOWER);
        if (low) res = change_case(r, n, low, CASE_CAPITALIZE);
        json_decref(low);
        break;
    }
    case L8_F_STRING: res = l8_str_of(r, n, v); break;
    case L8_F_DEFAULT: {
        json_t *dflt = arg(&a, 0, "default_value");
        bool use = !v || (l8_truthy(arg(&a, 1, "boolean")) && !l8_truthy(v));
        res = use ? (dflt ? json_incref(dflt) : l8_mkstr(r, n, "", 0)) : json_incref(v);
        break;
    }
    case L8_F_FIRST:
    case L8_F_LAST: {
        bool first = n->op == L8_F_FIRST;
        if (v && json_is_array(v) && json_array_size(v))
            res = json_incref(json_array_get(v, first ? 0 : json_array_size(v) - 1));
        else if (v && json_is_string(v) && json_string_length(v)) {
            const char *s = json_string_value(v);
            size_t len = json_string_length(v), k = 0, c;
            if (first) c = l8_tpl_u8len(s, len);
            else {
                k = len - 1;
                while (k > 0 && len - k < 4 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
                c = len - k;
            }
            res = l8_mkstr(r, n, s + k, c);
        }
        break;
    }
    case L8_F_JOIN: {
        size_t ns = 0;
        const char *sep = str_arg(&a, 0, "d", &ns);
        l8_buf b = {0};
        bool ok = true;
        if (v && json_is_array(v) && l8_charge(r, n, json_array_size(v)))
            for (size_t k = 0; ok && k < json_array_size(v); k++)
                ok = (!k || !sep || l8_buf_put(&b, sep, ns)) && l8_put_value(r, &b, json_array_get(v, k));
        if (!ok) l8_rfail(r, n, "join: result too large");
        else if (!r->st) res = l8_mkstr(r, n, b.p ? b.p : "", b.len);
        free(b.p);
        break;
    }
    case L8_F_LIST:
        if (v && json_is_array(v)) res = json_incref(v);
        else if (v && json_is_object(v)) {
            const char *key;
            json_t *x;
            res = json_array();
            json_object_foreach(v, key, x) json_array_append_new(res, json_string_nocheck(key));
        } else if (v && json_is_string(v)) {
            const char *s = json_string_value(v);
            size_t len = json_string_length(v);
            res = json_array();
            for (size_t k = 0; res && k < len;) {
                size_t c = l8_tpl_u8len(s + k, len - k);
                json_array_append_new(res, json_stringn_nocheck(s + k, c));
                k += c;
            }
        } else if (!v) res = json_array();
        else l8_rfail(r, n, "list: cannot make a list of a %s", json_is_null(v) ? "none" : "scalar");
        break;
    case L8_F_REPLACE: res = replace(r, n, v, &a); break;
    case L8_F_ITEMS: res = items_of(r, v); break;
    case L8_F_INT:
        if (v && json_is_integer(v)) res = json_incref(v);
        else if (v && json_is_real(v) && json_real_value(v) > -9.2e18 && json_real_value(v) < 9.2e18)
            res = json_integer((json_int_t)json_real_value(v));
        else if (v && json_is_boolean(v)) res = json_integer(json_is_true(v));
        else if (v && json_is_string(v)) res = json_integer(strtoll(json_string_value(v), NULL, 10));
        else res = json_integer(0);
        break;
    case L8_F_SAFE: res = json_incref(v); break;
    default: l8_rfail(r, n, "internal error: unknown filter"); break;
    }
    args_free(&a);
    json_decref(v);
    if (r->st) json_decref(res), res = NULL;
    return res;
}

/* ------------------------------------------------------------------ tests */

json_t *l8_apply_test(l8_rctx *r, const l8_node *n) {
    json_t *v = l8_eval(r, n->a);
    args_t a;
    if (r->st) return NULL;
    if (!eval_args(r, n->body, &a)) {
        args_free(&a);
        json_decref(v);
        return NULL;
    }
    json_t *x = arg(&a, 0, NULL);
    bool t = false;
    switch ((l8_test)n->op) {
    case L8_T_DEFINED: t = v != NULL; break;
    case L8_T_UNDEFINED: t = v == NULL; break;
    case L8_T_NONE: t = v && json_is_null(v); break;
    case L8_T_STRING: t = v && json_is_string(v); break;
    case L8_T_MAPPING: t = v && json_is_object(v) && l8_fn_of(r, v) < 0; break;
    /* strings are iterable (as in Jinja), which is why Llama 3's template tojson-s tool results */
    case L8_T_ITERABLE:
    case L8_T_SEQUENCE: t = v && (json_is_string(v) || json_is_array(v) || json_is_object(v)) && l8_fn_of(r, v) < 0; break;
    case L8_T_NUMBER: t = v && json_is_number(v); break;
    case L8_T_INTEGER: t = v && json_is_integer(v); break;
    case L8_T_FLOAT: t = v && json_is_real(v); break;
    case L8_T_BOOLEAN: t = v && json_is_boolean(v); break;
    case L8_T_TRUE: t = v && json_is_true(v); break;
    case L8_T_FALSE: t = v && json_is_false(v); break;
    case L8_T_CALLABLE: t = l8_fn_of(r, v) >= 0; break;
    case L8_T_ODD:
    case L8_T_EVEN:
        if (!v || !json_is_integer(v)) l8_rfail(r, n, "odd/even need an integer");
        else t = (json_integer_value(v) % 2 != 0) == (n->op == L8_T_ODD);
        break;
    case L8_T_EQ: t = l8_veq(v, x, 0); break;
    case L8_T_NE: t = !l8_veq(v, x, 0); break;
    case L8_T_DIVISIBLEBY:
        if (!v || !x || !json_is_integer(v) || !json_is_integer(x) || json_integer_value(x) == 0)
            l8_rfail(r, n, "divisibleby needs integers and a non-zero divisor");
        else t = json_integer_value(x) == -1 || json_integer_value(v) % json_integer_value(x) == 0;
        break;
    case L8_T_LOWER:
    case L8_T_UPPER:
        if (v && json_is_string(v)) {
            json_t *c = l8_str_of(r, n, v), *m = c ? change_case(r, n, c, n->op == L8_T_LOWER ? CASE_LOWER : CASE_UPPER) : NULL;
            t = m && l8_veq(m, c, 0);
            json_decref(c);
            json_decref(m);
        }
        break;
    default: l8_rfail(r, n, "internal error: unknown test"); break;
    }
    if (n->i) t = !t;
    args_free(&a);
    json_decref(v);
    return r->st ? NULL : json_boolean(t);
}

/* ------------------------------------------------------------------ functions and methods */

static json_t *call_fn(l8_rctx *r, const l8_node *n, int fn, const args_t *a) {
    switch ((l8_fn)fn) {
    case L8_FN_RAISE: {
        l8_buf b = {0};
        l8_put_value(r, &b, arg(a, 0, NULL));
        if (!r->st) r->st = l8_fail(r->e, LLM8_STATUS_INVALID_ARGUMENT, "chat template raised an error: %.400s", b.p ? b.p : "");
        free(b.p);
        return NULL;
    }
    case L8_FN_STRFTIME: {
        json_t *f = arg(a, 0, "format");
        if (!f || !json_is_string(f)) return l8_rfail(r, n, "strftime_now() needs a format string");
        time_t now = time(NULL);
        struct tm tm;
        char buf[256];
        localtime_r(&now, &tm);
        size_t len = strlen(json_string_value(f)) < 64 ? strftime(buf, sizeof buf, json_string_value(f), &tm) : 0;
        return l8_mkstr(r, n, buf, len);
    }
    case L8_FN_NAMESPACE: {
        json_t *ns = json_object();
        if (!ns) return l8_rfail(r, n, "out of memory");
        json_t *init = arg(a, 0, NULL);
        if (init && json_is_object(init)) json_object_update(ns, init);
        for (int k = 0; k < a->nkw; k++) json_object_set_nocheck(ns, a->kwname[k], a->kw[k] ? a->kw[k] : json_null());
        if (!l8_charge(r, n, json_array_size(r->namespaces)) || json_array_append(r->namespaces, ns)) {
            json_decref(ns);
            return l8_rfail(r, n, "out of memory");
        }
        return ns;
    }
    case L8_FN_RANGE: {
        long long v[3] = {0, 0, 1};
        if (a->npos < 1 || a->npos > 3) return l8_rfail(r, n, "range() takes 1 to 3 integers");
        for (int k = 0; k < a->npos; k++) {
            if (!a->pos[k] || !json_is_integer(a->pos[k])) return l8_rfail(r, n, "range() takes integers");
            v[a->npos == 1 ? 1 : k] = json_integer_value(a->pos[k]);
        }
        if (v[2] == 0) return l8_rfail(r, n, "range() step cannot be zero");
        long double count = v[2] > 0 ? ((long double)v[1] - v[0]) / v[2] : ((long double)v[0] - v[1]) / -v[2];
        if (count > L8_TPL_MAX_LIST) return l8_rfail(r, n, "range() too long (more than %d items)", L8_TPL_MAX_LIST);
        json_t *list = json_array();
        if (!list) return l8_rfail(r, n, "out of memory");
        for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2])
            if (!l8_charge(r, n, 1) || json_array_append_new(list, json_integer(i))) break;
        if (r->st) json_decref(list), list = NULL;
        return list;
    }
    default: return l8_rfail(r, n, "internal error: unknown function");
    }
}

static bool affix(const json_t *s, const json_t *fix, bool start) {
    if (!fix || !json_is_string(fix)) return false;
    size_t n = json_string_length(s), m = json_string_length(fix);
    return m <= n && !memcmp(json_string_value(s) + (start ? 0 : n - m), json_string_value(fix), m);
}

static json_t *split(l8_rctx *r, const l8_node *n, const json_t *s, const args_t *a) {
    size_t ls = 0, len = json_string_length(s);
    const char *sep = str_arg(a, 0, "sep", &ls), *p = json_string_value(s);
    json_t *mx = arg(a, 1, "maxsplit");
    long long max = mx && json_is_integer(mx) ? json_integer_value(mx) : -1;
    if (sep && !ls) return l8_rfail(r, n, "split(): empty separator");
    json_t *list = json_array();
    size_t k = 0, sp;
    if (!list) return l8_rfail(r, n, "out of memory");
    while (k <= len && !r->st) {
        if (!sep) { /* runs of whitespace separate; no empty strings */
            while (k < len && (sp = l8_tpl_space_at(p + k, len - k))) k += sp;
            if (k >= len) break;
        }
        size_t e = k;
        if (max != 0) {
            if (sep) {
                const char *hit = memmem(p + k, len - k, sep, ls);
                e = hit ? (size_t)(hit - p) : len;
            } else {
                while (e < len && !l8_tpl_space_at(p + e, len - e)) e += l8_tpl_u8len(p + e, len - e);
            }
        } else {
            e = len;
            if (!sep)
                while (e > k && (sp = l8_tpl_space_before(p + k, e - k))) e -= sp;
        }
        if (!l8_charge(r, n, 1) || json_array_size(list) >= L8_TPL_MAX_LIST ||
            json_array_append_new(list, json_stringn_nocheck(p + k, e - k)))
            break;
        if (max > 0) max--;
        if (e >= len) break;
        k = e + (sep ? ls : 0);
        if (sep && k == len) {
            json_array_append_new(list, json_string(""));
            break;
        }
    }
    if (r->st) json_decref(list), list = NULL;
    return list;
}

static json_t *call_method(l8_rctx *r, const l8_node *n, json_t *obj, const char *m, const args_t *a) {
    if (obj && json_is_string(obj)) {
        const char *s = json_string_value(obj);
        size_t len = json_string_length(obj), nc = 0;
        const char *chars = str_arg(a, 0, "chars", &nc);
        if (!strcmp(m, "strip")) return strip(r, n, s, len, chars, nc, true, true);
        if (!strcmp(m, "lstrip")) return strip(r, n, s, len, chars, nc, true, false);
        if (!strcmp(m, "rstrip")) return strip(r, n, s, len, chars, nc, false, true);
        if (!strcmp(m, "upper")) return change_case(r, n, obj, CASE_UPPER);
        if (!strcmp(m, "lower")) return change_case(r, n, obj, CASE_LOWER);
        if (!strcmp(m, "title")) return change_case(r, n, obj, CASE_TITLE);
        if (!strcmp(m, "capitalize")) {
            json_t *low = change_case(r, n, obj, CASE_LOWER), *res = low ? change_case(r, n, low, CASE_CAPITALIZE) : NULL;
            json_decref(low);
            return res;
        }
        if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
            json_t *fix = arg(a, 0, NULL);
            bool start = m[0] == 's', t = false;
            if (fix && json_is_array(fix)) { /* a tuple of candidates */
                for (size_t k = 0; k < json_array_size(fix) && !t; k++) t = affix(obj, json_array_get(fix, k), start);
            } else if (fix && json_is_string(fix)) {
                t = affix(obj, fix, start);
            } else {
                return l8_rfail(r, n, "%s() needs a string", m);
            }
            return json_boolean(t);
        }
        if (!strcmp(m, "split")) return split(r, n, obj, a);
        if (!strcmp(m, "replace")) return replace(r, n, obj, a);
    } else if (obj && json_is_object(obj)) {
        if (!strcmp(m, "items")) return items_of(r, obj);
        if (!strcmp(m, "keys") || !strcmp(m, "values")) {
            json_t *list = json_array();
            const char *key;
            json_t *x;
            json_object_foreach(obj, key, x) json_array_append_new(list, m[0] == 'k' ? json_string_nocheck(key) : json_incref(x));
            return list;
        }
        if (!strcmp(m, "get")) {
            json_t *k = arg(a, 0, "key"), *dflt = arg(a, 1, "default");
            json_t *v = k && json_is_string(k) ? json_object_getn(obj, json_string_value(k), json_string_length(k)) : NULL;
            return json_incref(v ? v : dflt ? dflt : json_null());
        }
    }
    if (!obj) return l8_rfail(r, n, "cannot call '%s' on an undefined value", m);
    return l8_rfail(r, n, "no method '%s' on this value", m);
}

json_t *l8_call(l8_rctx *r, const l8_node *n) {
    const l8_node *callee = n->a;
    json_t *obj = NULL, *fnv = NULL, *res = NULL;
    const char *method = NULL;
    if (callee->kind == L8_N_ATTR) {
        obj = l8_eval(r, callee->a);
        if (r->st) return NULL;
        fnv = obj && json_is_object(obj) ? json_object_get(obj, callee->s) : NULL;
        if (!fnv) method = callee->s;
    } else {
        obj = l8_eval(r, callee);
        if (r->st) return NULL;
        fnv = obj;
    }
    args_t a;
    if (!eval_args(r, n->body, &a)) {
        args_free(&a);
        json_decref(obj);
        return NULL;
    }
    int fn = l8_fn_of(r, fnv);
    if (method) res = call_method(r, n, obj, method, &a);
    else if (fn >= 0) res = call_fn(r, n, fn, &a);
    else if (!fnv && callee->kind == L8_N_NAME) l8_rfail(r, n, "'%s' is undefined", callee->s);
    else l8_rfail(r, n, "value is not callable");
    args_free(&a);
    json_decref(obj);
    if (r->st) json_decref(res), res = NULL;
    return res;
}
