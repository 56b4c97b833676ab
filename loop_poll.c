/* loop_poll.c: the poll() backend of loop.h. A dense pollfd array plus an
 * fd-indexed table (index into the array, callback, user data), so add, set
 * and del are O(1) and one turn costs one poll() call over the live fds. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

/* pos is the index into pfds plus one, so that 0 (calloc's zero) means "not
 * watched": the table is sized for every possible fd, and leaving it untouched
 * keeps those pages out of an idle server's RSS. */
struct slot {
    int pos;
    loop_cb cb;
    void *ud;
};

static struct slot *slots;
static struct pollfd *pfds;
static int nslots, npfds;

int loop_init(int max_fds)
{
    slots = calloc((size_t)max_fds, sizeof(*slots));
    pfds = calloc((size_t)max_fds, sizeof(*pfds));
    if (!slots || !pfds) {
        loop_free();
        return -1;
    }
    nslots = max_fds;
    return 0;
}

void loop_free(void)
{
    free(slots);
    free(pfds);
    slots = NULL;
    pfds = NULL;
    nslots = npfds = 0;
}

static short to_poll(int interest)
{
    return (short)(((interest & LOOP_READ) ? POLLIN : 0) | ((interest & LOOP_WRITE) ? POLLOUT : 0));
}

int loop_add(int fd, int interest, loop_cb cb, void *ud)
{
    if (fd < 0 || fd >= nslots || slots[fd].pos) {
        return -1;
    }
    slots[fd] = (struct slot){npfds + 1, cb, ud};
    pfds[npfds] = (struct pollfd){fd, to_poll(interest), 0};
    npfds++;
    return 0;
}

void loop_set(int fd, int interest)
{
    if (fd >= 0 && fd < nslots && slots[fd].pos) {
        pfds[slots[fd].pos - 1].events = to_poll(interest);
    }
}

int loop_interest(int fd)
{
    if (fd < 0 || fd >= nslots || !slots[fd].pos) {
        return 0;
    }
    short ev = pfds[slots[fd].pos - 1].events;
    return ((ev & POLLIN) ? LOOP_READ : 0) | ((ev & POLLOUT) ? LOOP_WRITE : 0);
}

void loop_del(int fd)
{
    if (fd < 0 || fd >= nslots || !slots[fd].pos) {
        return;
    }
    /* Move the last entry into the hole to keep the array dense. */
    int i = slots[fd].pos - 1;
    npfds--;
    if (i != npfds) {
        pfds[i] = pfds[npfds];
        slots[pfds[i].fd].pos = i + 1;
    }
    slots[fd].pos = 0;
}

int loop_run_once(int timeout_ms)
{
    int n = poll(pfds, (nfds_t)npfds, timeout_ms);
    if (n < 0) {
        return errno == EINTR ? 0 : -1;
    }
    int done = 0;
    /* Walk backwards: a callback may delete its own fd (moving the last entry
     * into its place) and that entry has already been visited. Entries added
     * during the walk land at the end and are seen next turn. */
    for (int i = npfds - 1; i >= 0 && done < n; i--) {
        if (i >= npfds) {
            continue;
        }
        short re = pfds[i].revents;
        if (!re) {
            continue;
        }
        pfds[i].revents = 0;
        int fd = pfds[i].fd;
        int ev = 0;
        if (re & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
            ev |= LOOP_READ;
        }
        if (re & (POLLERR | POLLHUP | POLLNVAL)) {
            ev |= LOOP_ERR;
        }
        if (re & POLLOUT) {
            ev |= LOOP_WRITE;
        }
        done++;
        slots[fd].cb(fd, ev, slots[fd].ud);
    }
    return done;
}
