/* The OpenAI wire format: request bodies of /v1/chat/completions and /v1/completions parsed and
 * checked into a C struct, and the JSON of responses, stream chunks and errors. No model is
 * needed here (the fuzz target drives it alone); prompts are rendered and counted by the caller. */
#ifndef L8_SERVER_OPENAI_H
#define L8_SERVER_OPENAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm8.h"

typedef enum l8_oai_kind { L8_OAI_CHAT, L8_OAI_COMPLETION } l8_oai_kind;

/* An error as OpenAI sends it: the HTTP status and {"error": {"message", "type", "param", "code"}}. */
typedef struct l8_oai_error {
    unsigned status;
    const char *type;  /* static: "invalid_request_error", "server_error", ... */
    const char *code;  /* static or NULL (JSON null) */
    char param[96];    /* "" for JSON null */
    char message[512];
} l8_oai_error;

/* Fills e; param may be NULL. Returns false so that parsers can `return l8_oai_fail(...)`. */
bool l8_oai_fail(l8_oai_error *e, unsigned status, const char *type, const char *code, const char *param,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The error's JSON body (heap, NUL-terminated; *len its length), or NULL when out of memory. */
char *l8_oai_error_body(const l8_oai_error *e, size_t *len);

enum { L8_OAI_MAX_STOP = 16 };

typedef struct l8_oai_request {
    l8_oai_kind kind;
    char *model;              /* as the client named it ("" when absent); echoed back */
    /* chat: {"messages": [...], "tools"?: [...], "chat_template_kwargs"?: {...}} with every
     * message normalized (string or null content, developer -> system, tool call arguments
     * as objects) for l8_chat_apply */
    json_t *chat;
    json_t *tool_names;       /* chat with callable tools: their names (array of strings); else NULL */
    /* completion: the prompt as text, or as token ids */
    char *prompt;
    size_t prompt_len;
    int32_t *prompt_ids;
    size_t n_prompt_ids;
    bool stream, include_usage;
    bool ignore_eos;          /* extension (llama.cpp's): generate through end-of-sequence ids */
    int32_t max_tokens;       /* -1 when not given */
    bool has_temperature, has_top_p, has_seed; /* else the model's defaults, a random seed */
    llm8_sampling_params sampling;
    char *stop[L8_OAI_MAX_STOP];
    size_t n_stop;
} l8_oai_request;

/* Parses and checks a request body (len bytes, any content). On failure *e says what is wrong
 * (status 400, param naming the member) and *r holds nothing to free. */
bool l8_oai_parse(l8_oai_kind kind, const char *body, size_t len, l8_oai_request *r, l8_oai_error *e);
void l8_oai_request_free(l8_oai_request *r);

/* What a reply carries, complete or so far. */
typedef struct l8_oai_reply {
    l8_oai_kind kind;
    const char *id;           /* "chatcmpl-..." / "cmpl-..." */
    long long created;        /* Unix seconds */
    const char *model;
    const char *text;         /* content delta (streaming) or the whole content */
    size_t len;
    const json_t *tool_calls; /* NULL, or the calls (chat) */
    const char *finish_reason; /* "stop", "length", "tool_calls"; NULL in a streaming delta */
    int32_t prompt_tokens, completion_tokens, cached_tokens;
} l8_oai_reply;

/* The whole response of a non-streaming request (heap JSON text). NULL when out of memory. */
char *l8_oai_response(const l8_oai_reply *r, size_t *len);
/* One Server-Sent Event "data: {chunk}\n\n": first adds the assistant role (chat), usage_null
 * the "usage": null member that stream_options.include_usage asks for on every chunk. */
char *l8_oai_chunk(const l8_oai_reply *r, bool first, bool usage_null, size_t *len);
/* The final usage chunk of stream_options.include_usage (empty choices). */
char *l8_oai_usage_chunk(const l8_oai_reply *r, size_t *len);
/* An error as a Server-Sent Event, for failures after a stream has begun. */
char *l8_oai_error_event(const l8_oai_error *e, size_t *len);

/* A random identifier: prefix then 24 letters and digits (cap >= strlen(prefix) + 25). */
void l8_oai_make_id(char *buf, size_t cap, const char *prefix);

#endif
