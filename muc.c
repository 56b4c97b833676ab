/* muc.c: XEP-0045 Multi-User Chat, served in-process on its own domain
 * (muc_domain, default conference.DOMAIN) through the router's destination
 * table (router_domain_add), as a component would be: the router never names
 * this file. Rooms live in memory; temporary rooms vanish when empty,
 * persistent ones are also kept in the store and read back at start.
 * Owns: rooms, occupants, their presence, roles and affiliations, groupchat
 * and private messages, subjects, invitations, the history sent on join,
 * room configuration, the room document's format.
 * Must not: write to sockets (it hands stanzas to router_deliver) or touch
 * files but through store.c (store_room_*). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "xml.h"

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_SID "urn:xmpp:sid:0"
#define NS_DELAY "urn:xmpp:delay"
#define NS_PING "urn:xmpp:ping"
#define NS_XDATA "jabber:x:data"
#define NS_MAM "urn:xmpp:mam:2"

enum muc_aff { AFF_NONE, AFF_OUTCAST, AFF_MEMBER, AFF_ADMIN, AFF_OWNER };
enum muc_role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };
static const char *const aff_names[] = {"none", "outcast", "member", "admin", "owner", NULL};
static const char *const role_names[] = {"none", "visitor", "participant", "moderator", NULL};

/* Which of names (ending with NULL) v is, or -1 (also for v NULL). */
static int index_of(const char *v, const char *const *names)
{
    for (int i = 0; v && names[i]; i++) {
        if (strcmp(v, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* One connected resource of an occupant (XEP-0045 §7.2: several resources of
 * one account may share a nick, as Prosody and ejabberd allow). */
struct occ_res {
    struct occ_res *next;
    char jid[]; /* full real JID, normalised */
};

/* A token bucket of an occupant (issue 15): credit in 1/60 of an event,
 * brought up to date at g_now 'at'. B_PRESENCE's are muc_presence_burst
 * deep and refilled by muc_presence_rate a minute, B_MESSAGE's by
 * muc_message_*. */
struct bucket {
    long credit;
    time_t at;
};
enum { B_PRESENCE, B_MESSAGE };

struct occupant {
    struct occupant *next;
    struct occ_res *res;   /* never empty while the occupant is in the room */
    enum muc_role role;
    struct xml_node *pres; /* last available presence: only what others need
                            * (show, status, caps...), bounded by
                            * muc_max_presence_bytes: no per-occupant copy of
                            * what a client puts in its own presence */
    char *nick;
    int voice_asked; /* a voice request went to the moderators (§8.6) */
    struct bucket b[2]; /* presence (B_PRESENCE) and groupchat message token buckets */
    int held;        /* a presence change waits for credit (on_tick sends it) */
    char bare[]; /* real bare JID */
};

struct affiliation {
    struct affiliation *next;
    enum muc_aff aff;
    char *nick; /* reserved nick (§7.10), NULL = none; only with member and above */
    char jid[]; /* bare JID */
};

struct hist {
    struct hist *next;     /* newer */
    time_t when;           /* wall clock, for 'seconds' and 'since' */
    size_t chars;          /* serialised size, for 'maxchars' (XEP-0045 §7.2.13) */
    size_t bytes;          /* footprint, against muc_history_bytes */
    struct xml_node *msg;  /* with from=room/nick, stanza-id and <delay/> */
};

struct room {
    struct room *next;       /* in its hash bucket */
    char *jid;               /* bare room JID, normalised */
    char *creator;           /* bare JID of the account that made it */
    struct occupant *occ;
    int nocc;
    struct affiliation *affs;
    struct xml_node *subject; /* <message type='groupchat'> with the <subject/>, or NULL */
    struct hist *hist_old, *hist_new;
    int nhist;
    size_t hist_bytes;
    /* Configuration (muc#roomconfig, XEP-0045 §10.2; the defaults are Prosody's). */
    char *name;        /* muc#roomconfig_roomname, NULL = none */
    char *secret;      /* password (§7.2.5), NULL = none */
    int nonanonymous;  /* 1: every occupant sees real JIDs; 0: moderators only */
    int changesubject; /* participants may change the subject */
    int persistent;    /* stays when empty */
    int hidden;        /* not in the service's disco#items */
    int membersonly;   /* only members, admins and owners join (§7.2.6) */
    int moderated;     /* only those with voice speak (§8.3) */
    int dirty;         /* a persistent room's subject or registrations changed since stored */
    int archiving;     /* muc#roomconfig_enablearchiving: a persistent room keeps
                        * its messages in an archive (XEP-0313 §5; issue 15) */
    struct left *left; /* buckets of accounts that left (muc_rejoin_buckets) */
    int nleft;
};

#define ROOM_BUCKETS 256
static struct room *rooms[ROOM_BUCKETS];
static int nrooms;
static char muc_domain[JID_MAX + 1];

/* Issue 15, limits that do not reset: defined with their helpers below. */
static void left_free(struct room *r);
static void left_keep(struct room *r, const struct occupant *o);
static int join_spend(struct room *r, struct occupant *o);
static void occ_free_new(struct occupant *o);
static int bucket_spend(struct bucket *b, int kind, int cost);
static int bucket_burst(int kind);
static int msg_spend(const struct room *r, struct occupant *o, const struct xml_node *m);
static void left_sweep(void);

/* ---- small helpers ---- */

/* The hash bucket of the room jid. */
static struct room **bucket_of(const char *jid)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *jid; jid++) {
        h = (h ^ (unsigned char)*jid) * 16777619u;
    }
    return &rooms[h % ROOM_BUCKETS];
}

static struct room *room_find(const char *jid)
{
    for (struct room *r = *bucket_of(jid); r; r = r->next) {
        if (strcmp(r->jid, jid) == 0) {
            return r;
        }
    }
    return NULL;
}

/* The room archive (mam.c through hooks.h), when this room keeps one now:
 * persistent and archiving (temporary rooms never write to disk). NULL in
 * a build without MAM: then a room has only its in-memory history. */
static const struct hook_room_archive *archive_of(const struct room *r)
{
    return r->persistent && r->archiving ? hook_find_room_archive() : NULL;
}

static struct occupant *occ_by_nick(const struct room *r, const char *nick)
{
    for (struct occupant *o = r->occ; o; o = o->next) {
        if (strcmp(o->nick, nick) == 0) {
            return o;
        }
    }
    return NULL;
}

static struct occupant *occ_by_jid(const struct room *r, const char *full)
{
    for (struct occupant *o = r->occ; o; o = o->next) {
        for (struct occ_res *x = o->res; x; x = x->next) {
            if (strcmp(x->jid, full) == 0) {
                return o;
            }
        }
    }
    return NULL;
}

static struct occupant *occ_by_bare(const struct room *r, const char *bare)
{
    for (struct occupant *o = r->occ; o; o = o->next) {
        if (strcmp(o->bare, bare) == 0) {
            return o;
        }
    }
    return NULL;
}

/* bare's entry in the affiliation list, or NULL. */
static struct affiliation *aff_find(const struct room *r, const char *bare)
{
    for (struct affiliation *a = r->affs; a; a = a->next) {
        if (strcmp(a->jid, bare) == 0) {
            return a;
        }
    }
    return NULL;
}

static enum muc_aff aff_of(const struct room *r, const char *bare)
{
    const struct affiliation *a = aff_find(r, bare);
    return a ? a->aff : AFF_NONE;
}

static int aff_count(const struct room *r)
{
    int n = 0;
    for (const struct affiliation *x = r->affs; x; x = x->next) {
        n++;
    }
    return n;
}

/* Set bare's affiliation; AFF_NONE forgets it. */
static int aff_set(struct room *r, const char *bare, enum muc_aff aff)
{
    for (struct affiliation **pp = &r->affs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->jid, bare) == 0) {
            struct affiliation *old = *pp;
            if (aff < AFF_MEMBER) {
                free(old->nick); /* §7.10: a reservation goes with membership */
                old->nick = NULL;
            }
            if (aff != AFF_NONE) {
                old->aff = aff;
                return 0;
            }
            *pp = old->next;
            free(old);
            return 0;
        }
    }
    if (aff == AFF_NONE) {
        return 0;
    }
    if (aff_count(r) >= g_config->muc_max_affiliations) {
        return -1; /* each is stored, and read by every join */
    }
    struct affiliation *a = malloc(sizeof(*a) + strlen(bare) + 1);
    if (!a) {
        return -1;
    }
    a->aff = aff;
    a->nick = NULL;
    strcpy(a->jid, bare);
    a->next = r->affs;
    r->affs = a;
    return 0;
}

/* §7.10: the nick bare reserved in r, or NULL. */
static const char *nick_of(const struct room *r, const char *bare)
{
    const struct affiliation *a = aff_find(r, bare);
    return a ? a->nick : NULL;
}

/* §7.10 / §7.2.9: nick is in use or reserved by an account other than bare. */
static int nick_taken(const struct room *r, const char *nick, const char *bare)
{
    const struct occupant *o = occ_by_nick(r, nick);
    if (o && strcmp(o->bare, bare) != 0) {
        return 1;
    }
    for (const struct affiliation *a = r->affs; a; a = a->next) {
        if (a->nick && strcmp(a->nick, nick) == 0 && strcmp(a->jid, bare) != 0) {
            return 1;
        }
    }
    return 0;
}

/* *out = a copy of s (NULL: none); -1 when out of memory. */
static int dup_opt(char **out, const char *s)
{
    *out = s ? strdup(s) : NULL;
    return s && !*out ? -1 : 0;
}

/* Reserve nick (NULL: none) for bare, who has an affiliation entry. */
static int nick_reserve(struct room *r, const char *bare, const char *nick)
{
    struct affiliation *a = aff_find(r, bare);
    char *n;
    if (!a || dup_opt(&n, nick) < 0) {
        return -1;
    }
    free(a->nick);
    a->nick = n;
    return 0;
}

/* XEP-0045 §5.1.2: owners and admins are moderators; in a moderated room
 * those without membership are visitors; the rest participants. */
static enum muc_role role_for(const struct room *r, enum muc_aff aff)
{
    if (aff >= AFF_ADMIN) {
        return ROLE_MODERATOR;
    }
    return r->moderated && aff < AFF_MEMBER ? ROLE_VISITOR : ROLE_PARTICIPANT;
}

static char *occ_jid(const struct room *r, const char *nick, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s", r->jid, nick);
    return out;
}

/* Send st to one real JID (the node stays ours; the router serialises it). */
static void send_to(struct xml_node *st, const char *to)
{
    if (xml_set_attr(st, "to", to) == 0) {
        router_deliver(st);
    }
}

/* Send st (NULL: nothing, out of memory) to every resource of o. */
static void send_occ(struct xml_node *st, const struct occupant *o)
{
    for (struct occ_res *x = o->res; st && x; x = x->next) {
        send_to(st, x->jid);
    }
}

/* The stanza errors the room answers with (RFC 6120 §8.3.3), grouped by
 * their type: a code is one small number to pass around, not two strings.
 * E_NOT_OCCUPANT is not-acceptable of type cancel (XEP-0410 §3), E_FULL
 * service-unavailable of type wait (§7.2.11). */
enum err {
    E_OK,
    E_BAD_REQUEST, E_NOT_ACCEPTABLE, E_JID_MALFORMED,                 /* modify */
    E_FORBIDDEN, E_NOT_ALLOWED, E_NOT_AUTHORIZED, E_REG_REQUIRED,     /* auth */
    E_CONFLICT, E_NOT_FOUND, E_UNAVAILABLE, E_NOT_OCCUPANT,           /* cancel */
    E_BUSY, E_FULL, E_INTERNAL,                                       /* wait */
};
static const char *const err_cond[] = {
    "", "bad-request", "not-acceptable", "jid-malformed",
    "forbidden", "not-allowed", "not-authorized", "registration-required",
    "conflict", "item-not-found", "service-unavailable", "not-acceptable",
    "resource-constraint", "service-unavailable", "internal-server-error",
};

/* An error answer to st from whoever it was sent to (RFC 6120 §8.3). */
static void bounce(const struct xml_node *st, enum err e)
{
    const char *type = e >= E_BUSY ? "wait" : e >= E_CONFLICT ? "cancel"
                       : e >= E_FORBIDDEN ? "auth" : "modify";
    router_bounce_sender(st, type, err_cond[e]);
}

/* ---- building stanzas ----
 * What the room sends is built from these. They return NULL when out of
 * memory, and take a NULL parent for that, so a chain of them is checked
 * once at its end. A NULL attribute value sets nothing (xml_set_attr). */

/* A new jabber:client stanza (the caller frees it). */
static struct xml_node *stanza_new(const char *name, const char *from, const char *type)
{
    struct xml_node *st = xml_node_new(name, NS_CLIENT);
    if (st && (xml_set_attr(st, "from", from) < 0 || xml_set_attr(st, "type", type) < 0)) {
        xml_free(st);
        return NULL;
    }
    return st;
}

/* A new child of parent (ns NULL: the parent's) with the attributes given
 * as name, value pairs up to a NULL name. */
static struct xml_node *add_child(struct xml_node *parent, const char *name, const char *ns, ...)
{
    struct xml_node *c = parent ? xml_add_child(parent, name, ns) : NULL;
    const char *attr;
    va_list ap;
    va_start(ap, ns);
    while (c && (attr = va_arg(ap, const char *)) != NULL) {
        if (xml_set_attr(c, attr, va_arg(ap, const char *)) < 0) {
            c = NULL;
        }
    }
    va_end(ap);
    return c;
}

/* A new child of parent holding text. */
static struct xml_node *add_text(struct xml_node *parent, const char *name, const char *text)
{
    struct xml_node *c = add_child(parent, name, NULL, NULL);
    return c && xml_add_text(c, text, strlen(text)) == 0 ? c : NULL;
}

/* ---- presence (XEP-0045 §7.2) ---- */

/* What of a client's presence a room passes on: show, status, priority and
 * what other clients read (caps, avatar hash); never its muc element. */
static int pres_keep(const struct xml_node *c)
{
    const char *ns = xml_ns(c), *name = xml_name(c);
    if (strcmp(ns, NS_CLIENT) == 0) {
        return strcmp(name, "show") == 0 || strcmp(name, "status") == 0 ||
               strcmp(name, "priority") == 0;
    }
    return strcmp(ns, "http://jabber.org/protocol/caps") == 0 ||
           strcmp(ns, "vcard-temp:x:update") == 0;
}

/* What the room keeps of an element it passes on. <show/>, <status/>,
 * <priority/> and the photo hash are character data (RFC 6121 §4.7.2,
 * XEP-0153): their text and language only (text), not elements hidden
 * inside (a muc#user item with someone else's JID, for the others to read).
 * XEP-0115 <c/> and XEP-0153 <x/>: the attributes clients read and the
 * photo; nothing nested that the room would pass on unread. */
static struct xml_node *keep_copy(const struct xml_node *c, int text)
{
    static const char *const attrs[] = {"hash", "node", "ver", "ext"};
    const char *t = xml_text(c), *lang = xml_attr_ns(c, "lang", XML_NS_XML);
    struct xml_node *k = xml_node_new(xml_name(c), xml_ns(c));
    struct xml_node *photo = xml_child(c, "photo", "vcard-temp:x:update");
    int ok = k != NULL;
    if (text) {
        ok = ok && xml_add_text(k, t, strlen(t)) == 0 && xml_set_attr(k, "xml:lang", lang) == 0;
    } else {
        for (size_t i = 0; ok && i < sizeof(attrs) / sizeof(attrs[0]); i++) {
            ok = xml_set_attr(k, attrs[i], xml_attr(c, attrs[i])) == 0;
        }
        struct xml_node *ph = ok && photo ? keep_copy(photo, 1) : NULL;
        ok = ok && (!photo || ph);
        if (ph) {
            xml_append(k, ph);
        }
    }
    if (!ok) {
        xml_free(k);
        return NULL;
    }
    return k;
}

static struct xml_node *pres_strip(const struct xml_node *p)
{
    struct xml_node *k = xml_node_new("presence", NS_CLIENT);
    if (!k) {
        return NULL;
    }
    for (struct xml_node *c = xml_first_child(p); c; c = xml_next(c)) {
        if (pres_keep(c)) {
            struct xml_node *cp = keep_copy(c, strcmp(xml_ns(c), NS_CLIENT) == 0);
            if (!cp) {
                xml_free(k);
                return NULL;
            }
            xml_append(k, cp);
        }
    }
    /* Over the bound: the status goes first, then all but <show/>, then
     * that too (a <show/> is a short keyword, RFC 6121 §4.7.2.1, but a
     * client may send a long one). */
    for (int pass = 0; pass < 3 && xml_footprint(k) > (size_t)g_config->muc_max_presence_bytes;
         pass++) {
        struct xml_node *c = xml_first_child(k);
        while (c) {
            struct xml_node *next = xml_next(c);
            if (pass == 2 || (pass == 0 ? strcmp(xml_name(c), "status") == 0
                                        : strcmp(xml_name(c), "show") != 0)) {
                xml_detach(c);
                xml_free(c);
            }
            c = next;
        }
    }
    return k;
}

/* What a presence from the room says besides the occupant's own: status
 * codes (XEP-0045 §15.6.2), the new nick of a nick change (§7.6), the reason
 * of a kick or ban (§8.2, §9.1). */
struct extra {
    int c[6];
    int n;
    const char *newnick;
    const char *reason;
};

static void code_add(struct extra *e, int c)
{
    if (e->n < (int)(sizeof(e->c) / sizeof(e->c[0]))) {
        e->c[e->n++] = c;
    }
}

static int add_status_codes(struct xml_node *x, const struct extra *e)
{
    for (int i = 0; e && i < e->n; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", e->c[i]);
        if (!add_child(x, "status", NULL, "code", v, NULL)) {
            return -1;
        }
    }
    return 0;
}

/* The presence of occupant o as one recipient sees it: with its real JID
 * (real, or its bare JID) when with_jid, i.e. for moderators and in
 * non-anonymous rooms (§7.2.3, §7.2.4). type NULL = available. */
static struct xml_node *occ_presence(const struct room *r, const struct occupant *o,
                                     const char *type, int with_jid, const char *real,
                                     const struct extra *e)
{
    char from[JID_MAX + 1];
    struct xml_node *p = type || !o->pres ? xml_node_new("presence", NS_CLIENT) : xml_copy(o->pres);
    struct xml_node *x = add_child(p, "x", NS_MUC_USER, NULL);
    struct xml_node *it =
        add_child(x, "item", NULL, "affiliation", aff_names[aff_of(r, o->bare)], "role",
                  role_names[type ? ROLE_NONE : o->role], "jid",
                  with_jid ? (real ? real : o->bare) : NULL, "nick", e ? e->newnick : NULL, NULL);
    if (!it || xml_set_attr(p, "from", occ_jid(r, o->nick, from, sizeof(from))) < 0 ||
        xml_set_attr(p, "type", type) < 0 ||
        (e && e->reason && !add_text(it, "reason", e->reason)) || add_status_codes(x, e) < 0) {
        xml_free(p);
        return NULL;
    }
    return p;
}

static int sees_jids(const struct room *r, const struct occupant *viewer)
{
    return r->nonanonymous || viewer->role == ROLE_MODERATOR;
}

/* o's presence to every resource of every other occupant (o's own resources
 * get it as self-presence, with 110, from the caller). */
static void broadcast_presence(const struct room *r, const struct occupant *o, const char *type,
                               const struct extra *e)
{
    struct xml_node *with = NULL, *without = NULL;
    for (const struct occupant *v = r->occ; v; v = v->next) {
        if (v == o) {
            continue;
        }
        int j = sees_jids(r, v);
        struct xml_node **pp = j ? &with : &without;
        if (!*pp) {
            *pp = occ_presence(r, o, type, j, o->res ? o->res->jid : NULL, e);
        }
        send_occ(*pp, v);
    }
    xml_free(with);
    xml_free(without);
}

/* Self-presence (§7.2.2: status 110, and always with the real JID) to one
 * resource. */
static void self_presence(const struct room *r, const struct occupant *o, const char *to,
                          const char *type, const struct extra *e)
{
    struct extra mine = {{0}, 0, NULL, NULL};
    if (e) {
        mine = *e;
    }
    code_add(&mine, 110);
    struct xml_node *p = occ_presence(r, o, type, 1, to, &mine);
    if (p) {
        send_to(p, to);
        xml_free(p);
    }
}

/* Self-presence to every resource of o. */
static void self_all(const struct room *r, const struct occupant *o, const char *type,
                     const struct extra *e)
{
    for (struct occ_res *x = o->res; x; x = x->next) {
        self_presence(r, o, x->jid, type, e);
    }
}

/* o's presence to everyone: the others, then o's own resources. */
static void announce(const struct room *r, const struct occupant *o, const char *type,
                     const struct extra *e)
{
    broadcast_presence(r, o, type, e);
    self_all(r, o, type, e);
}

/* ---- rooms: life and death ---- */

static void hist_drop_oldest(struct room *r)
{
    struct hist *h = r->hist_old;
    r->hist_old = h->next;
    if (!r->hist_old) {
        r->hist_new = NULL;
    }
    r->nhist--;
    r->hist_bytes -= h->bytes;
    xml_free(h->msg);
    free(h);
}

static int nheld; /* occupants whose latest presence waits for credit */

static void occ_free(struct occupant *o)
{
    nheld -= o->held;
    while (o->res) {
        struct occ_res *x = o->res;
        o->res = x->next;
        free(x);
    }
    xml_free(o->pres);
    free(o->nick);
    free(o);
}

/* o is gone from r: the room keeps its buckets (left_keep) and forgets it. */
static void occ_drop(struct room *r, struct occupant *o)
{
    for (struct occupant **pp = &r->occ; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }
    r->nocc--;
    left_keep(r, o);
    occ_free(o);
}

static void room_free(struct room *r)
{
    while (r->occ) {
        struct occupant *o = r->occ;
        r->occ = o->next;
        occ_free(o);
    }
    while (r->affs) {
        struct affiliation *a = r->affs;
        r->affs = a->next;
        free(a->nick);
        free(a);
    }
    while (r->hist_old) {
        hist_drop_oldest(r);
    }
    left_free(r);
    xml_free(r->subject);
    free(r->name);
    free(r->secret);
    free(r->jid);
    free(r->creator);
    free(r);
}

static void room_destroy(struct room *r)
{
    for (struct room **pp = bucket_of(r->jid); *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    nrooms--;
    log_debug("muc: room %s is gone", r->jid);
    room_free(r);
}

/* A temporary room ends with its last occupant. */
static void room_gc(struct room *r)
{
    if (!r->occ && !r->persistent) {
        room_destroy(r);
    }
}

/* Whether creator may make no more rooms: muc_max_rooms in all, or
 * muc_max_rooms_per_account its own, or (MUC over s2s) when its domain is
 * another server's, muc_max_rooms_per_domain by users of that domain (our
 * own accounts have the per-account limit only). */
static int room_limit_hit(const char *creator)
{
    const char *at = strchr(creator, '@');
    const char *dom = at ? at + 1 : creator;
    int mine = 0, domain = 0;
    if (nrooms >= g_config->muc_max_rooms) {
        return 1; /* no walk over every room for a refusal */
    }
    for (int i = 0; i < ROOM_BUCKETS; i++) {
        for (struct room *r = rooms[i]; r; r = r->next) {
            const char *a = strchr(r->creator, '@');
            mine += strcmp(r->creator, creator) == 0;
            domain += strcmp(a ? a + 1 : r->creator, dom) == 0;
        }
    }
    return mine >= g_config->muc_max_rooms_per_account ||
           (strcmp(dom, g_config->domain) != 0 && domain >= g_config->muc_max_rooms_per_domain);
}

/* A room of that JID and creator, in the table; NULL when out of memory. */
static struct room *room_new(const char *jid, const char *creator)
{
    struct room *r = calloc(1, sizeof(*r));
    if (!r || !(r->jid = strdup(jid)) || !(r->creator = strdup(creator))) {
        if (r) {
            room_free(r);
        }
        return NULL;
    }
    struct room **b = bucket_of(jid);
    r->next = *b;
    *b = r;
    nrooms++;
    return r;
}

/* A new room for creator (XEP-0045 §10.1). Like Prosody and ejabberd, an
 * instant room is open at once (no locked state until the owner confirms):
 * returns NULL with *cond set when a limit says no. */
static struct room *room_create(const char *jid, const char *creator, enum err *cond)
{
    *cond = E_BUSY;
    if (room_limit_hit(creator)) {
        log_limited("muc room limit", creator, L_NOTICE, "muc: %s may not create %s: room limit",
                    creator, jid);
        return NULL;
    }
    *cond = E_INTERNAL;
    struct room *r = room_new(jid, creator);
    if (!r || aff_set(r, creator, AFF_OWNER) < 0) {
        if (r) {
            room_destroy(r);
        }
        return NULL;
    }
    /* Like Prosody's muc_log_by_default: archiving is on, for whenever the
     * room is made persistent. An archive left by an earlier room of the
     * name (one set aside, a failed removal) is not the new owner's. */
    r->archiving = 1;
    if (hook_find_room_archive()) {
        hook_find_room_archive()->drop(jid);
    }
    log_limited("muc room created", creator, L_INFO, "muc: %s created room %s", creator, jid);
    return r;
}

static int room_save(const struct room *r);
static void room_forget(const struct room *r);


/* ---- the rooms each session is in ----
 * Directed presence (RFC 6121 §4.6.3) tells a room when a session ends, but
 * presence.c remembers a bounded number of its recipients: a session in more
 * rooms would stay in the others for ever. So each session also keeps the
 * JIDs of the rooms it joined (in its hook slot), and HOOK_SESSION_END takes
 * it out of them. Entries of rooms it left are pruned when the list grows. */

struct joined {
    int n, cap;
    char **rooms;
};

static int muc_slot = -1;

static void joined_prune(struct session *s, struct joined *j)
{
    int k = 0;
    for (int i = 0; i < j->n; i++) {
        struct room *r = room_find(j->rooms[i]);
        if (r && occ_by_jid(r, s->jid)) {
            j->rooms[k++] = j->rooms[i];
        } else {
            free(j->rooms[i]);
        }
    }
    j->n = k;
}

static void joined_add(const char *full, const char *room_jid)
{
    struct session *s = router_find_full(full);
    struct joined *j = s ? s->slot[muc_slot] : NULL;
    if (!s) {
        return; /* not a local session (a component's JID): nothing ends it */
    }
    if (!j && !(j = s->slot[muc_slot] = calloc(1, sizeof(*j)))) {
        return;
    }
    for (int i = 0; i < j->n; i++) {
        if (strcmp(j->rooms[i], room_jid) == 0) {
            return;
        }
    }
    if (j->n == j->cap) {
        joined_prune(s, j);
    }
    if (j->n == j->cap) {
        int cap = j->cap ? 2 * j->cap : 4;
        char **nr = realloc(j->rooms, (size_t)cap * sizeof(*nr));
        if (!nr) {
            return;
        }
        j->rooms = nr;
        j->cap = cap;
    }
    if ((j->rooms[j->n] = strdup(room_jid)) != NULL) {
        j->n++;
    }
}

static void leave(struct room *r, struct occupant *o, const char *full, int ending);

static void depth_enter(void);
static void depth_exit(void);

static int on_session_end(struct session *s, struct xml_node *st, const char *bare)
{
    (void)st, (void)bare;
    struct joined *j = s->slot[muc_slot];
    depth_enter();
    for (int i = 0; j && i < j->n; i++) {
        struct room *r = room_find(j->rooms[i]);
        struct occupant *o = r ? occ_by_jid(r, s->jid) : NULL;
        if (o) {
            leave(r, o, s->jid, 1);
        }
    }
    depth_exit();
    return 0;
}

static int on_session_free(struct session *s, struct xml_node *st, const char *bare)
{
    (void)st, (void)bare;
    struct joined *j = s->slot[muc_slot];
    for (int i = 0; j && i < j->n; i++) {
        free(j->rooms[i]);
    }
    if (j) {
        free(j->rooms);
        free(j);
    }
    s->slot[muc_slot] = NULL;
    return 0;
}

/* ---- joining, presence updates, nick changes, leaving ---- */

struct history_req {
    long maxchars, maxstanzas, seconds; /* -1 = not given */
    time_t since;                       /* 0 = not given */
};

static void history_send(const struct room *r, const char *to, const struct history_req *q);
static void subject_send(const struct room *r, const char *to);

static time_t parse_stamp(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end) {
        return 0;
    }
    return timegm(&tm);
}

static long attr_long(const struct xml_node *n, const char *name)
{
    const char *v = xml_attr(n, name);
    char *end = NULL;
    if (!v || !*v) {
        return -1;
    }
    long x = strtol(v, &end, 10);
    return *end || x < 0 ? -1 : x;
}

static void history_request(const struct xml_node *muc, struct history_req *q)
{
    struct xml_node *h = muc ? xml_child(muc, "history", NS_MUC) : NULL;
    q->maxchars = h ? attr_long(h, "maxchars") : -1;
    q->maxstanzas = h ? attr_long(h, "maxstanzas") : -1;
    q->seconds = h ? attr_long(h, "seconds") : -1;
    q->since = h ? parse_stamp(xml_attr(h, "since")) : 0;
}

static struct occupant *occ_new(const char *nick, const char *bare, const char *full)
{
    struct occupant *o = calloc(1, sizeof(*o) + strlen(bare) + 1);
    struct occ_res *x = malloc(sizeof(*x) + strlen(full) + 1);
    if (!o || !x || !(o->nick = strdup(nick))) {
        free(o);
        free(x);
        return NULL; /* o->nick is NULL whenever o is freed here */
    }
    strcpy(o->bare, bare);
    strcpy(x->jid, full);
    x->next = NULL;
    o->res = x;
    for (int k = B_PRESENCE; k <= B_MESSAGE; k++) {
        o->b[k].credit = (long)bucket_burst(k) * 60;
        o->b[k].at = g_now;
    }
    return o;
}

/* §7.2.3: the others' presence, then the newcomer's to all (self-presence
 * last, with 110, 201 for a new room, 100 when real JIDs are public), then
 * the history (§7.2.14: as much as the client's <x xmlns=muc/> asks for)
 * and the subject (§7.2.15). */
static void join_announce(struct room *r, struct occupant *o, const char *full, int created,
                          const struct xml_node *muc, int others)
{
    struct history_req q;
    history_request(muc, &q);
    int j = sees_jids(r, o);
    for (struct occupant *v = r->occ; v; v = v->next) {
        if (v == o) {
            continue;
        }
        struct xml_node *p = occ_presence(r, v, NULL, j, NULL, NULL);
        if (p) {
            send_to(p, full);
            xml_free(p);
        }
    }
    if (others) {
        broadcast_presence(r, o, NULL, NULL);
    }
    struct extra e = {{0}, 0, NULL, NULL};
    if (r->nonanonymous) {
        code_add(&e, 100);
    }
    if (created) {
        code_add(&e, 201);
    }
    self_all(r, o, NULL, &e); /* the occupant's other resources learn of the new one too */
    history_send(r, full, &q);
    subject_send(r, full);
}

/* Compare a password without an early exit: how long a wrong guess takes
 * says nothing about how much of it was right. */
static int secret_equal(const char *given, const char *secret)
{
    size_t n = strlen(given), m = strlen(secret);
    unsigned char diff = n != m;
    for (size_t i = 0; i < m; i++) {
        diff |= (unsigned char)(secret[i] ^ given[i < n ? i : 0]);
    }
    return diff == 0;
}

/* §7.2.5-§7.2.7: who may not come in at all, and why (NULL: welcome). */
static enum err refusal(const struct room *r, const char *bare, const struct xml_node *p)
{
    enum muc_aff a = aff_of(r, bare);
    if (a == AFF_OUTCAST) {
        return E_FORBIDDEN;
    }
    if (r->membersonly && a < AFF_MEMBER) {
        return E_REG_REQUIRED;
    }
    struct xml_node *x = xml_child(p, "x", NS_MUC);
    struct xml_node *pw = x ? xml_child(x, "password", NS_MUC) : NULL;
    if (r->secret && (!pw || !secret_equal(xml_text(pw), r->secret))) {
        return E_NOT_AUTHORIZED;
    }
    return E_OK;
}

static void join(struct room *r, const char *full, const char *bare, const char *nick,
                 const struct xml_node *p, int created)
{
    struct occupant *o = occ_by_nick(r, nick);
    enum err no = refusal(r, bare, p);
    if (no) {
        log_limited("muc refused", bare, L_INFO, "muc: %s may not join %s: %s", bare, r->jid,
                    err_cond[no]);
        bounce(p, no);
        return;
    }
    if (nick_taken(r, nick, bare)) {
        bounce(p, E_CONFLICT); /* §7.2.9, §7.10: in use or reserved */
        return;
    }
    if (!o && r->nocc >= g_config->muc_max_occupants) {
        bounce(p, E_FULL); /* §7.2.11 */
        return;
    }
    struct xml_node *kept = pres_strip(p);
    if (!kept) {
        bounce(p, E_BUSY);
        return;
    }
    if (o) {
        /* Another resource of the same account takes the same nick. */
        struct occ_res *x = malloc(sizeof(*x) + strlen(full) + 1);
        if (!x) {
            xml_free(kept);
            bounce(p, E_BUSY);
            return;
        }
        strcpy(x->jid, full);
        x->next = o->res;
        o->res = x;
    } else {
        o = occ_new(nick, bare, full);
        if (!o || !join_spend(r, o)) {
            occ_free_new(o);
            xml_free(kept);
            bounce(p, E_BUSY);
            return;
        }
        o->role = role_for(r, aff_of(r, bare));
        o->next = r->occ;
        r->occ = o;
        r->nocc++;
    }
    xml_free(o->pres);
    o->pres = kept;
    joined_add(full, r->jid);
    join_announce(r, o, full, created, xml_child(p, "x", NS_MUC), 1);
}

/* Remove resource full of o; the room forgets o with its last resource. */
static void leave(struct room *r, struct occupant *o, const char *full, int ending)
{
    if (!ending) {
        self_presence(r, o, full, "unavailable", NULL);
    }
    for (struct occ_res **pp = &o->res; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->jid, full) == 0) {
            struct occ_res *x = *pp;
            *pp = x->next;
            free(x);
            break;
        }
    }
    if (o->res) {
        return; /* other resources keep the nick */
    }
    broadcast_presence(r, o, "unavailable", NULL);
    occ_drop(r, o);
    room_gc(r);
}

/* §8.2 kick (307), §9.1 ban (301), §9.4 loss of membership in a
 * members-only room (321): o leaves with all its resources. */
static void remove_occupant(struct room *r, struct occupant *o, int code, const char *reason)
{
    struct extra e = {{code}, 1, NULL, reason};
    self_all(r, o, "unavailable", &e);
    broadcast_presence(r, o, "unavailable", &e);
    log_limited("muc removed", r->jid, L_INFO, "muc: %s left %s (status %d)", o->bare, r->jid,
                code);
    occ_drop(r, o);
}

/* A role or affiliation changed: everyone sees o anew. */
static void announce_role(const struct room *r, const struct occupant *o, const char *reason)
{
    struct extra e = {{0}, 0, NULL, reason};
    announce(r, o, NULL, &e);
}

/* Issue 15 item 2: every presence or nick change of an occupant goes to
 * every occupant, so each spends from a token bucket of its own:
 * muc_presence_burst changes at once, muc_presence_rate a minute after.
 * Credit is kept in 1/60 of a change, so whole seconds (g_now) refill it
 * exactly. Spends cost changes and returns 1, or 0 when credit is short. */
static int occ_spend(struct occupant *o, int cost)
{
    return bucket_spend(&o->b[B_PRESENCE], B_PRESENCE, cost);
}

/* o's presence went out: nothing waits any more. */
static void occ_unhold(struct occupant *o)
{
    nheld -= o->held;
    o->held = 0;
}

/* §7.6: nick change, for an occupant with one resource (one with several
 * would take the others along against their will). */
static void change_nick(struct room *r, struct occupant *o, const char *nick,
                        const struct xml_node *p)
{
    if (occ_by_nick(r, nick) || nick_taken(r, nick, o->bare)) {
        bounce(p, E_CONFLICT); /* §7.6.3, §7.10: in use or reserved */
        return;
    }
    if (o->res->next) {
        bounce(p, E_NOT_ACCEPTABLE);
        return;
    }
    /* Two broadcasts (unavailable with 303, then available): two changes.
     * A nick cannot wait like a status can: the change is refused. */
    if (!occ_spend(o, 2)) {
        log_limited("muc presence rate", o->bare, L_NOTICE,
                    "muc: %s changes nicks too fast in %s", o->bare, r->jid);
        bounce(p, E_BUSY); /* RFC 6120 §8.3.3.18 */
        return;
    }
    char *nn = strdup(nick);
    if (!nn) {
        bounce(p, E_BUSY);
        return;
    }
    struct extra e = {{303}, 1, nick, NULL};
    announce(r, o, "unavailable", &e); /* o has one resource */
    free(o->nick);
    o->nick = nn;
    announce(r, o, NULL, NULL);
    occ_unhold(o); /* the new presence went out with the new nick */
}

/* An available presence from an occupant to its own nick: a status change. */
static void update_presence(struct room *r, struct occupant *o, const char *full,
                            const struct xml_node *p)
{
    struct xml_node *kept = pres_strip(p);
    if (!kept) {
        return;
    }
    xml_free(o->pres);
    o->pres = kept;
    /* Past the occupant's credit the others hear of it later: the latest
     * presence is kept, and on_tick sends it when credit returns. */
    int now = occ_spend(o, 1);
    if (!now && !o->held) {
        o->held = 1;
        nheld++;
        log_limited("muc presence rate", o->bare, L_NOTICE,
                    "muc: %s changes presence too fast in %s: held", o->bare, r->jid);
    }
    struct xml_node *muc = xml_child(p, "x", NS_MUC);
    if (muc) {
        /* A join from a resource that is in already: its client lost track
         * (a stream it could not resume, a failed XEP-0410 self-ping) and
         * wants the room again, as Prosody and ejabberd give it. */
        join_announce(r, o, full, 0, muc, now);
    } else if (now) {
        broadcast_presence(r, o, NULL, NULL);
        self_presence(r, o, full, NULL, NULL);
    }
    if (now) {
        occ_unhold(o);
    }
}

/* on_tick: the held presences of occupants with credit again go out, to
 * the others and to the occupant's own resources. */
static void held_flush(void)
{
    for (int i = 0; nheld > 0 && i < ROOM_BUCKETS; i++) {
        for (struct room *r = rooms[i]; r; r = r->next) {
            for (struct occupant *o = r->occ; o; o = o->next) {
                if (o->held && occ_spend(o, 1)) {
                    occ_unhold(o);
                    announce(r, o, NULL, NULL);
                }
            }
        }
    }
}

static void presence_in(const struct xml_node *p, const char *from, const char *bare,
                        const char *nick, const char *room_jid)
{
    const char *type = xml_attr(p, "type");
    struct room *r = room_find(room_jid);
    struct occupant *o = r ? occ_by_jid(r, from) : NULL;
    if (type && strcmp(type, "unavailable") == 0) {
        /* §7.14: leaving, whatever nick it names (a client that changed
         * nicks says goodbye to both when it goes). */
        if (o) {
            leave(r, o, from, 0);
        }
        return;
    }
    if (type) {
        return; /* subscriptions, probes and errors mean nothing to a room */
    }
    if (!*nick) {
        bounce(p, E_JID_MALFORMED); /* §7.2.1: no nick */
        return;
    }
    if (o) {
        if (strcmp(o->nick, nick) == 0) {
            update_presence(r, o, from, p);
        } else {
            change_nick(r, o, nick, p);
        }
        return;
    }
    int created = 0;
    if (!r) {
        enum err cond;
        if (!(r = room_create(room_jid, bare, &cond))) {
            bounce(p, cond);
            return;
        }
        created = 1;
    }
    join(r, from, bare, nick, p, created);
    if (created && !r->occ) {
        room_destroy(r); /* the creator could not join after all */
    }
}

/* ---- messages (§7.4, §7.5, §7.8) ---- */

/* m, sent at now (wall clock), into the history. */
static void hist_add(struct room *r, const struct xml_node *m, time_t now)
{
    if (g_config->muc_history_size == 0) {
        return;
    }
    struct hist *h = calloc(1, sizeof(*h));
    char stamp[32];
    struct tm tm;
    if (!h || !(h->msg = xml_copy(m)) || !gmtime_r(&now, &tm) ||
        !strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) ||
        !add_child(h->msg, "delay", NS_DELAY, "stamp", stamp, "from", r->jid, NULL)) {
        if (h) {
            xml_free(h->msg);
        }
        free(h);
        return;
    }
    struct buf b;
    buf_init(&b, 0);
    if (xml_serialize(h->msg, NS_CLIENT, &b) == 0) {
        h->chars = buf_len(&b);
    }
    buf_free(&b);
    h->when = now;
    h->bytes = xml_footprint(h->msg) + sizeof(*h);
    if (r->hist_new) {
        r->hist_new->next = h;
    } else {
        r->hist_old = h;
    }
    r->hist_new = h;
    r->nhist++;
    r->hist_bytes += h->bytes;
    while (r->hist_old && (r->nhist > g_config->muc_history_size ||
                           r->hist_bytes > (size_t)g_config->muc_history_bytes)) {
        hist_drop_oldest(r);
    }
}

/* §7.2.14: the newest messages that fit every limit the joiner gave. */
static void history_send(const struct room *r, const char *to, const struct history_req *q)
{
    time_t now = time(NULL);
    long n = 0, chars = 0, skip;
    struct hist *h;
    /* Count from the newest backwards what may go, then send it oldest first. */
    struct hist *list[LIMIT_MUC_HISTORY_MAX];
    int k = 0;
    for (h = r->hist_old; h && k < LIMIT_MUC_HISTORY_MAX; h = h->next) {
        list[k++] = h;
    }
    for (skip = k; skip > 0; skip--) {
        h = list[skip - 1];
        if ((q->maxstanzas >= 0 && n + 1 > q->maxstanzas) ||
            (q->maxchars >= 0 && chars + (long)h->chars > q->maxchars) ||
            (q->seconds >= 0 && now - h->when > q->seconds) ||
            (q->since && h->when < q->since)) {
            break;
        }
        n++;
        chars += (long)h->chars;
    }
    for (int i = (int)skip; i < k; i++) {
        send_to(list[i]->msg, to);
    }
}

static void subject_send(const struct room *r, const char *to)
{
    if (r->subject) {
        send_to(r->subject, to);
        return;
    }
    /* §7.2.15: an empty subject tells the client the join is complete. */
    struct xml_node *m = stanza_new("message", r->jid, "groupchat");
    if (add_child(m, "subject", NULL, NULL)) {
        send_to(m, to);
    }
    xml_free(m);
}

static int stanza_id_set(struct xml_node *m, const char *by, const char *id)
{
    return add_child(m, "stanza-id", NS_SID, "id", id, "by", by, NULL) ? 0 : -1;
}

/* XEP-0359 §3.1: the room's own id on what it relays. A message the room
 * archives has its archive id (XEP-0313 §5.2: the same value, so that a
 * client joins live messages, history and archive pages); others a random
 * one. real is the sender's real JID, kept with the archived copy. */
static int add_stanza_id(const struct room *r, struct xml_node *m, const char *real)
{
    char id[64]; /* 24 random hex digits, or an archive id (HOOK_ARC_ID_MAX) */
    const struct hook_room_archive *a = archive_of(r);
    /* What the room archives: messages with a body (like Prosody's
     * mod_muc_mam), not chat states or subjects. */
    if (a && xml_child(m, "body", NS_CLIENT) && !xml_child(m, "subject", NS_CLIENT) &&
        a->append(r->jid, m, real, id, sizeof(id)) == 0) {
        return stanza_id_set(m, r->jid, id);
    }
    if (tls_random_hex(id, 12) < 0) {
        return -1;
    }
    return stanza_id_set(m, r->jid, id);
}

/* What an occupant may not put into what the room relays under its name:
 * stanza ids (XEP-0359 §5 forbids those by the room; one by anyone else, an
 * account or another room, would only mislead the recipients: a sender's
 * own id is <origin-id/>), muc#user payloads (status codes, invitations: the
 * room speaks those), delay stamps (history is the room's). */
static int forged(const struct xml_node *c)
{
    const char *ns = xml_ns(c);
    /* Also the legacy delay (XEP-0091, still read by clients for the time
     * shown) and XEP-0421 occupant ids (§4: the room's to give, so a
     * sender must not bring one). */
    /* And a MAM <result/> (XEP-0313 §5.1.2: results come from the archive
     * only), which would replay as the room's archive to a client. */
    return strcmp(ns, NS_SID) == 0 ? strcmp(xml_name(c), "stanza-id") == 0
                                   : strcmp(ns, NS_MUC_USER) == 0 || strcmp(ns, NS_DELAY) == 0 ||
                                         strcmp(ns, "jabber:x:delay") == 0 ||
                                         strcmp(ns, "urn:xmpp:occupant-id:0") == 0 ||
                                         strcmp(ns, NS_MAM) == 0;
}

static struct xml_node *relay_copy(const struct xml_node *m, const char *from)
{
    struct xml_node *out = xml_copy(m);
    if (!out || xml_set_attr(out, "from", from) < 0) {
        xml_free(out);
        return NULL;
    }
    struct xml_node *c = xml_first_child(out);
    while (c) {
        struct xml_node *next = xml_next(c);
        if (forged(c)) {
            xml_detach(c);
            xml_free(c);
        }
        c = next;
    }
    return out;
}

static void send_all(const struct room *r, struct xml_node *st)
{
    for (struct occupant *v = r->occ; v; v = v->next) {
        send_occ(st, v);
    }
}

/* What a room keeps of a subject change, for every joiner and its file:
 * who set it and the subject, not whatever else the message carried. */
static struct xml_node *subject_copy(const struct xml_node *m)
{
    struct xml_node *k = stanza_new("message", xml_attr(m, "from"), "groupchat");
    struct xml_node *subj = xml_copy(xml_child(m, "subject", NS_CLIENT));
    struct xml_node *sid = xml_copy(xml_child(m, "stanza-id", NS_SID));
    if (!k || !subj || !sid) {
        xml_free(k);
        xml_free(subj);
        xml_free(sid);
        return NULL;
    }
    xml_append(k, subj);
    xml_append(k, sid);
    return k;
}

static void groupchat(struct room *r, struct occupant *o, const struct xml_node *m)
{
    struct xml_node *subj = xml_child(m, "subject", NS_CLIENT);
    int is_subject = subj && !xml_child(m, "body", NS_CLIENT);
    if (o->role == ROLE_VISITOR) {
        bounce(m, E_FORBIDDEN); /* §7.4: no voice in a moderated room */
        return;
    }
    if (is_subject && !r->changesubject && o->role != ROLE_MODERATOR) {
        bounce(m, E_FORBIDDEN); /* §8.1 */
        return;
    }
    /* §8.1: a subject is text; elements inside would pass the size check
     * and be kept for every joiner and in the room's file. */
    if (is_subject && (xml_first_child(subj) ||
                       strlen(xml_text(subj)) > (size_t)g_config->muc_max_subject_bytes)) {
        bounce(m, E_NOT_ACCEPTABLE);
        return;
    }
    if (!msg_spend(r, o, m)) {
        return;
    }
    char from[JID_MAX + 1];
    struct xml_node *out = relay_copy(m, occ_jid(r, o->nick, from, sizeof(from)));
    if (!out || add_stanza_id(r, out, xml_attr(m, "from")) < 0) {
        xml_free(out);
        bounce(m, E_BUSY);
        return;
    }
    if (is_subject) {
        xml_free(r->subject);
        r->subject = subject_copy(out);
        /* The subject is part of a persistent room; anyone allowed to set
         * it may do so in a loop, so it is stored on the next tick (and at
         * shutdown), not with an fsync per change (flash wear, STYLE §11). */
        r->dirty = r->persistent;
    } else {
        hist_add(r, out, time(NULL));
    }
    send_all(r, out);
    xml_free(out);
}

/* §7.5: a private message to one occupant, under the sender's nick. */
static void private_message(struct room *r, struct occupant *o, const char *nick,
                            const struct xml_node *m)
{
    const char *type = xml_attr(m, "type");
    if (type && strcmp(type, "groupchat") == 0) {
        bounce(m, E_BAD_REQUEST);
        return;
    }
    struct occupant *to = occ_by_nick(r, nick);
    if (!to) {
        bounce(m, E_NOT_FOUND);
        return;
    }
    /* XEP-0191 §3.5: a user who blocked someone gets nothing from them,
     * under a nick either: the room knows the real JID, the user may not. */
    if (im_blocked(to->bare, xml_attr(m, "from"))) {
        bounce(m, E_UNAVAILABLE);
        return;
    }
    char from[JID_MAX + 1];
    struct xml_node *out = relay_copy(m, occ_jid(r, o->nick, from, sizeof(from)));
    /* §7.5: marked as coming through the room (XEP-0280 §6 keeps it out
     * of carbons elsewhere by the same mark). */
    if (!add_child(out, "x", NS_MUC_USER, NULL)) {
        xml_free(out);
        bounce(m, E_BUSY);
        return;
    }
    send_occ(out, to);
    xml_free(out);
}


/* §7.8.2 mediated invitations and §7.8.3 declines: the room passes them on
 * from itself, naming who invites or declines (bare JID); at most
 * muc_max_invites per message. */
static void invitations(struct room *r, const char *from, const char *bare,
                        const struct xml_node *x)
{
    int member = occ_by_jid(r, from) != NULL; /* only occupants invite */
    int n = 0;
    for (struct xml_node *c = xml_first_child(x); c; c = xml_next(c)) {
        const char *name = xml_name(c);
        int dec = strcmp(name, "decline") == 0;
        int inv = member && strcmp(name, "invite") == 0;
        const char *to = xml_attr(c, "to");
        char norm[JID_MAX + 1], to_bare[JID_MAX + 1];
        if ((!inv && !dec) || !to || jid_parse(to, norm, sizeof(norm), NULL) < 0 ||
            jid_bare(norm, to_bare, sizeof(to_bare)) < 0) {
            continue;
        }
        /* §7.8.3: a decline goes back to the inviter, who invited from
         * inside the room: the room carries one only to an occupant (by
         * bare JID, or one of its resources), never a stranger's words to
         * any address it names. */
        if (dec && !occ_by_bare(r, to_bare)) {
            log_limited("muc decline", bare, L_INFO,
                        "muc: %s declined towards %s, not in %s: dropped", bare, norm, r->jid);
            break;
        }
        if (im_blocked(to_bare, from)) {
            continue; /* XEP-0191: not through the room either (it names the sender) */
        }
        if (++n > g_config->muc_max_invites || (dec && n > 1)) {
            break; /* §7.8.3: one decline answers one invitation */
        }
        struct xml_node *m = stanza_new("message", r->jid, NULL);
        struct xml_node *ux = add_child(m, "x", NS_MUC_USER, NULL);
        struct xml_node *it = add_child(ux, inv ? "invite" : "decline", NULL, "from", bare, NULL);
        struct xml_node *reason = xml_child(c, "reason", NS_MUC_USER);
        if (it) {
            if (reason) {
                add_text(it, "reason", xml_text(reason));
            }
            send_to(m, norm);
        }
        xml_free(m);
    }
}

static struct xml_node *voice_form(const struct xml_node *m);
static void voice_message(struct room *r, struct occupant *o, const struct xml_node *form);

static void message_in(const struct xml_node *m, const char *from, const char *bare,
                       const char *nick, const char *room_jid)
{
    const char *type = xml_attr(m, "type");
    struct room *r = room_find(room_jid);
    struct occupant *o = r ? occ_by_jid(r, from) : NULL;
    struct xml_node *ux = xml_child(m, "x", NS_MUC_USER), *form;
    if (!r) {
        bounce(m, E_NOT_FOUND);
        return;
    }
    if (!o && !*nick && ux && xml_child(ux, "decline", NS_MUC_USER)) {
        invitations(r, from, bare, ux); /* §7.8.3: the invitee is not in the room */
        return;
    }
    if (!o) {
        /* §7.4 / §7.5: only occupants speak in the room (and only they
         * invite: the room is theirs). */
        bounce(m, E_NOT_ACCEPTABLE);
        return;
    }
    if (*nick) {
        private_message(r, o, nick, m);
    } else if (type && strcmp(type, "groupchat") == 0) {
        groupchat(r, o, m);
    } else if (ux && (xml_child(ux, "invite", NS_MUC_USER) || xml_child(ux, "decline", NS_MUC_USER))) {
        invitations(r, from, bare, ux);
    } else if ((form = voice_form(m)) != NULL) {
        voice_message(r, o, form);
    } else {
        bounce(m, E_BAD_REQUEST);
    }
}

/* ---- iq: discovery, owner, self-ping ---- */

static void iq_reply(const struct xml_node *iq, struct xml_node *payload)
{
    struct xml_node *r = stanza_new("iq", NULL, "result");
    if (!r || xml_set_attr(r, "id", xml_attr(iq, "id")) < 0 ||
        xml_set_attr(r, "from", xml_attr(iq, "to")) < 0 ||
        xml_set_attr(r, "to", xml_attr(iq, "from")) < 0) {
        xml_free(r);
        xml_free(payload);
        return;
    }
    if (payload) {
        xml_append(r, payload);
    }
    router_deliver(r);
    xml_free(r);
}

/* A built answer, or resource-constraint when building it ran out of memory. */
static void answer(const struct xml_node *iq, struct xml_node *payload)
{
    if (payload) {
        iq_reply(iq, payload);
    } else {
        bounce(iq, E_BUSY);
    }
}

/* The field appended to x (type NULL: none), or NULL when out of memory. */
static struct xml_node *add_field(struct xml_node *x, const char *var, const char *type,
                                  const char *value)
{
    return x ? im_field_add(x, var, type, NULL, 0, value) : NULL;
}

/* A data form (XEP-0004) of type in parent, with its FORM_TYPE. */
static struct xml_node *add_form(struct xml_node *parent, const char *type, const char *form_type)
{
    struct xml_node *x = parent ? im_form_new(type, NULL, NULL, form_type) : NULL;
    if (x) {
        xml_append(parent, x);
    }
    return x;
}

/* The room's name before the @ (out holds JID_MAX + 1). */
static const char *local_part(const struct room *r, char *out)
{
    snprintf(out, JID_MAX + 1, "%.*s", (int)(strchr(r->jid, '@') - r->jid), r->jid);
    return out;
}


static struct xml_node *add_identity(struct xml_node *q, const char *name)
{
    return add_child(q, "identity", NULL, "category", "conference", "type", "text", "name", name,
                     NULL);
}

/* §6.4: what a room is, as its features say; how many are inside only to
 * whoever may come in: an outsider of a members-only or password room
 * learns that it exists, not who is there nor how many. */
#define NS_REGISTER "jabber:iq:register"

static struct xml_node *room_info(const struct room *r, const char *from, const char *bare)
{
    int insider = (!r->membersonly && !r->secret) || occ_by_jid(r, from) ||
                  aff_of(r, bare) >= AFF_MEMBER;
    struct xml_node *q = xml_node_new("query", NS_DISCO_INFO);
    char name[JID_MAX + 1];
    const char *feats[] = {NS_MUC,
                           NS_SID,
                           r->hidden ? "muc_hidden" : "muc_public",
                           r->persistent ? "muc_persistent" : "muc_temporary",
                           r->membersonly ? "muc_membersonly" : "muc_open",
                           r->moderated ? "muc_moderated" : "muc_unmoderated",
                           r->secret ? "muc_passwordprotected" : "muc_unsecured",
                           r->nonanonymous ? "muc_nonanonymous" : "muc_semianonymous",
                           NS_REGISTER};
    if (!add_identity(q, r->name ? r->name : local_part(r, name))) {
        xml_free(q);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
        if (disco_feature_add(q, feats[i]) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    /* XEP-0313 §6: a room with an archive says so. */
    if (archive_of(r) && disco_feature_add(q, NS_MAM) < 0) {
        xml_free(q);
        return NULL;
    }
    if (!insider) {
        return q;
    }
    /* §6.4 / XEP-0128: the occupant count in the muc#roominfo form. */
    char count[16];
    snprintf(count, sizeof(count), "%d", r->nocc);
    struct xml_node *x = add_form(q, "result", "http://jabber.org/protocol/muc#roominfo");
    if (!add_field(x, "muc#roominfo_occupants", NULL, count)) {
        xml_free(q);
        return NULL;
    }
    return q;
}

static struct xml_node *service_info(void)
{
    struct xml_node *q = xml_node_new("query", NS_DISCO_INFO);
    if (!add_identity(q, "Chatrooms") || disco_feature_add(q, NS_MUC) < 0 ||
        disco_feature_add(q, NS_DISCO_INFO) < 0 || disco_feature_add(q, NS_DISCO_ITEMS) < 0) {
        xml_free(q);
        return NULL;
    }
    return q;
}

/* §6.3: the public rooms. */
static struct xml_node *service_items(void)
{
    struct xml_node *q = xml_node_new("query", NS_DISCO_ITEMS);
    for (int i = 0; q && i < ROOM_BUCKETS; i++) {
        for (struct room *r = rooms[i]; r; r = r->next) {
            if (r->hidden) {
                continue;
            }
            char name[JID_MAX + 1];
            if (!add_child(q, "item", NULL, "jid", r->jid, "name", local_part(r, name), NULL)) {
                xml_free(q);
                return NULL;
            }
        }
    }
    return q;
}

/* ---- owners (XEP-0045 §10): the muc#roomconfig form, destroy ---- */

#define NS_ROOMCONFIG "http://jabber.org/protocol/muc#roomconfig"
#define NS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"

static struct xml_node *add_bool(struct xml_node *x, const char *var, int value)
{
    return add_field(x, var, "boolean", value ? "1" : "0");
}

#define ROOMCONFIG "muc#roomconfig_"

/* The room's on/off settings, one table for the form (§10.2), its answer
 * and the room document: the boolean field after ROOMCONFIG ("": whois,
 * a list), the document's attribute, "1" when set (NULL: not kept, a stored
 * room is persistent), and whether either says the opposite. In the form's
 * order; archiving comes after whois, when there is an archive. */
static const struct room_flag {
    char field[16], doc[14]; /* arrays: no pointers to relocate */
    unsigned char off, field_not, doc_not;
} room_flags[] = {
    {"persistentroom", "", offsetof(struct room, persistent), 0, 0},
    {"publicroom", "hidden", offsetof(struct room, hidden), 1, 0},
    {"membersonly", "membersonly", offsetof(struct room, membersonly), 0, 0},
    {"moderatedroom", "moderated", offsetof(struct room, moderated), 0, 0},
    {"changesubject", "changesubject", offsetof(struct room, changesubject), 0, 0},
    {"enablearchiving", "noarchive", offsetof(struct room, archiving), 0, 1},
    {"", "nonanonymous", offsetof(struct room, nonanonymous), 0, 0},
};
#define FLAG_ARCHIVING 5
#define NFLAGS (sizeof(room_flags) / sizeof(room_flags[0]))
_Static_assert(sizeof(struct room) < 256, "room_flags offsets are bytes");

static int *flag_ptr(struct room *r, size_t i)
{
    return (int *)((char *)r + room_flags[i].off);
}

static int flag_get(const struct room *r, size_t i)
{
    return *(const int *)((const char *)r + room_flags[i].off);
}

static struct xml_node *add_flag(struct xml_node *x, const struct room *r, size_t i)
{
    char var[64];
    snprintf(var, sizeof(var), ROOMCONFIG "%s", room_flags[i].field);
    return add_bool(x, var, flag_get(r, i) ^ room_flags[i].field_not);
}

/* §10.2: the form with the room's current settings. */
static struct xml_node *config_form(const struct room *r)
{
    struct xml_node *q = xml_node_new("query", NS_MUC_OWNER);
    struct xml_node *x = add_form(q, "form", NS_ROOMCONFIG);
    struct xml_node *w = NULL;
    int ok = add_field(x, ROOMCONFIG "roomname", "text-single", r->name ? r->name : "") != NULL;
    for (size_t i = 0; ok && i < FLAG_ARCHIVING; i++) {
        ok = add_flag(x, r, i) != NULL;
    }
    ok = ok && add_bool(x, ROOMCONFIG "passwordprotectedroom", r->secret != NULL) &&
         add_field(x, ROOMCONFIG "roomsecret", "text-private", r->secret ? r->secret : "") &&
         (w = add_field(x, ROOMCONFIG "whois", "list-single",
                        r->nonanonymous ? "anyone" : "moderators")) &&
         add_text(add_child(w, "option", NULL, NULL), "value", "moderators") &&
         add_text(add_child(w, "option", NULL, NULL), "value", "anyone") &&
         (!hook_find_room_archive() || add_flag(x, r, FLAG_ARCHIVING));
    if (!ok) {
        xml_free(q);
        return NULL;
    }
    return q;
}

/* A submitted form: over a copy of the room, the flags it sets. */
struct room_settings {
    struct room r;
    const char *name, *secret;
    int pwprotected;
};

/* XEP-0004 §3.3: a boolean is 0, 1, false or true. */
static int parse_bool(const char *v, int *out)
{
    static const char *const words[] = {"0", "1", "false", "true", NULL};
    int i = index_of(v, words);
    if (i < 0) {
        return -1;
    }
    *out = i & 1;
    return 0;
}

/* Read a submitted form over the current settings; -1 on a bad value. */
static int parse_settings(const struct xml_node *x, struct room_settings *st)
{
    for (struct xml_node *f = xml_first_child(x); f; f = xml_next(f)) {
        const char *var = xml_attr(f, "var");
        struct xml_node *vn = xml_child(f, "value", NS_XDATA);
        const char *v = vn ? xml_text(vn) : "";
        int rc = 0;
        if (!var || strcmp(xml_name(f), "field") != 0 ||
            strncmp(var, ROOMCONFIG, strlen(ROOMCONFIG)) != 0) {
            continue;
        }
        var += strlen(ROOMCONFIG);
        if (strcmp(var, "roomname") == 0) {
            st->name = v;
        } else if (strcmp(var, "roomsecret") == 0) {
            st->secret = v;
        } else if (strcmp(var, "passwordprotectedroom") == 0) {
            rc = parse_bool(v, &st->pwprotected);
        } else if (strcmp(var, "whois") == 0) {
            st->r.nonanonymous = strcmp(v, "anyone") == 0;
            rc = st->r.nonanonymous || strcmp(v, "moderators") == 0 ? 0 : -1;
        }
        /* enablearchiving is kept even without an archive. */
        for (size_t i = 0; i < NFLAGS && room_flags[i].field[0]; i++) {
            if (strcmp(var, room_flags[i].field) == 0) {
                rc = parse_bool(v, flag_ptr(&st->r, i));
                *flag_ptr(&st->r, i) ^= room_flags[i].field_not;
            }
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* §10.2.1: tell the occupants what changed: 104, and 172/173 when real JIDs
 * become visible to all or to moderators only. */
static void notify_config(const struct room *r, int whois_changed)
{
    struct extra e = {{104}, 1, NULL, NULL};
    if (whois_changed) {
        code_add(&e, r->nonanonymous ? 172 : 173);
    }
    struct xml_node *m = stanza_new("message", r->jid, "groupchat");
    struct xml_node *x = add_child(m, "x", NS_MUC_USER, NULL);
    if (x && add_status_codes(x, &e) == 0) {
        send_all(r, m);
    }
    xml_free(m);
}

/* Roles follow a new configuration (moderated on or off); members-only
 * removes those without membership (§9.4: 322). */
static void roles_after_config(struct room *r)
{
    struct occupant *o = r->occ;
    while (o) {
        struct occupant *next = o->next;
        enum muc_aff a = aff_of(r, o->bare);
        if (r->membersonly && a < AFF_MEMBER) {
            remove_occupant(r, o, 322, NULL);
        } else if (o->role != ROLE_MODERATOR && role_for(r, a) != o->role) {
            o->role = role_for(r, a);
            announce(r, o, NULL, NULL);
        }
        o = next;
    }
}

static void config_submit(const struct xml_node *iq, struct room *r, const struct xml_node *x)
{
    struct room_settings st = {*r, r->name, r->secret, r->secret != NULL};
    if (parse_settings(x, &st) < 0 || (st.pwprotected && (!st.secret || !*st.secret))) {
        bounce(iq, E_NOT_ACCEPTABLE);
        return;
    }
    /* A room name and a password are a subject's size at most: both are
     * stored with the room, and sent in every form. */
    size_t max = (size_t)g_config->muc_max_subject_bytes;
    if ((st.name && strlen(st.name) > max) || (st.secret && strlen(st.secret) > max)) {
        bounce(iq, E_NOT_ACCEPTABLE);
        return;
    }
    char *name, *secret;
    if (dup_opt(&name, st.name && *st.name ? st.name : NULL) < 0 ||
        dup_opt(&secret, st.pwprotected ? st.secret : NULL) < 0) {
        free(name);
        bounce(iq, E_BUSY);
        return;
    }
    int whois_changed = r->nonanonymous != st.r.nonanonymous;
    int was_persistent = r->persistent;
    const struct hook_room_archive *had_archive = archive_of(r);
    free(r->name);
    free(r->secret);
    r->name = name;
    r->secret = secret;
    for (size_t i = 0; i < NFLAGS; i++) {
        *flag_ptr(r, i) = flag_get(&st.r, i);
    }
    if (r->persistent && room_save(r) < 0) {
        /* The owner must not believe it kept (a room JID too long for a
         * file name, a full disk): the rest of the form applies. */
        r->persistent = was_persistent;
        bounce(iq, E_INTERNAL);
    } else {
        iq_reply(iq, NULL);
    }
    if (!r->persistent && was_persistent) {
        room_forget(r);
    } else if (had_archive && !archive_of(r)) {
        had_archive->drop(r->jid); /* archiving switched off: what it kept goes */
    }
    roles_after_config(r);
    notify_config(r, whois_changed);
    room_gc(r);
}

/* §10.9: the owner destroys the room; occupants hear of it, with an
 * alternate venue and a reason when the owner gave them. */
static void room_destroy_by_owner(const struct xml_node *iq, struct room *r,
                                  const struct xml_node *d)
{
    const char *alt = xml_attr(d, "jid");
    struct xml_node *reason = xml_child(d, "reason", NS_MUC_OWNER);
    char norm[JID_MAX + 1];
    if (alt && jid_parse(alt, norm, sizeof(norm), NULL) < 0) {
        bounce(iq, E_JID_MALFORMED);
        return;
    }
    iq_reply(iq, NULL);
    for (struct occupant *o = r->occ; o; o = o->next) {
        struct xml_node *p = occ_presence(r, o, "unavailable", 0, NULL, NULL);
        struct xml_node *x = p ? xml_child(p, "x", NS_MUC_USER) : NULL;
        struct xml_node *dn = add_child(x, "destroy", NULL, "jid", alt ? norm : NULL, NULL);
        if (dn && (!reason || add_text(dn, "reason", xml_text(reason)))) {
            send_occ(p, o);
        }
        xml_free(p);
    }
    if (r->persistent) {
        room_forget(r);
    }
    room_destroy(r);
}

static void owner_iq(const struct xml_node *iq, struct room *r, const char *from,
                     const char *bare, const struct xml_node *q, int get)
{
    (void)from;
    if (aff_of(r, bare) != AFF_OWNER) {
        bounce(iq, E_FORBIDDEN); /* §10.1.3 */
        return;
    }
    struct xml_node *x = xml_child(q, "x", NS_XDATA);
    struct xml_node *d = xml_child(q, "destroy", NS_MUC_OWNER);
    const char *t = x ? xml_attr(x, "type") : NULL;
    if (get) {
        answer(iq, config_form(r));
    } else if (d) {
        room_destroy_by_owner(iq, r, d);
    } else if (t && strcmp(t, "cancel") == 0) {
        iq_reply(iq, NULL); /* §10.1.3: the room stays as it is */
    } else if (t && strcmp(t, "submit") == 0) {
        config_submit(iq, r, x); /* an empty form confirms an instant room (§10.1.2) */
    } else {
        bounce(iq, E_BAD_REQUEST);
    }
}

/* ---- admins and moderators (§8, §9): roles and affiliations ---- */

/* Which of names (aff_names, role_names) n's attribute attr is, or -1. */
static int enum_of(const struct xml_node *n, const char *attr, const char *const *names)
{
    return index_of(xml_attr(n, attr), names);
}

/* §8.2 kick (role none), §8.3/§8.4 voice (participant/visitor), §9.6
 * moderator: the actor is a moderator; nobody touches admins and owners
 * but to make them moderators. NULL or the error condition. */
static enum err set_role(struct room *r, const struct occupant *actor, enum muc_aff actor_aff,
                            const char *nick, int role, const char *reason)
{
    struct occupant *o = nick ? occ_by_nick(r, nick) : NULL;
    if (!actor || actor->role != ROLE_MODERATOR) {
        return E_FORBIDDEN;
    }
    if (!o) {
        return E_NOT_FOUND;
    }
    enum muc_aff a = aff_of(r, o->bare);
    if ((a >= AFF_ADMIN && role != ROLE_MODERATOR) ||
        (role == ROLE_MODERATOR && actor_aff < AFF_ADMIN)) {
        return E_NOT_ALLOWED;
    }
    /* §8.2, §8.4: not over an occupant of a higher affiliation (a moderator
     * made of a participant does not kick members); §9.7: moderator status
     * is the admins' to take back. */
    if (a > actor_aff || (o->role == ROLE_MODERATOR && role != ROLE_MODERATOR &&
                          actor_aff < AFF_ADMIN)) {
        return E_NOT_ALLOWED;
    }
    if (role == ROLE_NONE) {
        remove_occupant(r, o, 307, reason);
    } else if ((int)o->role != role) {
        o->role = role;
        o->voice_asked = 0; /* a new role: it may ask again */
        announce_role(r, o, reason);
    }
    return E_OK;
}

static void affiliation_applied(struct room *r, const char *bare, int aff, const char *reason);

/* §9 (admins: outcast, none, member) and §10 (owners: admin, owner too). */
static enum err set_affiliation(struct room *r, enum muc_aff actor_aff, const char *jid,
                                   int aff, const char *reason)
{
    char norm[JID_MAX + 1], bare[JID_MAX + 1];
    if (actor_aff < AFF_ADMIN) {
        return E_FORBIDDEN;
    }
    if (!jid || jid_parse(jid, norm, sizeof(norm), NULL) < 0 ||
        jid_bare(norm, bare, sizeof(bare)) < 0) {
        return E_JID_MALFORMED;
    }
    enum muc_aff cur = aff_of(r, bare);
    if ((aff >= AFF_ADMIN || cur >= AFF_ADMIN) && actor_aff != AFF_OWNER) {
        return E_NOT_ALLOWED;
    }
    int owners = 0;
    for (struct affiliation *a = r->affs; a; a = a->next) {
        owners += a->aff == AFF_OWNER;
    }
    if (cur == AFF_OWNER && aff != AFF_OWNER && owners == 1) {
        return E_CONFLICT; /* §10.9: the room keeps an owner */
    }
    if (aff_set(r, bare, aff) < 0) {
        return E_BUSY;
    }
    affiliation_applied(r, bare, aff, reason);
    return E_OK;
}

/* bare's affiliation became aff: its occupants leave or are seen anew. */
static void affiliation_applied(struct room *r, const char *bare, int aff, const char *reason)
{
    struct occupant *o = r->occ;
    while (o) {
        struct occupant *next = o->next;
        if (strcmp(o->bare, bare) == 0) {
            if (aff == AFF_OUTCAST) {
                remove_occupant(r, o, 301, reason);
            } else if (r->membersonly && aff < AFF_MEMBER) {
                remove_occupant(r, o, 321, reason);
            } else {
                o->role = role_for(r, aff);
                announce_role(r, o, reason);
            }
        }
        o = next;
    }
}

static int add_list_item(struct xml_node *q, const char *jid, const char *nick, const char *aff,
                         const char *role)
{
    return add_child(q, "item", NULL, "jid", jid, "nick", nick, "affiliation", aff, "role", role,
                     NULL)
               ? 0
               : -1;
}

/* §9.5 / §9.8 / §10.5: the list of one affiliation (admins and owners may
 * read it), or §8.5 / §9.8: the occupants of one role (moderators may). */
static struct xml_node *admin_list(const struct room *r, const struct occupant *actor,
                                   enum muc_aff actor_aff, const struct xml_node *item,
                                   enum err *cond)
{
    int aff = enum_of(item, "affiliation", aff_names);
    int role = enum_of(item, "role", role_names);
    struct xml_node *q = NULL;
    *cond = E_FORBIDDEN;
    if ((aff >= 0 && actor_aff < AFF_ADMIN) || (role >= 0 && (!actor || actor->role != ROLE_MODERATOR))) {
        return NULL;
    }
    *cond = E_BAD_REQUEST;
    if ((aff < 0) == (role < 0) || aff == AFF_NONE) {
        return NULL;
    }
    *cond = E_BUSY;
    if (!(q = xml_node_new("query", NS_MUC_ADMIN))) {
        return NULL;
    }
    for (const struct affiliation *a = r->affs; aff >= 0 && a; a = a->next) {
        /* §9.5: the member list names reserved nicks. */
        if ((int)a->aff == aff && add_list_item(q, a->jid, a->nick, aff_names[aff], NULL) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    for (const struct occupant *o = r->occ; role >= 0 && o; o = o->next) {
        if ((int)o->role == role && add_list_item(q, o->bare, o->nick, aff_names[aff_of(r, o->bare)],
                                                  role_names[role]) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    return q;
}

static void admin_iq(const struct xml_node *iq, struct room *r, const char *from,
                     const char *bare, const struct xml_node *q, int get)
{
    struct occupant *actor = occ_by_jid(r, from);
    enum muc_aff actor_aff = aff_of(r, bare);
    struct xml_node *first = xml_child(q, "item", NS_MUC_ADMIN);
    if (!first) {
        bounce(iq, E_BAD_REQUEST);
        return;
    }
    if (get) {
        enum err cond;
        struct xml_node *a = admin_list(r, actor, actor_aff, first, &cond);
        if (a) {
            iq_reply(iq, a);
        } else {
            bounce(iq, cond);
        }
        return;
    }
    /* Items apply in order; the first that may not stops the rest (the
     * answer says why; what came before it stays done, and is stored). A
     * kick can free the room, a change the actor's own standing: both are
     * looked up again for each item. */
    char room_jid[JID_MAX + 1];
    enum err cond = E_OK;
    int done = 0;
    snprintf(room_jid, sizeof(room_jid), "%s", r->jid);
    for (struct xml_node *it = first; it && !cond && (r = room_find(room_jid)); it = xml_next(it)) {
        struct xml_node *rs = xml_child(it, "reason", NS_MUC_ADMIN);
        const char *reason = rs ? xml_text(rs) : NULL;
        const char *jid = xml_attr(it, "jid"), *nick = xml_attr(it, "nick");
        int role = enum_of(it, "role", role_names);
        int aff = enum_of(it, "affiliation", aff_names);
        struct occupant *byn = !jid && nick ? occ_by_nick(r, nick) : NULL;
        actor = occ_by_jid(r, from);
        actor_aff = aff_of(r, bare);
        if (role >= 0 && aff < 0) {
            cond = set_role(r, actor, actor_aff, nick, role, reason);
        } else if (aff >= 0 && role < 0) {
            cond = set_affiliation(r, actor_aff, byn ? byn->bare : jid, aff, reason);
        } else {
            cond = E_BAD_REQUEST;
        }
        done += !cond && aff >= 0; /* roles are not stored */
    }
    if (cond) {
        bounce(iq, cond);
    } else {
        iq_reply(iq, NULL);
    }
    if ((r = room_find(room_jid)) && r->persistent && done) {
        room_save(r); /* bans survive restarts */
    } else if (r) {
        room_gc(r); /* the last one went: a temporary room ends, a persistent one stays */
    }
}

/* XEP-0313 §5 on the room JID (issue 15). Who reads the archive: whoever
 * may come in, as Prosody's mod_muc_mam: not outcasts; in a members-only
 * or password-protected room only occupants and members (§7.2.6: what they
 * say is theirs). Real JIDs only for moderators of a non-anonymous room
 * (and its admins and owners); a semi-anonymous room never shows them. */
static void archive_iq(const struct xml_node *iq, struct room *r, const char *from,
                       const char *bare, const struct xml_node *q, int get)
{
    (void)get; /* mam.c answers both */
    struct occupant *o = occ_by_jid(r, from);
    enum muc_aff aff = aff_of(r, bare);
    const struct hook_room_archive *a = archive_of(r);
    if (!a) {
        bounce(iq, E_UNAVAILABLE); /* no archive: no such service */
        return;
    }
    if (aff == AFF_OUTCAST ||
        (!o && aff < AFF_MEMBER && (r->membersonly || r->secret))) {
        log_limited("muc mam refused", bare, L_INFO, "muc: %s may not read the archive of %s",
                    from, r->jid);
        bounce(iq, E_FORBIDDEN);
        return;
    }
    int reveal = r->nonanonymous && ((o && o->role == ROLE_MODERATOR) || aff >= AFF_ADMIN);
    a->query(r->jid, iq, q, reveal);
}

/* ---- registered nicks (§7.10, §7.12) ---- */

static const char *form_value(const struct xml_node *x, const char *var);
#define NS_MUC_REGISTER "http://jabber.org/protocol/muc#register"

/* §7.12: the nick the asker reserved, as an identity; none without one (an
 * answer about the asker only: nobody learns another's reservation). */
static struct xml_node *reserved_nick_info(const struct room *r, const char *bare)
{
    struct xml_node *q = disco_query_new(NS_DISCO_INFO, "x-roomuser-item");
    const char *nick = nick_of(r, bare);
    if (!q || (nick && !add_identity(q, nick))) {
        xml_free(q);
        return NULL;
    }
    return q;
}

/* §7.10: the registration form; Prosody's, which asks for the nick only
 * (the optional first/last/url/email/faqentry fields are skipped, as there). */
static struct xml_node *register_form(const char *nick)
{
    struct xml_node *q = xml_node_new("query", NS_REGISTER);
    if (nick) {
        if (!add_text(q, "username", nick) || !add_child(q, "registered", NULL, NULL)) {
            xml_free(q);
            return NULL;
        }
        return q;
    }
    /* The nick's field comes first, as it always did. */
    struct xml_node *x = add_form(q, "form", NULL);
    if (!x || !im_field_add(x, "muc#register_roomnick", "text-single", "Nickname", 1, NULL) ||
        !add_field(x, "FORM_TYPE", "hidden", NS_MUC_REGISTER)) {
        xml_free(q);
        return NULL;
    }
    return q;
}

/* Who may register (§7.10): not outcasts; in a members-only room (where it
 * would be the way in) or a moderated one (where membership is voice) only
 * those with an affiliation already, as Prosody: anyone else gets
 * registration-required, whoever else is registered there. */
static enum err may_register(const struct room *r, enum muc_aff a)
{
    if (a == AFF_OUTCAST) {
        return E_FORBIDDEN;
    }
    return a < AFF_MEMBER && (r->membersonly || r->moderated) ? E_REG_REQUIRED : E_OK;
}

/* §7.10: the submitted nick, checked and normalised as an occupant JID's
 * resource (RFC 7622), or NULL. */
static const char *register_nick(const struct room *r, const struct xml_node *x, char *out,
                                 size_t outsz)
{
    const char *ft = form_value(x, "FORM_TYPE");
    const char *nick = form_value(x, "muc#register_roomnick");
    char full[3 * JID_MAX + 2];
    struct jid j;
    if (!ft || strcmp(ft, NS_MUC_REGISTER) != 0 || !nick || !*nick ||
        snprintf(full, sizeof(full), "%s/%s", r->jid, nick) >= (int)sizeof(full) ||
        jid_parse(full, out, outsz, &j) < 0 || !j.resource_len) {
        return NULL;
    }
    memmove(out, j.resource, j.resource_len);
    out[j.resource_len] = '\0';
    return out;
}

/* Register nick for bare (making it a member) or, nick NULL, unregister (a
 * member becomes nobody; an admin or owner keeps that, without the nick).
 * NULL or the error condition. */
static enum err register_set(struct room *r, const char *bare, const char *nick)
{
    enum muc_aff a = aff_of(r, bare);
    if (!nick) {
        if (a == AFF_MEMBER) {
            aff_set(r, bare, AFF_NONE);
            affiliation_applied(r, bare, AFF_NONE, NULL);
        } else if (a > AFF_MEMBER) {
            nick_reserve(r, bare, NULL);
        }
        return E_OK;
    }
    if (nick_taken(r, nick, bare)) {
        return E_CONFLICT;
    }
    if (nick_of(r, bare) && strcmp(nick_of(r, bare), nick) == 0) {
        return E_OK; /* registered already: nothing to store */
    }
    /* muc_max_affiliations bounds the registrations of a room; those who
     * make themselves members take at most half of it, so that accounts
     * made to fill the list never leave the admins without room for a ban. */
    if (a < AFF_MEMBER && aff_count(r) >= g_config->muc_max_affiliations / 2) {
        return E_BUSY;
    }
    if ((a < AFF_MEMBER && aff_set(r, bare, AFF_MEMBER) < 0) || nick_reserve(r, bare, nick) < 0) {
        return E_BUSY;
    }
    if (a < AFF_MEMBER) {
        affiliation_applied(r, bare, AFF_MEMBER, NULL);
    }
    return E_OK;
}

static void register_iq(const struct xml_node *iq, struct room *r, const char *from,
                        const char *bare, const struct xml_node *q, int get)
{
    char nick[JID_MAX + 1];
    (void)from;
    enum err no = may_register(r, aff_of(r, bare));
    if (no) {
        log_limited("muc register", bare, L_INFO, "muc: %s may not register in %s: %s", bare,
                    r->jid, err_cond[no]);
        bounce(iq, no);
        return;
    }
    if (get) {
        answer(iq, register_form(nick_of(r, bare)));
        return;
    }
    struct xml_node *x = xml_child(q, "x", NS_XDATA);
    const char *xt = x ? xml_attr(x, "type") : NULL;
    int remove = xml_child(q, "remove", NS_REGISTER) != NULL;
    enum err cond;
    if (remove) {
        cond = register_set(r, bare, NULL);
    } else if (xt && strcmp(xt, "cancel") == 0) {
        iq_reply(iq, NULL); /* XEP-0004 §3.2: nothing asked for */
        return;
    } else if (!x || !register_nick(r, x, nick, sizeof(nick))) {
        cond = E_BAD_REQUEST;
    } else {
        cond = register_set(r, bare, nick);
    }
    if (cond) {
        bounce(iq, cond);
        return;
    }
    log_limited("muc register", bare, L_INFO, "muc: %s %s in %s", bare,
                remove ? "unregistered" : "registered a nick", r->jid);
    iq_reply(iq, NULL);
    if (r->persistent) {
        /* Kept with the affiliations, but on the next tick: anyone may
         * register and unregister in a loop, and a write per request would
         * wear flash (STYLE §11); at most one write a second per room. */
        r->dirty = 1;
    }
    room_gc(r); /* its last occupant may have unregistered from a members-only room */
}

/* What the room answers in a query of these namespaces. */
typedef void room_iq_fn(const struct xml_node *iq, struct room *r, const char *from,
                        const char *bare, const struct xml_node *q, int get);
static const struct {
    const char *ns;
    room_iq_fn *fn;
} room_iqs[] = {
    {NS_REGISTER, register_iq},
    {NS_MUC_OWNER, owner_iq},
    {NS_MUC_ADMIN, admin_iq},
    {NS_MAM, archive_iq},
};

static void iq_in(const struct xml_node *iq, const char *from, const char *bare,
                  const struct jid *to, const char *nick, const char *room_jid)
{
    const char *type = xml_attr(iq, "type");
    if (strcmp(type, "get") != 0 && strcmp(type, "set") != 0) {
        return; /* answers: the room asks nothing */
    }
    struct xml_node *q = xml_first_child(iq);
    const char *ns = xml_ns(q), *node = xml_attr(q, "node");
    int get = strcmp(type, "get") == 0;
    int query = strcmp(xml_name(q), "query") == 0;
    struct room *r = to->local_len ? room_find(room_jid) : NULL;
    if (to->local_len && !r) {
        bounce(iq, E_NOT_FOUND);
        return;
    }
    if (*nick) {
        /* XEP-0410 §3: a client checks it is still in the room by pinging
         * its own occupant JID. */
        struct occupant *o = r ? occ_by_jid(r, from) : NULL;
        if (get && strcmp(ns, NS_PING) == 0 && o && strcmp(o->nick, nick) == 0) {
            iq_reply(iq, NULL);
        } else {
            bounce(iq, !r || o ? E_UNAVAILABLE : E_NOT_OCCUPANT);
        }
        return;
    }
    if (get && strcmp(ns, NS_PING) == 0) {
        iq_reply(iq, NULL);
        return;
    }
    if (get && query && strcmp(ns, NS_DISCO_INFO) == 0 &&
        (!node || (r && strcmp(node, "x-roomuser-item") == 0))) {
        answer(iq, node ? reserved_nick_info(r, bare) : r ? room_info(r, from, bare) : service_info());
        return;
    }
    if (get && query && strcmp(ns, NS_DISCO_ITEMS) == 0 && !node) {
        /* §6.5: occupants are not listed (their presence tells them). */
        answer(iq, r ? xml_node_new("query", NS_DISCO_ITEMS) : service_items());
        return;
    }
    for (size_t i = 0; r && query && i < sizeof(room_iqs) / sizeof(room_iqs[0]); i++) {
        if (strcmp(ns, room_iqs[i].ns) == 0) {
            room_iqs[i].fn(iq, r, from, bare, q, get);
            return;
        }
    }
    bounce(iq, E_UNAVAILABLE);
}

/* ---- voice requests (§8.6) ---- */

#define NS_MUC_REQUEST "http://jabber.org/protocol/muc#request"

static const char *form_value(const struct xml_node *x, const char *var)
{
    for (struct xml_node *f = xml_first_child(x); f; f = xml_next(f)) {
        const char *v = xml_attr(f, "var");
        struct xml_node *val = xml_child(f, "value", NS_XDATA);
        if (v && strcmp(v, var) == 0 && val) {
            return xml_text(val);
        }
    }
    return NULL;
}

/* The muc#request form a message carries, or NULL. */
static struct xml_node *voice_form(const struct xml_node *m)
{
    struct xml_node *x = xml_child(m, "x", NS_XDATA);
    const char *ft = x ? form_value(x, "FORM_TYPE") : NULL;
    return ft && strcmp(ft, NS_MUC_REQUEST) == 0 ? x : NULL;
}

/* A visitor's request goes to the moderators, one until its role changes
 * (no flood of forms for them); a moderator's answer with muc#request_allow
 * true gives the visitor voice. */
static void voice_message(struct room *r, struct occupant *o, const struct xml_node *form)
{
    const char *allow = form_value(form, "muc#request_allow");
    if (allow && o->role == ROLE_MODERATOR) {
        int yes = 0;
        const char *nick = form_value(form, "muc#roomnick");
        if (parse_bool(allow, &yes) == 0 && yes && nick) {
            set_role(r, o, aff_of(r, o->bare), nick, ROLE_PARTICIPANT, NULL);
        }
        return;
    }
    if (o->role != ROLE_VISITOR || o->voice_asked) {
        return; /* nothing to ask for, or asked already */
    }
    o->voice_asked = 1;
    struct xml_node *m = stanza_new("message", r->jid, NULL);
    struct xml_node *x = add_form(m, "form", NS_MUC_REQUEST);
    if (add_field(x, "muc#role", "list-single", "participant") &&
        add_field(x, "muc#jid", "jid-single", o->bare) &&
        add_field(x, "muc#roomnick", "text-single", o->nick) &&
        add_bool(x, "muc#request_allow", 0)) {
        for (struct occupant *v = r->occ; v; v = v->next) {
            if (v->role == ROLE_MODERATOR) {
                send_occ(m, v);
            }
        }
    }
    xml_free(m);
}

/* ---- persistence: persistent rooms in the store (store_room_*) ----
 * A room document is <room xmlns='urn:xmppd:muc:1'> with the configuration
 * as attributes, one <aff/> per affiliation and the subject message; it is
 * rewritten whole (crash-safe, store.c) when any of them changes. History
 * stays in memory. */

#define NS_ROOMDOC "urn:xmppd:muc:1"
#define ROOMDOC_MAX (8 * 1024 * 1024)

static struct xml_node *room_doc(const struct room *r)
{
    struct xml_node *d = xml_node_new("room", NS_ROOMDOC);
    if (!d || xml_set_attr(d, "creator", r->creator) < 0 || xml_set_attr(d, "name", r->name) < 0 ||
        xml_set_attr(d, "secret", r->secret) < 0) {
        xml_free(d);
        return NULL;
    }
    /* In STORAGE.md's order (the file stays as it was); 0, persistent: not kept. */
    static const unsigned char doc_order[] = {6, 4, 1, 2, 3, 5};
    for (size_t k = 0; k < sizeof(doc_order); k++) {
        size_t i = doc_order[k];
        if ((flag_get(r, i) ^ room_flags[i].doc_not) && xml_set_attr(d, room_flags[i].doc, "1") < 0) {
            xml_free(d);
            return NULL;
        }
    }
    for (const struct affiliation *a = r->affs; a; a = a->next) {
        if (!add_child(d, "aff", NULL, "jid", a->jid, "a", aff_names[a->aff], "nick", a->nick,
                       NULL)) {
            xml_free(d);
            return NULL;
        }
    }
    struct xml_node *subj = r->subject ? xml_copy(r->subject) : NULL;
    if (r->subject && !subj) {
        xml_free(d);
        return NULL;
    }
    if (subj) {
        xml_append(d, subj);
    }
    return d;
}

/* Returns 0, or -1 (logged) when the room could not be written. */
static int room_save(const struct room *r)
{
    struct xml_node *d = room_doc(r);
    struct buf b;
    int rc = 0;
    buf_init(&b, ROOMDOC_MAX);
    if (!d || xml_serialize(d, "", &b) < 0 || store_room_put(r->jid, buf_ptr(&b), buf_len(&b)) < 0) {
        log_error("muc: could not store room %s", r->jid);
        rc = -1;
    } else {
        log_debug("muc: stored room %s", r->jid);
    }
    buf_free(&b);
    xml_free(d);
    return rc;
}

/* A room that is no longer persistent (destroyed, made temporary) leaves
 * the store, with its archive. */
static void room_forget(const struct room *r)
{
    if (store_room_delete(r->jid) == STORE_EIO) {
        log_error("muc: could not remove the stored room %s", r->jid);
    }
    if (hook_find_room_archive()) {
        hook_find_room_archive()->drop(r->jid);
    }
}

static int flag(const struct xml_node *d, const char *name)
{
    const char *v = xml_attr(d, name);
    return v && strcmp(v, "1") == 0;
}

/* One archived message back into the history, as it went out: with its
 * stanza-id and the time it was sent. */
static void refill_one(struct xml_node *m, const char *id, unsigned long long us, void *ud)
{
    struct room *r = ud;
    if (stanza_id_set(m, r->jid, id) == 0) {
        hist_add(r, m, (time_t)(us / 1000000ULL));
    }
    xml_free(m);
}

/* Issue 15: the history on join survives a restart (and a kill -9: archived
 * messages are durable before anything is sent after them): the newest
 * muc_history_size messages of the archive. */
static void history_refill(struct room *r)
{
    const struct hook_room_archive *a = archive_of(r);
    if (a && a->last(r->jid, g_config->muc_history_size, refill_one, r) < 0) {
        log_error("muc: could not read the history of room %s from its archive", r->jid);
    }
}

static int room_restore(const char *jid, const char *data, size_t len, void *ud)
{
    (void)ud;
    struct xml_limits lim = {len, 16, 64, 1024};
    struct xml_node *d = xml_parse_one(data, len, &lim, "room", NS_ROOMDOC);
    const char *creator = d ? xml_attr(d, "creator") : NULL;
    if (!creator) {
        /* Not XML, another format version, no creator: the room stays
         * away, its file too (so a new room of that name cannot take it
         * over on disk). */
        store_room_set_aside(jid, "not a readable room document");
        xml_free(d);
        return 0;
    }
    struct room *r = room_find(jid) ? NULL : room_new(jid, creator);
    if (!r || dup_opt(&r->name, xml_attr(d, "name")) < 0 ||
        dup_opt(&r->secret, xml_attr(d, "secret")) < 0) {
        log_error("muc: cannot restore room %s", jid);
        if (r) {
            room_destroy(r);
        }
        xml_free(d);
        return 0;
    }
    r->persistent = 1;
    for (size_t i = 1; i < NFLAGS; i++) {
        *flag_ptr(r, i) = flag(d, room_flags[i].doc) ^ room_flags[i].doc_not;
    }
    for (struct xml_node *c = xml_first_child(d); c; c = xml_next(c)) {
        int a = enum_of(c, "a", aff_names);
        const char *jid = xml_attr(c, "jid"), *nick = xml_attr(c, "nick"), *name = xml_name(c);
        if (strcmp(name, "aff") == 0 && a > 0 && jid) {
            aff_set(r, jid, a);
            if (a >= AFF_MEMBER && nick) {
                nick_reserve(r, jid, nick);
            }
        } else if (strcmp(name, "message") == 0 && !r->subject) {
            xml_detach(c);
            r->subject = c; /* the loop ends here: c left the tree */
            break;
        }
    }
    xml_free(d);
    history_refill(r);
    return 0;
}

/* ---- the destination the router hands our domain's stanzas to ---- */

/* The conditions that say an occupant is gone or cannot take what the room
 * sends (Prosody's list): a message or presence error with one of them
 * takes the resource out, as XEP-0045 status 333 says, instead of leaving a
 * ghost that everything is sent to. Others (a client refusing one private
 * message) change nothing. */
static int error_is_fatal(const struct xml_node *st)
{
    static const char *const fatal[] = {"gone", "internal-server-error", "item-not-found",
                                        "jid-malformed", "recipient-unavailable", "redirect",
                                        "remote-server-not-found", "remote-server-timeout",
                                        "service-unavailable"};
    struct xml_node *e = xml_child(st, "error", NS_CLIENT);
    for (struct xml_node *c = e ? xml_first_child(e) : NULL; c; c = xml_next(c)) {
        if (strcmp(xml_ns(c), "urn:ietf:params:xml:ns:xmpp-stanzas") != 0) {
            continue;
        }
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
            if (strcmp(xml_name(c), fatal[i]) == 0) {
                return 1;
            }
        }
        return 0;
    }
    return 1; /* no condition at all: a broken client */
}

/* Occupants found gone, taken out once the room is done with what it was
 * doing: the error comes back inside router_deliver (a component that is
 * down, a resource without a session bounce at once), from the middle of a
 * loop over the very occupants it would free. */
struct gone {
    struct gone *next;
    char *room;
    char full[];
};

static struct gone *gone_list;
static int depth; /* nesting of deliver() and on_session_end() */

static void error_in(const struct xml_node *st, const char *from, const char *room_jid)
{
    struct room *r = room_find(room_jid);
    /* A local session that is still there is no ghost (HOOK_SESSION_END
     * takes those out): its errors may be the server's on its behalf, as
     * XEP-0191 §3.5 answers for a blocked occupant, and must not let that
     * occupant's PMs or messages kick whoever blocked it. */
    if (!r || !occ_by_jid(r, from) || router_find_full(from) || !error_is_fatal(st)) {
        return;
    }
    for (struct gone *g = gone_list; g; g = g->next) {
        if (strcmp(g->full, from) == 0 && strcmp(g->room, room_jid) == 0) {
            return; /* once per occupant resource: the list stays bounded */
        }
    }
    struct gone *g = malloc(sizeof(*g) + strlen(from) + 1);
    if (!g || !(g->room = strdup(room_jid))) {
        free(g);
        return;
    }
    strcpy(g->full, from);
    g->next = gone_list;
    gone_list = g;
}

static void gone_sweep(void)
{
    depth++; /* what removing them sends may find more */
    while (gone_list) {
        struct gone *g = gone_list;
        gone_list = g->next;
        struct room *r = room_find(g->room);
        struct occupant *o = r ? occ_by_jid(r, g->full) : NULL;
        if (o && o->res->next) {
            leave(r, o, g->full, 1); /* its other resources keep the nick */
        } else if (o) {
            remove_occupant(r, o, 333, NULL);
            room_gc(r);
        }
        free(g->room);
        free(g);
    }
    depth--;
}

static void depth_enter(void)
{
    depth++;
}

/* Leaving the outermost of deliver() / on_session_end(). */
static void depth_exit(void)
{
    if (--depth == 0 && gone_list) {
        gone_sweep();
    }
}

static void deliver_one(const struct xml_node *st)
{
    const char *name = xml_name(st), *type = xml_attr(st, "type");
    const char *from_attr = xml_attr(st, "from"), *to_attr = xml_attr(st, "to");
    char from[JID_MAX + 1], to[JID_MAX + 1], room_jid[JID_MAX + 1], nick[JID_MAX + 1];
    char bare[JID_MAX + 1];
    struct jid fj, tj;
    if (!from_attr || !to_attr || jid_parse(from_attr, from, sizeof(from), &fj) < 0 ||
        jid_parse(to_attr, to, sizeof(to), &tj) < 0 || jid_bare(to, room_jid, sizeof(room_jid)) < 0 ||
        jid_bare(from, bare, sizeof(bare)) < 0) {
        return;
    }
    snprintf(nick, sizeof(nick), "%.*s", (int)tj.resource_len, tj.resource); /* "": none */
    int iq = strcmp(name, "iq") == 0;
    if (type && strcmp(type, "error") == 0) {
        if (!iq && tj.local_len) {
            error_in(st, from, room_jid);
        }
        return; /* never answer errors (RFC 6120 §8.3.1) */
    }
    if (iq) {
        iq_in(st, from, bare, &tj, nick, room_jid);
    } else if (!fj.resource_len) {
        return; /* occupants are resources; a bare sender is a server or component */
    } else if (strcmp(name, "presence") == 0) {
        if (tj.local_len) {
            presence_in(st, from, bare, nick, room_jid);
        }
    } else if (strcmp(name, "message") == 0) {
        if (tj.local_len) {
            message_in(st, from, bare, nick, room_jid);
        } else {
            bounce(st, E_UNAVAILABLE);
        }
    }
}

static int deliver(const struct xml_node *st, void *ud)
{
    (void)ud;
    depth_enter();
    deliver_one(st);
    depth_exit();
    return 0;
}

/* ---- set-up ---- */

static int on_init(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    const char *d = g_config->muc_domain;
    if (strcmp(d, "none") == 0 || !*d) {
        return 0; /* switched off */
    }
    if (strcmp(d, "auto") == 0) {
        snprintf(muc_domain, sizeof(muc_domain), "conference.%s", g_config->domain);
    } else {
        snprintf(muc_domain, sizeof(muc_domain), "%s", d);
    }
    if (router_domain_add(muc_domain, deliver, NULL) < 0) {
        log_error("muc: cannot serve %s (a component's domain, or too many domains)", muc_domain);
        return 1;
    }
    router_domain_federate(muc_domain); /* remote occupants (issue 15 item 8) */
    store_room_each(room_restore, NULL, ROOMDOC_MAX);
    log_info("muc: serving %s (%d persistent rooms)", muc_domain, nrooms);
    return 0;
}

/* Store the persistent rooms whose subject changed (at most one write per
 * room and second). */
static void save_dirty(void)
{
    for (int i = 0; i < ROOM_BUCKETS; i++) {
        for (struct room *r = rooms[i]; r; r = r->next) {
            if (r->dirty && r->persistent) {
                room_save(r);
            }
            r->dirty = 0;
        }
    }
}

static int on_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    save_dirty();
    left_sweep();
    if (nheld > 0) {
        depth_enter(); /* an occupant an error takes out goes after the loop */
        held_flush();
        depth_exit();
    }
    return 0;
}

static int on_shutdown(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    save_dirty();
    for (int i = 0; i < ROOM_BUCKETS; i++) {
        while (rooms[i]) {
            struct room *r = rooms[i];
            rooms[i] = r->next;
            room_free(r);
        }
    }
    nrooms = 0;
    return 0;
}

HOOK_SERVICE(muc)
{
    hook_add(HOOK_INIT, on_init);
    hook_add(HOOK_SHUTDOWN, on_shutdown);
    hook_add(HOOK_TICK, on_tick);
    hook_add(HOOK_SESSION_END, on_session_end);
    hook_add(HOOK_SESSION_FREE, on_session_free);
    muc_slot = hook_slot();
}

/* ---- issue 15: limits that do not reset ----
 * Presence and nick changes (muc_presence_*) and groupchat messages
 * (muc_message_*) spend from token buckets of the occupant. Leaving and
 * rejoining would start fresh ones, so a room keeps the buckets of an
 * account that left (at most muc_rejoin_buckets of them) until they would
 * be full again. A stay costs two presence changes (the join is broadcast
 * in, the leave out), paid when the occupant leaves; a rejoin needs that
 * much credit. A first join (a client auto-joining its bookmarks, one join
 * per room) finds no kept bucket: it always gets in, with a full burst. */

struct left {
    struct left *next;
    struct bucket b[2]; /* as in struct occupant */
    char bare[];
};

static int nleft_all; /* entries in every room: on_tick prunes while there are some */

static int bucket_burst(int kind)
{
    return kind == B_MESSAGE ? g_config->muc_message_burst : g_config->muc_presence_burst;
}

static int bucket_rate(int kind)
{
    return kind == B_MESSAGE ? g_config->muc_message_rate : g_config->muc_presence_rate;
}

/* The credit a bucket has now. */
static long long bucket_now(const struct bucket *b, int kind)
{
    long long c = b->credit + (long long)(g_now - b->at) * bucket_rate(kind);
    long long cap = (long long)bucket_burst(kind) * 60;
    return c > cap ? cap : c;
}

/* Spends cost events from a bucket and returns 1, or 0 when credit is short. */
static int bucket_spend(struct bucket *b, int kind, int cost)
{
    b->credit = (long)bucket_now(b, kind);
    b->at = g_now;
    if (b->credit < (long)cost * 60) {
        return 0;
    }
    b->credit -= (long)cost * 60;
    return 1;
}

/* Whether both buckets left alone are full again (rate 0: no limit). */
static int left_stale(const struct bucket *b)
{
    for (int k = B_PRESENCE; k <= B_MESSAGE; k++) {
        if (bucket_rate(k) != 0 && bucket_now(&b[k], k) < (long long)bucket_burst(k) * 60) {
            return 0;
        }
    }
    return 1;
}

static void left_unlink(struct room *r, struct left **pp)
{
    struct left *e = *pp;
    *pp = e->next;
    free(e);
    r->nleft--;
    nleft_all--;
}

/* Forget the entries that are as good as fresh buckets. */
static void left_prune(struct room *r)
{
    struct left **pp = &r->left;
    while (*pp) {
        struct left *e = *pp;
        if (left_stale(e->b)) {
            left_unlink(r, pp);
        } else {
            pp = &e->next;
        }
    }
}

static void left_free(struct room *r)
{
    while (r->left) {
        left_unlink(r, &r->left);
    }
}

/* o leaves r: it pays for its stay (two broadcasts; at worst the bucket
 * is empty), and r keeps its buckets unless they are full. A full table
 * loses the entry nearest to a full presence bucket (the least it gives away). */
static void left_keep(struct room *r, const struct occupant *o)
{
    struct bucket b[2] = {o->b[B_PRESENCE], o->b[B_MESSAGE]};
    long long now = bucket_now(&b[B_PRESENCE], B_PRESENCE);
    b[B_PRESENCE].credit = (long)(now > 2 * 60 ? now - 2 * 60 : 0);
    b[B_PRESENCE].at = g_now;
    left_prune(r);
    if (g_config->muc_rejoin_buckets == 0 || left_stale(b)) {
        return;
    }
    for (struct left *e = r->left; e; e = e->next) {
        if (strcmp(e->bare, o->bare) == 0) {
            /* The account's other nick left too: one entry, the emptier
             * buckets (one account's resources may hold several nicks). */
            for (int k = B_PRESENCE; k <= B_MESSAGE; k++) {
                if (bucket_now(&b[k], k) < bucket_now(&e->b[k], k)) {
                    e->b[k] = b[k];
                }
            }
            return;
        }
    }
    if (r->nleft >= g_config->muc_rejoin_buckets) {
        struct left **best = &r->left;
        for (struct left **pp = &r->left; *pp; pp = &(*pp)->next) {
            if (bucket_now(&(*pp)->b[B_PRESENCE], B_PRESENCE) >
                bucket_now(&(*best)->b[B_PRESENCE], B_PRESENCE)) {
                best = pp;
            }
        }
        left_unlink(r, best);
    }
    struct left *e = malloc(sizeof(*e) + strlen(o->bare) + 1);
    if (!e) {
        return;
    }
    memcpy(e->b, b, sizeof(b));
    strcpy(e->bare, o->bare);
    e->next = r->left;
    r->left = e;
    r->nleft++;
    nleft_all++;
}

/* o, new in r, takes back the buckets its account left with; a rejoin
 * needs credit for the stay it begins (its leave pays). 0: over the limit
 * (the entry stays as it was). */
static int join_spend(struct room *r, struct occupant *o)
{
    struct left **pp = &r->left;
    while (*pp && strcmp((*pp)->bare, o->bare) != 0) {
        pp = &(*pp)->next;
    }
    if (!*pp) {
        return 1; /* a first join, or the bucket was full again */
    }
    struct bucket b = (*pp)->b[B_PRESENCE];
    if (!bucket_spend(&b, B_PRESENCE, 2)) {
        log_limited("muc presence rate", o->bare, L_NOTICE,
                    "muc: %s rejoins %s too fast: refused", o->bare, r->jid);
        return 0;
    }
    b.credit += 2 * 60; /* checked, not spent: the leave pays */
    o->b[B_PRESENCE] = b;
    o->b[B_MESSAGE] = (*pp)->b[B_MESSAGE];
    left_unlink(r, pp);
    return 1;
}

/* An occupant that never got into its room (NULL: none). */
static void occ_free_new(struct occupant *o)
{
    if (o) {
        occ_free(o);
    }
}

/* A groupchat message goes to every occupant: past muc_message_rate the
 * sender gets resource-constraint (RFC 6120 §8.3.3.18) and nobody else
 * anything. Returns 1 when m may go out. */
static int msg_spend(const struct room *r, struct occupant *o, const struct xml_node *m)
{
    if (g_config->muc_message_rate == 0 || bucket_spend(&o->b[B_MESSAGE], B_MESSAGE, 1)) {
        return 1;
    }
    log_limited("muc message rate", o->bare, L_NOTICE, "muc: %s sends too fast in %s: refused",
                o->bare, r->jid);
    bounce(m, E_BUSY);
    return 0;
}

/* on_tick: rooms forget the buckets that are full again. */
static void left_sweep(void)
{
    for (int i = 0; nleft_all > 0 && i < ROOM_BUCKETS; i++) {
        for (struct room *r = rooms[i]; r; r = r->next) {
            left_prune(r);
        }
    }
}
