/* store.h: every byte that touches the data directory.
 * Layout: DATADIR/accounts/<escaped bare JID>/ holds one account's files.
 * Owns: file formats (see STORAGE.md), crash safety (temp + fsync + rename +
 * directory fsync; checksummed append log for offline messages), on-disk quotas.
 * Must not: know about connections or parse XML. Payloads are opaque bytes.
 * All functions return 0 on success and a negative STORE_E* code on failure. */
#ifndef XMPPD_STORE_H
#define XMPPD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sasl.h"

enum {
    STORE_OK = 0,
    STORE_ENOENT = -1,   /* no such account / file */
    STORE_EIO = -2,      /* I/O error (disk full, permissions): logged by store.c */
    STORE_ECORRUPT = -3, /* file failed to parse; it was renamed aside to *.bad */
    STORE_EQUOTA = -4,   /* a quota would be passed */
    STORE_EEXIST = -5,   /* account already exists */
    STORE_EINVAL = -6,
};

/* Create DATADIR (and DATADIR/accounts) if missing. Returns 0 or STORE_EIO. */
int store_init(const char *datadir);
const char *store_dir(void);

/* Write a whole file crash-safely: path.tmp, fsync, rename, fsync dir.
 * mode is the permission of the new file (0600 for secrets). */
int store_write_atomic(const char *path, const void *data, size_t len, int mode);
/* Read a whole file (at most maxlen bytes, else STORE_EINVAL). *data is malloc'd
 * and NUL-terminated; the caller frees it. */
int store_read_file(const char *path, char **data, size_t *len, size_t maxlen);

/* The server's own secret (at most STORE_SECRET_MAX bytes), kept in
 * DATADIR/secret, 0600: read into out, or, on first start (or when the file
 * is damaged, which is set aside as .bad), made from fresh (len random bytes
 * from the caller) and written. Returns 0 or STORE_EIO / STORE_EINVAL, or
 * STORE_ECORRUPT for a file of a newer format (left alone). */
#define STORE_SECRET_MAX 64
int store_secret(unsigned char *out, size_t len, const unsigned char *fresh);

/* ---- accounts (bare JID, normalised by the caller) ---- */
struct store_account {
    struct scram_creds sha1;
    struct scram_creds sha256;
};
/* create: STORE_EEXIST if present. put: replace; STORE_ENOENT if absent (it
 * never creates: a password change racing a deletion must not revive it). */
int store_account_create(const char *bare, const struct store_account *a);
int store_account_put(const char *bare, const struct store_account *a);
int store_account_get(const char *bare, struct store_account *a);
int store_account_exists(const char *bare); /* 1 or 0 */
/* 1 when an account was made or removed (by anyone: the directory of accounts
 * changed) since the last call; the first call only takes note. */
int store_accounts_changed(void);
/* Account removals as they happen, whoever removes them (Linux inotify on the
 * accounts directory): a descriptor for the event loop, or -1 where there is
 * none (then use store_accounts_changed). store_removals_read calls fn for
 * each account removed since; it returns 1 when events were lost (the kernel's
 * queue overflowed: check every account) and 0 otherwise. */
int store_watch_removals(void);
int store_removals_read(int fd, void (*fn)(const char *bare, void *ud), void *ud);
/* Remove the account and everything stored for it, but its roster: that is
 * kept in the tombstone for store_removed_each (contacts to tell). */
int store_account_delete(const char *bare);
/* For each deleted account whose roster is still kept (deleted in this
 * process or another, now or before this start): fn(bare, roster payload as
 * store_doc_get returns it, len, ud); then the tombstone goes. fn may change
 * roster. An unreadable roster is logged and dropped. */
int store_removed_each(void (*fn)(const char *bare, char *roster, size_t len, void *ud),
                       void *ud);
/* Calls fn for each account's bare JID (sorted). Stops early if fn returns non-zero. */
int store_account_list(int (*fn)(const char *bare, void *ud), void *ud);

/* ---- per-account documents (roster, vcard, private, blocklist, ...) ----
 * name is a short [a-z0-9_-] identifier chosen by the caller. The account
 * must exist (STORE_ENOENT otherwise): no file is ever created for a
 * non-existent account. get returns STORE_ENOENT when the document is absent. */
int store_doc_get(const char *bare, const char *name, char **data, size_t *len, size_t maxlen);
int store_doc_put(const char *bare, const char *name, const void *data, size_t len);
/* Like put, but rewritten in place without fsync: for documents whose loss in
 * a crash is harmless (last activity). After a crash the file holds the new
 * document, or is empty or torn; then the checksum fails and the reader gets
 * STORE_ECORRUPT once (the file is set aside as *.bad and logged). */
int store_doc_put_lazy(const char *bare, const char *name, const void *data, size_t len);
int store_doc_delete(const char *bare, const char *name);
/* The doc name of PEP node name: "pep-" and 32 hex digits of its SHA-256 (doc
 * names are short [a-z0-9-]; a node name is anything up to its limit; the
 * node doc repeats the name). Here, not in pep.c, because xmppd export and
 * import carry PEP nodes in a build without WITH_PEP. 0, or -1. */
int store_pep_doc_name(const char *name, char *out, size_t outsz);

/* ---- offline messages: append-only log with a checksum per record ----
 * append is durable (fsync) before it returns 0; STORE_EQUOTA when the account
 * already holds max_msgs records. */
int store_offline_append(const char *bare, const void *rec, size_t len, int max_msgs);
/* The same without the fsync, left to store_offline_sync, which makes every
 * log appended to since durable with one fsync each (a group commit). Until
 * then the record is in the file but would not survive a power cut. Reads,
 * head drops, clears and account removal sync first, and so does a deferred
 * append when 64 logs wait. */
int store_offline_append_deferred(const char *bare, const void *rec, size_t len, int max_msgs);
/* Hears of every log store_offline_sync synced: ok, or not, when the records
 * deferred since its last sync were taken back (the caller tells their senders). */
typedef void (*store_synced_fn)(const char *bare, int ok, void *ud);
void store_offline_on_sync(store_synced_fn fn, void *ud);
/* Returns the number of logs whose sync failed. */
int store_offline_sync(void);
int store_offline_unsynced(void); /* logs waiting for store_offline_sync */
int store_offline_count(const char *bare);
/* Calls fn for every intact record in order. A torn or corrupt tail is
 * ignored (and truncated away on the next append). */
int store_offline_read(const char *bare, int (*fn)(const void *rec, size_t len, void *ud),
                       void *ud);
/* Remove the first n records, provided their payloads' store_crc32 is crc
 * (the batch that was delivered); anything appended since stays. Atomic.
 * STORE_EINVAL when the head is not that batch (then nothing is removed). */
int store_offline_drop_head(const char *bare, int n, uint32_t crc);
/* Remove all records (atomically: after a crash, either all or none remain). */
int store_offline_clear(const char *bare);

/* Largest offline record append accepts (STORE_EINVAL above); a scan treats a
 * larger length field as damage. Well above any sane max_stanza_size. */
#define STORE_RECORD_MAX (1024 * 1024)

/* CRC-32 (IEEE, as zlib's crc32): start with crc = 0, chain calls over pieces.
 * Exported for the unit test and any other checksummed format. */
uint32_t store_crc32(uint32_t crc, const void *data, size_t len);

/* ---- has a document changed? (PEP caches offline accounts' docs) ---- */
/* What identifies one version of a document file: every put renames a new
 * file over it (a new inode), so equal stamps mean the same bytes. Lets a
 * caller keep a parsed document across turns without reading it again. */
struct store_stamp {
    unsigned long long dev, ino, size;
    long long mtime_sec, mtime_nsec;
};
/* 0 with *out filled; STORE_ENOENT (account or document absent, *out zeroed)
 * or STORE_EIO / STORE_EINVAL. One stat, no read. */
int store_doc_stamp(const char *bare, const char *name, struct store_stamp *out);

/* ---- message archive (XEP-0313; STORAGE.md "Message archive") ----
 * Per account: an append-only log of checksummed records and an index of
 * fixed-size entries in id order. A record is opaque but for its key (what
 * queries filter by: for one-to-one messages the peer's bare JID) and 8 bits
 * of flags. Ids are the archive's time in microseconds since the epoch,
 * strictly increasing per archive: unique, stable, ordered, and telling
 * nothing about other archives. Appends are written at once and fsynced by
 * store_arc_sync (a group commit, once per loop turn); a kill -9 loses none. */
#define STORE_ARC_KEY_MAX 3072
struct store_arc_rec {
    uint64_t id;
    unsigned flags;
    const char *key;
    size_t key_len;
    const void *data;
    size_t len;
};
struct store_arc_limits {
    uint64_t max_bytes;  /* log size cap (0 = none): oldest records go first */
    uint64_t keep_after; /* records with an older id expire (0 = keep) */
};
/* Append r (r->id is ignored); *id gets the new record's id. Past a limit,
 * the archive is rewritten (atomically) without the records it drops, not at
 * every append: expired records wait for up to a day, a full log is cut to
 * three quarters of max_bytes. STORE_ENOENT: no such account. */
int store_arc_append(const char *bare, const struct store_arc_rec *r,
                     const struct store_arc_limits *lim, uint64_t *id);
/* Apply the limits without appending (an idle account's expired records):
 * rewrites only when store_arc_append would. 0 when there is no archive. */
int store_arc_trim(const char *bare, const struct store_arc_limits *lim);
/* fsync every archive appended to since the last call; returns how many failed. */
int store_arc_sync(void);
/* How many files a group commit (store_arc_sync) fsyncs at once, 1 to 64
 * (store_sync_threads); the threads live only while it runs. */
void store_set_sync_threads(int n);
struct store_arc_query {
    uint64_t after;  /* ids above this only (0: from the oldest) */
    uint64_t before; /* ids below this only (0: to the newest) */
    const char *key; /* this key only (NULL: any) */
    size_t key_len;
    int backward;    /* newest first */
};
/* fn(record) for each match in order until it returns non-zero; the record's
 * pointers are valid during the call only. Never writes. 0 or STORE_*. */
typedef int (*store_arc_fn)(const struct store_arc_rec *r, void *ud);
int store_arc_query(const char *bare, const struct store_arc_query *q, store_arc_fn fn, void *ud);
/* Records between q->after and q->before (key ignored). */
int store_arc_count(const char *bare, const struct store_arc_query *q, uint64_t *count);
/* 0 when the archive holds a record with this id, else STORE_ENOENT. */
int store_arc_exists(const char *bare, uint64_t id);

/* ---- XEP-0133: documents of the server itself (message of the day) ----
 * DATADIR/doc-<name>, the format and the crash safety of an account's
 * documents (STORAGE.md "doc-<name>"). get: STORE_ENOENT when absent;
 * delete: STORE_ENOENT when there was none. */
int store_server_doc_get(const char *name, char **data, size_t *len, size_t maxlen);
int store_server_doc_put(const char *name, const void *data, size_t len);
int store_server_doc_delete(const char *name);
/* ---- XEP-0227 import (pie.c) ---- */
/* store_arc_append for a message of the past: r->id is its time in
 * microseconds since the epoch (the archive id it gets, or the last id + 1
 * when the archive already holds a later one, ids staying in order). */
int store_arc_append_at(const char *bare, const struct store_arc_rec *r,
                        const struct store_arc_limits *lim, uint64_t *id);
/* 1 when the store can hold an account of this (normalised) bare JID: its
 * escaped name fits one directory name (NAME_MAX). */
int store_account_name_ok(const char *bare);
/* ---- group chat rooms (XEP-0045, muc.c; STORAGE.md "Group chat rooms") ----
 * One opaque document per persistent room (room: its normalised bare JID),
 * written whole and crash-safely. put: 0 or STORE_EIO / STORE_EINVAL.
 * delete: STORE_ENOENT when there was none. each: fn(room, payload, len)
 * for every intact room document (a damaged one is set aside as .bad and
 * logged; one over maxlen is skipped), until fn returns non-zero, which
 * each then returns. */
int store_room_put(const char *room, const void *data, size_t len);
int store_room_delete(const char *room);
int store_room_each(int (*fn)(const char *room, const char *data, size_t len, void *ud), void *ud,
                    size_t maxlen);
/* Rename room's document aside as .bad (logged with why): its payload is
 * intact but unreadable to muc.c. 0, or STORE_EINVAL. */
int store_room_set_aside(const char *room, const char *why);
/* 1 when fd is a regular file that its group or others may read (where an
 * export on stdout must not put keys), else 0. */
int store_fd_readable_by_others(int fd);

/* ---- group chat room archives (issue 15: XEP-0313 on room JIDs) ----
 * A persistent room's archive has the format and the functions of an
 * account's (store_arc_* above), kept under DATADIR/roomarc/ (STORAGE.md
 * "Room archives"). store_room_arc_name writes into out (at least
 * STORE_ROOM_ARC_NAME_MAX bytes) the name store_arc_* take for room's
 * archive (its bare JID, normalised); 0 or STORE_EINVAL (too long for a
 * file name). store_room_arc_delete removes the archive: 0, STORE_ENOENT
 * when there was none, or STORE_EIO. */
#define STORE_ROOM_ARC_NAME_MAX 258
int store_room_arc_name(const char *room, char *out, size_t outsz);
int store_room_arc_delete(const char *room);
/* Issue 15, expiry of idle room archives: fn(name, ud) for every room
 * archive, name being what store_room_arc_name gives (what store_arc_trim
 * takes), in sorted order, until fn returns non-zero. 0 or STORE_*. */
int store_room_arc_list(int (*fn)(const char *name, void *ud), void *ud);

/* web admin (issue 14): the process's resident memory in KiB (VmRSS of
 * /proc/self/status), or -1 where that cannot be read. */
long store_self_rss_kib(void);
/* ---- XEP-0363 HTTP File Upload (issue 14 item 4, upload.c) ----
 * DATADIR/upload/<id>: a finished file; <id>.meta its description (a
 * document, as store_doc_put writes, payload opaque: upload.c's); <id>.part a
 * PUT in progress. id is a slot's secret: STORE_UPLOAD_ID_LEN lowercase hex
 * digits (anything else is STORE_EINVAL, so no name reaches outside the
 * directory). A file is served only once its .meta exists, and the .meta is
 * written only after the file is complete on disk (STORAGE.md "Uploads"). */
#define STORE_UPLOAD_ID_LEN 32
struct store_upload; /* a file open for writing or reading */
/* Start writing id: <id>.part, made anew (a leftover one is replaced).
 * Returns 0 with *out set, or STORE_EINVAL / STORE_EEXIST (finished already)
 * / STORE_EIO. */
int store_upload_create(const char *id, struct store_upload **out);
int store_upload_write(struct store_upload *u, const void *data, size_t len); /* 0, STORE_EIO */
/* The body is complete: fsync, rename to <id>, then write <id>.meta (meta,
 * len bytes). u is freed whatever the result; on failure nothing is left. */
int store_upload_commit(struct store_upload *u, const void *meta, size_t len);
/* Drop a file being written (its .part is removed) or close one being read. */
void store_upload_close(struct store_upload *u);
/* Open finished file id for reading: its size in *size, its .meta (malloc'd,
 * NUL-terminated, the caller frees it) in *meta and *len when meta is not NULL.
 * STORE_ENOENT when there is none (or no .meta yet), STORE_EINVAL, STORE_EIO. */
int store_upload_open(const char *id, struct store_upload **out, uint64_t *size, char **meta,
                      size_t *len);
/* Read up to len bytes: how many (0 at the end), or -1. */
long store_upload_read(struct store_upload *u, void *buf, size_t len);
/* Remove id (its .meta first, so that it is no longer served). 0 or STORE_*. */
int store_upload_delete(const char *id);
/* fn(id, meta, len, ud) for every finished file, until fn returns non-zero.
 * tidy (at start-up): also remove what a crash left: .part files, files
 * without .meta, temp files. 0 or STORE_*. */
int store_upload_each(int (*fn)(const char *id, const char *meta, size_t len, void *ud), void *ud,
                      int tidy);
/* The same (without tidy) a few entries at a time: fn for the finished files
 * among the next max directory entries, from where the last call stopped.
 * 1 once the walk is through (the next call starts anew), 0 before, or STORE_*. */
int store_upload_walk(int (*fn)(const char *id, const char *meta, size_t len, void *ud), void *ud,
                      int max);

#endif
