/* dns_stubs.h: what dns.c links against in the server (the event loop, the
 * hook table, the config and clock), stubbed for the programs that test its
 * wire format alone: tests/unit/test_dns.c and tests/fuzz/fuzz_dns.c. No
 * socket can be watched, so a lookup there would count as unanswered. */
#ifndef XMPPD_DNS_STUBS_H
#define XMPPD_DNS_STUBS_H

#include <time.h>

#include "hooks.h"
#include "loop.h"
#include "server.h"

struct config *g_config;
time_t g_now;

int loop_add(int fd, int interest, loop_cb cb, void *ud)
{
    (void)fd, (void)interest, (void)cb, (void)ud;
    return -1;
}

void loop_del(int fd)
{
    (void)fd;
}

void hook_add(enum hook_event ev, hook_fn fn)
{
    (void)ev, (void)fn;
}

#endif
