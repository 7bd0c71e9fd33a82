/* llm8 template: an OpenAI-style chat request on stdin to the prompt text the model would see. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "cli.h"

int cmd_template(int argc, char **argv) {
    const char *dir = NULL, *date = NULL;
    bool gen = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(dir = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--date")) {
            if (!(date = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--no-generation-prompt")) {
            gen = false;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: llm8 template [-m DIR] [--date \"26 Jul 2024\"] [--no-generation-prompt]\n"
                   "  reads {\"messages\": [...], \"tools\": [...]} (OpenAI shapes) from stdin and prints the\n"
                   "  prompt the model's chat template makes of it, byte for byte (no newline added).\n"
                   "  --date: the date templates print (default: today, \"%%d %%b %%Y\").\n"
                   "  \"chat_template_kwargs\": {...} in the request sets extra template variables.\n"
                   "  DIR needs only tokenizer.json and tokenizer_config.json; without a chat_template\n"
                   "  the plain \"User: ...\\nAssistant:\" format is used.\n");
            return 0;
        } else {
            fprintf(stderr, "llm8 template: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!dir) dir = cli_default_model();
    size_t len;
    char *text = cli_read_all(stdin, &len);
    if (!text) {
        fprintf(stderr, "llm8 template: out of memory reading stdin\n");
        return 1;
    }
    json_error_t je;
    json_t *req = json_loadb(text, len, 0, &je);
    free(text);
    if (!req) {
        fprintf(stderr, "llm8 template: stdin line %d: %s\n", je.line, je.text);
        return 1;
    }
    char err[512];
    llm8_tokenizer *tok = NULL;
    if (llm8_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        json_decref(req);
        return 1;
    }
    l8_chat_opts opts = {.add_generation_prompt = gen, .date_string = date};
    l8_err e = {{0}};
    char *out = NULL;
    size_t out_len = 0;
    int rc = 0;
    if (l8_chat_apply(tok, req, &opts, &out, &out_len, &e)) {
        fprintf(stderr, "llm8 template: %s\n", e.msg);
        rc = 1;
    } else if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
        fprintf(stderr, "llm8 template: cannot write to stdout\n");
        rc = 1;
    }
    free(out);
    llm8_tokenizer_free(tok);
    json_decref(req);
    return rc;
}
