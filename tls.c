/* tls.c: everything that touches mbedTLS (see tls.h): the DRBG, hash/HMAC/PBKDF2,
 * the self-signed certificate, and the TLS server side over non-blocking fds.
 * Builds against mbedTLS 2.28 (Debian 12) and 3.x (OpenWrt 3.6); every version
 * guard lives in the small "compat" helpers below, nowhere else in the tree.
 * One global DRBG serves all callers, on the loop thread only. The worker
 * thread (worker.c) calls nothing here but the hash, HMAC and PBKDF2
 * functions, which keep their state on the stack or in their own contexts;
 * the SHA-NI flag they read is set by tls_global_init before it starts. */
#include "tls.h"
#include "sha_ni.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* version.h pulls in the build configuration on both 2.x (config.h) and 3.x
 * (build_info.h), so the feature tests below see the library's real options. */
#include <mbedtls/version.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/md.h>
#include <mbedtls/net_sockets.h> /* MBEDTLS_ERR_NET_* codes only; no mbedtls_net_* calls */
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#if defined(MBEDTLS_ERROR_C)
#include <mbedtls/error.h>
#endif
#if defined(MBEDTLS_ECP_C)
#include <mbedtls/ecp.h>
#endif
#if defined(MBEDTLS_ASN1_WRITE_C)
#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif

/* Self-signed generation needs these modules; OpenWrt builds may drop some. */
#if defined(MBEDTLS_X509_CRT_WRITE_C) && defined(MBEDTLS_PK_WRITE_C) &&                            \
    defined(MBEDTLS_PEM_WRITE_C) && defined(MBEDTLS_ECP_C) && defined(MBEDTLS_ECDSA_C) &&          \
    defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED) && defined(MBEDTLS_ASN1_WRITE_C)
#define TLS_HAVE_CERT_WRITE 1
#endif

/* Certificate and key files larger than this are refused: a chain is a few KiB. */
#define TLS_MAX_PEM_FILE (1024 * 1024)

/* ---- global state ---- */

static struct {
    int ready;
    mbedtls_ctr_drbg_context drbg;
} g;

/* PBKDF2's SHA-1 block function: the CPU's SHA instructions when present
 * (have_sha_ni, -1 until known) unless a test turned them off. Set by
 * tls_global_init, before the worker thread exists: that thread only reads. */
static int use_cpu_sha = 1;
static int have_sha_ni = -1;

struct tls_server {
    int refs;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    mbedtls_x509_crt peer_ca; /* s2s (tls_s2s_new): CAs that verify the peer's certificate */
    int has_peer_ca;
};

/* Only the ssl context and what the bio callbacks need: per-connection memory is
 * dominated by the record buffers mbedtls_ssl_setup allocates (STYLE.md §5). */
struct tls_conn {
    mbedtls_ssl_context ssl;
    struct tls_server *srv;
    int fd;
    int last_err;  /* last fatal mbedTLS code, for tls_conn_error */
    int sys_errno; /* errno behind an MBEDTLS_ERR_NET_* code */
};

/* Server-side suites. TLS 1.2 takes them in this order (mbedTLS honours the
 * server's order by default); mbedTLS 3.6's TLS 1.3 server takes the first of
 * the client's list that is here, all of them being equally strong. Only
 * ephemeral ECDH + AEAD: forward secrecy, no CBC/RSA kx. Suites the library
 * was built without are skipped at handshake time. */
static const int tls_ciphersuites[] = {
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    /* TLS 1.3 suites share this list on 3.x; all are AEAD with (EC)DHE. */
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

/* ---- error strings ---- */

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    if (!err || errsz == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* Text for an mbedTLS error code; MBEDTLS_ERROR_C is optional in small builds. */
static const char *mbed_str(int code, char *buf, size_t bufsz)
{
#if defined(MBEDTLS_ERROR_C)
    mbedtls_strerror(code, buf, bufsz);
#else
    snprintf(buf, bufsz, "mbedTLS error -0x%04x", (unsigned)-code);
#endif
    return buf;
}

static void set_mbed_err(char *err, size_t errsz, const char *what, int code)
{
    char tmp[160];
    set_err(err, errsz, "%s: %s", what, mbed_str(code, tmp, sizeof(tmp)));
}

/* ---- version compatibility helpers (the only MBEDTLS_VERSION_NUMBER guards) ---- */

/* 3.x renames context members it calls private; PBKDF2 reads the hash state. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define TLS_PRIV(member) MBEDTLS_PRIVATE(member)
#else
#define TLS_PRIV(member) member
#endif

static int rng(void *ctx, unsigned char *out, size_t len)
{
    return mbedtls_ctr_drbg_random(ctx, out, len);
}

/* 3.0 added an RNG argument (used for blinding while parsing). */
static int compat_parse_key(mbedtls_pk_context *key, const unsigned char *buf, size_t len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_parse_key(key, buf, len, NULL, 0, rng, &g.drbg);
#else
    return mbedtls_pk_parse_key(key, buf, len, NULL, 0);
#endif
}

/* 3.0 added an RNG argument here too. */
static int compat_check_pair(const mbedtls_pk_context *pub, const mbedtls_pk_context *prv)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_check_pair(pub, prv, rng, &g.drbg);
#else
    return mbedtls_pk_check_pair(pub, prv);
#endif
}

/* TLS 1.3 (RFC 8446) as a server: 3.2 onwards, when the build has it (OpenWrt's
 * 3.6 does; Debian 12's 2.28 serves TLS 1.2 only). A 3.x build may also leave
 * TLS 1.2 out; what is left is what tls_library_info reports. */
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3) &&                   \
    defined(MBEDTLS_SSL_SRV_C)
#define TLS_HAVE_TLS13 1
#endif
#if defined(TLS_HAVE_TLS13) && defined(MBEDTLS_SSL_PROTO_TLS1_2)
#define TLS_VERSIONS "TLS 1.2, TLS 1.3"
#elif defined(TLS_HAVE_TLS13)
#define TLS_VERSIONS "TLS 1.3"
#else
#define TLS_VERSIONS "TLS 1.2"
#endif

/* 3.2 replaced (major, minor) pairs with mbedtls_ssl_protocol_version. Before
 * 3.2 there is no usable TLS 1.3 server, so the default maximum stays. */
static void compat_conf_versions(mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#if defined(TLS_HAVE_TLS13)
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
#else
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/* 2.x prefers the largest curve (secp521r1) for ECDHE: needlessly slow for a
 * router and its clients. 3.x's default list already starts with X25519, P-256. */
#if MBEDTLS_VERSION_NUMBER < 0x03000000
static const mbedtls_ecp_group_id tls_curves[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
    MBEDTLS_ECP_DP_CURVE25519,
#endif
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
    MBEDTLS_ECP_DP_SECP256R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP384R1_ENABLED)
    MBEDTLS_ECP_DP_SECP384R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP521R1_ENABLED)
    MBEDTLS_ECP_DP_SECP521R1,
#endif
    MBEDTLS_ECP_DP_NONE,
};
#endif

static void compat_conf_curves(mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    mbedtls_ssl_conf_curves(conf, tls_curves);
#else
    (void)conf;
#endif
}

#if defined(TLS_HAVE_CERT_WRITE)
/* 3.4 takes the serial as raw big-endian bytes; the mpi setter is deprecated. */
static int compat_set_serial(mbedtls_x509write_cert *crt, unsigned char *serial, size_t len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
    return mbedtls_x509write_crt_set_serial_raw(crt, serial, len);
#else
    mbedtls_mpi mpi;
    int ret;
    mbedtls_mpi_init(&mpi);
    ret = mbedtls_mpi_read_binary(&mpi, serial, len);
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_serial(crt, &mpi);
    }
    mbedtls_mpi_free(&mpi);
    return ret;
#endif
}
#endif

/* 3.x routes parts of TLS 1.3 and X.509 through PSA; 3.6.0 fails TLS 1.3
 * handshakes unless psa_crypto_init() ran first. */
static int compat_psa_init(void)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
    return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
#else
    return 0;
#endif
}

static void compat_psa_free(void)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
    mbedtls_psa_crypto_free();
#endif
}

/* From the headers, not mbedtls_version_get_string(): OpenWrt builds drop
 * MBEDTLS_VERSION_C. With a static library (the router build) they agree. */
const char *tls_library_info(void)
{
    return "mbedTLS " MBEDTLS_VERSION_STRING " (" TLS_VERSIONS ")";
}

/* ---- crypto helpers ---- */

/* The DRBG is seeded and reseeded straight from the kernel's generator, the
 * source mbedTLS's entropy module would poll on Linux anyway: that module's
 * pool is 38 KB of state, more than a tenth of an idle server's private
 * memory. The system call is made directly, as mbedTLS does, since C
 * libraries of older router SDKs lack the getrandom() wrapper; /dev/urandom
 * covers kernels older than the call (3.17). */
static int os_entropy(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    while (len > 0) {
#if defined(SYS_getrandom)
        ssize_t n = syscall(SYS_getrandom, out, len, 0);
#else
        ssize_t n = -1;
        errno = ENOSYS;
#endif
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == ENOSYS) {
            int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
            n = fd < 0 ? -1 : read(fd, out, len);
            if (fd >= 0) {
                close(fd);
            }
        }
        if (n <= 0) {
            return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
        }
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

int tls_global_init(void)
{
    static const char pers[] = "tls.c ctr_drbg";
    if (g.ready) {
        return 0;
    }
    if (compat_psa_init() != 0) {
        return -1;
    }
    have_sha_ni = sha_ni_available();
    mbedtls_ctr_drbg_init(&g.drbg);
    if (mbedtls_ctr_drbg_seed(&g.drbg, os_entropy, NULL, (const unsigned char *)pers,
                              sizeof(pers) - 1) != 0) {
        mbedtls_ctr_drbg_free(&g.drbg);
        compat_psa_free();
        return -1;
    }
    g.ready = 1;
    return 0;
}

void tls_global_free(void)
{
    if (!g.ready) {
        return;
    }
    mbedtls_ctr_drbg_free(&g.drbg);
    compat_psa_free();
    g.ready = 0;
}

int tls_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    if (!g.ready) {
        return -1;
    }
    /* The DRBG serves at most MBEDTLS_CTR_DRBG_MAX_REQUEST bytes per call. */
    while (len > 0) {
        size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
        if (mbedtls_ctr_drbg_random(&g.drbg, p, n) != 0) {
            return -1;
        }
        p += n;
        len -= n;
    }
    return 0;
}

void tls_hex(char *out, const unsigned char *in, size_t n)
{
    const char *digits = "0123456789abcdef"; /* a literal: merged with other files' */
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int tls_random_hex(char *out, size_t n)
{
    unsigned char raw[32] = {0}; /* n <= 32: the callers' ids */
    if (n > sizeof(raw)) {
        *out = '\0'; /* a caller's bug: an empty id, never a stack overrun */
        return -1;
    }
    int rc = tls_random(raw, n);
    tls_hex(out, raw, n);
    return rc;
}

static const mbedtls_md_info_t *md_info(enum tls_hash h)
{
    switch (h) {
    case TLS_SHA1:
        return mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    case TLS_SHA256:
        return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    }
    return NULL;
}

size_t tls_hash_len(enum tls_hash h)
{
    switch (h) {
    case TLS_SHA1:
        return 20;
    case TLS_SHA256:
        return 32;
    }
    return 0;
}

int tls_hash(enum tls_hash h, const void *data, size_t len, unsigned char *out)
{
    const mbedtls_md_info_t *info = md_info(h);
    if (!info || mbedtls_md(info, data, len, out) != 0) {
        return -1;
    }
    return 0;
}

int tls_hmac(enum tls_hash h, const void *key, size_t keylen, const void *data, size_t len,
             unsigned char *out)
{
    const mbedtls_md_info_t *info = md_info(h);
    if (!info || mbedtls_md_hmac(info, key, keylen, data, len, out) != 0) {
        return -1;
    }
    return 0;
}

/* RFC 8018 §5.2 PBKDF2 with HMAC (RFC 2104), T_i = U_1 ^ ... ^ U_c,
 * U_1 = PRF(P, S || INT(i)), U_j = PRF(P, U_{j-1}). Nearly all of a PLAIN
 * login is this loop, so it works on hash blocks directly: the states after
 * the inner and outer key pads are computed once, and each later round is
 * exactly two block compressions of one pre-padded 64-byte block (U_{j-1},
 * then the inner digest), with no per-round context copies or finalisation.
 * SHA-1 blocks use the CPU's SHA instructions where there are any (sha_ni.c);
 * otherwise, and for SHA-256, mbedTLS's block functions. */
#define HASH_BLOCK 64

struct pbkdf2_hash {
    size_t words; /* digest length in 32-bit words: 5 or 8 */
    void (*block)(uint32_t *state, const unsigned char *blk);
    const uint32_t *iv; /* the initial state: words of them */
};

static void sha1_block_portable(uint32_t *state, const unsigned char *blk)
{
    mbedtls_sha1_context c;
    memcpy(c.TLS_PRIV(state), state, 5 * sizeof(uint32_t));
    mbedtls_internal_sha1_process(&c, blk);
    memcpy(state, c.TLS_PRIV(state), 5 * sizeof(uint32_t));
    mbedtls_platform_zeroize(&c, sizeof(c));
}

static void sha256_block(uint32_t *state, const unsigned char *blk)
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c); /* 3.x keeps more than the state in it (is224) */
    memcpy(c.TLS_PRIV(state), state, 8 * sizeof(uint32_t));
    mbedtls_internal_sha256_process(&c, blk);
    memcpy(state, c.TLS_PRIV(state), 8 * sizeof(uint32_t));
    mbedtls_sha256_free(&c);
}

void tls_use_cpu_sha(int on)
{
    use_cpu_sha = on;
}

/* SHA-1 blocks on the CPU's SHA instructions? (Known after tls_global_init;
 * the lazy test serves unit tests and tools that hash without it.) */
static int cpu_sha1(void)
{
    if (have_sha_ni < 0) {
        have_sha_ni = sha_ni_available();
    }
    return have_sha_ni > 0 && use_cpu_sha;
}

static int pbkdf2_hash_of(enum tls_hash h, struct pbkdf2_hash *ph)
{
    static const uint32_t iv1[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    static const uint32_t iv256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    if (h == TLS_SHA1) {
        ph->words = 5;
        ph->block = cpu_sha1() ? sha_ni_sha1_block : sha1_block_portable;
        ph->iv = iv1;
        return 0;
    }
    if (h == TLS_SHA256) {
        ph->words = 8;
        ph->block = sha256_block;
        ph->iv = iv256;
        return 0;
    }
    return -1;
}

static void put_words(unsigned char *out, const uint32_t *w, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        out[4 * k] = (unsigned char)(w[k] >> 24);
        out[4 * k + 1] = (unsigned char)(w[k] >> 16);
        out[4 * k + 2] = (unsigned char)(w[k] >> 8);
        out[4 * k + 3] = (unsigned char)w[k];
    }
}

/* The state after hashing one block of key ^ x (the HMAC inner or outer pad). */
static void pad_state(const struct pbkdf2_hash *ph, const unsigned char *key, unsigned char x,
                      uint32_t *state)
{
    unsigned char pad[HASH_BLOCK];
    for (size_t k = 0; k < HASH_BLOCK; k++) {
        pad[k] = (unsigned char)(key[k] ^ x);
    }
    memcpy(state, ph->iv, ph->words * sizeof(uint32_t));
    ph->block(state, pad);
    mbedtls_platform_zeroize(pad, sizeof(pad));
}

/* One PBKDF2 output block in progress. blk holds U_{j-1} in its first hlen
 * bytes and the SHA padding for a 64 + hlen byte message after them; both
 * hashes of HMAC(P, U_{j-1}) reuse it. t is the XOR of the U_j so far. */
struct pbkdf2_run {
    struct pbkdf2_hash ph;
    uint32_t ist[8], ost[8], t[8];
    unsigned char blk[HASH_BLOCK];
    size_t hlen;
};

static void pbkdf2_wipe(struct pbkdf2_run *r)
{
    mbedtls_platform_zeroize(r, sizeof(*r));
}

/* The key pads: the states after hashing one block of key ^ 0x36 / ^ 0x5c. */
static int pbkdf2_keys(struct pbkdf2_run *r, enum tls_hash h, const unsigned char *pw, size_t pwlen)
{
    unsigned char key[HASH_BLOCK] = {0};
    if (pbkdf2_hash_of(h, &r->ph) < 0) {
        return -1;
    }
    r->hlen = r->ph.words * 4;
    if (pwlen > HASH_BLOCK) {
        if (tls_hash(h, pw, pwlen, key) < 0) { /* RFC 2104 §2: long keys are hashed */
            return -1;
        }
    } else if (pwlen) {
        memcpy(key, pw, pwlen);
    }
    pad_state(&r->ph, key, 0x36, r->ist);
    pad_state(&r->ph, key, 0x5c, r->ost);
    mbedtls_platform_zeroize(key, sizeof(key));
    return 0;
}

/* U_1 = HMAC(P, S || INT(i)) into blk and t: once per output block, not
 * worth a fast path. */
static int pbkdf2_first(struct pbkdf2_run *r, enum tls_hash h, const unsigned char *pw,
                        size_t pwlen, const unsigned char *salt, size_t saltlen, uint32_t i)
{
    unsigned char ctr[4] = {(unsigned char)(i >> 24), (unsigned char)(i >> 16),
                            (unsigned char)(i >> 8), (unsigned char)i};
    mbedtls_md_context_t c;
    mbedtls_md_init(&c);
    int ret = mbedtls_md_setup(&c, md_info(h), 1);
    ret = ret ? ret : mbedtls_md_hmac_starts(&c, pw, pwlen);
    ret = ret ? ret : mbedtls_md_hmac_update(&c, salt, saltlen);
    ret = ret ? ret : mbedtls_md_hmac_update(&c, ctr, sizeof(ctr));
    ret = ret ? ret : mbedtls_md_hmac_finish(&c, r->blk);
    mbedtls_md_free(&c);
    if (ret != 0) {
        return -1;
    }
    for (size_t k = 0; k < r->ph.words; k++) {
        const unsigned char *b = r->blk + 4 * k;
        r->t[k] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    /* SHA padding of a 64 + hlen byte message: 0x80, zeros, bit length. */
    memset(r->blk + r->hlen, 0, HASH_BLOCK - r->hlen);
    r->blk[r->hlen] = 0x80;
    r->blk[HASH_BLOCK - 2] = (unsigned char)(((HASH_BLOCK + r->hlen) * 8) >> 8);
    r->blk[HASH_BLOCK - 1] = (unsigned char)((HASH_BLOCK + r->hlen) * 8);
    return 0;
}

static void pbkdf2_rounds(struct pbkdf2_run *r, unsigned rounds)
{
    uint32_t st[8];
    size_t n = r->ph.words;
    for (unsigned j = 0; j < rounds; j++) {
        memcpy(st, r->ist, n * sizeof(uint32_t));
        r->ph.block(st, r->blk);
        put_words(r->blk, st, n);
        memcpy(st, r->ost, n * sizeof(uint32_t));
        r->ph.block(st, r->blk);
        put_words(r->blk, st, n);
        for (size_t k = 0; k < n; k++) {
            r->t[k] ^= st[k];
        }
    }
    mbedtls_platform_zeroize(st, sizeof(st));
}

/* Two SHA-1 runs in step: the SHA unit does both blocks in about the time
 * of one (sha_ni_sha1_block2). */
static void pbkdf2_rounds_pair(struct pbkdf2_run *a, struct pbkdf2_run *b, unsigned rounds)
{
    uint32_t sa[5], sb[5];
    for (unsigned j = 0; j < rounds; j++) {
        memcpy(sa, a->ist, sizeof(sa));
        memcpy(sb, b->ist, sizeof(sb));
        sha_ni_sha1_block2(sa, a->blk, sb, b->blk);
        put_words(a->blk, sa, 5);
        put_words(b->blk, sb, 5);
        memcpy(sa, a->ost, sizeof(sa));
        memcpy(sb, b->ost, sizeof(sb));
        sha_ni_sha1_block2(sa, a->blk, sb, b->blk);
        put_words(a->blk, sa, 5);
        put_words(b->blk, sb, 5);
        for (size_t k = 0; k < 5; k++) {
            a->t[k] ^= sa[k];
            b->t[k] ^= sb[k];
        }
    }
    mbedtls_platform_zeroize(sa, sizeof(sa));
    mbedtls_platform_zeroize(sb, sizeof(sb));
}

static int req_ok(const struct tls_pbkdf2_req *q)
{
    return q->iter >= 1 && q->outlen > 0 && q->outlen <= UINT32_MAX && md_info(q->h);
}

static int own_pbkdf2(const struct tls_pbkdf2_req *q)
{
    struct pbkdf2_run r;
    unsigned char tb[32];
    unsigned char *out = q->out;
    size_t outlen = q->outlen;
    int ret = pbkdf2_keys(&r, q->h, q->pw, q->pwlen);
    for (uint32_t i = 1; ret == 0 && outlen > 0; i++) {
        ret = pbkdf2_first(&r, q->h, q->pw, q->pwlen, q->salt, q->saltlen, i);
        if (ret == 0) {
            pbkdf2_rounds(&r, (unsigned)q->iter - 1);
            put_words(tb, r.t, r.ph.words);
            size_t n = outlen < r.hlen ? outlen : r.hlen;
            memcpy(out, tb, n);
            out += n;
            outlen -= n;
        }
    }
    pbkdf2_wipe(&r);
    mbedtls_platform_zeroize(tb, sizeof(tb));
    return ret;
}

int tls_pbkdf2(enum tls_hash h, const void *pw, size_t pwlen, const unsigned char *salt,
               size_t saltlen, int iter, unsigned char *out, size_t outlen)
{
    struct tls_pbkdf2_req q = {h, pw, pwlen, salt, saltlen, iter, out, outlen, -1};
    return req_ok(&q) ? own_pbkdf2(&q) : -1;
}

/* Pairs only what fits the two-lane block function: SHA-1, one output block. */
static int pairable(const struct tls_pbkdf2_req *q)
{
    return q->h == TLS_SHA1 && q->outlen <= 20 && cpu_sha1();
}

int tls_pbkdf2_pair_gains(enum tls_hash h)
{
    return h == TLS_SHA1 && cpu_sha1();
}

/* Key pads and U_1 of one paired request: 0 or -1. */
static int pair_start(struct pbkdf2_run *r, const struct tls_pbkdf2_req *q)
{
    return pbkdf2_keys(r, q->h, q->pw, q->pwlen) == 0 &&
                   pbkdf2_first(r, q->h, q->pw, q->pwlen, q->salt, q->saltlen, 1) == 0
               ? 0
               : -1;
}

void tls_pbkdf2_pair(struct tls_pbkdf2_req *a, struct tls_pbkdf2_req *b)
{
    if (!req_ok(a) || !req_ok(b) || !pairable(a) || !pairable(b)) {
        a->rc = req_ok(a) ? own_pbkdf2(a) : -1;
        b->rc = req_ok(b) ? own_pbkdf2(b) : -1;
        return;
    }
    struct pbkdf2_run ra, rb;
    unsigned char tb[20];
    a->rc = pair_start(&ra, a);
    b->rc = pair_start(&rb, b);
    if (a->rc == 0 && b->rc == 0) {
        unsigned both = (unsigned)(a->iter < b->iter ? a->iter : b->iter) - 1;
        pbkdf2_rounds_pair(&ra, &rb, both);
        pbkdf2_rounds(&ra, (unsigned)a->iter - 1 - both);
        pbkdf2_rounds(&rb, (unsigned)b->iter - 1 - both);
        put_words(tb, ra.t, 5);
        memcpy(a->out, tb, a->outlen);
        put_words(tb, rb.t, 5);
        memcpy(b->out, tb, b->outlen);
    } else {
        a->rc = own_pbkdf2(a);
        b->rc = own_pbkdf2(b);
    }
    pbkdf2_wipe(&ra);
    pbkdf2_wipe(&rb);
    mbedtls_platform_zeroize(tb, sizeof(tb));
}

/* ---- self-signed certificate ---- */

#if defined(TLS_HAVE_CERT_WRITE)
/* We put the domain unescaped into "CN=..." (mbedTLS parses ',', '=', '\\') and
 * into a dNSName, which must be an ASCII (A-label) host name: allow only that. */
static int domain_ok(const char *d)
{
    size_t len = strlen(d);
    if (len == 0 || len > 253 || d[0] == '.' || d[0] == '-') {
        return 0;
    }
    for (const char *p = d; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_')) {
            return 0;
        }
    }
    return 1;
}

/* subjectAltName ::= SEQUENCE { [2] IMPLICIT IA5String dNSName } (RFC 5280
 * §4.2.1.6). Written by hand because the SAN setter only exists in 3.x; one code
 * path, tested here on 2.28, serves both. ASN.1 writers fill from the end. */
static int add_san_dns(mbedtls_x509write_cert *crt, const char *domain)
{
    static const unsigned char tags[2] = {
        MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME,
        MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE,
    };
    unsigned char buf[300];
    unsigned char *p = buf + sizeof(buf);
    int ret = mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)domain, strlen(domain));
    size_t len = 0;
    /* The name, then each enclosing element: its length and its tag. */
    for (int i = 0; ret >= 0 && i < 2; i++) {
        len += (size_t)ret;
        ret = mbedtls_asn1_write_len(&p, buf, len);
        if (ret >= 0) {
            len += (size_t)ret;
            ret = mbedtls_asn1_write_tag(&p, buf, tags[i]);
        }
    }
    if (ret < 0) {
        return ret;
    }
    len += (size_t)ret;
    return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p,
                                               len);
}

/* notBefore is backdated a day so a client whose clock lags still accepts it.
 * Routers without an RTC may run before NTP sync with a clock in 1970: notAfter
 * counts from no earlier than 2024-01-01 so the cert is not born expired. */
static int validity(char *not_before, char *not_after)
{
    const time_t floor_2024 = 1704067200;
    time_t now = time(NULL), nb = now - 86400, na = now < floor_2024 ? floor_2024 : now;
    struct tm tm;

    if (!gmtime_r(&nb, &tm) || strftime(not_before, 15, "%Y%m%d%H%M%S", &tm) != 14) {
        return -1;
    }
    if (!gmtime_r(&na, &tm)) {
        return -1;
    }
    /* Add years in struct tm, not time_t: no overflow with a 32-bit time_t. */
    tm.tm_year += 10;
    if (tm.tm_mon == 1 && tm.tm_mday == 29) {
        tm.tm_mday = 28; /* Feb 29 + 10 years is not a date */
    }
    if (strftime(not_after, 15, "%Y%m%d%H%M%S", &tm) != 14) {
        return -1;
    }
    return 0;
}
#endif

int tls_make_selfsigned(const char *domain, char **cert_pem, char **key_pem, char *err,
                        size_t errsz)
{
#if !defined(TLS_HAVE_CERT_WRITE)
    (void)domain;
    *cert_pem = *key_pem = NULL;
    set_err(err, errsz, "this mbedTLS build cannot write certificates");
    return -1;
#else
    mbedtls_pk_context key;
    mbedtls_x509write_cert crt;
    unsigned char serial[16];
    unsigned char *cbuf = NULL, *kbuf = NULL;
    char subject[8 + 256], not_before[16], not_after[16];
    const size_t cbufsz = 4096, kbufsz = 1024;
    int ret, rc = -1;

    *cert_pem = *key_pem = NULL;
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);

    if (!g.ready) {
        set_err(err, errsz, "tls_global_init was not called");
        goto out;
    }
    if (!domain || !domain_ok(domain)) {
        set_err(err, errsz, "invalid domain for a certificate (ASCII host name expected)");
        goto out;
    }
    cbuf = malloc(cbufsz);
    kbuf = malloc(kbufsz);
    if (!cbuf || !kbuf) {
        set_err(err, errsz, "out of memory");
        goto out;
    }
    ret = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (ret == 0) {
        ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), rng, &g.drbg);
    }
    if (ret != 0) {
        set_mbed_err(err, errsz, "generating P-256 key", ret);
        goto out;
    }

    /* RFC 5280 §4.1.2.2: positive, at most 20 octets, unpredictable. Clearing the top
     * bit keeps it positive; setting bit 0 of the first byte keeps DER minimal. */
    if (tls_random(serial, sizeof(serial)) != 0) {
        set_err(err, errsz, "random number generator failed");
        goto out;
    }
    serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x01);

    snprintf(subject, sizeof(subject), "CN=%s", domain);
    if (validity(not_before, not_after) != 0) {
        set_err(err, errsz, "cannot format certificate validity");
        goto out;
    }
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, &key);
    mbedtls_x509write_crt_set_issuer_key(&crt, &key);
    if ((ret = compat_set_serial(&crt, serial, sizeof(serial))) != 0 ||
        (ret = mbedtls_x509write_crt_set_subject_name(&crt, subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_issuer_name(&crt, subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_validity(&crt, not_before, not_after)) != 0 ||
        (ret = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1)) != 0 ||
        (ret = mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0 ||
        (ret = add_san_dns(&crt, domain)) != 0) {
        set_mbed_err(err, errsz, "building certificate", ret);
        goto out;
    }
    if ((ret = mbedtls_x509write_crt_pem(&crt, cbuf, cbufsz, rng, &g.drbg)) != 0) {
        set_mbed_err(err, errsz, "writing certificate", ret);
        goto out;
    }
    if ((ret = mbedtls_pk_write_key_pem(&key, kbuf, kbufsz)) != 0) {
        set_mbed_err(err, errsz, "writing key", ret);
        goto out;
    }
    *cert_pem = strdup((char *)cbuf);
    *key_pem = strdup((char *)kbuf);
    if (!*cert_pem || !*key_pem) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
        set_err(err, errsz, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (kbuf) {
        mbedtls_platform_zeroize(kbuf, kbufsz); /* held the private key */
    }
    free(kbuf);
    free(cbuf);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
    return rc;
#endif
}

/* ---- TLS server ---- */

/* Whole file plus a NUL: the PEM parsers want the terminator counted in the length. */
static unsigned char *read_file(const char *path, size_t *len, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    const char *why = f ? NULL : strerror(errno);

    while (f) {
        if (n + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            unsigned char *nb = cap >= TLS_MAX_PEM_FILE ? NULL : realloc(buf, ncap);
            if (!nb) {
                why = cap >= TLS_MAX_PEM_FILE ? "file too large" : "out of memory";
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            why = ferror(f) ? "read error" : NULL;
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    if (why) {
        set_err(err, errsz, "%s: %s", path, why);
        if (buf) {
            mbedtls_platform_zeroize(buf, cap); /* may be a key file */
        }
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n + 1;
    return buf;
}

/* A context with one reference and every member in its init state (so that
 * tls_server_unref frees it whatever was loaded), or NULL with err set. */
static struct tls_server *server_alloc(char *err, size_t errsz)
{
    if (!g.ready) {
        set_err(err, errsz, "tls_global_init was not called");
        return NULL;
    }
    struct tls_server *s = calloc(1, sizeof(*s));
    if (!s) {
        set_err(err, errsz, "out of memory");
        return NULL;
    }
    s->refs = 1;
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_x509_crt_init(&s->chain);
    mbedtls_pk_init(&s->key);
    return s;
}

/* What every configuration shares: the endpoint's defaults, the versions,
 * the curves and the DRBG. An mbedTLS code, 0 on success. */
static int conf_setup(mbedtls_ssl_config *conf, int endpoint)
{
    int ret = mbedtls_ssl_config_defaults(conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret == 0) {
        compat_conf_versions(conf);
        compat_conf_curves(conf);
        mbedtls_ssl_conf_rng(conf, rng, &g.drbg);
    }
    return ret;
}

/* The CAs of ca_file into crt. A bundle with a few certificates the library
 * cannot parse (ret > 0) still serves for the others; none at all is an
 * error. read_file, not mbedtls_x509_crt_parse_file: builds without
 * MBEDTLS_FS_IO (OpenWrt) have no file functions. */
static int load_ca(mbedtls_x509_crt *crt, const char *ca_file, char *err, size_t errsz)
{
    size_t len = 0;
    unsigned char *pem = read_file(ca_file, &len, err, errsz);
    if (!pem) {
        return -1;
    }
    int ret = mbedtls_x509_crt_parse(crt, pem, len); /* len counts the NUL PEM needs */
    free(pem);
    if (ret < 0 || crt->version == 0) {
        set_mbed_err(err, errsz, ca_file, ret < 0 ? ret : MBEDTLS_ERR_X509_INVALID_FORMAT);
        return -1;
    }
    return 0;
}

struct tls_server *tls_server_new(const char *cert_file, const char *key_file, char *err,
                                  size_t errsz)
{
    unsigned char *pem = NULL;
    size_t len = 0;
    int ret;
    struct tls_server *s = server_alloc(err, errsz);
    if (!s) {
        return NULL;
    }

    pem = read_file(cert_file, &len, err, errsz);
    if (!pem) {
        goto fail;
    }
    ret = mbedtls_x509_crt_parse(&s->chain, pem, len);
    free(pem);
    pem = NULL;
    if (ret < 0) {
        set_mbed_err(err, errsz, cert_file, ret);
        goto fail;
    }
    if (ret > 0) {
        /* A positive return counts certificates that failed to parse: refuse a
         * half-loaded chain rather than serve one clients cannot verify. */
        set_err(err, errsz, "%s: %d certificate(s) could not be parsed", cert_file, ret);
        goto fail;
    }

    pem = read_file(key_file, &len, err, errsz);
    if (!pem) {
        goto fail;
    }
    ret = compat_parse_key(&s->key, pem, len);
    mbedtls_platform_zeroize(pem, len);
    free(pem);
    pem = NULL;
    if (ret != 0) {
        set_mbed_err(err, errsz, key_file, ret);
        goto fail;
    }
    /* The first certificate is the leaf; catch a mismatched pair at start-up
     * instead of at every handshake. */
    if ((ret = compat_check_pair(&s->chain.pk, &s->key)) != 0) {
        set_err(err, errsz, "%s does not match the certificate in %s", key_file, cert_file);
        goto fail;
    }

    if ((ret = conf_setup(&s->conf, MBEDTLS_SSL_IS_SERVER)) != 0) {
        set_mbed_err(err, errsz, "TLS configuration", ret);
        goto fail;
    }
    mbedtls_ssl_conf_ciphersuites(&s->conf, tls_ciphersuites);
    /* No client certificates (SASL EXTERNAL is not offered) and no session
     * cache: XMPP streams are long-lived, resumption would only cost memory. */
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE);
    if ((ret = mbedtls_ssl_conf_own_cert(&s->conf, &s->chain, &s->key)) != 0) {
        set_mbed_err(err, errsz, "TLS certificate", ret);
        goto fail;
    }
    return s;
fail:
    tls_server_unref(s);
    return NULL;
}

void tls_server_unref(struct tls_server *s)
{
    if (!s || --s->refs > 0) {
        return;
    }
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->chain);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->peer_ca); /* calloc'd: an unused one is in its init state */
    free(s);
}

/* ---- per-connection I/O ---- */

/* bio callbacks: our own, not mbedtls_net_*, because the event loop owns the fd.
 * MSG_NOSIGNAL: a peer reset must be an error return, not a SIGPIPE. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_conn *c = ctx;
    if (len > INT_MAX) {
        len = INT_MAX;
    }
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            return (int)n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        }
        c->sys_errno = errno;
        return errno == ECONNRESET || errno == EPIPE ? MBEDTLS_ERR_NET_CONN_RESET
                                                     : MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

/* Returning 0 tells mbedTLS the peer closed the transport (MBEDTLS_ERR_SSL_CONN_EOF). */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_conn *c = ctx;
    if (len > INT_MAX) {
        len = INT_MAX;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0) {
            return (int)n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        c->sys_errno = errno;
        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* Any mbedTLS call may want either direction (a write can need to read a
 * handshake record, a read can need to flush an alert), so map both everywhere. */
static int map_ret(struct tls_conn *c, int ret)
{
    if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
        return TLS_WANT_READ;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return TLS_WANT_WRITE;
    }
    c->last_err = ret;
    return TLS_ERROR;
}

struct tls_conn *tls_conn_new(struct tls_server *s, int fd)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    mbedtls_ssl_init(&c->ssl);
    if (mbedtls_ssl_setup(&c->ssl, &s->conf) != 0) {
        mbedtls_ssl_free(&c->ssl);
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->srv = s;
    s->refs++;
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    return c;
}

struct tls_server *tls_client_new(const char *ca_file, char *err, size_t errsz)
{
    int ret;
    struct tls_server *s = server_alloc(err, errsz);
    if (!s) {
        return NULL;
    }
    /* s->chain holds the trusted CAs here. ca_file NULL: no CA, so no peer
     * verifies (dialback only). */
    if (ca_file && load_ca(&s->chain, ca_file, err, errsz) < 0) {
        goto fail;
    }
    if ((ret = conf_setup(&s->conf, MBEDTLS_SSL_IS_CLIENT)) != 0) {
        set_mbed_err(err, errsz, "TLS client configuration", ret);
        goto fail;
    }
    /* OPTIONAL: the handshake goes on with an unverified peer; the caller
     * reads the result (dialback authenticates those, XEP-0220). */
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    if (ca_file) {
        mbedtls_ssl_conf_ca_chain(&s->conf, &s->chain, NULL);
    }
    return s;
fail:
    tls_server_unref(s);
    return NULL;
}

struct tls_conn *tls_conn_new_client(struct tls_server *ctx, int fd, const char *host)
{
    struct tls_conn *c = tls_conn_new(ctx, fd);
    if (c && mbedtls_ssl_set_hostname(&c->ssl, host) != 0) {
        tls_conn_free(c);
        return NULL;
    }
    return c;
}

int tls_conn_verified(struct tls_conn *c)
{
    return mbedtls_ssl_get_verify_result(&c->ssl) == 0;
}

/* Does not close fd: the caller owns it. */
void tls_conn_free(struct tls_conn *c)
{
    if (!c) {
        return;
    }
    mbedtls_ssl_free(&c->ssl);
    tls_server_unref(c->srv);
    free(c);
}

int tls_conn_handshake(struct tls_conn *c)
{
    int ret = mbedtls_ssl_handshake(&c->ssl);
    return ret == 0 ? 0 : map_ret(c, ret);
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len)
{
    if (len == 0) {
        return TLS_ERROR; /* 0 would read as EOF; callers always offer room */
    }
    for (;;) {
        int ret = mbedtls_ssl_read(&c->ssl, buf, len);
        if (ret > 0) {
            return ret;
        }
        /* A TCP close without close_notify counts as EOF too: the XMPP layer
         * notices truncation itself (no closing stream tag). */
        if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
            ret == MBEDTLS_ERR_SSL_CONN_EOF) {
            return 0;
        }
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        /* 3.x TLS 1.3: a post-handshake ticket is not data; just read on. */
        if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            continue;
        }
#endif
        return map_ret(c, ret);
    }
}

ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len)
{
    if (len == 0) {
        return 0;
    }
    for (;;) {
        int ret = mbedtls_ssl_write(&c->ssl, buf, len);
        if (ret >= 0) {
            return ret;
        }
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            continue;
        }
#endif
        return map_ret(c, ret);
    }
}

/* Besides decrypted bytes, count 1 when a whole record sits undecrypted in
 * mbedTLS's input buffer: poll() will not report that either, and
 * mbedtls_ssl_check_pending() is the library's documented test for it. */
size_t tls_conn_pending(struct tls_conn *c)
{
    size_t n = mbedtls_ssl_get_bytes_avail(&c->ssl);
    if (n == 0 && mbedtls_ssl_check_pending(&c->ssl)) {
        n = 1;
    }
    return n;
}

void tls_conn_close(struct tls_conn *c)
{
    /* One attempt: if the socket is full the peer simply sees the TCP close. */
    (void)mbedtls_ssl_close_notify(&c->ssl);
}

const char *tls_conn_info(struct tls_conn *c, char *out, size_t outsz)
{
    const char *suite = mbedtls_ssl_get_ciphersuite(&c->ssl);
    snprintf(out, outsz, "%s / %s", mbedtls_ssl_get_version(&c->ssl), suite ? suite : "none");
    return out;
}

const char *tls_conn_error(struct tls_conn *c, char *out, size_t outsz)
{
    char tmp[160];
    const char *msg = "no error";
    int e = c->last_err;
    if (e == MBEDTLS_ERR_NET_SEND_FAILED || e == MBEDTLS_ERR_NET_RECV_FAILED ||
        e == MBEDTLS_ERR_NET_CONN_RESET) {
        msg = strerror(c->sys_errno);
    } else if (e != 0) {
        msg = mbed_str(e, tmp, sizeof(tmp));
    }
    snprintf(out, outsz, "%s", msg);
    return out;
}

/* ---- s2s with certificates both ways (SASL EXTERNAL, XEP-0178) ---- */

struct tls_server *tls_s2s_new(int client, const char *cert_file, const char *key_file,
                               const char *ca_file, char *err, size_t errsz)
{
    struct tls_server *s = tls_server_new(cert_file, key_file, err, errsz);
    int ret = 0;
    if (!s || load_ca(&s->peer_ca, ca_file, err, errsz) < 0) {
        goto fail;
    }
    s->has_peer_ca = 1;
    if (client) {
        /* Same certificate and key, the client end of the handshake. */
        mbedtls_ssl_config_free(&s->conf);
        mbedtls_ssl_config_init(&s->conf);
        ret = conf_setup(&s->conf, MBEDTLS_SSL_IS_CLIENT);
        if (ret == 0) {
            ret = mbedtls_ssl_conf_own_cert(&s->conf, &s->chain, &s->key);
        }
    } else {
        /* RFC 6120 §13.7.2: the receiving server asks for the initiating
         * server's certificate. No CA name list in the request: a system
         * bundle's would be kilobytes per handshake, and peers send their
         * certificate without it. */
        mbedtls_ssl_conf_cert_req_ca_list(&s->conf, MBEDTLS_SSL_CERT_REQ_CA_LIST_DISABLED);
    }
    if (ret != 0) {
        set_mbed_err(err, errsz, "s2s TLS configuration", ret);
        goto fail;
    }
    /* OPTIONAL: a peer without a (valid) certificate still gets TLS and
     * dialback; the caller asks tls_conn_peer_valid_for / tls_conn_verified. */
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(&s->conf, &s->peer_ca, NULL);
    return s;
fail:
    tls_server_unref(s);
    return NULL;
}

int tls_conn_peer_valid_for(struct tls_conn *c, const char *domain)
{
    uint32_t flags = 0;
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (!peer || !c->srv->has_peer_ca) {
        return 0;
    }
    /* Chain, validity period and the name again, this time against the
     * domain the peer claims (RFC 6125 §6: dNSName SAN, wildcard in the
     * left-most label; the CN only without SANs). The handshake checked no
     * name on this side. The key-usage flags the handshake may have set are
     * not asked: public CAs are dropping clientAuth from server certificates,
     * and s2s peers present their server certificate. */
    return mbedtls_x509_crt_verify((mbedtls_x509_crt *)peer, &c->srv->peer_ca, NULL, domain,
                                   &flags, NULL, NULL) == 0;
}
