/* webadmin.h: the web admin console at /admin/ (issue 14 item 3; webadmin.c)
 * and its pure helpers (webadmin_util.c, unit-tested): the in-memory log
 * ring, the constant-time token compare, form field decoding.
 * Must not: do I/O or logging in the helpers; webadmin.c reaches accounts
 * only through admin.h and c2s.h, sockets only through http.h. */
#ifndef XMPPD_WEBADMIN_H
#define XMPPD_WEBADMIN_H

#include <stddef.h>

/* The last n log lines, oldest dropped first. Each line is copied, cut to
 * WEBADMIN_LINE_MAX bytes: at most n * WEBADMIN_LINE_MAX bytes in all. */
#define WEBADMIN_LINE_MAX 512
struct webadmin_ring {
    char **line; /* n slots, NULL until used */
    int n;       /* slots (0: the ring keeps nothing) */
    int next;    /* slot the next line goes to */
    int count;   /* lines held */
};
/* 0, or -1 when out of memory (the ring then keeps nothing). */
int webadmin_ring_init(struct webadmin_ring *r, int n);
void webadmin_ring_add(struct webadmin_ring *r, const char *line);
/* The i-th line held, 0 the oldest; NULL past the last. */
const char *webadmin_ring_get(const struct webadmin_ring *r, int i);
void webadmin_ring_free(struct webadmin_ring *r);

/* 1 when a and b are the same string. The time taken depends on the length
 * of b (the expected token) only, never on where they differ. */
int webadmin_token_eq(const char *a, const char *b);

/* The value of field name in src (len bytes of
 * application/x-www-form-urlencoded: a query or a form body), decoded into
 * out (outsz bytes, NUL-terminated): its length, or -1 when the field is
 * missing, does not fit, or decodes to a NUL or a bad %-escape. */
int webadmin_form_get(const char *src, size_t len, const char *name, char *out, size_t outsz);

#endif
