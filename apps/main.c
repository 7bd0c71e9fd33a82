/* llm8: the command-line tool. One subcommand per file; this one dispatches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "runtime/probe.h"

static void usage(FILE *f) {
    fprintf(f,
            "llm8 %s — run Llama-family models on the CPU\n"
            "\n"
            "usage: llm8 COMMAND [options]\n"
            "  run       generate text from a prompt     (llm8 run -m MODEL -p TEXT [-n N] [--temp T] ...)\n"
            "  chat      converse, keeping the history   (llm8 chat -m MODEL [--system TEXT])\n"
            "  info      print a model's architecture    (llm8 info -m MODEL)\n"
            "  convert   quantize into one llm8 file     (llm8 convert SRC -o OUT.gguf --quant w8a8)\n"
            "  bench     speed beside the machine limits (llm8 bench -m MODEL [-t N] [-p 64,512] [-n 128] [--json])\n"
            "  tokenize  print token ids of stdin text   (llm8 tokenize -m DIR [--special] [--bos] [--jsonl])\n"
            "  template  render a chat as a prompt       (llm8 template -m DIR [--date D] [--no-generation-prompt] <chat.json)\n"
            "  perplexity score a text file              (llm8 perplexity -m MODEL -f TEXT [--ctx N] [--docs] [--ref REF] [--json])\n"
            "  serve     an OpenAI-compatible HTTP server (llm8 serve -m MODEL [--port 8080] [--parallel N] [--api-key KEY])\n"
            "\n"
            "MODEL is a Hugging Face folder (config.json, *.safetensors, tokenizer.json, ...).\n"
            "Without -m, the bundled demo model (stories260K) is used. `llm8 COMMAND --help` for options.\n"
            "Every command takes --cpu-mask MASK (0xF0 or 4-7; or LLM8_CPU_MASK): compute on those CPUs,\n"
            "one thread each unless -t says otherwise (default: the big cores of a big.LITTLE CPU).\n",
            llm8_version());
}

/* --cpu-mask MASK (or --cpu-mask=MASK) anywhere after the command: checked, handed to the
 * thread pools as LLM8_CPU_MASK (runtime/probe.h, l8_cpu_plan), and taken out of argv so that
 * every command accepts it. Returns false after an error message. */
static bool take_cpu_mask(int *argc, char **argv) {
    for (int i = 2; i < *argc; i++) {
        const char *val = NULL;
        int n = 0;
        if (!strcmp(argv[i], "--cpu-mask")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "llm8: option --cpu-mask needs a value\n");
                return false;
            }
            val = argv[i + 1], n = 2;
        } else if (!strncmp(argv[i], "--cpu-mask=", 11)) {
            val = argv[i] + 11, n = 1;
        } else {
            continue;
        }
        l8_cpumask m;
        if (!l8_cpumask_parse(val, &m)) {
            fprintf(stderr, "llm8: --cpu-mask expects a mask like 0xF0 or a list like 4-7, got '%s'\n", val);
            return false;
        }
        setenv("LLM8_CPU_MASK", val, 1);
        memmove(argv + i, argv + i + n, (size_t)(*argc - i - n + 1) * sizeof *argv); /* with the NULL */
        *argc -= n;
        i--;
    }
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!take_cpu_mask(&argc, argv)) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "template")) return cmd_template(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("llm8 %s\n", llm8_version());
        return 0;
    }
    fprintf(stderr, "llm8: unknown command '%s' (try llm8 --help)\n", cmd);
    return 2;
}

/* ---------------------------------------------------------------- helpers shared by commands */

const char *cli_default_model(void) {
    const char *env = getenv("LLM8_MODEL");
    if (env && *env) return env;
#ifdef LLM8_DEFAULT_MODEL_DIR
    struct stat st;
    if (stat(LLM8_DEFAULT_MODEL_DIR, &st) == 0) return LLM8_DEFAULT_MODEL_DIR;
#endif
    return "models/stories260k";
}

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "llm8: option %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_int(const char *opt, const char *val, long lo, long hi, long *out) {
    if (!val) return false;
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        fprintf(stderr, "llm8: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, val);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *opt, const char *val, double lo, double hi, double *out) {
    if (!val) return false;
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "llm8: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, val);
        return false;
    }
    *out = v;
    return true;
}

char *cli_read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0) break;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Tokenizes into a growing buffer; returns the status of the final call. */
llm8_status cli_tokenize_all(const llm8_tokenizer *tok, const char *text, size_t len, uint32_t flags,
                             int32_t **ids, size_t *cap, size_t *n) {
    llm8_status st = llm8_tokenize(tok, text, len, flags, *ids, *cap, n);
    if (st == LLM8_STATUS_INVALID_ARGUMENT && *n > *cap) {
        int32_t *more = realloc(*ids, *n * sizeof(int32_t));
        if (!more) return LLM8_STATUS_OUT_OF_MEMORY;
        *ids = more;
        *cap = *n;
        st = llm8_tokenize(tok, text, len, flags, *ids, *cap, n);
    }
    return st;
}
