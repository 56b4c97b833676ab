/* fuzz_store.c: libFuzzer harness for store.c's file readers. The input is
 * written, byte for byte, as an account file, a document, an offline.log or an
 * account directory name in a scratch data dir (tmpfs), then read through the
 * store API. Oracles: nothing crashes; what reads back is valid and survives a
 * write/read round trip; an append after any damage reads back as the last record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "store.h"
#include "tls.h"

#define BARE "fuzz@localhost"

static char accounts[512], acct_dir[560];
static struct store_account base_acct;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(tls_global_init() == 0);
    const char *dir = fuzz_scratch_dir("store");
    FUZZ_CHECK(store_init(dir) == 0);
    snprintf(accounts, sizeof(accounts), "%s/accounts", dir);
    snprintf(acct_dir, sizeof(acct_dir), "%s/" BARE, accounts);
    FUZZ_CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA1, "pw", 2, 1, &base_acct.sha1) == 0);
    FUZZ_CHECK(sasl_scram_make_creds(SASL_SCRAM_SHA256, "pw", 2, 1, &base_acct.sha256) == 0);
    return 0;
}

static int creds_ok(const struct scram_creds *c, size_t key_len)
{
    if (c->key_len == 0) {
        return 1;
    }
    return c->key_len == key_len && c->iter >= 1 && c->salt_len >= 1 &&
           c->salt_len <= SCRAM_SALT_MAX; /* store.c reads salts up to the import bound */
}

static int creds_eq(const struct scram_creds *a, const struct scram_creds *b)
{
    return a->key_len == b->key_len && a->iter == b->iter && a->salt_len == b->salt_len &&
           memcmp(a->salt, b->salt, a->salt_len) == 0 &&
           memcmp(a->stored_key, b->stored_key, a->key_len) == 0 &&
           memcmp(a->server_key, b->server_key, a->key_len) == 0;
}

static void fuzz_account(const uint8_t *d, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/account", acct_dir);
    FUZZ_CHECK(fuzz_write_file(path, d, n) == 0);
    struct store_account a, b;
    int rc = store_account_get(BARE, &a);
    FUZZ_CHECK(rc == 0 || rc == STORE_ECORRUPT);
    if (rc == 0) {
        FUZZ_CHECK(creds_ok(&a.sha1, 20) && creds_ok(&a.sha256, 32));
        FUZZ_CHECK(a.sha1.key_len || a.sha256.key_len);
        FUZZ_CHECK(store_account_put(BARE, &a) == 0);
        FUZZ_CHECK(store_account_get(BARE, &b) == 0);
        FUZZ_CHECK(creds_eq(&a.sha1, &b.sha1) && creds_eq(&a.sha256, &b.sha256));
    } else {
        /* Renamed aside, or (a newer version) left alone: either way no account. */
        FUZZ_CHECK(store_account_exists(BARE) == 1);
        FUZZ_CHECK(store_account_get(BARE, &b) == STORE_ECORRUPT);
    }
}

static void fuzz_doc(const uint8_t *d, size_t n)
{
    if (n < 1) {
        return;
    }
    size_t maxlen = (size_t)d[0] * 16;
    char path[1024];
    snprintf(path, sizeof(path), "%s/doc-roster", acct_dir);
    FUZZ_CHECK(fuzz_write_file(path, d + 1, n - 1) == 0);
    char *data = NULL;
    size_t len = 0;
    int rc = store_doc_get(BARE, "roster", &data, &len, maxlen);
    FUZZ_CHECK(rc == 0 || rc == STORE_ECORRUPT || rc == STORE_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(data != NULL && len <= maxlen && data[len] == '\0');
        FUZZ_CHECK(store_doc_put(BARE, "roster", data, len) == 0);
        char *again = NULL;
        size_t alen = 0;
        FUZZ_CHECK(store_doc_get(BARE, "roster", &again, &alen, maxlen) == 0);
        FUZZ_CHECK(alen == len && memcmp(again, data, len) == 0);
        free(again);
        FUZZ_CHECK(store_doc_delete(BARE, "roster") == 0);
    } else {
        FUZZ_CHECK(data == NULL);
    }
    free(data);
}

#define TRACKED 256

struct recs {
    int n;
    size_t last_len;
    uint8_t last[64];
    uint32_t chain[TRACKED + 1]; /* chain[k]: store_crc32 over the first k payloads */
    uint32_t crc[TRACKED];       /* each payload's own CRC and length */
    size_t len[TRACKED];
};

static int collect(const void *rec, size_t len, void *ud)
{
    struct recs *r = ud;
    FUZZ_CHECK(len <= STORE_RECORD_MAX);
    if (len) {
        FUZZ_CHECK(rec != NULL);
        (void)((volatile const uint8_t *)rec)[len - 1];
    }
    if (r->n < TRACKED) {
        r->chain[r->n + 1] = store_crc32(r->chain[r->n], rec, len);
        r->crc[r->n] = store_crc32(0, rec, len);
        r->len[r->n] = len;
    }
    r->n++;
    r->last_len = len;
    memcpy(r->last, rec, len < sizeof(r->last) ? len : sizeof(r->last));
    return 0;
}

/* store_offline_drop_head: a wrong checksum removes nothing; the right one
 * removes exactly the first k records and keeps the rest as they were. */
static void drop_head_check(const char *path, const uint8_t *d, size_t n, const struct recs *r1)
{
    if (r1->n < 1 || r1->n > TRACKED || n < 17) {
        return;
    }
    int k = 1 + d[16] % r1->n;
    struct recs *r2 = calloc(1, sizeof(*r2));
    FUZZ_CHECK(r2 != NULL);
    FUZZ_CHECK(store_offline_drop_head(BARE, k, r1->chain[k] ^ 1) == STORE_EINVAL);
    FUZZ_CHECK(store_offline_count(BARE) == r1->n);
    FUZZ_CHECK(store_offline_drop_head(BARE, k, r1->chain[k]) == 0);
    FUZZ_CHECK(store_offline_read(BARE, collect, r2) == 0);
    FUZZ_CHECK(r2->n == r1->n - k);
    for (int i = 0; i < r2->n; i++) {
        FUZZ_CHECK(r2->crc[i] == r1->crc[k + i] && r2->len[i] == r1->len[k + i]);
    }
    free(r2);
    FUZZ_CHECK(fuzz_write_file(path, d, n) == 0); /* back to the input for the next check */
}

static void fuzz_offline(const uint8_t *d, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/offline.log", acct_dir);
    FUZZ_CHECK(fuzz_write_file(path, d, n) == 0);
    static struct recs r1, r2;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    int count = store_offline_count(BARE);
    /* A damaged log is renamed aside by any reader: put it back for the next. */
    FUZZ_CHECK(fuzz_write_file(path, d, n) == 0);
    int rc = store_offline_read(BARE, collect, &r1);
    FUZZ_CHECK(rc == 0 || rc == STORE_ECORRUPT);
    if (rc == 0) {
        FUZZ_CHECK(count == r1.n);
    } else {
        FUZZ_CHECK(count == STORE_ECORRUPT);
        r1.n = 0; /* the log was renamed aside: the next append starts afresh */
    }
    /* Put the input back (a read may have renamed it) and append to it. */
    FUZZ_CHECK(fuzz_write_file(path, d, n) == 0);
    if (rc == 0) {
        FUZZ_CHECK(store_offline_count(BARE) == r1.n);
        drop_head_check(path, d, n, &r1);
    }
    static const char rec[] = "<message to='fuzz@localhost'><body>x</body></message>";
    int arc = store_offline_append(BARE, rec, sizeof(rec) - 1, 1 << 30);
    if (arc == STORE_ECORRUPT) {
        /* Only a newer format version is refused, and left exactly as it was. */
        char *now = NULL;
        size_t nlen = 0;
        FUZZ_CHECK(rc == STORE_ECORRUPT);
        FUZZ_CHECK(store_read_file(path, &now, &nlen, n + 1) == 0);
        FUZZ_CHECK(nlen == n && memcmp(now, d, n) == 0 && memcmp(now, "xmppd-offline ", 14) == 0);
        free(now);
        return;
    }
    FUZZ_CHECK(arc == 0);
    FUZZ_CHECK(store_offline_read(BARE, collect, &r2) == 0);
    if (r2.n != r1.n + 1 || r2.last_len != sizeof(rec) - 1 ||
        memcmp(r2.last, rec, sizeof(rec) - 1) != 0) {
        fprintf(stderr, "after append: %d records (had %d), last %zu bytes\n", r2.n, r1.n,
                r2.last_len);
        FUZZ_CHECK(!"appended record not read back last");
    }
    FUZZ_CHECK(store_offline_count(BARE) == r2.n);
    FUZZ_CHECK(store_offline_clear(BARE) == 0);
    FUZZ_CHECK(store_offline_count(BARE) == 0);
}

static int listed_exists(const char *bare, void *ud)
{
    int *n = ud;
    (*n)++;
    FUZZ_CHECK(store_account_exists(bare) == 1);
    return 0;
}

/* A directory name in accounts/ (made by hand, say) and a bare JID from the
 * input: listing, lookups and creation must cope with both. */
static void fuzz_names(const uint8_t *d, size_t n)
{
    char name[256];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof(name) - 1; i++) {
        if (d[i] != '/' && d[i] != '\0') {
            name[k++] = (char)d[i];
        }
    }
    name[k] = '\0';
    if (k > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", accounts, name);
        if (mkdir(path, 0700) == 0) {
            char f[1400];
            snprintf(f, sizeof(f), "%s/account", path);
            (void)fuzz_write_file(f, "xmppd-account 1\n", 16);
        }
    }
    int listed = 0;
    FUZZ_CHECK(store_account_list(listed_exists, &listed) == 0);
    FUZZ_CHECK(listed >= 1);

    /* The same bytes as a bare JID (the store escapes whatever it is given). */
    char bare[1100];
    size_t m = n < sizeof(bare) - 1 ? n : sizeof(bare) - 1;
    memcpy(bare, d, m);
    bare[m] = '\0';
    struct store_account a;
    char *data = NULL;
    size_t len = 0;
    (void)store_account_get(bare, &a);
    (void)store_doc_get(bare, "vcard", &data, &len, 1000);
    free(data);
    (void)store_offline_count(bare);
    if (!bare[0] || store_account_exists(bare)) {
        return;
    }
    int rc = store_account_create(bare, &base_acct);
    FUZZ_CHECK(rc == 0 || rc == STORE_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(store_account_exists(bare) == 1);
        FUZZ_CHECK(store_account_get(bare, &a) == 0);
        FUZZ_CHECK(creds_eq(&a.sha256, &base_acct.sha256));
        FUZZ_CHECK(store_doc_put(bare, "vcard", d, n) == 0);
        FUZZ_CHECK(store_offline_append(bare, d, n, 10) == 0);
        int before = listed;
        listed = 0;
        FUZZ_CHECK(store_account_list(listed_exists, &listed) == 0);
        FUZZ_CHECK(listed >= before);
        FUZZ_CHECK(store_account_delete(bare) == 0);
        FUZZ_CHECK(store_account_exists(bare) == 0);
        FUZZ_CHECK(store_doc_put(bare, "vcard", d, n) == STORE_ENOENT);
    } else {
        FUZZ_CHECK(store_account_exists(bare) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    /* A fresh account directory every time: inputs do not depend on each other. */
    FUZZ_CHECK(fuzz_rm_tree(accounts, 0) == 0);
    FUZZ_CHECK(store_account_create(BARE, &base_acct) == 0);
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        fuzz_account(d, n);
        break;
    case 1:
        fuzz_doc(d, n);
        break;
    case 2:
        fuzz_offline(d, n);
        break;
    default:
        fuzz_names(d, n);
        break;
    }
    return 0;
}
