/* test_store.c: unit tests for store.c in a fresh mkdtemp data directory.
 * Covers accounts (create/get/put/exists/delete/list), name escaping, documents,
 * the offline log (append/read/count/clear/quota, torn and corrupt tails),
 * damaged files renamed aside, that nothing is created for unknown accounts,
 * failed writes on a full disk (simulated with RLIMIT_FSIZE) and deferred
 * appends whose fsync fails (this program's own fsync). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../store.h"
#include "test.h"

static char root[256];

/* This program's fsync stands in for the C library's (store.o calls it), so
 * that a disk that fails one file's fsync can be simulated. */
static ino_t fsync_fail_ino;
static ino_t fsync_count_ino; /* fsync_count counts the fsyncs of this inode */
static atomic_int fsync_count, fsync_calls; /* store_arc_sync's helper threads call it too */

int fsync(int fd)
{
    struct stat st;
    int have = fstat(fd, &st) == 0;
    fsync_calls++;
    if (have && fsync_count_ino && st.st_ino == fsync_count_ino) {
        fsync_count++;
    }
    if (have && fsync_fail_ino && st.st_ino == fsync_fail_ino) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

static void path_of(char *out, size_t sz, const char *rel)
{
    snprintf(out, sz, "%s/%s", root, rel);
}

static int exists_rel(const char *rel)
{
    char p[512];
    struct stat st;
    path_of(p, sizeof(p), rel);
    return lstat(p, &st) == 0;
}

static long size_rel(const char *rel)
{
    char p[512];
    struct stat st;
    path_of(p, sizeof(p), rel);
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static int mode_rel(const char *rel)
{
    char p[512];
    struct stat st;
    path_of(p, sizeof(p), rel);
    return stat(p, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void write_rel(const char *rel, const void *data, size_t len)
{
    char p[512];
    path_of(p, sizeof(p), rel);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void append_rel(const char *rel, const void *data, size_t len)
{
    char p[512];
    path_of(p, sizeof(p), rel);
    FILE *f = fopen(p, "ab");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void truncate_rel(const char *rel, long len)
{
    char p[512];
    path_of(p, sizeof(p), rel);
    CHECK(truncate(p, len) == 0);
}

/* Entries in a directory, "." and ".." excluded. */
static int count_entries(const char *rel)
{
    char p[512];
    path_of(p, sizeof(p), rel);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *e;
    if (!d) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void make_account(struct store_account *a, unsigned char seed)
{
    memset(a, 0, sizeof(*a));
    a->sha1.iter = 4096;
    a->sha1.salt_len = 16;
    a->sha1.key_len = 20;
    a->sha256.iter = 8192;
    a->sha256.salt_len = 12;
    a->sha256.key_len = 32;
    for (int i = 0; i < 32; i++) {
        if (i < 16) {
            a->sha1.salt[i] = (unsigned char)(seed + i);
            a->sha256.salt[i] = i < 12 ? (unsigned char)(seed * 3 + i) : 0;
        }
        if (i < 20) {
            a->sha1.stored_key[i] = (unsigned char)(seed ^ (i * 7));
            a->sha1.server_key[i] = (unsigned char)(seed ^ (i * 11));
        }
        a->sha256.stored_key[i] = (unsigned char)(seed + i * 13);
        a->sha256.server_key[i] = (unsigned char)(seed + i * 17);
    }
}

static int creds_equal(const struct scram_creds *x, const struct scram_creds *y)
{
    return x->iter == y->iter && x->salt_len == y->salt_len && x->key_len == y->key_len &&
           memcmp(x->salt, y->salt, x->salt_len) == 0 &&
           memcmp(x->stored_key, y->stored_key, x->key_len) == 0 &&
           memcmp(x->server_key, y->server_key, x->key_len) == 0;
}

static int account_equal(const struct store_account *x, const struct store_account *y)
{
    return creds_equal(&x->sha1, &y->sha1) && creds_equal(&x->sha256, &y->sha256);
}

/* ---- list collection ---- */
struct names {
    char v[16][64];
    int n;
    int stop_after;
};

static int collect_name(const char *bare, void *ud)
{
    struct names *ns = ud;
    if (ns->n < 16) {
        snprintf(ns->v[ns->n], sizeof(ns->v[0]), "%s", bare);
    }
    ns->n++;
    return ns->stop_after && ns->n >= ns->stop_after;
}

/* ---- offline record collection ---- */
struct recs {
    char v[16][64];
    size_t len[16];
    int n;
    int stop_after;
};

static int collect_rec(const void *rec, size_t len, void *ud)
{
    struct recs *r = ud;
    if (r->n < 16 && len < sizeof(r->v[0])) {
        memcpy(r->v[r->n], rec, len);
        r->v[r->n][len] = '\0';
        r->len[r->n] = len;
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

static void test_crc(void)
{
    CHECK(store_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(store_crc32(0, "", 0) == 0);
    /* Chaining over pieces gives the same result as one call. */
    CHECK(store_crc32(store_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
}

static void test_files(void)
{
    char p[512], victim[512], tmp[512];
    char *data = NULL;
    size_t len = 0;

    path_of(p, sizeof(p), "file.txt");
    CHECK(store_write_atomic(p, "hello", 5, 0600) == 0);
    CHECK(mode_rel("file.txt") == 0600);
    CHECK(!exists_rel("file.txt.tmp"));
    CHECK(store_read_file(p, &data, &len, 100) == 0);
    CHECK(len == 5 && data && strcmp(data, "hello") == 0);
    free(data);
    CHECK(store_read_file(p, &data, &len, 4) == STORE_EINVAL);
    CHECK(data == NULL);
    path_of(tmp, sizeof(tmp), "nope");
    CHECK(store_read_file(tmp, &data, &len, 100) == STORE_ENOENT);

    /* A stale .tmp hard-linked to another file must not be written through. */
    write_rel("victim", "keep", 4);
    path_of(victim, sizeof(victim), "victim");
    path_of(tmp, sizeof(tmp), "file.txt.tmp");
    CHECK(link(victim, tmp) == 0);
    CHECK(store_write_atomic(p, "world!", 6, 0600) == 0);
    CHECK(store_read_file(victim, &data, &len, 100) == 0);
    CHECK(data && strcmp(data, "keep") == 0);
    free(data);
    CHECK(store_read_file(p, &data, &len, 100) == 0);
    CHECK(data && strcmp(data, "world!") == 0);
    free(data);

    /* Missing directory: ENOENT, nothing created. */
    path_of(p, sizeof(p), "nodir/file");
    CHECK(store_write_atomic(p, "x", 1, 0600) == STORE_ENOENT);
    CHECK(!exists_rel("nodir"));
}

struct removed {
    int n;
    char bare[64];
    char roster[64];
};

static void collect_removed(const char *bare, char *roster, size_t len, void *ud)
{
    struct removed *rm = ud;
    rm->n++;
    snprintf(rm->bare, sizeof(rm->bare), "%s", bare);
    snprintf(rm->roster, sizeof(rm->roster), "%.*s", (int)len, roster);
}

static void test_accounts(void)
{
    struct store_account a, b, got;
    make_account(&a, 1);
    make_account(&b, 77);

    CHECK(store_account_exists("alice@example.org") == 0);
    CHECK(store_account_get("alice@example.org", &got) == STORE_ENOENT);
    CHECK(store_account_create("alice@example.org", &a) == 0);
    CHECK(store_account_exists("alice@example.org") == 1);
    CHECK(store_account_create("alice@example.org", &b) == STORE_EEXIST);
    CHECK(store_account_get("alice@example.org", &got) == 0);
    CHECK(account_equal(&a, &got));
    CHECK(mode_rel("accounts/alice@example.org") == 0700);
    CHECK(mode_rel("accounts/alice@example.org/account") == 0600);
    CHECK(count_entries("accounts/alice@example.org") == 1); /* no .tmp left */

    /* The file starts with its version line. */
    char p[512];
    char *data = NULL;
    size_t len = 0;
    path_of(p, sizeof(p), "accounts/alice@example.org/account");
    CHECK(store_read_file(p, &data, &len, 4096) == 0);
    CHECK(data && strncmp(data, "xmppd-account 1\nscram-sha-1 4096 ", 33) == 0);
    free(data);

    /* put replaces; it never creates (a password change racing a deletion
     * must not bring the account back). */
    CHECK(store_account_put("alice@example.org", &b) == 0);
    CHECK(store_account_get("alice@example.org", &got) == 0);
    CHECK(account_equal(&b, &got));
    CHECK(store_account_put("bob@example.org", &a) == STORE_ENOENT);
    CHECK(!exists_rel("accounts/bob@example.org"));
    CHECK(store_account_create("bob@example.org", &a) == 0);
    CHECK(store_account_get("bob@example.org", &got) == 0);
    CHECK(account_equal(&a, &got));

    /* Only one hash set is fine; none, or a wrong key length, is not. */
    struct store_account only256 = a;
    memset(&only256.sha1, 0, sizeof(only256.sha1));
    CHECK(store_account_create("carol@example.org", &only256) == 0);
    CHECK(store_account_get("carol@example.org", &got) == 0);
    CHECK(got.sha1.key_len == 0 && account_equal(&only256, &got));
    struct store_account none;
    memset(&none, 0, sizeof(none));
    CHECK(store_account_create("dave@example.org", &none) == STORE_EINVAL);
    struct store_account badlen = a;
    badlen.sha1.key_len = 32;
    CHECK(store_account_put("dave@example.org", &badlen) == STORE_EINVAL);
    CHECK(store_account_create("", &a) == STORE_EINVAL);
    CHECK(store_account_exists("dave@example.org") == 0);
    CHECK(count_entries("accounts") == 3);

    /* list is sorted. */
    struct names ns;
    memset(&ns, 0, sizeof(ns));
    CHECK(store_account_list(collect_name, &ns) == 0);
    CHECK(ns.n == 3);
    CHECK_STR(ns.v[0], "alice@example.org");
    CHECK_STR(ns.v[1], "bob@example.org");
    CHECK_STR(ns.v[2], "carol@example.org");
    memset(&ns, 0, sizeof(ns));
    ns.stop_after = 2;
    CHECK(store_account_list(collect_name, &ns) == 0);
    CHECK(ns.n == 2);

    /* Made and removed accounts change the accounts directory; reads do not. */
    store_accounts_changed(); /* takes note of the present */
    CHECK(store_accounts_changed() == 0);
    CHECK(store_account_exists("alice@example.org") == 1);
    CHECK(store_accounts_changed() == 0);

    /* delete removes everything but the roster, which waits in a hidden
     * tombstone for store_removed_each (the contacts are still to be told);
     * after that nothing is left. */
    CHECK(store_doc_put("bob@example.org", "roster", "r", 1) == 0);
    CHECK(store_offline_append("bob@example.org", "m", 1, 10) == 0);
    CHECK(store_account_delete("bob@example.org") == 0);
    CHECK(store_account_exists("bob@example.org") == 0);
    CHECK(store_account_get("bob@example.org", &got) == STORE_ENOENT);
    CHECK(!exists_rel("accounts/bob@example.org"));
    CHECK(count_entries("accounts") == 3);
    CHECK(store_init(root) == 0); /* a restart keeps it too */
    CHECK(count_entries("accounts") == 3);
    struct removed rm;
    memset(&rm, 0, sizeof(rm));
    CHECK(store_removed_each(collect_removed, &rm) == 0);
    CHECK(rm.n == 1);
    CHECK_STR(rm.bare, "bob@example.org");
    CHECK_STR(rm.roster, "r");
    CHECK(count_entries("accounts") == 2);
    CHECK(store_removed_each(collect_removed, &rm) == 0);
    CHECK(rm.n == 1);
    CHECK(store_accounts_changed() == 1);
    CHECK(store_accounts_changed() == 0);
    CHECK(store_account_delete("bob@example.org") == STORE_ENOENT);
    /* Re-created, it starts empty. */
    CHECK(store_account_create("bob@example.org", &a) == 0);
    CHECK(store_accounts_changed() == 1);
    CHECK(store_offline_count("bob@example.org") == 0);
    CHECK(store_doc_get("bob@example.org", "roster", &data, &len, 100) == STORE_ENOENT);
    CHECK(store_account_delete("bob@example.org") == 0);
    CHECK(store_account_delete("carol@example.org") == 0);
}

static void test_leftovers(void)
{
    /* A crash mid-create or mid-delete leaves hidden directories: invisible to
     * lookups and the list, removed by the next store_init. */
    char p[512];
    path_of(p, sizeof(p), "accounts/.del.999999998.2");
    CHECK(mkdir(p, 0700) == 0);
    write_rel("accounts/.del.999999998.2/account", "xmppd-account 1\n", 16);
    write_rel("accounts/.del.999999998.2/offline.log", "junk", 4);
    path_of(p, sizeof(p), "accounts/.new.999999999.4");
    CHECK(mkdir(p, 0700) == 0);
    write_rel("accounts/.new.999999999.4/account.tmp", "xmppd-acc", 9);
    struct names ns;
    memset(&ns, 0, sizeof(ns));
    CHECK(store_account_list(collect_name, &ns) == 0);
    CHECK(ns.n == 1); /* alice only */
    CHECK(store_init(root) == 0);
    CHECK(!exists_rel("accounts/.del.999999998.2"));
    CHECK(!exists_rel("accounts/.new.999999999.4"));
    CHECK(store_account_exists("alice@example.org") == 1);
    /* One whose maker still runs (an adduser beside us) is left alone. */
    char live[64];
    snprintf(live, sizeof(live), "accounts/.new.%ld.7", (long)getppid());
    path_of(p, sizeof(p), live);
    CHECK(mkdir(p, 0700) == 0);
    CHECK(store_init(root) == 0);
    CHECK(exists_rel(live));
    CHECK(rmdir(p) == 0);
}

static void test_escaping(void)
{
    struct store_account a, got;
    make_account(&a, 5);
    static const char *odd[] = {
        ".", "..", ".hidden@example.org", "a b%c@example.org", "Upper@Example.org",
        "\303\274nic\303\270de@example.org", "x:y@example.org", "..%2E",
    };
    static const char *on_disk[] = {
        "%2E", "%2E.", "%2Ehidden@example.org", "a%20b%25c@example.org", "%55pper@%45xample.org",
        "%C3%BCnic%C3%B8de@example.org", "x%3Ay@example.org", "%2E.%252%45",
    };
    size_t n = sizeof(odd) / sizeof(odd[0]);
    for (size_t i = 0; i < n; i++) {
        char rel[256];
        CHECK(store_account_create(odd[i], &a) == 0);
        snprintf(rel, sizeof(rel), "accounts/%s", on_disk[i]);
        if (!exists_rel(rel)) {
            fprintf(stderr, "missing %s\n", rel);
        }
        CHECK(exists_rel(rel));
        CHECK(store_account_get(odd[i], &got) == 0);
        CHECK(account_equal(&a, &got));
    }
    /* "." and ".." did not touch the accounts dir or its parent. */
    CHECK(exists_rel("accounts/alice@example.org/account"));
    CHECK(!exists_rel("accounts/account"));
    CHECK(!exists_rel("account"));

    /* The list gives back the original names, sorted by strcmp. */
    struct names ns;
    memset(&ns, 0, sizeof(ns));
    CHECK(store_account_list(collect_name, &ns) == 0);
    CHECK(ns.n == (int)n + 1);
    for (int i = 1; i < ns.n && i < 16; i++) {
        CHECK(strcmp(ns.v[i - 1], ns.v[i]) < 0);
    }
    int found = 0;
    for (int i = 0; i < ns.n && i < 16; i++) {
        for (size_t j = 0; j < n; j++) {
            found += strcmp(ns.v[i], odd[j]) == 0;
        }
    }
    CHECK(found == (int)n);

    /* A non-canonical directory (made by hand) is not listed. */
    char p[512];
    path_of(p, sizeof(p), "accounts/Bad%2e");
    CHECK(mkdir(p, 0700) == 0);
    memset(&ns, 0, sizeof(ns));
    CHECK(store_account_list(collect_name, &ns) == 0);
    CHECK(ns.n == (int)n + 1);
    CHECK(rmdir(p) == 0);

    /* A name too long for one directory entry cannot be stored. */
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CHECK(store_account_create(longname, &a) == STORE_EINVAL);
    CHECK(store_account_exists(longname) == 0);
    CHECK(store_account_get(longname, &got) == STORE_ENOENT);

    for (size_t i = 0; i < n; i++) {
        CHECK(store_account_delete(odd[i]) == 0);
    }
    CHECK(count_entries("accounts") == 1);
}

static void test_docs(void)
{
    const char *u = "alice@example.org";
    char *data = NULL;
    size_t len = 0;

    CHECK(store_doc_get(u, "roster", &data, &len, 1000) == STORE_ENOENT);
    CHECK(store_doc_put(u, "roster", "<query/>", 8) == 0);
    CHECK(mode_rel("accounts/alice@example.org/doc-roster") == 0600);
    CHECK(store_doc_get(u, "roster", &data, &len, 1000) == 0);
    CHECK(len == 8 && data && strcmp(data, "<query/>") == 0);
    free(data);
    CHECK(store_doc_put(u, "roster", "new\0bin", 7) == 0);
    CHECK(store_doc_get(u, "roster", &data, &len, 1000) == 0);
    CHECK(len == 7 && data && memcmp(data, "new\0bin", 7) == 0 && data[7] == '\0');
    free(data);
    CHECK(store_doc_get(u, "roster", &data, &len, 6) == STORE_EINVAL);
    CHECK(data == NULL);
    CHECK(store_doc_put(u, "empty", "", 0) == 0);
    CHECK(store_doc_get(u, "empty", &data, &len, 10) == 0);
    CHECK(len == 0 && data && data[0] == '\0');
    free(data);

    CHECK(store_doc_put(u, "Bad", "x", 1) == STORE_EINVAL);
    CHECK(store_doc_put(u, "../account", "x", 1) == STORE_EINVAL);
    CHECK(store_doc_put(u, "", "x", 1) == STORE_EINVAL);

    CHECK(store_doc_delete(u, "empty") == 0);
    CHECK(store_doc_delete(u, "empty") == STORE_ENOENT);
    CHECK(store_doc_get(u, "empty", &data, &len, 10) == STORE_ENOENT);

    /* Bit rot in the payload: checksum fails, file renamed aside. */
    CHECK(store_doc_put(u, "vcard", "<vCard/>", 8) == 0);
    long sz = size_rel("accounts/alice@example.org/doc-vcard");
    char p[512];
    path_of(p, sizeof(p), "accounts/alice@example.org/doc-vcard");
    int fd = open(p, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "X", 1, sz - 3) == 1);
    close(fd);
    CHECK(store_doc_get(u, "vcard", &data, &len, 100) == STORE_ECORRUPT);
    CHECK(exists_rel("accounts/alice@example.org/doc-vcard.bad"));
    CHECK(!exists_rel("accounts/alice@example.org/doc-vcard"));
    CHECK(store_doc_get(u, "vcard", &data, &len, 100) == STORE_ENOENT);

    /* Truncated document: length mismatch. */
    CHECK(store_doc_put(u, "private", "abcdef", 6) == 0);
    const char *priv = "accounts/alice@example.org/doc-private";
    truncate_rel(priv, size_rel(priv) - 2);
    CHECK(store_doc_get(u, "private", &data, &len, 100) == STORE_ECORRUPT);
    CHECK(exists_rel("accounts/alice@example.org/doc-private.bad"));

    /* Lazy writes (last activity): rewritten in place, same format; a write
     * a crash cut short (here: emptied) reads as corrupt, not as garbage. */
    CHECK(store_doc_put_lazy(u, "last", "last 1 100\n", 11) == 0);
    CHECK(mode_rel("accounts/alice@example.org/doc-last") == 0600);
    CHECK(store_doc_put_lazy(u, "last", "last 1 2\naway", 13) == 0);
    CHECK(store_doc_get(u, "last", &data, &len, 100) == 0);
    CHECK(len == 13 && data && memcmp(data, "last 1 2\naway", 13) == 0);
    free(data);
    CHECK(!exists_rel("accounts/alice@example.org/doc-last.tmp"));
    truncate_rel("accounts/alice@example.org/doc-last", 0);
    CHECK(store_doc_get(u, "last", &data, &len, 100) == STORE_ECORRUPT);
    CHECK(store_doc_put_lazy(u, "last", "last 1 3\n", 9) == 0);
    CHECK(store_doc_get(u, "last", &data, &len, 100) == 0);
    free(data);

    /* A newer version is refused but left in place. */
    write_rel("accounts/alice@example.org/doc-future", "xmppd-doc 2 1 00000000\nx", 24);
    CHECK(store_doc_get(u, "future", &data, &len, 100) == STORE_ECORRUPT);
    CHECK(exists_rel("accounts/alice@example.org/doc-future"));
    CHECK(!exists_rel("accounts/alice@example.org/doc-future.bad"));
}

static void test_unknown_account(void)
{
    const char *u = "ghost@example.org";
    char *data = NULL;
    size_t len = 0;
    struct recs r;
    int before = count_entries("accounts");
    CHECK(store_doc_put(u, "roster", "x", 1) == STORE_ENOENT);
    CHECK(store_doc_put_lazy(u, "last", "x", 1) == STORE_ENOENT);
    CHECK(store_doc_get(u, "roster", &data, &len, 10) == STORE_ENOENT);
    CHECK(store_doc_delete(u, "roster") == STORE_ENOENT);
    CHECK(store_offline_append(u, "x", 1, 10) == STORE_ENOENT);
    CHECK(store_offline_count(u) == STORE_ENOENT);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == STORE_ENOENT);
    CHECK(store_offline_clear(u) == STORE_ENOENT);
    CHECK(store_account_delete(u) == STORE_ENOENT);
    CHECK(count_entries("accounts") == before);
    CHECK(!exists_rel("accounts/ghost@example.org"));
}

static void test_offline(void)
{
    const char *u = "alice@example.org";
    const char *log = "accounts/alice@example.org/offline.log";
    struct recs r;

    CHECK(store_offline_count(u) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == 0);
    CHECK(store_offline_clear(u) == 0);
    CHECK(store_offline_append(u, "one", 3, 0) == STORE_EQUOTA);
    CHECK(!exists_rel(log)); /* refused without creating the file */

    CHECK(store_offline_append(u, "one", 3, 3) == 0);
    CHECK(mode_rel(log) == 0600);
    CHECK(store_offline_append(u, "two", 3, 3) == 0);
    CHECK(store_offline_append(u, "", 0, 3) == 0);
    CHECK(store_offline_append(u, "four", 4, 3) == STORE_EQUOTA);
    CHECK(store_offline_count(u) == 3);
    CHECK(size_rel(log) == 16 + 3 * 12 + 6);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0);
    CHECK(r.n == 3);
    CHECK_STR(r.v[0], "one");
    CHECK_STR(r.v[1], "two");
    CHECK(r.len[2] == 0);
    memset(&r, 0, sizeof(r));
    r.stop_after = 1;
    CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == 1);
    CHECK(store_offline_append(u, "x", STORE_RECORD_MAX + 1, 100) == STORE_EINVAL);

    CHECK(store_offline_clear(u) == 0);
    CHECK(!exists_rel(log));
    CHECK(store_offline_count(u) == 0);

    /* Bytes added behind our back (a torn append of an earlier run, say):
     * the remembered count is not used, the scan finds and cuts them. */
    CHECK(store_offline_append(u, "a", 1, 10) == 0);
    CHECK(store_offline_append(u, "b", 1, 10) == 0);
    {
        char p[512];
        path_of(p, sizeof(p), log);
        int fd = open(p, O_WRONLY | O_APPEND);
        CHECK(fd >= 0 && write(fd, "OFFLxx", 6) == 6);
        close(fd);
    }
    CHECK(store_offline_append(u, "c", 1, 3) == 0);
    CHECK(store_offline_append(u, "d", 1, 3) == STORE_EQUOTA);
    CHECK(size_rel(log) == 16 + 3 * 13);
    CHECK(store_offline_clear(u) == 0);

    /* Torn tail: cut the last record short by hand. */
    CHECK(store_offline_append(u, "first", 5, 10) == 0);
    CHECK(store_offline_append(u, "second", 6, 10) == 0);
    long full = size_rel(log);
    truncate_rel(log, full - 3);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0);
    CHECK(r.n == 1);
    CHECK_STR(r.v[0], "first");
    CHECK(store_offline_count(u) == 1);
    CHECK(size_rel(log) == full - 3); /* reading never writes */
    CHECK(store_offline_append(u, "third", 5, 10) == 0);
    CHECK(size_rel(log) == 16 + 12 + 5 + 12 + 5); /* the garbage was cut off */
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0);
    CHECK(r.n == 2);
    CHECK_STR(r.v[0], "first");
    CHECK_STR(r.v[1], "third");

    /* Torn inside a record header, and a record whose checksum fails. */
    truncate_rel(log, 16 + 12 + 5 + 7);
    CHECK(store_offline_count(u) == 1);
    CHECK(store_offline_append(u, "fourth", 6, 10) == 0);
    CHECK(store_offline_count(u) == 2);
    char p[512];
    path_of(p, sizeof(p), log);
    int fd = open(p, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "F", 1, 16 + 12 + 5 + 12) == 1); /* flip "fourth" */
    close(fd);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == 1);
    CHECK(store_offline_append(u, "fifth", 5, 10) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == 2);
    CHECK_STR(r.v[1], "fifth");

    /* Garbage appended after intact records (e.g. zeroes after a crash). */
    static const char zeros[40];
    append_rel(log, zeros, sizeof(zeros));
    CHECK(store_offline_count(u) == 2);
    CHECK(store_offline_append(u, "sixth", 5, 10) == 0);
    CHECK(store_offline_count(u) == 3);
    CHECK(size_rel(log) == 16 + 3 * 12 + 15);

    /* A header torn while the file was created. */
    CHECK(store_offline_clear(u) == 0);
    write_rel(log, "xmppd-off", 9);
    CHECK(store_offline_count(u) == 0);
    CHECK(exists_rel(log) && size_rel(log) == 9);
    CHECK(store_offline_append(u, "a", 1, 10) == 0);
    CHECK(store_offline_count(u) == 1);
    CHECK(size_rel(log) == 16 + 12 + 1);

    /* Not our file at all: read renames it aside; append starts a new log. */
    write_rel(log, "this is not an offline log at all", 33);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == STORE_ECORRUPT);
    CHECK(exists_rel("accounts/alice@example.org/offline.log.bad"));
    CHECK(store_offline_count(u) == 0);
    write_rel(log, "garbage garbage garbage", 23);
    CHECK(store_offline_append(u, "b", 1, 10) == 0);
    CHECK(store_offline_count(u) == 1);

    /* Written by a newer version: refused, left untouched. */
    write_rel(log, "xmppd-offline 2\nwhatever", 24);
    CHECK(store_offline_count(u) == STORE_ECORRUPT);
    CHECK(store_offline_append(u, "c", 1, 10) == STORE_ECORRUPT);
    CHECK(size_rel(log) == 24);
    CHECK(store_offline_clear(u) == 0);
}

static void test_corrupt_account(void)
{
    const char *u = "alice@example.org";
    const char *f = "accounts/alice@example.org/account";
    struct store_account a, got;
    make_account(&a, 9);
    CHECK(store_account_put(u, &a) == 0);

    write_rel(f, "xmppd-account 1\nscram-sha-1 4096 AAAA AAAA AAAA\n", 48);
    CHECK(store_account_get(u, &got) == STORE_ECORRUPT);
    CHECK(got.sha1.key_len == 0 && got.sha256.key_len == 0);
    CHECK(exists_rel("accounts/alice@example.org/account.bad"));
    CHECK(!exists_rel(f));
    /* Still an account (its data stays); get keeps saying corrupt until put. */
    CHECK(store_account_exists(u) == 1);
    CHECK(store_account_get(u, &got) == STORE_ECORRUPT);
    CHECK(store_account_create(u, &a) == STORE_EEXIST);
    CHECK(store_account_put(u, &a) == 0);
    CHECK(store_account_get(u, &got) == 0 && account_equal(&a, &got));

    /* A missing final newline (cut file), an unknown line, a duplicate line. */
    char p[512], *data = NULL;
    size_t len = 0;
    path_of(p, sizeof(p), f);
    CHECK(store_read_file(p, &data, &len, 4096) == 0);
    write_rel(f, data, len - 1);
    CHECK(store_account_get(u, &got) == STORE_ECORRUPT);
    write_rel(f, data, len);
    append_rel(f, "password hunter2\n", 17);
    CHECK(store_account_get(u, &got) == STORE_ECORRUPT);
    write_rel(f, data, len);
    char *second = strchr(data, '\n') + 1;
    append_rel(f, second, (size_t)(strchr(second, '\n') + 1 - second));
    CHECK(store_account_get(u, &got) == STORE_ECORRUPT);
    write_rel(f, data, len);
    CHECK(store_account_get(u, &got) == 0 && account_equal(&a, &got));
    free(data);

    /* A newer version is refused but not renamed aside. */
    write_rel(f, "xmppd-account 2\nsomething new\n", 30);
    CHECK(store_account_get(u, &got) == STORE_ECORRUPT);
    CHECK(exists_rel(f));
    CHECK(store_account_put(u, &a) == 0);
}

/* A full disk, simulated: with RLIMIT_FSIZE and SIGXFSZ ignored, a write that
 * passes the limit stores what fits and returns the count, and the next write
 * fails (EFBIG), just like a write that runs into ENOSPC. */
static int set_fsize(rlim_t lim)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) < 0) {
        return -1;
    }
    rl.rlim_cur = lim;
    return setrlimit(RLIMIT_FSIZE, &rl);
}

static void test_full_disk(void)
{
    const char *u = "dave@example.org", *u2 = "erin@example.org";
    const char *log = "accounts/dave@example.org/offline.log";
    const char *log2 = "accounts/erin@example.org/offline.log";
    struct store_account a;
    struct recs r;
    char big[400];
    char *data = NULL;
    size_t len = 0;
    memset(big, 'm', sizeof(big));
    struct rlimit saved;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    make_account(&a, 4);
    CHECK(store_account_create(u, &a) == 0);
    CHECK(store_account_create(u2, &a) == 0);
    int entries = count_entries("accounts");
    CHECK(store_offline_append(u, big, 100, 100) == 0);
    CHECK(store_offline_append(u, big, 100, 100) == 0);
    CHECK(size_rel(log) == 16 + 2 * 112);
    CHECK(store_doc_put(u, "roster", "small", 5) == 0);

    signal(SIGXFSZ, SIG_IGN);
    if (set_fsize(300) < 0) {
        fprintf(stderr, "test_full_disk: cannot lower RLIMIT_FSIZE\n");
        test_failed++;
        signal(SIGXFSZ, SIG_DFL);
        return;
    }
    /* Half a record fits: it is cut off again, the log stays intact. */
    CHECK(store_offline_append(u, big, 100, 100) == STORE_EIO);
    CHECK(size_rel(log) == 16 + 2 * 112);
    CHECK(store_offline_count(u) == 2);
    CHECK(store_offline_append(u, big, 48, 100) == 0); /* exactly up to the limit */
    CHECK(size_rel(log) == 300);
    CHECK(store_offline_append(u, "x", 1, 100) == STORE_EIO); /* nothing fits */
    CHECK(size_rel(log) == 300);
    /* A torn tail, then a failed append: the tail is gone, the rest intact. */
    truncate_rel(log, 300 - 5);
    CHECK(store_offline_append(u, big, 100, 100) == STORE_EIO);
    CHECK(size_rel(log) == 16 + 2 * 112);
    CHECK(store_offline_count(u) == 2);

    /* A new log whose first record does not fit is not left behind. */
    set_fsize(20);
    CHECK(store_offline_append(u2, big, 100, 100) == STORE_EIO);
    CHECK(!exists_rel(log2));
    CHECK(store_offline_count(u2) == 0);

    /* A document that does not fit: the old one stays, no temp is left. */
    CHECK(store_doc_put(u, "roster", big, sizeof(big)) == STORE_EIO);
    CHECK(!exists_rel("accounts/dave@example.org/doc-roster.tmp"));
    CHECK(store_doc_get(u, "roster", &data, &len, 1024) == 0 && len == 5 &&
          memcmp(data, "small", 5) == 0);
    free(data);
    data = NULL;

    /* An account that cannot be written does not appear, half made or not. */
    CHECK(store_account_create("frank@example.org", &a) == STORE_EIO);
    CHECK(store_account_exists("frank@example.org") == 0);
    CHECK(count_entries("accounts") == entries);

    /* Space again: everything works, nothing was damaged. */
    CHECK(set_fsize(saved.rlim_cur) == 0);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(store_offline_append(u, "after", 5, 100) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == 3);
    CHECK_STR(r.v[2], "after");
    CHECK(store_offline_append(u2, "first", 5, 100) == 0);
    CHECK(store_offline_count(u2) == 1);
    CHECK(store_doc_put(u, "roster", big, sizeof(big)) == 0);
    CHECK(store_doc_get(u, "roster", &data, &len, 1024) == 0 && len == sizeof(big));
    free(data);
    CHECK(store_account_create("frank@example.org", &a) == 0);
    CHECK(store_account_delete("frank@example.org") == 0);
    CHECK(store_account_delete(u) == 0);
    CHECK(store_account_delete(u2) == 0);
}

/* Delivered batches leave the head of the log; later appends stay. */
static void test_offline_drop_head(void)
{
    const char *u = "alice@example.org";
    const char *log = "accounts/alice@example.org/offline.log";
    struct recs r;
    uint32_t crc2 = store_crc32(store_crc32(0, "m1", 2), "m2", 2);

    CHECK(store_offline_clear(u) == 0);
    CHECK(store_offline_drop_head(u, 2, crc2) == 0); /* no log: nothing to do */
    CHECK(store_offline_append(u, "m1", 2, 10) == 0);
    CHECK(store_offline_append(u, "m2", 2, 10) == 0);
    CHECK(store_offline_append(u, "m3", 2, 10) == 0);
    /* A wrong checksum or count removes nothing. */
    CHECK(store_offline_drop_head(u, 2, crc2 ^ 1) == STORE_EINVAL);
    CHECK(store_offline_drop_head(u, 4, crc2) == STORE_EINVAL);
    CHECK(store_offline_count(u) == 3);
    CHECK(store_offline_drop_head(u, 2, crc2) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == 1);
    CHECK_STR(r.v[0], "m3");
    CHECK(!exists_rel("accounts/alice@example.org/offline.log.tmp"));
    CHECK(store_offline_append(u, "m4", 2, 10) == 0); /* the rewritten log takes appends */
    CHECK(store_offline_count(u) == 2);
    /* Dropping everything removes the file. */
    CHECK(store_offline_drop_head(u, 2, store_crc32(store_crc32(0, "m3", 2), "m4", 2)) == 0);
    CHECK(!exists_rel(log));
    CHECK(store_offline_drop_head("nobody@example.org", 1, 0) == STORE_ENOENT);
}

/* ---- deferred appends (group commit) ---- */
struct synced {
    int n;
    char bare[80][32];
    int ok[80];
};

static void record_synced(const char *bare, int ok, void *ud)
{
    struct synced *sy = ud;
    if (sy->n < 80) {
        snprintf(sy->bare[sy->n], sizeof(sy->bare[0]), "%s", bare);
        sy->ok[sy->n] = ok;
    }
    sy->n++;
}

/* ok for bare in the last sync: 1, 0, or -1 when it was not synced. */
static int synced_ok(const struct synced *sy, const char *bare)
{
    for (int i = 0; i < sy->n && i < 80; i++) {
        if (strcmp(sy->bare[i], bare) == 0) {
            return sy->ok[i];
        }
    }
    return -1;
}

static ino_t ino_rel(const char *rel)
{
    char p[512];
    struct stat st;
    path_of(p, sizeof(p), rel);
    return stat(p, &st) == 0 ? st.st_ino : 0;
}

static void test_offline_deferred(void)
{
    const char *a = "alice@example.org", *d = "dora@example.org";
    const char *alog = "accounts/alice@example.org/offline.log";
    const char *dlog = "accounts/dora@example.org/offline.log";
    struct store_account acc;
    struct synced sy;
    struct recs r;
    make_account(&acc, 7);
    CHECK(store_account_create(d, &acc) == 0);
    CHECK(store_offline_clear(a) == 0);
    memset(&sy, 0, sizeof(sy));
    store_offline_on_sync(record_synced, &sy);

    /* In the file at once, counted for the quota, synced once per log. */
    CHECK(store_offline_append(a, "old", 3, 10) == 0);
    CHECK(store_offline_append_deferred(a, "d1", 2, 10) == 0);
    CHECK(store_offline_append_deferred(a, "d2", 2, 10) == 0);
    CHECK(store_offline_append_deferred(d, "n1", 2, 10) == 0); /* creates dora's log */
    CHECK(store_offline_unsynced() == 2);
    CHECK(size_rel(alog) == 16 + 3 * 12 + 3 + 2 + 2);
    CHECK(store_offline_append_deferred(a, "d3", 2, 4) == 0);
    CHECK(store_offline_append_deferred(a, "d4", 2, 4) == STORE_EQUOTA);
    CHECK(sy.n == 0);
    fsync_count_ino = ino_rel(alog);
    fsync_count = 0;
    CHECK(store_offline_sync() == 0);
    CHECK(fsync_count == 1); /* three appends, one fsync */
    fsync_count_ino = 0;
    CHECK(sy.n == 2 && synced_ok(&sy, a) == 1 && synced_ok(&sy, d) == 1);
    CHECK(store_offline_unsynced() == 0);
    CHECK(store_offline_sync() == 0 && sy.n == 2); /* nothing left to sync */

    /* A read syncs first: what it hands out cannot be taken back. */
    memset(&sy, 0, sizeof(sy));
    CHECK(store_offline_append_deferred(d, "n2", 2, 10) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(d, collect_rec, &r) == 0 && r.n == 2);
    CHECK(sy.n == 1 && synced_ok(&sy, d) == 1);

    /* A failed fsync takes back exactly the unsynced records of that log. */
    memset(&sy, 0, sizeof(sy));
    long before = size_rel(alog);
    CHECK(store_offline_append_deferred(a, "e1", 2, 10) == 0);
    CHECK(store_offline_append_deferred(d, "n3", 2, 10) == 0);
    CHECK(store_offline_append_deferred(a, "e2", 2, 10) == 0);
    fsync_fail_ino = ino_rel(alog);
    CHECK(store_offline_sync() == 1);
    fsync_fail_ino = 0;
    CHECK(sy.n == 2 && synced_ok(&sy, a) == 0 && synced_ok(&sy, d) == 1);
    CHECK(size_rel(alog) == before);
    CHECK(store_offline_count(a) == 4);
    CHECK(store_offline_append(a, "f", 1, 10) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(a, collect_rec, &r) == 0 && r.n == 5);
    CHECK_STR(r.v[3], "d3");
    CHECK_STR(r.v[4], "f");
    CHECK(store_offline_count(d) == 3);

    /* A log the deferred appends created goes away whole. */
    memset(&sy, 0, sizeof(sy));
    CHECK(store_offline_clear(d) == 0);
    CHECK(store_offline_append_deferred(d, "x1", 2, 10) == 0);
    CHECK(store_offline_append_deferred(d, "x2", 2, 10) == 0);
    fsync_fail_ino = ino_rel(dlog);
    CHECK(store_offline_sync() == 1);
    fsync_fail_ino = 0;
    CHECK(sy.n == 1 && synced_ok(&sy, d) == 0);
    CHECK(!exists_rel(dlog));
    CHECK(store_offline_count(d) == 0);

    /* The file of a waiting log removed behind the store's back (a tool):
     * the append that makes a new one syncs it at once. */
    memset(&sy, 0, sizeof(sy));
    CHECK(store_offline_append_deferred(d, "w1", 2, 10) == 0);
    {
        char p[512];
        path_of(p, sizeof(p), dlog);
        CHECK(unlink(p) == 0);
    }
    int calls = fsync_calls;
    CHECK(store_offline_append_deferred(d, "w2", 2, 10) == 0);
    CHECK(fsync_calls == calls + 2); /* the file and its directory */
    CHECK(store_offline_unsynced() == 1); /* the old file's descriptor */
    CHECK(store_offline_sync() == 0 && sy.n == 1 && synced_ok(&sy, d) == 1);
    memset(&r, 0, sizeof(r));
    CHECK(store_offline_read(d, collect_rec, &r) == 0 && r.n == 1);
    CHECK_STR(r.v[0], "w2");

    /* Removing an account syncs first. */
    memset(&sy, 0, sizeof(sy));
    CHECK(store_offline_append_deferred(d, "y", 1, 10) == 0);
    CHECK(store_account_delete(d) == 0);
    CHECK(sy.n == 1 && synced_ok(&sy, d) == 1 && store_offline_unsynced() == 0);

    /* At most 64 logs wait: the next one syncs them first. */
    char names[65][32];
    for (int i = 0; i < 65; i++) {
        snprintf(names[i], sizeof(names[i]), "q%d@example.org", i);
        CHECK(store_account_create(names[i], &acc) == 0);
    }
    memset(&sy, 0, sizeof(sy));
    for (int i = 0; i < 64; i++) {
        CHECK(store_offline_append_deferred(names[i], "z", 1, 10) == 0);
    }
    CHECK(store_offline_unsynced() == 64 && sy.n == 0);
    CHECK(store_offline_append_deferred(names[0], "z", 1, 10) == 0); /* a waiting log */
    CHECK(store_offline_unsynced() == 64 && sy.n == 0);
    CHECK(store_offline_append_deferred(names[64], "z", 1, 10) == 0);
    CHECK(store_offline_unsynced() == 1 && sy.n == 64 && synced_ok(&sy, names[63]) == 1);
    CHECK(store_offline_sync() == 0 && sy.n == 65);
    CHECK(store_offline_count(names[0]) == 2 && store_offline_count(names[64]) == 1);
    for (int i = 0; i < 65; i++) {
        CHECK(store_account_delete(names[i]) == 0);
    }
    store_offline_on_sync(NULL, NULL);
    CHECK(store_offline_clear(a) == 0);
}

/* Two processes at once, as xmppd deluser beside the server or beside
 * xmppd passwd: a password change racing a deletion never brings the account
 * back, and a document write racing it leaves nothing behind (no tombstone,
 * no temp file) and reports the account gone. */
static int race_writer(const char *u, int doc)
{
    struct store_account a;
    make_account(&a, 6);
    int rc = 0;
    for (int n = 0; n < 2000 && rc == 0; n++) {
        rc = doc ? store_doc_put(u, "vcard", "v", 1) : store_account_put(u, &a);
    }
    return rc;
}

static void test_delete_races(void)
{
    const char *u = "race@example.org";
    struct store_account a;
    make_account(&a, 5);
    int base = count_entries("accounts");
    for (int round = 0; round < 16; round++) {
        int doc = round % 2;
        CHECK(store_account_create(u, &a) == 0);
        int pipefd[2];
        CHECK(pipe(pipefd) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            int rc = race_writer(u, doc);
            ssize_t w = write(pipefd[1], &rc, sizeof(rc));
            _exit(w == sizeof(rc) ? 0 : 1);
        }
        close(pipefd[1]);
        usleep(2000 + 500 * (useconds_t)round);
        CHECK(store_account_delete(u) == 0);
        int rc = 1, status = 0;
        CHECK(read(pipefd[0], &rc, sizeof(rc)) == sizeof(rc));
        close(pipefd[0]);
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(rc == STORE_ENOENT);
        CHECK(store_account_exists(u) == 0);
        CHECK(count_entries("accounts") == base); /* no tombstone, no account */
    }
}

/* The server's secret: made from the caller's bytes once, 0600, then read
 * back unchanged; a damaged file is set aside and replaced. */
static void test_secret(void)
{
    unsigned char a[32], b[32], fresh[32], out[32];
    memset(a, 0xA5, sizeof(a));
    memset(b, 0x5A, sizeof(b));
    CHECK(store_secret(out, sizeof(out), a) == 0);
    CHECK(memcmp(out, a, sizeof(a)) == 0);
    CHECK(mode_rel("secret") == 0600);
    memset(out, 0, sizeof(out));
    CHECK(store_secret(out, sizeof(out), b) == 0);
    CHECK(memcmp(out, a, sizeof(a)) == 0); /* read back, fresh ignored */
    CHECK(store_secret(out, 0, b) == STORE_EINVAL);
    char path[600];
    snprintf(path, sizeof(path), "%s/secret", root);
    CHECK(store_write_atomic(path, "xmppd-secret 1\nZZ\n", 18, 0600) == 0);
    memset(fresh, 0x11, sizeof(fresh));
    CHECK(store_secret(out, sizeof(out), fresh) == 0);
    CHECK(memcmp(out, fresh, sizeof(fresh)) == 0);
    CHECK(mode_rel("secret.bad") == 0600);
    /* A newer format (a downgrade) is left alone. */
    CHECK(store_write_atomic(path, "xmppd-secret 2\nAB\n", 18, 0600) == 0);
    CHECK(store_secret(out, sizeof(out), fresh) == STORE_ECORRUPT);
    CHECK(size_rel("secret") == 18);
}

/* store_doc_stamp tells one version of a doc from the next. */
static void test_doc_stamp(void)
{
    const char *u = "stamp@example.org";
    struct store_stamp a, b, c;
    struct store_account acct;
    make_account(&acct, 5);
    CHECK(store_doc_stamp(u, "pep", &a) == STORE_ENOENT); /* no account */
    CHECK(store_account_create(u, &acct) == 0);
    CHECK(store_doc_stamp(u, "pep", &a) == STORE_ENOENT); /* no doc */
    CHECK(a.ino == 0 && a.size == 0);
    CHECK(store_doc_put(u, "pep", "<pep/>", 6) == 0);
    CHECK(store_doc_stamp(u, "pep", &b) == STORE_OK);
    CHECK(store_doc_stamp(u, "pep", &c) == STORE_OK);
    CHECK(memcmp(&b, &c, sizeof(b)) == 0); /* unchanged: same stamp */
    CHECK(store_doc_put(u, "pep", "<pep/>", 6) == 0); /* same bytes, a new file */
    CHECK(store_doc_stamp(u, "pep", &c) == STORE_OK);
    CHECK(memcmp(&b, &c, sizeof(b)) != 0);
    CHECK(store_doc_stamp(u, "../x", &c) == STORE_EINVAL);
}

/* ---- message archive (store_arc_*) ---- */

struct arc_seen {
    int n, stop_after;
    uint64_t id[64];
    char data[64][32];
    unsigned flags[64];
};

static int arc_collect(const struct store_arc_rec *r, void *ud)
{
    struct arc_seen *s = ud;
    if (s->n < 64) {
        s->id[s->n] = r->id;
        s->flags[s->n] = r->flags;
        snprintf(s->data[s->n], sizeof(s->data[0]), "%.*s", (int)r->len, (const char *)r->data);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static int arc_add(const char *u, const char *key, const char *data, uint64_t *id)
{
    struct store_arc_rec r = {0, 1, key, strlen(key), data, strlen(data)};
    struct store_arc_limits none = {0, 0};
    return store_arc_append(u, &r, &none, id);
}

static int arc_all(const char *u, const char *key, int backward, struct arc_seen *s)
{
    struct store_arc_query q = {0, 0, key, key ? strlen(key) : 0, backward};
    memset(s, 0, sizeof(*s));
    return store_arc_query(u, &q, arc_collect, s);
}

static void test_archive(void)
{
    const char *u = "arc@example.org";
    const char *log = "accounts/arc@example.org/archive.log";
    const char *idx = "accounts/arc@example.org/archive.idx";
    struct store_account a;
    struct arc_seen s;
    uint64_t ids[10], id, count;
    char p[512];

    make_account(&a, 40);
    CHECK(arc_add("nobody@example.org", "k", "x", &id) == STORE_ENOENT);
    CHECK(!exists_rel("accounts/nobody@example.org"));
    CHECK(store_account_create(u, &a) == 0);
    /* An empty archive: queries answer nothing and create nothing. */
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 0);
    CHECK(store_arc_exists(u, 1) == STORE_ENOENT);
    {
        struct store_arc_limits lim = {10, 1ULL << 62};
        CHECK(store_arc_trim(u, &lim) == 0); /* nothing to trim, nothing made */
    }
    CHECK(!exists_rel(log));

    for (int i = 0; i < 10; i++) {
        char d[8];
        snprintf(d, sizeof(d), "m%d", i);
        CHECK(arc_add(u, i % 2 ? "bob@x" : "carol@x", d, &ids[i]) == 0);
        CHECK(i == 0 || ids[i] > ids[i - 1]); /* unique and increasing */
    }
    CHECK(store_arc_sync() == 0);
    CHECK(mode_rel(log) == 0600 && size_rel(idx) == 32 + 10 * 32);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 10);
    CHECK_STR(s.data[0], "m0");
    CHECK_STR(s.data[9], "m9");
    CHECK(s.id[3] == ids[3] && s.flags[3] == 1);
    CHECK(arc_all(u, NULL, 1, &s) == 0 && s.n == 10);
    CHECK_STR(s.data[0], "m9");
    CHECK(arc_all(u, "bob@x", 0, &s) == 0 && s.n == 5);
    CHECK_STR(s.data[0], "m1");
    CHECK(arc_all(u, "bob@", 0, &s) == 0 && s.n == 0); /* whole keys only */
    {
        struct store_arc_query q = {ids[2], ids[6], NULL, 0, 0};
        memset(&s, 0, sizeof(s));
        CHECK(store_arc_query(u, &q, arc_collect, &s) == 0 && s.n == 3);
        CHECK_STR(s.data[0], "m3");
        CHECK(store_arc_count(u, &q, &count) == 0 && count == 3);
        q.backward = 1;
        memset(&s, 0, sizeof(s));
        s.stop_after = 2;
        CHECK(store_arc_query(u, &q, arc_collect, &s) == 0 && s.n == 2);
        CHECK_STR(s.data[0], "m5");
        CHECK_STR(s.data[1], "m4");
    }
    CHECK(store_arc_exists(u, ids[4]) == 0);
    CHECK(store_arc_exists(u, ids[4] + 1) == STORE_ENOENT);

    /* A torn record at the end (a crash mid-append): readers stop before it,
     * the next append cuts it and the index stays right. */
    path_of(p, sizeof(p), log);
    int fd = open(p, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "MAMR\0\0\0\x40garbage", 15) == 15);
    close(fd);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 10);
    long before = size_rel(log);
    CHECK(arc_add(u, "bob@x", "m10", &id) == 0 && id > ids[9]);
    CHECK(store_arc_sync() == 0);
    CHECK(size_rel(log) == before - 15 + 12 + 11 + 5 + 3);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 11);
    CHECK_STR(s.data[10], "m10");

    /* A record in the log that the index lacks (killed between the two
     * writes) and a torn index entry: both found without a rewrite. */
    path_of(p, sizeof(p), idx);
    CHECK(truncate(p, 32 + 9 * 32 + 7) == 0);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 11);
    CHECK(arc_add(u, "carol@x", "m11", &id) == 0);
    CHECK(store_arc_sync() == 0);
    CHECK(size_rel(idx) == 32 + 12 * 32);
    CHECK(arc_all(u, "carol@x", 0, &s) == 0 && s.n == 6);
    CHECK_STR(s.data[5], "m11");

    /* No index at all, and a garbage one: the log is read, the next append
     * rebuilds it. */
    CHECK(unlink(p) == 0);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 12);
    CHECK(store_arc_exists(u, ids[7]) == 0);
    CHECK(!exists_rel(idx)); /* reads never write */
    CHECK(arc_add(u, "bob@x", "m12", &id) == 0);
    CHECK(store_arc_sync() == 0);
    CHECK(size_rel(idx) == 32 + 13 * 32);
    fd = open(p, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "XXXX", 4, 32 + 5 * 32) == 4); /* a damaged entry */
    close(fd);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 13);
    CHECK(arc_add(u, "bob@x", "m13", &id) == 0);
    CHECK(store_arc_sync() == 0);
    CHECK(arc_all(u, "bob@x", 0, &s) == 0 && s.n == 8);

    /* Limits: the size cap drops the oldest down to three quarters of it;
     * expiry drops what is older than keep_after. Ids stay what they were. */
    {
        long sz = size_rel(log);
        struct store_arc_rec r = {0, 0, "dave@x", 6, "m14", 3};
        struct store_arc_limits lim = {(uint64_t)sz, 0};
        CHECK(store_arc_append(u, &r, &lim, &id) == 0);
        CHECK(store_arc_sync() == 0);
        CHECK(size_rel(log) <= sz * 3 / 4);
        CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n > 1 && s.n < 15);
        CHECK_STR(s.data[s.n - 1], "m14");
        CHECK(s.n < 3 || strcmp(s.data[s.n - 2], "m13") == 0);
        CHECK(store_arc_exists(u, ids[0]) == STORE_ENOENT);
        CHECK(store_arc_exists(u, id) == 0);
        CHECK(size_rel(idx) == 32 + s.n * 32);
        /* Everything expired (a day of slack passed long ago). */
        lim.max_bytes = 0;
        lim.keep_after = id + 3 * 86400ULL * 1000000ULL;
        r.data = "m15";
        CHECK(store_arc_append(u, &r, &lim, &id) == 0);
        CHECK(store_arc_sync() == 0);
        CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 1);
        CHECK_STR(s.data[0], "m15");
        /* Trimming without an append: within the day of slack nothing is
         * rewritten; past it, the expired record goes. */
        ino_t before_trim = ino_rel(log);
        lim.keep_after = id + 1;
        CHECK(store_arc_trim(u, &lim) == 0 && ino_rel(log) == before_trim);
        lim.keep_after = id + 2 * 86400ULL * 1000000ULL;
        CHECK(store_arc_trim(u, &lim) == 0 && !exists_rel(log));
        CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 0);
        r.data = "m16";
        lim.keep_after = 0;
        CHECK(store_arc_append(u, &r, &lim, &id) == 0);
    }

    /* A log of a newer version is left alone; a damaged one set aside. */
    path_of(p, sizeof(p), log);
    fd = open(p, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "xmppd-archive 2", 15, 0) == 15);
    close(fd);
    CHECK(arc_all(u, NULL, 0, &s) == STORE_ECORRUPT);
    CHECK(arc_add(u, "bob@x", "m", &id) == STORE_ECORRUPT);
    CHECK(exists_rel(log));
    fd = open(p, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "yyyyy", 5, 0) == 5);
    close(fd);
    CHECK(arc_all(u, NULL, 0, &s) == STORE_ECORRUPT);
    CHECK(exists_rel("accounts/arc@example.org/archive.log.bad"));
    CHECK(arc_add(u, "bob@x", "fresh", &id) == 0);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 1);

    /* Deleting the account takes the archive with it, pending writes too. */
    CHECK(arc_add(u, "bob@x", "last", &id) == 0);
    CHECK(store_account_delete(u) == 0);
    CHECK(store_arc_sync() == 0);
    CHECK(arc_all(u, NULL, 0, &s) == STORE_ENOENT);
}

/* XEP-0133: the server's own documents (message of the day), DATADIR/doc-<name>. */
static void test_server_docs(void)
{
    char *data = NULL;
    size_t len = 0;
    CHECK(store_server_doc_get("motd", &data, &len, 100) == STORE_ENOENT && data == NULL);
    CHECK(store_server_doc_delete("motd") == STORE_ENOENT);
    CHECK(store_server_doc_put("motd", "Hello\nall", 9) == 0);
    CHECK(mode_rel("doc-motd") == 0600);
    CHECK(store_server_doc_get("motd", &data, &len, 100) == 0);
    CHECK(len == 9 && data && strcmp(data, "Hello\nall") == 0);
    free(data);
    CHECK(store_server_doc_get("motd", &data, &len, 8) == STORE_EINVAL);
    CHECK(store_server_doc_put("../secret", "x", 1) == STORE_EINVAL);
    CHECK(store_server_doc_put("Motd", "x", 1) == STORE_EINVAL);
    /* a damaged one is set aside, and the server goes on without it */
    write_rel("doc-motd", "xmppd-doc 1 9 00000000\nHello\nall", 32);
    CHECK(store_server_doc_get("motd", &data, &len, 100) == STORE_ECORRUPT && data == NULL);
    CHECK(exists_rel("doc-motd.bad") && !exists_rel("doc-motd"));
    CHECK(store_server_doc_put("motd", "again", 5) == 0);
    CHECK(store_server_doc_delete("motd") == 0);
    CHECK(!exists_rel("doc-motd"));
    CHECK(store_server_doc_get("motd", &data, &len, 100) == STORE_ENOENT);
}

/* ---- XEP-0227 import (pie.c) ---- */
static void test_pie(void)
{
    const char *u = "pie@example.org";
    struct store_account a, got;
    struct arc_seen s;
    uint64_t id = 0;

    /* A Prosody account: a 36-byte salt (a UUID) and SHA-1 keys only. */
    make_account(&a, 9);
    memset(&a.sha256, 0, sizeof(a.sha256));
    memcpy(a.sha1.salt, "0b4f1a2e-6c3d-4e5f-8a9b-0c1d2e3f4a5b", 36);
    a.sha1.salt_len = 36;
    CHECK(store_account_create(u, &a) == 0);
    CHECK(store_account_get(u, &got) == 0 && account_equal(&a, &got));
    a.sha1.salt_len = SCRAM_SALT_MAX;
    CHECK(store_account_put(u, &a) == 0);
    CHECK(store_account_get(u, &got) == 0 && account_equal(&a, &got));

    /* Archive records of the past keep their time as their id, in order; one
     * older than the last gets the next id. */
    uint64_t t0 = 1700000000ULL * 1000000;
    struct store_arc_limits lim = {0, 0};
    struct store_arc_rec r = {t0, 1, "bob@x", 5, "m0", 2};
    CHECK(store_arc_append_at(u, &r, &lim, &id) == 0 && id == t0);
    r.id = t0 + 5000000;
    r.data = "m1";
    CHECK(store_arc_append_at(u, &r, &lim, &id) == 0 && id == t0 + 5000000);
    r.id = t0;
    r.data = "m2";
    CHECK(store_arc_append_at(u, &r, &lim, &id) == 0 && id == t0 + 5000001);
    CHECK(store_arc_sync() == 0);
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 3);
    CHECK(s.id[0] == t0 && s.flags[0] == 1);
    CHECK_STR(s.data[2], "m2");
    CHECK(store_account_delete(u) == 0);

    /* What an import checks before it writes: names the store can hold
     * (escaped, within NAME_MAX), and whether stdout is a file others read. */
    char name[300];
    memset(name, 'a', 250);
    strcpy(name + 250, "@x.y");
    CHECK(store_account_name_ok(name) == 1);
    memset(name, 'a', 260);
    strcpy(name + 260, "@x.y");
    CHECK(store_account_name_ok(name) == 0);
    CHECK(store_account_name_ok("\xc3\xa9@x.y") == 1 && store_account_name_ok("") == 0);
    char path[] = "/tmp/xmppd-fd-XXXXXX";
    int fd = mkstemp(path); /* 0600 */
    CHECK(fd >= 0 && store_fd_readable_by_others(fd) == 0);
    CHECK(fchmod(fd, 0640) == 0 && store_fd_readable_by_others(fd) == 1);
    int p[2];
    CHECK(pipe(p) == 0 && store_fd_readable_by_others(p[0]) == 0);
    close(fd);
    unlink(path);
    close(p[0]);
    close(p[1]);
}

/* Group chat rooms (XEP-0045, muc.c): put, each, delete, damage. */
struct room_seen {
    int n;
    char room[64];
    char data[64];
};

static int room_seen(const char *room, const char *data, size_t len, void *ud)
{
    struct room_seen *s = ud;
    s->n++;
    snprintf(s->room, sizeof(s->room), "%s", room);
    snprintf(s->data, sizeof(s->data), "%.*s", (int)len, data);
    return 0;
}

static void test_rooms(void)
{
    struct room_seen s = {0, "", ""};
    char path[512];
    CHECK(store_room_each(room_seen, &s, 1024) == 0 && s.n == 0); /* no directory yet */
    CHECK(store_room_put("tea/x@conf.example", "<room/>", 7) == 0);
    CHECK(store_room_put("tea/x@conf.example", "<room a='1'/>", 13) == 0); /* replaced */
    CHECK(store_room_each(room_seen, &s, 1024) == 0);
    CHECK(s.n == 1);
    CHECK_STR(s.room, "tea/x@conf.example");
    CHECK_STR(s.data, "<room a='1'/>");
    s.n = 0;
    CHECK(store_room_each(room_seen, &s, 4) == 0 && s.n == 0); /* over maxlen: skipped */
    CHECK(store_room_delete("tea/x@conf.example") == 0);
    CHECK(store_room_delete("tea/x@conf.example") == STORE_ENOENT);
    CHECK(store_room_each(room_seen, &s, 1024) == 0 && s.n == 0);
    /* A damaged one is set aside, the others still read. */
    CHECK(store_room_put("a@conf.example", "ok", 2) == 0);
    snprintf(path, sizeof(path), "%s/rooms/b@conf.example", root);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("xmppd-doc 1 2 00000000\nno", f);
        fclose(f);
    }
    CHECK(store_room_each(room_seen, &s, 1024) == 0 && s.n == 1);
    CHECK_STR(s.room, "a@conf.example");
    snprintf(path, sizeof(path), "%s/rooms/b@conf.example.bad", root);
    CHECK(access(path, F_OK) == 0);
    /* One muc.c cannot read is set aside on its asking, and is no longer read. */
    CHECK(store_room_set_aside("a@conf.example", "test") == 0);
    snprintf(path, sizeof(path), "%s/rooms/a@conf.example.bad", root);
    CHECK(access(path, F_OK) == 0);
    s.n = 0;
    CHECK(store_room_each(room_seen, &s, 1024) == 0 && s.n == 0);
}

/* ---- group commit of many archives and logs (issue 13 perf) ---- */

#define GC_N 6

static void gc_name(char *out, size_t sz, int i)
{
    snprintf(out, sz, "gc%d@example.org", i);
}

static void gc_rel(char *out, size_t sz, int i, const char *file)
{
    snprintf(out, sz, "accounts/gc%d@example.org/%s", i, file);
}

/* One append to each archive, then the turn's sync. */
static int gc_round(const char *data)
{
    char u[64];
    uint64_t id;
    for (int i = 0; i < GC_N; i++) {
        gc_name(u, sizeof(u), i);
        CHECK(arc_add(u, "peer@x", data, &id) == 0);
    }
    return store_arc_sync();
}

static void test_archive_group_commit(void)
{
    struct store_account acc;
    struct arc_seen s;
    char u[64], rel[128], p[512];
    make_account(&acc, 60);
    for (int i = 0; i < GC_N; i++) {
        gc_name(u, sizeof(u), i);
        CHECK(store_account_create(u, &acc) == 0);
    }
    /* A new archive: its log and its directory are fsynced, with the other
     * archives' (its index, a bare header, is not: a power cut that takes
     * it costs an index of nothing). */
    fsync_calls = 0;
    CHECK(gc_round("r1") == 0);
    CHECK(fsync_calls == 2 * GC_N);
    gc_rel(rel, sizeof(rel), 1, "archive.idx");
    CHECK(size_rel(rel) == 32 + 32); /* header, one entry */

    /* One fsync per archive: the log. The index is a cache of the log,
     * checked at every open, so a turn does not wait for it too (each
     * fsync costs a disk flush: 2 per archive halved the messages a busy
     * disk let through). */
    for (int threads = 1; threads <= 8; threads += 7) {
        store_set_sync_threads(threads);
        fsync_calls = 0;
        CHECK(gc_round(threads == 1 ? "r2" : "r3") == 0);
        CHECK(fsync_calls == GC_N);
    }
    for (int i = 0; i < GC_N; i++) {
        gc_name(u, sizeof(u), i);
        memset(&s, 0, sizeof(s));
        CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 3);
        CHECK_STR(s.data[2], "r3");
    }

    /* An index that lost its newest entries (never fsynced, then a power
     * cut) is brought up to the log: readers take the log's tail, the next
     * append writes the entries again. */
    gc_name(u, sizeof(u), 0);
    gc_rel(rel, sizeof(rel), 0, "archive.idx");
    path_of(p, sizeof(p), rel);
    long isz = size_rel(rel);
    CHECK(truncate(p, isz - 2 * 32) == 0);
    memset(&s, 0, sizeof(s));
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 3);
    CHECK(size_rel(rel) == isz - 2 * 32); /* readers never write */
    CHECK(gc_round("r4") == 0);
    CHECK(size_rel(rel) == isz + 32);
    memset(&s, 0, sizeof(s));
    CHECK(arc_all(u, NULL, 0, &s) == 0 && s.n == 4);
    CHECK_STR(s.data[1], "r2");

    /* With several fsyncs at once, a failed one is still that archive's
     * alone and counted. */
    gc_rel(rel, sizeof(rel), 3, "archive.log");
    fsync_fail_ino = ino_rel(rel);
    CHECK(gc_round("r5") == 1);
    fsync_fail_ino = 0;
}

static void test_offline_group_commit(void)
{
    struct synced sy;
    struct recs r;
    char u[64], rel[128];
    long before = 0;
    memset(&sy, 0, sizeof(sy));
    store_offline_on_sync(record_synced, &sy);
    for (int i = 0; i < GC_N; i++) {
        gc_name(u, sizeof(u), i);
        CHECK(store_offline_append(u, "old", 3, 10) == 0);
    }
    gc_rel(rel, sizeof(rel), 2, "offline.log");
    before = size_rel(rel);
    for (int i = 0; i < GC_N; i++) {
        gc_name(u, sizeof(u), i);
        CHECK(store_offline_append_deferred(u, "new", 3, 10) == 0);
    }
    /* All fsynced at once; the one that failed is cut back to where it
     * was, and only its callback says so. */
    fsync_fail_ino = ino_rel(rel);
    fsync_calls = 0;
    CHECK(store_offline_sync() == 1);
    fsync_fail_ino = 0;
    CHECK(fsync_calls == GC_N);
    CHECK(sy.n == GC_N);
    CHECK(size_rel(rel) == before);
    for (int i = 0; i < GC_N; i++) {
        gc_name(u, sizeof(u), i);
        CHECK(synced_ok(&sy, u) == (i != 2));
        memset(&r, 0, sizeof(r));
        CHECK(store_offline_read(u, collect_rec, &r) == 0 && r.n == (i == 2 ? 1 : 2));
    }
    store_offline_on_sync(NULL, NULL);
}

/* ---- group chat room archives (issue 15): store_arc_* on a room's name ---- */
static void test_room_archives(void)
{
    const char *room = "talk@conf.example.org";
    char name[STORE_ROOM_ARC_NAME_MAX], big[400];
    struct store_account a;
    struct arc_seen s;
    uint64_t id1, id2;

    CHECK(store_room_arc_name(room, name, sizeof(name)) == 0);
    /* No archive yet: a reader sees it empty and makes nothing. */
    CHECK(arc_all(name, NULL, 0, &s) == 0 && s.n == 0);
    CHECK(store_arc_exists(name, 1) == STORE_ENOENT);
    CHECK(!exists_rel("roomarc/talk@conf.example.org"));
    CHECK(store_room_arc_delete(room) == STORE_ENOENT);
    /* The first append makes the directory; the format is an account's. */
    CHECK(arc_add(name, "alice@example.org/phone", "m1", &id1) == 0);
    CHECK(arc_add(name, "bob@example.org/pc", "m2", &id2) == 0 && id2 > id1);
    CHECK(store_arc_sync() == 0);
    CHECK(mode_rel("roomarc/talk@conf.example.org/archive.log") == 0600);
    CHECK(arc_all(name, NULL, 0, &s) == 0 && s.n == 2);
    CHECK_STR(s.data[1], "m2");
    CHECK(store_arc_exists(name, id2) == 0);
    /* An account of the same name has an archive of its own. */
    make_account(&a, 41);
    CHECK(store_account_create(room, &a) == 0);
    CHECK(arc_all(room, NULL, 0, &s) == 0 && s.n == 0);
    CHECK(arc_add(room, "k", "own", &id1) == 0);
    CHECK(arc_all(name, NULL, 0, &s) == 0 && s.n == 2);
    CHECK(store_account_delete(room) == 0);
    /* Removed whole (an open writer too); then it is empty again. */
    CHECK(arc_add(name, "carol@example.org/x", "m3", &id1) == 0);
    CHECK(store_room_arc_delete(room) == 0);
    CHECK(!exists_rel("roomarc/talk@conf.example.org"));
    CHECK(arc_all(name, NULL, 0, &s) == 0 && s.n == 0);
    CHECK(store_room_arc_delete(room) == STORE_ENOENT);
    /* A room JID too long for a file name has no archive name. */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(store_room_arc_name(big, name, sizeof(name)) == STORE_EINVAL);
}

/* Issue 15: the expiry sweep lists the room archives, sorted, by the names
 * store_arc_trim takes. */
static void test_room_arc_list(void)
{
    char a[STORE_ROOM_ARC_NAME_MAX], b[STORE_ROOM_ARC_NAME_MAX];
    struct names ns;
    uint64_t id;
    memset(&ns, 0, sizeof(ns));
    CHECK(store_room_arc_list(collect_name, &ns) == 0 && ns.n == 0);
    CHECK(store_room_arc_name("zed@conf.example.org", b, sizeof(b)) == 0);
    CHECK(store_room_arc_name("abc@conf.example.org", a, sizeof(a)) == 0);
    CHECK(arc_add(b, "alice@example.org/x", "z1", &id) == 0);
    CHECK(arc_add(a, "alice@example.org/x", "a1", &id) == 0);
    CHECK(store_arc_sync() == 0);
    CHECK(store_room_arc_list(collect_name, &ns) == 0 && ns.n == 2);
    CHECK_STR(ns.v[0], a);
    CHECK_STR(ns.v[1], b);
    memset(&ns, 0, sizeof(ns));
    ns.stop_after = 1;
    CHECK(store_room_arc_list(collect_name, &ns) == 0 && ns.n == 1);
    /* What it lists, store_arc_trim takes. */
    struct store_arc_limits lim = {0, 0};
    CHECK(store_arc_trim(ns.v[0], &lim) == 0);
    CHECK(store_room_arc_delete("zed@conf.example.org") == 0);
    CHECK(store_room_arc_delete("abc@conf.example.org") == 0);
    memset(&ns, 0, sizeof(ns));
    CHECK(store_room_arc_list(collect_name, &ns) == 0 && ns.n == 0);
}

/* ---- XEP-0363 uploads (issue 14 item 4) ---- */

struct up_seen {
    int n;
    char id[STORE_UPLOAD_ID_LEN + 1];
    char meta[64];
};

static int up_seen(const char *id, const char *meta, size_t len, void *ud)
{
    struct up_seen *s = ud;
    s->n++;
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->meta, sizeof(s->meta), "%.*s", (int)len, meta);
    return 0;
}

static void test_uploads(void)
{
    const char *id = "0123456789abcdef0123456789abcdef";
    struct store_upload *u = NULL, *r = NULL;
    struct up_seen s = {0, "", ""};
    uint64_t size = 0;
    char *meta = NULL, buf[16];
    size_t mlen = 0;
    /* only 32 lowercase hex digits name a file: nothing reaches outside */
    const char *bad[] = {"../../../../etc/passwd", "0123456789ABCDEF0123456789abcdef",
                         "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
                         "", "0123456789abcdef0123456789abcde/", "..", "0123456789abcdef/../../secret"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(store_upload_create(bad[i], &u) == STORE_EINVAL && !u);
        CHECK(store_upload_open(bad[i], &r, &size, NULL, NULL) == STORE_EINVAL && !r);
        CHECK(store_upload_delete(bad[i]) == STORE_EINVAL);
    }
    CHECK(store_upload_each(up_seen, &s, 1) == 0 && s.n == 0); /* no directory yet */
    CHECK(store_upload_walk(up_seen, &s, 2) == 1 && s.n == 0);
    /* written as it comes, visible only once committed */
    CHECK(store_upload_create(id, &u) == 0 && u);
    CHECK(store_upload_write(u, "hello ", 6) == 0 && store_upload_write(u, "world", 5) == 0);
    CHECK(exists_rel("upload/0123456789abcdef0123456789abcdef.part"));
    CHECK(store_upload_open(id, &r, &size, NULL, NULL) == STORE_ENOENT);
    CHECK(store_upload_commit(u, "m1\n", 3) == 0);
    CHECK(!exists_rel("upload/0123456789abcdef0123456789abcdef.part"));
    CHECK(mode_rel("upload/0123456789abcdef0123456789abcdef") == 0600);
    CHECK(store_upload_open(id, &r, &size, &meta, &mlen) == 0 && size == 11);
    CHECK(mlen == 3 && memcmp(meta, "m1\n", 3) == 0);
    CHECK(store_upload_read(r, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(store_upload_read(r, buf, sizeof(buf)) == 6 && store_upload_read(r, buf, 4) == 0);
    store_upload_close(r);
    free(meta);
    CHECK(store_upload_create(id, &u) == STORE_EEXIST); /* a second PUT */
    CHECK(store_upload_each(up_seen, &s, 0) == 0 && s.n == 1 && strcmp(s.id, id) == 0);
    CHECK_STR(s.meta, "m1\n");
    /* an aborted write leaves nothing */
    const char *id2 = "fedcba9876543210fedcba9876543210";
    CHECK(store_upload_create(id2, &u) == 0);
    CHECK(store_upload_write(u, "x", 1) == 0);
    store_upload_close(u);
    CHECK(!exists_rel("upload/fedcba9876543210fedcba9876543210.part"));
    /* what a crash leaves: a .part, a file without .meta; tidy removes them,
     * and leaves what is not its own */
    write_rel("upload/fedcba9876543210fedcba9876543210.part", "x", 1);
    write_rel("upload/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "y", 1);
    write_rel("upload/README", "z", 1);
    write_rel("upload/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.meta.bad", "w", 1);
    s.n = 0;
    CHECK(store_upload_each(up_seen, &s, 0) == 0 && s.n == 1);
    CHECK(exists_rel("upload/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* not tidying */
    s.n = 0;
    CHECK(store_upload_each(up_seen, &s, 1) == 0 && s.n == 1);
    CHECK(!exists_rel("upload/fedcba9876543210fedcba9876543210.part"));
    CHECK(!exists_rel("upload/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    CHECK(exists_rel("upload/README"));
    CHECK(exists_rel("upload/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.meta.bad")); /* for a human */
    /* the expiry sweep's walk: max entries a call (6 here, "." and ".."
     * too), then 1 once through, and the next call starts anew */
    for (int pass = 0; pass < 2; pass++) {
        int calls = 0, rc;
        s.n = 0;
        while ((rc = store_upload_walk(up_seen, &s, 2)) == 0) {
            calls++;
        }
        CHECK(rc == 1 && calls == 3 && s.n == 1 && strcmp(s.id, id) == 0);
    }
    /* removal: .meta and file */
    CHECK(store_upload_delete(id) == 0);
    CHECK(store_upload_delete(id) == STORE_ENOENT);
    CHECK(store_upload_open(id, &r, &size, NULL, NULL) == STORE_ENOENT);
    CHECK(!exists_rel("upload/0123456789abcdef0123456789abcdef"));
}

int main(void)
{
    char tmpl[] = "/tmp/xmppd-store-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(root, sizeof(root), "%s", tmpl);
    CHECK(store_init("") == STORE_EINVAL);
    CHECK(store_account_exists("x") == 0);
    CHECK(store_init(root) == 0);
    CHECK(strcmp(store_dir(), root) == 0);
    CHECK(mode_rel("accounts") == 0700);
    CHECK(store_init(root) == 0); /* idempotent */

    test_crc();
    test_files();
    test_accounts();
    test_leftovers();
    test_escaping();
    test_docs();
    test_unknown_account();
    test_offline();
    test_offline_drop_head();
    test_offline_deferred();
    test_corrupt_account();
    test_full_disk();
    test_delete_races();
    test_secret();
    test_doc_stamp();
    test_archive();
    test_server_docs();
    test_pie();
    test_rooms();
    test_room_archives();
    test_archive_group_commit();
    test_offline_group_commit();
    test_room_arc_list();
    test_uploads();

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", root);
    }
    TEST_REPORT();
}
