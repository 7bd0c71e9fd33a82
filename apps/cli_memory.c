/* --max-memory and the start-up memory check shared by run, chat, perplexity and bench (and the
 * server): refuse, before any session allocates, a model and context that would not fit, and
 * say what would. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

bool cli_size(const char *opt, const char *val, uint64_t *out) {
    if (!val) return false;
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    double mul = 1;
    if (end != val) {
        switch (*end) { /* binary units, as free(1) and /proc/meminfo count */
        case 'k': case 'K': mul = 1024.0, end++; break;
        case 'm': case 'M': mul = 1024.0 * 1024, end++; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024, end++; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024, end++; break;
        }
        if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (errno || end == val || *end || !(v > 0) || !(v * mul < 1.8e19)) {
        fprintf(stderr, "llm8: %s expects a size such as 512M, 4G or 1.5GiB, got '%s'\n", opt, val);
        return false;
    }
    *out = (uint64_t)(v * mul);
    return true;
}

/* "1.25 GB", "512.00 MB", "900 KB", in powers of 1024 as the option reads them; two decimals, so
 * that a need just above the limit does not print as the same number. */
static const char *human(uint64_t b, char *buf, size_t cap) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GB", b / 1073741824.0);
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.2f MB", b / 1048576.0);
    else snprintf(buf, cap, "%.0f KB", ceil(b / 1024.0));
    return buf;
}

/* A number from a one-value file (cgroup limits), or false ("max", absent). */
static bool read_u64(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    unsigned long long v;
    bool ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    if (ok) *out = v;
    return ok;
}

/* What this process may still allocate: MemAvailable, lowered by a cgroup's memory limit (a
 * container sees the host's /proc/meminfo). 0 when unknown. */
static uint64_t available_memory(const char **what) {
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) avail = (uint64_t)kb * 1024;
        fclose(f);
    }
    *what = "the machine's available memory";
    uint64_t lim, used;
    if ((read_u64("/sys/fs/cgroup/memory.max", &lim) && read_u64("/sys/fs/cgroup/memory.current", &used)) ||
        (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", &lim) &&
         read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes", &used))) {
        uint64_t left = lim > used ? lim - used : 0;
        if (lim < (1ull << 60) && (avail == 0 || left < avail)) {
            avail = left;
            *what = "the memory left under this cgroup's limit";
        }
    }
    return avail;
}

/* The sum over models of weights plus n_sessions sessions of sp each, at context n_ctx. */
static bool total_at(llm8_model *const *models, int n_models, const llm8_session_params *sp, int n_sessions,
                     int32_t n_ctx, llm8_memory_estimate *sum) {
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < n_models; i++) {
        llm8_session_params p = *sp;
        p.n_ctx = n_ctx;
        llm8_memory_estimate e;
        if (llm8_session_memory_estimate(models[i], &p, &e)) return false;
        sum->n_ctx = e.n_ctx;
        sum->weights += e.weights;
        sum->kv_cache += (uint64_t)n_sessions * e.kv_cache;
        sum->scratch += (uint64_t)n_sessions * e.scratch;
    }
    sum->total = sum->weights + sum->kv_cache + sum->scratch;
    return true;
}

bool cli_memory_check(llm8_model *const *models, int n_models, const llm8_session_params *sp, int n_sessions,
                      uint64_t max_memory) {
    llm8_memory_estimate need;
    if (!total_at(models, n_models, sp, n_sessions, sp->n_ctx, &need)) return true; /* session_create will say why */
    /* the budget and the machine both limit; the tighter one is the one to name */
    const char *what = "--max-memory", *mw;
    uint64_t limit = max_memory, avail = available_memory(&mw);
    if (avail && (!limit || avail < limit)) limit = avail, what = mw;
    if (!limit || need.total <= limit) return true;

    /* the largest context that fits: the estimate grows with n_ctx, so bisect */
    int32_t lo = 0, hi = need.n_ctx;
    llm8_memory_estimate e;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo + 1) / 2;
        if (total_at(models, n_models, sp, n_sessions, mid, &e) && e.total <= limit) lo = mid;
        else hi = mid - 1;
    }
    char a[32], b[32], c[32], d[32], l[32];
    char fits[96];
    if (lo >= 1) snprintf(fits, sizeof fits, "a context of at most %d tokens fits (-c %d)", lo, lo);
    else snprintf(fits, sizeof fits, "not even a context of 1 token fits");
    human(need.total, a, sizeof a);
    human(limit, l, sizeof l);
    if (!strcmp(a, l)) { /* a few KB apart: the rounded figures would look equal */
        snprintf(a, sizeof a, "%llu bytes", (unsigned long long)need.total);
        snprintf(l, sizeof l, "%llu bytes", (unsigned long long)limit);
    }
    fprintf(stderr, "llm8: not enough memory: %s needs %s (weights %s, KV cache %s and scratch %s for %d tokens%s) "
                    "but %s is %s; %s\n",
            n_models > 1 ? "these models" : "the model", a,
            human(need.weights, b, sizeof b), human(need.kv_cache, c, sizeof c), human(need.scratch, d, sizeof d),
            need.n_ctx, n_sessions > 1 ? " each" : "", what, l, fits);
    return false;
}
