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

/* PEP (XEP-0163): personal eventing nodes per account (pep.c). */
#define LIMIT_PEP_ITEM_BYTES 65536     /* pep_max_item_bytes: bytes of one item's payload */
#define LIMIT_PEP_MAX_ITEMS 256        /* pep_max_items: items kept per node; what
                                          pubsub#max_items 'max' means */
#define LIMIT_PEP_NODES 64             /* pep_max_nodes: nodes per account */
#define LIMIT_PEP_ACCOUNT_BYTES (1024 * 1024) /* pep_max_account_bytes: stored per account */
#define LIMIT_PEP_CAPS_CACHE 256       /* pep_caps_cache: XEP-0115 ver hashes remembered */
#define LIMIT_PEP_CAPS_NOTIFY 64       /* compile-time: +notify features kept per ver */

/* Client state indication (XEP-0352, csi.c). */
#define LIMIT_CSI_MAX_HELD 100        /* csi_max_held: stanzas held for an inactive client;
                                         one more flushes them all */

/* push: XEP-0114 external components and XEP-0357 push notifications. */
#define LIMIT_COMPONENT_PORT 5347     /* component_port: XEP-0114 listener; 0 disables */
#define LIMIT_COMPONENTS 16           /* compile-time: "component" lines in the config */
#define LIMIT_COMPONENT_SECRET 128    /* compile-time: bytes of one component secret */
#define LIMIT_PUSH_REGISTRATIONS 5    /* max_push_registrations: XEP-0357 enables per account */
#define LIMIT_PUSH_INTERVAL 10        /* push_interval: seconds between two pushes to one
                                         app server node; messages in between coalesce */
#define LIMIT_PUSH_TIMEOUT 60         /* push_timeout: seconds to wait for the app server's
                                         answer before the next push may go */
#define LIMIT_PUSH_FORM 4096          /* compile-time: bytes of one stored publish-options form */
#define LIMIT_PUSH_BODY 256           /* compile-time: bytes of a body in a notification (only
                                         when the client asked for bodies), cut at a character */
#define LIMIT_ROUTER_DOMAINS 32       /* compile-time: domains in the router's domain table
                                         (components now; s2s and MUC later) */

/* XEP-0198 stream management (sm.c). */
#define LIMIT_SM_RESUME_TIMEOUT 300   /* sm_resume_timeout: seconds a session whose link died
                                         waits for a <resume/>; 0 offers no resumption */
#define LIMIT_SM_MAX_UNACKED 500      /* sm_max_unacked: stanzas sent and not acknowledged,
                                         per session (policy-violation past it) ... */
/* sm_max_unacked_bytes: ... and their bytes; under outq_hard, which the replay after a
 * resumption must fit in, with room for what follows it. */
#define LIMIT_SM_MAX_UNACKED_BYTES (512 * 1024)
#define LIMIT_SM_REQUEST_ACK 5        /* sm_request_ack: ask for an <a/> once this many are
                                         unacknowledged */
#define LIMIT_SM_MAX_DETACHED 1000    /* sm_max_detached: sessions kept without a link at once */
#define LIMIT_SM_DETACHED_BYTES (16 * 1024 * 1024) /* sm_detached_bytes: what they hold, together */
#define LIMIT_SM_DETACHED_PER_ACCOUNT 5 /* sm_max_detached_per_account: of those, one account's */

/* PEP: caps and cache bounds (caps.c, pep.c). Bytes of +notify node names kept per caps ver
 * and per session; real clients list well under 1 KiB (pep_caps_notify_bytes). */
#define LIMIT_PEP_CAPS_NOTIFY_BYTES 4096
/* Parsed PEP docs of offline accounts kept across turns (pep_doc_cache), so
 * that items requests to one of them do not read and parse it each time. */
#define LIMIT_PEP_DOC_CACHE 4
/* Message archive (XEP-0313, mam.c). */
#define LIMIT_MAM_MAX_PAGE 100          /* mam_max_page: results in one archive query page */
#define LIMIT_MAM_MAX_BYTES (8 * 1024 * 1024) /* mam_max_bytes: archive log per account; the
                                                 oldest records go first (0 = no cap) */
#define LIMIT_MAM_EXPIRE_DAYS 0         /* mam_expire_days: archived messages older than this
                                           are dropped (0 = kept) */

/* back-pressure before the XEP-0198 unacknowledged limits (sm.c). */
#define LIMIT_SM_UNACKED_SOFT_PERCENT 50 /* sm_unacked_soft_percent: past this share of
                                            sm_max_unacked or sm_max_unacked_bytes, senders to
                                            the session pause until it acknowledges */

/* Resources per account (c2s.c bind). Each message to a bare JID fans out to every
 * resource (carbons, presence, PEP notifications): this bounds that per message. */
#define LIMIT_MAX_RESOURCES_PER_ACCOUNT 10 /* max_resources_per_account: bound (or kept for
                                              resumption) resources of one account */

/* XEP-0133 service administration over XEP-0050 ad-hoc commands (adhoc.c, admin.c). */
#define LIMIT_ADMINS 16               /* compile-time: bare JIDs in the admins option */
#define LIMIT_ADHOC_SESSIONS 64       /* adhoc_max_sessions: multi-stage command sessions open
                                         at once, all admins together */
#define LIMIT_ADHOC_SESSIONS_PER_JID 4 /* compile-time: of those, one full JID's; a new one
                                          ends its oldest */
#define LIMIT_ADHOC_TIMEOUT 600       /* adhoc_session_timeout: seconds a command session waits
                                         for its next stage */
#define LIMIT_ANNOUNCE_BYTES 4096     /* announce_max_bytes: an announcement or message of the
                                         day; it is copied to every online resource */
/* XEP-0227 import (pie.c): the whole file is parsed in memory before anything
 * is written, so its size bounds what an import costs. */
#define LIMIT_IMPORT_MAX_BYTES (64 * 1024 * 1024) /* import_max_bytes: bytes of the
                                                      files one "xmppd import" reads */
#define LIMIT_IMPORT_MAX_ITER 100000 /* import_max_scram_iterations: an imported SCRAM
                                        iteration count; every PLAIN login (and client)
                                        runs that many PBKDF2 rounds */
/* Federation: server-to-server streams (s2s.c, RFC 6120, XEP-0220). */
#define LIMIT_S2S_PORT 5269            /* s2s_port: incoming s2s listener; 0 disables */
#define LIMIT_S2S_ROUTES 32            /* compile-time: "s2s_route" lines in the config */
#define LIMIT_S2S_MAX_DOMAINS 64       /* s2s_max_domains: remote domains with an outgoing
                                          stream (or one coming up) at once */
#define LIMIT_S2S_MAX_QUEUED 100       /* s2s_max_queued: stanzas waiting for a domain's
                                          stream to come up ... */
#define LIMIT_S2S_MAX_QUEUED_BYTES (256 * 1024) /* s2s_max_queued_bytes: ... and their bytes */
#define LIMIT_S2S_TIMEOUT 30           /* s2s_timeout: seconds for connect + TLS + dialback */
#define LIMIT_S2S_IDLE_TIMEOUT 600     /* s2s_idle_timeout: an s2s stream with no traffic
                                          either way for this long is closed */
#define LIMIT_S2S_RETRY_MIN 5          /* s2s_retry_min: seconds a failed domain is not
                                          retried; doubles on each failure ... */
#define LIMIT_S2S_RETRY_MAX 600        /* s2s_retry_max: ... up to this */
#define LIMIT_S2S_DIALBACK_PENDING 8   /* compile-time: dialback keys waiting for their
                                          verification, per remote domain */
#define LIMIT_S2S_STREAM_DOMAINS 4     /* compile-time: domains one incoming stream may
                                          authenticate (XEP-0220 §4 piggybacking) */
#define LIMIT_S2S_INCOMING_PER_DOMAIN 4 /* s2s_max_incoming_per_domain: authenticated incoming
                                          streams of one remote domain; a new one closes
                                          the oldest (conflict) */
#define LIMIT_S2S_INCOMING_PER_DOMAIN_MAX 16 /* compile-time: its upper bound */
/* Multi-user chat (XEP-0045, muc.c): rooms live in memory, so each bound keeps
 * what one user can make the server hold or fan out small. */
#define LIMIT_MUC_MAX_ROOMS 1000        /* muc_max_rooms: rooms on the service at once */
#define LIMIT_MUC_MAX_OCCUPANTS 200     /* muc_max_occupants: nicks in one room (fan-out) */
#define LIMIT_MUC_ROOMS_PER_ACCOUNT 10  /* muc_max_rooms_per_account: rooms one account made */
#define LIMIT_MUC_HISTORY_SIZE 20       /* muc_history_size: messages a room keeps for joiners */
#define LIMIT_MUC_HISTORY_MAX 200       /* compile-time: upper bound of muc_history_size */
#define LIMIT_MUC_HISTORY_BYTES (64 * 1024) /* muc_history_bytes: memory of one room's history */
#define LIMIT_MUC_SUBJECT_BYTES 1024    /* muc_max_subject_bytes: a subject's text */
#define LIMIT_MUC_PRESENCE_BYTES 2048   /* muc_max_presence_bytes: memory of the presence kept
                                           per occupant (status first dropped past it) */
#define LIMIT_MUC_MAX_INVITES 5         /* muc_max_invites: invitations one message may carry */
#define LIMIT_MUC_MAX_AFFILIATIONS 1000 /* muc_max_affiliations: members, admins, owners and
                                           outcasts of one room */
/* Group commit (store.c, issue 13 perf): fsyncs issued at once, so that a turn
 * that appended to many archives waits for about one disk flush, not one each. */
#define LIMIT_STORE_SYNC_THREADS 8 /* store_sync_threads: 1 = one after the other */
/* Federation: DNS resolution of remote domains (dns.c, RFC 6120 §3.2). */
#define LIMIT_S2S_DNS_TIMEOUT 2        /* s2s_dns_timeout: seconds before a query is resent */
#define LIMIT_S2S_DNS_TRIES 3          /* s2s_dns_tries: sends before a query has no answer */
#define LIMIT_S2S_DNS_MAX_PENDING 16   /* s2s_dns_max_pending: domains looked up at once
                                          (one UDP socket each) */
#define LIMIT_S2S_DNS_CACHE_SIZE 64    /* s2s_dns_cache_size: domains whose answer is kept */
#define LIMIT_S2S_DNS_CACHE_TTL 3600   /* compile-time: longest a cached answer is used,
                                          whatever its TTL */
#define LIMIT_S2S_DNS_NEGATIVE_TTL 60  /* compile-time: seconds "no such domain" is kept */
#define LIMIT_S2S_DNS_RESOLV_CONF "/etc/resolv.conf" /* compile-time: where the default
                                                        resolver is read */
/* MUC over s2s (issue 15 item 8): another server mints bare JIDs at will, so
 * its users' rooms are also counted per domain, or one server could take all
 * of muc_max_rooms. */
#define LIMIT_MUC_ROOMS_PER_DOMAIN 20 /* muc_max_rooms_per_domain: rooms made by users
                                         of one remote domain */

/* Federation hardening (s2s review): one address may have this many dialback
 * keys waiting per remote domain, of LIMIT_S2S_DIALBACK_PENDING, so that one
 * peer cannot take them all and lock the real server of the domain out. */
#define LIMIT_S2S_DIALBACK_PENDING_PER_ADDR 2 /* compile-time */
/* MUC presence flood limit (XEP-0045, muc.c, issue 15 item 2): each presence
 * change or nick change of an occupant goes to every occupant, so each one
 * spends from a token bucket of its own; past it the latest presence waits. */
#define LIMIT_MUC_PRESENCE_BURST 10 /* muc_presence_burst: changes an occupant makes at once */
#define LIMIT_MUC_PRESENCE_RATE 30  /* muc_presence_rate: changes a minute after the burst */

/* s2s SASL EXTERNAL (s2s.c, XEP-0178). */
#define LIMIT_S2S_REQUIRE_CERT 32 /* compile-time: domains s2s_require_cert may name */
#define LIMIT_S2S_SASL_TRIES 2     /* compile-time: failed EXTERNAL attempts before the
                                      stream is closed (RFC 6120 §6.4.5: at least 2) */
/* HTTP server (issue 14, http.c / http_parse.c, RFC 9112). */
#define LIMIT_HTTP_PORT 5280              /* http_port: plain HTTP on http_interface; 0 disables */
#define LIMIT_HTTPS_PORT 5281             /* https_port: HTTPS, c2s's certificate; 0 disables */
#define LIMIT_HTTP_REQUEST_TIMEOUT 20     /* http_request_timeout: seconds to send one request
                                             (408 after; slowloris) */
#define LIMIT_HTTP_IDLE_TIMEOUT 60        /* http_idle_timeout: an idle keep-alive connection */
#define LIMIT_HTTP_MAX_REQUEST_LINE 4096  /* http_max_request_line: bytes (414 past it) */
#define LIMIT_HTTP_MAX_HEADER_BYTES 8192  /* http_max_header_bytes: header section (431) */
#define LIMIT_HTTP_MAX_HEADERS 64         /* http_max_headers: header fields (431) */
#define LIMIT_HTTP_MAX_BODY 65536         /* http_max_body: request body bytes (413) */
#define LIMIT_HTTP_ROUTES 32              /* compile-time: paths modules may register */
#define LIMIT_HTTP_DEFER_SECONDS 300      /* compile-time: a deferred request's answer (http_defer)
                                             is late past it: 500, the connection ends */

/* MUC limits that do not reset (muc.c, issue 15): a groupchat message goes to
 * every occupant, so each occupant spends from a message bucket; a room keeps
 * the buckets of accounts that left, so that rejoining gives no fresh ones. */
#define LIMIT_MUC_MESSAGE_BURST 20  /* muc_message_burst: groupchat messages at once */
#define LIMIT_MUC_MESSAGE_RATE 60   /* muc_message_rate: a minute after the burst (0 = none) */
#define LIMIT_MUC_REJOIN_BUCKETS 32 /* muc_rejoin_buckets: accounts per room whose buckets
                                       are kept after they leave */
/* s2s fixes (issue 12 item 2): dialback keys waiting at once from one address,
 * over every remote domain it names. Each may cost a DNS lookup
 * (s2s_dns_max_pending) and a domain slot (s2s_max_domains): one peer naming
 * random domains must not take them all from the real ones. */
#define LIMIT_S2S_DIALBACK_PER_ADDR 4 /* s2s_dialback_max_per_addr */
/* web admin console (issue 14, webadmin.c). */
#define LIMIT_WEBADMIN_MAX_SESSIONS 8       /* webadmin_max_sessions: logged-in sessions */
#define LIMIT_WEBADMIN_SESSION_TIMEOUT 900  /* webadmin_session_timeout: idle seconds */
#define LIMIT_WEBADMIN_LOG_LINES 200        /* webadmin_log_lines: lines the log page shows */
#define LIMIT_WEBADMIN_PAGE 50              /* compile-time: accounts per users page */

/* BOSH (issue 14, bosh.c, XEP-0124 + XEP-0206). A session's output queue is
 * a c2s conn's (outq_soft pauses its senders, outq_hard ends it). */
#define LIMIT_BOSH_MAX_WAIT 60        /* bosh_max_wait: seconds a request is held at most */
#define LIMIT_BOSH_MAX_INACTIVITY 60  /* bosh_max_inactivity: seconds with no request held
                                         before the session ends */
#define LIMIT_BOSH_MAX_HOLD 1         /* bosh_max_hold: requests held at once */
#define LIMIT_BOSH_MAX_REQUESTS 2     /* bosh_max_requests: requests a client may have open */
#define LIMIT_BOSH_MAX_SESSIONS 100   /* bosh_max_sessions: sessions at once, all clients */
#define LIMIT_BOSH_MAX_PAUSE 120      /* bosh_max_pause: seconds a client may pause (0: none) */
#define LIMIT_BOSH_REQUESTS_MAX 8     /* compile-time: the most bosh_max_requests may be */
#define LIMIT_BOSH_POLLING 2          /* compile-time: the polling attribute (§7.1, §12) */

/* XEP-0363 HTTP File Upload (issue 14 item 4, upload.c). */
#define LIMIT_HTTP_PIECE 65536 /* compile-time: bytes of a file queued at once to a reader */
#define LIMIT_UPLOAD_MAX_SIZE (10 * 1024 * 1024) /* upload_max_size: bytes per file */
#define LIMIT_UPLOAD_QUOTA_BYTES (100 * 1024 * 1024) /* upload_quota_bytes: per account */
#define LIMIT_UPLOAD_TOTAL_BYTES (1024 * 1024 * 1024) /* upload_total_bytes: all accounts */
#define LIMIT_UPLOAD_SLOT_TIMEOUT 60 /* upload_slot_timeout: seconds a slot waits for its PUT
                                        (XEP-0363 §7: around 60 s) */
#define LIMIT_UPLOAD_EXPIRE_DAYS 30 /* upload_expire_days: files are removed after (0 = never) */
#define LIMIT_UPLOAD_SLOT_RATE 10 /* upload_slot_rate: slot requests per account and minute */
#define LIMIT_UPLOAD_MAX_PENDING 64 /* upload_max_pending: slots waiting for a PUT, all accounts */
#define LIMIT_UPLOAD_MIN_RATE 4096 /* upload_min_rate: bytes/s a PUT must keep up (else 408) */
#define LIMIT_UPLOAD_MAX_PENDING_PER_ACCOUNT 8 /* upload_max_pending_per_account: so that one
                                                 account cannot take every pending slot */

#endif
