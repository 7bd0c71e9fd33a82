/* llm8 convert: a Hugging Face folder or a llama.cpp GGUF file to one quantized llm8 file. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "convert/convert.h"
#include "convert/source_random.h"

static void convert_usage(void) {
    printf("usage: llm8 convert SRC -o OUT.gguf --quant TYPE [--lora DIR [--lora-scale S]]\n"
           "       llm8 convert --random CONFIG.json [--tokenizer DIR] [--seed S] -o OUT.gguf --quant TYPE\n"
           "  SRC     a Hugging Face folder (config.json, *.safetensors in bf16/f16/f32, tokenizer.json, ...)\n"
           "          or a GGUF file from llama.cpp's converter (f32, f16, bf16, q8_0)\n"
           "  --random CONFIG.json  random weights, for benchmarks, shaped by a Hugging Face config.json\n"
           "          (or its folder); --tokenizer DIR holds tokenizer.json (default: the config's folder);\n"
           "          the same --seed (default 0) gives the same file\n"
           "  TYPE    f32 | f16 | bf16 | w8a8 | w8a8_g128 | w8a8_g256 | w8a8_g512 | w4a8_g32\n"
           "          (embeddings and the output head are int8 per row for every quantized type)\n"
           "  --rotate on|off|auto  fold Hadamard rotations into the weights so that int8 loses less\n"
           "          (auto, the default: on for the w8a8 types; docs/QUANT.md)\n"
           "  --lora DIR  merge a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors) into the\n"
           "          weights before rotating and quantizing: W + S * (alpha / r) * B A\n"
           "  --lora-scale S  the adapter's strength S (default 1: as trained)\n");
}

/* The writer streams into OUT.tmp and renames it when complete (format/gguf.h), so an
 * interrupted conversion never leaves a partial file under OUT. SIGTERM, SIGINT and SIGHUP also
 * remove OUT.tmp (which may be gigabytes), then end the process as the signal would have. */
static char g_tmp_path[4096];

static void on_fatal_signal(int sig) {
    unlink(g_tmp_path); /* async-signal-safe; harmless if the rename already happened */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void show_progress(void *user, const l8_convert_progress *p) {
    (void)user;
    fprintf(stderr, "[%4d/%4d] %-24s %-4s %9.2f MB %8.1f MB/s\n", p->index, p->count, p->name, p->type,
            p->bytes_written / 1e6, p->seconds > 0 ? p->bytes_written / 1e6 / p->seconds : 0.0);
}

int cmd_convert(int argc, char **argv) {
    const char *src_path = NULL, *out = NULL, *quant = NULL, *rotate = "auto";
    const char *random_cfg = NULL, *tok_dir = NULL; /* --random: no SRC */
    const char *lora_dir = NULL;
    double lora_scale = 1.0;
    bool have_lora_scale = false;
    unsigned long long seed = 0;
    bool have_seed = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            convert_usage();
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(out = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--quant") || !strcmp(a, "-q")) {
            if (!(quant = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--rotate")) {
            if (!(rotate = cli_value(argc, argv, &i))) return 2;
            if (strcmp(rotate, "on") && strcmp(rotate, "off") && strcmp(rotate, "auto")) {
                fprintf(stderr, "llm8 convert: --rotate takes on, off or auto, not '%s'\n", rotate);
                return 2;
            }
        } else if (!strcmp(a, "--lora")) {
            if (!(lora_dir = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--lora-scale")) {
            if (!cli_float(a, cli_value(argc, argv, &i), -1e6, 1e6, &lora_scale)) return 2;
            have_lora_scale = true;
        } else if (!strcmp(a, "--random")) {
            if (!(random_cfg = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tok_dir = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--seed")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v) return 2;
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 0);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "llm8 convert: --seed '%s' is not an unsigned integer\n", v);
                return 2;
            }
            have_seed = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "llm8 convert: unknown option '%s'\n", a);
            return 2;
        } else if (!src_path) {
            src_path = a;
        } else {
            fprintf(stderr, "llm8 convert: more than one source ('%s' and '%s')\n", src_path, a);
            return 2;
        }
    }
    if (random_cfg && src_path) {
        fprintf(stderr, "llm8 convert: --random takes no SRC ('%s')\n", src_path);
        return 2;
    }
    if (!random_cfg && (tok_dir || have_seed)) {
        fprintf(stderr, "llm8 convert: --tokenizer and --seed go with --random\n");
        return 2;
    }
    if (have_lora_scale && !lora_dir) {
        fprintf(stderr, "llm8 convert: --lora-scale goes with --lora\n");
        return 2;
    }
    if ((!src_path && !random_cfg) || !out || !quant) {
        fprintf(stderr, "llm8 convert: need SRC or --random CONFIG, -o OUT and --quant TYPE (try llm8 convert --help)\n");
        return 2;
    }
    l8_qtype qt;
    if (!l8_qtype_parse(quant, &qt)) {
        fprintf(stderr, "llm8 convert: unknown --quant '%s' (f32 f16 bf16 w8a8 w8a8_g128 w8a8_g256 w8a8_g512 w4a8_g32)\n",
                quant);
        return 2;
    }
    l8_err e = {""};
    l8_source *src = NULL;
    llm8_status st;
    if (random_cfg) {
        src_path = random_cfg;
        st = l8_source_open_random(random_cfg, tok_dir, seed, &src, &e);
    } else {
        struct stat sb;
        if (stat(src_path, &sb) != 0) {
            fprintf(stderr, "llm8 convert: %s: no such file or folder\n", src_path);
            return 1;
        }
        st = S_ISDIR(sb.st_mode) ? l8_source_open_hf(src_path, &src, &e)
                                 : l8_source_open_llamacpp_gguf(src_path, &src, &e);
    }
    if (st) {
        fprintf(stderr, "llm8 convert: %s\n", e.msg);
        return 1;
    }
    /* The adapter is merged into the original weights; the rotation then sees the merged model. */
    if (lora_dir && (st = l8_source_lora(src, lora_dir, (float)lora_scale, &src, &e))) {
        fprintf(stderr, "llm8 convert: %s\n", e.msg);
        return 1;
    }
    /* Rotation changes nothing but the quantization error (docs/QUANT.md). auto: on for the
     * int8 types, where it halved the demo model's KL divergence; off for w4a8_g32, where it
     * raised it (groups of 32 already confine outliers), and for float types. */
    bool rot = !strcmp(rotate, "on") || (!strcmp(rotate, "auto") && l8_qtype_dtype(qt) == L8_DTYPE_Q8);
    if (rot && (st = l8_source_rotate(src, 0x6c6c6d38u, &src, &e))) {
        fprintf(stderr, "llm8 convert: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "llm8 convert: %s -> %s (%s%s)\n", src->description ? src->description : src_path, out,
            l8_qtype_name(qt), rot ? ", rotated" : "");
    l8_convert_report rep;
    if (snprintf(g_tmp_path, sizeof g_tmp_path, "%s.tmp", out) < (int)sizeof g_tmp_path) {
        struct sigaction sa = {0};
        sa.sa_handler = on_fatal_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
    }
    /* A file size limit (ulimit -f) must give a write error (EFBIG), reported and cleaned up like
     * a full disk, rather than kill the process with SIGXFSZ and leave OUT.tmp behind. */
    signal(SIGXFSZ, SIG_IGN);
    st = l8_convert(src, out, qt, show_progress, NULL, &rep, &e);
    l8_source_free(src);
    if (st) {
        fprintf(stderr, "llm8 convert: %s\n", e.msg);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "llm8 convert: wrote %s: %.1f MB, %d tensors in %.2f s (%.1f MB/s); peak RSS %.1f MB\n", out,
            rep.file_bytes / 1e6, rep.n_tensors, rep.seconds, rep.seconds > 0 ? rep.file_bytes / 1e6 / rep.seconds : 0,
            ru.ru_maxrss / 1024.0);
    for (int t = 0; t < L8_DTYPE_COUNT; t++)
        if (rep.bytes_by_dtype[t])
            fprintf(stderr, "llm8 convert:   %-4s %10.1f MB\n", l8_dtype_name((l8_dtype)t), rep.bytes_by_dtype[t] / 1e6);
    return 0;
}
