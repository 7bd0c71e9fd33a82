/* llm8 info: what a model is — architecture, shapes, storage, vocabulary, special tokens. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kernels/kernels.h"
#include "runtime/probe.h"

#include <sys/resource.h>
#include <time.h>

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * 4096.0 / 1e6;
}

static void print_token(const llm8_tokenizer *tok, const char *label, int32_t id) {
    const char *piece = id >= 0 ? llm8_tokenizer_piece(tok, id) : NULL;
    if (id < 0) printf("%-22s none\n", label);
    else printf("%-22s %d %s\n", label, id, piece ? piece : "(not in the tokenizer)");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llm8 info [-m MODEL]\n");
            return 0;
        } else {
            fprintf(stderr, "llm8 info: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    printf("%-22s %s\n", "cpu", l8_kernels_describe());
    l8_cpu_plan plan; /* where the compute threads go by default (big.LITTLE, --cpu-mask) */
    l8_cpu_plan_get(0, &plan);
    printf("%-22s %s\n", "threads", plan.why);
    printf("%-22s", "kernels available");
    for (int i = 0; i < L8_ISA_COUNT; i++)
        if (l8_kernels_for((l8_isa)i)) printf(" %s", l8_isa_name((l8_isa)i));
    printf("\n");
    if (!path) path = cli_default_model();
    char err[512];
    llm8_model *model = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (llm8_model_load(path, &model, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double load_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    const llm8_model_info *m = llm8_model_get_info(model);
    const llm8_tokenizer *tok = llm8_model_tokenizer(model);
    printf("%-22s %s\n", "model", path);
    printf("%-22s %s\n", "architecture", m->architecture);
    printf("%-22s %s\n", "weights dtype", m->dtype);
    printf("%-22s %llu (%.1f MB mapped)\n", "parameters", (unsigned long long)m->n_params, m->weight_bytes / 1e6);
    /* the decode roof: these bytes / the read bandwidth (docs/PERFORMANCE.md, RK3588) */
    printf("%-22s %llu bytes of weights per token\n", "decode reads", (unsigned long long)m->decode_bytes);
    printf("%-22s %d\n", "vocab size", m->n_vocab);
    printf("%-22s %d\n", "tokenizer tokens", llm8_tokenizer_n_vocab(tok));
    printf("%-22s %d\n", "hidden size", m->n_embd);
    printf("%-22s %d\n", "intermediate size", m->n_ff);
    printf("%-22s %d\n", "layers", m->n_layer);
    printf("%-22s %d (kv %d, head_dim %d)\n", "attention heads", m->n_head, m->n_kv_head, m->head_dim);
    printf("%-22s %d\n", "max positions", m->n_ctx_train);
    printf("%-22s %g\n", "rms_norm_eps", m->rms_norm_eps);
    printf("%-22s %.1f ms, RSS after load %.1f MB (weights are mapped, not read)\n", "load", load_ms, rss_mb());
    printf("%-22s theta %g, scaling %s", "rope", m->rope_theta, m->rope_scaling);
    if (!strcmp(m->rope_scaling, "llama3"))
        printf(" (factor %g, low %g, high %g, original context %d)", m->rope_factor, m->rope_low_freq_factor,
               m->rope_high_freq_factor, m->rope_original_ctx);
    printf("\n%-22s %s\n", "tied embeddings", m->tied_embeddings ? "yes" : "no");
    print_token(tok, "bos", m->bos_id);
    for (int32_t i = 0; i < m->n_eos; i++) print_token(tok, "eos", m->eos_ids[i]);
    printf("%-22s temperature %g, top_p %g\n", "sampling defaults", m->default_temperature, m->default_top_p);
    llm8_model_free(model);
    return 0;
}
