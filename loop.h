/* loop.h: the event loop interface. server.c drives it; a backend file
 * implements it (loop_poll.c, portable, the default; an epoll backend would be
 * a second file selected at build time). Owns: the set of watched fds and
 * their interest. Must not: know what a connection or a stanza is. */
#ifndef XMPPD_LOOP_H
#define XMPPD_LOOP_H

#define LOOP_READ 1
#define LOOP_WRITE 2
#define LOOP_ERR 4 /* reported only with LOOP_READ */

/* Called with the events that fired (LOOP_READ/LOOP_WRITE; errors and hang-ups
 * are reported as LOOP_READ | LOOP_ERR, whatever the interest, so the reader
 * sees EOF or the error). */
typedef void (*loop_cb)(int fd, int events, void *ud);

/* max_fds bounds the fd numbers the loop accepts. Returns 0 or -1. */
int loop_init(int max_fds);
void loop_free(void);
/* Watch fd with an interest mask. Returns 0 or -1 (fd out of range / no memory). */
int loop_add(int fd, int interest, loop_cb cb, void *ud);
void loop_set(int fd, int interest);
int loop_interest(int fd);
void loop_del(int fd);
/* Wait at most timeout_ms (-1 = forever) and dispatch ready fds. Returns the
 * number dispatched, or -1 on an error other than EINTR. */
int loop_run_once(int timeout_ms);

#endif
