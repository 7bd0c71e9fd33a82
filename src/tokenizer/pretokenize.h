/* Regex pre-tokenization (Hugging Face "Split" with behaviour Isolated) on PCRE2. */
#ifndef L8_TOK_PRETOKENIZE_H
#define L8_TOK_PRETOKENIZE_H

#include <stddef.h>

#include "util/error.h"

typedef struct l8_regex l8_regex;

/* Compiles a tokenizer.json pattern (Oniguruma/Rust-regex syntax as used by Hugging Face).
 * \s and \S are rewritten to Unicode White_Space, which is what the reference engines use;
 * PCRE2's own UCP \s also accepts U+180E. name is used in messages. */
llm8_status l8_regex_compile(const char *pattern, size_t len, const char *name, l8_regex **out, l8_err *e);
void l8_regex_free(l8_regex *re);

/* Receives one piece; a nonzero return stops the split and is passed back. */
typedef int (*l8_piece_fn)(void *user, const char *s, size_t len);

/* Splits valid UTF-8 s into the regex matches and the non-empty gaps between them, in order,
 * calling fn for each. Returns 0, fn's nonzero result, or -1 on a matching failure. */
int l8_regex_split(const l8_regex *re, const char *s, size_t len, l8_piece_fn fn, void *user);

#endif
