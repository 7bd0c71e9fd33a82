#include "tokenizer/bytelevel.h"

#include <stdbool.h>

#include "util/utf8.h"

/* Bytes that are visible Latin-1 characters keep their code point; the other 68 (0-32, 127-160
 * and the soft hyphen 173) are shifted, in byte order, to U+0100..U+0143. */
static bool keeps_itself(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

uint32_t l8_bytelevel_char(uint8_t b) {
    if (keeps_itself(b)) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33 + (b - 127u);
    return 256u + 67; /* 173 */
}

int l8_bytelevel_byte(uint32_t cp) {
    if (cp < 256) return keeps_itself(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67) return 173;
    return -1;
}

size_t l8_bytelevel_encode(const char *s, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned b = (unsigned char)s[i];
        if (b >= 33 && b <= 126) {
            out[o++] = (char)b; /* the common case: printable ASCII maps to itself */
        } else {
            o += l8_utf8_put(l8_bytelevel_char((uint8_t)b), out + o);
        }
    }
    return o;
}
