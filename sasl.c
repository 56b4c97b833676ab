/* sasl.c: server side of SASL PLAIN (RFC 4616) and SCRAM-SHA-1 / SCRAM-SHA-256
 * (RFC 5802, RFC 7677), plus strict base64 (RFC 4648). Pure functions over
 * caller memory (see sasl.h): no allocation, no I/O, no logging. Hashes, HMAC,
 * PBKDF2 and randomness come from tls.h. Secrets on the stack are wiped.
 * Passwords are not SASLprep-mapped: see derive_keys. */
#include "sasl.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "tls.h"
#include "utf8.h"

/* PBKDF2 iteration bound: stored credentials outside it are treated as bad
 * rather than letting a corrupt file pin the CPU for minutes. */
#define SCRAM_ITER_MAX 10000000
/* Random bytes in our half of the nonce (base64: 32 printable characters). */
#define SCRAM_SNONCE_RAW 24
/* Longest client-final-message-without-proof we accept. c= carries at most
 * base64 of our gs2_header (about 1450 bytes), r= at most sizeof(nonce). */
#define SCRAM_FINAL_MAX 2048

/* Largest base64 input/output we handle. SASL messages are a few KiB; the
 * bound keeps every length comfortably inside an int. (Deliberately not
 * INT_MAX: our "limits.h" shadows the system <limits.h> under -I.) */
#define SASL_B64_MAX ((size_t)1 << 24)

/* ---- small helpers ---- */

void sasl_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--) {
        *v++ = 0;
    }
}

/* Compare without an early exit so timing does not reveal where keys differ
 * (RFC 5802 §9 leaves this to the implementation; a timing oracle on
 * StoredKey would let a peer verify guesses offline). */
static int ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) {
        d |= (unsigned char)(a[i] ^ b[i]);
    }
    return d == 0;
}

int utf8_valid(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

static int mech_hash(enum sasl_mech m, enum tls_hash *h)
{
    if (m == SASL_SCRAM_SHA1) {
        *h = TLS_SHA1;
    } else if (m == SASL_SCRAM_SHA256) {
        *h = TLS_SHA256;
    } else {
        return -1;
    }
    return 0;
}

/* ---- mechanism names ---- */

/* RFC 4422 §3.1: mechanism names are compared exactly (they are upper case). */
enum sasl_mech sasl_mech_from_name(const char *name)
{
    if (name == NULL) {
        return SASL_NONE;
    }
    if (strcmp(name, "PLAIN") == 0) {
        return SASL_PLAIN;
    }
    if (strcmp(name, "SCRAM-SHA-1") == 0) {
        return SASL_SCRAM_SHA1;
    }
    if (strcmp(name, "SCRAM-SHA-256") == 0) {
        return SASL_SCRAM_SHA256;
    }
    return SASL_NONE;
}

/* NULL for SASL_NONE or an unknown value. */
const char *sasl_mech_name(enum sasl_mech m)
{
    switch (m) {
    case SASL_PLAIN:
        return "PLAIN";
    case SASL_SCRAM_SHA1:
        return "SCRAM-SHA-1";
    case SASL_SCRAM_SHA256:
        return "SCRAM-SHA-256";
    case SASL_NONE:
    default:
        return NULL;
    }
}

/* ---- base64 (RFC 4648 §4) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    const char *p = memchr(b64_alphabet, c, 64);
    return p ? (int)(p - b64_alphabet) : -1;
}

int sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
    size_t need, o = 0, i = 0;

    if (out == NULL || (in == NULL && len > 0) || len > SASL_B64_MAX / 4 * 3) {
        return -1;
    }
    need = (len + 2) / 3 * 4;
    if (need + 1 > outsz) {
        return -1;
    }
    /* The last group may have one or two bytes: '=' pads for the rest. */
    for (; i < len; i += 3) {
        size_t n = len - i;
        uint32_t v = (uint32_t)in[i] << 16 | (n > 1 ? (uint32_t)in[i + 1] << 8 : 0) |
                     (n > 2 ? in[i + 2] : 0);
        out[o++] = b64_alphabet[(v >> 18) & 0x3F];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = n > 1 ? b64_alphabet[(v >> 6) & 0x3F] : '=';
        out[o++] = n > 2 ? b64_alphabet[v & 0x3F] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

/* Strict decoding: RFC 6120 §6.4.2 requires a receiver to reject data that is
 * not correctly base64-encoded, so no whitespace, no missing or stray '=',
 * and (RFC 4648 §3.5) no non-zero bits in the padding position. The output
 * is binary and not NUL-terminated. */
int sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
    size_t pad = 0, o = 0;
    uint32_t acc = 0;

    if (len == 0) {
        return 0;
    }
    if (in == NULL || out == NULL || len % 4 != 0 || len > SASL_B64_MAX) {
        return -1;
    }
    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
    }
    if (len / 4 * 3 - pad > outsz) {
        return -1;
    }
    /* Whole groups as they come; acc keeps the last 6 bits of each character. */
    for (size_t i = 0; i < len - pad; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            return -1; /* bad character, or '=' before the end */
        }
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
        }
    }
    /* A padded last group: two or three characters, whose bits past the
     * last whole byte must be zero. */
    if (pad == 2) {
        if (acc & 0x0F) {
            return -1;
        }
        out[o++] = (unsigned char)(acc >> 4);
    } else if (pad == 1) {
        if (acc & 0x03) {
            return -1;
        }
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    return (int)o;
}

/* ---- credentials ---- */

/* RFC 5802 §3: SaltedPassword = Hi(Normalize(password), salt, i) with Hi being
 * PBKDF2-HMAC; ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey =
 * H(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key").
 * Normalize is SASLprep (RFC 4013). We do not implement its Unicode tables:
 * ASCII passwords are unchanged by SASLprep anyway, and any non-ASCII password
 * is used as its raw UTF-8 bytes. Clients that map (e.g. NFKC of a non-ASCII
 * password) may then disagree with us; that only affects non-ASCII passwords
 * whose SASLprep form differs from the bytes the user typed. */
static int keys_from_salted(enum tls_hash h, const unsigned char *salted, unsigned char *stored_key,
                            unsigned char *server_key)
{
    unsigned char client_key[SCRAM_KEY_MAX];
    size_t hl = tls_hash_len(h);
    int rc = 0;
    if (tls_hmac(h, salted, hl, "Client Key", 10, client_key) != 0 ||
        tls_hash(h, client_key, hl, stored_key) != 0 ||
        tls_hmac(h, salted, hl, "Server Key", 10, server_key) != 0) {
        rc = -1;
    }
    sasl_wipe(client_key, sizeof(client_key));
    return rc;
}

static int derive_keys(enum tls_hash h, const char *password, size_t pwlen,
                       const unsigned char *salt, size_t salt_len, int iter,
                       unsigned char *stored_key, unsigned char *server_key)
{
    unsigned char salted[SCRAM_KEY_MAX];
    size_t hl = tls_hash_len(h);
    int rc = -1;

    if (hl == 0 || hl > SCRAM_KEY_MAX) {
        return -1;
    }
    if (tls_pbkdf2(h, password, pwlen, salt, salt_len, iter, salted, hl) == 0) {
        rc = keys_from_salted(h, salted, stored_key, server_key);
    }
    sasl_wipe(salted, sizeof(salted));
    return rc;
}

int sasl_scram_make_creds_salt(enum sasl_mech mech, const char *password, size_t pwlen, int iter,
                               const unsigned char *salt, size_t salt_len, struct scram_creds *out)
{
    enum tls_hash h;

    if (out == NULL || password == NULL || salt == NULL || mech_hash(mech, &h) != 0) {
        return -1;
    }
    if (pwlen == 0 || pwlen > SASL_PASS_MAX || iter < 1 || iter > SCRAM_ITER_MAX || salt_len == 0 ||
        salt_len > SCRAM_SALT_MAX) {
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (derive_keys(h, password, pwlen, salt, salt_len, iter, out->stored_key, out->server_key) !=
        0) {
        sasl_wipe(out, sizeof(*out));
        return -1;
    }
    out->iter = iter;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    out->key_len = tls_hash_len(h);
    return 0;
}

int sasl_scram_make_creds(enum sasl_mech mech, const char *password, size_t pwlen, int iter,
                          struct scram_creds *out)
{
    unsigned char salt[SCRAM_SALT_LEN];

    /* RFC 5802 §9: a fresh random salt per account defeats precomputation. */
    if (tls_random(salt, sizeof(salt)) != 0) {
        return -1;
    }
    return sasl_scram_make_creds_salt(mech, password, pwlen, iter, salt, sizeof(salt), out);
}

/* Is c usable for mech? Rejects unset or corrupt stored credentials. */
static int creds_ok(enum sasl_mech mech, const struct scram_creds *c)
{
    enum tls_hash h;

    if (c == NULL || mech_hash(mech, &h) != 0) {
        return 0;
    }
    return c->key_len == tls_hash_len(h) && c->iter >= 1 && c->iter <= SCRAM_ITER_MAX &&
           c->salt_len >= 1 && c->salt_len <= SCRAM_SALT_MAX;
}

/* Is the SaltedPassword right for the stored credentials? */
static int salted_matches(enum tls_hash h, const struct scram_creds *c, const unsigned char *salted)
{
    unsigned char stored[SCRAM_KEY_MAX], server[SCRAM_KEY_MAX];
    int ok = keys_from_salted(h, salted, stored, server) == 0 &&
             ct_equal(stored, c->stored_key, c->key_len);
    sasl_wipe(stored, sizeof(stored));
    sasl_wipe(server, sizeof(server));
    return ok;
}

static int check_usable(const struct sasl_password_check *k, enum tls_hash *h)
{
    return creds_ok(k->mech, k->creds) && k->password != NULL && k->pwlen > 0 &&
           k->pwlen <= SASL_PASS_MAX && mech_hash(k->mech, h) == 0;
}

void sasl_scram_check_password_pair(struct sasl_password_check *a, struct sasl_password_check *b)
{
    struct sasl_password_check *k[2] = {a, b};
    unsigned char salted[2][SCRAM_KEY_MAX];
    struct tls_pbkdf2_req q[2];
    enum tls_hash h[2];
    int usable[2];
    for (int i = 0; i < 2; i++) {
        k[i]->ok = 0;
        h[i] = TLS_SHA1;
        usable[i] = check_usable(k[i], &h[i]);
        /* An unusable one still goes through tls_pbkdf2_pair, which fails it
         * (iter 0), so the other is computed as usual. */
        q[i] = (struct tls_pbkdf2_req){
            .h = h[i], .pw = k[i]->password, .pwlen = k[i]->pwlen, .out = salted[i], .rc = -1};
        if (usable[i]) {
            q[i].salt = k[i]->creds->salt;
            q[i].saltlen = k[i]->creds->salt_len;
            q[i].iter = k[i]->creds->iter;
            q[i].outlen = tls_hash_len(h[i]);
        }
    }
    tls_pbkdf2_pair(&q[0], &q[1]);
    for (int i = 0; i < 2; i++) {
        if (usable[i] && q[i].rc == 0) {
            k[i]->ok = salted_matches(h[i], k[i]->creds, salted[i]);
        }
    }
    sasl_wipe(salted, sizeof(salted));
}

int sasl_scram_check_password(enum sasl_mech mech, const struct scram_creds *c,
                              const char *password, size_t pwlen)
{
    struct sasl_password_check k = {mech, c, password, pwlen, 0};
    unsigned char salted[SCRAM_KEY_MAX];
    enum tls_hash h;
    if (!check_usable(&k, &h)) {
        return 0;
    }
    int ok = tls_pbkdf2(h, password, pwlen, c->salt, c->salt_len, c->iter, salted,
                        tls_hash_len(h)) == 0 &&
             salted_matches(h, c, salted);
    sasl_wipe(salted, sizeof(salted));
    return ok;
}

/* ---- PLAIN (RFC 4616 §2) ---- */

/* message = [authzid] UTF8NUL authcid UTF8NUL passwd; authcid and passwd are
 * 1*SAFE, i.e. non-empty, and no field may contain NUL. */
int sasl_plain_parse(const char *msg, size_t len, char *authzid, size_t azsz, char *authcid,
                     size_t acsz, const char **pw, size_t *pwlen)
{
    const char *nul1, *nul2, *ac, *pass;
    size_t az_len, ac_len, pass_len;

    if (msg == NULL || authzid == NULL || authcid == NULL || pw == NULL || pwlen == NULL) {
        return -1;
    }
    nul1 = memchr(msg, '\0', len);
    if (nul1 == NULL) {
        return -1;
    }
    ac = nul1 + 1;
    nul2 = memchr(ac, '\0', len - (size_t)(ac - msg));
    if (nul2 == NULL) {
        return -1;
    }
    pass = nul2 + 1;
    az_len = (size_t)(nul1 - msg);
    ac_len = (size_t)(nul2 - ac);
    pass_len = len - (size_t)(pass - msg);
    if (ac_len == 0 || pass_len == 0 || memchr(pass, '\0', pass_len) != NULL) {
        return -1;
    }
    if (az_len > JID_MAX || ac_len > SASL_USER_MAX || pass_len > SASL_PASS_MAX) {
        return -1;
    }
    if (az_len + 1 > azsz || ac_len + 1 > acsz) {
        return -1;
    }
    if (!utf8_valid(msg, az_len) || !utf8_valid(ac, ac_len) || !utf8_valid(pass, pass_len)) {
        return -1;
    }
    memcpy(authzid, msg, az_len);
    authzid[az_len] = '\0';
    memcpy(authcid, ac, ac_len);
    authcid[ac_len] = '\0';
    *pw = pass;
    *pwlen = pass_len;
    return 0;
}

/* ---- SCRAM message parsing (RFC 5802 §7 grammar) ---- */

/* Take the next comma-separated field of msg[0..len) starting at *pos. Returns
 * 0 with the field in *f / *flen (possibly empty), or -1 when none is left. */
static int next_field(const char *msg, size_t len, size_t *pos, const char **f, size_t *flen)
{
    const char *comma;

    if (*pos > len) {
        return -1;
    }
    *f = msg + *pos;
    comma = memchr(*f, ',', len - *pos);
    if (comma) {
        *flen = (size_t)(comma - *f);
        *pos += *flen + 1;
    } else {
        *flen = len - *pos;
        *pos = len + 1; /* consumed, including the (absent) separator */
    }
    return 0;
}

/* Does field f start with "<c>="? */
static int is_attr(const char *f, size_t flen, char c)
{
    return flen >= 2 && f[0] == c && f[1] == '=';
}

/* saslname (RFC 5802 §7): ',' and '=' appear only as "=2C" and "=3D"; any
 * other '=' is an error, as is an empty name. Decodes into out (NUL-terminated). */
static int saslname_decode(const char *s, size_t len, char *out, size_t outsz)
{
    size_t o = 0;

    if (len == 0) {
        return -1;
    }
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == '=') {
            if (len - i >= 3 && s[i + 1] == '2' && s[i + 2] == 'C') {
                c = ',';
            } else if (len - i >= 3 && s[i + 1] == '3' && s[i + 2] == 'D') {
                c = '=';
            } else {
                return -1;
            }
            i += 3;
        } else if (c == ',' || c == '\0') {
            return -1;
        } else {
            i++;
        }
        if (o + 1 >= outsz) {
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return utf8_valid(out, o) ? 0 : -1;
}

/* printable = %x21-2B / %x2D-7E: the nonce alphabet (RFC 5802 §7). */
static int nonce_valid(const char *s, size_t len)
{
    if (len == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7E || c == ',') {
            return 0;
        }
    }
    return 1;
}

/* attr-val = ALPHA "=" value (RFC 5802 §7), used for extension attributes,
 * which we accept and ignore ("m" is handled by the caller). */
static int ext_valid(const char *f, size_t flen)
{
    return flen >= 3 && f[1] == '=' &&
           ((f[0] >= 'a' && f[0] <= 'z') || (f[0] >= 'A' && f[0] <= 'Z'));
}

/* The next field, which must be attribute c: its value into *v / *vlen. -1
 * when none is left or it is another. */
static int next_attr(const char *msg, size_t len, size_t *pos, char c, const char **v, size_t *vlen)
{
    const char *f;
    size_t flen;
    if (next_field(msg, len, pos, &f, &flen) != 0 || !is_attr(f, flen, c)) {
        return -1;
    }
    *v = f + 2;
    *vlen = flen - 2;
    return 0;
}

/* Optional extensions from pos to the end: well-formed ones are accepted and
 * ignored; "m" (RFC 5802 §5.1, mandatory ones: we know none) is not. */
static int exts_ok(const char *msg, size_t len, size_t pos)
{
    const char *f;
    size_t flen;
    while (next_field(msg, len, &pos, &f, &flen) == 0) {
        if (!ext_valid(f, flen) || f[0] == 'm') {
            return 0;
        }
    }
    return 1;
}

/* client-first-message = gs2-header client-first-message-bare, where
 * gs2-header = gs2-cbind-flag "," [authzid] "," and client-first-message-bare
 * = [reserved-mext ","] username "," nonce ["," extensions] (RFC 5802 §7). */
static int parse_client_first(struct scram_state *st, enum sasl_mech mech, const char *msg,
                              size_t len)
{
    const char *f;
    size_t flen, pos = 0, hdr_len, cn_max;
    enum tls_hash h;

    st->mech = mech;
    if (msg == NULL || mech_hash(mech, &h) != 0 || memchr(msg, '\0', len) != NULL ||
        !utf8_valid(msg, len)) {
        return SASL_FAIL_MALFORMED;
    }

    /* gs2-cbind-flag. RFC 5802 §6: "y" means the client could do channel
     * binding but believes we cannot; as we never advertise -PLUS that is
     * true, so it is accepted like "n". "p=" asks for binding we did not
     * offer and is refused. */
    if (next_field(msg, len, &pos, &f, &flen) != 0) {
        return SASL_FAIL_MALFORMED;
    }
    if (flen != 1 || (f[0] != 'n' && f[0] != 'y')) {
        return SASL_FAIL_MALFORMED;
    }
    /* Optional authzid: "a=" saslname, or empty. */
    if (next_field(msg, len, &pos, &f, &flen) != 0) {
        return SASL_FAIL_MALFORMED;
    }
    if (flen > 0) {
        if (!is_attr(f, flen, 'a') ||
            saslname_decode(f + 2, flen - 2, st->authzid, sizeof(st->authzid)) != 0) {
            return SASL_FAIL_MALFORMED;
        }
    }
    /* The whole gs2-header, both commas included, is what the client must
     * echo (base64) in c= of client-final (RFC 5802 §7 cbind-input). */
    if (pos > len) {
        return SASL_FAIL_MALFORMED; /* no client-first-message-bare at all */
    }
    hdr_len = pos;
    if (hdr_len >= sizeof(st->gs2_header) || len - pos >= sizeof(st->client_first_bare)) {
        return SASL_FAIL_MALFORMED;
    }
    memcpy(st->gs2_header, msg, hdr_len);
    st->gs2_header[hdr_len] = '\0';
    memcpy(st->client_first_bare, msg + pos, len - pos);
    st->client_first_bare[len - pos] = '\0';

    /* RFC 5802 §5.1: "m" is reserved for mandatory extensions; a server that
     * does not understand one MUST fail the exchange: it is not "n" either. */
    if (next_attr(msg, len, &pos, 'n', &f, &flen) != 0 ||
        saslname_decode(f, flen, st->user, sizeof(st->user)) != 0) {
        return SASL_FAIL_MALFORMED;
    }
    /* Client nonce; leave room in st->nonce for our half. */
    cn_max = sizeof(st->nonce) - 1 - (SCRAM_SNONCE_RAW + 2) / 3 * 4;
    if (next_attr(msg, len, &pos, 'r', &f, &flen) != 0 || !nonce_valid(f, flen) || flen > cn_max) {
        return SASL_FAIL_MALFORMED;
    }
    memcpy(st->nonce, f, flen);
    st->nonce[flen] = '\0';
    /* Extensions stay part of client-first-message-bare, hence of AuthMessage. */
    return exts_ok(msg, len, pos) ? SASL_CONTINUE : SASL_FAIL_MALFORMED;
}

int sasl_scram_client_first(struct scram_state *st, enum sasl_mech mech, const char *msg,
                            size_t len)
{
    int rc;

    if (st == NULL) {
        return SASL_FAIL_MALFORMED;
    }
    memset(st, 0, sizeof(*st));
    rc = parse_client_first(st, mech, msg, len);
    if (rc != SASL_CONTINUE) {
        /* Leave nothing half-parsed (e.g. a user name) that a later
         * server-first could build on: the exchange is over. */
        memset(st, 0, sizeof(*st));
        st->step = 2;
    }
    return rc;
}

int sasl_scram_server_first_nonce(struct scram_state *st, const struct scram_creds *creds,
                                  const char *server_nonce, char *out, size_t outsz)
{
    char salt_b64[(SCRAM_SALT_MAX + 2) / 3 * 4 + 1];
    size_t cn_len, sn_len;
    int n;

    /* Only valid right after a successful client-first (user is set then). */
    if (st == NULL || st->step != 0 || st->user[0] == '\0' || out == NULL || server_nonce == NULL ||
        !creds_ok(st->mech, creds)) {
        return -1;
    }
    sn_len = strlen(server_nonce);
    cn_len = strlen(st->nonce);
    if (!nonce_valid(server_nonce, sn_len) || cn_len + sn_len >= sizeof(st->nonce)) {
        return -1;
    }
    if (sasl_b64_encode(creds->salt, creds->salt_len, salt_b64, sizeof(salt_b64)) < 0) {
        return -1;
    }
    /* server-first-message = nonce "," salt "," iteration-count (RFC 5802 §7);
     * the nonce is the client's followed by ours (§5.1 "r"). */
    n = snprintf(st->server_first, sizeof(st->server_first), "r=%s%s,s=%s,i=%d", st->nonce,
                 server_nonce, salt_b64, creds->iter);
    if (n < 0 || (size_t)n >= sizeof(st->server_first) || (size_t)n >= outsz) {
        st->server_first[0] = '\0';
        return -1;
    }
    memcpy(out, st->server_first, (size_t)n + 1);
    memcpy(st->nonce + cn_len, server_nonce, sn_len + 1);
    st->creds = *creds;
    st->step = 1;
    return n;
}

int sasl_scram_server_first(struct scram_state *st, const struct scram_creds *creds, char *out,
                            size_t outsz)
{
    unsigned char raw[SCRAM_SNONCE_RAW];
    char snonce[(SCRAM_SNONCE_RAW + 2) / 3 * 4 + 1];

    /* RFC 5802 §5.1: the server nonce must be fresh and unpredictable. Base64
     * of random bytes only uses printable characters other than ','. */
    if (tls_random(raw, sizeof(raw)) != 0 ||
        sasl_b64_encode(raw, sizeof(raw), snonce, sizeof(snonce)) < 0) {
        return -1;
    }
    return sasl_scram_server_first_nonce(st, creds, snonce, out, outsz);
}

int sasl_scram_client_final(struct scram_state *st, const char *msg, size_t len, char *out,
                            size_t outsz, size_t *outlen)
{
    /* AuthMessage = client-first-message-bare "," server-first-message ","
     *               client-final-message-without-proof      (RFC 5802 §3) */
    char auth_msg[sizeof(st->client_first_bare) + sizeof(st->server_first) + SCRAM_FINAL_MAX + 2];
    unsigned char cbind[sizeof(st->gs2_header)];
    struct { /* secrets: wiped together at the end */
        unsigned char proof[SCRAM_KEY_MAX], client_sig[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX];
        unsigned char stored[SCRAM_KEY_MAX], server_sig[SCRAM_KEY_MAX];
    } k;
    const char *f, *last_comma = NULL;
    const char *c_val = NULL, *r_val = NULL;
    size_t c_len = 0, r_len = 0, flen, pos = 0, wp_len, am_len, hl, gs2_len;
    enum tls_hash h;
    int cb_len, n, rc = SASL_FAIL_MALFORMED;

    if (st == NULL || st->step != 1) {
        return SASL_FAIL_MALFORMED;
    }
    /* One attempt per exchange: the server nonce is never reused. */
    st->step = 2;
    hl = st->creds.key_len;
    if (msg == NULL || out == NULL || outlen == NULL || mech_hash(st->mech, &h) != 0 ||
        hl != tls_hash_len(h) || outsz < 2 + (SCRAM_KEY_MAX + 2) / 3 * 4 + 1) {
        goto out;
    }
    if (memchr(msg, '\0', len) != NULL || !utf8_valid(msg, len)) {
        goto out;
    }

    /* The proof is always the last attribute and base64 has no ',', so it
     * starts after the last comma. */
    for (size_t i = len; i > 0; i--) {
        if (msg[i - 1] == ',') {
            last_comma = msg + i - 1;
            break;
        }
    }
    if (last_comma == NULL) {
        goto out;
    }
    wp_len = (size_t)(last_comma - msg);
    f = last_comma + 1;
    flen = len - wp_len - 1;
    if (wp_len > SCRAM_FINAL_MAX || !is_attr(f, flen, 'p') ||
        sasl_b64_decode(f + 2, flen - 2, k.proof, sizeof(k.proof)) != (int)hl) {
        goto out;
    }

    /* client-final-message-without-proof = channel-binding "," nonce ["," extensions] */
    if (next_attr(msg, wp_len, &pos, 'c', &c_val, &c_len) != 0 ||
        next_attr(msg, wp_len, &pos, 'r', &r_val, &r_len) != 0 || !nonce_valid(r_val, r_len) ||
        !exts_ok(msg, wp_len, pos)) {
        goto out;
    }
    cb_len = sasl_b64_decode(c_val, c_len, cbind, sizeof(cbind));
    if (cb_len < 0) {
        goto out;
    }

    /* From here on the message is well-formed; anything else is a failed
     * authentication. RFC 5802 §5.1 "c": without channel binding the value is
     * exactly the gs2-header the client sent in client-first. */
    rc = SASL_FAIL_AUTH;
    gs2_len = strlen(st->gs2_header);
    if ((size_t)cb_len != gs2_len || memcmp(cbind, st->gs2_header, gs2_len) != 0) {
        goto out;
    }
    /* §5.1 "r": the nonce must be exactly the one from server-first. */
    if (r_len != strlen(st->nonce) || memcmp(r_val, st->nonce, r_len) != 0) {
        goto out;
    }

    n = snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%.*s", st->client_first_bare, st->server_first,
                 (int)wp_len, msg);
    if (n < 0 || (size_t)n >= sizeof(auth_msg)) {
        rc = SASL_FAIL_MALFORMED;
        goto out;
    }
    am_len = (size_t)n;

    /* RFC 5802 §3: ClientSignature = HMAC(StoredKey, AuthMessage);
     * ClientKey = ClientProof XOR ClientSignature; the proof is good when
     * H(ClientKey) equals StoredKey. */
    if (tls_hmac(h, st->creds.stored_key, hl, auth_msg, am_len, k.client_sig) != 0) {
        goto out;
    }
    for (size_t i = 0; i < hl; i++) {
        k.client_key[i] = k.proof[i] ^ k.client_sig[i];
    }
    if (tls_hash(h, k.client_key, hl, k.stored) != 0 ||
        !ct_equal(k.stored, st->creds.stored_key, hl)) {
        goto out;
    }

    /* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
    if (tls_hmac(h, st->creds.server_key, hl, auth_msg, am_len, k.server_sig) != 0) {
        goto out;
    }
    out[0] = 'v';
    out[1] = '=';
    n = sasl_b64_encode(k.server_sig, hl, out + 2, outsz - 2);
    if (n < 0) {
        goto out;
    }
    *outlen = (size_t)n + 2;
    rc = SASL_OK;
out:
    /* The exchange is over either way; the caller still needs user/authzid. */
    sasl_wipe(&st->creds, sizeof(st->creds));
    sasl_wipe(&k, sizeof(k));
    return rc;
}
