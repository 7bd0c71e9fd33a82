/* Rebuilds Hugging Face tokenizer.json / tokenizer_config.json text from the tokenizer.ggml.* keys
 * of a llama.cpp GGUF file, so that llm8's one tokenizer loader serves GGUF input too. */
#ifndef L8_GGUF_TOKENIZER_H
#define L8_GGUF_TOKENIZER_H

#include <stddef.h>

#include "format/gguf.h"
#include "util/error.h"

/*
 * Two vocabularies are understood:
 * - "gpt2" with pre "llama-bpe" (Llama 3): byte-level BPE with the Llama 3 split regex,
 *   ignore_merges, tokenizer.ggml.merges; control (type 3) and user-defined (type 4) tokens become
 *   added_tokens (special for control).
 * - "llama" (SentencePiece): BPE with byte fallback over tokens / scores / token_type, the
 *   "▁" normalizer (unless tokenizer.ggml.add_space_prefix is false) and the Llama 2 decoder.
 *   The merges are derived from the vocabulary and the scores the way Hugging Face's
 *   SentencePiece converter derives them (every split of a piece into two vocabulary pieces,
 *   stable-sorted by the piece's score). A file that carries only placeholder scores (all equal,
 *   as llama.cpp writes when it converts from tokenizer.json without tokenizer.model) yields the
 *   merges in vocabulary order, which is the score order of SentencePiece-converted vocabularies.
 * The config holds bos_token, eos_token, unk_token, add_bos_token (tokenizer.ggml.add_bos_token,
 * default true as in llama.cpp for both) and chat_template (tokenizer.chat_template) when present.
 * Both outputs are NUL-terminated heap strings. Statuses: BAD_FORMAT for missing or inconsistent
 * keys, UNSUPPORTED for another tokenizer model or pre-tokenizer.
 */
llm8_status l8_gguf_tokenizer_json(const l8_gguf *g, char **tok_json, size_t *tok_len, char **cfg_json,
                                   size_t *cfg_len, l8_err *e);

#endif
