/* xmpp-bench.c: an XMPP client load generator for comparing xmppd, Prosody and ejabberd.
 *
 * Speaks real XMPP (RFC 6120/6121) over plaintext or STARTTLS (mbedTLS, no certificate
 * verification), SASL PLAIN or SCRAM-SHA-1, resource binding and initial presence.
 * Single-threaded and event-driven (epoll) so that the generator is not the bottleneck;
 * it prints its own and the server's CPU use so that you can check. It shares no code
 * with xmppd (its own SCRAM, TLS glue and XML scanning) and is never linked into it.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -o tools/xmpp-bench tools/xmpp-bench.c \
 *            -lmbedtls -lmbedx509 -lmbedcrypto
 * Usage: tools/xmpp-bench SCENARIO [options]; tools/xmpp-bench -h lists both.
 * Every run ends with one line on stdout: "RESULT scenario=... key=value ...".
 *
 * The XML handling is a scanner, not a parser: it splits the stream into top-level
 * stanzas by tracking tag depth (quotes respected) and then looks into each stanza with
 * string searches. That is enough for well-behaved servers and keeps the per-message
 * cost of the generator small.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/net_sockets.h> /* error codes only; the sockets are ours */
#include <mbedtls/pkcs5.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

#define BENCH_LOGIN_DEADLINE_S 60 /* a session not bound by then counts as failed */
#define BENCH_INPUT_MAX (4 << 20) /* bytes of one unfinished stanza before giving up */
#define BENCH_READ_CHUNK 16384
#define BENCH_READ_PER_EVENT 262144 /* fairness between connections in one turn */
#define BENCH_MAX_LAT_SAMPLES 50000000u
#define BENCH_ERRORS_SHOWN 8

/* ---- options ---- */

enum scenario {
    SC_LOGIN,
    SC_HOLD,
    SC_MSG,
    SC_PRESENCE,
    SC_OFFLINE,
    SC_REGISTER,
    SC_COLDSTART,
    SC_MAM
};
enum mech { MECH_PLAIN, MECH_SCRAM_SHA1 };

static struct {
    enum scenario scenario;
    const char *scenario_name;
    const char *host;
    int port;
    const char *domain;
    const char *users; /* pattern with one %d */
    int first;         /* number of the first account */
    const char *password;
    bool starttls;
    enum mech mech;
    int sources; /* 127.0.0.1 .. 127.0.0.N as source addresses */
    int pid;     /* server process for RSS / CPU, 0 = none */
    const char *label;
    int sessions;    /* login, hold, register: N */
    int user_count;  /* login: cycle over this many accounts (default N) */
    int concurrency; /* logins in progress at once */
    int pairs, window;
    double duration;
    int contacts, changes;
    int messages, senders, recipients;
    int queries; /* mam: archive queries after the writes */
    double settle, hold_seconds, timeout;
    bool presence; /* send initial presence after binding */
    bool bare;     /* msg: address the partner's bare JID (the server picks the resource) */
    int warmup;    /* -1 = auto (SCRAM: yes) */
    bool verbose;
    const char *server_log; /* coldstart: the server's stdout and stderr */
} opt = {
    .host = "127.0.0.1",
    .port = 5222,
    .domain = "localhost",
    .users = "user%d",
    .first = 1,
    .password = "benchpass",
    .mech = MECH_PLAIN,
    .sources = 1,
    .sessions = 1000,
    .concurrency = 100,
    .pairs = 100,
    .window = 10,
    .duration = 10,
    .contacts = 100,
    .changes = 0,
    .messages = 10000,
    .senders = 10,
    .recipients = 50,
    .queries = 200,
    .settle = 2,
    .timeout = 600,
    .presence = true,
    .warmup = -1,
};

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t turn_now; /* read once per loop turn */

static void die(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("xmpp-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static unsigned errors_shown;
static void note_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void note_error(const char *fmt, ...)
{
    if (errors_shown >= BENCH_ERRORS_SHOWN && !opt.verbose) {
        return;
    }
    errors_shown++;
    va_list ap;
    va_start(ap, fmt);
    fputs("xmpp-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Account name for number n: the --users pattern with its "%d" replaced. */
static void user_name(int n, char *out, size_t outsz)
{
    const char *pct = strstr(opt.users, "%d");
    int plen = (int)(pct - opt.users);
    snprintf(out, outsz, "%.*s%d%s", plen, opt.users, n, pct + 2);
}

/* ---- byte buffer: all bounds checks live here ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    buf_reserve(b, 256);
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= b->cap - b->len) { /* did not fit: grow and format again */
        buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* Give memory back when an idle connection's buffer is empty (hold scenario). */
static void buf_shrink_if_empty(struct buf *b)
{
    if (b->len == 0 && b->cap > 4096) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- process statistics from /proc ---- */

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* utime + stime of a process in seconds, -1 if unknown. */
static double proc_cpu_s(int pid)
{
    char path[64], data[2048];
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(data, 1, sizeof(data) - 1, f);
    fclose(f);
    data[n] = '\0';
    char *p = strrchr(data, ')'); /* the command name may contain spaces */
    if (p == NULL) {
        return -1;
    }
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14)
     * stime(15) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy CPU seconds of the whole machine (all cores), from the first line of /proc/stat:
 * tells whether something besides the server and the generator used the CPU. */
static double box_cpu_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return -1;
    }
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8) {
        return -1;
    }
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- latency samples (microseconds) ---- */

struct lat {
    uint32_t *v;
    size_t n, cap;
    uint64_t max_us;
};

static void lat_add(struct lat *l, uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us > l->max_us) {
        l->max_us = us;
    }
    if (l->n >= BENCH_MAX_LAT_SAMPLES) {
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentile in milliseconds; sorts the samples on first use. */
static double lat_pct_ms(struct lat *l, double pct, bool *sorted)
{
    if (l->n == 0) {
        return 0;
    }
    if (!*sorted) {
        qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
        *sorted = true;
    }
    size_t i = (size_t)(pct / 100.0 * (double)(l->n - 1) + 0.5);
    return l->v[i] / 1000.0;
}

/* ---- crypto: RNG, base64, SCRAM-SHA-1 (RFC 5802) ---- */

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_ssl_config tls_conf;
static bool tls_conf_ready;

static void crypto_init(void)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (psa_crypto_init() != PSA_SUCCESS) {
        die("psa_crypto_init failed");
    }
#endif
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    const char *pers = "xmpp-bench";
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)pers,
                              strlen(pers)) != 0) {
        die("cannot seed the random generator");
    }
}

static void tls_init(void)
{
    mbedtls_ssl_config_init(&tls_conf);
    if (mbedtls_ssl_config_defaults(&tls_conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        die("mbedtls_ssl_config_defaults failed");
    }
    /* A benchmark on loopback: the server's certificate is not checked. */
    mbedtls_ssl_conf_authmode(&tls_conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_rng(&tls_conf, mbedtls_ctr_drbg_random, &drbg);
    tls_conf_ready = true;
}

/* base64 of n bytes appended to b (no terminator). */
static void b64_append(struct buf *b, const void *d, size_t n)
{
    size_t olen = 0;
    buf_reserve(b, 4 * ((n + 2) / 3) + 1);
    mbedtls_base64_encode((unsigned char *)b->p + b->len, b->cap - b->len, &olen, d, n);
    b->len += olen;
}

/* Decode base64 text into out; returns the length or -1. */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t outsz)
{
    size_t olen = 0;
    if (mbedtls_base64_decode(out, outsz, &olen, (const unsigned char *)s, n) != 0) {
        return -1;
    }
    return (int)olen;
}

static void hmac_sha1(const void *key, size_t klen, const void *d, size_t n, unsigned char out[20])
{
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), key, klen, d, n, out);
}

static int pbkdf2_sha1(const char *pw, const unsigned char *salt, size_t slen, unsigned iter,
                       unsigned char out[20])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
    return mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA1, (const unsigned char *)pw, strlen(pw),
                                         salt, slen, iter, 20, out);
#else
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int r = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), 1);
    if (r == 0) {
        r = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)pw, strlen(pw), salt, slen, iter,
                                      20, out);
    }
    mbedtls_md_free(&md);
    return r;
#endif
}

/* SaltedPassword per account, so that the generator pays PBKDF2 once per account, as a
 * real client that stores its keys would (RFC 5802 §5.1 allows a client to cache it). */
struct scram_cache {
    unsigned char salt[64];
    size_t salt_len;
    unsigned iter;
    unsigned char salted[20];
};
static struct scram_cache **scache;
static size_t scache_cap;
static unsigned long pbkdf2_runs;

static struct scram_cache *scram_cache_get(int user)
{
    size_t i = (size_t)user;
    if (i >= scache_cap) {
        size_t cap = scache_cap ? scache_cap : 1024;
        while (cap <= i) {
            cap *= 2;
        }
        scache = xrealloc(scache, cap * sizeof(*scache));
        memset(scache + scache_cap, 0, (cap - scache_cap) * sizeof(*scache));
        scache_cap = cap;
    }
    return scache[i];
}

static void scram_cache_put(int user, const struct scram_cache *e)
{
    scram_cache_get(user); /* grows the table */
    if (scache[user] == NULL) {
        scache[user] = xmalloc(sizeof(*e));
    }
    *scache[user] = *e;
}

/* ---- connections ---- */

enum conn_state {
    CS_CONNECTING, /* TCP connect in progress */
    CS_FEATURES,   /* stream header sent, waiting for <stream:features/> */
    CS_STARTTLS,   /* <starttls/> sent, waiting for <proceed/> */
    CS_HANDSHAKE,  /* TLS handshake */
    CS_AUTH,       /* SASL exchange */
    CS_REGISTER,   /* XEP-0077 registration iq sent */
    CS_BIND,       /* bind iq sent */
    CS_SESSION,    /* legacy session iq sent (only when not optional) */
    CS_READY,      /* bound (and initial presence sent): the scenario owns it */
};

enum role { R_PLAIN, R_WARM, R_SENDER, R_RECEIVER, R_STAR, R_CONTACT, R_PRE, R_REGISTER };

struct conn {
    int fd;
    enum conn_state st;
    enum role role;
    int user;        /* account number */
    int slot;        /* index in the scenario's arrays, -1 if none */
    uint32_t events; /* epoll interest now set */
    bool closing;    /* freed at the end of the turn */
    bool dirty;      /* in the flush list */
    bool authed, tls, need_session, got_bind_feature;
    mbedtls_ssl_context *ssl;
    size_t tls_wlen; /* length passed to a write that returned WANT_*: repeat it */
    bool tls_want_write;
    struct buf in, out;
    /* stream scanner */
    size_t scan, tag_start, stanza_start, keep;
    int depth;
    bool in_tag;
    char quote;
    /* SCRAM */
    char *scram_cfb; /* client-first-message-bare */
    unsigned char server_sig[20];
    int scram_step;
    char *jid;        /* bound full JID */
    uint64_t t_start; /* connect() time */
    /* scenario */
    int inflight;
    uint64_t sent, recvd;
    bool flag;
    bool finishing; /* we closed it on purpose */
};

static int epfd = -1;
static struct conn **conns; /* indexed by fd */
static int conns_cap;
static int nconns;   /* open sockets */
static int nlogging; /* not yet READY (counts against --concurrency) */
static struct conn **dirty_list;
static int ndirty, dirty_cap;
static struct conn **dead_list;
static int ndead, dead_cap;
static unsigned long resource_seq, msg_seq;
static int source_next;
static uint64_t connect_retry_at; /* back off after EADDRNOTAVAIL / EMFILE */
static unsigned long connect_errors, login_failures, stream_errors;

static void scenario_on_ready(struct conn *c);
static void scenario_on_stanza(struct conn *c, const char *s, size_t n);
static void scenario_on_close(struct conn *c, bool was_ready);
static void start_auth(struct conn *c);

static void list_push(struct conn ***list, int *n, int *cap, struct conn *c)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *list = xrealloc(*list, (size_t)*cap * sizeof(**list));
    }
    (*list)[(*n)++] = c;
}

static void conn_set_interest(struct conn *c)
{
    if (c->closing) {
        return;
    }
    uint32_t want = EPOLLIN;
    if (c->st == CS_CONNECTING || c->out.len > 0 || (c->ssl && c->tls_want_write)) {
        want |= EPOLLOUT;
    }
    if (want == c->events) {
        return;
    }
    struct epoll_event ev = {.events = want, .data.fd = c->fd};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
        c->events = want;
    }
}

/* Deferred close: the socket and memory go at the end of the turn. */
static void conn_close(struct conn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    bool was_ready = c->st == CS_READY;
    if (!was_ready) {
        nlogging--;
        if (why != NULL) {
            login_failures++;
            note_error("%s (account %d, state %d)", why, c->user, (int)c->st);
        }
    }
    c->closing = true;
    list_push(&dead_list, &ndead, &dead_cap, c);
    scenario_on_close(c, was_ready);
}

static void conn_free(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    nconns--;
    if (c->ssl) {
        mbedtls_ssl_free(c->ssl);
        free(c->ssl);
    }
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->scram_cfb);
    free(c->jid);
    free(c);
}

static void conn_send(struct conn *c, const char *d, size_t n)
{
    if (c->closing) {
        return;
    }
    buf_append(&c->out, d, n);
    if (!c->dirty) {
        c->dirty = true;
        list_push(&dirty_list, &ndirty, &dirty_cap, c);
    }
}

static void conn_sendf(struct conn *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void conn_sendf(struct conn *c, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        die("internal: stanza too long");
    }
    conn_send(c, tmp, (size_t)n);
}

/* mbedTLS I/O callbacks on our own non-blocking socket. */
static int tls_send_cb(void *ctx, const unsigned char *d, size_t n)
{
    struct conn *c = ctx;
    for (;;) {
        ssize_t r = send(c->fd, d, n, MSG_NOSIGNAL);
        if (r >= 0) {
            return (int)r;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        }
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int tls_recv_cb(void *ctx, unsigned char *d, size_t n)
{
    struct conn *c = ctx;
    for (;;) {
        ssize_t r = recv(c->fd, d, n, 0);
        if (r >= 0) {
            return (int)r; /* 0 = EOF */
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

static void stream_open(struct conn *c)
{
    c->depth = 0;
    c->in_tag = false;
    c->st = CS_FEATURES;
    conn_sendf(c,
               "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' "
               "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
               opt.domain);
}

static void conn_flush(struct conn *c)
{
    if (c->closing) {
        return;
    }
    if (c->ssl == NULL || c->st == CS_HANDSHAKE) {
        if (c->ssl == NULL) {
            size_t done = 0;
            while (done < c->out.len) {
                ssize_t r = send(c->fd, c->out.p + done, c->out.len - done, MSG_NOSIGNAL);
                if (r < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        break;
                    }
                    buf_consume(&c->out, done);
                    conn_close(c, "send failed");
                    return;
                }
                done += (size_t)r;
            }
            buf_consume(&c->out, done);
        }
    } else {
        size_t done = 0;
        c->tls_want_write = false;
        while (done < c->out.len) {
            size_t n = c->tls_wlen;
            if (n == 0) {
                n = c->out.len - done;
                if (n > 16384) {
                    n = 16384;
                }
            }
            int r = mbedtls_ssl_write(c->ssl, (const unsigned char *)c->out.p + done, n);
            if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ) {
                c->tls_wlen = n; /* call again with the same data and length */
                c->tls_want_write = r == MBEDTLS_ERR_SSL_WANT_WRITE;
                break;
            }
            if (r < 0) {
                buf_consume(&c->out, done);
                conn_close(c, "TLS write failed");
                return;
            }
            c->tls_wlen = 0;
            done += (size_t)r;
        }
        buf_consume(&c->out, done);
    }
    buf_shrink_if_empty(&c->out);
    conn_set_interest(c);
}

/* Graceful end of a session: close the stream, write what is queued, close. */
static void conn_finish(struct conn *c, bool unavailable)
{
    if (c->closing) {
        return;
    }
    c->finishing = true;
    if (unavailable) {
        conn_sendf(c, "<presence type='unavailable'/>");
    }
    conn_sendf(c, "</stream:stream>");
    conn_flush(c);
    conn_close(c, NULL);
}

static struct conn *conn_new(int user, enum role role, int slot)
{
    if (turn_now < connect_retry_at) {
        return NULL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            connect_retry_at = turn_now + 100000000u;
            return NULL;
        }
        die("socket: %s", strerror(errno));
    }
    if (fd >= conns_cap) {
        int cap = conns_cap ? conns_cap : 1024;
        while (cap <= fd) {
            cap *= 2;
        }
        conns = xrealloc(conns, (size_t)cap * sizeof(*conns));
        memset(conns + conns_cap, 0, (size_t)(cap - conns_cap) * sizeof(*conns));
        conns_cap = cap;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.sources > 1) {
        /* Several loopback sources multiply the ephemeral ports; the port is picked at
         * connect() time (IP_BIND_ADDRESS_NO_PORT) so that the 4-tuple, not the bind, is
         * what has to be unique. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(source_next++ % opt.sources));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            die("bind to source 127.0.0.%d: %s", 1 + (source_next - 1) % opt.sources,
                strerror(errno));
        }
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) {
        die("--host must be an IPv4 address: %s", opt.host);
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        connect_errors++;
        if (e == EADDRNOTAVAIL || e == EAGAIN) {
            note_error("connect: %s (ephemeral ports exhausted? try --sources)", strerror(e));
            connect_retry_at = turn_now + 100000000u;
            return NULL;
        }
        note_error("connect to %s:%d: %s", opt.host, opt.port, strerror(e));
        connect_retry_at = turn_now + 100000000u;
        return NULL;
    }
    struct conn *c = xmalloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->st = CS_CONNECTING;
    c->role = role;
    c->user = user;
    c->slot = slot;
    c->t_start = turn_now;
    c->events = EPOLLIN | EPOLLOUT;
    struct epoll_event ev = {.events = c->events, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        die("epoll_ctl: %s", strerror(errno));
    }
    conns[fd] = c;
    nconns++;
    nlogging++;
    return c;
}

/* ---- looking into one stanza (s, n: the whole top-level element) ---- */

/* Local name of the top-level element ("stream:features" -> "features"). */
static bool stanza_is(const char *s, size_t n, const char *local)
{
    size_t i = 1, start = 1;
    while (i < n && s[i] != ' ' && s[i] != '>' && s[i] != '/' && s[i] != '\t' && s[i] != '\n' &&
           s[i] != '\r') {
        if (s[i] == ':') {
            start = i + 1;
        }
        i++;
    }
    size_t l = strlen(local);
    return i - start == l && memcmp(s + start, local, l) == 0;
}

/* Value of attribute `name` on the top-level element (no unescaping). */
static bool stanza_attr(const char *s, size_t n, const char *name, const char **v, size_t *vn)
{
    size_t nl = strlen(name);
    size_t i = 1;
    while (i < n && s[i] != ' ' && s[i] != '>' && s[i] != '/') {
        i++;
    }
    while (i < n && s[i] != '>') {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
            i++;
        }
        size_t a = i;
        while (i < n && s[i] != '=' && s[i] != '>' && s[i] != ' ' && s[i] != '/') {
            i++;
        }
        size_t alen = i - a;
        while (i < n && s[i] == ' ') {
            i++;
        }
        if (i >= n || s[i] != '=') {
            if (i < n && s[i] == '/') {
                i++;
            }
            continue;
        }
        i++;
        while (i < n && s[i] == ' ') {
            i++;
        }
        if (i >= n || (s[i] != '\'' && s[i] != '"')) {
            return false;
        }
        char q = s[i++];
        size_t vs = i;
        while (i < n && s[i] != q) {
            i++;
        }
        if (i >= n) {
            return false;
        }
        if (alen == nl && memcmp(s + a, name, nl) == 0) {
            *v = s + vs;
            *vn = i - vs;
            return true;
        }
        i++;
    }
    return false;
}

static bool attr_eq(const char *s, size_t n, const char *name, const char *want)
{
    const char *v;
    size_t vn;
    if (!stanza_attr(s, n, name, &v, &vn)) {
        return false;
    }
    return vn == strlen(want) && memcmp(v, want, vn) == 0;
}

static bool contains(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

/* Text of the first child element <name ...>text</name>, by search. */
static bool child_text(const char *s, size_t n, const char *name, const char **t, size_t *tn)
{
    size_t nl = strlen(name);
    const char *p = s + 1, *end = s + n;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL || (size_t)(end - lt) < nl + 2) {
            return false;
        }
        if (memcmp(lt + 1, name, nl) == 0 &&
            (lt[nl + 1] == '>' || lt[nl + 1] == ' ' || lt[nl + 1] == '/')) {
            const char *gt = memchr(lt, '>', (size_t)(end - lt));
            if (gt == NULL) {
                return false;
            }
            if (gt[-1] == '/') {
                *t = gt;
                *tn = 0;
                return true;
            }
            const char *close = memchr(gt + 1, '<', (size_t)(end - gt - 1));
            if (close == NULL) {
                return false;
            }
            *t = gt + 1;
            *tn = (size_t)(close - gt - 1);
            return true;
        }
        p = lt + 1;
    }
    return false;
}

/* Does the `from` attribute name account `bare` (bare or full JID)? */
static bool from_is(const char *s, size_t n, const char *bare)
{
    const char *v;
    size_t vn, bl = strlen(bare);
    if (!stanza_attr(s, n, "from", &v, &vn) || vn < bl || memcmp(v, bare, bl) != 0) {
        return false;
    }
    return vn == bl || v[bl] == '/';
}

/* ---- SASL ---- */

static const char *mech_name(void)
{
    return opt.mech == MECH_PLAIN ? "PLAIN" : "SCRAM-SHA-1";
}

static void start_auth(struct conn *c)
{
    char name[256];
    user_name(c->user, name, sizeof(name));
    struct buf b = {0};
    if (opt.mech == MECH_PLAIN) {
        struct buf raw = {0};
        buf_append(&raw, "", 1);
        buf_append(&raw, name, strlen(name));
        buf_append(&raw, "", 1);
        buf_append(&raw, opt.password, strlen(opt.password));
        buf_printf(&b, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>");
        b64_append(&b, raw.p, raw.len);
        buf_free(&raw);
    } else {
        unsigned char rnd[18];
        struct buf cfb = {0};
        mbedtls_ctr_drbg_random(&drbg, rnd, sizeof(rnd));
        buf_printf(&cfb, "n=");
        for (const char *p = name; *p; p++) { /* RFC 5802 §5.1 saslname */
            if (*p == '=') {
                buf_printf(&cfb, "=3D");
            } else if (*p == ',') {
                buf_printf(&cfb, "=2C");
            } else {
                buf_append(&cfb, p, 1);
            }
        }
        buf_printf(&cfb, ",r=");
        b64_append(&cfb, rnd, sizeof(rnd));
        c->scram_cfb = xstrndup(cfb.p, cfb.len);
        struct buf first = {0};
        buf_printf(&first, "n,,%s", c->scram_cfb);
        buf_printf(&b, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>");
        b64_append(&b, first.p, first.len);
        buf_free(&cfb);
        buf_free(&first);
        c->scram_step = 1;
    }
    buf_printf(&b, "</auth>");
    conn_send(c, b.p, b.len);
    buf_free(&b);
    c->st = CS_AUTH;
}

/* server-first-message -> client-final-message (RFC 5802 §3). */
static int scram_step1(struct conn *c, const char *sf, size_t sfn)
{
    const char *r = NULL, *s = NULL, *it = NULL;
    size_t rn = 0, sn = 0;
    for (size_t i = 0; i < sfn;) {
        size_t j = i;
        while (j < sfn && sf[j] != ',') {
            j++;
        }
        if (j - i >= 2 && sf[i + 1] == '=') {
            if (sf[i] == 'r') {
                r = sf + i + 2;
                rn = j - i - 2;
            } else if (sf[i] == 's') {
                s = sf + i + 2;
                sn = j - i - 2;
            } else if (sf[i] == 'i') {
                it = sf + i + 2;
            } else if (sf[i] == 'm') {
                return -1; /* mandatory extension we do not know */
            }
        }
        i = j + 1;
    }
    const char *cnonce = strstr(c->scram_cfb, ",r=") + 3;
    if (r == NULL || s == NULL || it == NULL || rn < strlen(cnonce) ||
        memcmp(r, cnonce, strlen(cnonce)) != 0) {
        return -1;
    }
    long iter = strtol(it, NULL, 10);
    if (iter < 1 || iter > 10000000) {
        return -1;
    }
    struct scram_cache e = {.iter = (unsigned)iter};
    int sl = b64_decode(s, sn, e.salt, sizeof(e.salt));
    if (sl < 0) {
        return -1;
    }
    e.salt_len = (size_t)sl;
    struct scram_cache *hit = scram_cache_get(c->user);
    if (hit && hit->iter == e.iter && hit->salt_len == e.salt_len &&
        memcmp(hit->salt, e.salt, e.salt_len) == 0) {
        memcpy(e.salted, hit->salted, 20);
    } else {
        if (pbkdf2_sha1(opt.password, e.salt, e.salt_len, e.iter, e.salted) != 0) {
            return -1;
        }
        pbkdf2_runs++;
        scram_cache_put(c->user, &e);
    }
    unsigned char ckey[20], skey[20], stored[20], csig[20], proof[20];
    hmac_sha1(e.salted, 20, "Client Key", 10, ckey);
    hmac_sha1(e.salted, 20, "Server Key", 10, skey);
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), ckey, 20, stored);
    struct buf wp = {0}, am = {0}, fin = {0}, b = {0};
    buf_printf(&wp, "c=biws,r=%.*s", (int)rn, r); /* biws = base64("n,,") */
    buf_printf(&am, "%s,%.*s,%.*s", c->scram_cfb, (int)sfn, sf, (int)wp.len, wp.p);
    hmac_sha1(stored, 20, am.p, am.len, csig);
    hmac_sha1(skey, 20, am.p, am.len, c->server_sig);
    for (int i = 0; i < 20; i++) {
        proof[i] = ckey[i] ^ csig[i];
    }
    buf_append(&fin, wp.p, wp.len);
    buf_printf(&fin, ",p=");
    b64_append(&fin, proof, 20);
    buf_printf(&b, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
    b64_append(&b, fin.p, fin.len);
    buf_printf(&b, "</response>");
    conn_send(c, b.p, b.len);
    buf_free(&wp);
    buf_free(&am);
    buf_free(&fin);
    buf_free(&b);
    c->scram_step = 2;
    return 0;
}

/* server-final-message: "v=" base64(ServerSignature). */
static int scram_verify(struct conn *c, const char *sf, size_t n)
{
    struct buf want = {0};
    buf_printf(&want, "v=");
    b64_append(&want, c->server_sig, 20);
    int ok = n >= want.len && memcmp(sf, want.p, want.len) == 0;
    buf_free(&want);
    return ok ? 0 : -1;
}

static void on_bound(struct conn *c)
{
    c->st = CS_READY;
    nlogging--;
    if (opt.presence && c->role != R_WARM) {
        conn_sendf(c, "<presence/>");
    }
    scenario_on_ready(c);
}

static void send_bind(struct conn *c)
{
    conn_sendf(c,
               "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>b%lu</resource></bind></iq>",
               ++resource_seq);
    c->st = CS_BIND;
}

static void send_register(struct conn *c)
{
    char name[256];
    user_name(c->user, name, sizeof(name));
    conn_sendf(c,
               "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username>"
               "<password>%s</password></query></iq>",
               name, opt.password);
    c->st = CS_REGISTER;
}

static unsigned long reg_created, reg_existed;

/* One complete top-level stanza while logging in. */
static void on_stanza(struct conn *c, const char *s, size_t n)
{
    if (n > 13 && memcmp(s, "<stream:error", 13) == 0) {
        stream_errors++;
        note_error("stream error from server: %.*s", (int)(n > 300 ? 300 : n), s);
        conn_close(c, "stream error");
        return;
    }
    switch (c->st) {
    case CS_FEATURES:
        if (!stanza_is(s, n, "features")) {
            return;
        }
        if (opt.starttls && !c->tls) {
            if (!contains(s, n, "urn:ietf:params:xml:ns:xmpp-tls")) {
                conn_close(c, "server offers no STARTTLS");
                return;
            }
            conn_sendf(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
            c->st = CS_STARTTLS;
        } else if (c->role == R_REGISTER) {
            send_register(c);
        } else if (!c->authed) {
            const char *m = opt.mech == MECH_PLAIN ? ">PLAIN<" : ">SCRAM-SHA-1<";
            if (!contains(s, n, m)) {
                note_error("features: %.*s", (int)(n > 400 ? 400 : n), s);
                conn_close(c, "server does not offer the SASL mechanism");
                return;
            }
            start_auth(c);
        } else {
            c->need_session = contains(s, n, "urn:ietf:params:xml:ns:xmpp-session") &&
                              !contains(s, n, "<optional");
            send_bind(c);
        }
        return;
    case CS_STARTTLS:
        if (!stanza_is(s, n, "proceed")) {
            conn_close(c, "STARTTLS refused");
            return;
        }
        c->ssl = xmalloc(sizeof(*c->ssl));
        mbedtls_ssl_init(c->ssl);
        if (mbedtls_ssl_setup(c->ssl, &tls_conf) != 0) {
            conn_close(c, "mbedtls_ssl_setup failed");
            return;
        }
        mbedtls_ssl_set_hostname(c->ssl, opt.domain);
        mbedtls_ssl_set_bio(c->ssl, c, tls_send_cb, tls_recv_cb, NULL);
        c->st = CS_HANDSHAKE;
        c->tls_want_write = true; /* the client speaks first */
        conn_set_interest(c);
        return;
    case CS_AUTH:
        if (stanza_is(s, n, "challenge") || stanza_is(s, n, "success")) {
            const char *t = memchr(s, '>', n);
            const char *e = s + n;
            unsigned char dec[1024];
            int dn = 0;
            if (t != NULL && t[-1] != '/') {
                const char *lt = memchr(t + 1, '<', (size_t)(e - t - 1));
                if (lt && lt > t + 1 && !(lt - t - 1 == 1 && t[1] == '=')) {
                    dn = b64_decode(t + 1, (size_t)(lt - t - 1), dec, sizeof(dec) - 1);
                }
            }
            dec[dn > 0 ? dn : 0] = '\0'; /* scram_step1 reads numbers with strtol */
            if (dn < 0) {
                conn_close(c, "bad base64 from server");
                return;
            }
            bool success = stanza_is(s, n, "success");
            if (opt.mech == MECH_SCRAM_SHA1) {
                if (c->scram_step == 1 && !success) {
                    if (scram_step1(c, (const char *)dec, (size_t)dn) < 0) {
                        conn_close(c, "bad SCRAM server-first-message");
                    }
                    return;
                }
                if (c->scram_step == 2 && dn > 0) {
                    if (scram_verify(c, (const char *)dec, (size_t)dn) < 0) {
                        conn_close(c, "SCRAM server signature does not match");
                        return;
                    }
                    c->scram_step = 3;
                    if (!success) { /* old style: v= in a challenge, empty response */
                        conn_sendf(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
                        return;
                    }
                }
                if (success && c->scram_step != 3) {
                    conn_close(c, "SCRAM success without server signature");
                    return;
                }
            }
            if (success) {
                c->authed = true;
                stream_open(c); /* RFC 6120 §6.4.6: restart the stream */
            }
            return;
        }
        if (stanza_is(s, n, "failure")) {
            note_error("SASL failure: %.*s", (int)(n > 200 ? 200 : n), s);
            conn_close(c, "authentication failed");
        }
        return;
    case CS_REGISTER:
        if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "reg")) {
            if (attr_eq(s, n, "type", "result")) {
                reg_created++;
                c->flag = true;
            } else if (contains(s, n, "<conflict")) {
                reg_existed++;
                c->flag = true;
            } else {
                note_error("registration refused: %.*s", (int)(n > 300 ? 300 : n), s);
                conn_close(c, "registration failed");
                return;
            }
            conn_finish(c, false);
        }
        return;
    case CS_BIND:
        if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "bind")) {
            const char *j;
            size_t jn;
            if (!attr_eq(s, n, "type", "result") || !child_text(s, n, "jid", &j, &jn) || jn == 0) {
                note_error("bind: %.*s", (int)(n > 300 ? 300 : n), s);
                conn_close(c, "bind failed");
                return;
            }
            c->jid = xstrndup(j, jn);
            if (c->need_session) {
                conn_sendf(c, "<iq type='set' id='sess'>"
                              "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
                c->st = CS_SESSION;
            } else {
                on_bound(c);
            }
        }
        return;
    case CS_SESSION:
        if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "sess")) {
            if (!attr_eq(s, n, "type", "result")) {
                conn_close(c, "session failed");
                return;
            }
            on_bound(c);
        }
        return;
    case CS_READY:
        if (stanza_is(s, n, "iq")) {
            const char *id, *from;
            size_t idn, fn;
            bool req = attr_eq(s, n, "type", "get") || attr_eq(s, n, "type", "set");
            if (req && stanza_attr(s, n, "id", &id, &idn)) {
                /* Answer server pings and roster pushes (RFC 6121 §2.1.6). */
                if (stanza_attr(s, n, "from", &from, &fn)) {
                    conn_sendf(c, "<iq type='result' id='%.*s' to='%.*s'/>", (int)idn, id, (int)fn,
                               from);
                } else {
                    conn_sendf(c, "<iq type='result' id='%.*s'/>", (int)idn, id);
                }
                return;
            }
        }
        scenario_on_stanza(c, s, n);
        return;
    default:
        return;
    }
}

/* ---- stream scanner: split the input into top-level stanzas ---- */

static void on_tag(struct conn *c, size_t ts, size_t te)
{
    const char *p = c->in.p + ts;
    size_t n = te - ts;
    if (n >= 2 && (p[1] == '?' || p[1] == '!')) {
        if (c->depth <= 1) {
            c->keep = te;
        }
        return;
    }
    if (n >= 2 && p[1] == '/') {
        c->depth--;
        if (c->depth == 1) {
            size_t ss = c->stanza_start;
            c->keep = te;
            on_stanza(c, c->in.p + ss, te - ss);
        } else if (c->depth <= 0) {
            c->keep = te;
            conn_close(c, c->st == CS_READY ? NULL : "server closed the stream");
        }
        return;
    }
    if (n >= 3 && p[n - 2] == '/') {
        if (c->depth == 1) {
            c->keep = te;
            on_stanza(c, p, n);
        }
        return;
    }
    if (c->depth == 0) { /* <stream:stream ...> */
        c->depth = 1;
        c->keep = te;
        return;
    }
    if (c->depth == 1) {
        c->stanza_start = ts;
    }
    c->depth++;
}

static void scan_input(struct conn *c)
{
    size_t i = c->scan;
    c->keep = 0;
    while (i < c->in.len && !c->closing) {
        if (!c->in_tag) {
            const char *lt = memchr(c->in.p + i, '<', c->in.len - i);
            if (lt == NULL) {
                i = c->in.len;
                if (c->depth <= 1) {
                    c->keep = i; /* whitespace between stanzas */
                }
                break;
            }
            i = (size_t)(lt - c->in.p);
            c->tag_start = i;
            c->in_tag = true;
            c->quote = 0;
            i++;
            continue;
        }
        /* inside a tag: find the '>' that is not inside a quoted value */
        while (i < c->in.len) {
            char ch = c->in.p[i];
            if (c->quote) {
                if (ch == c->quote) {
                    c->quote = 0;
                }
            } else if (ch == '"' || ch == '\'') {
                c->quote = ch;
            } else if (ch == '>') {
                break;
            }
            i++;
        }
        if (i >= c->in.len) {
            break;
        }
        i++;
        c->in_tag = false;
        enum conn_state before = c->st;
        on_tag(c, c->tag_start, i);
        if (c->ssl && before == CS_STARTTLS) {
            /* <proceed/>: later bytes are TLS records, read through mbedTLS */
            c->keep = c->in.len;
            i = c->in.len;
            break;
        }
    }
    if (c->closing) {
        return;
    }
    if (c->keep > 0) {
        buf_consume(&c->in, c->keep);
        i -= c->keep;
        c->tag_start -= c->tag_start >= c->keep ? c->keep : c->tag_start;
        c->stanza_start -= c->stanza_start >= c->keep ? c->keep : c->stanza_start;
        c->keep = 0;
    }
    c->scan = i;
    if (c->in.len > BENCH_INPUT_MAX) {
        conn_close(c, "stanza too large");
        return;
    }
    buf_shrink_if_empty(&c->in);
}

/* ---- socket events ---- */

static void drive_handshake(struct conn *c)
{
    int r = mbedtls_ssl_handshake(c->ssl);
    if (r == 0) {
        c->tls = true;
        c->tls_want_write = false;
        c->in.len = 0;
        c->scan = 0;
        stream_open(c);
        conn_flush(c);
        return;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        c->tls_want_write = r == MBEDTLS_ERR_SSL_WANT_WRITE;
        conn_set_interest(c);
        return;
    }
    char err[128];
    snprintf(err, sizeof(err), "TLS handshake failed (-0x%04x)", (unsigned)-r);
    conn_close(c, err);
}

static void on_readable(struct conn *c)
{
    size_t got = 0;
    /* mbedTLS may hold decrypted bytes that poll() will not report: drain those too */
    while (got < BENCH_READ_PER_EVENT ||
           (c->ssl != NULL && mbedtls_ssl_get_bytes_avail(c->ssl) > 0)) {
        buf_reserve(&c->in, BENCH_READ_CHUNK);
        ssize_t r;
        if (c->ssl) {
            int t = mbedtls_ssl_read(c->ssl, (unsigned char *)c->in.p + c->in.len,
                                     c->in.cap - c->in.len);
            if (t == MBEDTLS_ERR_SSL_WANT_READ || t == MBEDTLS_ERR_SSL_WANT_WRITE) {
                if (t == MBEDTLS_ERR_SSL_WANT_WRITE) {
                    c->tls_want_write = true;
                }
                break;
            }
            if (t == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || t == 0) {
                conn_close(c, c->st == CS_READY ? NULL : "server closed the connection");
                return;
            }
            if (t < 0) {
                conn_close(c, "TLS read failed");
                return;
            }
            r = t;
        } else {
            r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    break;
                }
                conn_close(c, c->st == CS_READY ? NULL : "recv failed");
                return;
            }
            if (r == 0) {
                conn_close(c, c->st == CS_READY ? NULL : "server closed the connection");
                return;
            }
        }
        c->in.len += (size_t)r;
        got += (size_t)r;
        scan_input(c);
        if (c->closing || c->st == CS_HANDSHAKE) {
            return;
        }
    }
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->st == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            char why[160];
            connect_errors++;
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            conn_close(c, why);
            return;
        }
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            return;
        }
        stream_open(c);
        conn_flush(c);
        return;
    }
    if (c->st == CS_HANDSHAKE) {
        drive_handshake(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(c);
    }
    if (!c->closing && (ev & EPOLLOUT) && !c->dirty) {
        conn_flush(c);
    }
}

/* ---- scenario state ---- */

enum phase {
    PH_WARMUP,
    PH_LOGIN,
    PH_SETTLE,
    PH_RUN,
    PH_DRAIN,
    PH_SETUP,
    PH_PREDRAIN,
    PH_PREWAIT,
    PH_STORE,
    PH_DELIVER,
    PH_HOLD,
    PH_DONE
};

struct pending {
    int user;
    enum role role;
    int slot;
};

static struct {
    enum phase phase;
    struct pending *q;
    int nq, qhead;
    int ready, failed, closed_ready;
    uint64_t t0, t1, phase_at, last_progress;
    double cpu0, cpu1, gcpu0, gcpu1, box0, box1;
    long rss0, rss1;
    struct lat lat, login_lat;
    bool lat_sorted, login_sorted;
    struct conn **a, **b; /* msg: senders/receivers; presence: contacts in a */
    int na;
    uint64_t delivered, delivered_in_window, sent, errors;
    struct conn *star;
    char star_bare[512];
    int *got; /* presence: deliveries per change */
    uint64_t *change_sent_at;
    int changes_sent, changes_done, expected, changes_cap;
    char run_id[24];
    int senders_done;
    double store_s, store_cpu;
    int exit_code;
} g;

static void queue_sessions(int count, int first_user, int stride, enum role role)
{
    g.q = xrealloc(g.q, (size_t)(g.nq + count) * sizeof(*g.q));
    for (int i = 0; i < count; i++) {
        g.q[g.nq++] = (struct pending){.user = first_user + i * stride, .role = role, .slot = i};
    }
}

static bool queue_empty(void)
{
    return g.qhead >= g.nq;
}

/* Start queued sessions while fewer than --concurrency are logging in. */
static void start_sessions(void)
{
    while (!queue_empty() && nlogging < opt.concurrency) {
        struct pending *p = &g.q[g.qhead];
        struct conn *c = conn_new(p->user, p->role, p->slot);
        if (c == NULL) {
            return;
        }
        if (p->role == R_SENDER || p->role == R_CONTACT || p->role == R_PRE) {
            if (g.a) {
                g.a[p->slot] = c;
            }
        } else if (p->role == R_RECEIVER && g.b) {
            g.b[p->slot] = c;
        }
        g.qhead++;
    }
}

static void set_phase(enum phase ph)
{
    g.phase = ph;
    g.phase_at = turn_now;
    g.last_progress = turn_now;
    if (opt.verbose) {
        fprintf(stderr, "xmpp-bench: phase %d at %.3f s\n", (int)ph, turn_now / 1e9);
    }
}

static double secs(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e9 : 0.0;
}

static struct buf result;

static void result_begin(void)
{
    result.len = 0;
    buf_printf(&result, "RESULT scenario=%s server=%s port=%d tls=%d mech=%s", opt.scenario_name,
               opt.label ? opt.label : opt.host, opt.port, opt.starttls ? 1 : 0, mech_name());
}

static void result_add(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void result_add(const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    buf_printf(&result, " %s", tmp);
}

/* Common tail: server and generator CPU over the measured interval, errors. */
static void result_cpu(double wall)
{
    if (opt.pid > 0 && g.cpu0 >= 0 && g.cpu1 >= 0) {
        result_add("srv_cpu_s=%.2f srv_cpu_pct=%.0f", g.cpu1 - g.cpu0,
                   wall > 0 ? 100.0 * (g.cpu1 - g.cpu0) / wall : 0.0);
    }
    result_add("gen_cpu_s=%.2f gen_cpu_pct=%.0f", g.gcpu1 - g.gcpu0,
               wall > 0 ? 100.0 * (g.gcpu1 - g.gcpu0) / wall : 0.0);
    if (wall > 0 && g.box0 >= 0 && g.box1 >= 0) {
        /* everything else on the machine: other processes, kernel work not charged */
        double other = (g.box1 - g.box0) - (g.gcpu1 - g.gcpu0);
        if (opt.pid > 0 && g.cpu0 >= 0 && g.cpu1 >= 0) {
            other -= g.cpu1 - g.cpu0;
        }
        result_add("box_cpu_pct=%.0f other_cpu_pct=%.0f ncpu=%ld", 100.0 * (g.box1 - g.box0) / wall,
                   other > 0 ? 100.0 * other / wall : 0.0, sysconf(_SC_NPROCESSORS_ONLN));
    }
    long rss = proc_rss_kb(opt.pid);
    if (rss >= 0) {
        result_add("rss_kb=%ld", rss);
    }
    result_add("login_failures=%lu connect_errors=%lu stream_errors=%lu", login_failures,
               connect_errors, stream_errors);
}

static void result_end(int code)
{
    printf("%.*s status=%s\n", (int)result.len, result.p, code == 0 ? "ok" : "fail");
    fflush(stdout);
    g.exit_code = code;
    set_phase(PH_DONE);
}

static void measure_start(void)
{
    g.t0 = turn_now;
    g.cpu0 = proc_cpu_s(opt.pid);
    g.gcpu0 = self_cpu_s();
    g.box0 = box_cpu_s();
}

static void measure_stop(void)
{
    g.t1 = turn_now;
    g.cpu1 = proc_cpu_s(opt.pid);
    g.gcpu1 = self_cpu_s();
    g.box1 = box_cpu_s();
}

/* ---- scenario: login ---- */

static void login_queue(enum role role)
{
    int users = opt.user_count > 0 ? opt.user_count : opt.sessions;
    int count = role == R_WARM ? (users < opt.sessions ? users : opt.sessions) : opt.sessions;
    g.q = xrealloc(g.q, (size_t)(g.nq + count) * sizeof(*g.q));
    for (int i = 0; i < count; i++) {
        g.q[g.nq++] = (struct pending){.user = opt.first + i % users, .role = role, .slot = -1};
    }
    g.ready = g.failed = 0;
}

static void login_tick(void)
{
    int total = g.nq;
    if (g.ready + g.failed < total) {
        return;
    }
    if (g.phase == PH_WARMUP) {
        if (g.ready == 0) {
            result_begin();
            result_add("warmup_failed=%d", g.failed);
            result_cpu(0);
            result_end(1);
            return;
        }
        if (opt.verbose) {
            fprintf(stderr, "xmpp-bench: warm-up done (%d accounts, %lu PBKDF2 runs)\n", g.ready,
                    pbkdf2_runs);
        }
        free(g.q);
        g.q = NULL;
        g.nq = g.qhead = 0;
        login_failures = 0;
        login_queue(R_PLAIN);
        set_phase(PH_LOGIN);
        measure_start();
        return;
    }
    measure_stop();
    double wall = secs(g.t0, g.t1);
    result_begin();
    result_add("sessions=%d ok=%d failed=%d elapsed_s=%.3f logins_per_s=%.1f", total, g.ready,
               g.failed, wall, wall > 0 ? g.ready / wall : 0.0);
    result_add("login_p50_ms=%.2f login_p99_ms=%.2f login_max_ms=%.2f",
               lat_pct_ms(&g.login_lat, 50, &g.login_sorted),
               lat_pct_ms(&g.login_lat, 99, &g.login_sorted), g.login_lat.max_us / 1000.0);
    result_cpu(wall);
    result_end(g.failed == 0 && g.ready > 0 ? 0 : 1);
}

/* ---- scenario: hold ---- */

static void hold_tick(void)
{
    if (g.phase == PH_LOGIN) {
        if (g.ready + g.failed < g.nq) {
            return;
        }
        measure_stop();
        g.t1 = turn_now;
        set_phase(PH_SETTLE);
        return;
    }
    if (g.phase == PH_SETTLE && secs(g.phase_at, turn_now) >= opt.settle) {
        g.rss1 = proc_rss_kb(opt.pid);
        int held = g.ready - g.closed_ready;
        double wall = secs(g.t0, g.t1);
        result_begin();
        result_add("sessions=%d held=%d failed=%d lost=%d connect_s=%.2f logins_per_s=%.1f", g.nq,
                   held, g.failed, g.closed_ready, wall, wall > 0 ? g.ready / wall : 0.0);
        if (g.rss0 >= 0 && g.rss1 >= 0) {
            result_add("rss_before_kb=%ld rss_after_kb=%ld bytes_per_session=%.0f", g.rss0, g.rss1,
                       held > 0 ? (double)(g.rss1 - g.rss0) * 1024.0 / held : 0.0);
        }
        result_cpu(wall);
        printf("%.*s status=%s\n", (int)result.len, result.p,
               g.failed == 0 && g.closed_ready == 0 ? "ok" : "fail");
        fflush(stdout);
        g.exit_code = g.failed == 0 && g.closed_ready == 0 ? 0 : 1;
        set_phase(PH_HOLD);
        return;
    }
    if (g.phase == PH_HOLD && secs(g.phase_at, turn_now) >= opt.hold_seconds) {
        set_phase(PH_DONE);
    }
}

/* ---- scenario: msg ---- */

static void msg_send(struct conn *s, struct conn *r)
{
    const char *slash = strchr(r->jid, '/');
    int len = opt.bare && slash ? (int)(slash - r->jid) : (int)strlen(r->jid);
    conn_sendf(s, "<message to='%.*s' type='chat' id='m%lu'><body>t=%" PRIu64 "</body></message>",
               len, r->jid, ++msg_seq, now_ns());
    s->inflight++;
    g.sent++;
}

static void msg_on_stanza(struct conn *c, const char *s, size_t n)
{
    if (!stanza_is(s, n, "message")) {
        return;
    }
    if (attr_eq(s, n, "type", "error")) {
        g.errors++;
        note_error("message bounced: %.*s", (int)(n > 300 ? 300 : n), s);
        return;
    }
    const char *t;
    size_t tn;
    if (c->role != R_RECEIVER || !child_text(s, n, "body", &t, &tn) || tn < 3 || t[0] != 't') {
        return;
    }
    uint64_t sent = strtoull(t + 2, NULL, 10);
    uint64_t now = now_ns();
    struct conn *snd = g.a[c->slot];
    g.delivered++;
    if (g.phase == PH_RUN) {
        g.delivered_in_window++;
        lat_add(&g.lat, now > sent ? now - sent : 0);
    }
    if (snd != NULL) {
        snd->inflight--;
        if (g.phase == PH_RUN) {
            msg_send(snd, c);
        }
    }
}

static void msg_tick(void)
{
    if (g.phase == PH_LOGIN) {
        if (g.ready + g.failed < g.nq) {
            return;
        }
        set_phase(PH_SETTLE);
        return;
    }
    if (g.phase == PH_SETTLE && secs(g.phase_at, turn_now) >= 0.5) {
        int pairs = 0;
        set_phase(PH_RUN);
        measure_start();
        for (int i = 0; i < opt.pairs; i++) {
            if (g.a[i] && g.b[i] && g.a[i]->st == CS_READY && g.b[i]->st == CS_READY) {
                pairs++;
                for (int w = 0; w < opt.window; w++) {
                    msg_send(g.a[i], g.b[i]);
                }
            }
        }
        g.na = pairs;
        if (pairs == 0) {
            result_begin();
            result_add("pairs=0");
            result_cpu(0);
            result_end(1);
        }
        return;
    }
    if (g.phase == PH_RUN && secs(g.t0, turn_now) >= opt.duration) {
        measure_stop();
        set_phase(PH_DRAIN);
        return;
    }
    if (g.phase == PH_DRAIN) {
        bool drained = true;
        for (int i = 0; i < opt.pairs && drained; i++) {
            if (g.a[i] && g.a[i]->inflight > 0) {
                drained = false;
            }
        }
        if (!drained && secs(g.phase_at, turn_now) < 5) {
            return;
        }
        double wall = secs(g.t0, g.t1);
        uint64_t lost = g.sent - g.delivered;
        result_begin();
        result_add("to=%s pairs=%d window=%d duration_s=%.2f sent=%" PRIu64 " delivered=%" PRIu64
                   " undelivered=%" PRIu64 " bounced=%" PRIu64,
                   opt.bare ? "bare" : "full", g.na, opt.window, wall, g.sent, g.delivered, lost,
                   g.errors);
        result_add("msgs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f",
                   wall > 0 ? g.delivered_in_window / wall : 0.0,
                   lat_pct_ms(&g.lat, 50, &g.lat_sorted), lat_pct_ms(&g.lat, 99, &g.lat_sorted),
                   g.lat.max_us / 1000.0);
        if (opt.pid > 0 && g.cpu0 >= 0 && g.cpu1 >= 0 && g.delivered_in_window > 0) {
            result_add("srv_cpu_s_per_100k=%.3f",
                       (g.cpu1 - g.cpu0) * 100000.0 / (double)g.delivered_in_window);
        }
        result_cpu(wall);
        /* Success is functional (messages got through, none bounced), not a rate:
         * on a busy machine the first may arrive after the measured window. */
        result_end(g.delivered > 0 && g.errors == 0 && login_failures == 0 ? 0 : 1);
    }
}

/* ---- scenario: presence fan-out ---- */

static const char *const shows[] = {"away", "xa", "dnd", "chat"};

/* More changes while the run lasts: --duration seconds, at most --changes (0 = no cap). */
static bool presence_may_send(void)
{
    return g.phase == PH_RUN && g.star != NULL &&
           (opt.changes == 0 || g.changes_sent < opt.changes) &&
           secs(g.t0, turn_now) < opt.duration;
}

static void presence_send_change(void)
{
    int i = ++g.changes_sent;
    if (i >= g.changes_cap) {
        int cap = g.changes_cap ? g.changes_cap * 2 : 1024;
        g.got = xrealloc(g.got, (size_t)cap * sizeof(*g.got));
        g.change_sent_at = xrealloc(g.change_sent_at, (size_t)cap * sizeof(*g.change_sent_at));
        memset(g.got + g.changes_cap, 0, (size_t)(cap - g.changes_cap) * sizeof(*g.got));
        g.changes_cap = cap;
    }
    conn_sendf(g.star, "<presence><show>%s</show><status>bench %d</status></presence>",
               shows[i % 4], i);
    g.change_sent_at[i] = now_ns();
}

static void presence_on_stanza(struct conn *c, const char *s, size_t n)
{
    if (!stanza_is(s, n, "presence")) {
        return;
    }
    const char *type;
    size_t tn;
    bool has_type = stanza_attr(s, n, "type", &type, &tn);
    if (c->role == R_STAR) {
        const char *from;
        size_t fn;
        if (has_type && tn == 9 && memcmp(type, "subscribe", 9) == 0 &&
            stanza_attr(s, n, "from", &from, &fn)) {
            /* approve every contact (RFC 6121 §3.1.4) */
            conn_sendf(c, "<presence to='%.*s' type='subscribed'/>", (int)fn, from);
        }
        return;
    }
    if (c->role != R_CONTACT || !from_is(s, n, g.star_bare)) {
        return;
    }
    if (has_type) {
        return;
    }
    if (!c->flag && g.phase != PH_RUN) {
        c->flag = true; /* subscribed: the star's presence reaches this contact */
        g.expected++;
        g.last_progress = turn_now;
    }
    const char *st;
    size_t stn;
    if (g.phase != PH_RUN || !child_text(s, n, "status", &st, &stn) || stn < 7 ||
        memcmp(st, "bench ", 6) != 0) {
        return;
    }
    int k = atoi(st + 6);
    if (k < 1 || k > g.changes_sent) {
        return;
    }
    g.delivered++;
    g.last_progress = turn_now;
    if (++g.got[k] == g.expected) {
        g.changes_done++;
        g.t1 = turn_now; /* the last completed change ends the measured interval */
        lat_add(&g.lat, now_ns() - g.change_sent_at[k]);
        if (presence_may_send()) {
            presence_send_change();
        }
    }
}

static void presence_tick(void)
{
    if (g.phase == PH_LOGIN) { /* the star first, so that its presence can be probed */
        if (g.star == NULL || g.star->st != CS_READY) {
            if (g.failed > 0) {
                result_begin();
                result_add("star_login=failed");
                result_cpu(0);
                result_end(1);
            }
            return;
        }
        queue_sessions(opt.contacts, opt.first + 1, 1, R_CONTACT);
        set_phase(PH_SETUP);
        return;
    }
    if (g.phase == PH_SETUP) {
        /* g.ready counts the star too; g.nq only the contacts */
        bool all = queue_empty() && g.expected >= g.ready - 1 && g.ready + g.failed >= g.nq + 1;
        if (!all && secs(g.last_progress, turn_now) < 20) {
            return;
        }
        if (g.expected == 0) {
            result_begin();
            result_add("contacts=%d subscribed=0", opt.contacts);
            result_cpu(0);
            result_end(1);
            return;
        }
        set_phase(PH_SETTLE);
        return;
    }
    if (g.phase == PH_SETTLE && secs(g.phase_at, turn_now) >= 1) {
        set_phase(PH_RUN);
        measure_start();
        for (int i = 0; i < opt.window && presence_may_send(); i++) {
            presence_send_change();
        }
        return;
    }
    if (g.phase == PH_RUN) {
        bool stalled = secs(g.last_progress, turn_now) >= 10;
        if (!stalled && (presence_may_send() || g.changes_done < g.changes_sent)) {
            return;
        }
        uint64_t t_end = g.t1;
        measure_stop();
        g.t1 = t_end > g.t0 ? t_end : turn_now;
        double wall = secs(g.t0, g.t1);
        result_begin();
        result_add("contacts=%d subscribed=%d changes=%d completed=%d deliveries=%" PRIu64,
                   opt.contacts, g.expected, g.changes_sent, g.changes_done, g.delivered);
        result_add("fanout_per_s=%.0f change_p50_ms=%.2f change_p99_ms=%.2f elapsed_s=%.3f",
                   wall > 0 ? g.delivered / wall : 0.0, lat_pct_ms(&g.lat, 50, &g.lat_sorted),
                   lat_pct_ms(&g.lat, 99, &g.lat_sorted), wall);
        result_cpu(wall);
        result_end(!stalled && g.changes_done > 0 && g.expected == opt.contacts ? 0 : 1);
    }
}

/* ---- scenario: offline store and drain ---- */

static void offline_on_stanza(struct conn *c, const char *s, size_t n)
{
    if (c->role == R_SENDER) {
        if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "barrier")) {
            if (!c->flag) {
                c->flag = true;
                g.senders_done++;
            }
        } else if (stanza_is(s, n, "message") && attr_eq(s, n, "type", "error")) {
            g.errors++;
            note_error("offline message refused: %.*s", (int)(n > 300 ? 300 : n), s);
        }
        return;
    }
    if (!stanza_is(s, n, "message")) {
        return;
    }
    g.last_progress = turn_now;
    const char *t;
    size_t tn;
    if (c->role == R_RECEIVER && child_text(s, n, "body", &t, &tn) && tn > strlen(g.run_id) &&
        memcmp(t, g.run_id, strlen(g.run_id)) == 0) {
        g.delivered++;
    }
}

static void offline_tick(void)
{
    int base_r = opt.first + opt.senders;
    if (g.phase == PH_PREDRAIN) {
        /* Old messages from an interrupted run would skew the count: drain them first. */
        if (g.ready + g.failed < g.nq || secs(g.last_progress, turn_now) < 1.0) {
            if (secs(g.phase_at, turn_now) < 30) {
                return;
            }
        }
        for (int i = 0; i < opt.recipients; i++) {
            if (g.a[i]) {
                conn_finish(g.a[i], true);
                g.a[i] = NULL;
            }
        }
        set_phase(PH_PREWAIT);
        return;
    }
    if (g.phase == PH_PREWAIT) {
        if (secs(g.phase_at, turn_now) < 1.0) {
            return;
        }
        free(g.a);
        g.a = xmalloc((size_t)opt.senders * sizeof(*g.a));
        memset(g.a, 0, (size_t)opt.senders * sizeof(*g.a));
        g.ready = g.failed = 0;
        queue_sessions(opt.senders, opt.first, 1, R_SENDER);
        set_phase(PH_LOGIN);
        return;
    }
    if (g.phase == PH_LOGIN) {
        if (g.ready + g.failed < opt.senders || !queue_empty()) {
            return;
        }
        set_phase(PH_STORE);
        measure_start();
        for (int k = 0; k < opt.messages; k++) {
            struct conn *s = g.a[k % opt.senders];
            char name[256];
            if (s == NULL || s->st != CS_READY) {
                continue;
            }
            user_name(base_r + k % opt.recipients, name, sizeof(name));
            conn_sendf(s, "<message to='%s@%s' type='chat' id='o%d'><body>%s %d</body></message>",
                       name, opt.domain, k, g.run_id, k);
            g.sent++;
        }
        for (int i = 0; i < opt.senders; i++) {
            if (g.a[i] && g.a[i]->st == CS_READY) {
                conn_sendf(g.a[i],
                           "<iq type='get' id='barrier' to='%s'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>",
                           opt.domain);
            }
        }
        return;
    }
    if (g.phase == PH_STORE) {
        int live = 0;
        for (int i = 0; i < opt.senders; i++) {
            live += g.a[i] != NULL && !g.a[i]->closing;
        }
        if (g.senders_done < live && secs(g.phase_at, turn_now) < 120) {
            return;
        }
        measure_stop();
        g.store_s = secs(g.t0, g.t1);
        g.store_cpu = g.cpu0 >= 0 && g.cpu1 >= 0 ? g.cpu1 - g.cpu0 : -1;
        for (int i = 0; i < opt.senders; i++) {
            if (g.a[i]) {
                conn_finish(g.a[i], true);
                g.a[i] = NULL;
            }
        }
        g.ready = g.failed = 0;
        set_phase(PH_DELIVER);
        measure_start();
        queue_sessions(opt.recipients, base_r, 1, R_RECEIVER);
        return;
    }
    if (g.phase == PH_DELIVER) {
        uint64_t want = g.sent - g.errors;
        if (g.delivered < want && secs(g.last_progress, turn_now) < 15 &&
            secs(g.phase_at, turn_now) < 300) {
            return;
        }
        measure_stop();
        double deliver_s = secs(g.t0, g.t1);
        result_begin();
        result_add("messages=%d senders=%d recipients=%d stored=%" PRIu64 " refused=%" PRIu64,
                   opt.messages, opt.senders, opt.recipients, want, g.errors);
        result_add("store_s=%.3f stored_per_s=%.0f delivered=%" PRIu64
                   " deliver_s=%.3f delivered_per_s=%.0f",
                   g.store_s, g.store_s > 0 ? want / g.store_s : 0.0, g.delivered, deliver_s,
                   deliver_s > 0 ? g.delivered / deliver_s : 0.0);
        if (g.store_cpu >= 0) {
            result_add("srv_cpu_store_s=%.2f", g.store_cpu);
        }
        result_cpu(deliver_s);
        result_end(g.delivered == want && want > 0 ? 0 : 1);
    }
}

/* ---- scenario: message archive (XEP-0313) write rate and query latency ----
 * The first account sends --messages M to the second (online, so each message is
 * archived twice: sent and received) and pings when done -> archived records/s. Then
 * the second asks --queries Q pages of 50 from its archive, one at a time, each from
 * a random start time inside the burst (a binary search, not a scan from the
 * oldest), every other one filtered by the sender -> query latency p50/p99/max. */

static struct {
    uint64_t w0_us, w1_us; /* wall clock around the burst (query start times) */
    int next;              /* queries sent */
    uint64_t sent_at;
    uint64_t results;      /* <result/> messages received */
    char id[32];           /* the query in flight */
    int ping_sent, receiver_ready;
    char sender_bare[512];
} mam;

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static void mam_query(struct conn *c)
{
    uint64_t span = mam.w1_us > mam.w0_us ? mam.w1_us - mam.w0_us : 1;
    uint64_t at = mam.w0_us + (uint64_t)rand() % span;
    time_t secs_ = (time_t)(at / 1000000u);
    struct tm tm;
    char stamp[64], with[700] = "";
    gmtime_r(&secs_, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(at % 1000000u));
    if (mam.next % 2) {
        snprintf(with, sizeof(with), "<field var='with'><value>%s</value></field>",
                 mam.sender_bare);
    }
    snprintf(mam.id, sizeof(mam.id), "mq%d", mam.next++);
    mam.sent_at = turn_now;
    conn_sendf(c,
               "<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>"
               "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
               "<value>urn:xmpp:mam:2</value></field><field var='start'><value>%s</value>"
               "</field>%s</x><set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set>"
               "</query></iq>",
               mam.id, mam.id, stamp, with);
}

static void mam_on_stanza(struct conn *c, const char *s, size_t n)
{
    if (c->role == R_SENDER) {
        if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "barrier")) {
            g.senders_done = 1;
        } else if (stanza_is(s, n, "message") && attr_eq(s, n, "type", "error")) {
            g.errors++;
            note_error("message refused: %.*s", (int)(n > 300 ? 300 : n), s);
        }
        return;
    }
    g.last_progress = turn_now;
    const char *t;
    size_t tn;
    if (stanza_is(s, n, "message")) {
        if (memmem(s, n, "urn:xmpp:mam:2", 14) != NULL) {
            mam.results++;
        } else if (child_text(s, n, "body", &t, &tn) && tn > strlen(g.run_id) &&
                   memcmp(t, g.run_id, strlen(g.run_id)) == 0) {
            g.delivered++;
        }
        return;
    }
    if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "rready")) {
        mam.receiver_ready = 1;
        return;
    }
    if (!stanza_is(s, n, "iq") || !mam.id[0] || !attr_eq(s, n, "id", mam.id)) {
        return;
    }
    mam.id[0] = '\0';
    if (!attr_eq(s, n, "type", "result")) {
        g.errors++;
        note_error("archive query failed: %.*s", (int)(n > 300 ? 300 : n), s);
    }
    lat_add(&g.lat, turn_now - mam.sent_at);
    if (mam.next < opt.queries && g.phase == PH_RUN) {
        mam_query(c);
    }
}

static void mam_tick(void)
{
    struct conn *a = g.a[0], *b = g.b[0];
    if (g.phase == PH_LOGIN) {
        if (g.ready + g.failed < 2 || !queue_empty()) {
            return;
        }
        if (a == NULL || b == NULL || a->st != CS_READY || b->st != CS_READY) {
            result_begin();
            result_add("error=login");
            result_end(1);
            return;
        }
        /* The receiver's initial presence must be handled before the burst, or
         * its first messages go to offline storage (two streams, no order). */
        if (!mam.receiver_ready) {
            if (!mam.ping_sent) {
                mam.ping_sent = 1;
                conn_sendf(b, "<iq type='get' id='rready' to='%s'><ping xmlns='urn:xmpp:ping'/>"
                              "</iq>", opt.domain);
            }
            return;
        }
        snprintf(mam.sender_bare, sizeof(mam.sender_bare), "%.*s", (int)strcspn(a->jid, "/"),
                 a->jid);
        char to[512];
        snprintf(to, sizeof(to), "%.*s", (int)strcspn(b->jid, "/"), b->jid);
        set_phase(PH_STORE);
        mam.w0_us = wall_us();
        measure_start();
        for (int k = 0; k < opt.messages; k++) {
            conn_sendf(a, "<message to='%s' type='chat' id='m%d'><body>%s %d</body></message>",
                       to, k, g.run_id, k);
            g.sent++;
        }
        conn_sendf(a, "<iq type='get' id='barrier' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
                   opt.domain);
        return;
    }
    if (g.phase == PH_STORE) {
        if ((!g.senders_done || g.delivered + g.errors < g.sent) &&
            secs(g.last_progress, turn_now) < 30) {
            return;
        }
        measure_stop();
        mam.w1_us = wall_us();
        g.store_s = secs(g.t0, g.t1);
        g.store_cpu = g.cpu0 >= 0 && g.cpu1 >= 0 ? g.cpu1 - g.cpu0 : -1;
        set_phase(PH_RUN);
        measure_start();
        if (opt.queries > 0) {
            mam_query(b);
        }
        return;
    }
    if (g.phase == PH_RUN) {
        if (mam.next < opt.queries || mam.id[0]) {
            if (secs(g.last_progress, turn_now) < 30) {
                return;
            }
        }
        measure_stop();
        double wall = secs(g.t0, g.t1);
        result_begin();
        result_add("messages=%d delivered=%" PRIu64 " store_s=%.3f archived_per_s=%.0f",
                   opt.messages, g.delivered, g.store_s,
                   g.store_s > 0 ? 2.0 * (double)g.delivered / g.store_s : 0.0);
        if (g.store_cpu >= 0) {
            result_add("srv_cpu_store_s=%.2f", g.store_cpu);
        }
        result_add("queries=%d results=%" PRIu64 " query_p50_ms=%.2f query_p99_ms=%.2f "
                   "query_max_ms=%.2f errors=%" PRIu64,
                   mam.next, mam.results, lat_pct_ms(&g.lat, 50, &g.lat_sorted),
                   lat_pct_ms(&g.lat, 99, &g.lat_sorted), g.lat.max_us / 1000.0, g.errors);
        result_cpu(wall);
        result_end(g.errors == 0 && g.delivered == (uint64_t)opt.messages &&
                           mam.next == opt.queries && !mam.id[0]
                       ? 0
                       : 1);
    }
}

/* ---- scenario dispatch ---- */

static void scenario_on_ready(struct conn *c)
{
    g.ready++;
    g.last_progress = turn_now;
    switch (opt.scenario) {
    case SC_LOGIN:
        if (c->role != R_WARM) {
            lat_add(&g.login_lat, turn_now - c->t_start);
        }
        conn_finish(c, false);
        return;
    case SC_HOLD:
        buf_shrink_if_empty(&c->in);
        return;
    case SC_PRESENCE:
        if (c->role == R_STAR) {
            snprintf(g.star_bare, sizeof(g.star_bare), "%.*s", (int)strcspn(c->jid, "/"), c->jid);
        } else if (c->role == R_CONTACT) {
            conn_sendf(c, "<presence to='%s' type='subscribe'/>", g.star_bare);
        }
        return;
    default:
        return;
    }
}

static void scenario_on_stanza(struct conn *c, const char *s, size_t n)
{
    switch (opt.scenario) {
    case SC_MSG:
        msg_on_stanza(c, s, n);
        return;
    case SC_PRESENCE:
        presence_on_stanza(c, s, n);
        return;
    case SC_MAM:
        mam_on_stanza(c, s, n);
        return;
    case SC_OFFLINE:
        if (c->role == R_PRE) {
            if (stanza_is(s, n, "message")) {
                g.last_progress = turn_now;
            }
            return;
        }
        offline_on_stanza(c, s, n);
        return;
    default:
        return;
    }
}

static void scenario_on_close(struct conn *c, bool was_ready)
{
    if (!was_ready) {
        if (c->role == R_REGISTER && c->flag) {
            g.ready++;
        } else {
            g.failed++;
        }
    } else if (!c->finishing && g.phase != PH_DONE) {
        g.closed_ready++;
        note_error("server closed a ready session (account %d)", c->user);
    }
    if (c->slot >= 0) {
        if (g.a && (c->role == R_SENDER || c->role == R_CONTACT || c->role == R_PRE) &&
            g.a[c->slot] == c) {
            g.a[c->slot] = NULL;
        }
        if (g.b && c->role == R_RECEIVER && g.b[c->slot] == c) {
            g.b[c->slot] = NULL;
        }
    }
    if (g.star == c) {
        g.star = NULL;
    }
}

static void register_tick(void)
{
    if (g.ready + g.failed < g.nq) {
        return;
    }
    measure_stop();
    double wall = secs(g.t0, g.t1);
    result_begin();
    result_add("accounts=%d created=%lu existed=%lu failed=%d elapsed_s=%.2f", g.nq, reg_created,
               reg_existed, g.failed, wall);
    result_cpu(wall);
    result_end(g.failed == 0 ? 0 : 1);
}

static void scenario_start(void)
{
    g.rss0 = proc_rss_kb(opt.pid);
    g.cpu0 = g.cpu1 = -1;
    snprintf(g.run_id, sizeof(g.run_id), "r%08lx", (unsigned long)(now_ns() ^ (uint64_t)getpid()));
    switch (opt.scenario) {
    case SC_LOGIN:
        if (opt.warmup == 1 || (opt.warmup == -1 && opt.mech == MECH_SCRAM_SHA1)) {
            login_queue(R_WARM);
            set_phase(PH_WARMUP);
        } else {
            login_queue(R_PLAIN);
            set_phase(PH_LOGIN);
            measure_start();
        }
        return;
    case SC_HOLD:
        queue_sessions(opt.sessions, opt.first, 1, R_PLAIN);
        set_phase(PH_LOGIN);
        measure_start();
        return;
    case SC_REGISTER:
        queue_sessions(opt.sessions, opt.first, 1, R_REGISTER);
        set_phase(PH_LOGIN);
        measure_start();
        return;
    case SC_MSG:
        g.a = xmalloc((size_t)opt.pairs * sizeof(*g.a));
        g.b = xmalloc((size_t)opt.pairs * sizeof(*g.b));
        memset(g.a, 0, (size_t)opt.pairs * sizeof(*g.a));
        memset(g.b, 0, (size_t)opt.pairs * sizeof(*g.b));
        g.q = xmalloc((size_t)opt.pairs * 2 * sizeof(*g.q));
        for (int i = 0; i < opt.pairs; i++) {
            g.q[g.nq++] = (struct pending){opt.first + 2 * i, R_SENDER, i};
            g.q[g.nq++] = (struct pending){opt.first + 2 * i + 1, R_RECEIVER, i};
        }
        set_phase(PH_LOGIN);
        return;
    case SC_PRESENCE:
        g.a = xmalloc((size_t)opt.contacts * sizeof(*g.a));
        memset(g.a, 0, (size_t)opt.contacts * sizeof(*g.a));
        set_phase(PH_LOGIN);
        return;
    case SC_MAM:
        g.a = xmalloc(sizeof(*g.a));
        g.b = xmalloc(sizeof(*g.b));
        g.a[0] = g.b[0] = NULL;
        queue_sessions(1, opt.first, 1, R_SENDER);
        queue_sessions(1, opt.first + 1, 1, R_RECEIVER);
        set_phase(PH_LOGIN);
        return;
    case SC_OFFLINE:
        g.a = xmalloc((size_t)opt.recipients * sizeof(*g.a));
        memset(g.a, 0, (size_t)opt.recipients * sizeof(*g.a));
        queue_sessions(opt.recipients, opt.first + opt.senders, 1, R_PRE);
        set_phase(PH_PREDRAIN);
        return;
    case SC_COLDSTART:
        return;
    }
}

/* coldstart: exec the server, time until its port accepts a TCP connection, leave it
 * running and print its pid. The child gets its own session so that a terminal's ^C
 * reaches the caller, which stops the server by pid. */
static int coldstart(char **cmd)
{
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) {
        die("--host must be an IPv4 address: %s", opt.host);
    }
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&dst, sizeof(dst)) == 0) {
        die("something already listens on %s:%d", opt.host, opt.port);
    }
    if (probe >= 0) {
        close(probe);
    }
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setsid();
        int fd = open(opt.server_log ? opt.server_log : "/dev/null",
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nul >= 0) {
            dup2(nul, 0);
        }
        execvp(cmd[0], cmd);
        fprintf(stderr, "xmpp-bench: exec %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            printf("RESULT scenario=coldstart server=%s port=%d pid=%d status=fail exited=%d\n",
                   opt.label ? opt.label : cmd[0], opt.port, (int)pid,
                   WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            return 1;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            die("socket: %s", strerror(errno));
        }
        int r = connect(fd, (struct sockaddr *)&dst, sizeof(dst));
        close(fd);
        uint64_t t = now_ns();
        if (r == 0) {
            printf("RESULT scenario=coldstart server=%s port=%d pid=%d start_ms=%.1f status=ok\n",
                   opt.label ? opt.label : cmd[0], opt.port, (int)pid, (t - t0) / 1e6);
            return 0;
        }
        if (secs(t0, t) > opt.timeout) {
            kill(pid, SIGTERM);
            printf("RESULT scenario=coldstart server=%s port=%d pid=%d status=timeout\n",
                   opt.label ? opt.label : cmd[0], opt.port, (int)pid);
            return 1;
        }
        struct timespec ts = {0, 500000}; /* 0.5 ms between attempts */
        nanosleep(&ts, NULL);
    }
}

static void scenario_tick(void)
{
    if (opt.scenario == SC_PRESENCE && g.phase == PH_LOGIN && g.star == NULL && g.failed == 0) {
        g.star = conn_new(opt.first, R_STAR, -1);
    }
    start_sessions();
    switch (opt.scenario) {
    case SC_LOGIN:
        login_tick();
        return;
    case SC_HOLD:
        hold_tick();
        return;
    case SC_MSG:
        msg_tick();
        return;
    case SC_PRESENCE:
        presence_tick();
        return;
    case SC_OFFLINE:
        offline_tick();
        return;
    case SC_MAM:
        mam_tick();
        return;
    case SC_REGISTER:
        register_tick();
        return;
    case SC_COLDSTART:
        return;
    }
}

/* ---- main loop ---- */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* Sessions that take too long to log in count as failed (1-second tick). */
static void housekeeping(void)
{
    uint64_t limit = (uint64_t)BENCH_LOGIN_DEADLINE_S * 1000000000u;
    for (int fd = 0; fd < conns_cap; fd++) {
        struct conn *c = conns[fd];
        if (c && !c->closing && c->st != CS_READY && turn_now - c->t_start > limit) {
            conn_close(c, "login timed out");
        }
    }
}

static void run(void)
{
    struct epoll_event evs[512];
    uint64_t start = now_ns(), last_hk = start;
    turn_now = start;
    scenario_start();
    while (g.phase != PH_DONE) {
        int n = epoll_wait(epfd, evs, 512, 5);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait: %s", strerror(errno));
        }
        turn_now = now_ns();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            struct conn *c = fd < conns_cap ? conns[fd] : NULL;
            if (c != NULL && !c->closing) {
                on_event(c, evs[i].events);
            }
        }
        scenario_tick();
        if (turn_now - last_hk > 1000000000u) {
            last_hk = turn_now;
            housekeeping();
            if (opt.verbose) {
                fprintf(stderr,
                        "xmpp-bench: t=%.0fs conns=%d logging_in=%d ready=%d failed=%d "
                        "delivered=%" PRIu64 "\n",
                        secs(start, turn_now), nconns, nlogging, g.ready, g.failed, g.delivered);
            }
        }
        /* flush once per turn, before sleeping */
        for (int i = 0; i < ndirty; i++) {
            dirty_list[i]->dirty = false;
            conn_flush(dirty_list[i]);
        }
        ndirty = 0;
        for (int i = 0; i < ndead; i++) {
            conn_free(dead_list[i]);
        }
        ndead = 0;
        if (got_signal || secs(start, turn_now) > opt.timeout) {
            if (g.phase == PH_HOLD) {
                break; /* the result is already printed */
            }
            result_begin();
            result_add("phase=%d ready=%d failed=%d", (int)g.phase, g.ready, g.failed);
            result_cpu(secs(start, turn_now));
            printf("%.*s status=%s\n", (int)result.len, result.p,
                   got_signal ? "interrupted" : "timeout");
            g.exit_code = 1;
            break;
        }
    }
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: xmpp-bench SCENARIO [options]\n"
        "scenarios:\n"
        "  login     -n N sessions log in (connect, SASL, bind, presence) and leave, at most\n"
        "            -c C at a time -> logins/s; SCRAM warms a client-side key cache first\n"
        "  hold      -n N sessions log in and stay idle -> server RSS before/after (--pid)\n"
        "  msg       --pairs P senders each keep --window W messages in flight to a partner\n"
        "            for --duration D s -> messages/s, latency p50/p99/max\n"
        "  presence  one account (the first) with --contacts R subscribed contacts keeps\n"
        "            --window W presence changes in flight for --duration D s (or up to\n"
        "            --changes K) -> fan-out deliveries/s (sets up the subscriptions\n"
        "            itself; the server's roster limit must allow R contacts)\n"
        "  offline   --messages M from --senders S to --recipients R offline accounts,\n"
        "            then the recipients log in -> stored/s and delivered/s\n"
        "  mam       the first account sends --messages M to the second (both online):\n"
        "            archived records/s; then --queries Q archive pages of 50 from random\n"
        "            start times (every other one with a 'with' filter): latency p50/p99\n"
        "  register  -n N accounts by in-band registration (XEP-0077); existing ones count\n"
        "            as done (Prosody, ejabberd; xmppd with allow_registration)\n"
        "  coldstart --port P [--server-log FILE] -- CMD ARGS...  start a server, print\n"
        "            its pid and the time from exec to accepting TCP on P; it is left\n"
        "            running, its output goes to FILE (/dev/null)\n"
        "options:\n"
        "  --host ADDR        server IPv4 address (127.0.0.1)\n"
        "  --port N           client port (5222)\n"
        "  --domain D         XMPP domain (localhost)\n"
        "  --users PATTERN    account names, one %%d (user%%d)\n"
        "  --first N          number of the first account (1)\n"
        "  --password PW      common password (benchpass)\n"
        "  --starttls         negotiate TLS (no certificate check)\n"
        "  --mech M           PLAIN or SCRAM-SHA-1 (PLAIN)\n"
        "  --sources N        spread connections over 127.0.0.1..127.0.0.N (1)\n"
        "  --pid PID          server process: RSS and CPU from /proc\n"
        "  --label NAME       server name in the RESULT line\n"
        "  -n, --sessions N   sessions for login/hold/register (1000)\n"
        "  --user-count U     login: cycle over U accounts (N)\n"
        "  -c, --concurrency C  logins in progress at once (100)\n"
        "  --pairs P --window W --duration D   msg (100, 10, 10)\n"
        "  --bare             msg: send to the partner's bare JID, not its full JID\n"
        "  --contacts R --changes K            presence (100, 0 = no cap; W and D apply)\n"
        "  --messages M --senders S --recipients R   offline (10000, 10, 50)\n"
        "  --queries Q        mam: archive queries after the writes (200)\n"
        "  --settle S         hold: seconds before reading RSS (2)\n"
        "  --hold-seconds H   hold: keep the sessions H more seconds after the result (0)\n"
        "  --no-presence      do not send initial presence after binding\n"
        "  --warmup/--no-warmup  login: log every account in once, unmeasured, first\n"
        "  --timeout S        give up after S seconds (600)\n"
        "  -v, --verbose      progress on stderr every second\n"
        "The last line on stdout is RESULT key=value ...; exit 0 = the run did what it should.\n");
}

static int parse_int(const char *s, const char *what, int lo, int hi)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        die("%s: expected an integer from %d to %d, got '%s'", what, lo, hi, s);
    }
    return (int)v;
}

static double parse_double(const char *s, const char *what)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < 0) {
        die("%s: expected a non-negative number, got '%s'", what, s);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct {
        const char *name;
        enum scenario sc;
    } scs[] = {
        {"login", SC_LOGIN},         {"hold", SC_HOLD},       {"msg", SC_MSG},
        {"presence", SC_PRESENCE},   {"offline", SC_OFFLINE}, {"register", SC_REGISTER},
        {"coldstart", SC_COLDSTART}, {"mam", SC_MAM},
    };
    opt.scenario_name = NULL;
    for (size_t i = 0; i < sizeof(scs) / sizeof(scs[0]); i++) {
        if (strcmp(argv[1], scs[i].name) == 0) {
            opt.scenario = scs[i].sc;
            opt.scenario_name = scs[i].name;
        }
    }
    if (opt.scenario_name == NULL) {
        die("unknown scenario '%s' (login, hold, msg, presence, offline, register, mam)",
            argv[1]);
    }
    enum {
        O_HOST = 256,
        O_PORT,
        O_DOMAIN,
        O_USERS,
        O_FIRST,
        O_PASSWORD,
        O_STARTTLS,
        O_MECH,
        O_SOURCES,
        O_PID,
        O_LABEL,
        O_USERCOUNT,
        O_PAIRS,
        O_WINDOW,
        O_DURATION,
        O_CONTACTS,
        O_CHANGES,
        O_MESSAGES,
        O_SENDERS,
        O_RECIPIENTS,
        O_SETTLE,
        O_HOLD,
        O_NOPRES,
        O_BARE,
        O_WARMUP,
        O_NOWARMUP,
        O_TIMEOUT,
        O_SERVERLOG,
        O_QUERIES,
    };
    static const struct option lo[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"domain", required_argument, NULL, O_DOMAIN},
        {"users", required_argument, NULL, O_USERS},
        {"first", required_argument, NULL, O_FIRST},
        {"password", required_argument, NULL, O_PASSWORD},
        {"starttls", no_argument, NULL, O_STARTTLS},
        {"mech", required_argument, NULL, O_MECH},
        {"sources", required_argument, NULL, O_SOURCES},
        {"pid", required_argument, NULL, O_PID},
        {"label", required_argument, NULL, O_LABEL},
        {"sessions", required_argument, NULL, 'n'},
        {"user-count", required_argument, NULL, O_USERCOUNT},
        {"concurrency", required_argument, NULL, 'c'},
        {"pairs", required_argument, NULL, O_PAIRS},
        {"window", required_argument, NULL, O_WINDOW},
        {"duration", required_argument, NULL, O_DURATION},
        {"contacts", required_argument, NULL, O_CONTACTS},
        {"changes", required_argument, NULL, O_CHANGES},
        {"messages", required_argument, NULL, O_MESSAGES},
        {"senders", required_argument, NULL, O_SENDERS},
        {"recipients", required_argument, NULL, O_RECIPIENTS},
        {"settle", required_argument, NULL, O_SETTLE},
        {"hold-seconds", required_argument, NULL, O_HOLD},
        {"no-presence", no_argument, NULL, O_NOPRES},
        {"bare", no_argument, NULL, O_BARE},
        {"warmup", no_argument, NULL, O_WARMUP},
        {"no-warmup", no_argument, NULL, O_NOWARMUP},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"server-log", required_argument, NULL, O_SERVERLOG},
        {"queries", required_argument, NULL, O_QUERIES},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "+n:c:vh", lo, NULL)) != -1) {
        switch (ch) {
        case O_HOST:
            opt.host = optarg;
            break;
        case O_PORT:
            opt.port = parse_int(optarg, "--port", 1, 65535);
            break;
        case O_DOMAIN:
            opt.domain = optarg;
            break;
        case O_USERS:
            opt.users = optarg;
            break;
        case O_FIRST:
            opt.first = parse_int(optarg, "--first", 0, 100000000);
            break;
        case O_PASSWORD:
            opt.password = optarg;
            break;
        case O_STARTTLS:
            opt.starttls = true;
            break;
        case O_MECH:
            if (strcasecmp(optarg, "PLAIN") == 0) {
                opt.mech = MECH_PLAIN;
            } else if (strcasecmp(optarg, "SCRAM-SHA-1") == 0) {
                opt.mech = MECH_SCRAM_SHA1;
            } else {
                die("--mech: PLAIN or SCRAM-SHA-1");
            }
            break;
        case O_SOURCES:
            opt.sources = parse_int(optarg, "--sources", 1, 254);
            break;
        case O_PID:
            opt.pid = parse_int(optarg, "--pid", 1, 1 << 30);
            break;
        case O_LABEL:
            opt.label = optarg;
            break;
        case 'n':
            opt.sessions = parse_int(optarg, "--sessions", 1, 10000000);
            break;
        case O_USERCOUNT:
            opt.user_count = parse_int(optarg, "--user-count", 1, 10000000);
            break;
        case 'c':
            opt.concurrency = parse_int(optarg, "--concurrency", 1, 1000000);
            break;
        case O_PAIRS:
            opt.pairs = parse_int(optarg, "--pairs", 1, 1000000);
            break;
        case O_WINDOW:
            opt.window = parse_int(optarg, "--window", 1, 100000);
            break;
        case O_DURATION:
            opt.duration = parse_double(optarg, "--duration");
            break;
        case O_CONTACTS:
            opt.contacts = parse_int(optarg, "--contacts", 1, 1000000);
            break;
        case O_CHANGES:
            opt.changes = parse_int(optarg, "--changes", 0, 10000000);
            break;
        case O_QUERIES:
            opt.queries = parse_int(optarg, "--queries", 0, 10000000);
            break;
        case O_MESSAGES:
            opt.messages = parse_int(optarg, "--messages", 1, 100000000);
            break;
        case O_SENDERS:
            opt.senders = parse_int(optarg, "--senders", 1, 100000);
            break;
        case O_RECIPIENTS:
            opt.recipients = parse_int(optarg, "--recipients", 1, 1000000);
            break;
        case O_SETTLE:
            opt.settle = parse_double(optarg, "--settle");
            break;
        case O_HOLD:
            opt.hold_seconds = parse_double(optarg, "--hold-seconds");
            break;
        case O_NOPRES:
            opt.presence = false;
            break;
        case O_BARE:
            opt.bare = true;
            break;
        case O_WARMUP:
            opt.warmup = 1;
            break;
        case O_NOWARMUP:
            opt.warmup = 0;
            break;
        case O_TIMEOUT:
            opt.timeout = parse_double(optarg, "--timeout");
            break;
        case O_SERVERLOG:
            opt.server_log = optarg;
            break;
        case 'v':
            opt.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (opt.scenario == SC_COLDSTART) {
        if (optind >= argc) {
            die("coldstart needs a command: xmpp-bench coldstart --port P -- CMD ARGS...");
        }
        if (opt.timeout == 600) {
            opt.timeout = 60;
        }
        return coldstart(argv + optind);
    }
    if (optind != argc) {
        die("unexpected argument '%s'", argv[optind]);
    }
    const char *pct = strstr(opt.users, "%d");
    if (pct == NULL || strchr(pct + 2, '%') != NULL || strchr(opt.users, '%') != pct) {
        die("--users needs exactly one %%d and no other %%");
    }
    if (strlen(opt.password) > 200 || strpbrk(opt.password, "<>&'\"") != NULL) {
        die("--password: at most 200 characters, none of <>&'\"");
    }
    /* Room for every session we may open at once. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    crypto_init();
    if (opt.starttls) {
        tls_init();
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        die("epoll_create1: %s", strerror(errno));
    }
    run();
    return g.exit_code;
}
