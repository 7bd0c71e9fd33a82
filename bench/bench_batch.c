/* Continuous batching at the engine: aggregate decode tokens/s of N streams advanced together by
 * l8_batch_eval (one pass over the weights per step), for each N given. llm8 serve runs the
 * same loop; this isolates it from HTTP.
 * usage: bench_batch MODEL [-t THREADS] [-s 1,2,4,8] [-n STEPS] [-r REPEATS] [--json] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm8.h"
#include "runtime/batch.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Median seconds per decode step of n streams (prompts prefilled first, outside the timing). */
static double run(llm8_model *m, l8_batch *b, int n, int steps, int repeats) {
    enum { PROMPT = 16 };
    int32_t nv = llm8_model_get_info(m)->n_vocab;
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = PROMPT + steps + 1;
    sp.n_threads = 1;
    llm8_session **s = calloc((size_t)n, sizeof *s);
    l8_batch_item *items = calloc((size_t)n, sizeof *items);
    int32_t *next = calloc((size_t)n, sizeof *next);
    float *logits = malloc((size_t)n * nv * sizeof(float));
    double *t = malloc((size_t)repeats * sizeof *t);
    char err[256];
    double result = -1;
    for (int r = 0; r < repeats; r++) {
        for (int i = 0; i < n; i++) {
            if (!s[i] && llm8_session_create(m, &sp, &s[i], err, sizeof err)) goto fail;
            llm8_session_reset(s[i]);
            int32_t prompt[PROMPT];
            for (int j = 0; j < PROMPT; j++) prompt[j] = (int32_t)((i * 7919 + j * 104729) % nv); /* distinct */
            items[i] = (l8_batch_item){s[i], prompt, PROMPT, logits + (size_t)i * nv};
            if (l8_batch_eval(b, &items[i], 1, err, sizeof err)) goto fail;
            next[i] = argmax(logits + (size_t)i * nv, nv);
        }
        double t0 = now_s();
        for (int step = 0; step < steps; step++) {
            for (int i = 0; i < n; i++) items[i] = (l8_batch_item){s[i], &next[i], 1, logits + (size_t)i * nv};
            if (l8_batch_eval(b, items, n, err, sizeof err)) goto fail;
            for (int i = 0; i < n; i++) next[i] = argmax(logits + (size_t)i * nv, nv);
        }
        t[r] = (now_s() - t0) / steps;
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    result = t[repeats / 2];
fail:
    if (result < 0) fprintf(stderr, "bench_batch: %s\n", err);
    for (int i = 0; i < n; i++) llm8_session_free(s[i]);
    free(s), free(items), free(next), free(logits), free(t);
    return result;
}

int main(int argc, char **argv) {
    const char *path = NULL, *list = "1,2,4,8";
    int threads = 0, steps = 32, repeats = 3;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) list = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else {
            fprintf(stderr, "usage: bench_batch MODEL [-t THREADS] [-s 1,2,4,8] [-n STEPS] [-r REPEATS] [--json]\n");
            return 2;
        }
    }
    if (!path || steps < 1 || repeats < 1) {
        fprintf(stderr, "usage: bench_batch MODEL [-t THREADS] [-s 1,2,4,8] [-n STEPS] [-r REPEATS] [--json]\n");
        return 2;
    }
    int counts[16], n_counts = 0, most = 1;
    for (const char *p = list; *p && n_counts < 16;) {
        counts[n_counts] = atoi(p);
        if (counts[n_counts] < 1 || counts[n_counts] > 64) {
            fprintf(stderr, "bench_batch: -s: stream counts between 1 and 64\n");
            return 2;
        }
        if (counts[n_counts] > most) most = counts[n_counts];
        n_counts++;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    char err[512];
    llm8_model *m;
    if (llm8_model_load(path, &m, err, sizeof err)) {
        fprintf(stderr, "bench_batch: %s\n", err);
        return 1;
    }
    l8_batch *b;
    if (l8_batch_create(m, 16 + steps + 1, most < 16 ? 16 : most, threads, &b, err, sizeof err)) {
        fprintf(stderr, "bench_batch: %s\n", err);
        llm8_model_free(m);
        return 1;
    }
    double single = 0;
    int rc = 0;
    if (json) printf("{\"model\": \"%s\", \"steps\": %d, \"repeats\": %d, \"streams\": [", path, steps, repeats);
    for (int c = 0; c < n_counts; c++) {
        double step = run(m, b, counts[c], steps, repeats);
        if (step <= 0) {
            rc = 1;
            break;
        }
        double agg = counts[c] / step;
        if (counts[c] == 1) single = agg;
        if (json)
            printf("%s{\"n\": %d, \"step_ms\": %.2f, \"aggregate_tok_s\": %.2f, \"per_stream_tok_s\": %.2f}",
                   c ? ", " : "", counts[c], step * 1e3, agg, agg / counts[c]);
        else
            printf("streams %2d: step %7.2f ms  aggregate %7.2f tok/s  per stream %6.2f tok/s%s\n", counts[c],
                   step * 1e3, agg, agg / counts[c], single > 0 ? "" : "");
        if (!json && single > 0 && counts[c] > 1) printf("            %.2fx the single stream\n", agg / single);
    }
    if (json) printf("]}\n");
    l8_batch_free(b);
    llm8_model_free(m);
    return rc;
}
