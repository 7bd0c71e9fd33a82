/* llm8 bench: decode and prefill speed beside the machine's limits measured in the same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "kernels/kernels.h"
#include "runtime/probe.h"
#include "runtime/threadpool.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The probes' 1 GiB buffer must not count as the model's peak RSS: Linux resets the peak
 * (VmHWM) when "5" is written to clear_refs, and reports it in /proc/self/status. Elsewhere the
 * process's lifetime peak (getrusage) is what there is. */
static void peak_rss_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) fputs("5", f), fclose(f);
}

static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    if (kb >= 0) return kb / 1024.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void usage(void) {
    printf("usage: llm8 bench -m MODEL [-t N] [-p 64,512] [-n 128] [-r 3] [--json] [--max-memory SIZE]\n"
           "  decode tokens/s (-n tokens from an empty context), time to first token of a 64-token\n"
           "  prompt, prefill tokens/s for each -p length, file size and peak RSS: medians of -r\n"
           "  repeats, beside the read bandwidth and int8 dot-product peak measured in the same run.\n");
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL, *plist = "64,512";
    long threads = 0, n_gen = 128, reps = 3;
    uint64_t max_memory = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "-m")) {
            if (!(path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-t")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "-p")) {
            if (!(plist = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-n")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1 << 20, &n_gen)) return 2;
        } else if (!strcmp(a, "-r")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1000, &reps)) return 2;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--max-memory")) {
            if (!cli_size(a, cli_value(argc, argv, &i), &max_memory)) return 2;
        } else {
            fprintf(stderr, "llm8 bench: unknown option '%s'\n", a);
            return 2;
        }
    }
    long plens[8];
    int np = 0;
    for (const char *s = plist; *s && np < 8;) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 20 || (*end && *end != ',')) {
            fprintf(stderr, "llm8 bench: -p expects lengths like 64,512, got '%s'\n", plist);
            return 2;
        }
        plens[np++] = v;
        s = *end ? end + 1 : end;
    }
    if (!path) path = cli_default_model();

    char err[512];
    llm8_model *model = NULL;
    if (llm8_model_load(path, &model, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        return 1;
    }
    const llm8_model_info *info = llm8_model_get_info(model);
    long maxp = 64;
    for (int i = 0; i < np; i++) maxp = plens[i] > maxp ? plens[i] : maxp;
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = (int32_t)(maxp + n_gen + 1 < info->n_ctx_train ? maxp + n_gen + 1 : info->n_ctx_train);
    sp.n_threads = (int32_t)threads;
    llm8_session *s = NULL;
    if (!cli_memory_check(&model, 1, &sp, 1, max_memory)) {
        llm8_model_free(model);
        return 1;
    }
    if (llm8_session_create(model, &sp, &s, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        llm8_model_free(model);
        return 1;
    }
    int nth = threads > 0 ? (int)threads : l8_default_threads(); /* the sessions' count */
    l8_pool *pool = l8_pool_create(nth);
    double bw = l8_probe_read_bandwidth(pool, (size_t)1 << 30, 5);
    double peak = l8_probe_int8_peak(pool, 0.3);
    /* the amx level prefills on AMX tiles: their roof too, or the vector one alone would read
     * as more than 100% */
    double amx = l8_kernels_get()->isa == L8_ISA_AMX ? l8_probe_amx_peak(pool, 0.3) : 0;
    l8_pool_free(pool);
    peak_rss_reset();

    int32_t *ids = malloc((size_t)(maxp + 1) * sizeof(int32_t));
    uint64_t seed = 12345;
    for (long i = 0; i <= maxp; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % (uint64_t)info->n_vocab);
    }
    double *t = malloc((size_t)reps * sizeof(double)), prefill_tps[8], ttft = 0, decode_tps;
    for (int pi = -1; pi < np; pi++) { /* pi = -1: the 64-token time to first token */
        long len = pi < 0 ? 64 : plens[pi];
        if (len > sp.n_ctx) len = sp.n_ctx;
        for (long r = 0; r < reps; r++) {
            llm8_session_reset(s);
            double t0 = now_s();
            llm8_session_eval(s, ids, (size_t)len, NULL, false);
            t[r] = now_s() - t0;
        }
        double med = median(t, (int)reps);
        if (pi < 0) ttft = med;
        else prefill_tps[pi] = len / med;
    }
    for (long r = 0; r < reps; r++) {
        llm8_session_reset(s);
        llm8_session_eval(s, ids, 1, NULL, false);
        double t0 = now_s();
        for (long i = 0; i < n_gen && llm8_session_n_past(s) < llm8_session_n_ctx(s); i++)
            llm8_session_eval(s, &ids[i % maxp], 1, NULL, false);
        t[r] = n_gen / (now_s() - t0);
    }
    decode_tps = median(t, (int)reps);
    double rss_mb = peak_rss_mb(), model_mb = info->weight_bytes / 1e6;
    double decode_gbs = decode_tps * (double)info->decode_bytes / 1e9;
    /* 2 ops per multiply-add, over the weights every token meets (all but the embedding table) */
    double ops_per_token = 2.0 * (double)info->decode_params;
    double prefill_gops = (np ? prefill_tps[np - 1] : 0) * ops_per_token / 1e9;

    if (json) {
        printf("{\"model\":\"%s\",\"quant\":\"%s\",\"isa\":\"%s\",\"threads\":%d,\"model_mb\":%.1f,\"rss_mb\":%.1f,"
               "\"decode_tok_s\":%.3f,\"ttft_s\":%.4f,\"prefill_tok_s\":{",
               path, info->dtype, l8_kernels_get()->name, nth, model_mb, rss_mb, decode_tps, ttft);
        for (int i = 0; i < np; i++) printf("%s\"%ld\":%.2f", i ? "," : "", plens[i], prefill_tps[i]);
        printf("},\"bandwidth_gbs\":%.2f,\"decode_gbs\":%.2f,\"decode_bandwidth_pct\":%.1f,\"int8_peak_gops\":%.1f,"
               "\"prefill_gops\":%.1f,\"prefill_peak_pct\":%.1f",
               bw, decode_gbs, 100 * decode_gbs / bw, peak, prefill_gops, 100 * prefill_gops / peak);
        if (amx > 0) printf(",\"amx_peak_gops\":%.1f,\"prefill_amx_pct\":%.1f", amx, 100 * prefill_gops / amx);
        printf("}\n");
    } else {
        printf("model %s (%s, %.1f MB), %d threads, kernels %s\n", path, info->dtype, model_mb, nth,
               l8_kernels_get()->name);
        printf("machine: read bandwidth %.1f GB/s (%s), int8 peak %.0f GOPS (%s)\n", bw, l8_probe_read_kernel(), peak,
               l8_probe_int8_kernel());
        if (amx > 0) printf("         AMX-INT8 tile peak %.0f GOPS (the amx kernels' prefill roof)\n", amx);
        printf("decode      %8.2f tok/s  %6.1f ms/token  %6.1f GB/s = %5.1f%% of the measured bandwidth\n",
               decode_tps, 1e3 / decode_tps, decode_gbs, 100 * decode_gbs / bw);
        printf("ttft (64)   %8.3f s\n", ttft);
        for (int i = 0; i < np; i++) {
            double gops = prefill_tps[i] * ops_per_token / 1e9;
            printf("prefill %-4ld%8.2f tok/s  %6.1f GOPS = %5.1f%% of the measured int8 peak", plens[i], prefill_tps[i],
                   gops, 100 * gops / peak);
            if (amx > 0) printf(", %.1f%% of the AMX peak", 100 * gops / amx);
            printf("\n");
        }
        printf("peak RSS    %8.1f MB  (model file %.1f MB)\n", rss_mb, model_mb);
    }
    free(ids);
    free(t);
    llm8_session_free(s);
    llm8_model_free(model);
    return 0;
}
