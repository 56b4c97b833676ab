/* store.c: every byte that touches the data directory (see store.h, STORAGE.md).
 * Whole files are replaced with temp + fsync + rename + directory fsync; offline
 * messages go to an append-only log of checksummed records; accounts appear and
 * disappear with one directory rename each, so a crash never leaves half an account.
 * Payloads are opaque bytes: no XML, no connections, no policy beyond quotas. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/inotify.h>
#endif

#include "cold.h"
#include "limits.h"
#include "log.h"
#include "tls.h"

/* 32-bit glibc targets (mipsel, armhf) need the Makefile's
 * -D_FILE_OFFSET_BITS=64: without it readdir() and stat() fail with
 * EOVERFLOW on an inode number or a directory offset over 32 bits (XFS,
 * btrfs, NFS, ext4 hashes under a 64-bit kernel), and an account would
 * silently vanish from a directory scan. musl's off_t is always 64 bits. */
_Static_assert(sizeof(off_t) == 8, "build with -D_FILE_OFFSET_BITS=64 (see PPFLAGS)");

#define ACCOUNT_FILE "account"
#define ACCOUNT_VERSION_LINE "xmppd-account 1"
#define ACCOUNT_VERSION_PREFIX "xmppd-account "
#define ACCOUNT_FILE_MAX 4096
#define ACCOUNT_ITER_MAX 100000000 /* sanity bound for a parsed iteration count */

#define DOC_PREFIX "doc-"
#define DOC_NAME_MAX 64
#define DOC_HEADER_PREFIX "xmppd-doc "
#define DOC_HEADER_MAX 64 /* "xmppd-doc 1 <20 digits> <8 hex>\n" fits easily */

#define OFFLINE_FILE "offline.log"
#define OFFLINE_HEADER "xmppd-offline 1\n" /* 16 bytes, the log's version line */
#define OFFLINE_HEADER_LEN 16
#define OFFLINE_VERSION_PREFIX "xmppd-offline "
#define OFFLINE_REC_HDR REC_HDR
static const unsigned char offline_magic[4] = {'O', 'F', 'F', 'L'};

/* Entries of accounts/ that start with '.' are never accounts (escaping makes a
 * leading '.' into %2E): in-progress creations and tombstones of deletions. */
#define NEW_PREFIX ".new."
#define DEL_PREFIX ".del."

static char data_dir[PATH_MAX];
static char accounts_dir[PATH_MAX];
static unsigned tmp_counter; /* makes .new./.del. names unique within this process */

/* ---- small helpers ---- */

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320) with a 16-entry nibble table: 64
 * bytes of rodata instead of 1 KiB, plenty fast for offline messages. */
uint32_t store_crc32(uint32_t crc, const void *data, size_t len)
{
    static const uint32_t tab[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
    };
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ tab[crc & 15];
        crc = (crc >> 4) ^ tab[crc & 15];
    }
    return ~crc;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* snprintf into a path buffer; truncation is an error, never a shorter path. */
__attribute__((format(printf, 3, 4))) static int path_fmt(char *out, size_t outsz,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= outsz) ? -1 : 0;
}

/* A system call on path failed: log what was tried and why (errno), and
 * return STORE_EIO. One call at each of the many places that fail this way. */
COLD static int io_fail(const char *what, const char *path)
{
    int err = errno; /* callers may still look at it */
    log_error("store: %s %s: %s", what, path, strerror(err));
    errno = err;
    return STORE_EIO;
}

/* rename(from, to) failed: log it (errno says why); STORE_EIO. */
COLD static int rename_fail(const char *from, const char *to)
{
    log_error("store: rename %s to %s: %s", from, to, strerror(errno));
    return STORE_EIO;
}

/* A file of a newer format version (a downgrade): refused, but left alone
 * so that upgrading again loses nothing. Returns STORE_ECORRUPT. */
COLD static int newer_version(const char *path)
{
    log_error("store: %s has a newer format version; not touching it", path);
    return STORE_ECORRUPT;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Returns the number of bytes read (less than len only at end of file) or -1. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* A record of the offline log or the archive: magic[4] len[4] crc[4], then
 * len payload bytes; the CRC-32 covers the length field and the payload. */
#define REC_HDR 12

static uint32_t rec_crc(const unsigned char *hdr, const void *payload, size_t len)
{
    return store_crc32(store_crc32(0, hdr + 4, 4), payload, len);
}

/* Fill in the header of the record at r, whose payload is in place. */
static void rec_seal(unsigned char *r, const unsigned char *magic, uint32_t len)
{
    memcpy(r, magic, 4);
    put_be32(r + 4, len);
    put_be32(r + 8, rec_crc(r, r + REC_HDR, len));
}

/* What rec_walk's fn says of a record: take it and go on, leave it (the log
 * ends before it, as at a torn tail), or take it and stop; or a STORE_* error. */
enum { REC_NEXT = 0, REC_TORN = 1, REC_STOP = 3 };

/* Walk the records of the log fd (path) from off to size: each one whole
 * (magic, a length from min to max that fits, checksum) goes to fn with its
 * payload and offset; the first that is not stops the walk (a torn tail).
 * *end gets the end of the last record taken. Returns 0, REC_STOP when fn
 * stopped, or STORE_EIO. Never writes. */
static int rec_walk(int fd, const char *path, off_t off, off_t size, const unsigned char *magic,
                    uint32_t min, uint32_t max,
                    int (*fn)(const unsigned char *p, uint32_t len, off_t off, void *ud), void *ud,
                    off_t *end)
{
    unsigned char h[REC_HDR], *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    *end = off;
    while (rc == 0 && size - off >= REC_HDR) {
        uint32_t len = 0;
        ssize_t n = pread(fd, h, REC_HDR, off);
        if (n == REC_HDR) {
            len = get_be32(h + 4);
        }
        if (n != REC_HDR || memcmp(h, magic, 4) != 0 || len < min || len > max ||
            (off_t)len > size - off - REC_HDR) {
            rc = n < 0 ? io_fail("read", path) : 0;
            break;
        }
        if (len + 1 > cap) {
            unsigned char *nb = realloc(buf, len + 1);
            if (!nb) {
                rc = STORE_EIO;
                break;
            }
            buf = nb;
            cap = len + 1;
        }
        n = pread(fd, buf, len, off + REC_HDR);
        if (n != (ssize_t)len || rec_crc(h, buf, len) != get_be32(h + 8)) {
            rc = n < 0 ? io_fail("read", path) : 0;
            break;
        }
        rc = fn(buf, len, off, ud);
        if (rc == REC_TORN) {
            rc = 0;
            break;
        }
        if (rc >= 0) {
            off += REC_HDR + (off_t)len;
            *end = off;
        }
    }
    free(buf);
    return rc;
}

/* Make a rename/unlink/create in dir durable: the directory entry itself must
 * reach the disk, or a power cut can bring back the old name (STYLE §11). */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return io_fail("open directory", dir);
    }
    int rc = 0;
    /* Some filesystems cannot fsync a directory (EINVAL); there is nothing more
     * we could do there, so that is not an error. */
    if (fsync(fd) < 0 && errno != EINVAL) {
        rc = io_fail("fsync directory", dir);
    }
    close(fd);
    return rc;
}

/* The directory part of path into dir (PATH_MAX bytes): "." for a bare
 * name, "/" for one in the root. Returns the last name of path, or NULL when
 * the directory part does not fit. */
static const char *parent_of(const char *path, char *dir)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
        return path;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path); /* the root keeps its '/' */
    if (n >= PATH_MAX) {
        return NULL;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return slash + 1;
}

/* fsync the directory that holds path. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    return parent_of(path, dir) ? fsync_dir(dir) : STORE_EINVAL;
}

/* ---- fsync of many files at once ----
 * A loop turn that appended to many files (a message to each of 100 partners
 * archives 200 times) syncs each before any output. One after the other,
 * every fsync waits for its own journal commit and disk flush: on a busy
 * disk (a few ms each) a turn of 200 took about a second, with the server
 * idle (issue 13, sm-acks: 498 messages/s at 5% CPU). Issued from a few
 * threads at once, the file system groups them into shared commits. The
 * threads live for one call (no pool to survive a fork or a shutdown), only
 * call fsync, and block every signal (the loop's self-pipe has them). */
#define SYNC_STACK (64 * 1024)
#define SYNC_THREADS_MAX 64
#define SYNC_MIN_BATCH 4 /* fewer files: one thread, a thread's start costs more */

static int sync_threads = LIMIT_STORE_SYNC_THREADS; /* store_set_sync_threads */

struct sync_batch {
    const int *fds;
    int *err; /* per fd: 0 or the errno of its fsync */
    size_t n;
    atomic_size_t next;
};

static void *sync_run(void *arg)
{
    struct sync_batch *b = arg;
    size_t i;
    while ((i = atomic_fetch_add(&b->next, 1)) < b->n) {
        b->err[i] = fsync(b->fds[i]) < 0 ? errno : 0;
    }
    return NULL;
}

COLD void store_set_sync_threads(int n)
{
    sync_threads = n < 1 ? 1 : n > SYNC_THREADS_MAX ? SYNC_THREADS_MAX : n;
}

/* fsync fds[0..n) with up to sync_threads at once; err[i] gets 0 or errno.
 * Returns when every one is done. A thread that cannot start leaves its share
 * to the others (the calling thread always takes part). */
static void fsync_many(const int *fds, int *err, size_t n)
{
    struct sync_batch b = {fds, err, n, 0};
    pthread_t th[SYNC_THREADS_MAX];
    size_t want = 0, started = 0;
    if (n >= SYNC_MIN_BATCH) {
        want = (size_t)sync_threads - 1 < n - 1 ? (size_t)sync_threads - 1 : n - 1;
    }
    if (want > 0) {
        pthread_attr_t attr;
        sigset_t all, old;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setstacksize(&attr, SYNC_STACK);
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            while (started < want && pthread_create(&th[started], &attr, sync_run, &b) == 0) {
                started++;
            }
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            pthread_attr_destroy(&attr);
        }
    }
    sync_run(&b);
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A file failed to parse: keep it for a human as name.bad (replacing an older
 * .bad of the same file), log, and let the server carry on (STYLE §11). */
COLD static void quarantine(const char *path, const char *why)
{
    char bad[PATH_MAX];
    if (path_fmt(bad, sizeof(bad), "%s.bad", path) < 0) {
        log_error("store: %s is damaged (%s) and its name is too long to rename", path, why);
        return;
    }
    if (rename(path, bad) < 0) {
        log_error("store: %s is damaged (%s); rename to %s failed: %s", path, why, bad,
                  strerror(errno));
        return;
    }
    fsync_parent(path);
    log_error("store: %s is damaged (%s); renamed aside to %s", path, why, bad);
}

/* ---- directory names for bare JIDs ---- */

static int name_char_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '@' || c == '_' ||
           c == '-';
}

/* Escape a bare JID into one directory name: bytes outside [a-z0-9.@_-] become
 * %XX (upper-case hex), and so does a leading '.', so no name is ".", ".." or
 * hidden (names starting with '.' are ours: .new.* and .del.*). Returns -1 when
 * bare is empty or the result would pass NAME_MAX. */
static const char hex_upper[] = "0123456789ABCDEF";

static int escape_name(const char *bare, char *out, size_t outsz)
{
    size_t o = 0;
    if (!bare || !*bare) {
        return -1;
    }
    for (size_t i = 0; bare[i]; i++) {
        unsigned char c = (unsigned char)bare[i];
        if (name_char_plain(c) && !(i == 0 && c == '.')) {
            if (o + 1 >= outsz || o + 1 > NAME_MAX) {
                return -1;
            }
            out[o++] = (char)c;
        } else {
            if (o + 3 >= outsz || o + 3 > NAME_MAX) {
                return -1;
            }
            out[o++] = '%';
            out[o++] = hex_upper[c >> 4];
            out[o++] = hex_upper[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* ---- the server's secret ----
 * "xmppd-secret 1\n" then the secret as upper-case hex and "\n"; mode 0600. */
#define SECRET_FILE "secret"
#define SECRET_HEADER "xmppd-secret 1\n"

COLD static int secret_parse(const char *text, size_t tlen, unsigned char *out, size_t len)
{
    size_t hl = strlen(SECRET_HEADER);
    if (tlen != hl + 2 * len + 1 || memcmp(text, SECRET_HEADER, hl) != 0 ||
        text[tlen - 1] != '\n') {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        int hi = hex_val(text[hl + 2 * i]), lo = hex_val(text[hl + 2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

COLD int store_secret(unsigned char *out, size_t len, const unsigned char *fresh)
{
    char path[PATH_MAX], *text = NULL;
    size_t tlen = 0;
    if (len == 0 || len > STORE_SECRET_MAX ||
        path_fmt(path, sizeof(path), "%s/" SECRET_FILE, data_dir) < 0) {
        return STORE_EINVAL;
    }
    int r = store_read_file(path, &text, &tlen, 2 * STORE_SECRET_MAX + 64);
    if (r == 0 && secret_parse(text, tlen, out, len) == 0) {
        free(text);
        return 0;
    }
    if (r == 0 && strncmp(text, "xmppd-secret ", 13) == 0 && atoi(text + 13) > 1) {
        free(text);
        return newer_version(path);
    }
    free(text);
    if (r == 0 || r == STORE_EINVAL) {
        quarantine(path, "not a secret of the expected size");
    } else if (r != STORE_ENOENT) {
        return r;
    }
    char buf[sizeof(SECRET_HEADER) + 2 * STORE_SECRET_MAX + 1];
    size_t n = strlen(SECRET_HEADER);
    memcpy(buf, SECRET_HEADER, n);
    for (size_t i = 0; i < len; i++) {
        buf[n++] = hex_upper[fresh[i] >> 4];
        buf[n++] = hex_upper[fresh[i] & 15];
    }
    buf[n++] = '\n';
    r = store_write_atomic(path, buf, n, 0600);
    sasl_wipe(buf, sizeof(buf));
    if (r < 0) {
        return r;
    }
    memcpy(out, fresh, len);
    return 0;
}

/* Inverse of escape_name. Accepts only the canonical form (so every account has
 * exactly one directory name): re-escaping the result must give name back. */
COLD static int unescape_name(const char *name, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; name[i]; i++) {
        int c = (unsigned char)name[i];
        if (c == '%') {
            int hi = hex_val(name[i + 1]);
            int lo = hi < 0 ? -1 : hex_val(name[i + 2]);
            if (lo < 0) {
                return -1;
            }
            c = hi << 4 | lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= outsz) {
            return -1;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    char check[NAME_MAX + 1];
    if (escape_name(out, check, sizeof(check)) < 0 || strcmp(check, name) != 0) {
        return -1;
    }
    return 0;
}

/* DATADIR/accounts/<escaped bare>. */
static int account_dir(const char *bare, char *out, size_t outsz)
{
    char esc[NAME_MAX + 1];
    if (!accounts_dir[0] || escape_name(bare, esc, sizeof(esc)) < 0) {
        return -1;
    }
    return path_fmt(out, outsz, "%s/%s", accounts_dir, esc);
}

/* The files a tombstone keeps for the server while its roster is still to be
 * tidied (STORAGE.md, "Deleting an account"): whose it was, and the roster. */
#define OWNER_FILE "owner"
#define ROSTER_DOC "doc-roster"

COLD static int tomb_keeps(const char *name)
{
    return strcmp(name, OWNER_FILE) == 0 || strcmp(name, ROSTER_DOC) == 0;
}

/* fn(name, ud) for each entry of dir (".." and "." too), until fn returns
 * non-zero, which is then returned. STORE_EIO (logged) when dir cannot be
 * read; with if_any, 0 when it does not exist. */
COLD static int dir_each(const char *dir, int if_any, int (*fn)(const char *name, void *ud),
                         void *ud)
{
    DIR *d = opendir(dir);
    if (!d) {
        return if_any && errno == ENOENT ? 0 : io_fail("open directory", dir);
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        rc = fn(e->d_name, ud);
    }
    closedir(d);
    return rc;
}

struct remove_ctx {
    const char *dir;
    int (*keep)(const char *name);
    int rc;
};

COLD static int remove_one(const char *name, void *ud)
{
    struct remove_ctx *c = ud;
    char p[PATH_MAX];
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || (c->keep && c->keep(name))) {
        return 0;
    }
    if (path_fmt(p, sizeof(p), "%s/%s", c->dir, name) < 0 || (unlink(p) < 0 && errno != ENOENT)) {
        log_error("store: remove %s/%s: %s", c->dir, name, strerror(errno));
        c->rc = STORE_EIO;
    }
    return 0;
}

/* Remove every file in dir (but those keep() names, when keep is set), then
 * dir if it is empty. Used for tombstones and failed creations only: account
 * directories hold no subdirectories. A file that vanished meanwhile (another
 * process tidying the same tombstone) is not an error, nor is a directory
 * left non-empty by a kept file or by another process's write. */
COLD static int remove_files(const char *dir, int (*keep)(const char *name))
{
    struct remove_ctx c = {dir, keep, 0};
    int rc = dir_each(dir, 1, remove_one, &c);
    if (rc == 0) {
        rc = c.rc;
    }
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT) {
        if (errno == ENOTEMPTY || errno == EEXIST) {
            return 1; /* kept files, or a write that landed after the scan */
        }
        rc = io_fail("remove directory", dir);
    }
    return rc;
}

/* remove_files, again while a write that was under way when the directory
 * became a tombstone (store_write_atomic in another process) adds its file
 * after the scan: each such write adds at most one entry and then fails. */
COLD static int remove_files_retry(const char *dir, int (*keep)(const char *name))
{
    int rc = 1;
    for (int pass = 0; pass < 3 && rc == 1; pass++) {
        rc = remove_files(dir, keep);
    }
    return rc;
}

COLD static int remove_tree(const char *dir)
{
    int rc = remove_files_retry(dir, NULL);
    if (rc == 1) {
        log_error("store: remove directory %s: not empty", dir);
        rc = STORE_EIO;
    }
    return rc;
}

/* accounts/<prefix><pid>.<n> into out (PATH_MAX bytes): a name of ours. */
COLD static int temp_name(char *out, const char *prefix)
{
    return path_fmt(out, PATH_MAX, "%s/%s%ld.%u", accounts_dir, prefix, (long)getpid(),
                    tmp_counter++);
}

/* Make a fresh, unique directory accounts/<prefix><pid>.<n>. */
COLD static int make_temp_dir(const char *prefix, char *out)
{
    for (int tries = 0; tries < 100; tries++) {
        if (temp_name(out, prefix) < 0) {
            return STORE_EINVAL;
        }
        if (mkdir(out, 0700) == 0) {
            return 0;
        }
        if (errno != EEXIST) {
            return io_fail("mkdir", out);
        }
    }
    log_error("store: cannot find a free temporary name in %s", accounts_dir);
    return STORE_EIO;
}

/* ---- start-up and whole files ---- */

COLD static int ensure_dir(const char *path, const char *parent)
{
    if (mkdir(path, 0700) == 0) {
        /* A new directory entry must reach the disk before anything inside it
         * is trusted to be durable. */
        return fsync_dir(parent);
    }
    if (errno == EEXIST && is_dir(path)) {
        return 0;
    }
    log_error("store: create directory %s: %s", path, errno == EEXIST ? "not a directory"
                                                                      : strerror(errno));
    return STORE_EIO;
}

/* ".new.<pid>.<n>" / ".del.<pid>.<n>": is the process that made it still
 * running? Then it is another xmppd (an adduser beside the server, two
 * adduser at once) in the middle of its work, not a crash's leftover. */
COLD static int owner_alive(const char *pid_part)
{
    char *end = NULL;
    long pid = strtol(pid_part, &end, 10);
    if (end == pid_part || *end != '.' || pid <= 0 || pid == (long)getpid()) {
        return 0;
    }
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* An entry of accounts/ at start-up: remove it if a crash left it. */
COLD static int leftover_one(const char *name, void *ud)
{
    int del = strncmp(name, DEL_PREFIX, strlen(DEL_PREFIX)) == 0;
    char p[PATH_MAX];
    (void)ud;
    if ((del || strncmp(name, NEW_PREFIX, strlen(NEW_PREFIX)) == 0) &&
        !owner_alive(name + strlen(NEW_PREFIX)) &&
        path_fmt(p, sizeof(p), "%s/%s", accounts_dir, name) == 0) {
        /* A tombstone still holding a roster waits for the server
         * (store_removed_each); everything else in it goes. */
        log_notice("store: removing leftover %s", p);
        remove_files(p, del ? tomb_keeps : NULL);
    }
    return 0;
}

COLD int store_init(const char *datadir)
{
    char parent[PATH_MAX];
    data_dir[0] = accounts_dir[0] = '\0';
    if (!datadir || !*datadir || path_fmt(data_dir, sizeof(data_dir), "%s", datadir) < 0 ||
        path_fmt(accounts_dir, sizeof(accounts_dir), "%s/accounts", datadir) < 0 ||
        path_fmt(parent, sizeof(parent), "%s/..", datadir) < 0) {
        data_dir[0] = accounts_dir[0] = '\0';
        return STORE_EINVAL;
    }
    if (ensure_dir(data_dir, parent) < 0 || ensure_dir(accounts_dir, data_dir) < 0) {
        data_dir[0] = accounts_dir[0] = '\0';
        return STORE_EIO;
    }
    /* Finish what a crash interrupted: a .new.* directory is an account that
     * was never published, a .del.* one an account already deleted. Neither is
     * visible to any lookup, so removing them now changes nothing observable. */
    if (dir_each(accounts_dir, 0, leftover_one, NULL) < 0) {
        return STORE_EIO;
    }
    store_accounts_changed(); /* what there is now is the baseline */
    return 0;
}

const char *store_dir(void)
{
    return data_dir;
}

/* Split path into its directory (opened, O_DIRECTORY) and its last name. */
static int open_parent(const char *path, const char **name)
{
    char dir[PATH_MAX];
    *name = parent_of(path, dir);
    if (!*name) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Is the directory open as dfd still the one its path names? Not when an
 * account was deleted meanwhile (renamed to a tombstone, and maybe made again). */
static int dir_still_there(int dfd, const char *path)
{
    char dir[PATH_MAX];
    struct stat a, b;
    if (!parent_of(path, dir)) {
        return 1;
    }
    return fstat(dfd, &a) == 0 && stat(dir, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Hazard: a stale path.tmp may be a hard link to some other file (a crashed
 * earlier run, or a hostile local user); writing through it would change that
 * file. So unlink it and create the temp with O_EXCL, which also refuses to
 * follow a symlink. Every step works on the directory opened once: if the
 * account is deleted meanwhile (xmppd deluser in another process renames the
 * directory away), the temp and the rename stay inside the tombstone, never
 * outside it nor in an account made again under the same name, and a failure
 * removes the temp from where it really is. Returns STORE_ENOENT (not logged)
 * when the directory is gone, e.g. an account deleted concurrently. */
int store_write_atomic(const char *path, const void *data, size_t len, int mode)
{
    char tmp[PATH_MAX];
    const char *name = NULL;
    int fd = -1;
    if (path_fmt(tmp, sizeof(tmp), "%s.tmp", path) < 0) {
        return STORE_EINVAL;
    }
    int dfd = open_parent(path, &name);
    if (dfd < 0) {
        if (errno == ENOENT) {
            return STORE_ENOENT;
        }
        return io_fail("open directory of", path);
    }
    const char *tname = tmp + (name - path); /* name + ".tmp" */
    if (unlinkat(dfd, tname, 0) < 0 && errno != ENOENT) {
        io_fail("remove stale", tmp);
        close(dfd);
        return STORE_EIO;
    }
    fd = openat(dfd, tname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        int err = errno;
        close(dfd);
        if (err == ENOENT) {
            return STORE_ENOENT; /* the directory was removed (rmdir) meanwhile */
        }
        errno = err;
        return io_fail("create", tmp);
    }
    if (write_all(fd, data, len) < 0) {
        io_fail("write", tmp);
        goto fail;
    }
    if (fsync(fd) < 0) {
        io_fail("fsync", tmp);
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        io_fail("close", tmp);
        goto fail;
    }
    fd = -1;
    if (renameat(dfd, tname, dfd, name) < 0) {
        if (errno == ENOENT && !dir_still_there(dfd, path)) {
            /* The tombstone's remover took the temp first: the account is gone. */
            unlinkat(dfd, tname, 0);
            close(dfd);
            return STORE_ENOENT;
        }
        rename_fail(tmp, path);
        goto fail;
    }
    int rc = 0;
    if (fsync(dfd) < 0 && errno != EINVAL) {
        rc = io_fail("fsync directory of", path);
    }
    if (rc == 0 && !dir_still_there(dfd, path)) {
        rc = STORE_ENOENT; /* written into a tombstone: the account is gone */
    }
    close(dfd);
    return rc;
fail:
    if (fd >= 0) {
        close(fd);
    }
    /* Never leave the temp behind: on a full disk it holds the space the
     * next write needs. */
    if (unlinkat(dfd, tname, 0) < 0 && errno != ENOENT) {
        io_fail("remove", tmp);
    }
    close(dfd);
    return STORE_EIO;
}

/* Rewrite a file in place, no temp, no rename, no fsync: for documents whose
 * loss is harmless (store_doc_put_lazy). A crash can leave it empty or torn;
 * the reader's checksum then rejects it. A logout burst costs one open and
 * one write per file instead of a directory update for each rename. */
static int overwrite_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == ENOENT) {
            return STORE_ENOENT;
        }
        return io_fail("open", path);
    }
    int rc = 0;
    if (write_all(fd, data, len) < 0) {
        rc = io_fail("write", path);
    }
    if (close(fd) < 0 && rc == 0) {
        rc = io_fail("close", path);
    }
    return rc;
}

int store_read_file(const char *path, char **data, size_t *len, size_t maxlen)
{
    *data = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO in its place must not stop the loop in open() (the
     * S_ISREG check below refuses it); a regular file's reads ignore it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            return STORE_ENOENT;
        }
        return io_fail("open", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        io_fail("stat", path);
        close(fd);
        return STORE_EIO;
    }
    if (!S_ISREG(st.st_mode) || (uintmax_t)st.st_size > maxlen) {
        close(fd);
        return STORE_EINVAL;
    }
    /* Read one byte more than allowed to notice a file that grew since fstat. */
    size_t cap = (size_t)st.st_size + 1;
    char *p = malloc(cap + 1);
    if (!p) {
        close(fd);
        return STORE_EIO;
    }
    ssize_t n = read_full(fd, p, cap);
    int err = errno;
    close(fd);
    if (n < 0) {
        free(p);
        errno = err;
        return io_fail("read", path);
    }
    if ((size_t)n > maxlen) {
        free(p);
        return STORE_EINVAL;
    }
    p[n] = '\0';
    *data = p;
    *len = (size_t)n;
    return 0;
}

/* ---- accounts ---- */

/* Key length each slot must have when set (0 = unset). */
static int creds_valid(const struct scram_creds *c, size_t key_len)
{
    if (c->key_len == 0) {
        return 1;
    }
    return c->key_len == key_len && c->iter >= 1 && c->iter <= ACCOUNT_ITER_MAX &&
           c->salt_len >= 1 && c->salt_len <= SCRAM_SALT_MAX;
}

static int account_valid(const struct store_account *a)
{
    return a && creds_valid(&a->sha1, 20) && creds_valid(&a->sha256, 32) &&
           (a->sha1.key_len || a->sha256.key_len);
}

COLD static int format_creds(char *out, size_t outsz, const char *tag, const struct scram_creds *c)
{
    char salt[128], sk[64], svk[64];
    if (c->key_len == 0) {
        out[0] = '\0';
        return 0;
    }
    if (sasl_b64_encode(c->salt, c->salt_len, salt, sizeof(salt)) < 0 ||
        sasl_b64_encode(c->stored_key, c->key_len, sk, sizeof(sk)) < 0 ||
        sasl_b64_encode(c->server_key, c->key_len, svk, sizeof(svk)) < 0) {
        return -1;
    }
    return path_fmt(out, outsz, "%s %d %s %s %s\n", tag, c->iter, salt, sk, svk);
}

COLD static int account_format(const struct store_account *a, char *out, size_t outsz)
{
    char l1[256], l2[256];
    if (format_creds(l1, sizeof(l1), "scram-sha-1", &a->sha1) < 0 ||
        format_creds(l2, sizeof(l2), "scram-sha-256", &a->sha256) < 0) {
        return -1;
    }
    int n = snprintf(out, outsz, "%s\n%s%s", ACCOUNT_VERSION_LINE, l1, l2);
    return (n < 0 || (size_t)n >= outsz) ? -1 : n;
}

/* Next space-separated token of line [*p, end); returns its length, 0 at end. */
static size_t next_token(const char **p, const char *end, const char **tok)
{
    const char *s = *p;
    if (s < end && *s == ' ') {
        s++;
    }
    *tok = s;
    while (s < end && *s != ' ') {
        s++;
    }
    *p = s;
    return (size_t)(s - *tok);
}

static int parse_b64(const char *tok, size_t n, unsigned char *out, size_t outsz)
{
    if (n == 0 || n > 128) { /* a SCRAM_SALT_MAX salt in base64 is 88 */
        return -1;
    }
    return sasl_b64_decode(tok, n, out, outsz);
}

/* "<iter> <salt> <stored_key> <server_key>" with exactly single spaces. */
static int parse_creds(const char *p, const char *end, size_t key_len, struct scram_creds *c)
{
    const char *tok;
    size_t n = next_token(&p, end, &tok);
    long iter = 0;
    if (n == 0 || n > 9) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9') {
            return -1;
        }
        iter = iter * 10 + (tok[i] - '0');
    }
    if (iter < 1 || iter > ACCOUNT_ITER_MAX) {
        return -1;
    }
    c->iter = (int)iter;
    n = next_token(&p, end, &tok);
    int r = parse_b64(tok, n, c->salt, sizeof(c->salt));
    if (r < 1) {
        return -1;
    }
    c->salt_len = (size_t)r;
    n = next_token(&p, end, &tok);
    if (parse_b64(tok, n, c->stored_key, sizeof(c->stored_key)) != (int)key_len) {
        return -1;
    }
    n = next_token(&p, end, &tok);
    if (parse_b64(tok, n, c->server_key, sizeof(c->server_key)) != (int)key_len) {
        return -1;
    }
    if (p != end) {
        return -1;
    }
    c->key_len = key_len;
    return 0;
}

/* Returns 0, -1 (damaged) or -2 (a newer format version we must not touch). */
static int account_parse(const char *data, size_t len, struct store_account *a)
{
    const char *p = data, *end = data + len;
    int line = 0;
    memset(a, 0, sizeof(*a));
    if (memchr(data, '\0', len)) {
        return -1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            return -1; /* every line ends with '\n'; a missing one means a cut file */
        }
        size_t n = (size_t)(nl - p);
        if (line == 0) {
            if (n != strlen(ACCOUNT_VERSION_LINE) || memcmp(p, ACCOUNT_VERSION_LINE, n) != 0) {
                size_t pl = strlen(ACCOUNT_VERSION_PREFIX);
                return (n > pl && memcmp(p, ACCOUNT_VERSION_PREFIX, pl) == 0) ? -2 : -1;
            }
        } else if (n > 12 && memcmp(p, "scram-sha-1 ", 12) == 0) {
            if (a->sha1.key_len || parse_creds(p + 12, nl, 20, &a->sha1) < 0) {
                return -1;
            }
        } else if (n > 14 && memcmp(p, "scram-sha-256 ", 14) == 0) {
            if (a->sha256.key_len || parse_creds(p + 14, nl, 32, &a->sha256) < 0) {
                return -1;
            }
        } else {
            return -1;
        }
        line++;
        p = nl + 1;
    }
    return account_valid(a) ? 0 : -1;
}

COLD static int write_account_file(const char *dir, const struct store_account *a)
{
    char path[PATH_MAX];
    char text[1024];
    int n = account_format(a, text, sizeof(text));
    if (n < 0 || path_fmt(path, sizeof(path), "%s/%s", dir, ACCOUNT_FILE) < 0) {
        return STORE_EINVAL;
    }
    int rc = store_write_atomic(path, text, (size_t)n, 0600);
    sasl_wipe(text, sizeof(text)); /* memset: a dead store the compiler drops */
    return rc;
}

/* Build the account in a hidden .new.* directory and publish it with one
 * rename: the account is either absent or complete, never half made. rename()
 * refuses a non-empty target, so of two racing creators exactly one wins (the
 * target always holds "account" once published). */
COLD int store_account_create(const char *bare, const struct store_account *a)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    if (!account_valid(a) || account_dir(bare, dir, sizeof(dir)) < 0) {
        return STORE_EINVAL;
    }
    if (is_dir(dir)) {
        return STORE_EEXIST;
    }
    int rc = make_temp_dir(NEW_PREFIX, tmp);
    if (rc < 0) {
        return rc;
    }
    rc = write_account_file(tmp, a);
    if (rc < 0) {
        remove_tree(tmp);
        return rc == STORE_ENOENT ? STORE_EIO : rc;
    }
    if (rename(tmp, dir) < 0) {
        int err = errno;
        remove_tree(tmp);
        if (err == EEXIST || err == ENOTEMPTY || err == ENOTDIR || err == EISDIR) {
            return STORE_EEXIST;
        }
        errno = err;
        return rename_fail(tmp, dir);
    }
    return fsync_dir(accounts_dir);
}

/* Replace the credentials of an existing account; never create one: a
 * password change racing a deletion (xmppd passwd beside xmppd deluser, or
 * beside an in-band cancel) must not bring the deleted account back.
 * STORE_ENOENT when there is no such account (or it went meanwhile). */
COLD int store_account_put(const char *bare, const struct store_account *a)
{
    char dir[PATH_MAX];
    if (!account_valid(a) || account_dir(bare, dir, sizeof(dir)) < 0) {
        return STORE_EINVAL;
    }
    if (!is_dir(dir)) {
        return STORE_ENOENT;
    }
    return write_account_file(dir, a);
}

int store_account_get(const char *bare, struct store_account *a)
{
    char dir[PATH_MAX], path[PATH_MAX];
    char *data = NULL;
    size_t len = 0;
    memset(a, 0, sizeof(*a));
    if (account_dir(bare, dir, sizeof(dir)) < 0 ||
        path_fmt(path, sizeof(path), "%s/%s", dir, ACCOUNT_FILE) < 0) {
        return STORE_ENOENT; /* a name we cannot store cannot exist */
    }
    int rc = store_read_file(path, &data, &len, ACCOUNT_FILE_MAX);
    if (rc == STORE_ENOENT) {
        /* The directory only ever appears with its account file inside, so a
         * directory without one had that file renamed aside as damaged. */
        return is_dir(dir) ? STORE_ECORRUPT : STORE_ENOENT;
    }
    if (rc == STORE_EINVAL) {
        quarantine(path, "too large");
        return STORE_ECORRUPT;
    }
    if (rc < 0) {
        return rc;
    }
    rc = account_parse(data, len, a);
    sasl_wipe(data, len); /* not memset: dead before free, the compiler drops it */
    free(data);
    if (rc == -2) {
        memset(a, 0, sizeof(*a));
        return newer_version(path);
    }
    if (rc < 0) {
        memset(a, 0, sizeof(*a));
        quarantine(path, "does not parse");
        return STORE_ECORRUPT;
    }
    return 0;
}

#ifdef __linux__
COLD int store_watch_removals(void)
{
    if (!accounts_dir[0]) {
        return -1;
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log_warn("store: inotify: %s", strerror(errno));
        return -1;
    }
    /* A removal renames the account's directory to a tombstone (moved from);
     * a directory removed by hand is deleted. */
    if (inotify_add_watch(fd, accounts_dir, IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR) < 0) {
        log_warn("store: inotify watch on %s: %s", accounts_dir, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

COLD int store_removals_read(int fd, void (*fn)(const char *bare, void *ud), void *ud)
{
    _Alignas(struct inotify_event) char ev[4096];
    int lost = 0;
    for (;;) {
        ssize_t n = read(fd, ev, sizeof(ev));
        if (n <= 0) {
            return lost; /* EAGAIN: all read */
        }
        for (char *p = ev; p < ev + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            char bare[NAME_MAX + 1];
            if (e->mask & IN_Q_OVERFLOW) {
                lost = 1;
            } else if (e->len && e->name[0] != '.' && (e->mask & IN_ISDIR) &&
                       unescape_name(e->name, bare, sizeof(bare)) == 0) {
                fn(bare, ud);
            }
            p += sizeof(*e) + e->len;
        }
    }
}
#else
COLD int store_watch_removals(void)
{
    return -1;
}

COLD int store_removals_read(int fd, void (*fn)(const char *bare, void *ud), void *ud)
{
    (void)fd;
    (void)fn;
    (void)ud;
    return 1;
}
#endif

COLD int store_accounts_changed(void)
{
    static struct timespec seen;
    static nlink_t seen_links;
    static int have;
    struct stat st;
    if (!accounts_dir[0] || stat(accounts_dir, &st) < 0) {
        return 0;
    }
    /* The link count too: two changes within one tick of the file system's
     * clock can leave the modification time as it was. */
    int changed = have && (st.st_mtim.tv_sec != seen.tv_sec ||
                           st.st_mtim.tv_nsec != seen.tv_nsec || st.st_nlink != seen_links);
    seen = st.st_mtim;
    seen_links = st.st_nlink;
    have = 1;
    return changed;
}

int store_account_exists(const char *bare)
{
    char dir[PATH_MAX];
    if (account_dir(bare, dir, sizeof(dir)) < 0) {
        return 0;
    }
    return is_dir(dir);
}

static void olog_settle(void);
static void arc_settle(void);
static int doc_read(const char *path, char **data, size_t *len, size_t maxlen);
static int accounts_scan(int (*pick)(const char *name, char *out, size_t outsz), char ***names,
                         size_t *count);

/* Rename the account to a hidden tombstone first: from then on it does not
 * exist for any lookup, and a crash mid-removal leaves only a tombstone that
 * store_init finishes off, never half an account that looks valid. Before
 * that, an account with a roster gets an "owner" file naming it, so that the
 * tombstone can keep the roster for the server: the contacts' rosters are
 * tidied from it (RFC 6121 subscriptions cancelled) by whoever runs the server,
 * now or at its next start (store_removed_each). */
COLD int store_account_delete(const char *bare)
{
    olog_settle(); /* no waiting log may point into the removed tree */
    arc_settle();
    char dir[PATH_MAX], tomb[PATH_MAX], path[PATH_MAX];
    if (account_dir(bare, dir, sizeof(dir)) < 0) {
        return STORE_ENOENT;
    }
    if (!is_dir(dir)) {
        return STORE_ENOENT;
    }
    if (path_fmt(path, sizeof(path), "%s/" ROSTER_DOC, dir) == 0 && access(path, F_OK) == 0 &&
        path_fmt(path, sizeof(path), "%s/" OWNER_FILE, dir) == 0) {
        int rc = store_write_atomic(path, bare, strlen(bare), 0600);
        if (rc < 0) {
            return rc; /* ENOENT: deleted concurrently */
        }
    }
    for (int tries = 0; tries < 100; tries++) {
        if (temp_name(tomb, DEL_PREFIX) < 0) {
            return STORE_EINVAL;
        }
        /* rename() would replace an empty directory, so check first; a name
         * with our pid and counter is only ever a leftover of a dead process. */
        if (access(tomb, F_OK) == 0) {
            continue;
        }
        if (rename(dir, tomb) == 0) {
            break;
        }
        if (errno == ENOENT) {
            return STORE_ENOENT; /* deleted concurrently */
        }
        return rename_fail(dir, tomb);
    }
    int rc = fsync_dir(accounts_dir);
    if (rc < 0) {
        return rc;
    }
    /* The account is gone now; failing to free its space is logged, and the
     * tombstone is retried by store_init on the next start. */
    if (remove_files_retry(tomb, tomb_keeps) == 0) {
        fsync_dir(accounts_dir);
    }
    return 0;
}

/* One tombstone waiting with a roster: hand it to fn, then let it go. */
COLD static void removed_one(const char *tomb, void (*fn)(const char *, char *, size_t, void *),
                             void *ud)
{
    char owner_path[PATH_MAX], roster_path[PATH_MAX], esc[NAME_MAX + 1];
    char *owner = NULL, *roster = NULL; /* owner: the bare JID, NUL-terminated */
    size_t olen = 0, rlen = 0;
    if (path_fmt(owner_path, sizeof(owner_path), "%s/" OWNER_FILE, tomb) < 0 ||
        path_fmt(roster_path, sizeof(roster_path), "%s/" ROSTER_DOC, tomb) < 0) {
        return;
    }
    int rc = store_read_file(owner_path, &owner, &olen, NAME_MAX);
    if (rc == 0 && olen > 0 && strlen(owner) == olen && !strchr(owner, '\n') &&
        escape_name(owner, esc, sizeof(esc)) == 0) {
        rc = doc_read(roster_path, &roster, &rlen, STORE_RECORD_MAX);
        if (rc == 0) {
            fn(owner, roster, rlen, ud);
        } else if (rc != STORE_ENOENT) {
            log_error("store: roster of deleted account %s unreadable (%d): its contacts "
                      "keep their subscriptions",
                      owner, rc);
        }
    } else if (rc != STORE_ENOENT) {
        log_error("store: %s names no account; its roster is dropped", owner_path);
    }
    free(owner);
    free(roster);
    if (rc == STORE_ENOENT && access(tomb, F_OK) < 0) {
        return; /* another process took it meanwhile */
    }
    remove_files(tomb, NULL); /* non-empty: its deleter is still at work, and finishes */
}

/* A tombstone with an owner: work for store_removed_each. */
COLD static int pick_tomb(const char *name, char *out, size_t outsz)
{
    char owner[PATH_MAX];
    return strncmp(name, DEL_PREFIX, strlen(DEL_PREFIX)) == 0 &&
           path_fmt(out, outsz, "%s/%s", accounts_dir, name) == 0 &&
           path_fmt(owner, sizeof(owner), "%s/" OWNER_FILE, out) == 0 && access(owner, F_OK) == 0;
}

COLD int store_removed_each(void (*fn)(const char *bare, char *roster, size_t len, void *ud),
                            void *ud)
{
    char **tombs = NULL;
    size_t n = 0;
    int rc = accounts_scan(pick_tomb, &tombs, &n);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            removed_one(tombs[i], fn, ud);
        }
        free(tombs[i]);
    }
    free(tombs);
    if (rc == 0 && n) {
        fsync_dir(accounts_dir);
    }
    return rc;
}

COLD static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct scan_ctx {
    int (*pick)(const char *name, char *out, size_t outsz);
    char **v;
    size_t n, cap;
};

COLD static int scan_one(const char *name, void *ud)
{
    struct scan_ctx *c = ud;
    char out[PATH_MAX];
    if (!c->pick(name, out, sizeof(out))) {
        return 0;
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        char **nv = realloc(c->v, ncap * sizeof(*nv));
        if (!nv) {
            return STORE_EIO;
        }
        c->v = nv;
        c->cap = ncap;
    }
    if ((c->v[c->n] = strdup(out)) == NULL) {
        return STORE_EIO;
    }
    c->n++;
    return 0;
}

/* The entries of dir that pick accepts, each as the string pick wrote
 * (malloc'd, in *names; the caller frees them and the array). */
COLD static int dir_scan(const char *dir, int (*pick)(const char *name, char *out, size_t outsz),
                         char ***names, size_t *count)
{
    struct scan_ctx c = {pick, NULL, 0, 0};
    int rc = dir[0] ? dir_each(dir, 0, scan_one, &c) : STORE_EINVAL;
    *names = c.v;
    *count = c.n;
    return rc;
}

/* The entries of accounts/ that pick accepts (dir_scan). */
COLD static int accounts_scan(int (*pick)(const char *name, char *out, size_t outsz), char ***names,
                              size_t *count)
{
    return dir_scan(accounts_dir, pick, names, count);
}

/* A visible account directory: its bare JID. */
COLD static int pick_account(const char *name, char *out, size_t outsz)
{
    char p[PATH_MAX];
    if (name[0] == '.') {
        return 0; /* ".", "..", in-progress creations and tombstones */
    }
    if (unescape_name(name, out, outsz) < 0) {
        log_warn("store: ignoring %s/%s: not an account name", accounts_dir, name);
        return 0;
    }
    return path_fmt(p, sizeof(p), "%s/%s", accounts_dir, name) == 0 && is_dir(p);
}

static int scan_sorted(const char *dir, int (*pick)(const char *name, char *out, size_t outsz),
                       int (*fn)(const char *name, void *ud), void *ud);

COLD int store_account_list(int (*fn)(const char *bare, void *ud), void *ud)
{
    return scan_sorted(accounts_dir, pick_account, fn, ud);
}

/* fn(name) for each entry of dir that pick accepts, in sorted order, until
 * fn returns non-zero. */
COLD static int scan_sorted(const char *dir, int (*pick)(const char *name, char *out, size_t outsz),
                            int (*fn)(const char *name, void *ud), void *ud)
{
    char **names = NULL;
    size_t n = 0;
    int rc = dir_scan(dir, pick, &names, &n);
    if (rc == 0 && n > 0) {
        qsort(names, n, sizeof(*names), cmp_str);
        for (size_t i = 0; i < n; i++) {
            if (fn(names[i], ud) != 0) {
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- documents ---- */

static int doc_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > DOC_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* Resolve account dir and document path; STORE_ENOENT when the account is absent. */
static int doc_path(const char *bare, const char *name, char *dir, char *path, size_t sz)
{
    if (!doc_name_valid(name)) {
        return STORE_EINVAL;
    }
    if (account_dir(bare, dir, sz) < 0) {
        return STORE_ENOENT;
    }
    if (path_fmt(path, sz, "%s/%s%s", dir, DOC_PREFIX, name) < 0) {
        return STORE_EINVAL;
    }
    return 0;
}

/* Writers check that the account exists first: a document is never created
 * for an account that does not exist. Readers and the lazy writer need not:
 * opening a file in a missing directory fails with ENOENT just the same,
 * which saves a stat on every roster, vCard or last-activity access. */
static int doc_path_checked(const char *bare, const char *name, char *dir, char *path, size_t sz)
{
    int rc = doc_path(bare, name, dir, path, sz);
    return rc == 0 && !is_dir(dir) ? STORE_ENOENT : rc;
}

/* Document file: "xmppd-doc 1 <len> <crc32 as 8 hex digits>\n" then len payload
 * bytes. The rename makes a torn write impossible; the length and checksum
 * catch truncation and bit rot, which would otherwise hand garbage to a client. */
/* The header of a document of len payload bytes with this checksum, into
 * out (DOC_HEADER_MAX bytes); its length, or -1 when it does not fit. */
static int doc_header(char *out, unsigned long long len, unsigned long crc)
{
    int n = snprintf(out, DOC_HEADER_MAX, DOC_HEADER_PREFIX "1 %llu %08lx\n", len, crc);
    return n < 0 || n >= DOC_HEADER_MAX ? -1 : n;
}

/* Read and check one document file (path): the payload, malloc'd and
 * NUL-terminated, into *data. A damaged file is set aside as *.bad. */
static int doc_read(const char *path, char **data, size_t *len, size_t maxlen)
{
    char *raw = NULL;
    size_t rawlen = 0;
    *data = NULL;
    *len = 0;
    int rc;
    if (maxlen > SIZE_MAX - DOC_HEADER_MAX) {
        maxlen = SIZE_MAX - DOC_HEADER_MAX;
    }
    rc = store_read_file(path, &raw, &rawlen, maxlen + DOC_HEADER_MAX);
    if (rc < 0) {
        return rc;
    }
    char *nl = memchr(raw, '\n', rawlen < DOC_HEADER_MAX ? rawlen : DOC_HEADER_MAX);
    unsigned long long plen = 0;
    unsigned long crc = 0;
    int version = 0;
    char canon[DOC_HEADER_MAX];
    if (!nl) {
        goto bad;
    }
    *nl = '\0';
    /* Parse loosely, then insist the header is byte for byte what put writes. */
    int got = sscanf(raw, DOC_HEADER_PREFIX "%d %llu %lx", &version, &plen, &crc);
    if (got >= 1 && version > 1) {
        free(raw);
        return newer_version(path);
    }
    size_t hdr = (size_t)(nl - raw) + 1;
    if (got != 3 || version != 1 || doc_header(canon, plen, crc) != (int)hdr ||
        memcmp(canon, raw, hdr - 1) != 0 || plen != rawlen - hdr) {
        goto bad;
    }
    if (plen > maxlen) {
        free(raw);
        return STORE_EINVAL;
    }
    if (store_crc32(0, raw + hdr, (size_t)plen) != (uint32_t)crc) {
        goto bad;
    }
    /* Hand back the payload in place: shift it over the header. */
    memmove(raw, raw + hdr, (size_t)plen);
    raw[plen] = '\0';
    *data = raw;
    *len = (size_t)plen;
    return 0;
bad:
    free(raw);
    quarantine(path, "bad header, length or checksum");
    return STORE_ECORRUPT;
}

int store_doc_get(const char *bare, const char *name, char **data, size_t *len, size_t maxlen)
{
    char dir[PATH_MAX], path[PATH_MAX];
    *data = NULL;
    *len = 0;
    int rc = doc_path(bare, name, dir, path, sizeof(dir));
    return rc < 0 ? rc : doc_read(path, data, len, maxlen);
}

static int doc_write_at(const char *path, const void *data, size_t len, int durable);

static int doc_write(const char *bare, const char *name, const void *data, size_t len,
                     int durable)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc = durable ? doc_path_checked(bare, name, dir, path, sizeof(dir))
                     : doc_path(bare, name, dir, path, sizeof(dir));
    return rc < 0 ? rc : doc_write_at(path, data, len, durable);
}

/* A document file at path: the header, then the payload. */
static int doc_write_at(const char *path, const void *data, size_t len, int durable)
{
    char hdr[DOC_HEADER_MAX];
    int rc;
    int h = doc_header(hdr, len, store_crc32(0, data, len));
    if (h < 0) {
        return STORE_EINVAL;
    }
    char *buf = malloc((size_t)h + len);
    if (!buf) {
        return STORE_EIO;
    }
    memcpy(buf, hdr, (size_t)h);
    if (len) {
        memcpy(buf + h, data, len);
    }
    rc = durable ? store_write_atomic(path, buf, (size_t)h + len, 0600)
                 : overwrite_file(path, buf, (size_t)h + len);
    free(buf);
    return rc;
}

int store_doc_put(const char *bare, const char *name, const void *data, size_t len)
{
    return doc_write(bare, name, data, len, 1);
}

int store_doc_put_lazy(const char *bare, const char *name, const void *data, size_t len)
{
    return doc_write(bare, name, data, len, 0);
}

static int doc_unlink(const char *dir, const char *path);

/* Returns STORE_ENOENT when the account or the document is absent. */
COLD int store_doc_delete(const char *bare, const char *name)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc = doc_path_checked(bare, name, dir, path, sizeof(dir));
    return rc < 0 ? rc : doc_unlink(dir, path);
}

COLD int store_pep_doc_name(const char *name, char *out, size_t outsz)
{
    unsigned char h[32];
    if (outsz < 4 + 32 + 1 || tls_hash(TLS_SHA256, name, strlen(name), h) != 0) {
        return -1;
    }
    memcpy(out, "pep-", 4);
    tls_hex(out + 4, h, 16);
    return 0;
}

/* Remove a document file and make that durable. */
COLD static int doc_unlink(const char *dir, const char *path)
{
    if (unlink(path) < 0) {
        if (errno == ENOENT) {
            return STORE_ENOENT;
        }
        return io_fail("remove", path);
    }
    return fsync_dir(dir);
}

/* ---- offline messages ----
 * offline.log = "xmppd-offline 1\n", then records:
 *   magic "OFFL" | len (u32 big-endian) | crc32(len bytes + payload) (u32 BE) | payload
 * A crash during an append can leave a torn record at the end; a scan stops at
 * the first record that is incomplete or fails its checksum. */

struct olog_scan {
    off_t good_end;  /* end of the last intact record (0: no valid header yet) */
    off_t file_size; /* bytes in the file */
    int count;       /* intact records */
};

enum { OLOG_OK = 0, OLOG_BAD_HEADER = 1, OLOG_NEWER = 2, OLOG_STOPPED = REC_STOP };

struct olog_walk {
    int (*fn)(const void *rec, size_t len, void *ud);
    void *ud;
    int count;
};

static int olog_one(const unsigned char *p, uint32_t len, off_t off, void *ud)
{
    struct olog_walk *w = ud;
    (void)off;
    w->count++;
    return w->fn && w->fn(p, len, w->ud) != 0 ? REC_STOP : REC_NEXT;
}

/* Walk the log from the start, calling fn (may be NULL) for each intact record.
 * Returns OLOG_* or STORE_EIO. Never writes. */
static int olog_scan(int fd, const char *path, struct olog_scan *s,
                     int (*fn)(const void *rec, size_t len, void *ud), void *ud)
{
    unsigned char hdr[OFFLINE_HEADER_LEN];
    struct stat st;
    struct olog_walk w = {fn, ud, 0};

    memset(s, 0, sizeof(*s));
    if (fstat(fd, &st) < 0) {
        return io_fail("stat", path);
    }
    s->file_size = st.st_size;
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    if (n < 0) {
        return io_fail("read", path);
    }
    if (n < OFFLINE_HEADER_LEN) {
        /* A header cut short by a crash while creating the file is a torn tail
         * like any other; anything else is not our file. */
        return memcmp(hdr, OFFLINE_HEADER, (size_t)n) == 0 ? OLOG_OK : OLOG_BAD_HEADER;
    }
    if (memcmp(hdr, OFFLINE_HEADER, OFFLINE_HEADER_LEN) != 0) {
        /* "xmppd-offline N" with N > 1: written by a newer xmppd. */
        size_t pl = strlen(OFFLINE_VERSION_PREFIX);
        int v = 0;
        for (size_t i = pl; i < sizeof(hdr) && hdr[i] >= '0' && hdr[i] <= '9' && v < 1000; i++) {
            v = v * 10 + (hdr[i] - '0');
        }
        return memcmp(hdr, OFFLINE_VERSION_PREFIX, pl) == 0 && v > 1 ? OLOG_NEWER
                                                                     : OLOG_BAD_HEADER;
    }
    int rc = rec_walk(fd, path, OFFLINE_HEADER_LEN, s->file_size, offline_magic, 0,
                      STORE_RECORD_MAX, olog_one, &w, &s->good_end);
    s->count = w.count;
    return rc;
}

/* The directory of an account that exists, and its log's path (both
 * PATH_MAX); STORE_ENOENT for no account. */
static int olog_path(const char *bare, char *dir, char *path)
{
    if (account_dir(bare, dir, PATH_MAX) < 0 || !is_dir(dir)) {
        return STORE_ENOENT;
    }
    return path_fmt(path, PATH_MAX, "%s/" OFFLINE_FILE, dir) < 0 ? STORE_EINVAL : 0;
}

/* Open the account's log for reading; STORE_ENOENT for no account, 1 for no log. */
static int olog_open_read(const char *bare, char *dir, char *path, int *fd)
{
    *fd = -1;
    int rc = olog_path(bare, dir, path);
    if (rc < 0) {
        return rc;
    }
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT) {
            return is_dir(dir) ? 1 : STORE_ENOENT;
        }
        return io_fail("open", path);
    }
    return 0;
}

static int olog_scan_result(int rc, const char *path)
{
    if (rc == OLOG_BAD_HEADER) {
        quarantine(path, "bad header");
        return STORE_ECORRUPT;
    }
    if (rc == OLOG_NEWER) {
        return newer_version(path);
    }
    return rc < 0 ? rc : 0;
}

/* store_offline_read, and the count of intact records seen (0 without a log). */
static int olog_read(const char *bare, int (*fn)(const void *rec, size_t len, void *ud), void *ud,
                     int *count)
{
    olog_settle();
    char dir[PATH_MAX], path[PATH_MAX];
    int fd;
    struct olog_scan s = {0, 0, 0};
    int rc = olog_open_read(bare, dir, path, &fd);
    if (rc == 0) {
        rc = olog_scan(fd, path, &s, fn, ud);
        close(fd);
        rc = olog_scan_result(rc, path);
    }
    *count = s.count;
    return rc == 1 ? 0 : rc;
}

int store_offline_count(const char *bare)
{
    int n;
    int rc = olog_read(bare, NULL, NULL, &n);
    return rc < 0 ? rc : n;
}

int store_offline_read(const char *bare, int (*fn)(const void *rec, size_t len, void *ud),
                       void *ud)
{
    int n;
    return olog_read(bare, fn, ud, &n);
}

/* Logs this process appended to lately: their record count and length, so
 * that an append need not read the whole log again to count it (each message
 * to a user who stays away would cost more than the last: perf showed the
 * scan at a third of the server's CPU in the offline benchmark). An entry is
 * used only while the file is exactly as we left it: same inode, size and
 * modification time; anything else means a scan. Only the server process
 * writes offline logs; the command-line tools never do. */
#define OLOG_KNOWN_MAX 64

struct olog_known {
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int count;
};
static struct olog_known olog_known[OLOG_KNOWN_MAX];
static unsigned olog_known_next;

static struct olog_known *olog_known_find(const char *path)
{
    for (int i = 0; i < OLOG_KNOWN_MAX; i++) {
        if (olog_known[i].path && strcmp(olog_known[i].path, path) == 0) {
            return &olog_known[i];
        }
    }
    return NULL;
}

static void olog_forget(const char *path)
{
    struct olog_known *k = olog_known_find(path);
    if (k) {
        free(k->path);
        memset(k, 0, sizeof(*k));
    }
}

static int same_file(const struct olog_known *k, const struct stat *st)
{
    return k->dev == st->st_dev && k->ino == st->st_ino && k->size == st->st_size &&
           k->mtime.tv_sec == st->st_mtim.tv_sec && k->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* olog_scan without callback, from the table when the file is unchanged. */
static int olog_count(int fd, const char *path, struct olog_scan *s)
{
    struct stat st;
    struct olog_known *k = olog_known_find(path);
    if (k && fstat(fd, &st) == 0 && same_file(k, &st)) {
        s->good_end = s->file_size = st.st_size;
        s->count = k->count;
        return OLOG_OK;
    }
    return olog_scan(fd, path, s, NULL, NULL);
}

static void olog_remember(const char *path, int fd, int count)
{
    struct stat st;
    struct olog_known *k = olog_known_find(path);
    if (fstat(fd, &st) < 0) {
        olog_forget(path);
        return;
    }
    if (!k) {
        k = &olog_known[olog_known_next++ % OLOG_KNOWN_MAX];
        free(k->path);
        k->path = strdup(path);
        if (!k->path) {
            memset(k, 0, sizeof(*k));
            return;
        }
    }
    k->dev = st.st_dev;
    k->ino = st.st_ino;
    k->size = st.st_size;
    k->mtime = st.st_mtim;
    k->count = count;
}

/* fsync a log, and for a log just made the directory that names it. */
static int olog_fsync(int fd, const char *path, int created)
{
    if (fsync(fd) < 0) {
        return io_fail("fsync", path);
    }
    return created ? fsync_parent(path) : 0; /* logs */
}

/* The senders of records that failed are told they were not stored, so the
 * records must not be delivered later either: cut the log back to where it
 * ended before them (all of a record after a short write or a failed fsync),
 * or remove it if they made it. If that fails too, what remains is a torn
 * tail (cut at the next append) or whole records (STORAGE.md). */
static void olog_take_back(int fd, const char *path, off_t end, int created)
{
    olog_forget(path);
    if (created ? unlink(path) < 0 : ftruncate(fd, end) < 0) {
        log_error("store: %s: cannot take back records that were not stored: %s", path,
                  strerror(errno));
    }
}

/* Deferred appends: a group commit. The server appends a loop turn's offline
 * messages without fsync and syncs each log they went to once, before that
 * turn's output is written (server.c -> im_before_output): nobody hears
 * anything from the server after a message before it is on disk, at one fsync
 * per log and turn instead of one per message (perf: fsync was nine tenths of
 * the offline benchmark's time). Each waiting log keeps its descriptor, and
 * where it ended before, so that a failed fsync can take the records back. */
#define OLOG_PENDING_MAX 64

struct olog_pending {
    char *bare;
    char *path;
    int fd;
    off_t start; /* the log's length before the first deferred append */
    int created; /* that append made the file: a failure removes it */
};
static struct olog_pending olog_pending[OLOG_PENDING_MAX];
static int olog_npending;
static store_synced_fn olog_synced;
static void *olog_synced_ud;

void store_offline_on_sync(store_synced_fn fn, void *ud)
{
    olog_synced = fn;
    olog_synced_ud = ud;
}

int store_offline_unsynced(void)
{
    return olog_npending;
}

static struct olog_pending *olog_pending_find(const char *path)
{
    for (int i = 0; i < olog_npending; i++) {
        if (strcmp(olog_pending[i].path, path) == 0) {
            return &olog_pending[i];
        }
    }
    return NULL;
}

static int olog_pending_add(const char *bare, const char *path, int fd, off_t start, int created)
{
    struct olog_pending *p = &olog_pending[olog_npending];
    p->bare = strdup(bare);
    p->path = strdup(path);
    if (!p->bare || !p->path) {
        free(p->bare);
        free(p->path);
        return -1;
    }
    p->fd = fd;
    p->start = start;
    p->created = created;
    olog_npending++;
    return 0;
}

/* The rest of a log's sync once its fsync gave err (0 or an errno). */
static int olog_sync_done(struct olog_pending *p, int err)
{
    int rc = 0;
    if (err) {
        errno = err;
        rc = io_fail("fsync", p->path);
    } else if (p->created) {
        rc = fsync_parent(p->path);
    }
    if (rc < 0) {
        olog_take_back(p->fd, p->path, p->start, p->created); /* the callback bounces */
    }
    close(p->fd);
    return rc;
}

int store_offline_sync(void)
{
    int failed = 0;
    while (olog_npending > 0) {
        /* Off the table before the callbacks, which may route more stanzas
         * (the next round takes those). Every log is fsynced at once
         * (fsync_many), and every failed one cut back, before the first
         * callback: a stanza a callback stores cannot be cut with them. */
        struct olog_pending p[OLOG_PENDING_MAX];
        int fds[OLOG_PENDING_MAX], err[OLOG_PENDING_MAX], ok[OLOG_PENDING_MAX];
        size_t n = (size_t)olog_npending;
        memcpy(p, olog_pending, n * sizeof(*p));
        olog_npending = 0;
        for (size_t i = 0; i < n; i++) {
            fds[i] = p[i].fd;
        }
        fsync_many(fds, err, n);
        for (size_t i = n; i-- > 0;) {
            ok[i] = olog_sync_done(&p[i], err[i]) == 0;
        }
        for (size_t i = n; i-- > 0;) {
            failed += !ok[i];
            if (olog_synced) {
                olog_synced(p[i].bare, ok[i], olog_synced_ud);
            }
            free(p[i].bare);
            free(p[i].path);
        }
    }
    return failed;
}

/* Whatever reads, rewrites or removes a log sees only synced records: a
 * message delivered, or moved to a new file, could not be taken back. */
static void olog_settle(void)
{
    if (olog_npending > 0) {
        store_offline_sync();
    }
}

static int olog_append(const char *bare, const void *rec, size_t len, int max_msgs, int defer)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int created = 0;
    if (len > STORE_RECORD_MAX || (len && !rec)) {
        return STORE_EINVAL;
    }
    int rc = olog_path(bare, dir, path);
    if (rc < 0) {
        return rc;
    }
    struct olog_pending *pending = defer ? olog_pending_find(path) : NULL;
    if (defer && !pending && olog_npending == OLOG_PENDING_MAX) {
        store_offline_sync();
    }
    /* O_APPEND: every write lands at the end, whatever the scan below read
     * (with pread) on the same descriptor. */
    int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (max_msgs <= 0) {
            return STORE_EQUOTA; /* no need to create a file to refuse */
        }
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        created = 1;
    }
    if (fd < 0) {
        if (errno == ENOENT) {
            return STORE_ENOENT; /* the account was deleted meanwhile */
        }
        return io_fail("open", path);
    }
    struct olog_scan s;
    rc = olog_count(fd, path, &s);
    if (rc == OLOG_BAD_HEADER) {
        /* Keep the damaged log for a human and start a new one, so this
         * message is stored rather than bounced. A waiting descriptor of
         * this file is settled first: nothing may be taken back from the
         * file set aside, or bounced for it, later. */
        close(fd);
        if (pending) {
            store_offline_sync();
            pending = NULL;
        }
        quarantine(path, "bad header");
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            io_fail("create", path);
            return errno == ENOENT ? STORE_ENOENT : STORE_EIO;
        }
        created = 1;
        rc = olog_scan(fd, path, &s, NULL, NULL);
    }
    if (created && pending) {
        /* The waiting log's file went away behind our back (a tool removed
         * the account): the waiting descriptor is not this file's, so this
         * append is synced on its own. */
        defer = 0;
    }
    if (rc != OLOG_OK) {
        close(fd);
        return rc == OLOG_NEWER ? olog_scan_result(rc, path) : STORE_EIO;
    }
    if (s.count >= max_msgs) {
        close(fd);
        return STORE_EQUOTA;
    }
    if (s.file_size > s.good_end) {
        log_warn("store: %s: dropping %lld bytes of torn or corrupt tail", path,
                 (long long)(s.file_size - s.good_end));
        if (ftruncate(fd, s.good_end) < 0) {
            io_fail("truncate", path);
            close(fd);
            return STORE_EIO;
        }
    }
    /* One write() for header (if new) + record keeps a crash's damage to one
     * torn tail, which the next scan ignores and the next append cuts off. */
    size_t head = s.good_end == 0 ? OFFLINE_HEADER_LEN : 0;
    size_t total = head + OFFLINE_REC_HDR + len;
    unsigned char *out = malloc(total);
    if (!out) {
        close(fd);
        return STORE_EIO;
    }
    memcpy(out, OFFLINE_HEADER, head);
    if (len) {
        memcpy(out + head + OFFLINE_REC_HDR, rec, len);
    }
    rec_seal(out + head, offline_magic, (uint32_t)len);
    rc = 0;
    int kept = 0; /* fd now belongs to the pending table */
    if (write_all(fd, out, total) < 0) {
        rc = io_fail("append to", path);
    } else if (defer) {
        kept = !pending && olog_pending_add(bare, path, fd, s.good_end, created) == 0;
        if (!pending && !kept) {
            rc = STORE_EIO;
        }
    } else {
        rc = olog_fsync(fd, path, created);
    }
    free(out);
    if (rc == 0) {
        olog_remember(path, fd, s.count + 1);
    } else {
        olog_take_back(fd, path, s.good_end, created); /* the caller bounces */
    }
    /* After a successful fsync the record is on disk whatever close says
     * (Linux closes the descriptor in any case): log, but report it stored,
     * or the sender would get an error for a message that is delivered. */
    if (!kept && close(fd) < 0) {
        log_warn("store: close %s: %s", path, strerror(errno));
    }
    return rc;
}

int store_offline_append(const char *bare, const void *rec, size_t len, int max_msgs)
{
    return olog_append(bare, rec, len, max_msgs, 0);
}

int store_offline_append_deferred(const char *bare, const void *rec, size_t len, int max_msgs)
{
    return olog_append(bare, rec, len, max_msgs, 1);
}

struct olog_head {
    int want;     /* records to drop */
    int seen;
    uint32_t crc; /* over the payloads of those records */
};

static int olog_head_cb(const void *rec, size_t len, void *ud)
{
    struct olog_head *h = ud;
    h->crc = store_crc32(h->crc, rec, len);
    return ++h->seen == h->want;
}

/* Replace path with hdr and then bytes [off, size) of from: a new file
 * (path.tmp, fsynced) renamed over it, so that after a crash path is the old
 * file or the new one. The caller fsyncs the directory. 0 or STORE_EIO. */
COLD static int rewrite_tail(int from, off_t off, off_t size, const char *path, const void *hdr,
                             size_t hdrlen)
{
    char tmp[PATH_MAX], buf[16384];
    if (path_fmt(tmp, sizeof(tmp), "%s.tmp", path) < 0) {
        return STORE_EIO;
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -1 : write_all(fd, hdr, hdrlen);
    while (rc == 0 && off < size) {
        size_t want = size - off > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)(size - off);
        ssize_t n = pread(from, buf, want, off);
        if (n <= 0) {
            rc = -1;
            break;
        }
        rc = write_all(fd, buf, (size_t)n);
        off += n;
    }
    if (rc == 0 && fsync(fd) < 0) {
        rc = -1;
    }
    if (fd >= 0 && close(fd) < 0) {
        rc = -1;
    }
    if (rc < 0 || rename(tmp, path) < 0) {
        io_fail("rewrite", path);
        unlink(tmp);
        return STORE_EIO;
    }
    return 0;
}

COLD int store_offline_drop_head(const char *bare, int n, uint32_t crc)
{
    olog_settle();
    char dir[PATH_MAX], path[PATH_MAX];
    int fd;
    int rc = olog_open_read(bare, dir, path, &fd);
    if (rc != 0 || n <= 0) {
        if (fd >= 0) {
            close(fd);
        }
        return rc == 1 ? 0 : rc;
    }
    olog_forget(path);
    struct olog_scan s;
    struct olog_head h = {n, 0, 0};
    rc = olog_scan(fd, path, &s, olog_head_cb, &h);
    if (rc != OLOG_STOPPED || h.crc != crc) {
        /* Not the records that were delivered (or fewer of them): drop
         * nothing. At worst they come again; nothing is lost. */
        close(fd);
        return rc < 0 ? rc : STORE_EINVAL;
    }
    if (s.good_end >= s.file_size) {
        close(fd);
        return store_offline_clear(bare);
    }
    /* A rename replaces the log whole: after a crash either every record is
     * still there (the head comes again) or only the rest is. */
    rc = rewrite_tail(fd, s.good_end, s.file_size, path, OFFLINE_HEADER, OFFLINE_HEADER_LEN);
    close(fd);
    return rc < 0 ? rc : fsync_dir(dir);
}

/* One unlink is atomic: after a crash either the whole log or none of it is
 * there. The directory fsync makes the removal itself durable. */
COLD int store_offline_clear(const char *bare)
{
    olog_settle();
    char dir[PATH_MAX], path[PATH_MAX];
    int rc = olog_path(bare, dir, path);
    if (rc < 0) {
        return rc;
    }
    olog_forget(path);
    if (unlink(path) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        return io_fail("remove", path);
    }
    return fsync_dir(dir);
}

/* ---- has a document changed? (PEP caches offline accounts' docs) ---- */

COLD int store_doc_stamp(const char *bare, const char *name, struct store_stamp *out)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct stat st;
    memset(out, 0, sizeof(*out));
    int rc = doc_path(bare, name, dir, path, sizeof(dir));
    if (rc < 0) {
        return rc;
    }
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return STORE_ENOENT;
        }
        return io_fail("stat", path);
    }
    out->dev = (unsigned long long)st.st_dev;
    out->ino = (unsigned long long)st.st_ino;
    out->size = (unsigned long long)st.st_size;
    out->mtime_sec = (long long)st.st_mtim.tv_sec;
    out->mtime_nsec = (long long)st.st_mtim.tv_nsec;
    return STORE_OK;
}

/* ---- message archive (XEP-0313 for accounts; STORAGE.md "Message archive") ----
 * archive.log holds checksummed records in id order after a version line that
 * names its generation; archive.idx holds one fixed-size entry per record
 * after a header naming the same generation, so that queries binary-search by
 * id (= time) and filter by key without reading the log. The log is the
 * truth: an index that is missing, short, torn or of another generation is
 * rebuilt from the log by the next append (readers scan the log meanwhile,
 * and never write). Nothing here knows what a key or a payload means. */
#define ARC_LOG "archive.log"
#define ARC_IDX "archive.idx"
#define ARC_LOG_PREFIX "xmppd-archive "
#define ARC_IDX_PREFIX "xmppd-arcidx "
#define ARC_LOG_HDR 33 /* "xmppd-archive 1 " + 16 hex digits + "\n" */
#define ARC_IDX_HDR 32 /* "xmppd-arcidx 1 " + 16 hex digits + "\n" */
#define ARC_REC_HDR REC_HDR
#define ARC_PAY_HDR 11 /* id[8] flags[1] keylen[2] */
#define ARC_ENT 32     /* id[8] off[8] len[4] keyhash[4] flags[4] crc[4] */
#define ARC_CHUNK 128  /* index entries read at once */
#define ARC_OPEN_MAX 16
/* Expired records go once the oldest is this far past the cutoff, so that a
 * steady stream of expiring records costs one rewrite a day, not one each. */
#define ARC_EXPIRE_SLACK (86400ULL * 1000000ULL)
static const unsigned char arc_magic[4] = {'M', 'A', 'M', 'R'};

struct arc_ent {
    uint64_t id;
    uint64_t off;     /* of the record in the log */
    uint32_t len;     /* of the whole record, header included */
    uint32_t keyhash; /* store_crc32 of its key */
    uint32_t flags;
};

struct arc {
    char bare[NAME_MAX + 1];
    char dir[PATH_MAX], path[PATH_MAX], ipath[PATH_MAX];
    int fd, ifd; /* log and index (ifd -1: no usable index) */
    int writable, created, dirty;
    uint64_t gen;
    off_t log_size, log_end; /* bytes in the log; end of its last intact record */
    uint64_t nidx;           /* entries taken from the index file */
    struct arc_ent *tail;    /* intact records past the index, in memory */
    size_t ntail, captail;
    struct arc_ent chunk[ARC_CHUNK]; /* index entries [cstart, cstart + cn) */
    uint64_t cstart;
    size_t cn;
};

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static uint64_t arc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void arc_hdr(char *out, const char *prefix, size_t len, uint64_t gen)
{
    /* Both headers are one line: the version, the generation, a newline. */
    snprintf(out, len + 1, "%s1 %016llX\n", prefix, (unsigned long long)gen);
}

/* 0 and *gen, 1 for a header cut short by a crash (an empty archive), 2 for a
 * newer version, -1 for anything else. */
static int arc_hdr_parse(const unsigned char *h, ssize_t n, const char *prefix, size_t len,
                         uint64_t *gen)
{
    char want[ARC_LOG_HDR + 1];
    arc_hdr(want, prefix, len, 0);
    size_t pl = strlen(prefix);
    if (n >= 0 && (size_t)n < len) {
        size_t k = (size_t)n < pl + 2 ? (size_t)n : pl + 2;
        return memcmp(h, want, k) == 0 ? 1 : -1;
    }
    if (memcmp(h, prefix, pl) != 0) {
        return -1;
    }
    if (memcmp(h, want, pl + 2) != 0) {
        return h[pl] >= '2' && h[pl] <= '9' ? 2 : -1;
    }
    uint64_t g = 0;
    for (size_t i = pl + 2; i < len - 1; i++) {
        int v = hex_val((char)h[i]);
        if (v < 0) {
            return -1;
        }
        g = g << 4 | (uint64_t)v;
    }
    if (h[len - 1] != '\n') {
        return -1;
    }
    *gen = g;
    return 0;
}

static void arc_ent_encode(unsigned char *p, const struct arc_ent *e)
{
    put_be64(p, e->id);
    put_be64(p + 8, e->off);
    put_be32(p + 16, e->len);
    put_be32(p + 20, e->keyhash);
    put_be32(p + 24, e->flags);
    put_be32(p + 28, store_crc32(0, p, 28));
}

static int arc_ent_decode(const unsigned char *p, struct arc_ent *e)
{
    if (store_crc32(0, p, 28) != get_be32(p + 28)) {
        return -1;
    }
    e->id = get_be64(p);
    e->off = get_be64(p + 8);
    e->len = get_be32(p + 16);
    e->keyhash = get_be32(p + 20);
    e->flags = get_be32(p + 24);
    return 0;
}

/* Read the record of e into buf (at least e->len bytes) and check it whole:
 * magic, length, checksum, id. 0 or -1. */
static int arc_rec_read(int fd, const struct arc_ent *e, unsigned char *buf)
{
    if (e->len < ARC_REC_HDR + ARC_PAY_HDR ||
        pread(fd, buf, e->len, (off_t)e->off) != (ssize_t)e->len) {
        return -1;
    }
    uint32_t plen = get_be32(buf + 4);
    if (memcmp(buf, arc_magic, 4) != 0 || plen != e->len - ARC_REC_HDR ||
        rec_crc(buf, buf + ARC_REC_HDR, plen) != get_be32(buf + 8) ||
        get_be64(buf + ARC_REC_HDR) != e->id) {
        return -1;
    }
    return 0;
}

static int arc_tail_add(struct arc *a, const struct arc_ent *e)
{
    if (a->ntail == a->captail) {
        size_t cap = a->captail ? 2 * a->captail : 64;
        struct arc_ent *t = realloc(a->tail, cap * sizeof(*t));
        if (!t) {
            return -1;
        }
        a->tail = t;
        a->captail = cap;
    }
    a->tail[a->ntail++] = *e;
    return 0;
}

struct arc_walk_ctx {
    struct arc *a;
    uint64_t last; /* id of the last record taken */
};

/* A record of the log (p: its payload) past the index: an entry in the tail,
 * if its id is above the last one's. */
static int arc_scan_one(const unsigned char *p, uint32_t plen, off_t off, void *ud)
{
    struct arc_walk_ctx *c = ud;
    struct arc_ent e = {get_be64(p), (uint64_t)off, plen + ARC_REC_HDR, 0, p[8]};
    size_t klen = (size_t)p[9] << 8 | p[10];
    if (e.id <= c->last || klen > plen - ARC_PAY_HDR) {
        return REC_TORN;
    }
    e.keyhash = store_crc32(0, p + ARC_PAY_HDR, klen);
    if (arc_tail_add(c->a, &e) < 0) {
        return STORE_EIO;
    }
    c->last = e.id;
    return REC_NEXT;
}

/* Walk the log from off to its end, keeping an entry for each intact record
 * whose id is above last; stops at the first that is not (a torn tail). */
static int arc_scan(struct arc *a, off_t off, uint64_t last)
{
    struct arc_walk_ctx c = {a, last};
    return rec_walk(a->fd, a->path, off, a->log_size, arc_magic, ARC_PAY_HDR,
                    ARC_PAY_HDR + STORE_ARC_KEY_MAX + STORE_RECORD_MAX, arc_scan_one, &c,
                    &a->log_end);
}

static void arc_close(struct arc *a)
{
    if (a->fd >= 0) {
        close(a->fd);
    }
    if (a->ifd >= 0) {
        close(a->ifd);
    }
    free(a->tail);
    a->fd = a->ifd = -1;
    a->tail = NULL;
    a->ntail = a->captail = 0;
}

static uint64_t arc_n(const struct arc *a)
{
    return a->nidx + a->ntail;
}

/* Entry i (0 = oldest). 0, or -1 for a damaged index entry. */
static int arc_get(struct arc *a, uint64_t i, struct arc_ent *e)
{
    if (i >= a->nidx) {
        *e = a->tail[i - a->nidx];
        return 0;
    }
    if (i < a->cstart || i >= a->cstart + a->cn) {
        unsigned char raw[ARC_CHUNK * ARC_ENT];
        uint64_t start = i - i % ARC_CHUNK;
        size_t want = a->nidx - start < ARC_CHUNK ? (size_t)(a->nidx - start) : ARC_CHUNK;
        a->cn = 0;
        if (pread(a->ifd, raw, want * ARC_ENT, (off_t)(ARC_IDX_HDR + start * ARC_ENT)) !=
            (ssize_t)(want * ARC_ENT)) {
            return -1;
        }
        for (size_t k = 0; k < want; k++) {
            if (arc_ent_decode(raw + k * ARC_ENT, &a->chunk[k]) < 0) {
                a->chunk[k].len = 0; /* damaged: its record cannot be read */
            }
        }
        a->cstart = start;
        a->cn = want;
    }
    *e = a->chunk[i - a->cstart];
    return e->len ? 0 : -1;
}

/* Whether the index's last entry names the log's record at that place. */
static int arc_idx_last_ok(struct arc *a, struct arc_ent *last)
{
    unsigned char raw[ARC_ENT];
    unsigned char rh[ARC_REC_HDR + 8];
    if (pread(a->ifd, raw, ARC_ENT, (off_t)(ARC_IDX_HDR + (a->nidx - 1) * ARC_ENT)) != ARC_ENT ||
        arc_ent_decode(raw, last) < 0 || last->off < ARC_LOG_HDR ||
        last->len < ARC_REC_HDR + ARC_PAY_HDR || (off_t)(last->off + last->len) > a->log_size ||
        pread(a->fd, rh, sizeof(rh), (off_t)last->off) != (ssize_t)sizeof(rh)) {
        return 0;
    }
    return memcmp(rh, arc_magic, 4) == 0 && get_be32(rh + 4) == last->len - ARC_REC_HDR &&
           get_be64(rh + ARC_REC_HDR) == last->id;
}

/* Do without the index: every entry comes from the log. */
static int arc_index_off(struct arc *a)
{
    if (a->ifd >= 0) {
        close(a->ifd);
        a->ifd = -1;
    }
    a->nidx = 0;
    a->ntail = 0;
    a->cn = 0;
    return arc_scan(a, ARC_LOG_HDR, 0);
}

/* Open the index and take what it holds; the tail after it comes from the
 * log. An index that does not match is not used (ifd -1, nidx 0). */
static int arc_open_index(struct arc *a)
{
    unsigned char h[ARC_IDX_HDR];
    struct stat st;
    uint64_t gen = 0;
    struct arc_ent last = {0, 0, 0, 0, 0};
    a->ifd = open(a->ipath, (a->writable ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC);
    if (a->ifd >= 0 && fstat(a->ifd, &st) == 0 && st.st_size >= ARC_IDX_HDR &&
        pread(a->ifd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
        arc_hdr_parse(h, ARC_IDX_HDR, ARC_IDX_PREFIX, ARC_IDX_HDR, &gen) == 0 && gen == a->gen) {
        a->nidx = (uint64_t)(st.st_size - ARC_IDX_HDR) / ARC_ENT;
        /* A crash may tear the last entry, or leave a whole one of garbage. */
        if (a->nidx > 0 && !arc_idx_last_ok(a, &last)) {
            a->nidx--;
        }
        if (a->nidx == 0 || arc_idx_last_ok(a, &last)) {
            off_t from = a->nidx ? (off_t)(last.off + last.len) : ARC_LOG_HDR;
            return arc_scan(a, from, last.id);
        }
    }
    return arc_index_off(a);
}

/* The directory of an archive: an account's, or a room's (issue 15, at the
 * end of this file). */
static int arc_dir(const char *name, char *out, size_t outsz, int writable);
static int arc_dir_absent(const char *name, int writable);

/* Open bare's archive. Returns 0, 1 when it has none (reader) or STORE_*. A
 * writer creates the log (never the account directory). */
static int arc_open(struct arc *a, const char *bare, int writable)
{
    unsigned char h[ARC_LOG_HDR];
    struct stat st;
    memset(a, 0, sizeof(*a));
    a->fd = a->ifd = -1;
    a->writable = writable;
    if (strlen(bare) > NAME_MAX || arc_dir(bare, a->dir, sizeof(a->dir), writable) < 0 ||
        path_fmt(a->path, sizeof(a->path), "%s/" ARC_LOG, a->dir) < 0 ||
        path_fmt(a->ipath, sizeof(a->ipath), "%s/" ARC_IDX, a->dir) < 0) {
        return STORE_EINVAL;
    }
    strcpy(a->bare, bare);
    if (!is_dir(a->dir)) {
        return arc_dir_absent(bare, writable);
    }
    a->fd = open(a->path, (writable ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC);
    if (a->fd < 0 && errno == ENOENT && writable) {
        a->fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        a->created = 1;
    }
    if (a->fd < 0) {
        if (errno == ENOENT) {
            return writable ? STORE_ENOENT : 1; /* writer: the account went meanwhile */
        }
        return io_fail("open", a->path);
    }
    if (fstat(a->fd, &st) < 0) {
        io_fail("stat", a->path);
        arc_close(a);
        return STORE_EIO;
    }
    a->log_size = st.st_size;
    ssize_t n = pread(a->fd, h, sizeof(h), 0);
    int hrc = arc_hdr_parse(h, n, ARC_LOG_PREFIX, ARC_LOG_HDR, &a->gen);
    if (hrc == 2 || hrc < 0) {
        arc_close(a);
        if (hrc < 0) {
            quarantine(a->path, "bad version line");
            quarantine(a->ipath, "its log was damaged");
        } else {
            newer_version(a->path);
        }
        return STORE_ECORRUPT;
    }
    if (hrc == 1) {
        /* Empty, or its header torn at creation: nothing was ever in it. */
        if (!writable) {
            arc_close(a);
            return 1;
        }
        char hdr[ARC_LOG_HDR + 1];
        a->gen = arc_now_us();
        arc_hdr(hdr, ARC_LOG_PREFIX, ARC_LOG_HDR, a->gen);
        if (ftruncate(a->fd, 0) < 0 || write_all(a->fd, hdr, ARC_LOG_HDR) < 0) {
            io_fail("write", a->path);
            /* A full disk: leave nothing, not even an empty log. */
            if ((a->created && unlink(a->path) < 0) || (!a->created && ftruncate(a->fd, 0) < 0)) {
                io_fail("take back", a->path);
            }
            arc_close(a);
            return STORE_EIO;
        }
        a->log_size = a->log_end = ARC_LOG_HDR;
        a->dirty = 1;
        return 0;
    }
    int rc = arc_open_index(a);
    if (rc < 0) {
        arc_close(a);
    }
    return rc;
}

COLD static int arc_idx_rewrite(const char *ipath, const void *buf, size_t len)
{
    log_notice("store: %s: index rebuilt from the log (%zu entries)", ipath,
               (len - ARC_IDX_HDR) / ARC_ENT);
    return store_write_atomic(ipath, buf, len, 0600);
}

/* Entries [from, arc_n) of a, their offsets less shift, encoded (with
 * whole, after an index header of generation gen) into a new buffer (*out,
 * malloc'd, *len bytes). 0, STORE_EIO, or STORE_ECORRUPT for a damaged entry. */
static int arc_idx_image(struct arc *a, uint64_t from, uint64_t shift, int whole, uint64_t gen,
                         unsigned char **out, size_t *len)
{
    uint64_t n = arc_n(a);
    size_t hdr = whole ? ARC_IDX_HDR : 0;
    *len = hdr + (size_t)(n - from) * ARC_ENT;
    *out = malloc(*len + 1);
    if (!*out) {
        return STORE_EIO;
    }
    if (whole) {
        arc_hdr((char *)*out, ARC_IDX_PREFIX, ARC_IDX_HDR, gen);
    }
    for (uint64_t i = from; i < n; i++) {
        struct arc_ent e;
        if (arc_get(a, i, &e) < 0) {
            free(*out);
            return STORE_ECORRUPT;
        }
        e.off -= shift;
        arc_ent_encode(*out + hdr + (i - from) * ARC_ENT, &e);
    }
    return 0;
}

/* Writer: cut a torn tail off the log and bring the index up to the log
 * (appending the entries it lacks, or rewriting it whole when it was unusable). */
static int arc_repair(struct arc *a)
{
    if (a->log_end < a->log_size) {
        log_warn("store: %s: cutting a torn tail of %lld bytes", a->path,
                 (long long)(a->log_size - a->log_end));
        if (ftruncate(a->fd, a->log_end) < 0) {
            return io_fail("truncate", a->path);
        }
        a->log_size = a->log_end;
        a->dirty = 1;
    }
    if (a->ifd >= 0 && a->ntail == 0) {
        struct stat st;
        if (fstat(a->ifd, &st) == 0 && st.st_size == (off_t)(ARC_IDX_HDR + a->nidx * ARC_ENT)) {
            return 0;
        }
    }
    /* The entries the index lacks: the tail (all of them without an index,
     * which then has none: nidx is 0). */
    unsigned char *buf;
    size_t len;
    int rc = arc_idx_image(a, a->nidx, 0, a->ifd < 0, a->gen, &buf, &len);
    if (rc < 0) {
        return rc;
    }
    if (a->ifd >= 0) {
        if (ftruncate(a->ifd, (off_t)(ARC_IDX_HDR + a->nidx * ARC_ENT)) < 0 ||
            write_all(a->ifd, buf, len) < 0) {
            rc = io_fail("write", a->ipath);
        }
    } else {
        /* The index of an archive without records is its header: written
         * without temp file or fsync (two disk flushes for each account's
         * first archived message, in the turn that sends it). A power cut
         * that tears or takes it loses no entry: the next open finds no
         * usable index and makes it again. */
        rc = len > ARC_IDX_HDR ? arc_idx_rewrite(a->ipath, buf, len)
                               : overwrite_file(a->ipath, buf, len);
        a->ifd = rc == 0 ? open(a->ipath, O_RDWR | O_APPEND | O_CLOEXEC) : -1;
        if (rc == 0 && a->ifd < 0) {
            rc = STORE_EIO;
        }
    }
    free(buf);
    if (rc == 0) {
        a->nidx += a->ntail;
        a->ntail = 0;
        a->cn = 0;
        a->dirty = 1;
    }
    return rc;
}

/* An account whose index a reader found damaged: its next writer rebuilds it. */
static char arc_damaged[NAME_MAX + 1];

/* Archives appended to in this loop turn, open until store_arc_sync. */
static struct arc *arc_open_tab[ARC_OPEN_MAX];
static int arc_nopen;

/* The logs only, all at once (fsync_many). The index is not synced: it is a
 * cache of the log, checked against it at every open (its last entry must
 * name a record of the log, each entry carries a CRC), and entries a power
 * cut took away are appended again from the log (STORAGE.md). Syncing it
 * doubled the fsyncs of a turn for nothing the log cannot give back. */
/* A log made in this turn needs its directory entry on disk too: the
 * account directory is fsynced in the same batch as the logs (a directory
 * that cannot be opened counts as a failed fsync, EINVAL as none: some file
 * systems cannot fsync a directory, as in fsync_dir). */
int store_arc_sync(void)
{
    int failed = 0, fds[2 * ARC_OPEN_MAX] = {0}, err[2 * ARC_OPEN_MAX] = {0};
    struct arc *dirty[2 * ARC_OPEN_MAX];
    size_t n = 0, nlogs;
    for (int i = 0; i < arc_nopen; i++) {
        if (arc_open_tab[i]->dirty) {
            dirty[n] = arc_open_tab[i];
            fds[n++] = arc_open_tab[i]->fd;
        }
    }
    nlogs = n;
    for (size_t i = 0; i < nlogs; i++) {
        if (!dirty[i]->created) {
            continue;
        }
        int fd = open(dirty[i]->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            io_fail("open directory", dirty[i]->dir);
            failed++;
            continue;
        }
        dirty[n] = dirty[i];
        fds[n++] = fd;
    }
    fsync_many(fds, err, n);
    for (size_t i = 0; i < n; i++) {
        if (err[i] && !(i >= nlogs && err[i] == EINVAL)) {
            errno = err[i];
            io_fail(i < nlogs ? "fsync" : "fsync directory of", dirty[i]->path);
            failed++;
        }
        if (i >= nlogs) {
            close(fds[i]);
        }
    }
    for (int i = 0; i < arc_nopen; i++) {
        arc_close(arc_open_tab[i]);
        free(arc_open_tab[i]);
    }
    arc_nopen = 0;
    return failed;
}

static void arc_settle(void)
{
    store_arc_sync();
}

/* Rewrite the archive keeping entries from keep on (atomic per file; the new
 * generation makes a crash between the two renames rebuild the index). */
COLD static int arc_compact(struct arc *a, uint64_t keep)
{
    uint64_t n = arc_n(a);
    struct arc_ent first;
    if (keep >= n) {
        log_info("store: %s: every record expired or over the size cap", a->path);
        if (unlink(a->path) < 0 || (unlink(a->ipath) < 0 && errno != ENOENT)) {
            return io_fail("remove", a->path);
        }
        return fsync_dir(a->dir);
    }
    if (arc_get(a, keep, &first) < 0) {
        return STORE_ECORRUPT;
    }
    uint64_t gen = arc_now_us();
    gen = gen > a->gen ? gen : a->gen + 1;
    unsigned char *ibuf;
    size_t isz;
    char hdr[ARC_LOG_HDR + 1];
    int rc = arc_idx_image(a, keep, first.off - ARC_LOG_HDR, 1, gen, &ibuf, &isz);
    if (rc < 0) {
        return rc;
    }
    arc_hdr(hdr, ARC_LOG_PREFIX, ARC_LOG_HDR, gen);
    rc = rewrite_tail(a->fd, (off_t)first.off, a->log_end, a->path, hdr, ARC_LOG_HDR);
    if (rc < 0) {
        free(ibuf);
        return rc;
    }
    rc = fsync_dir(a->dir);
    if (rc == 0) {
        rc = store_write_atomic(a->ipath, ibuf, isz, 0600);
    }
    free(ibuf);
    log_info("store: %s: dropped %llu old records", a->path, (unsigned long long)keep);
    return rc;
}

/* First entry to keep under the limits (records are oldest first). */
COLD static uint64_t arc_keep_from(struct arc *a, const struct store_arc_limits *lim, size_t add)
{
    uint64_t n = arc_n(a), keep = 0;
    struct arc_ent e;
    if (lim->keep_after) {
        while (keep < n && arc_get(a, keep, &e) == 0 && e.id < lim->keep_after) {
            keep++;
        }
    }
    /* Over the cap, drop down to three quarters of it, so that the next
     * rewrite is a quarter of the cap away, not one record. */
    if (lim->max_bytes && (uint64_t)a->log_end + add > lim->max_bytes) {
        uint64_t target = lim->max_bytes / 4 * 3;
        while (keep < n && arc_get(a, keep, &e) == 0 &&
               (uint64_t)a->log_end - (e.off - ARC_LOG_HDR) + add > target) {
            keep++;
        }
    }
    return keep;
}

/* Whether the limits ask for a rewrite now. */
static int arc_over(struct arc *a, const struct store_arc_limits *lim, size_t add)
{
    struct arc_ent e;
    if (lim->max_bytes && (uint64_t)a->log_end + add > lim->max_bytes) {
        return 1;
    }
    return lim->keep_after > ARC_EXPIRE_SLACK && arc_n(a) > 0 && arc_get(a, 0, &e) == 0 &&
           e.id < lim->keep_after - ARC_EXPIRE_SLACK;
}

static int arc_writer(const char *bare, struct arc **out)
{
    for (int i = 0; i < arc_nopen; i++) {
        if (strcmp(arc_open_tab[i]->bare, bare) == 0) {
            *out = arc_open_tab[i];
            return 0;
        }
    }
    if (arc_nopen == ARC_OPEN_MAX) {
        store_arc_sync();
    }
    struct arc *a = malloc(sizeof(*a));
    if (!a) {
        return STORE_EIO;
    }
    int rc = arc_open(a, bare, 1);
    if (rc == 0 && a->ifd >= 0 && strcmp(arc_damaged, bare) == 0) {
        arc_damaged[0] = '\0';
        rc = arc_index_off(a);
    }
    if (rc == 0) {
        rc = arc_repair(a);
    }
    if (rc < 0) {
        arc_close(a);
        free(a);
        return rc;
    }
    arc_open_tab[arc_nopen++] = a;
    *out = a;
    return 0;
}

/* Drop the open writer of bare (after a rewrite: its descriptors name the old files). */
static void arc_writer_drop(struct arc *a)
{
    for (int i = 0; i < arc_nopen; i++) {
        if (arc_open_tab[i] == a) {
            arc_open_tab[i] = arc_open_tab[--arc_nopen];
        }
    }
    if (a->dirty) {
        fsync(a->fd);
        if (a->ifd >= 0) {
            fsync(a->ifd);
        }
    }
    arc_close(a);
    free(a);
}

/* store_arc_append, with the record's time given (at, in microseconds; 0 =
 * now): defined below with the XEP-0227 import's functions. */
static int arc_append(const char *bare, const struct store_arc_rec *r,
                      const struct store_arc_limits *lim, uint64_t at, uint64_t *id)
{
    struct arc *a = NULL;
    size_t plen = ARC_PAY_HDR + r->key_len + r->len;
    if (r->len > STORE_RECORD_MAX || r->key_len > STORE_ARC_KEY_MAX || (r->len && !r->data)) {
        return STORE_EINVAL;
    }
    int rc = arc_writer(bare, &a);
    if (rc == 0 && arc_over(a, lim, ARC_REC_HDR + plen)) {
        rc = arc_compact(a, arc_keep_from(a, lim, ARC_REC_HDR + plen));
        arc_writer_drop(a);
        if (rc == 0) {
            rc = arc_writer(bare, &a);
        }
    }
    if (rc < 0) {
        return rc;
    }
    struct arc_ent last, e;
    uint64_t now = at ? at : arc_now_us();
    /* Ids are the archive's time in microseconds, strictly increasing per
     * archive even when the clock steps back: unique, stable, in order. */
    if (arc_n(a) > 0 && arc_get(a, arc_n(a) - 1, &last) == 0 && last.id >= now) {
        now = last.id + 1;
    }
    unsigned char *buf = malloc(ARC_REC_HDR + plen);
    if (!buf) {
        return STORE_EIO;
    }
    put_be64(buf + ARC_REC_HDR, now);
    buf[ARC_REC_HDR + 8] = (unsigned char)r->flags;
    buf[ARC_REC_HDR + 9] = (unsigned char)(r->key_len >> 8);
    buf[ARC_REC_HDR + 10] = (unsigned char)r->key_len;
    memcpy(buf + ARC_REC_HDR + ARC_PAY_HDR, r->key, r->key_len);
    if (r->len) {
        memcpy(buf + ARC_REC_HDR + ARC_PAY_HDR + r->key_len, r->data, r->len);
    }
    rec_seal(buf, arc_magic, (uint32_t)plen);
    e.id = now;
    e.off = (uint64_t)a->log_end;
    e.len = (uint32_t)(ARC_REC_HDR + plen);
    e.keyhash = store_crc32(0, r->key, r->key_len);
    e.flags = r->flags & 0xff;
    a->dirty = 1;
    if (write_all(a->fd, buf, e.len) < 0) {
        io_fail("write", a->path);
        if (ftruncate(a->fd, a->log_end) < 0) {
            io_fail("truncate", a->path);
        }
        free(buf);
        return STORE_EIO;
    }
    free(buf);
    a->log_end += e.len;
    a->log_size = a->log_end;
    unsigned char raw[ARC_ENT];
    arc_ent_encode(raw, &e);
    if (write_all(a->ifd, raw, ARC_ENT) < 0) {
        /* The record is in the log: the next open indexes it from there. */
        io_fail("write", a->ipath);
        arc_writer_drop(a);
    } else {
        a->nidx++;
    }
    *id = now;
    return 0;
}

COLD int store_arc_trim(const char *bare, const struct store_arc_limits *lim)
{
    struct arc a;
    store_arc_sync();
    int rc = arc_open(&a, bare, 0);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    int over = arc_over(&a, lim, 0);
    arc_close(&a);
    if (!over) {
        return 0; /* the common case: one open, one read, no write */
    }
    struct arc *w = NULL;
    rc = arc_writer(bare, &w);
    if (rc == 0 && arc_over(w, lim, 0)) {
        rc = arc_compact(w, arc_keep_from(w, lim, 0));
        arc_writer_drop(w);
    }
    return rc;
}

/* Reader. Syncs the archive first, so a query never shows what a crash
 * could take back. */
static int arc_reader(const char *bare, struct arc *a)
{
    store_arc_sync();
    return arc_open(a, bare, 0);
}

/* First entry with id >= id (binary search; the ids are in order). */
static int arc_lower(struct arc *a, uint64_t id, uint64_t *pos)
{
    uint64_t lo = 0, hi = arc_n(a);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        struct arc_ent e;
        if (arc_get(a, mid, &e) < 0) {
            return -1;
        }
        if (e.id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *pos = lo;
    return 0;
}

static int arc_range(struct arc *a, const struct store_arc_query *q, uint64_t *lo, uint64_t *hi)
{
    *lo = 0;
    *hi = arc_n(a);
    if (q->after && arc_lower(a, q->after + 1, lo) < 0) {
        return -1;
    }
    if (q->before && arc_lower(a, q->before, hi) < 0) {
        return -1;
    }
    return 0;
}

/* Give a damaged index up: use what the log says (readers never write). */
static int arc_without_index(struct arc *a)
{
    log_warn("store: %s is damaged; the next append rebuilds it", a->ipath);
    snprintf(arc_damaged, sizeof(arc_damaged), "%s", a->bare);
    return arc_index_off(a);
}

static int arc_visit(struct arc *a, uint64_t i, const struct store_arc_query *q,
                     unsigned char **buf, size_t *cap, store_arc_fn fn, void *ud)
{
    struct arc_ent e;
    if (arc_get(a, i, &e) < 0) {
        return -1;
    }
    uint32_t kh = q->key ? store_crc32(0, q->key, q->key_len) : 0;
    if (q->key && e.keyhash != kh) {
        return 0;
    }
    if (e.len > *cap) {
        unsigned char *nb = realloc(*buf, e.len);
        if (!nb) {
            return STORE_EIO;
        }
        *buf = nb;
        *cap = e.len;
    }
    if (arc_rec_read(a->fd, &e, *buf) < 0) {
        log_warn("store: %s: record at %llu is damaged; skipped", a->path,
                 (unsigned long long)e.off);
        return 0;
    }
    const unsigned char *p = *buf + ARC_REC_HDR;
    size_t plen = e.len - ARC_REC_HDR;
    size_t klen = (size_t)p[9] << 8 | p[10];
    if (klen > plen - ARC_PAY_HDR) {
        return 0;
    }
    struct store_arc_rec r = {e.id,
                              p[8],
                              (const char *)p + ARC_PAY_HDR,
                              klen,
                              p + ARC_PAY_HDR + klen,
                              plen - ARC_PAY_HDR - klen};
    if (q->key && (klen != q->key_len || memcmp(r.key, q->key, klen) != 0)) {
        return 0;
    }
    return fn(&r, ud) ? 1 : 0;
}

static int arc_walk(struct arc *a, const struct store_arc_query *q, store_arc_fn fn, void *ud)
{
    /* arc_visit calls fn only for records read whole; a damaged entry stops
     * the walk with -1. */
    uint64_t lo, hi;
    unsigned char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    if (arc_range(a, q, &lo, &hi) < 0) {
        return -1;
    }
    for (uint64_t k = 0; k < hi - lo && rc == 0; k++) {
        rc = arc_visit(a, q->backward ? hi - 1 - k : lo + k, q, &buf, &cap, fn, ud);
    }
    free(buf);
    return rc < 0 ? rc : 0;
}

struct arc_counted {
    store_arc_fn fn;
    void *ud;
    unsigned long calls;
    uint64_t last; /* id of the last record fn saw */
};

static int arc_count_call(const struct store_arc_rec *r, void *ud)
{
    struct arc_counted *c = ud;
    c->calls++;
    c->last = r->id;
    return c->fn(r, c->ud);
}

int store_arc_query(const char *bare, const struct store_arc_query *q, store_arc_fn fn, void *ud)
{
    struct arc a;
    int rc = arc_reader(bare, &a);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    struct arc_counted c = {fn, ud, 0, 0};
    rc = arc_walk(&a, q, arc_count_call, &c);
    /* A damaged index entry: go on from the log, after what fn has seen. */
    if (rc == -1 && a.ifd >= 0 && arc_without_index(&a) == 0) {
        struct store_arc_query rest = *q;
        if (c.calls && q->backward) {
            rest.before = c.last;
        } else if (c.calls) {
            rest.after = c.last;
        }
        rc = arc_walk(&a, &rest, arc_count_call, &c);
    }
    arc_close(&a);
    return rc == -1 ? STORE_ECORRUPT : rc;
}

int store_arc_count(const char *bare, const struct store_arc_query *q, uint64_t *count)
{
    struct arc a;
    uint64_t lo, hi;
    *count = 0;
    int rc = arc_reader(bare, &a);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (arc_range(&a, q, &lo, &hi) < 0 &&
        (a.ifd < 0 || arc_without_index(&a) < 0 || arc_range(&a, q, &lo, &hi) < 0)) {
        arc_close(&a);
        return STORE_ECORRUPT;
    }
    *count = hi - lo;
    arc_close(&a);
    return 0;
}

int store_arc_exists(const char *bare, uint64_t id)
{
    struct arc a;
    struct arc_ent e;
    uint64_t pos;
    int rc = arc_reader(bare, &a);
    if (rc != 0) {
        return rc == 1 ? STORE_ENOENT : rc;
    }
    rc = STORE_ENOENT;
    if (arc_lower(&a, id, &pos) == 0 && pos < arc_n(&a) && arc_get(&a, pos, &e) == 0 &&
        e.id == id) {
        rc = 0;
    }
    arc_close(&a);
    return rc;
}

/* ---- XEP-0133: documents of the server itself (message of the day) ---- */

COLD static int server_doc_path(const char *name, char *path, size_t sz)
{
    return doc_name_valid(name) && path_fmt(path, sz, "%s/%s%s", data_dir, DOC_PREFIX, name) == 0
               ? 0
               : STORE_EINVAL;
}

COLD int store_server_doc_get(const char *name, char **data, size_t *len, size_t maxlen)
{
    char path[PATH_MAX];
    *data = NULL;
    *len = 0;
    int rc = server_doc_path(name, path, sizeof(path));
    return rc < 0 ? rc : doc_read(path, data, len, maxlen);
}

COLD int store_server_doc_put(const char *name, const void *data, size_t len)
{
    char path[PATH_MAX];
    int rc = server_doc_path(name, path, sizeof(path));
    return rc < 0 ? rc : doc_write_at(path, data, len, 1);
}

COLD int store_server_doc_delete(const char *name)
{
    char path[PATH_MAX];
    int rc = server_doc_path(name, path, sizeof(path));
    return rc < 0 ? rc : doc_unlink(data_dir, path);
}

/* ---- XEP-0227 import (pie.c) ---- */

int store_arc_append(const char *bare, const struct store_arc_rec *r,
                     const struct store_arc_limits *lim, uint64_t *id)
{
    return arc_append(bare, r, lim, 0, id);
}

int store_arc_append_at(const char *bare, const struct store_arc_rec *r,
                        const struct store_arc_limits *lim, uint64_t *id)
{
    return arc_append(bare, r, lim, r->id ? r->id : 1, id);
}

int store_account_name_ok(const char *bare)
{
    char esc[NAME_MAX + 1];
    return escape_name(bare, esc, sizeof(esc)) == 0;
}

/* ---- group chat rooms (XEP-0045, muc.c) ----
 * DATADIR/rooms/<escaped room JID>: one file per persistent room in the
 * document format ("xmppd-doc 1 <len> <crc32>\n" + payload), replaced whole
 * through store_write_atomic, so a crash leaves the old state or the new. */

COLD static int room_path(const char *room, char *dir, char *path, size_t sz)
{
    char esc[NAME_MAX + 1];
    if (!data_dir[0] || path_fmt(dir, sz, "%s/rooms", data_dir) < 0 ||
        escape_name(room, esc, sizeof(esc)) < 0 || path_fmt(path, sz, "%s/%s", dir, esc) < 0) {
        return STORE_EINVAL;
    }
    return 0;
}

COLD int store_room_put(const char *room, const void *data, size_t len)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc = room_path(room, dir, path, sizeof(dir));
    if (rc < 0) {
        return rc;
    }
    if (ensure_dir(dir, data_dir) < 0) {
        return STORE_EIO;
    }
    return doc_write_at(path, data, len, 1);
}

COLD int store_room_delete(const char *room)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc = room_path(room, dir, path, sizeof(dir));
    return rc < 0 ? rc : doc_unlink(dir, path);
}

COLD static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

struct room_ctx {
    const char *dir;
    int (*fn)(const char *room, const char *data, size_t len, void *ud);
    void *ud;
    size_t maxlen;
};

COLD static int room_one(const char *name, void *ud)
{
    struct room_ctx *c = ud;
    char room[NAME_MAX + 1], path[PATH_MAX], *data = NULL;
    size_t len = 0;
    int rc = 0;
    /* Skip ".", "..", a write's leftover temp file, damaged files set aside. */
    if (name[0] == '.' || ends_with(name, ".tmp") || ends_with(name, ".bad") ||
        unescape_name(name, room, sizeof(room)) < 0 ||
        path_fmt(path, sizeof(path), "%s/%s", c->dir, name) < 0) {
        return 0;
    }
    if (doc_read(path, &data, &len, c->maxlen) == 0) {
        rc = c->fn(room, data, len, c->ud);
    }
    free(data);
    return rc;
}

COLD int store_room_each(int (*fn)(const char *room, const char *data, size_t len, void *ud),
                         void *ud, size_t maxlen)
{
    char dir[PATH_MAX];
    struct room_ctx c = {dir, fn, ud, maxlen};
    if (!data_dir[0] || path_fmt(dir, sizeof(dir), "%s/rooms", data_dir) < 0) {
        return STORE_EINVAL;
    }
    return dir_each(dir, 1, room_one, &c);
}

/* A room document whose payload muc.c cannot read (bad XML, a format it
 * does not know) is set aside like one that fails its checksum, so that a
 * new room of that name does not overwrite it and a human can look. */
COLD int store_room_set_aside(const char *room, const char *why)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc = room_path(room, dir, path, sizeof(dir));
    if (rc < 0) {
        return rc;
    }
    quarantine(path, why);
    return 0;
}

COLD int store_fd_readable_by_others(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH));
}

/* ---- group chat room archives (issue 15: XEP-0313 on room JIDs) ----
 * DATADIR/roomarc/<escaped room JID>/ holds a room's archive.log and
 * archive.idx, in the format and with the crash safety of an account's
 * (STORAGE.md "Room archives"): the store_arc_* functions serve both. A room
 * archive is named to them by its room JID behind ROOM_ARC_MARK, which no
 * bare JID begins with, so that an account and a room never share an open
 * archive. The room's directory is made by its first append. */
#define ROOM_ARC_MARK '/'
#define ROOM_ARC_DIR "roomarc"

static int arc_dir(const char *name, char *out, size_t outsz, int writable)
{
    char esc[NAME_MAX + 1], parent[PATH_MAX];
    if (name[0] != ROOM_ARC_MARK) {
        return account_dir(name, out, outsz);
    }
    if (!data_dir[0] || escape_name(name + 1, esc, sizeof(esc)) < 0 ||
        path_fmt(parent, sizeof(parent), "%s/" ROOM_ARC_DIR, data_dir) < 0 ||
        path_fmt(out, outsz, "%s/%s", parent, esc) < 0) {
        return -1;
    }
    if (writable && (ensure_dir(parent, data_dir) < 0 || ensure_dir(out, parent) < 0)) {
        return -1;
    }
    return 0;
}

/* An account's directory is the account: none, no account. A room's is
 * made by its first append: none is an empty archive to a reader. */
COLD static int arc_dir_absent(const char *name, int writable)
{
    return name[0] == ROOM_ARC_MARK && !writable ? 1 : STORE_ENOENT;
}

COLD int store_room_arc_name(const char *room, char *out, size_t outsz)
{
    char esc[NAME_MAX + 1];
    if (strlen(room) + 2 > outsz || escape_name(room, esc, sizeof(esc)) < 0) {
        return STORE_EINVAL;
    }
    out[0] = ROOM_ARC_MARK;
    strcpy(out + 1, room);
    return 0;
}

COLD int store_room_arc_delete(const char *room)
{
    char name[NAME_MAX + 2], dir[PATH_MAX], log[PATH_MAX], idx[PATH_MAX];
    if (store_room_arc_name(room, name, sizeof(name)) < 0 ||
        arc_dir(name, dir, sizeof(dir), 0) < 0 ||
        path_fmt(log, sizeof(log), "%s/" ARC_LOG, dir) < 0 ||
        path_fmt(idx, sizeof(idx), "%s/" ARC_IDX, dir) < 0) {
        return STORE_EINVAL;
    }
    if (!is_dir(dir)) {
        return STORE_ENOENT;
    }
    store_arc_sync(); /* closes the open writers, this room's too */
    /* The log first: without it the index is nothing (a crash in between
     * leaves an index that the next open finds naming no record). */
    if ((unlink(log) < 0 && errno != ENOENT) || (unlink(idx) < 0 && errno != ENOENT) ||
        rmdir(dir) < 0) {
        return io_fail("remove", dir);
    }
    *strrchr(dir, '/') = '\0';
    return fsync_dir(dir);
}

/* ---- issue 15: the room archives, for the expiry sweep (mam.c) ---- */

COLD static int pick_room_arc(const char *name, char *out, size_t outsz)
{
    if (name[0] == '.' || outsz < 2) {
        return 0;
    }
    out[0] = ROOM_ARC_MARK;
    return unescape_name(name, out + 1, outsz - 1) == 0;
}

COLD int store_room_arc_list(int (*fn)(const char *name, void *ud), void *ud)
{
    char dir[PATH_MAX];
    if (!data_dir[0] || path_fmt(dir, sizeof(dir), "%s/" ROOM_ARC_DIR, data_dir) < 0) {
        return STORE_EINVAL;
    }
    if (!is_dir(dir)) {
        return 0; /* no room archived anything yet */
    }
    return scan_sorted(dir, pick_room_arc, fn, ud);
}

/* ---- web admin (issue 14) ---- */

COLD long store_self_rss_kib(void)
{
    char text[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    text[n] = '\0';
    const char *p = strstr(text, "\nVmRSS:");
    return p ? strtol(p + 8, NULL, 10) : -1;
}

/* ---- XEP-0363 HTTP File Upload (issue 14 item 4, upload.c) ----
 * DATADIR/upload/<id> (the file), <id>.meta (its document), <id>.part (a PUT
 * being written). The file is complete and fsynced, and renamed into place,
 * before its .meta is written (store_write_atomic): a crash at any point
 * leaves either nothing served or the whole file. */
#define UPLOAD_META_MAX 4096

struct store_upload {
    int fd;
    char part[PATH_MAX]; /* writing: <id>.part; reading: "" */
    char path[PATH_MAX]; /* <id> */
};

COLD static int upload_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f'))) {
            return 0;
        }
    }
    return n == STORE_UPLOAD_ID_LEN;
}

/* DATADIR/upload/<id> into path, and the same with suffix into with (both
 * PATH_MAX bytes); DATADIR/upload is made on first use. */
COLD static int upload_path(const char *id, const char *suffix, char *path, char *with)
{
    char dir[PATH_MAX];
    if (!upload_id_ok(id) || path_fmt(dir, sizeof(dir), "%s/upload", data_dir) < 0 ||
        path_fmt(path, PATH_MAX, "%s/%s", dir, id) < 0 ||
        path_fmt(with, PATH_MAX, "%s%s", path, suffix) < 0) {
        return STORE_EINVAL;
    }
    return ensure_dir(dir, data_dir);
}

COLD int store_upload_create(const char *id, struct store_upload **out)
{
    *out = NULL;
    struct store_upload *u = calloc(1, sizeof(*u));
    if (!u) {
        return STORE_EIO;
    }
    int rc = upload_path(id, ".part", u->path, u->part);
    if (rc == 0 && access(u->path, F_OK) == 0) {
        rc = STORE_EEXIST;
    }
    if (rc == 0 && unlink(u->part) < 0 && errno != ENOENT) {
        rc = STORE_EIO;
    }
    u->fd = rc == 0 ? open(u->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)
                    : -1;
    if (rc == 0 && u->fd < 0) {
        rc = io_fail("create", u->part);
    }
    if (rc < 0) {
        free(u);
        return rc;
    }
    *out = u;
    return 0;
}

COLD int store_upload_write(struct store_upload *u, const void *data, size_t len)
{
    if (write_all(u->fd, data, len) < 0) {
        return io_fail("write", u->part);
    }
    return 0;
}

COLD void store_upload_close(struct store_upload *u)
{
    if (!u) {
        return;
    }
    if (u->fd >= 0) {
        close(u->fd);
    }
    if (u->part[0]) {
        unlink(u->part); /* never left behind: on a full disk it holds the space */
    }
    free(u);
}

COLD int store_upload_commit(struct store_upload *u, const void *meta, size_t len)
{
    char mpath[PATH_MAX];
    int rc = path_fmt(mpath, sizeof(mpath), "%s.meta", u->path) < 0 ? STORE_EINVAL : 0;
    if (rc == 0 && fsync(u->fd) < 0) {
        rc = io_fail("fsync", u->part);
    }
    if (rc == 0 && rename(u->part, u->path) < 0) {
        rc = io_fail("rename", u->part);
    }
    if (rc == 0) {
        u->part[0] = '\0';
        rc = doc_write_at(mpath, meta, len, 1); /* fsyncs the directory: both names */
        if (rc < 0) {
            unlink(u->path);
        }
    }
    store_upload_close(u);
    return rc;
}

/* A .meta in DATADIR/upload, read only when it is a regular file: a symlink
 * (never followed), FIFO or directory there is not one of ours. */
COLD static int meta_read(const char *path, char **m, size_t *len)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return errno == ENOENT ? STORE_ENOENT : STORE_EIO;
    }
    return S_ISREG(st.st_mode) ? doc_read(path, m, len, UPLOAD_META_MAX) : STORE_EINVAL;
}

COLD int store_upload_open(const char *id, struct store_upload **out, uint64_t *size, char **meta,
                           size_t *len)
{
    char mpath[PATH_MAX];
    char *m = NULL;
    size_t mlen = 0;
    *out = NULL;
    struct store_upload *u = calloc(1, sizeof(*u));
    if (!u) {
        return STORE_EIO;
    }
    u->fd = -1;
    int rc = upload_path(id, ".meta", u->path, mpath);
    if (rc == 0) {
        rc = meta_read(mpath, &m, &mlen);
    }
    if (rc == 0) {
        u->fd = open(u->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        rc = u->fd < 0 ? (errno == ENOENT ? STORE_ENOENT : STORE_EIO) : 0;
    }
    struct stat st;
    if (rc == 0 && (fstat(u->fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        rc = STORE_EIO;
    }
    if (rc < 0) {
        free(m);
        store_upload_close(u);
        return rc;
    }
    *size = (uint64_t)st.st_size;
    if (meta) {
        *meta = m;
        *len = mlen;
    } else {
        free(m);
    }
    *out = u;
    return 0;
}

COLD long store_upload_read(struct store_upload *u, void *buf, size_t len)
{
    ssize_t n = read_full(u->fd, buf, len);
    if (n < 0) {
        io_fail("read", u->path);
    }
    return (long)n;
}

COLD int store_upload_delete(const char *id)
{
    char path[PATH_MAX], mpath[PATH_MAX], dir[PATH_MAX];
    if (upload_path(id, ".meta", path, mpath) < 0 || !parent_of(path, dir)) {
        return STORE_EINVAL;
    }
    int rc = doc_unlink(dir, mpath);
    if (unlink(path) < 0 && errno != ENOENT) {
        return io_fail("remove", path);
    }
    return rc;
}

struct upload_ctx {
    const char *dir;
    int tidy;
    int (*fn)(const char *id, const char *meta, size_t len, void *ud);
    void *ud;
};

/* One entry of DATADIR/upload: a finished file's .meta goes to fn; with
 * tidy, what is neither a finished file nor its .meta is removed. 1 when fn
 * says stop. */
COLD static int upload_entry(const char *name, void *ud)
{
    const struct upload_ctx *c = ud;
    const char *dir = c->dir;
    int tidy = c->tidy;
    char id[STORE_UPLOAD_ID_LEN + 1], path[PATH_MAX];
    size_t n = strlen(name);
    if (n < STORE_UPLOAD_ID_LEN) {
        return 0;
    }
    memcpy(id, name, STORE_UPLOAD_ID_LEN);
    id[STORE_UPLOAD_ID_LEN] = '\0';
    if (!upload_id_ok(id) || path_fmt(path, sizeof(path), "%s/%s", dir, name) < 0) {
        return 0; /* not ours: left alone */
    }
    int has_meta = 0;
    char mpath[PATH_MAX];
    if (path_fmt(mpath, sizeof(mpath), "%s/%s.meta", dir, id) == 0) {
        has_meta = access(mpath, F_OK) == 0;
    }
    if (n == STORE_UPLOAD_ID_LEN) {
        if (!has_meta && tidy) {
            unlink(path); /* a crash between the rename and the .meta */
        }
        return 0;
    }
    if (strcmp(name + STORE_UPLOAD_ID_LEN, ".meta") == 0) {
        char *m = NULL;
        size_t len = 0;
        if (meta_read(path, &m, &len) == 0) {
            int stop = c->fn(id, m, len, c->ud) != 0;
            free(m);
            return stop;
        }
        return 0;
    }
    if (tidy && !ends_with(name, ".bad")) {
        unlink(path); /* .part or .meta.tmp of a crash; a .bad is for a human */
    }
    return 0;
}

COLD int store_upload_each(int (*fn)(const char *id, const char *meta, size_t len, void *ud),
                           void *ud, int tidy)
{
    char dir[PATH_MAX];
    struct upload_ctx c = {dir, tidy, fn, ud};
    if (path_fmt(dir, sizeof(dir), "%s/upload", data_dir) < 0) {
        return STORE_EINVAL;
    }
    if (!is_dir(dir)) {
        return 0; /* nothing uploaded yet */
    }
    if (dir_each(dir, 0, upload_entry, &c) < 0) {
        return STORE_EIO;
    }
    if (tidy) {
        fsync_dir(dir);
    }
    return 0;
}

COLD int store_upload_walk(int (*fn)(const char *id, const char *meta, size_t len, void *ud),
                           void *ud, int max)
{
    static DIR *d; /* the walk's cursor, between calls */
    char dir[PATH_MAX];
    struct upload_ctx c = {dir, 0, fn, ud};
    struct dirent *e;
    if (path_fmt(dir, sizeof(dir), "%s/upload", data_dir) < 0) {
        return STORE_EINVAL;
    }
    if (!d && !(d = opendir(dir))) {
        return errno == ENOENT ? 1 : io_fail("open directory", dir);
    }
    while (max-- > 0) {
        if (!(e = readdir(d))) {
            closedir(d);
            d = NULL;
            return 1;
        }
        upload_entry(e->d_name, &c);
    }
    return 0;
}
