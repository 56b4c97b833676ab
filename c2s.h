/* c2s.h: the client-to-server stream state machine of one connection: stream
 * open and errors, feature negotiation, STARTTLS, SASL, resource binding.
 * Owns: struct c2s (parser, SASL exchange state, the session once bound).
 * Must not: touch sockets (it uses conn_send/conn_close from server.h) or
 * files (accounts come through store.c). */
#ifndef XMPPD_C2S_H
#define XMPPD_C2S_H

#include <stddef.h>

#include "xml.h"

struct conn;
struct xml_node;

/* Global set-up once the config and the store are ready: the login failure
 * throttle, and the server's secret (store_secret: made on first start).
 * Returns 0, or -1 (logged) when the secret can be neither read nor made. */
int c2s_init(void);
/* Attach stream state to a new connection. Returns 0 or -1 (out of memory). */
int c2s_attach(struct conn *c);
/* Bytes received from the peer (already decrypted). */
void c2s_feed(struct conn *c, const char *data, size_t len);
/* The peer went away or the server is closing c: leave the router, free state. */
void c2s_detach(struct conn *c);
/* Everything queued on c has been written to the socket (asked for with
 * conn_notify_drained). */
void c2s_drained(struct conn *c);
/* One-second housekeeping: pre-auth timeout, pings, delayed SASL failures. */
void c2s_tick(struct conn *c);
/* Close the stream with a stream error (RFC 6120 §4.9) and close the conn.
 * cond is the defined condition, e.g. "not-well-formed"; text may be NULL. */
void c2s_stream_error(struct conn *c, const char *cond, const char *text);
/* The bytes c2s, s2s and component streams share (RFC 6120 §4.7, §4.9),
 * onto b. The stream header up to its xmlns:stream (the caller adds its
 * attributes and '>'): */
struct buf;
void c2s_stream_head(struct buf *b, const char *ns);
/* <stream:error> with cond, text (NULL: none) and app (an application
 * condition, serialised, or NULL), then </stream:stream>. */
void c2s_stream_error_tail(struct buf *b, const char *cond, const char *text, const char *app);
/* Server shutdown: send </stream:stream> (with system-shutdown) and close. */
void c2s_shutdown(struct conn *c);
/* Per-address SASL failure bookkeeping size, for tests and logs. */
int c2s_auth_banned(const char *addr);
/* The payload of an iq sent before authentication when it is what RFC 6120
 * §8.2.3 allows there: a get or set to no one or to our domain, with exactly
 * one child, a <query/> in namespace ns. Else NULL. */
struct xml_node *c2s_preauth_query(struct xml_node *iq, const char *ns);

/* The stream error condition (RFC 6120 §4.9.3) for a parser error,
 * for the other stream modules (component.c). */
const char *c2s_xml_error(enum xml_err e);

/* ---- XEP-0198 stream management (sm.c) ---- */
struct session;
/* c2s_stream_error with an application-specific condition element after the
 * defined one (RFC 6120 §4.9.4): app is serialised XML, copied. */
void c2s_stream_error_app(struct conn *c, const char *cond, const char *app);
/* The bare JID c authenticated as, while it is authenticated and not bound
 * (the time for a <resume/>); else NULL. */
const char *c2s_user(const struct conn *c);
/* Move the bound session sess onto c (authenticated, not bound), which
 * becomes bound. A connection that still carries sess loses it and is closed
 * with a conflict stream error. */
void c2s_resume(struct conn *c, struct session *sess);

/* Counts a failed component handshake against its address
 * (auth_fail_ban_address), as a failed SASL login is. */
void c2s_auth_failed_address(const char *addr);

/* ---- one-step logins: XEP-0078 jabber:iq:auth (legacy.c, WITH_LEGACY_AUTH) ----
 * A login service that gets the password in the clear before authentication
 * (a hook_preauth_iq handler) checks it the way SASL PLAIN is checked: same
 * worker, same failure throttle, same made-up keys for unknown accounts.
 * c is a client stream that is not yet authenticated. */
/* Whether a SASL <auth/> was sent on c (then no other login may follow). */
int c2s_sasl_tried(const struct conn *c);
/* Names user (as the client gave it) as the account c tries, for the
 * throttle; 1 when c's address may not try it now, else 0. */
int c2s_login_banned(struct conn *c, const char *user);
/* A refused attempt that is not a wrong password: xml (the answer) is sent
 * now and counts as a failed attempt; the stream may end after it. */
void c2s_login_refused(struct conn *c, const char *xml);
/* A wrong password (or account): xml, copied, is sent once the throttle's
 * delay is over, like a SASL not-authorized; what is for the log line. */
void c2s_login_wrong_password(struct conn *c, const char *xml, const char *what);
/* Called once the password of a c2s_login_check is checked, on the same
 * stream (if it is gone, nothing is called): ok 1 = the password is the
 * account's. The strings are the job's copies, valid during the call. */
typedef void (*c2s_login_fn)(struct conn *c, int ok, const char *resource, const char *id);
/* Queues the check of pw (pwlen bytes) for account bare (valid) and holds
 * c meanwhile; resource and id are copied for done. 0, or -1 when out of
 * memory (nothing queued). done may run before this returns. */
int c2s_login_check(struct conn *c, const char *bare, const char *pw, size_t pwlen,
                    const char *resource, const char *id, c2s_login_fn done);
/* Only from done, with ok 1: c is authenticated as the account that was
 * checked (how names the method in the log) and resource is bound. 0, or
 * -1 with *cond the iq error condition (internal-server-error when called
 * anywhere else), or *cond NULL when the stream was ended instead. */
int c2s_login_bind(struct conn *c, const char *resource, const char *how, const char **cond);
/* 1 when c's parser holds part of a stanza (the bytes fed so far end inside
 * one): a framing layer whose messages must hold whole elements (RFC 7395
 * §3.3.3) checks it after each message. */
int c2s_partial(const struct conn *c);
/* A stanza written to c's client by a module before or at binding (through
 * the output hooks once a session is bound, as router_send's are). */
void c2s_send(struct conn *c, const char *xml, size_t len);


/* ---- password checks for no stream (web admin, issue 14) ----
 * The check a login of addr as user (as typed) with pw gets on a stream:
 * same worker, same failure throttle and bans, same made-up keys for an
 * unknown account. done runs later on the loop thread (before this returns
 * without a worker thread) with bare (the account, normalised; valid during
 * the call), ok 1 when the password is the account's and allow (may be
 * NULL) accepts it, 0 when not (counted as a failure; delay is the seconds
 * the throttle wants the answer held back), -1 when the server stops (free
 * ud, nothing more). Returns 0 when queued, 1 when addr may not try user now
 * (nothing queued, done not called), -1 when out of memory (the same). */
typedef void (*c2s_check_fn)(void *ud, const char *bare, int ok, int delay);
int c2s_password_check(const char *addr, const char *user, const char *pw, size_t pwlen,
                       int (*allow)(const char *bare), c2s_check_fn done, void *ud);

#endif
