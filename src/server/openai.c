/* OpenAI requests in, OpenAI responses out. Every member the server acts on is checked for type
 * and range here, with a message naming it; members that would change the output in ways llm8
 * cannot honour (n > 1, logprobs, logit_bias, JSON modes, forced tool choice) are refused rather
 * than ignored, so that a client never gets silently different semantics. */
#include "server/openai.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/utf8.h"

#define FINGERPRINT "llm8-" L8_STR(LLM8_VERSION_MAJOR) "." L8_STR(LLM8_VERSION_MINOR) "." L8_STR(LLM8_VERSION_PATCH)
#define L8_STR(x) L8_STR2(x)
#define L8_STR2(x) #x

/* ---------------------------------------------------------------- errors */

/* Replaces bytes that are not UTF-8 (input quoted by jansson's messages, a cut character) by '?',
 * so that the message always encodes as a JSON string. */
static void sanitize_utf8(char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = l8_utf8_next((const unsigned char *)s + i, len - i, NULL);
        if (n == 0) {
            s[i++] = '?';
        } else {
            i += n;
        }
    }
}

bool l8_oai_fail(l8_oai_error *e, unsigned status, const char *type, const char *code, const char *param,
                 const char *fmt, ...) {
    if (!e) return false;
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    sanitize_utf8(e->message);
    sanitize_utf8(e->param);
    return false;
}

static json_t *error_object(const l8_oai_error *e) {
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", e->message, "type", e->type ? e->type : "server_error",
                     "param", e->param[0] ? json_string(e->param) : json_null(), "code",
                     e->code ? json_string(e->code) : json_null());
}

static char *dump(json_t *v, size_t *len) {
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (s && len) *len = strlen(s);
    return s;
}

/* "data: " JSON "\n\n" */
static char *event(json_t *v, size_t *len) {
    char *j = dump(v, NULL);
    if (!j) return NULL;
    size_t n = strlen(j);
    char *s = malloc(n + 9);
    if (s) {
        memcpy(s, "data: ", 6);
        memcpy(s + 6, j, n);
        memcpy(s + 6 + n, "\n\n", 3);
        if (len) *len = n + 8;
    }
    free(j);
    return s;
}

char *l8_oai_error_body(const l8_oai_error *e, size_t *len) { return dump(error_object(e), len); }
char *l8_oai_error_event(const l8_oai_error *e, size_t *len) { return event(error_object(e), len); }

static bool bad_request(l8_oai_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool bad_request(l8_oai_error *e, const char *param, const char *fmt, ...) {
    char msg[sizeof e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return l8_oai_fail(e, 400, "invalid_request_error", NULL, param, "%s", msg);
}

static bool unsupported(l8_oai_error *e, const char *param, const char *what) {
    return l8_oai_fail(e, 400, "invalid_request_error", "unsupported_parameter", param, "%s is not supported by llm8",
                       what);
}

/* ---------------------------------------------------------------- typed members */

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* A member that is absent or null is "not given": these return true without touching *out. */
static bool get_number(const json_t *o, const char *key, double lo, double hi, double *out, bool *given,
                       l8_oai_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return bad_request(e, key, "'%s' must be a number, not %s", key, type_name(v));
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return bad_request(e, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    if (given) *given = true;
    return true;
}

static bool get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out, bool *given,
                    l8_oai_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e18) {
        x = (long long)json_real_value(v); /* 100.0 from a client whose numbers are all doubles */
    } else {
        return bad_request(e, key, "'%s' must be an integer, not %s", key,
                           json_is_number(v) ? "a fraction" : type_name(v));
    }
    if (x < lo || x > hi) return bad_request(e, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, x);
    *out = x;
    if (given) *given = true;
    return true;
}

static bool get_bool(const json_t *o, const char *key, bool *out, l8_oai_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return bad_request(e, key, "'%s' must be a boolean, not %s", key, type_name(v));
    *out = json_is_true(v);
    return true;
}

static bool get_string(const json_t *o, const char *key, const char **out, l8_oai_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return bad_request(e, key, "'%s' must be a string, not %s", key, type_name(v));
    *out = json_string_value(v);
    return true;
}

/* ---------------------------------------------------------------- members common to both endpoints */

static bool parse_stop(const json_t *root, l8_oai_request *r, l8_oai_error *e) {
    json_t *v = json_object_get(root, "stop");
    if (!v || json_is_null(v)) return true;
    if (json_is_string(v)) {
        if (json_string_length(v) && !(r->stop[r->n_stop++] = strdup(json_string_value(v))))
            return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return true;
    }
    if (!json_is_array(v)) return bad_request(e, "stop", "'stop' must be a string or an array of strings");
    if (json_array_size(v) > L8_OAI_MAX_STOP)
        return bad_request(e, "stop", "'stop' has %zu strings; at most %d are allowed", json_array_size(v),
                           L8_OAI_MAX_STOP);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s)) return bad_request(e, "stop", "stop[%zu] must be a string, not %s", i, type_name(s));
        /* an empty stop string would match everywhere: it is no stop string at all */
        if (json_string_length(s) && !(r->stop[r->n_stop++] = strdup(json_string_value(s))))
            return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return true;
}

static bool parse_common(const json_t *root, l8_oai_request *r, l8_oai_error *e) {
    const char *model = "";
    if (!get_string(root, "model", &model, e)) return false;
    if (!(r->model = strdup(model))) return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    if (!get_bool(root, "stream", &r->stream, e)) return false;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return bad_request(e, "stream_options", "'stream_options' must be an object, not %s", type_name(so));
        if (!r->stream)
            return bad_request(e, "stream_options", "'stream_options' is only allowed when 'stream' is true");
        if (!get_bool(so, "include_usage", &r->include_usage, e)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return false;
        }
    }
    long long n = 1, mt = -1, mct = -1, seed = 0, top_k = 0;
    if (!get_int(root, "n", 1, 1, &n, NULL, e)) {
        if (json_is_integer(json_object_get(root, "n")))
            snprintf(e->message, sizeof e->message, "'n' must be 1: llm8 generates one choice per request");
        return false;
    }
    bool has_top_k = false;
    if (!get_int(root, "max_tokens", 1, 1 << 30, &mt, NULL, e) ||
        !get_int(root, "max_completion_tokens", 1, 1 << 30, &mct, NULL, e) ||
        !get_int(root, "seed", INT64_MIN, INT64_MAX, &seed, &r->has_seed, e) ||
        !get_int(root, "top_k", 0, 1 << 30, &top_k, &has_top_k, e))
        return false;
    r->max_tokens = (int32_t)(mt < 0 ? mct : mct < 0 ? mt : mt < mct ? mt : mct);
    if (r->has_seed) r->sampling.seed = (uint64_t)seed;
    if (has_top_k) r->sampling.top_k = (int32_t)top_k;
    double temp = 0, top_p = 1, min_p = 0, fp = 0, pp = 0, rp = 1;
    bool has_min_p = false, has_rp = false;
    if (!get_number(root, "temperature", 0, 2, &temp, &r->has_temperature, e) ||
        !get_number(root, "top_p", 0, 1, &top_p, &r->has_top_p, e) ||
        !get_number(root, "min_p", 0, 1, &min_p, &has_min_p, e) ||
        !get_number(root, "frequency_penalty", -2, 2, &fp, NULL, e) ||
        !get_number(root, "presence_penalty", -2, 2, &pp, NULL, e) ||
        !get_number(root, "repeat_penalty", 0.01, 100, &rp, &has_rp, e))
        return false;
    r->sampling.temperature = (float)temp;
    r->sampling.top_p = (float)top_p;
    if (has_min_p) r->sampling.min_p = (float)min_p;
    r->sampling.frequency_penalty = (float)fp;
    r->sampling.presence_penalty = (float)pp;
    if (has_rp) r->sampling.repeat_penalty = (float)rp;
    if (!get_bool(root, "ignore_eos", &r->ignore_eos, e)) return false;
    if (!parse_stop(root, r, e)) return false;

    json_t *v = json_object_get(root, "logprobs");
    if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_integer(v) && json_integer_value(v) == 0))
        return unsupported(e, "logprobs", "'logprobs'");
    v = json_object_get(root, "top_logprobs");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 0))
        return unsupported(e, "top_logprobs", "'top_logprobs'");
    v = json_object_get(root, "logit_bias");
    if (v && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0))
        return unsupported(e, "logit_bias", "'logit_bias'");
    v = json_object_get(root, "response_format");
    if (v && !json_is_null(v)) {
        const char *t = json_string_value(json_object_get(v, "type"));
        if (!json_is_object(v) || !t)
            return bad_request(e, "response_format", "'response_format' must be an object with a string 'type'");
        if (strcmp(t, "text")) return unsupported(e, "response_format", "a response_format other than 'text'");
    }
    return true;
}

/* ---------------------------------------------------------------- chat */

/* Parts become one string, as l8_chat_apply joins them; checked here to name the bad part. */
static json_t *normalize_content(const json_t *c, size_t k, l8_oai_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", k);
    if (json_is_string(c)) return json_incref((json_t *)c);
    if (!json_is_array(c)) {
        bad_request(e, param, "'%s' must be a string or an array of text parts, not %s", param, type_name(c));
        return NULL;
    }
    size_t len = 0, i;
    json_t *part;
    json_array_foreach(c, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !type) {
            bad_request(e, param, "%s[%zu] must be an object with a string 'type'", param, i);
            return NULL;
        }
        if (strcmp(type, "text")) {
            unsupported(e, param, "content of a type other than 'text'");
            return NULL;
        }
        if (!json_is_string(text)) {
            bad_request(e, param, "%s[%zu].text must be a string", param, i);
            return NULL;
        }
        len += json_string_length(text) + 1;
    }
    char *buf = malloc(len + 1), *p = buf;
    if (!buf) {
        l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    json_array_foreach(c, i, part) {
        json_t *text = json_object_get(part, "text");
        if (i) *p++ = '\n';
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    json_t *s = json_stringn(buf, (size_t)(p - buf));
    free(buf);
    return s;
}

/* OpenAI carries arguments as JSON text; Llama templates print them with tojson, so they must
 * be the object itself to come out as {"name": ..., "parameters": {...}} again. */
static json_t *normalize_tool_calls(const json_t *calls, size_t k, l8_oai_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].tool_calls", k);
    if (!json_is_array(calls)) {
        bad_request(e, param, "'%s' must be an array", param);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *args = json_object_get(fn, "arguments");
        if (!json_is_object(c) || !json_is_object(fn) || !name) {
            bad_request(e, param, "%s[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ..., \"arguments\": ...}}",
                        param, i);
            json_decref(out);
            return NULL;
        }
        json_t *parsed = NULL;
        if (json_is_string(args)) {
            parsed = json_loads(json_string_value(args), 0, NULL);
            if (parsed && !json_is_object(parsed)) {
                json_decref(parsed);
                parsed = NULL;
            }
        } else if (args && !json_is_object(args) && !json_is_null(args)) {
            bad_request(e, param, "%s[%zu].function.arguments must be a string or an object", param, i);
            json_decref(out);
            return NULL;
        }
        /* the parsed object, else what was given (an object, or text that is not one), else {}:
         * one reference, which the pack takes */
        json_t *a = parsed ? parsed : args && !json_is_null(args) ? json_incref(args) : json_object();
        json_t *nc = json_pack("{s:s, s:{s:s, s:o}}", "type", "function", "function", "name", name, "arguments", a);
        const char *id = json_string_value(json_object_get(c, "id"));
        if (nc && id) json_object_set_new(nc, "id", json_string(id));
        if (!nc || json_array_append_new(out, nc)) {
            json_decref(out);
            l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            return NULL;
        }
    }
    return out;
}

static json_t *normalize_message(const json_t *m, size_t k, l8_oai_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu]", k);
    if (!json_is_object(m)) {
        bad_request(e, param, "'%s' must be an object, not %s", param, type_name(m));
        return NULL;
    }
    const char *role = json_string_value(json_object_get(m, "role"));
    snprintf(param, sizeof param, "messages[%zu].role", k);
    if (!role) {
        bad_request(e, param, "'%s' is required and must be a string", param);
        return NULL;
    }
    if (!strcmp(role, "developer")) role = "system"; /* OpenAI's newer name for the system role */
    if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool")) {
        bad_request(e, param, "'%s' must be system, developer, user, assistant or tool, not '%s'", param, role);
        return NULL;
    }
    json_t *out = json_pack("{s:s}", "role", role);
    if (!out) {
        l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    json_t *c = json_object_get(m, "content"), *calls = json_object_get(m, "tool_calls");
    bool is_assistant = !strcmp(role, "assistant");
    if (!c || json_is_null(c)) {
        /* only an assistant's turn may be empty (it made tool calls instead) */
        if (!is_assistant) {
            snprintf(param, sizeof param, "messages[%zu].content", k);
            bad_request(e, param, "'%s' is required for a %s message", param, role);
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, "content", json_null());
    } else {
        json_t *nc = normalize_content(c, k, e);
        if (!nc) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, "content", nc);
    }
    if (is_assistant && calls && !json_is_null(calls)) {
        json_t *nc = normalize_tool_calls(calls, k, e);
        if (!nc) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, "tool_calls", nc);
    }
    static const char *const strings[] = {"name", "tool_call_id"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(m, strings[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) {
            snprintf(param, sizeof param, "messages[%zu].%s", k, strings[i]);
            bad_request(e, param, "'%s' must be a string", param);
            json_decref(out);
            return NULL;
        }
        json_object_set(out, strings[i], v);
    }
    return out;
}

static bool parse_tools(const json_t *root, l8_oai_request *r, l8_oai_error *e) {
    json_t *tools = json_object_get(root, "tools"), *choice = json_object_get(root, "tool_choice");
    bool use = tools && !json_is_null(tools);
    if (choice && !json_is_null(choice)) {
        const char *c = json_string_value(choice);
        if (!c && !json_is_object(choice))
            return bad_request(e, "tool_choice", "'tool_choice' must be a string or an object");
        if (!c || !strcmp(c, "required"))
            return unsupported(e, "tool_choice", "forcing a tool call (tool_choice 'required' or a named function)");
        if (!strcmp(c, "none")) use = false;
        else if (strcmp(c, "auto")) return bad_request(e, "tool_choice", "'tool_choice' must be none, auto or required");
    }
    if (!tools || json_is_null(tools)) return true;
    if (!json_is_array(tools)) return bad_request(e, "tools", "'tools' must be an array, not %s", type_name(tools));
    json_t *names = json_array();
    if (!names) return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *fn = json_object_get(t, "function");
        const char *type = json_string_value(json_object_get(t, "type"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *params = json_object_get(fn, "parameters");
        char param[48];
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t) || !type || strcmp(type, "function") || !json_is_object(fn) || !name || !*name ||
            (params && !json_is_object(params) && !json_is_null(params))) {
            json_decref(names);
            return bad_request(e, param,
                               "'%s' must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}",
                               param);
        }
        json_array_append_new(names, json_string(name));
    }
    if (use && json_array_size(tools)) {
        json_object_set(r->chat, "tools", tools);
        r->tool_names = names;
    } else {
        json_decref(names);
    }
    return true;
}

static bool parse_chat(const json_t *root, l8_oai_request *r, l8_oai_error *e) {
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs || json_is_null(msgs))
        return l8_oai_fail(e, 400, "invalid_request_error", "missing_required_parameter", "messages",
                           "'messages' is required");
    if (!json_is_array(msgs)) return bad_request(e, "messages", "'messages' must be an array, not %s", type_name(msgs));
    if (!json_array_size(msgs)) return bad_request(e, "messages", "'messages' must not be empty");
    json_t *list = json_array();
    if (!list || !(r->chat = json_pack("{s:o}", "messages", list)))
        return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        json_t *nm = normalize_message(m, i, e);
        if (!nm) return false;
        json_array_append_new(list, nm);
    }
    json_t *kw = json_object_get(root, "chat_template_kwargs");
    if (kw && !json_is_null(kw)) {
        if (!json_is_object(kw)) return bad_request(e, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        json_object_set(r->chat, "chat_template_kwargs", kw);
    }
    return parse_tools(root, r, e);
}

/* ---------------------------------------------------------------- completions */

static bool parse_ids(const json_t *a, l8_oai_request *r, l8_oai_error *e) {
    size_t n = json_array_size(a), i;
    json_t *v;
    if (!n) return bad_request(e, "prompt", "'prompt' must not be an empty list of token ids");
    if (!(r->prompt_ids = malloc(n * sizeof(int32_t))))
        return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return bad_request(e, "prompt", "prompt[%zu] must be a token id (a non-negative integer)", i);
        r->prompt_ids[i] = (int32_t)json_integer_value(v);
    }
    r->n_prompt_ids = n;
    return true;
}

static bool parse_completion(const json_t *root, l8_oai_request *r, l8_oai_error *e) {
    json_t *p = json_object_get(root, "prompt");
    if (!p || json_is_null(p))
        return l8_oai_fail(e, 400, "invalid_request_error", "missing_required_parameter", "prompt",
                           "'prompt' is required");
    /* a list holds one prompt (text, or ids) since only one choice is generated */
    if (json_is_array(p) && json_array_size(p) > 0 && !json_is_integer(json_array_get(p, 0))) {
        if (json_array_size(p) != 1)
            return bad_request(e, "prompt", "'prompt' lists %zu prompts; llm8 takes one per request",
                               json_array_size(p));
        p = json_array_get(p, 0);
    }
    if (json_is_string(p)) {
        r->prompt_len = json_string_length(p);
        if (!(r->prompt = malloc(r->prompt_len + 1)))
            return l8_oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(r->prompt, json_string_value(p), r->prompt_len + 1);
    } else if (json_is_array(p)) {
        if (!parse_ids(p, r, e)) return false;
    } else {
        return bad_request(e, "prompt", "'prompt' must be a string, a list of token ids, or a list of one of them");
    }
    bool echo = false;
    if (!get_bool(root, "echo", &echo, e)) return false;
    if (echo) return unsupported(e, "echo", "'echo'");
    json_t *suffix = json_object_get(root, "suffix");
    if (suffix && !json_is_null(suffix) && !(json_is_string(suffix) && !json_string_length(suffix)))
        return unsupported(e, "suffix", "'suffix'");
    long long best_of = 1;
    if (!get_int(root, "best_of", 1, 1, &best_of, NULL, e)) return false;
    return true;
}

bool l8_oai_parse(l8_oai_kind kind, const char *body, size_t len, l8_oai_request *r, l8_oai_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->max_tokens = -1;
    r->sampling = llm8_sampling_default_params();
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (!root)
        return l8_oai_fail(e, 400, "invalid_request_error", "invalid_json", NULL,
                           "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    bool ok = json_is_object(root) ? parse_common(root, r, e) &&
                                         (kind == L8_OAI_CHAT ? parse_chat(root, r, e) : parse_completion(root, r, e))
                                   : bad_request(e, NULL, "the body must be a JSON object, not %s", type_name(root));
    json_decref(root);
    if (!ok) l8_oai_request_free(r);
    return ok;
}

void l8_oai_request_free(l8_oai_request *r) {
    if (!r) return;
    free(r->model);
    json_decref(r->chat);
    json_decref(r->tool_names);
    free(r->prompt);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- responses */

/* Generated text is whole UTF-8 characters, but a string that jansson refuses must never turn a
 * reply into a crash or an empty body: bad bytes become U+FFFD. */
static json_t *text_value(const char *s, size_t len) {
    json_t *v = json_stringn(s ? s : "", s ? len : 0);
    if (v) return v;
    char *buf = malloc(len * 3 + 1), *p = buf;
    if (!buf) return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = l8_utf8_next((const unsigned char *)s + i, len - i, NULL);
        if (n) {
            memcpy(p, s + i, n);
            p += n, i += n;
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3);
            p += 3, i++;
        }
    }
    v = json_stringn(buf, (size_t)(p - buf));
    free(buf);
    return v;
}

static json_t *usage(const l8_oai_reply *r) {
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", r->prompt_tokens, "completion_tokens",
                     r->completion_tokens, "total_tokens", r->prompt_tokens + r->completion_tokens,
                     "prompt_tokens_details", "cached_tokens", r->cached_tokens);
}

static json_t *head(const l8_oai_reply *r, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", r->id, "object", object, "created", (json_int_t)r->created,
                     "model", r->model ? r->model : "", "system_fingerprint", FINGERPRINT);
}

static json_t *finish(const char *reason) { return reason ? json_string(reason) : json_null(); }

char *l8_oai_response(const l8_oai_reply *r, size_t *len) {
    bool chat = r->kind == L8_OAI_CHAT;
    json_t *o = head(r, chat ? "chat.completion" : "text_completion"), *choice;
    if (!o) return NULL;
    if (chat) {
        json_t *msg = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content",
                                r->tool_calls ? json_null() : text_value(r->text, r->len), "refusal");
        if (msg && r->tool_calls) json_object_set(msg, "tool_calls", (json_t *)r->tool_calls);
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "message", msg, "logprobs", "finish_reason",
                           finish(r->finish_reason));
    } else {
        choice = json_pack("{s:o, s:i, s:n, s:o}", "text", text_value(r->text, r->len), "index", 0, "logprobs",
                           "finish_reason", finish(r->finish_reason));
    }
    if (json_object_set_new(o, "choices", json_pack("[o]", choice)) || json_object_set_new(o, "usage", usage(r))) {
        json_decref(o);
        return NULL;
    }
    return dump(o, len);
}

char *l8_oai_chunk(const l8_oai_reply *r, bool first, bool usage_null, size_t *len) {
    bool chat = r->kind == L8_OAI_CHAT;
    json_t *o = head(r, chat ? "chat.completion.chunk" : "text_completion"), *choice;
    if (!o) return NULL;
    if (chat) {
        json_t *delta = json_object();
        if (first) json_object_set_new(delta, "role", json_string("assistant"));
        if (r->len || (first && !r->tool_calls)) json_object_set_new(delta, "content", text_value(r->text, r->len));
        if (r->tool_calls) { /* streamed calls carry their position in the list */
            json_t *calls = json_deep_copy(r->tool_calls);
            size_t i;
            json_t *c;
            json_array_foreach(calls, i, c) json_object_set_new(c, "index", json_integer((json_int_t)i));
            json_object_set_new(delta, "tool_calls", calls);
        }
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta, "logprobs", "finish_reason",
                           finish(r->finish_reason));
    } else {
        choice = json_pack("{s:o, s:i, s:n, s:o}", "text", text_value(r->text, r->len), "index", 0, "logprobs",
                           "finish_reason", finish(r->finish_reason));
    }
    if (json_object_set_new(o, "choices", json_pack("[o]", choice)) ||
        (usage_null && json_object_set_new(o, "usage", json_null()))) {
        json_decref(o);
        return NULL;
    }
    return event(o, len);
}

char *l8_oai_usage_chunk(const l8_oai_reply *r, size_t *len) {
    json_t *o = head(r, r->kind == L8_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!o || json_object_set_new(o, "choices", json_array()) || json_object_set_new(o, "usage", usage(r))) {
        json_decref(o);
        return NULL;
    }
    return event(o, len);
}

/* ---------------------------------------------------------------- identifiers */

void l8_oai_make_id(char *buf, size_t cap, const char *prefix) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static atomic_uint_fast64_t counter;
    unsigned char rnd[24];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        /* no entropy yet (early boot): unique is what matters, not unpredictable */
        uint64_t x = atomic_fetch_add(&counter, 1) ^ ((uint64_t)time(NULL) << 20);
        for (size_t i = 0; i < sizeof rnd; i++) {
            x += 0x9E3779B97F4A7C15ull;
            uint64_t z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
            rnd[i] = (unsigned char)((z ^ (z >> 31)) >> 24);
        }
    }
    size_t p = strlen(prefix);
    if (cap < p + sizeof rnd + 1) {
        if (cap) buf[0] = 0;
        return;
    }
    memcpy(buf, prefix, p);
    for (size_t i = 0; i < sizeof rnd; i++) buf[p + i] = alphabet[rnd[i] % 62];
    buf[p + sizeof rnd] = 0;
}
