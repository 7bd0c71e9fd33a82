/* Reading an llm8 model file (GGUF v3 written by llm8 convert; docs/FORMAT.md). */
#ifndef L8_LLM8_FILE_H
#define L8_LLM8_FILE_H

#include "format/gguf.h"
#include "model/model.h"
#include "quant/rotate.h"

typedef struct l8_llm8_file {
    l8_gguf *gguf;            /* the mapping; the weights point into it */
    const float *rope_freqs;  /* (head_dim / 2) or NULL */
    bool rotated;             /* weights rotated at conversion (quant/rotate.h) */
    l8_rot rot_embd, rot_ffn; /* views into the file when rotated */
    const float *final_norm;  /* rotated: the final norm weight folded into the head (n_embd) */
    const char *tokenizer_json, *tokenizer_config_json; /* inside the file, not NUL-terminated */
    size_t tokenizer_json_len, tokenizer_config_json_len;
} l8_llm8_file;

/* Opens and validates the file, fills info (dtype: the quantization type's name) and binds w. */
llm8_status l8_llm8_open(const char *path, l8_llm8_file *f, llm8_model_info *info, l8_weights *w, l8_err *e);
void l8_llm8_close(l8_llm8_file *f);

#endif
