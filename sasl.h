/* sasl.h: SASL PLAIN (RFC 4616) and SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802,
 * RFC 7677), server side. Pure parsing and verification over caller memory:
 * no I/O, no allocation. Credentials are looked up by the caller (c2s.c via
 * store.c) between steps, so this module never touches the store.
 * Crypto primitives come from tls.h. */
#ifndef XMPPD_SASL_H
#define XMPPD_SASL_H

#include <stddef.h>

enum sasl_mech { SASL_NONE = 0, SASL_PLAIN, SASL_SCRAM_SHA1, SASL_SCRAM_SHA256 };

#define SCRAM_SALT_LEN 16
/* Longest salt accepted from elsewhere: Prosody makes 36-byte UUID salts, and
 * XEP-0227 imports carry them (RFC 5802 sets no bound). */
#define SCRAM_SALT_MAX 64
#define SCRAM_KEY_MAX 32
#define SASL_USER_MAX 1023
/* Longest PLAIN / SCRAM password we accept. RFC 4616 §2 only asks for at
 * least 255 octets; a bound keeps PBKDF2 input (and peer influence) small. */
#define SASL_PASS_MAX 1023

/* Stored credentials for one hash: never the password (RFC 5802 §3). */
struct scram_creds {
    int iter;
    unsigned char salt[SCRAM_SALT_MAX];
    size_t salt_len;
    unsigned char stored_key[SCRAM_KEY_MAX];
    unsigned char server_key[SCRAM_KEY_MAX];
    size_t key_len; /* 20 for SHA-1, 32 for SHA-256; 0 = not set */
};

/* 1 when p[0..len) is UTF-8 (RFC 3629); ws.c checks text messages with it. */
int utf8_valid(const char *p, size_t len);

/* Mechanism name <-> enum ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"). */
enum sasl_mech sasl_mech_from_name(const char *name);
const char *sasl_mech_name(enum sasl_mech m);

/* Derive credentials from a password with a fresh random salt (for adduser,
 * passwd, in-band registration). mech is SASL_SCRAM_SHA1 or SASL_SCRAM_SHA256.
 * Returns 0 or -1. */
int sasl_scram_make_creds(enum sasl_mech mech, const char *password, size_t pwlen, int iter,
                          struct scram_creds *out);
/* Same, with a given salt (test vectors). */
int sasl_scram_make_creds_salt(enum sasl_mech mech, const char *password, size_t pwlen, int iter,
                               const unsigned char *salt, size_t salt_len, struct scram_creds *out);

/* PLAIN: message is authzid NUL authcid NUL passwd (already base64-decoded).
 * On success copies authzid (may be "") and authcid into the caller's buffers
 * and points *pw and *pwlen into msg. Returns 0, or -1 (malformed-request). */
int sasl_plain_parse(const char *msg, size_t len, char *authzid, size_t azsz, char *authcid,
                     size_t acsz, const char **pw, size_t *pwlen);
/* Clear secrets in a way the compiler may not drop as a dead store. */
void sasl_wipe(void *p, size_t n);
/* Two checks at once, as the worker thread pairs PLAIN logins: with the
 * CPU's SHA instructions two SCRAM-SHA-1 checks cost about one. */
struct sasl_password_check {
    enum sasl_mech mech;
    const struct scram_creds *creds;
    const char *password;
    size_t pwlen;
    int ok; /* out: 1 = match */
};
void sasl_scram_check_password_pair(struct sasl_password_check *a, struct sasl_password_check *b);
/* Check a clear password against stored credentials in constant time. 1 = match. */
int sasl_scram_check_password(enum sasl_mech mech, const struct scram_creds *c,
                              const char *password, size_t pwlen);

/* SCRAM exchange state, kept in the connection during authentication. */
struct scram_state {
    enum sasl_mech mech;
    int step;                       /* 0 = before client-first, 1 = sent server-first, 2 = done */
    char user[SASL_USER_MAX + 1];   /* username from client-first, saslname-decoded */
    char authzid[SASL_USER_MAX + 1];
    char gs2_header[64 + SASL_USER_MAX];
    char client_first_bare[1280];
    char server_first[512];
    char nonce[160];                /* client nonce + server nonce */
    struct scram_creds creds;
};

enum sasl_result { SASL_OK = 0, SASL_CONTINUE = 1, SASL_FAIL_MALFORMED = -1, SASL_FAIL_AUTH = -2 };

/* Step 1: parse client-first-message (base64-decoded). Fills st->user and
 * st->authzid. Returns SASL_CONTINUE, or SASL_FAIL_MALFORMED (bad syntax,
 * channel binding 'p' requested, unsupported extension). */
int sasl_scram_client_first(struct scram_state *st, enum sasl_mech mech, const char *msg,
                            size_t len);
/* Step 2: after the caller found the user's credentials (or, for an unknown
 * user, made fake ones so the exchange does not reveal that the account does
 * not exist), build server-first-message into out. Returns length or -1. */
int sasl_scram_server_first(struct scram_state *st, const struct scram_creds *creds, char *out,
                            size_t outsz);
/* Same with a fixed server nonce (test vectors). */
int sasl_scram_server_first_nonce(struct scram_state *st, const struct scram_creds *creds,
                                  const char *server_nonce, char *out, size_t outsz);
/* Step 3: parse client-final-message, verify the proof. On SASL_OK writes the
 * server-final-message ("v=...") into out and *outlen. Returns SASL_OK,
 * SASL_FAIL_AUTH (wrong proof, nonce or channel binding) or SASL_FAIL_MALFORMED. */
int sasl_scram_client_final(struct scram_state *st, const char *msg, size_t len, char *out,
                            size_t outsz, size_t *outlen);

/* Base64 (RFC 4648) helpers used by c2s and the store. encode returns the
 * output length (NUL-terminated) or -1; decode returns the decoded length or -1
 * on bad input. */
int sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz);
int sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz);

#endif
