/* The chat-template evaluator: walks the tree from parse.c over jansson values. An undefined value
 * is a NULL json_t pointer; every evaluation returns a new reference (or NULL) and records the first
 * error in the render context, which stops all further work. */
#include "chat/template.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/internal.h"

json_t *l8_rfail(l8_rctx *r, const l8_node *at, const char *fmt, ...) {
    if (r->st) return NULL;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) r->st = l8_fail(r->e, LLM8_STATUS_INVALID_ARGUMENT, "chat template line %d: %s", at->line, msg);
    else r->st = l8_fail(r->e, LLM8_STATUS_INVALID_ARGUMENT, "chat template: %s", msg);
    return NULL;
}

static json_t *oom(l8_rctx *r) {
    if (!r->st) r->st = l8_fail(r->e, LLM8_STATUS_OUT_OF_MEMORY, "chat template: out of memory");
    return NULL;
}

bool l8_charge(l8_rctx *r, const l8_node *at, size_t work) {
    if (r->st) return false;
    if (work > (size_t)L8_TPL_MAX_STEPS || (r->steps += (long)work) > L8_TPL_MAX_STEPS) {
        l8_rfail(r, at, "the template does too much work (more than %ld steps)", L8_TPL_MAX_STEPS);
        return false;
    }
    return true;
}

int l8_fn_of(const l8_rctx *r, const json_t *v) {
    for (int k = 0; v && k < L8_FN_COUNT_; k++)
        if (r->fn[k] == v) return k;
    return -1;
}

bool l8_truthy(const json_t *v) {
    if (!v) return false;
    switch (json_typeof(v)) {
    case JSON_TRUE: return true;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_STRING: return json_string_length(v) != 0;
    case JSON_ARRAY: return json_array_size(v) != 0;
    case JSON_OBJECT: return json_object_size(v) != 0;
    default: return false;
    }
}

bool l8_veq(const json_t *a, const json_t *b, int depth) {
    if (!a || !b) return a == b;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b) || depth > L8_TPL_MAX_JSON_DEPTH) return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t k = 0; k < json_array_size(a); k++)
            if (!l8_veq(json_array_get(a, k), json_array_get(b, k), depth + 1)) return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)a, key, v) if (!l8_veq(v, json_object_get(b, key), depth + 1)) return false;
        return true;
    }
    return json_equal(a, b); /* scalars */
}

json_t *l8_mkstr(l8_rctx *r, const l8_node *at, const char *s, size_t n) {
    if (n > L8_TPL_MAX_OUTPUT) return l8_rfail(r, at, "a string grew past %zu bytes", L8_TPL_MAX_OUTPUT);
    if (!l8_charge(r, at, n >> 4)) return NULL;
    json_t *v = json_stringn_nocheck(s, n);
    return v ? v : oom(r);
}

bool l8_put_value(l8_rctx *r, l8_buf *b, const json_t *v) {
    char num[32];
    if (!v) return true;
    if (l8_fn_of(r, v) >= 0) return l8_buf_puts(b, "<function>");
    switch (json_typeof(v)) {
    case JSON_STRING: return l8_buf_put(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        return l8_buf_puts(b, num);
    case JSON_REAL: return l8_tpl_put_number(b, json_real_value(v));
    case JSON_TRUE: return l8_buf_puts(b, "True");
    case JSON_FALSE: return l8_buf_puts(b, "False");
    case JSON_NULL: return l8_buf_puts(b, "None");
    default: return l8_tpl_tojson(b, v, -1, 0);
    }
}

json_t *l8_str_of(l8_rctx *r, const l8_node *at, const json_t *v) {
    if (v && json_is_string(v)) return json_incref((json_t *)v);
    l8_buf b = {0};
    if (!l8_put_value(r, &b, v)) {
        free(b.p);
        return l8_rfail(r, at, "value too large or too deeply nested to print");
    }
    json_t *s = l8_mkstr(r, at, b.p ? b.p : "", b.len);
    free(b.p);
    return s;
}

/* ------------------------------------------------------------------ names and scopes */

static const char *const FN_NAMES[L8_FN_COUNT_] = {"raise_exception", "strftime_now", "namespace", "range"};

static json_t *lookup(l8_rctx *r, const char *name) {
    for (int k = r->nscopes - 1; k >= 0; k--) {
        json_t *v = json_object_get(r->scopes[k], name);
        if (v) return v;
    }
    for (int k = 0; k < L8_FN_COUNT_; k++)
        if (!strcmp(name, FN_NAMES[k])) return r->fn[k];
    return NULL;
}

/* Binds name in the innermost scope; undefined unbinds it there. Takes v's reference. */
static void bind(l8_rctx *r, const l8_node *at, const char *name, json_t *v) {
    json_t *scope = r->scopes[r->nscopes - 1];
    if (!v) json_object_del(scope, name);
    else if (json_object_set_new_nocheck(scope, name, v)) oom(r);
    (void)at;
}

static bool push_scope(l8_rctx *r, const l8_node *at) {
    if (r->nscopes >= L8_TPL_MAX_EVAL_DEPTH) return l8_rfail(r, at, "loops nested too deeply"), false;
    if (!(r->scopes[r->nscopes] = json_object())) return oom(r), false;
    r->nscopes++;
    return true;
}

static void pop_scope(l8_rctx *r) { json_decref(r->scopes[--r->nscopes]); }

/* ------------------------------------------------------------------ expressions */

static const char *type_name(const l8_rctx *r, const json_t *v) {
    if (!v) return "undefined";
    if (l8_fn_of(r, v) >= 0) return "function";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "mapping";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "float";
    case JSON_NULL: return "none";
    default: return "boolean";
    }
}

/* Code-point offsets of a string: offs[k] is where character k starts, offs[n] the end. */
static size_t *char_offsets(l8_rctx *r, const char *s, size_t len, size_t *n) {
    size_t *offs = malloc((len + 1) * sizeof *offs), k = 0;
    if (!offs) return oom(r), NULL;
    for (size_t p = 0; p < len; p += l8_tpl_u8len(s + p, len - p)) offs[k++] = p;
    offs[k] = len;
    *n = k;
    return offs;
}

static json_t *get_item(l8_rctx *r, const l8_node *at, const json_t *obj, const json_t *key) {
    if (!obj || !key) return NULL;
    if (json_is_object(obj) && json_is_string(key))
        return json_incref(json_object_getn(obj, json_string_value(key), json_string_length(key)));
    if (!json_is_integer(key) || !(json_is_array(obj) || json_is_string(obj))) return NULL;
    long long i = json_integer_value(key);
    if (json_is_array(obj)) {
        long long n = (long long)json_array_size(obj);
        if (i < 0) i += n;
        return i >= 0 && i < n ? json_incref(json_array_get(obj, (size_t)i)) : NULL;
    }
    size_t n;
    size_t *offs = char_offsets(r, json_string_value(obj), json_string_length(obj), &n);
    if (!offs) return NULL;
    if (i < 0) i += (long long)n;
    json_t *c = NULL;
    if (i >= 0 && i < (long long)n) c = l8_mkstr(r, at, json_string_value(obj) + offs[i], offs[i + 1] - offs[i]);
    free(offs);
    return c;
}

static bool slice_bound(l8_rctx *r, const l8_node *n, long long *out, bool *given) {
    *given = false;
    if (!n) return true;
    json_t *v = l8_eval(r, n);
    if (r->st) return false;
    bool ok = true;
    if (v && json_is_integer(v)) *out = json_integer_value(v), *given = true;
    else if (v && !json_is_null(v)) ok = false, l8_rfail(r, n, "slice indices must be integers");
    json_decref(v);
    return ok;
}

static json_t *eval_slice(l8_rctx *r, const l8_node *n) {
    json_t *obj = l8_eval(r, n->a);
    long long start = 0, stop = 0, step = 1;
    bool has_start, has_stop, has_step;
    if (r->st || !slice_bound(r, n->b, &start, &has_start) || !slice_bound(r, n->c, &stop, &has_stop) ||
        !slice_bound(r, n->d, &step, &has_step)) {
        json_decref(obj);
        return NULL;
    }
    if (!has_step) step = 1;
    if (step == 0) return json_decref(obj), l8_rfail(r, n, "slice step cannot be zero");
    if (!obj || !(json_is_array(obj) || json_is_string(obj))) {
        json_t *res = obj ? l8_rfail(r, n, "cannot slice a %s", type_name(r, obj)) : NULL;
        json_decref(obj);
        return res;
    }
    size_t len = 0, *offs = NULL;
    if (json_is_array(obj)) len = json_array_size(obj);
    else if (!(offs = char_offsets(r, json_string_value(obj), json_string_length(obj), &len))) return json_decref(obj), NULL;
    long long L = (long long)len;
    /* Python's slice.indices */
    if (has_start) {
        if (start < 0) start += L;
        if (start < 0) start = step < 0 ? -1 : 0;
        if (start >= L) start = step < 0 ? L - 1 : L;
    } else {
        start = step < 0 ? L - 1 : 0;
    }
    if (has_stop) {
        if (stop < 0) stop += L;
        if (stop < 0) stop = step < 0 ? -1 : 0;
        if (stop >= L) stop = step < 0 ? L - 1 : L;
    } else {
        stop = step < 0 ? -1 : L;
    }
    json_t *res = NULL;
    if (json_is_array(obj)) {
        if (!(res = json_array())) return json_decref(obj), oom(r);
        for (long long k = start; step > 0 ? k < stop : k > stop; k += step)
            if (!l8_charge(r, n, 1) || json_array_append(res, json_array_get(obj, (size_t)k))) break;
    } else {
        l8_buf b = {0};
        const char *s = json_string_value(obj);
        for (long long k = start; step > 0 ? k < stop : k > stop; k += step)
            if (!l8_buf_put(&b, s + offs[k], offs[k + 1] - offs[k])) break;
        res = l8_mkstr(r, n, b.p ? b.p : "", b.len);
        free(b.p);
    }
    free(offs);
    json_decref(obj);
    if (r->st) json_decref(res), res = NULL;
    return res;
}

static bool is_num(const json_t *v) { return v && (json_is_integer(v) || json_is_real(v)); }

static json_t *arith(l8_rctx *r, const l8_node *n, const json_t *a, const json_t *b) {
    int op = n->op;
    if (op == L8_OP_MUL && a && b && json_is_string(a) && json_is_integer(b)) { /* 'ab' * 3 */
        long long times = json_integer_value(b);
        size_t len = json_string_length(a);
        if (times <= 0 || !len) return l8_mkstr(r, n, "", 0);
        if ((unsigned long long)times > L8_TPL_MAX_OUTPUT / len) return l8_rfail(r, n, "string repeat too large");
        l8_buf out = {0};
        for (long long k = 0; k < times; k++) l8_buf_put(&out, json_string_value(a), len);
        json_t *s = l8_mkstr(r, n, out.p ? out.p : "", out.len);
        free(out.p);
        return s;
    }
    if (!is_num(a) || !is_num(b))
        return l8_rfail(r, n, "unsupported operand types for arithmetic: %s and %s", type_name(r, a), type_name(r, b));
    if (json_is_integer(a) && json_is_integer(b) && op != L8_OP_DIV) {
        long long x = json_integer_value(a), y = json_integer_value(b), z = 0;
        bool ovf = false;
        switch (op) {
        case L8_OP_ADD: ovf = __builtin_add_overflow(x, y, &z); break;
        case L8_OP_SUB: ovf = __builtin_sub_overflow(x, y, &z); break;
        case L8_OP_MUL: ovf = __builtin_mul_overflow(x, y, &z); break;
        case L8_OP_FLOORDIV:
        case L8_OP_MOD:
            if (y == 0) return l8_rfail(r, n, "division by zero");
            if (x == LLONG_MIN && y == -1) { ovf = true; break; }
            z = op == L8_OP_FLOORDIV ? x / y : x % y;
            if (op == L8_OP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) z--;
            if (op == L8_OP_MOD && z != 0 && ((z < 0) != (y < 0))) z += y;
            break;
        case L8_OP_POW:
            if (y < 0) goto real;
            z = 1;
            for (long long k = 0; k < y && !ovf; k++) {
                ovf = __builtin_mul_overflow(z, x, &z);
                if (z == 0 || z == 1) break;
                if (z == -1) { z = (y - k - 1) % 2 ? -z : z; break; }
            }
            break;
        }
        if (ovf) return l8_rfail(r, n, "integer overflow");
        json_t *v = json_integer(z);
        return v ? v : oom(r);
    }
real:;
    double x = json_number_value(a), y = json_number_value(b), z = 0;
    switch (op) {
    case L8_OP_ADD: z = x + y; break;
    case L8_OP_SUB: z = x - y; break;
    case L8_OP_MUL: z = x * y; break;
    case L8_OP_DIV:
    case L8_OP_FLOORDIV:
    case L8_OP_MOD:
        if (y == 0) return l8_rfail(r, n, "division by zero");
        z = op == L8_OP_DIV ? x / y : op == L8_OP_FLOORDIV ? floor(x / y) : x - y * floor(x / y);
        break;
    case L8_OP_POW: z = pow(x, y); break;
    }
    json_t *v = json_real(z);
    return v ? v : l8_rfail(r, n, "arithmetic result is not a finite number");
}

static json_t *eval_binop(l8_rctx *r, const l8_node *n) {
    json_t *a = l8_eval(r, n->a);
    if (r->st) return NULL;
    if (n->op == L8_OP_AND || n->op == L8_OP_OR) { /* Python: the deciding operand itself */
        if (l8_truthy(a) == (n->op == L8_OP_OR)) return a;
        json_decref(a);
        return l8_eval(r, n->b);
    }
    json_t *b = l8_eval(r, n->b), *res = NULL;
    if (r->st) {
        json_decref(a);
        return NULL;
    }
    switch (n->op) {
    case L8_OP_EQ:
    case L8_OP_NE:
        if (l8_charge(r, n, (json_is_array(a) ? json_array_size(a) : 0) + (json_is_object(a) ? json_object_size(a) : 0)))
            res = json_boolean(l8_veq(a, b, 0) == (n->op == L8_OP_EQ));
        break;
    case L8_OP_LT: case L8_OP_GT: case L8_OP_LE: case L8_OP_GE: {
        int c;
        if (is_num(a) && is_num(b)) {
            double x = json_number_value(a), y = json_number_value(b);
            if (json_is_integer(a) && json_is_integer(b))
                c = json_integer_value(a) < json_integer_value(b) ? -1 : json_integer_value(a) > json_integer_value(b);
            else
                c = x < y ? -1 : x > y;
        } else if (a && b && json_is_string(a) && json_is_string(b)) {
            size_t la = json_string_length(a), lb = json_string_length(b);
            c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
            if (!c) c = la < lb ? -1 : la > lb;
        } else {
            l8_rfail(r, n, "cannot compare %s with %s", type_name(r, a), type_name(r, b));
            break;
        }
        bool t = n->op == L8_OP_LT ? c < 0 : n->op == L8_OP_GT ? c > 0 : n->op == L8_OP_LE ? c <= 0 : c >= 0;
        res = json_boolean(t);
        break;
    }
    case L8_OP_IN:
    case L8_OP_NOTIN: {
        bool found = false;
        if (!b) {
            found = false;
        } else if (json_is_string(b) && a && json_is_string(a)) {
            found = !json_string_length(a) ||
                    memmem(json_string_value(b), json_string_length(b), json_string_value(a), json_string_length(a));
            if (!l8_charge(r, n, json_string_length(b) >> 4)) break;
        } else if (json_is_array(b)) {
            if (!l8_charge(r, n, json_array_size(b))) break;
            for (size_t k = 0; k < json_array_size(b) && !found; k++) found = l8_veq(a, json_array_get(b, k), 0);
        } else if (json_is_object(b) && a && json_is_string(a)) {
            found = json_object_getn(b, json_string_value(a), json_string_length(a)) != NULL;
        } else if (!json_is_object(b)) {
            l8_rfail(r, n, "'in' needs a string, list or mapping on the right, not %s", type_name(r, b));
            break;
        }
        res = json_boolean(found == (n->op == L8_OP_IN));
        break;
    }
    case L8_OP_ADD:
        if (!a || !b || json_is_null(a) || json_is_null(b)) {
            l8_rfail(r, n, "cannot add %s and %s", type_name(r, a), type_name(r, b));
        } else if (json_is_array(a) && json_is_array(b)) {
            size_t total = json_array_size(a) + json_array_size(b);
            if (total > L8_TPL_MAX_LIST) l8_rfail(r, n, "a list grew past %d items", L8_TPL_MAX_LIST);
            else if (l8_charge(r, n, total) && !(res = json_array())) oom(r);
            else if (res && (json_array_extend(res, a) || json_array_extend(res, b))) oom(r);
        } else if (json_is_string(a) || json_is_string(b)) {
            /* the reference concatenates a string with anything printable */
            l8_buf s = {0};
            if (!l8_put_value(r, &s, a) || !l8_put_value(r, &s, b)) l8_rfail(r, n, "a string grew past %zu bytes", L8_TPL_MAX_OUTPUT);
            else res = l8_mkstr(r, n, s.p ? s.p : "", s.len);
            free(s.p);
        } else {
            res = arith(r, n, a, b);
        }
        break;
    case L8_OP_CONCAT: {
        l8_buf s = {0};
        if (!l8_put_value(r, &s, a) || !l8_put_value(r, &s, b)) l8_rfail(r, n, "a string grew past %zu bytes", L8_TPL_MAX_OUTPUT);
        else res = l8_mkstr(r, n, s.p ? s.p : "", s.len);
        free(s.p);
        break;
    }
    default: res = arith(r, n, a, b); break;
    }
    json_decref(a);
    json_decref(b);
    if (r->st) {
        json_decref(res);
        return NULL;
    }
    return res;
}

/* Literal containers may nest values arbitrarily deep across loop iterations; bound that, since
 * jansson frees and compares recursively. */
static bool depth_ok(l8_rctx *r, const l8_node *at, const json_t *v, int depth) {
    if (!v || !(json_is_array(v) || json_is_object(v))) return true;
    if (depth > 512) return l8_rfail(r, at, "values nested too deeply"), false;
    if (!l8_charge(r, at, 1)) return false;
    if (json_is_array(v)) {
        for (size_t k = 0; k < json_array_size(v); k++)
            if (!depth_ok(r, at, json_array_get(v, k), depth + 1)) return false;
    } else {
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x) if (!depth_ok(r, at, x, depth + 1)) return false;
    }
    return true;
}

static json_t *eval_container(l8_rctx *r, const l8_node *n) {
    bool dict = n->kind == L8_N_DICT;
    json_t *c = dict ? json_object() : json_array();
    if (!c) return oom(r);
    for (const l8_node *it = n->body; it && !r->st; it = it->next) {
        if (dict) {
            json_t *k = l8_eval(r, it->a), *v = r->st ? NULL : l8_eval(r, it->b);
            if (!r->st && !(k && json_is_string(k))) l8_rfail(r, it, "mapping keys must be strings");
            if (!r->st && depth_ok(r, it, v, 1) && json_object_set_nocheck(c, json_string_value(k), v ? v : json_null()))
                oom(r);
            json_decref(k);
            json_decref(v);
        } else {
            json_t *v = l8_eval(r, it);
            if (!r->st && depth_ok(r, it, v, 1) && json_array_append_new(c, v ? v : json_null())) oom(r);
            else if (r->st) json_decref(v);
        }
    }
    if (r->st) json_decref(c), c = NULL;
    return c;
}

json_t *l8_eval(l8_rctx *r, const l8_node *n) {
    if (r->st || !l8_charge(r, n, 1)) return NULL;
    if (r->depth >= L8_TPL_MAX_EVAL_DEPTH) return l8_rfail(r, n, "expression nested too deeply");
    r->depth++;
    json_t *v = NULL, *x;
    switch (n->kind) {
    case L8_N_STR: v = l8_mkstr(r, n, n->s, n->slen); break;
    case L8_N_INT: if (!(v = json_integer(n->i))) oom(r); break;
    case L8_N_FLOAT: if (!(v = json_real(n->f))) oom(r); break;
    case L8_N_TRUE: v = json_true(); break;
    case L8_N_FALSE: v = json_false(); break;
    case L8_N_NONE: v = json_null(); break;
    case L8_N_NAME: v = json_incref(lookup(r, n->s)); break;
    case L8_N_ATTR:
        x = l8_eval(r, n->a);
        if (x && json_is_object(x)) v = json_incref(json_object_get(x, n->s));
        json_decref(x);
        break;
    case L8_N_INDEX: {
        x = l8_eval(r, n->a);
        json_t *k = r->st ? NULL : l8_eval(r, n->b);
        if (!r->st) v = get_item(r, n, x, k);
        json_decref(x);
        json_decref(k);
        break;
    }
    case L8_N_SLICE: v = eval_slice(r, n); break;
    case L8_N_CALL: v = l8_call(r, n); break;
    case L8_N_FILTER: v = l8_apply_filter(r, n); break;
    case L8_N_TEST: v = l8_apply_test(r, n); break;
    case L8_N_BINOP: v = eval_binop(r, n); break;
    case L8_N_NOT:
        x = l8_eval(r, n->a);
        if (!r->st) v = json_boolean(!l8_truthy(x));
        json_decref(x);
        break;
    case L8_N_NEG:
        x = l8_eval(r, n->a);
        if (r->st) break;
        if (x && json_is_integer(x) && json_integer_value(x) != LLONG_MIN) v = json_integer(-json_integer_value(x));
        else if (x && json_is_real(x)) v = json_real(-json_real_value(x));
        else l8_rfail(r, n, "cannot negate %s", type_name(r, x));
        json_decref(x);
        break;
    case L8_N_COND:
        x = l8_eval(r, n->b);
        if (!r->st) v = l8_truthy(x) ? l8_eval(r, n->a) : n->c ? l8_eval(r, n->c) : NULL;
        json_decref(x);
        break;
    case L8_N_LIST:
    case L8_N_DICT: v = eval_container(r, n); break;
    default: l8_rfail(r, n, "internal error: statement in an expression"); break;
    }
    r->depth--;
    if (r->st) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------ statements */

static void exec_list(l8_rctx *r, const l8_node *n);

/* Binds a loop item to the loop's targets: one name, or several unpacked from a list. */
static void bind_targets(l8_rctx *r, const l8_node *targets, json_t *item) {
    if (!targets->next) {
        bind(r, targets, targets->s, json_incref(item));
        return;
    }
    size_t want = 0;
    for (const l8_node *t = targets; t; t = t->next) want++;
    if (!json_is_array(item) || json_array_size(item) != want) {
        l8_rfail(r, targets, "cannot unpack a %s into %zu loop variables", type_name(r, item), want);
        return;
    }
    size_t k = 0;
    for (const l8_node *t = targets; t; t = t->next) bind(r, t, t->s, json_incref(json_array_get(item, k++)));
}

static json_t *iterable_items(l8_rctx *r, const l8_node *at, json_t *it) {
    json_t *items = NULL;
    if (!it) return json_array(); /* iterating undefined yields nothing, as in Jinja */
    if (json_is_array(it)) return json_incref(it);
    if (json_is_object(it)) {
        const char *key;
        json_t *v;
        if (!(items = json_array())) return oom(r);
        json_object_foreach(it, key, v) json_array_append_new(items, json_string_nocheck(key));
    } else if (json_is_string(it)) {
        size_t n, *offs = char_offsets(r, json_string_value(it), json_string_length(it), &n);
        if (!offs || !(items = json_array())) return free(offs), oom(r);
        for (size_t k = 0; k < n; k++)
            json_array_append_new(items, json_stringn_nocheck(json_string_value(it) + offs[k], offs[k + 1] - offs[k]));
        free(offs);
    } else {
        return l8_rfail(r, at, "cannot loop over a %s", type_name(r, it));
    }
    return items;
}

static void exec_for(l8_rctx *r, const l8_node *n) {
    json_t *it = l8_eval(r, n->a);
    if (r->st) return;
    json_t *items = iterable_items(r, n->a, it);
    json_decref(it);
    if (!items || !push_scope(r, n)) {
        json_decref(items);
        return;
    }
    if (n->b) { /* {% for x in xs if cond %}: filter first, so loop.* counts the kept items */
        json_t *kept = json_array();
        if (!kept) oom(r);
        for (size_t k = 0; kept && k < json_array_size(items) && !r->st; k++) {
            bind_targets(r, n->c, json_array_get(items, k));
            json_t *c = r->st ? NULL : l8_eval(r, n->b);
            if (l8_truthy(c)) json_array_append(kept, json_array_get(items, k));
            json_decref(c);
        }
        json_decref(items);
        items = kept;
    }
    size_t len = items ? json_array_size(items) : 0;
    /* One loop object per loop, updated in place: rebuilding it per item dominated tight loops. */
    json_t *loop = json_pack("{s:I,s:I,s:I,s:I,s:b,s:b,s:I}", "index", (json_int_t)1, "index0", (json_int_t)0,
                             "revindex", (json_int_t)len, "revindex0", (json_int_t)len - 1, "first", 1, "last",
                             len == 1, "length", (json_int_t)len);
    if (!loop) oom(r);
    else bind(r, n, "loop", json_incref(loop));
    r->loops++;
    for (size_t k = 0; k < len && !r->st; k++) {
        json_t *item = json_array_get(items, k);
        json_integer_set(json_object_get(loop, "index"), (json_int_t)k + 1);
        json_integer_set(json_object_get(loop, "index0"), (json_int_t)k);
        json_integer_set(json_object_get(loop, "revindex"), (json_int_t)(len - k));
        json_integer_set(json_object_get(loop, "revindex0"), (json_int_t)(len - k - 1));
        json_object_set_new_nocheck(loop, "first", json_boolean(k == 0));
        json_object_set_new_nocheck(loop, "last", json_boolean(k == len - 1));
        if (k > 0) json_object_set_nocheck(loop, "previtem", json_array_get(items, k - 1));
        if (k + 1 < len) json_object_set_nocheck(loop, "nextitem", json_array_get(items, k + 1));
        else json_object_del(loop, "nextitem");
        bind_targets(r, n->c, item);
        exec_list(r, n->body);
        if (r->ctl == 1) {
            r->ctl = 0;
            break;
        }
        r->ctl = 0;
    }
    json_decref(loop);
    r->loops--;
    if (len == 0 && !r->st) exec_list(r, n->alt);
    json_decref(items);
    pop_scope(r);
}

static bool is_namespace(l8_rctx *r, const json_t *v) {
    for (size_t k = 0; v && k < json_array_size(r->namespaces); k++)
        if (json_array_get(r->namespaces, k) == v) return true;
    return false;
}

/* Whether target is reachable from v: storing v into target would then make a cycle. */
static bool reaches(l8_rctx *r, const l8_node *at, const json_t *v, const json_t *target, int depth) {
    if (v == target) return true;
    if (!v || !(json_is_array(v) || json_is_object(v)) || depth > 512 || !l8_charge(r, at, 1)) return false;
    if (json_is_array(v)) {
        for (size_t k = 0; k < json_array_size(v); k++)
            if (reaches(r, at, json_array_get(v, k), target, depth + 1)) return true;
    } else {
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x) if (reaches(r, at, x, target, depth + 1)) return true;
    }
    return false;
}

static void exec_set(l8_rctx *r, const l8_node *n) {
    json_t *v;
    if (n->a) {
        v = l8_eval(r, n->a);
    } else { /* block set: capture what the body outputs */
        size_t mark = r->out.len;
        exec_list(r, n->body);
        v = r->st ? NULL : l8_mkstr(r, n, r->out.p + mark, r->out.len - mark);
        r->out.len = mark;
        if (r->out.p) r->out.p[mark] = 0;
    }
    if (r->st) {
        json_decref(v);
        return;
    }
    if (n->c->kind == L8_N_NAME) {
        bind(r, n, n->c->s, v);
        return;
    }
    json_t *ns = lookup(r, n->c->a->s);
    if (!is_namespace(r, ns)) l8_rfail(r, n, "can only set attributes of a namespace()");
    else if (reaches(r, n, v, ns, 0)) l8_rfail(r, n, "cannot store a namespace inside itself");
    else if (!r->st && json_object_set_nocheck(ns, n->c->s, v ? v : json_null())) oom(r);
    json_decref(v);
}

static void exec_list(l8_rctx *r, const l8_node *n) {
    if (r->depth >= L8_TPL_MAX_EVAL_DEPTH) {
        l8_rfail(r, n, "blocks nested too deeply");
        return;
    }
    r->depth++;
    for (; n && !r->st && !r->ctl; n = n->next) {
        if (!l8_charge(r, n, 1)) break;
        switch (n->kind) {
        case L8_N_TEXT:
            if (!l8_buf_put(&r->out, n->s, n->slen)) l8_rfail(r, n, "output grew past %zu bytes", L8_TPL_MAX_OUTPUT);
            break;
        case L8_N_OUTPUT: {
            json_t *v = l8_eval(r, n->a);
            if (!r->st && !l8_put_value(r, &r->out, v))
                l8_rfail(r, n, "output grew past %zu bytes", L8_TPL_MAX_OUTPUT);
            json_decref(v);
            break;
        }
        case L8_N_IF: {
            json_t *c = l8_eval(r, n->a);
            bool t = l8_truthy(c);
            json_decref(c);
            if (!r->st) exec_list(r, t ? n->body : n->alt);
            break;
        }
        case L8_N_FOR: exec_for(r, n); break;
        case L8_N_SET: exec_set(r, n); break;
        case L8_N_BREAK:
        case L8_N_CONTINUE:
            if (!r->loops) l8_rfail(r, n, "'%s' outside a loop", n->kind == L8_N_BREAK ? "break" : "continue");
            else r->ctl = n->kind == L8_N_BREAK ? 1 : 2;
            break;
        default: l8_rfail(r, n, "internal error: expression as a statement"); break;
        }
    }
    r->depth--;
}

llm8_status l8_chat_render(const char *template_src, const json_t *context, char **out, size_t *out_len, l8_err *e) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!template_src || !json_is_object(context))
        return l8_fail(e, LLM8_STATUS_INVALID_ARGUMENT, "chat template: need a template and an object of variables");
    l8_template t;
    llm8_status st = l8_tpl_parse(template_src, strlen(template_src), &t, e);
    if (st) return st;
    l8_rctx r = {.e = e};
    r.scopes[0] = (json_t *)context; /* read only: set writes into scopes[1] and up */
    r.nscopes = 1;
    r.namespaces = json_array();
    for (int k = 0; k < L8_FN_COUNT_; k++)
        if (!(r.fn[k] = json_object())) oom(&r);
    if (!r.namespaces) oom(&r);
    if (!r.st && push_scope(&r, NULL)) {
        exec_list(&r, t.body);
        pop_scope(&r);
    }
    if (!r.st && !l8_buf_put(&r.out, "", 0)) oom(&r); /* a buffer even for empty output */
    for (int k = 0; k < L8_FN_COUNT_; k++) json_decref(r.fn[k]);
    json_decref(r.namespaces);
    l8_tpl_free(&t);
    if (r.st) {
        free(r.out.p);
        return r.st;
    }
    *out = r.out.p;
    if (out_len) *out_len = r.out.len;
    return LLM8_STATUS_OK;
}
