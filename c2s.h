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

#endif
