/* libFuzzer target for the server's request parser (src/server/openai.c) and what follows it
 * on the connection thread: any bytes as a body of /v1/chat/completions and of /v1/completions;
 * an accepted chat rendered with the plain format and with the real Llama 3 template and
 * tokenized; the bytes also read as a model reply (tool-call detection) and put in every
 * response shape. Invariants: every error is a 4xx/5xx with a JSON body, every response is JSON
 * that parses back, and a reply detected as tool calls was classified as a possible call. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "fuzz_util.h"
#include "server/openai.h"
#include "server/toolcall.h"

static llm8_tokenizer *llama3;

static const llm8_tokenizer *tokenizer(void) {
    static int tried;
    if (!tried) {
        tried = 1;
        char err[256];
        if (llm8_tokenizer_load(LLM8_ROOT_DIR "/models/llama3-tokenizer", &llama3, err, sizeof err))
            fprintf(stderr, "fuzz_openai_request: no Llama 3 tokenizer (%s); templates not exercised\n", err);
    }
    return llama3;
}

static void check_json(char *text, size_t len, const char *what) {
    FZ_CHECK(text != NULL, "%s: no body", what);
    FZ_CHECK(strlen(text) == len, "%s: length %zu but %zu bytes", what, len, strlen(text));
    const char *j = strncmp(text, "data: ", 6) ? text : text + 6;
    json_error_t je;
    json_t *v = json_loads(j, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &je); /* \u0000 is JSON */
    FZ_CHECK(v != NULL, "%s: not JSON (%s): %.200s", what, je.text, text);
    json_decref(v);
    free(text);
}

static void render(const l8_oai_request *r) {
    l8_err e;
    char *out = NULL;
    size_t len = 0;
    if (l8_chat_render_plain(json_object_get(r->chat, "messages"), json_object_get(r->chat, "tools"), true, &out, &len, &e) == LLM8_STATUS_OK) {
        fz_touch(out, len);
        free(out);
    }
    const llm8_tokenizer *tok = tokenizer();
    if (!tok) return;
    l8_chat_opts opts = {.add_generation_prompt = true, .date_string = "26 Jul 2024"};
    out = NULL;
    if (l8_chat_apply(tok, r->chat, &opts, &out, &len, &e) == LLM8_STATUS_OK) {
        size_t cap = len + 8, n = 0;
        int32_t *ids = malloc(cap * sizeof *ids);
        if (ids && llm8_tokenize(tok, out, len, LLM8_TOKENIZE_PARSE_SPECIAL, ids, cap, &n) == LLM8_STATUS_OK)
            fz_touch(ids, n * sizeof *ids);
        free(ids);
        FZ_LOG("rendered %zu bytes", len);
    }
    free(out);
}

static void replies(const char *text, size_t len, const json_t *names) {
    json_t *calls = l8_toolcall_parse(text, len, names);
    if (calls) {
        FZ_CHECK(l8_toolcall_classify(text, len) == L8_TOOLCALL_MAYBE, "tool calls from an ordinary reply");
        FZ_LOG("%zu tool calls", json_array_size(calls));
    }
    for (int kind = 0; kind < 2; kind++) {
        l8_oai_reply r = {.kind = kind ? L8_OAI_COMPLETION : L8_OAI_CHAT,
                          .id = "chatcmpl-fuzz",
                          .created = 1,
                          .model = "m",
                          .text = text,
                          .len = len,
                          .tool_calls = kind ? NULL : calls,
                          .finish_reason = calls && !kind ? "tool_calls" : "stop",
                          .prompt_tokens = 3,
                          .completion_tokens = 5,
                          .cached_tokens = 1};
        size_t n = 0;
        char *s = l8_oai_response(&r, &n);
        check_json(s, n, "response");
        s = l8_oai_chunk(&r, true, true, &n);
        check_json(s, n, "chunk");
        s = l8_oai_usage_chunk(&r, &n);
        check_json(s, n, "usage chunk");
    }
    json_decref(calls);
}

/* Known answers, checked once before the first input: the fuzzer finds crashes, these find
 * wrong results (no model can be made to emit a tool call in a test). */
static void selfcheck(void) {
    json_t *names = json_pack("[s, s]", "f", "get_weather");
    static const char *const calls[] = {
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
        " <|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
        "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
    };
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        json_t *c = l8_toolcall_parse(calls[i], strlen(calls[i]), names);
        json_t *fn = json_object_get(json_array_get(c, 0), "function");
        FZ_CHECK(json_array_size(c) == 1 && !strcmp(json_string_value(json_object_get(fn, "name")), "get_weather") &&
                     !strcmp(json_string_value(json_object_get(fn, "arguments")), "{\"city\":\"Paris\"}") &&
                     !strncmp(json_string_value(json_object_get(json_array_get(c, 0), "id")), "call_", 5),
                 "tool call %zu not recognized", i);
        FZ_CHECK(l8_toolcall_classify(calls[i], strlen(calls[i])) == L8_TOOLCALL_MAYBE, "tool call %zu not held", i);
        json_decref(c);
    }
    const char *two = "{\"name\": \"f\", \"parameters\": {}}; {\"name\": \"get_weather\", \"parameters\": {}}";
    json_t *c = l8_toolcall_parse(two, strlen(two), names);
    FZ_CHECK(json_array_size(c) == 2, "two calls not recognized");
    json_decref(c);
    static const char *const not_calls[] = {"{\"name\": \"rm\", \"parameters\": {}}", "{\"name\": \"f\"} and more",
                                            "{\"a\": 1}", "Sure, here it is."};
    for (size_t i = 0; i < sizeof not_calls / sizeof *not_calls; i++)
        FZ_CHECK(!l8_toolcall_parse(not_calls[i], strlen(not_calls[i]), names), "not a call taken for one: %s",
                 not_calls[i]);
    FZ_CHECK(l8_toolcall_classify("  Sure", 6) == L8_TOOLCALL_NO && l8_toolcall_classify(" \n", 2) == L8_TOOLCALL_UNDECIDED &&
                 l8_toolcall_classify("<|python", 8) == L8_TOOLCALL_UNDECIDED,
             "classification");
    json_decref(names);

    const char *req = "{\"messages\": [{\"role\": \"developer\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, "
                      "{\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": "
                      "[{\"id\": \"x\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{\\\"k\\\": 1}\"}}]}], "
                      "\"max_tokens\": 9, \"max_completion_tokens\": 7, \"stop\": [\"\", \"END\"], \"temperature\": 0, "
                      "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}";
    l8_oai_request r;
    l8_oai_error e;
    FZ_CHECK(l8_oai_parse(L8_OAI_CHAT, req, strlen(req), &r, &e), "request rejected: %s", e.message);
    json_t *m = json_object_get(r.chat, "messages");
    FZ_CHECK(r.max_tokens == 7 && r.n_stop == 1 && !strcmp(r.stop[0], "END") && r.has_temperature &&
                 r.sampling.temperature == 0 && !r.has_top_p && json_array_size(r.tool_names) == 1 &&
                 !strcmp(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system") &&
                 !strcmp(json_string_value(json_object_get(json_array_get(m, 0), "content")), "a\nb") &&
                 json_integer_value(json_object_get(
                     json_object_get(json_object_get(json_array_get(json_object_get(json_array_get(m, 1), "tool_calls"), 0),
                                                     "function"),
                                     "arguments"),
                     "k")) == 1,
             "request parsed wrong");
    l8_oai_request_free(&r);
    req = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", "
          "\"function\": {\"name\": \"f\"}}], \"tool_choice\": \"none\"}";
    FZ_CHECK(l8_oai_parse(L8_OAI_CHAT, req, strlen(req), &r, &e) && !r.tool_names && !json_object_get(r.chat, "tools"),
             "tool_choice none still renders tools");
    l8_oai_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int checked;
    if (!checked) {
        checked = 1;
        selfcheck();
    }
    char *body = fz_strndup(data, size);
    json_t *names = NULL;
    for (int kind = 0; kind < 2; kind++) {
        l8_oai_request r;
        l8_oai_error e;
        if (l8_oai_parse(kind ? L8_OAI_COMPLETION : L8_OAI_CHAT, body, size, &r, &e)) {
            FZ_LOG("%s accepted", kind ? "completion" : "chat");
            if (!kind) {
                render(&r);
                if (r.tool_names) names = json_incref(r.tool_names);
            }
            fz_touch(r.prompt, r.prompt_len);
            fz_touch(r.prompt_ids, r.n_prompt_ids * sizeof(int32_t));
            for (size_t i = 0; i < r.n_stop; i++) fz_touch(r.stop[i], strlen(r.stop[i]));
            l8_oai_request_free(&r);
        } else {
            FZ_CHECK(e.status >= 400 && e.status < 600, "error status %u", e.status);
            size_t n = 0;
            char *s = l8_oai_error_body(&e, &n);
            check_json(s, n, "error");
            FZ_LOG("rejected: %s", e.message);
        }
    }
    if (!names) names = json_pack("[s, s]", "f", "get_weather");
    replies(body, size, names);
    json_decref(names);
    free(body);
    return 0;
}
