/* Tokenizer tests: the Llama 3 and stories260k vectors, golden prompts, streaming decode, and
 * error handling on bad text and bad tokenizer files. Run from the project root. */
#define _POSIX_C_SOURCE 200809L /* getline, mkdtemp */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm8.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

static int failures = 0;

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    printf("  %s [", label);
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("]\n");
}

static void print_text(const char *s, size_t len) {
    printf("  text \"");
    for (size_t i = 0; i < len && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') printf("\\x%02x", c);
        else putchar(c);
    }
    printf(len > 300 ? "...\"\n" : "\"\n");
}

/* Tokenizes into a heap array; returns the count (asserting OK). */
static int32_t *encode(const llm8_tokenizer *tok, const char *s, size_t len, uint32_t flags, size_t *n) {
    size_t need = 0;
    llm8_status st = llm8_tokenize(tok, s, len, flags, NULL, 0, &need);
    assert(st == LLM8_STATUS_OK || st == LLM8_STATUS_INVALID_ARGUMENT);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    assert(ids);
    st = llm8_tokenize(tok, s, len, flags, ids, need, n);
    assert(st == LLM8_STATUS_OK && *n == need);
    return ids;
}

/* Streams ids through a decoder; checks that every piece is valid UTF-8 and returns the text. */
static char *decode(const llm8_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, size_t *out_len) {
    llm8_decoder *d;
    assert(llm8_decoder_create(tok, skip_special, &d) == LLM8_STATUS_OK);
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    assert(out);
    for (size_t i = 0; i <= n; i++) {
        const char *t;
        size_t tl;
        llm8_status st = i < n ? llm8_decoder_push(d, ids[i], &t, &tl) : llm8_decoder_flush(d, &t, &tl);
        assert(st == LLM8_STATUS_OK);
        if (!l8_utf8_valid(t, tl, NULL)) {
            printf("FAIL: decoder produced invalid UTF-8 at token %zu\n", i);
            failures++;
        }
        while (len + tl + 1 > cap) out = realloc(out, cap *= 2);
        assert(out);
        memcpy(out + len, t, tl);
        len += tl;
    }
    assert(!llm8_decoder_pending(d));
    llm8_decoder_free(d);
    *out_len = len;
    return out;
}

static bool ids_equal(const json_t *expect, const int32_t *got, size_t n) {
    if (json_array_size(expect) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(expect, i)) != got[i]) return false;
    return true;
}

static void print_expected(const json_t *expect) {
    size_t n = json_array_size(expect);
    int32_t *e = malloc((n + 1) * sizeof *e);
    for (size_t i = 0; i < n; i++) e[i] = (int32_t)json_integer_value(json_array_get(expect, i));
    print_ids("expected", e, n);
    free(e);
}

/* Runs every record of a vectors file; streaming is checked on the categories in stream_cats. */
static void run_vectors(const char *label, const llm8_tokenizer *tok, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("FAIL: cannot open %s\n", path);
        failures++;
        return;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    int total = 0, ok = 0, rt = 0, rt_ok = 0;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        json_error_t je;
        json_t *r = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &je);
        if (!r) continue;
        total++;
        const json_t *jt = json_object_get(r, "text");
        const char *text = json_string_value(jt);
        size_t tlen = json_string_length(jt);
        uint32_t flags = json_is_true(json_object_get(r, "special")) ? LLM8_TOKENIZE_PARSE_SPECIAL : 0;
        size_t n;
        int32_t *ids = encode(tok, text, tlen, flags, &n);
        const json_t *expect = json_object_get(r, "ids");
        if (ids_equal(expect, ids, n)) {
            ok++;
        } else {
            printf("FAIL %s: %s mismatch (category %s)\n", label, label,
                   json_string_value(json_object_get(r, "category")));
            print_text(text, tlen);
            print_expected(expect);
            print_ids("got     ", ids, n);
            failures++;
        }
        if (json_is_true(json_object_get(r, "roundtrip"))) {
            rt++;
            size_t dl;
            /* Decode the expected ids so a decoder bug is not hidden by an encoder bug. */
            size_t en = json_array_size(expect);
            int32_t *eids = malloc((en + 1) * sizeof *eids);
            for (size_t i = 0; i < en; i++) eids[i] = (int32_t)json_integer_value(json_array_get(expect, i));
            char *dtext = decode(tok, eids, en, false, &dl);
            if (dl == tlen && memcmp(dtext, text, tlen) == 0) {
                rt_ok++;
            } else {
                printf("FAIL %s: decode mismatch\n", label);
                print_text(text, tlen);
                print_text(dtext, dl);
                failures++;
            }
            free(dtext);
            free(eids);
        }
        free(ids);
        json_decref(r);
    }
    free(line);
    fclose(f);
    printf("%s: %d/%d ok, decode roundtrip %d/%d ok\n", label, ok, total, rt_ok, rt);
    if (total == 0) failures++;
}

static llm8_tokenizer *load(const char *dir) {
    llm8_tokenizer *tok = NULL;
    char err[512];
    llm8_status st = llm8_tokenizer_load(dir, &tok, err, sizeof err);
    if (st) {
        printf("FAIL: loading %s: %s\n", dir, err);
        exit(1);
    }
    return tok;
}

static void test_llama3(void) {
    llm8_tokenizer *tok = load("models/llama3-tokenizer");
    assert(llm8_tokenizer_n_vocab(tok) == 128256);
    assert(llm8_tokenizer_bos(tok) == 128000);
    assert(llm8_tokenizer_eos(tok) == 128009);
    assert(l8_tokenizer_add_bos(tok));
    assert(llm8_tokenizer_is_special(tok, 128009) && !llm8_tokenizer_is_special(tok, 9906));
    assert(strcmp(llm8_tokenizer_piece(tok, 128009), "<|eot_id|>") == 0);
    assert(llm8_tokenizer_piece(tok, 128256) == NULL && llm8_tokenizer_piece(tok, -1) == NULL);
    assert(l8_tokenizer_find(tok, "<|start_header_id|>", 19) == 128006);
    assert(l8_tokenizer_find(tok, "Hello", 5) == 9906);
    assert(l8_tokenizer_find(tok, "no such piece!", 14) == -1);
    assert(l8_tokenizer_chat_template(tok) && strstr(l8_tokenizer_chat_template(tok), "<|eot_id|>"));
    assert(strcmp(l8_tokenizer_bos_str(tok), "<|begin_of_text|>") == 0);

    run_vectors("llama3", tok, "tests/data/tokenizer/llama3_vectors.jsonl");

    /* BOS, and cap handling. */
    int32_t ids[4];
    size_t n;
    assert(llm8_tokenize(tok, "Hello world", 11, LLM8_TOKENIZE_ADD_BOS, ids, 4, &n) == LLM8_STATUS_OK);
    assert(n == 3 && ids[0] == 128000 && ids[1] == 9906 && ids[2] == 1917);
    assert(llm8_tokenize(tok, "Hello world", 11, 0, ids, 1, &n) == LLM8_STATUS_INVALID_ARGUMENT && n == 2);
    assert(llm8_tokenize(tok, "", 0, 0, NULL, 0, &n) == LLM8_STATUS_OK && n == 0);
    /* Invalid UTF-8: a stray continuation byte, an overlong form, a surrogate, a truncated tail. */
    const char *bad[] = {"a\x80", "\xC0\xAF", "\xED\xA0\x80", "ok\xE2\x82"};
    for (int i = 0; i < 4; i++)
        assert(llm8_tokenize(tok, bad[i], strlen(bad[i]), 0, ids, 4, &n) == LLM8_STATUS_INVALID_ARGUMENT);
    assert(llm8_tokenize(NULL, "a", 1, 0, ids, 4, &n) == LLM8_STATUS_INVALID_ARGUMENT);

    /* Skip special in the decoder. */
    size_t dl;
    int32_t sp[] = {128000, 9906, 1917, 128009};
    char *d = decode(tok, sp, 4, true, &dl);
    assert(dl == 11 && memcmp(d, "Hello world", 11) == 0);
    free(d);
    /* A token ending inside a character: raw bytes E2 82 (from "€" split) then a space. */
    llm8_decoder *dec;
    assert(llm8_decoder_create(tok, false, &dec) == LLM8_STATUS_OK);
    const char *t;
    size_t tl;
    assert(llm8_decoder_push(dec, 128256, &t, &tl) == LLM8_STATUS_INVALID_ARGUMENT);
    int32_t b_e2 = l8_tokenizer_find(tok, "\xC3\xA2", 2); /* byte 0xE2 maps to U+00E2 */
    assert(b_e2 >= 0);
    assert(llm8_decoder_push(dec, b_e2, &t, &tl) == LLM8_STATUS_OK && tl == 0 && llm8_decoder_pending(dec));
    assert(llm8_decoder_push(dec, 220 /* "Ġ" = space */, &t, &tl) == LLM8_STATUS_OK);
    assert(tl == 4 && memcmp(t, "\xEF\xBF\xBD ", 4) == 0);
    assert(llm8_decoder_push(dec, b_e2, &t, &tl) == LLM8_STATUS_OK && tl == 0);
    assert(llm8_decoder_flush(dec, &t, &tl) == LLM8_STATUS_OK && tl == 3 && memcmp(t, "\xEF\xBF\xBD", 3) == 0);
    assert(!llm8_decoder_pending(dec));
    llm8_decoder_free(dec);
    llm8_tokenizer_free(tok);
}

static void test_stories(void) {
    llm8_tokenizer *tok = load("models/stories260k");
    assert(llm8_tokenizer_n_vocab(tok) == 512);
    assert(llm8_tokenizer_bos(tok) == 1 && llm8_tokenizer_eos(tok) == 2 && l8_tokenizer_add_bos(tok));
    assert(l8_tokenizer_chat_template(tok) == NULL);
    run_vectors("stories260k", tok, "models/stories260k/tokenizer_vectors.jsonl");

    json_error_t je;
    json_t *g = json_load_file("models/stories260k/golden.json", JSON_ALLOW_NUL, &je);
    assert(g);
    const json_t *prompts = json_object_get(g, "prompts");
    size_t ok = 0, text_ok = 0;
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        const json_t *p = json_array_get(prompts, i);
        const json_t *jt = json_object_get(p, "prompt");
        size_t n;
        int32_t *ids = encode(tok, json_string_value(jt), json_string_length(jt),
                              LLM8_TOKENIZE_ADD_BOS | LLM8_TOKENIZE_PARSE_SPECIAL, &n);
        const json_t *expect = json_object_get(p, "input_ids");
        if (ids_equal(expect, ids, n)) {
            ok++;
        } else {
            printf("FAIL golden: prompt %zu\n", i);
            print_text(json_string_value(jt), json_string_length(jt));
            print_expected(expect);
            print_ids("got     ", ids, n);
            failures++;
        }
        /* full_text = decode(prompt ids + greedy ids, skipping special tokens). */
        const json_t *greedy = json_object_get(p, "greedy_ids");
        size_t m = json_array_size(greedy);
        int32_t *all = malloc((n + m) * sizeof *all);
        memcpy(all, ids, n * sizeof *ids);
        for (size_t k = 0; k < m; k++) all[n + k] = (int32_t)json_integer_value(json_array_get(greedy, k));
        size_t dl;
        char *d = decode(tok, all, n + m, true, &dl);
        const json_t *full = json_object_get(p, "full_text");
        if (json_is_string(full) && dl == json_string_length(full) && memcmp(d, json_string_value(full), dl) == 0) {
            text_ok++;
        } else {
            printf("FAIL golden: full_text of prompt %zu\n", i);
            print_text(d, dl);
            failures++;
        }
        free(d);
        free(all);
        free(ids);
    }
    printf("stories260k golden: %zu/%zu input_ids ok, %zu/%zu full_text ok\n", ok, json_array_size(prompts),
           text_ok, json_array_size(prompts));
    json_decref(g);

    /* Byte fallback decode: <0xE2> then 'A' is an invalid sequence -> U+FFFD then "A". */
    llm8_decoder *dec;
    assert(llm8_decoder_create(tok, false, &dec) == LLM8_STATUS_OK);
    const char *t;
    size_t tl;
    int32_t b_e2 = l8_tokenizer_find(tok, "<0xE2>", 6), b_a = l8_tokenizer_find(tok, "<0x41>", 6);
    assert(b_e2 == 3 + 0xE2 && b_a == 3 + 0x41);
    assert(llm8_decoder_push(dec, b_e2, &t, &tl) == LLM8_STATUS_OK && tl == 0);
    assert(llm8_decoder_push(dec, b_a, &t, &tl) == LLM8_STATUS_OK);
    assert(tl == 4 && memcmp(t, "\xEF\xBF\xBD" "A", 4) == 0);
    llm8_decoder_free(dec);
    /* The leading space is stripped once, at the start of the stream only. */
    int32_t two[] = {403, 403}; /* "▁Once▁Once" */
    size_t dl;
    char *d = decode(tok, two, 2, false, &dl);
    assert(dl == 9 && memcmp(d, "Once Once", 9) == 0);
    free(d);
    llm8_tokenizer_free(tok);
}

/* Streaming: the emoji/CJK records, fed one token at a time, give valid pieces that add up. */
static void test_streaming(void) {
    llm8_tokenizer *tok = load("models/llama3-tokenizer");
    FILE *f = fopen("tests/data/tokenizer/llama3_vectors.jsonl", "rb");
    assert(f);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    int n_rec = 0, n_ok = 0, n_split = 0;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        json_error_t je;
        json_t *r = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &je);
        if (!r) continue;
        const char *cat = json_string_value(json_object_get(r, "category"));
        if (cat && (!strcmp(cat, "emoji") || !strcmp(cat, "chinese") || !strcmp(cat, "japanese") ||
                    !strcmp(cat, "korean") || !strcmp(cat, "thai") || !strcmp(cat, "hindi"))) {
            n_rec++;
            const json_t *jt = json_object_get(r, "text");
            size_t n, dl;
            int32_t *ids = encode(tok, json_string_value(jt), json_string_length(jt), LLM8_TOKENIZE_PARSE_SPECIAL, &n);
            llm8_decoder *dec;
            assert(llm8_decoder_create(tok, false, &dec) == LLM8_STATUS_OK);
            for (size_t i = 0; i < n; i++) {
                const char *t;
                size_t tl;
                assert(llm8_decoder_push(dec, ids[i], &t, &tl) == LLM8_STATUS_OK);
                if (llm8_decoder_pending(dec)) n_split++;
            }
            llm8_decoder_free(dec);
            char *d = decode(tok, ids, n, false, &dl); /* checks each piece's validity */
            if (dl == json_string_length(jt) && memcmp(d, json_string_value(jt), dl) == 0) n_ok++;
            else {
                printf("FAIL streaming:\n");
                print_text(json_string_value(jt), json_string_length(jt));
                failures++;
            }
            free(d);
            free(ids);
        }
        json_decref(r);
    }
    free(line);
    fclose(f);
    printf("streaming: %d/%d ok (%d tokens ended inside a character)\n", n_ok, n_rec, n_split);
    assert(n_rec > 0 && n_split > 0);
    llm8_tokenizer_free(tok);
}

/* Writes a tokenizer.json with the given text to a fresh temp folder and expects a load error. */
static void expect_load_error(const char *what, const char *json, size_t len, llm8_status want) {
    char dir[] = "/tmp/llm8_tok_XXXXXX";
    assert(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (json) {
        FILE *f = fopen(path, "wb");
        assert(f);
        fwrite(json, 1, len, f);
        fclose(f);
    }
    llm8_tokenizer *tok = (llm8_tokenizer *)1;
    char err[512] = "";
    llm8_status st = llm8_tokenizer_load(dir, &tok, err, sizeof err);
    bool good = st != LLM8_STATUS_OK && tok == NULL && err[0] && strstr(err, dir) && !strchr(err, '\n') &&
                (want == LLM8_STATUS_OK || st == want);
    printf("  %-28s -> %s: %s\n", what, llm8_status_to_string(st), err);
    if (!good) {
        printf("FAIL: bad tokenizer \"%s\" not reported as expected\n", what);
        failures++;
    }
    if (st == LLM8_STATUS_OK) llm8_tokenizer_free(tok);
    remove(path);
    rmdir(dir);
}

#define S(x) x, sizeof(x) - 1
static void test_bad_files(void) {
    printf("bad tokenizer files:\n");
    expect_load_error("missing file", NULL, 0, LLM8_STATUS_IO_ERROR);
    expect_load_error("empty file", S(""), LLM8_STATUS_BAD_FORMAT);
    expect_load_error("garbage", S("\x01\x02garbage{{{"), LLM8_STATUS_BAD_FORMAT);
    expect_load_error("not an object", S("[1,2,3]"), LLM8_STATUS_BAD_FORMAT);
    expect_load_error("no model", S("{\"version\":\"1.0\"}"), LLM8_STATUS_BAD_FORMAT);
    expect_load_error("no vocab", S("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}"), LLM8_STATUS_BAD_FORMAT);
    expect_load_error("unsupported model", S("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}"),
                      LLM8_STATUS_UNSUPPORTED);
    expect_load_error("vocab id out of range", S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("huge vocab id", S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999999},\"merges\":[]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("vocab id not integer", S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("duplicate id", S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("merge not in vocab",
                      S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("malformed merge", S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("merge as number", S("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("bad added token",
                      S("{\"added_tokens\":[{\"id\":5}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}"),
                      LLM8_STATUS_BAD_FORMAT);
    expect_load_error("unknown normalizer",
                      S("{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}"),
                      LLM8_STATUS_UNSUPPORTED);
    expect_load_error("unknown pre-tokenizer",
                      S("{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
                        "\"merges\":[]}}"),
                      LLM8_STATUS_UNSUPPORTED);
    expect_load_error("bad regex",
                      S("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},"
                        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}"),
                      LLM8_STATUS_UNSUPPORTED);
    expect_load_error("unknown decoder",
                      S("{\"decoder\":{\"type\":\"WordPiece\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}"),
                      LLM8_STATUS_UNSUPPORTED);

    /* The real files cut short at many points must fail cleanly. */
    const char *srcs[] = {"models/stories260k/tokenizer.json", "models/llama3-tokenizer/tokenizer.json"};
    for (int s = 0; s < 2; s++) {
        FILE *f = fopen(srcs[s], "rb");
        assert(f);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)size);
        assert(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
        fclose(f);
        long cuts[] = {1, 100, size / 3, size - 2};
        for (int k = 0; k < 4; k++) {
            char what[64];
            snprintf(what, sizeof what, "%s cut at %ld", s ? "llama3" : "stories", cuts[k]);
            expect_load_error(what, buf, (size_t)cuts[k], LLM8_STATUS_BAD_FORMAT);
        }
        free(buf);
    }

    /* The in-memory loader names its source and accepts a null config. */
    llm8_tokenizer *tok = NULL;
    l8_err e = {{0}};
    const char js[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\"]]}}";
    assert(l8_tokenizer_from_json(js, sizeof js - 1, NULL, 0, "mem", &tok, &e) == LLM8_STATUS_OK);
    int32_t ids[4];
    size_t n;
    assert(llm8_tokenize(tok, "abab", 4, LLM8_TOKENIZE_ADD_BOS, ids, 4, &n) == LLM8_STATUS_OK);
    assert(n == 2 && ids[0] == 2 && ids[1] == 2);
    assert(llm8_tokenizer_bos(tok) == -1 && !l8_tokenizer_add_bos(tok));
    /* "c" is not in the vocabulary, there is no unk and no byte fallback. */
    assert(llm8_tokenize(tok, "c", 1, 0, ids, 4, &n) == LLM8_STATUS_INVALID_ARGUMENT);
    llm8_tokenizer_free(tok);
    assert(l8_tokenizer_from_json("{", 1, NULL, 0, "mem", &tok, &e) == LLM8_STATUS_BAD_FORMAT && !tok);
    assert(strstr(e.msg, "mem/tokenizer.json"));
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    assert(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    buf[size] = 0;
    *len = (size_t)size;
    return buf;
}

/* Pipeline variants the vectors do not cover: GPT-2 style ByteLevel(use_regex) and Metaspace. */
static void test_variants(void) {
    size_t len;
    char *js = read_all("models/llama3-tokenizer/tokenizer.json", &len);
    char *pre = strstr(js, "\"pre_tokenizer\"");
    assert(pre);
    char *end = strstr(pre, "\"post_processor\"");
    assert(end);
    /* Swap the whole pre_tokenizer value for a GPT-2 ByteLevel one. */
    size_t off = (size_t)(pre - js), cut = (size_t)(end - pre);
    const char *gpt2 = "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},";
    char *mod = malloc(len - cut + strlen(gpt2) + 1);
    memcpy(mod, js, off);
    memcpy(mod + off, gpt2, strlen(gpt2));
    memcpy(mod + off + strlen(gpt2), end, len - off - cut + 1);
    llm8_tokenizer *tok = NULL;
    l8_err e = {{0}};
    llm8_status st = l8_tokenizer_from_json(mod, strlen(mod), NULL, 0, "gpt2-variant", &tok, &e);
    if (st) printf("FAIL: %s\n", e.msg);
    assert(st == LLM8_STATUS_OK);
    int32_t ids[16];
    size_t n;
    assert(llm8_tokenize(tok, "Hello world's", 13, LLM8_TOKENIZE_ADD_BOS, ids, 16, &n) == LLM8_STATUS_OK);
    /* BOS comes from the post-processor template when there is no tokenizer_config.json. */
    assert(n == 4 && ids[0] == 128000 && ids[1] == 9906 && ids[2] == 1917 && ids[3] == 596);
    llm8_tokenizer_free(tok);
    free(mod);
    free(js);

    /* stories260k with the newer Metaspace pre-tokenizer instead of the Prepend/Replace normalizer. */
    js = read_all("models/stories260k/tokenizer.json", &len);
    char *n0 = strstr(js, "\"normalizer\"");
    char *n1 = strstr(js, "\"post_processor\"");
    assert(n0 && n1);
    const char *ms = "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\u2581\","
                     "\"prepend_scheme\":\"first\",\"split\":false},";
    off = (size_t)(n0 - js), cut = (size_t)(n1 - n0);
    mod = malloc(len - cut + strlen(ms) + 1);
    memcpy(mod, js, off);
    memcpy(mod + off, ms, strlen(ms));
    memcpy(mod + off + strlen(ms), n1, len - off - cut + 1);
    st = l8_tokenizer_from_json(mod, strlen(mod), NULL, 0, "metaspace-variant", &tok, &e);
    if (st) printf("FAIL: %s\n", e.msg);
    assert(st == LLM8_STATUS_OK);
    assert(llm8_tokenize(tok, "Once upon a time", 16, 0, ids, 16, &n) == LLM8_STATUS_OK);
    assert(n == 4 && ids[0] == 403 && ids[1] == 407 && ids[2] == 261 && ids[3] == 378);
    /* "first": no prefix after a special token in the middle of the text. */
    assert(llm8_tokenize(tok, "a<s>a", 5, LLM8_TOKENIZE_PARSE_SPECIAL, ids, 16, &n) == LLM8_STATUS_OK);
    assert(n == 3 && ids[0] == 261 && ids[1] == 1 && ids[2] != 261);
    llm8_tokenizer_free(tok);
    free(mod);
    free(js);
    printf("variants: ok\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* keep output ordered with assert messages */
    test_llama3();
    test_stories();
    test_streaming();
    test_bad_files();
    test_variants();
    if (failures) {
        printf("test_tokenizer: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_tokenizer: all ok\n");
    return 0;
}
