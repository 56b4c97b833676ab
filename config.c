/* config.c: the configuration file parser and the struct config it fills.
 * Table driven (STYLE §9, after redis static_configs[]): one row per option
 * gives its name, type, bounds, default, field and whether SIGHUP may change it.
 * Every mistake is an error "file:line: what is wrong", never a silent default:
 * a typo must not weaken security. No I/O besides reading the file, no logging. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jid.h"
#include "limits.h"
#include "log.h"

/* In this order: from OPT_RATE on a value is several words (the rest of the
 * line), from OPT_COMPONENT on an option may be given on several lines. */
enum opt_type { OPT_STR, OPT_INT, OPT_BOOL, OPT_LOGLEVEL, OPT_RATE, OPT_PREFIXES, OPT_JIDS,
                OPT_COMPONENT, OPT_S2S_ROUTE, OPT_DOMAINS };

/* The extra check of an OPT_STR value, the last argument of STR() without
 * its CHECK_ (checks[] below: may rewrite the value, as domain is
 * lower-cased; returns NULL or what is wrong). */
enum opt_check { CHECK_ANY, CHECK_DOMAIN, CHECK_NONEMPTY, CHECK_ADDRESS, CHECK_MUC_DOMAIN,
                 CHECK_CONTACTS };

/* 16 bytes and no pointer, so the table of over a hundred rows is read-only
 * data without relocations (the size budget of issue 16): the names and the
 * OPT_STR defaults are string pools in table order (option_names,
 * str_defaults), the seconds of the two OPT_RATE rows a side table. Every
 * option is an int or smaller. */
struct option {
    int32_t max;             /* OPT_INT bounds (inclusive); OPT_RATE: of the COUNT */
    int32_t def;             /* default of OPT_INT, OPT_BOOL, OPT_LOGLEVEL, OPT_RATE */
    int16_t min;
    uint16_t offset;         /* of the field in struct config */
    uint16_t size;           /* of the field (OPT_STR: buffer size, NUL included) */
    uint8_t type;            /* enum opt_type */
    uint8_t reloadable : 1;  /* 1 = SIGHUP applies it; 0 = needs a restart */
    uint8_t check : 7;       /* OPT_STR: enum opt_check */
};
/* offset and size are 16 bits wide. */
_Static_assert(sizeof(struct config) <= 0xFFFF, "struct config outgrew struct option");

/* The kinds of row. OPTIONS below lists the rows; each use of it defines
 * OPT(field, type, min, max, def, reload, check, default string) and
 * SECONDS(field, min, max, def) to take what it needs from them. */
#define STR(f, def, reload, chk) OPT(f, OPT_STR, 0, 0, 0, reload, CHECK_##chk, def "\0")
#define INT(f, lo, hi, def, reload) OPT(f, OPT_INT, lo, hi, def, reload, 0, )
#define BOOL(f, def, reload) OPT(f, OPT_BOOL, 0, 1, def, reload, 0, )
#define LEVEL(f, def, reload) OPT(f, OPT_LOGLEVEL, L_ERROR, L_DEBUG, def, reload, 0, )
/* COUNT SECONDS: two integers on one line, each with its bounds. */
#define RATE(f, lo, hi, def, lo2, hi2, def2, reload)                                         \
    OPT(f, OPT_RATE, lo, hi, def, reload, 0, ) SECONDS(f, lo2, hi2, def2)
/* Address prefixes separated by blanks, or "none"; def is a string in that syntax. */
#define PREFIXES(f, def, reload) OPT(f, OPT_PREFIXES, 0, 0, 0, reload, 0, def "\0")

/* push: "DOMAIN SECRET", one line per component; the only option that may
 * appear on several lines. */
#define COMPONENT(f) OPT(f, OPT_COMPONENT, 0, 0, 0, 0, 0, )
/* XEP-0133: bare JIDs separated by blanks, or "none" (the default: n = 0). */
#define JIDS(f, reload) OPT(f, OPT_JIDS, 0, 0, 0, reload, 0, )

/* Federation: "DOMAIN HOST[:PORT]", one line per remote domain. */
#define S2S_ROUTE(f) OPT(f, OPT_S2S_ROUTE, 0, 0, 0, 0, 0, )
/* s2s SASL EXTERNAL: domains separated by blanks, on as many lines as wanted. */
#define DOMAINS(f, reload) OPT(f, OPT_DOMAINS, 0, 0, 0, reload, 0, )

/* What a restart is needed for: the listeners are bound, privileges dropped
 * and the connection table sized once at start-up; domain and data_dir name
 * everything stored. Everything else applies to connections made after a
 * SIGHUP (TLS files build a new context for new connections, STYLE §5). */
#define OPTIONS                                                                                  \
    STR(domain, "localhost", 0, DOMAIN)                                                          \
    STR(data_dir, "./data", 0, NONEMPTY)                                                         \
    STR(listen_address, "127.0.0.1", 0, ADDRESS)                                                 \
    INT(c2s_port, 0, 65535, 5222, 0)                                                             \
    INT(c2s_tls_port, 0, 65535, 5223, 0)                                                         \
    STR(tls_cert, "", 1, ANY)                                                                    \
    STR(tls_key, "", 1, ANY)                                                                     \
    BOOL(require_tls, 1, 1)                                                                      \
    BOOL(plain_without_tls, 0, 1)                                                                \
    BOOL(legacy_auth, 0, 1)                                                                      \
    STR(user, "", 0, ANY)                                                                        \
    STR(group, "", 0, ANY)                                                                       \
    BOOL(allow_root, 0, 0)                                                                       \
    LEVEL(log_level, L_INFO, 1)                                                                  \
    INT(log_repeat_window, 1, 3600, LIMIT_LOG_REPEAT_WINDOW, 1)                                  \
    BOOL(log_syslog, -1, 0) /* -1 = not set: syslog unless running with -f */                    \
                                                                                                 \
    /* RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.                    \
     * The upper bound keeps one stanza within an offline record (store.h). */                   \
    INT(max_stanza_size, 10000, 1048576, LIMIT_STANZA_SIZE, 1)                                   \
    INT(max_xml_depth, 8, 256, LIMIT_XML_DEPTH, 1)                                               \
    INT(max_xml_attrs, 8, 256, LIMIT_XML_ATTRS, 1)                                               \
    INT(max_xml_name, 64, 4096, LIMIT_XML_NAME, 1)                                               \
    INT(max_connections, 1, 1000000, LIMIT_MAX_CONNECTIONS, 0)                                   \
    INT(max_unauth, 1, 1000000, LIMIT_MAX_UNAUTH, 1)                                             \
    INT(max_unauth_per_ip, 1, 1000000, LIMIT_MAX_UNAUTH_PER_IP, 1)                               \
    INT(outq_soft, 4096, 1073741824, LIMIT_OUTQ_SOFT, 1)                                         \
    INT(outq_hard, 4096, 1073741824, LIMIT_OUTQ_HARD, 1)                                         \
    INT(preauth_timeout, 1, 3600, LIMIT_PREAUTH_TIMEOUT, 1)                                      \
    INT(ping_interval, 10, 86400, LIMIT_PING_INTERVAL, 1)                                        \
    INT(ping_timeout, 1, 3600, LIMIT_PING_TIMEOUT, 1)                                            \
    INT(auth_fail_delay_max, 1, 3600, LIMIT_AUTH_FAIL_DELAY_MAX, 1)                              \
    INT(auth_fail_ban, 1, 1000000, LIMIT_AUTH_FAIL_BAN, 1)                                       \
    INT(auth_ban_seconds, 1, 86400, LIMIT_AUTH_BAN_SECONDS, 1)                                   \
    INT(auth_fail_ban_address, 1, 1000000, LIMIT_AUTH_FAIL_BAN_ADDRESS, 1)                       \
    /* RFC 6120 §6.4.5: at least 2 retries and no more than 5. */                                \
    INT(sasl_max_retries, 2, 5, LIMIT_SASL_MAX_RETRIES, 1)                                       \
    /* RFC 5802 §5.1 / RFC 7677 §4: at least 4096 iterations. */                                 \
    INT(scram_iterations, 4096, 10000000, SCRAM_DEFAULT_ITER, 1)                                 \
                                                                                                 \
    INT(max_roster_items, 0, 100000, LIMIT_ROSTER_SIZE, 1)                                       \
    INT(max_offline_messages, 0, 100000, LIMIT_OFFLINE_MSGS, 1)                                  \
    INT(max_vcard_size, 0, 1048576, LIMIT_VCARD_SIZE, 1)                                         \
    INT(max_private_size, 0, 1048576, LIMIT_PRIVATE_SIZE, 1)                                     \
    INT(max_blocklist_items, 0, 100000, LIMIT_BLOCKLIST, 1)                                      \
    BOOL(allow_registration, 0, 1)                                                               \
    BOOL(allow_password_change, 1, 1)                                                            \
    BOOL(hide_version, 0, 1)                                                                     \
    RATE(registration_throttle, 1, 1000000, LIMIT_REGISTER_PER_ADDR, 1, 604800,                  \
         LIMIT_REGISTER_WINDOW, 1)                                                               \
    RATE(registration_throttle_total, 1, 1000000, LIMIT_REGISTER_TOTAL, 1, 604800,               \
         LIMIT_REGISTER_TOTAL_WINDOW, 1)                                                         \
    /* Loopback by default, as Prosody exempts it: local tools and tests. */                     \
    PREFIXES(registration_exempt, "127.0.0.0/8 ::1", 1)                                          \
    /* PEP (XEP-0163, pep.c) */                                                                  \
    INT(pep_max_item_bytes, 256, 1048576, LIMIT_PEP_ITEM_BYTES, 1)                               \
    INT(pep_max_items, 1, 10000, LIMIT_PEP_MAX_ITEMS, 1)                                         \
    INT(pep_max_nodes, 0, 10000, LIMIT_PEP_NODES, 1)                                             \
    INT(pep_max_account_bytes, 0, 67108864, LIMIT_PEP_ACCOUNT_BYTES, 1)                          \
    INT(pep_caps_cache, 1, 100000, LIMIT_PEP_CAPS_CACHE, 0)                                      \
    /* client state indication (XEP-0352, csi.c) */                                              \
    INT(csi_max_held, 0, 10000, LIMIT_CSI_MAX_HELD, 1)                                           \
                                                                                                 \
    /* push: XEP-0114 components (listener only when a component is                              \
     * configured) and XEP-0357 push notifications. */                                           \
    INT(component_port, 0, 65535, LIMIT_COMPONENT_PORT, 0)                                       \
    STR(component_interface, "127.0.0.1", 0, ADDRESS)                                            \
    COMPONENT(component)                                                                         \
    INT(max_push_registrations, 0, 100, LIMIT_PUSH_REGISTRATIONS, 1)                             \
    INT(push_interval, 1, 86400, LIMIT_PUSH_INTERVAL, 1)                                         \
    INT(push_timeout, 1, 3600, LIMIT_PUSH_TIMEOUT, 1)                                            \
                                                                                                 \
    /* XEP-0198 stream management (sm.c). */                                                     \
    INT(sm_resume_timeout, 0, 86400, LIMIT_SM_RESUME_TIMEOUT, 1)                                 \
    INT(sm_max_unacked, 1, 100000, LIMIT_SM_MAX_UNACKED, 1)                                      \
    INT(sm_max_unacked_bytes, 4096, 1073741824, LIMIT_SM_MAX_UNACKED_BYTES, 1)                   \
    INT(sm_request_ack, 1, 100000, LIMIT_SM_REQUEST_ACK, 1)                                      \
    INT(sm_max_detached, 0, 1000000, LIMIT_SM_MAX_DETACHED, 1)                                   \
    INT(sm_detached_bytes, 0, 1073741824, LIMIT_SM_DETACHED_BYTES, 1)                            \
    INT(sm_max_detached_per_account, 0, 1000, LIMIT_SM_DETACHED_PER_ACCOUNT, 1)                  \
    /* PEP: caps and cache bounds (caps.c, pep.c) */                                             \
    INT(pep_caps_notify_bytes, 256, 65536, LIMIT_PEP_CAPS_NOTIFY_BYTES, 1)                       \
    INT(pep_doc_cache, 0, 1000, LIMIT_PEP_DOC_CACHE, 1)                                          \
    /* Message archive (XEP-0313, mam.c). */                                                     \
    INT(mam_max_page, 1, 10000, LIMIT_MAM_MAX_PAGE, 1)                                           \
    INT(mam_max_bytes, 0, 1073741824, LIMIT_MAM_MAX_BYTES, 1)                                    \
    INT(mam_expire_days, 0, 36500, LIMIT_MAM_EXPIRE_DAYS, 1)                                     \
    /* back-pressure before the XEP-0198 unacknowledged limits (sm.c). */                        \
    INT(sm_unacked_soft_percent, 10, 100, LIMIT_SM_UNACKED_SOFT_PERCENT, 1)                      \
    /* Resources per account (c2s.c bind): bounds carbons/presence fan-out. */                   \
    INT(max_resources_per_account, 1, 1000, LIMIT_MAX_RESOURCES_PER_ACCOUNT, 1)                  \
    /* XEP-0133 administration over XEP-0050 ad-hoc commands (adhoc.c, admin.c). */              \
    JIDS(admins, 1)                                                                              \
    INT(adhoc_max_sessions, 1, 10000, LIMIT_ADHOC_SESSIONS, 1)                                   \
    INT(adhoc_session_timeout, 10, 86400, LIMIT_ADHOC_TIMEOUT, 1)                                \
    INT(announce_max_bytes, 64, 65536, LIMIT_ANNOUNCE_BYTES, 1)                                  \
    /* XEP-0227 import (pie.c) */                                                                \
    INT(import_max_bytes, 1024, 1073741824, LIMIT_IMPORT_MAX_BYTES, 1)                           \
    INT(import_max_scram_iterations, 4096, 10000000, LIMIT_IMPORT_MAX_ITER, 1)                   \
    /* Federation: server-to-server streams (s2s.c). */                                          \
    INT(s2s_port, 0, 65535, LIMIT_S2S_PORT, 0)                                                   \
    S2S_ROUTE(s2s_route)                                                                         \
    BOOL(s2s_secure_auth, 0, 1)                                                                  \
    STR(s2s_ca_file, "/etc/ssl/certs/ca-certificates.crt", 0, NONEMPTY)                          \
    INT(s2s_max_domains, 1, 100000, LIMIT_S2S_MAX_DOMAINS, 0)                                    \
    INT(s2s_max_queued, 1, 100000, LIMIT_S2S_MAX_QUEUED, 1)                                      \
    INT(s2s_max_queued_bytes, 4096, 1073741824, LIMIT_S2S_MAX_QUEUED_BYTES, 1)                   \
    INT(s2s_timeout, 1, 3600, LIMIT_S2S_TIMEOUT, 1)                                              \
    INT(s2s_idle_timeout, 10, 86400, LIMIT_S2S_IDLE_TIMEOUT, 1)                                  \
    INT(s2s_retry_min, 1, 86400, LIMIT_S2S_RETRY_MIN, 1)                                         \
    INT(s2s_retry_max, 1, 86400, LIMIT_S2S_RETRY_MAX, 1)                                         \
    INT(s2s_max_incoming_per_domain, 1, LIMIT_S2S_INCOMING_PER_DOMAIN_MAX,                       \
        LIMIT_S2S_INCOMING_PER_DOMAIN, 1)                                                        \
    /* Multi-user chat (XEP-0045, muc.c). */                                                     \
    STR(muc_domain, "auto", 0, MUC_DOMAIN)                                                       \
    INT(muc_max_rooms, 0, 1000000, LIMIT_MUC_MAX_ROOMS, 1)                                       \
    INT(muc_max_occupants, 1, 100000, LIMIT_MUC_MAX_OCCUPANTS, 1)                                \
    INT(muc_max_rooms_per_account, 0, 100000, LIMIT_MUC_ROOMS_PER_ACCOUNT, 1)                    \
    INT(muc_history_size, 0, LIMIT_MUC_HISTORY_MAX, LIMIT_MUC_HISTORY_SIZE, 1)                   \
    INT(muc_history_bytes, 0, 67108864, LIMIT_MUC_HISTORY_BYTES, 1)                              \
    INT(muc_max_subject_bytes, 0, 65536, LIMIT_MUC_SUBJECT_BYTES, 1)                             \
    INT(muc_max_presence_bytes, 256, 65536, LIMIT_MUC_PRESENCE_BYTES, 1)                         \
    INT(muc_max_invites, 0, 100, LIMIT_MUC_MAX_INVITES, 1)                                       \
    INT(muc_max_affiliations, 1, 1000000, LIMIT_MUC_MAX_AFFILIATIONS, 1)                         \
    /* Group commit (store.c): fsyncs at once. */                                                \
    INT(store_sync_threads, 1, 64, LIMIT_STORE_SYNC_THREADS, 1)                                  \
    /* MUC presence flood limit (muc.c, issue 15 item 2). */                                     \
    INT(muc_presence_burst, 2, 1000, LIMIT_MUC_PRESENCE_BURST, 1)                                \
    INT(muc_presence_rate, 1, 60000, LIMIT_MUC_PRESENCE_RATE, 1)                                 \
    /* s2s SASL EXTERNAL (s2s.c): domains that must present a valid certificate. */              \
    DOMAINS(s2s_require_cert, 1)                                                                 \
    /* Federation: DNS resolution of remote domains (dns.c); checked by dns_init. */             \
    STR(s2s_resolver, "", 0, ANY)                                                                \
    INT(s2s_dns_timeout, 1, 60, LIMIT_S2S_DNS_TIMEOUT, 0)                                        \
    INT(s2s_dns_tries, 1, 10, LIMIT_S2S_DNS_TRIES, 0)                                            \
    INT(s2s_dns_max_pending, 1, 10000, LIMIT_S2S_DNS_MAX_PENDING, 0)                             \
    INT(s2s_dns_cache_size, 0, 100000, LIMIT_S2S_DNS_CACHE_SIZE, 0)                              \
    /* MUC over s2s (issue 15 item 8): rooms of one remote domain's users. */                    \
    INT(muc_max_rooms_per_domain, 0, 1000000, LIMIT_MUC_ROOMS_PER_DOMAIN, 1)                     \
    /* HTTP server (issue 14, http.c). */                                                        \
    INT(http_port, 0, 65535, LIMIT_HTTP_PORT, 0)                                                 \
    INT(https_port, 0, 65535, LIMIT_HTTPS_PORT, 0)                                               \
    STR(http_interface, "127.0.0.1", 0, ADDRESS)                                                 \
    INT(http_request_timeout, 1, 3600, LIMIT_HTTP_REQUEST_TIMEOUT, 1)                            \
    INT(http_idle_timeout, 1, 86400, LIMIT_HTTP_IDLE_TIMEOUT, 1)                                 \
    INT(http_max_request_line, 64, 1048576, LIMIT_HTTP_MAX_REQUEST_LINE, 0)                      \
    INT(http_max_header_bytes, 256, 1048576, LIMIT_HTTP_MAX_HEADER_BYTES, 0)                     \
    INT(http_max_headers, 4, 10000, LIMIT_HTTP_MAX_HEADERS, 0)                                   \
    INT(http_max_body, 0, 1073741824, LIMIT_HTTP_MAX_BODY, 0)                                    \
    /* MUC limits that do not reset (muc.c, issue 15). */                                        \
    INT(muc_message_burst, 1, 1000000, LIMIT_MUC_MESSAGE_BURST, 1)                               \
    INT(muc_message_rate, 0, 10000000, LIMIT_MUC_MESSAGE_RATE, 1)                                \
    INT(muc_rejoin_buckets, 0, 10000, LIMIT_MUC_REJOIN_BUCKETS, 1)                               \
    /* s2s fixes (issue 12 item 2): dialback keys waiting from one address. */                   \
    INT(s2s_dialback_max_per_addr, 1, 1000, LIMIT_S2S_DIALBACK_PER_ADDR, 1)                      \
    /* WebSocket (issue 14 step 2, ws.c): Origins allowed to open one. */                        \
    STR(http_allowed_origins, "", 1, ANY)                                                        \
    /* Reverse proxies whose X-Forwarded-For/-Proto name the client (http.c). */                \
    PREFIXES(http_trusted_proxies, "none", 1)                                                    \
    /* XEP-0157 contact addresses (disco.c); in the caps hash, so not reloaded. */               \
    STR(contact_addresses, "", 0, CONTACTS)                                                      \
    /* web admin console (issue 14, webadmin.c) */                                               \
    INT(webadmin_max_sessions, 1, 1024, LIMIT_WEBADMIN_MAX_SESSIONS, 0)                          \
    INT(webadmin_session_timeout, 1, 86400, LIMIT_WEBADMIN_SESSION_TIMEOUT, 1)                   \
    INT(webadmin_log_lines, 0, 10000, LIMIT_WEBADMIN_LOG_LINES, 0)                               \
    /* BOSH (issue 14, bosh.c). */                                                               \
    INT(bosh_max_wait, 1, LIMIT_HTTP_DEFER_SECONDS - 10, LIMIT_BOSH_MAX_WAIT, 1)                 \
    INT(bosh_max_inactivity, 2, 86400, LIMIT_BOSH_MAX_INACTIVITY, 1)                             \
    INT(bosh_max_hold, 0, LIMIT_BOSH_REQUESTS_MAX - 1, LIMIT_BOSH_MAX_HOLD, 1)                   \
    INT(bosh_max_requests, 1, LIMIT_BOSH_REQUESTS_MAX, LIMIT_BOSH_MAX_REQUESTS, 1)               \
    INT(bosh_max_sessions, 0, 1000000, LIMIT_BOSH_MAX_SESSIONS, 1)                               \
    INT(bosh_max_pause, 0, 86400, LIMIT_BOSH_MAX_PAUSE, 1)                                       \
    /* XEP-0363 HTTP File Upload (issue 14 item 4, upload.c) */                                  \
    STR(upload_domain, "auto", 0, ANY)                                                           \
    STR(upload_url, "", 1, ANY)                                                                  \
    STR(upload_types, "", 1, ANY)                                                                \
    INT(upload_max_size, 1, 2147483647, LIMIT_UPLOAD_MAX_SIZE, 1)                                \
    INT(upload_quota_bytes, 0, 2147483647, LIMIT_UPLOAD_QUOTA_BYTES, 1)                          \
    INT(upload_total_bytes, 0, 2147483647, LIMIT_UPLOAD_TOTAL_BYTES, 1)                          \
    INT(upload_slot_timeout, 10, 86400, LIMIT_UPLOAD_SLOT_TIMEOUT, 1)                            \
    INT(upload_expire_days, 0, 36500, LIMIT_UPLOAD_EXPIRE_DAYS, 1)                               \
    INT(upload_slot_rate, 0, 100000, LIMIT_UPLOAD_SLOT_RATE, 1)                                  \
    INT(upload_max_pending, 1, 100000, LIMIT_UPLOAD_MAX_PENDING, 1)                              \
    INT(upload_min_rate, 1, 1073741824, LIMIT_UPLOAD_MIN_RATE, 1)                                \
    INT(upload_max_pending_per_account, 1, 100000, LIMIT_UPLOAD_MAX_PENDING_PER_ACCOUNT, 1)

/* OPTION_<field>: the row of each option. */
#define OPT(f, ...) OPTION_##f,
#define SECONDS(f, lo, hi, def)
enum { OPTIONS N_OPTIONS };
#undef OPT

#define OPT(f, t, lo, hi, d, reload, chk, dstr)                                              \
    {.max = hi, .def = d, .min = lo, .offset = offsetof(struct config, f),                   \
     .size = sizeof(((struct config *)0)->f), .type = t, .reloadable = reload, .check = chk},
static const struct option options[] = {OPTIONS};
#undef OPT

/* gcc does not warn when a constant does not fit 16 bits. */
#define OPT(f, t, lo, ...) _Static_assert((lo) == (int16_t)(lo), #f ": min outgrew int16_t");
OPTIONS
#undef OPT

/* The names, "domain\0data_dir\0...", and the defaults of the OPT_STR and
 * OPT_PREFIXES rows, in table order. */
#define OPT(f, ...) #f "\0"
static const char option_names[] = OPTIONS;
#undef OPT
#define OPT(f, t, lo, hi, d, reload, chk, dstr) dstr
static const char str_defaults[] = OPTIONS;
#undef OPT
#undef SECONDS

/* The SECONDS of the OPT_RATE rows. */
struct seconds {
    int32_t min, max, def;
    uint8_t row;
};
#define OPT(...)
#define SECONDS(f, lo, hi, d) {lo, hi, d, OPTION_##f},
static const struct seconds rate_seconds[] = {OPTIONS};
#undef OPT
#undef SECONDS

#define LINE_MAX_LEN 1024

static int *int_field(struct config *c, const struct option *o)
{
    return (int *)((char *)c + o->offset);
}

static const int *int_field_c(const struct config *c, const struct option *o)
{
    return (const int *)((const char *)c + o->offset);
}

static char *str_field(struct config *c, const struct option *o)
{
    return (char *)c + o->offset;
}

static const char *str_field_c(const struct config *c, const struct option *o)
{
    return (const char *)c + o->offset;
}

/* The domain is a JID with neither localpart nor resource; jid_parse also
 * lower-cases it and strips a trailing dot, so it compares like a JID domain. */
static const char *check_domain(char *val, size_t size)
{
    char norm[JID_MAX + 1];
    struct jid j;
    if (jid_parse(val, norm, sizeof(norm), &j) < 0 || j.local_len != 0 || j.resource_len != 0 ||
        j.domain_len == 0) {
        return "is not a valid domain name";
    }
    if (strlen(norm) >= size) {
        return "is too long";
    }
    memcpy(val, norm, strlen(norm) + 1);
    return NULL;
}

/* Multi-user chat (XEP-0045): "auto" (conference.DOMAIN), "none" or "" (off),
 * or a domain of its own. */
static const char *check_muc_domain(char *val, size_t size)
{
    if (!*val || strcmp(val, "auto") == 0 || strcmp(val, "none") == 0) {
        return NULL;
    }
    return check_domain(val, size);
}

static const char *check_nonempty(char *val, size_t size)
{
    (void)size;
    return val[0] ? NULL : "must not be empty";
}

const char *const config_contact_kinds[] = {"abuse",    "admin",  "feedback", "sales",
                                            "security", "status", "support",  NULL};

/* contact_addresses: words "KIND:URI", KIND one of config_contact_kinds. */
static const char *check_contacts(char *val, size_t size)
{
    (void)size;
    for (const char *s = val; *s;) {
        size_t n = strcspn(s, " \t");
        const char *colon = memchr(s, ':', n);
        int known = 0;
        for (int i = 0; colon && config_contact_kinds[i]; i++) {
            size_t k = strlen(config_contact_kinds[i]);
            known |= (size_t)(colon - s) == k && strncmp(s, config_contact_kinds[i], k) == 0;
        }
        if (n > 0 && (!known || colon + 1 == s + n)) {
            return "must be words KIND:URI, KIND one of abuse admin feedback sales security "
                   "status support (XEP-0157)";
        }
        /* caps_ver refuses a disco#info with these (XEP-0115 §5.4): the
         * server's own caps hash would be empty */
        if (memchr(s, '<', n) || (n >= 7 && memcmp(s + n - 7, "+notify", 7) == 0)) {
            return "must not hold '<' nor end a URI in +notify (XEP-0115 caps hash)";
        }
        s += n;
        s += strspn(s, " \t");
    }
    return NULL;
}

static const char *check_address(char *val, size_t size)
{
    unsigned char addr[16];
    (void)size;
    if (inet_pton(AF_INET, val, addr) != 1 && inet_pton(AF_INET6, val, addr) != 1) {
        return "must be an IPv4 or IPv6 address";
    }
    return NULL;
}

/* By enum opt_check; CHECK_ANY: none. */
static const char *(*const checks[])(char *val, size_t size) = {
    [CHECK_DOMAIN] = check_domain,         [CHECK_NONEMPTY] = check_nonempty,
    [CHECK_ADDRESS] = check_address,       [CHECK_MUC_DOMAIN] = check_muc_domain,
    [CHECK_CONTACTS] = check_contacts,
};

/* ---- COUNT SECONDS and address prefixes ---- */

static int is_blank(char ch);

static struct config_rate *rate_field(struct config *c, const struct option *o)
{
    return (struct config_rate *)((char *)c + o->offset);
}

static struct config_prefixes *prefixes_field(struct config *c, const struct option *o)
{
    return (struct config_prefixes *)((char *)c + o->offset);
}

/* A plain decimal number (digits only) after optional blanks; moves *s past it. */
static int next_number(const char **s, long *out)
{
    char *end = NULL;
    while (is_blank(**s)) {
        (*s)++;
    }
    if (!(**s >= '0' && **s <= '9')) {
        return -1;
    }
    errno = 0;
    long v = strtol(*s, &end, 10);
    if (errno == ERANGE || (*end != '\0' && !is_blank(*end))) {
        return -1;
    }
    *s = end;
    *out = v;
    return 0;
}

/* The SECONDS of an OPT_RATE row. */
static const struct seconds *seconds_of(const struct option *o)
{
    const struct seconds *r = rate_seconds;
    while (&options[r->row] != o) {
        r++;
    }
    return r;
}

static const char *set_rate(struct config *c, const struct option *o, const char *val, char *msg,
                            size_t msgsz)
{
    const struct seconds *sec = seconds_of(o);
    const char *s = val;
    long count = 0, secs = 0;
    int ok = next_number(&s, &count) == 0 && next_number(&s, &secs) == 0;
    while (is_blank(*s)) {
        s++;
    }
    if (!ok || *s != '\0' || count < o->min || count > o->max || secs < sec->min ||
        secs > sec->max) {
        snprintf(msg, msgsz, "must be COUNT SECONDS (COUNT from %ld to %ld, SECONDS from %ld to %ld)",
                 (long)o->min, (long)o->max, (long)sec->min, (long)sec->max);
        return msg;
    }
    rate_field(c, o)->count = (int)count;
    rate_field(c, o)->seconds = (int)secs;
    return NULL;
}

/* An IPv4 or IPv6 literal into 16 bytes, IPv4 as ::ffff:a.b.c.d. Returns the
 * address's own length in bits (32 or 128), or -1. */
static int parse_addr16(const char *text, unsigned char out[16])
{
    unsigned char v4[4];
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, v4) == 1) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        return 32;
    }
    return inet_pton(AF_INET6, text, out) == 1 ? 128 : -1;
}

static int bit_set(const unsigned char a[16], int i)
{
    return (a[i / 8] >> (7 - i % 8)) & 1;
}

/* "address" or "address/length" into p. Returns NULL or what is wrong. */
static const char *parse_prefix(const char *text, struct config_prefix *p)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof(addr)) {
        return "is not an IPv4 or IPv6 address";
    }
    memcpy(addr, text, len);
    addr[len] = '\0';
    int max = parse_addr16(addr, p->addr);
    if (max < 0) {
        return "is not an IPv4 or IPv6 address";
    }
    long bits = max;
    if (slash) {
        const char *s = slash + 1;
        if (next_number(&s, &bits) < 0 || *s != '\0' || bits > max || s - slash > 4) {
            return max == 32 ? "has a bad length (0 to 32)" : "has a bad length (0 to 128)";
        }
    }
    p->bits = (int)bits + (128 - max);
    /* 10.0.0.1/8 is more likely a typo for /32 than a way to write 10.0.0.0/8;
     * taken as written it would exempt a whole network. */
    for (int i = p->bits; i < 128; i++) {
        if (bit_set(p->addr, i)) {
            return "has address bits set after its length";
        }
    }
    return NULL;
}

static const char *set_prefixes(struct config *c, const struct option *o, char *val, char *msg,
                                size_t msgsz)
{
    struct config_prefixes l;
    char *save = NULL;
    memset(&l, 0, sizeof(l));
    if (strcmp(val, "none") == 0) {
        *prefixes_field(c, o) = l;
        return NULL;
    }
    for (char *tok = strtok_r(val, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (l.n == LIMIT_PREFIX_LIST) {
            snprintf(msg, msgsz, "has more than %d prefixes", LIMIT_PREFIX_LIST);
            return msg;
        }
        const char *why = strcmp(tok, "none") == 0 ? "must stand alone" : parse_prefix(tok, &l.p[l.n]);
        if (why) {
            snprintf(msg, msgsz, "prefix '%.64s' %s", tok, why);
            return msg;
        }
        l.n++;
    }
    if (l.n == 0) {
        return "needs a prefix, or none";
    }
    *prefixes_field(c, o) = l;
    return NULL;
}

/* push: "DOMAIN SECRET". No message repeats the secret: config errors go to
 * stderr and logs. */
static const char *set_component(struct config *c, const struct option *o, char *val, char *msg,
                                 size_t msgsz)
{
    struct config_components *l = (struct config_components *)((char *)c + o->offset);
    char *save = NULL;
    char *domain = strtok_r(val, " \t", &save);
    char *secret = domain ? strtok_r(NULL, " \t", &save) : NULL;
    if (!domain || !secret || strtok_r(NULL, " \t", &save)) {
        return "must be DOMAIN SECRET";
    }
    if (l->n == LIMIT_COMPONENTS) {
        snprintf(msg, msgsz, "is given more than %d times", LIMIT_COMPONENTS);
        return msg;
    }
    struct config_component *e = &l->c[l->n];
    if (strlen(domain) >= sizeof(e->domain) || check_domain(domain, sizeof(e->domain))) {
        return "has a DOMAIN that is not a valid domain name";
    }
    for (const char *p = secret; *p; p++) {
        if ((unsigned char)*p < 0x21 || *p == 0x7f) {
            return "has a SECRET with a control character";
        }
    }
    if (strlen(secret) >= sizeof(e->secret)) {
        snprintf(msg, msgsz, "has a SECRET longer than %d bytes", LIMIT_COMPONENT_SECRET);
        return msg;
    }
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->c[i].domain, domain) == 0) {
            return "names a DOMAIN that is already a component";
        }
    }
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    snprintf(e->secret, sizeof(e->secret), "%s", secret);
    l->n++;
    return NULL;
}

/* XEP-0133: "admins JID...": bare JIDs of accounts (normalised here; that
 * they are the server's own domain is checked with the whole file). */
static const char *set_jids(struct config *c, const struct option *o, char *val, char *msg,
                            size_t msgsz)
{
    struct config_jids *l = (struct config_jids *)((char *)c + o->offset);
    char *save = NULL;
    memset(l, 0, sizeof(*l));
    if (strcmp(val, "none") == 0) {
        return NULL;
    }
    for (char *tok = strtok_r(val, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char norm[JID_MAX + 1];
        struct jid j;
        if (l->n == LIMIT_ADMINS) {
            snprintf(msg, msgsz, "has more than %d JIDs", LIMIT_ADMINS);
            return msg;
        }
        if (jid_parse(tok, norm, sizeof(norm), &j) < 0 || j.local_len == 0 ||
            j.resource_len != 0 || strlen(norm) >= sizeof(l->jid[0])) {
            snprintf(msg, msgsz, "'%.64s' is not a bare JID user@domain", tok);
            return msg;
        }
        memcpy(l->jid[l->n++], norm, strlen(norm) + 1);
    }
    return l->n ? NULL : "needs a JID, or none";
}

/* Federation: "DOMAIN HOST[:PORT]"; HOST is an address literal ("[v6]:PORT"
 * with a port) so that nothing resolves names in the event loop. */
static const char *set_s2s_route(struct config *c, const struct option *o, char *val, char *msg,
                                 size_t msgsz)
{
    struct config_s2s_routes *l = (struct config_s2s_routes *)((char *)c + o->offset);
    char *save = NULL;
    char *domain = strtok_r(val, " \t", &save);
    char *host = domain ? strtok_r(NULL, " \t", &save) : NULL;
    unsigned char a[16];
    if (!domain || !host || strtok_r(NULL, " \t", &save)) {
        return "must be DOMAIN HOST[:PORT]";
    }
    if (l->n == LIMIT_S2S_ROUTES) {
        snprintf(msg, msgsz, "is given more than %d times", LIMIT_S2S_ROUTES);
        return msg;
    }
    struct config_s2s_route *e = &l->r[l->n];
    if (strlen(domain) >= sizeof(e->domain) || check_domain(domain, sizeof(e->domain))) {
        return "has a DOMAIN that is not a valid domain name";
    }
    long port = 5269;
    char *colon = host[0] == '[' ? strstr(host, "]:") : strchr(host, ':');
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (!end || (end[1] && !colon)) {
            return "has a HOST that is not an address ([IPv6]:PORT)";
        }
        *end = '\0';
        host++;
        colon = end[1] ? end + 1 : NULL;
    } else if (colon && strchr(colon + 1, ':')) {
        colon = NULL; /* a bare IPv6 address without a port */
    }
    if (colon) {
        char *end = NULL;
        *colon = '\0';
        port = strtol(colon + 1, &end, 10);
        if (!(colon[1] >= '0' && colon[1] <= '9') || *end || port < 1 || port > 65535) {
            return "has a PORT that is not a number from 1 to 65535";
        }
    }
    if (strlen(host) >= sizeof(e->host) ||
        (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1)) {
        return "has a HOST that is not an IPv4 or IPv6 address (no DNS names yet)";
    }
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->r[i].domain, domain) == 0) {
            return "names a DOMAIN that has a route already";
        }
    }
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    snprintf(e->host, sizeof(e->host), "%s", host);
    e->port = (int)port;
    l->n++;
    return NULL;
}

/* s2s_require_cert: "DOMAIN..." appended line after line (normalised as the
 * domain option is), so that each line can name one peer. */
static const char *set_domains(struct config *c, const struct option *o, char *val, char *msg,
                               size_t msgsz)
{
    struct config_domains *l = (struct config_domains *)((char *)c + o->offset);
    char *save = NULL;
    for (char *tok = strtok_r(val, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (l->n == LIMIT_S2S_REQUIRE_CERT) {
            snprintf(msg, msgsz, "names more than %d domains", LIMIT_S2S_REQUIRE_CERT);
            return msg;
        }
        if (strlen(tok) >= sizeof(l->d[0]) || check_domain(tok, sizeof(l->d[0]))) {
            snprintf(msg, msgsz, "'%.64s' is not a valid domain name", tok);
            return msg;
        }
        memcpy(l->d[l->n++], tok, strlen(tok) + 1);
    }
    return NULL;
}

int config_prefixes_match(const struct config_prefixes *l, const char *addr)
{
    unsigned char a[16];
    if (parse_addr16(addr, a) < 0) {
        return 0;
    }
    for (int k = 0; k < l->n; k++) {
        const struct config_prefix *p = &l->p[k];
        int i = 0;
        while (i < p->bits && bit_set(a, i) == bit_set(p->addr, i)) {
            i++;
        }
        if (i == p->bits) {
            return 1;
        }
    }
    return 0;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    const char *d = str_defaults;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        if (o->type == OPT_STR) {
            /* Defaults are short literals; snprintf keeps the NUL regardless. */
            snprintf(str_field(c, o), o->size, "%s", d);
        } else if (o->type == OPT_RATE) {
            rate_field(c, o)->count = (int)o->def;
            rate_field(c, o)->seconds = (int)seconds_of(o)->def;
        } else if (o->type == OPT_PREFIXES) {
            char def[LINE_MAX_LEN], msg[128];
            snprintf(def, sizeof(def), "%s", d);
            set_prefixes(c, o, def, msg, sizeof(msg)); /* the table's defaults parse */
        } else {
            *int_field(c, o) = (int)o->def;
        }
        if (o->type == OPT_STR || o->type == OPT_PREFIXES) {
            d += strlen(d) + 1;
        }
    }
}

/* ---- feature switches (issue 16) ----
 * The options of each optional feature, by the name of its Makefile switch
 * (WITH_<FEATURE>): a word ending in '_' is a prefix, any other a whole
 * name. The Makefile passes the switches that are off as XMPPD_WITHOUT
 * ("MAM PEP"); an option of one of them is refused at start-up, not ignored,
 * so that a configuration written for a full build never silently loses a
 * setting. A new feature adds its line here (its option rows stay in
 * options[]: struct config keeps every field in every build). */
#ifndef XMPPD_WITHOUT
#define XMPPD_WITHOUT "" /* compiled outside the Makefile: every feature in */
#endif

/* FEATURE(switch, options): a string pool (no pointers to relocate) of
 * switch name and blank-separated options, each NUL-terminated; the empty
 * name after the last ends it. */
#define FEATURE(name, opts) name "\0" opts "\0"
static const char feature_options[] =
    FEATURE("PEP", "pep_")
    FEATURE("CSI", "csi_")
    FEATURE("SM", "sm_")
    FEATURE("MAM", "mam_")
    FEATURE("COMPONENTS", "component component_")
    FEATURE("PUSH", "push_ max_push_registrations")
    FEATURE("VCARD", "max_vcard_size")
    FEATURE("PRIVATE", "max_private_size")
    FEATURE("BLOCKING", "max_blocklist_items")
    FEATURE("REGISTRATION", "allow_registration allow_password_change registration_")
    FEATURE("ADHOC", "adhoc_ announce_max_bytes")
    FEATURE("IMPORT", "import_")
    FEATURE("S2S", "s2s_")
    FEATURE("MUC", "muc_")
    /* XEP-0078 (legacy.c) */
    FEATURE("LEGACY_AUTH", "legacy_auth")
    /* HTTP server (issue 14, http.c) */
    FEATURE("HTTP", "http_ https_port")
    /* web admin console (issue 14, webadmin.c) */
    FEATURE("WEBADMIN", "webadmin_")
    /* BOSH (issue 14, bosh.c) */
    FEATURE("BOSH", "bosh_")
    /* XEP-0363 HTTP File Upload (issue 14 item 4) */
    FEATURE("UPLOAD", "upload_");
#undef FEATURE

static const char without[] = XMPPD_WITHOUT;

const char *config_without(void)
{
    return without;
}

const char *config_option_feature(const char *name)
{
    for (const char *f = feature_options; *f;) {
        const char *opt = f + strlen(f) + 1;
        while (*opt) {
            size_t n = strcspn(opt, " ");
            /* a prefix ends in '_', any other word is a whole name */
            if (strncmp(name, opt, n) == 0 && (opt[n - 1] == '_' || name[n] == '\0')) {
                return f;
            }
            opt += n + (opt[n] == ' ');
        }
        f = opt + 1;
    }
    return NULL;
}

/* 1 when feature is a whole word of XMPPD_WITHOUT. */
static int compiled_without(const char *feature)
{
    size_t n = strlen(feature);
    for (const char *p = without; (p = strstr(p, feature)) != NULL; p += n) {
        if ((p == without || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) {
            return 1;
        }
    }
    return 0;
}

__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errsz, const char *path,
                                                      int line, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (err && errsz) {
        snprintf(err, errsz, "%s:%d: %s", path, line, what);
    }
    return -1;
}

static const struct option *find_option(const char *name)
{
    const char *n = option_names;
    for (size_t i = 0; i < N_OPTIONS; i++, n += strlen(n) + 1) {
        if (strcmp(n, name) == 0) {
            return &options[i];
        }
    }
    return NULL;
}

static const char *option_name(const struct option *o)
{
    const char *n = option_names;
    for (const struct option *p = options; p < o; p++) {
        n += strlen(n) + 1;
    }
    return n;
}

static int parse_bool(const char *v, int *out)
{
    /* no, yes, false, true, ...: the index's low bit is the value */
    static const char words[][6] = {"no", "yes", "false", "true", "off", "on", "0", "1"};
    for (int i = 0; i < 8; i++) {
        if (strcasecmp(v, words[i]) == 0) {
            *out = i & 1;
            return 0;
        }
    }
    return -1;
}

/* Store val into the option's field; returns NULL or what is wrong (static or
 * in msg). */
static const char *set_value(struct config *c, const struct option *o, char *val, char *msg,
                             size_t msgsz)
{
    switch (o->type) {
    case OPT_STR: {
        size_t n = strlen(val);
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f) {
                return "contains a control character";
            }
        }
        if (n >= o->size) {
            snprintf(msg, msgsz, "is too long (at most %zu bytes)", (size_t)o->size - 1);
            return msg;
        }
        if (o->check) {
            const char *why = checks[o->check](val, o->size);
            if (why) {
                return why;
            }
        }
        memcpy(str_field(c, o), val, strlen(val) + 1);
        return NULL;
    }
    case OPT_INT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(val, &end, 10);
        /* strtol skips leading blanks and takes '+': insist on plain digits. */
        if (!(val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) || *end != '\0' ||
            errno == ERANGE || v < o->min || v > o->max) {
            snprintf(msg, msgsz, "must be an integer from %ld to %ld", (long)o->min, (long)o->max);
            return msg;
        }
        *int_field(c, o) = (int)v;
        return NULL;
    }
    case OPT_BOOL: {
        int b;
        if (parse_bool(val, &b) < 0) {
            return "must be yes or no (also true/false, on/off, 1/0)";
        }
        *int_field(c, o) = b;
        return NULL;
    }
    case OPT_LOGLEVEL:
        for (int i = L_ERROR; i <= L_DEBUG; i++) {
            if (strcasecmp(val, log_level_name(i)) == 0) {
                *int_field(c, o) = i;
                return NULL;
            }
        }
        return "must be error, warning, notice, info or debug";
    case OPT_RATE:
        return set_rate(c, o, val, msg, msgsz);
    case OPT_PREFIXES:
        return set_prefixes(c, o, val, msg, msgsz);
    case OPT_COMPONENT:
        return set_component(c, o, val, msg, msgsz);
    case OPT_JIDS:
        return set_jids(c, o, val, msg, msgsz);
    case OPT_S2S_ROUTE:
        return set_s2s_route(c, o, val, msg, msgsz);
    case OPT_DOMAINS:
        return set_domains(c, o, val, msg, msgsz);
    }
    return "has an unknown type";
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Split one line into key and value in place. Returns 0 (blank or comment:
 * *key = NULL), 1 (key and value), or -1 with what is wrong in msg. */
static int split_line(char *s, char **key, char **val, char *msg, size_t msgsz)
{
    *key = *val = NULL;
    while (is_blank(*s)) {
        s++;
    }
    if (*s == '\0' || *s == '#') {
        return 0;
    }
    *key = s;
    while (*s && !is_blank(*s)) {
        s++;
    }
    if (*s == '\0') {
        snprintf(msg, msgsz, "missing value for '%.64s'", *key);
        return -1;
    }
    *s++ = '\0';
    while (is_blank(*s)) {
        s++;
    }
    if (*s == '\0') {
        snprintf(msg, msgsz, "missing value for '%.64s'", *key);
        return -1;
    }
    const struct option *o = find_option(*key);
    if (*s != '"' && o && o->type >= OPT_RATE) {
        /* These values are several words: the rest of the line, which the
         * option's own parser checks word by word. */
        *val = s;
        return 1;
    }
    if (*s == '"') {
        /* Quoted: \" and \\ stand for " and \; every other byte is literal. */
        char *out = ++s;
        *val = out;
        for (;;) {
            if (*s == '\0') {
                snprintf(msg, msgsz, "unterminated quoted value for '%.64s'", *key);
                return -1;
            }
            if (*s == '"') {
                s++;
                break;
            }
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\')) {
                s++;
            }
            *out++ = *s++;
        }
        *out = '\0';
    } else {
        *val = s;
        while (*s && !is_blank(*s)) {
            s++;
        }
        if (*s) {
            *s++ = '\0';
        }
    }
    while (is_blank(*s)) {
        s++;
    }
    if (*s) {
        /* Not even a '#' comment: mosquitto users lose settings to inline
         * comments silently; here it is an error (STYLE §9). */
        snprintf(msg, msgsz, "unexpected text after the value of '%.64s': \"%.40s\"", *key, s);
        return -1;
    }
    return 1;
}

/* Checks across options. Returns NULL, or what is wrong (static or in msg)
 * with the two options it is about in *a and *b. */
static const char *mistake(const struct config *c, int *a, int *b, char *msg, size_t msgsz)
{
#define ABOUT(x, y) (*a = OPTION_##x, *b = OPTION_##y)
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
        ABOUT(tls_cert, tls_key);
        return "tls_cert and tls_key must be set together";
    }
    if (c->outq_soft > c->outq_hard) {
        ABOUT(outq_soft, outq_hard);
        snprintf(msg, msgsz, "outq_soft (%d) must not be greater than outq_hard (%d)",
                 c->outq_soft, c->outq_hard);
        return msg;
    }
    ABOUT(c2s_port, c2s_tls_port);
    if (c->c2s_port == 0 && c->c2s_tls_port == 0) {
        return "c2s_port and c2s_tls_port are both 0: nothing to listen on";
    }
    if (c->c2s_port == c->c2s_tls_port) {
        return "c2s_port and c2s_tls_port must differ";
    }
    /* push: a component serves a domain of its own (XEP-0114). */
    ABOUT(component, domain);
    for (int i = 0; i < c->component.n; i++) {
        if (strcmp(c->component.c[i].domain, c->domain) == 0) {
            snprintf(msg, msgsz, "component %s is the server's own domain", c->domain);
            return msg;
        }
    }
    if (c->component.n && (c->component_port == c->c2s_port || c->component_port == c->c2s_tls_port)) {
        ABOUT(component, component_port);
        return "component_port must differ from c2s_port and c2s_tls_port";
    }
    /* XEP-0133: an admin is an account of this server; another domain's JID
     * could never log in here, so it is a mistake worth stopping for. */
    ABOUT(admins, domain);
    for (int i = 0; i < c->admins.n; i++) {
        const char *at = strchr(c->admins.jid[i], '@');
        if (!at || strcmp(at + 1, c->domain) != 0) {
            snprintf(msg, msgsz, "admins: %s is not an account of domain %s", c->admins.jid[i],
                     c->domain);
            return msg;
        }
    }
    /* Federation: the s2s listener shares listen_address with c2s. */
    if (c->s2s_port && (c->s2s_port == c->c2s_port || c->s2s_port == c->c2s_tls_port ||
                        (c->component.n && c->s2s_port == c->component_port))) {
        ABOUT(s2s_port, c2s_port);
        return "s2s_port must differ from c2s_port, c2s_tls_port and component_port";
    }
    if (c->s2s_retry_min > c->s2s_retry_max) {
        ABOUT(s2s_retry_min, s2s_retry_max);
        return "s2s_retry_min must not be greater than s2s_retry_max";
    }
    /* Multi-user chat (XEP-0045): the service's domain is not the server's. */
    if (strcmp(c->muc_domain, c->domain) == 0) {
        ABOUT(muc_domain, domain);
        return "muc_domain must differ from domain";
    }
    /* HTTP (issue 14): its two listeners must not take a port another
     * listener binds (the second bind would stop the start-up). */
    if (!compiled_without("HTTP")) {
        const int taken[] = {c->c2s_port, c->c2s_tls_port, c->s2s_port,
                             c->component.n ? c->component_port : 0};
        const int web[2] = {c->http_port, c->https_port};
        int clash = web[0] && web[0] == web[1];
        for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
            clash |= taken[i] && (taken[i] == web[0] || taken[i] == web[1]);
        }
        if (clash) {
            ABOUT(http_port, https_port);
            return "http_port and https_port must differ from each other and from c2s_port, "
                   "c2s_tls_port, s2s_port and component_port";
        }
    }
#undef ABOUT
    return NULL;
}

int config_load(const char *path, struct config *c, char *err, size_t errsz)
{
    /* Parse into a copy so a failed load (SIGHUP) leaves *c as it was. */
    struct config tmp;
    int lines[N_OPTIONS] = {0}; /* where each option was set, 0 = not set */
    char line[LINE_MAX_LEN + 2];
    char msg[512];
    int lineno = 0, rc = 0;

    if (err && errsz) {
        err[0] = '\0';
    }
    config_defaults(&tmp);
    FILE *f = fopen(path, "re"); /* "e": O_CLOEXEC (glibc, musl) */
    if (!f) {
        return fail(err, errsz, path, 0, "cannot open: %s", strerror(errno));
    }
    while (fgets(line, sizeof(line), f)) {
        char *key, *val;
        size_t n = strlen(line);
        lineno++;
        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        } else if (!feof(f)) {
            rc = fail(err, errsz, path, lineno, "line too long (at most %d bytes)", LINE_MAX_LEN);
            break;
        }
        if (n > 0 && line[n - 1] == '\r') {
            line[--n] = '\0'; /* tolerate a file edited on Windows */
        }
        if (strlen(line) != n) {
            rc = fail(err, errsz, path, lineno, "NUL byte in line");
            break;
        }
        int r = split_line(line, &key, &val, msg, sizeof(msg));
        if (r < 0) {
            rc = fail(err, errsz, path, lineno, "%s", msg);
            break;
        }
        if (r == 0) {
            continue;
        }
        const struct option *o = find_option(key);
        if (!o) {
            rc = fail(err, errsz, path, lineno, "unknown option '%.64s'", key);
            break;
        }
        const char *name = option_name(o), *feature = config_option_feature(name);
        /* A second line for the same key is most likely an edit gone wrong;
         * letting the later one win silently could weaken a setting. */
        if (lines[o - options] && o->type < OPT_COMPONENT) {
            rc = fail(err, errsz, path, lineno, "'%s' is already set on line %d", name,
                      lines[o - options]);
            break;
        }
        if (feature && compiled_without(feature)) {
            rc = fail(err, errsz, path, lineno,
                      "option '%s': compiled without %s (make WITH_%s=yes)", name, feature,
                      feature);
            break;
        }
        const char *why = set_value(&tmp, o, val, msg, sizeof(msg));
        if (why) {
            rc = fail(err, errsz, path, lineno, "'%s' %s", name, why);
            break;
        }
        lines[o - options] = lineno;
    }
    if (rc == 0 && ferror(f)) {
        rc = fail(err, errsz, path, lineno, "read error: %s", strerror(errno));
    }
    fclose(f);
    int a, b;
    const char *why = rc == 0 ? mistake(&tmp, &a, &b, msg, sizeof(msg)) : NULL;
    if (why) {
        /* reported at the line that set the later of the two */
        rc = fail(err, errsz, path, lines[a] > lines[b] ? lines[a] : lines[b], "%s", why);
    }
    if (rc == 0) {
        /* web admin (issue 14): which options the file set */
        _Static_assert(N_OPTIONS <= sizeof(tmp.from_file) * 8, "from_file too small");
        for (size_t i = 0; i < N_OPTIONS; i++) {
            if (lines[i]) {
                tmp.from_file[i / 8] |= (unsigned char)(1u << (i % 8));
                /* only then: a file that sets nothing gives the defaults */
                snprintf(tmp.config_file, sizeof(tmp.config_file), "%s", path);
            }
        }
        *c = tmp;
    }
    return rc;
}

void config_restart_needed(const struct config *a, const struct config *b, char *out,
                           size_t outsz)
{
    size_t used = 0;
    if (!out || outsz == 0) {
        return;
    }
    out[0] = '\0';
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        int differs;
        if (o->reloadable) {
            continue;
        }
        if (o->type == OPT_STR) {
            differs = strcmp(str_field_c(a, o), str_field_c(b, o)) != 0;
        } else {
            differs = memcmp(int_field_c(a, o), int_field_c(b, o), o->size) != 0;
        }
        if (!differs) {
            continue;
        }
        int n = snprintf(out + used, outsz - used, "%s%s", used ? ", " : "", option_name(o));
        if (n < 0 || (size_t)n >= outsz - used) {
            out[used] = '\0'; /* drop a name that does not fit rather than cut it */
            return;
        }
        used += (size_t)n;
    }
}

/* ---- web admin (issue 14): the running options, read-only ---- */

int config_option_text(const struct config *c, size_t i, const char **name, char *val,
                       size_t valsz, const char **file)
{
    if (i >= N_OPTIONS) {
        return -1;
    }
    const struct option *o = &options[i];
    *name = option_name(o);
    *file = c->from_file[i / 8] & (1u << (i % 8)) ? c->config_file : "(default)";
    const int *n = int_field_c(c, o);
    const char *text = "(not shown)"; /* lists; component lines carry secrets */
    if (o->type == OPT_STR) {
        text = str_field_c(c, o);
    } else if (o->type == OPT_BOOL) {
        text = *n ? "yes" : "no";
    } else if (o->type == OPT_LOGLEVEL) {
        text = log_level_name(*n);
    } else if (o->type <= OPT_RATE) { /* OPT_INT, or OPT_RATE: COUNT SECONDS */
        int rate = o->type == OPT_RATE;
        snprintf(val, valsz, rate ? "%d %d" : "%d", n[0], rate ? n[1] : 0);
        return 0;
    }
    snprintf(val, valsz, "%s", text);
    return 0;
}
