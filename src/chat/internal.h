/* Internals of the chat-template engine shared by the parser (parse.c), the evaluator (eval.c)
 * and the value helpers (value.c). Nothing here is visible outside src/chat. */
#ifndef L8_CHAT_INTERNAL_H
#define L8_CHAT_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* Limits that keep hostile templates and inputs from crashing or hanging the process. */
enum {
    L8_TPL_MAX_DEPTH = 200,          /* nesting of expressions and blocks while parsing */
    L8_TPL_MAX_EVAL_DEPTH = 400,     /* recursion while evaluating (expressions, blocks, scopes) */
    L8_TPL_MAX_JSON_DEPTH = 4096,    /* tojson / equality recursion (jansson parses at most 2048) */
    L8_TPL_MAX_LIST = 1 << 20,       /* elements of a list built by the template (range, +) */
};
#define L8_TPL_MAX_OUTPUT ((size_t)16 << 20) /* bytes of output and of any one string */
#define L8_TPL_MAX_STEPS 10000000L           /* evaluated nodes; bounds nested loops (~seconds) */

/* ------------------------------------------------------------------ arena */

typedef struct l8_arena_block l8_arena_block;
typedef struct l8_arena {
    l8_arena_block *head;
} l8_arena;
void *l8_arena_alloc(l8_arena *a, size_t n); /* zeroed; NULL when out of memory */
void l8_arena_free(l8_arena *a);

/* ------------------------------------------------------------------ syntax tree */

typedef enum l8_node_kind {
    /* statements */
    L8_N_TEXT, L8_N_OUTPUT, L8_N_IF, L8_N_FOR, L8_N_SET, L8_N_BREAK, L8_N_CONTINUE,
    /* expressions */
    L8_N_STR, L8_N_INT, L8_N_FLOAT, L8_N_TRUE, L8_N_FALSE, L8_N_NONE, L8_N_NAME, L8_N_ATTR, L8_N_INDEX,
    L8_N_SLICE, L8_N_CALL, L8_N_FILTER, L8_N_TEST, L8_N_BINOP, L8_N_NOT, L8_N_NEG, L8_N_COND, L8_N_LIST,
    L8_N_DICT, L8_N_PAIR, L8_N_KWARG,
} l8_node_kind;

typedef enum l8_binop {
    L8_OP_OR, L8_OP_AND, L8_OP_EQ, L8_OP_NE, L8_OP_LT, L8_OP_GT, L8_OP_LE, L8_OP_GE, L8_OP_IN, L8_OP_NOTIN,
    L8_OP_ADD, L8_OP_SUB, L8_OP_CONCAT, L8_OP_MUL, L8_OP_DIV, L8_OP_FLOORDIV, L8_OP_MOD, L8_OP_POW,
} l8_binop;

typedef enum l8_filter {
    L8_F_TRIM, L8_F_LENGTH, L8_F_TOJSON, L8_F_UPPER, L8_F_LOWER, L8_F_CAPITALIZE, L8_F_TITLE, L8_F_STRING,
    L8_F_DEFAULT, L8_F_FIRST, L8_F_LAST, L8_F_JOIN, L8_F_LIST, L8_F_REPLACE, L8_F_ITEMS, L8_F_INT, L8_F_SAFE,
    L8_F_COUNT_,
} l8_filter;

typedef enum l8_test {
    L8_T_DEFINED, L8_T_UNDEFINED, L8_T_NONE, L8_T_STRING, L8_T_MAPPING, L8_T_ITERABLE, L8_T_SEQUENCE,
    L8_T_NUMBER, L8_T_INTEGER, L8_T_FLOAT, L8_T_BOOLEAN, L8_T_TRUE, L8_T_FALSE, L8_T_CALLABLE, L8_T_ODD,
    L8_T_EVEN, L8_T_EQ, L8_T_NE, L8_T_DIVISIBLEBY, L8_T_LOWER, L8_T_UPPER, L8_T_COUNT_,
} l8_test;

/* One node; the meaning of the child slots depends on the kind:
 *   TEXT s/slen; OUTPUT a; IF a=cond body alt; FOR c=targets (NAME list) a=iterable b=filter body alt;
 *   SET c=target (NAME, or ATTR of a NAME) a=value, or body when a block set;
 *   STR s/slen; INT i; FLOAT f; NAME s; ATTR a.s; INDEX a[b]; SLICE a[b:c:d]; CALL a(body);
 *   FILTER a|op(body); TEST a is [not when i] op(body); BINOP a op b; NOT/NEG a; COND a if b else c;
 *   LIST body; DICT body of PAIR a: b; KWARG s=a (in argument lists).
 * Lists (body, alt, arguments) are chained through next. */
typedef struct l8_node l8_node;
struct l8_node {
    l8_node_kind kind;
    int op;
    int line, col;
    l8_node *a, *b, *c, *d;
    l8_node *body, *alt, *next;
    const char *s;
    size_t slen;
    long long i;
    double f;
};

typedef struct l8_template {
    l8_arena arena;
    l8_node *body;
} l8_template;

/* Parses src (len bytes; text nodes point into src, which must outlive the tree) with Hugging Face's settings (trim_blocks, lstrip_blocks, one trailing
 * newline dropped). Errors are BAD_FORMAT with "line L col C: ...". */
llm8_status l8_tpl_parse(const char *src, size_t len, l8_template *out, l8_err *e);
void l8_tpl_free(l8_template *t);

extern const char *const l8_filter_names[L8_F_COUNT_];
extern const char *const l8_test_names[L8_T_COUNT_];

/* ------------------------------------------------------------------ values (value.c) */

/* A growing byte buffer; fails (returns false) past L8_TPL_MAX_OUTPUT or out of memory. */
typedef struct l8_buf {
    char *p;
    size_t len, cap;
} l8_buf;
bool l8_buf_put(l8_buf *b, const void *s, size_t n);
bool l8_buf_puts(l8_buf *b, const char *s);

/* Appends JSON text as JavaScript's JSON.stringify / Python's json.dumps(ensure_ascii=False) write
 * it: indent < 0 is compact with ", " and ": " separators; indent >= 0 puts each member on its own
 * line with "," and ": ". Returns false on overflow or nesting deeper than L8_TPL_MAX_JSON_DEPTH. */
bool l8_tpl_tojson(l8_buf *b, const json_t *v, int indent, int depth);
/* Appends a number the way JavaScript prints it (shortest round-trip digits). */
bool l8_tpl_put_number(l8_buf *b, double d);
/* Byte length of the UTF-8 character at s (1 for a bad byte, never past len). */
size_t l8_tpl_u8len(const char *s, size_t len);
/* Unicode whitespace as JavaScript's String.prototype.trim sees it, at s; returns its byte length or 0. */
size_t l8_tpl_space_at(const char *s, size_t len);
size_t l8_tpl_space_before(const char *s, size_t len);

/* ------------------------------------------------------------------ evaluator (template.c, builtins.c) */

typedef enum { L8_FN_RAISE, L8_FN_STRFTIME, L8_FN_NAMESPACE, L8_FN_RANGE, L8_FN_COUNT_ } l8_fn;

typedef struct l8_rctx {
    l8_err *e;
    llm8_status st;
    l8_buf out;
    json_t *scopes[L8_TPL_MAX_EVAL_DEPTH]; /* [0] the caller's context (never written) */
    int nscopes;
    json_t *fn[L8_FN_COUNT_]; /* unique empty objects that stand for the global functions */
    json_t *namespaces;       /* the objects namespace() made: the only values set may change */
    long steps;
    int depth, loops;
    int ctl; /* 1 after {% break %}, 2 after {% continue %}, until the loop sees it */
} l8_rctx;

/* Records the first error (INVALID_ARGUMENT, "chat template line L: ...") and returns NULL. */
json_t *l8_rfail(l8_rctx *r, const l8_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Counts work against L8_TPL_MAX_STEPS; false (with the error set) once over. */
bool l8_charge(l8_rctx *r, const l8_node *at, size_t work);
json_t *l8_eval(l8_rctx *r, const l8_node *n);
bool l8_truthy(const json_t *v);
bool l8_veq(const json_t *a, const json_t *b, int depth);
/* A new string value; NULL with the error set past the size limit. */
json_t *l8_mkstr(l8_rctx *r, const l8_node *at, const char *s, size_t n);
/* Appends how {{ v }} prints v. */
bool l8_put_value(l8_rctx *r, l8_buf *b, const json_t *v);
/* v's printed form as a new string value. */
json_t *l8_str_of(l8_rctx *r, const l8_node *at, const json_t *v);
int l8_fn_of(const l8_rctx *r, const json_t *v); /* the l8_fn v stands for, or -1 */

json_t *l8_apply_filter(l8_rctx *r, const l8_node *n);
json_t *l8_apply_test(l8_rctx *r, const l8_node *n);
json_t *l8_call(l8_rctx *r, const l8_node *n);

#endif
