/* precis.h: PRECIS string preparation for JID parts (RFC 8264, RFC 8265,
 * RFC 7622 §3): width and case mapping, NFC, the bidi rule, and the
 * IdentifierClass / FreeformClass / IDNA2008 code point checks, plus the
 * UTS #39 single-script test used when an account is created.
 * Pure functions over caller buffers: no allocation, no I/O, bounded stack. */
#ifndef XMPPD_PRECIS_H
#define XMPPD_PRECIS_H

#include <stddef.h>

enum precis_profile {
    PRECIS_USERNAME, /* RFC 8265 §3.3 UsernameCaseMapped: localparts (RFC 7622 §3.3) */
    PRECIS_OPAQUE,   /* RFC 8265 §4.2 OpaqueString: resourceparts (RFC 7622 §3.4) */
    PRECIS_DOMAIN    /* RFC 7622 §3.2: IDNA2008 U-labels, lowercase, NFC */
};

/* Enforce profile on the UTF-8 string in[0..len) and write the result,
 * NUL-terminated, into out. Returns its length in bytes, or -1 when the string
 * is invalid UTF-8, holds a code point the profile disallows, breaks the bidi
 * rule, maps to the empty string, needs more than outsz - 1 bytes, or is too
 * long to prepare within the fixed work buffers (PRECIS_CP_MAX code points). */
int precis_enforce(enum precis_profile prof, const char *in, size_t len, char *out, size_t outsz);

/* 1 when the (enforced) UTF-8 string s[0..len) uses letters of one script
 * only, where Common and Inherited characters go with any script and the
 * subsets of Latin+Han+Hiragana+Katakana, Latin+Han+Bopomofo and
 * Latin+Han+Hangul count as one (UTS #39 §5.2 "Highly Restrictive"); 0 when
 * it mixes scripts (or is not valid UTF-8). */
int precis_single_script(const char *s, size_t len);

#endif
