/* jid.h: XMPP addresses (RFC 7622): parse, validate, normalise, compare.
 * Pure functions over caller buffers: no allocation, no I/O.
 * Normalisation is PRECIS (precis.h): UsernameCaseMapped for the localpart,
 * OpaqueString for the resourcepart, IDNA2008 U-label rules for the domainpart
 * (width and case mapping, NFC), removal of a trailing dot in the domain, and
 * rejection of what RFC 7622 forbids. */
#ifndef XMPPD_JID_H
#define XMPPD_JID_H

#include <stddef.h>

#include "limits.h"

/* Views into a normalised JID string produced by jid_parse. Lengths exclude the
 * separators; local_len == 0 means no localpart, resource_len == 0 no resource. */
struct jid {
    const char *local;
    size_t local_len;
    const char *domain;
    size_t domain_len;
    const char *resource;
    size_t resource_len;
};

/* Parse s (NUL-terminated), validate it and write the normalised form into
 * out (outsz >= JID_MAX + 1 always suffices). If j is not NULL its views point
 * into out. Returns 0, or -1 when s is not a valid JID (stanza error jid-malformed). */
int jid_parse(const char *s, char *out, size_t outsz, struct jid *j);
/* Write the bare JID (local@domain, or domain) of a normalised JID. Returns 0 or -1 (too small). */
int jid_bare(const char *norm, char *out, size_t outsz);
/* Validate and normalise a localpart alone (for "xmppd adduser" and SASL
 * usernames). Returns 0 or -1. */
int jid_local_valid(const char *local, char *out, size_t outsz);
/* Validate a resourcepart alone (resource binding). Returns 0 or -1. */
int jid_resource_valid(const char *res);
/* For a new account only (in-band registration, "xmppd adduser"): 1 when the
 * normalised localpart uses one script (UTS #39 "highly restrictive", see
 * precis_single_script), 0 for a mixed-script look-alike such as a Cyrillic
 * 'а' among Latin letters. Existing accounts are never checked with it. */
int jid_local_new_ok(const char *local);
/* 1 when j's domainpart is domain (normalised: the server's own, say). */
int jid_domain_is(const struct jid *j, const char *domain);
/* 1 when two normalised JIDs have the same bare part, else 0. */
int jid_same_bare(const char *a, const char *b);

#endif
