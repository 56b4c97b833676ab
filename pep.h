/* pep.h: what pep.c (XEP-0163 nodes) and caps.c (XEP-0115 entity
 * capabilities of online resources) offer each other. Internal to the PEP
 * service: nothing else includes it (router.c, im.c and c2s.c reach both
 * through hooks.h only), but for disco.c, which hashes its own disco#info
 * with caps_ver() (always built). */
#ifndef XMPPD_PEP_H
#define XMPPD_PEP_H

#include <stddef.h>

struct session;

/* caps.c: 1 when s's XEP-0115 features (verified, cached, or asked for with
 * disco#info) include node+notify (XEP-0163 §4.2 filtered notifications). */
int caps_wants(const struct session *s, const char *node);

/* pep.c: send s the last item of every node it may read and asked for, its
 * own account's and its contacts' (XEP-0163 §4.3.4); caps.c calls it once per
 * session, when s is available and its caps are known. */
void pep_send_last(struct session *s);

/* pep.c: prefix then 16 random hex digits into out (outsz >= strlen(prefix)
 * + 17): ids of items, events and caps queries, which must not count what
 * the server sent to others. 0, or -1 (no randomness, out too small). */
int pep_random_id(const char *prefix, char *out, size_t outsz);

/* caps_ver.c: the XEP-0115 §5.1 'ver' (base64 SHA-1) of a disco#info
 * <query/> into out. 0, or -1: out of memory, out too small, or an answer
 * §5.4 calls ill-formed (a '<' in a hashed value, two identical identities
 * or features), or one with an identity field or form string ending in
 * "+notify", which may be a feature in disguise. caps.c never caches an
 * answer without a ver. */
struct xml_node;
int caps_ver(const struct xml_node *q, char *out, size_t outsz);

#endif
