/* admin.h: XEP-0133 service administration. The actions are plain functions
 * (the ad-hoc commands in admin.c call them, and so will the web console of
 * issue 14), each logging the admin's JID; the forms live in admin.c only.
 * Accounts are made, re-keyed and removed exactly as in-band registration and
 * "xmppd adduser/deluser" do it (register.c). Must not: touch files other
 * than through store.c and register.c, or know about XEP-0050 sessions. */
#ifndef XMPPD_ADMIN_H
#define XMPPD_ADMIN_H

#include <stddef.h>

enum admin_err {
    ADMIN_OK = 0,
    ADMIN_EBADJID = -1,  /* not a bare JID of this server's domain (jid-malformed) */
    ADMIN_EBADNAME = -2, /* a new name that mixes scripts, or too long for the store
                            (not-acceptable) */
    ADMIN_EBADPW = -3,   /* empty or longer than 1023 bytes (not-acceptable) */
    ADMIN_EEXIST = -4,   /* the account exists already (conflict) */
    ADMIN_ENOENT = -5,   /* no such account (item-not-found) */
    ADMIN_EIO = -6,      /* the store failed (internal-server-error) */
    ADMIN_EBADTEXT = -7, /* empty, or too long (not-acceptable) */
};

/* 1 when bare (a normalised bare JID) is in the admins option. */
int admin_is_admin(const char *bare);
/* Normalise jid into out (JID_MAX + 1) as a bare JID of our domain with a
 * localpart. Returns ADMIN_OK or ADMIN_EBADJID. */
int admin_account_jid(const char *jid, char *out, size_t outsz);
/* admin is the full JID of whoever acts (for the log). */
int admin_add_user(const char *admin, const char *jid, const char *password);
int admin_change_password(const char *admin, const char *jid, const char *password);
/* Removes every stored thing of the account and ends its sessions (as an
 * in-band cancellation does). */
int admin_delete_user(const char *admin, const char *jid);
/* A headline from the server to every available resource; subject may be
 * NULL; subject and body together at most announce_max_bytes (else
 * ADMIN_EBADTEXT). Returns the number of resources it was queued to. */
int admin_announce(const char *admin, const char *subject, const char *body);
/* The message of the day (XEP-0133 §4.24): stored, sent to the available
 * resources now and to each resource at its initial presence from then on.
 * set: ADMIN_EBADTEXT for an empty text or one longer than announce_max_bytes.
 * admin_motd: the current one or NULL. */
int admin_set_motd(const char *admin, const char *text);
int admin_delete_motd(const char *admin);
const char *admin_motd(void);
/* Online accounts (those with a bound resource) and registered accounts;
 * a negative admin_err when the store cannot be read. */
int admin_online_count(void);
int admin_registered_count(void);
/* fn for each online account's bare JID until it returns non-zero. */
void admin_online_each(int (*fn)(const char *bare, void *ud), void *ud);

#endif
