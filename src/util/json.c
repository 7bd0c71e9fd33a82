#include "util/json.h"

#include <math.h>

llm8_status l8_json_load_buffer(const char *name, const char *buf, size_t len, json_t **out, l8_err *e) {
    json_error_t je;
    *out = json_loadb(buf, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!*out)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: invalid JSON at line %d column %d: %s", name, je.line,
                       je.column, je.text);
    return LLM8_STATUS_OK;
}

llm8_status l8_json_load_file(const char *path, json_t **out, l8_err *e) {
    json_error_t je;
    *out = json_load_file(path, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (*out) return LLM8_STATUS_OK;
    if (je.line < 0 || je.position == 0) {
        FILE *f = fopen(path, "rb");
        if (!f) return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: cannot open: %s", path, je.text);
        fclose(f);
    }
    return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: invalid JSON at line %d column %d: %s", path, je.line,
                   je.column, je.text);
}

llm8_status l8_json_int(const json_t *obj, const char *key, bool required, long long lo, long long hi,
                        long long *out, const char *file, l8_err *e) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing field \"%s\"", file, key);
        return LLM8_STATUS_OK;
    }
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (long long)json_real_value(v);
    } else {
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"%s\" must be an integer", file, key);
    }
    if (x < lo || x > hi)
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"%s\" = %lld is out of range [%lld, %lld]", file, key,
                       x, lo, hi);
    *out = x;
    return LLM8_STATUS_OK;
}

llm8_status l8_json_num(const json_t *obj, const char *key, bool required, double lo, double hi, double *out,
                        const char *file, l8_err *e) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: missing field \"%s\"", file, key);
        return LLM8_STATUS_OK;
    }
    if (!json_is_number(v))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"%s\" must be a number", file, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"%s\" = %g is out of range [%g, %g]", file, key, x, lo,
                       hi);
    *out = x;
    return LLM8_STATUS_OK;
}

llm8_status l8_json_bool(const json_t *obj, const char *key, bool *out, const char *file, l8_err *e) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return LLM8_STATUS_OK;
    if (!json_is_boolean(v))
        return l8_fail(e, LLM8_STATUS_BAD_FORMAT, "%s: field \"%s\" must be true or false", file, key);
    *out = json_is_true(v);
    return LLM8_STATUS_OK;
}
