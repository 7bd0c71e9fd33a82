/*
 * Saved session state: a small header, the context's token ids, the KV cache rows of the used
 * positions, and the conversation as JSON. Layout (little-endian):
 *   char magic[8] "LLM8SES1"; u32 version 1; u32 kv_f16;
 *   u32 n_layer, n_kv_dim, n_vocab; u32 lora; u64 weight_bytes;   (the model it belongs to;
 *     lora: 0 without an adapter, else a fingerprint of the adapter and its factor, since the
 *     keys and values depend on them; it fills what was padding, so files from before it read
 *     as made without an adapter)
 *   u32 n_past; u32 messages_len;
 *   i32 tokens[n_past]; K then V: for each layer, n_past rows of n_kv_dim elements (f16 or f32);
 *   messages_len bytes of JSON (an array; 0 bytes: none); u64 FNV-1a of everything before it.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "util/mapfile.h"

typedef struct state_header {
    char magic[8];
    uint32_t version, kv_f16, n_layer, kv_dim, n_vocab, lora;
    uint64_t weight_bytes;
    uint32_t n_past, messages_len;
} state_header;
_Static_assert(sizeof(state_header) == 48, "the header layout of the format comment");

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

typedef struct writer {
    FILE *f;
    uint64_t hash;
    bool ok;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (w->ok && n && fwrite(p, 1, n, w->f) != n) w->ok = false;
    w->hash = fnv(w->hash, p, n);
}

static state_header header_of(const llm8_session *s, uint32_t messages_len) {
    const llm8_model_info *m = &s->model->info;
    state_header h;
    memset(&h, 0, sizeof h); /* padding included: headers are compared and hashed as bytes */
    memcpy(h.magic, "LLM8SES1", 8);
    h.version = 1, h.kv_f16 = s->kv.f16, h.n_layer = (uint32_t)m->n_layer, h.kv_dim = (uint32_t)s->kv.kv_dim;
    h.lora = 0;
    if (s->kv.lora) { /* never 0: that is "none" */
        uint64_t f = fnv(s->kv.lora->p->fingerprint, &s->kv.lora->s, sizeof s->kv.lora->s);
        h.lora = (uint32_t)(f ^ (f >> 32)) | 1u;
    }
    h.n_vocab = (uint32_t)m->n_vocab, h.weight_bytes = m->weight_bytes, h.n_past = (uint32_t)s->n_past;
    h.messages_len = messages_len;
    return h;
}

llm8_status llm8_session_save(llm8_session *s, const char *path) {
    if (!s || !path) return LLM8_STATUS_INVALID_ARGUMENT;
    if (llm8_session_is_running(s)) return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "save: the session is running");
    char *json = s->messages && json_array_size(s->messages) ? json_dumps(s->messages, JSON_COMPACT) : NULL;
    size_t jl = json ? strlen(json) : 0;
    size_t tl = strlen(path) + 5;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(json);
        return LLM8_STATUS_OUT_OF_MEMORY;
    }
    snprintf(tmp, tl, "%s.tmp", path);
    writer w = {fopen(tmp, "wb"), 0xcbf29ce484222325ull, true};
    if (!w.f) {
        llm8_status st = l8_session_fail(s, LLM8_STATUS_IO_ERROR, "%s: %s", tmp, strerror(errno));
        free(json);
        free(tmp);
        return st;
    }
    state_header h = header_of(s, (uint32_t)jl);
    put(&w, &h, sizeof h);
    put(&w, s->tokens, (size_t)s->n_past * sizeof(int32_t));
    size_t el = s->kv.f16 ? 2 : 4, row = (size_t)s->kv.kv_dim * el;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t l = 0; l < s->model->info.n_layer; l++)
            put(&w, (const char *)(pass ? s->kv.v : s->kv.k) + (size_t)l * s->kv.n_ctx * row, (size_t)s->n_past * row);
    put(&w, json, jl);
    uint64_t sum = w.hash;
    put(&w, &sum, sizeof sum);
    free(json);
    int err = 0;
    if (!w.ok || fflush(w.f) || fsync(fileno(w.f))) err = errno ? errno : EIO;
    if (fclose(w.f)) err = err ? err : errno;
    if (!err && rename(tmp, path)) err = errno;
    if (err) {
        unlink(tmp);
        llm8_status st = l8_session_fail(s, LLM8_STATUS_IO_ERROR, "%s: write failed: %s", path, strerror(err));
        free(tmp);
        return st;
    }
    free(tmp);
    return LLM8_STATUS_OK;
}

llm8_status llm8_session_load(llm8_session *s, const char *path) {
    if (!s || !path) return LLM8_STATUS_INVALID_ARGUMENT;
    if (llm8_session_is_running(s)) return l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "load: the session is running");
    char *buf = NULL;
    size_t len = 0;
    l8_err e = {""};
    llm8_status st = l8_read_file(path, &buf, &len, &e);
    if (st) return l8_session_fail(s, st, "%s", e.msg);
    state_header h;
    size_t el = s->kv.f16 ? 2 : 4, row = (size_t)s->kv.kv_dim * el;
    const llm8_model_info *m = &s->model->info;
    if (len < sizeof h + 8 || memcmp(buf, "LLM8SES1", 8)) {
        st = l8_session_fail(s, LLM8_STATUS_BAD_FORMAT, "%s: not an llm8 session file", path);
        goto out;
    }
    memcpy(&h, buf, sizeof h);
    if (h.version != 1) {
        st = l8_session_fail(s, LLM8_STATUS_UNSUPPORTED, "%s: session file version %u (this build reads 1)", path,
                             h.version);
        goto out;
    }
    state_header want = header_of(s, h.messages_len);
    want.n_past = h.n_past;
    if (h.kv_f16 != want.kv_f16 || h.n_layer != want.n_layer || h.kv_dim != want.kv_dim || h.n_vocab != want.n_vocab ||
        h.weight_bytes != want.weight_bytes) {
        st = l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "%s: saved from another model or KV cache type", path);
        goto out;
    }
    if (h.lora != want.lora) {
        st = l8_session_fail(s, LLM8_STATUS_INVALID_ARGUMENT, "%s: saved %s; this session %s (choose the same before loading)",
                             path, h.lora ? "with a LoRA adapter" : "without a LoRA adapter",
                             !want.lora ? "has none" : h.lora ? "uses another adapter or scale" : "uses one");
        goto out;
    }
    if (h.n_past > (uint32_t)s->n_ctx) {
        st = l8_session_fail(s, LLM8_STATUS_CONTEXT_FULL, "%s: holds %u tokens but the context is %d", path, h.n_past,
                             s->n_ctx);
        goto out;
    }
    size_t need = sizeof h + (size_t)h.n_past * 4 + 2 * (size_t)m->n_layer * h.n_past * row + h.messages_len + 8;
    uint64_t sum;
    if (len != need) {
        st = l8_session_fail(s, LLM8_STATUS_BAD_FORMAT, "%s: truncated (%zu bytes, %zu expected)", path, len, need);
        goto out;
    }
    memcpy(&sum, buf + len - 8, 8);
    if (sum != fnv(0xcbf29ce484222325ull, buf, len - 8)) {
        st = l8_session_fail(s, LLM8_STATUS_BAD_FORMAT, "%s: damaged (checksum mismatch)", path);
        goto out;
    }
    const char *p = buf + sizeof h;
    const int32_t *toks = (const int32_t *)(const void *)p;
    for (uint32_t i = 0; i < h.n_past; i++) {
        int32_t id;
        memcpy(&id, toks + i, 4);
        if (id < -1 || id >= m->n_vocab) { /* -1: a position fed an embedding */
            st = l8_session_fail(s, LLM8_STATUS_BAD_FORMAT, "%s: token id %d out of range", path, id);
            goto out;
        }
    }
    json_t *msgs = NULL;
    if (h.messages_len) {
        const char *js = p + (size_t)h.n_past * 4 + 2 * (size_t)m->n_layer * h.n_past * row;
        msgs = json_loadb(js, h.messages_len, 0, NULL);
        if (!json_is_array(msgs)) {
            json_decref(msgs);
            st = l8_session_fail(s, LLM8_STATUS_BAD_FORMAT, "%s: damaged conversation", path);
            goto out;
        }
    }
    memcpy(s->tokens, p, (size_t)h.n_past * 4);
    p += (size_t)h.n_past * 4;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t l = 0; l < m->n_layer; l++) {
            memcpy((char *)(pass ? s->kv.v : s->kv.k) + (size_t)l * s->kv.n_ctx * row, p, (size_t)h.n_past * row);
            p += (size_t)h.n_past * row;
        }
    s->n_past = (int32_t)h.n_past;
    json_decref(s->messages);
    s->messages = msgs;
    /* the last position's logits are not saved: running its token again restores them (an
     * embedding position cannot be re-run: its logits stay unknown until the next input) */
    if (s->n_past > 0 && s->tokens[s->n_past - 1] >= 0) {
        s->n_past--;
        st = llm8_session_eval(s, &s->tokens[s->n_past], 1, NULL, false);
    }
out:
    free(buf);
    return st;
}
