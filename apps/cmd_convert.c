/* llm8 convert: a Hugging Face folder or a llama.cpp GGUF file to one quantized llm8 file. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli.h"
#include "convert/convert.h"

static void convert_usage(void) {
    printf("usage: llm8 convert SRC -o OUT.gguf --quant TYPE\n"
           "  SRC     a Hugging Face folder (config.json, *.safetensors in bf16/f16/f32, tokenizer.json, ...)\n"
           "          or a GGUF file from llama.cpp's converter (f32, f16, bf16, q8_0)\n"
           "  TYPE    f32 | f16 | bf16 | w8a8 | w8a8_g128 | w8a8_g256 | w8a8_g512 | w4a8_g32\n"
           "          (embeddings and the output head are int8 per row for every quantized type)\n");
}

static void show_progress(void *user, const l8_convert_progress *p) {
    (void)user;
    fprintf(stderr, "[%4d/%4d] %-24s %-4s %9.2f MB %8.1f MB/s\n", p->index, p->count, p->name, p->type,
            p->bytes_written / 1e6, p->seconds > 0 ? p->bytes_written / 1e6 / p->seconds : 0.0);
}

int cmd_convert(int argc, char **argv) {
    const char *src_path = NULL, *out = NULL, *quant = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            convert_usage();
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(out = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--quant") || !strcmp(a, "-q")) {
            if (!(quant = cli_value(argc, argv, &i))) return 2;
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
    if (!src_path || !out || !quant) {
        fprintf(stderr, "llm8 convert: need SRC, -o OUT and --quant TYPE (try llm8 convert --help)\n");
        return 2;
    }
    l8_qtype qt;
    if (!l8_qtype_parse(quant, &qt)) {
        fprintf(stderr, "llm8 convert: unknown --quant '%s' (f32 f16 bf16 w8a8 w8a8_g128 w8a8_g256 w8a8_g512 w4a8_g32)\n",
                quant);
        return 2;
    }
    struct stat sb;
    if (stat(src_path, &sb) != 0) {
        fprintf(stderr, "llm8 convert: %s: no such file or folder\n", src_path);
        return 1;
    }
    l8_err e = {""};
    l8_source *src = NULL;
    llm8_status st = S_ISDIR(sb.st_mode) ? l8_source_open_hf(src_path, &src, &e)
                                         : l8_source_open_llamacpp_gguf(src_path, &src, &e);
    if (st) {
        fprintf(stderr, "llm8 convert: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "llm8 convert: %s -> %s (%s)\n", src->description ? src->description : src_path, out,
            l8_qtype_name(qt));
    l8_convert_report rep;
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
