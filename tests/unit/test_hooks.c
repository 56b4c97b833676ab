/* test_hooks.c: the phases of a message to a local account (hooks.h,
 * hook_run_to_account): every HOOK_MSG_SANITIZE row runs before any
 * HOOK_MSG_TO_ACCOUNT row, whatever order the services registered in (link
 * order), so an archive never keeps what a strip takes off (XEP-0280 §11). */
#include "../../hooks.h"

#include "test.h"

static int stripped, archived_clean, archived_dirty, after_consumed;

static int strip(struct session *s, struct xml_node *m, const char *bare)
{
    (void)s;
    (void)m;
    (void)bare;
    stripped = 1;
    return 0;
}

static int archive(struct session *s, struct xml_node *m, const char *bare)
{
    (void)s;
    (void)m;
    (void)bare;
    if (stripped) {
        archived_clean++;
    } else {
        archived_dirty++;
    }
    return 0;
}

static int consume(struct session *s, struct xml_node *m, const char *bare)
{
    (void)s;
    (void)m;
    (void)bare;
    return 1;
}

static int after(struct session *s, struct xml_node *m, const char *bare)
{
    (void)s;
    (void)m;
    (void)bare;
    after_consumed++;
    return 0;
}

int main(void)
{
    /* The archive registers first, as mam.c does when linked before carbons.c. */
    hook_add(HOOK_MSG_TO_ACCOUNT, archive);
    hook_add(HOOK_MSG_SANITIZE, strip);
    CHECK(hook_run_to_account(NULL, "alice@localhost") == 0);
    CHECK(stripped == 1);
    CHECK(archived_clean == 1);
    CHECK(archived_dirty == 0);

    /* A TO_ACCOUNT row that consumes the message still stops the rest, and
     * the answer is the caller's. */
    hook_add(HOOK_MSG_TO_ACCOUNT, consume);
    hook_add(HOOK_MSG_TO_ACCOUNT, after);
    stripped = 0;
    CHECK(hook_run_to_account(NULL, "alice@localhost") == 1);
    CHECK(archived_clean == 2);
    CHECK(after_consumed == 0);
    TEST_REPORT();
}
