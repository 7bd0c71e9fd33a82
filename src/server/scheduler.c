/* Slots, the wait queue, and the batching loop. Only the scheduler thread touches the sessions,
 * the batch engine and the generation objects; other threads meet it at the queue (S->mu) and at
 * each job's result (j->mu). */
#include "server/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/batch.h"
#include "runtime/runtime.h"

/* Prompt tokens per step while other slots decode: small enough that running streams see one
 * chunk's worth of delay per step, large enough that the weights read for the step serve many
 * tokens. When nothing decodes, a prompt goes in chunks of the whole batch. */
enum { PREFILL_CHUNK_BUSY = 64, PREFILL_CHUNK_IDLE = 256 };

uint64_t l8_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void l8_session_truncate(llm8_session *s, int32_t n) {
    if (s && n >= 0 && n < s->n_past) s->n_past = n;
}

/* ---------------------------------------------------------------- jobs */

l8_job *l8_job_create(void) {
    l8_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    j->gp = llm8_generate_default_params();
    return j;
}

void l8_job_ref(l8_job *j) { atomic_fetch_add(&j->refs, 1); }

void l8_job_unref(l8_job *j) {
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    for (size_t i = 0; i < L8_JOB_MAX_STOP; i++) free(j->stop[i]);
    free(j->ids);
    free(j->text);
    free(j);
}

bool l8_job_set_stops(l8_job *j, char *const *stops, size_t n) {
    if (n > L8_JOB_MAX_STOP) return false;
    for (size_t i = 0; i < n; i++) {
        if (!(j->stop[i] = strdup(stops[i]))) return false;
        j->stop_ptrs[i] = j->stop[i];
    }
    j->gp.stop = n ? j->stop_ptrs : NULL;
    j->gp.n_stop = n;
    return true;
}

void l8_job_wait(l8_job *j, size_t seen, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&j->mu);
    while (!j->done && j->len <= seen)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts)) break;
    pthread_mutex_unlock(&j->mu);
}

/* Called by the scheduler with each piece of generated text. */
static bool job_append(l8_job *j, const char *text, size_t len) {
    pthread_mutex_lock(&j->mu);
    bool ok = true;
    if (j->len + len + 1 > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 1024;
        while (cap < j->len + len + 1) cap *= 2;
        char *t = realloc(j->text, cap);
        if (t) {
            j->text = t;
            j->cap = cap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        memcpy(j->text + j->len, text, len);
        j->len += len;
        j->text[j->len] = 0;
        if (!j->t_first) j->t_first = l8_now_us();
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

static void job_finish(l8_job *j, llm8_stop_reason why, int32_t generated, unsigned status, const char *error) {
    pthread_mutex_lock(&j->mu);
    j->done = true;
    j->stop_reason = why;
    j->completion_tokens = generated;
    j->error_status = status;
    if (error) snprintf(j->error, sizeof j->error, "%s", error);
    j->t_end = l8_now_us();
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---------------------------------------------------------------- slots */

typedef enum slot_state { SLOT_FREE, SLOT_PREFILL, SLOT_DECODE } slot_state;

typedef struct slot {
    llm8_session *s;
    float *logits;      /* (n_vocab) of the slot's last evaluated position */
    slot_state state;
    l8_job *job;
    l8_gen *gen;
    int32_t pos;        /* prompt tokens in the context so far */
    int32_t next;       /* the sampled token to evaluate next (decoding) */
    int32_t generated;  /* tokens counted into the metrics */
    uint64_t last_used;
} slot;

struct l8_sched {
    llm8_model *model;
    l8_metrics *met;
    l8_batch *batch;
    slot *slots;
    int n_slots;
    int32_t n_ctx, n_vocab;
    int queue_cap;
    l8_batch_item *items; /* (n_slots) one per slot at most */
    int *item_slot;

    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* a job arrived, or stop */
    l8_job *head, *tail;
    int n_waiting, n_free;
    bool stopping;
    uint64_t seq, clock;
    pthread_t thread;
    bool started;
};

static bool slot_text(void *user, const char *text, size_t len, int32_t token) {
    (void)token;
    l8_job *j = ((slot *)user)->job;
    return job_append(j, text, len) && !atomic_load(&j->cancel);
}

/* The slot's generation ended (status 0) or failed: report it, free the slot, keep the cache. */
static void end_slot(l8_sched *S, slot *sl, unsigned status, const char *error) {
    llm8_run_stats rs = {0};
    if (sl->gen) {
        l8_gen_stats(sl->gen, &rs);
        l8_gen_free(sl->gen);
        sl->gen = NULL;
    }
    l8_job *j = sl->job;
    bool cancelled = atomic_load(&j->cancel);
    if (cancelled && !status) rs.stop_reason = LLM8_STOP_CALLBACK;
    job_finish(j, rs.stop_reason, rs.generated_tokens, status, error);
    atomic_fetch_add(&S->met->completions, 1);
    if (cancelled) atomic_fetch_add(&S->met->cancelled, 1);
    l8_job_unref(j);
    sl->job = NULL;
    sl->state = SLOT_FREE;
    sl->last_used = ++S->clock;
    atomic_fetch_sub(&S->met->slots_busy, 1);
    pthread_mutex_lock(&S->mu);
    S->n_free++;
    pthread_mutex_unlock(&S->mu);
}

static int32_t common_prefix(llm8_session *s, const int32_t *ids, int32_t n) {
    int32_t have;
    const int32_t *t = llm8_session_tokens(s, &have);
    int32_t k = 0;
    while (k < have && k < n && t[k] == ids[k]) k++;
    return k;
}

/* Gives waiting jobs to free slots, each to the slot whose cache shares the longest prefix with
 * its prompt (the previous turn of the same chat). When that prefix is less than half of what
 * the slot holds (only BOS and a role header, say), taking the slot would throw away most of
 * another conversation's cache for little: the job takes the least recently used slot instead,
 * an empty one first; unless the slot holds the whole prompt (the same request again, with a
 * long answer after it), which then costs no prefill at all. Under S->mu. */
static void assign(l8_sched *S) {
    /* jobs whose clients left while they waited give their places back at once */
    for (l8_job **p = &S->head, *prev = NULL; *p;) {
        l8_job *j = *p;
        if (!atomic_load(&j->cancel)) {
            prev = j;
            p = &j->next;
            continue;
        }
        *p = j->next;
        if (S->tail == j) S->tail = prev;
        S->n_waiting--;
        job_finish(j, LLM8_STOP_CALLBACK, 0, 0, NULL);
        atomic_fetch_add(&S->met->completions, 1);
        atomic_fetch_add(&S->met->cancelled, 1);
        l8_job_unref(j);
    }
    while (S->head && S->n_free > 0) {
        l8_job *j = S->head;
        S->head = j->next;
        if (!S->head) S->tail = NULL;
        S->n_waiting--;
        S->n_free--;
        int best = -1;
        int32_t best_k = -1;
        for (int i = 0; i < S->n_slots; i++) {
            slot *sl = &S->slots[i];
            if (sl->state != SLOT_FREE) continue;
            int32_t k = common_prefix(sl->s, j->ids, j->n_ids);
            if (k > best_k || (k == best_k && sl->last_used < S->slots[best].last_used)) best = i, best_k = k;
        }
        if (best_k < j->n_ids - 1 && (int64_t)best_k * 2 < llm8_session_n_past(S->slots[best].s)) {
            for (int i = 0; i < S->n_slots; i++)
                if (S->slots[i].state == SLOT_FREE && S->slots[i].last_used < S->slots[best].last_used) best = i;
            best_k = common_prefix(S->slots[best].s, j->ids, j->n_ids);
        }
        slot *sl = &S->slots[best];
        /* at least the prompt's last token is evaluated again, for the logits to sample from */
        int32_t keep = best_k < j->n_ids ? best_k : j->n_ids - 1;
        l8_session_truncate(sl->s, keep);
        sl->job = j;
        sl->pos = keep;
        sl->generated = 0;
        sl->state = SLOT_PREFILL;
        pthread_mutex_lock(&j->mu);
        j->started = true;
        j->cached_tokens = keep;
        j->t_start = l8_now_us();
        pthread_mutex_unlock(&j->mu);
        atomic_fetch_add(&S->met->prompt_tokens, (uint64_t)j->n_ids);
        atomic_fetch_add(&S->met->cached_tokens, (uint64_t)keep);
        atomic_fetch_add(&S->met->slots_busy, 1);
    }
    atomic_store(&S->met->queue_length, S->n_waiting);
}

/* ---------------------------------------------------------------- one step */

static void step(l8_sched *S) {
    int n = 0, n_decode = 0;
    for (int i = 0; i < S->n_slots; i++) {
        slot *sl = &S->slots[i];
        if (sl->state != SLOT_FREE && atomic_load(&sl->job->cancel)) end_slot(S, sl, 0, NULL);
    }
    for (int i = 0; i < S->n_slots; i++) {
        slot *sl = &S->slots[i];
        if (sl->state != SLOT_DECODE) continue;
        S->items[n] = (l8_batch_item){.s = sl->s, .ids = &sl->next, .n = 1, .logits = sl->logits};
        S->item_slot[n++] = i;
        n_decode++;
    }
    /* prompts in arrival order, as much of them as the step's budget holds */
    int32_t budget = n_decode ? PREFILL_CHUNK_BUSY : l8_batch_max_tokens(S->batch), prefill = 0;
    for (;;) {
        int pick = -1;
        for (int i = 0; i < S->n_slots; i++) {
            slot *sl = &S->slots[i];
            bool queued = false;
            for (int k = n_decode; k < n; k++) queued |= S->item_slot[k] == i;
            if (sl->state == SLOT_PREFILL && !queued && (pick < 0 || sl->job->seq < S->slots[pick].job->seq)) pick = i;
        }
        if (pick < 0 || budget <= 0) break;
        slot *sl = &S->slots[pick];
        int32_t c = sl->job->n_ids - sl->pos < budget ? sl->job->n_ids - sl->pos : budget;
        bool last = sl->pos + c == sl->job->n_ids;
        S->items[n] = (l8_batch_item){.s = sl->s, .ids = sl->job->ids + sl->pos, .n = c, .logits = last ? sl->logits : NULL};
        S->item_slot[n++] = pick;
        budget -= c;
        prefill += c;
    }
    if (!n) return;

    char err[256] = "";
    uint64_t t0 = l8_now_us();
    llm8_status st = l8_batch_eval(S->batch, S->items, n, err, sizeof err);
    uint64_t t1 = l8_now_us();
    atomic_fetch_add(&S->met->steps, 1);
    atomic_fetch_add(&S->met->step_us, t1 - t0);
    if (st) {
        /* nothing ran (the batch checks before it computes): fail this step's requests only */
        char msg[300];
        snprintf(msg, sizeof msg, "the forward pass failed: %s", err[0] ? err : llm8_status_to_string(st));
        fprintf(stderr, "llm8 serve: %s\n", msg);
        for (int k = 0; k < n; k++) {
            slot *sl = &S->slots[S->item_slot[k]];
            if (sl->state != SLOT_FREE) end_slot(S, sl, 500, msg);
        }
        return;
    }
    atomic_fetch_add(&S->met->prefill_tokens, (uint64_t)prefill);

    uint64_t generated = 0;
    for (int k = 0; k < n; k++) {
        slot *sl = &S->slots[S->item_slot[k]];
        if (sl->state == SLOT_PREFILL) {
            sl->pos += S->items[k].n;
            if (sl->pos < sl->job->n_ids) continue;
            /* the whole prompt is in the context: the generation starts from it */
            if (l8_gen_create(sl->s, &sl->job->gp, slot_text, sl, &sl->gen)) {
                end_slot(S, sl, 500, "out of memory (generation)");
                continue;
            }
            sl->state = SLOT_DECODE;
        }
        bool more = l8_gen_step(sl->gen, sl->logits, &sl->next);
        llm8_run_stats rs;
        l8_gen_stats(sl->gen, &rs);
        generated += (uint64_t)(rs.generated_tokens - sl->generated);
        sl->generated = rs.generated_tokens;
        if (!more) end_slot(S, sl, 0, NULL);
    }
    l8_metrics_count_generated(S->met, generated, l8_now_us());
}

static void *sched_main(void *arg) {
    l8_sched *S = arg;
    pthread_mutex_lock(&S->mu);
    for (;;) {
        assign(S);
        if (S->stopping) break;
        bool active = false;
        for (int i = 0; i < S->n_slots; i++) active |= S->slots[i].state != SLOT_FREE;
        if (!active) {
            pthread_cond_wait(&S->cv, &S->mu);
            continue;
        }
        pthread_mutex_unlock(&S->mu);
        step(S);
        pthread_mutex_lock(&S->mu);
    }
    pthread_mutex_unlock(&S->mu);
    for (int i = 0; i < S->n_slots; i++)
        if (S->slots[i].state != SLOT_FREE) end_slot(S, &S->slots[i], 503, "the server is shutting down");
    return NULL;
}

/* ---------------------------------------------------------------- the scheduler's life */

llm8_status l8_sched_create(llm8_model *model, const l8_sched_opts *o, l8_metrics *metrics, l8_sched **out, char *err,
                            size_t errcap) {
    *out = NULL;
    if (o->parallel < 1 || o->queue < 0) {
        snprintf(err, errcap, "the server needs at least one slot");
        return LLM8_STATUS_INVALID_ARGUMENT;
    }
    l8_sched *S = calloc(1, sizeof *S);
    if (!S) return LLM8_STATUS_OUT_OF_MEMORY;
    S->model = model;
    S->met = metrics;
    S->n_slots = o->parallel;
    S->queue_cap = o->queue;
    S->n_vocab = llm8_model_get_info(model)->n_vocab;
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    S->slots = calloc((size_t)S->n_slots, sizeof *S->slots);
    S->items = calloc((size_t)S->n_slots, sizeof *S->items);
    S->item_slot = calloc((size_t)S->n_slots, sizeof *S->item_slot);
    llm8_status st = S->slots && S->items && S->item_slot ? LLM8_STATUS_OK : LLM8_STATUS_OUT_OF_MEMORY;
    if (st) snprintf(err, errcap, "out of memory");
    /* the sessions only hold caches: the batch engine's threads do all the computing */
    llm8_session_params sp = llm8_session_default_params();
    sp.n_ctx = o->n_ctx;
    sp.n_threads = 1;
    for (int i = 0; !st && i < S->n_slots; i++) {
        slot *sl = &S->slots[i];
        st = llm8_session_create(model, &sp, &sl->s, err, errcap);
        if (!st && !(sl->logits = malloc((size_t)S->n_vocab * sizeof(float)))) {
            st = LLM8_STATUS_OUT_OF_MEMORY;
            snprintf(err, errcap, "out of memory (logits)");
        }
    }
    if (!st) {
        S->n_ctx = llm8_session_n_ctx(S->slots[0].s);
        st = l8_batch_create(model, S->n_ctx, S->n_slots + PREFILL_CHUNK_IDLE, o->n_threads, &S->batch, err, errcap);
    }
    if (!st) {
        S->n_free = S->n_slots;
        if (pthread_create(&S->thread, NULL, sched_main, S)) {
            st = LLM8_STATUS_OUT_OF_MEMORY;
            snprintf(err, errcap, "cannot start the scheduler thread");
        } else {
            S->started = true;
        }
    }
    if (st) {
        l8_sched_free(S);
        return st;
    }
    atomic_store(&metrics->slots_total, S->n_slots);
    *out = S;
    return LLM8_STATUS_OK;
}

l8_submit l8_sched_submit(l8_sched *S, l8_job *j) {
    pthread_mutex_lock(&S->mu);
    l8_submit r = L8_SUBMIT_OK;
    if (S->stopping) {
        r = L8_SUBMIT_STOPPED;
    } else if (S->n_waiting >= S->queue_cap + S->n_free) {
        r = L8_SUBMIT_QUEUE_FULL;
    } else {
        l8_job_ref(j);
        j->seq = ++S->seq;
        j->t_submit = l8_now_us();
        j->next = NULL;
        if (S->tail) S->tail->next = j;
        else S->head = j;
        S->tail = j;
        S->n_waiting++;
        atomic_store(&S->met->queue_length, S->n_waiting);
        pthread_cond_signal(&S->cv);
    }
    pthread_mutex_unlock(&S->mu);
    return r;
}

void l8_sched_stop(l8_sched *S) {
    if (!S) return;
    pthread_mutex_lock(&S->mu);
    S->stopping = true;
    while (S->head) {
        l8_job *j = S->head;
        S->head = j->next;
        job_finish(j, LLM8_STOP_NONE, 0, 503, "the server is shutting down");
        l8_job_unref(j);
    }
    S->tail = NULL;
    S->n_waiting = 0;
    atomic_store(&S->met->queue_length, 0);
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
    if (S->started) pthread_join(S->thread, NULL);
    S->started = false;
}

void l8_sched_free(l8_sched *S) {
    if (!S) return;
    l8_sched_stop(S);
    for (int i = 0; S->slots && i < S->n_slots; i++) {
        llm8_session_free(S->slots[i].s);
        free(S->slots[i].logits);
    }
    l8_batch_free(S->batch);
    free(S->slots);
    free(S->items);
    free(S->item_slot);
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv);
    free(S);
}

int32_t l8_sched_n_ctx(const l8_sched *S) { return S->n_ctx; }
