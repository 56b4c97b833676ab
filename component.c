/* component.c: XEP-0114 external components. A component (a gateway, a push
 * app server, a bot) connects to component_interface:component_port, opens a
 * stream in jabber:component:accept to its domain, proves the shared secret
 * with <handshake/> (XEP-0114 §3), and then exchanges stanzas: whatever is
 * addressed to its domain or a JID under it reaches it through the router's
 * domain table, and what it sends is routed like a client's stanza, once its
 * `from` is checked to be its own. The secret is never logged.
 * Owns: the configured components and the stream state of their connections.
 * Must not: touch sockets (conn_* API) or files, or decide where a stanza goes
 * (router.c does): it only checks what a component may claim. It plugs into
 * server.c as a stream module with its own listener (server_listener, from
 * its constructor), so nothing above names it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s.h"
#include "hooks.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "tls.h"
#include "xml.h"

#define NS_ACCEPT "jabber:component:accept"

/* One configured component and, while it is connected, its connection. */
struct component {
    char domain[CONFIG_STR_MAX];
    char secret[LIMIT_COMPONENT_SECRET + 1];
    struct conn *conn; /* authenticated stream, NULL when not connected */
};

/* One component connection's stream state (struct conn's comp). */
struct component_stream {
    struct conn *conn;
    struct xml_parser *parser;
    struct component *claimed; /* the domain of the stream header */
    char stream_id[33];
    int header_sent;
    time_t opened;
};

static struct component comps[LIMIT_COMPONENTS];
static int ncomps;
static struct buf scratch; /* serialisation of stanzas to a component */

/* The listener is opened only when a component is configured. */
static int component_port(const char **addr)
{
    *addr = g_config->component_interface;
    return g_config->component.n > 0 ? g_config->component_port : 0;
}

static struct component *find_component(const char *domain)
{
    for (int i = 0; i < ncomps; i++) {
        if (strcmp(comps[i].domain, domain) == 0) {
            return &comps[i];
        }
    }
    return NULL;
}

/* ---- output ---- */

/* b, built for this one write, goes to c and is freed. */
static void send_buf(struct conn *c, struct buf *b)
{
    conn_send(c, buf_ptr(b), buf_len(b));
    buf_free(b);
}

static void send_header(struct component_stream *cs, const char *from)
{
    struct buf b;
    if (tls_random_hex(cs->stream_id, 16) < 0) {
        /* the handshake hashes this id: never a predictable one */
        log_error("%s component: no random bytes for a stream id", conn_label(cs->conn));
        conn_close(cs->conn, 0);
        return;
    }
    buf_init(&b, 0);
    /* XEP-0114 §3: the server's answer header carries the component's name
     * as 'from' and the id the handshake hashes. */
    c2s_stream_head(&b, NS_ACCEPT);
    buf_printf(&b, " id='%s' from='", cs->stream_id);
    buf_append_xml(&b, from, strlen(from));
    buf_puts(&b, "'>");
    send_buf(cs->conn, &b);
    cs->header_sent = 1;
}

/* RFC 6120 §4.9: a stream error, then the stream's end and the close. */
static void stream_error(struct conn *c, const char *cond)
{
    struct component_stream *cs = c->comp;
    if (!cs || c->state == CONN_CLOSING || c->closed) {
        return;
    }
    log_limited("component stream errors", c->addr, L_NOTICE, "%s component stream error: %s",
                conn_label(c), cond);
    if (!cs->header_sent) {
        send_header(cs, g_config->domain);
    }
    struct buf b;
    buf_init(&b, 0);
    c2s_stream_error_tail(&b, cond, NULL, NULL);
    send_buf(c, &b);
    conn_close(c, 1);
}

/* The router's deliver callback for a component's domain: the stanza is
 * written without a namespace of its own (the router's trees are in
 * jabber:client), so that it takes the stream's jabber:component:accept. */
static int deliver(const struct xml_node *st, void *ud)
{
    struct component *k = ud;
    struct conn *c = k->conn;
    if (!c || c->closed || c->state != CONN_BOUND) {
        return -1;
    }
    buf_clear(&scratch);
    if (xml_serialize(st, NS_CLIENT, &scratch) < 0) {
        return -1;
    }
    /* Over outq_soft the sender is paused; past outq_hard the component is
     * disconnected (server.c), and the stanza bounces. */
    return conn_send(c, buf_ptr(&scratch), buf_len(&scratch));
}

/* ---- input ---- */

static int on_stream_open(void *ud, const struct xml_node *root)
{
    struct component_stream *cs = ud;
    struct conn *c = cs->conn;
    const char *to = xml_attr(root, "to");
    char norm[JID_MAX + 1];
    struct jid j;
    if (strcmp(xml_name(root), "stream") != 0 || strcmp(xml_ns(root), XML_NS_STREAM) != 0 ||
        strcmp(xml_default_ns(root), NS_ACCEPT) != 0) {
        stream_error(c, "invalid-namespace");
        return -1;
    }
    if (!to) {
        stream_error(c, "improper-addressing");
        return -1;
    }
    /* XEP-0114 §3: 'to' is the component's name; one we do not know is
     * host-unknown (RFC 6120 §4.9.3.6). */
    if (jid_parse(to, norm, sizeof(norm), &j) < 0 || j.local_len || j.resource_len ||
        !(cs->claimed = find_component(norm))) {
        stream_error(c, "host-unknown");
        return -1;
    }
    send_header(cs, cs->claimed->domain);
    c->state = CONN_STREAM_OPEN;
    return 0;
}

static int on_stream_close(void *ud)
{
    struct component_stream *cs = ud;
    if (cs->conn->state != CONN_CLOSING) {
        conn_send(cs->conn, "</stream:stream>", 16);
        conn_close(cs->conn, 1);
    }
    return -1;
}

/* Lower-case hex of SHA-1(stream id + secret), XEP-0114 §3. */
static void expected_handshake(const struct component_stream *cs, char out[41])
{
    char both[sizeof(cs->stream_id) + LIMIT_COMPONENT_SECRET];
    unsigned char md[20];
    size_t n = (size_t)snprintf(both, sizeof(both), "%s%s", cs->stream_id, cs->claimed->secret);
    tls_hash(TLS_SHA1, both, n, md);
    tls_hex(out, md, sizeof(md));
    memset(both, 0, sizeof(both));
}

/* Compares all 40 characters whatever the first difference, so that the time
 * an answer takes says nothing about how much of the digest was right. */
static int digest_matches(const char *got, const char *want)
{
    unsigned char diff = 0;
    if (strlen(got) != 40) {
        return 0;
    }
    for (int i = 0; i < 40; i++) {
        unsigned char g = (unsigned char)got[i];
        g = (g >= 'A' && g <= 'F') ? (unsigned char)(g + 32) : g; /* hex either case */
        diff |= (unsigned char)(g ^ (unsigned char)want[i]);
    }
    return diff == 0;
}

static void handshake(struct component_stream *cs, struct xml_node *el)
{
    struct conn *c = cs->conn;
    char want[41];
    if (strcmp(xml_name(el), "handshake") != 0 || strcmp(xml_ns(el), NS_ACCEPT) != 0) {
        stream_error(c, "not-authorized");
        return;
    }
    expected_handshake(cs, want);
    int ok = digest_matches(xml_text(el), want);
    memset(want, 0, sizeof(want));
    /* XEP-0114 §3: one connection per component name; the first one stays. */
    const char *why = !ok ? ": wrong secret" : cs->claimed->conn ? " is connected already" : NULL;
    if (why) {
        log_limited("component logins", c->addr, L_NOTICE, "%s component %s%s", conn_label(c),
                    cs->claimed->domain, why);
        if (!ok) {
            c2s_auth_failed_address(c->addr); /* guessing is throttled as for passwords */
        }
        stream_error(c, ok ? "conflict" : "not-authorized");
        return;
    }
    cs->claimed->conn = c;
    c->state = CONN_BOUND;
    conn_authenticated(c);
    conn_send(c, "<handshake/>", 12);
    log_notice("%s component %s connected", conn_label(c), cs->claimed->domain);
}

/* The `from` a component may use: its domain or a JID under it (XEP-0114
 * §3.2), else the stream ends with invalid-from (RFC 6120 §4.9.3.9).
 * Normalised into norm. */
static int from_ok(const struct component_stream *cs, const char *from, char *norm, size_t sz)
{
    struct jid j;
    size_t dl = strlen(cs->claimed->domain);
    return from && jid_parse(from, norm, sz, &j) == 0 && j.domain_len == dl &&
           memcmp(j.domain, cs->claimed->domain, dl) == 0;
}

static int is_stanza(const struct xml_node *st)
{
    const char *name = xml_name(st);
    const char *ns = xml_ns(st);
    return (strcmp(ns, NS_ACCEPT) == 0 || strcmp(ns, NS_CLIENT) == 0) &&
           (strcmp(name, "message") == 0 || strcmp(name, "presence") == 0 ||
            strcmp(name, "iq") == 0);
}

/* The router works on jabber:client trees: write the stanza with the
 * stream's namespace as the default and read it back in jabber:client, so
 * that its <body/> and <error/> are where every module looks for them. */
static struct xml_node *to_client_ns(const struct xml_node *st)
{
    return xml_copy_ns(st, NS_CLIENT, server_xml_limits(), &scratch);
}

static void stanza_bound(struct component_stream *cs, struct xml_node *st)
{
    char from[JID_MAX + 1];
    if (!is_stanza(st)) {
        stream_error(cs->conn, "unsupported-stanza-type");
        return;
    }
    if (!from_ok(cs, xml_attr(st, "from"), from, sizeof(from))) {
        stream_error(cs->conn, "invalid-from");
        return;
    }
    /* A component has no account for a missing 'to' to stand for. */
    if (!xml_attr(st, "to")) {
        stream_error(cs->conn, "improper-addressing");
        return;
    }
    struct xml_node *cl = to_client_ns(st);
    if (!cl || xml_set_attr(cl, "from", from) < 0) {
        xml_free(cl);
        stream_error(cs->conn, "resource-constraint");
        return;
    }
    router_route_domain(cl);
}

static int on_stanza(void *ud, struct xml_node *st)
{
    struct component_stream *cs = ud;
    struct conn *c = cs->conn;
    if (c->state == CONN_STREAM_OPEN) {
        handshake(cs, st);
    } else if (c->state == CONN_BOUND) {
        stanza_bound(cs, st);
    }
    xml_free(st);
    return c->state == CONN_CLOSING || c->closed ? -1 : 0;
}

static const struct xml_callbacks callbacks = {on_stream_open, on_stanza, on_stream_close};

/* ---- the stream module's entry points (server.c) ---- */

static int component_init(void)
{
    ncomps = 0;
    buf_init(&scratch, 0);
    for (int i = 0; i < g_config->component.n; i++) {
        struct component *k = &comps[ncomps++];
        memset(k, 0, sizeof(*k));
        snprintf(k->domain, sizeof(k->domain), "%s", g_config->component.c[i].domain);
        snprintf(k->secret, sizeof(k->secret), "%s", g_config->component.c[i].secret);
        if (router_domain_add(k->domain, deliver, k) < 0) {
            log_error("component %s: cannot register its domain with the router", k->domain);
            return -1;
        }
    }
    return 0;
}

static int component_attach(struct conn *c)
{
    struct component_stream *cs = calloc(1, sizeof(*cs));
    if (!cs) {
        return -1;
    }
    cs->conn = c;
    cs->opened = g_now;
    cs->parser = xml_parser_new(server_xml_limits(), &callbacks, cs);
    if (!cs->parser) {
        free(cs);
        return -1;
    }
    c->comp = cs;
    return 0;
}

static void component_feed(struct conn *c, const char *data, size_t len)
{
    struct component_stream *cs = c->comp;
    if (!cs || c->state == CONN_CLOSING) {
        return;
    }
    enum xml_err e = xml_parser_feed(cs->parser, data, len);
    if (e != XML_OK && e != XML_ERR_STOPPED) {
        stream_error(c, c2s_xml_error(e));
    }
}

static void component_detach(struct conn *c)
{
    struct component_stream *cs = c->comp;
    if (!cs) {
        return;
    }
    if (cs->claimed && cs->claimed->conn == c) {
        /* From now on its domain answers service-unavailable (router.c). */
        cs->claimed->conn = NULL;
        log_notice("%s component %s disconnected", conn_label(c), cs->claimed->domain);
    }
    xml_parser_free(cs->parser);
    free(cs);
    c->comp = NULL;
}

/* XEP-0199 §4.2, as for clients: a component whose link died silently
 * would hold its domain (a reconnect gets conflict) until it is found out. */
static void send_ping(struct component_stream *cs)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='get' id='xmppd-ping' from='");
    buf_append_xml(&b, g_config->domain, strlen(g_config->domain));
    buf_puts(&b, "' to='");
    buf_append_xml(&b, cs->claimed->domain, strlen(cs->claimed->domain));
    buf_puts(&b, "'><ping xmlns='urn:xmpp:ping'/></iq>");
    send_buf(cs->conn, &b);
}

static void component_tick(struct conn *c)
{
    struct component_stream *cs = c->comp;
    if (!cs || c->state == CONN_CLOSING) {
        return;
    }
    if (c->state != CONN_BOUND) {
        if (g_now - cs->opened > g_config->preauth_timeout) {
            stream_error(c, "connection-timeout");
        }
        return;
    }
    time_t idle = g_now - c->last_read;
    if (c->ping_sent && idle > g_config->ping_interval + g_config->ping_timeout) {
        stream_error(c, "connection-timeout");
    } else if (!c->ping_sent && idle > g_config->ping_interval) {
        c->ping_sent = 1;
        send_ping(cs);
    }
}

static void component_shutdown(struct conn *c)
{
    stream_error(c, "system-shutdown");
}

static const struct stream_ops component_ops = {component_attach, component_feed, component_detach,
                                                component_tick, component_shutdown, NULL, NULL};

HOOK_SERVICE(component)
{
    server_listener(&component_ops, component_init, component_port);
}
