/* llm8 chat: an interactive conversation that keeps its history; one turn per input line. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static llm8_session *volatile g_session; /* for the SIGINT handler */

static void on_sigint(int sig) {
    (void)sig;
    if (g_session) llm8_session_abort(g_session); /* stops the answer, not the program */
}

static bool print_piece(void *user, const char *text, size_t len, int32_t token) {
    (void)user;
    (void)token;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static void chat_usage(void) {
    printf("usage: llm8 chat [-m MODEL] [--system TEXT] [-n N] [--temp T] [--seed S] [-c CTX] [-t N]\n"
           "                 [--keep N] [--lora DIR[:SCALE]] [--max-memory SIZE]\n"
           "  one turn per line of input (a terminal or a pipe); the history is kept across turns.\n"
           "  --keep N    when the context is full, drop the oldest exchanges (the system message\n"
           "              stays) rather than refuse the turn; an answer that fills it keeps the first\n"
           "              N tokens (at least the system message) and drops the older half of the rest\n"
           "  /reset      forget the conversation (keeps the system message)\n"
           "  /system T   set the system message and start over\n"
           "  /save FILE  save the conversation and its KV cache; /load FILE continues it\n"
           "  /stats      the last answer's token counts and speeds\n"
           "  Ctrl-C stops the current answer; Ctrl-D (end of input) exits.\n");
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL, *lora_spec = NULL;
    long n_predict = -1, n_ctx = 0, threads = 0, lv;
    uint64_t max_memory = 0;
    double temp = -1;
    bool seed_given = false;
    llm8_generate_params gp = llm8_generate_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            chat_usage();
            return 0;
        } else if (!strcmp(a, "-m")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--max-memory")) {
            if (!cli_size(a, cli_value(argc, argv, &i), &max_memory)) return 2;
        } else if (!strcmp(a, "--system")) {
            if (!(system = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--lora")) {
            if (!(lora_spec = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-n")) {
            if (!cli_int(a, cli_value(argc, argv, &i), -1, 1L << 30, &n_predict)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1L << 24, &n_ctx)) return 2;
        } else if (!strcmp(a, "-t")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "--keep")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, 1L << 24, &lv)) return 2;
            gp.n_keep = (int32_t)lv;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_float(a, cli_value(argc, argv, &i), 0, 100, &temp)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, __LONG_MAX__, &lv)) return 2;
            gp.sampling.seed = (uint64_t)lv;
            seed_given = true;
        } else {
            fprintf(stderr, "llm8 chat: unknown option '%s' (try llm8 chat --help)\n", a);
            return 2;
        }
    }
    if (!model_path) model_path = cli_default_model();
    char err[512];
    llm8_model *model = NULL;
    if (llm8_model_load(model_path, &model, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        return 1;
    }
    const llm8_model_info *info = llm8_model_get_info(model);
    gp.sampling.temperature = (float)(temp >= 0 ? temp : info->default_temperature);
    gp.sampling.top_p = info->default_top_p;
    if (!seed_given) gp.sampling.seed = (uint64_t)time(NULL);
    gp.max_tokens = (int32_t)n_predict;
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = (int32_t)n_ctx;
    sp.n_threads = (int32_t)threads;
    llm8_session *s = NULL;
    bool fits = cli_memory_check(&model, 1, &sp, 1, max_memory);
    if (!fits || llm8_session_create(model, &sp, &s, err, sizeof err)) {
        if (fits) fprintf(stderr, "llm8: %s\n", err);
        llm8_model_free(model);
        return 1;
    }
    llm8_lora *lora = NULL;
    if (lora_spec && !cli_lora_use(lora_spec, model, s, &lora)) {
        llm8_session_free(s);
        llm8_model_free(model);
        return 1;
    }
    if (system && llm8_session_set_system(s, system)) {
        fprintf(stderr, "llm8 chat: %s\n", llm8_session_last_error(s));
        llm8_session_free(s);
        llm8_lora_free(lora);
        llm8_model_free(model);
        return 1;
    }
    g_session = s;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    /* A file size limit (ulimit -f) must fail a /save with an error, not kill the conversation:
     * ignored, SIGXFSZ turns into EFBIG from write(), which llm8_session_save reports. */
    signal(SIGXFSZ, SIG_IGN);

    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    llm8_run_stats last = {0};
    int rc = 0;
    for (;;) {
        if (tty) fputs("> ", stderr);
        if ((got = getline(&line, &cap, stdin)) < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (!strcmp(line, "/reset")) {
            llm8_session_clear_history(s, true);
            continue;
        } else if (!strncmp(line, "/system ", 8)) {
            if (llm8_session_set_system(s, line + 8)) fprintf(stderr, "llm8 chat: %s\n", llm8_session_last_error(s));
            continue;
        } else if (!strncmp(line, "/save ", 6) || !strncmp(line, "/load ", 6)) {
            bool save = line[1] == 's';
            llm8_status st = save ? llm8_session_save(s, line + 6) : llm8_session_load(s, line + 6);
            if (st) fprintf(stderr, "llm8 chat: %s\n", llm8_session_last_error(s));
            else fprintf(stderr, "%s %s (%d tokens, %d messages)\n", save ? "saved" : "loaded", line + 6,
                         llm8_session_n_past(s), llm8_session_n_messages(s));
            continue;
        } else if (!strcmp(line, "/stats")) {
            fprintf(stderr, "prefilled %d tokens in %.1f ms; generated %d tokens in %.1f ms (%.1f tok/s); context %d/%d\n",
                    last.prompt_tokens, last.prefill_ms, last.generated_tokens, last.decode_ms,
                    last.decode_ms > 0 ? last.generated_tokens * 1e3 / last.decode_ms : 0.0, llm8_session_n_past(s),
                    llm8_session_n_ctx(s));
            continue;
        } else if (line[0] == '/') {
            fprintf(stderr, "llm8 chat: unknown command %s (/reset, /system TEXT, /save FILE, /load FILE, /stats)\n", line);
            continue;
        }
        llm8_status st = llm8_session_chat(s, line, &gp, print_piece, NULL, &last);
        printf("\n");
        fflush(stdout);
        if (st == LLM8_STATUS_ABORTED) {
            fprintf(stderr, "[stopped]\n");
        } else if (st) {
            fprintf(stderr, "llm8 chat: %s\n", llm8_session_last_error(s));
            rc = 1;
            if (st != LLM8_STATUS_CONTEXT_FULL && st != LLM8_STATUS_INVALID_ARGUMENT) break;
        } else {
            fprintf(stderr, "[%d tokens, %.1f tok/s]\n", last.generated_tokens,
                    last.decode_ms > 0 ? last.generated_tokens * 1e3 / last.decode_ms : 0.0);
        }
    }
    g_session = NULL;
    free(line);
    llm8_session_free(s);
    llm8_lora_free(lora);
    llm8_model_free(model);
    return rc;
}
