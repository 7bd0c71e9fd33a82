/* Internal error plumbing: a status plus a one-line message that names the file and the problem. */
#ifndef L8_ERROR_H
#define L8_ERROR_H

#include "llm8.h"

typedef struct l8_err {
    char msg[512];
} l8_err;

/* Formats the message into e (when e is not NULL) and returns st, so that callers can write
 * `return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: ...", path);`. */
llm8_status l8_fail(l8_err *e, llm8_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copies e's message into a caller's (buf, cap) pair; either may be 0. */
void l8_err_copy(const l8_err *e, char *buf, size_t cap);

#endif
