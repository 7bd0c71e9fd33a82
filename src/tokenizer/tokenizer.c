/* Public tokenizer API: loading from a folder, freeing, and the read-only accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/load_internal.h"
#include "util/mapfile.h"

void l8_tok_destroy(llm8_tokenizer *tok) {
    if (!tok) return;
    free(tok->name);
    free(tok->pieces);
    free(tok->piece_off);
    free(tok->piece_len);
    free(tok->flags);
    free(tok->dec);
    free(tok->dec_off);
    free(tok->dec_len);
    l8_strmap_free(&tok->vocab);
    l8_pairmap_free(&tok->merges);
    free(tok->added);
    for (int i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].a);
        free(tok->norm[i].b);
    }
    for (int i = 0; i < tok->n_pre; i++) l8_regex_free(tok->pre[i].re);
    free(tok->bos_str);
    free(tok->eos_str);
    free(tok->chat_template);
    free(tok);
}

void llm8_tokenizer_free(llm8_tokenizer *tok) { l8_tok_destroy(tok); }

llm8_status llm8_tokenizer_load(const char *dir, llm8_tokenizer **out, char *err, size_t errcap) {
    l8_err e = {{0}};
    llm8_status st;
    if (out) *out = NULL;
    if (!dir || !out) {
        st = l8_fail(&e, LLM8_STATUS_INVALID_ARGUMENT, "llm8_tokenizer_load: null argument");
        l8_err_copy(&e, err, errcap);
        return st;
    }
    size_t dlen = strlen(dir);
    char *path = malloc(dlen + 32);
    char *tj = NULL, *cj = NULL;
    size_t tl = 0, cl = 0;
    if (!path) {
        st = l8_fail(&e, LLM8_STATUS_OUT_OF_MEMORY, "%s: out of memory", dir);
        goto done;
    }
    snprintf(path, dlen + 32, "%s/tokenizer.json", dir);
    if ((st = l8_read_file(path, &tj, &tl, &e))) goto done;
    /* tokenizer_config.json is optional: only its absence is tolerated, not a read error. */
    snprintf(path, dlen + 32, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        if ((st = l8_read_file(path, &cj, &cl, &e))) goto done;
    }
    st = l8_tokenizer_from_json(tj, tl, cj, cl, dir, out, &e);
done:
    free(path);
    free(tj);
    free(cj);
    if (st) l8_err_copy(&e, err, errcap);
    else if (err && errcap) err[0] = 0;
    return st;
}

int32_t llm8_tokenizer_n_vocab(const llm8_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int32_t llm8_tokenizer_bos(const llm8_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int32_t llm8_tokenizer_eos(const llm8_tokenizer *tok) { return tok ? tok->eos_id : -1; }

bool llm8_tokenizer_is_special(const llm8_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_vocab && (tok->flags[id] & L8_TOKF_SPECIAL);
}

const char *llm8_tokenizer_piece(const llm8_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab || !(tok->flags[id] & L8_TOKF_PIECE)) return NULL;
    return tok->pieces + tok->piece_off[id];
}

const char *l8_tokenizer_token_bytes(const llm8_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || id < 0 || id >= tok->n_vocab || !(tok->flags[id] & L8_TOKF_PIECE)) return NULL;
    *len = tok->dec_len[id];
    return tok->dec + tok->dec_off[id];
}

const char *l8_tokenizer_chat_template(const llm8_tokenizer *tok) { return tok ? tok->chat_template : NULL; }
const char *l8_tokenizer_bos_str(const llm8_tokenizer *tok) { return tok ? tok->bos_str : NULL; }
const char *l8_tokenizer_eos_str(const llm8_tokenizer *tok) { return tok ? tok->eos_str : NULL; }
bool l8_tokenizer_add_bos(const llm8_tokenizer *tok) { return tok && tok->add_bos; }

int32_t l8_tokenizer_find(const llm8_tokenizer *tok, const char *piece, size_t len) {
    if (!tok || (!piece && len)) return -1;
    /* Added tokens first: their content is what the text names, even when the vocab differs. */
    if (len > 0) {
        unsigned char b = (unsigned char)piece[0];
        for (uint32_t k = tok->added_first[b]; k < tok->added_first[b + 1]; k++)
            if (tok->added[k].len == len && memcmp(tok->added[k].content, piece, len) == 0) return tok->added[k].id;
    }
    return l8_strmap_get(&tok->vocab, piece ? piece : "", len);
}
