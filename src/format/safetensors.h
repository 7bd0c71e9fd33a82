/*
 * Read-only access to safetensors files (one file, or the shards named by an HF index), mapped with
 * mmap; tensor data is never copied.
 *
 * Dtypes: llm8 computes with F32, F16 and BF16. Tensors of any other dtype (I64, F64, U8, F8_E4M3,
 * or a name this code has never heard of) do not stop a file from opening, because real model
 * folders carry such extras (e.g. an I64 position-id buffer). They are listed with l8_st_count /
 * l8_st_name, but l8_st_tensor and l8_st_find return NULL for them, and l8_st_get reports them as
 * LLM8_STATUS_UNSUPPORTED, naming the tensor and its dtype. So a model fails only when it needs one.
 *
 * Alignment: the format promises nothing about where a tensor's bytes start. Writers from the
 * reference library pad the header so the data section starts on an 8-byte boundary, and packed
 * tensors then usually land on multiples of their element size, but a hand-written file may put a
 * tensor anywhere. Consumers must read through memcpy (or check alignment) rather than cast the
 * data pointer to float* / uint16_t*.
 */
#ifndef L8_SAFETENSORS_H
#define L8_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "model/tensor.h"
#include "util/error.h"

typedef struct l8_safetensors l8_safetensors;

/* Opens DIR/model.safetensors.index.json and every shard its "weight_map" names when the index
 * exists, else DIR/model.safetensors. A path to a regular file is opened as with l8_st_open_file. */
llm8_status l8_st_open_dir(const char *dir, l8_safetensors **out, l8_err *e);
/* Opens one .safetensors file. */
llm8_status l8_st_open_file(const char *path, l8_safetensors **out, l8_err *e);
void l8_st_close(l8_safetensors *st);

/* Number of tensors of every dtype, in name order (the order of l8_st_name / l8_st_tensor). */
size_t l8_st_count(const l8_safetensors *st);
const char *l8_st_name(const l8_safetensors *st, size_t i);
/* NULL when tensor i has a dtype llm8 does not compute with. */
const l8_tensor *l8_st_tensor(const l8_safetensors *st, size_t i);
/* The dtype as written in the header ("F32", "I64", ...) and the file that holds tensor i. */
const char *l8_st_dtype(const l8_safetensors *st, size_t i);
const char *l8_st_file(const l8_safetensors *st, size_t i);
/* The index of a tensor by name, or SIZE_MAX. */
size_t l8_st_index(const l8_safetensors *st, const char *name);

/* NULL when the tensor is absent or of an unsupported dtype. */
const l8_tensor *l8_st_find(const l8_safetensors *st, const char *name);
/* Like l8_st_find, with a message: BAD_FORMAT "SOURCE: no tensor \"NAME\"" when absent, UNSUPPORTED
 * "FILE: tensor \"NAME\" has dtype I64; ..." when present but unusable. */
llm8_status l8_st_get(const l8_safetensors *st, const char *name, const l8_tensor **out, l8_err *e);

/* The path that was opened (the .safetensors file, or the index), for messages. */
const char *l8_st_source(const l8_safetensors *st);
/* Sum of the data bytes of all tensors, of every dtype. */
uint64_t l8_st_data_bytes(const l8_safetensors *st);

#endif
