/* test_caps.c: the XEP-0115 verification string (caps_ver.c) against the
 * XEP's own examples (§5.2 simple, §5.3 with a data form), plus the sort
 * order of a feature that is a prefix of another. */
#include <string.h>

#include "../../pep.h"
#include "../../xml.h"
#include "test.h"

static const struct xml_limits lim = {65536, 32, 32, 256};

static void check_ver(const char *xml, const char *want)
{
    struct xml_node *q =
        xml_parse_one(xml, strlen(xml), &lim, "query", "http://jabber.org/protocol/disco#info");
    char ver[64] = "";
    CHECK(q != NULL);
    CHECK(q && caps_ver(q, ver, sizeof(ver)) == 0);
    CHECK_STR(ver, want);
    xml_free(q);
}

/* XEP-0115 §5.2. */
static const char simple[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                             "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
                             "<feature var='http://jabber.org/protocol/caps'/>"
                             "<feature var='http://jabber.org/protocol/disco#info'/>"
                             "<feature var='http://jabber.org/protocol/disco#items'/>"
                             "<feature var='http://jabber.org/protocol/muc'/></query>";

/* XEP-0115 §5.3: two identities with xml:lang, an extended form; the
 * elements in another order than sorted. */
static const char complex_[] =
    "<query xmlns='http://jabber.org/protocol/disco#info'>"
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
    "<identity xml:lang='el' category='client' name='\xce\xa8 0.11' type='pc'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<x xmlns='jabber:x:data' type='result'>"
    "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>"
    "<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
    "<field var='os'><value>Mac</value></field>"
    "<field var='os_version'><value>10.5.1</value></field>"
    "<field var='software'><value>Psi</value></field>"
    "<field var='software_version'><value>0.11</value></field></x></query>";

/* "a" sorts before "a#b" and "a-c" ('<' is no part of the sort key). */
static const char prefix[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                             "<identity category='client' type='bot' name='x'/>"
                             "<feature var='a-c'/><feature var='a#b'/><feature var='a'/></query>";

/* Ill-formed answers (§5.4): no ver at all, so caps.c never caches them. A
 * '<' inside a feature would hash like two features (cache poisoning). */
static void check_bad(const char *xml)
{
    struct xml_node *q =
        xml_parse_one(xml, strlen(xml), &lim, "query", "http://jabber.org/protocol/disco#info");
    char ver[64] = "";
    CHECK(q != NULL);
    CHECK(q && caps_ver(q, ver, sizeof(ver)) == -1);
    xml_free(q);
}

static const char lt_feature[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                                 "<identity category='client' type='pc'/>"
                                 "<feature var='a&lt;b+notify'/></query>";
static const char lt_name[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                              "<identity category='client' type='pc' name='x&lt;a'/></query>";
static const char lt_value[] =
    "<query xmlns='http://jabber.org/protocol/disco#info'>"
    "<x xmlns='jabber:x:data' type='result'>"
    "<field var='FORM_TYPE' type='hidden'><value>urn:x</value></field>"
    "<field var='os'><value>a&lt;b</value></field></x></query>";
static const char dup_feature[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                                  "<identity category='client' type='pc'/>"
                                  "<feature var='a'/><feature var='a'/></query>";
static const char dup_identity[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                                   "<identity category='client' type='pc'/>"
                                   "<identity category='client' type='pc'/></query>";

/* No '<' at all: the features http://jabber.org/protocol/... hashed as
 * identities 'http:'/''/'jabber.org'/'protocol/...', or the last feature as a
 * FORM_TYPE. Each hashes like the honest answer without its +notify. */
static const char notify_identity[] =
    "<query xmlns='http://jabber.org/protocol/disco#info'>"
    "<identity category='client' type='pc'/>"
    "<identity category='http:' type='' xml:lang='jabber.org' name='protocol/nick+notify'/>"
    "</query>";
static const char notify_form[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                                  "<identity category='client' type='pc'/>"
                                  "<feature var='a'/><x xmlns='jabber:x:data' type='result'>"
                                  "<field var='FORM_TYPE' type='hidden'>"
                                  "<value>urn:x+notify</value></field></x></query>";
static const char disguised_honest[] = "<query xmlns='http://jabber.org/protocol/disco#info'>"
                                       "<identity category='client' type='pc'/>"
                                       "<feature var='http://jabber.org/protocol/nick+notify'/>"
                                       "</query>";

int main(void)
{
    check_ver(simple, "QgayPKawpkPSDYmwT/WM94uAlu0=");
    check_ver(complex_, "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    check_ver(prefix, "2uHoErUDnHmw/YgJOmmulcPY9pk=");
    check_bad(lt_feature);
    check_bad(lt_name);
    check_bad(lt_value);
    check_bad(dup_feature);
    check_bad(dup_identity);
    check_bad(notify_identity);
    check_bad(notify_form);
    /* The honest answer the first of those imitates (its ver, for the record). */
    check_ver(disguised_honest, "Li0z8aaqF48h2+SUzxyqmrf0KZw=");
    TEST_REPORT();
}
