/* Llama 3.x tool calls in generated text. With custom tools the model answers a call as JSON,
 * `{"name": "f", "parameters": {...}}`, alone in its reply (after <|python_tag|> when it was
 * trained to mark it); the server turns such a reply into OpenAI `message.tool_calls`. */
#ifndef L8_SERVER_TOOLCALL_H
#define L8_SERVER_TOOLCALL_H

#include <jansson.h>
#include <stddef.h>

typedef enum l8_toolcall_state {
    L8_TOOLCALL_UNDECIDED, /* only blanks (or part of <|python_tag|>) so far */
    L8_TOOLCALL_MAYBE,     /* starts like a call: hold the text back until the reply ends */
    L8_TOOLCALL_NO,        /* ordinary text: stream it */
} l8_toolcall_state;

/* Classifies the start of a reply. */
l8_toolcall_state l8_toolcall_classify(const char *text, size_t len);

/* Parses a complete reply as tool calls: one JSON object {"name", "parameters" or "arguments"},
 * several separated by ';' or blanks, or an array of them, optionally after <|python_tag|>.
 * Every name must be one of names (a JSON array of strings, the request's functions). Returns a
 * new reference to an array of OpenAI tool calls ({"id", "type": "function", "function":
 * {"name", "arguments": JSON text}}), or NULL when the reply is not (only) tool calls. */
json_t *l8_toolcall_parse(const char *text, size_t len, const json_t *names);

#endif
