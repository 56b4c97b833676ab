/* test_config.c: unit tests for config.c. Writes small config files into a
 * mkdtemp directory and checks defaults, every value type, quoting, comments,
 * bounds, the exact "file:line: what is wrong" errors, that a failed load
 * leaves the struct untouched, and config_restart_needed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../config.h"
#include "../../limits.h"
#include "../../log.h"
#include "test.h"

static char dir[256];
static char path[300];
static char err[512];

/* Write text to the test file and load it into c. */
static int load(const char *text, struct config *c)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -99;
    }
    fputs(text, f);
    fclose(f);
    err[0] = '\0';
    return config_load(path, c, err, sizeof(err));
}

/* Load text expecting failure with "PATH:" + suffix as the exact message. */
static void expect_error(const char *text, const char *suffix)
{
    struct config c;
    char want[600];
    config_defaults(&c);
    snprintf(want, sizeof(want), "%s:%s", path, suffix);
    CHECK(load(text, &c) == -1);
    CHECK_STR(err, want);
}

static void test_defaults(void)
{
    struct config c;
    config_defaults(&c);
    CHECK_STR(c.domain, "localhost");
    CHECK_STR(c.data_dir, "./data");
    CHECK_STR(c.listen_address, "127.0.0.1");
    CHECK(c.c2s_port == 5222);
    CHECK(c.c2s_tls_port == 5223);
    CHECK_STR(c.tls_cert, "");
    CHECK_STR(c.tls_key, "");
    CHECK(c.require_tls == 1);
    CHECK(c.plain_without_tls == 0);
    CHECK_STR(c.user, "");
    CHECK_STR(c.group, "");
    CHECK(c.allow_root == 0);
    CHECK(c.log_level == L_INFO && c.log_level == 3);
    CHECK(c.log_syslog == -1);
    CHECK(c.max_stanza_size == LIMIT_STANZA_SIZE);
    CHECK(c.max_xml_depth == LIMIT_XML_DEPTH);
    CHECK(c.max_xml_attrs == LIMIT_XML_ATTRS);
    CHECK(c.max_xml_name == LIMIT_XML_NAME);
    CHECK(c.max_connections == LIMIT_MAX_CONNECTIONS);
    CHECK(c.max_unauth == LIMIT_MAX_UNAUTH);
    CHECK(c.max_unauth_per_ip == LIMIT_MAX_UNAUTH_PER_IP);
    CHECK(c.outq_soft == LIMIT_OUTQ_SOFT);
    CHECK(c.outq_hard == LIMIT_OUTQ_HARD);
    CHECK(c.preauth_timeout == LIMIT_PREAUTH_TIMEOUT);
    CHECK(c.ping_interval == LIMIT_PING_INTERVAL);
    CHECK(c.ping_timeout == LIMIT_PING_TIMEOUT);
    CHECK(c.scram_iterations == SCRAM_DEFAULT_ITER);
    CHECK(c.max_roster_items == LIMIT_ROSTER_SIZE);
    CHECK(c.max_offline_messages == LIMIT_OFFLINE_MSGS);
    CHECK(c.max_vcard_size == LIMIT_VCARD_SIZE);
    CHECK(c.max_private_size == LIMIT_PRIVATE_SIZE);
    CHECK(c.max_blocklist_items == LIMIT_BLOCKLIST);
    CHECK(c.allow_registration == 0);
    CHECK(c.allow_password_change == 1);
    CHECK(c.hide_version == 0);

    /* An empty file (or only comments) gives exactly the defaults. */
    struct config d;
    memset(&d, 0x55, sizeof(d));
    CHECK(load("", &d) == 0);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
    memset(&d, 0x55, sizeof(d));
    CHECK(load("# just a comment\n\n   \n\t# indented comment\n", &d) == 0);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
}

static void test_values(void)
{
    struct config c;
    CHECK(load("domain Example.ORG.\n"
               "data_dir /var/lib/xmppd\n"
               "listen_address ::\n"
               "c2s_port 0\n"
               "c2s_tls_port 65535\n"
               "tls_cert \"/etc/xmppd/my cert.pem\"\n"
               "tls_key /etc/xmppd/key.pem\n"
               "require_tls no\n"
               "plain_without_tls YES\n"
               "user xmppd\n"
               "group nogroup\n"
               "allow_root on\n"
               "log_level debug\n"
               "log_syslog false\n"
               "max_stanza_size 10000\n"
               "max_offline_messages 0\n"
               "scram_iterations 10000000\n"
               "allow_registration true\n"
               "allow_password_change 0\n"
               "hide_version 1\n",
               &c) == 0);
    CHECK_STR(err, "");
    CHECK_STR(c.domain, "example.org");
    CHECK_STR(c.data_dir, "/var/lib/xmppd");
    CHECK_STR(c.listen_address, "::");
    CHECK(c.c2s_port == 0 && c.c2s_tls_port == 65535);
    CHECK_STR(c.tls_cert, "/etc/xmppd/my cert.pem");
    CHECK_STR(c.tls_key, "/etc/xmppd/key.pem");
    CHECK(c.require_tls == 0 && c.plain_without_tls == 1);
    CHECK_STR(c.user, "xmppd");
    CHECK_STR(c.group, "nogroup");
    CHECK(c.allow_root == 1);
    CHECK(c.log_level == L_DEBUG);
    CHECK(c.log_syslog == 0);
    CHECK(c.max_stanza_size == 10000);
    CHECK(c.max_offline_messages == 0);
    CHECK(c.scram_iterations == 10000000);
    CHECK(c.allow_registration == 1 && c.allow_password_change == 0 && c.hide_version == 1);
    /* Untouched options keep their defaults. */
    CHECK(c.max_xml_depth == LIMIT_XML_DEPTH);

    /* Every boolean spelling, and every log level. */
    static const char *yes[] = {"yes", "true", "on", "1", "Yes", "TRUE"};
    static const char *no[] = {"no", "false", "off", "0", "No", "OFF"};
    for (size_t i = 0; i < 6; i++) {
        char text[64];
        snprintf(text, sizeof(text), "hide_version %s\n", yes[i]);
        CHECK(load(text, &c) == 0 && c.hide_version == 1);
        snprintf(text, sizeof(text), "hide_version %s\n", no[i]);
        CHECK(load(text, &c) == 0 && c.hide_version == 0);
    }
    static const char *levels[] = {"error", "warning", "notice", "info", "debug"};
    for (int i = 0; i < 5; i++) {
        char text[64];
        snprintf(text, sizeof(text), "log_level %s\n", levels[i]);
        CHECK(load(text, &c) == 0 && c.log_level == i);
    }

    /* Blanks around, tabs, CRLF, a last line without newline. */
    CHECK(load("  \tc2s_port\t\t6222   \r\nmax_xml_depth 9", &c) == 0);
    CHECK(c.c2s_port == 6222 && c.max_xml_depth == 9);

    /* Quoting: spaces, escaped quote and backslash, empty string, blanks after. */
    CHECK(load("user \"a \\\"b\\\" \\\\c\"  \n", &c) == 0);
    CHECK_STR(c.user, "a \"b\" \\c");
    CHECK(load("tls_cert \"\"\ntls_key \"\"\n", &c) == 0);
    CHECK_STR(c.tls_cert, "");
    CHECK(load("user \"#not a comment\"\n", &c) == 0);
    CHECK_STR(c.user, "#not a comment");
    CHECK(load("data_dir \"C:\\dir\"\n", &c) == 0); /* other backslashes are literal */
    CHECK_STR(c.data_dir, "C:\\dir");
    CHECK(load("listen_address \"::1\"\nc2s_port \"5000\"\n", &c) == 0);
    CHECK_STR(c.listen_address, "::1");
    CHECK(c.c2s_port == 5000);

    /* Bounds are inclusive. */
    CHECK(load("max_stanza_size 1048576\nping_interval 10\n", &c) == 0);
    CHECK(c.max_stanza_size == 1048576 && c.ping_interval == 10);
    CHECK(load("outq_soft 4096\noutq_hard 4096\n", &c) == 0);
}

static void test_errors(void)
{
    expect_error("c2s_port 5222\nbogus_option 1\n", "2: unknown option 'bogus_option'");
    expect_error("# comment\n\nmax_stanza_size 9999\n",
                 "3: 'max_stanza_size' must be an integer from 10000 to 1048576");
    expect_error("max_stanza_size 1048577\n",
                 "1: 'max_stanza_size' must be an integer from 10000 to 1048576");
    expect_error("c2s_port -1\n", "1: 'c2s_port' must be an integer from 0 to 65535");
    expect_error("c2s_port 12abc\n", "1: 'c2s_port' must be an integer from 0 to 65535");
    expect_error("c2s_port +5\n", "1: 'c2s_port' must be an integer from 0 to 65535");
    expect_error("c2s_port 99999999999999999999\n",
                 "1: 'c2s_port' must be an integer from 0 to 65535");
    expect_error("require_tls maybe\n",
                 "1: 'require_tls' must be yes or no (also true/false, on/off, 1/0)");
    expect_error("log_level verbose\n",
                 "1: 'log_level' must be error, warning, notice, info or debug");
    expect_error("require_tls yes # comment\n",
                 "1: unexpected text after the value of 'require_tls': \"# comment\"");
    expect_error("user \"xmppd\" extra\n",
                 "1: unexpected text after the value of 'user': \"extra\"");
    expect_error("data_dir /var/lib/my dir\n",
                 "1: unexpected text after the value of 'data_dir': \"dir\"");
    expect_error("user \"unterminated\n", "1: unterminated quoted value for 'user'");
    expect_error("\n\ndomain\n", "3: missing value for 'domain'");
    expect_error("domain   \n", "1: missing value for 'domain'");
    expect_error("domain user@example.org\n", "1: 'domain' is not a valid domain name");
    expect_error("domain example.org/res\n", "1: 'domain' is not a valid domain name");
    expect_error("domain \"\"\n", "1: 'domain' is not a valid domain name");
    expect_error("domain \"a b\"\n", "1: 'domain' is not a valid domain name");
    expect_error("data_dir \"\"\n", "1: 'data_dir' must not be empty");
    expect_error("listen_address localhost\n",
                 "1: 'listen_address' must be an IPv4 or IPv6 address");
    expect_error("user \"a\tb\"\n", "1: 'user' contains a control character");
    expect_error("user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 "1: 'user' is too long (at most 63 bytes)");
    expect_error("c2s_port 5222\nc2s_port 5223\n", "2: 'c2s_port' is already set on line 1");
    expect_error("Domain example.org\n", "1: unknown option 'Domain'");
    expect_error("domain=example.org\n", "1: missing value for 'domain=example.org'");

    /* Checks across options, at the line of the later one. */
    expect_error("tls_cert /a.pem\nc2s_port 1\n", "1: tls_cert and tls_key must be set together");
    expect_error("c2s_port 1\ntls_key /a.pem\n", "2: tls_cert and tls_key must be set together");
    expect_error("outq_hard 8192\n\noutq_soft 16384\n",
                 "3: outq_soft (16384) must not be greater than outq_hard (8192)");
    expect_error("c2s_port 0\nc2s_tls_port 0\n",
                 "2: c2s_port and c2s_tls_port are both 0: nothing to listen on");
    expect_error("c2s_tls_port 5222\n", "1: c2s_port and c2s_tls_port must differ");

    /* A line longer than the parser takes. */
    char longline[1200];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "user ", 5);
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = '\0';
    expect_error(longline, "1: line too long (at most 1024 bytes)");

    /* A missing file names the file. */
    struct config c;
    char want[400];
    snprintf(want, sizeof(want), "%s/missing.conf:0: cannot open: No such file or directory",
             dir);
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.conf", dir);
    CHECK(config_load(missing, &c, err, sizeof(err)) == -1);
    CHECK_STR(err, want);

    /* A failed load leaves the struct as it was (SIGHUP keeps the old one). */
    config_defaults(&c);
    c.c2s_port = 1234;
    CHECK(load("c2s_port 4000\nbogus 1\n", &c) == -1);
    CHECK(c.c2s_port == 1234);

    /* A tiny error buffer is cut, never overrun. */
    char small[8];
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("bogus 1\n", f);
        fclose(f);
    }
    CHECK(config_load(path, &c, small, sizeof(small)) == -1);
    CHECK(strlen(small) == 7);
}

static void test_restart_needed(void)
{
    struct config a, b;
    char out[256];
    config_defaults(&a);
    config_defaults(&b);
    config_restart_needed(&a, &b, out, sizeof(out));
    CHECK_STR(out, "");
    /* Reloadable changes are not listed. */
    b.log_level = L_DEBUG;
    b.require_tls = 0;
    snprintf(b.tls_cert, sizeof(b.tls_cert), "/x.pem");
    b.max_stanza_size = 20000;
    config_restart_needed(&a, &b, out, sizeof(out));
    CHECK_STR(out, "");
    b.c2s_port = 6000;
    snprintf(b.domain, sizeof(b.domain), "example.net");
    b.max_connections = 10;
    snprintf(b.user, sizeof(b.user), "nobody");
    config_restart_needed(&a, &b, out, sizeof(out));
    CHECK_STR(out, "domain, c2s_port, user, max_connections");
    char small[20];
    config_restart_needed(&a, &b, small, sizeof(small));
    CHECK_STR(small, "domain, c2s_port");
}

/* The login throttle's options: RFC 6120 §6.4.5 bounds sasl_max_retries to
 * 2..5 retries, and auth_fail_ban_address has its own default. */
static void test_auth_limits(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.sasl_max_retries == LIMIT_SASL_MAX_RETRIES);
    CHECK(c.auth_fail_ban_address == LIMIT_AUTH_FAIL_BAN_ADDRESS);
    CHECK(load("sasl_max_retries 2\nauth_fail_ban_address 1\n", &c) == 0);
    CHECK(c.sasl_max_retries == 2 && c.auth_fail_ban_address == 1);
    CHECK(load("sasl_max_retries 5\n", &c) == 0);
    CHECK(c.sasl_max_retries == 5);
    expect_error("sasl_max_retries 1\n", "1: 'sasl_max_retries' must be an integer from 2 to 5");
    expect_error("\nsasl_max_retries 6\n", "2: 'sasl_max_retries' must be an integer from 2 to 5");
    expect_error("auth_fail_ban_address 0\n",
                 "1: 'auth_fail_ban_address' must be an integer from 1 to 1000000");
}

/* registration_throttle(_total): COUNT SECONDS; registration_exempt: prefixes. */
static void test_rates_and_prefixes(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.registration_throttle.count == LIMIT_REGISTER_PER_ADDR);
    CHECK(c.registration_throttle.seconds == LIMIT_REGISTER_WINDOW);
    CHECK(c.registration_throttle_total.count == LIMIT_REGISTER_TOTAL);
    CHECK(c.registration_throttle_total.seconds == LIMIT_REGISTER_TOTAL_WINDOW);
    /* Default: loopback, IPv4 (also as IPv4-mapped IPv6) and IPv6. */
    CHECK(c.registration_exempt.n == 2);
    CHECK(config_prefixes_match(&c.registration_exempt, "127.0.0.1"));
    CHECK(config_prefixes_match(&c.registration_exempt, "127.200.3.4"));
    CHECK(config_prefixes_match(&c.registration_exempt, "::ffff:127.0.0.1"));
    CHECK(config_prefixes_match(&c.registration_exempt, "::1"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "128.0.0.1"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "::2"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "::ffff:10.0.0.1"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "not an address"));

    CHECK(load("registration_throttle 100   3600  \nregistration_throttle_total \"7 60\"\n"
               "registration_exempt 10.1.0.0/16\t2001:db8::/32 192.0.2.7 ::ffff:198.51.100.0/120 "
               "fe80::1\n",
               &c) == 0);
    CHECK(c.registration_throttle.count == 100 && c.registration_throttle.seconds == 3600);
    CHECK(c.registration_throttle_total.count == 7 && c.registration_throttle_total.seconds == 60);
    CHECK(c.registration_exempt.n == 5);
    CHECK(config_prefixes_match(&c.registration_exempt, "10.1.255.3"));
    CHECK(config_prefixes_match(&c.registration_exempt, "::ffff:10.1.0.9"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "10.2.0.1"));
    CHECK(config_prefixes_match(&c.registration_exempt, "2001:db8:ffff::1"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "2001:db9::1"));
    CHECK(config_prefixes_match(&c.registration_exempt, "192.0.2.7"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "192.0.2.8"));
    CHECK(config_prefixes_match(&c.registration_exempt, "198.51.100.200"));
    CHECK(config_prefixes_match(&c.registration_exempt, "fe80::1"));
    CHECK(!config_prefixes_match(&c.registration_exempt, "127.0.0.1"));

    CHECK(load("registration_exempt none\n", &c) == 0);
    CHECK(c.registration_exempt.n == 0);
    CHECK(!config_prefixes_match(&c.registration_exempt, "127.0.0.1"));
    CHECK(load("registration_exempt 0.0.0.0/0 ::/0\n", &c) == 0);
    CHECK(config_prefixes_match(&c.registration_exempt, "203.0.113.1"));
    CHECK(config_prefixes_match(&c.registration_exempt, "2001:db8::1"));
    CHECK(load("registration_throttle 1 1\nregistration_throttle_total 1000000 604800\n", &c) == 0);

    const char *rate = "1: 'registration_throttle' must be COUNT SECONDS (COUNT from 1 to 1000000, "
                       "SECONDS from 1 to 604800)";
    expect_error("registration_throttle 5\n", rate);
    expect_error("registration_throttle 5 600 7\n", rate);
    expect_error("registration_throttle 0 600\n", rate);
    expect_error("registration_throttle 5 604801\n", rate);
    expect_error("registration_throttle 5 -1\n", rate);
    expect_error("registration_throttle 5x 600\n", rate);
    expect_error("registration_throttle 5 600 # ten minutes\n", rate);
    expect_error("registration_throttle_total 1000001 60\n",
                 "1: 'registration_throttle_total' must be COUNT SECONDS (COUNT from 1 to 1000000, "
                 "SECONDS from 1 to 604800)");
    expect_error("registration_exempt 10.0.0.0/33\n",
                 "1: 'registration_exempt' prefix '10.0.0.0/33' has a bad length (0 to 32)");
    expect_error("registration_exempt ::/129\n",
                 "1: 'registration_exempt' prefix '::/129' has a bad length (0 to 128)");
    expect_error("registration_exempt 10.0.0.0/\n",
                 "1: 'registration_exempt' prefix '10.0.0.0/' has a bad length (0 to 32)");
    expect_error("registration_exempt 10.0.0.0/-8\n",
                 "1: 'registration_exempt' prefix '10.0.0.0/-8' has a bad length (0 to 32)");
    expect_error("registration_exempt 10.0.0.1/8\n",
                 "1: 'registration_exempt' prefix '10.0.0.1/8' has address bits set after its "
                 "length");
    expect_error("registration_exempt localhost\n",
                 "1: 'registration_exempt' prefix 'localhost' is not an IPv4 or IPv6 address");
    expect_error("registration_exempt ::1 # loopback\n",
                 "1: 'registration_exempt' prefix '#' is not an IPv4 or IPv6 address");
    expect_error("registration_exempt ::1 none\n",
                 "1: 'registration_exempt' prefix 'none' must stand alone");
    expect_error("registration_exempt \"\"\n", "1: 'registration_exempt' needs a prefix, or none");
    expect_error("registration_exempt 1::1 1::2 1::3 1::4 1::5 1::6 1::7 1::8 1::9 1::a 1::b 1::c "
                 "1::d 1::e 1::f 1::10 1::11\n",
                 "1: 'registration_exempt' has more than 16 prefixes");
    expect_error("registration_exempt\n", "1: missing value for 'registration_exempt'");

    config_defaults(&c);
    CHECK(c.log_repeat_window == LIMIT_LOG_REPEAT_WINDOW);
    CHECK(load("log_repeat_window 5\n", &c) == 0 && c.log_repeat_window == 5);
    expect_error("log_repeat_window 0\n", "1: 'log_repeat_window' must be an integer from 1 to 3600");
    expect_error("log_repeat_window 3601\n",
                 "1: 'log_repeat_window' must be an integer from 1 to 3600");

    /* A failed load leaves the list as it was. */
    CHECK(load("registration_exempt 10.0.0.0/8\n", &c) == 0);
    CHECK(load("registration_exempt 10.0.0.0/8\nbogus 1\n", &c) == -1);
    CHECK(c.registration_exempt.n == 1 && config_prefixes_match(&c.registration_exempt, "10.9.9.9"));
}

/* client state indication (XEP-0352, csi.c) */
static void test_csi(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.csi_max_held == LIMIT_CSI_MAX_HELD);
    CHECK(load("csi_max_held 0\n", &c) == 0);
    CHECK(c.csi_max_held == 0);
    CHECK(load("csi_max_held 10000\n", &c) == 0);
    CHECK(c.csi_max_held == 10000);
    expect_error("csi_max_held 10001\n", "1: 'csi_max_held' must be an integer from 0 to 10000");
    expect_error("csi_max_held -1\n", "1: 'csi_max_held' must be an integer from 0 to 10000");
}

/* back-pressure before the XEP-0198 limits. */
static void test_sm_unacked_soft(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.sm_unacked_soft_percent == LIMIT_SM_UNACKED_SOFT_PERCENT);
    CHECK(load("sm_unacked_soft_percent 10\n", &c) == 0);
    CHECK(c.sm_unacked_soft_percent == 10);
    CHECK(load("sm_unacked_soft_percent 100\n", &c) == 0);
    CHECK(c.sm_unacked_soft_percent == 100);
    expect_error("sm_unacked_soft_percent 9\n",
                 "1: 'sm_unacked_soft_percent' must be an integer from 10 to 100");
    expect_error("sm_unacked_soft_percent 101\n",
                 "1: 'sm_unacked_soft_percent' must be an integer from 10 to 100");
}

/* push: component DOMAIN SECRET (repeatable), component_port, push limits. */
static void test_components_and_push(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.component_port == LIMIT_COMPONENT_PORT);
    CHECK_STR(c.component_interface, "127.0.0.1");
    CHECK(c.component.n == 0);
    CHECK(c.max_push_registrations == LIMIT_PUSH_REGISTRATIONS);
    CHECK(c.push_interval == LIMIT_PUSH_INTERVAL && c.push_timeout == LIMIT_PUSH_TIMEOUT);
    CHECK(load("component GW.Example s1\ncomponent push.example s2\ncomponent_port 0\n"
               "push_interval 1\nmax_push_registrations 0\n", &c) == 0);
    CHECK(c.component.n == 2);
    CHECK_STR(c.component.c[0].domain, "gw.example");
    CHECK_STR(c.component.c[0].secret, "s1");
    CHECK_STR(c.component.c[1].domain, "push.example");
    CHECK_STR(c.component.c[1].secret, "s2");
    CHECK(c.component_port == 0 && c.push_interval == 1 && c.max_push_registrations == 0);
    /* No message repeats the secret. */
    expect_error("component gw.example\n", "1: 'component' must be DOMAIN SECRET");
    expect_error("component gw.example topsecret extra\n", "1: 'component' must be DOMAIN SECRET");
    expect_error("component bad@domain topsecret\n",
                 "1: 'component' has a DOMAIN that is not a valid domain name");
    expect_error("component a.example x\ncomponent A.example y\n",
                 "2: 'component' names a DOMAIN that is already a component");
    expect_error("component localhost topsecret\n",
                 "1: component localhost is the server's own domain");
    expect_error("component a.example x\ncomponent_port 5222\n",
                 "2: component_port must differ from c2s_port and c2s_tls_port");
    CHECK(load("component_port 5222\n", &c) == 0); /* no component: no listener */
    expect_error("push_interval 0\n", "1: 'push_interval' must be an integer from 1 to 86400");
    CHECK(strstr(err, "topsecret") == NULL);
}

/* Resources per account (c2s.c bind): default, a value, the bounds. */
static void test_max_resources(void)
{
    struct config c;
    CHECK(load("", &c) == 0 && c.max_resources_per_account == LIMIT_MAX_RESOURCES_PER_ACCOUNT);
    CHECK(load("max_resources_per_account 3\n", &c) == 0 && c.max_resources_per_account == 3);
    expect_error("max_resources_per_account 0\n",
                 "1: 'max_resources_per_account' must be an integer from 1 to 1000");
}

/* Feature switches (issue 16): which options belong to which switch, and
 * that an option of a switch that is off stops the load, naming the switch. */
static void test_feature_switches(void)
{
    struct config c;
    const char *f = NULL;
    CHECK((f = config_option_feature("mam_max_page")) && strcmp(f, "MAM") == 0);
    CHECK((f = config_option_feature("component")) && strcmp(f, "COMPONENTS") == 0);
    CHECK((f = config_option_feature("component_port")) && strcmp(f, "COMPONENTS") == 0);
    CHECK((f = config_option_feature("max_push_registrations")) && strcmp(f, "PUSH") == 0);
    CHECK((f = config_option_feature("sm_resume_timeout")) && strcmp(f, "SM") == 0);
    CHECK((f = config_option_feature("max_vcard_size")) && strcmp(f, "VCARD") == 0);
    CHECK(config_option_feature("domain") == NULL);
    CHECK(config_option_feature("max_stanza_size") == NULL);
    CHECK(config_option_feature("smx") == NULL); /* a prefix needs its '_' */
    CHECK(config_option_feature("components") == NULL); /* a whole name is whole */
    /* This build's own switches (the Makefile's XMPPD_WITHOUT). */
    config_defaults(&c);
    if (strstr(config_without(), "MAM")) {
        expect_error("# archive\nmam_max_page 20\n",
                     "2: option 'mam_max_page': compiled without MAM (make WITH_MAM=yes)");
    } else {
        CHECK(load("mam_max_page 20\n", &c) == 0 && c.mam_max_page == 20);
    }
}

/* XEP-0133 administration: admins (normalised bare JIDs of the domain, or
 * none), adhoc_max_sessions, adhoc_session_timeout. */
static void test_admins(void)
{
    struct config c;
    CHECK(load("", &c) == 0 && c.admins.n == 0);
    CHECK(c.adhoc_max_sessions == LIMIT_ADHOC_SESSIONS);
    CHECK(c.adhoc_session_timeout == LIMIT_ADHOC_TIMEOUT);
    CHECK(load("admins Alice@LOCALHOST bob@localhost\n", &c) == 0 && c.admins.n == 2);
    CHECK_STR(c.admins.jid[0], "alice@localhost");
    CHECK_STR(c.admins.jid[1], "bob@localhost");
    CHECK(load("admins none\n", &c) == 0 && c.admins.n == 0);
    /* the domain may come after the list: checked with the whole file */
    CHECK(load("admins root@example.org\ndomain example.org\n", &c) == 0 && c.admins.n == 1);
    expect_error("admins root@example.org\n",
                 "1: admins: root@example.org is not an account of domain localhost");
    expect_error("admins alice@localhost/phone\n",
                 "1: 'admins' 'alice@localhost/phone' is not a bare JID user@domain");
    expect_error("admins localhost\n", "1: 'admins' 'localhost' is not a bare JID user@domain");
    expect_error("admins a@localhost none\n", "1: 'admins' 'none' is not a bare JID user@domain");
    char line[1024] = "admins";
    for (int i = 0; i <= LIMIT_ADMINS; i++) {
        snprintf(line + strlen(line), sizeof(line) - strlen(line), " u%d@localhost", i);
    }
    strcat(line, "\n");
    char want[64];
    snprintf(want, sizeof(want), "1: 'admins' has more than %d JIDs", LIMIT_ADMINS);
    expect_error(line, want);
    expect_error("adhoc_max_sessions 0\n",
                 "1: 'adhoc_max_sessions' must be an integer from 1 to 10000");
    expect_error("adhoc_session_timeout 5\n",
                 "1: 'adhoc_session_timeout' must be an integer from 10 to 86400");
    CHECK(load("", &c) == 0 && c.announce_max_bytes == LIMIT_ANNOUNCE_BYTES);
    expect_error("announce_max_bytes 65537\n",
                 "1: 'announce_max_bytes' must be an integer from 64 to 65536");
    /* SIGHUP applies a new list: no restart needed for it */
    struct config a, b;
    char out[256];
    config_defaults(&a);
    CHECK(load("admins alice@localhost\n", &b) == 0);
    config_restart_needed(&a, &b, out, sizeof(out));
    CHECK_STR(out, "");
}

/* Federation: s2s_port, s2s_route DOMAIN HOST[:PORT] (repeatable), s2s limits. */
static void test_s2s(void)
{
    struct config c;
    CHECK(load("", &c) == 0);
    CHECK(c.s2s_port == LIMIT_S2S_PORT && c.s2s_route.n == 0 && c.s2s_secure_auth == 0);
    CHECK(c.s2s_max_queued == LIMIT_S2S_MAX_QUEUED && c.s2s_idle_timeout == LIMIT_S2S_IDLE_TIMEOUT);
    CHECK(load("s2s_route Other.Example 192.0.2.1\ns2s_route b.example 192.0.2.2:5270\n"
               "s2s_route c.example [2001:db8::1]:5271\ns2s_route d.example 2001:db8::2\n"
               "s2s_port 0\n",
               &c) == 0);
    CHECK(c.s2s_route.n == 4 && c.s2s_port == 0);
    CHECK_STR(c.s2s_route.r[0].domain, "other.example");
    CHECK_STR(c.s2s_route.r[0].host, "192.0.2.1");
    CHECK(c.s2s_route.r[0].port == 5269 && c.s2s_route.r[1].port == 5270);
    CHECK_STR(c.s2s_route.r[2].host, "2001:db8::1");
    CHECK(c.s2s_route.r[2].port == 5271);
    CHECK_STR(c.s2s_route.r[3].host, "2001:db8::2");
    CHECK(c.s2s_route.r[3].port == 5269);
    expect_error("s2s_route a.example\n", "1: 's2s_route' must be DOMAIN HOST[:PORT]");
    expect_error("s2s_route a.example host.example\n",
                 "1: 's2s_route' has a HOST that is not an IPv4 or IPv6 address (no DNS names yet)");
    expect_error("s2s_route a.example 192.0.2.1:0\n",
                 "1: 's2s_route' has a PORT that is not a number from 1 to 65535");
    expect_error("s2s_route a.example 192.0.2.1\ns2s_route A.example 192.0.2.2\n",
                 "2: 's2s_route' names a DOMAIN that has a route already");
    expect_error("s2s_port 5222\n",
                 "1: s2s_port must differ from c2s_port, c2s_tls_port and component_port");
    expect_error("s2s_retry_min 60\ns2s_retry_max 10\n",
                 "2: s2s_retry_min must not be greater than s2s_retry_max");
    /* The per-domain incoming streams live in a fixed array of its maximum. */
    CHECK(load("", &c) == 0 && c.s2s_max_incoming_per_domain == LIMIT_S2S_INCOMING_PER_DOMAIN);
    CHECK(load("s2s_max_incoming_per_domain 16\n", &c) == 0 &&
          c.s2s_max_incoming_per_domain == LIMIT_S2S_INCOMING_PER_DOMAIN_MAX);
    expect_error("s2s_max_incoming_per_domain 17\n",
                 "1: 's2s_max_incoming_per_domain' must be an integer from 1 to 16");
}

/* Multi-user chat (XEP-0045, muc.c). */
static void test_muc(void)
{
    struct config c;
    config_defaults(&c);
    CHECK_STR(c.muc_domain, "auto");
    CHECK(c.muc_max_rooms == LIMIT_MUC_MAX_ROOMS);
    CHECK(c.muc_max_occupants == LIMIT_MUC_MAX_OCCUPANTS);
    CHECK(c.muc_history_size == LIMIT_MUC_HISTORY_SIZE);
    CHECK(load("muc_domain none\n", &c) == 0);
    CHECK_STR(c.muc_domain, "none");
    CHECK(load("muc_domain \"\"\n", &c) == 0);
    CHECK_STR(c.muc_domain, "");
    CHECK(load("muc_domain Rooms.Example.ORG.\n", &c) == 0);
    CHECK_STR(c.muc_domain, "rooms.example.org");
    expect_error("muc_domain a@b\n", "1: 'muc_domain' is not a valid domain name");
    expect_error("domain example.org\nmuc_domain example.org\n",
                 "2: muc_domain must differ from domain");
    expect_error("muc_history_size 201\n",
                 "1: 'muc_history_size' must be an integer from 0 to 200");
}

/* MUC presence flood limit (issue 15 item 2). */
static void test_muc_presence_rate(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.muc_presence_burst == LIMIT_MUC_PRESENCE_BURST);
    CHECK(c.muc_presence_rate == LIMIT_MUC_PRESENCE_RATE);
    CHECK(load("muc_presence_burst 2\nmuc_presence_rate 60000\n", &c) == 0);
    CHECK(c.muc_presence_burst == 2 && c.muc_presence_rate == 60000);
    /* A nick change costs two: a burst of one would refuse every one. */
    expect_error("muc_presence_burst 1\n",
                 "1: 'muc_presence_burst' must be an integer from 2 to 1000");
    expect_error("muc_presence_rate 0\n",
                 "1: 'muc_presence_rate' must be an integer from 1 to 60000");
}

/* s2s SASL EXTERNAL: s2s_require_cert DOMAIN... on as many lines as wanted. */
static void test_s2s_require_cert(void)
{
    struct config c;
    CHECK(load("", &c) == 0);
    CHECK(c.s2s_require_cert.n == 0);
    CHECK(load("s2s_require_cert A.Example\ns2s_require_cert b.example c.example.\n", &c) == 0);
    CHECK(c.s2s_require_cert.n == 3);
    CHECK_STR(c.s2s_require_cert.d[0], "a.example");
    CHECK_STR(c.s2s_require_cert.d[2], "c.example");
    expect_error("s2s_require_cert a@b.example\n",
                 "1: 's2s_require_cert' 'a@b.example' is not a valid domain name");
}

/* HTTP server (issue 14): defaults, bounds, and ports that would clash. */
static void test_http(void)
{
    struct config c;
    CHECK(load("", &c) == 0);
    CHECK(c.http_port == 5280 && c.https_port == 5281);
    CHECK_STR(c.http_interface, "127.0.0.1");
    CHECK(c.http_request_timeout == LIMIT_HTTP_REQUEST_TIMEOUT);
    CHECK(c.http_max_body == LIMIT_HTTP_MAX_BODY);
    CHECK(load("http_port 0\nhttps_port 0\n", &c) == 0);
    expect_error("http_max_headers 3\n", "1: 'http_max_headers' must be an integer from 4 to 10000");
    expect_error("http_port 8080\nhttps_port 8080\n",
                 "2: http_port and https_port must differ from each other and from c2s_port, "
                 "c2s_tls_port, s2s_port and component_port");
    expect_error("https_port 5222\n",
                 "1: http_port and https_port must differ from each other and from c2s_port, "
                 "c2s_tls_port, s2s_port and component_port");
}

/* MUC limits that do not reset (issue 15): 0 switches the message rate off. */
static void test_muc_message_rate(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(c.muc_message_burst == LIMIT_MUC_MESSAGE_BURST);
    CHECK(c.muc_message_rate == LIMIT_MUC_MESSAGE_RATE);
    CHECK(c.muc_rejoin_buckets == LIMIT_MUC_REJOIN_BUCKETS);
    CHECK(load("muc_message_burst 1\nmuc_message_rate 0\nmuc_rejoin_buckets 0\n", &c) == 0);
    CHECK(c.muc_message_burst == 1 && c.muc_message_rate == 0 && c.muc_rejoin_buckets == 0);
    expect_error("muc_message_burst 0\n",
                 "1: 'muc_message_burst' must be an integer from 1 to 1000000");
    expect_error("muc_message_rate -1\n",
                 "1: 'muc_message_rate' must be an integer from 0 to 10000000");
    expect_error("muc_rejoin_buckets 10001\n",
                 "1: 'muc_rejoin_buckets' must be an integer from 0 to 10000");
}

/* XEP-0157 contact_addresses: words KIND:URI. */
static void test_contacts(void)
{
    struct config c;
    CHECK(load("contact_addresses \"admin:xmpp:root@example.org abuse:mailto:a@example.org\"\n",
               &c) == 0);
    CHECK(strcmp(c.contact_addresses, "admin:xmpp:root@example.org abuse:mailto:a@example.org") ==
          0);
    const char *why = "1: 'contact_addresses' must be words KIND:URI, KIND one of abuse admin "
                      "feedback sales security status support (XEP-0157)";
    expect_error("contact_addresses root@example.org\n", why);
    expect_error("contact_addresses boss:xmpp:root@example.org\n", why);
    expect_error("contact_addresses admin:\n", why);
    expect_error("contact_addresses \"admin:xmpp:a@b  x\"\n", why);
    /* what would leave the server's caps hash empty */
    why = "1: 'contact_addresses' must not hold '<' nor end a URI in +notify (XEP-0115 caps hash)";
    expect_error("contact_addresses admin:xmpp:a<b@example.org\n", why);
    expect_error("contact_addresses admin:xmpp:root@example.org+notify\n", why);
}

int main(void)
{
    char tmpl[] = "/tmp/xmppd-config-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s", tmpl);
    snprintf(path, sizeof(path), "%s/xmppd.conf", dir);

    test_defaults();
    test_values();
    test_errors();
    test_restart_needed();
    test_auth_limits();
    test_rates_and_prefixes();
    test_csi();
    test_components_and_push();
    test_sm_unacked_soft();
    test_max_resources();
    test_feature_switches();
    test_admins();
    test_s2s();
    test_muc();
    test_muc_presence_rate();
    test_s2s_require_cert();
    test_http();
    test_muc_message_rate();
    test_contacts();

    unlink(path);
    rmdir(dir);
    TEST_REPORT();
}
