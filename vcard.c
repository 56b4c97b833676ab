/* vcard.c: XEP-0054 vcard-temp. Each account may store one vCard (at most
 * max_vcard_size bytes, serialised) in the store doc "vcard"; anyone on the
 * server may read it (vCards are public profile data). The doc holds the
 * serialised <vCard/> element; it is parsed again on every read so that a
 * damaged or hand-edited file can never put malformed XML on a reader's stream. */
#include "im.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hooks.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_VCARD "vcard-temp"
#define VCARD_DOC "vcard"

/* ---- the stored element ---- */

/* What store_doc_get may read: a vCard stored before max_vcard_size was
 * lowered must still be readable. */
static size_t read_bound(void)
{
    int lim = g_config->max_vcard_size;
    return (size_t)(lim > LIMIT_VCARD_SIZE ? lim : LIMIT_VCARD_SIZE);
}

/* ---- get ---- */

static int vcard_get(struct session *s, struct xml_node *iq, const char *bare)
{
    char *data = NULL;
    size_t len = 0;
    int rc = bare ? store_doc_get(bare, VCARD_DOC, &data, &len, read_bound()) : STORE_ENOENT;
    struct xml_node *v = NULL;
    if (rc == STORE_OK) {
        v = im_parse_stored(data, len, "vCard", NS_VCARD);
        if (!v) {
            log_error("vcard: stored vCard of %s does not parse; not serving it", bare);
        }
    } else if (rc != STORE_ENOENT) {
        router_bounce(s, iq, "wait", "internal-server-error");
        free(data);
        return 0;
    }
    free(data);
    /* XEP-0054 §3.1: no vCard is answered with an empty <vCard/>. The server
     * itself (bare NULL) has none. */
    if (!v) {
        v = xml_node_new("vCard", NS_VCARD);
    }
    if (!v) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return 0;
    }
    router_iq_result(s, iq, v);
    return 0;
}

/* ---- set ---- */

/* 1 when the stored doc is byte for byte data (saves a flash write when a
 * client re-publishes the same vCard at every login, as many do). */
static int unchanged(const char *bare, const char *data, size_t len)
{
    char *old = NULL;
    size_t oldlen = 0;
    int same = store_doc_get(bare, VCARD_DOC, &old, &oldlen, read_bound()) == STORE_OK &&
               oldlen == len && memcmp(old, data, len) == 0;
    free(old);
    return same;
}

static int vcard_set(struct session *s, struct xml_node *iq, struct xml_node *v, const char *bare)
{
    int rc;
    if (!xml_first_child(v)) {
        /* An empty vCard erases it: a get answers the same empty element. */
        rc = store_doc_delete(bare, VCARD_DOC);
        rc = rc == STORE_ENOENT ? STORE_OK : rc;
    } else {
        struct buf b;
        buf_init(&b, (size_t)g_config->max_vcard_size);
        if (xml_serialize(v, NS_CLIENT, &b) < 0) {
            /* Over the limit. XEP-0054 names no error for this; RFC 6120
             * §8.3.3.12 not-acceptable ("does not meet criteria defined by
             * the server"), type modify: a smaller vCard (e.g. photo) works. */
            buf_free(&b);
            router_bounce(s, iq, "modify", "not-acceptable");
            return 0;
        }
        rc = unchanged(bare, buf_ptr(&b), buf_len(&b))
                 ? STORE_OK
                 : store_doc_put(bare, VCARD_DOC, buf_ptr(&b), buf_len(&b));
        buf_free(&b);
    }
    if (rc < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return 0;
    }
    router_iq_result(s, iq, NULL);
    return 0;
}

static int vcard_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                    const char *to_bare)
{
    if (strcmp(xml_name(payload), "vCard") != 0) {
        router_bounce(s, iq, "modify", "bad-request");
        return 0;
    }
    if (im_is_get(iq)) {
        return vcard_get(s, iq, to_bare);
    }
    /* XEP-0054 §3.2: a user may publish only its own vCard. */
    if (!im_is_own(s, to_bare)) {
        router_bounce(s, iq, "auth", "forbidden");
        return 0;
    }
    return vcard_set(s, iq, payload, to_bare);
}

/* WITH_VCARD (Makefile): linking this file in is what switches it on. The
 * server answers for the account's bare JID (XEP-0054 §2), so both list it. */
HOOK_SERVICE(vcard)
{
    hook_iq("vcard-temp", vcard_iq);
    hook_feature(HOOK_DISCO_SERVER, "vcard-temp");
    hook_feature(HOOK_DISCO_ACCOUNT, "vcard-temp");
}
