/* bosh.h: XMPP over BOSH (XEP-0124 + XEP-0206) at /http-bind (issue 14).
 * Owns: the <body/> wrapper parser and the rid window (bosh_body.c: pure, no
 * I/O, no allocation), and in bosh.c the sessions, their held requests and
 * the framing layer below an ordinary c2s stream on a conn without a socket.
 * Must not: touch sockets, copy c2s logic (SASL, bind and routing are
 * c2s.c's), or be named by http.c, c2s.c, router.c or server.c. */
#ifndef XMPPD_BOSH_H
#define XMPPD_BOSH_H

#include <stddef.h>
#include <stdint.h>

#define BOSH_SID_MAX 40
#define BOSH_TO_MAX 256
#define BOSH_LANG_MAX 36
#define BOSH_NUM_MAX 16 /* digits of a rid (XEP-0124 §7: below 2^53) or a number */

/* The attributes of one <body/> and where its children are. Strings are
 * NUL-terminated copies ("" when absent); numbers -1 when absent. */
struct bosh_body {
    char sid[BOSH_SID_MAX];
    char to[BOSH_TO_MAX];
    char lang[BOSH_LANG_MAX]; /* xml:lang */
    char type[16];            /* "terminate", ... */
    int64_t rid;
    int64_t wait, hold;
    int64_t pause; /* §10: seconds the client will be away */
    int has_version; /* xmpp:version (XEP-0206 §4) */
    int restart;     /* xmpp:restart='true' (XEP-0206 §5) */
    const char *content; /* the children, unparsed (into the caller's data) */
    size_t content_len;
};

/* Parse a request body: an optional XML declaration, then one <body/> in the
 * httpbind namespace. Returns 0, or -1 with *why set (a bad-request). */
int bosh_body_parse(const char *data, size_t len, struct bosh_body *b, const char **why);

/* XEP-0124 §14: where rid stands against last, the highest rid processed,
 * with window requests at once. */
enum bosh_rid {
    BOSH_RID_NEXT,   /* last + 1: process it now */
    BOSH_RID_EARLY,  /* within the window past the next: wait for the ones before */
    BOSH_RID_REPEAT, /* one of the last window: send its answer again (§14.3) */
    BOSH_RID_OUT,    /* anything else: item-not-found (§14.2) */
};
enum bosh_rid bosh_rid_check(int64_t last, int64_t rid, int window);

#endif
