/* Helpers shared by the fuzz targets (header-only: each target is one translation unit, built
 * both as a libFuzzer binary and as a plain corpus replayer; see CMakeLists.txt here).
 *
 * Several loaders take a path rather than bytes, so targets write their input to files in a
 * private scratch folder (on /dev/shm when it exists, to keep each execution cheap). Inputs that
 * stand for several files are split at FZ_SEP, an ASCII line that is easy to write in a seed. */
#ifndef LLM8_FUZZ_UTIL_H
#define LLM8_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LLM8_ROOT_DIR
#define LLM8_ROOT_DIR "."
#endif

#define FZ_SEP "\n--8<--\n"

static char fz_dir[256];
static char fz_names[16][64]; /* what fz_write created, to remove at exit */
static int fz_n_names;

static inline void fz_cleanup(void) {
    char p[512];
    for (int i = 0; i < fz_n_names; i++) {
        snprintf(p, sizeof p, "%.255s/%.63s", fz_dir, fz_names[i]);
        unlink(p);
    }
    rmdir(fz_dir);
}

/* Creates the scratch folder once; aborts if it cannot (the target could test nothing). */
static inline const char *fz_scratch(void) {
    if (fz_dir[0]) return fz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(fz_dir, sizeof fz_dir, "%s/llm8-fuzz-XXXXXX", base);
    if (!mkdtemp(fz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fz_cleanup);
    return fz_dir;
}

/* The path of NAME in the scratch folder, in one of four rotating static buffers. */
static inline const char *fz_path(const char *name) {
    static char buf[4][512];
    static int next;
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0], "%.255s/%.200s", fz_scratch(), name);
    return b;
}

/* Writes n bytes to NAME in the scratch folder (replacing it); aborts on failure, which would
 * otherwise look like a loader bug. */
static inline const char *fz_write(const char *name, const void *p, size_t n) {
    const char *path = fz_path(name);
    int known = 0;
    for (int i = 0; i < fz_n_names && !known; i++) known = !strcmp(fz_names[i], name);
    if (!known && fz_n_names < 16) snprintf(fz_names[fz_n_names++], sizeof fz_names[0], "%s", name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

static inline void fz_remove(const char *name) { unlink(fz_path(name)); }

/* Splits data at the first FZ_SEP: part 0 before it, part 1 after (empty, *found false, when the
 * separator is absent). */
static inline void fz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *al, const uint8_t **b, size_t *bl,
                     int *found) {
    size_t sl = sizeof FZ_SEP - 1;
    *a = data, *al = size, *b = data + size, *bl = 0, *found = 0;
    for (size_t i = 0; i + sl <= size; i++)
        if (data[i] == '\n' && memcmp(data + i, FZ_SEP, sl) == 0) {
            *al = i;
            *b = data + i + sl;
            *bl = size - i - sl;
            *found = 1;
            return;
        }
}

/* A heap copy of exactly n bytes plus a NUL after them: an over-read of the n bytes still hits
 * the NUL or the redzone, and string functions see a terminated buffer. */
static inline char *fz_strndup(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static volatile unsigned fz_sink;

/* Reads every byte so that ASan checks the whole range a pointer claims. */
static inline void fz_touch(const void *p, size_t n) {
    const unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    fz_sink += s;
}

/* With LLM8_FUZZ_VERBOSE set, says what an input reached (to check that seeds go deep). */
#define FZ_LOG(...)                                                                                             \
    do {                                                                                                        \
        static int fz_verbose = -1;                                                                             \
        if (fz_verbose < 0) fz_verbose = getenv("LLM8_FUZZ_VERBOSE") != NULL;                                   \
        if (fz_verbose) {                                                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                       \
            fprintf(stderr, "\n");                                                                              \
        }                                                                                                       \
    } while (0)

/* A broken invariant: print it and abort, so that libFuzzer keeps the input. */
#define FZ_CHECK(cond, ...)                                                                                     \
    do {                                                                                                        \
        if (!(cond)) {                                                                                          \
            fprintf(stderr, "fuzz invariant broken at %s:%d: ", __FILE__, __LINE__);                            \
            fprintf(stderr, __VA_ARGS__);                                                                       \
            fprintf(stderr, "\n");                                                                              \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

#endif
