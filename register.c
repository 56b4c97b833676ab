/* register.c: XEP-0077 in-band registration (WITH_REGISTRATION). Before authentication c2s.c
 * hands us jabber:iq:register iqs (sign-up, off unless allow_registration,
 * throttled per address); after binding, a user may change the password or
 * cancel the account (allow_password_change). Passwords only pass through
 * here on their way to server_make_account: never logged, never echoed back.
 * Must not: touch sockets (conn_send / router_send) or files (store.c). */
#include "im.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "c2s.h"
#include "hooks.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_REGISTER "jabber:iq:register"
#define PASSWORD_MAX 1023 /* what "xmppd adduser" accepts too */

/* Sign-up throttle (registration_throttle, registration_throttle_total):
 * at most COUNT accounts per address per SECONDS, and a cap on all addresses
 * together; addresses in registration_exempt are neither limited nor counted.
 * The per-address table is fixed (bounded whatever the number of peers); a
 * collision evicts, and the total cap is what still holds against many
 * addresses. Both read g_config at each use, so SIGHUP applies new values. */
struct reg_slot {
    char addr[48];
    int count;
    time_t start;
};

static struct reg_slot reg_slots[LIMIT_REGISTER_SLOTS];
static int reg_total;
static time_t reg_total_start;

static const char instructions[] = "Choose a username and password for use with this server.";

/* ---- throttle ---- */

static struct reg_slot *reg_slot(const char *addr)
{
    unsigned h = 5381;
    for (const char *p = addr; *p; p++) {
        h = h * 33 + (unsigned char)*p;
    }
    struct reg_slot *t = &reg_slots[h % LIMIT_REGISTER_SLOTS];
    if (strcmp(t->addr, addr) != 0 || g_now - t->start >= g_config->registration_throttle.seconds) {
        snprintf(t->addr, sizeof(t->addr), "%s", addr);
        t->count = 0;
        t->start = g_now;
    }
    return t;
}

static int reg_exempt(const char *addr)
{
    return config_prefixes_match(&g_config->registration_exempt, addr);
}

static int reg_allowed(const char *addr)
{
    if (reg_exempt(addr)) {
        return 1;
    }
    if (g_now - reg_total_start >= g_config->registration_throttle_total.seconds) {
        reg_total = 0;
        reg_total_start = g_now;
    }
    return reg_total < g_config->registration_throttle_total.count &&
           reg_slot(addr)->count < g_config->registration_throttle.count;
}

static void reg_count(const char *addr)
{
    if (!reg_exempt(addr)) {
        reg_total++;
        reg_slot(addr)->count++;
    }
}

/* ---- answers on an unauthenticated connection (no router session yet) ---- */

static void preauth_reply(struct conn *c, const struct xml_node *iq, const char *payload)
{
    struct buf b;
    const char *id = xml_attr(iq, "id");
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='result' id='");
    buf_append_xml(&b, id ? id : "", id ? strlen(id) : 0);
    if (payload) {
        buf_puts(&b, "'>");
        buf_puts(&b, payload);
        buf_puts(&b, "</iq>");
    } else {
        buf_puts(&b, "'/>");
    }
    conn_send(c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
}

/* The error carries no copy of the query: it may hold a password (XEP-0077
 * §3.3 says so for password changes; the same reason holds for sign-up). */
static void preauth_error(struct conn *c, const struct xml_node *iq, const char *type,
                          const char *cond, const char *text)
{
    struct buf b;
    const char *id = xml_attr(iq, "id");
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='error' id='");
    buf_append_xml(&b, id ? id : "", id ? strlen(id) : 0);
    buf_printf(&b, "'><error type='%s'><%s xmlns='" NS_STANZAS "'/>", type, cond);
    if (text) {
        buf_puts(&b, "<text xmlns='" NS_STANZAS "'>");
        buf_append_xml(&b, text, strlen(text));
        buf_puts(&b, "</text>");
    }
    buf_puts(&b, "</error></iq>");
    conn_send(c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
}

/* A password may travel in the clear only where PLAIN may (plain_without_tls). */
static int channel_ok(const struct conn *c)
{
    return conn_is_tls(c) || g_config->plain_without_tls;
}

/* Username and password children of a query; NULL when absent. */
static const char *field(const struct xml_node *q, const char *name)
{
    struct xml_node *n = xml_child(q, name, NS_REGISTER);
    return n ? xml_text(n) : NULL;
}

static int password_ok(const char *pw)
{
    size_t len = pw ? strlen(pw) : 0;
    return len > 0 && len <= PASSWORD_MAX;
}

static void preauth_set(struct conn *c, struct xml_node *iq, struct xml_node *q)
{
    const char *user = field(q, "username");
    const char *pw = field(q, "password");
    char local[JID_PART_MAX + 1], bare[JID_MAX + 1];
    if (xml_child(q, "remove", NS_REGISTER)) {
        /* XEP-0077 §3.2: cancelling needs a known sender, i.e. a login. */
        preauth_error(c, iq, "modify", "unexpected-request", NULL);
        return;
    }
    /* XEP-0077 §3.1: every field of the form, and no empty password. */
    if (!user || !*user || !password_ok(pw)) {
        preauth_error(c, iq, "modify", "not-acceptable", "Username and password are required");
        return;
    }
    if (jid_local_valid(user, local, sizeof(local)) < 0 ||
        (size_t)snprintf(bare, sizeof(bare), "%s@%s", local, g_config->domain) >= sizeof(bare) ||
        !store_account_name_ok(bare)) { /* valid, but its directory name would not fit */
        preauth_error(c, iq, "modify", "not-acceptable", "This username is not allowed");
        return;
    }
    if (store_account_exists(bare)) {
        preauth_error(c, iq, "cancel", "conflict", NULL);
        return;
    }
    /* A new name must not mix scripts (UTS #39 single-script guard): "аlice"
     * with a Cyrillic 'а' would pass for alice. */
    if (!jid_local_new_ok(local)) {
        log_notice("%s registration refused: mixed-script username", conn_label(c));
        preauth_error(c, iq, "modify", "not-acceptable", "This username mixes scripts");
        return;
    }
    if (!reg_allowed(c->addr)) {
        /* XEP-0077 §3.1.1: not-acceptable for too many registrations; 'wait'
         * because it works again later (as Prosody answers). */
        log_limited("refused sign-ups", c->addr, L_NOTICE,
                    "%s registration refused: too many sign-ups", conn_label(c));
        preauth_error(c, iq, "wait", "not-acceptable", "Too many registrations, try later");
        return;
    }
    int rc = account_make(bare, pw);
    if (rc == STORE_EEXIST) {
        preauth_error(c, iq, "cancel", "conflict", NULL);
        return;
    }
    if (rc < 0) {
        log_warn("%s registration of %s failed (%d)", conn_label(c), bare, rc);
        preauth_error(c, iq, "wait", "internal-server-error", NULL);
        return;
    }
    reg_count(c->addr);
    log_notice("%s registered %s", conn_label(c), bare);
    preauth_reply(c, iq, NULL);
}

static int register_preauth_iq(struct conn *c, struct xml_node *iq)
{
    struct xml_node *q = c2s_preauth_query(iq, NS_REGISTER);
    if (!q) {
        return -1;
    }
    int get = strcmp(xml_attr(iq, "type"), "get") == 0;
    if (!g_config->allow_registration) {
        /* No XEP-0077 condition for "sign-up is off"; its tables answer
         * not-allowed where an operation is disabled for everyone (§3.2,
         * §3.3), and the stream feature is not offered. */
        preauth_error(c, iq, "cancel", "not-allowed", NULL);
        return 0;
    }
    if (!channel_ok(c)) {
        preauth_error(c, iq, "modify", "not-authorized", "Encryption required");
        return 0;
    }
    if (get) {
        /* XEP-0077 §3.1: unauthenticated means "not registered yet". */
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "<query xmlns='" NS_REGISTER "'><instructions>");
        buf_append_xml(&b, instructions, strlen(instructions));
        buf_puts(&b, "</instructions><username/><password/></query>");
        preauth_reply(c, iq, buf_ptr(&b));
        buf_free(&b);
        return 0;
    }
    preauth_set(c, iq, q);
    return 0;
}

/* ---- a bound user: registered info, password change, cancellation ---- */

/* An iq error without the original payload (XEP-0077 §3.3: it holds the
 * password), unlike router_bounce. */
static void bound_error(struct session *s, const struct xml_node *iq, const char *type,
                        const char *cond)
{
    const char *to = xml_attr(iq, "to");
    im_iq_error(s, iq, to ? to : g_config->domain, type, cond, NULL, NULL, NULL);
}

static void registered_info(struct session *s, struct xml_node *iq, const char *bare)
{
    /* XEP-0077 §3.1: <registered/>, what is on file, never the password. */
    struct xml_node *q = xml_node_new("query", NS_REGISTER);
    const char *at = strchr(bare, '@');
    if (!q) {
        bound_error(s, iq, "wait", "resource-constraint");
        return;
    }
    xml_add_child(q, "registered", NS_REGISTER);
    struct xml_node *ins = xml_add_child(q, "instructions", NS_REGISTER);
    struct xml_node *u = xml_add_child(q, "username", NS_REGISTER);
    xml_add_child(q, "password", NS_REGISTER);
    if (ins) {
        xml_add_text(ins, instructions, strlen(instructions));
    }
    if (u && at) {
        xml_add_text(u, bare, (size_t)(at - bare));
    }
    router_iq_result(s, iq, q);
}

static void cancel_account(struct session *s, struct xml_node *iq, struct xml_node *q,
                           const char *bare)
{
    if (xml_first_child(q) != xml_child(q, "remove", NS_REGISTER) || xml_next(xml_first_child(q))) {
        bound_error(s, iq, "modify", "bad-request"); /* §3.2: remove must be alone */
        return;
    }
    int rc = store_account_delete(bare);
    if (rc < 0 && rc != STORE_ENOENT) {
        log_warn("%s cannot delete account %s (%d)", conn_label(s->conn), bare, rc);
        bound_error(s, iq, "wait", "internal-server-error");
        return;
    }
    log_notice("%s cancelled account %s", conn_label(s->conn), bare);
    router_iq_result(s, iq, NULL);
    account_removed(bare); /* its contacts are told, its sessions end */
}

static void change_password(struct session *s, struct xml_node *iq, struct xml_node *q,
                            const char *bare)
{
    const char *user = field(q, "username");
    const char *pw = field(q, "password");
    char local[JID_PART_MAX + 1], norm[JID_MAX + 1];
    if (!user) {
        bound_error(s, iq, "modify", "bad-request"); /* §3.3: username is required */
        return;
    }
    /* The username may be the localpart or the bare JID (XEP-0077 §3.3 shows
     * both); it must name the logged-in account. */
    int same =
        (jid_local_valid(user, local, sizeof(local)) == 0 &&
         (size_t)snprintf(norm, sizeof(norm), "%s@%s", local, g_config->domain) < sizeof(norm) &&
         strcmp(norm, bare) == 0) ||
        (jid_parse(user, norm, sizeof(norm), NULL) == 0 && strcmp(norm, bare) == 0);
    if (!same) {
        bound_error(s, iq, "modify", "bad-request");
        return;
    }
    if (!password_ok(pw)) {
        /* §3.3: an empty password never replaces the current one. */
        bound_error(s, iq, "modify", "not-acceptable");
        return;
    }
    if (!channel_ok(s->conn)) {
        bound_error(s, iq, "modify", "not-authorized"); /* §3.3: channel not safe */
        return;
    }
    int rc = account_set_password(bare, pw);
    if (rc < 0) {
        log_warn("%s password change for %s failed (%d)", conn_label(s->conn), bare, rc);
        bound_error(s, iq, "wait", "internal-server-error");
        return;
    }
    log_notice("%s changed the password of %s", conn_label(s->conn), bare);
    router_iq_result(s, iq, NULL);
}

static int register_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                       const char *to_bare)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    /* Addressed to the server (XEP-0077 §3.3 example) or, with no 'to', to the
     * user's own account. Another account's registration is not ours to show. */
    if ((to_bare && strcmp(to_bare, bare) != 0) || strcmp(xml_name(payload), "query") != 0) {
        return -1;
    }
    if (im_is_get(iq)) {
        registered_info(s, iq, bare);
        return 0;
    }
    if (!g_config->allow_password_change) {
        bound_error(s, iq, "cancel", "not-allowed"); /* §3.2, §3.3 */
        return 0;
    }
    if (xml_child(payload, "remove", NS_REGISTER)) {
        cancel_account(s, iq, payload, bare);
    } else if (xml_child(payload, "password", NS_REGISTER) ||
               xml_child(payload, "username", NS_REGISTER)) {
        change_password(s, iq, payload, bare);
    } else {
        bound_error(s, iq, "modify", "bad-request");
    }
    return 0;
}

/* XEP-0077 §4: advertised where authentication is offered, when sign-up is. */
static void register_feature(struct conn *c, struct buf *out)
{
    (void)c;
    if (g_config->allow_registration) {
        buf_puts(out, "<register xmlns='http://jabber.org/features/iq-register'/>");
    }
}

/* WITH_REGISTRATION (Makefile): linking this file in is what switches it on. */
HOOK_SERVICE(registration)
{
    hook_iq(NS_REGISTER, register_iq);
    hook_feature(HOOK_DISCO_SERVER, NS_REGISTER); /* XEP-0077 */
    hook_preauth_feature(register_feature);
    hook_preauth_iq(register_preauth_iq);
}
