/* Tests of the Hugging Face loaders: safetensors (single and sharded), config.json and weight binding,
 * on the real stories260k folder, the real Llama 3.2 configs, and a battery of broken files built in
 * temporary folders. Every failure message is printed so a human can judge it. */
#define _DEFAULT_SOURCE
#include <assert.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/hf_config.h"
#include "format/hf_weights.h"
#include "format/safetensors.h"

#define STORIES "models/stories260k"

static int n_checked;

/* ---------------------------------------------------------------- temp files */

static char *make_tmp(void) {
    char tmpl[] = "/tmp/llm8-fmt-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert(d);
    return strdup(d);
}

static void rm_tree(char *dir) {
    DIR *d = opendir(dir);
    assert(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        assert(unlink(p) == 0);
    }
    closedir(d);
    assert(rmdir(dir) == 0);
    free(dir);
}

static void path_of(char *buf, size_t cap, const char *dir, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static void write_bytes(const char *dir, const char *name, const void *data, size_t len) {
    char p[512];
    path_of(p, sizeof p, dir, name);
    FILE *f = fopen(p, "wb");
    assert(f);
    assert(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void write_text(const char *dir, const char *name, const char *s) { write_bytes(dir, name, s, strlen(s)); }

static void write_json(const char *dir, const char *name, const json_t *j) {
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    assert(s);
    write_text(dir, name, s);
    free(s);
}

/* A raw safetensors file: header text as given (padded with spaces to 8), then data. */
static void write_raw_st(const char *dir, const char *name, const char *header, const void *data, size_t dlen) {
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    size_t total = 8 + hp + dlen;
    unsigned char *buf = calloc(1, total);
    assert(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', hp - h);
    if (dlen) memcpy(buf + 8 + hp, data, dlen);
    write_bytes(dir, name, buf, total);
    free(buf);
}

/* ---------------------------------------------------------------- safetensors writer */

typedef struct tw {
    char name[96];
    const char *dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} tw;

static void write_st(const char *dir, const char *name, const tw *ts, size_t n) {
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < ts[i].ndim; d++) json_array_append_new(shape, json_integer(ts[i].shape[d]));
        json_object_set_new(h, ts[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", ts[i].dtype, "shape", shape, "data_offsets",
                                      (json_int_t)off, (json_int_t)(off + ts[i].nbytes)));
        off += ts[i].nbytes;
    }
    char *hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    unsigned char *data = malloc(off ? off : 1);
    assert(hs && data);
    off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(data + off, ts[i].data, ts[i].nbytes);
        off += ts[i].nbytes;
    }
    write_raw_st(dir, name, hs, data, off);
    free(hs);
    free(data);
}

/* The stories260k tensors as writer entries (data borrowed from st's mapping). */
static size_t collect(const l8_safetensors *st, tw *out) {
    size_t n = l8_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const l8_tensor *t = l8_st_tensor(st, i);
        assert(t);
        snprintf(out[i].name, sizeof out[i].name, "%s", l8_st_name(st, i));
        out[i].dtype = "F32";
        out[i].ndim = t->ndim;
        memcpy(out[i].shape, t->shape, sizeof t->shape);
        out[i].data = t->data;
        out[i].nbytes = t->nbytes;
    }
    return n;
}

static tw *find_tw(tw *ts, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ts[i].name, name)) return &ts[i];
    assert(!"tensor not in fixture");
    return NULL;
}

static json_t *stories_config(void) {
    json_error_t je;
    json_t *j = json_load_file(STORIES "/config.json", 0, &je);
    assert(j);
    return j;
}

/* ---------------------------------------------------------------- expectations */

static void expect(llm8_status got, llm8_status want, const l8_err *e, const char *must_name, const char *also) {
    printf("  [%s] %s\n", llm8_status_to_string(got), got ? e->msg : "(ok)");
    if (got != want) fprintf(stderr, "expected status %s, got %s\n", llm8_status_to_string(want), llm8_status_to_string(got));
    assert(got == want);
    if (want != LLM8_STATUS_OK) {
        assert(strchr(e->msg, '\n') == NULL);
        if (must_name && !strstr(e->msg, must_name)) fprintf(stderr, "message does not name %s\n", must_name);
        assert(!must_name || strstr(e->msg, must_name));
        if (also && !strstr(e->msg, also)) fprintf(stderr, "message does not mention %s\n", also);
        assert(!also || strstr(e->msg, also));
    }
    n_checked++;
}

/* Writes config (when not NULL) and tensors into a fresh folder, loads config, opens and binds. */
static llm8_status load_model(const char *dir, const json_t *config, const tw *ts, size_t n, l8_err *e) {
    if (config) write_json(dir, "config.json", config);
    if (ts) write_st(dir, "model.safetensors", ts, n);
    llm8_model_info info;
    llm8_status s = l8_hf_config_load(dir, &info, e);
    if (s) return s;
    l8_safetensors *st;
    if ((s = l8_st_open_dir(dir, &st, e))) return s;
    l8_weights w;
    s = l8_hf_bind_weights(st, &info, &w, e);
    l8_weights_free(&w);
    l8_st_close(st);
    return s;
}

/* ---------------------------------------------------------------- good inputs */

static void test_stories(void) {
    printf("stories260k\n");
    l8_err e = {{0}};
    llm8_model_info info;
    expect(l8_hf_config_load(STORIES, &info, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(!strcmp(info.architecture, "llama"));
    assert(info.n_embd == 64 && info.n_ff == 172 && info.n_layer == 5 && info.n_head == 8 && info.n_kv_head == 4);
    assert(info.head_dim == 8 && info.n_vocab == 512 && info.n_ctx_train == 512);
    assert(fabsf(info.rms_norm_eps - 1e-5f) < 1e-12f && info.rope_theta == 10000.0f);
    assert(!strcmp(info.rope_scaling, "none") && info.rope_factor == 1.0f && info.rope_original_ctx == 512);
    assert(info.tied_embeddings && info.bos_id == 1 && info.n_eos == 1 && info.eos_ids[0] == 2);
    assert(info.default_temperature == 0.8f && info.default_top_p == 0.95f);

    l8_safetensors *st;
    expect(l8_st_open_dir(STORIES, &st, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(l8_st_count(st) == 47);
    assert(l8_st_data_bytes(st) == 260032ull * 4);
    const l8_tensor *t = l8_st_find(st, "model.embed_tokens.weight");
    assert(t && t->dtype == L8_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 512 && t->shape[1] == 64);
    assert(t->nbytes == 512 * 64 * 4);
    t = l8_st_find(st, "model.layers.4.self_attn.k_proj.weight");
    assert(t && t->ndim == 2 && t->shape[0] == 32 && t->shape[1] == 64);
    t = l8_st_find(st, "model.layers.0.mlp.down_proj.weight");
    assert(t && t->shape[0] == 64 && t->shape[1] == 172);
    t = l8_st_find(st, "model.norm.weight");
    assert(t && t->ndim == 1 && t->shape[0] == 64);
    assert(!l8_st_find(st, "lm_head.weight") && l8_st_index(st, "nope") == SIZE_MAX);
    for (size_t i = 1; i < l8_st_count(st); i++) assert(strcmp(l8_st_name(st, i - 1), l8_st_name(st, i)) < 0);
    assert(!strcmp(l8_st_dtype(st, 0), "F32") && strstr(l8_st_file(st, 0), "model.safetensors"));
    /* The README says the data section starts at 4864 and the first tensor in header order is at 0. */
    float first;
    memcpy(&first, t->data, 4);
    assert(isfinite(first));

    l8_weights w;
    expect(l8_hf_bind_weights(st, &info, &w, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(w.output.data == w.tok_embd.data && w.layers);
    assert(w.layers[2].wk.shape[0] == 32 && w.layers[4].w_down.shape[1] == 172);
    assert(w.layers[3].attn_norm.data == l8_st_find(st, "model.layers.3.input_layernorm.weight")->data);
    uint64_t np, nb;
    const char *dt;
    l8_weights_stats(&w, &info, &np, &nb, &dt);
    printf("  n_params %llu, bytes %llu, dtype %s\n", (unsigned long long)np, (unsigned long long)nb, dt);
    assert(np == 260032 && nb == 260032ull * 4 && !strcmp(dt, "f32"));
    l8_weights_free(&w);
    l8_weights_free(&w); /* idempotent */
    l8_st_close(st);

    expect(l8_st_open_file(STORIES "/model.safetensors", &st, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(l8_st_count(st) == 47);
    l8_st_close(st);
    expect(l8_st_open_dir(STORIES "/model.safetensors", &st, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(l8_st_count(st) == 47);
    l8_st_close(st);
}

static void test_llama32_configs(void) {
    printf("llama 3.2 configs\n");
    l8_err e = {{0}};
    llm8_model_info i3, i1;
    expect(l8_hf_config_load("tests/data/llama-3.2-3b-instruct-config", &i3, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(i3.n_embd == 3072 && i3.n_ff == 8192 && i3.n_layer == 28 && i3.n_head == 24 && i3.n_kv_head == 8);
    assert(i3.head_dim == 128 && i3.n_vocab == 128256 && i3.n_ctx_train == 131072);
    assert(i3.rope_theta == 500000.0f && !strcmp(i3.rope_scaling, "llama3"));
    assert(i3.rope_factor == 32.0f && i3.rope_low_freq_factor == 1.0f && i3.rope_high_freq_factor == 4.0f);
    assert(i3.rope_original_ctx == 8192 && i3.tied_embeddings && i3.bos_id == 128000);
    assert(i3.n_eos == 3 && i3.eos_ids[0] == 128001 && i3.eos_ids[1] == 128008 && i3.eos_ids[2] == 128009);
    assert(fabsf(i3.default_temperature - 0.6f) < 1e-7f && fabsf(i3.default_top_p - 0.9f) < 1e-7f);
    assert(fabsf(i3.rms_norm_eps - 1e-5f) < 1e-12f && !strcmp(i3.architecture, "llama"));
    assert(i3.n_params == 0 && i3.weight_bytes == 0 && i3.dtype[0] == 0);

    expect(l8_hf_config_load("tests/data/llama-3.2-1b-instruct-config/", &i1, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(i1.n_embd == 2048 && i1.n_ff == 8192 && i1.n_layer == 16 && i1.n_head == 32 && i1.n_kv_head == 8);
    assert(i1.head_dim == 64 && i1.n_vocab == 128256 && i1.n_ctx_train == 131072);
    assert(!strcmp(i1.rope_scaling, "llama3") && i1.rope_factor == 32.0f && i1.rope_original_ctx == 8192);
    assert(i1.tied_embeddings && i1.n_eos == 3 && i1.bos_id == 128000);
}

/* ---------------------------------------------------------------- bad configs */

typedef struct cfg_case {
    const char *what, *key, *json; /* json NULL: delete key */
    llm8_status want;
    const char *mention;
} cfg_case;

static void test_bad_configs(void) {
    printf("bad configs\n");
    l8_err e;
    llm8_model_info info;
    char *dir = make_tmp();
    char cfg[512], gen[512];
    path_of(cfg, sizeof cfg, dir, "config.json");
    path_of(gen, sizeof gen, dir, "generation_config.json");

    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_IO_ERROR, &e, cfg, NULL);
    write_text(dir, "config.json", "{\"hidden_size\": 64,, }");
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_BAD_FORMAT, &e, cfg, NULL);
    write_text(dir, "config.json", "[1, 2]");
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_BAD_FORMAT, &e, cfg, NULL);

    static const cfg_case cases[] = {
        {"missing field", "hidden_size", NULL, LLM8_STATUS_BAD_FORMAT, "hidden_size"},
        {"missing vocab", "vocab_size", NULL, LLM8_STATUS_BAD_FORMAT, "vocab_size"},
        {"zero hidden", "hidden_size", "0", LLM8_STATUS_BAD_FORMAT, "hidden_size"},
        {"huge hidden", "hidden_size", "100000", LLM8_STATUS_BAD_FORMAT, "hidden_size"},
        {"string hidden", "hidden_size", "\"64\"", LLM8_STATUS_BAD_FORMAT, "hidden_size"},
        {"layers", "num_hidden_layers", "5000", LLM8_STATUS_BAD_FORMAT, "num_hidden_layers"},
        {"vocab 0", "vocab_size", "0", LLM8_STATUS_BAD_FORMAT, "vocab_size"},
        {"vocab huge", "vocab_size", "10000000", LLM8_STATUS_BAD_FORMAT, "vocab_size"},
        {"eps 0", "rms_norm_eps", "0", LLM8_STATUS_BAD_FORMAT, "rms_norm_eps"},
        {"eps negative", "rms_norm_eps", "-1e-5", LLM8_STATUS_BAD_FORMAT, "rms_norm_eps"},
        {"kv not dividing", "num_key_value_heads", "3", LLM8_STATUS_BAD_FORMAT, "num_key_value_heads"},
        {"odd head_dim", "head_dim", "7", LLM8_STATUS_BAD_FORMAT, "head_dim"},
        {"bos out of vocab", "bos_token_id", "512", LLM8_STATUS_BAD_FORMAT, "bos_token_id"},
        {"eos out of vocab", "eos_token_id", "[2, 600]", LLM8_STATUS_BAD_FORMAT, "eos_token_id"},
        {"eos string", "eos_token_id", "\"</s>\"", LLM8_STATUS_BAD_FORMAT, "eos_token_id"},
        {"unknown architecture", "architectures", "[\"MistralForCausalLM\"]", LLM8_STATUS_UNSUPPORTED,
         "MistralForCausalLM"},
        {"architectures not list", "architectures", "\"LlamaForCausalLM\"", LLM8_STATUS_BAD_FORMAT, "architectures"},
        {"rope yarn", "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", LLM8_STATUS_UNSUPPORTED, "yarn"},
        {"rope linear (old key)", "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", LLM8_STATUS_UNSUPPORTED,
         "linear"},
        {"rope dynamic", "rope_scaling", "{\"type\": \"dynamic\", \"factor\": 2.0}", LLM8_STATUS_UNSUPPORTED, "dynamic"},
        {"rope llama3 missing key", "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0}",
         LLM8_STATUS_BAD_FORMAT, "low_freq_factor"},
        {"rope not object", "rope_scaling", "3", LLM8_STATUS_BAD_FORMAT, "rope_scaling"},
        {"attention bias", "attention_bias", "true", LLM8_STATUS_UNSUPPORTED, "attention_bias"},
        {"mlp bias", "mlp_bias", "true", LLM8_STATUS_UNSUPPORTED, "mlp_bias"},
        {"gelu", "hidden_act", "\"gelu\"", LLM8_STATUS_UNSUPPORTED, "gelu"},
        {"tie not bool", "tie_word_embeddings", "1", LLM8_STATUS_BAD_FORMAT, "tie_word_embeddings"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = stories_config();
        if (cases[i].json) {
            json_error_t je;
            json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, &je);
            assert(v);
            json_object_set_new(j, cases[i].key, v);
        } else {
            json_object_del(j, cases[i].key);
        }
        write_json(dir, "config.json", j);
        json_decref(j);
        printf(" %s:\n", cases[i].what);
        expect(l8_hf_config_load(dir, &info, &e), cases[i].want, &e, cfg, cases[i].mention);
        assert(info.n_embd == 0); /* nothing half-filled */
    }

    /* model_type alone is accepted; model_type of another family is not. */
    json_t *j = stories_config();
    json_object_del(j, "architectures");
    write_json(dir, "config.json", j);
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    json_object_set_new(j, "model_type", json_string("mistral"));
    write_json(dir, "config.json", j);
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_UNSUPPORTED, &e, cfg, "mistral");
    json_decref(j);

    /* Defaults, rope "default", eos merging with generation_config. */
    j = stories_config();
    json_object_del(j, "tie_word_embeddings");
    json_object_del(j, "num_key_value_heads");
    json_object_del(j, "head_dim");
    json_object_del(j, "rope_theta");
    json_object_set_new(j, "rope_scaling", json_pack("{s:s}", "rope_type", "default"));
    json_object_set_new(j, "eos_token_id", json_pack("[i,i]", 2, 3));
    write_json(dir, "config.json", j);
    json_decref(j);
    write_text(dir, "generation_config.json", "{\"eos_token_id\": [3, 4, 2], \"temperature\": 0.7, \"top_p\": 0.5}");
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(!info.tied_embeddings && info.n_kv_head == 8 && info.head_dim == 8 && info.rope_theta == 10000.0f);
    assert(!strcmp(info.rope_scaling, "none"));
    assert(info.n_eos == 3 && info.eos_ids[0] == 2 && info.eos_ids[1] == 3 && info.eos_ids[2] == 4);
    assert(fabsf(info.default_temperature - 0.7f) < 1e-7f && info.default_top_p == 0.5f);

    write_text(dir, "generation_config.json", "{\"temperature\": ");
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_BAD_FORMAT, &e, gen, NULL);
    write_text(dir, "generation_config.json", "{\"top_p\": 2}");
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_BAD_FORMAT, &e, gen, "top_p");
    rm_tree(dir);
}

/* ---------------------------------------------------------------- bad safetensors */

static void test_bad_safetensors(void) {
    printf("bad safetensors\n");
    l8_err e;
    l8_safetensors *st = NULL;
    char *dir = make_tmp();
    char p[512];
    path_of(p, sizeof p, dir, "model.safetensors");
    float four[4] = {1, 2, 3, 4};

    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_IO_ERROR, &e, dir, NULL);
    assert(st == NULL);

    write_bytes(dir, "model.safetensors", "\x10\0\0\0", 4);
    printf(" truncated header:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, p, NULL);
    write_bytes(dir, "model.safetensors", "", 0);
    printf(" empty file:\n");
    expect(l8_st_open_file(p, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, p, NULL);

    unsigned char buf[64] = {0xe8, 0x03}; /* header length 1000 in a 64-byte file */
    memcpy(buf + 8, "{}", 2);
    write_bytes(dir, "model.safetensors", buf, sizeof buf);
    printf(" header length beyond file:\n");
    expect(l8_st_open_file(p, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, p, "beyond the end");
    memset(buf, 0, 8);
    buf[5] = 1; /* 2^40 */
    write_bytes(dir, "model.safetensors", buf, sizeof buf);
    printf(" absurd header length:\n");
    expect(l8_st_open_file(p, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, p, "absurd");

    static const struct {
        const char *what, *header, *mention;
    } bad[] = {
        {"invalid JSON header", "{\"a\": {\"dtype\": \"F32\",,}}", "invalid JSON"},
        {"header not an object", "[1, 2, 3]", "not a JSON object"},
        {"entry not an object", "{\"a\": 5}", "\"a\""},
        {"no dtype", "{\"a\": {\"shape\": [4], \"data_offsets\": [0, 16]}}", "dtype"},
        {"shape not a list", "{\"a\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", "shape"},
        {"negative dim", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}", "shape"},
        {"overflowing shape",
         "{\"a\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 16]}}",
         "too large"},
        {"offsets out of range", "{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]}}",
         "beyond the data section"},
        {"end before begin", "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", "data_offsets"},
        {"negative offset", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", "data_offsets"},
        {"three offsets", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", "data_offsets"},
        {"size mismatch", "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}", "needs 12"},
        {"size mismatch, known odd dtype", "{\"a\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 16]}}",
         "needs 8"},
        {"duplicate key",
         "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, \"a\": {\"dtype\": \"F32\", "
         "\"shape\": [4], \"data_offsets\": [0, 16]}}",
         "duplicate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_raw_st(dir, "model.safetensors", bad[i].header, four, sizeof four);
        printf(" %s:\n", bad[i].what);
        expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, p, bad[i].mention);
        assert(st == NULL);
    }

    /* Odd dtypes open; they fail only when asked for. F16/BF16, scalars and unaligned data work. */
    write_raw_st(dir, "model.safetensors",
                 "{\"__metadata__\": {\"format\": \"pt\"}, \"q\": {\"dtype\": \"Q4_K\", \"shape\": [3], "
                 "\"data_offsets\": [0, 3]}, \"pos\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [3, 11]}, "
                 "\"h\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [11, 15]}, \"s\": {\"dtype\": \"F32\", "
                 "\"shape\": [], \"data_offsets\": [15, 16]}}",
                 four, sizeof four);
    printf(" odd dtypes but a size error in a scalar:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, p, "\"s\"");
    unsigned char d20[20] = {0};
    write_raw_st(dir, "model.safetensors",
                 "{\"__metadata__\": {\"format\": \"pt\"}, \"q\": {\"dtype\": \"Q4_K\", \"shape\": [3], "
                 "\"data_offsets\": [0, 3]}, \"pos\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [3, 11]}, "
                 "\"h\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [11, 15]}, \"s\": {\"dtype\": \"F32\", "
                 "\"shape\": [], \"data_offsets\": [15, 19]}, \"b\": {\"dtype\": \"BF16\", \"shape\": [0, 5], "
                 "\"data_offsets\": [19, 19]}, \"r5\": {\"dtype\": \"F32\", \"shape\": [1, 1, 1, 1, 1], "
                 "\"data_offsets\": [15, 19]}}",
                 d20, sizeof d20);
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(l8_st_count(st) == 6 && l8_st_data_bytes(st) == 3 + 8 + 4 + 4 + 0 + 4);
    assert(!l8_st_find(st, "q") && !l8_st_find(st, "pos") && !l8_st_find(st, "r5"));
    const l8_tensor *t = l8_st_find(st, "h");
    assert(t && t->dtype == L8_DTYPE_F16 && t->ndim == 1 && t->shape[0] == 2 && t->nbytes == 4);
    t = l8_st_find(st, "s");
    assert(t && t->ndim == 0 && t->nbytes == 4 && l8_tensor_nelem(t) == 1);
    t = l8_st_find(st, "b");
    assert(t && t->dtype == L8_DTYPE_BF16 && t->nbytes == 0);
    printf(" unknown dtype, needed:\n");
    expect(l8_st_get(st, "q", &t, &e), LLM8_STATUS_UNSUPPORTED, &e, p, "Q4_K");
    printf(" I64, needed:\n");
    expect(l8_st_get(st, "pos", &t, &e), LLM8_STATUS_UNSUPPORTED, &e, p, "I64");
    printf(" rank 5, needed:\n");
    expect(l8_st_get(st, "r5", &t, &e), LLM8_STATUS_UNSUPPORTED, &e, p, "r5");
    printf(" absent:\n");
    expect(l8_st_get(st, "zz", &t, &e), LLM8_STATUS_BAD_FORMAT, &e, p, "zz");
    l8_st_close(st);
    rm_tree(dir);
}

/* ---------------------------------------------------------------- weights and shards */

static void test_weights(const l8_safetensors *ref) {
    printf("weight binding\n");
    l8_err e;
    tw ts[64];
    memset(ts, 0, sizeof ts);
    size_t n = collect(ref, ts);
    json_t *cfg = stories_config();

    struct {
        const char *what, *tensor, *dtype;
        int64_t d0, d1;
        llm8_status want;
        const char *mention;
    } mods[] = {
        {"wrong shape", "model.layers.1.self_attn.k_proj.weight", "F32", 64, 32, LLM8_STATUS_BAD_FORMAT,
         "expected [32, 64]"},
        {"vector as matrix", "model.norm.weight", "F32", 8, 8, LLM8_STATUS_BAD_FORMAT, "expected [64]"},
        {"I64 weight", "model.layers.3.mlp.up_proj.weight", "I64", 172, 32, LLM8_STATUS_UNSUPPORTED, "I64"},
        {"unknown dtype on a needed tensor", "model.norm.weight", "XYZ", 64, -1, LLM8_STATUS_UNSUPPORTED, "XYZ"},
        {"F8 embedding", "model.embed_tokens.weight", "F8_E4M3", 512, 256, LLM8_STATUS_UNSUPPORTED, "F8_E4M3"},
    };
    for (size_t m = 0; m < sizeof mods / sizeof mods[0]; m++) {
        char *dir = make_tmp();
        tw copy[64];
        memcpy(copy, ts, sizeof copy);
        tw *x = find_tw(copy, n, mods[m].tensor);
        x->dtype = mods[m].dtype;
        x->ndim = mods[m].d1 < 0 ? 1 : 2;
        x->shape[0] = mods[m].d0;
        x->shape[1] = mods[m].d1;
        printf(" %s:\n", mods[m].what);
        char p[512];
        path_of(p, sizeof p, dir, "model.safetensors");
        expect(load_model(dir, cfg, copy, n, &e), mods[m].want, &e, p, mods[m].mention);
        assert(strstr(e.msg, mods[m].tensor));
        rm_tree(dir);
    }

    /* A missing layer tensor; an untied config without lm_head; an extra I64 tensor is harmless. */
    char *dir = make_tmp();
    char p[512];
    path_of(p, sizeof p, dir, "model.safetensors");
    tw copy[64];
    memcpy(copy, ts, sizeof copy);
    size_t k = (size_t)(find_tw(copy, n, "model.layers.4.mlp.down_proj.weight") - copy);
    copy[k] = copy[n - 1];
    printf(" missing tensor:\n");
    expect(load_model(dir, cfg, copy, n - 1, &e), LLM8_STATUS_BAD_FORMAT, &e, p, "model.layers.4.mlp.down_proj.weight");

    memcpy(copy, ts, sizeof copy);
    int64_t pos[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    copy[n] = (tw){"model.rotary_emb.position_ids", "I64", 1, {8}, pos, sizeof pos};
    printf(" extra I64 tensor:\n");
    expect(load_model(dir, cfg, copy, n + 1, &e), LLM8_STATUS_OK, &e, NULL, NULL);

    json_object_set_new(cfg, "tie_word_embeddings", json_false());
    printf(" untied without lm_head:\n");
    expect(load_model(dir, cfg, ts, n, &e), LLM8_STATUS_BAD_FORMAT, &e, p, "lm_head.weight");

    memcpy(copy, ts, sizeof copy);
    copy[n] = *find_tw(copy, n, "model.embed_tokens.weight");
    snprintf(copy[n].name, sizeof copy[n].name, "lm_head.weight");
    write_st(dir, "model.safetensors", copy, n + 1);
    write_json(dir, "config.json", cfg);
    llm8_model_info info;
    l8_safetensors *st;
    l8_weights w;
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    expect(l8_hf_bind_weights(st, &info, &w, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(w.output.data != w.tok_embd.data && !memcmp(w.output.data, w.tok_embd.data, w.tok_embd.nbytes));
    uint64_t np, nb;
    const char *dt;
    l8_weights_stats(&w, &info, &np, &nb, &dt);
    assert(np == 260032 + 512 * 64 && nb == np * 4);
    l8_weights_free(&w);
    l8_st_close(st);
    json_decref(cfg);
    rm_tree(dir);
}

static void test_shards(const l8_safetensors *ref) {
    printf("sharded\n");
    l8_err e;
    tw ts[64];
    memset(ts, 0, sizeof ts);
    size_t n = collect(ref, ts), half = n / 2;
    char *dir = make_tmp();
    char ipath[512];
    path_of(ipath, sizeof ipath, dir, "model.safetensors.index.json");
    json_t *cfg = stories_config();
    write_json(dir, "config.json", cfg);
    json_decref(cfg);
    write_st(dir, "model-00001-of-00002.safetensors", ts, half);
    write_st(dir, "model-00002-of-00002.safetensors", ts + half, n - half);

    json_t *wm = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(wm, ts[i].name,
                            json_string(i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"));
    json_t *index = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)l8_st_data_bytes(ref), "weight_map",
                              wm);
    write_json(dir, "model.safetensors.index.json", index);

    l8_safetensors *st;
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    assert(l8_st_count(st) == n && l8_st_data_bytes(st) == l8_st_data_bytes(ref));
    assert(!strcmp(l8_st_source(st), ipath));
    for (size_t i = 0; i < n; i++) {
        const l8_tensor *a = l8_st_tensor(ref, i), *b = l8_st_find(st, l8_st_name(ref, i));
        assert(b && a->nbytes == b->nbytes && a->ndim == b->ndim && a->data != b->data);
        assert(!memcmp(a->shape, b->shape, sizeof a->shape) && !memcmp(a->data, b->data, a->nbytes));
    }
    assert(strstr(l8_st_file(st, l8_st_index(st, ts[0].name)), "00001") &&
           strstr(l8_st_file(st, l8_st_index(st, ts[n - 1].name)), "00002"));
    llm8_model_info info;
    l8_weights w;
    expect(l8_hf_config_load(dir, &info, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    expect(l8_hf_bind_weights(st, &info, &w, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    l8_weights_free(&w);
    l8_st_close(st);

    /* The index names a shard that is not there. */
    json_object_set_new(wm, ts[0].name, json_string("model-00003-of-00002.safetensors"));
    write_json(dir, "model.safetensors.index.json", index);
    printf(" missing shard:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_IO_ERROR, &e, ipath, "model-00003-of-00002.safetensors");

    /* The index puts a tensor in the wrong shard. */
    json_object_set_new(wm, ts[0].name, json_string("model-00002-of-00002.safetensors"));
    write_json(dir, "model.safetensors.index.json", index);
    printf(" tensor in the wrong shard:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, ipath, ts[0].name);

    /* A shard name that leaves the folder. */
    json_object_set_new(wm, ts[0].name, json_string("../model-00001-of-00002.safetensors"));
    write_json(dir, "model.safetensors.index.json", index);
    printf(" shard outside the folder:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, ipath, ts[0].name);

    /* The same tensor in both shards. */
    json_object_set_new(wm, ts[0].name, json_string("model-00001-of-00002.safetensors"));
    write_json(dir, "model.safetensors.index.json", index);
    memcpy(&ts[n], &ts[0], sizeof ts[0]);
    write_st(dir, "model-00002-of-00002.safetensors", ts + half, n - half + 1);
    printf(" tensor in two shards:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, ipath, ts[0].name);

    write_text(dir, "model.safetensors.index.json", "{\"metadata\": {}}");
    printf(" index without weight_map:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, ipath, "weight_map");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": ");
    printf(" index not JSON:\n");
    expect(l8_st_open_dir(dir, &st, &e), LLM8_STATUS_BAD_FORMAT, &e, ipath, NULL);
    json_decref(index);
    rm_tree(dir);
}

int main(void) {
    test_stories();
    test_llama32_configs();
    test_bad_configs();
    test_bad_safetensors();
    l8_safetensors *ref;
    l8_err e;
    expect(l8_st_open_dir(STORIES, &ref, &e), LLM8_STATUS_OK, &e, NULL, NULL);
    test_weights(ref);
    test_shards(ref);
    l8_st_close(ref);
    printf("test_format: %d checks passed\n", n_checked);
    return 0;
}
