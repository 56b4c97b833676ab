/* buf.c: the bounded byte buffer (see buf.h). */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void buf_clear(struct buf *b)
{
    b->off = b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void buf_shrink(struct buf *b)
{
    if (buf_len(b) == 0) {
        buf_free(b);
    }
}

/* Make room for n more content bytes plus the NUL, compacting before growing. */
static int reserve(struct buf *b, size_t n)
{
    size_t used = b->len - b->off;
    if (b->limit && used + n > b->limit) {
        return -1;
    }
    if (b->len + n + 1 <= b->cap) {
        return 0;
    }
    if (b->off && used + n + 1 <= b->cap) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        b->data[used] = '\0';
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < used + n + 1) {
        cap *= 2;
    }
    char *p = malloc(cap);
    if (!p) {
        return -1;
    }
    if (b->data) {
        memcpy(p, b->data + b->off, used);
    }
    free(b->data);
    b->data = p;
    b->cap = cap;
    b->off = 0;
    b->len = used;
    b->data[used] = '\0';
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (reserve(b, len) < 0) {
        return -1;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_append_xml(struct buf *b, const char *s, size_t len)
{
    size_t start = b->len, from = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default: continue;
        }
        if (buf_append(b, s + from, i - from) < 0 || buf_puts(b, rep) < 0) {
            goto fail;
        }
        from = i + 1;
    }
    if (buf_append(b, s + from, len - from) < 0) {
        goto fail;
    }
    return 0;
fail:
    b->len = start;
    if (b->data) {
        b->data[start] = '\0';
    }
    return -1;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= buf_len(b)) {
        buf_clear(b);
        return;
    }
    b->off += n;
}
