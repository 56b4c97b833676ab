/* adhoc.h: XEP-0050 ad-hoc commands on the server's JID: the disco nodes
 * (the command list, each command's node), the multi-stage sessions
 * (execute -> form -> complete, or cancel), bound to the full JID that
 * started them, bounded in number and expiring, and the XEP-0004 data form
 * helpers commands build with. Commands (admin.c) register from their
 * constructors; adhoc.c knows none of them.
 * Must not: do file I/O, or know what a command does. */
#ifndef XMPPD_ADHOC_H
#define XMPPD_ADHOC_H

#include <stddef.h>

struct buf;
struct session;
struct xml_node;

#define ADHOC_NS "http://jabber.org/protocol/commands"
#define ADHOC_NS_DATA "jabber:x:data"

/* How the last stage of a command ended. err_cond set: the iq is answered
 * with that stanza error (err_type; err_app, when set, names a XEP-0050
 * condition such as "bad-payload" beside it). Else the command is completed
 * with note (an info note, may be empty) and form (a result form; adhoc.c
 * frees it). */
struct adhoc_reply {
    const char *err_type;
    const char *err_cond;
    const char *err_app;
    char note[256];
    struct xml_node *form;
};

struct adhoc_command {
    const char *node; /* XEP-0050 node, e.g. XEP-0133's ".../admin#add-user" */
    const char *name; /* shown in clients' menus (disco#items name) */
    int listed;       /* 0 for an alias: runs, but is not in disco#items */
    /* 1 when s may see and run the command (checked at every stage). */
    int (*allowed)(const struct session *s);
    /* The form to fill (type 'form'); NULL when out of memory. A command
     * without form function runs at once, with no session. */
    struct xml_node *(*form)(struct session *s);
    /* Run the command with the submitted form (NULL without a form). */
    void (*run)(struct session *s, const struct xml_node *form, struct adhoc_reply *r);
};

/* Register a command (from a HOOK_SERVICE constructor); cmd is kept. */
void adhoc_register(const struct adhoc_command *cmd);

/* ---- XEP-0004 data forms (built with im.h's im_form_new and friends) ---- */
/* The field var of a submitted form, or NULL. */
struct xml_node *adhoc_field(const struct xml_node *x, const char *var);
/* The first value of field var, or NULL when the field or value is absent. */
const char *adhoc_field_value(const struct xml_node *x, const char *var);
/* The values of field var joined by newlines into out (a text-multi field,
 * XEP-0004 §3.3). Returns the number of values, or -1 when out is full. */
int adhoc_field_text(const struct xml_node *x, const char *var, struct buf *out);

#endif
