/* utf8.h: strict UTF-8 decoding of one sequence (RFC 3629 §3-4), shared by
 * the pure parsers (jid.c, sasl.c). Header-only so each stays free of link
 * dependencies; xml.c has its own streaming validator for split input. */
#ifndef XMPPD_UTF8_H
#define XMPPD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode one sequence from s[0..len). Returns its length and stores the code
 * point in *cp, or 0 when it is invalid: truncated, bad continuation byte,
 * overlong form, surrogate, or above U+10FFFF. */
static inline size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    uint32_t c = s[0];
    uint32_t min;
    size_t n;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        min = 0x80;
        c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        min = 0x800;
        c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0; /* continuation byte or 0xF8..0xFF as a lead byte */
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return n;
}

#endif
