/* test_sasl.c: unit tests for sasl.c: base64, PLAIN parsing, SCRAM credential
 * derivation and the SCRAM-SHA-1 / SCRAM-SHA-256 server side, checked against
 * the RFC 5802 §5 and RFC 7677 §3 example exchanges, plus a client written
 * here on tls.h for exchanges with random nonces. Prints "N passed, N failed". */
#include <stdlib.h>

#include "sasl.h"
#include "test.h"
#include "tls.h"

/* Run client-first (as a C string) on a fresh state. */
static int cf(struct scram_state *st, enum sasl_mech m, const char *msg)
{
    return sasl_scram_client_first(st, m, msg, strlen(msg));
}

/* ---- base64 ---- */

static void test_b64(void)
{
    /* RFC 4648 §10 test vectors */
    static const char *const vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char enc[64];
    unsigned char dec[64];
    unsigned char all[256];
    char big[400];
    unsigned char back[300];

    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        size_t n = strlen(vec[i][0]);
        CHECK(sasl_b64_encode((const unsigned char *)vec[i][0], n, enc, sizeof(enc)) ==
              (int)strlen(vec[i][1]));
        CHECK_STR(enc, vec[i][1]);
        CHECK(sasl_b64_decode(vec[i][1], strlen(vec[i][1]), dec, sizeof(dec)) == (int)n);
        CHECK(memcmp(dec, vec[i][0], n) == 0);
    }

    /* round trips over every byte value and every length up to 256 */
    for (int i = 0; i < 256; i++) {
        all[i] = (unsigned char)(255 - i);
    }
    for (size_t len = 0; len <= 256; len++) {
        int e = sasl_b64_encode(all, len, big, sizeof(big));
        int d = sasl_b64_decode(big, (size_t)e, back, sizeof(back));
        if (e != (int)((len + 2) / 3 * 4) || d != (int)len || memcmp(back, all, len) != 0) {
            CHECK(0 && "b64 round trip");
        }
    }
    CHECK(sasl_b64_encode(all, 256, big, sizeof(big)) == 344);

    /* output bounds: exact fit, one short */
    CHECK(sasl_b64_encode((const unsigned char *)"foo", 3, enc, 5) == 4);
    CHECK(sasl_b64_encode((const unsigned char *)"foo", 3, enc, 4) == -1);
    CHECK(sasl_b64_encode((const unsigned char *)"fo", 2, enc, 4) == -1);
    CHECK(sasl_b64_decode("Zm9vYmFy", 8, dec, 6) == 6);
    CHECK(sasl_b64_decode("Zm9vYmFy", 8, dec, 5) == -1);
    CHECK(sasl_b64_decode("Zm9vYg==", 8, dec, 4) == 4);
    CHECK(sasl_b64_decode("Zm9vYg==", 8, dec, 3) == -1);

    /* strictness */
    static const char *const bad[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* short padding */
        "Z",        /* not a multiple of four */
        "Zm9vY",    /* not a multiple of four */
        "Z===",     /* three pad characters */
        "====",     /* nothing but padding */
        "Zg==Zg==", /* padding in the middle */
        "=Zg=",     /* padding first */
        "Zm=v",     /* padding inside a quantum */
        "Zh==",     /* non-zero bits in the padding position (RFC 4648 §3.5) */
        "Zm9=",     /* same, one pad character */
        "Zm-v",     /* base64url alphabet */
        "Zm_v",     /* base64url alphabet */
        "Zm9v\n",   /* line break */
        "Zm 9v",    /* space */
        "Zm9v ",    /* trailing space */
        " Zm9v",    /* leading space */
        "Zm9\x80",  /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = sasl_b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec));
        CHECK(rc == -1);
        if (rc != -1) {
            fprintf(stderr, "  accepted bad base64 \"%s\"\n", bad[i]);
        }
    }
    CHECK(sasl_b64_decode("Zm\0v", 4, dec, sizeof(dec)) == -1);
    CHECK(sasl_b64_decode("", 0, dec, sizeof(dec)) == 0);
}

/* ---- names ---- */

static void test_names(void)
{
    CHECK(sasl_mech_from_name("PLAIN") == SASL_PLAIN);
    CHECK(sasl_mech_from_name("SCRAM-SHA-1") == SASL_SCRAM_SHA1);
    CHECK(sasl_mech_from_name("SCRAM-SHA-256") == SASL_SCRAM_SHA256);
    CHECK(sasl_mech_from_name("SCRAM-SHA-1-PLUS") == SASL_NONE);
    CHECK(sasl_mech_from_name("scram-sha-1") == SASL_NONE);
    CHECK(sasl_mech_from_name("DIGEST-MD5") == SASL_NONE);
    CHECK(sasl_mech_from_name("") == SASL_NONE);
    CHECK(sasl_mech_from_name(NULL) == SASL_NONE);
    CHECK_STR(sasl_mech_name(SASL_PLAIN), "PLAIN");
    CHECK_STR(sasl_mech_name(SASL_SCRAM_SHA1), "SCRAM-SHA-1");
    CHECK_STR(sasl_mech_name(SASL_SCRAM_SHA256), "SCRAM-SHA-256");
    CHECK(sasl_mech_name(SASL_NONE) == NULL);
}

/* ---- PLAIN ---- */

static int plain(const char *msg, size_t len, char *az, char *ac, const char **pw, size_t *pwlen)
{
    return sasl_plain_parse(msg, len, az, SASL_USER_MAX * 3 + 3, ac, SASL_USER_MAX + 1, pw, pwlen);
}

static void test_plain(void)
{
    static char az[SASL_USER_MAX * 3 + 3], ac[SASL_USER_MAX + 1];
    static char msg[4096];
    const char *pw = NULL;
    size_t pwlen = 0;

    CHECK(plain("\0user\0pencil", 12, az, ac, &pw, &pwlen) == 0);
    CHECK_STR(az, "");
    CHECK_STR(ac, "user");
    CHECK(pwlen == 6 && memcmp(pw, "pencil", 6) == 0);

    /* RFC 4616 §4 examples */
    CHECK(plain("\0tim\0tanstaaftanstaaf", 21, az, ac, &pw, &pwlen) == 0);
    CHECK_STR(ac, "tim");
    CHECK(pwlen == 16 && memcmp(pw, "tanstaaftanstaaf", 16) == 0);
    CHECK(plain("Ursel\0Kurt\0xipj3plmq", 20, az, ac, &pw, &pwlen) == 0);
    CHECK_STR(az, "Ursel");
    CHECK_STR(ac, "Kurt");
    CHECK(pwlen == 9 && memcmp(pw, "xipj3plmq", 9) == 0);

    /* passwords may hold spaces and UTF-8 */
    CHECK(plain("\0u\0p a\xc3\xa9", 8, az, ac, &pw, &pwlen) == 0);
    CHECK(pwlen == 5);

    /* malformed */
    CHECK(plain("", 0, az, ac, &pw, &pwlen) == -1);
    CHECK(plain("userpencil", 10, az, ac, &pw, &pwlen) == -1);   /* no NUL */
    CHECK(plain("\0userpencil", 11, az, ac, &pw, &pwlen) == -1); /* one NUL */
    CHECK(plain("\0\0pencil", 8, az, ac, &pw, &pwlen) == -1);    /* empty authcid */
    CHECK(plain("\0user\0", 6, az, ac, &pw, &pwlen) == -1);      /* empty password */
    CHECK(plain("\0\0", 2, az, ac, &pw, &pwlen) == -1);
    CHECK(plain("\0user\0pen\0cil", 14, az, ac, &pw, &pwlen) == -1); /* extra NUL */
    CHECK(plain("\0user\0pencil\0", 13, az, ac, &pw, &pwlen) == -1);
    CHECK(plain("\0us\xc0\xafr\0pencil", 13, az, ac, &pw, &pwlen) == -1); /* overlong */
    CHECK(plain("\0user\0pen\xffil", 12, az, ac, &pw, &pwlen) == -1);
    CHECK(plain("a\xed\xa0\x80\0user\0pencil", 16, az, ac, &pw, &pwlen) == -1); /* surrogate */

    /* caller buffers are respected */
    CHECK(sasl_plain_parse("az\0user\0pw", 10, az, 3, ac, 5, &pw, &pwlen) == 0);
    CHECK(sasl_plain_parse("az\0user\0pw", 10, az, 2, ac, 5, &pw, &pwlen) == -1);
    CHECK(sasl_plain_parse("az\0user\0pw", 10, az, 3, ac, 4, &pw, &pwlen) == -1);

    /* length limits: authcid 1023 ok / 1024 not; password 1023 ok / 1024 not */
    msg[0] = '\0';
    memset(msg + 1, 'u', SASL_USER_MAX);
    msg[1 + SASL_USER_MAX] = '\0';
    msg[2 + SASL_USER_MAX] = 'p';
    CHECK(plain(msg, 3 + SASL_USER_MAX, az, ac, &pw, &pwlen) == 0);
    CHECK(strlen(ac) == SASL_USER_MAX);
    memset(msg + 1, 'u', SASL_USER_MAX + 1);
    msg[2 + SASL_USER_MAX] = '\0';
    msg[3 + SASL_USER_MAX] = 'p';
    CHECK(plain(msg, 4 + SASL_USER_MAX, az, ac, &pw, &pwlen) == -1);
    memcpy(msg, "\0u\0", 3);
    memset(msg + 3, 'p', 1023);
    CHECK(plain(msg, 3 + 1023, az, ac, &pw, &pwlen) == 0);
    CHECK(pwlen == 1023);
    memset(msg + 3, 'p', 1024);
    CHECK(plain(msg, 3 + 1024, az, ac, &pw, &pwlen) == -1);
}

/* ---- credentials ---- */

static const unsigned char salt1[] = {0x41, 0x25, 0xc2, 0x47, 0xe4, 0x3a,
                                      0xb1, 0xe9, 0x3c, 0x6d, 0xff, 0x76}; /* QSXCR+Q6sek8bf92 */

static void test_creds(void)
{
    struct scram_creds c, c2;
    unsigned char salt[32];

    CHECK(sasl_b64_decode("QSXCR+Q6sek8bf92", 16, salt, sizeof(salt)) == 12);
    CHECK(memcmp(salt, salt1, 12) == 0);

    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 4096, salt1, 12, &c) == 0);
    CHECK(c.key_len == 20 && c.iter == 4096 && c.salt_len == 12);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA1, &c, "pencil", 6) == 1);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA1, &c, "pencil", 5) == 0);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA1, &c, "Pencil", 6) == 0);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA256, &c, "pencil", 6) == 0); /* wrong mech */

    /* random salts: two accounts with one password get different keys */
    CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA256, "pencil", 6, 64, &c) == 0);
    CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA256, "pencil", 6, 64, &c2) == 0);
    CHECK(c.key_len == 32 && c.salt_len == SCRAM_SALT_LEN && c.iter == 64);
    CHECK(memcmp(c.salt, c2.salt, SCRAM_SALT_LEN) != 0);
    CHECK(memcmp(c.stored_key, c2.stored_key, 32) != 0);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA256, &c, "pencil", 6) == 1);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA256, &c2, "pencil", 6) == 1);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA256, &c, "pencio", 6) == 0);
    c.key_len = 0; /* "not set" */
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA256, &c, "pencil", 6) == 0);

    /* Pairs (the worker's PLAIN checks): each answer as if checked alone,
     * right or wrong, SHA-1 with SHA-1 (the two-lane path) or with SHA-256,
     * different iteration counts, and an unusable one next to a good one. */
    {
        struct scram_creds s1, s1b, s256;
        CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA1, "alpha", 5, 4096, &s1) == 0);
        CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA1, "beta", 4, 100, &s1b) == 0);
        CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA256, "gamma", 5, 64, &s256) == 0);
        struct {
            enum sasl_mech m;
            const struct scram_creds *c;
            const char *pw;
            int ok;
        } cases[] = {
            {SASL_SCRAM_SHA1, &s1, "alpha", 1},    {SASL_SCRAM_SHA1, &s1b, "beta", 1},
            {SASL_SCRAM_SHA1, &s1, "alphA", 0},    {SASL_SCRAM_SHA256, &s256, "gamma", 1},
            {SASL_SCRAM_SHA256, &s256, "gamm", 0}, {SASL_SCRAM_SHA256, &s1, "alpha", 0},
            {SASL_PLAIN, &s1, "alpha", 0},
        };
        size_t n = sizeof(cases) / sizeof(cases[0]);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++) {
                struct sasl_password_check a = {cases[i].m, cases[i].c, cases[i].pw,
                                                strlen(cases[i].pw), -1};
                struct sasl_password_check b = {cases[j].m, cases[j].c, cases[j].pw,
                                                strlen(cases[j].pw), -1};
                sasl_scram_check_password_pair(&a, &b);
                CHECK(a.ok == cases[i].ok && b.ok == cases[j].ok);
            }
        }
    }

    /* non-ASCII passwords are used as raw UTF-8 bytes */
    CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA1, "p\xc3\xa4ss", 5, 16, &c) == 0);
    CHECK(sasl_scram_check_password(SASL_SCRAM_SHA1, &c, "p\xc3\xa4ss", 5) == 1);

    /* bad arguments */
    CHECK(sasl_scram_make_creds(SASL_PLAIN, "pencil", 6, 4096, &c) == -1);
    CHECK(sasl_scram_make_creds(SASL_NONE, "pencil", 6, 4096, &c) == -1);
    CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA1, "pencil", 6, 0, &c) == -1);
    CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA1, "", 0, 4096, &c) == -1);
    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 1, salt1, 0, &c) == -1);
    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 1, salt, 16, &c) == 0);
    /* Salts made elsewhere are longer than ours: Prosody's are 36-byte UUIDs
     * (XEP-0227 imports), up to SCRAM_SALT_MAX. */
    {
        unsigned char big[SCRAM_SALT_MAX + 1];
        memset(big, 'u', sizeof(big));
        CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 1, big, 36, &c) == 0);
        CHECK(c.salt_len == 36 && sasl_scram_check_password(SASL_SCRAM_SHA1, &c, "pencil", 6) == 1);
        CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 1, big, SCRAM_SALT_MAX,
                                         &c) == 0);
        CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 1, big, SCRAM_SALT_MAX + 1,
                                         &c) == -1);
    }
}

/* ---- SCRAM: RFC example exchanges ---- */

static void test_rfc5802(void)
{
    /* RFC 5802 §5: SCRAM-SHA-1, user "user", password "pencil" */
    static struct scram_state st;
    struct scram_creds c;
    char out[512];
    size_t outlen = 0;
    const char *client_first = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
    const char *client_final = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                               "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    int n;

    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 4096, salt1, 12, &c) == 0);
    CHECK(cf(&st, SASL_SCRAM_SHA1, client_first) == SASL_CONTINUE);
    CHECK_STR(st.user, "user");
    CHECK_STR(st.authzid, "");
    CHECK_STR(st.gs2_header, "n,,");
    CHECK_STR(st.client_first_bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    n = sasl_scram_server_first_nonce(&st, &c, "3rfcNHYJY1ZVvWVs7j", out, sizeof(out));
    CHECK_STR(out, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    CHECK(n == (int)strlen(out));
    CHECK(sasl_scram_client_final(&st, client_final, strlen(client_final), out, sizeof(out),
                                  &outlen) == SASL_OK);
    out[outlen < sizeof(out) ? outlen : 0] = '\0';
    CHECK_STR(out, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    CHECK(outlen == 30);
    CHECK_STR(st.user, "user"); /* still there for c2s; the keys are wiped */
    CHECK(st.creds.key_len == 0 && st.creds.stored_key[0] == 0 && st.creds.server_key[0] == 0);
    /* one attempt per exchange */
    CHECK(sasl_scram_client_final(&st, client_final, strlen(client_final), out, sizeof(out),
                                  &outlen) == SASL_FAIL_MALFORMED);

    /* same exchange, wrong password on the server side */
    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil2", 7, 4096, salt1, 12, &c) == 0);
    CHECK(cf(&st, SASL_SCRAM_SHA1, client_first) == SASL_CONTINUE);
    CHECK(sasl_scram_server_first_nonce(&st, &c, "3rfcNHYJY1ZVvWVs7j", out, sizeof(out)) > 0);
    CHECK(sasl_scram_client_final(&st, client_final, strlen(client_final), out, sizeof(out),
                                  &outlen) == SASL_FAIL_AUTH);
}

static void test_rfc7677(void)
{
    /* RFC 7677 §3: SCRAM-SHA-256, user "user", password "pencil" */
    static struct scram_state st;
    struct scram_creds c;
    unsigned char salt[32];
    char out[512];
    size_t outlen = 0;
    const char *client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const char *client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    int saltlen;

    saltlen = sasl_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt));
    CHECK(saltlen == 16);
    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA256, "pencil", 6, 4096, salt, 16, &c) == 0);
    CHECK(c.key_len == 32);
    CHECK(cf(&st, SASL_SCRAM_SHA256, client_first) == SASL_CONTINUE);
    CHECK(sasl_scram_server_first_nonce(&st, &c, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", out,
                                        sizeof(out)) > 0);
    CHECK_STR(out, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    CHECK(sasl_scram_client_final(&st, client_final, strlen(client_final), out, sizeof(out),
                                  &outlen) == SASL_OK);
    out[outlen < sizeof(out) ? outlen : 0] = '\0';
    CHECK_STR(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");

    /* SHA-1 credentials cannot serve a SHA-256 exchange */
    {
        struct scram_creds c1;
        CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 16, salt, 16, &c1) == 0);
        CHECK(cf(&st, SASL_SCRAM_SHA256, client_first) == SASL_CONTINUE);
        CHECK(sasl_scram_server_first_nonce(&st, &c1, "abc", out, sizeof(out)) == -1);
    }
}

/* ---- SCRAM: a client built from tls.h, for random nonces ---- */

/* Build client-final for an exchange: "c=b64(gs2),r=nonce,p=proof" where the
 * proof is computed from the password (RFC 5802 §3). ext is inserted before
 * the proof when not NULL. */
static int client_final_for(enum tls_hash h, const char *password, const struct scram_creds *c,
                            const char *gs2, const char *cfb, const char *sf, const char *nonce,
                            const char *ext, char *out, size_t outsz)
{
    unsigned char salted[32], ckey[32], skey[32], sig[32], proof[32];
    char wp[1024], am[4096], cb64[512], p64[64];
    size_t hl = tls_hash_len(h);

    tls_pbkdf2(h, password, strlen(password), c->salt, c->salt_len, c->iter, salted, hl);
    tls_hmac(h, salted, hl, "Client Key", 10, ckey);
    tls_hash(h, ckey, hl, skey);
    sasl_b64_encode((const unsigned char *)gs2, strlen(gs2), cb64, sizeof(cb64));
    snprintf(wp, sizeof(wp), "c=%s,r=%s%s%s", cb64, nonce, ext ? "," : "", ext ? ext : "");
    snprintf(am, sizeof(am), "%s,%s,%s", cfb, sf, wp);
    tls_hmac(h, skey, hl, am, strlen(am), sig);
    for (size_t i = 0; i < hl; i++) {
        proof[i] = ckey[i] ^ sig[i];
    }
    sasl_b64_encode(proof, hl, p64, sizeof(p64));
    return snprintf(out, outsz, "%s,p=%s", wp, p64);
}

/* Full exchange with a random server nonce. Returns the client_final result. */
static int exchange(enum sasl_mech mech, const char *client_first, const char *client_pw,
                    const char *server_pw, const char *ext)
{
    static struct scram_state st;
    struct scram_creds c;
    enum tls_hash h = mech == SASL_SCRAM_SHA1 ? TLS_SHA1 : TLS_SHA256;
    char sf[512], fin[2048], out[128];
    size_t outlen = 0;
    int n;

    if (sasl_scram_make_creds(mech, server_pw, strlen(server_pw), 32, &c) != 0) {
        return 100;
    }
    if (cf(&st, mech, client_first) != SASL_CONTINUE) {
        return 101;
    }
    n = sasl_scram_server_first(&st, &c, sf, sizeof(sf));
    if (n <= 0 || (size_t)n != strlen(sf)) {
        return 102;
    }
    client_final_for(h, client_pw, &c, st.gs2_header, st.client_first_bare, sf, st.nonce, ext, fin,
                     sizeof(fin));
    return sasl_scram_client_final(&st, fin, strlen(fin), out, sizeof(out), &outlen);
}

static void test_random_exchanges(void)
{
    static struct scram_state st;
    struct scram_creds c;
    char sf1[512], sf2[512];

    /* server nonce: client nonce + 32 fresh base64 characters, different each time */
    CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA256, "pw", 2, 16, &c) == 0);
    CHECK(cf(&st, SASL_SCRAM_SHA256, "n,,n=u,r=abc") == SASL_CONTINUE);
    CHECK(sasl_scram_server_first(&st, &c, sf1, sizeof(sf1)) > 0);
    CHECK(strncmp(sf1, "r=abc", 5) == 0);
    CHECK(strlen(st.nonce) == 3 + 32);
    CHECK(cf(&st, SASL_SCRAM_SHA256, "n,,n=u,r=abc") == SASL_CONTINUE);
    CHECK(sasl_scram_server_first(&st, &c, sf2, sizeof(sf2)) > 0);
    CHECK(strcmp(sf1, sf2) != 0);
    /* server-first twice in one exchange */
    CHECK(sasl_scram_server_first(&st, &c, sf2, sizeof(sf2)) == -1);

    CHECK(exchange(SASL_SCRAM_SHA1, "n,,n=user,r=0123456789", "secret", "secret", NULL) == SASL_OK);
    CHECK(exchange(SASL_SCRAM_SHA256, "n,,n=user,r=0123456789", "secret", "secret", NULL) ==
          SASL_OK);
    CHECK(exchange(SASL_SCRAM_SHA1, "n,,n=user,r=0123456789", "secreT", "secret", NULL) ==
          SASL_FAIL_AUTH);
    CHECK(exchange(SASL_SCRAM_SHA256, "n,,n=user,r=0123456789", "wrong", "secret", NULL) ==
          SASL_FAIL_AUTH);
    /* 'y' flag, authzid and encoded names take part in c= and AuthMessage */
    CHECK(exchange(SASL_SCRAM_SHA256, "y,,n=user,r=xyz", "pw", "pw", NULL) == SASL_OK);
    CHECK(exchange(SASL_SCRAM_SHA256, "n,a=admin@example.com,n=user,r=xyz", "pw", "pw", NULL) ==
          SASL_OK);
    CHECK(exchange(SASL_SCRAM_SHA1, "n,a=a=3Db,n=u=2Cv,r=xyz", "pw", "pw", NULL) == SASL_OK);
    /* extensions are accepted and ignored; "m" is not */
    CHECK(exchange(SASL_SCRAM_SHA1, "n,,n=user,r=xyz,x=ext", "pw", "pw", NULL) == SASL_OK);
    CHECK(exchange(SASL_SCRAM_SHA1, "n,,n=user,r=xyz", "pw", "pw", "x=ext") == SASL_OK);
    CHECK(exchange(SASL_SCRAM_SHA1, "n,,n=user,r=xyz", "pw", "pw", "m=ext") == SASL_FAIL_MALFORMED);
    /* non-ASCII passwords: raw UTF-8 bytes on both sides */
    CHECK(exchange(SASL_SCRAM_SHA256, "n,,n=user,r=xyz", "p\xc3\xa4ss", "p\xc3\xa4ss", NULL) ==
          SASL_OK);
}

/* ---- SCRAM: malformed and failing messages ---- */

static void test_client_first_parse(void)
{
    static struct scram_state st;
    static char longmsg[2048];
    static const char *const bad[] = {
        "",
        "n",
        "n,",
        "n,,",
        "y,",
        "p=tls-unique,,n=user,r=abc", /* channel binding we did not offer */
        "p=tls-server-end-point,,n=user,r=abc",
        "x,,n=user,r=abc",
        "N,,n=user,r=abc",
        "nn,,n=user,r=abc",
        ",,n=user,r=abc",
        "n,,m=ext,n=user,r=abc", /* RFC 5802 §5.1: mandatory extension */
        "n,,n=user,r=abc,m=ext",
        "n,,n=,r=abc",      /* empty username */
        "n,,n=us=er,r=abc", /* bare '=' */
        "n,,n=us=2,r=abc",
        "n,,n=us=2c,r=abc", /* lower-case escape */
        "n,,n=user=,r=abc",
        "n,,n=us=41er,r=abc", /* only =2C and =3D exist */
        "n,,r=abc,n=user",    /* wrong order */
        "n,,n=user",          /* no nonce */
        "n,,n=user,",
        "n,,n=user,r=",     /* empty nonce */
        "n,,n=user,r=abc,", /* trailing comma */
        "n,,n=user,r=a b",  /* space is not printable */
        "n,,n=user,r=a\x7f",
        "n,,n=user,r=abc,x",   /* extension without '=' */
        "n,,n=user,r=abc,1=x", /* extension name not ALPHA */
        "n,,n=user,r=abc,x=",  /* empty extension value */
        "n,,user,r=abc",
        "n,,N=user,r=abc",
        "n,a=,n=user,r=abc", /* empty authzid */
        "n,b=x,n=user,r=abc",
        "n,a=x=y,n=user,r=abc",
        "n,,n=us\xc0\xafr,r=abc", /* overlong UTF-8 */
        "n,,n=us\xffr,r=abc",
        "n,,n=user,r=abc\xc3",  /* truncated UTF-8 */
        "n,,n=user,r=\xc3\xa9", /* non-ASCII nonce */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = cf(&st, SASL_SCRAM_SHA1, bad[i]);
        CHECK(rc == SASL_FAIL_MALFORMED);
        if (rc != SASL_FAIL_MALFORMED) {
            fprintf(stderr, "  accepted bad client-first \"%s\"\n", bad[i]);
        }
    }
    /* embedded NUL */
    CHECK(sasl_scram_client_first(&st, SASL_SCRAM_SHA1, "n,,n=us\0r,r=abc", 15) ==
          SASL_FAIL_MALFORMED);
    /* not a SCRAM mechanism */
    CHECK(cf(&st, SASL_PLAIN, "n,,n=user,r=abc") == SASL_FAIL_MALFORMED);
    CHECK(cf(&st, SASL_NONE, "n,,n=user,r=abc") == SASL_FAIL_MALFORMED);

    /* saslname decoding */
    CHECK(cf(&st, SASL_SCRAM_SHA256, "n,a=ad=3Dmin=2Cx,n=u=2Cser=3D,r=abc,z=1") == SASL_CONTINUE);
    CHECK_STR(st.user, "u,ser=");
    CHECK_STR(st.authzid, "ad=min,x");
    CHECK_STR(st.gs2_header, "n,a=ad=3Dmin=2Cx,");
    CHECK_STR(st.client_first_bare, "n=u=2Cser=3D,r=abc,z=1");
    CHECK_STR(st.nonce, "abc");
    CHECK(cf(&st, SASL_SCRAM_SHA256, "y,,n=\xc3\xa9l\xc3\xa8ve,r=abc") == SASL_CONTINUE);
    CHECK_STR(st.user, "\xc3\xa9l\xc3\xa8ve");

    /* username length: SASL_USER_MAX decoded bytes fit, one more does not */
    memcpy(longmsg, "n,,n=", 5);
    memset(longmsg + 5, 'u', SASL_USER_MAX);
    strcpy(longmsg + 5 + SASL_USER_MAX, ",r=abc");
    CHECK(cf(&st, SASL_SCRAM_SHA1, longmsg) == SASL_CONTINUE);
    CHECK(strlen(st.user) == SASL_USER_MAX);
    memset(longmsg + 5, 'u', SASL_USER_MAX + 1);
    strcpy(longmsg + 6 + SASL_USER_MAX, ",r=abc");
    CHECK(cf(&st, SASL_SCRAM_SHA1, longmsg) == SASL_FAIL_MALFORMED);

    /* client nonce must leave room for ours in st->nonce */
    strcpy(longmsg, "n,,n=user,r=");
    memset(longmsg + 12, 'x', 127);
    longmsg[12 + 127] = '\0';
    CHECK(cf(&st, SASL_SCRAM_SHA1, longmsg) == SASL_CONTINUE);
    longmsg[12 + 127] = 'x';
    longmsg[12 + 128] = '\0';
    CHECK(cf(&st, SASL_SCRAM_SHA1, longmsg) == SASL_FAIL_MALFORMED);
    memset(longmsg + 12, 'x', 1500);
    longmsg[12 + 1500] = '\0';
    CHECK(cf(&st, SASL_SCRAM_SHA1, longmsg) == SASL_FAIL_MALFORMED);
}

/* Start the RFC 5802 exchange up to server-first, ready for a client-final. */
static void start_5802(struct scram_state *st, const struct scram_creds *c)
{
    char out[512];
    cf(st, SASL_SCRAM_SHA1, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    sasl_scram_server_first_nonce(st, c, "3rfcNHYJY1ZVvWVs7j", out, sizeof(out));
}

static void test_client_final_parse(void)
{
    static struct scram_state st;
    struct scram_creds c;
    char out[128];
    size_t outlen;
    static const struct {
        const char *msg;
        int want;
    } cases[] = {
        /* the correct message, for reference */
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_OK},
        /* wrong proof (one bit), wrong nonce, wrong channel binding: auth failures */
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tc=",
         SASL_FAIL_AUTH},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
         SASL_FAIL_AUTH},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7J,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_AUTH},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", SASL_FAIL_AUTH},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7jX,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_AUTH},
        {"c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_AUTH}, /* "y,," but the client sent "n,," */
        {"c=,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_AUTH},
        /* malformed */
        {"", SASL_FAIL_MALFORMED},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", SASL_FAIL_MALFORMED},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=", SASL_FAIL_MALFORMED},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4T",
         SASL_FAIL_MALFORMED}, /* bad base64 */
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI",
         SASL_FAIL_MALFORMED}, /* 18 bytes, not 20 */
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,",
         SASL_FAIL_MALFORMED}, /* proof not last */
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,x=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_MALFORMED},
        {"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_MALFORMED},                                          /* wrong order */
        {"c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", SASL_FAIL_MALFORMED}, /* no nonce */
        {"c=biw,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_MALFORMED}, /* c= not base64 */
        {"c=biws,r=,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", SASL_FAIL_MALFORMED},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,m=x,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_MALFORMED},
        {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_MALFORMED},
        {"biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         SASL_FAIL_MALFORMED},
        {"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", SASL_FAIL_MALFORMED},
        {",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", SASL_FAIL_MALFORMED},
    };
    int rc;

    CHECK(sasl_scram_make_creds_salt(SASL_SCRAM_SHA1, "pencil", 6, 4096, salt1, 12, &c) == 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        start_5802(&st, &c);
        rc = sasl_scram_client_final(&st, cases[i].msg, strlen(cases[i].msg), out, sizeof(out),
                                     &outlen);
        CHECK(rc == cases[i].want);
        if (rc != cases[i].want) {
            fprintf(stderr, "  client-final case %zu: got %d want %d\n", i, rc, cases[i].want);
        }
    }

    /* embedded NUL */
    start_5802(&st, &c);
    {
        static const char m[] = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j\0,"
                                "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        CHECK(sasl_scram_client_final(&st, m, sizeof(m) - 1, out, sizeof(out), &outlen) ==
              SASL_FAIL_MALFORMED);
    }
    /* output buffer too small for the server-final message */
    start_5802(&st, &c);
    {
        const char *m = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        CHECK(sasl_scram_client_final(&st, m, strlen(m), out, 8, &outlen) == SASL_FAIL_MALFORMED);
    }

    /* out-of-order calls */
    {
        static struct scram_state fresh;
        char sf[512];
        const char *m = "c=biws,r=x,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        memset(&fresh, 0, sizeof(fresh));
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "abc", sf, sizeof(sf)) == -1);
        CHECK(sasl_scram_client_final(&fresh, m, strlen(m), out, sizeof(out), &outlen) ==
              SASL_FAIL_MALFORMED);
        CHECK(cf(&fresh, SASL_SCRAM_SHA1, "n,,n=user,r=abc") == SASL_CONTINUE);
        CHECK(sasl_scram_client_final(&fresh, m, strlen(m), out, sizeof(out), &outlen) ==
              SASL_FAIL_MALFORMED);
        /* a failed client-first leaves nothing to continue from */
        CHECK(cf(&fresh, SASL_SCRAM_SHA1, "p=x,,n=user,r=abc") == SASL_FAIL_MALFORMED);
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "abc", sf, sizeof(sf)) == -1);
        CHECK(cf(&fresh, SASL_SCRAM_SHA1, "n,,n=user,r=") == SASL_FAIL_MALFORMED);
        CHECK(fresh.user[0] == '\0');
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "abc", sf, sizeof(sf)) == -1);
        CHECK(sasl_scram_server_first(&fresh, &c, sf, sizeof(sf)) == -1);
        /* bad server nonces and a too-small output buffer */
        CHECK(cf(&fresh, SASL_SCRAM_SHA1, "n,,n=user,r=abc") == SASL_CONTINUE);
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "a,b", sf, sizeof(sf)) == -1);
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "", sf, sizeof(sf)) == -1);
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "abc", sf, 10) == -1);
        CHECK(sasl_scram_server_first_nonce(&fresh, &c, "abc", sf, sizeof(sf)) > 0);
        CHECK_STR(sf, "r=abcabc,s=QSXCR+Q6sek8bf92,i=4096");
    }
}

int main(void)
{
    if (tls_global_init() != 0) {
        fprintf(stderr, "tls_global_init failed\n");
        return 1;
    }
    test_b64();
    test_names();
    test_plain();
    test_creds();
    test_rfc5802();
    test_rfc7677();
    test_random_exchanges();
    test_client_first_parse();
    test_client_final_parse();
    tls_global_free();
    TEST_REPORT();
}
