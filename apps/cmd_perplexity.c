/* llm8 perplexity: score a text with a model; with --ref, compare two models' distributions.
 *
 * Method (also in --help):
 *  - The text is tokenized once, as raw text (no BOS, no special-token parsing), and cut into
 *    chunks of up to ctx-1 tokens; each chunk is evaluated from a fresh context as BOS + chunk.
 *    The last, partial chunk is scored too.
 *  - With --docs, the text is first split into documents at blank lines (one or more lines that
 *    are empty or hold only whitespace). Each document is tokenized on its own and chunked as
 *    above, so every document starts with its own BOS.
 *  - Every token after BOS is scored: NLL = -log softmax(logits of the previous position)[token],
 *    computed in double with max-subtraction. perplexity = exp(mean NLL over all scored tokens).
 *  - Models whose tokenizer adds no BOS: a chunk holds up to ctx text tokens and scoring starts at
 *    its second token.
 *  - With --ref REF: the same tokens (from MODEL's tokenizer) go through REF as well; at every
 *    scored position KL(P_ref || P_model) = sum_v p_ref(v) * (log p_ref(v) - log p_model(v)) over
 *    the full vocabulary, in double; top-1 agreement counts positions where both argmaxes agree.
 *    Both models must have the same vocabulary size.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define PPL "llm8 perplexity"

static void ppl_usage(void) {
    printf("usage: llm8 perplexity -m MODEL -f TEXT [--ctx N] [--docs] [--ref REF_MODEL] [--json]\n"
           "  -m MODEL        model folder\n"
           "  -f TEXT         UTF-8 text file to score\n"
           "  -c, --ctx N     tokens per chunk, BOS included (default 512, clipped to the model maximum)\n"
           "  -t N            compute threads (default: the big cores, else one per physical core)\n"
           "  --max-memory SIZE  refuse to start if the model(s) and context need more (e.g. 2G)\n"
           "  --docs          split the text into documents at blank lines; each starts with its own BOS\n"
           "  --ref REF       also report KL divergence KL(P_ref || P_model) (mean, max) and top-1\n"
           "                  agreement against a reference model with the same vocabulary\n"
           "  --json          print one JSON object: perplexity, tokens, chunks, ctx\n"
           "                  (and kld_mean, kld_max, top1_agreement as a fraction with --ref)\n"
           "\n"
           "Method: the text is tokenized once as raw text (no special-token parsing) and cut into\n"
           "chunks of ctx-1 tokens (with --docs: each document is tokenized and cut on its own);\n"
           "each chunk is evaluated from an empty context as BOS + chunk, and the last partial chunk\n"
           "is scored too. Every token after BOS is scored; perplexity = exp(mean NLL over all\n"
           "scored tokens), with log-softmax in double. For a model without BOS a chunk holds ctx\n"
           "text tokens and scoring starts at its second token.\n");
}


/* Log-sum-exp of a row and its argmax, in double. */
static double row_lse(const float *x, int32_t n, int32_t *argmax) {
    int32_t am = 0;
    for (int32_t v = 1; v < n; v++)
        if (x[v] > x[am]) am = v;
    double mx = x[am], sum = 0;
    for (int32_t v = 0; v < n; v++) sum += exp((double)x[v] - mx);
    if (argmax) *argmax = am;
    return mx + log(sum);
}

typedef struct ppl_state {
    llm8_session *s, *rs;       /* model and (optional) reference sessions */
    int32_t n_vocab;
    size_t batch;               /* rows of logits evaluated per call */
    float *lg, *rlg;            /* batch x n_vocab */
    double nll_sum;
    double kld_sum, kld_max;
    long n_scored, n_agree, n_chunks;
} ppl_state;

/* Evaluates one chunk from an empty context; scores ids[first..n-1] from the previous positions. */
static bool score_chunk(ppl_state *P, const int32_t *ids, size_t n, size_t first) {
    if (n <= first) return true;
    llm8_session_reset(P->s);
    if (P->rs) llm8_session_reset(P->rs);
    P->n_chunks++;
    for (size_t off = 0; off + 1 < n; off += P->batch) {
        size_t b = n - 1 - off < P->batch ? n - 1 - off : P->batch; /* the last token predicts nothing */
        if (llm8_session_eval(P->s, ids + off, b, P->lg, true)) {
            fprintf(stderr, PPL ": %s\n", llm8_session_last_error(P->s));
            return false;
        }
        if (P->rs && llm8_session_eval(P->rs, ids + off, b, P->rlg, true)) {
            fprintf(stderr, PPL ": reference: %s\n", llm8_session_last_error(P->rs));
            return false;
        }
        for (size_t r = 0; r < b; r++) {
            size_t pos = off + r; /* row pos predicts ids[pos + 1] */
            if (pos + 1 < first) continue;
            const float *row = P->lg + r * (size_t)P->n_vocab;
            int32_t am;
            double lse = row_lse(row, P->n_vocab, &am);
            P->nll_sum += lse - (double)row[ids[pos + 1]];
            P->n_scored++;
            if (P->rs) {
                const float *rrow = P->rlg + r * (size_t)P->n_vocab;
                int32_t ram;
                double rlse = row_lse(rrow, P->n_vocab, &ram);
                double kl = 0;
                for (int32_t v = 0; v < P->n_vocab; v++) {
                    double lpr = (double)rrow[v] - rlse;
                    double pr = exp(lpr);
                    if (pr > 0) kl += pr * (lpr - ((double)row[v] - lse));
                }
                P->kld_sum += kl;
                if (P->n_scored == 1 || kl > P->kld_max) P->kld_max = kl;
                if (am == ram) P->n_agree++;
            }
        }
    }
    return true;
}

/* Cuts text tokens into chunks: BOS + up to ctx-1 tokens, or without BOS up to ctx tokens. */
static bool score_tokens(ppl_state *P, const int32_t *toks, size_t n, int32_t bos, size_t ctx, int32_t *buf) {
    size_t per = bos >= 0 ? ctx - 1 : ctx;
    for (size_t at = 0; at < n; at += per) {
        size_t k = n - at < per ? n - at : per, m = 0;
        if (bos >= 0) buf[m++] = bos;
        memcpy(buf + m, toks + at, k * sizeof(int32_t));
        if (!score_chunk(P, buf, m + k, 1)) return false;
    }
    return true;
}

/* A line of only spaces, tabs, CR, VT or FF (or nothing). [p, e) excludes the newline. */
static bool blank_line(const char *p, const char *e) {
    for (; p < e; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\v' && *p != '\f') return false;
    return true;
}

static void print_num(const char *key, double v) {
    if (isfinite(v)) printf(",\"%s\":%.10g", key, v);
    else printf(",\"%s\":null", key);
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *ref_path = NULL;
    long ctx_opt = 0, threads = 0;
    uint64_t max_memory = 0;
    bool docs = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ppl_usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(text_path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!cli_int(a, cli_value(argc, argv, &i), 2, 1L << 24, &ctx_opt)) return 2;
        } else if (!strcmp(a, "--max-memory")) {
            if (!cli_size(a, cli_value(argc, argv, &i), &max_memory)) return 2;
        } else if (!strcmp(a, "--ref")) {
            if (!(ref_path = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--docs")) {
            docs = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            fprintf(stderr, PPL ": unknown option '%s' (try llm8 perplexity --help)\n", a);
            return 2;
        }
    }
    if (!model_path || !text_path) {
        fprintf(stderr, PPL ": needs -m MODEL and -f TEXT (try llm8 perplexity --help)\n");
        return 2;
    }

    FILE *f = fopen(text_path, "rb");
    if (!f) {
        fprintf(stderr, PPL ": %s: cannot open\n", text_path);
        return 1;
    }
    size_t text_len;
    char *text = cli_read_all(f, &text_len);
    bool read_err = ferror(f);
    fclose(f);
    if (!text || read_err) {
        fprintf(stderr, PPL ": %s: cannot read\n", text_path);
        free(text);
        return 1;
    }

    char err[512];
    int rc = 1;
    llm8_model *model = NULL, *ref = NULL;
    ppl_state P = {0};
    int32_t *toks = NULL, *buf = NULL;
    size_t tcap = text_len + 16, n_toks = 0;
    struct timespec t0, t1;

    if (llm8_model_load(model_path, &model, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        goto done;
    }
    const llm8_model_info *info = llm8_model_get_info(model);
    const llm8_tokenizer *tok = llm8_model_tokenizer(model);
    P.n_vocab = info->n_vocab;
    long ctx = ctx_opt ? ctx_opt : 512;
    if (info->n_ctx_train > 0 && ctx > info->n_ctx_train) ctx = info->n_ctx_train;
    if (ref_path) {
        if (llm8_model_load(ref_path, &ref, err, sizeof err)) {
            fprintf(stderr, "llm8: reference: %s\n", err);
            goto done;
        }
        const llm8_model_info *rinfo = llm8_model_get_info(ref);
        if (rinfo->n_vocab != info->n_vocab) {
            fprintf(stderr, PPL ": the reference model's vocabulary (%d) differs from the model's (%d)\n",
                    rinfo->n_vocab, info->n_vocab);
            goto done;
        }
        if (rinfo->n_ctx_train > 0 && ctx > rinfo->n_ctx_train) ctx = rinfo->n_ctx_train;
    }
    if (ctx < 2) ctx = 2;

    /* BOS as the tokenizer would add it: the only id of an empty text tokenized with ADD_BOS. */
    int32_t bos = -1, one[4];
    size_t n_one = 0;
    if (llm8_tokenize(tok, "", 0, LLM8_TOKENIZE_ADD_BOS, one, 4, &n_one) == LLM8_STATUS_OK && n_one == 1) bos = one[0];

    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = (int32_t)ctx;
    sp.n_threads = (int32_t)threads;
    llm8_model *both[2] = {model, ref};
    if (!cli_memory_check(both, ref ? 2 : 1, &sp, 1, max_memory)) goto done;
    if (llm8_session_create(model, &sp, &P.s, err, sizeof err)) {
        fprintf(stderr, "llm8: %s\n", err);
        goto done;
    }
    if (ref && llm8_session_create(ref, &sp, &P.rs, err, sizeof err)) {
        fprintf(stderr, "llm8: reference: %s\n", err);
        goto done;
    }
    /* Rows of logits per eval call: the whole chunk, or fewer for big vocabularies (~64 MB). */
    P.batch = (size_t)(64u << 20) / ((size_t)P.n_vocab * sizeof(float));
    if (P.batch < 1) P.batch = 1;
    if (P.batch > (size_t)ctx) P.batch = (size_t)ctx;
    P.lg = malloc(P.batch * (size_t)P.n_vocab * sizeof(float));
    P.rlg = ref ? malloc(P.batch * (size_t)P.n_vocab * sizeof(float)) : NULL;
    toks = malloc(tcap * sizeof(int32_t));
    buf = malloc((size_t)ctx * sizeof(int32_t));
    if (!P.lg || (ref && !P.rlg) || !toks || !buf) {
        fprintf(stderr, PPL ": out of memory\n");
        goto done;
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Whole-text check first, so invalid UTF-8 is reported the same way with or without --docs. */
    llm8_status st = cli_tokenize_all(tok, text, text_len, 0, &toks, &tcap, &n_toks);
    if (st) {
        fprintf(stderr, PPL ": %s: %s\n", text_path,
                st == LLM8_STATUS_INVALID_ARGUMENT ? "invalid UTF-8" : llm8_status_to_string(st));
        goto done;
    }
    if (!docs) {
        if (!score_tokens(&P, toks, n_toks, bos, (size_t)ctx, buf)) goto done;
    } else {
        /* Documents: maximal runs of non-blank lines, each with its last line's newline. */
        const char *p = text, *end = text + text_len, *doc = NULL, *doc_end = NULL;
        for (;;) {
            bool at_end = p >= end;
            const char *nl = at_end ? NULL : memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end, *next = nl ? nl + 1 : end;
            if (at_end || blank_line(p, le)) {
                if (doc) {
                    st = cli_tokenize_all(tok, doc, (size_t)(doc_end - doc), 0, &toks, &tcap, &n_toks);
                    if (st) {
                        fprintf(stderr, PPL ": %s: %s\n", text_path, llm8_status_to_string(st));
                        goto done;
                    }
                    if (!score_tokens(&P, toks, n_toks, bos, (size_t)ctx, buf)) goto done;
                    doc = NULL;
                }
                if (at_end) break;
            } else {
                if (!doc) doc = p;
                doc_end = next;
            }
            p = next;
        }
    }
    if (P.n_scored == 0) {
        fprintf(stderr, PPL ": %s: no tokens to score\n", text_path);
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

    double ppl = exp(P.nll_sum / (double)P.n_scored);
    double kld_mean = P.kld_sum / (double)P.n_scored, agree = (double)P.n_agree / (double)P.n_scored;
    if (json) {
        printf("{\"perplexity\":");
        if (isfinite(ppl)) printf("%.10g", ppl);
        else printf("null");
        printf(",\"tokens\":%ld,\"chunks\":%ld,\"ctx\":%ld", P.n_scored, P.n_chunks, ctx);
        if (ref) {
            print_num("kld_mean", kld_mean);
            print_num("kld_max", P.kld_max);
            print_num("top1_agreement", agree);
        }
        printf("}\n");
    } else {
        printf("perplexity: %.4f over %ld tokens (%ld chunks, ctx %ld)\n", ppl, P.n_scored, P.n_chunks, ctx);
        if (ref)
            printf("KLD mean: %.6f, max: %.6f, top-1 agreement: %.1f%%\n", kld_mean, P.kld_max, 100.0 * agree);
    }
    fflush(stdout);
    fprintf(stderr, PPL ": %ld tokens scored in %.2f s (%.1f tok/s, %s)\n", P.n_scored, secs,
            secs > 0 ? (double)P.n_scored / secs : 0.0, ref ? "model + reference" : "model");
    rc = 0;

done:
    free(buf);
    free(toks);
    free(P.lg);
    free(P.rlg);
    llm8_session_free(P.rs);
    llm8_session_free(P.s);
    llm8_model_free(ref);
    llm8_model_free(model);
    free(text);
    return rc;
}
