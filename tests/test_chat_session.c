/*
 * Conversations through llm8_session_chat: a two-turn chat gives the same answer as one run on
 * the rendering of the whole conversation, and turn 2 prefills only the tokens after what the
 * context holds. On the demo model (no template: the plain format) and on a small random model
 * with the real Llama 3 tokenizer and chat template (converted at test time).
 */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "check.h"
#include "llm8.h"
#include "tokenizer/tokenizer.h"


typedef struct text {
    char s[8192];
    size_t n;
} text;

static bool collect(void *user, const char *t, size_t len, int32_t token) {
    text *x = user;
    if (x->n + len < sizeof x->s) memcpy(x->s + x->n, t, len), x->n += len, x->s[x->n] = 0;
    return true;
}

static void two_turns(const char *path, const char *system) {
    char err[512];
    llm8_model *m;
    if (llm8_model_load(path, &m, err, sizeof err)) {
        printf("FAIL load %s: %s\n", path, err);
        failures++;
        return;
    }
    const llm8_tokenizer *tok = llm8_model_tokenizer(m);
    llm8_session *s;
    assert(llm8_session_create(m, NULL, &s, err, sizeof err) == LLM8_STATUS_OK);
    llm8_generate_params gp = llm8_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = 24;
    if (system) assert(llm8_session_set_system(s, system) == LLM8_STATUS_OK);
    static text r1, r2, r3;
    memset(&r1, 0, sizeof r1), memset(&r2, 0, sizeof r2), memset(&r3, 0, sizeof r3);
    llm8_run_stats st1, st2;
    CHECK(llm8_session_chat(s, "Tell me a story about a cat.", &gp, collect, &r1, &st1) == LLM8_STATUS_OK, "turn 1: %s",
          llm8_session_last_error(s));
    int32_t past1 = llm8_session_n_past(s), n_ctx1;
    const int32_t *ctx1 = llm8_session_tokens(s, &n_ctx1);
    int32_t *held = malloc((size_t)n_ctx1 * sizeof *held);
    memcpy(held, ctx1, (size_t)n_ctx1 * sizeof *held);
    int32_t prompt1 = st1.prompt_tokens;
    CHECK(llm8_session_chat(s, "And then what happened?", &gp, collect, &r2, &st2) == LLM8_STATUS_OK, "turn 2: %s",
          llm8_session_last_error(s));
    CHECK(llm8_session_n_messages(s) == (system ? 5 : 4), "%d messages", llm8_session_n_messages(s));

    /* the whole conversation rendered, as a fresh run would see it */
    json_t *msgs = json_array();
    if (system) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", system));
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", "Tell me a story about a cat."));
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content", r1.s));
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", "And then what happened?"));
    json_t *req = json_pack("{s:o}", "messages", msgs);
    char *rendered;
    size_t rlen;
    l8_err e;
    l8_chat_opts opts = {.add_generation_prompt = true};
    assert(l8_chat_apply(tok, req, &opts, &rendered, &rlen, &e) == LLM8_STATUS_OK);
    json_decref(req);
    int32_t *ids = malloc((rlen + 8) * sizeof *ids);
    size_t n;
    uint32_t flags = LLM8_TOKENIZE_PARSE_SPECIAL | (l8_tokenizer_chat_template(tok) ? 0 : LLM8_TOKENIZE_ADD_BOS);
    assert(llm8_tokenize(tok, rendered, rlen, flags, ids, rlen + 8, &n) == LLM8_STATUS_OK);
    llm8_session *f;
    assert(llm8_session_create(m, NULL, &f, err, sizeof err) == LLM8_STATUS_OK);
    assert(llm8_session_generate_ids(f, ids, n, &gp, collect, &r3, NULL) == LLM8_STATUS_OK);
    CHECK(r2.n == r3.n && !memcmp(r2.s, r3.s, r2.n), "%s: turn 2 [%s] != one run on the whole rendering [%s]", path,
          r2.s, r3.s);
    /* turn 2 prefills exactly what follows the longest common prefix of the context and the new
     * rendering, and that prefix always covers turn 1's prompt (the answer's own tokens are kept
     * too when they re-tokenize the same; replies that start with a space, as a base model's do,
     * are trimmed by templates and so re-prefilled) */
    size_t lcp = 0;
    while (lcp < n && lcp < (size_t)past1 && held[lcp] == ids[lcp]) lcp++;
    CHECK(st2.prompt_tokens == (int32_t)(n - lcp) && lcp >= (size_t)prompt1 - 1,
          "%s: turn 2 prefilled %d tokens; rendering %zu, common prefix %zu, turn-1 prompt %d", path, st2.prompt_tokens,
          n, lcp, prompt1);
    printf("%s: turn 1 prefilled %d; turn 2 prefilled %d of %zu (kept %zu of the %d held); answers: [%s] [%s]\n", path,
           prompt1, st2.prompt_tokens, n, lcp, past1, r1.s, r2.s);
    free(held);

    /* clearing the history keeps the system message or not */
    llm8_session_clear_history(s, true);
    CHECK(llm8_session_n_messages(s) == (system ? 1 : 0) && llm8_session_n_past(s) == 0, "clear keeping system");
    llm8_session_clear_history(s, false);
    CHECK(llm8_session_n_messages(s) == 0, "clear all");
    free(ids);
    free(rendered);
    llm8_session_free(f);
    llm8_session_free(s);
    llm8_model_free(m);
}

/* A conversation longer than the context: without a context shift (n_keep < 0) a turn that does
 * not fit is refused and leaves the conversation as it was; with n_keep >= 0 the oldest exchanges
 * leave it (the system message stays) and every turn is answered, its prompt within the context. */
static void overflowing(const char *path, const char *system) {
    char err[512];
    llm8_model *m;
    assert(llm8_model_load(path, &m, err, sizeof err) == LLM8_STATUS_OK);
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = 96;
    static const char *const turns[] = {"Tell me a long story about a cat.", "And then?", "What did the dog say?",
                                        "More!", "How did it end?", "Tell it again."};
    for (int shift = 0; shift < 2; shift++) {
        llm8_session *s;
        assert(llm8_session_create(m, &sp, &s, err, sizeof err) == LLM8_STATUS_OK);
        if (system) assert(llm8_session_set_system(s, system) == LLM8_STATUS_OK);
        llm8_generate_params gp = llm8_generate_default_params();
        gp.max_tokens = 24;
        gp.ignore_eos = true;
        gp.sampling.temperature = 0;
        gp.n_keep = shift ? 0 : -1;
        int answered = 0, refused = 0;
        for (size_t i = 0; i < sizeof turns / sizeof *turns; i++) {
            int32_t before = llm8_session_n_messages(s);
            text t = {.n = 0};
            llm8_run_stats st;
            llm8_status r = llm8_session_chat(s, turns[i], &gp, collect, &t, &st);
            if (r == LLM8_STATUS_OK) {
                answered++;
                /* without a shift an answer may stop where the context ends */
                CHECK(t.n > 0 && (st.generated_tokens == 24 || (!shift && st.stop_reason == LLM8_STOP_CONTEXT)),
                      "%s turn %zu: an answer of 24 tokens (%d)", path, i, st.generated_tokens);
            } else {
                refused++;
                CHECK(!shift && llm8_session_n_messages(s) == before, "%s turn %zu refused (%s): %s", path, i,
                      shift ? "with a context shift" : "the conversation must be unchanged", llm8_session_last_error(s));
            }
            CHECK(llm8_session_n_past(s) <= sp.n_ctx, "the context holds at most n_ctx tokens");
        }
        if (shift) {
            CHECK(answered == 6, "%s: with a context shift every turn is answered (%d of 6)", path, answered);
            /* a turn after the shift still sees the system message: it is the conversation's first */
            const char *saved = "/tmp/llm8_test_chat_shift.state";
            CHECK(llm8_session_save(s, saved) == LLM8_STATUS_OK, "save");
            FILE *f = fopen(saved, "rb");
            char *buf = malloc(1 << 24);
            assert(f && buf);
            size_t len = fread(buf, 1, (1 << 24) - 1, f);
            fclose(f);
            /* the conversation is the file's JSON tail */
            const char *want = "[{\"role\":\"system\"";
            bool sys_first = !system;
            for (size_t k = 0; system && k + strlen(want) <= len; k++)
                if (!memcmp(buf + k, want, strlen(want))) sys_first = true;
            CHECK(sys_first, "%s: the system message stays first after the oldest exchanges left", path);
            CHECK(llm8_session_n_messages(s) < 2 * 6 + (system ? 1 : 0), "%s: some exchanges left (%d messages)", path,
                  llm8_session_n_messages(s));
            free(buf);
            remove(saved);
        } else {
            CHECK(refused > 0, "%s: without a context shift the context fills and a turn is refused", path);
        }
        printf("  %s, n_ctx 96, %s: %d of 6 turns answered, %d messages kept\n", path,
               shift ? "context shift" : "no shift", answered, llm8_session_n_messages(s));
        llm8_session_free(s);
    }
    llm8_model_free(m);
}

int main(void) {
    overflowing("models/stories260k", "You tell stories.");
    two_turns("models/stories260k", NULL);
    two_turns("models/stories260k", "You tell stories.");
    /* a random model in the Llama 3 layout, made at test time */
    char cmd[1024];
    const char *bin = getenv("LLM8_BIN") ? getenv("LLM8_BIN") : "build/llm8";
    const char *out = "/tmp/llm8_test_chat_llama3.gguf";
    snprintf(cmd, sizeof cmd,
             "'%s' convert --random tests/data/random-llama3-config/config.json --tokenizer models/llama3-tokenizer "
             "--quant w8a8 -o %s 2>/dev/null",
             bin, out);
    CHECK(system(cmd) == 0, "convert the random Llama 3 model");
    two_turns(out, "You are a helpful assistant.");
    overflowing(out, "You are a helpful assistant.");
    remove(out);
    printf("chat sessions: %d failures\n", failures);
    return failures ? 1 : 0;
}
