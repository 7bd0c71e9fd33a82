/* libFuzzer target for encoding and decoding arbitrary bytes with two real tokenizers, loaded
 * once: Llama 3's (byte-level BPE, 128k ids, a split regex) and the demo model's (SentencePiece
 * style: metaspace, byte fallback).
 *
 * Input: byte 0 holds flags, the rest is text (or ids):
 *   bit 0: the demo tokenizer instead of Llama 3's
 *   bit 1: match special-token strings      bit 2: add BOS
 *   bit 3: the rest is little-endian int32 ids to decode (any value, the bad ones included)
 * Invariants: ids are in the vocabulary; without special matching and BOS, decoding the ids gives
 * the text back exactly (for the demo tokenizer, unless the text holds U+2581, which its
 * normalizer and decoder map to and from a space by design). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "llm8.h"
#include "util/utf8.h"

static llm8_tokenizer *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char *const dirs[2] = {LLM8_ROOT_DIR "/models/llama3-tokenizer", LLM8_ROOT_DIR "/models/stories260k"};
    for (int i = 0; i < 2; i++) {
        char err[512];
        if (llm8_tokenizer_load(dirs[i], &toks[i], err, sizeof err) != LLM8_STATUS_OK) {
            fprintf(stderr, "fuzz_tokenize: %s\n", err);
            abort();
        }
    }
    return 0;
}

/* Appends decoded text to a growing buffer. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Streams ids through a decoder into out; each piece must be valid UTF-8 on its own. */
static void decode(const llm8_tokenizer *tok, const int32_t *ids, size_t n, sbuf *out) {
    llm8_decoder *dec = NULL;
    if (llm8_decoder_create(tok, false, &dec) != LLM8_STATUS_OK) abort();
    const char *text;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        llm8_status st = llm8_decoder_push(dec, ids[i], &text, &len);
        bool bad = ids[i] < 0 || ids[i] >= llm8_tokenizer_n_vocab(tok);
        FZ_CHECK(bad == (st != LLM8_STATUS_OK), "push(%d) returned %d", ids[i], (int)st);
        FZ_CHECK(l8_utf8_valid(text, len, NULL), "piece of id %d is not whole UTF-8", ids[i]);
        sb_add(out, text, len);
    }
    if (llm8_decoder_flush(dec, &text, &len) != LLM8_STATUS_OK) abort();
    FZ_CHECK(l8_utf8_valid(text, len, NULL), "flushed bytes are not UTF-8");
    sb_add(out, text, len);
    llm8_decoder_free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned flags = data[0];
    const llm8_tokenizer *tok = toks[flags & 1];
    char *text = fz_strndup(data + 1, size - 1); /* exactly the text, then a NUL the encoder must not need */
    size_t len = size - 1;
    sbuf out = {0};
    if (flags & 8) {
        size_t n = len / 4;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids) abort();
        memcpy(ids, text, n * 4);
        decode(tok, ids, n, &out);
        free(ids);
    } else {
        uint32_t tf = ((flags & 2) ? LLM8_TOKENIZE_PARSE_SPECIAL : 0) | ((flags & 4) ? LLM8_TOKENIZE_ADD_BOS : 0);
        size_t n = 0;
        int32_t one;
        llm8_status st = llm8_tokenize(tok, text, len, tf, &one, 0, &n); /* the size query */
        bool valid = l8_utf8_valid(text, len, NULL);
        FZ_CHECK(valid || st == LLM8_STATUS_INVALID_ARGUMENT, "invalid UTF-8 accepted (status %d)", (int)st);
        if (valid && (n > 0 || st == LLM8_STATUS_OK)) {
            int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
            size_t n2 = 0;
            if (!ids) abort();
            st = llm8_tokenize(tok, text, len, tf, ids, n, &n2);
            FZ_CHECK(st == LLM8_STATUS_OK && n2 == n, "second call: status %d, %zu ids, %zu announced", (int)st, n2, n);
            for (size_t i = 0; i < n; i++)
                FZ_CHECK(ids[i] >= 0 && ids[i] < llm8_tokenizer_n_vocab(tok), "id %d out of range", ids[i]);
            decode(tok, ids, n, &out);
            bool exact = !tf && !((flags & 1) && memmem(text, len, "\xe2\x96\x81", 3));
            if (exact)
                FZ_CHECK(out.len == len && (len == 0 || memcmp(out.p, text, len) == 0),
                         "decode(encode(text)) differs: %zu bytes in, %zu out", len, out.len);
            free(ids);
        }
    }
    free(out.p);
    free(text);
    return 0;
}
