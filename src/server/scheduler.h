/* The scheduler: --parallel slots (a session and its KV cache each) advanced together by one
 * thread. Each step is one l8_batch_eval over the next token of every decoding slot plus a chunk
 * of one or more prompts being prefilled (continuous batching), followed by sampling for every
 * slot whose logits came out. Requests wait for a slot in a bounded FIFO queue. */
#ifndef L8_SERVER_SCHEDULER_H
#define L8_SERVER_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm8.h"
#include "server/metrics.h"

enum { L8_JOB_MAX_STOP = 16 };

/* One generation request. The submitter fills the request part, submits, then reads the result
 * part under mu (waiting on cv); the scheduler writes it. Reference counted: whoever ends last
 * frees it. */
typedef struct l8_job {
    /* request: set before l8_sched_submit, read-only afterwards */
    int32_t *ids;             /* (n_ids >= 1) the whole prompt, owned */
    int32_t n_ids;
    llm8_generate_params gp;  /* gp.stop points into stop_ptrs */
    char *stop[L8_JOB_MAX_STOP];
    const char *stop_ptrs[L8_JOB_MAX_STOP];

    /* result, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled on new text and at the end */
    char *text;               /* everything generated so far (whole UTF-8 characters) */
    size_t len, cap;
    bool started;             /* a slot took it */
    bool done;
    llm8_stop_reason stop_reason;
    unsigned error_status;    /* 0, or the HTTP status of a failure (500, 503) */
    char error[256];
    int32_t cached_tokens;    /* prompt tokens found in the slot's cache */
    int32_t completion_tokens;
    uint64_t t_submit, t_start, t_first, t_end; /* microseconds, monotonic */

    atomic_bool cancel;       /* the client went away: stop within one step */
    atomic_int refs;
    uint64_t seq;             /* arrival order */
    struct l8_job *next;      /* queue link (scheduler) */
} l8_job;

/* A job with one reference, or NULL. */
l8_job *l8_job_create(void);
void l8_job_ref(l8_job *j);
void l8_job_unref(l8_job *j);
/* Copies stop strings into the job and points gp at them; false when out of memory. */
bool l8_job_set_stops(l8_job *j, char *const *stops, size_t n);
/* Waits (at most timeout_ms) until the job has more than seen bytes of text or is done. */
void l8_job_wait(l8_job *j, size_t seen, int timeout_ms);

typedef struct l8_sched_opts {
    int parallel;      /* slots */
    int32_t n_ctx;     /* context of each slot; 0: the model's default */
    int n_threads;     /* compute threads; <= 0: one per physical core */
    int queue;         /* requests that may wait for a slot */
} l8_sched_opts;

typedef struct l8_sched l8_sched;

/* Creates the sessions and the batch engine and starts the scheduler thread. */
llm8_status l8_sched_create(llm8_model *model, const l8_sched_opts *o, l8_metrics *metrics, l8_sched **out, char *err,
                            size_t errcap);
typedef enum l8_submit {
    L8_SUBMIT_OK,
    L8_SUBMIT_QUEUE_FULL,
    L8_SUBMIT_STOPPED,
} l8_submit;
/* Queues a job (the scheduler takes its own reference when it accepts it). */
l8_submit l8_sched_submit(l8_sched *S, l8_job *j);
/* Ends every job (queued ones and running ones: error 503, "the server is shutting down") and
 * joins the scheduler thread. */
void l8_sched_stop(l8_sched *S);
void l8_sched_free(l8_sched *S);
int32_t l8_sched_n_ctx(const l8_sched *S);

/* Keeps the first n tokens of a session's context (the cached prefix a new prompt shares). */
void l8_session_truncate(llm8_session *s, int32_t n);

uint64_t l8_now_us(void);

#endif
