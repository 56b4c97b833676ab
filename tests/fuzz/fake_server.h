/* fake_server.h: what fuzz_stream.c drives in fake_server.c, the stand-in for
 * server.c. Connections have no sockets: input is handed to c2s_feed the way
 * server.c's conn_read would, and output goes to a capped buffer that "the
 * peer" reads at the end of each turn and checks for well-formed XML. */
#ifndef XMPPD_FAKE_SERVER_H
#define XMPPD_FAKE_SERVER_H

#include <stddef.h>

#include "server.h"

#define FAKE_SLOTS 4

struct fake_conn {
    struct conn c;         /* first: conn_* functions cast back to fake_conn */
    int slot;
    int tls_on;            /* "TLS" is up (direct TLS, or after <proceed/> was flushed) */
    int slow;              /* the peer does not read: output piles up to outq_hard */
    struct xml_parser *check; /* parses what the server sends, as a client would */
    int check_closed;      /* the server's </stream:stream> was seen */
    char challenge[2048];  /* text of the last SASL <challenge/> */
    size_t sent;           /* bytes the peer read, for limits in the harness */
};

/* The open connection in a slot (NULL when none). */
struct fake_conn *fake_slot(int slot);
/* Open a connection in a free slot, as accept_one() does. */
struct fake_conn *fake_open(int slot, int direct_tls);
/* Bytes from the peer, fed in reads of read_size bytes (0: 16 KiB like server.c),
 * honouring held/paused/start_tls exactly as server.c's conn_read does. Ends
 * turns: fc may be gone afterwards. */
void fake_feed(struct fake_conn *fc, const char *data, size_t len, size_t read_size);
/* The peer closed its end (read returned 0). */
void fake_peer_close(struct fake_conn *fc);
/* End of a loop turn: flush queues to the peers, switch to TLS, detach and free
 * closed conns. No fake_conn pointer may be held across it (or any call below
 * that ends a turn): look the slot up again. */
void fake_end_turn(void);
/* Let seconds pass, with the one-second housekeeping tick. */
void fake_advance(int seconds);
/* Server shutdown: close every stream as shutdown_all() does and free everything. */
void fake_shutdown(void);
/* Forget the connection id counter etc. between inputs. */
void fake_reset(void);

#endif
