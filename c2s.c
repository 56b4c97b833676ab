/* c2s.c: the client stream state machine (RFC 6120 §4-§7): stream header and
 * errors, stream features, STARTTLS, SASL (PLAIN, SCRAM-SHA-1/-256), stream
 * restart, resource binding, the legacy session iq, and the one-step login
 * (password check, then bind) that XEP-0078 in legacy.c asks for through
 * c2s.h. Once a resource is bound every stanza goes to router.c. Sockets are reached only through
 * server.h (conn_send, conn_close, conn_starttls); accounts through store.c. */
#include "c2s.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "sasl.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "version.h"
#include "worker.h"
#include "xml.h"

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_PING "urn:xmpp:ping"
#define NS_REGISTER_IQ "jabber:iq:register" /* feature switches: see stanza_preauth */

struct c2s {
    struct conn *conn;
    struct xml_parser *parser;
    int header_sent;
    char stream_id[20];
    struct scram_state *scram; /* only while a SCRAM exchange runs */
    char *user;                /* bare JID once authenticated */
    struct session *sess;      /* once bound */
    time_t opened;             /* monotonic time of accept */
    char lang[36];             /* xml:lang of the stream header, if valid */
    char *delayed;             /* a SASL failure held back by the throttle */
    time_t delayed_until;
    struct buf held_input;     /* the rest of the read that brought that failure,
                                  or that arrived behind a PLAIN check */
    struct plain_job *plain;   /* the PLAIN password check queued on the worker */
    const struct plain_job *answering; /* a one-step login's check, while its done
                                          runs: what c2s_login_bind may bind */
    int sasl_tried;            /* an <auth/> was sent: no XEP-0078 login after it */
    int plain_wait;            /* PLAIN sent without initial response: the empty
                                  challenge is out, the next <response/> is it */
    int failures;              /* failed attempts on this stream (RFC 6120 §6.4.5) */
    unsigned char who[16];     /* note_who: the account being tried */
    int ended;                 /* the stream was closed on purpose (by either side):
                                  its session is not kept for resumption (XEP-0198) */
};

/* ---- the login failure throttle ----
 * Two kinds of counters, in one small fixed table (bounded memory whatever
 * the number of attackers):
 * - per (address, account): each failed guess at an account doubles the
 *   delay before the next answer to that address, up to auth_fail_delay_max;
 *   after auth_fail_ban failures that address may not try that account for
 *   auth_ban_seconds. A success clears only this counter: interleaving good
 *   logins to one's own account with guesses at another gains nothing.
 * - per address, over all accounts: after auth_fail_ban_address failures
 *   the address is refused altogether (a spray of a few guesses at many
 *   accounts). A success does not clear it; it ages out.
 * Entries age out auth_ban_seconds after their last failure. Accounts are
 * named by a digest keyed with the server's secret (note_who), and the
 * table is indexed by a keyed digest too, so an attacker can neither choose
 * which set its entries fall into nor forge another account's entry. */
#define THROTTLE_SETS 128
#define THROTTLE_WAYS 4
#define DIGEST_LEN 16

struct throttle {
    unsigned char tag[DIGEST_LEN]; /* keyed digest of the address (and account) */
    int fails;
    time_t last;
};
static struct throttle throttle[THROTTLE_SETS * THROTTLE_WAYS];
static int throttle_used;
static unsigned char secret[32]; /* DATADIR/secret, read by c2s_init */

/* HMAC-SHA-256 under the server's secret of what, label, cut to DIGEST_LEN. */
static void keyed_digest(const char *label, const void *what, size_t len,
                         unsigned char out[DIGEST_LEN])
{
    unsigned char in[64 + JID_MAX + 1], full[32] = {0};
    size_t ll = strlen(label) + 1;
    if (len > sizeof(in) - ll) {
        len = sizeof(in) - ll;
    }
    memcpy(in, label, ll); /* the NUL separates label and data */
    memcpy(in + ll, what, len);
    tls_hmac(TLS_SHA256, secret, sizeof(secret), in, ll + len, full);
    memcpy(out, full, DIGEST_LEN);
}

/* An entry that no longer counts: empty, or its last failure too long ago. */
static int throttle_stale(const struct throttle *t)
{
    return t->fails == 0 || g_now - t->last > g_config->auth_ban_seconds;
}

/* The entry of addr (who NULL) or of (addr, who): NULL when it has none
 * and create is 0. A new entry takes the set's way that is stale, else the
 * one with the fewest failures (the oldest of those): evicting a hot entry
 * takes as many failures of one's own, each of them counted. */
static struct throttle *throttle_find(const char *addr, const unsigned char *who, int create)
{
    unsigned char key[48 + DIGEST_LEN], tag[DIGEST_LEN];
    size_t al = strnlen(addr, 47);
    memcpy(key, addr, al);
    if (who) {
        memcpy(key + al, who, DIGEST_LEN);
    }
    keyed_digest(who ? "throttle-account" : "throttle-address", key, al + (who ? DIGEST_LEN : 0),
                 tag);
    struct throttle *set =
        &throttle[(tag[0] | (unsigned)tag[1] << 8) % THROTTLE_SETS * THROTTLE_WAYS];
    struct throttle *victim = &set[0];
    for (int i = 0; i < THROTTLE_WAYS; i++) {
        struct throttle *t = &set[i];
        if (memcmp(t->tag, tag, DIGEST_LEN) == 0) {
            if (throttle_stale(t)) {
                t->fails = 0;
            }
            return t;
        }
        int vs = throttle_stale(victim), ts = throttle_stale(t);
        if ((ts && !vs) || (ts == vs && (t->fails < victim->fails ||
                                         (t->fails == victim->fails && t->last < victim->last)))) {
            victim = t;
        }
    }
    if (!create) {
        return NULL;
    }
    memcpy(victim->tag, tag, DIGEST_LEN);
    victim->fails = 0;
    victim->last = g_now;
    throttle_used = 1;
    return victim;
}

int c2s_auth_banned(const char *addr)
{
    struct throttle *t = throttle_find(addr, NULL, 0);
    return t && t->fails >= g_config->auth_fail_ban_address;
}

/* The address may not try the account who (see note_who) just now. */
static int account_banned(const char *addr, const unsigned char *who)
{
    struct throttle *t = throttle_find(addr, who, 0);
    return c2s_auth_banned(addr) || (t && t->fails >= g_config->auth_fail_ban);
}

/* Counts a failed login at who from addr; returns the delay (seconds) before
 * the answer. */
static int throttle_delay(const char *addr, const unsigned char *who)
{
    c2s_auth_failed_address(addr);
    struct throttle *t = throttle_find(addr, who, 1);
    t->fails++;
    t->last = g_now;
    int d = 1 << (t->fails < 13 ? t->fails - 1 : 12); /* 4096 s, more than the cap's max */
    return d > g_config->auth_fail_delay_max ? g_config->auth_fail_delay_max : d;
}

static void throttle_clear(const char *addr, const unsigned char *who)
{
    struct throttle *t = throttle_find(addr, who, 0);
    if (t) {
        t->fails = 0;
    }
}

/* ---- output helpers ---- */

static void send_str(struct c2s *s, const char *str)
{
    conn_send(s->conn, str, strlen(str));
}

/* Sends what b holds on c and frees b. */
static void send_buf(struct conn *c, struct buf *b)
{
    conn_send(c, buf_ptr(b), buf_len(b));
    buf_free(b);
}

void c2s_stream_head(struct buf *b, const char *ns)
{
    buf_printf(b,
               "<?xml version='1.0'?><stream:stream xmlns='%s' "
               "xmlns:stream='http://etherx.jabber.org/streams'",
               ns);
}

void c2s_stream_error_tail(struct buf *b, const char *cond, const char *text, const char *app)
{
    buf_printf(b, "<stream:error><%s xmlns='" NS_STREAMS "'/>", cond);
    if (text) {
        buf_puts(b, "<text xmlns='" NS_STREAMS "'>");
        buf_append_xml(b, text, strlen(text));
        buf_puts(b, "</text>");
    }
    if (app) {
        buf_puts(b, app);
    }
    buf_puts(b, "</stream:error></stream:stream>");
}

static void send_header(struct c2s *s, const char *to)
{
    struct buf b;
    buf_init(&b, 0);
    tls_random_hex(s->stream_id, 8);
    c2s_stream_head(&b, "jabber:client");
    buf_printf(&b, " id='%s' from='", s->stream_id);
    buf_append_xml(&b, g_config->domain, strlen(g_config->domain));
    if (to) {
        buf_puts(&b, "' to='");
        buf_append_xml(&b, to, strlen(to));
    }
    buf_puts(&b, "' version='1.0' xml:lang='en'>");
    send_buf(s->conn, &b);
    s->header_sent = 1;
}

/* A stream's last bytes are about to be queued, and nothing can follow them:
 * first make this turn's offline messages durable, so that the bounce for one
 * the disk refused still reaches its sender (offline_sync). -1 when that bounce
 * ended the stream itself (outq_hard). */
static int before_last_bytes(struct conn *c)
{
    im_before_output();
    return c->closed || c->state == CONN_CLOSING ? -1 : 0;
}

/* Whose a line that a peer can repeat at will is (log_limited): the address
 * before authentication, the account after. */
static const char *log_key(const struct conn *c)
{
    const struct c2s *s = c->c2s;
    return s && s->user ? s->user : c->addr;
}

/* app: an application-specific condition element (RFC 6120 §4.9.4),
 * serialised by the caller, or NULL. */
static void stream_error(struct conn *c, const char *cond, const char *text, const char *app)
{
    struct c2s *s = c->c2s;
    if (!s || c->state == CONN_CLOSING || before_last_bytes(c) < 0) {
        return;
    }
    /* A dead link (no answer to a ping) is not the end the client chose:
     * XEP-0198 may keep its session for a resumption. */
    if (strcmp(cond, "connection-timeout") != 0) {
        s->ended = 1;
    }
    log_limited("stream errors", log_key(c), L_NOTICE, "%s stream error: %s%s%s", conn_label(c),
                cond, text ? ": " : "", text ? text : "");
    if (!s->header_sent) {
        send_header(s, NULL);
    }
    struct buf b;
    buf_init(&b, 0);
    c2s_stream_error_tail(&b, cond, text, app);
    send_buf(c, &b);
    conn_close(c, 1);
}

void c2s_stream_error(struct conn *c, const char *cond, const char *text)
{
    stream_error(c, cond, text, NULL);
}

void c2s_stream_error_app(struct conn *c, const char *cond, const char *app)
{
    stream_error(c, cond, NULL, app);
}

void c2s_shutdown(struct conn *c)
{
    if (c->c2s && c->state != CONN_CLOSING) {
        c2s_stream_error(c, "system-shutdown", NULL);
    }
}

static void send_features(struct c2s *s)
{
    struct conn *c = s->conn;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<stream:features>");
    if (c->state == CONN_AUTHENTICATED) {
        /* RFC 6120 §7; the session element is optional (RFC 6121 has no
         * session establishment) but old clients still look for it. */
        buf_puts(&b, "<bind xmlns='" NS_BIND "'/>"
                     "<session xmlns='" NS_SESSION "'><optional/></session>"
                     "<ver xmlns='urn:xmpp:features:rosterver'/>");
        /* XEP-0115 §6.3: the server's own capabilities in its features. */
        buf_printf(&b,
                   "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='" XMPPD_CAPS_NODE
                   "' ver='%s'/>",
                   disco_caps_ver());
        hook_run_stream_features(c, &b);
    } else {
        int tls = conn_is_tls(c);
        int must_tls = !tls && g_config->require_tls;
        /* RFC 7395 §3.5: TLS over WebSocket is the wss: URI's, not STARTTLS */
        if (!tls && !c->frame_out) {
            buf_printf(&b, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                       must_tls ? "<required/>" : "");
        }
        /* RFC 6120 §5.3.1: when TLS is mandatory, offer nothing else before it. */
        if (!must_tls) {
            buf_puts(&b, "<mechanisms xmlns='" NS_SASL "'>"
                         "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>");
            if (tls || g_config->plain_without_tls) {
                buf_puts(&b, "<mechanism>PLAIN</mechanism>");
            }
            buf_puts(&b, "</mechanisms>");
            /* XEP-0078 <auth/>, XEP-0077 <register/> */
            hook_run_preauth_features(c, &b);
        }
    }
    buf_puts(&b, "</stream:features>");
    send_buf(c, &b);
}

/* ---- stream open ---- */

/* jid is valid and names this server (norm: JID_MAX + 1 bytes of scratch). */
static int is_our_domain(const char *jid, char *norm)
{
    return jid_parse(jid, norm, JID_MAX + 1, NULL) == 0 && strcmp(norm, g_config->domain) == 0;
}

static int on_stream_open(void *ud, const struct xml_node *root)
{
    struct c2s *s = ud;
    struct conn *c = s->conn;
    const char *to = xml_attr(root, "to");
    const char *from = xml_attr(root, "from");
    char norm[JID_MAX + 1];
    /* RFC 6120 §4.7.2: echo the client's from as our to when it is valid. */
    const char *echo = (from && jid_parse(from, norm, sizeof(norm), NULL) == 0) ? from : NULL;
    send_header(s, echo);
    const char *ver = xml_attr(root, "version");
    const char *cond = NULL, *text = NULL;
    if (strcmp(xml_name(root), "stream") != 0 || strcmp(xml_ns(root), XML_NS_STREAM) != 0 ||
        strcmp(xml_default_ns(root), NS_CLIENT) != 0) {
        cond = "invalid-namespace";
    } else if (!ver || strncmp(ver, "1.", 2) != 0) {
        cond = "unsupported-version";
    } else if (!to) {
        /* RFC 6120 §4.7.2: the initiating entity MUST include 'to' in an
         * initial stream header, and the header after STARTTLS or SASL is
         * one again (§5.4.3.3, §6.4.6). Without it, <improper-addressing/>
         * (§4.9.3.8), as Prosody answers, also on a restart. */
        cond = "improper-addressing";
        text = "a 'to' attribute is required";
    } else if (!is_our_domain(to, norm)) {
        cond = "host-unknown";
    }
    if (cond) {
        c2s_stream_error(c, cond, text);
        return -1;
    }
    /* RFC 6120 §4.7.4: the stream's default language, kept for §8.1.5
     * (only a plausible language tag: letters, digits and '-'). */
    const char *lang = xml_attr_ns(root, "lang", XML_NS_XML);
    size_t n = lang ? strlen(lang) : 0;
    int ok = n > 0 && n < sizeof(s->lang);
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)lang[i]) || lang[i] == '-'; /* the "C" locale's */
    }
    s->lang[0] = '\0';
    if (ok) {
        memcpy(s->lang, lang, n + 1);
    }
    if (c->state == CONN_CONNECTED) {
        c->state = CONN_STREAM_OPEN;
    }
    send_features(s);
    return 0;
}

static int on_stream_close(void *ud)
{
    struct c2s *s = ud;
    log_debug("%s stream closed by peer", conn_label(s->conn));
    s->ended = 1;
    if (s->conn->state != CONN_CLOSING && before_last_bytes(s->conn) == 0) {
        send_str(s, "</stream:stream>");
        conn_close(s->conn, 1);
    }
    return -1;
}

/* ---- SASL ---- */

static void sasl_reply(struct c2s *s, const char *elem, const char *b64)
{
    struct buf b;
    buf_init(&b, 0);
    if (b64 && *b64) {
        buf_printf(&b, "<%s xmlns='" NS_SASL "'>%s</%s>", elem, b64, elem);
    } else {
        buf_printf(&b, "<%s xmlns='" NS_SASL "'/>", elem);
    }
    send_buf(s->conn, &b);
}

static void sasl_end(struct c2s *s)
{
    free(s->scram);
    s->scram = NULL;
    s->plain_wait = 0;
}

/* RFC 6120 §6.4.5: a configurable number of retries (sasl_max_retries, 2 to
 * 5), then a stream error. The stream is closed right after the failure that
 * used up the last retry (the client gets that failure first): no further
 * attempt could be allowed, and waiting for one would only keep an
 * unauthenticated connection open until the pre-auth timeout. */
static void after_failure(struct c2s *s)
{
    if (s->failures > g_config->sasl_max_retries) {
        c2s_stream_error(s->conn, "policy-violation", "Too many failed authentication attempts");
    }
}

/* Failure answers are held back by the throttle (c2s_tick sends them), which
 * turns a brute-force loop into a crawl for that address and account only. */
static void answer_wrong_password(struct c2s *s, const char *xml, const char *what)
{
    struct conn *c = s->conn;
    log_limited("failed logins", c->addr, L_NOTICE, "%s authentication %s", conn_label(c), what);
    int delay = throttle_delay(c->addr, s->who);
    s->failures++;
    free(s->delayed);
    s->delayed = strdup(xml);
    s->delayed_until = g_now + delay;
    conn_hold(c, 1);
}

/* what: NULL for a refusal answered at once, else the log's word for a
 * failure that the throttle holds back (a wrong password; an abort after
 * the challenge). */
static void sasl_fail_as(struct c2s *s, const char *cond, const char *what)
{
    sasl_end(s);
    char xml[160];
    snprintf(xml, sizeof(xml), "<failure xmlns='" NS_SASL "'><%s/></failure>", cond);
    if (what) {
        answer_wrong_password(s, xml, what);
    } else {
        c2s_login_refused(s->conn, xml);
    }
}

static void sasl_fail(struct c2s *s, const char *cond)
{
    sasl_fail_as(s, cond, strcmp(cond, "not-authorized") == 0 ? "failed" : NULL);
}

static void note_who(struct c2s *s, const char *name);

/* The account is proven: the stream belongs to bare from now on. how: the
 * one-step login's way, for the log (NULL for SASL). */
static int authenticated(struct c2s *s, const char *bare, const char *how)
{
    struct conn *c = s->conn;
    sasl_end(s);
    free(s->user);
    s->user = strdup(bare);
    if (!s->user) {
        c2s_stream_error(c, "internal-server-error", NULL);
        return -1;
    }
    note_who(s, bare);
    throttle_clear(c->addr, s->who);
    c->state = CONN_AUTHENTICATED;
    conn_authenticated(c);
    log_limited("logins", bare, L_INFO, "%s authenticated as %s%s%s%s", conn_label(c), bare,
                how ? " (" : "", how ? how : "", how ? ")" : "");
    return 0;
}

static void sasl_success(struct c2s *s, const char *bare, const char *b64)
{
    if (authenticated(s, bare, NULL) < 0) {
        return;
    }
    sasl_reply(s, "success", b64);
    s->header_sent = 0;
    /* RFC 6120 §6.4.6: the client restarts the stream; the parser starts over. */
    xml_parser_reset(s->parser);
}

/* Username from SASL (a localpart, or a bare JID of our domain) -> bare JID. */
static int user_to_bare(const char *user, char *bare, size_t baresz)
{
    char local[JID_PART_MAX + 1];
    const char *at = strchr(user, '@');
    if (at) {
        struct jid j;
        return jid_parse(user, bare, baresz, &j) < 0 || j.resource_len ||
                       !jid_domain_is(&j, g_config->domain)
                   ? -1
                   : 0;
    }
    if (jid_local_valid(user, local, sizeof(local)) < 0) {
        return -1;
    }
    if ((size_t)snprintf(bare, baresz, "%s@%s", local, g_config->domain) >= baresz) {
        return -1;
    }
    return 0;
}

/* The account a login tries, as a digest keyed with the server's secret: of
 * its normalised bare JID, so that every spelling of one account is one
 * name, or of the name as given when it cannot be an account's. */
static void who_digest(const char *name, unsigned char who[DIGEST_LEN])
{
    char bare[JID_MAX + 1];
    if (user_to_bare(name, bare, sizeof(bare)) == 0) {
        name = bare;
    }
    keyed_digest("account", name, strlen(name), who);
}

static void note_who(struct c2s *s, const char *name)
{
    who_digest(name, s->who);
}

/* authzid, when given, must name the authenticated account (no proxy auth). */
static int authzid_ok(const char *authzid, const char *bare)
{
    char norm[JID_MAX + 1];
    if (!authzid || !*authzid) {
        return 1;
    }
    return jid_parse(authzid, norm, sizeof(norm), NULL) == 0 && strcmp(norm, bare) == 0;
}

static int decode_payload(const char *text, unsigned char *out, size_t outsz)
{
    /* RFC 6120 §6.4.2: "=" is an empty response. */
    if (strcmp(text, "=") == 0 || !*text) {
        return 0;
    }
    return sasl_b64_decode(text, strlen(text), out, outsz - 1);
}

/* The PLAIN password check, a PBKDF2, runs on the worker thread (worker.h):
 * the stream is held meanwhile, and the answer continues it if it is still
 * there. The job carries copies, never pointers into the connection. */
struct plain_job {
    struct worker_job w;
    int fd;
    uint32_t conn_id;
    enum sasl_mech mech;
    struct scram_creds creds;
    int ok;
    size_t pwlen, size;
    char *bare, *authzid, *pw; /* point into text */
    char *resource, *iq_id;    /* one-step logins only (else NULL): what to bind, */
    c2s_login_fn done;         /* what to answer, who answers (c2s_login_check) */
    int unknown;               /* no such account: checked against made-up keys */
    /* web admin (issue 14): a check for no stream (c2s_password_check) */
    c2s_check_fn check_done;
    void *ud;
    int (*allow)(const char *bare);
    unsigned char who[DIGEST_LEN];
    char addr[48];
    char text[];               /* the strings: sized to fit, as a login storm
                                  may queue a job per connection */
};

/* A one-step login (XEP-0078) is a SASL PLAIN one with a resource, an iq
 * to answer and a function that answers it. */
struct plain_login {
    const char *bare, *authzid, *pw;
    size_t pwlen;
    const char *resource, *iq_id; /* NULL for SASL */
    c2s_login_fn done;            /* NULL for SASL */
};

static char *job_copy(char **at, const char *str, size_t len)
{
    char *p = memcpy(*at, str, len);
    *at += len;
    return p;
}

static struct plain_job *plain_job_new(const struct plain_login *l)
{
    const char *str[4] = {l->bare, l->authzid, l->resource, l->iq_id}; /* the last two: or NULL */
    size_t len[4], size = sizeof(struct plain_job) + l->pwlen;
    for (int i = 0; i < 4; i++) {
        len[i] = str[i] ? strlen(str[i]) + 1 : 0;
        size += len[i];
    }
    struct plain_job *j = calloc(1, size);
    if (!j) {
        return NULL;
    }
    char **copy[4] = {&j->bare, &j->authzid, &j->resource, &j->iq_id};
    char *at = j->text;
    for (int i = 0; i < 4; i++) {
        *copy[i] = str[i] ? job_copy(&at, str[i], len[i]) : NULL;
    }
    j->size = size;
    j->pw = job_copy(&at, l->pw, l->pwlen);
    j->pwlen = l->pwlen;
    j->done = l->done;
    return j;
}

static void plain_job_free(struct plain_job *j)
{
    sasl_wipe(j, j->size);
    free(j);
}

/* PLAIN is checked against the SCRAM-SHA-1 keys when the account has them:
 * one PBKDF2 of 4096 HMAC-SHA-1 rounds costs half the SHA-256 one, and is as
 * strong as what a SCRAM-SHA-1 login proves anyway. */
static void plain_check(struct worker_job *w)
{
    struct plain_job *j = (struct plain_job *)w;
    j->ok = sasl_scram_check_password(j->mech, &j->creds, j->pw, j->pwlen);
}

static void plain_check_pair(struct worker_job *wa, struct worker_job *wb)
{
    struct plain_job *a = (struct plain_job *)wa, *b = (struct plain_job *)wb;
    struct sasl_password_check ka = {a->mech, &a->creds, a->pw, a->pwlen, 0};
    struct sasl_password_check kb = {b->mech, &b->creds, b->pw, b->pwlen, 0};
    sasl_scram_check_password_pair(&ka, &kb);
    a->ok = ka.ok;
    b->ok = kb.ok;
}

static void resume_held(struct c2s *s);

static void check_finished(struct plain_job *j);

static void plain_checked(struct worker_job *w)
{
    struct plain_job *j = (struct plain_job *)w;
    if (j->unknown) {
        j->ok = 0;
    }
    if (j->check_done) {
        check_finished(j);
        return;
    }
    struct conn *c = w->cancelled ? NULL : conn_find(j->fd, j->conn_id);
    struct c2s *s = c ? c->c2s : NULL;
    if (s && s->plain == j) {
        s->plain = NULL; /* the job is freed below, whatever happens */
    } else {
        s = NULL; /* the stream is gone (or restarted): nobody to answer */
    }
    if (s && !c->closed && c->state == CONN_STREAM_OPEN) {
        conn_hold(c, 0);
        if (j->done) {
            s->answering = j;
            j->done(c, j->ok, j->resource, j->iq_id);
            s->answering = NULL;
        } else if (!j->ok) {
            sasl_fail(s, "not-authorized");
        } else if (!authzid_ok(j->authzid, j->bare)) {
            sasl_fail(s, "invalid-authzid");
        } else {
            sasl_success(s, j->bare, NULL);
        }
        if (!c->held) {
            resume_held(s);
        }
    }
    plain_job_free(j);
}

/* An unknown user (who, see note_who) gets credentials made up for the
 * occasion, which look like an account's: a salt as long, the same for
 * every attempt (derived from the name under the server's secret, so it
 * survives a restart), one per hash as adduser makes them, and the
 * iteration count new accounts get. scram_first sends them, so the
 * exchange fails only at the proof; PLAIN checks the password against them
 * so that the answer takes as long as for an account. The keys are random:
 * no proof or password matches them (and j->unknown fails PLAIN anyway). */
_Static_assert(SCRAM_SALT_LEN <= DIGEST_LEN, "a salt is cut from one digest");
static int made_up_creds(enum sasl_mech mech, const unsigned char *who, struct scram_creds *cr)
{
    memset(cr, 0, sizeof(*cr));
    cr->key_len = mech == SASL_SCRAM_SHA1 ? 20 : 32;
    unsigned char salt[DIGEST_LEN];
    keyed_digest(mech == SASL_SCRAM_SHA1 ? "salt-scram-sha-1" : "salt-scram-sha-256", who,
                 DIGEST_LEN, salt);
    memcpy(cr->salt, salt, SCRAM_SALT_LEN);
    cr->salt_len = SCRAM_SALT_LEN;
    cr->iter = g_config->scram_iterations;
    if (tls_random(cr->stored_key, cr->key_len) < 0 ||
        tls_random(cr->server_key, cr->key_len) < 0) {
        return -1;
    }
    return 0;
}

/* Gives j the credentials it is checked against (made up for the occasion
 * when the account does not exist or j->bare cannot be one: known 0) and
 * its worker functions. -1 when no credentials could be made. */
static int job_prepare(struct plain_job *j, const unsigned char *who, int known)
{
    struct store_account acct;
    int unknown = !known || store_account_get(j->bare, &acct) < 0;
    if (unknown) {
        memset(&acct, 0, sizeof(acct));
        if (made_up_creds(SASL_SCRAM_SHA1, who, &acct.sha1) < 0) {
            return -1;
        }
    }
    j->unknown = unknown;
    j->mech = acct.sha1.key_len ? SASL_SCRAM_SHA1 : SASL_SCRAM_SHA256;
    j->creds = acct.sha1.key_len ? acct.sha1 : acct.sha256;
    sasl_wipe(&acct, sizeof(acct));
    j->w.fn = plain_check;
    j->w.fn_pair = plain_check_pair;
    /* Paired only with a check of the same cost that really runs alongside. */
    if (j->mech == SASL_SCRAM_SHA1 && tls_pbkdf2_pair_gains(TLS_SHA1)) {
        j->w.pair_key = j->creds.iter;
    }
    j->w.done = plain_checked;
    return 0;
}

/* Queues the password check of l on the worker and holds the stream. -1
 * when out of memory. */
static int plain_queue(struct c2s *s, const struct plain_login *l)
{
    struct plain_job *j = plain_job_new(l);
    if (!j) {
        return -1;
    }
    if (job_prepare(j, s->who, 1) < 0) {
        plain_job_free(j);
        return -1;
    }
    j->fd = s->conn->fd;
    j->conn_id = s->conn->id;
    s->plain = j;
    conn_hold(s->conn, 1);
    worker_run(&j->w); /* without a thread, plain_checked has run on return */
    return 0;
}

static void sasl_plain(struct c2s *s, const unsigned char *msg, int len)
{
    char authzid[SASL_USER_MAX + 1], authcid[SASL_USER_MAX + 1], bare[JID_MAX + 1];
    struct plain_login l = {bare, authzid, NULL, 0, NULL, NULL, NULL};
    if (sasl_plain_parse((const char *)msg, (size_t)len, authzid, sizeof(authzid), authcid,
                         sizeof(authcid), &l.pw, &l.pwlen) < 0) {
        sasl_fail(s, "malformed-request");
        return;
    }
    note_who(s, authcid);
    if (account_banned(s->conn->addr, s->who)) {
        sasl_fail(s, "temporary-auth-failure");
    } else if (user_to_bare(authcid, bare, sizeof(bare)) < 0) {
        sasl_fail(s, "not-authorized");
    } else if (plain_queue(s, &l) < 0) {
        sasl_fail(s, "temporary-auth-failure");
    }
}

static void scram_first(struct c2s *s, enum sasl_mech mech, const unsigned char *msg, int len)
{
    char bare[JID_MAX + 1], out[600], b64[820];
    struct store_account acct;
    free(s->scram); /* the empty-challenge path made one already */
    s->scram = calloc(1, sizeof(*s->scram));
    if (!s->scram) {
        sasl_fail(s, "temporary-auth-failure");
        return;
    }
    if (sasl_scram_client_first(s->scram, mech, (const char *)msg, (size_t)len) != SASL_CONTINUE) {
        sasl_fail(s, "malformed-request");
        return;
    }
    note_who(s, s->scram->user);
    if (account_banned(s->conn->addr, s->who)) {
        sasl_fail(s, "temporary-auth-failure");
        return;
    }
    const struct scram_creds *cr = NULL;
    if (user_to_bare(s->scram->user, bare, sizeof(bare)) == 0 &&
        store_account_get(bare, &acct) == 0) {
        cr = mech == SASL_SCRAM_SHA1 ? &acct.sha1 : &acct.sha256;
    }
    /* Unknown user: go on with throw-away credentials so that the exchange
     * fails only at the proof and does not reveal which accounts exist. */
    struct scram_creds fake;
    if (!cr || cr->key_len == 0) {
        if (made_up_creds(mech, s->who, &fake) < 0) {
            sasl_fail(s, "temporary-auth-failure");
            return;
        }
        cr = &fake;
    }
    int n = sasl_scram_server_first(s->scram, cr, out, sizeof(out));
    if (n < 0 || sasl_b64_encode((unsigned char *)out, (size_t)n, b64, sizeof(b64)) < 0) {
        sasl_fail(s, "temporary-auth-failure");
        return;
    }
    sasl_reply(s, "challenge", b64);
}

static void scram_final(struct c2s *s, const unsigned char *msg, int len)
{
    char out[200], b64[280], bare[JID_MAX + 1];
    size_t outlen = 0;
    int r = sasl_scram_client_final(s->scram, (const char *)msg, (size_t)len, out, sizeof(out),
                                    &outlen);
    if (r == SASL_FAIL_MALFORMED) {
        sasl_fail(s, "malformed-request");
        return;
    }
    if (r != SASL_OK || user_to_bare(s->scram->user, bare, sizeof(bare)) < 0) {
        sasl_fail(s, "not-authorized");
        return;
    }
    if (!authzid_ok(s->scram->authzid, bare)) {
        sasl_fail(s, "invalid-authzid");
        return;
    }
    if (sasl_b64_encode((unsigned char *)out, outlen, b64, sizeof(b64)) < 0) {
        sasl_fail(s, "temporary-auth-failure");
        return;
    }
    sasl_success(s, bare, b64);
}

static void handle_auth(struct c2s *s, struct xml_node *st)
{
    struct conn *c = s->conn;
    unsigned char msg[4096];
    const char *name = xml_name(st);
    if (c2s_auth_banned(c->addr)) {
        sasl_fail(s, "temporary-auth-failure");
        return;
    }
    if (strcmp(name, "abort") == 0) {
        /* An abort after the server-first message has seen the salt and
         * iteration count of the account named: a failure like a wrong
         * password, so probing names costs throttle. (A connection that
         * just drops there is not counted: mobile clients do that, and
         * the made-up salt no longer tells a probe anything.) */
        sasl_fail_as(s, "aborted",
                     s->scram && s->scram->step == 1 ? "aborted after the challenge" : NULL);
        return;
    }
    int len = decode_payload(xml_text(st), msg, sizeof(msg));
    if (len < 0) {
        sasl_fail(s, "incorrect-encoding");
        return;
    }
    msg[len] = '\0';
    if (strcmp(name, "response") == 0) {
        if (s->plain_wait) {
            s->plain_wait = 0;
            sasl_plain(s, msg, len);
        } else if (!s->scram) {
            sasl_fail(s, "malformed-request");
        } else if (s->scram->step == 0) {
            scram_first(s, s->scram->mech, msg, len);
        } else {
            scram_final(s, msg, len);
        }
        return;
    }
    if (strcmp(name, "auth") != 0) {
        c2s_stream_error(c, "unsupported-stanza-type", NULL);
        return;
    }
    s->sasl_tried = 1;
    sasl_end(s);
    enum sasl_mech mech = sasl_mech_from_name(xml_attr(st, "mechanism"));
    int tls = conn_is_tls(c);
    if (mech == SASL_NONE || (mech == SASL_PLAIN && !tls && !g_config->plain_without_tls)) {
        sasl_fail(s, mech == SASL_PLAIN ? "encryption-required" : "invalid-mechanism");
        return;
    }
    if (!tls && g_config->require_tls) {
        sasl_fail(s, "encryption-required");
        return;
    }
    if (!*xml_text(st)) {
        /* RFC 6120 §6.4.2, RFC 4422 §5: no initial response (as opposed to
         * an empty one, "="): ask for it with an empty challenge and take
         * the <response/> as the first message. */
        if (mech == SASL_PLAIN) {
            s->plain_wait = 1;
        } else if ((s->scram = calloc(1, sizeof(*s->scram))) != NULL) {
            s->scram->mech = mech;
        } else {
            sasl_fail(s, "temporary-auth-failure");
            return;
        }
        sasl_reply(s, "challenge", NULL);
    } else if (mech == SASL_PLAIN) {
        sasl_plain(s, msg, len);
    } else {
        scram_first(s, mech, msg, len);
    }
}

/* ---- binding ---- */

/* A stanza c2s writes to a bound client itself passes the services that
 * track output, as the router's do (XEP-0198 counts it). */
static void send_stanza(struct c2s *s, const struct buf *b)
{
    c2s_send(s->conn, buf_ptr(b), buf_len(b));
}

/* One iq answer on the connection itself (before binding the router cannot
 * send for us): type, the request's id escaped, and an optional pre-escaped
 * payload; NULL payload gives an empty element. */
static void iq_reply_id(struct c2s *s, const char *id, const char *type, const char *payload)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<iq type='%s' id='", type);
    buf_append_xml(&b, id ? id : "", id ? strlen(id) : 0);
    buf_puts(&b, payload ? "'>" : "'/>");
    if (payload) {
        buf_puts(&b, payload);
        buf_puts(&b, "</iq>");
    }
    send_stanza(s, &b);
    buf_free(&b);
}

static void iq_reply(struct c2s *s, struct xml_node *iq, const char *type, const char *payload)
{
    iq_reply_id(s, xml_attr(iq, "id"), type, payload);
}

static void iq_error(struct c2s *s, struct xml_node *iq, const char *type, const char *cond)
{
    char err[200];
    snprintf(err, sizeof(err), "<error type='%s'><%s xmlns='" NS_STANZAS "'/></error>", type,
             cond);
    iq_reply(s, iq, "error", err);
}

static void iq_bind_result(struct c2s *s, struct xml_node *iq, const char *jid)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<bind xmlns='" NS_BIND "'><jid>");
    buf_append_xml(&b, jid, strlen(jid));
    buf_puts(&b, "</jid></bind>");
    iq_reply(s, iq, "result", buf_ptr(&b));
    buf_free(&b);
}

/* Whether the account of the full JID norm already has max_resources_per_account
 * resources other than norm itself (a bind of the same resource replaces it).
 * Sessions kept for a resumption count, each one gets carbons and presence;
 * but when one of them is what stands in the way, it ends (its messages go
 * to offline storage, as at its timeout) rather than the live client being
 * refused: a phone that lost its resumption id must still get in. */
static int resources_full(const char *norm)
{
    const char *slash = strchr(norm, '/');
    char bare[JID_MAX + 1];
    struct session *idle = NULL;
    int n = 0;
    if (!slash || (size_t)(slash - norm) >= sizeof(bare)) {
        return 0;
    }
    memcpy(bare, norm, (size_t)(slash - norm));
    bare[slash - norm] = '\0';
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (strcmp(r->jid, norm) != 0) {
            n++;
            idle = r->conn ? idle : r;
        }
    }
    if (n < g_config->max_resources_per_account) {
        return 0;
    }
    if (idle) {
        log_info("%s: resource cap reached, ending the session kept for resumption", idle->jid);
        router_unbind(idle);
        return 0;
    }
    return 1;
}

/* Binds the resource want (one the server makes up when it is empty) to a
 * new session; norm gets the session's JID. -1 on failure with *cond the iq
 * error condition, or NULL when the stream was ended instead. */
static int bind_session(struct c2s *s, const char *want, char norm[JID_MAX + 1], const char **cond)
{
    struct conn *c = s->conn;
    char res[64], full[JID_MAX + 1];
    *cond = "bad-request";
    if (!*want) {
        /* RFC 6120 §7.6: the server generates a resource the client did not ask for. */
        memcpy(res, "xmppd-", 6);
        tls_random_hex(res + 6, 6);
        want = res;
    } else if (jid_resource_valid(want) < 0) {
        return -1;
    }
    if ((size_t)snprintf(full, sizeof(full), "%s/%s", s->user, want) >= sizeof(full) ||
        jid_parse(full, norm, JID_MAX + 1, NULL) < 0) {
        return -1;
    }
    if (!store_account_exists(s->user)) {
        /* Removed since the password was checked (xmppd deluser): a session
         * bound now would outlive the account. */
        c2s_stream_error(c, "not-authorized", "account removed");
        *cond = NULL;
        return -1;
    }
    if (resources_full(norm)) {
        /* RFC 6120 §7.6.2.1: the account has as many resources as allowed. */
        log_limited("resource cap", log_key(c), L_NOTICE, "%s bind refused: %d resources",
                    conn_label(c), g_config->max_resources_per_account);
        *cond = "resource-constraint";
        return -1;
    }
    struct session *sess = router_session_new(c, norm);
    if (!sess) {
        *cond = "resource-constraint";
        return -1;
    }
    struct session *old = NULL;
    router_bind(sess, &old);
    if (old && !old->conn) {
        /* Kept for a resumption (XEP-0198) with no stream to tell: it ends
         * here (router_bind took it off the table already). */
        router_unbind(old);
    } else if (old) {
        /* RFC 6120 §7.7.2.2: we let the new session win; the old one is told why. */
        log_limited("resource conflicts", log_key(c), L_INFO,
                    "%s resource conflict: replacing connection %u", conn_label(c), old->conn->id);
        c2s_stream_error(old->conn, "conflict", "Replaced by new connection");
    }
    memcpy(sess->lang, s->lang, sizeof(sess->lang));
    s->sess = sess;
    c->state = CONN_BOUND;
    log_limited("binds", log_key(c), L_INFO, "%s bound", conn_label(c));
    hook_run(HOOK_SESSION_BOUND, sess, NULL, NULL);
    return 0;
}

static void handle_bind(struct c2s *s, struct xml_node *iq, struct xml_node *bind)
{
    char norm[JID_MAX + 1];
    const char *cond;
    struct xml_node *r = xml_child(bind, "resource", NS_BIND);
    if (bind_session(s, r ? xml_text(r) : "", norm, &cond) == 0) {
        iq_bind_result(s, iq, norm);
    } else if (cond) {
        iq_error(s, iq, strcmp(cond, "bad-request") == 0 ? "modify" : "wait", cond);
    }
}

/* ---- one-step logins (c2s.h; XEP-0078 in legacy.c) ---- */

int c2s_sasl_tried(const struct conn *c)
{
    return c->c2s->sasl_tried;
}

int c2s_login_banned(struct conn *c, const char *user)
{
    struct c2s *s = c->c2s;
    note_who(s, user);
    return account_banned(c->addr, s->who);
}

void c2s_login_refused(struct conn *c, const char *xml)
{
    struct c2s *s = c->c2s;
    conn_send(c, xml, strlen(xml));
    s->failures++;
    after_failure(s);
}

void c2s_login_wrong_password(struct conn *c, const char *xml, const char *what)
{
    answer_wrong_password(c->c2s, xml, what);
}

int c2s_login_check(struct conn *c, const char *bare, const char *pw, size_t pwlen,
                    const char *resource, const char *id, c2s_login_fn done)
{
    struct plain_login l = {bare, "", pw, pwlen, resource, id, done};
    return plain_queue(c->c2s, &l);
}

int c2s_login_bind(struct conn *c, const char *resource, const char *how, const char **cond)
{
    struct c2s *s = c->c2s;
    char norm[JID_MAX + 1];
    const struct plain_job *j = s->answering;
    *cond = "internal-server-error";
    if (!j || !j->ok) {
        /* Only the account whose password was just checked, never one a
         * caller names: no module can log a stream in without it. */
        return -1;
    }
    *cond = NULL;
    if (authenticated(s, j->bare, how) < 0) {
        return -1;
    }
    return bind_session(s, resource, norm, cond);
}

/* The one writer of send_stanza (above). */
void c2s_send(struct conn *c, const char *xml, size_t len)
{
    struct c2s *s = c->c2s;
    if (s->sess && hook_run_output(s->sess, xml, len) != 0) {
        return;
    }
    conn_send(c, xml, len);
}

struct xml_node *c2s_preauth_query(struct xml_node *iq, const char *ns)
{
    struct xml_node *q = xml_first_child(iq);
    const char *type = xml_attr(iq, "type");
    const char *to = xml_attr(iq, "to");
    char norm[JID_MAX + 1];
    if (!q || xml_next(q) || strcmp(xml_name(q), "query") != 0 || strcmp(xml_ns(q), ns) != 0 ||
        !type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
        return NULL;
    }
    if (to && !is_our_domain(to, norm)) {
        return NULL;
    }
    return q;
}

/* ---- stanza dispatch by state ---- */

/* The pre-auth iq nobody serves here, with the XEP-0086 code old clients
 * read (as legacy.c's errors carry). */
static void preauth_unavailable(struct c2s *s, struct xml_node *iq)
{
    iq_reply(s, iq, "error",
             "<error code='503' type='cancel'><service-unavailable xmlns='" NS_STANZAS
             "'/></error>");
}

static int is_client_iq(const struct xml_node *st)
{
    return strcmp(xml_name(st), "iq") == 0 && strcmp(xml_ns(st), NS_CLIENT) == 0;
}

static void stanza_preauth(struct c2s *s, struct xml_node *st)
{
    struct conn *c = s->conn;
    const char *ns = xml_ns(st);
    if (strcmp(ns, NS_TLS) == 0 && strcmp(xml_name(st), "starttls") == 0 && !conn_is_tls(c) &&
        !c->frame_out && !s->scram && !s->plain_wait && !s->user) {
        send_str(s, "<proceed xmlns='" NS_TLS "'/>");
        conn_starttls(c);
        s->header_sent = 0;
        xml_parser_reset(s->parser);
        return;
    }
    if (strcmp(ns, NS_SASL) == 0) {
        handle_auth(s, st);
        return;
    }
    /* XEP-0077 in-band registration and XEP-0078 logins happen before
     * authentication, and only where authentication itself would be allowed
     * (after TLS when required). */
    int iq_ok = is_client_iq(st) && (conn_is_tls(c) || !g_config->require_tls);
    if (iq_ok && hook_run_preauth_iq(c, st) == 0) {
        return;
    }
    /* XEP-0077 §3.1: a server built without in-band registration
     * (WITH_REGISTRATION=no) still answers a client that tries it. */
    if (iq_ok && c2s_preauth_query(st, NS_REGISTER_IQ)) {
        preauth_unavailable(s, st);
        return;
    }
    /* RFC 6120 §4.9.3.12: stanzas before authentication. */
    c2s_stream_error(c, "not-authorized", NULL);
}

static void stanza_bind(struct c2s *s, struct xml_node *st)
{
    const char *type = xml_attr(st, "type");
    struct xml_node *bind = xml_child(st, "bind", NS_BIND);
    if (!is_client_iq(st)) {
        c2s_stream_error(s->conn, "not-authorized", NULL);
    } else if (bind && type && strcmp(type, "set") == 0) {
        handle_bind(s, st, bind);
    } else {
        iq_error(s, st, "auth", "not-authorized");
    }
}

/* A top-level element after authentication that is not a stanza (XEP-0198
 * <enable/>, <r/>; XEP-0352 <active/>): to the service that registered its
 * namespace (hooks.h). -1 when none did. */
static int nonza(struct c2s *s, struct xml_node *el)
{
    hook_nonza_fn fn = hook_find_nonza(xml_ns(el));
    return fn ? fn(s->conn, s->sess, el) : -1;
}

static int on_stanza(void *ud, struct xml_node *st)
{
    struct c2s *s = ud;
    struct conn *c = s->conn;
    if (c->state == CONN_CLOSING) {
        xml_free(st);
        return -1;
    }
    if ((c->state == CONN_BOUND || c->state == CONN_AUTHENTICATED) &&
        strcmp(xml_ns(st), NS_CLIENT) != 0 && nonza(s, st) == 0) {
        xml_free(st);
    } else if (c->state == CONN_BOUND) {
        const char *name = xml_name(st);
        if (strcmp(xml_ns(st), NS_CLIENT) != 0 ||
            (strcmp(name, "message") != 0 && strcmp(name, "presence") != 0 &&
             strcmp(name, "iq") != 0)) {
            xml_free(st);
            c2s_stream_error(c, "unsupported-stanza-type", NULL);
            return -1;
        }
        hook_run(HOOK_STANZA_IN, s->sess, st, NULL); /* XEP-0198 counts it */
        if (strcmp(name, "iq") == 0 && xml_child(st, "session", NS_SESSION) && !xml_attr(st, "to")) {
            iq_reply(s, st, "result", NULL);
            xml_free(st);
            return 0;
        }
        router_route(s->sess, st);
    } else if (c->state == CONN_AUTHENTICATED) {
        stanza_bind(s, st);
        xml_free(st);
    } else {
        stanza_preauth(s, st);
        xml_free(st);
    }
    /* Stop parsing this chunk at a TLS switch, a close or a throttled answer;
     * a stream restart (state change) continues with the same bytes. */
    if (c->state == CONN_CLOSING || c->start_tls || c->held) {
        return -1;
    }
    return 0;
}

static const struct xml_callbacks callbacks = {on_stream_open, on_stanza, on_stream_close};

int c2s_init(void)
{
    /* For a restart within one process (tests); a fresh one has a zeroed
     * table, and writing it would turn 16 KiB of untouched pages resident. */
    if (throttle_used) {
        memset(throttle, 0, sizeof(throttle));
        throttle_used = 0;
    }
    unsigned char fresh[sizeof(secret)];
    int r = tls_random(fresh, sizeof(fresh)) < 0 ? -1 : store_secret(secret, sizeof(secret), fresh);
    sasl_wipe(fresh, sizeof(fresh));
    if (r < 0) {
        log_error("cannot read or make the server secret in %s", store_dir());
        return -1;
    }
    return 0;
}

int c2s_attach(struct conn *c)
{
    struct c2s *s = calloc(1, sizeof(*s));
    if (!s) {
        return -1;
    }
    s->conn = c;
    s->opened = g_now;
    s->parser = xml_parser_new(server_xml_limits(), &callbacks, s);
    if (!s->parser) {
        free(s);
        return -1;
    }
    c->c2s = s;
    return 0;
}

static const char *xml_err_condition(enum xml_err e)
{
    switch (e) {
    case XML_ERR_RESTRICTED: return "restricted-xml";
    case XML_ERR_BAD_PREFIX: return "bad-namespace-prefix";
    case XML_ERR_LIMIT: return "policy-violation";
    case XML_ERR_NOMEM: return "resource-constraint";
    default: return "not-well-formed";
    }
}

void c2s_feed(struct conn *c, const char *data, size_t len)
{
    struct c2s *s = c->c2s;
    if (!s || c->state == CONN_CLOSING) {
        return;
    }
    enum xml_err e = xml_parser_feed(s->parser, data, len);
    if (e == XML_ERR_STOPPED && c->held && c->state != CONN_CLOSING) {
        /* A client may pipeline its next attempt behind a failed one: keep
         * the rest of this read (one read, so bounded) for when the held
         * answer goes out. Bytes after <starttls/> are dropped on purpose:
         * they were sent in the clear (CVE-2011-0411-style injection). */
        size_t used = xml_parser_consumed(s->parser);
        buf_clear(&s->held_input);
        if (used < len && buf_append(&s->held_input, data + used, len - used) < 0) {
            c2s_stream_error(c, "resource-constraint", NULL);
        }
    } else if (e != XML_OK && e != XML_ERR_STOPPED) {
        c2s_stream_error(c, xml_err_condition(e), xml_err_str(e));
    }
}

void c2s_detach(struct conn *c)
{
    struct c2s *s = c->c2s;
    if (!s) {
        return;
    }
    if (s->sess) {
        /* A link lost without a clean close: a service may keep the session
         * for a resumption (XEP-0198 §5); it ends it later itself. */
        if (!s->ended && hook_run(HOOK_SESSION_LOST, s->sess, NULL, NULL) == 1) {
            s->sess->conn = NULL;
        } else {
            router_unbind(s->sess);
        }
        s->sess = NULL;
    }
    if (s->plain) {
        worker_abandon(&s->plain->w); /* its answer would go nowhere */
    }
    xml_parser_free(s->parser);
    sasl_end(s);
    free(s->user);
    free(s->delayed);
    buf_free(&s->held_input);
    free(s);
    c->c2s = NULL;
}

void c2s_drained(struct conn *c)
{
    struct c2s *s = c->c2s;
    if (s && s->sess && c->state == CONN_BOUND) {
        offline_written(s->sess);
    }
}

static void send_ping(struct c2s *s)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='get' id='xmppd-ping' from='");
    buf_append_xml(&b, g_config->domain, strlen(g_config->domain));
    buf_puts(&b, "'><ping xmlns='" NS_PING "'/></iq>");
    send_stanza(s, &b);
    buf_free(&b);
}

/* Reading resumed: parse what arrived behind the held SASL exchange. */
static void resume_held(struct c2s *s)
{
    if (buf_len(&s->held_input) > 0) {
        struct buf rest = s->held_input;
        buf_init(&s->held_input, 0);
        c2s_feed(s->conn, buf_ptr(&rest), buf_len(&rest));
        buf_free(&rest);
    }
}

void c2s_tick(struct conn *c)
{
    struct c2s *s = c->c2s;
    if (!s || c->state == CONN_CLOSING) {
        return;
    }
    if (s->delayed && g_now >= s->delayed_until) {
        send_str(s, s->delayed);
        free(s->delayed);
        s->delayed = NULL;
        conn_hold(c, 0);
        after_failure(s);
        if (c->state == CONN_CLOSING) {
            return;
        }
        resume_held(s);
    }
    if (c->state != CONN_BOUND) {
        if (g_now - s->opened > g_config->preauth_timeout) {
            c2s_stream_error(c, "connection-timeout", NULL);
        }
        return;
    }
    /* XEP-0199 §4.2: ping a silent client, drop it when the ping goes unanswered. */
    time_t idle = g_now - c->last_read;
    if (c->ping_sent && idle > g_config->ping_interval + g_config->ping_timeout) {
        c2s_stream_error(c, "connection-timeout", NULL);
    } else if (!c->ping_sent && idle > g_config->ping_interval) {
        c->ping_sent = 1;
        send_ping(s);
    }
}

/* push: component.c ends its streams with the same conditions. */
const char *c2s_xml_error(enum xml_err e)
{
    return xml_err_condition(e);
}

/* ---- XEP-0198 resumption (sm.c) ---- */

const char *c2s_user(const struct conn *c)
{
    return c->c2s && c->state == CONN_AUTHENTICATED ? c->c2s->user : NULL;
}

void c2s_resume(struct conn *c, struct session *sess)
{
    struct conn *old = sess->conn;
    if (old && old->c2s && old->c2s->sess == sess) {
        /* The client did not notice its old link die: that stream ends
         * without the session, which is this one's now. */
        old->c2s->sess = NULL;
        old->c2s->ended = 1;
        c2s_stream_error(old, "conflict", "Replaced by a resumed stream");
        if (!old->closed && old->state != CONN_CLOSING) {
            conn_close(old, 0);
        }
    }
    sess->conn = c;
    c->c2s->sess = sess;
    c->state = CONN_BOUND;
    log_limited("binds", log_key(c), L_INFO, "%s resumed %s", conn_label(c), sess->jid);
}

/* A wrong XEP-0114 handshake (component.c) is a failed login of
 * its address: without it a component secret could be guessed one
 * connection per guess, as fast as the listener accepts, while passwords
 * are throttled. Counts towards auth_fail_ban_address only (no account). */
void c2s_auth_failed_address(const char *addr)
{
    struct throttle *a = throttle_find(addr, NULL, 1);
    a->fails++;
    a->last = g_now;
}

int c2s_partial(const struct conn *c)
{
    return c->c2s && xml_parser_pending(c->c2s->parser) > 0;
}

/* ---- password checks for no stream (web admin, issue 14) ---- */

/* The throttle counts the attempt as a SASL one: a wrong password, an
 * unknown account and an account allow refuses alike. */
static void check_finished(struct plain_job *j)
{
    if (j->w.cancelled) {
        j->check_done(j->ud, j->bare, -1, 0);
        plain_job_free(j);
        return;
    }
    int ok = j->ok && (!j->allow || j->allow(j->bare));
    int delay = 0;
    if (ok) {
        throttle_clear(j->addr, j->who);
    } else {
        delay = throttle_delay(j->addr, j->who);
    }
    j->check_done(j->ud, j->bare, ok, delay);
    plain_job_free(j);
}

int c2s_password_check(const char *addr, const char *user, const char *pw, size_t pwlen,
                       int (*allow)(const char *bare), c2s_check_fn done, void *ud)
{
    unsigned char who[DIGEST_LEN];
    char bare[JID_MAX + 1];
    who_digest(user, who);
    if (account_banned(addr, who)) {
        return 1;
    }
    int known = user_to_bare(user, bare, sizeof(bare)) == 0;
    if (!known) {
        strcpy(bare, "-");
    }
    struct plain_login l = {bare, "", pw, pwlen, NULL, NULL, NULL};
    struct plain_job *j = plain_job_new(&l);
    if (!j) {
        return -1;
    }
    if (job_prepare(j, who, known) < 0) {
        plain_job_free(j);
        return -1;
    }
    j->fd = -1;
    j->check_done = done;
    j->ud = ud;
    j->allow = allow;
    memcpy(j->who, who, DIGEST_LEN);
    snprintf(j->addr, sizeof(j->addr), "%s", addr);
    worker_run(&j->w); /* without a thread, check_finished has run on return */
    return 0;
}
