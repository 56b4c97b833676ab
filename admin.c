/* admin.c: XEP-0133 service administration for the accounts in the admins
 * option: the actions (admin.h) and their XEP-0050 commands on the server's
 * JID (adhoc.h): add-user, delete-user, change-user-password,
 * get-online-users-list (also as get-online-users), get-online-users-num,
 * get-registered-users-num, announce, set-motd, edit-motd and delete-motd,
 * with the node names and fields of XEP-0133 §4. Passwords only pass
 * through on their way to register.c: never logged, never echoed back
 * (errors carry no copy of the form). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adhoc.h"
#include "buf.h"
#include "config.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_ADMIN "http://jabber.org/protocol/admin"
#define PASSWORD_MAX 1023 /* what "xmppd adduser" and in-band registration accept */

/* ---- the actions ---- */

int admin_is_admin(const char *bare)
{
    for (int i = 0; i < g_config->admins.n; i++) {
        if (strcmp(g_config->admins.jid[i], bare) == 0) {
            return 1;
        }
    }
    return 0;
}

int admin_account_jid(const char *jid, char *out, size_t outsz)
{
    struct jid j;
    if (!jid || jid_parse(jid, out, outsz, &j) < 0 || j.local_len == 0 || j.resource_len != 0 ||
        !jid_domain_is(&j, g_config->domain)) {
        return ADMIN_EBADJID;
    }
    return ADMIN_OK;
}

static int password_ok(const char *pw)
{
    size_t len = pw ? strlen(pw) : 0;
    return len > 0 && len <= PASSWORD_MAX;
}

int admin_add_user(const char *admin, const char *jid, const char *password)
{
    char bare[JID_MAX + 1], local[JID_PART_MAX + 1];
    if (admin_account_jid(jid, bare, sizeof(bare)) < 0) {
        return ADMIN_EBADJID;
    }
    snprintf(local, sizeof(local), "%.*s", (int)strcspn(bare, "@"), bare);
    if (!jid_local_new_ok(local)) {
        /* The look-alike guard of in-band registration and the CLI. */
        log_notice("admin %s: adding %s refused: mixed-script username", admin, bare);
        return ADMIN_EBADNAME;
    }
    if (!password_ok(password)) {
        return ADMIN_EBADPW;
    }
    int rc = account_make(bare, password);
    if (rc == STORE_EEXIST) {
        return ADMIN_EEXIST;
    }
    if (rc == STORE_EINVAL) {
        /* Our keys are valid: the name is what the store cannot hold (too
         * long for one file name once escaped). */
        log_notice("admin %s: adding %s refused: the name is too long for the store", admin, bare);
        return ADMIN_EBADNAME;
    }
    if (rc < 0) {
        log_warn("admin %s: adding %s failed (%d)", admin, bare, rc);
        return ADMIN_EIO;
    }
    log_notice("admin %s: added account %s", admin, bare);
    return ADMIN_OK;
}

int admin_change_password(const char *admin, const char *jid, const char *password)
{
    char bare[JID_MAX + 1];
    if (admin_account_jid(jid, bare, sizeof(bare)) < 0) {
        return ADMIN_EBADJID;
    }
    if (!password_ok(password)) {
        return ADMIN_EBADPW;
    }
    if (!store_account_exists(bare)) {
        return ADMIN_ENOENT;
    }
    int rc = account_set_password(bare, password);
    if (rc == STORE_ENOENT) {
        return ADMIN_ENOENT; /* removed meanwhile */
    }
    if (rc < 0) {
        log_warn("admin %s: password change of %s failed (%d)", admin, bare, rc);
        return ADMIN_EIO;
    }
    log_notice("admin %s: changed the password of %s", admin, bare);
    return ADMIN_OK;
}

int admin_delete_user(const char *admin, const char *jid)
{
    char bare[JID_MAX + 1];
    if (admin_account_jid(jid, bare, sizeof(bare)) < 0) {
        return ADMIN_EBADJID;
    }
    int rc = store_account_delete(bare);
    if (rc == STORE_ENOENT) {
        return ADMIN_ENOENT;
    }
    if (rc < 0) {
        log_warn("admin %s: deleting %s failed (%d)", admin, bare, rc);
        return ADMIN_EIO;
    }
    log_notice("admin %s: deleted account %s", admin, bare);
    /* What an in-band cancellation does next: contacts told, sessions
     * ended, nothing cached for the name kept. */
    account_removed(bare);
    return ADMIN_OK;
}

struct announce {
    struct xml_node *m;
    int sent;
};

static void announce_to(const char *bare, struct session *first, void *ud)
{
    struct announce *a = ud;
    (void)bare;
    for (struct session *r = first; r; r = r->next_res) {
        /* Available resources: those that asked for messages (RFC 6121
         * §4.2); a session that never sent presence gets none. */
        if (r->available && !r->account_removed && xml_set_attr(a->m, "to", r->jid) == 0 &&
            router_send(r, a->m) == 0) {
            a->sent++;
        }
    }
}

/* A headline from the server (RFC 6121 §5.2.2: not stored offline or
 * archived, shown by clients as a notice); NULL when out of memory. */
static struct xml_node *headline(const char *subject, const char *body)
{
    struct xml_node *m = xml_node_new("message", NS_CLIENT);
    if (m && subject && *subject && im_text_child(m, "subject", NS_CLIENT, subject) < 0) {
        xml_free(m);
        return NULL;
    }
    if (!m || xml_set_attr(m, "type", "headline") < 0 ||
        xml_set_attr(m, "from", g_config->domain) < 0 ||
        im_text_child(m, "body", NS_CLIENT, body) < 0) {
        xml_free(m);
        return NULL;
    }
    return m;
}

/* To every available resource: the number it was queued to, or an
 * admin_err. Every resource gets a copy: the text is bounded. */
static int broadcast(const char *subject, const char *body)
{
    if (!*body ||
        strlen(body) + (subject ? strlen(subject) : 0) > (size_t)g_config->announce_max_bytes) {
        return ADMIN_EBADTEXT;
    }
    struct announce a = {headline(subject, body), 0};
    if (!a.m) {
        return ADMIN_EIO;
    }
    router_foreach_bare(announce_to, &a);
    xml_free(a.m);
    return a.sent;
}

int admin_announce(const char *admin, const char *subject, const char *body)
{
    int n = broadcast(subject, body); /* XEP-0133 §4.23 */
    if (n >= 0) {
        log_notice("admin %s: announcement sent to %d resources", admin, n);
    }
    return n;
}

/* ---- message of the day (XEP-0133 §4.24-4.26) ----
 * Kept in the server's store doc "motd" (STORAGE.md) and in memory; sent as
 * a headline to each resource when it sends its initial presence, and to
 * those available when it is set. */
#define MOTD_DOC "motd"

static char *motd;

const char *admin_motd(void)
{
    return motd;
}

int admin_set_motd(const char *admin, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > (size_t)g_config->announce_max_bytes) {
        return ADMIN_EBADTEXT;
    }
    char *copy = strdup(text);
    if (!copy) {
        return ADMIN_EIO;
    }
    int rc = store_server_doc_put(MOTD_DOC, text, len);
    if (rc < 0) {
        free(copy);
        log_warn("admin %s: cannot store the message of the day (%d)", admin, rc);
        return ADMIN_EIO;
    }
    free(motd);
    motd = copy;
    int n = broadcast(NULL, motd);
    log_notice("admin %s: set the message of the day (sent to %d resources)", admin, n);
    return ADMIN_OK;
}

int admin_delete_motd(const char *admin)
{
    int rc = store_server_doc_delete(MOTD_DOC);
    if (rc < 0 && rc != STORE_ENOENT) {
        log_warn("admin %s: cannot delete the message of the day (%d)", admin, rc);
        return ADMIN_EIO;
    }
    free(motd);
    motd = NULL;
    log_notice("admin %s: deleted the message of the day", admin);
    return ADMIN_OK;
}

static int motd_load(struct session *s, struct xml_node *st, const char *bare)
{
    size_t len = 0;
    (void)s, (void)st, (void)bare;
    free(motd);
    motd = NULL;
    /* One set under a larger announce_max_bytes is read all the same. */
    int rc = store_server_doc_get(MOTD_DOC, &motd, &len, 65536);
    if (rc < 0 && rc != STORE_ENOENT) {
        log_warn("admin: cannot read the message of the day (%d)", rc);
    }
    /* The stored text goes to every login: checked again as set-motd
     * checks it (a restored backup or a hand edit may hold a NUL, bytes
     * that are not XML characters, or nothing), not found broken at each
     * login. */
    struct xml_node *m = motd ? headline(NULL, motd) : NULL;
    if (motd && (!m || !*motd || strlen(motd) != len)) {
        log_warn("admin: the stored message of the day is not text a message can carry: "
                 "ignored (set it again with set-motd)");
        free(motd);
        motd = NULL;
    }
    xml_free(m);
    return 0;
}

/* Initial presence (RFC 6121 §4.2): the session is not available yet. */
static int motd_at_login(struct session *s, struct xml_node *p, const char *bare)
{
    (void)bare;
    if (!motd || s->available || xml_attr(p, "to") || xml_attr(p, "type")) {
        return 0;
    }
    struct xml_node *m = headline(NULL, motd);
    if (m && xml_set_attr(m, "to", s->jid) == 0) {
        router_send(s, m);
    }
    xml_free(m);
    return 0;
}

static int motd_free(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    free(motd);
    motd = NULL;
    return 0;
}

static void count_bare(const char *bare, struct session *first, void *ud)
{
    (void)bare, (void)first;
    (*(int *)ud)++;
}

int admin_online_count(void)
{
    int n = 0;
    router_foreach_bare(count_bare, &n);
    return n;
}

static int count_account(const char *bare, void *ud)
{
    (void)bare;
    (*(int *)ud)++;
    return 0;
}

int admin_registered_count(void)
{
    int n = 0;
    return store_account_list(count_account, &n) < 0 ? ADMIN_EIO : n;
}

struct each {
    int (*fn)(const char *bare, void *ud);
    void *ud;
    int stop;
};

static void each_bare(const char *bare, struct session *first, void *ud)
{
    struct each *e = ud;
    (void)first;
    if (!e->stop) {
        e->stop = e->fn(bare, e->ud);
    }
}

void admin_online_each(int (*fn)(const char *bare, void *ud), void *ud)
{
    struct each e = {fn, ud, 0};
    router_foreach_bare(each_bare, &e);
}

/* ---- XEP-0050 commands ---- */

static int allowed(const struct session *s)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    return admin_is_admin(bare);
}

static void fail(struct adhoc_reply *r, const char *type, const char *cond, const char *app)
{
    r->err_type = type;
    r->err_cond = cond;
    r->err_app = app;
}

/* The stanza error for an admin_err (XEP-0133 §5). */
static void fail_with(struct adhoc_reply *r, int rc)
{
    switch (rc) {
    case ADMIN_EBADJID:
        fail(r, "modify", "jid-malformed", NULL);
        break;
    case ADMIN_EBADNAME:
    case ADMIN_EBADPW:
    case ADMIN_EBADTEXT:
        fail(r, "modify", "not-acceptable", NULL);
        break;
    case ADMIN_EEXIST:
        fail(r, "cancel", "conflict", NULL);
        break;
    case ADMIN_ENOENT:
        fail(r, "cancel", "item-not-found", NULL);
        break;
    default:
        fail(r, "wait", "internal-server-error", NULL);
        break;
    }
}

/* The end of a command: the stanza error for rc < 0, else note (its %d
 * shows rc, a count). */
static void finish(struct adhoc_reply *r, int rc, const char *note)
{
    if (rc < 0) {
        fail_with(r, rc);
    } else {
        snprintf(r->note, sizeof(r->note), note, rc);
    }
}

/* A required field is missing: XEP-0050 "Possible Errors", bad-payload. */
static int need(struct adhoc_reply *r, const char *value)
{
    if (!value || !*value) {
        fail(r, "modify", "bad-request", "bad-payload");
        return 0;
    }
    return 1;
}

/* what: the end of the instructions, "Fill out this form to " what (the
 * wording of XEP-0133's examples, its start stored once). */
static struct xml_node *form(const char *title, const char *what)
{
    char instructions[128];
    snprintf(instructions, sizeof(instructions), "Fill out this form to %s", what);
    return im_form_new("form", title, instructions, NS_ADMIN);
}

static struct xml_node *done(struct xml_node *x, int ok)
{
    if (!ok) {
        xml_free(x);
        return NULL;
    }
    return x;
}

/* The accountjid and password fields of add-user and change-user-password. */
static struct xml_node *account_form(const char *title, const char *what, const char *jid_label)
{
    struct xml_node *x = form(title, what);
    return done(x, x && im_field_add(x, "accountjid", "jid-single", jid_label, 1, NULL) &&
                       im_field_add(x, "password", "text-private", "The password for this account",
                                    1, NULL));
}

/* The fields, and a channel a password may travel on: TLS, or where PLAIN
 * may go in the clear (plain_without_tls), as for XEP-0077 §3.3 password
 * changes; else not-authorized. */
static int account_fields(const struct session *s, const struct xml_node *x, struct adhoc_reply *r,
                          const char **jid, const char **pw)
{
    *jid = adhoc_field_value(x, "accountjid");
    *pw = adhoc_field_value(x, "password");
    if (!need(r, *jid) || !need(r, *pw)) {
        return 0;
    }
    if (!(s->conn && conn_is_tls(s->conn)) && !g_config->plain_without_tls) {
        log_notice("admin %s: a password sent without TLS: refused", s->jid);
        fail(r, "modify", "not-authorized", NULL);
        return 0;
    }
    return 1;
}

/* add-user (XEP-0133 §4.1) */
static struct xml_node *add_user_form(struct session *s)
{
    (void)s;
    struct xml_node *x =
        account_form("Adding a User", "add a user.", "The Jabber ID for the account to be added");
    return done(
        x, x && im_field_add(x, "password-verify", "text-private", "Retype password", 0, NULL));
}

static void add_user_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    const char *jid, *pw;
    const char *verify = adhoc_field_value(x, "password-verify");
    if (!account_fields(s, x, r, &jid, &pw)) {
        return;
    }
    if (verify && strcmp(verify, pw) != 0) {
        fail(r, "modify", "not-acceptable", NULL); /* the two passwords differ */
        return;
    }
    finish(r, admin_add_user(s->jid, jid, pw), "The account was added.");
}

/* delete-user (XEP-0133 §4.2): every JID is checked before any is removed. */
static struct xml_node *delete_user_form(struct session *s)
{
    (void)s;
    struct xml_node *x = form("Deleting a User", "delete a user.");
    return done(
        x, x && im_field_add(x, "accountjids", "jid-multi", "The Jabber ID(s) to delete", 1, NULL));
}

static void delete_user_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    struct xml_node *f = adhoc_field(x, "accountjids");
    char bare[JID_MAX + 1];
    int n = 0, gone = 0, missing = 0;
    for (struct xml_node *v = f ? xml_first_child(f) : NULL; v; v = xml_next(v)) {
        if (strcmp(xml_name(v), "value") == 0) {
            if (admin_account_jid(xml_text(v), bare, sizeof(bare)) < 0) {
                fail(r, "modify", "jid-malformed", NULL);
                return;
            }
            n++;
        }
    }
    if (!need(r, n ? "x" : NULL)) {
        return;
    }
    for (struct xml_node *v = xml_first_child(f); v; v = xml_next(v)) {
        if (strcmp(xml_name(v), "value") != 0) {
            continue;
        }
        int rc = admin_delete_user(s->jid, xml_text(v));
        if (rc == ADMIN_OK) {
            gone++;
        } else if (rc == ADMIN_ENOENT) {
            missing++;
        } else {
            fail_with(r, rc);
            return;
        }
    }
    if (gone == 0) {
        fail(r, "cancel", "item-not-found", NULL);
        return;
    }
    snprintf(r->note, sizeof(r->note), "%d account(s) deleted, %d not found.", gone, missing);
}

/* change-user-password (XEP-0133 §4.7) */
static struct xml_node *password_form(struct session *s)
{
    (void)s;
    return account_form("Changing a User Password", "change a user's password.",
                        "The Jabber ID for this account");
}

static void password_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    const char *jid, *pw;
    if (!account_fields(s, x, r, &jid, &pw)) {
        return;
    }
    finish(r, admin_change_password(s->jid, jid, pw), "The password was changed.");
}

/* get-online-users-num (§4.15) and get-registered-users-num (§4.13): no
 * form, the number at once. */
static void number_result(struct session *s, struct adhoc_reply *r, const char *var,
                          const char *label, int n)
{
    char num[16];
    if (n < 0) {
        fail_with(r, n);
        return;
    }
    log_notice("admin %s: asked for %s", s->jid, var);
    snprintf(num, sizeof(num), "%d", n);
    r->form = im_form_new("result", NULL, NULL, NS_ADMIN);
    if (!r->form || !im_field_add(r->form, var, "text-single", label, 0, num)) {
        fail(r, "wait", "internal-server-error", NULL);
    }
}

static void online_num_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    (void)x;
    number_result(s, r, "onlineusersnum", "The number of online users", admin_online_count());
}

static void registered_num_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    (void)x;
    number_result(s, r, "registeredusersnum", "The number of registered users",
                  admin_registered_count());
}

/* get-online-users-list (§4.20). The list is cut at max_items, and at half
 * of max_stanza_size bytes of JIDs whatever max_items says ("none"), so the
 * answer stays a stanza a client reads. */
static struct xml_node *online_form(struct session *s)
{
    static const char *const sizes[] = {"25", "50", "75", "100", "150", "200", "none"};
    (void)s;
    struct xml_node *x =
        form("Requesting List of Online Users", "request the online users of this service.");
    struct xml_node *f =
        x ? im_field_add(x, "max_items", "list-single", "Maximum number of items to show", 0, "100")
          : NULL;
    for (size_t i = 0; f && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct xml_node *o = xml_add_child(f, "option", ADHOC_NS_DATA);
        if (!o || xml_set_attr(o, "label", sizes[i]) < 0 || im_value_add(o, sizes[i]) < 0) {
            f = NULL;
        }
    }
    return done(x, f != NULL);
}

struct listing {
    struct xml_node *field;
    long max;
    size_t bytes, budget;
    int n, failed;
};

static int list_one(const char *bare, void *ud)
{
    struct listing *l = ud;
    if (l->n >= l->max || l->bytes + strlen(bare) > l->budget) {
        return 1;
    }
    if (im_value_add(l->field, bare) < 0) {
        l->failed = 1;
        return 1;
    }
    l->bytes += strlen(bare) + 16; /* <value></value> */
    l->n++;
    return 0;
}

static void online_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    const char *max = adhoc_field_value(x, "max_items");
    struct listing l = {NULL, 100, 0, (size_t)g_config->max_stanza_size / 2, 0, 0};
    if (max && strcmp(max, "none") == 0) {
        l.max = g_config->max_stanza_size; /* the byte budget is what stops it */
    } else if (max) {
        char *end = NULL;
        l.max = strtol(max, &end, 10);
        if (*end || l.max < 1) {
            fail(r, "modify", "bad-request", "bad-payload");
            return;
        }
    }
    r->form = im_form_new("result", NULL, NULL, NS_ADMIN);
    l.field = r->form ? im_field_add(r->form, "onlineuserjids", "jid-multi",
                                     "The list of all online users", 0, NULL)
                      : NULL;
    if (l.field) {
        admin_online_each(list_one, &l);
    }
    if (!l.field || l.failed) {
        fail(r, "wait", "internal-server-error", NULL);
        return;
    }
    log_notice("admin %s: listed online users", s->jid);
    snprintf(r->note, sizeof(r->note), "%d of %d online users listed.", l.n, admin_online_count());
}

/* announce (§4.23) */
static struct xml_node *announce_form(struct session *s)
{
    (void)s;
    struct xml_node *x = form("Making an Announcement", "make an announcement to all active users "
                                                        "of this service.");
    return done(x, x && im_field_add(x, "subject", "text-single", "Subject", 0, NULL) &&
                       im_field_add(x, "announcement", "text-multi", "Announcement", 1, NULL));
}

/* The lines of text-multi field var joined into b (initialised here, the
 * caller frees it); 0 after failing r when they are none or out of memory. */
static int need_text(struct adhoc_reply *r, const struct xml_node *x, const char *var,
                     struct buf *b)
{
    buf_init(b, 0);
    if (adhoc_field_text(x, var, b) < 0) {
        fail(r, "wait", "internal-server-error", NULL);
        return 0;
    }
    return need(r, buf_len(b) ? buf_ptr(b) : NULL);
}

static void announce_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    struct buf body;
    if (need_text(r, x, "announcement", &body)) {
        finish(r, admin_announce(s->jid, adhoc_field_value(x, "subject"), buf_ptr(&body)),
               "Announcement sent to %d resources.");
    }
    buf_free(&body);
}

/* set-motd (§4.24), edit-motd (§4.25: the form holds the current one),
 * delete-motd (§4.26: at once, no form). */
static struct xml_node *motd_form_with(const char *title, const char *current)
{
    struct xml_node *x = form(title, "set the message of the day.");
    struct xml_node *f =
        x ? im_field_add(x, "motd", "text-multi", "Message of the Day", 1, NULL) : NULL;
    /* XEP-0004 §3.3: a text-multi value per line. */
    for (const char *p = current; f && p && *p;) {
        size_t n = strcspn(p, "\n");
        char *line = strndup(p, n);
        if (!line || im_value_add(f, line) < 0) {
            f = NULL;
        }
        free(line);
        p += n + (p[n] == '\n');
    }
    return done(x, f != NULL);
}

static struct xml_node *set_motd_form(struct session *s)
{
    (void)s;
    return motd_form_with("Setting the Message of the Day", NULL);
}

static struct xml_node *edit_motd_form(struct session *s)
{
    (void)s;
    return motd_form_with("Editing the Message of the Day", motd);
}

static void set_motd_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    struct buf text;
    if (need_text(r, x, "motd", &text)) {
        finish(r, admin_set_motd(s->jid, buf_ptr(&text)), "The message of the day was set.");
    }
    buf_free(&text);
}

static void delete_motd_run(struct session *s, const struct xml_node *x, struct adhoc_reply *r)
{
    (void)x;
    finish(r, admin_delete_motd(s->jid), "The message of the day was deleted.");
}

/* Each node is NS_ADMIN "#" and the name a row holds: the constructor
 * writes the whole node into admin_nodes and points the row at it, so that
 * the long prefix is stored once. */
static struct adhoc_command admin_commands[] = {
    {"add-user", "Add User", 1, allowed, add_user_form, add_user_run},
    {"delete-user", "Delete User", 1, allowed, delete_user_form, delete_user_run},
    {"change-user-password", "Change User Password", 1, allowed, password_form, password_run},
    {"get-online-users-list", "Get List of Online Users", 1, allowed, online_form, online_run},
    /* The node older clients and slixmpp's xep_0133 use for the same list. */
    {"get-online-users", "Get List of Online Users", 0, allowed, online_form, online_run},
    {"get-online-users-num", "Get Number of Online Users", 1, allowed, NULL, online_num_run},
    {"get-registered-users-num", "Get Number of Registered Users", 1, allowed, NULL,
     registered_num_run},
    {"announce", "Send Announcement to Online Users", 1, allowed, announce_form, announce_run},
    {"set-motd", "Set Message of the Day", 1, allowed, set_motd_form, set_motd_run},
    {"edit-motd", "Edit Message of the Day", 1, allowed, edit_motd_form, set_motd_run},
    {"delete-motd", "Delete Message of the Day", 1, allowed, NULL, delete_motd_run},
};
#define ADMIN_COMMANDS (sizeof(admin_commands) / sizeof(admin_commands[0]))
static char admin_nodes[ADMIN_COMMANDS][sizeof(NS_ADMIN "#get-registered-users-num")];

HOOK_SERVICE(admin)
{
    for (size_t i = 0; i < ADMIN_COMMANDS; i++) {
        snprintf(admin_nodes[i], sizeof(admin_nodes[i]), NS_ADMIN "#%s", admin_commands[i].node);
        admin_commands[i].node = admin_nodes[i];
        adhoc_register(&admin_commands[i]);
    }
    hook_add(HOOK_INIT, motd_load);
    hook_add(HOOK_PRESENCE_OUT, motd_at_login);
    hook_add(HOOK_SHUTDOWN, motd_free);
}
