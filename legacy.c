/* legacy.c: XEP-0078 (jabber:iq:auth), the obsolete non-SASL login
 * (WITH_LEGACY_AUTH), off unless legacy_auth is set. Old clients and load
 * generators (Tsung's stock scenarios) log in with one iq that carries
 * username, password and resource. The password is checked as a SASL PLAIN
 * one (c2s_login_check: same worker, same failure throttle) and the resource
 * is bound at once, without a stream restart. There is no digest method: it
 * needs the password in the clear, which is never stored.
 * Must not: touch sockets or files; it reaches the stream through c2s.h. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "c2s.h"
#include "config.h"
#include "hooks.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "sasl.h"
#include "server.h"
#include "xml.h"

#define NS_IQAUTH "jabber:iq:auth"
#define NS_IQAUTH_FEATURE "http://jabber.org/features/iq-auth"

/* XEP-0078 sends the password itself: only where SASL PLAIN may be used. */
static int legacy_auth_offered(const struct conn *c)
{
    return g_config->legacy_auth && (conn_is_tls(c) || g_config->plain_without_tls);
}

/* XEP-0078 §3.1 gives each error its legacy code (XEP-0086) too, for the
 * old clients this is for; policy-violation is younger than the codes. */
static void legacy_error_iq(struct buf *b, const char *id, const char *cond, const char *text)
{
    static const struct {
        const char *cond, *type, *code;
    } errs[] = {
        {"not-authorized", "auth", " code='401'"},
        {"not-acceptable", "modify", " code='406'"},
        {"bad-request", "modify", " code='400'"},
        {"policy-violation", "wait", ""},
        {"resource-constraint", "wait", " code='500'"},
        {"internal-server-error", "wait", " code='500'"},
        {"service-unavailable", "cancel", " code='503'"},
    };
    size_t i = 0;
    while (i + 1 < sizeof(errs) / sizeof(errs[0]) && strcmp(errs[i].cond, cond) != 0) {
        i++;
    }
    buf_puts(b, "<iq type='error' id='");
    buf_append_xml(b, id ? id : "", id ? strlen(id) : 0);
    buf_printf(b, "'><error%s type='%s'><%s xmlns='" NS_STANZAS "'/>", errs[i].code, errs[i].type,
               errs[i].cond);
    if (text) {
        buf_printf(b, "<text xmlns='" NS_STANZAS "'>%s</text>", text);
    }
    buf_puts(b, "</error></iq>");
}

static void legacy_error(struct conn *c, const char *id, const char *cond, const char *text)
{
    struct buf b;
    buf_init(&b, 0);
    legacy_error_iq(&b, id, cond, text);
    c2s_send(c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
}

/* An answer of type result with an optional payload (pre-escaped). */
static void legacy_result(struct conn *c, const char *id, const char *payload)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='result' id='");
    buf_append_xml(&b, id ? id : "", id ? strlen(id) : 0);
    buf_puts(&b, payload ? "'>" : "'/>");
    if (payload) {
        buf_puts(&b, payload);
        buf_puts(&b, "</iq>");
    }
    c2s_send(c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
}

/* Which fields a login needs (§3.1): no <digest/>, see above. */
static void legacy_form(struct conn *c, struct xml_node *iq, const char *user)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<query xmlns='" NS_IQAUTH "'><username>");
    buf_append_xml(&b, user ? user : "", user ? strlen(user) : 0);
    buf_puts(&b, "</username><password/><resource/></query>");
    legacy_result(c, xml_attr(iq, "id"), buf_ptr(&b));
    buf_free(&b);
}

/* Held back by the failure throttle, as a SASL not-authorized is. */
static void legacy_wrong_password(struct conn *c, const char *id)
{
    struct buf b;
    buf_init(&b, 0);
    legacy_error_iq(&b, id, "not-authorized", NULL);
    c2s_login_wrong_password(c, buf_ptr(&b), "failed (jabber:iq:auth)");
    buf_free(&b);
}

static const char *legacy_field(const struct xml_node *q, const char *name)
{
    struct xml_node *n = xml_child(q, name, NS_IQAUTH);
    return n ? xml_text(n) : NULL;
}

/* user@domain/res as a bare JID, when it makes a valid full JID: -1 when
 * user cannot be an account's name, -2 when res cannot be bound with it. */
static int legacy_jid(const char *user, const char *res, char bare[JID_MAX + 1])
{
    char local[JID_PART_MAX + 1], full[JID_MAX + 1], norm[JID_MAX + 1];
    if (jid_local_valid(user, local, sizeof(local)) < 0) {
        return -1;
    }
    if (jid_resource_valid(res) < 0 ||
        (size_t)snprintf(full, sizeof(full), "%s@%s/%s", local, g_config->domain, res) >=
            sizeof(full) ||
        jid_parse(full, norm, sizeof(norm), NULL) < 0) {
        return -2;
    }
    snprintf(bare, JID_MAX + 1, "%s@%s", local, g_config->domain);
    return 0;
}

/* The password check is over (c2s_login_check): the stream is authenticated
 * as the account checked and the resource bound, or the login fails. */
static void legacy_checked(struct conn *c, int ok, const char *res, const char *id)
{
    if (!ok) {
        legacy_wrong_password(c, id);
        return;
    }
    const char *cond;
    int r = c2s_login_bind(c, res, "jabber:iq:auth", &cond);
    if (r == 0) {
        legacy_result(c, id, NULL);
    } else if (cond) {
        /* Out of memory (the JID was checked before): the client has no
         * other way to bind, so the stream ends rather than stay half in. */
        legacy_error(c, id, cond, NULL);
        c2s_stream_error(c, "resource-constraint", NULL);
    }
}

static void legacy_login(struct conn *c, struct xml_node *iq, struct xml_node *q)
{
    const char *id = xml_attr(iq, "id");
    const char *user = legacy_field(q, "username"), *pw = legacy_field(q, "password");
    const char *res = legacy_field(q, "resource");
    char bare[JID_MAX + 1];
    if (!user || !*user || !pw || !res || !*res) {
        legacy_error(c, id, "not-acceptable", NULL); /* §3.1: a field is missing */
        return;
    }
    if (c2s_login_banned(c, user)) {
        struct buf b;
        buf_init(&b, 0);
        legacy_error_iq(&b, id, "policy-violation", NULL);
        c2s_login_refused(c, buf_ptr(&b));
        buf_free(&b);
        return;
    }
    int r = legacy_jid(user, res, bare);
    if (r < 0) {
        /* A username that cannot be an account's is a wrong login (as in
         * SASL); a resource that cannot be bound is the client's error. */
        if (r == -1) {
            legacy_wrong_password(c, id);
        } else {
            legacy_error(c, id, "bad-request", NULL);
        }
        return;
    }
    size_t pwlen = strlen(pw);
    if (pwlen > SASL_PASS_MAX) {
        legacy_wrong_password(c, id); /* no stored password is that long */
    } else if (c2s_login_check(c, bare, pw, pwlen, res, id ? id : "", legacy_checked) < 0) {
        legacy_error(c, id, "internal-server-error", NULL);
    }
}

/* hook_preauth_iq: a jabber:iq:auth query before authentication. */
static int legacy_preauth_iq(struct conn *c, struct xml_node *iq)
{
    struct xml_node *q = g_config->legacy_auth ? c2s_preauth_query(iq, NS_IQAUTH) : NULL;
    if (!q) {
        return -1;
    }
    if (c2s_sasl_tried(c)) {
        /* XEP-0078 §3.1: no second chance through iq:auth after (or during)
         * a SASL attempt. */
        c2s_stream_error(c, "policy-violation", NULL);
    } else if (!legacy_auth_offered(c)) {
        /* §3.1: not supported here (it needs TLS first). */
        legacy_error(c, xml_attr(iq, "id"), "service-unavailable", "Encryption required");
    } else if (strcmp(xml_attr(iq, "type"), "get") == 0) {
        legacy_form(c, iq, legacy_field(q, "username"));
    } else {
        legacy_login(c, iq, q);
    }
    return 0;
}

/* XEP-0078 §4: the stream feature, beside the SASL mechanisms. */
static void legacy_feature(struct conn *c, struct buf *out)
{
    if (legacy_auth_offered(c)) {
        buf_puts(out, "<auth xmlns='" NS_IQAUTH_FEATURE "'/>");
    }
}

/* WITH_LEGACY_AUTH (Makefile): linking this file in is what switches it on. */
HOOK_SERVICE(legacy_auth)
{
    hook_preauth_feature(legacy_feature);
    hook_preauth_iq(legacy_preauth_iq);
}
