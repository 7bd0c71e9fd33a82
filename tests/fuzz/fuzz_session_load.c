/* libFuzzer target for saved session files (prompt caches, llm8_session_load), on the demo model
 * loaded once, with one session of 128 tokens reused across inputs.
 *
 * Input: byte 0 holds flags, the rest is the file.
 *   bit 0: make messages_len agree with the file's length (so that the JSON conversation at the
 *          end is reached, not only the length check)
 *   bit 1: recompute the trailing FNV-1a checksum (so that everything past it is reached)
 *   bit 2: after a successful load, take one chat turn on the loaded conversation
 * Seeds are files written by `llm8 chat -c 128` /save, with the flags byte in front. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "llm8.h"
#include "runtime/runtime.h"

enum { HEADER = 48, OFF_N_PAST = 40, OFF_MESSAGES_LEN = 44 }; /* src/runtime/state.c's layout */

static llm8_model *model;
static llm8_session *sess;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char err[512];
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = 128;
    sp.n_threads = 1;
    if (llm8_model_load(LLM8_ROOT_DIR "/models/stories260k", &model, err, sizeof err) ||
        llm8_session_create(model, &sp, &sess, err, sizeof err)) {
        fprintf(stderr, "fuzz_session_load: %s\n", err);
        abort();
    }
    fz_scratch();
    return 0;
}

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static bool count_token(void *user, const char *text, size_t len, int32_t token) {
    (void)text, (void)len, (void)token;
    ++*(int *)user;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned flags = data[0];
    size_t len = size - 1;
    uint8_t *file = malloc(len ? len : 1);
    if (!file) abort();
    memcpy(file, data + 1, len);
    const llm8_model_info *info = llm8_model_get_info(model);
    if ((flags & 1) && len >= HEADER + 8) {
        uint64_t row = (uint64_t)sess->kv.kv_dim * (sess->kv.f16 ? 2 : 4), n_past = rd32(file + OFF_N_PAST);
        uint64_t fixed = HEADER + n_past * 4 + 2 * (uint64_t)info->n_layer * n_past * row + 8;
        if (n_past <= (uint64_t)sess->n_ctx && fixed <= len) wr32(file + OFF_MESSAGES_LEN, (uint32_t)(len - fixed));
    }
    if ((flags & 2) && len >= HEADER + 8) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < len - 8; i++) h = (h ^ file[i]) * 0x100000001b3ull;
        memcpy(file + len - 8, &h, 8);
    }
    const char *path = fz_write("session.bin", file, len);
    free(file);

    int32_t before = llm8_session_n_past(sess);
    sess->last_error[0] = 0; /* so that a missing message is not hidden by the previous input's */
    llm8_status st = llm8_session_load(sess, path);
    FZ_LOG("session_load: %s", st ? llm8_session_last_error(sess) : "ok");
    if (st == LLM8_STATUS_OK) {
        int32_t n;
        const int32_t *toks = llm8_session_tokens(sess, &n);
        FZ_CHECK(n >= 0 && n <= llm8_session_n_ctx(sess), "n_past %d after a load", n);
        for (int32_t i = 0; i < n; i++)
            FZ_CHECK(toks[i] >= -1 && toks[i] < info->n_vocab, "token %d at %d after a load", toks[i], i);
        if (flags & 4) {
            llm8_generate_params gp = llm8_generate_default_params();
            gp.max_tokens = 2;
            gp.sampling.temperature = 0;
            int pieces = 0;
            sess->last_error[0] = 0;
            st = llm8_session_chat(sess, "And then?", &gp, count_token, &pieces, NULL);
            FZ_LOG("session_load: chat: %s, %d pieces", st ? llm8_session_last_error(sess) : "ok", pieces);
            FZ_CHECK(st == LLM8_STATUS_OK || llm8_session_last_error(sess)[0], "chat status %d without a message",
                     (int)st);
        }
    } else {
        FZ_CHECK(llm8_session_last_error(sess)[0], "load status %d without a message", (int)st);
        FZ_CHECK(llm8_session_n_past(sess) == before, "a failed load changed the context (%d -> %d tokens)", before,
                 llm8_session_n_past(sess));
    }
    llm8_session_clear_history(sess, false);
    llm8_session_reset(sess);
    return 0;
}
