/* libFuzzer target for the chat template renderer (src/chat/template.h) and the request glue
 * around it.
 *
 * Input: a template source, then optionally FZ_SEP and a JSON context. The template is rendered
 * with that context (or, when it is absent or not a JSON object, a fixed three-message chat).
 * When the context is an object it is also taken as an OpenAI-style request and rendered with
 * the real Llama 3.2 template and with the plain format of the demo model, both loaded once.
 * The renderer promises errors, never crashes, for any template (template.h "Limits"). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "fuzz_util.h"
#include "llm8.h"

static llm8_tokenizer *toks[2];
static json_t *default_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char *const dirs[2] = {LLM8_ROOT_DIR "/models/llama3-tokenizer", LLM8_ROOT_DIR "/models/stories260k"};
    for (int i = 0; i < 2; i++) {
        char err[512];
        if (llm8_tokenizer_load(dirs[i], &toks[i], err, sizeof err) != LLM8_STATUS_OK) {
            fprintf(stderr, "fuzz_chat_template: %s\n", err);
            abort();
        }
    }
    default_ctx = json_loads("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                             " {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}],"
                             " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
                             " \"date_string\": \"26 Jul 2024\"}",
                             0, NULL);
    if (!default_ctx) abort();
    return 0;
}

static void check_result(llm8_status st, char *out, size_t len, const l8_err *e) {
    FZ_LOG("chat_template: %s", st ? e->msg : "ok");
    if (st == LLM8_STATUS_OK) {
        FZ_CHECK(out != NULL && strlen(out) <= len, "output of %zu bytes not terminated", len);
        fz_touch(out, len + 1);
        free(out);
    } else {
        FZ_CHECK(out == NULL, "output returned with status %d", (int)st);
        FZ_CHECK(e->msg[0] != 0, "status %d without a message", (int)st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *a, *b;
    size_t al, bl;
    int found;
    fz_split(data, size, &a, &al, &b, &bl, &found);
    char *src = fz_strndup(a, al);
    json_t *ctx = found ? json_loadb((const char *)b, bl, JSON_DECODE_ANY, NULL) : NULL;
    char *out = NULL;
    size_t len = 0;
    l8_err e = {""};
    llm8_status st = l8_chat_render(src, json_is_object(ctx) ? ctx : default_ctx, &out, &len, &e);
    check_result(st, out, len, &e);
    if (json_is_object(ctx)) {
        for (int i = 0; i < 2; i++) {
            l8_chat_opts opts = {.add_generation_prompt = i == 0, .date_string = "26 Jul 2024"};
            out = NULL;
            e.msg[0] = 0;
            st = l8_chat_apply(toks[i], ctx, &opts, &out, &len, &e);
            check_result(st, out, len, &e);
        }
    }
    json_decref(ctx);
    free(src);
    return 0;
}
