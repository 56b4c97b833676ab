/* hooks.c: fixed tables filled by the services' constructors (hooks.h).
 * Overflowing a table is a programming error caught by the first start of
 * any build: abort() with the table's name, before a socket is open. */
#include "hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cold.h"

#define HOOK_ROWS 16

struct ns_row {
    const char *ns;
    void (*fn)(void);
};

static struct ns_row iq_rows[HOOK_ROWS], nonza_rows[HOOK_ROWS];
static size_t n_iq, n_nonza;
static const char *features[HOOK_DISCO_N][2 * HOOK_ROWS];
static size_t n_features[HOOK_DISCO_N];
static hook_stream_feature_fn feature_writers[HOOK_ROWS];
static size_t n_writers;
static hook_fn events[HOOK_EVENT_N][HOOK_ROWS];
static size_t n_events[HOOK_EVENT_N];

COLD static void full(const char *table)
{
    fprintf(stderr, "xmppd: hook table %s is full (HOOK_ROWS in hooks.c)\n", table);
    abort();
}

/* Function pointers of different types share one row type: each table is
 * read back only through the type it was filled with. */
static void ns_add(struct ns_row *rows, size_t *n, const char *ns, void (*fn)(void), const char *t)
{
    if (*n == HOOK_ROWS) {
        full(t);
    }
    rows[*n].ns = ns;
    rows[(*n)++].fn = fn;
}

static void (*ns_find(const struct ns_row *rows, size_t n, const char *ns))(void)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].ns, ns) == 0) {
            return rows[i].fn;
        }
    }
    return NULL;
}

COLD void hook_iq(const char *ns, hook_iq_fn fn)
{
    ns_add(iq_rows, &n_iq, ns, (void (*)(void))fn, "iq");
}

hook_iq_fn hook_find_iq(const char *ns)
{
    return (hook_iq_fn)ns_find(iq_rows, n_iq, ns);
}

COLD void hook_nonza(const char *ns, hook_nonza_fn fn)
{
    ns_add(nonza_rows, &n_nonza, ns, (void (*)(void))fn, "nonza");
}

hook_nonza_fn hook_find_nonza(const char *ns)
{
    return (hook_nonza_fn)ns_find(nonza_rows, n_nonza, ns);
}

COLD void hook_feature(enum hook_disco where, const char *var)
{
    if (n_features[where] == 2 * HOOK_ROWS) {
        full("feature");
    }
    features[where][n_features[where]++] = var;
}

const char *const *hook_features(enum hook_disco where, size_t *n)
{
    *n = n_features[where];
    return features[where];
}

COLD void hook_stream_feature(hook_stream_feature_fn fn)
{
    if (n_writers == HOOK_ROWS) {
        full("stream feature");
    }
    feature_writers[n_writers++] = fn;
}

void hook_run_stream_features(struct conn *c, struct buf *out)
{
    for (size_t i = 0; i < n_writers; i++) {
        feature_writers[i](c, out);
    }
}

COLD int hook_slot(void)
{
    static int n_slots;
    if (n_slots == HOOK_SLOTS) {
        full("session slot");
    }
    return n_slots++;
}

COLD void hook_add(enum hook_event ev, hook_fn fn)
{
    if (n_events[ev] == HOOK_ROWS) {
        full("event");
    }
    events[ev][n_events[ev]++] = fn;
}

int hook_run(enum hook_event ev, struct session *s, struct xml_node *st, const char *bare)
{
    for (size_t i = 0; i < n_events[ev]; i++) {
        if (events[ev][i](s, st, bare) == 1) {
            return 1;
        }
    }
    return 0;
}

/* ---- PEP (XEP-0163): account identities and disco#items writers ---- */

static const char *identities[2 * HOOK_ROWS];
static size_t n_identities;
static hook_items_fn items_writers[HOOK_ROWS];
static size_t n_items_writers;

COLD void hook_account_identity(const char *category, const char *type)
{
    if (n_identities == 2 * HOOK_ROWS) {
        full("identity");
    }
    identities[n_identities++] = category;
    identities[n_identities++] = type;
}

const char *const *hook_account_identities(size_t *n)
{
    *n = n_identities / 2;
    return identities;
}

COLD void hook_disco_items(hook_items_fn fn)
{
    if (n_items_writers == HOOK_ROWS) {
        full("disco items");
    }
    items_writers[n_items_writers++] = fn;
}

int hook_run_disco_items(struct session *s, const char *bare, struct xml_node *q)
{
    for (size_t i = 0; i < n_items_writers; i++) {
        if (items_writers[i](s, bare, q) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- XEP-0198 stream management: output writers ---- */

static hook_output_fn output_writers[HOOK_ROWS];
static size_t n_output;

COLD void hook_output(hook_output_fn fn)
{
    if (n_output == HOOK_ROWS) {
        full("output");
    }
    output_writers[n_output++] = fn;
}

int hook_run_output(struct session *s, const char *xml, size_t len)
{
    for (size_t i = 0; i < n_output; i++) {
        int r = output_writers[i](s, xml, len);
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

/* ---- feature switches (issue 16): the block-list check ---- */

static hook_blocked_fn blocked_check;

COLD void hook_blocked(hook_blocked_fn fn)
{
    if (blocked_check) {
        full("blocked");
    }
    blocked_check = fn;
}

int hook_run_blocked(const char *bare, const char *jid)
{
    return blocked_check ? blocked_check(bare, jid) : 0;
}

/* ---- feature switches (issue 16): before authentication ---- */

static hook_stream_feature_fn preauth_writers[HOOK_ROWS];
static size_t n_preauth_writers;
static hook_preauth_iq_fn preauth_iqs[HOOK_ROWS];
static size_t n_preauth_iqs;

COLD void hook_preauth_feature(hook_stream_feature_fn fn)
{
    if (n_preauth_writers == HOOK_ROWS) {
        full("pre-auth feature");
    }
    preauth_writers[n_preauth_writers++] = fn;
}

void hook_run_preauth_features(struct conn *c, struct buf *out)
{
    for (size_t i = 0; i < n_preauth_writers; i++) {
        preauth_writers[i](c, out);
    }
}

COLD void hook_preauth_iq(hook_preauth_iq_fn fn)
{
    if (n_preauth_iqs == HOOK_ROWS) {
        full("pre-auth iq");
    }
    preauth_iqs[n_preauth_iqs++] = fn;
}

int hook_run_preauth_iq(struct conn *c, struct xml_node *iq)
{
    for (size_t i = 0; i < n_preauth_iqs; i++) {
        if (preauth_iqs[i](c, iq) == 0) {
            return 0;
        }
    }
    return -1;
}

/* ---- XEP-0050 ad-hoc commands: disco nodes on the server's JID ---- */

static hook_node_fn node_writers[HOOK_ROWS];
static size_t n_node_writers;

COLD void hook_server_node(hook_node_fn fn)
{
    if (n_node_writers == HOOK_ROWS) {
        full("server node");
    }
    node_writers[n_node_writers++] = fn;
}

int hook_run_server_node(struct session *s, struct xml_node *iq, struct xml_node *query,
                         const char *node)
{
    for (size_t i = 0; i < n_node_writers; i++) {
        if (node_writers[i](s, iq, query, node) == 0) {
            return 0;
        }
    }
    return -1;
}

/* ---- command-line subcommands (XEP-0227 export/import: pie.c) ---- */

static struct ns_row command_rows[HOOK_ROWS];
static const char *command_usage[HOOK_ROWS];
static size_t n_commands;

COLD void hook_command(const char *name, hook_command_fn fn, const char *usage)
{
    if (n_commands == HOOK_ROWS) {
        full("command");
    }
    command_usage[n_commands] = usage;
    ns_add(command_rows, &n_commands, name, (void (*)(void))fn, "command");
}

hook_command_fn hook_find_command(const char *name)
{
    return (hook_command_fn)ns_find(command_rows, n_commands, name);
}

COLD const char *hook_command_usage(size_t i)
{
    return i < n_commands ? command_usage[i] : NULL;
}

/* ---- group chat archive (issue 15) ---- */

static const struct hook_room_archive *room_archive;

COLD void hook_room_archive(const struct hook_room_archive *a)
{
    room_archive = a;
}

const struct hook_room_archive *hook_find_room_archive(void)
{
    return room_archive;
}

/* ---- s2s fixes (issue 12): sanitize before deliver/archive ---- */

/* Phases instead of an order between rows: a service that reads m in
 * HOOK_MSG_TO_ACCOUNT (MAM's archive) may rely on every strip having run,
 * which registration order (link order) could not promise. */
int hook_run_to_account(struct xml_node *m, const char *bare)
{
    hook_run(HOOK_MSG_SANITIZE, NULL, m, bare);
    return hook_run(HOOK_MSG_TO_ACCOUNT, NULL, m, bare);
}
