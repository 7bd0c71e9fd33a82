/* The tokenizer's representation, shared by the loader, the encoder and the decoder. */
#ifndef L8_TOK_IMPL_H
#define L8_TOK_IMPL_H

#include "tokenizer/bpe.h"
#include "tokenizer/hashmap.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

enum {
    L8_TOKF_PIECE = 1,   /* the id has a vocabulary or added-token string */
    L8_TOKF_ADDED = 2,   /* an added token (matched in text before the model runs) */
    L8_TOKF_SPECIAL = 4, /* an added token marked special (skipped by skip_special) */
};

typedef struct l8_added_token {
    const char *content; /* points into the piece arena */
    uint32_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word;
} l8_added_token;

typedef enum l8_norm_kind { L8_NORM_PREPEND, L8_NORM_REPLACE } l8_norm_kind;

typedef struct l8_norm_step {
    l8_norm_kind kind;
    char *a, *b; /* PREPEND: a; REPLACE: pattern a -> content b */
    size_t a_len, b_len;
} l8_norm_step;

typedef enum l8_pre_kind {
    L8_PRE_REGEX,        /* Split(Regex, Isolated) or ByteLevel(use_regex) */
    L8_PRE_PREFIX_SPACE, /* ByteLevel(add_prefix_space): a space before text not starting with one */
    L8_PRE_METASPACE,    /* Metaspace: ' ' -> replacement, optional prefix, optional split */
} l8_pre_kind;

typedef enum l8_prepend_scheme { L8_PREPEND_ALWAYS, L8_PREPEND_FIRST, L8_PREPEND_NEVER } l8_prepend_scheme;

typedef struct l8_pre_step {
    l8_pre_kind kind;
    l8_regex *re;
    char repl[8]; /* METASPACE replacement character, UTF-8 */
    size_t repl_len;
    l8_prepend_scheme scheme;
    bool split;
} l8_pre_step;

#define L8_MAX_NORM 8
#define L8_MAX_PRE 8

struct llm8_tokenizer {
    char *name;
    int32_t n_vocab;

    /* Token strings as stored, NUL-terminated, in one arena. */
    char *pieces;
    uint32_t *piece_off, *piece_len;
    uint8_t *flags;
    /* What each id decodes to, in a second arena. */
    char *dec;
    uint32_t *dec_off, *dec_len;

    l8_strmap vocab; /* model vocabulary string -> id */
    l8_pairmap merges;

    l8_added_token *added; /* sorted by content, so equal first bytes are adjacent */
    size_t n_added;
    uint32_t added_first[257]; /* added[added_first[b] .. added_first[b+1]) start with byte b */

    /* model */
    bool byte_level; /* pieces are in GPT-2's byte-to-unicode alphabet */
    bool byte_fallback, fuse_unk, ignore_merges;
    bool split_words; /* words may be merged separately (see model_encode in encode.c) */
    int32_t unk_id;
    int32_t byte_ids[256]; /* byte-level: id of each mapped byte; byte_fallback: id of <0xXX>; or -1 */

    l8_norm_step norm[L8_MAX_NORM];
    int n_norm;
    l8_pre_step pre[L8_MAX_PRE];
    int n_pre;

    /* decoder */
    int strip_start; /* how many leading spaces to remove from the start of a decoded stream */

    /* tokenizer_config.json and the post-processor */
    bool add_bos;
    int32_t bos_id, eos_id;
    char *bos_str, *eos_str, *chat_template;
};

#endif
