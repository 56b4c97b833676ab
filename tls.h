/* tls.h: the only window onto mbedTLS. tls.c is the only file that includes
 * mbedTLS headers; version guards (2.28 on Debian 12, 3.x on OpenWrt) live
 * there alone. Owns: TLS server contexts, per-connection TLS sessions over a
 * non-blocking fd, and the crypto helpers (hash, HMAC, PBKDF2, randomness,
 * self-signed certificate). Must not know XMPP. */
#ifndef XMPPD_TLS_H
#define XMPPD_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* ---- crypto helpers ---- */
enum tls_hash { TLS_SHA1 = 1, TLS_SHA256 = 2 };
size_t tls_hash_len(enum tls_hash h);   /* 20 or 32 */
int tls_hash(enum tls_hash h, const void *data, size_t len, unsigned char *out);
int tls_hmac(enum tls_hash h, const void *key, size_t keylen, const void *data, size_t len,
             unsigned char *out);
int tls_pbkdf2(enum tls_hash h, const void *pw, size_t pwlen, const unsigned char *salt,
               size_t saltlen, int iter, unsigned char *out, size_t outlen);
/* Two PBKDF2s at once. With the CPU's SHA instructions, two SHA-1 ones of at
 * most one output block (SCRAM-SHA-1 keys) take about the time of one; any
 * others run one after the other. Each request's rc is 0 or -1. */
struct tls_pbkdf2_req {
    enum tls_hash h;
    const void *pw;
    size_t pwlen;
    const unsigned char *salt;
    size_t saltlen;
    int iter;
    unsigned char *out;
    size_t outlen;
    int rc;
};
void tls_pbkdf2_pair(struct tls_pbkdf2_req *a, struct tls_pbkdf2_req *b);
/* 1 when tls_pbkdf2_pair does two requests of hash h (one output block each)
 * in about the time of one; otherwise it runs them one after the other. */
int tls_pbkdf2_pair_gains(enum tls_hash h);
/* 0: PBKDF2 ignores the CPU's SHA instructions (tests compare both paths). */
void tls_use_cpu_sha(int on);
/* Cryptographically strong random bytes. Returns 0 or -1. */
int tls_random(void *buf, size_t len);
/* in[0..n) as 2n lowercase hex digits and a NUL into out. */
void tls_hex(char *out, const unsigned char *in, size_t n);
/* n (at most 32) random bytes as tls_hex writes them, for ids. 0 or -1 (out
 * holds 2n hex digits either way). */
int tls_random_hex(char *out, size_t n);
/* Call once at start-up before anything else here (seeds the DRBG; on mbedTLS
 * 3.x also psa_crypto_init). Returns 0 or -1. */
int tls_global_init(void);
void tls_global_free(void);
/* The mbedTLS version xmppd was built against and the TLS versions it serves,
 * e.g. "mbedTLS 3.6.6 (TLS 1.2, TLS 1.3)": for -V, the start-up log and the
 * tests that must know whether TLS 1.3 is there. A static string. */
const char *tls_library_info(void);

/* Make an ECDSA P-256 key and a self-signed certificate for domain (CN and
 * subjectAltName dNSName), valid ten years, as PEM. On success *cert_pem and
 * *key_pem are malloc'd NUL-terminated strings the caller frees (and writes to
 * disk with the store's atomic writer). Returns 0 or -1 with a message in err. */
int tls_make_selfsigned(const char *domain, char **cert_pem, char **key_pem, char *err,
                        size_t errsz);

/* ---- TLS server side ---- */
struct tls_server;   /* one per certificate; shared by all its connections */
struct tls_conn;     /* one per TLS connection */

/* Load certificate chain and key (PEM files). TLS 1.2 minimum, 1.3 where the
 * library supports it, AEAD cipher suites with forward secrecy only.
 * Returns NULL with a message in err. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file, char *err,
                                  size_t errsz);
/* Reference counted: each tls_conn holds a reference, so a SIGHUP reload can
 * drop the old server while its connections live on. */
void tls_server_unref(struct tls_server *s);

enum {
    TLS_WANT_READ = -2,   /* call again when fd is readable */
    TLS_WANT_WRITE = -3,  /* call again when fd is writable */
    TLS_ERROR = -1,       /* fatal: close the connection */
};

struct tls_conn *tls_conn_new(struct tls_server *s, int fd);
void tls_conn_free(struct tls_conn *c);
/* Returns 0 when the handshake is complete, TLS_WANT_READ/WRITE, or TLS_ERROR. */
int tls_conn_handshake(struct tls_conn *c);
/* Returns bytes read (>0), 0 on clean EOF / close_notify, or TLS_WANT_*, TLS_ERROR. */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len);
/* Returns bytes written (>0, may be < len), TLS_WANT_*, or TLS_ERROR. After a
 * TLS_WANT_* call again with the same buf and len. */
ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len);
/* Decrypted bytes already buffered (poll() will not report them). */
size_t tls_conn_pending(struct tls_conn *c);
/* Best-effort close_notify. */
void tls_conn_close(struct tls_conn *c);
/* ---- TLS client side (s2s) ----
 * A client context verifies peers against the CA certificates of ca_file
 * (PEM bundle); verification is optional in the handshake: the caller asks
 * tls_conn_verified afterwards and decides (XEP-0220 dialback for peers that
 * fail); ca_file NULL: no CA, no peer verifies. It is a struct tls_server too (refcounted the same way). NULL with
 * a message in err. */
struct tls_server *tls_client_new(const char *ca_file, char *err, size_t errsz);
/* A client session on fd for the peer named host (SNI, and the name its
 * certificate must carry, RFC 6125). NULL on failure. */
struct tls_conn *tls_conn_new_client(struct tls_server *ctx, int fd, const char *host);
/* After the handshake: 1 when the peer's certificate chains to a trusted CA,
 * is valid now and names the host given (RFC 6125 §6), else 0. */
int tls_conn_verified(struct tls_conn *c);

/* s2s with certificates both ways (SASL EXTERNAL, XEP-0178): a context that
 * presents cert_file/key_file (PEM) and verifies the peer's certificate
 * against the CAs of ca_file, optionally (the handshake goes on without one).
 * client 0: the receiving end (asks for the peer's certificate); 1: the
 * initiating end (tls_conn_new_client). Refcounted like tls_server_new's.
 * NULL with a message in err. */
struct tls_server *tls_s2s_new(int client, const char *cert_file, const char *key_file,
                               const char *ca_file, char *err, size_t errsz);
/* After the handshake on a tls_s2s_new context: 1 when the peer presented a
 * certificate that chains to ca_file, is valid now and names domain (RFC 6125
 * §6), else 0. */
int tls_conn_peer_valid_for(struct tls_conn *c, const char *domain);

/* "TLSv1.2 / cipher" for logs. */
const char *tls_conn_info(struct tls_conn *c, char *out, size_t outsz);
/* Why the last call returned TLS_ERROR (mbedTLS or errno text), for logs. */
const char *tls_conn_error(struct tls_conn *c, char *out, size_t outsz);

#endif
