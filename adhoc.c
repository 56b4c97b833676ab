/* adhoc.c: XEP-0050 ad-hoc commands on the server's JID (adhoc.h).
 * A command with a form runs in two stages: execute returns the form and a
 * sessionid, the submission (execute or complete) runs it; cancel ends it.
 * A sessionid is 128 random bits, valid only for the full JID that started
 * it, for the command it was made for, and for adhoc_session_timeout seconds;
 * at most adhoc_max_sessions are open (LIMIT_ADHOC_SESSIONS_PER_JID of them
 * one full JID's: its next one ends its oldest). An unknown, expired or
 * foreign sessionid gets the same answer, so a guess learns nothing.
 * Must not: do file I/O, or know what a command does. */
#include "adhoc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "hooks.h"
#include "im.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "tls.h"
#include "xml.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define ADHOC_COMMANDS_MAX 32 /* compile-time: registered commands */

static const struct adhoc_command *commands[ADHOC_COMMANDS_MAX];
static size_t ncommands;

struct adhoc_session {
    struct adhoc_session *next;
    const struct adhoc_command *cmd;
    char *owner;    /* full JID of the session that started it */
    time_t expires; /* g_now after which it is gone */
    char id[33];    /* 32 hex digits */
};

static struct adhoc_session *sessions; /* newest first */
static int nsessions;

void adhoc_register(const struct adhoc_command *cmd)
{
    if (ncommands == ADHOC_COMMANDS_MAX) {
        fprintf(stderr, "xmppd: too many ad-hoc commands (ADHOC_COMMANDS_MAX in adhoc.c)\n");
        abort();
    }
    commands[ncommands++] = cmd;
}

static const struct adhoc_command *find_command(const char *node)
{
    for (size_t i = 0; node && i < ncommands; i++) {
        if (strcmp(commands[i]->node, node) == 0) {
            return commands[i];
        }
    }
    return NULL;
}

/* ---- data forms (XEP-0004) ---- */

struct xml_node *adhoc_field(const struct xml_node *x, const char *var)
{
    for (struct xml_node *f = x ? xml_first_child(x) : NULL; f; f = xml_next(f)) {
        const char *v = xml_attr(f, "var");
        if (strcmp(xml_name(f), "field") == 0 && strcmp(xml_ns(f), ADHOC_NS_DATA) == 0 && v &&
            strcmp(v, var) == 0) {
            return f;
        }
    }
    return NULL;
}

const char *adhoc_field_value(const struct xml_node *x, const char *var)
{
    struct xml_node *f = adhoc_field(x, var);
    struct xml_node *v = f ? xml_child(f, "value", ADHOC_NS_DATA) : NULL;
    return v ? xml_text(v) : NULL;
}

int adhoc_field_text(const struct xml_node *x, const char *var, struct buf *out)
{
    struct xml_node *f = adhoc_field(x, var);
    int n = 0;
    for (struct xml_node *v = f ? xml_first_child(f) : NULL; v; v = xml_next(v)) {
        if (strcmp(xml_name(v), "value") != 0 || strcmp(xml_ns(v), ADHOC_NS_DATA) != 0) {
            continue;
        }
        if ((n > 0 && buf_puts(out, "\n") < 0) || buf_puts(out, xml_text(v)) < 0) {
            return -1;
        }
        n++;
    }
    return n;
}

/* ---- sessions ---- */

static void session_free(struct adhoc_session *a)
{
    struct adhoc_session **p = &sessions;
    while (*p && *p != a) {
        p = &(*p)->next;
    }
    if (*p) {
        *p = a->next;
        nsessions--;
    }
    free(a->owner);
    free(a);
}

static struct adhoc_session *session_find(const char *id)
{
    for (struct adhoc_session *a = sessions; a; a = a->next) {
        if (strcmp(a->id, id) == 0) {
            return a->expires >= g_now ? a : NULL;
        }
    }
    return NULL;
}

static int new_id(char *out)
{
    return tls_random_hex(out, 16);
}

/* Room for one more session of owner: its oldest goes past the per-JID
 * bound. Returns 0, or -1 when the table is full with others' sessions. */
static int make_room(const char *owner)
{
    struct adhoc_session *oldest = NULL;
    int mine = 0;
    for (struct adhoc_session *a = sessions; a; a = a->next) {
        if (strcmp(a->owner, owner) == 0) {
            mine++;
            oldest = a; /* the list is newest first */
        }
    }
    if (mine >= LIMIT_ADHOC_SESSIONS_PER_JID) {
        session_free(oldest);
    }
    return nsessions < g_config->adhoc_max_sessions ? 0 : -1;
}

static struct adhoc_session *session_new(const struct session *s, const struct adhoc_command *cmd)
{
    if (make_room(s->jid) < 0) {
        return NULL;
    }
    struct adhoc_session *a = calloc(1, sizeof(*a));
    if (!a || !(a->owner = strdup(s->jid)) || new_id(a->id) < 0) {
        if (a) {
            free(a->owner);
        }
        free(a);
        return NULL;
    }
    a->cmd = cmd;
    a->expires = g_now + g_config->adhoc_session_timeout;
    a->next = sessions;
    sessions = a;
    nsessions++;
    return a;
}

static int on_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    struct adhoc_session *a = sessions;
    while (a) {
        struct adhoc_session *next = a->next;
        if (a->expires < g_now) {
            session_free(a);
        }
        a = next;
    }
    return 0;
}

/* A session's commands end with it: a new login under the same full JID
 * starts afresh. */
static int on_session_end(struct session *s, struct xml_node *st, const char *bare)
{
    (void)st, (void)bare;
    struct adhoc_session *a = sessions;
    while (a) {
        struct adhoc_session *next = a->next;
        if (strcmp(a->owner, s->jid) == 0) {
            session_free(a);
        }
        a = next;
    }
    return 0;
}

static int on_shutdown(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    while (sessions) {
        session_free(sessions);
    }
    return 0;
}

/* ---- answers ---- */

/* An iq error with a XEP-0050 condition (app, may be NULL) beside the
 * stanza one. The request is not copied back: a form may hold a password. */
static void cmd_error(struct session *s, const struct xml_node *iq, const char *type,
                      const char *cond, const char *app)
{
    im_iq_error(s, iq, g_config->domain, type, cond, ADHOC_NS, app, NULL);
}

/* <command node sessionid status/> with up to two payloads, in order (both
 * taken; NULL = none): <actions/> or <note/> before the form, as in
 * XEP-0050's examples. */
static void cmd_reply(struct session *s, const struct xml_node *iq, const char *node,
                      const char *sid, const char *status, struct xml_node *first,
                      struct xml_node *second)
{
    struct xml_node *c = xml_node_new("command", ADHOC_NS);
    if (!c || xml_set_attr(c, "node", node) < 0 || xml_set_attr(c, "sessionid", sid) < 0 ||
        xml_set_attr(c, "status", status) < 0) {
        xml_free(c);
        xml_free(first);
        xml_free(second);
        cmd_error(s, iq, "wait", "internal-server-error", NULL);
        return;
    }
    if (first) {
        xml_append(c, first);
    }
    if (second) {
        xml_append(c, second);
    }
    router_iq_result(s, iq, c); /* takes c */
}

/* The command ran: its error, or completed with its note and result form. */
static void finish(struct session *s, const struct xml_node *iq, const struct adhoc_command *cmd,
                   const char *sid, struct adhoc_reply *r)
{
    struct xml_node *note = NULL;
    if (r->err_cond) {
        xml_free(r->form);
        cmd_error(s, iq, r->err_type ? r->err_type : "cancel", r->err_cond, r->err_app);
        return;
    }
    if (r->note[0]) {
        note = xml_node_new("note", ADHOC_NS);
        if (!note || xml_set_attr(note, "type", "info") < 0 ||
            xml_add_text(note, r->note, strlen(r->note)) < 0) {
            xml_free(note);
            xml_free(r->form);
            cmd_error(s, iq, "wait", "internal-server-error", NULL);
            return;
        }
    }
    cmd_reply(s, iq, cmd->node, sid, "completed", note, r->form);
}

static void run_command(struct session *s, const struct xml_node *iq,
                        const struct adhoc_command *cmd, const char *sid,
                        const struct xml_node *form)
{
    struct adhoc_reply r;
    memset(&r, 0, sizeof(r));
    cmd->run(s, form, &r);
    finish(s, iq, cmd, sid, &r);
}

/* execute without a sessionid: the form (a new session), or the result of
 * a command that has no form. */
static void start(struct session *s, const struct xml_node *iq, const struct adhoc_command *cmd)
{
    char sid[33];
    if (!cmd->form) {
        if (new_id(sid) < 0) {
            cmd_error(s, iq, "wait", "internal-server-error", NULL);
            return;
        }
        run_command(s, iq, cmd, sid, NULL);
        return;
    }
    struct adhoc_session *a = session_new(s, cmd);
    if (!a) {
        log_limited("ad-hoc sessions full", s->jid, L_WARNING,
                    "adhoc: %s: no room for a command session (adhoc_max_sessions)", s->jid);
        cmd_error(s, iq, "wait", "resource-constraint", NULL);
        return;
    }
    struct xml_node *x = cmd->form(s);
    struct xml_node *actions = xml_node_new("actions", ADHOC_NS);
    /* XEP-0050 "<actions/> Element": one stage left, so complete is the only action. */
    if (!x || !actions || xml_set_attr(actions, "execute", "complete") < 0 ||
        !xml_add_child(actions, "complete", ADHOC_NS)) {
        xml_free(x);
        xml_free(actions);
        session_free(a);
        cmd_error(s, iq, "wait", "internal-server-error", NULL);
        return;
    }
    cmd_reply(s, iq, cmd->node, a->id, "executing", actions, x);
}

/* The submitted form of a stage: the first jabber:x:data child. */
static const struct xml_node *submitted(const struct xml_node *c)
{
    return xml_child(c, "x", ADHOC_NS_DATA);
}

static int known_action(const char *a)
{
    static const char *const all[] = {"execute", "cancel", "prev", "next", "complete"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(a, all[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A later stage of session sid. */
static void next_stage(struct session *s, const struct xml_node *iq, const struct xml_node *c,
                       const struct adhoc_command *cmd, const char *sid, const char *action)
{
    struct adhoc_session *a = session_find(sid);
    if (!a || strcmp(a->owner, s->jid) != 0 || a->cmd != cmd) {
        if (a && strcmp(a->owner, s->jid) != 0) {
            log_notice("adhoc: %s used a command session of %s: refused", s->jid, a->owner);
        }
        /* XEP-0050 "Possible Errors": the same answer for a foreign, unknown or expired id. */
        cmd_error(s, iq, "modify", "bad-request", "bad-sessionid");
        return;
    }
    if (strcmp(action, "cancel") == 0) {
        session_free(a);
        cmd_reply(s, iq, cmd->node, sid, "canceled", NULL, NULL);
        return;
    }
    if (strcmp(action, "prev") == 0) {
        cmd_error(s, iq, "modify", "bad-request", "bad-action"); /* one stage only */
        return;
    }
    /* execute, complete, and next with a filled form: a client that does
     * not read <actions/> says next, which Prosody takes as a submission too. */
    const struct xml_node *form = submitted(c);
    const char *ftype = form ? xml_attr(form, "type") : NULL;
    if (!ftype || strcmp(ftype, "submit") != 0) {
        cmd_error(s, iq, "modify", "bad-request", "bad-payload");
        return;
    }
    char id[33];
    snprintf(id, sizeof(id), "%s", a->id);
    session_free(a); /* one submission per session, whatever its outcome */
    run_command(s, iq, cmd, id, form);
}

static int adhoc_iq(struct session *s, struct xml_node *iq, struct xml_node *c, const char *to_bare)
{
    const char *type = xml_attr(iq, "type");
    if (to_bare || strcmp(xml_name(c), "command") != 0 || strcmp(type, "set") != 0) {
        return -1; /* commands live on the server's JID, executed with a set */
    }
    const char *node = xml_attr(c, "node");
    const char *action = xml_attr(c, "action");
    const char *sid = xml_attr(c, "sessionid");
    const struct adhoc_command *cmd = find_command(node);
    if (!cmd) {
        cmd_error(s, iq, "cancel", "item-not-found", NULL); /* XEP-0050 "Possible Errors" */
        return 0;
    }
    if (!cmd->allowed(s)) {
        log_limited("ad-hoc refused", s->jid, L_NOTICE, "adhoc: %s may not run %s: forbidden",
                    s->jid, node);
        cmd_error(s, iq, "cancel", "forbidden", NULL);
        return 0;
    }
    if (!action || !*action) {
        action = "execute"; /* XEP-0050 "<command/> Element": the default */
    }
    if (!known_action(action)) {
        cmd_error(s, iq, "modify", "bad-request", "malformed-action");
    } else if (sid && *sid) {
        next_stage(s, iq, c, cmd, sid, action);
    } else if (strcmp(action, "execute") == 0) {
        start(s, iq, cmd);
    } else {
        cmd_error(s, iq, "modify", "bad-request", "bad-sessionid");
    }
    return 0;
}

/* ---- disco (XEP-0050 "Discovering Support", "Retrieving the Command List") ---- */

static int add_identity(struct xml_node *q, const char *type, const char *name)
{
    struct xml_node *id = xml_add_child(q, "identity", NS_DISCO_INFO);
    return id && xml_set_attr(id, "category", "automation") == 0 &&
                   xml_set_attr(id, "type", type) == 0 &&
                   (!name || xml_set_attr(id, "name", name) == 0)
               ? 0
               : -1;
}

/* The command list: the commands s may run; none for anyone else. */
static struct xml_node *command_list(const struct session *s)
{
    struct xml_node *q = disco_query_new(NS_DISCO_ITEMS, ADHOC_NS);
    for (size_t i = 0; q && i < ncommands; i++) {
        if (!commands[i]->listed || !commands[i]->allowed(s)) {
            continue;
        }
        struct xml_node *it = xml_add_child(q, "item", NS_DISCO_ITEMS);
        if (!it || xml_set_attr(it, "jid", g_config->domain) < 0 ||
            xml_set_attr(it, "node", commands[i]->node) < 0 ||
            xml_set_attr(it, "name", commands[i]->name) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    return q;
}

/* disco#info of a command node (identity automation/command-node), of the list node, and
 * disco#items of a command node (empty). */
static struct xml_node *node_answer(const struct adhoc_command *cmd, int items, const char *node)
{
    struct xml_node *q = disco_query_new(items ? NS_DISCO_ITEMS : NS_DISCO_INFO, node);
    if (!q || items) {
        return q;
    }
    if ((cmd ? add_identity(q, "command-node", cmd->name) : add_identity(q, "command-list", NULL)) <
            0 ||
        disco_feature_add(q, ADHOC_NS) < 0 || (cmd && disco_feature_add(q, ADHOC_NS_DATA) < 0)) {
        xml_free(q);
        return NULL;
    }
    return q;
}

static int adhoc_node(struct session *s, struct xml_node *iq, struct xml_node *query,
                      const char *node)
{
    int items = strcmp(xml_ns(query), NS_DISCO_ITEMS) == 0;
    const struct adhoc_command *cmd = find_command(node);
    struct xml_node *q;
    if (strcmp(node, ADHOC_NS) == 0) {
        q = items ? command_list(s) : node_answer(NULL, 0, node);
    } else if (cmd && cmd->allowed(s)) {
        q = node_answer(cmd, items, node);
    } else {
        return -1; /* a command s may not run is not there for s */
    }
    if (!q) {
        cmd_error(s, iq, "wait", "internal-server-error", NULL);
        return 0;
    }
    router_iq_result(s, iq, q); /* takes q */
    return 0;
}

HOOK_SERVICE(adhoc)
{
    hook_iq(ADHOC_NS, adhoc_iq);
    hook_feature(HOOK_DISCO_SERVER, ADHOC_NS);
    hook_server_node(adhoc_node);
    hook_add(HOOK_TICK, on_tick);
    hook_add(HOOK_SESSION_END, on_session_end);
    hook_add(HOOK_SHUTDOWN, on_shutdown);
}
