/* component.h: XEP-0114 external components, the stream module beside c2s.c
 * for connections accepted on the component listener.
 * Owns: the configured components (domain, secret), the stream state of each
 * component connection (header, handshake, stanzas in and out) and the
 * registration of each component's domain in the router's domain table.
 * Must not: touch sockets (conn_* API) or files, or decide where a stanza
 * goes (router.c does): it only checks what the component may claim. */
#ifndef XMPPD_COMPONENT_H
#define XMPPD_COMPONENT_H

#include <stddef.h>

struct conn;

/* Register each configured component's domain with the router. Returns 0, or
 * -1 (logged) when the router's domain table cannot take them. */
int component_init(void);
/* Configured components: the listener is opened only when there is one. */
int component_configured(void);
/* The same contract as the c2s_* functions of the same names (c2s.h). */
int component_attach(struct conn *c);
void component_feed(struct conn *c, const char *data, size_t len);
void component_detach(struct conn *c);
void component_tick(struct conn *c);
void component_shutdown(struct conn *c);

#endif
