#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

llm8_status l8_fail(l8_err *e, llm8_status st, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        /* messages are one line, whatever they quote (a JSON parser's excerpt of a broken file) */
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20) *c = ' ';
    }
    return st;
}

void l8_err_copy(const l8_err *e, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    snprintf(buf, cap, "%s", e ? e->msg : "");
}

const char *llm8_status_to_string(llm8_status st) {
    switch (st) {
    case LLM8_STATUS_OK: return "ok";
    case LLM8_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case LLM8_STATUS_IO_ERROR: return "i/o error";
    case LLM8_STATUS_BAD_FORMAT: return "bad format";
    case LLM8_STATUS_UNSUPPORTED: return "unsupported";
    case LLM8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case LLM8_STATUS_CONTEXT_FULL: return "context full";
    case LLM8_STATUS_ABORTED: return "aborted";
    }
    return "unknown status";
}

const char *llm8_version(void) { return "0.1.0"; }
