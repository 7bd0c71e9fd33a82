/* UTF-8 helpers shared by the tokenizer, the decoder and input validation. */
#ifndef L8_UTF8_H
#define L8_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one (overlong,
 * surrogate, beyond U+10FFFF, truncated). *cp receives the code point when not NULL. */
size_t l8_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

/* True when all len bytes are valid UTF-8; otherwise *bad_at receives the first bad offset. */
bool l8_utf8_valid(const char *s, size_t len, size_t *bad_at);

/* Encodes cp into out (4 bytes room); returns the byte count. */
size_t l8_utf8_put(uint32_t cp, char *out);

/* Number of bytes at the end of s[0..len) that begin a character not yet complete (0..3). */
size_t l8_utf8_incomplete_tail(const unsigned char *s, size_t len);

#endif
