/* webadmin_util.c: the web admin console's pure helpers (webadmin.h). */
#include "webadmin.h"

#include <stdlib.h>
#include <string.h>

int webadmin_ring_init(struct webadmin_ring *r, int n)
{
    memset(r, 0, sizeof(*r));
    if (n <= 0) {
        return 0;
    }
    r->line = calloc((size_t)n, sizeof(*r->line));
    if (!r->line) {
        return -1;
    }
    r->n = n;
    return 0;
}

void webadmin_ring_add(struct webadmin_ring *r, const char *line)
{
    if (r->n == 0) {
        return;
    }
    size_t len = strnlen(line, WEBADMIN_LINE_MAX);
    char *copy = realloc(r->line[r->next], len + 1);
    if (!copy) {
        return; /* the slot keeps its old line */
    }
    memcpy(copy, line, len);
    copy[len] = '\0';
    r->line[r->next] = copy;
    r->next = (r->next + 1) % r->n;
    if (r->count < r->n) {
        r->count++;
    }
}

const char *webadmin_ring_get(const struct webadmin_ring *r, int i)
{
    if (i < 0 || i >= r->count) {
        return NULL;
    }
    return r->line[(r->next - r->count + i + r->n) % r->n];
}

void webadmin_ring_free(struct webadmin_ring *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->line[i]);
    }
    free(r->line);
    memset(r, 0, sizeof(*r));
}

int webadmin_token_eq(const char *a, const char *b)
{
    size_t n = strlen(b);
    unsigned char diff = 0;
    size_t i = 0;
    /* Walk b whole; past the end of a keep comparing against its NUL. */
    for (size_t j = 0; j < n; j++) {
        diff |= (unsigned char)(a[i] ^ b[j]);
        i += a[i] != '\0';
    }
    return diff == 0 && a[i] == '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes src[0..len) into out; -1 as webadmin_form_get says. */
static int decode(const char *src, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (len - i < 3) {
                return -1;
            }
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            ch = hi << 4 | lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= outsz) {
            return -1;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return (int)o;
}

int webadmin_form_get(const char *src, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(src + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - src) : len;
        if (end - i > nl && src[i + nl] == '=' && memcmp(src + i, name, nl) == 0) {
            return decode(src + i + nl + 1, end - i - nl - 1, out, outsz);
        }
        i = end + 1;
    }
    return -1;
}
