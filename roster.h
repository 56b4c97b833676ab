/* roster.h: the roster as presence.c and roster.c share it (internal header).
 * Owns: one account's roster in memory while a stanza is processed (loaded
 * from the "roster" store document, written back only on change), roster
 * pushes (RFC 6121 §2.1.6) and XEP-0237 versions.
 * Must not: keep rosters in memory between stanzas, or route presence (that
 * is presence.c: subscription state changes there call in here). */
#ifndef XMPPD_ROSTER_H
#define XMPPD_ROSTER_H

#include <stddef.h>

#include "limits.h"

struct session;

/* Subscription bits (RFC 6121 §2.1.2.5): TO = the user gets the contact's
 * presence, FROM = the contact gets the user's. none = 0, both = 3. */
#define ROSTER_SUB_TO 1u
#define ROSTER_SUB_FROM 2u

/* Local bounds (RFC 6121 §2.3.3 lets the server configure them). */
#define ROSTER_NAME_MAX 256          /* bytes of an item's name */
#define ROSTER_GROUP_MAX 256         /* bytes of one group name */
#define ROSTER_GROUPS_MAX 32         /* groups per item */
#define ROSTER_STATUS_MAX 256        /* bytes of <status/> kept with a pending request */
#define ROSTER_REQUEST_MAX 2048      /* bytes of a whole request stanza kept instead */
#define ROSTER_DOC_MAX (1024 * 1024) /* bytes of the stored document */

struct roster_item {
    char *jid;    /* normalised bare JID */
    char *name;   /* NULL when none */
    char *status; /* a stored inbound request: its status text, or (raw set)
                   * the whole serialised <presence type='subscribe'/>; or NULL */
    int raw;      /* status holds the serialised request stanza (RFC 6121 §3.1.3) */
    char **groups;
    int ngroups;
    unsigned sub;   /* ROSTER_SUB_* bits */
    int ask;        /* pending out: we asked the contact (ask='subscribe') */
    int pending_in; /* pending in: the contact asked us, not yet answered */
    int hidden;     /* only a pending-in record, not (yet) a roster item:
                     * RFC 6121 §3.1.3 keeps the request but adds no item */
};

struct roster {
    char bare[JID_MAX + 1]; /* the account */
    long long epoch;        /* ver = "<epoch>-<serial>"; 0 = no document yet */
    long long serial;
    struct roster_item *items;
    size_t n, cap;
};

/* Load bare's roster (an empty one when there is no document). Returns 0, or
 * -1 when it cannot be read (I/O error, a newer format): the caller answers
 * internal-server-error and writes nothing. r is then empty but valid. */
int roster_load(const char *bare, struct roster *r);
/* Parse a roster document's payload (data: NUL-terminated, len bytes, changed
 * in place) as the roster of bare, with no store access: for the roster a
 * deleted account leaves behind. 0, or -1 when it does not parse. */
int roster_parse(const char *bare, char *data, size_t len, struct roster *r);
/* End of a loop turn: forget the roster documents read during it. */
void roster_turn_end(void);
/* Bump the version and write the whole document. 0, or -1 (nothing changed
 * on disk; the in-memory copy must then be thrown away). */
int roster_save(struct roster *r);
void roster_free(struct roster *r);
/* The current version string (XEP-0237 / RFC 6121 §2.6) into out. */
void roster_ver(const struct roster *r, char *out, size_t outsz);

/* Lookup by normalised bare JID (hidden records included). NULL if absent. */
struct roster_item *roster_find(struct roster *r, const char *jid);
/* A new entry with subscription none; NULL when out of memory or when the
 * relevant cap is reached (visible items: max_roster_items; hidden pending-in
 * records: the same number again, so others cannot fill our roster). */
struct roster_item *roster_add(struct roster *r, const char *jid, int hidden);
/* Remove (and free) an entry; pointers to later entries become invalid. */
void roster_remove(struct roster *r, struct roster_item *it);
/* Number of visible items. */
size_t roster_count(const struct roster *r);
/* 1 when bare's roster has a visible item for contact with a subscription
 * 'from' or 'both' (contact sees bare's presence), 0 when not, -1 when the
 * roster cannot be read. */
int roster_sub_from(const char *bare, const char *contact);

/* Send a roster push for it (or a removal push for jid when it is NULL) to
 * every interested resource of r->bare (RFC 6121 §2.1.6), with r's version. */
void roster_push(const struct roster *r, const struct roster_item *it, const char *jid);

/* presence.c: after a roster item was removed by the user (RFC 6121 §2.5.2),
 * cancel the subscriptions it carried. old is the removed item's state. */
void presence_item_removed(const char *user_bare, const struct roster_item *old);

/* presence.c: the account user_bare was deleted; old is the roster it had.
 * Each contact is told as if every item had been removed (RFC 6121 §2.5.2),
 * whatever it blocked (XEP-0191 does not keep a deleted account's rights). */
void presence_account_deleted(const char *user_bare, const struct roster *old);

/* 1 when a normalised JID's domain is the one this server serves. */
int roster_jid_is_local(const char *norm);

#endif
