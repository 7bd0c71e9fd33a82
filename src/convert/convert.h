/* The converter: any source to one mmap-able llm8 file (GGUF v3; docs/FORMAT.md). */
#ifndef L8_CONVERT_H
#define L8_CONVERT_H

#include "convert/source.h"
#include "quant/quant.h"

#define L8_FORMAT_VERSION 1

typedef struct l8_convert_progress {
    int32_t index, count;  /* tensor index (1-based) of count */
    const char *name;
    const char *type;      /* "q8", "q4", "f32", ... */
    double bytes_written;  /* of this tensor */
    double seconds;        /* for this tensor */
} l8_convert_progress;

typedef struct l8_convert_report {
    double seconds;
    uint64_t file_bytes;
    uint64_t bytes_by_dtype[L8_DTYPE_COUNT]; /* tensor data (scales included) per storage type */
    int32_t n_tensors;
} l8_convert_report;

typedef void (*l8_convert_progress_fn)(void *user, const l8_convert_progress *p);

llm8_status l8_convert(l8_source *src, const char *out_path, l8_qtype qtype, l8_convert_progress_fn progress,
                       void *user, l8_convert_report *report, l8_err *e);

/* The file's tensor names (GGUF/llama.cpp style): "token_embd", "blk.3.attn_q", ... into buf. */
void l8_role_name(l8_role role, int32_t layer, char *buf, size_t cap);

#endif
