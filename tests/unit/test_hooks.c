/* test_hooks.c: unit tests for hooks.c's iq-answer table (push): an iq result
 * or error to the server goes to the service whose id prefix it carries, and
 * to no one else. */
#include "../../hooks.h"
#include "../../xml.h"
#include "test.h"

static int calls_a, calls_b;
static const struct xml_node *last;

static void answer_a(const struct xml_node *iq)
{
    calls_a++;
    last = iq;
}

static void answer_b(const struct xml_node *iq)
{
    calls_b++;
    last = iq;
}

static struct xml_node *iq_with_id(const char *id)
{
    struct xml_node *iq = xml_node_new("iq", "jabber:client");
    xml_set_attr(iq, "type", "result");
    if (id) {
        xml_set_attr(iq, "id", id);
    }
    return iq;
}

static int run_id(const char *id)
{
    struct xml_node *iq = iq_with_id(id);
    int r = hook_run_iq_answer(iq);
    if (r) {
        CHECK(last == iq);
    }
    xml_free(iq);
    return r;
}

int main(void)
{
    CHECK(run_id("xmppd-push-1") == 0); /* nothing registered yet */
    hook_iq_answer("xmppd-push-", answer_a);
    hook_iq_answer("xmppd-disco-", answer_b);
    CHECK(run_id("xmppd-push-17") == 1 && calls_a == 1 && calls_b == 0);
    CHECK(run_id("xmppd-disco-3") == 1 && calls_a == 1 && calls_b == 1);
    CHECK(run_id("xmppd-push-") == 1 && calls_a == 2);
    CHECK(run_id("xmppd-pus") == 0);   /* a prefix of a prefix is not one */
    CHECK(run_id("Xmppd-push-1") == 0); /* ids compare exactly */
    CHECK(run_id("abc") == 0);
    CHECK(run_id("") == 0);
    CHECK(run_id(NULL) == 0);
    CHECK(calls_a == 2 && calls_b == 1);
    TEST_REPORT();
}
