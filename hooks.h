/* hooks.h: the tables through which services (carbons, MAM, PEP, CSI, stream
 * management, push, ...) plug into the layers below them at start-up, so that
 * router.c, im.c and c2s.c never name a service.
 * Owns: the handler tables (fixed size, filled before main() runs).
 * Must not: know any service, allocate, or do I/O.
 *
 * A service registers its rows from a constructor:
 *     HOOK_SERVICE(mam) { hook_iq("urn:xmpp:mam:2", mam_iq); hook_add(HOOK_MSG_TO_ACCOUNT, mam_archive); }
 * so linking its file in (the Makefile's WITH_... switches) is all it takes to
 * switch it on, and leaving it out leaves nothing of it behind. Rows run in
 * registration order; nothing may depend on the order between services. */
#ifndef XMPPD_HOOKS_H
#define XMPPD_HOOKS_H

#include <stddef.h>

struct buf;
struct conn;
struct session;
struct xml_node;

#define HOOK_SERVICE(name)                                                                         \
    static void name##_hooks(void) __attribute__((constructor));                                   \
    static void name##_hooks(void)

/* ---- iq payloads: get/set to the server (to_bare NULL) or to an account ----
 * Same contract as im.h's handlers: 0 = answered, -1 = service-unavailable. */
typedef int (*hook_iq_fn)(struct session *s, struct xml_node *iq, struct xml_node *payload,
                          const char *to_bare);
void hook_iq(const char *ns, hook_iq_fn fn);
hook_iq_fn hook_find_iq(const char *ns);

/* ---- XEP-0030 features, on the server's JID or on every account's ---- */
enum hook_disco { HOOK_DISCO_SERVER, HOOK_DISCO_ACCOUNT, HOOK_DISCO_N };
void hook_feature(enum hook_disco where, const char *var);
/* The registered features of where; *n gets their count. */
const char *const *hook_features(enum hook_disco where, size_t *n);

/* ---- c2s: stream features and top-level elements that are not stanzas ----
 * A feature writer appends its element to <stream:features> after
 * authentication (XEP-0198 <sm/>, XEP-0352 <csi/>). */
typedef void (*hook_stream_feature_fn)(struct conn *c, struct buf *out);
void hook_stream_feature(hook_stream_feature_fn fn);
void hook_run_stream_features(struct conn *c, struct buf *out);
/* A top-level element in namespace ns from an authenticated client (s is NULL
 * before resource binding). Returns 0 when handled (the element stays the
 * caller's), -1 when not: c2s answers unsupported-stanza-type. */
typedef int (*hook_nonza_fn)(struct conn *c, struct session *s, struct xml_node *el);
void hook_nonza(const char *ns, hook_nonza_fn fn);
hook_nonza_fn hook_find_nonza(const char *ns);

/* ---- per-session state of a service ----
 * A service takes a slot index once, from its constructor, and keeps its state
 * for a session in s->slot[index] (router.h); it frees it on HOOK_SESSION_FREE. */
#define HOOK_SLOTS 8
int hook_slot(void);

/* ---- events ----
 * Every event callback has one shape; what each argument is depends on the
 * event (listed below). A callback returns 0 to let the others run, 1 to say
 * it consumed the event (hook_run stops and returns 1). */
enum hook_event {
    HOOK_INIT,            /* (NULL, NULL, NULL): config and store are ready */
    HOOK_MSG_FROM_CLIENT, /* (sender, message, NULL): from stamped, before routing */
    HOOK_MSG_TO_ACCOUNT,  /* (sender or NULL, message, bare): m goes to local
                           * account bare (delivered or stored offline); may edit m */
    HOOK_MSG_DELIVERED,   /* (recipient, message, bare): m was queued to that resource */
    HOOK_MSG_OFFLINE,     /* (NULL, message, bare): m was stored offline for bare */
    HOOK_MSG_HELD,        /* (recipient, message, bare): m waits for a resource that
                           * is disconnected but resumable (XEP-0198) */
    HOOK_SESSION_BOUND,   /* (session, NULL, NULL): a resource was bound */
    HOOK_PRESENCE_OUT,    /* (session, presence, NULL): a client sent presence */
    HOOK_SESSION_END,     /* (session, NULL, NULL): s leaves the table */
    HOOK_SESSION_FREE,    /* (session, NULL, NULL): s is freed: free its slots */
    HOOK_TICK,            /* once a second */
    HOOK_TURN_END,        /* end of every loop turn */
    HOOK_SHUTDOWN,        /* the server stops: write what is deferred */
    /* PEP (XEP-0163): */
    HOOK_IQ_ANSWER,       /* (sender, iq, bare or NULL): an iq result/error to the
                           * server (bare NULL) or to account bare: the answer to
                           * an iq a service sent, matched by its id */
    HOOK_ACCOUNT_REMOVED, /* (NULL, NULL, bare): the account was deleted; drop
                           * what is cached for the name */
    /* carbons (XEP-0280) and client state indication (XEP-0352): */
    HOOK_MSG_ROUTED,      /* (NULL, message, bare): routing of m to local account bare
                           * is over: HOOK_MSG_DELIVERED (or _HELD) ran for every
                           * resource that got it, none if stored offline or refused */
    HOOK_SEND,            /* (recipient, stanza, NULL): stanza is about to be queued to
                           * recipient (router_send, above any stream-level counting).
                           * Read-only: a callback must not edit it. 1 = the callback
                           * keeps a copy and sends it later; router_send returns 0. */
    /* XEP-0198 stream management (sm.c): */
    HOOK_STANZA_IN,       /* (session, stanza, NULL): a bound client sent a stanza */
    HOOK_SESSION_LOST,    /* (session, NULL, NULL): s's connection is gone without a
                           * clean close; a callback returning 1 keeps s bound and
                           * available with s->conn NULL (it ends s later with
                           * router_unbind), else s is unbound as usual */
    /* mam: */
    HOOK_BEFORE_OUTPUT,   /* (NULL, NULL, NULL): output is about to be written: make
                           * durable what it may follow (group commits) */
    HOOK_MSG_UNSTORED,    /* (NULL, message, bare): offline storage refused m (quota,
                           * error); return 1 when a service keeps it all the same
                           * (an archive), so that the sender gets no error */
    /* feature switches (issue 16): */
    HOOK_ACCOUNT_CREATED, /* (NULL, NULL, bare): the account was made in-band; drop
                           * what is cached for an earlier account of that name */
    /* s2s SASL EXTERNAL: */
    HOOK_RELOAD,          /* (NULL, NULL, NULL): SIGHUP applied a new configuration and
                           * certificate: rebuild what was made from them */
    /* s2s fixes (issue 12): */
    HOOK_MSG_SANITIZE,    /* (NULL, message, bare): m goes to local account bare; take
                           * off what only this server may put there (XEP-0280 §11
                           * wrappers, XEP-0203 delays in its name). Every row runs
                           * before any HOOK_MSG_TO_ACCOUNT row (hook_run_to_account),
                           * so no archive or copy ever sees them, whatever the
                           * registration order. Return 0. */
    HOOK_EVENT_N
};
typedef int (*hook_fn)(struct session *s, struct xml_node *st, const char *bare);
void hook_add(enum hook_event ev, hook_fn fn);
int hook_run(enum hook_event ev, struct session *s, struct xml_node *st, const char *bare);
/* s2s fixes (issue 12): the two phases of a message to local account bare,
 * HOOK_MSG_SANITIZE then HOOK_MSG_TO_ACCOUNT; returns what the latter does. */
int hook_run_to_account(struct xml_node *m, const char *bare);

/* ---- PEP (XEP-0163): what an account's disco#info/#items also list ----
 * hook_account_identity adds an identity to every account's disco#info
 * (XEP-0163 §6.1: pubsub/pep). A disco#items writer appends <item/>s to q,
 * the answer to s for the items of account bare (no node); it may only add
 * what s may see. Returns 0, or -1 when out of memory. */
void hook_account_identity(const char *category, const char *type);
const char *const *hook_account_identities(size_t *n); /* category, type pairs */
typedef int (*hook_items_fn)(struct session *s, const char *bare, struct xml_node *q);
void hook_disco_items(hook_items_fn fn);
int hook_run_disco_items(struct session *s, const char *bare, struct xml_node *q);
/* ---- XEP-0198 stream management: stanzas written to a client ----
 * Every stanza the server writes to a bound session (router_send and the
 * answers c2s writes itself) passes the output writers, in registration
 * order. A writer returns 0 to let the caller queue the bytes on s->conn,
 * 1 when it took them (queued them itself, or holds them for a session whose
 * connection is lost), -1 to refuse them (the stanza counts as undelivered). */
typedef int (*hook_output_fn)(struct session *s, const char *xml, size_t len);
void hook_output(hook_output_fn fn);
int hook_run_output(struct session *s, const char *xml, size_t len);

/* ---- feature switches (issue 16): XEP-0191 blocking as a service ----
 * The block-list check router.c and presence.c ask through im_blocked: may
 * jid reach account bare (1 = blocked)? A service registers at most one;
 * without one nothing is blocked. */
typedef int (*hook_blocked_fn)(const char *bare, const char *jid);
void hook_blocked(hook_blocked_fn fn);
int hook_run_blocked(const char *bare, const char *jid);
/* ---- feature switches (issue 16): before authentication (XEP-0077) ----
 * A pre-auth feature writer appends its element to <stream:features> where
 * SASL mechanisms are offered (XEP-0077 <register/>). A pre-auth iq handler
 * gets each iq of an unauthenticated client on a channel where authentication
 * is allowed (after TLS when required); it returns 0 when it answered on c,
 * -1 when the iq is not its (c2s then ends the stream: not-authorized). */
void hook_preauth_feature(hook_stream_feature_fn fn);
void hook_run_preauth_features(struct conn *c, struct buf *out);
typedef int (*hook_preauth_iq_fn)(struct conn *c, struct xml_node *iq);
void hook_preauth_iq(hook_preauth_iq_fn fn);
int hook_run_preauth_iq(struct conn *c, struct xml_node *iq);
/* ---- XEP-0050 ad-hoc commands: disco nodes on the server's JID ----
 * A disco#info or #items get to the server with a node disco.c does not know
 * (query is the <query/>, node its node) goes to these writers in turn: one
 * returns 0 when it answered the iq (result or error), -1 when the node is
 * not its own; when none took it, disco.c answers item-not-found. */
typedef int (*hook_node_fn)(struct session *s, struct xml_node *iq, struct xml_node *query,
                            const char *node);
void hook_server_node(hook_node_fn fn);
int hook_run_server_node(struct session *s, struct xml_node *iq, struct xml_node *query,
                         const char *node);
/* ---- command-line subcommands (XEP-0227 export/import: pie.c) ----
 * main() runs a registered subcommand after the configuration is read and
 * the store is ready, with argv[0] its name; what fn returns is the exit
 * status. usage is one line for the help text ("export [FILE]  ..."). */
typedef int (*hook_command_fn)(int argc, char **argv);
void hook_command(const char *name, hook_command_fn fn, const char *usage);
hook_command_fn hook_find_command(const char *name);
/* The usage line of the i-th registered command, NULL past the last. */
const char *hook_command_usage(size_t i);

/* ---- group chat archive (issue 15: XEP-0313 on room JIDs) ----
 * muc.c hands what a persistent room archives, and the MAM iqs to the room,
 * to the one registered archive (mam.c); without one (WITH_MAM=no) a room
 * keeps only its in-memory history. room is a normalised bare room JID.
 * append: archive m (the groupchat message as relayed, without stanza-id);
 *   real is the sender's real JID (shown to those the room lets see it);
 *   id gets the archive id, the XEP-0359 stanza-id to stamp. 0 or -1.
 * query: answer iq (a MAM iq to the room, payload its <query/>) to its
 *   sender, from the room; reveal 1 adds the real JIDs (muc#user items).
 * last: fn(message, archive id, time in microseconds since the epoch) for
 *   the newest n messages, oldest first (the message is fn's to keep or
 *   free). 0 or -1.
 * drop: remove the room's archive (destroyed, or no longer archiving). */
#define HOOK_ARC_ID_MAX 24
struct hook_room_archive {
    int (*append)(const char *room, const struct xml_node *m, const char *real, char *id,
                  size_t idsz);
    void (*query)(const char *room, const struct xml_node *iq, const struct xml_node *payload,
                  int reveal);
    int (*last)(const char *room, int n,
                void (*fn)(struct xml_node *m, const char *id, unsigned long long us, void *ud),
                void *ud);
    void (*drop)(const char *room);
};
void hook_room_archive(const struct hook_room_archive *a);
const struct hook_room_archive *hook_find_room_archive(void); /* NULL: none */

#endif
