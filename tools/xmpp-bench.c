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
 * Besides logins, messages, presence and offline storage it measures the features modern
 * clients depend on (issue 13): message archive writes and paged queries (mam-fill,
 * mam-query: XEP-0313 urn:xmpp:mam:2 with XEP-0059 RSM) and stream management (sm-acks:
 * XEP-0198 urn:xmpp:sm:3, acks in flight and resumption), and group chat fan-out (issue 15:
 * muc-fanout, XEP-0045 messages to a room of N occupants, and memory per idle occupant).
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
#define BENCH_MAX_PENDING_R 1000000u /* unanswered <r/>s timed per session (12 bytes each) */

/* ---- options ---- */

enum scenario {
    SC_LOGIN,
    SC_HOLD,
    SC_MSG,
    SC_PRESENCE,
    SC_OFFLINE,
    SC_REGISTER,
    SC_COLDSTART,
    SC_MAM_FILL,
    SC_MAM_QUERY,
    SC_SM_ACKS,
    SC_MUC_FANOUT
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
    double settle, hold_seconds, timeout;
    bool presence; /* send initial presence after binding */
    bool bare;     /* msg: address the partner's bare JID (the server picks the resource) */
    int warmup;    /* -1 = auto (SCRAM: yes) */
    bool verbose;
    const char *server_log; /* coldstart: the server's stdout and stderr */
    int page;               /* mam-query: RSM <max/> of each page */
    int queries;            /* mam-query: queries of each kind */
    int ack_every;          /* sm-acks: <r/> after every K messages */
    int resumes;            /* sm-acks: sessions cut and resumed after the run */
    bool sm;                /* enable XEP-0198 stream management after binding */
    int occupants;          /* muc-fanout: sessions that join the room */
    int idle_occupants;     /* muc-fanout: join K occupants, measure memory, no messages */
    const char *room;       /* muc-fanout: room name or full room JID */
    bool senders_set, messages_set, duration_set;
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
    .settle = 2,
    .timeout = 600,
    .presence = true,
    .warmup = -1,
    .page = 50,
    .queries = 100,
    .ack_every = 1,
    .resumes = 10,
    .occupants = 100,
    .room = "bench",
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
    CS_SM,         /* XEP-0198 <enable/> sent, waiting for <enabled/> */
    CS_RESUME,     /* XEP-0198 <resume/> sent instead of binding */
    CS_READY,      /* bound (and initial presence sent): the scenario owns it */
};

enum role {
    R_PLAIN,
    R_WARM,
    R_SENDER,
    R_RECEIVER,
    R_STAR,
    R_CONTACT,
    R_PRE,
    R_REGISTER,
    R_OWNER,  /* mam-query: the account whose archive is queried */
    R_RESUME, /* sm-acks: a new connection resuming a cut session */
    R_OCCUPANT, /* muc-fanout: joins the room; the first --senders ones also speak */
};

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
    /* XEP-0198 stream management */
    bool sm_offered, sm_out, sm_in; /* in features; counting sent; counting received */
    uint32_t h_out, h_in;           /* stanzas sent / received since <enable/> */
    int since_r;                    /* messages sent since our last <r/> */
    uint64_t *r_at;                 /* our unanswered <r/>s: when sent ... */
    uint32_t *r_h;                  /* ... and h_out at that moment (a FIFO) */
    size_t r_head, r_len, r_cap;
    char *sm_id;       /* resumption id from <enabled/> */
    uint64_t t_resume; /* when <resume/> was sent */
    int quota;         /* mam-fill: messages this sender sends */
    uint64_t retry_at; /* mam-fill: when to ask the archive again */
    bool mam_hit;      /* mam-fill: the archive's newest item is our last message */
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
static uint64_t run_started; /* messages stamped earlier are an earlier run's */

static void scenario_on_ready(struct conn *c);
static void scenario_on_stanza(struct conn *c, const char *s, size_t n);
static void scenario_on_close(struct conn *c, bool was_ready);
static void start_auth(struct conn *c);
static void sm_send_resume(struct conn *c);
static void sm_on_ack(struct conn *c, uint32_t h);
static void sm_request(struct conn *c);
static void sm_prepare_resume(struct conn *c, int slot);
static void sm_result_fields(void);

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
    free(c->r_at);
    free(c->r_h);
    free(c->sm_id);
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
    /* XEP-0198 §4: h counts stanzas (message, presence, iq), not nonzas like <r/> */
    if (c->sm_out && (strncmp(tmp, "<message", 8) == 0 || strncmp(tmp, "<presence", 9) == 0 ||
                      strncmp(tmp, "<iq", 3) == 0)) {
        c->h_out++;
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
    if (c->sm_in) { /* XEP-0198 §4: say what we got before closing, or it comes again */
        conn_sendf(c, "<a xmlns='urn:xmpp:sm:3' h='%" PRIu32 "'/>", c->h_in);
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

static void on_ready(struct conn *c)
{
    c->st = CS_READY;
    nlogging--;
    if (opt.presence && c->role != R_WARM) {
        conn_sendf(c, "<presence/>");
    }
    scenario_on_ready(c);
}

/* Bound: with --sm, enable stream management first (XEP-0198 §3: after binding), asking
 * for resumption as mobile clients do; initial presence follows <enabled/>. */
static void on_bound(struct conn *c)
{
    if (!opt.sm || c->role == R_WARM) {
        on_ready(c);
        return;
    }
    if (!c->sm_offered) {
        conn_close(c, "server offers no stream management (urn:xmpp:sm:3)");
        return;
    }
    conn_sendf(c, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    c->sm_out = true; /* our count starts with the first stanza after <enable/> */
    c->st = CS_SM;
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

/* XEP-0198 on a ready stream: answer the server's <r/>, hand its <a/> to the scenario,
 * count the stanzas received. True if it was a nonza (handled here). */
static bool sm_nonza(struct conn *c, const char *s, size_t n)
{
    if (stanza_is(s, n, "r")) {
        conn_sendf(c, "<a xmlns='urn:xmpp:sm:3' h='%" PRIu32 "'/>", c->h_in);
        return true;
    }
    if (stanza_is(s, n, "a")) {
        const char *h;
        size_t hn;
        if (stanza_attr(s, n, "h", &h, &hn)) {
            sm_on_ack(c, (uint32_t)strtoul(h, NULL, 10));
        }
        return true;
    }
    if (stanza_is(s, n, "message") || stanza_is(s, n, "presence") || stanza_is(s, n, "iq")) {
        c->h_in++; /* wraps at 2^32, as XEP-0198 §4 says */
    }
    return false;
}

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
            c->sm_offered = contains(s, n, "urn:xmpp:sm:3");
            if (c->role == R_RESUME) {
                sm_send_resume(c);
                return;
            }
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
    case CS_SM:
        if (stanza_is(s, n, "enabled")) {
            const char *id;
            size_t idn;
            if (stanza_attr(s, n, "id", &id, &idn)) {
                c->sm_id = xstrndup(id, idn);
            }
            c->sm_in = true; /* the server counts from <enabled/> on, and so do we */
            on_ready(c);
        } else if (stanza_is(s, n, "failed")) {
            note_error("enable: %.*s", (int)(n > 300 ? 300 : n), s);
            conn_close(c, "stream management refused");
        }
        return;
    case CS_RESUME:
        if (stanza_is(s, n, "resumed")) {
            c->sm_in = c->sm_out = true;
            c->st = CS_READY;
            nlogging--;
            scenario_on_ready(c); /* no presence: the resumed session keeps its own */
        } else if (stanza_is(s, n, "failed")) {
            note_error("resume: %.*s", (int)(n > 300 ? 300 : n), s);
            conn_close(c, "resumption refused");
        }
        return;
    case CS_READY:
        if (c->sm_in && sm_nonza(c, s, n)) {
            return;
        }
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
    PH_FINAL,  /* sm-acks: the last <r/> of each sender, checking the server's count */
    PH_CUT,    /* sm-acks: sessions cut, the server has not been told */
    PH_REPLAY, /* sm-acks: messages sent to the cut sessions, which resume */
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
        if (p->role == R_SENDER || p->role == R_CONTACT || p->role == R_PRE ||
            p->role == R_OCCUPANT) {
            if (g.a) {
                g.a[p->slot] = c;
            }
        } else if (p->role == R_RECEIVER && g.b) {
            g.b[p->slot] = c;
        } else if (p->role == R_RESUME) {
            sm_prepare_resume(c, p->slot);
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
    if (opt.sm && ++s->since_r >= opt.ack_every) {
        sm_request(s);
    }
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
    if (sent < run_started) {
        return; /* an earlier run's, stored or re-routed by the server */
    }
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

/* msg and sm-acks: log the pairs in, keep --window messages in flight per pair for
 * --duration s, then wait for the last ones. True once drained (or given up on). */
static bool pairs_tick(void)
{
    if (g.phase == PH_LOGIN) {
        if (g.ready + g.failed < g.nq) {
            return false;
        }
        set_phase(PH_SETTLE);
        return false;
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
        return false;
    }
    if (g.phase == PH_RUN && secs(g.t0, turn_now) >= opt.duration) {
        measure_stop();
        set_phase(PH_DRAIN);
        return false;
    }
    if (g.phase != PH_DRAIN) {
        return false;
    }
    bool drained = true;
    for (int i = 0; i < opt.pairs && drained; i++) {
        if (g.a[i] && g.a[i]->inflight > 0) {
            drained = false;
        }
    }
    return drained || secs(g.phase_at, turn_now) >= 5;
}

/* The message figures of msg and sm-acks. */
static void msg_result_fields(void)
{
    double wall = secs(g.t0, g.t1);
    uint64_t lost = g.sent > g.delivered ? g.sent - g.delivered : 0;
    result_add("to=%s pairs=%d window=%d duration_s=%.2f sent=%" PRIu64 " delivered=%" PRIu64
               " undelivered=%" PRIu64 " bounced=%" PRIu64,
               opt.bare ? "bare" : "full", g.na, opt.window, wall, g.sent, g.delivered, lost,
               g.errors);
    if (g.delivered > g.sent) { /* e.g. a server re-routing an earlier run's unacked stanzas */
        result_add("extra=%" PRIu64, g.delivered - g.sent);
    }
    result_add("msgs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f",
               wall > 0 ? g.delivered_in_window / wall : 0.0, lat_pct_ms(&g.lat, 50, &g.lat_sorted),
               lat_pct_ms(&g.lat, 99, &g.lat_sorted), g.lat.max_us / 1000.0);
    if (opt.pid > 0 && g.cpu0 >= 0 && g.cpu1 >= 0 && g.delivered_in_window > 0) {
        result_add("srv_cpu_s_per_100k=%.3f",
                   (g.cpu1 - g.cpu0) * 100000.0 / (double)g.delivered_in_window);
    }
}

static void msg_tick(void)
{
    if (!pairs_tick()) {
        return;
    }
    result_begin();
    msg_result_fields();
    if (opt.sm) {
        sm_result_fields();
    }
    result_cpu(secs(g.t0, g.t1));
    /* Success is functional (messages got through, none bounced), not a rate:
     * on a busy machine the first may arrive after the measured window. */
    result_end(g.delivered > 0 && g.errors == 0 && login_failures == 0 ? 0 : 1);
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

/* ---- MAM (XEP-0313 urn:xmpp:mam:2, paged with XEP-0059 RSM) ---- */

enum qkind { QK_FIRST, QK_LAST, QK_AFTER, QK_WITH, QK_WINDOW, QK_N, QK_PROBE_MID, QK_CONFIRM };
static const char *const qk_name[QK_N] = {"first", "last", "after", "with", "window"};

static struct {
    /* the query in flight (mam-query asks one at a time) */
    enum qkind kind;
    char qid[32];
    uint64_t sent_at;
    int items;
    char first_id[200], first_stamp[64], last_stamp[64];
    unsigned long seq;
    /* landmarks of the archive, from the probe queries */
    time_t t_first, t_last, t_mid;
    char mid_id[200];
    char partner[300];
    int probe, done;
    struct lat lat[QK_N];
    bool sorted[QK_N];
    uint64_t items_total;
    long count; /* RSM <count/> of the whole archive, -1 if the server gives none */
    unsigned long forged, with_mismatch, empty_pages, errors;
    /* mam-fill */
    int confirmed, gave_up;
    uint64_t t_confirmed, t_delivered;
} mam = {.count = -1};

/* One MAM query as clients send it (XEP-0313 §4): an optional data form (with, start,
 * end) and an RSM <set/> (max, and <before/>, <before>id</before> or <after>id</after>). */
static void mam_send_query(struct conn *c, const char *qid, const char *with, const char *start,
                           const char *end, int max, const char *rsm_extra)
{
    char form[1024] = "";
    if (with || start || end) {
        snprintf(form, sizeof(form),
                 "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                 "<value>urn:xmpp:mam:2</value></field>%s%s%s%s%s%s%s%s%s</x>",
                 with ? "<field var='with'><value>" : "", with ? with : "",
                 with ? "</value></field>" : "", start ? "<field var='start'><value>" : "",
                 start ? start : "", start ? "</value></field>" : "",
                 end ? "<field var='end'><value>" : "", end ? end : "",
                 end ? "</value></field>" : "");
    }
    conn_sendf(c,
               "<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s"
               "<set xmlns='http://jabber.org/protocol/rsm'><max>%d</max>%s</set></query></iq>",
               qid, qid, form, max, rsm_extra);
}

struct mam_item {
    const char *id, *stamp, *body, *inner;
    size_t idn, stampn, bodyn, innern;
};

/* Is this message a result of query `qid` (XEP-0313 §4.2)? Then fill `it`: the archive
 * id, the <delay/> stamp, the forwarded message and its body. A result must come from our
 * own account (no `from`, or our bare JID): anything else is a forgery and not counted. */
static bool mam_result(struct conn *c, const char *s, size_t n, const char *qid,
                       struct mam_item *it)
{
    if (!stanza_is(s, n, "message")) {
        return false;
    }
    const char *r = memmem(s, n, "<result", 7);
    if (r == NULL) {
        return false;
    }
    size_t rn = (size_t)(s + n - r);
    const char *v;
    size_t vn;
    if (!contains(r, rn, "urn:xmpp:mam:2") || !stanza_attr(r, rn, "queryid", &v, &vn) ||
        vn != strlen(qid) || memcmp(v, qid, vn) != 0) {
        return false;
    }
    size_t own = strcspn(c->jid, "/");
    if (stanza_attr(s, n, "from", &v, &vn) && (vn != own || memcmp(v, c->jid, own) != 0)) {
        mam.forged++;
        note_error("MAM result from another address: %.*s", (int)(n > 300 ? 300 : n), s);
        return false;
    }
    memset(it, 0, sizeof(*it));
    stanza_attr(r, rn, "id", &it->id, &it->idn);
    const char *d = memmem(r, rn, "<delay", 6);
    if (d != NULL) {
        stanza_attr(d, (size_t)(s + n - d), "stamp", &it->stamp, &it->stampn);
    }
    const char *fw = memmem(r, rn, "<forwarded", 10);
    const char *m = fw ? memmem(fw, (size_t)(s + n - fw), "<message", 8) : NULL;
    if (m != NULL) {
        it->inner = m;
        it->innern = (size_t)(s + n - m);
        child_text(m, it->innern, "body", &it->body, &it->bodyn);
    }
    return true;
}

/* XEP-0082 date-time (2026-12-04T05:50:01.123456Z) to seconds; -1 if it is not one. */
static time_t stamp_time(const char *s, size_t n)
{
    char tmp[64];
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1), s);
    if (sscanf(tmp, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static void stamp_fmt(time_t t, char *out, size_t outsz)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- scenario: mam-fill ---- */

/* Message j of sender `slot` goes to recipient (j * S + slot) mod R, so that each sender's
 * archive holds conversations with several partners (mam-query's with= needs them). */
static void fill_send(struct conn *s)
{
    int j = (int)s->sent;
    int r = (j * opt.senders + s->slot) % opt.recipients;
    char name[256];
    user_name(opt.first + opt.senders + r, name, sizeof(name));
    conn_sendf(s,
               "<message to='%s@%s' type='chat' id='f%d-%d'><body>%s %d %d t=%" PRIu64
               "</body></message>",
               name, opt.domain, s->slot, j, g.run_id, s->slot, j, now_ns());
    s->sent++;
    s->inflight++;
    g.sent++;
}

/* Ask the sender's own archive for its newest item: archived once it is our last message. */
static void fill_confirm(struct conn *s)
{
    char qid[32];
    snprintf(qid, sizeof(qid), "f%d", s->slot);
    s->mam_hit = false;
    s->retry_at = 0;
    mam_send_query(s, qid, NULL, NULL, NULL, 1, "<before/>");
}

static void fill_on_stanza(struct conn *c, const char *s, size_t n)
{
    char qid[32];
    snprintf(qid, sizeof(qid), "f%d", c->slot);
    if (c->role == R_SENDER) {
        struct mam_item it;
        if (mam_result(c, s, n, qid, &it)) {
            char want[64];
            int wn = snprintf(want, sizeof(want), "%s %d %d ", g.run_id, c->slot, c->quota - 1);
            c->mam_hit = it.bodyn > (size_t)wn && memcmp(it.body, want, (size_t)wn) == 0;
        } else if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", qid) && !c->flag) {
            if (attr_eq(s, n, "type", "error")) {
                mam.errors++;
                note_error("archive query refused: %.*s", (int)(n > 300 ? 300 : n), s);
                c->flag = true;
                mam.gave_up++;
            } else if (c->mam_hit) {
                c->flag = true;
                mam.confirmed++;
                mam.t_confirmed = turn_now;
                g.last_progress = turn_now;
            } else {
                c->retry_at = turn_now + 100000000u; /* not archived yet: ask again */
            }
        } else if (stanza_is(s, n, "message") && attr_eq(s, n, "type", "error")) {
            g.errors++;
            note_error("message bounced: %.*s", (int)(n > 300 ? 300 : n), s);
        }
        return;
    }
    const char *t;
    size_t tn, rl = strlen(g.run_id);
    if (!stanza_is(s, n, "message") || !child_text(s, n, "body", &t, &tn) || tn <= rl ||
        memcmp(t, g.run_id, rl) != 0) {
        return;
    }
    char *e = NULL;
    long slot = strtol(t + rl, &e, 10);
    const char *ts = memmem(t, tn, "t=", 2);
    if (slot < 0 || slot >= opt.senders || ts == NULL) {
        return;
    }
    uint64_t sent = strtoull(ts + 2, NULL, 10), now = now_ns();
    lat_add(&g.lat, now > sent ? now - sent : 0);
    g.delivered++;
    g.last_progress = turn_now;
    if (g.delivered == (uint64_t)opt.messages) {
        mam.t_delivered = turn_now;
    }
    struct conn *snd = g.a[slot];
    if (snd == NULL) {
        return;
    }
    snd->inflight--;
    if ((int)snd->sent < snd->quota) {
        fill_send(snd);
        if ((int)snd->sent == snd->quota) {
            fill_confirm(snd);
        }
    }
}

static void fill_start(void)
{
    set_phase(PH_RUN);
    measure_start();
    for (int i = 0; i < opt.senders; i++) {
        struct conn *s = g.a[i];
        if (s == NULL || s->st != CS_READY) {
            continue;
        }
        s->quota = opt.messages / opt.senders + (i < opt.messages % opt.senders);
        while ((int)s->sent < s->quota && s->inflight < opt.window) {
            fill_send(s);
        }
        if ((int)s->sent == s->quota) {
            fill_confirm(s);
        }
    }
}

static void fill_tick(void)
{
    if (g.phase == PH_LOGIN) {
        if (g.ready + g.failed >= g.nq) {
            set_phase(PH_SETTLE);
        }
        return;
    }
    if (g.phase == PH_SETTLE) {
        if (secs(g.phase_at, turn_now) >= 0.5) {
            fill_start();
        }
        return;
    }
    int live = 0;
    for (int i = 0; i < opt.senders; i++) {
        struct conn *s = g.a[i];
        if (s == NULL || s->closing) {
            continue;
        }
        live++;
        if (s->retry_at != 0 && turn_now >= s->retry_at) {
            fill_confirm(s);
        }
    }
    bool done = mam.confirmed + mam.gave_up >= live && g.delivered + g.errors >= g.sent;
    if (!done && secs(g.last_progress, turn_now) < 30) {
        return;
    }
    measure_stop();
    double wall = secs(g.t0, mam.t_confirmed), dwall = secs(g.t0, mam.t_delivered);
    result_begin();
    result_add("messages=%d senders=%d recipients=%d window=%d sent=%" PRIu64 " delivered=%" PRIu64
               " bounced=%" PRIu64,
               opt.messages, opt.senders, opt.recipients, opt.window, g.sent, g.delivered,
               g.errors);
    result_add("confirmed=%d/%d archived_s=%.3f archived_per_s=%.0f delivered_per_s=%.0f",
               mam.confirmed, opt.senders, wall,
               wall > 0 && mam.confirmed == opt.senders ? opt.messages / wall : 0.0,
               dwall > 0 ? g.delivered / dwall : 0.0);
    result_add("p50_ms=%.2f p99_ms=%.2f query_errors=%lu forged=%lu",
               lat_pct_ms(&g.lat, 50, &g.lat_sorted), lat_pct_ms(&g.lat, 99, &g.lat_sorted),
               mam.errors, mam.forged);
    if (opt.pid > 0 && g.cpu0 >= 0 && g.cpu1 >= 0 && g.delivered > 0) {
        result_add("srv_cpu_s_per_100k=%.3f", (g.cpu1 - g.cpu0) * 100000.0 / (double)g.delivered);
    }
    result_cpu(secs(g.t0, g.t1));
    result_end(mam.confirmed == opt.senders && g.delivered == (uint64_t)opt.messages &&
                       g.errors == 0 && mam.forged == 0
                   ? 0
                   : 1);
}

/* ---- scenario: mam-query ---- */

static void mq_result(void);

/* The next query: three probes find the archive's ends and middle, then --queries rounds
 * of the five kinds, one query in flight at a time so that each answer is a latency. */
static void mq_next(struct conn *c)
{
    char start[40], end[40], extra[256];
    if (g.phase == PH_SETUP && mam.probe == 3) {
        if (mam.t_first < 0 || mam.t_last < 0 || mam.mid_id[0] == '\0') {
            note_error("the archive's ends or middle were not found (empty archive? run mam-fill)");
            mq_result();
            return;
        }
        set_phase(PH_RUN);
        measure_start();
    }
    if (g.phase == PH_RUN && mam.done >= QK_N * opt.queries) {
        measure_stop();
        mq_result();
        return;
    }
    snprintf(mam.qid, sizeof(mam.qid), "q%lu", ++mam.seq);
    mam.items = 0;
    mam.first_id[0] = mam.first_stamp[0] = mam.last_stamp[0] = '\0';
    mam.kind = g.phase == PH_SETUP ? (mam.probe == 2 ? QK_PROBE_MID : (enum qkind)mam.probe)
                                   : (enum qkind)(mam.done % QK_N);
    time_t span = (mam.t_last - mam.t_first) / 20;
    stamp_fmt(mam.t_mid, start, sizeof(start));
    stamp_fmt(mam.t_mid + (span > 1 ? span : 1), end, sizeof(end));
    mam.sent_at = now_ns();
    switch (mam.kind) {
    case QK_FIRST: /* oldest page */
        mam_send_query(c, mam.qid, NULL, NULL, NULL, opt.page, "");
        return;
    case QK_LAST: /* newest page: an empty <before/> (XEP-0059 §2.5) */
        mam_send_query(c, mam.qid, NULL, NULL, NULL, opt.page, "<before/>");
        return;
    case QK_AFTER: /* a page in the middle, by archive id */
        snprintf(extra, sizeof(extra), "<after>%s</after>", mam.mid_id);
        mam_send_query(c, mam.qid, NULL, NULL, NULL, opt.page, extra);
        return;
    case QK_WITH: /* the newest page of one conversation, as a chat window loads it */
        mam_send_query(c, mam.qid, mam.partner, NULL, NULL, opt.page, "<before/>");
        return;
    case QK_WINDOW: /* a time window in the middle */
        mam_send_query(c, mam.qid, NULL, start, end, opt.page, "");
        return;
    case QK_PROBE_MID: /* the first item at or after the middle of the archive's time */
        mam_send_query(c, mam.qid, NULL, start, NULL, 1, "");
        return;
    default:
        return;
    }
}

static void copy_text(char *out, size_t outsz, const char *s, size_t n)
{
    snprintf(out, outsz, "%.*s", (int)(n < outsz - 1 ? n : outsz - 1), s);
}

/* The answer (<fin/> in the iq result) ends a query: take its latency and what it found. */
static void mq_fin(struct conn *c, const char *s, size_t n)
{
    uint64_t took = now_ns() - mam.sent_at;
    g.last_progress = turn_now;
    if (!attr_eq(s, n, "type", "result")) {
        mam.errors++;
        note_error("archive query (%s) refused: %.*s",
                   mam.kind < QK_N ? qk_name[mam.kind] : "probe", (int)(n > 300 ? 300 : n), s);
        if (g.phase == PH_SETUP) {
            mq_result();
            return;
        }
    }
    const char *t;
    size_t tn;
    if (mam.kind == QK_LAST && child_text(s, n, "count", &t, &tn) && tn > 0) {
        mam.count = strtol(t, NULL, 10);
    }
    if (g.phase == PH_SETUP) {
        if (mam.probe == 0) {
            mam.t_first = stamp_time(mam.first_stamp, strlen(mam.first_stamp));
        } else if (mam.probe == 1) {
            mam.t_last = stamp_time(mam.last_stamp, strlen(mam.last_stamp));
            mam.t_mid = mam.t_first + (mam.t_last - mam.t_first) / 2;
        } else {
            /* The window starts at that message, not at the middle of the time span: an
             * archive written in bursts may have nothing there. */
            time_t t = stamp_time(mam.first_stamp, strlen(mam.first_stamp));
            snprintf(mam.mid_id, sizeof(mam.mid_id), "%s", mam.first_id);
            mam.t_mid = t >= 0 ? t : mam.t_mid;
        }
        mam.probe++;
    } else {
        lat_add(&mam.lat[mam.kind], took);
        mam.items_total += (uint64_t)mam.items;
        mam.empty_pages += mam.items == 0;
        mam.done++;
    }
    mq_next(c);
}

static void mq_on_stanza(struct conn *c, const char *s, size_t n)
{
    struct mam_item it;
    if (mam_result(c, s, n, mam.qid, &it)) {
        if (mam.items++ == 0) {
            copy_text(mam.first_id, sizeof(mam.first_id), it.id, it.idn);
            copy_text(mam.first_stamp, sizeof(mam.first_stamp), it.stamp, it.stampn);
        }
        copy_text(mam.last_stamp, sizeof(mam.last_stamp), it.stamp, it.stampn);
        if (mam.kind == QK_WITH &&
            (it.inner == NULL || !contains(it.inner, it.innern, mam.partner))) {
            mam.with_mismatch++;
        }
        return;
    }
    if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", mam.qid)) {
        mq_fin(c, s, n);
    }
}

static void mq_result(void)
{
    double wall = secs(g.t0, g.t1);
    int queries = mam.done;
    result_begin();
    result_add("page=%d queries=%d items=%" PRIu64 " archive_count=%ld empty_pages=%lu", opt.page,
               queries, mam.items_total, mam.count, mam.empty_pages);
    result_add("pages_per_s=%.1f elapsed_s=%.3f", wall > 0 ? queries / wall : 0.0, wall);
    for (int k = 0; k < QK_N; k++) {
        result_add("%s_p50_ms=%.2f %s_p95_ms=%.2f", qk_name[k],
                   lat_pct_ms(&mam.lat[k], 50, &mam.sorted[k]), qk_name[k],
                   lat_pct_ms(&mam.lat[k], 95, &mam.sorted[k]));
    }
    result_add("query_errors=%lu with_mismatch=%lu forged=%lu", mam.errors, mam.with_mismatch,
               mam.forged);
    result_cpu(wall);
    result_end(queries == QK_N * opt.queries && mam.errors == 0 && mam.empty_pages == 0 &&
                       mam.with_mismatch == 0 && mam.forged == 0
                   ? 0
                   : 1);
}

static void mq_tick(void)
{
    if (g.phase == PH_LOGIN && g.failed > 0) {
        result_begin();
        result_add("owner_login=failed");
        result_cpu(0);
        result_end(1);
        return;
    }
    if ((g.phase == PH_SETUP || g.phase == PH_RUN) && secs(g.last_progress, turn_now) > 60) {
        note_error("no answer to an archive query for 60 s");
        measure_stop();
        mq_result();
    }
}

/* ---- scenario: sm-acks (XEP-0198 urn:xmpp:sm:3) ---- */

static struct {
    struct lat ack_lat, resume_lat, reconnect_lat;
    bool ack_sorted, resume_sorted, reconnect_sorted;
    uint64_t r_sent, acks, unacked_sum, unacked_samples;
    uint32_t unacked_max;
    unsigned long h_mismatch, finals;
    int nres, resumed, replayed, dupes;
    char **res_id, **res_jid;
    uint32_t *res_hin, *res_hout;
    int *res_got;
} sm;

/* Remember when an <r/> went and how many stanzas it covers (a FIFO per session). */
static void sm_pending_push(struct conn *c)
{
    if (c->r_len == c->r_cap) {
        size_t cap = c->r_cap ? c->r_cap * 2 : 64;
        uint64_t *at = xmalloc(cap * sizeof(*at));
        uint32_t *h = xmalloc(cap * sizeof(*h));
        for (size_t i = 0; i < c->r_len; i++) {
            at[i] = c->r_at[(c->r_head + i) % c->r_cap];
            h[i] = c->r_h[(c->r_head + i) % c->r_cap];
        }
        free(c->r_at);
        free(c->r_h);
        c->r_at = at;
        c->r_h = h;
        c->r_head = 0;
        c->r_cap = cap;
    }
    size_t tail = (c->r_head + c->r_len++) % c->r_cap;
    c->r_at[tail] = now_ns();
    c->r_h[tail] = c->h_out;
}

/* Ask for an ack (XEP-0198 §4). A server that never answers does not make the
 * FIFO grow without bound: past BENCH_MAX_PENDING_R the requests are no longer timed. */
static void sm_request(struct conn *c)
{
    if (c->r_len < BENCH_MAX_PENDING_R) {
        sm_pending_push(c);
    }
    c->since_r = 0;
    sm.r_sent++;
    conn_sendf(c, "<r xmlns='urn:xmpp:sm:3'/>");
}

/* An <a h='N'/>: it answers every <r/> whose count it covers (comparisons modulo 2^32).
 * The server may never ack more than we sent. */
static void sm_on_ack(struct conn *c, uint32_t h)
{
    sm.acks++;
    if ((int32_t)(h - c->h_out) > 0) {
        sm.h_mismatch++;
        note_error("server acked %" PRIu32 " stanzas of %" PRIu32 " sent", h, c->h_out);
    }
    while (c->r_len > 0 && (int32_t)(h - c->r_h[c->r_head]) >= 0) {
        lat_add(&sm.ack_lat, now_ns() - c->r_at[c->r_head]);
        c->r_head = (c->r_head + 1) % c->r_cap;
        c->r_len--;
    }
    uint32_t unacked = c->h_out - h;
    sm.unacked_sum += unacked;
    sm.unacked_samples++;
    if (unacked > sm.unacked_max) {
        sm.unacked_max = unacked;
    }
    if (g.phase == PH_FINAL && c->flag && c->r_len == 0) {
        c->flag = false; /* the final ack: every stanza we sent must be counted */
        sm.finals++;
        if (h != c->h_out) {
            sm.h_mismatch++;
            note_error("final ack h=%" PRIu32 ", we sent %" PRIu32, h, c->h_out);
        }
    }
}

static void sm_send_resume(struct conn *c)
{
    if (!c->sm_offered || c->sm_id == NULL) {
        conn_close(c, "server offers no stream management to resume with");
        return;
    }
    char q = strchr(c->sm_id, '\'') ? '"' : '\'';
    conn_sendf(c, "<resume xmlns='urn:xmpp:sm:3' h='%" PRIu32 "' previd=%c%s%c/>", c->h_in, q,
               c->sm_id, q);
    c->t_resume = turn_now;
    c->st = CS_RESUME;
}

static void sm_on_stanza(struct conn *c, const char *s, size_t n)
{
    const char *t;
    size_t tn, rl = strlen(g.run_id);
    if ((c->role == R_RECEIVER || c->role == R_RESUME) && stanza_is(s, n, "message") &&
        child_text(s, n, "body", &t, &tn) && tn > 7 + rl && memcmp(t, "resume ", 7) == 0 &&
        memcmp(t + 7, g.run_id, rl) == 0) {
        long i = strtol(t + 7 + rl, NULL, 10);
        if (i >= 0 && i < sm.nres && sm.res_got[i]++ > 0) {
            sm.dupes++;
        } else if (i >= 0 && i < sm.nres) {
            sm.replayed++;
            g.last_progress = turn_now;
        }
        return;
    }
    msg_on_stanza(c, s, n);
}

static void sm_on_ready(struct conn *c)
{
    if (c->role != R_RESUME) {
        return;
    }
    sm.resumed++;
    lat_add(&sm.resume_lat, turn_now - c->t_resume);
    lat_add(&sm.reconnect_lat, turn_now - c->t_start);
    g.b[c->slot] = c;
}

/* A reconnection takes over the state of cut session `slot`. */
static void sm_prepare_resume(struct conn *c, int slot)
{
    c->sm_id = xstrndup(sm.res_id[slot], strlen(sm.res_id[slot]));
    c->h_in = sm.res_hin[slot];
    c->h_out = sm.res_hout[slot];
}

/* Cut the TCP connection of the first --resumes receivers without closing their streams,
 * as a phone losing its network does; the server keeps the sessions for resumption. */
static void sm_cut(void)
{
    sm.nres = opt.resumes < opt.pairs ? opt.resumes : opt.pairs;
    sm.res_id = xmalloc((size_t)sm.nres * sizeof(*sm.res_id));
    sm.res_jid = xmalloc((size_t)sm.nres * sizeof(*sm.res_jid));
    sm.res_hin = xmalloc((size_t)sm.nres * sizeof(*sm.res_hin));
    sm.res_hout = xmalloc((size_t)sm.nres * sizeof(*sm.res_hout));
    sm.res_got = xmalloc((size_t)sm.nres * sizeof(*sm.res_got));
    for (int i = 0; i < sm.nres; i++) {
        struct conn *r = g.b[i];
        sm.res_got[i] = 0;
        sm.res_id[i] = sm.res_jid[i] = NULL;
        if (r == NULL || r->sm_id == NULL || g.a[i] == NULL) {
            continue;
        }
        sm.res_id[i] = xstrndup(r->sm_id, strlen(r->sm_id));
        sm.res_jid[i] = xstrndup(r->jid, strlen(r->jid));
        sm.res_hin[i] = r->h_in;
        sm.res_hout[i] = r->h_out;
        r->finishing = true; /* no </stream:stream>: the socket just goes */
        conn_close(r, NULL);
    }
    set_phase(PH_CUT);
}

/* While the sessions are cut, their partners send them one message each; then the
 * receivers come back and resume (XEP-0198 §5), which must replay it exactly once. */
static void sm_replay(void)
{
    free(g.q);
    g.q = NULL;
    g.nq = g.qhead = 0;
    g.ready = g.failed = 0;
    for (int i = 0; i < sm.nres; i++) {
        if (sm.res_id[i] == NULL || g.a[i] == NULL) {
            continue;
        }
        conn_sendf(g.a[i],
                   "<message to='%s' type='chat' id='rs%d'><body>resume %s%d</body></message>",
                   sm.res_jid[i], i, g.run_id, i);
        g.q = xrealloc(g.q, (size_t)(g.nq + 1) * sizeof(*g.q));
        g.q[g.nq++] = (struct pending){.user = opt.first + 2 * i + 1, .role = R_RESUME, .slot = i};
    }
    if (g.nq < sm.nres) {
        note_error("%d of %d sessions to cut had no resumption id (<enabled/> without resume)",
                   sm.nres - g.nq, sm.nres);
    }
    set_phase(PH_REPLAY);
}

/* Ack figures: requests, answers, their round trip, stanzas not yet acked when an ack came. */
static void sm_result_fields(void)
{
    result_add("ack_every=%d r_sent=%" PRIu64 " acks=%" PRIu64
               " ack_p50_ms=%.2f ack_p99_ms=%.2f unacked_mean=%.1f unacked_max=%" PRIu32
               " h_mismatch=%lu",
               opt.ack_every, sm.r_sent, sm.acks, lat_pct_ms(&sm.ack_lat, 50, &sm.ack_sorted),
               lat_pct_ms(&sm.ack_lat, 99, &sm.ack_sorted),
               sm.unacked_samples ? (double)sm.unacked_sum / (double)sm.unacked_samples : 0.0,
               sm.unacked_max, sm.h_mismatch);
}

static void sm_tick(void)
{
    if (g.phase <= PH_DRAIN) {
        if (!pairs_tick()) {
            return;
        }
        for (int i = 0; i < opt.pairs; i++) {
            if (g.a[i] && g.a[i]->st == CS_READY) {
                g.a[i]->flag = true;
                sm_request(g.a[i]);
            }
        }
        set_phase(PH_FINAL);
        return;
    }
    if (g.phase == PH_FINAL) {
        if (sm.finals < (unsigned long)g.na && secs(g.phase_at, turn_now) < 10) {
            return;
        }
        if (opt.resumes > 0) {
            sm_cut();
            return;
        }
    } else if (g.phase == PH_CUT) {
        if (secs(g.phase_at, turn_now) >= 0.5) {
            sm_replay();
        }
        return;
    } else if (g.phase == PH_REPLAY) {
        bool done = g.ready + g.failed >= g.nq && sm.replayed >= g.ready;
        if (!done && secs(g.last_progress, turn_now) < 30) {
            return;
        }
    }
    result_begin();
    msg_result_fields();
    sm_result_fields();
    result_add("resumes=%d resumed=%d replayed=%d replay_dupes=%d resume_p50_ms=%.2f "
               "resume_max_ms=%.2f reconnect_p50_ms=%.2f",
               g.phase == PH_REPLAY ? g.nq : 0, sm.resumed, sm.replayed, sm.dupes,
               lat_pct_ms(&sm.resume_lat, 50, &sm.resume_sorted), sm.resume_lat.max_us / 1000.0,
               lat_pct_ms(&sm.reconnect_lat, 50, &sm.reconnect_sorted));
    result_cpu(secs(g.t0, g.t1));
    bool resumes_ok =
        g.phase != PH_REPLAY || (g.nq == sm.nres && sm.resumed == g.nq && sm.replayed == g.nq);
    result_end(g.delivered > 0 && g.errors == 0 && login_failures == 0 && sm.h_mismatch == 0 &&
                       sm.finals == (unsigned long)g.na && sm.dupes == 0 && resumes_ok
                   ? 0
                   : 1);
}

/* ---- scenario: muc-fanout (XEP-0045, issue 15) ---- */

/* Occupant i is account --first + i with its account name as nick; the first --senders
 * occupants speak. A message leaves its sender's window when the sender gets its own
 * reflection (XEP-0045 §7.2.3: the room sends every groupchat message to all occupants,
 * the sender included). Each occupant's copy is checked against what was sent: per
 * (receiver, sender) the sequence numbers must rise (RFC 6120 §10.1: in-order delivery),
 * so a number not above the last one seen is a duplicate. */
static struct {
    char room[512]; /* bare room JID */
    int n, senders;
    int joined, join_failed;
    bool configured;
    int *last; /* [receiver * senders + sender]: last sequence number received, -1 none */
    uint64_t deliveries, in_window, dupes, reflected, reflected_in_window, forged;
    long rss_login, rss_joined;
    uint64_t t_join0, t_joined;
} muc;

static void muc_join(struct conn *c)
{
    char nick[256];
    user_name(c->user, nick, sizeof(nick));
    /* §7.2.14: no history, so that an earlier run's messages do not count */
    conn_sendf(c,
               "<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
               "<history maxstanzas='0'/></x></presence>",
               muc.room, nick);
}

static void muc_send(struct conn *s)
{
    conn_sendf(s,
               "<message to='%s' type='groupchat' id='g%d-%" PRIu64 "'><body>%s %d %" PRIu64
               " t=%" PRIu64 "</body></message>",
               muc.room, s->slot, s->sent, g.run_id, s->slot, s->sent, now_ns());
    s->sent++;
    s->inflight++;
    g.sent++;
}

/* May sender s send one more? --messages caps the total, else --duration the time. */
static bool muc_may_send(const struct conn *s)
{
    if (g.phase != PH_RUN) {
        return false;
    }
    if (!opt.messages_set) {
        return true;
    }
    return (int)s->sent < opt.messages / muc.senders + (s->slot < opt.messages % muc.senders);
}

/* The self-presence (§7.2.3: status 110) says the join is done; 201 says we made the room:
 * confirm it as an instant room with an empty submit form (§10.1.2), which Prosody needs
 * before anyone else may enter and xmppd and ejabberd accept. */
static void muc_presence(struct conn *c, const char *s, size_t n)
{
    char self[800], nick[256];
    user_name(c->user, nick, sizeof(nick));
    snprintf(self, sizeof(self), "%s/%s", muc.room, nick);
    if (!attr_eq(s, n, "from", self)) {
        return;
    }
    if (attr_eq(s, n, "type", "error")) {
        muc.join_failed++;
        note_error("join refused: %.*s", (int)(n > 300 ? 300 : n), s);
        return;
    }
    bool is_self = contains(s, n, "code='110'") || contains(s, n, "code=\"110\"");
    if (!is_self || c->flag) {
        return;
    }
    c->flag = true;
    muc.joined++;
    g.last_progress = turn_now;
    if (c->slot == 0 && !muc.configured) {
        if (contains(s, n, "code='201'") || contains(s, n, "code=\"201\"")) {
            conn_sendf(c,
                       "<iq type='set' to='%s' id='muccfg'>"
                       "<query xmlns='http://jabber.org/protocol/muc#owner'>"
                       "<x xmlns='jabber:x:data' type='submit'/></query></iq>",
                       muc.room);
        } else {
            muc.configured = true; /* the room was there already */
        }
    }
}

static void muc_message(struct conn *c, const char *s, size_t n)
{
    if (attr_eq(s, n, "type", "error")) {
        g.errors++;
        note_error("groupchat message bounced: %.*s", (int)(n > 300 ? 300 : n), s);
        return;
    }
    const char *t;
    size_t tn, rl = strlen(g.run_id);
    if (!attr_eq(s, n, "type", "groupchat") || !child_text(s, n, "body", &t, &tn) || tn <= rl ||
        memcmp(t, g.run_id, rl) != 0) {
        return; /* the subject, an earlier run's message */
    }
    char *e = NULL;
    long slot = strtol(t + rl, &e, 10);
    long long seq = strtoll(e, NULL, 10);
    const char *ts = memmem(t, tn, "t=", 2);
    if (slot < 0 || slot >= muc.senders || ts == NULL || seq < 0 || seq > INT32_MAX) {
        return;
    }
    char from[800], nick[256];
    user_name(opt.first + (int)slot, nick, sizeof(nick));
    snprintf(from, sizeof(from), "%s/%s", muc.room, nick);
    if (!attr_eq(s, n, "from", from)) {
        muc.forged++; /* §7.2.3: the room stamps the sender's occupant JID */
        return;
    }
    uint64_t sent = strtoull(ts + 2, NULL, 10), now = now_ns();
    int *last = &muc.last[c->slot * muc.senders + slot];
    if (seq <= *last) {
        muc.dupes++;
        return;
    }
    *last = (int)seq;
    muc.deliveries++;
    g.last_progress = turn_now;
    lat_add(&g.lat, now > sent ? now - sent : 0);
    if (g.phase == PH_RUN) {
        muc.in_window++;
    }
    if (c->slot != slot) {
        return;
    }
    muc.reflected++; /* our own message is back: it leaves the window */
    if (g.phase == PH_RUN) {
        muc.reflected_in_window++;
    }
    c->inflight--;
    if (muc_may_send(c)) {
        muc_send(c);
    }
}

static void muc_on_stanza(struct conn *c, const char *s, size_t n)
{
    if (stanza_is(s, n, "presence")) {
        muc_presence(c, s, n);
    } else if (stanza_is(s, n, "message")) {
        muc_message(c, s, n);
    } else if (stanza_is(s, n, "iq") && attr_eq(s, n, "id", "muccfg")) {
        if (!attr_eq(s, n, "type", "result")) {
            note_error("room configuration refused: %.*s", (int)(n > 300 ? 300 : n), s);
        }
        muc.configured = true; /* the others try anyway: their joins say what is wrong */
    }
}

static void muc_start(void)
{
    if (opt.idle_occupants > 0) {
        opt.occupants = opt.idle_occupants;
    }
    muc.n = opt.occupants;
    muc.senders = opt.idle_occupants > 0 ? 0 : (opt.senders_set ? opt.senders : 5);
    if (muc.senders > muc.n) {
        die("--senders: at most --occupants (%d)", muc.n);
    }
    if (strchr(opt.room, '@') != NULL) {
        snprintf(muc.room, sizeof(muc.room), "%s", opt.room);
    } else {
        snprintf(muc.room, sizeof(muc.room), "%s@conference.%s", opt.room, opt.domain);
    }
    muc.last = xmalloc((size_t)muc.n * (size_t)(muc.senders ? muc.senders : 1) * sizeof(int));
    memset(muc.last, 0xff, (size_t)muc.n * (size_t)(muc.senders ? muc.senders : 1) * sizeof(int));
    g.a = xmalloc((size_t)muc.n * sizeof(*g.a));
    memset(g.a, 0, (size_t)muc.n * sizeof(*g.a));
    queue_sessions(muc.n, opt.first, 1, R_OCCUPANT);
    set_phase(PH_LOGIN);
}

static void muc_run_start(void)
{
    set_phase(PH_RUN);
    measure_start();
    for (int i = 0; i < muc.senders; i++) {
        struct conn *s = g.a[i];
        while (s != NULL && s->st == CS_READY && s->inflight < opt.window && muc_may_send(s)) {
            muc_send(s);
        }
    }
}

/* Every copy of every message sent arrived, or none for 10 s (the rest are missing). */
static bool muc_drained(void)
{
    return muc.deliveries >= g.sent * (uint64_t)muc.n || secs(g.last_progress, turn_now) >= 10;
}

static void muc_result(void)
{
    double wall = secs(g.t0, g.t1);
    uint64_t expected = g.sent * (uint64_t)muc.n;
    result_begin();
    result_add("room=%s occupants=%d joined=%d join_failed=%d join_s=%.2f", muc.room, muc.n,
               muc.joined, muc.join_failed, secs(muc.t_join0, muc.t_joined));
    if (muc.rss_login >= 0 && muc.rss_joined >= 0) {
        result_add("rss_login_kb=%ld rss_joined_kb=%ld rss_per_occupant_bytes=%.0f", muc.rss_login,
                   muc.rss_joined,
                   muc.joined > 0 ? (double)(muc.rss_joined - muc.rss_login) * 1024.0 / muc.joined
                                  : 0.0);
    }
    if (muc.senders > 0) {
        result_add("senders=%d window=%d duration_s=%.2f sent=%" PRIu64 " deliveries=%" PRIu64
                   " expected=%" PRIu64 " missing=%" PRIu64 " duplicates=%" PRIu64
                   " bounced=%" PRIu64 " forged=%" PRIu64,
                   muc.senders, opt.window, wall, g.sent, muc.deliveries, expected,
                   expected > muc.deliveries ? expected - muc.deliveries : 0, muc.dupes, g.errors,
                   muc.forged);
        result_add("msgs_per_s=%.0f deliveries_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f",
                   wall > 0 ? muc.reflected_in_window / wall : 0.0,
                   wall > 0 ? muc.in_window / wall : 0.0, lat_pct_ms(&g.lat, 50, &g.lat_sorted),
                   lat_pct_ms(&g.lat, 99, &g.lat_sorted), g.lat.max_us / 1000.0);
        if (opt.pid > 0 && g.cpu0 >= 0 && g.cpu1 >= 0 && muc.in_window > 0) {
            result_add("srv_cpu_s_per_100k=%.3f",
                       (g.cpu1 - g.cpu0) * 100000.0 / (double)muc.in_window);
        }
    }
    result_cpu(wall);
    bool ok = muc.joined == muc.n && login_failures == 0 && g.errors == 0 && muc.dupes == 0 &&
              muc.forged == 0 &&
              (muc.senders == 0 || (g.sent > 0 && muc.deliveries == expected));
    result_end(ok ? 0 : 1);
}

static void muc_tick(void)
{
    switch (g.phase) {
    case PH_LOGIN:
        if (g.ready + g.failed >= g.nq) {
            set_phase(PH_SETTLE);
        }
        return;
    case PH_SETTLE: /* logged in, not joined: the baseline of the memory figure */
        if (secs(g.phase_at, turn_now) < opt.settle) {
            return;
        }
        muc.rss_login = proc_rss_kb(opt.pid);
        muc.t_join0 = turn_now;
        if (g.a[0] == NULL || g.a[0]->st != CS_READY) {
            muc_result();
            return;
        }
        muc_join(g.a[0]); /* the first joiner creates the room */
        set_phase(PH_SETUP);
        return;
    case PH_SETUP:
        if (muc.configured) {
            for (int i = 1; i < muc.n; i++) {
                if (g.a[i] != NULL && g.a[i]->st == CS_READY) {
                    muc_join(g.a[i]);
                }
            }
            set_phase(PH_PREWAIT);
        } else if (muc.join_failed > 0 || secs(g.last_progress, turn_now) >= 30) {
            muc_result();
        }
        return;
    case PH_PREWAIT: /* joins in flight */
        if (muc.joined + muc.join_failed < g.ready - g.closed_ready &&
            secs(g.last_progress, turn_now) < 30) {
            return;
        }
        muc.t_joined = turn_now;
        set_phase(PH_STORE);
        return;
    case PH_STORE: /* joined: the presence flood settles, then the memory figure */
        if (secs(g.phase_at, turn_now) < opt.settle) {
            return;
        }
        muc.rss_joined = proc_rss_kb(opt.pid);
        if (muc.senders == 0 || muc.joined < muc.n) {
            measure_start();
            measure_stop();
            muc_result();
            return;
        }
        muc_run_start();
        return;
    case PH_RUN:
        if (!opt.messages_set && secs(g.t0, turn_now) >= opt.duration) {
            measure_stop();
            set_phase(PH_DRAIN);
        } else if (opt.messages_set && g.sent >= (uint64_t)opt.messages &&
                   muc.reflected >= g.sent) {
            measure_stop();
            set_phase(PH_DRAIN);
        } else if (secs(g.last_progress, turn_now) >= 30) {
            measure_stop();
            muc_result();
        }
        return;
    case PH_DRAIN:
        if (muc_drained()) {
            muc_result();
        }
        return;
    default:
        return;
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
    case SC_MAM_QUERY: {
        char name[256];
        user_name(opt.first + 1, name, sizeof(name));
        snprintf(mam.partner, sizeof(mam.partner), "%s@%s", name, opt.domain);
        set_phase(PH_SETUP);
        mq_next(c);
        return;
    }
    case SC_SM_ACKS:
        sm_on_ready(c);
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
    case SC_MAM_FILL:
        fill_on_stanza(c, s, n);
        return;
    case SC_MAM_QUERY:
        mq_on_stanza(c, s, n);
        return;
    case SC_SM_ACKS:
        sm_on_stanza(c, s, n);
        return;
    case SC_MUC_FANOUT:
        muc_on_stanza(c, s, n);
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
        if (g.a &&
            (c->role == R_SENDER || c->role == R_CONTACT || c->role == R_PRE ||
             c->role == R_OCCUPANT) &&
            g.a[c->slot] == c) {
            g.a[c->slot] = NULL;
        }
        if (g.b && (c->role == R_RECEIVER || c->role == R_RESUME) && g.b[c->slot] == c) {
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
    case SC_MAM_FILL:
        g.a = xmalloc((size_t)opt.senders * sizeof(*g.a));
        g.b = xmalloc((size_t)opt.recipients * sizeof(*g.b));
        memset(g.a, 0, (size_t)opt.senders * sizeof(*g.a));
        memset(g.b, 0, (size_t)opt.recipients * sizeof(*g.b));
        queue_sessions(opt.senders, opt.first, 1, R_SENDER);
        queue_sessions(opt.recipients, opt.first + opt.senders, 1, R_RECEIVER);
        set_phase(PH_LOGIN);
        return;
    case SC_MAM_QUERY:
        queue_sessions(1, opt.first, 1, R_OWNER);
        set_phase(PH_LOGIN);
        return;
    case SC_MSG:
    case SC_SM_ACKS:
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
    case SC_OFFLINE:
        g.a = xmalloc((size_t)opt.recipients * sizeof(*g.a));
        memset(g.a, 0, (size_t)opt.recipients * sizeof(*g.a));
        queue_sessions(opt.recipients, opt.first + opt.senders, 1, R_PRE);
        set_phase(PH_PREDRAIN);
        return;
    case SC_MUC_FANOUT:
        muc_start();
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
        /* A port in the ephemeral range (ip_local_port_range) can connect to itself
         * while nothing listens (TCP simultaneous open): that is no server, and the
         * TIME-WAIT it leaves keeps the server from binding. So the probe takes its
         * source port first and never the server's. */
        struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr = dst.sin_addr};
        socklen_t ml = sizeof(me);
        int r = bind(fd, (struct sockaddr *)&me, sizeof(me));
        if (r == 0 && getsockname(fd, (struct sockaddr *)&me, &ml) == 0 &&
            me.sin_port != dst.sin_port) {
            r = connect(fd, (struct sockaddr *)&dst, sizeof(dst));
        } else {
            r = -1;
        }
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
    case SC_MAM_FILL:
        fill_tick();
        return;
    case SC_MAM_QUERY:
        mq_tick();
        return;
    case SC_SM_ACKS:
        sm_tick();
        return;
    case SC_PRESENCE:
        presence_tick();
        return;
    case SC_OFFLINE:
        offline_tick();
        return;
    case SC_REGISTER:
        register_tick();
        return;
    case SC_MUC_FANOUT:
        muc_tick();
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
    turn_now = run_started = start;
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
    /* Close stream-managed sessions properly: a socket that just goes leaves the server a
     * resumable session (XEP-0198 §5) holding its unacked stanzas for minutes, and re-routing
     * them, into the next run. */
    for (int fd = 0; fd < conns_cap; fd++) {
        if (conns[fd] != NULL && conns[fd]->sm_in) {
            conn_finish(conns[fd], false);
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
        "  register  -n N accounts by in-band registration (XEP-0077); existing ones count\n"
        "            as done (Prosody, ejabberd; xmppd with allow_registration)\n"
        "  coldstart --port P [--server-log FILE] -- CMD ARGS...  start a server, print\n"
        "            its pid and the time from exec to accepting TCP on P; it is left\n"
        "            running, its output goes to FILE (/dev/null)\n"
        "  mam-fill  --messages M from --senders S (accounts --first..) to --recipients R\n"
        "            online accounts (after them), round robin, --window W in flight per\n"
        "            sender; each sender then asks its own archive (XEP-0313) for its newest\n"
        "            item until that is its last message -> archived/s (M / time to the last\n"
        "            confirmation) and delivered/s as the recipients see it\n"
        "  mam-query the account --first pages through its archive (fill it with mam-fill\n"
        "            --senders 1 first): --queries Q rounds of five kinds, one at a time,\n"
        "            --page P items each: first page, last page (<before/>), after an id in\n"
        "            the middle, with= the account after it, a start/end window in the\n"
        "            middle -> median and p95 latency of each kind, pages/s\n"
        "  sm-acks   msg with stream management (XEP-0198, resume='true'): <r/> after every\n"
        "            --ack-every K messages -> messages/s, ack round trip p50/p99, unacked\n"
        "            stanzas (mean, max), the server's count checked; then --resumes N\n"
        "            receivers lose their TCP connection, get a message meanwhile and\n"
        "            resume -> resume round trip, replayed exactly once\n"
        "  muc-fanout --occupants N accounts (--first..) join the room --room (XEP-0045,\n"
        "            nick = account name, no history; the first creates it); the first\n"
        "            --senders S (5) of them each keep --window W groupchat messages in\n"
        "            flight (one leaves when its sender gets it back) for --duration D s,\n"
        "            or --messages M in all -> messages/s, deliveries/s (each message x N),\n"
        "            latency p50/p99 over all deliveries, missing and duplicate deliveries,\n"
        "            server RSS per occupant (after joining - before, logged in, with --pid)\n"
        "            --idle-occupants K: only K occupants join, no messages: the memory\n"
        "            figure alone\n"
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
        "  --messages M --senders S --recipients R   offline, mam-fill (10000, 10, 50)\n"
        "  --page P --queries Q   mam-query (50, 100)\n"
        "  --ack-every K --resumes N   sm-acks (1, 10; --pairs, --window, --duration apply)\n"
        "  --occupants N --idle-occupants K --room R   muc-fanout (100, 0, bench: the room\n"
        "                     bench@conference.DOMAIN; a full room JID also works)\n"
        "  --sm               any scenario: every session enables XEP-0198 (resume='true')\n"
        "                     after binding and answers the server's <r/>; msg senders ask\n"
        "                     for an ack every --ack-every messages (sm-acks: always on)\n"
        "  --settle S         hold, muc-fanout: seconds before reading RSS (2)\n"
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
        {"login", SC_LOGIN},         {"hold", SC_HOLD},         {"msg", SC_MSG},
        {"presence", SC_PRESENCE},   {"offline", SC_OFFLINE},   {"register", SC_REGISTER},
        {"coldstart", SC_COLDSTART}, {"mam-fill", SC_MAM_FILL}, {"mam-query", SC_MAM_QUERY},
        {"sm-acks", SC_SM_ACKS},     {"muc-fanout", SC_MUC_FANOUT},
    };
    opt.scenario_name = NULL;
    for (size_t i = 0; i < sizeof(scs) / sizeof(scs[0]); i++) {
        if (strcmp(argv[1], scs[i].name) == 0) {
            opt.scenario = scs[i].sc;
            opt.scenario_name = scs[i].name;
        }
    }
    if (opt.scenario_name == NULL) {
        die("unknown scenario '%s' (xmpp-bench -h lists them)", argv[1]);
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
        O_PAGE,
        O_QUERIES,
        O_ACKEVERY,
        O_RESUMES,
        O_SM,
        O_OCCUPANTS,
        O_IDLEOCC,
        O_ROOM,
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
        {"page", required_argument, NULL, O_PAGE},
        {"queries", required_argument, NULL, O_QUERIES},
        {"ack-every", required_argument, NULL, O_ACKEVERY},
        {"resumes", required_argument, NULL, O_RESUMES},
        {"sm", no_argument, NULL, O_SM},
        {"occupants", required_argument, NULL, O_OCCUPANTS},
        {"idle-occupants", required_argument, NULL, O_IDLEOCC},
        {"room", required_argument, NULL, O_ROOM},
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
        case O_MESSAGES:
            opt.messages = parse_int(optarg, "--messages", 1, 100000000);
            opt.messages_set = true;
            break;
        case O_SENDERS:
            opt.senders = parse_int(optarg, "--senders", 1, 100000);
            opt.senders_set = true;
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
        case O_PAGE:
            opt.page = parse_int(optarg, "--page", 1, 10000);
            break;
        case O_QUERIES:
            opt.queries = parse_int(optarg, "--queries", 1, 1000000);
            break;
        case O_ACKEVERY:
            opt.ack_every = parse_int(optarg, "--ack-every", 1, 1000000);
            break;
        case O_RESUMES:
            opt.resumes = parse_int(optarg, "--resumes", 0, 100000);
            break;
        case O_SM:
            opt.sm = true;
            break;
        case O_OCCUPANTS:
            opt.occupants = parse_int(optarg, "--occupants", 1, 1000000);
            break;
        case O_IDLEOCC:
            opt.idle_occupants = parse_int(optarg, "--idle-occupants", 1, 1000000);
            break;
        case O_ROOM:
            if (strlen(optarg) > 400 || strpbrk(optarg, "<>&'\"/ ") != NULL) {
                die("--room: at most 400 characters, none of <>&'\"/ or space");
            }
            opt.room = optarg;
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
    opt.sm = opt.sm || opt.scenario == SC_SM_ACKS;
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
