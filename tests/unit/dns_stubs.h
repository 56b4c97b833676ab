/* dns_stubs.h: what dns.c links against in the server (the event loop, the
 * hook table, the config and clock), stubbed for the programs that test its
 * wire format alone: tests/unit/test_dns.c and tests/fuzz/fuzz_dns.c. The
 * loop only remembers the last fd dns.c watches and its callback, for a test
 * to call when it has put a reply on that socket. */
#ifndef XMPPD_DNS_STUBS_H
#define XMPPD_DNS_STUBS_H

#include <time.h>

#include "hooks.h"
#include "loop.h"
#include "server.h"

struct config *g_config;
time_t g_now;

static int stub_fd = -1;
static loop_cb stub_cb;
static void *stub_ud;

int loop_add(int fd, int interest, loop_cb cb, void *ud)
{
    (void)interest;
    stub_fd = fd;
    stub_cb = cb;
    stub_ud = ud;
    return 0;
}

void loop_del(int fd)
{
    if (fd == stub_fd) {
        stub_fd = -1;
    }
}

void hook_add(enum hook_event ev, hook_fn fn)
{
    (void)ev, (void)fn;
}

#endif
