/* Shared pieces of the llm8 command-line tool. */
#ifndef LLM8_CLI_H
#define LLM8_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "llm8.h"

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* The bundled demo model, used when -m is not given. */
const char *cli_default_model(void);

/* Option values: each returns false (after printing a one-line error) when the value is bad. */
bool cli_int(const char *opt, const char *val, long lo, long hi, long *out);
bool cli_float(const char *opt, const char *val, double lo, double hi, double *out);
/* Returns argv[*i + 1] and advances *i, or prints "OPT needs a value" and returns NULL. */
const char *cli_value(int argc, char **argv, int *i);

/* llm8_tokenize into a heap buffer (*ids, *cap) that grows to fit; *n receives the count. */
llm8_status cli_tokenize_all(const llm8_tokenizer *tok, const char *text, size_t len, uint32_t flags, int32_t **ids,
                             size_t *cap, size_t *n);

/* --lora DIR[:SCALE] (SCALE default 1): loads the PEFT adapter for model and chooses it on s. On
 * failure prints a one-line error and returns false; *out receives the adapter, to free after s. */
bool cli_lora_use(const char *spec, llm8_model *model, llm8_session *s, llm8_lora **out);

/* --max-memory SIZE: a positive size with an optional K/M/G/T suffix (powers of 1024, "iB" or "B"
 * after it allowed). False after a one-line error. */
bool cli_size(const char *opt, const char *val, uint64_t *out);
/* Before creating sessions: n_sessions sessions of sp on each of the models, plus the models'
 * weights, must fit in max_memory (0: no budget) and in the memory the machine (or the cgroup)
 * has available. Otherwise prints one line saying what is needed, what the limit is and the
 * largest context that would fit, and returns false. */
bool cli_memory_check(llm8_model *const *models, int n_models, const llm8_session_params *sp, int n_sessions,
                      uint64_t max_memory);

/* Reads all of a stream into a heap buffer (NUL-terminated; *len excludes the NUL). */
char *cli_read_all(FILE *f, size_t *len);

#endif
