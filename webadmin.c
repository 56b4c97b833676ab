/* webadmin.c: the web admin console at /admin/ (issue 14 item 3), for the
 * accounts in admins. Plain HTML forms that work without JavaScript, built
 * with buf.h; every text is escaped (buf_append_xml), every POST carries a
 * per-session CSRF token, every action is logged with the admin's JID.
 * Logins are checked by c2s_password_check (the worker, the c2s failure
 * throttle and bans, made-up keys for unknown accounts) while the request is
 * deferred (http_defer); a failure is answered once the throttle's delay is
 * over, the same way for a wrong password, an unknown account and an
 * account that is not an admin. Sessions: 128-bit ids from the CSPRNG in a
 * table of webadmin_max_sessions, ended after webadmin_session_timeout idle
 * seconds. The actions are admin.h's (XEP-0133), so the console and the
 * ad-hoc commands do the same thing. */
#include "webadmin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "buf.h"
#include "c2s.h"
#include "hooks.h"
#include "http.h"
#include "jid.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "version.h"

#define COOKIE "xmppd_admin"
#define PRE_COOKIE "xmppd_pre" /* before login: binds the login form's token */
#define TOKEN_HEX 32           /* 128 bits */
#define FIELD_MAX 1100         /* a form field: a password (1023) and some */
#define RATE_WINDOW 10         /* seconds the message rates are averaged over */

/* CSP 'self' and no inline script at all; no framing (clickjacking); no
 * Referer leaking the query of a page; nothing cached. */
#define SECURITY_HEADERS                                                                          \
    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'self'\r\n" \
    "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n"

struct wsession {
    char id[TOKEN_HEX + 1]; /* "" = free slot */
    char csrf[TOKEN_HEX + 1];
    char jid[JID_MAX + 1];
    unsigned char creds[16]; /* creds_tag of the account at login */
    time_t last;
};

/* A login whose password is being checked, or whose failure waits out the
 * throttle's delay. */
struct pending {
    unsigned long ticket;
    int https, ok, checked;
    time_t due;
    char addr[48];
    char pre[TOKEN_HEX + 1];
    char jid[JID_MAX + 1];
    struct pending *next;
};

static struct wsession *sessions;
static struct pending *pendings;
/* Logins waiting for their check or their throttle delay: a client that hangs
 * up leaves its entry until then, so they are capped (max_unauth) apart from
 * the connections. */
static int npendings;
static struct webadmin_ring ring;
static unsigned char key[32]; /* HMAC key of the pre-login tokens, per process */
static time_t started;
static unsigned long routed, stored, routed_then, stored_then;
static time_t window_start;
static double routed_rate, stored_rate;

static int new_token(char out[TOKEN_HEX + 1])
{
    return tls_random_hex(out, TOKEN_HEX / 2);
}

/* The login form's token for pre-session cookie pre. */
static void pre_token(const char *pre, char out[TOKEN_HEX + 1])
{
    unsigned char mac[32];
    tls_hmac(TLS_SHA256, key, sizeof(key), pre, strlen(pre), mac);
    tls_hex(out, mac, TOKEN_HEX / 2);
}

/* A digest of bare's stored keys: it changes with the password, and
 * cannot be had when the account is gone. 0, or -1 then. */
static int creds_tag(const char *bare, unsigned char tag[16])
{
    struct store_account a;
    unsigned char in[2 * SCRAM_KEY_MAX], mac[32];
    if (store_account_get(bare, &a) < 0 || a.sha1.key_len > SCRAM_KEY_MAX ||
        a.sha256.key_len > SCRAM_KEY_MAX) {
        return -1;
    }
    memcpy(in, a.sha1.stored_key, a.sha1.key_len);
    memcpy(in + a.sha1.key_len, a.sha256.stored_key, a.sha256.key_len);
    tls_hmac(TLS_SHA256, key, sizeof(key), in, a.sha1.key_len + a.sha256.key_len, mac);
    sasl_wipe(&a, sizeof(a));
    sasl_wipe(in, sizeof(in));
    memcpy(tag, mac, 16);
    return 0;
}

/* ---- requests ---- */

/* The value of cookie name (RFC 6265 §5.4 "a=b; c=d") into out, if it is a
 * token of ours (TOKEN_HEX hex digits); else out is "". */
static void cookie(const struct http_request *r, const char *name, char out[TOKEN_HEX + 1])
{
    const char *h = http_header(r->parser, "cookie");
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ';') {
            p++;
        }
        size_t len = strcspn(p, ";");
        if (len == nl + 1 + TOKEN_HEX && strncmp(p, name, nl) == 0 && p[nl] == '=' &&
            strspn(p + nl + 1, "0123456789abcdef") >= TOKEN_HEX) {
            memcpy(out, p + nl + 1, TOKEN_HEX);
            out[TOKEN_HEX] = '\0';
            return;
        }
        p += len;
    }
}

static int field(const struct http_request *r, const char *name, char *out, size_t outsz)
{
    return webadmin_form_get(r->body, r->body_len, name, out, outsz);
}

static int query(const struct http_request *r, const char *name, char *out, size_t outsz)
{
    return webadmin_form_get(r->query, strlen(r->query), name, out, outsz);
}

static struct wsession *session_of(const struct http_request *r)
{
    char id[TOKEN_HEX + 1];
    cookie(r, COOKIE, id);
    if (!sessions || !id[0]) {
        return NULL;
    }
    for (int i = 0; i < g_config->webadmin_max_sessions; i++) {
        struct wsession *s = &sessions[i];
        if (s->id[0] && webadmin_token_eq(id, s->id)) {
            /* removed from admins by a SIGHUP, its account deleted or its
             * password changed (by anyone, anyhow), or expired: ended now */
            unsigned char tag[16];
            if (!admin_is_admin(s->jid) || creds_tag(s->jid, tag) < 0 ||
                memcmp(tag, s->creds, sizeof(tag)) != 0 ||
                g_now - s->last >= g_config->webadmin_session_timeout) {
                memset(s, 0, sizeof(*s));
                return NULL;
            }
            s->last = g_now;
            return s;
        }
    }
    return NULL;
}

/* A free slot, or the one idle the longest (the table is bounded). */
static struct wsession *session_new(const char *jid)
{
    struct wsession *best = &sessions[0];
    for (int i = 0; i < g_config->webadmin_max_sessions; i++) {
        if (!sessions[i].id[0]) {
            best = &sessions[i];
            break;
        }
        if (sessions[i].last < best->last) {
            best = &sessions[i];
        }
    }
    if (best->id[0]) {
        log_notice("web admin: session of %s ended for a new login (webadmin_max_sessions)",
                   best->jid);
    }
    memset(best, 0, sizeof(*best));
    snprintf(best->jid, sizeof(best->jid), "%s", jid);
    if (new_token(best->id) < 0 || new_token(best->csrf) < 0 || creds_tag(jid, best->creds) < 0) {
        memset(best, 0, sizeof(*best));
        return NULL;
    }
    best->last = g_now;
    return best;
}

/* ---- pages ---- */

/* before, s escaped, after. */
static void esc(struct buf *b, const char *before, const char *s, const char *after)
{
    buf_puts(b, before);
    buf_append_xml(b, s, strlen(s));
    buf_puts(b, after);
}

static void hidden(struct buf *b, const char *name, const char *value)
{
    buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
    esc(b, "", value, "\">");
}

/* A POST form to /admin/action with the token csrf. */
static void form(struct buf *b, const char *action, const char *csrf)
{
    buf_printf(b, "<form method=\"post\" action=\"/admin/%s\">", action);
    hidden(b, "csrf", csrf);
}

#define HTML "text/html; charset=utf-8"

/* A page's start into b (initialised here): head, nav (s NULL: the login
 * page, none), title, flash. The body follows; page_end ends it. */
static void page(struct buf *b, const struct wsession *s, const char *title, const char *flash)
{
    buf_init(b, 0);
    buf_printf(b, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                  "<title>xmppd: %s</title><link rel=\"stylesheet\" href=\"/admin/style.css\">"
                  "</head><body>",
               title);
    if (s) {
        buf_puts(b, "<nav><a href=\"/admin/\">Dashboard</a> <a href=\"/admin/users\">Users</a> "
                    "<a href=\"/admin/sessions\">Sessions</a> "
                    "<a href=\"/admin/announce\">Announce</a> "
                    "<a href=\"/admin/config\">Configuration</a> <a href=\"/admin/log\">Log</a> ");
        form(b, "logout", s->csrf);
        esc(b, "<button id=\"logout\">Log out</button></form> ", s->jid, "</nav>");
    }
    buf_printf(b, "<main><h1>%s</h1>", title);
    if (flash) {
        esc(b, "<p id=\"flash\">", flash, "</p>");
    }
}

static void page_end(struct buf *b)
{
    buf_puts(b, "</main></body></html>\n");
}

/* Ends page b, sends it and frees it. */
static void send_page(struct http_request *r, int status, struct buf *b)
{
    page_end(b);
    http_respond(r, status, HTML, buf_ptr(b), buf_len(b), NULL, SECURITY_HEADERS);
    buf_free(b);
}

/* A text answer with no page around it. */
static void text(struct http_request *r, int status, const char *body, const char *extra)
{
    http_respond(r, status, "text/plain", body, strlen(body), NULL, extra);
}

static void to_login(struct http_request *r, const char *cookie_line)
{
    char extra[512];
    snprintf(extra, sizeof(extra), "Location: /admin/login\r\n%s%s", cookie_line, SECURITY_HEADERS);
    http_respond(r, 303, "text/plain; charset=utf-8", "", 0, NULL, extra);
}

/* The headers that set cookie name to value (after the lines before), and
 * the security headers. */
static void set_cookie(char *out, size_t sz, const char *before, const char *name,
                       const char *value, int https)
{
    snprintf(out, sz, "%sSet-Cookie: %s=%s; Path=/admin/; HttpOnly; SameSite=Strict%s\r\n%s", before,
             name, value, https ? "; Secure" : "", SECURITY_HEADERS);
}

static const char style[] =
    "body{font-family:sans-serif;margin:0;color:#222}nav{background:#234;padding:.5em}"
    "nav a,nav{color:#fff;margin-right:.6em}nav form{display:inline}main{padding:1em;"
    "max-width:60em}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid "
    "#ccc;padding:.3em;text-align:left;word-break:break-all}input{margin:.2em;max-width:100%}"
    "#flash{background:#ffd;padding:.5em}pre{white-space:pre-wrap;word-break:break-all}"
    "dt{font-weight:bold}form{margin:.5em 0}\n";

/* The login page, its form's token bound to the pre-session cookie pre. */
static void login_html(struct buf *b, const char *pre, const char *flash)
{
    char tok[TOKEN_HEX + 1];
    pre_token(pre, tok);
    page(b, NULL, "Log in", flash);
    form(b, "login", tok);
    buf_puts(b, "<label>JID <input name=\"jid\" autocomplete=\"username\"></label><br>"
                "<label>Password <input type=\"password\" name=\"password\" "
                "autocomplete=\"current-password\"></label><br>"
                "<button id=\"login\">Log in</button></form>");
    page_end(b);
}

static void login_page(struct http_request *r, int status, const char *flash)
{
    char pre[TOKEN_HEX + 1], cookie_extra[512];
    const char *extra = SECURITY_HEADERS;
    cookie(r, PRE_COOKIE, pre);
    if (!pre[0]) {
        if (new_token(pre) < 0) {
            text(r, 500, "", NULL);
            return;
        }
        set_cookie(cookie_extra, sizeof(cookie_extra), "", PRE_COOKIE, pre, r->https);
        extra = cookie_extra;
    }
    struct buf b;
    login_html(&b, pre, flash);
    http_respond(r, status, HTML, buf_ptr(&b), buf_len(&b), NULL, extra);
    buf_free(&b);
}

typedef void page_fn(struct http_request *r, struct wsession *s, int status, const char *flash);

static void dashboard(struct http_request *r, struct wsession *s, int status, const char *flash)
{
    struct buf b;
    int s2s, comps;
    long t = (long)(g_now - started);
    server_stream_counts(&s2s, &comps);
    page(&b, s, "Dashboard", flash);
    buf_printf(&b,
               "<dl id=\"stats\"><dt>version</dt><dd>%s</dd>"
               "<dt>uptime</dt><dd>%ldd %02ld:%02ld:%02ld</dd>"
               "<dt>online sessions</dt><dd>%d</dd><dt>accounts</dt><dd>%d</dd>"
               "<dt>messages routed/s</dt><dd>%.1f</dd><dt>messages stored/s</dt><dd>%.1f</dd>"
               "<dt>memory</dt><dd>%ld KiB</dd><dt>s2s links</dt><dd>%d</dd>"
               "<dt>components</dt><dd>%d</dd></dl>",
               XMPPD_VERSION, t / 86400, t / 3600 % 24, t / 60 % 60, t % 60,
               router_online_count(), admin_registered_count(), routed_rate, stored_rate,
               store_self_rss_kib(), s2s, comps);
    send_page(r, status, &b);
}

/* A paged table (users, sessions): LIMIT_WEBADMIN_PAGE rows from row skip;
 * more once a row past them is seen. */
struct listing {
    struct buf *b;
    const char *q, *csrf;
    int skip, shown, more;
};

/* Whether the next row goes on the page: 1 yes; 0 no (an earlier page's);
 * -1 no, the page is full: l->more is known, the walk may stop. */
static int on_page(struct listing *l)
{
    if (l->skip > 0) {
        l->skip--;
        return 0;
    }
    if (l->shown == LIMIT_WEBADMIN_PAGE) {
        l->more = 1;
        return -1;
    }
    l->shown++;
    return 1;
}

/* s as a query value (RFC 3986 §3.4): unreserved bytes and '@' as they
 * are, the rest %-escaped, so that the link still reads as the JID. */
static void url_enc(struct buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') ||
            strchr("@.-_~", *p)) {
            buf_append(b, p, 1);
        } else {
            buf_printf(b, "%%%02X", *p);
        }
    }
}

static int list_one(const char *bare, void *ud)
{
    struct listing *l = ud;
    if (l->q[0] && !strstr(bare, l->q)) {
        return 0;
    }
    int on = on_page(l);
    if (on <= 0) {
        return on < 0; /* the page is full and "next" known: no more accounts */
    }
    buf_puts(l->b, "<tr><td><a href=\"/admin/user?jid=");
    url_enc(l->b, bare);
    esc(l->b, "\">", bare, "</a></td></tr>");
    return 0;
}

static void page_link(struct buf *b, const char *what, const char *rel, const char *q, int n)
{
    buf_printf(b, "<a rel=\"%s\" href=\"/admin/%s?page=%d&amp;q=", rel, what, n);
    url_enc(b, q);
    buf_printf(b, "\">%s</a> ", strcmp(rel, "next") == 0 ? "Next" : "Previous");
}

/* The rows walk(l) gives for page ?page= of r, the end of the table and the
 * links to the pages before and after (/admin/what?page=). */
static void paged(struct http_request *r, struct buf *b, const char *what, const char *q,
                  const char *csrf, void (*walk)(struct listing *l))
{
    char num[16] = "";
    query(r, "page", num, sizeof(num));
    int n = atoi(num);
    n = n < 0 || n > 1000000 ? 0 : n;
    struct listing l = {b, q, csrf, n * LIMIT_WEBADMIN_PAGE, 0, 0};
    walk(&l);
    buf_puts(b, "</table><p>");
    if (n > 0) {
        page_link(b, what, "prev", q, n - 1);
    }
    if (l.more) {
        page_link(b, what, "next", q, n + 1);
    }
    buf_puts(b, "</p>");
}

static void users_walk(struct listing *l)
{
    store_account_list(list_one, l);
}

static void users(struct http_request *r, struct wsession *s, int status, const char *flash)
{
    char q[JID_MAX + 1] = "";
    query(r, "q", q, sizeof(q));
    struct buf b;
    page(&b, s, "Users", flash);
    esc(&b, "<form method=\"get\" action=\"/admin/users\"><input name=\"q\" value=\"", q,
        "\"><button>Search</button></form><table id=\"users\">");
    paged(r, &b, "users", q, NULL, users_walk);
    buf_puts(&b, "<h2>Add a user</h2>");
    form(&b, "users/add", s->csrf);
    buf_puts(&b, "<label>JID <input name=\"jid\"></label> <label>Password <input "
                 "type=\"password\" name=\"password\" autocomplete=\"new-password\"></label> "
                 "<button id=\"add-user\">Add</button></form>");
    send_page(r, status, &b);
}

static void user(struct http_request *r, struct wsession *s, const char *jid, int status,
                 const char *flash)
{
    char in[JID_MAX + 1], bare[JID_MAX + 1];
    if (!jid) {
        jid = query(r, "jid", in, sizeof(in)) < 0 ? "" : in;
    }
    if (admin_account_jid(jid, bare, sizeof(bare)) < 0 || !store_account_exists(bare)) {
        users(r, s, 404, "No such account");
        return;
    }
    struct buf b;
    struct roster ro;
    page(&b, s, "User", flash);
    esc(&b, "<h2>", bare, "</h2><p>Online resources:</p><ul id=\"resources\">");
    for (struct session *x = router_first_resource(bare); x; x = x->next_res) {
        esc(&b, "<li>", x->jid, "</li>");
    }
    int rc = roster_load(bare, &ro);
    buf_printf(&b, "</ul><p>Roster size: <span id=\"roster-size\">%zu</span>%s</p>",
               roster_count(&ro), rc < 0 ? " (unreadable)" : "");
    roster_free(&ro);
    form(&b, "users/password", s->csrf);
    hidden(&b, "jid", bare);
    buf_puts(&b, "<label>New password <input type=\"password\" name=\"password\" "
                 "autocomplete=\"new-password\"></label> "
                 "<button id=\"reset-password\">Reset password</button></form>");
    form(&b, "users/delete", s->csrf);
    hidden(&b, "jid", bare);
    buf_puts(&b, "<button id=\"delete-user\">Delete account</button></form>");
    send_page(r, status, &b);
}

/* router_foreach_bare has no early stop: past the page, rows are passed over. */
static void session_rows(const char *bare, struct session *first, void *ud)
{
    struct listing *w = ud;
    (void)bare;
    for (struct session *x = first; x; x = x->next_res) {
        struct conn *c = x->conn;
        if (on_page(w) <= 0) {
            continue;
        }
        esc(w->b, "<tr><td>", x->jid, "</td><td>");
        esc(w->b, "", c ? c->addr : "-", "</td><td>");
        buf_printf(w->b, "%s</td><td>%ld</td><td>", c && conn_is_tls(c) ? "yes" : "no",
                   c ? (long)(g_now - c->last_read) : -1L);
        form(w->b, "sessions/kick", w->csrf);
        hidden(w->b, "jid", x->jid);
        buf_puts(w->b, "<button class=\"kick\">Kick</button></form></td></tr>");
    }
}

static void sessions_walk(struct listing *l)
{
    router_foreach_bare(session_rows, l);
}

static void sessions_page(struct http_request *r, struct wsession *s, int status,
                          const char *flash)
{
    struct buf b;
    page(&b, s, "Sessions", flash);
    /* one row per resource and nothing else (the admin contract): the
     * columns say what they are in the caption */
    buf_puts(&b, "<table id=\"sessions\"><caption>JID, address, TLS, idle seconds</caption>");
    paged(r, &b, "sessions", "", s->csrf, sessions_walk);
    send_page(r, status, &b);
}

static void announce_page(struct http_request *r, struct wsession *s, int status,
                          const char *flash)
{
    struct buf b;
    const char *motd = admin_motd();
    page(&b, s, "Announce", flash);
    buf_puts(&b, "<h2>Announcement</h2>");
    form(&b, "announce", s->csrf);
    buf_puts(&b, "<label>Subject <input name=\"subject\"></label><br><label>Body<br><textarea "
                 "name=\"body\" rows=\"4\" cols=\"40\"></textarea></label><br>"
                 "<button id=\"announce\">Send to everyone online</button></form>"
                 "<h2>Message of the day</h2>");
    form(&b, "motd", s->csrf);
    esc(&b, "<textarea name=\"motd\" rows=\"4\" cols=\"40\">", motd ? motd : "",
        "</textarea><br><button id=\"set-motd\">Set</button></form>");
    form(&b, "motd/delete", s->csrf);
    buf_puts(&b, "<button id=\"delete-motd\">Delete</button></form>");
    send_page(r, status, &b);
}

static void config_page(struct http_request *r, struct wsession *s, int status, const char *flash)
{
    struct buf b;
    const char *name, *file;
    char val[CONFIG_STR_MAX + 16];
    page(&b, s, "Configuration", flash);
    buf_puts(&b, "<table id=\"config\"><caption>Option, value, file</caption>");
    for (size_t i = 0; config_option_text(g_config, i, &name, val, sizeof(val), &file) == 0; i++) {
        buf_printf(&b, "<tr><td>%s</td><td>", name);
        esc(&b, "", val, "</td><td>");
        esc(&b, "", file, "</td></tr>");
    }
    buf_puts(&b, "</table>");
    send_page(r, status, &b);
}

static void log_page(struct http_request *r, struct wsession *s, int status, const char *flash)
{
    struct buf b;
    const char *line;
    page(&b, s, "Log", flash);
    buf_puts(&b, "<pre id=\"log\">");
    for (int i = 0; (line = webadmin_ring_get(&ring, i)) != NULL; i++) {
        esc(&b, "", line, "\n");
    }
    buf_puts(&b, "</pre>");
    send_page(r, status, &b);
}

static void user_page(struct http_request *r, struct wsession *s, int status, const char *flash)
{
    user(r, s, NULL, status, flash);
}

/* The pages under /admin/ (http_route's prefix; short literals: issue 16). */
static page_fn *const pages[] = {dashboard,     users,         user_page, sessions_page,
                                 announce_page, config_page,   log_page};
static const char page_names[][9] = {"", "users", "user", "sessions", "announce", "config", "log"};

static void get_admin(struct http_request *r)
{
    const char *p = r->path + strlen("/admin/");
    if (strcmp(p, "login") == 0) {
        login_page(r, 200, NULL);
        return;
    }
    if (strcmp(p, "style.css") == 0) {
        http_respond(r, 200, "text/css", style, sizeof(style) - 1, NULL,
                     "X-Content-Type-Options: nosniff\r\n");
        return;
    }
    struct wsession *s = session_of(r);
    if (!s) {
        to_login(r, "");
        return;
    }
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        if (strcmp(p, page_names[i]) == 0) {
            pages[i](r, s, 200, NULL);
            return;
        }
    }
    text(r, 404, "404 Not Found\n", SECURITY_HEADERS);
}

/* ---- login ---- */

static void answer_login(struct pending *p)
{
    if (p->ok) {
        struct wsession *s = session_new(p->jid);
        if (s) {
            char extra[512];
            set_cookie(extra, sizeof(extra), "Location: /admin/\r\n", COOKIE, s->id, p->https);
            if (http_answer(p->ticket, 303, "text/plain; charset=utf-8", "", 0, NULL, extra) < 0) {
                memset(s, 0, sizeof(*s)); /* nobody got the cookie */
            } else {
                log_notice("web admin %s: logged in from %s", p->jid, p->addr);
            }
            return;
        }
        p->ok = 0;
    }
    struct buf b;
    login_html(&b, p->pre, "Login failed");
    http_answer(p->ticket, 403, HTML, buf_ptr(&b), buf_len(&b), NULL, SECURITY_HEADERS);
    buf_free(&b);
}

static void unlink_pending(struct pending *p)
{
    for (struct pending **pp = &pendings; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    npendings--;
    free(p);
}

static void login_checked(void *ud, const char *bare, int ok, int delay)
{
    struct pending *p = ud;
    if (ok < 0) {
        unlink_pending(p);
        return;
    }
    p->ok = ok;
    p->checked = 1;
    /* within the deferred request's life, so that a pending login never
     * outlives its connection (one per connection bounds them) */
    p->due = g_now + (delay < LIMIT_HTTP_DEFER_SECONDS ? delay : LIMIT_HTTP_DEFER_SECONDS - 1);
    snprintf(p->jid, sizeof(p->jid), "%s", bare);
    if (!ok) {
        log_limited("failed logins", p->addr, L_NOTICE, "web admin: login from %s failed",
                    p->addr);
    }
    if (delay == 0) {
        answer_login(p);
        unlink_pending(p);
    }
}

/* A peer on this host (a browser, or a TLS-terminating proxy). */
static int loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
           strncmp(addr, "::ffff:127.", 11) == 0;
}

static void post_login(struct http_request *r)
{
    char pre[TOKEN_HEX + 1], tok[TOKEN_HEX + 1], sent[TOKEN_HEX + 8];
    char jid[JID_MAX + 1], pw[FIELD_MAX];
    cookie(r, PRE_COOKIE, pre);
    if (!pre[0] || field(r, "csrf", sent, sizeof(sent)) < 0 ||
        (pre_token(pre, tok), !webadmin_token_eq(sent, tok))) {
        log_limited("bad admin forms", r->addr, L_NOTICE, "%s web admin: login form token wrong",
                    r->label);
        login_page(r, 403, "Invalid form token");
        return;
    }
    /* A password in the clear over a network: refused before it is
     * checked (c2s has require_tls for the same reason). */
    if (!r->https && !loopback(r->addr)) {
        login_page(r, 403, "Log in over HTTPS");
        return;
    }
    int pwlen = field(r, "password", pw, sizeof(pw));
    if (field(r, "jid", jid, sizeof(jid)) < 0 || pwlen <= 0) {
        jid[0] = '\0'; /* still a check: the answer looks the same */
        pwlen = pwlen < 0 ? 0 : pwlen;
    }
    if (npendings >= g_config->max_unauth) {
        memset(pw, 0, sizeof(pw));
        log_limited("failed logins", r->addr, L_NOTICE,
                    "web admin: login from %s refused (%d logins pending, max_unauth)", r->addr,
                    npendings);
        text(r, 503, "", NULL);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        memset(pw, 0, sizeof(pw));
        text(r, 500, "", NULL);
        return;
    }
    npendings++;
    p->https = r->https;
    snprintf(p->addr, sizeof(p->addr), "%s", r->addr);
    memcpy(p->pre, pre, sizeof(p->pre));
    p->ticket = http_defer(r);
    p->next = pendings;
    pendings = p;
    int rc = c2s_password_check(r->addr, jid, pw, (size_t)pwlen, admin_is_admin, login_checked, p);
    memset(pw, 0, sizeof(pw));
    if (rc != 0) { /* banned (as a c2s login is: at once), or out of memory */
        log_limited("failed logins", r->addr, L_NOTICE, "web admin: login from %s refused (%s)",
                    r->addr, rc > 0 ? "banned" : "out of memory");
        p->ok = 0;
        answer_login(p);
        unlink_pending(p);
    }
}

/* Failures whose throttle delay is over get their answer. */
static void answer_due(void)
{
    struct pending **pp = &pendings;
    while (*pp) {
        struct pending *p = *pp;
        if (p->checked && g_now >= p->due) {
            *pp = p->next;
            answer_login(p);
            npendings--;
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

/* ---- actions ---- */

static const char *admin_error(int rc)
{
    /* by -rc: ADMIN_OK, ADMIN_EBADJID, ... ADMIN_EBADTEXT; ADMIN_EIO and
     * anything else: "The server could not do it" */
    static const char texts[] = "Done\0Not a JID of this server\0This name is not acceptable\0"
                                "The password is empty or too long\0The account exists already\0"
                                "No such account\0The server could not do it\0"
                                "The text is empty or too long";
    int k = rc <= 0 && rc >= ADMIN_EBADTEXT ? -rc : -ADMIN_EIO;
    const char *t = texts;
    while (k-- > 0) {
        t += strlen(t) + 1;
    }
    return t;
}

static void kick(struct http_request *r, struct wsession *s)
{
    char in[JID_MAX + 1], full[JID_MAX + 1];
    struct session *x = NULL;
    if (field(r, "jid", in, sizeof(in)) >= 0 && jid_parse(in, full, sizeof(full), NULL) == 0) {
        x = router_find_full(full);
    }
    if (!x || !x->conn || !x->conn->c2s) {
        sessions_page(r, s, 404, "No such session online");
        return;
    }
    /* As ejabberd's kick_session: the stream ends with policy-violation
     * (RFC 6120 §4.9.3.14), so that the client does not reconnect as after
     * a <conflict/> it might; a stream error also ends any XEP-0198
     * resumption. */
    log_notice("web admin %s: kicked %s", s->jid, x->jid);
    c2s_stream_error(x->conn, "policy-violation", "Kicked by an administrator");
    sessions_page(r, s, 200, "Session ended");
}

static void post_admin(struct http_request *r)
{
    /* The page under /admin/ (http_route's prefix; short literals: issue 16). */
    const char *p = r->path + strlen("/admin/");
    char tok[TOKEN_HEX + 8], a[FIELD_MAX], b[FIELD_MAX], msg[64];
    if (strcmp(p, "login") == 0) {
        post_login(r);
        return;
    }
    struct wsession *s = session_of(r);
    if (!s) {
        text(r, 403, "403 Forbidden\n", SECURITY_HEADERS);
        return;
    }
    if (field(r, "csrf", tok, sizeof(tok)) < 0 || !webadmin_token_eq(tok, s->csrf)) {
        log_limited("bad admin forms", r->addr, L_NOTICE, "web admin %s: form token wrong (%s)",
                    s->jid, r->path);
        struct buf none;
        page(&none, s, "Error", "Invalid form token");
        send_page(r, 403, &none);
        return;
    }
    int fa = field(r, strcmp(p, "motd") == 0 ? "motd" : "jid", a, sizeof(a));
    if (fa < 0) {
        a[0] = '\0';
    }
    /* what an action answers with: back's page, with ok or the error */
    int rc;
    const char *ok;
    page_fn *back = announce_page;
    if (strcmp(p, "logout") == 0) {
        log_notice("web admin %s: logged out", s->jid);
        memset(s, 0, sizeof(*s));
        to_login(r, "Set-Cookie: " COOKIE "=; Path=/admin/; Max-Age=0; HttpOnly; SameSite=Strict\r\n");
        return;
    } else if (strcmp(p, "sessions/kick") == 0) {
        kick(r, s);
        return;
    } else if (strcmp(p, "users/add") == 0) {
        rc = field(r, "password", b, sizeof(b)) < 0 ? ADMIN_EBADPW : admin_add_user(s->jid, a, b);
        ok = "Account added";
        back = users;
    } else if (strcmp(p, "users/delete") == 0) {
        rc = admin_delete_user(s->jid, a);
        ok = "Account deleted";
        back = users;
    } else if (strcmp(p, "users/password") == 0) {
        rc = field(r, "password", b, sizeof(b)) < 0 ? ADMIN_EBADPW
                                                    : admin_change_password(s->jid, a, b);
        ok = "Password changed";
        back = NULL; /* the user's page */
    } else if (strcmp(p, "announce") == 0) {
        int fs = field(r, "subject", a, sizeof(a));
        rc = field(r, "body", b, sizeof(b)) < 0 ? ADMIN_EBADTEXT
                                                : admin_announce(s->jid, fs > 0 ? a : NULL, b);
        snprintf(msg, sizeof(msg), "Sent to %d resources", rc);
        ok = msg;
    } else if (strcmp(p, "motd") == 0) {
        rc = admin_set_motd(s->jid, a);
        ok = "Message of the day set";
    } else if (strcmp(p, "motd/delete") == 0) {
        rc = admin_delete_motd(s->jid);
        ok = "Message of the day deleted";
    } else {
        text(r, 404, "404 Not Found\n", SECURITY_HEADERS);
        return;
    }
    memset(b, 0, sizeof(b)); /* a password may have passed through */
    int status = rc < 0 ? 400 : 200;
    ok = rc < 0 ? admin_error(rc) : ok;
    if (back) {
        back(r, s, status, ok);
    } else {
        user(r, s, a, status, ok);
    }
}

/* ---- events ---- */

static void to_ring(enum log_level lvl, const char *line)
{
    char l[WEBADMIN_LINE_MAX];
    snprintf(l, sizeof(l), "%s: %s", log_level_name(lvl), line);
    webadmin_ring_add(&ring, l);
}

static int on_init(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    started = window_start = g_now;
    sessions = calloc((size_t)g_config->webadmin_max_sessions, sizeof(*sessions));
    if (!sessions || tls_random(key, sizeof(key)) < 0 ||
        webadmin_ring_init(&ring, g_config->webadmin_log_lines) < 0) {
        log_error("web admin: out of memory; the console is off");
        free(sessions);
        sessions = NULL;
        return 0;
    }
    log_sink(to_ring);
    return 0;
}

static int on_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    answer_due();
    /* expired sessions go now, not only when their cookie comes back */
    for (int i = 0; sessions && i < g_config->webadmin_max_sessions; i++) {
        if (sessions[i].id[0] &&
            g_now - sessions[i].last >= g_config->webadmin_session_timeout) {
            memset(&sessions[i], 0, sizeof(sessions[i]));
        }
    }
    if (g_now - window_start >= RATE_WINDOW) {
        double t = (double)(g_now - window_start);
        /* (a long: what a window counts converts in one instruction) */
        routed_rate = (double)(long)(routed - routed_then) / t;
        stored_rate = (double)(long)(stored - stored_then) / t;
        routed_then = routed;
        stored_then = stored;
        window_start = g_now;
    }
    return 0;
}

static int on_routed(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    routed++;
    return 0;
}

static int on_stored(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    stored++;
    return 0;
}

static int on_shutdown(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    log_sink(NULL);
    webadmin_ring_free(&ring);
    return 0;
}

/* DNS rebinding: a page of another site whose name was made to point at us
 * sends that name as Host, and its script could then try logins (and get
 * 127.0.0.1 banned). The console answers only to names of ours: the domain
 * or one under it, localhost, or an address literal. */
static int host_ours(const char *host)
{
    char h[256];
    snprintf(h, sizeof(h), "%s", host);
    if (h[0] == '[') {
        return 1; /* an IPv6 literal */
    }
    h[strcspn(h, ":")] = '\0';
    size_t hl = strlen(h), dl = strlen(g_config->domain);
    const char *tail = hl > dl ? h + hl - dl : h;
    return strspn(h, "0123456789.") == hl || strcasecmp(h, "localhost") == 0 ||
           (strcasecmp(tail, g_config->domain) == 0 && (tail == h || tail[-1] == '.'));
}

static void admin_handler(struct http_request *r)
{
    if (!host_ours(r->host)) {
        log_limited("web admin", r->addr, L_NOTICE, "%s web admin: refused for Host %s",
                    r->label, r->host);
        text(r, 403, "", NULL);
    } else if (!sessions) {
        text(r, 503, "", NULL);
    } else if (strcmp(r->method, "POST") == 0) {
        post_admin(r);
    } else {
        get_admin(r);
    }
}

HOOK_SERVICE(webadmin)
{
    http_route("GET", "/admin/", admin_handler);
    http_route("POST", "/admin/", admin_handler);
    hook_add(HOOK_INIT, on_init);
    hook_add(HOOK_TICK, on_tick);
    hook_add(HOOK_MSG_ROUTED, on_routed);
    hook_add(HOOK_MSG_OFFLINE, on_stored);
    hook_add(HOOK_SHUTDOWN, on_shutdown);
}
