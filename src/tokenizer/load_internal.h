/* Loader pieces split across files: the model (load.c) and the text pipeline (pipeline.c). */
#ifndef L8_TOK_LOAD_INTERNAL_H
#define L8_TOK_LOAD_INTERNAL_H

#include <jansson.h>

#include "tokenizer/tok_impl.h"

/* Reads "normalizer" and "pre_tokenizer" of tokenizer.json into tok->norm / tok->pre and sets
 * tok->byte_level when a ByteLevel pre-tokenizer is present. file names tokenizer.json. */
llm8_status l8_tok_load_pipeline(llm8_tokenizer *tok, const json_t *root, const char *file, l8_err *e);

/* Reads "decoder" and fills tok->dec / dec_off / dec_len for every id (pieces must be set). */
llm8_status l8_tok_load_decoder(llm8_tokenizer *tok, const json_t *root, const char *file, l8_err *e);

/* Frees everything the tokenizer owns (safe on a partly built one). */
void l8_tok_destroy(llm8_tokenizer *tok);

/* A JSON string's bytes and length (NUL bytes allowed); false when v is not a string. */
static inline bool l8_jstr(const json_t *v, const char **s, size_t *len) {
    if (!json_is_string(v)) return false;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return true;
}

#endif
