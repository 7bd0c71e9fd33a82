/* Tokenizer encode speed on English prose.
 * Usage: bench_tokenizer [MODEL_DIR...]   (default: models/llama3-tokenizer models/stories260k)
 * Run from the project root: the prose comes from tests/data/tokenizer/llama3_vectors.jsonl
 * (categories long_paragraphs and prose_en), repeated to about 1 MB. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getline */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm8.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Collects the prose records, then repeats them until the corpus reaches target bytes. */
static char *load_prose(const char *path, size_t target, size_t *out_len, size_t *longest_off, size_t *longest_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *one = NULL, *line = NULL;
    size_t one_len = 0, lcap = 0;
    ssize_t ll;
    *longest_len = 0;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        json_error_t je;
        json_t *r = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &je);
        const char *cat = r ? json_string_value(json_object_get(r, "category")) : NULL;
        if (cat && (!strcmp(cat, "long_paragraphs") || !strcmp(cat, "prose_en"))) {
            const json_t *t = json_object_get(r, "text");
            size_t n = json_string_length(t);
            one = realloc(one, one_len + n + 2);
            if (n > *longest_len) *longest_off = one_len, *longest_len = n;
            memcpy(one + one_len, json_string_value(t), n);
            memcpy(one + one_len + n, "\n\n", 2);
            one_len += n + 2;
        }
        json_decref(r);
    }
    free(line);
    fclose(f);
    if (!one_len) return NULL;
    size_t reps = (target + one_len - 1) / one_len;
    char *all = malloc(reps * one_len);
    for (size_t i = 0; i < reps; i++) memcpy(all + i * one_len, one, one_len);
    /* longest_off indexes the first copy, which starts at 0 like the original. */
    free(one);
    *out_len = reps * one_len;
    return all;
}

static int bench(const char *dir, const char *text, size_t len, size_t p_off, size_t p_len) {
    char err[512];
    llm8_tokenizer *tok;
    double t0 = now_s();
    if (llm8_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    double load_ms = 1e3 * (now_s() - t0);
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    enum { REPS = 7 };
    double mbs[REPS];
    for (int r = 0; r < REPS; r++) {
        t0 = now_s();
        if (llm8_tokenize(tok, text, len, 0, ids, cap, &n)) {
            fprintf(stderr, "bench_tokenizer: tokenize failed\n");
            return 1;
        }
        mbs[r] = (double)len / 1e6 / (now_s() - t0);
    }
    qsort(mbs, REPS, sizeof mbs[0], cmp_double);
    /* Latency of one long paragraph, the size of a typical prompt. */
    double best = 1e9;
    size_t pn = 0;
    for (int r = 0; r < 50; r++) {
        t0 = now_s();
        llm8_tokenize(tok, text + p_off, p_len, 0, ids, cap, &pn);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    printf("%-28s load %7.1f ms  encode %.2f MB in %zu tokens (%.2f bytes/token): median %.1f MB/s "
           "(min %.1f, max %.1f); %zu-byte paragraph: %.3f ms\n",
           dir, load_ms, (double)len / 1e6, n, (double)len / (double)n, mbs[REPS / 2], mbs[0], mbs[REPS - 1], p_len,
           1e3 * best);
    free(ids);
    llm8_tokenizer_free(tok);
    return 0;
}

int main(int argc, char **argv) {
    const char *defaults[] = {"models/llama3-tokenizer", "models/stories260k"};
    const char **dirs = argc > 1 ? (const char **)argv + 1 : defaults;
    int n_dirs = argc > 1 ? argc - 1 : 2;
    size_t len, p_off = 0, p_len = 0;
    char *text = load_prose("tests/data/tokenizer/llama3_vectors.jsonl", 1 << 20, &len, &p_off, &p_len);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: cannot read tests/data/tokenizer/llama3_vectors.jsonl (run from the "
                        "project root)\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n_dirs; i++) rc |= bench(dirs[i], text, len, p_off, p_len);
    free(text);
    return rc;
}
