/* buf.h: the one growable byte buffer. It owns its memory and checks every
 * bound itself, so no other module does pointer arithmetic on its internals.
 * A buffer has a hard size limit; an append that would pass it fails and
 * leaves the buffer unchanged. */
#ifndef XMPPD_BUF_H
#define XMPPD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;   /* bytes [off, len) are the content; always NUL-terminated at len */
    size_t off;   /* consumed prefix, reclaimed lazily */
    size_t len;
    size_t cap;
    size_t limit; /* max content bytes; 0 = unlimited (only for trusted, bounded input) */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);
/* Returns 0, or -1 when the limit would be passed or memory is short. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s with XML escaping of & < > " ' (for text and attribute values). */
int buf_append_xml(struct buf *b, const char *s, size_t len);
static inline const char *buf_ptr(const struct buf *b) { return b->data ? b->data + b->off : ""; }
static inline size_t buf_len(const struct buf *b) { return b->len - b->off; }
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);
/* Release memory when empty (idle connections keep no buffers). */
void buf_shrink(struct buf *b);

#endif
