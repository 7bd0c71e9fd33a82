/* Read-only memory maps of whole files (model weights are never copied). */
#ifndef L8_MAPFILE_H
#define L8_MAPFILE_H

#include <stddef.h>

#include "util/error.h"

typedef struct l8_map {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} l8_map;

llm8_status l8_map_open(l8_map *m, const char *path, l8_err *e);
void l8_map_close(l8_map *m);

/* Reads a whole (small) file into a NUL-terminated heap buffer; *len excludes the NUL. */
llm8_status l8_read_file(const char *path, char **out, size_t *len, l8_err *e);

/* dir + "/" + name in a new heap string (trailing slashes of dir folded); NULL if out of memory. */
char *l8_path_join(const char *dir, const char *name);

#endif
