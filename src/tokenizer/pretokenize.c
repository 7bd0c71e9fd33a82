#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct l8_regex {
    pcre2_code *code;
};

/* Unicode White_Space (the property Rust's regex and Oniguruma use for \s), as class contents. */
static const char WHITE_SPACE[] =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

/* Copies the pattern replacing \s / \S. Inside a character class \s becomes the bare ranges;
 * \S inside a class cannot be expressed that way and keeps PCRE2's meaning (it differs only
 * on U+180E). Returns a malloc'd NUL-terminated string or NULL. */
static char *rewrite_whitespace(const char *p, size_t len) {
    size_t extra = sizeof WHITE_SPACE + 4, n_s = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '\\') n_s++, i++;
    char *out = malloc(len + n_s * extra + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < len) {
            char d = p[i + 1];
            if (d == 's' || (d == 'S' && !in_class)) {
                if (!in_class) out[o++] = '[';
                if (d == 'S') out[o++] = '^';
                memcpy(out + o, WHITE_SPACE, sizeof WHITE_SPACE - 1);
                o += sizeof WHITE_SPACE - 1;
                if (!in_class) out[o++] = ']';
            } else {
                out[o++] = c;
                out[o++] = d;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out[o++] = c;
            /* A ']' right after '[' or '[^' is a literal, not the end of the class. */
            if (i + 1 < len && p[i + 1] == '^') out[o++] = p[++i];
            if (i + 1 < len && p[i + 1] == ']') out[o++] = p[++i];
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && p[i + 1] == ':') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len; j++)
                if (p[j] == ':' && p[j + 1] == ']') {
                    end = p + j + 2;
                    break;
                }
            if (end) {
                size_t n = (size_t)(end - (p + i));
                memcpy(out + o, p + i, n);
                o += n;
                i += n - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        out[o++] = c;
    }
    out[o] = 0;
    return out;
}

llm8_status l8_regex_compile(const char *pattern, size_t len, const char *name, l8_regex **out, l8_err *e) {
    *out = NULL;
    char *pat = rewrite_whitespace(pattern, len);
    if (!pat) return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory compiling a regex", name);
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, NULL);
    free(pat);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return l8_fail(e, LLM8_STATUS_UNSUPPORTED, "%s: pre-tokenizer regex does not compile: %s", name,
                       (const char *)msg);
    }
    /* JIT is only a speed-up; without it (unsupported CPU, W^X policy) the interpreter runs. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    l8_regex *re = malloc(sizeof *re);
    if (!re) {
        pcre2_code_free(code);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory compiling a regex", name);
    }
    re->code = code;
    *out = re;
    return LLM8_STATUS_OK;
}

void l8_regex_free(l8_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

int l8_regex_split(const l8_regex *re, const char *s, size_t len, l8_piece_fn fn, void *user) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md) return -1;
    int rc = 0;
    size_t pos = 0, gap = 0; /* gap: start of text not yet handed out */
    while (pos < len) {
        int m = pcre2_match(re->code, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        /* The JIT's fixed machine stack can overflow on long runs; the interpreter uses the heap. */
        if (m == PCRE2_ERROR_JIT_STACKLIMIT)
            m = pcre2_match(re->code, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            rc = -1;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* An empty match splits nothing; step over one character and search again. */
            pos = ms + 1;
            while (pos < len && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > gap && (rc = fn(user, s + gap, ms - gap)) != 0) break;
        if ((rc = fn(user, s + ms, me - ms)) != 0) break;
        pos = gap = me;
    }
    if (rc == 0 && gap < len) rc = fn(user, s + gap, len - gap);
    pcre2_match_data_free(md);
    return rc;
}
