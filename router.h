/* router.h: who is online and where a stanza goes.
 * Owns: the table of bound sessions (bare JID -> resources), delivery rules
 * (RFC 6120 §8, RFC 6121 §8.5), `from` stamping, stanza errors, and dispatch
 * of iqs addressed to the server or to an account (a table of handlers).
 * Must not: write to sockets (it queues through conn_send) or to files (it
 * calls store.c and the IM modules). */
#ifndef XMPPD_ROUTER_H
#define XMPPD_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "hooks.h"

struct conn;
struct xml_node;

#define NS_CLIENT "jabber:client"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* One bound resource. */
struct session {
    struct conn *conn;         /* NULL while its link is down and a service keeps
                                * it (XEP-0198 resumption, HOOK_SESSION_LOST) */
    char *jid;                 /* full JID, normalised; jid[0..bare_len) is the bare JID */
    size_t bare_len;
    int available;             /* has sent available presence (RFC 6121 §4.2) */
    int priority;
    int interested;            /* requested the roster (RFC 6121 §2.1.6) */
    int blocklist_wanted;      /* asked for the block list (XEP-0191 pushes) */
    struct xml_node *presence; /* last available presence broadcast, for probes */
    struct directed *directed; /* JIDs that got directed presence (RFC 6121 §4.6) */
    int offline_inflight;      /* offline records queued, not yet written out */
    uint32_t offline_crc;      /* their checksum, to remove exactly them */
    struct session *next_res;  /* other resources of the same account */
    struct route *route;
    char lang[36];             /* xml:lang of the client's stream ("" = none) */
    int account_removed;       /* its account was deleted: it ends, and records
                                * no last activity (XEP-0012) for the name */
    void *slot[HOOK_SLOTS];    /* services' state (hooks.h hook_slot) */
};

/* iq handler: returns 0 when it answered (result or error), -1 when the
 * router should answer service-unavailable. to_bare is the account the iq is
 * addressed to (NULL = the server itself). The stanza stays owned by the router. */
typedef int (*iq_fn)(struct session *s, struct xml_node *iq, const char *to_bare);

int router_init(void);
void router_free(void);

/* Make a session for c with full JID jid. NULL when out of memory. */
struct session *router_session_new(struct conn *c, const char *jid);
/* Put s online. If the same full JID is bound already, that older session is
 * returned through *old (the caller closes it with a conflict error). */
int router_bind(struct session *s, struct session **old);
/* Take s offline (unavailable presence to whom it concerns) and free it. */
void router_unbind(struct session *s);

/* A stanza from a bound client; ownership passes to the router. */
void router_route(struct session *s, struct xml_node *stanza);

/* Lookups (bare/full JIDs normalised). */
struct session *router_find_full(const char *jid);
struct session *router_first_resource(const char *bare);
int router_online_count(void);
/* Calls fn for each bare JID with a bound session. fn may end those sessions
 * (they stay in the table until the end of the turn). */
void router_foreach_bare(void (*fn)(const char *bare, struct session *first, void *ud), void *ud);

/* Queue a stanza to one session (serialised; the node stays the caller's).
 * Returns 0, -1 when the session's queue overflowed. */
int router_send(struct session *to, const struct xml_node *stanza);
/* Answer stanza with an error (RFC 6120 §8.3): swaps from/to, sets type=error,
 * appends <error type=...><cond xmlns=NS_STANZAS/></error>, and sends it to
 * the session that sent it. Errors are never answered with errors. */
void router_bounce(struct session *s, const struct xml_node *stanza, const char *type,
                   const char *cond);
/* Answer a stanza the user sent to someone they blocked (XEP-0191 §3.3):
 * not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/>. */
void router_bounce_blocked(struct session *s, const struct xml_node *stanza);
/* The same, routed to the stanza's sender by its 'from' (who may have left):
 * for stanzas from other sessions, and failures found later (offline_sync). */
void router_bounce_sender(const struct xml_node *stanza, const char *type, const char *cond);
/* Deliver a stanza addressed to a local or remote JID, as if the server sent
 * it on behalf of stanza's `from` (presence broadcast, roster pushes, errors
 * to other users). Applies the same rules as router_route; node stays the caller's. */
void router_deliver(struct xml_node *stanza);
/* An iq result with no payload, and an iq result with a payload built by the caller. */
void router_iq_result(struct session *s, const struct xml_node *iq, struct xml_node *payload);

/* ---- push: destinations by domain (XEP-0114 components; later s2s, MUC) ----
 * A destination other than the local sessions registers the domain it serves
 * with one deliver callback, and the router hands it every stanza addressed
 * to that domain or to a JID under it: one small interface instead of a call
 * per kind of destination. deliver returns 0 when it queued the stanza (the
 * node stays the router's: serialise or copy it), -1 when it cannot take it
 * now (not connected): the router then bounces the stanza with
 * service-unavailable (RFC 6120 §8.3.3.19; presence and errors are dropped).
 * add returns 0, or -1 when the table (LIMIT_ROUTER_DOMAINS) is full or the
 * domain is registered already. domain must be normalised (jid_parse). */
typedef int (*router_domain_fn)(const struct xml_node *stanza, void *ud);
int router_domain_add(const char *domain, router_domain_fn deliver, void *ud);
void router_domain_del(const char *domain);
/* A stanza from a registered domain's own stream, whose `from` that stream has
 * checked (it is the domain or a JID under it): routed to local accounts, to
 * other domains or to the server with the rules a client's stanza gets; an
 * error goes back to its `from`. Ownership of stanza passes to the router. */
void router_route_domain(struct xml_node *stanza);
/* 1 when the domain of jid (normalised) is a registered destination, or
 * another server's when a remote destination is set (router_remote_set). */
int router_domain_serves(const char *jid);
/* Calls fn for each registered domain, in registration order (the server's
 * disco#items, XEP-0030 §4.1). */
void router_domain_each(void (*fn)(const char *domain, void *ud), void *ud);

/* ---- Federation: the destination of every other domain ----
 * One module (s2s.c) may take the stanzas addressed to domains that are
 * neither ours nor in the domain table, with the deliver contract above;
 * when it returns -1 (or none is set) the sender gets remote-server-not-found
 * (RFC 6120 §8.3.3.16; presence is dropped). Stanzas that arrive from a
 * domain's stream are never passed on to another remote domain. */
void router_remote_set(router_domain_fn deliver, void *ud);
/* MUC over s2s (issue 15 item 8): a registered domain served in-process
 * (muc.c) asks to be reachable from other servers: s2s then accepts streams
 * and dialback to it, and authenticates it as a sender (XEP-0220 §4.3.1
 * sender multiplexing) for what it sends them. Components are not: what
 * they send never leaves for another server (router_route_domain), so their
 * remote contacts would get no answer. federate returns -1 when domain is
 * not registered; federated says 1 for such a domain. */
int router_domain_federate(const char *domain);
int router_domain_federated(const char *domain);

#endif
