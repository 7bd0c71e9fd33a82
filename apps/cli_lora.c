/* --lora DIR[:SCALE] for llm8 run and llm8 chat. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_lora_use(const char *spec, llm8_model *model, llm8_session *s, llm8_lora **out) {
    *out = NULL;
    /* DIR:SCALE when what follows the last ':' is a number; otherwise the whole is the folder, so
     * that a folder name with a colon still works without a scale. */
    char *dir = strdup(spec);
    if (!dir) {
        fprintf(stderr, "llm8: out of memory\n");
        return false;
    }
    double scale = 1.0;
    char *colon = strrchr(dir, ':');
    if (colon && colon != dir && colon[1]) {
        char *end;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (!errno && !*end && isfinite(v)) {
            scale = v;
            *colon = '\0';
        }
    }
    char err[512];
    llm8_status st = llm8_lora_load(model, dir, out, err, sizeof err);
    if (st) {
        fprintf(stderr, "llm8: --lora: %s\n", err);
    } else if ((st = llm8_session_set_lora(s, *out, (float)scale))) {
        fprintf(stderr, "llm8: --lora: %s\n", llm8_session_last_error(s));
        llm8_lora_free(*out);
        *out = NULL;
    }
    free(dir);
    return st == LLM8_STATUS_OK;
}
