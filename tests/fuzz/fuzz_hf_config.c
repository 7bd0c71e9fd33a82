/* libFuzzer target for config.json (and generation_config.json) of a Hugging Face folder.
 *
 * Input: config.json, then optionally FZ_SEP and generation_config.json. A config that loads
 * must describe a network the runtime can size (the invariants below), and its RoPE table must
 * come out finite and positive: that table is built from the same untrusted numbers. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "format/hf_config.h"
#include "fuzz_util.h"
#include "model/forward.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_scratch();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *a, *b;
    size_t al, bl;
    int found;
    fz_split(data, size, &a, &al, &b, &bl, &found);
    fz_write("config.json", a, al);
    if (found) fz_write("generation_config.json", b, bl);
    else fz_remove("generation_config.json");

    llm8_model_info info;
    l8_err e = {""};
    if (l8_hf_config_load(fz_scratch(), &info, &e) != LLM8_STATUS_OK) {
        FZ_CHECK(e.msg[0] && !strchr(e.msg, '\n'), "an error must be one non-empty line: [%s]", e.msg);
        FZ_LOG("hf_config: %s", e.msg);
        return 0;
    }
    FZ_LOG("hf_config: ok, %d layers, rope %s", info.n_layer, info.rope_scaling);
    FZ_CHECK(info.n_embd > 0 && info.n_ff > 0 && info.n_layer > 0 && info.n_vocab > 0 && info.n_ctx_train > 0,
             "a size is not positive");
    FZ_CHECK(info.n_head > 0 && info.n_kv_head > 0 && info.n_head % info.n_kv_head == 0, "heads %d / kv heads %d",
             info.n_head, info.n_kv_head);
    FZ_CHECK(info.head_dim > 0 && info.head_dim % 2 == 0, "head_dim %d", info.head_dim);
    FZ_CHECK(info.bos_id >= -1 && info.bos_id < info.n_vocab, "bos %d outside the vocabulary", info.bos_id);
    FZ_CHECK(info.n_eos >= 0 && info.n_eos <= 8, "n_eos %d", info.n_eos);
    for (int i = 0; i < info.n_eos; i++)
        FZ_CHECK(info.eos_ids[i] >= 0 && info.eos_ids[i] < info.n_vocab, "eos %d", info.eos_ids[i]);
    FZ_CHECK(info.rms_norm_eps > 0 && info.rope_theta >= 1, "eps %g theta %g", info.rms_norm_eps, info.rope_theta);
    FZ_CHECK(info.default_top_p >= 0 && info.default_top_p <= 1, "top_p %g", info.default_top_p);
    FZ_CHECK(memchr(info.rope_scaling, 0, sizeof info.rope_scaling) != NULL, "rope_scaling not terminated");
    l8_rope rope;
    if (l8_rope_init(&rope, &info, NULL) == LLM8_STATUS_OK) {
        for (int32_t i = 0; i < rope.half; i++)
            FZ_CHECK(isfinite(rope.inv_freq[i]) && rope.inv_freq[i] >= 0, "inv_freq[%d] = %g", i, rope.inv_freq[i]);
        l8_rope_free(&rope);
    }
    return 0;
}
