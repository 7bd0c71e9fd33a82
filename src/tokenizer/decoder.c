/* Streaming detokenizer: ids -> bytes (precomputed per token at load), leading-space strip,
 * and UTF-8 reassembly so callers only ever see whole, valid characters. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

struct llm8_decoder {
    const llm8_tokenizer *tok;
    bool skip_special;
    int strip_left;  /* leading spaces still to strip at the start of the stream */
    unsigned char pend[4];
    size_t n_pend;   /* bytes of an incomplete character held back */
    char *out;
    size_t out_len, out_cap;
};

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

llm8_status llm8_decoder_create(const llm8_tokenizer *tok, bool skip_special, llm8_decoder **out) {
    if (!out) return LLM8_STATUS_INVALID_ARGUMENT;
    *out = NULL;
    if (!tok) return LLM8_STATUS_INVALID_ARGUMENT;
    llm8_decoder *d = calloc(1, sizeof *d);
    if (!d) return LLM8_STATUS_OUT_OF_MEMORY;
    d->tok = tok;
    d->skip_special = skip_special;
    d->strip_left = tok->strip_start;
    *out = d;
    return LLM8_STATUS_OK;
}

void llm8_decoder_free(llm8_decoder *dec) {
    if (!dec) return;
    free(dec->out);
    free(dec);
}

bool llm8_decoder_pending(const llm8_decoder *dec) { return dec && dec->n_pend > 0; }

static bool reserve(llm8_decoder *d, size_t extra) {
    if (d->out_len + extra <= d->out_cap) return true;
    size_t cap = d->out_cap ? d->out_cap : 64;
    while (cap < d->out_len + extra) cap *= 2;
    char *p = realloc(d->out, cap);
    if (!p) return false;
    d->out = p, d->out_cap = cap;
    return true;
}

/* Classifies the bytes at s: returns the length of a complete character (> 0) with *bad false,
 * or the length of the maximal invalid subpart with *bad true (one U+FFFD replaces it, as in
 * Unicode's recommended practice), or 0 when s holds a valid but unfinished character. */
static size_t scan_char(const unsigned char *s, size_t n, bool *bad) {
    unsigned char c = s[0];
    *bad = false;
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds for the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else {
        *bad = true;
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) return 0;
        unsigned char b = s[i];
        bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) {
            *bad = true;
            return i;
        }
    }
    return need;
}

/* Appends the whole characters of pending + s to the output and keeps an unfinished tail. */
static bool emit(llm8_decoder *d, const char *s, size_t len) {
    if (!reserve(d, 3 * (d->n_pend + len) + 4)) return false;
    unsigned char small[8];
    size_t i = 0;
    while (i < len || d->n_pend) {
        /* Work on a window that joins the held-back bytes with the new ones. */
        size_t w = 0;
        for (size_t k = 0; k < d->n_pend; k++) small[w++] = d->pend[k];
        for (size_t k = i; k < len && w < 4; k++) small[w++] = (unsigned char)s[k];
        if (w == 0) break;
        bool bad;
        size_t n = scan_char(small, w, &bad);
        if (n == 0) {
            if (i + (w - d->n_pend) < len) return false; /* cannot happen: a window of 4 always decides */
            memcpy(d->pend, small, w);
            d->n_pend = w;
            return true;
        }
        if (bad) {
            memcpy(d->out + d->out_len, REPLACEMENT, 3);
            d->out_len += 3;
        } else {
            memcpy(d->out + d->out_len, small, n);
            d->out_len += n;
        }
        /* Consume n bytes: first from the pending ones, then from s. */
        if (n >= d->n_pend) {
            i += n - d->n_pend;
            d->n_pend = 0;
        } else {
            memmove(d->pend, d->pend + n, d->n_pend - n);
            d->n_pend -= n;
        }
    }
    return true;
}

llm8_status llm8_decoder_push(llm8_decoder *dec, int32_t id, const char **text, size_t *len) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!dec || !text || !len) return LLM8_STATUS_INVALID_ARGUMENT;
    size_t n;
    const char *b = l8_tokenizer_token_bytes(dec->tok, id, &n);
    if (!b) return LLM8_STATUS_INVALID_ARGUMENT;
    dec->out_len = 0;
    if (dec->skip_special && llm8_tokenizer_is_special(dec->tok, id)) return LLM8_STATUS_OK;
    /* The strip applies to the stream as a whole, so it ends at the first other byte. */
    while (dec->strip_left > 0 && n > 0) {
        if (b[0] != ' ') {
            dec->strip_left = 0;
            break;
        }
        b++, n--, dec->strip_left--;
    }
    if (n > 0) dec->strip_left = 0;
    if (!emit(dec, b, n)) return LLM8_STATUS_OUT_OF_MEMORY;
    *text = dec->out ? dec->out : "";
    *len = dec->out_len;
    return LLM8_STATUS_OK;
}

llm8_status llm8_decoder_flush(llm8_decoder *dec, const char **text, size_t *len) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!dec || !text || !len) return LLM8_STATUS_INVALID_ARGUMENT;
    dec->out_len = 0;
    if (dec->n_pend) {
        /* Held-back bytes are always a valid prefix of one character: one U+FFFD. */
        if (!reserve(dec, 4)) return LLM8_STATUS_OUT_OF_MEMORY;
        memcpy(dec->out, REPLACEMENT, 3);
        dec->out_len = 3;
        dec->n_pend = 0;
    }
    /* The stream has ended; a following push starts a new one. */
    dec->strip_left = dec->tok->strip_start;
    *text = dec->out ? dec->out : "";
    *len = dec->out_len;
    return LLM8_STATUS_OK;
}
