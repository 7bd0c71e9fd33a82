#include "util/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static llm8_status open_regular(const char *path, int *fd, size_t *size, l8_err *e) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: not a regular file", path);
    }
    *size = (size_t)st.st_size;
    return LLM8_STATUS_OK;
}

llm8_status l8_map_open(l8_map *m, const char *path, l8_err *e) {
    int fd;
    size_t size;
    m->data = NULL;
    m->size = 0;
    llm8_status st = open_regular(path, &fd, &size, e);
    if (st) return st;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            close(fd);
            return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: mmap failed: %s", path, strerror(err));
        }
        m->data = p;
    }
    close(fd);
    m->size = size;
    return LLM8_STATUS_OK;
}

void l8_map_close(l8_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

llm8_status l8_read_file(const char *path, char **out, size_t *len, l8_err *e) {
    int fd;
    size_t size;
    *out = NULL;
    llm8_status st = open_regular(path, &fd, &size, e);
    if (st) return st;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return l8_fail(e, LLM8_STATUS_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return l8_fail(e, LLM8_STATUS_IO_ERROR, "%s: read failed", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = 0;
    *out = buf;
    if (len) *len = size;
    return LLM8_STATUS_OK;
}

char *l8_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *p = malloc(a + 1 + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}
