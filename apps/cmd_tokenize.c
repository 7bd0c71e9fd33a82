/* llm8 tokenize: text on stdin to token ids on stdout (needs only the tokenizer files). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"


static int tokenize_jsonl(const llm8_tokenizer *tok, uint32_t base_flags) {
    char *line = NULL;
    size_t linecap = 0, cap = 1024, n;
    ssize_t got;
    long lineno = 0;
    int rc = 0;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    if (!ids) return 1;
    while ((got = getline(&line, &linecap, stdin)) != -1) {
        lineno++;
        json_error_t je;
        json_t *rec = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &je);
        json_t *text = rec ? json_object_get(rec, "text") : NULL;
        json_t *special = rec ? json_object_get(rec, "special") : NULL;
        if (!rec || !json_is_string(text) || (special && !json_is_boolean(special))) {
            fprintf(stderr, "llm8 tokenize: stdin line %ld: %s\n", lineno,
                    !rec ? je.text : "expected an object with a string \"text\" and an optional boolean \"special\"");
            printf("{\"error\":\"line %ld: bad record\"}\n", lineno);
            rc = 1;
            json_decref(rec);
            continue;
        }
        uint32_t flags = base_flags;
        if (special) flags = json_is_true(special) ? flags | LLM8_TOKENIZE_PARSE_SPECIAL : flags & ~LLM8_TOKENIZE_PARSE_SPECIAL;
        llm8_status st = cli_tokenize_all(tok, json_string_value(text), json_string_length(text), flags, &ids, &cap, &n);
        if (st) {
            fprintf(stderr, "llm8 tokenize: stdin line %ld: %s\n", lineno,
                    st == LLM8_STATUS_INVALID_ARGUMENT ? "invalid UTF-8 in text" : llm8_status_to_string(st));
            printf("{\"error\":\"line %ld: %s\"}\n", lineno, llm8_status_to_string(st));
            rc = 1;
        } else {
            fputs("{\"ids\":[", stdout);
            for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
            fputs("]}\n", stdout);
        }
        json_decref(rec);
    }
    free(line);
    free(ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    uint32_t flags = 0;
    bool jsonl = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(dir = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--special")) {
            flags |= LLM8_TOKENIZE_PARSE_SPECIAL;
        } else if (!strcmp(a, "--bos")) {
            flags |= LLM8_TOKENIZE_ADD_BOS;
        } else if (!strcmp(a, "--jsonl")) {
            jsonl = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: llm8 tokenize [-m DIR] [--special] [--bos] [--jsonl]\n"
                   "  reads UTF-8 text from stdin and prints its token ids on one line;\n"
                   "  --jsonl: reads {\"text\": ..., \"special\": bool} per line, writes {\"ids\": [...]} per line.\n"
                   "  DIR needs only tokenizer.json (and tokenizer_config.json).\n");
            return 0;
        } else {
            fprintf(stderr, "llm8 tokenize: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!dir) dir = cli_default_model();
    char err[512];
    llm8_tokenizer *tok = NULL;
    if (llm8_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (jsonl) {
        rc = tokenize_jsonl(tok, flags);
    } else {
        size_t len, cap = 1024, n = 0;
        char *text = cli_read_all(stdin, &len);
        int32_t *ids = malloc(cap * sizeof(int32_t));
        llm8_status st = text && ids ? cli_tokenize_all(tok, text, len, flags, &ids, &cap, &n) : LLM8_STATUS_OUT_OF_MEMORY;
        if (st) {
            fprintf(stderr, "llm8 tokenize: %s\n",
                    st == LLM8_STATUS_INVALID_ARGUMENT ? "stdin is not valid UTF-8" : llm8_status_to_string(st));
            rc = 1;
        } else {
            for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        free(text);
        free(ids);
    }
    llm8_tokenizer_free(tok);
    return rc;
}
