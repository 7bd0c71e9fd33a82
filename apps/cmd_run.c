/* llm8 run: stream a continuation of a prompt to stdout, a stats line to stderr. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void run_usage(void) {
    printf("usage: llm8 run [-m MODEL] [-p PROMPT | -f FILE] [-n N] [options]\n"
           "  -m MODEL            model folder (default: the bundled demo model)\n"
           "  -p PROMPT           prompt text (default: empty, i.e. start from BOS)\n"
           "  -f FILE             read the prompt from a file\n"
           "  -n N                tokens to generate (default 128; -1: until the context is full)\n"
           "  -c, --ctx N         context length (default min(model maximum, 4096))\n"
           "  -t, --threads N     compute threads (default: the big cores, else one per physical core)\n"
           "  --max-memory SIZE   refuse to start if the model and context need more (e.g. 2G); the\n"
           "                      memory the machine has available is always a limit\n"
           "  --temp T            temperature; 0 = greedy (default: generation_config.json, else 0.8)\n"
           "  --top-k K           (default 40; 0 = off)\n"
           "  --top-p P           (default: generation_config.json, else 0.95; 1 = off)\n"
           "  --min-p P           (default 0.05; 0 = off)\n"
           "  --repeat-penalty R  (default 1.0 = off)    --repeat-last-n N (default 64)\n"
           "  --frequency-penalty F, --presence-penalty P (default 0)\n"
           "  --seed S            (default: random, printed in the stats line)\n"
           "  --stop TEXT         stop when TEXT appears (repeatable)\n"
           "  --ignore-eos        keep generating through end tokens\n"
           "  --keep N            when the context fills, keep the first N tokens, drop the older half\n"
           "                      of the rest and go on (default: stop at a full context)\n"
           "  --reference         run the scalar f32 reference transformer (the oracle; slow)\n"
           "  --lora DIR[:SCALE]  apply a PEFT LoRA adapter folder, SCALE times its alpha/r (default 1)\n"
           "  --special           match special-token strings in the prompt\n"
           "  --chat              apply the model's chat template to the prompt (a user message)\n"
           "  --system TEXT       a system message (implies --chat)\n"
           "  --no-bos            do not add BOS to the prompt\n");
}

/* SIGTERM and SIGINT stop the generation (within a decode step) rather than the process, so that
 * the text so far ends its line, the session is freed and the exit status says which signal. */
static llm8_session *volatile g_session;
static volatile sig_atomic_t g_signal;

static void on_signal(int sig) {
    g_signal = sig;
    if (g_session) llm8_session_abort(g_session);
}

static bool print_piece(void *user, const char *text, size_t len, int32_t token) {
    (void)token;
    *(bool *)user = true;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL;
    long n_predict = 128, n_ctx = 0, threads = 0;
    uint64_t max_memory = 0;
    double temp = -1, top_p = -1, v;
    long lv;
    const char *stops[16];
    size_t n_stop = 0;
    bool seed_given = false, reference = false, chat = false;
    const char *system = NULL, *lora_spec = NULL;
    llm8_generate_params gp = llm8_generate_default_params();

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(prompt = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(prompt_file = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_int(a, cli_value(argc, argv, &i), -1, 1L << 30, &n_predict)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1L << 24, &n_ctx)) return 2;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_float(a, cli_value(argc, argv, &i), 0, 100, &temp)) return 2;
        } else if (!strcmp(a, "--top-k")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, 1L << 30, &lv)) return 2;
            gp.sampling.top_k = (int32_t)lv;
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_float(a, cli_value(argc, argv, &i), 0, 1, &top_p)) return 2;
        } else if (!strcmp(a, "--min-p")) {
            if (!cli_float(a, cli_value(argc, argv, &i), 0, 1, &v)) return 2;
            gp.sampling.min_p = (float)v;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!cli_float(a, cli_value(argc, argv, &i), 0.01, 100, &v)) return 2;
            gp.sampling.repeat_penalty = (float)v;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!cli_int(a, cli_value(argc, argv, &i), -1, 1L << 24, &lv)) return 2;
            gp.sampling.penalty_last_n = (int32_t)lv;
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (!cli_float(a, cli_value(argc, argv, &i), -10, 10, &v)) return 2;
            gp.sampling.frequency_penalty = (float)v;
        } else if (!strcmp(a, "--presence-penalty")) {
            if (!cli_float(a, cli_value(argc, argv, &i), -10, 10, &v)) return 2;
            gp.sampling.presence_penalty = (float)v;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, __LONG_MAX__, &lv)) return 2;
            gp.sampling.seed = (uint64_t)lv;
            seed_given = true;
        } else if (!strcmp(a, "--stop")) {
            const char *s = cli_value(argc, argv, &i);
            if (!s) return 2;
            if (n_stop == sizeof stops / sizeof *stops) {
                fprintf(stderr, "llm8: at most %zu --stop strings\n", sizeof stops / sizeof *stops);
                return 2;
            }
            stops[n_stop++] = s;
        } else if (!strcmp(a, "--max-memory")) {
            if (!cli_size(a, cli_value(argc, argv, &i), &max_memory)) return 2;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--system")) {
            if (!(system = cli_value(argc, argv, &i))) return 2;
            chat = true;
        } else if (!strcmp(a, "--reference")) {
            reference = true;
        } else if (!strcmp(a, "--lora")) {
            if (!(lora_spec = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--ignore-eos")) {
            gp.ignore_eos = true;
        } else if (!strcmp(a, "--keep")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, 1 << 20, &lv)) return 2;
            gp.n_keep = (int32_t)lv;
        } else if (!strcmp(a, "--special")) {
            gp.parse_special = true;
        } else if (!strcmp(a, "--no-bos")) {
            gp.add_bos = false;
        } else {
            fprintf(stderr, "llm8 run: unknown option '%s' (try llm8 run --help)\n", a);
            return 2;
        }
    }
    if (prompt && prompt_file) {
        fprintf(stderr, "llm8 run: give -p or -f, not both\n");
        return 2;
    }
    char *file_text = NULL;
    size_t prompt_len = prompt ? strlen(prompt) : 0;
    if (prompt_file) {
        FILE *f = fopen(prompt_file, "rb");
        if (!f) {
            fprintf(stderr, "llm8 run: %s: cannot open\n", prompt_file);
            return 1;
        }
        file_text = cli_read_all(f, &prompt_len);
        fclose(f);
        if (!file_text) {
            fprintf(stderr, "llm8 run: %s: cannot read\n", prompt_file);
            return 1;
        }
        prompt = file_text;
    }
    if (!model_path) model_path = cli_default_model();

    char err[512];
    llm8_model *model = NULL;
    if (llm8_model_load(model_path, &model, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        free(file_text);
        return 1;
    }
    const llm8_model_info *info = llm8_model_get_info(model);
    gp.sampling.temperature = (float)(temp >= 0 ? temp : info->default_temperature);
    gp.sampling.top_p = (float)(top_p >= 0 ? top_p : info->default_top_p);
    if (!seed_given) gp.sampling.seed = (uint64_t)time(NULL);
    gp.max_tokens = (int32_t)n_predict;
    gp.stop = stops;
    gp.n_stop = n_stop;

    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = (int32_t)n_ctx;
    sp.n_threads = (int32_t)threads;
    sp.reference = reference;
    llm8_session *s = NULL;
    llm8_lora *lora = NULL;
    int rc = 0;
    if (!cli_memory_check(&model, 1, &sp, 1, max_memory)) {
        rc = 1;
    } else if (llm8_session_create(model, &sp, &s, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        rc = 1;
    } else if (lora_spec && !cli_lora_use(lora_spec, model, s, &lora)) {
        rc = 1;
    } else {
        llm8_run_stats rs;
        bool printed = false;
        llm8_status st;
        g_session = s;
        struct sigaction sa = {0}, old_term, old_int;
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGINT, &sa, &old_int);
        if (chat) { /* the prompt as the user's message, through the model's chat template */
            st = llm8_session_set_system(s, system);
            if (!st) st = llm8_session_chat(s, prompt ? prompt : "", &gp, print_piece, &printed, &rs);
        } else {
            st = llm8_session_generate(s, prompt ? prompt : "", prompt_len, &gp, print_piece, &printed, &rs);
        }
        g_session = NULL;
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
        if (st) {
            if (printed) printf("\n"); /* keep what was generated, on its own line */
            fflush(stdout);
            if (st == LLM8_STATUS_ABORTED && g_signal) {
                fprintf(stderr, "llm8: stopped by %s: %s\n", g_signal == SIGTERM ? "SIGTERM" : "SIGINT",
                        llm8_session_last_error(s));
                rc = 128 + g_signal; /* the shell's convention for a death by that signal */
            } else {
                fprintf(stderr, "llm8: %s\n", llm8_session_last_error(s));
                rc = 1;
            }
        } else {
            printf("\n");
            if (rs.stop_reason == LLM8_STOP_CONTEXT)
                fprintf(stderr, "llm8: stopped: the context of %d tokens is full\n", llm8_session_n_ctx(s));
            fprintf(stderr,
                    "llm8: prompt %d tokens (%.1f tok/s), generated %d tokens (%.1f tok/s), seed %llu\n",
                    rs.prompt_tokens, rs.prefill_ms > 0 ? rs.prompt_tokens * 1e3 / rs.prefill_ms : 0.0,
                    rs.generated_tokens, rs.decode_ms > 0 ? rs.generated_tokens * 1e3 / rs.decode_ms : 0.0,
                    (unsigned long long)gp.sampling.seed);
        }
    }
    llm8_session_free(s);
    llm8_lora_free(lora);
    llm8_model_free(model);
    free(file_text);
    return rc;
}
