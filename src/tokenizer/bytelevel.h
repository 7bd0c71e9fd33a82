/* GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE vocabularies. */
#ifndef L8_TOK_BYTELEVEL_H
#define L8_TOK_BYTELEVEL_H

#include <stddef.h>
#include <stdint.h>

/* The code point byte b stands for (e.g. ' ' -> U+0120 'Ġ'). */
uint32_t l8_bytelevel_char(uint8_t b);
/* The byte code point cp stands for, or -1 when cp is not one of the 256 mapped characters. */
int l8_bytelevel_byte(uint32_t cp);
/* Writes the mapped form of len bytes into out (room for 2 * len) and returns its length. */
size_t l8_bytelevel_encode(const char *s, size_t len, char *out);

#endif
