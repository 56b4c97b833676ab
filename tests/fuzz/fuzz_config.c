/* fuzz_config.c: libFuzzer harness for config.c. Byte 0 picks the size of the
 * error buffer, the rest is written as a config file and loaded. Oracles: a
 * failed load leaves the struct untouched and says "file:line: ..." within the
 * buffer; a successful one obeys the cross-option rules, loads the same twice,
 * and config_restart_needed copes with any output size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "jid.h"

static char path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof(path), "%s/xmppd.conf", fuzz_scratch_dir("config"));
    return 0;
}

static int terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t errsz = data[0];
    FUZZ_CHECK(fuzz_write_file(path, data + 1, size - 1) == 0);
    struct config *c = malloc(sizeof(*c)), *before = malloc(sizeof(*c));
    struct config *again = malloc(sizeof(*c));
    char *err = malloc(errsz ? errsz : 1);
    FUZZ_CHECK(c && before && again && err);
    config_defaults(c);
    memcpy(before, c, sizeof(*c));
    int rc = config_load(path, c, errsz ? err : NULL, errsz);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(memcmp(c, before, sizeof(*c)) == 0);
        if (errsz) {
            FUZZ_CHECK(terminated(err, errsz));
            size_t pl = strlen(path);
            FUZZ_CHECK(strncmp(err, path, errsz - 1 < pl ? errsz - 1 : pl) == 0);
            if (errsz > pl + 1) {
                FUZZ_CHECK(err[pl] == ':');
            }
        }
    } else {
        FUZZ_CHECK(terminated(c->domain, sizeof(c->domain)));
        FUZZ_CHECK(terminated(c->data_dir, sizeof(c->data_dir)));
        FUZZ_CHECK(terminated(c->listen_address, sizeof(c->listen_address)));
        FUZZ_CHECK(terminated(c->tls_cert, sizeof(c->tls_cert)));
        FUZZ_CHECK(terminated(c->tls_key, sizeof(c->tls_key)));
        FUZZ_CHECK(terminated(c->user, sizeof(c->user)));
        FUZZ_CHECK(terminated(c->group, sizeof(c->group)));
        FUZZ_CHECK(c->outq_soft <= c->outq_hard);
        FUZZ_CHECK(c->c2s_port != c->c2s_tls_port);
        FUZZ_CHECK((c->tls_cert[0] == '\0') == (c->tls_key[0] == '\0'));
        /* The domain is stored normalised: parsing it again changes nothing. */
        char norm[JID_MAX + 1];
        struct jid j;
        FUZZ_CHECK(jid_parse(c->domain, norm, sizeof(norm), &j) == 0);
        FUZZ_CHECK(strcmp(norm, c->domain) == 0 && j.local_len == 0 && j.resource_len == 0);
        config_defaults(again);
        FUZZ_CHECK(config_load(path, again, NULL, 0) == 0);
        FUZZ_CHECK(memcmp(c, again, sizeof(*c)) == 0);
        char *out = malloc(errsz ? errsz : 1);
        FUZZ_CHECK(out != NULL);
        config_restart_needed(before, c, out, errsz);
        if (errsz) {
            FUZZ_CHECK(terminated(out, errsz));
        }
        free(out);
    }
    free(err);
    free(again);
    free(before);
    free(c);
    return 0;
}
