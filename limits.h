/* limits.h: every limit xmppd enforces and its default, in one place.
 * Each one has a config key (see config.c / xmppd.conf.example) unless noted as
 * a compile-time bound. Nothing here allocates; the modules that own the
 * buffers enforce the numbers. */
#ifndef XMPPD_LIMITS_H
#define XMPPD_LIMITS_H

/* XML (RFC 6120 §13.12: servers must accept at least 10000 bytes per stanza). */
#define LIMIT_STANZA_SIZE 65536     /* max_stanza_size: bytes of one top-level stanza */
#define LIMIT_XML_DEPTH 32          /* max_xml_depth: element nesting inside a stanza */
#define LIMIT_XML_ATTRS 32          /* max_xml_attrs: attributes per element */
#define LIMIT_XML_NAME 256          /* max_xml_name: bytes of an element/attribute name */

/* Addresses (RFC 7622 §3.1: each part at most 1023 bytes). Compile-time. */
#define JID_PART_MAX 1023
#define JID_MAX (3 * JID_PART_MAX + 2)
/* PRECIS preparation (precis.c) works in fixed code point arrays on the stack:
 * a part whose decomposed form (NFD) needs more code points is refused; twice
 * the part limit covers any part that fits 1023 bytes once composed. */
#define PRECIS_CP_MAX (2 * JID_PART_MAX)
/* UAX #15 §13 (stream-safe text): at most 30 combining marks in a row. Bounds
 * the canonical reordering; longer runs are refused as malformed. */
#define PRECIS_MARKS_MAX 30

/* Connections. */
#define LIMIT_MAX_CONNECTIONS 19500   /* max_connections: total open client sockets */
#define LIMIT_MAX_UNAUTH 256          /* max_unauth: connections not yet authenticated */
#define LIMIT_MAX_UNAUTH_PER_IP 16    /* max_unauth_per_ip */
#define LIMIT_OUTQ_SOFT (256 * 1024)  /* outq_soft: stop reading senders into this conn */
#define LIMIT_OUTQ_HARD (1024 * 1024) /* outq_hard: disconnect the slow reader */
#define LIMIT_PREAUTH_TIMEOUT 30      /* preauth_timeout: seconds to authenticate */
#define LIMIT_PING_INTERVAL 300       /* ping_interval: seconds of silence before a ping */
#define LIMIT_PING_TIMEOUT 60         /* ping_timeout: seconds to answer that ping */
#define LIMIT_FD_RESERVE 16           /* compile-time: descriptors never given to clients, so
                                         the store can still open files at RLIMIT_NOFILE */

/* Logging: lines a peer can repeat at will are limited per kind and peer. */
#define LIMIT_LOG_REPEAT_WINDOW 60    /* log_repeat_window: seconds; after the first lines of
                                         a window, one summary line when it closes */
#define LIMIT_LOG_REPEAT_BURST 5      /* compile-time: lines logged per window, kind and peer */
#define LIMIT_LOG_REPEAT_SLOTS 256    /* compile-time: (kind, peer) pairs tracked at once */

/* Authentication throttling: per source address and account (c2s.c). */
#define LIMIT_AUTH_FAIL_DELAY_MAX 8   /* auth_fail_delay_max: seconds; the delay doubles per
                                         failure up to this */
#define LIMIT_AUTH_FAIL_BAN 10        /* auth_fail_ban: failures at one account before refusing it
                                         to that address */
#define LIMIT_AUTH_BAN_SECONDS 300    /* auth_ban_seconds: for this long after the last one */
#define LIMIT_SASL_MAX_RETRIES 3      /* sasl_max_retries: per stream, RFC 6120 §6.4.5 */
/* auth_fail_ban_address: failed logins at any accounts before refusing the address. */
#define LIMIT_AUTH_FAIL_BAN_ADDRESS 30

/* IM. */
#define LIMIT_ROSTER_SIZE 1000        /* max_roster_items */
#define LIMIT_OFFLINE_MSGS 500        /* max_offline_messages per account */
#define LIMIT_VCARD_SIZE 32768        /* max_vcard_size (bytes) */
#define LIMIT_PRIVATE_SIZE 65536      /* max_private_size (bytes per account) */
#define LIMIT_BLOCKLIST 1000          /* max_blocklist_items */

/* In-band registration (XEP-0077) throttle. */
#define LIMIT_REGISTER_PER_ADDR 5     /* registration_throttle: accounts per address ... */
#define LIMIT_REGISTER_WINDOW 600     /* ... per this many seconds */
#define LIMIT_REGISTER_TOTAL 30       /* registration_throttle_total: accounts from all
                                         addresses together ... */
#define LIMIT_REGISTER_TOTAL_WINDOW 600 /* ... per this many seconds */
#define LIMIT_REGISTER_SLOTS 64       /* compile-time: addresses tracked at once (a fixed
                                         table; a collision evicts, the total cap still holds) */
#define LIMIT_PREFIX_LIST 16          /* compile-time: prefixes in one address list option */

/* SCRAM. */
#define SCRAM_DEFAULT_ITER 4096       /* scram_iterations (RFC 7677 recommends >= 4096) */

/* Message archive (XEP-0313, mam.c). */
#define LIMIT_MAM_MAX_PAGE 100          /* mam_max_page: results in one archive query page */
#define LIMIT_MAM_MAX_BYTES (8 * 1024 * 1024) /* mam_max_bytes: archive log per account; the
                                                 oldest records go first (0 = no cap) */
#define LIMIT_MAM_EXPIRE_DAYS 0         /* mam_expire_days: archived messages older than this
                                           are dropped (0 = kept) */

#endif
