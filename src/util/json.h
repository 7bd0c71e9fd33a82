/* Thin helpers over jansson for the JSON files llm8 reads (config, tokenizer, index). */
#ifndef L8_JSON_H
#define L8_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "util/error.h"

/* Parses a file (or a buffer, named for messages) into a JSON value; errors give file:line. */
llm8_status l8_json_load_file(const char *path, json_t **out, l8_err *e);
llm8_status l8_json_load_buffer(const char *name, const char *buf, size_t len, json_t **out, l8_err *e);

/* Typed field access. A missing or null field leaves *out untouched and returns OK unless
 * required; a field of the wrong type or out of [lo, hi] is an error naming file and key. */
llm8_status l8_json_int(const json_t *obj, const char *key, bool required, long long lo, long long hi,
                        long long *out, const char *file, l8_err *e);
llm8_status l8_json_num(const json_t *obj, const char *key, bool required, double lo, double hi, double *out,
                        const char *file, l8_err *e);
llm8_status l8_json_bool(const json_t *obj, const char *key, bool *out, const char *file, l8_err *e);

#endif
