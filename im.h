/* im.h: the instant-messaging layer above the router (RFC 6121 and the
 * everyday XEPs). router.c calls these hooks; each concern lives in its own
 * module (presence.c, roster.c, offline.c, disco.c, ...), and im.c holds the
 * table that dispatches iq payloads to them by namespace.
 * Must not: write to sockets (router_send*) or touch files other than through
 * store.c. Stanzas passed in stay owned by the caller. */
#ifndef XMPPD_IM_H
#define XMPPD_IM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct session;
struct xml_node;

/* A presence stanza from a bound client (from already stamped). */
void im_presence(struct session *s, struct xml_node *p);
/* push: presence from another domain's entity (a XEP-0114 component), its
 * from checked by that domain's stream: RFC 6121 inbound handling. */
void im_presence_inbound(struct xml_node *p);
/* s is leaving the table (stream end or replaced): broadcast unavailable
 * presence where RFC 6121 §4.5.2 / §4.6.3 say. Called once per session. */
void im_session_end(struct session *s);
/* Free the IM state hanging off s (last presence, directed-presence list). */
void im_session_free(struct session *s);
/* An iq get/set with exactly one payload addressed to the server (to_bare
 * NULL) or to an account (to_bare; the sender's own account when the iq had
 * no 'to'). Returns 0 when answered, -1 for service-unavailable. */
int im_iq(struct session *s, struct xml_node *iq, struct xml_node *payload, const char *to_bare);
/* 1 when account bare has blocked jid (XEP-0191), else 0. */
int im_blocked(const char *bare, const char *jid);
/* Store a chat/normal message for an account with no available resource
 * (XEP-0160). Returns 0 when stored, -1 when it cannot be (quota, error). */
int im_offline_store(const char *bare, const struct xml_node *m);
/* Parse bytes read back from the store (once written by xml_serialize) into
 * exactly one element name in namespace ns, within the configured XML limits.
 * Nothing read from disk goes on a stream without passing the parser again: a
 * file written by an older xmppd, damaged or edited by hand must not relay
 * what a client's parser refuses (security issue 17). Returns the element
 * (the caller frees it) or NULL. */
struct xml_node *im_parse_stored(const char *data, size_t len, const char *name, const char *ns);

/* im_bare_of: the bare JID of s's account into out. im_is_own: 1 when bare
 * (may be NULL) is that account. */
void im_bare_of(const struct session *s, char *out, size_t outsz);
int im_is_own(const struct session *s, const char *bare);
/* Append <name xmlns=ns>text</name> to n. 0, or -1 when out of memory or
 * text is not XML text. */
int im_text_child(struct xml_node *n, const char *name, const char *ns, const char *text);
/* 1 when iq is of type get. */
int im_is_get(const struct xml_node *iq);

/* ---- XEP-0004 data forms, for every module that answers with one ---- */
#define IM_NS_DATA "jabber:x:data"
/* A new <x xmlns='jabber:x:data' type=type/> with title and instructions
 * (either may be NULL) and the hidden FORM_TYPE field (when form_type is not
 * NULL). NULL when out of memory. */
struct xml_node *im_form_new(const char *type, const char *title, const char *instructions,
                             const char *form_type);
/* Append a field (type and label may be NULL) with value (NULL = none).
 * Returns the field, or NULL when out of memory. */
struct xml_node *im_field_add(struct xml_node *x, const char *var, const char *type,
                              const char *label, int required, const char *value);
/* Append one more <value/> to a field (or an <option/>). Returns 0 or -1. */
int im_value_add(struct xml_node *field, const char *value);
/* Answer iq with an error that does not copy the request back (unlike
 * router_bounce: it may hold a password or a form): from `from` (none when
 * NULL), <error type=type><cond/></error>, and beside cond, when app is set,
 * <app xmlns=app_ns/> (with a 'feature' attribute when feature is set). */
void im_iq_error(struct session *s, const struct xml_node *iq, const char *from, const char *type,
                 const char *cond, const char *app_ns, const char *app, const char *feature);


/* ---- what the IM modules offer each other and im.c ----
 * Each iq handler: returns 0 when it answered, -1 for service-unavailable. */
typedef int (*im_iq_fn)(struct session *s, struct xml_node *iq, struct xml_node *payload,
                        const char *to_bare);

/* presence.c (RFC 6121 §3, §4): subscriptions, broadcast, probes, directed. */
void presence_outbound(struct session *s, struct xml_node *p);
void presence_session_end(struct session *s);
void presence_session_free(struct session *s);
void presence_inbound(struct xml_node *p); /* push: im_presence_inbound */

/* roster.c (RFC 6121 §2, XEP-0237 versioning): jabber:iq:roster. */
int roster_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
              const char *to_bare);

/* offline.c (XEP-0160, XEP-0203 delay). */
int offline_store(const char *bare, const struct xml_node *m);
/* The same, stamped with when (wall clock) the server received it: a
 * message that waited in a XEP-0198 queue before it came here. */
int offline_store_at(const char *bare, const struct xml_node *m, time_t when);
/* Deliver and remove stored messages; called on initial presence with a
 * non-negative priority (RFC 6121 §8.5.2.1.1, XEP-0160 §3). */
void offline_deliver(struct session *s);
/* s's output queue was written out: the batch offline_deliver queued is
 * delivered, so it leaves the log (and the next batch, if any, goes out). */
void offline_written(struct session *s);
/* XEP-0198 (sm.c): the batch in flight to s is kept elsewhere (copies went
 * back to the log with offline_store_at): it leaves the log, and no next
 * batch is sent. */
void offline_batch_moved(struct session *s);
/* XEP-0198: the batch in flight to s may never have reached the client (its
 * link died) and nothing else keeps it: it stays in the log, to be delivered
 * again (offline_deliver). */
void offline_batch_lost(struct session *s);
/* Make the messages offline_store appended durable (one fsync per log);
 * those whose log cannot be synced are bounced to their senders. */
void offline_sync(void);

/* account.c: accounts removed (in-band by register.c, XEP-0077, or from
 * outside: xmppd deluser) lose their sessions: server.c reports each removal
 * the store's watch sees, or that events were lost (check_all); without a
 * watch, account_tick looks once a second. */
void account_removed(const char *bare);
void account_check_all(void);
/* Tell the contacts of every deleted account whose roster waits in its
 * tombstone (store_removed_each); at start-up and after each removal. */
void account_tidy_removed(void);
void account_removals_watched(void);
void account_tick(void);
/* An account made or given a new password the way in-band registration does
 * it (SCRAM keys from server_make_account; nothing cached for an earlier
 * account of the name survives), also for XEP-0133 administration. pw is
 * 1..1023 bytes, bare normalised and checked by the caller. Return 0, or a
 * negative store code (STORE_EEXIST: taken; STORE_ENOENT: no such account). */
int account_make(const char *bare, const char *pw);
int account_set_password(const char *bare, const char *pw);

/* disco.c: XEP-0030 disco#info/#items, XEP-0115 caps hash, XEP-0092 version,
 * XEP-0202 time, XEP-0012 last activity, XEP-0199 ping. */
int disco_info_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                  const char *to_bare);
int disco_items_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                   const char *to_bare);
int version_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
               const char *to_bare);
int time_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
            const char *to_bare);
int last_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
            const char *to_bare);
int ping_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
            const char *to_bare);
/* A new <query xmlns=ns/> with node (when not NULL or empty); NULL when out
 * of memory. Append <feature var=var/> (disco#info) to q: 0 or -1. */
struct xml_node *disco_query_new(const char *ns, const char *node);
int disco_feature_add(struct xml_node *q, const char *var);
/* The XEP-0115 'ver' for the server's stream features (stable string). */
const char *disco_caps_ver(void);
/* Record that the last resource of bare went offline (for XEP-0012); written
 * to the store later, by last_activity_flush (at most max records; -1 = all). */
void last_activity_record(const char *bare, const char *status);
/* The account was deleted: drop its record if not written yet. */
void last_activity_forget(const char *bare);
void last_activity_flush(int max);

/* Once a second (deferred writes), and once at shutdown (write everything). */
void im_tick(void);
/* Before any queued output is written (server.c conn_flush): what the output
 * may follow has to be on disk first (offline messages of this turn). */
void im_before_output(void);
/* At the end of every loop turn: sync what is left, drop what was cached for
 * the turn only. */
void im_turn_end(void);
void im_shutdown(void);

/* XEP-0082 DateTime "CCYY-MM-DDThh:mm:ss[.sss]TZD" into microseconds since
 * the epoch (times before it are 0): 0, or -1 when s is not one. */
int im_time_parse(const char *s, uint64_t *us);
/* Microseconds since the epoch as a XEP-0082 DateTime, UTC, with six digits
 * of fraction (MAM ids and archive stamps). */
void im_time_format(uint64_t us, char *out, size_t outsz);

#endif
