/* libFuzzer target for tokenizer.json (and tokenizer_config.json) loading.
 *
 * Input: tokenizer.json, then optionally FZ_SEP and tokenizer_config.json. A tokenizer that loads
 * is then used the way a model uses it: a few texts are encoded (with and without special-token
 * matching and BOS), every id is decoded through the streaming decoder, and every piece is read,
 * because a hostile vocabulary or decoder section may only go wrong when used. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "llm8.h"
#include "tokenizer/tokenizer.h"

static const char *const texts[] = {
    "Hello world", " leading spaces  and\ttabs\n\nnew lines", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
    "<s><|begin_of_text|>[INST] a <unk> b</s><|eot_id|>", "12345 3.14 don't I'll WE'RE", "",
};

/* Decodes ids through a fresh streaming decoder; every piece must be whole UTF-8. */
static void decode(const llm8_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special) {
    llm8_decoder *dec = NULL;
    if (llm8_decoder_create(tok, skip_special, &dec) != LLM8_STATUS_OK) return;
    const char *text;
    size_t len;
    for (size_t i = 0; i < n; i++)
        if (llm8_decoder_push(dec, ids[i], &text, &len) == LLM8_STATUS_OK) fz_touch(text, len);
    if (llm8_decoder_flush(dec, &text, &len) == LLM8_STATUS_OK) fz_touch(text, len);
    FZ_CHECK(!llm8_decoder_pending(dec), "bytes still pending after a flush");
    llm8_decoder_free(dec);
}

static void use(const llm8_tokenizer *tok) {
    int32_t n_vocab = llm8_tokenizer_n_vocab(tok);
    FZ_CHECK(n_vocab > 0, "a loaded tokenizer with %d ids", n_vocab);
    int32_t bos = llm8_tokenizer_bos(tok), eos = llm8_tokenizer_eos(tok);
    FZ_CHECK(bos >= -1 && bos < n_vocab && eos >= -1 && eos < n_vocab, "bos %d eos %d of %d", bos, eos, n_vocab);
    int32_t ids[256];
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++)
        for (uint32_t flags = 0; flags < 4; flags++) {
            size_t n = 0;
            if (llm8_tokenize(tok, texts[t], strlen(texts[t]), flags, ids, 256, &n) != LLM8_STATUS_OK) continue;
            FZ_CHECK(n <= 256, "count %zu beyond the capacity", n);
            for (size_t i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab, "id %d of %d", ids[i], n_vocab);
            decode(tok, ids, n, flags & 1);
        }
    /* every id (a bounded number of them), plus ids just outside the vocabulary */
    int32_t lim = n_vocab < 4096 ? n_vocab : 4096, all[4098];
    for (int32_t i = 0; i < lim; i++) {
        all[i] = i;
        const char *p = llm8_tokenizer_piece(tok, i);
        if (p) fz_touch(p, strlen(p));
        size_t len;
        const char *b = l8_tokenizer_token_bytes(tok, i, &len);
        if (b) fz_touch(b, len);
        (void)llm8_tokenizer_is_special(tok, i);
    }
    all[lim] = -1, all[lim + 1] = n_vocab;
    decode(tok, all, (size_t)lim + 2, false);
    decode(tok, all, (size_t)lim + 2, true);
    const char *s = l8_tokenizer_chat_template(tok);
    if (s) fz_touch(s, strlen(s));
    if ((s = l8_tokenizer_bos_str(tok))) fz_touch(s, strlen(s));
    if ((s = l8_tokenizer_eos_str(tok))) fz_touch(s, strlen(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *a, *b;
    size_t al, bl;
    int found;
    fz_split(data, size, &a, &al, &b, &bl, &found);
    /* exact-size copies: the loader gets lengths, and an over-read must hit a redzone */
    char *tj = malloc(al ? al : 1), *cj = found ? malloc(bl ? bl : 1) : NULL;
    if (!tj || (found && !cj)) abort();
    memcpy(tj, a, al);
    if (cj) memcpy(cj, b, bl);
    llm8_tokenizer *tok = NULL;
    l8_err e = {""};
    if (l8_tokenizer_from_json(tj, al, cj, bl, "fuzz", &tok, &e) == LLM8_STATUS_OK) {
        FZ_LOG("tokenizer_load: ok, %d ids, template %s", llm8_tokenizer_n_vocab(tok),
               l8_tokenizer_chat_template(tok) ? "yes" : "no");
        use(tok);
        llm8_tokenizer_free(tok);
    } else {
        FZ_CHECK(e.msg[0] && !strchr(e.msg, '\n'), "an error must be one non-empty line: [%s]", e.msg);
        FZ_LOG("tokenizer_load: %s", e.msg);
    }
    free(tj);
    free(cj);
    return 0;
}
