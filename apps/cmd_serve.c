/* llm8 serve: the OpenAI-compatible server (src/server/) behind command-line options. Signals are
 * blocked in every thread and taken here with sigwait, so that SIGINT/SIGTERM end the server
 * from an ordinary thread instead of a handler. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "server/server.h"

static void serve_usage(void) {
    printf("usage: llm8 serve [-m MODEL] [options]\n"
           "An OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions,\n"
           "GET /v1/models, GET /health, GET /metrics (Prometheus), GET / (a chat page).\n"
           "  -m MODEL            model folder or llm8 file (default: the bundled demo model)\n"
           "  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
           "  --port N            TCP port (default 8080; 0: any free port, printed at start)\n"
           "  --parallel N, -np N slots: requests generated together in one batch (default 1)\n"
           "  -c, --ctx N         context of each slot in tokens (default min(model maximum, 4096))\n"
           "  -t, --threads N     compute threads (default: one per physical core)\n"
           "  --queue N           requests that may wait for a slot (default 4 x parallel);\n"
           "                      beyond them: 503 with Retry-After\n"
           "  --api-key KEY       require 'Authorization: Bearer KEY' on every endpoint but /health\n"
           "                      and the page (also from the environment variable LLM8_API_KEY)\n"
           "  --max-body BYTES    request body limit (default 1048576): 413 beyond it\n"
           "  --max-conns N       simultaneous connections (default 64)\n"
           "  --timeout SECONDS   close connections idle this long (default 60)\n"
           "  --alias NAME        the model's name in /v1/models (default: the folder name)\n"
           "  --quiet             no log line per request\n"
           "\n"
           "Sampling: temperature and top_p default to the model's generation_config.json (as llm8 run);\n"
           "top_k 40 and min_p 0.05 as llm8 run unless the request sets top_k / min_p. Extensions to the\n"
           "OpenAI request: top_k, min_p, repeat_penalty, ignore_eos.\n"
           "SIGINT/SIGTERM: stop accepting, end running streams (an error event, then [DONE]), exit 0.\n");
}

int cmd_serve(int argc, char **argv) {
    l8_server_opts o = l8_server_default_opts();
    const char *model_path = NULL;
    long v;
    const char *env_key = getenv("LLM8_API_KEY");
    if (env_key && *env_key) o.api_key = env_key;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--host")) {
            if (!(o.host = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--port")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, 65535, &v)) return 2;
            o.port = (int)v;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 256, &v)) return 2;
            o.parallel = (int)v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 2, 1L << 24, &v)) return 2;
            o.n_ctx = (int)v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1024, &v)) return 2;
            o.n_threads = (int)v;
        } else if (!strcmp(a, "--queue")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 0, 1 << 20, &v)) return 2;
            o.queue = (int)v;
        } else if (!strcmp(a, "--api-key")) {
            if (!(o.api_key = cli_value(argc, argv, &i))) return 2;
            if (!*o.api_key) {
                fprintf(stderr, "llm8 serve: --api-key must not be empty\n");
                return 2;
            }
        } else if (!strcmp(a, "--max-body")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1L << 30, &v)) return 2;
            o.max_body = (size_t)v;
        } else if (!strcmp(a, "--max-conns")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 10000, &v)) return 2;
            o.max_conns = (int)v;
        } else if (!strcmp(a, "--timeout")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 86400, &v)) return 2;
            o.timeout_s = (int)v;
        } else if (!strcmp(a, "--alias")) {
            if (!(o.alias = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = true;
        } else {
            fprintf(stderr, "llm8 serve: unknown option '%s' (try llm8 serve --help)\n", a);
            return 2;
        }
    }
    o.model_path = model_path ? model_path : cli_default_model();
    if (access(o.model_path, R_OK)) { /* before binding, so that nobody is told to connect */
        fprintf(stderr, "llm8 serve: %s: %s\n", o.model_path, strerror(errno));
        return 1;
    }

    /* blocked before any thread starts, so that every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is an error return, not a death */

    char err[512] = "";
    l8_server *srv = NULL;
    if (l8_server_start(&o, &srv, err, sizeof err)) {
        fprintf(stderr, "llm8 serve: %s\n", err);
        return 1;
    }
    const char *host = o.host;
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "llm8 serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "",
            l8_server_port(srv));
    if (l8_server_load(srv, err, sizeof err)) {
        fprintf(stderr, "llm8 serve: %s\n", err);
        l8_server_free(srv);
        return 1;
    }
    fprintf(stderr, "llm8 serve: %s ready: %d slot%s%s\n", o.model_path, o.parallel, o.parallel == 1 ? "" : "s",
            o.api_key ? ", API key required" : "");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "llm8 serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    l8_server_free(srv);
    fprintf(stderr, "llm8 serve: stopped\n");
    return 0;
}
