/* fuzz_sasl.c: libFuzzer harness for sasl.c. Byte 0 picks the target: PLAIN
 * parsing, a SCRAM exchange (client-first then client-final, both from the
 * input) against the RFC 5802 / RFC 7677 credentials and server nonces, the
 * same with a correct (then a wrong) client-final computed here, or base64.
 * Output buffers are exactly sized on the heap so ASan sees any overrun. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sasl.h"
#include "tls.h"

struct vec {
    enum sasl_mech mech;
    enum tls_hash h;
    const char *salt_b64;
    const char *snonce;
    struct scram_creds creds;
    unsigned char salted[32]; /* SaltedPassword, for computing client proofs */
};

static struct vec vecs[2] = {
    {SASL_SCRAM_SHA1, TLS_SHA1, "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j", {0}, {0}},
    {SASL_SCRAM_SHA256, TLS_SHA256, "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
     {0}, {0}},
};
static struct scram_creds cheap; /* iteration count 1, for sasl_scram_check_password */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(tls_global_init() == 0);
    for (int i = 0; i < 2; i++) {
        struct vec *v = &vecs[i];
        unsigned char salt[SCRAM_SALT_LEN];
        int n = sasl_b64_decode(v->salt_b64, strlen(v->salt_b64), salt, sizeof(salt));
        FUZZ_CHECK(n > 0);
        FUZZ_CHECK(sasl_scram_make_creds_salt(v->mech, "pencil", 6, 4096, salt, (size_t)n,
                                              &v->creds) == 0);
        FUZZ_CHECK(tls_pbkdf2(v->h, "pencil", 6, salt, (size_t)n, 4096, v->salted,
                              tls_hash_len(v->h)) == 0);
    }
    FUZZ_CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA256, "pencil", 6, 1, &cheap) == 0);
    return 0;
}

static void fuzz_plain(const uint8_t *d, size_t n)
{
    if (n < 2) {
        return;
    }
    size_t azsz = d[0] + 1u, acsz = d[1] * 5u + 1u;
    const char *msg = (const char *)d + 2;
    size_t len = n - 2;
    char *az = malloc(azsz), *ac = malloc(acsz);
    FUZZ_CHECK(az && ac);
    const char *pw = NULL;
    size_t pwlen = 0;
    if (sasl_plain_parse(msg, len, az, azsz, ac, acsz, &pw, &pwlen) == 0) {
        size_t al = strlen(az), cl = strlen(ac);
        FUZZ_CHECK(al < azsz && cl < acsz && cl > 0);
        /* authzid NUL authcid NUL passwd is the whole message. */
        FUZZ_CHECK(al + 1 + cl + 1 + pwlen == len);
        FUZZ_CHECK(pw == msg + al + cl + 2);
        FUZZ_CHECK(memcmp(msg, az, al) == 0 && memcmp(msg + al + 1, ac, cl) == 0);
        (void)sasl_scram_check_password(SASL_SCRAM_SHA256, &cheap, pw, pwlen);
    }
    free(az);
    free(ac);
}

/* Client-final for st (after server-first), correct or with one proof bit flipped. */
static size_t client_final(const struct vec *v, const struct scram_state *st, int wrong,
                           char *out, size_t outsz)
{
    unsigned char ckey[32], skey[32], sig[32], proof[32];
    char cb64[2048], p64[64];
    static char wp[4096], am[8192];
    size_t hl = tls_hash_len(v->h);
    FUZZ_CHECK(tls_hmac(v->h, v->salted, hl, "Client Key", 10, ckey) == 0);
    FUZZ_CHECK(tls_hash(v->h, ckey, hl, skey) == 0);
    FUZZ_CHECK(sasl_b64_encode((const unsigned char *)st->gs2_header, strlen(st->gs2_header),
                               cb64, sizeof(cb64)) >= 0);
    snprintf(wp, sizeof(wp), "c=%s,r=%s", cb64, st->nonce);
    snprintf(am, sizeof(am), "%s,%s,%s", st->client_first_bare, st->server_first, wp);
    FUZZ_CHECK(tls_hmac(v->h, skey, hl, am, strlen(am), sig) == 0);
    for (size_t i = 0; i < hl; i++) {
        proof[i] = ckey[i] ^ sig[i];
    }
    proof[0] ^= (unsigned char)(wrong ? 1 : 0);
    FUZZ_CHECK(sasl_b64_encode(proof, hl, p64, sizeof(p64)) >= 0);
    int n = snprintf(out, outsz, "%s,p=%s", wp, p64);
    FUZZ_CHECK(n > 0 && (size_t)n < outsz);
    return (size_t)n;
}

static void fuzz_scram(const uint8_t *d, size_t n, int computed)
{
    if (n < 2) {
        return;
    }
    const struct vec *v = &vecs[d[0] & 1];
    size_t outsz = (d[0] & 2) ? 2 + (SCRAM_KEY_MAX + 2) / 3 * 4 + 1 : d[0] >> 2;
    size_t cf_len = d[1] % (n - 1);
    if (computed) {
        cf_len = n - 2;
    }
    const char *cf = (const char *)d + 2;
    const char *fin = cf + cf_len;
    size_t fin_len = n - 2 - cf_len;
    static struct scram_state st, st2;
    int r = sasl_scram_client_first(&st, v->mech, cf, cf_len);
    if (r != SASL_CONTINUE) {
        FUZZ_CHECK(r == SASL_FAIL_MALFORMED);
        FUZZ_CHECK(st.user[0] == '\0' && st.step == 2);
        return;
    }
    FUZZ_CHECK(st.user[0] != '\0');
    FUZZ_CHECK(strlen(st.user) <= SASL_USER_MAX && strlen(st.authzid) <= SASL_USER_MAX);
    st2 = st;
    char sf[512];
    int sn = sasl_scram_server_first_nonce(&st, &v->creds, v->snonce, sf, sizeof(sf));
    if (sn < 0) {
        return; /* a client nonce too long for our half: refused, fine */
    }
    FUZZ_CHECK((size_t)sn == strlen(sf));
    /* The random-nonce variant works on the same state too. */
    char sf2[512];
    FUZZ_CHECK(sasl_scram_server_first(&st2, &v->creds, sf2, sizeof(sf2)) > 0);

    char *out = malloc(outsz ? outsz : 1);
    FUZZ_CHECK(out != NULL);
    size_t outlen = 0;
    if (!computed) {
        r = sasl_scram_client_final(&st, fin, fin_len, out, outsz, &outlen);
        FUZZ_CHECK(r == SASL_OK || r == SASL_FAIL_AUTH || r == SASL_FAIL_MALFORMED);
        if (r == SASL_OK) {
            FUZZ_CHECK(outlen < outsz && outlen > 2 && memcmp(out, "v=", 2) == 0);
        }
    } else {
        /* Any client-first we accept must lead to success with the right proof
         * and to not-authorized with a wrong one. */
        static char msg[8192];
        static struct scram_state saved;
        saved = st;
        size_t ml = client_final(v, &st, 0, msg, sizeof(msg));
        char big[128];
        r = sasl_scram_client_final(&st, msg, ml, big, sizeof(big), &outlen);
        if (r != SASL_OK) {
            fprintf(stderr, "correct proof refused (%d): client-final %s\n", r, msg);
            FUZZ_CHECK(!"correct SCRAM proof refused");
        }
        st = saved;
        ml = client_final(v, &st, 1, msg, sizeof(msg));
        FUZZ_CHECK(sasl_scram_client_final(&st, msg, ml, big, sizeof(big), &outlen) ==
                   SASL_FAIL_AUTH);
    }
    /* One attempt per exchange. */
    FUZZ_CHECK(sasl_scram_client_final(&st, fin, fin_len, out, outsz, &outlen) ==
               SASL_FAIL_MALFORMED);
    free(out);
}

static void fuzz_b64(const uint8_t *d, size_t n)
{
    if (n < 1) {
        return;
    }
    size_t outsz = d[0] * 4u;
    const char *in = (const char *)d + 1;
    size_t len = n - 1;
    unsigned char *out = malloc(outsz ? outsz : 1);
    FUZZ_CHECK(out != NULL);
    int r = sasl_b64_decode(in, len, out, outsz);
    if (r >= 0) {
        FUZZ_CHECK((size_t)r <= outsz);
        /* Strict decoding: the canonical encoding of the result is the input. */
        size_t esz = ((size_t)r + 2) / 3 * 4 + 1;
        char *enc = malloc(esz);
        FUZZ_CHECK(enc != NULL);
        FUZZ_CHECK(sasl_b64_encode(out, (size_t)r, enc, esz) == (int)esz - 1);
        FUZZ_CHECK(esz - 1 == len && memcmp(enc, in, len) == 0);
        free(enc);
    }
    free(out);
    /* Encode the raw input: exact size works, one byte less fails. */
    size_t esz = (len + 2) / 3 * 4 + 1;
    char *enc = malloc(esz);
    FUZZ_CHECK(enc != NULL);
    FUZZ_CHECK(sasl_b64_encode((const unsigned char *)in, len, enc, esz) == (int)esz - 1);
    FUZZ_CHECK(sasl_b64_encode((const unsigned char *)in, len, enc, esz - 1) == -1);
    unsigned char *dec = malloc(len ? len : 1);
    FUZZ_CHECK(dec != NULL);
    FUZZ_CHECK(sasl_b64_decode(enc, esz - 1, dec, len) == (int)len);
    FUZZ_CHECK(memcmp(dec, in, len) == 0);
    free(dec);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        fuzz_plain(d, n);
        break;
    case 1:
        fuzz_scram(d, n, 0);
        break;
    case 2:
        fuzz_scram(d, n, 1);
        break;
    default:
        fuzz_b64(d, n);
        break;
    }
    /* Mechanism names. */
    char name[32];
    size_t k = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
    memcpy(name, data, k);
    name[k] = '\0';
    enum sasl_mech m = sasl_mech_from_name(name);
    if (m != SASL_NONE) {
        FUZZ_CHECK(strcmp(sasl_mech_name(m), name) == 0);
    }
    return 0;
}
