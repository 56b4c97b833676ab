/* account.c: what follows the removal of an account, however it was removed
 * (in-band through register.c, xmppd deluser from another process, or while
 * the server was not running): its contacts are told and its sessions end.
 * Always built (the in-band part, register.c, is WITH_REGISTRATION).
 * Must not: touch sockets (c2s_stream_error does) or files (store.c). */
#include "im.h"

#include <string.h>

#include "c2s.h"
#include "hooks.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"

/* What a deleted account leaves in its tombstone is its roster: each contact
 * it had is told (RFC 6121 §2.5.2, as Prosody does on user deletion), whoever
 * deleted it (in-band here, xmppd deluser in another process, or while the
 * server was not running: then at the next start). */
static void tidy_one(const char *bare, char *roster, size_t len, void *ud)
{
    struct roster r;
    (void)ud;
    if (roster_parse(bare, roster, len, &r) < 0) {
        log_error("roster of deleted account %s does not parse: its contacts keep their "
                  "subscriptions",
                  bare);
        return;
    }
    log_notice("account %s was deleted: cancelling the subscriptions of its %zu contacts", bare,
               r.n);
    presence_account_deleted(bare, &r);
    roster_free(&r);
}

void account_tidy_removed(void)
{
    store_removed_each(tidy_one, NULL);
}

/* A removed account's sessions end (not-authorized), however it was removed:
 * in-band (register.c) or from outside (xmppd deluser), whoever removed it
 * meant to shut its user out. They stay in the router table until their conns
 * are freed at the end of the turn, so the walk is safe; closing ones are
 * skipped by c2s_stream_error. Nothing kept in memory for the name may reach
 * an account made again under it: the cached block list and rosters, and the
 * last activity waiting to be written (these sessions record none). */
static void end_sessions(const char *bare, struct session *first)
{
    roster_turn_end();
    last_activity_forget(bare);
    hook_run(HOOK_ACCOUNT_REMOVED, NULL, NULL, bare);
    for (struct session *r = first; r; r = r->next_res) {
        r->account_removed = 1;
        if (r->conn) { /* a session kept without one ends by its keeper (XEP-0198) */
            c2s_stream_error(r->conn, "not-authorized", "account removed");
        }
    }
}

static void end_removed(const char *bare, struct session *first)
{
    if (first) {
        log_notice("account %s was removed: ending its sessions", bare);
    }
    end_sessions(bare, first);
}

void account_removed(const char *bare)
{
    /* Whatever exists under the name now (made again at once?), the sessions
     * bound before the removal belonged to the account removed. Its contacts
     * are told first, while those sessions are still online. */
    account_tidy_removed();
    end_removed(bare, router_first_resource(bare));
}

static void end_if_removed(const char *bare, struct session *first, void *ud)
{
    (void)ud;
    if (!store_account_exists(bare)) {
        end_removed(bare, first);
    }
}

void account_check_all(void)
{
    account_tidy_removed();
    router_foreach_bare(end_if_removed, NULL);
}

static int removals_watched;

void account_removals_watched(void)
{
    removals_watched = 1;
}

void account_tick(void)
{
    /* Without a watch (not Linux, no inotify): the accounts directory changes
     * only when an account is made or removed, and only then is every online
     * account looked up. */
    if (!removals_watched && store_accounts_changed()) {
        account_check_all();
    }
}

/* An account made, or given a new password, the way in-band registration
 * does it: SCRAM keys only (server_make_account), and nothing cached for an
 * earlier account of the name survives. Here rather than in register.c so
 * that XEP-0133 administration works in a build without WITH_REGISTRATION. */
static int store_password(const char *bare, const char *pw,
                          int (*save)(const char *bare, const struct store_account *a))
{
    struct store_account acct;
    int rc = server_make_account(pw, &acct);
    if (rc == 0) {
        rc = save(bare, &acct); /* whole-file atomic write */
    }
    sasl_wipe(&acct, sizeof(acct)); /* memset: a dead store the compiler drops */
    return rc;
}

int account_make(const char *bare, const char *pw)
{
    int rc = store_password(bare, pw, store_account_create);
    if (rc == 0) {
        hook_run(HOOK_ACCOUNT_CREATED, NULL, NULL, bare); /* a list cached for an earlier one */
        roster_turn_end(); /* and no cached roster may outlive the account */
    }
    return rc;
}

int account_set_password(const char *bare, const char *pw)
{
    return store_password(bare, pw, store_account_put);
}
