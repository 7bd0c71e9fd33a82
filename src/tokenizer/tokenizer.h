/* Internal tokenizer API: loading from JSON text (files or strings embedded in other formats)
 * and the configuration the chat and generation code needs. */
#ifndef L8_TOKENIZER_H
#define L8_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm8.h"
#include "util/error.h"

/* Builds a tokenizer from the text of tokenizer.json and, when cfg_json is not NULL, of
 * tokenizer_config.json. name (e.g. the model folder) prefixes error messages. */
llm8_status l8_tokenizer_from_json(const char *tok_json, size_t tok_len, const char *cfg_json, size_t cfg_len,
                                   const char *name, llm8_tokenizer **out, l8_err *e);

/* tokenizer_config.json "chat_template", or NULL. */
const char *l8_tokenizer_chat_template(const llm8_tokenizer *tok);
/* The BOS / EOS token strings ("<s>", "<|eot_id|>"), or NULL. */
const char *l8_tokenizer_bos_str(const llm8_tokenizer *tok);
const char *l8_tokenizer_eos_str(const llm8_tokenizer *tok);
/* Whether LLM8_TOKENIZE_ADD_BOS really adds BOS. */
bool l8_tokenizer_add_bos(const llm8_tokenizer *tok);
/* The id whose vocabulary or added-token string is exactly piece[0..len), or -1. */
int32_t l8_tokenizer_find(const llm8_tokenizer *tok, const char *piece, size_t len);
/* The bytes token id decodes to (byte-level mapping undone, "▁" -> " ", <0xXX> -> byte);
 * *len receives the count. NULL for a bad id. */
const char *l8_tokenizer_token_bytes(const llm8_tokenizer *tok, int32_t id, size_t *len);

#endif
