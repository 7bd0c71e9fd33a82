/* Tool-call detection in Llama 3.x replies. */
#include "server/toolcall.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server/openai.h"

static const char python_tag[] = "<|python_tag|>";

static size_t skip_blanks(const char *t, size_t len, size_t i) {
    while (i < len && (t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) i++;
    return i;
}

l8_toolcall_state l8_toolcall_classify(const char *text, size_t len) {
    size_t i = skip_blanks(text, len, 0);
    size_t tl = sizeof python_tag - 1, rest = len - i;
    /* the tag is a special token the decoder skips, but a model may also spell it out */
    if (rest < tl && rest && !memcmp(text + i, python_tag, rest)) return L8_TOOLCALL_UNDECIDED;
    if (rest >= tl && !memcmp(text + i, python_tag, tl)) i = skip_blanks(text, len, i + tl);
    if (i == len) return L8_TOOLCALL_UNDECIDED;
    return text[i] == '{' || text[i] == '[' ? L8_TOOLCALL_MAYBE : L8_TOOLCALL_NO;
}

static bool known_name(const json_t *names, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return true;
    return false;
}

/* One {"name", "parameters"} object to an OpenAI tool call appended to calls. */
static bool add_call(json_t *calls, const json_t *obj, const json_t *names) {
    if (!json_is_object(obj)) return false;
    const char *name = json_string_value(json_object_get(obj, "name"));
    if (!name || !known_name(names, name)) return false;
    const json_t *args = json_object_get(obj, "parameters");
    if (!args) args = json_object_get(obj, "arguments");
    char *arg_text;
    if (!args) {
        arg_text = strdup("{}");
    } else if (json_is_object(args)) {
        arg_text = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    } else if (json_is_string(args)) { /* already JSON text, as OpenAI carries it */
        arg_text = strdup(json_string_value(args));
    } else {
        return false;
    }
    if (!arg_text) return false;
    char id[40];
    l8_oai_make_id(id, sizeof id, "call_");
    json_t *call = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function", "name", name,
                             "arguments", arg_text);
    free(arg_text);
    return call && json_array_append_new(calls, call) == 0;
}

json_t *l8_toolcall_parse(const char *text, size_t len, const json_t *names) {
    if (!json_is_array(names) || json_array_size(names) == 0) return NULL;
    size_t i = skip_blanks(text, len, 0), tl = sizeof python_tag - 1;
    if (len - i >= tl && !memcmp(text + i, python_tag, tl)) i = skip_blanks(text, len, i + tl);
    if (i == len) return NULL;
    json_t *calls = json_array();
    if (!calls) return NULL;
    json_error_t err;
    while (i < len) {
        json_t *v = json_loadb(text + i, len - i, JSON_DISABLE_EOF_CHECK, &err);
        if (!v) goto fail;
        bool ok = true;
        if (json_is_array(v)) {
            size_t k;
            json_t *item;
            json_array_foreach(v, k, item) ok = ok && add_call(calls, item, names);
            ok = ok && json_array_size(v) > 0;
        } else {
            ok = add_call(calls, v, names);
        }
        json_decref(v);
        if (!ok || err.position <= 0) goto fail;
        i += (size_t)err.position;
        while (i < len && (text[i] == ';' || text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
            i++;
    }
    return calls;
fail:
    json_decref(calls);
    return NULL;
}
