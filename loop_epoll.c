/* loop_epoll.c: the Linux epoll backend of loop.h, selected at build time
 * with `make WITH_EPOLL=yes` (loop_poll.c stays the portable default). Unlike
 * poll() it does not scan every descriptor per turn, which matters once tens
 * of thousands of mostly idle sessions are held. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENTS_PER_TURN 256

/* interest is stored plus one so that 0 (calloc's zero) means "not watched"
 * and the fd-sized table stays untouched, out of an idle server's RSS. */
struct slot {
    int interest;
    loop_cb cb;
    void *ud;
};

static struct slot *slots;
static int nslots, epfd = -1;

int loop_init(int max_fds)
{
    slots = calloc((size_t)max_fds, sizeof(*slots));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!slots || epfd < 0) {
        loop_free();
        return -1;
    }
    nslots = max_fds;
    return 0;
}

void loop_free(void)
{
    free(slots);
    slots = NULL;
    nslots = 0;
    if (epfd >= 0) {
        close(epfd);
        epfd = -1;
    }
}

static uint32_t to_epoll(int interest)
{
    return ((interest & LOOP_READ) ? EPOLLIN : 0) | ((interest & LOOP_WRITE) ? EPOLLOUT : 0);
}

int loop_add(int fd, int interest, loop_cb cb, void *ud)
{
    if (fd < 0 || fd >= nslots || slots[fd].interest) {
        return -1;
    }
    struct epoll_event ev = {.events = to_epoll(interest), .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        return -1;
    }
    slots[fd] = (struct slot){interest + 1, cb, ud};
    return 0;
}

void loop_set(int fd, int interest)
{
    if (fd < 0 || fd >= nslots || !slots[fd].interest || slots[fd].interest == interest + 1) {
        return; /* unchanged interest costs no system call */
    }
    struct epoll_event ev = {.events = to_epoll(interest), .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
        slots[fd].interest = interest + 1;
    }
}

int loop_interest(int fd)
{
    if (fd < 0 || fd >= nslots || !slots[fd].interest) {
        return 0;
    }
    return slots[fd].interest - 1;
}

void loop_del(int fd)
{
    if (fd < 0 || fd >= nslots || !slots[fd].interest) {
        return;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    slots[fd].interest = 0;
}

int loop_run_once(int timeout_ms)
{
    struct epoll_event evs[EVENTS_PER_TURN];
    int n = epoll_wait(epfd, evs, EVENTS_PER_TURN, timeout_ms);
    if (n < 0) {
        return errno == EINTR ? 0 : -1;
    }
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        /* A callback earlier in this batch may have removed (or even reused)
         * this fd; a removed one has interest 0 and is skipped. */
        if (!slots[fd].interest) {
            continue;
        }
        int ev = 0;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            ev |= LOOP_READ;
        }
        if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
            ev |= LOOP_ERR;
        }
        if (evs[i].events & EPOLLOUT) {
            ev |= LOOP_WRITE;
        }
        slots[fd].cb(fd, ev, slots[fd].ud);
    }
    return n;
}
