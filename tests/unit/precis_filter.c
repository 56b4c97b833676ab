/* precis_filter.c: a filter for tests/unit/check-precis-reference.py. Each
 * input line is a profile letter (U = UsernameCaseMapped, O = OpaqueString,
 * D = domain) and code points in hex; each output line is the enforced string
 * as hex UTF-8 bytes, or ERR. Not a test by itself. */
#include <stdio.h>
#include <stdlib.h>

#include "precis.h"

static size_t put_utf8(char *s, unsigned long c)
{
    if (c < 0x80) {
        s[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        s[0] = (char)(0xC0 | c >> 6);
        s[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        s[0] = (char)(0xE0 | c >> 12);
        s[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        s[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    s[0] = (char)(0xF0 | c >> 18);
    s[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    s[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    s[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

int main(void)
{
    static char line[8192], in[8192], out[8192];

    while (fgets(line, sizeof(line), stdin)) {
        enum precis_profile prof = line[0] == 'U'   ? PRECIS_USERNAME
                                   : line[0] == 'O' ? PRECIS_OPAQUE
                                                    : PRECIS_DOMAIN;
        char *p = line + 1, *end = NULL;
        size_t n = 0;
        for (unsigned long c = strtoul(p, &end, 16); end != p && n + 4 < sizeof(in);
             c = strtoul(p, &end, 16)) {
            n += put_utf8(in + n, c);
            p = end;
        }
        int r = precis_enforce(prof, in, n, out, sizeof(out));
        if (r < 0) {
            puts("ERR");
            continue;
        }
        for (int i = 0; i < r; i++) {
            printf("%02x", (unsigned char)out[i]);
        }
        putchar('\n');
    }
    return 0;
}
