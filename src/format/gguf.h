/*
 * GGUF (ggml's model file format, versions 2 and 3, little-endian): a validating reader over a
 * read-only map and a streaming writer.
 *
 * Layout: "GGUF", u32 version, u64 tensor count, u64 key/value count, the key/value pairs
 * (string key, u32 value type, value), the tensor infos (string name, u32 n_dims, u64 ne[n_dims],
 * u32 ggml type, u64 offset into the data section), padding to general.alignment (default 32),
 * then the data section. A string is a u64 byte count and that many bytes, no NUL.
 *
 * The reader checks every count, length, type, shape and offset at open, so that nothing read
 * later through the accessors can point outside the file. Numeric array data and tensor data
 * point into the file and may be unaligned for their element type: read them through memcpy.
 */
#ifndef L8_GGUF_H
#define L8_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Value types of the key/value section. */
typedef enum l8_gguf_vtype {
    L8_GGUF_U8 = 0,
    L8_GGUF_I8 = 1,
    L8_GGUF_U16 = 2,
    L8_GGUF_I16 = 3,
    L8_GGUF_U32 = 4,
    L8_GGUF_I32 = 5,
    L8_GGUF_F32 = 6,
    L8_GGUF_BOOL = 7,
    L8_GGUF_STRING = 8,
    L8_GGUF_ARRAY = 9,
    L8_GGUF_U64 = 10,
    L8_GGUF_I64 = 11,
    L8_GGUF_F64 = 12,
    L8_GGUF_VTYPE_COUNT
} l8_gguf_vtype;

/* ggml tensor types that llm8 names (the numbering is ggml's; gaps are retired types). */
enum {
    L8_GGML_F32 = 0,
    L8_GGML_F16 = 1,
    L8_GGML_Q4_0 = 2,
    L8_GGML_Q4_1 = 3,
    L8_GGML_Q5_0 = 6,
    L8_GGML_Q5_1 = 7,
    L8_GGML_Q8_0 = 8,
    L8_GGML_Q8_1 = 9,
    L8_GGML_Q2_K = 10,
    L8_GGML_Q3_K = 11,
    L8_GGML_Q4_K = 12,
    L8_GGML_Q5_K = 13,
    L8_GGML_Q6_K = 14,
    L8_GGML_Q8_K = 15,
    L8_GGML_I8 = 24,
    L8_GGML_I16 = 25,
    L8_GGML_I32 = 26,
    L8_GGML_I64 = 27,
    L8_GGML_F64 = 28,
    L8_GGML_BF16 = 30,
};

#define L8_GGUF_DEFAULT_ALIGNMENT 32
#define L8_GGUF_MAX_DIMS 4

/* "F32", "Q8_0", ...; NULL for a type this code does not know. */
const char *l8_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; false for an unknown type. */
bool l8_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* "uint32", "string", ...; "?" for an unknown value type. */
const char *l8_gguf_vtype_name(uint32_t vtype);

/* ------------------------------------------------------------------ reader */

typedef struct l8_gguf l8_gguf;

typedef struct l8_gguf_tensor {
    const char *name;     /* NUL-terminated copy */
    uint32_t type;        /* ggml type */
    uint32_t n_dims;      /* 1..4 */
    int64_t ne[4];        /* ne[0] varies fastest (columns); unused dims are 1 */
    const void *data;     /* inside the file; aligned to the file's alignment from its start */
    size_t nbytes;
    uint64_t offset;      /* from the start of the data section */
} l8_gguf_tensor;

/* Maps and validates a file. Statuses: IO_ERROR (open/map), BAD_FORMAT (corrupt or truncated),
 * UNSUPPORTED (version 1 or > 3, big-endian files). */
llm8_status l8_gguf_open(const char *path, l8_gguf **out, l8_err *e);
/* The same over caller memory, which must outlive the handle; name prefixes messages. */
llm8_status l8_gguf_open_memory(const void *data, size_t size, const char *name, l8_gguf **out, l8_err *e);
void l8_gguf_close(l8_gguf *g);

const char *l8_gguf_name(const l8_gguf *g); /* the path, for messages */
uint32_t l8_gguf_version(const l8_gguf *g);
size_t l8_gguf_alignment(const l8_gguf *g);
size_t l8_gguf_data_offset(const l8_gguf *g); /* start of the data section in the file */
const void *l8_gguf_base(const l8_gguf *g);   /* start of the file */

/* Key/value pairs, in file order. */
int64_t l8_gguf_n_kv(const l8_gguf *g);
int64_t l8_gguf_find_key(const l8_gguf *g, const char *key); /* index, or -1 */
const char *l8_gguf_key(const l8_gguf *g, int64_t i);         /* NUL-terminated */
uint32_t l8_gguf_kv_type(const l8_gguf *g, int64_t i);
/* Raw value bytes of a scalar kv (not string or array); NULL otherwise. */
const void *l8_gguf_kv_data(const l8_gguf *g, int64_t i);

/* Typed getters by key. A missing key leaves *out untouched and returns OK unless required
 * (then BAD_FORMAT naming file and key). A value of another type is BAD_FORMAT, except that
 * integers convert between widths and signedness when the value fits, and floats accept
 * f32/f64 and integers. */
llm8_status l8_gguf_get_u32(const l8_gguf *g, const char *key, bool required, uint32_t *out, l8_err *e);
llm8_status l8_gguf_get_i32(const l8_gguf *g, const char *key, bool required, int32_t *out, l8_err *e);
llm8_status l8_gguf_get_u64(const l8_gguf *g, const char *key, bool required, uint64_t *out, l8_err *e);
llm8_status l8_gguf_get_f32(const l8_gguf *g, const char *key, bool required, float *out, l8_err *e);
llm8_status l8_gguf_get_bool(const l8_gguf *g, const char *key, bool required, bool *out, l8_err *e);
/* *s points into the file (not NUL-terminated); *len is its byte count. */
llm8_status l8_gguf_get_str(const l8_gguf *g, const char *key, bool required, const char **s, size_t *len,
                            l8_err *e);
/* An array: its element type, count and, for numeric/bool elements, the packed raw data (for
 * string arrays *data is NULL: use l8_gguf_arr_str). *kv receives the kv index (or -1). */
llm8_status l8_gguf_get_arr(const l8_gguf *g, const char *key, bool required, int64_t *kv, uint32_t *elem_type,
                            uint64_t *n, const void **data, l8_err *e);
/* Element j of the string array at kv index i (O(1): offsets are indexed at open); NULL when i is
 * not a string array or j is out of range. */
const char *l8_gguf_arr_str(const l8_gguf *g, int64_t i, uint64_t j, size_t *len);

/* Tensors, in file order. */
int64_t l8_gguf_n_tensors(const l8_gguf *g);
const l8_gguf_tensor *l8_gguf_tensor_at(const l8_gguf *g, int64_t i);
const l8_gguf_tensor *l8_gguf_find_tensor(const l8_gguf *g, const char *name); /* NULL if absent */

/* ------------------------------------------------------------------ writer */

/* Streams a GGUF v3 file: KVs and tensor declarations are buffered (small), then begin_data
 * writes the header and the tensors' bytes follow in declaration order. Everything goes to
 * PATH.tmp, renamed to PATH by finish, so a failed or interrupted write never leaves a partial
 * file under the final name. Any error poisons the writer: later calls return the same status,
 * and l8_gguf_writer_free unlinks the temporary file unless finish succeeded. */
typedef struct l8_gguf_writer l8_gguf_writer;

/* alignment: a power of two (llm8 writes 64); it is also recorded as general.alignment. */
llm8_status l8_gguf_writer_create(const char *path, uint32_t alignment, l8_gguf_writer **out, l8_err *e);
llm8_status l8_gguf_add_u32(l8_gguf_writer *w, const char *key, uint32_t v, l8_err *e);
llm8_status l8_gguf_add_i32(l8_gguf_writer *w, const char *key, int32_t v, l8_err *e);
llm8_status l8_gguf_add_u64(l8_gguf_writer *w, const char *key, uint64_t v, l8_err *e);
llm8_status l8_gguf_add_f32(l8_gguf_writer *w, const char *key, float v, l8_err *e);
llm8_status l8_gguf_add_bool(l8_gguf_writer *w, const char *key, bool v, l8_err *e);
llm8_status l8_gguf_add_str(l8_gguf_writer *w, const char *key, const char *s, size_t len, l8_err *e);
llm8_status l8_gguf_add_arr_i32(l8_gguf_writer *w, const char *key, const int32_t *v, size_t n, l8_err *e);
llm8_status l8_gguf_add_arr_f32(l8_gguf_writer *w, const char *key, const float *v, size_t n, l8_err *e);
/* lens may be NULL: strings are then NUL-terminated. */
llm8_status l8_gguf_add_arr_str(l8_gguf_writer *w, const char *key, const char *const *s, const size_t *lens,
                                size_t n, l8_err *e);
/* Declares the next tensor; nbytes must equal what type and ne imply. */
llm8_status l8_gguf_add_tensor(l8_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                               const int64_t *ne, uint64_t nbytes, l8_err *e);
llm8_status l8_gguf_begin_data(l8_gguf_writer *w, l8_err *e);
/* Appends bytes to the current tensor, moving on to the next once one is complete. */
llm8_status l8_gguf_write_data(l8_gguf_writer *w, const void *p, size_t n, l8_err *e);
/* Checks that every tensor got its bytes, flushes, fsyncs and renames PATH.tmp to PATH. */
llm8_status l8_gguf_writer_finish(l8_gguf_writer *w, l8_err *e);
/* Frees; unlinks the temporary file when finish has not succeeded (that is the abort). */
void l8_gguf_writer_free(l8_gguf_writer *w);

#endif
