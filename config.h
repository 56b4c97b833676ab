/* config.h: the configuration file and the struct it fills.
 * Format: one "key value" per line, '#' starts a comment line, blank lines
 * ignored, values may be double-quoted when they contain spaces; anything after
 * the value is an error. The parser is table driven (config.c: one row per
 * option with type, bounds, default, and whether SIGHUP may change it).
 * Must not: open sockets or data files, or log (errors go to the caller). */
#ifndef XMPPD_CONFIG_H
#define XMPPD_CONFIG_H

#include <stddef.h>

#include "limits.h"

#define CONFIG_STR_MAX 256

/* A limit of COUNT events per SECONDS (registration_throttle). */
struct config_rate {
    int count;
    int seconds;
};

/* An address prefix. IPv4 is kept as its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d, bits + 96), so ::ffff:127.0.0.1 matches 127.0.0.0/8. */
struct config_prefix {
    unsigned char addr[16];
    int bits;
};

/* A bounded list of prefixes (registration_exempt, http_trusted_proxies);
 * n == 0 is "none". */
struct config_prefixes {
    int n;
    struct config_prefix p[LIMIT_PREFIX_LIST];
};

/* push: XEP-0114 components, "component DOMAIN SECRET" lines (several). */
struct config_component {
    char domain[CONFIG_STR_MAX];
    char secret[LIMIT_COMPONENT_SECRET + 1];
};
struct config_components {
    int n;
    struct config_component c[LIMIT_COMPONENTS];
};

/* XEP-0133 administration: the admins option, bare JIDs (normalised). */
struct config_jids {
    int n;
    char jid[LIMIT_ADMINS][CONFIG_STR_MAX];
};

/* Federation: "s2s_route DOMAIN HOST[:PORT]" lines (several). */
struct config_s2s_route {
    char domain[CONFIG_STR_MAX];
    char host[64]; /* IPv4 or IPv6 literal (names need DNS: phase 2) */
    int port;
};
struct config_s2s_routes {
    int n;
    struct config_s2s_route r[LIMIT_S2S_ROUTES];
};

/* s2s SASL EXTERNAL: "s2s_require_cert DOMAIN..." (several lines). */
struct config_domains {
    int n;
    char d[LIMIT_S2S_REQUIRE_CERT][CONFIG_STR_MAX];
};

struct config {
    char domain[CONFIG_STR_MAX];         /* domain: the XMPP domain served */
    char data_dir[CONFIG_STR_MAX];       /* data_dir */
    char listen_address[64];             /* listen_address: IPv4 or IPv6 literal */
    int c2s_port;                        /* c2s_port (STARTTLS); 0 disables */
    int c2s_tls_port;                    /* c2s_tls_port (direct TLS, XEP-0368); 0 disables */
    char tls_cert[CONFIG_STR_MAX];       /* tls_cert: PEM chain; empty = self-signed in data_dir */
    char tls_key[CONFIG_STR_MAX];        /* tls_key */
    int require_tls;                     /* require_tls: STARTTLS before authentication */
    int plain_without_tls;               /* plain_without_tls: allow PLAIN in clear (benchmarks) */
    int legacy_auth;                     /* legacy_auth: XEP-0078 jabber:iq:auth logins */
    char user[64];                       /* user: drop to this user after binding */
    char group[64];                      /* group: and this group (default: user's group) */
    int allow_root;                      /* allow_root: run as root without "user" */
    int log_level;                       /* log_level: error|warning|notice|info|debug */
    int log_syslog;                      /* log_syslog: yes/no (default: no with -f, else yes) */
    int log_repeat_window;               /* log_repeat_window: seconds per limited-log window */

    int max_stanza_size;
    int max_xml_depth;
    int max_xml_attrs;
    int max_xml_name;
    int max_connections;
    int max_unauth;
    int max_unauth_per_ip;
    int outq_soft;
    int outq_hard;
    int preauth_timeout;
    int ping_interval;
    int ping_timeout;
    int auth_fail_delay_max;
    int auth_fail_ban;
    int auth_ban_seconds;
    int auth_fail_ban_address;
    int sasl_max_retries;
    int scram_iterations;

    int max_roster_items;
    int max_offline_messages;
    int max_vcard_size;
    int max_private_size;
    int max_blocklist_items;
    int allow_registration;              /* allow_registration: XEP-0077 in-band sign-up */
    int allow_password_change;           /* allow_password_change: XEP-0077 for logged-in users */
    int hide_version;                    /* hide_version: XEP-0092 answers without version/os */
    struct config_rate registration_throttle;       /* per address */
    struct config_rate registration_throttle_total; /* all addresses together */
    struct config_prefixes registration_exempt;     /* addresses neither counted nor limited */
    /* PEP (XEP-0163, pep.c) */
    int pep_max_item_bytes;
    int pep_max_items;
    int pep_max_nodes;
    int pep_max_account_bytes;
    int pep_caps_cache;
    /* client state indication (XEP-0352, csi.c) */
    int csi_max_held;                    /* csi_max_held: stanzas held while inactive */

    /* push: XEP-0114 external components and XEP-0357 push notifications. */
    int component_port;                  /* component_port; 0 disables */
    char component_interface[64];        /* component_interface: IPv4 or IPv6 literal */
    struct config_components component;  /* component DOMAIN SECRET (repeatable) */
    int max_push_registrations;
    int push_interval;
    int push_timeout;

    /* XEP-0198 stream management (sm.c). */
    int sm_resume_timeout;    /* seconds a lost session waits for <resume/> (0 = none) */
    int sm_max_unacked;       /* unacknowledged stanzas per session */
    int sm_max_unacked_bytes; /* ... and their bytes */
    int sm_request_ack;       /* ask for an ack once this many are unacknowledged */
    int sm_max_detached;      /* sessions kept without a connection at once */
    int sm_detached_bytes;    /* bytes those hold, together */
    int sm_max_detached_per_account; /* of those sessions, one account's */
    /* PEP: caps and cache bounds (caps.c, pep.c) */
    int pep_caps_notify_bytes;
    int pep_doc_cache;
    /* Message archive (XEP-0313, mam.c). */
    int mam_max_page;    /* mam_max_page: results per query page (RSM max is capped to it) */
    int mam_max_bytes;   /* mam_max_bytes: archive size cap per account, 0 = none */
    int mam_expire_days; /* mam_expire_days: retention, 0 = keep */
    /* back-pressure before the XEP-0198 unacknowledged limits (sm.c). */
    int sm_unacked_soft_percent; /* share of the sm_max_unacked* limits that pauses senders */
    /* Resources per account (c2s.c bind). */
    int max_resources_per_account; /* bound or detached resources of one account */
    /* XEP-0133 administration over XEP-0050 ad-hoc commands (adhoc.c, admin.c). */
    struct config_jids admins; /* admins: local accounts that may administer the server */
    int adhoc_max_sessions;    /* command sessions open at once */
    int adhoc_session_timeout; /* seconds a command session waits for its next stage */
    int announce_max_bytes;    /* announcement / message of the day text */
    /* XEP-0227 import (pie.c). */
    int import_max_bytes; /* import_max_bytes: bytes of the files one import reads */
    int import_max_scram_iterations; /* highest SCRAM iteration count an import takes */
    /* Federation: server-to-server streams (s2s.c). */
    int s2s_port;                    /* s2s_port: incoming listener on listen_address; 0 = off */
    struct config_s2s_routes s2s_route; /* s2s_route DOMAIN HOST[:PORT] (repeatable) */
    int s2s_secure_auth;             /* s2s_secure_auth: refuse peers without a valid cert */
    char s2s_ca_file[CONFIG_STR_MAX]; /* s2s_ca_file: CAs that verify peers' certificates */
    int s2s_max_domains;
    int s2s_max_queued;
    int s2s_max_queued_bytes;
    int s2s_timeout;
    int s2s_idle_timeout;
    int s2s_retry_min;
    int s2s_retry_max;
    int s2s_max_incoming_per_domain; /* authenticated incoming streams per remote domain */
    /* Multi-user chat (XEP-0045, muc.c). */
    char muc_domain[1024];      /* "auto" = conference.DOMAIN; "none" or "" = no MUC service */
    int muc_max_rooms;
    int muc_max_occupants;
    int muc_max_rooms_per_account;
    int muc_history_size;
    int muc_history_bytes;
    int muc_max_subject_bytes;
    int muc_max_presence_bytes;
    int muc_max_invites;
    int muc_max_affiliations;
    /* Group commit (store.c). */
    int store_sync_threads; /* fsyncs issued at once by a turn's group commit */
    /* MUC presence flood limit (muc.c, issue 15 item 2). */
    int muc_presence_burst;
    int muc_presence_rate;
    /* s2s SASL EXTERNAL (s2s.c). */
    struct config_domains s2s_require_cert; /* s2s_require_cert DOMAIN... (repeatable) */
    /* Federation: DNS resolution of remote domains (dns.c). */
    char s2s_resolver[CONFIG_STR_MAX]; /* ADDR[:PORT]; "" = resolv.conf's first nameserver */
    int s2s_dns_timeout;     /* seconds before a query is sent again */
    int s2s_dns_tries;       /* sends of one query before it counts as unanswered */
    int s2s_dns_max_pending; /* domains looked up at once */
    int s2s_dns_cache_size;  /* domains whose answer is kept (0 = no cache) */
    /* MUC over s2s (issue 15 item 8). */
    int muc_max_rooms_per_domain;
    /* HTTP server (issue 14, http.c). */
    int http_port;              /* 0 disables */
    int https_port;             /* 0 disables */
    char http_interface[64];    /* IPv4 or IPv6 literal */
    int http_request_timeout;   /* seconds for one request (408) */
    int http_idle_timeout;      /* seconds an idle keep-alive connection stays */
    int http_max_request_line;  /* 414 */
    int http_max_header_bytes;  /* 431 */
    int http_max_headers;       /* 431 */
    int http_max_body;          /* 413 */
    /* MUC limits that do not reset (muc.c, issue 15). */
    int muc_message_burst;  /* groupchat messages an occupant sends at once */
    int muc_message_rate;   /* ... and a minute after (0 = no limit) */
    int muc_rejoin_buckets; /* accounts per room whose buckets outlive their leaving */
    /* s2s fixes (issue 12 item 2) */
    int s2s_dialback_max_per_addr; /* dialback keys waiting from one address */
    /* WebSocket (issue 14 step 2, ws.c) */
    char http_allowed_origins[CONFIG_STR_MAX]; /* space-separated; "" = the same host */
    struct config_prefixes http_trusted_proxies; /* reverse proxies (X-Forwarded-For) */
    /* XEP-0157 contact addresses (disco.c) */
    char contact_addresses[CONFIG_STR_MAX]; /* "KIND:URI ..." (config_contact_kinds) */
    /* web admin console (issue 14, webadmin.c) */
    int webadmin_max_sessions;    /* logged-in browser sessions at once */
    int webadmin_session_timeout; /* seconds a session may stay idle */
    int webadmin_log_lines;       /* log lines kept in memory for the log page */
    char config_file[CONFIG_STR_MAX]; /* the file read (config_option_text) */
    unsigned char from_file[32];  /* a bit per option: set in config_file */
    /* BOSH (issue 14, bosh.c) */
    int bosh_max_wait;
    int bosh_max_inactivity;
    int bosh_max_hold;
    int bosh_max_requests;
    int bosh_max_sessions;
    int bosh_max_pause;
    /* XEP-0363 HTTP File Upload (issue 14 item 4, upload.c) */
    char upload_domain[CONFIG_STR_MAX]; /* "auto" = upload.DOMAIN; "none" = off */
    char upload_url[CONFIG_STR_MAX];    /* base of slot URLs; "" = from http(s)_port */
    char upload_types[CONFIG_STR_MAX];  /* space-separated content types; "" = any */
    int upload_max_size;    /* bytes per file */
    int upload_quota_bytes; /* per account (0 = no quota) */
    int upload_total_bytes; /* every account's files together (0 = no limit) */
    int upload_slot_timeout;
    int upload_expire_days; /* 0 = never */
    int upload_slot_rate;   /* slot requests per account and minute (0 = no limit) */
    int upload_max_pending; /* slots waiting for their PUT */
    int upload_min_rate;    /* bytes/s of a PUT body */
    int upload_max_pending_per_account; /* ... of them one account's */
};

/* XEP-0157 §4: the KINDs of contact_addresses, sorted (the field of each is
 * "KIND-addresses"); NULL-terminated. */
extern const char *const config_contact_kinds[];

/* Fill every field with its default. */
void config_defaults(struct config *c);
/* Parse path over the defaults. Returns 0, or -1 with "file:line: what is
 * wrong" written into err. Unknown keys and bad values are errors. */
int config_load(const char *path, struct config *c, char *err, size_t errsz);
/* 1 when addr (an IPv4 or IPv6 literal, as inet_ntop writes it) falls in one
 * of the prefixes of l; 0 otherwise, also for an address that does not parse. */
int config_prefixes_match(const struct config_prefixes *l, const char *addr);
/* Names of options whose value differs between a and b but which only take
 * effect after a restart (for the SIGHUP log line), comma separated into out. */
void config_restart_needed(const struct config *a, const struct config *b, char *out,
                           size_t outsz);

/* ---- feature switches (issue 16) ----
 * The optional features this build was made without (the Makefile's WITH_...
 * switches that are off), blank separated, "" when every one is in. */
const char *config_without(void);
/* The feature (Makefile switch name, e.g. "MAM") option name belongs to, or
 * NULL when the option is always there. */
const char *config_option_feature(const char *name);

/* ---- web admin (issue 14) ----
 * The i-th option of the table: its name, its value as text (lists, which
 * may hold secrets, as "(not shown)") into val, and the file that set it or
 * "(default)". -1 past the last option. */
int config_option_text(const struct config *c, size_t i, const char **name, char *val,
                       size_t valsz, const char **file);

#endif
