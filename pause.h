/* pause.h: the bookkeeping behind paused senders (STYLE §4). A sender is
 * paused while a destination's output queue is over outq_soft (or its peer
 * holds too much unacknowledged, XEP-0198); it may go on once that queue is
 * below the resume mark. This says when the loop should look for senders to
 * resume: at the end of a turn in which a destination that paused someone
 * drained (or left) while a sender is paused, not only on the 1-second tick,
 * and never in a turn where nothing is paused or nothing drained.
 * Owns: two counters. Must not: know connections, sockets or time. */
#ifndef XMPPD_PAUSE_H
#define XMPPD_PAUSE_H

#include <stddef.h>

struct pause_book {
    int npaused; /* senders paused now */
    int drained; /* a destination that paused someone let go this turn */
};

/* A sender was paused / resumed (or freed while paused). */
void pause_note_paused(struct pause_book *b);
void pause_note_resumed(struct pause_book *b);
/* A destination with `queued` bytes and its backlog flag lets its senders go:
 * half of outq_soft (hysteresis: a queue just under the limit would pause
 * them again with the next stanza). */
int pause_below_mark(size_t queued, size_t soft, int backlog);
/* A destination that paused a sender went below the mark or left. */
void pause_note_drained(struct pause_book *b);
/* End of a turn: 1 when paused senders should be looked at now (and the
 * drained mark is taken), 0 otherwise. */
int pause_rescan_due(struct pause_book *b);

#endif
