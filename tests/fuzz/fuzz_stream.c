/* fuzz_stream.c: libFuzzer harness for whole client streams: bytes go through
 * the real xml.c parser, c2s.c state machine, router.c and the IM modules, with
 * fake_server.c in place of sockets and a fresh data dir (accounts alice and bob)
 * per input. Oracles: sanitizers and leaks; the server's output parses as an
 * XMPP stream; no session is left in the router after shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s.h"
#include "config.h"
#include "fake_server.h"
#include "fuzz_common.h"
#include "hooks.h"
#include "im.h"
#include "router.h"
#include "sasl.h"
#include "store.h"
#include "tls.h"

/* Input format (several connections share one input, so stanzas route between
 * sessions):
 *   byte 0      flags: 1 require_tls off, 2 plain_without_tls, 4 allow_registration,
 *               8 small limits (the smallest stanza, queue and quota values)
 *   then chunks separated by 0xFF, each "control byte, payload":
 *     control & 3        connection slot (opened on first use)
 *     control & 0x20     a connection opened by this chunk is direct TLS
 *     (control >> 2) & 7 what to do:
 *       0 feed payload in 16 KiB reads   1 feed it one byte per read
 *       2 feed it in 7-byte reads        3 feed it, then one second passes
 *       4 the peer closes the connection 5 toggle "peer stops reading", then feed
 *       6 SCRAM login run by the harness (payload[0]: bit 0 SHA-256, bit 1 wrong
 *         proof, bit 2 bob; the rest, if any, is the username)
 *       7 time jumps (31 + 8 * payload[0] seconds, ticking every second)
 * scram_iterations is 16, below config.c's minimum, only to keep runs fast. */

#define ITER 16 /* PBKDF2 rounds for the test accounts: speed over strength here */
#define SEP 0xFF

static struct config cfg;
static char data_dir[200], accounts_dir[256]; /* data_dir fits config.data_dir */
static struct store_account alice, bob;

static const struct {
    const char *user, *password;
} users[2] = {{"alice", "alice-Secret-1"}, {"bob", "bob-Secret-2"}};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(tls_global_init() == 0);
    snprintf(data_dir, sizeof(data_dir), "%s", fuzz_scratch_dir("stream"));
    snprintf(accounts_dir, sizeof(accounts_dir), "%s/accounts", data_dir);
    config_defaults(&cfg);
    g_config = &cfg;
    cfg.scram_iterations = ITER;
    FUZZ_CHECK(server_make_account(users[0].password, &alice) == 0);
    FUZZ_CHECK(server_make_account(users[1].password, &bob) == 0);
    FUZZ_CHECK(store_init(data_dir) == 0);
    FUZZ_CHECK(router_init() == 0);
    /* Services start as in main() (the MUC service registers its domain once;
     * what they hold is dropped by HOOK_SHUTDOWN after every input). */
    FUZZ_CHECK(hook_run(HOOK_INIT, NULL, NULL, NULL) != 1);
    return 0;
}

static int forget(const char *bare, void *ud)
{
    (void)ud;
    hook_run(HOOK_ACCOUNT_REMOVED, NULL, NULL, bare); /* the block list cache */
    return 0;
}

static void setup(uint8_t flags)
{
    config_defaults(&cfg);
    snprintf(cfg.domain, sizeof(cfg.domain), "localhost");
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data_dir);
    cfg.require_tls = !(flags & 1);
    cfg.plain_without_tls = !!(flags & 2);
    cfg.allow_registration = !!(flags & 4);
    cfg.scram_iterations = ITER;
    if (flags & 8) {
        /* The smallest values config.c accepts, where it has bounds. */
        cfg.max_stanza_size = 10000;
        cfg.max_xml_depth = 8;
        cfg.max_xml_attrs = 8;
        cfg.max_xml_name = 64;
        cfg.outq_soft = 4096;
        cfg.outq_hard = 4096;
        cfg.max_roster_items = 3;
        cfg.max_offline_messages = 2;
        cfg.max_vcard_size = 200;
        cfg.max_private_size = 200;
        cfg.max_blocklist_items = 2;
    }
    /* Time moves on by more than any window (bans, registration limits) between
     * inputs, so one input cannot change how the next one runs. */
    g_now += 1000000;
    FUZZ_CHECK(c2s_init() == 0);
    fake_reset();
    store_account_list(forget, NULL);
    FUZZ_CHECK(fuzz_rm_tree(accounts_dir, 0) == 0);
    FUZZ_CHECK(store_account_create("alice@localhost", &alice) == 0);
    FUZZ_CHECK(store_account_create("bob@localhost", &bob) == 0);
}

static void send_str(struct fake_conn *fc, const char *s)
{
    fake_feed(fc, s, strlen(s), 0);
}

/* A SCRAM exchange as a client would run it (RFC 5802 §3), using the challenge
 * the peer side of fake_server.c saw. */
static void scram_login(int slot, const uint8_t *p, size_t n)
{
    struct fake_conn *fc = fake_slot(slot);
    uint32_t id = fc->c.id;
    int sha256 = n > 0 && (p[0] & 1), wrong = n > 0 && (p[0] & 2);
    int who = n > 0 && (p[0] & 4);
    enum tls_hash h = sha256 ? TLS_SHA256 : TLS_SHA1;
    size_t hl = tls_hash_len(h);
    char user[128], first[256], b64[2048], msg[3072], wp[1024], am[4096];
    snprintf(user, sizeof(user), "%s", users[who].user);
    if (n > 1) {
        size_t k = n - 1 < sizeof(user) - 1 ? n - 1 : sizeof(user) - 1;
        memcpy(user, p + 1, k);
        user[k] = '\0';
    }
    int fl = snprintf(first, sizeof(first), "n,,n=%s,r=fuzzclientnonce", user);
    if (fl < 0 || (size_t)fl >= sizeof(first) ||
        sasl_b64_encode((const unsigned char *)first, (size_t)fl, b64, sizeof(b64)) < 0) {
        return;
    }
    snprintf(msg, sizeof(msg), "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s"
             "</auth>", sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1", b64);
    fc->challenge[0] = '\0';
    send_str(fc, msg);
    fc = fake_slot(slot); /* a turn ended: look it up again */
    if (!fc || fc->c.id != id || !fc->challenge[0]) {
        return;
    }
    /* server-first: r=nonce,s=salt,i=iterations */
    unsigned char sf[1024], salt[64];
    int sl = sasl_b64_decode(fc->challenge, strlen(fc->challenge), sf, sizeof(sf) - 1);
    if (sl < 0) {
        return;
    }
    sf[sl] = '\0';
    const char *r = strstr((char *)sf, "r="), *s = strstr((char *)sf, ",s="),
               *i = strstr((char *)sf, ",i=");
    if (!r || !s || !i || s < r || i < s) {
        return;
    }
    int saltlen = sasl_b64_decode(s + 3, (size_t)(i - s - 3), salt, sizeof(salt));
    int iter = atoi(i + 3);
    if (saltlen <= 0 || iter < 1 || iter > 100000) {
        return;
    }
    unsigned char salted[32], ckey[32], skey[32], sig[32], proof[32];
    const char *pw = users[who].password;
    tls_pbkdf2(h, pw, strlen(pw), salt, (size_t)saltlen, iter, salted, hl);
    tls_hmac(h, salted, hl, "Client Key", 10, ckey);
    tls_hash(h, ckey, hl, skey);
    snprintf(wp, sizeof(wp), "c=biws,r=%.*s", (int)(s - r - 2), r + 2);
    snprintf(am, sizeof(am), "%s,%s,%s", first + 3, (char *)sf, wp);
    tls_hmac(h, skey, hl, am, strlen(am), sig);
    for (size_t k = 0; k < hl; k++) {
        proof[k] = ckey[k] ^ sig[k];
    }
    proof[0] ^= (unsigned char)wrong;
    char p64[64];
    sasl_b64_encode(proof, hl, p64, sizeof(p64));
    snprintf(msg, sizeof(msg), "%s,p=%s", wp, p64);
    sasl_b64_encode((const unsigned char *)msg, strlen(msg), b64, sizeof(b64));
    snprintf(msg, sizeof(msg), "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>",
             b64);
    send_str(fc, msg);
}

static void chunk(const uint8_t *p, size_t n)
{
    if (n == 0) {
        return;
    }
    uint8_t ctl = p[0];
    int slot = ctl & 3, op = (ctl >> 2) & 7;
    p++;
    n--;
    if (op == 7) {
        fake_advance(31 + 8 * (n ? p[0] : 0));
        return;
    }
    struct fake_conn *fc = fake_slot(slot);
    if (op == 4) {
        if (fc) {
            fake_peer_close(fc);
        }
        return;
    }
    if (!fc) {
        fc = fake_open(slot, !!(ctl & 0x20));
    }
    switch (op) {
    case 1:
        fake_feed(fc, (const char *)p, n, 1);
        break;
    case 2:
        fake_feed(fc, (const char *)p, n, 7);
        break;
    case 3:
        fake_feed(fc, (const char *)p, n, 0);
        fake_advance(1);
        break;
    case 5:
        fc->slow = !fc->slow;
        fake_feed(fc, (const char *)p, n, 0);
        break;
    case 6:
        scram_login(slot, p, n);
        break;
    default:
        fake_feed(fc, (const char *)p, n, 0);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    setup(data[0]);
    const uint8_t *p = data + 1, *end = data + size;
    while (p < end) {
        const uint8_t *sep = memchr(p, SEP, (size_t)(end - p));
        const uint8_t *stop = sep ? sep : end;
        chunk(p, (size_t)(stop - p));
        fake_end_turn();
        p = sep ? sep + 1 : end;
    }
    fake_shutdown();
    FUZZ_CHECK(router_online_count() == 0);
    return 0;
}
