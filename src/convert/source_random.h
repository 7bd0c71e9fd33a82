/*
 * A converter source of random weights shaped like a real model: the hyper-parameters of a
 * Hugging Face config.json, any tokenizer, and weights computed on the fly from (seed, tensor,
 * row, column) — so that benchmark models of any size cost no download, no disk beyond the
 * output, and no memory beyond the rows being read.
 */
#ifndef L8_SOURCE_RANDOM_H
#define L8_SOURCE_RANDOM_H

#include <stdint.h>

#include "convert/source.h"

/*
 * config_json_path: a config.json, or the folder holding it (generation_config.json next to it
 * is read too). tokenizer_dir: a folder with tokenizer.json and, optionally,
 * tokenizer_config.json; NULL means the config's folder. The same seed gives the same weights.
 * Matrices are ~N(0, 1/cols) (unit-variance outputs for unit-variance inputs), norm weights
 * ~1 +- a few percent; a tied model's output head is its embedding.
 */
llm8_status l8_source_open_random(const char *config_json_path, const char *tokenizer_dir, uint64_t seed,
                                  l8_source **out, l8_err *e);

#endif
