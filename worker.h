/* worker.h: one helper thread for CPU-heavy pure computations, so that the
 * event loop never stalls on them. Today that is the PBKDF2 of a PLAIN login:
 * 0.3-0.6 ms on a PC, tens of milliseconds on a router's CPU, during which no
 * other client would be served.
 *
 * A job's fn runs on the helper thread and may touch only its own job (no
 * logging, no store, no connections); its done runs later on the loop thread,
 * from worker_collect(). Without worker_start() (unit tests, fuzzing, or when
 * the thread cannot be created) worker_run() calls fn and then done at once.
 * The queue needs no limit of its own: c2s has at most one job per
 * unauthenticated connection, and those are capped. */
#ifndef XMPPD_WORKER_H
#define XMPPD_WORKER_H

#include <stdatomic.h>

struct worker_job {
    void (*fn)(struct worker_job *job); /* helper thread */
    /* Optional, helper thread: two queued jobs with the same fn_pair and the
     * same non-zero pair_key are done together (two PBKDF2s cost about one on
     * CPUs with SHA units). Set a key only where pairing gains: the first job
     * waits for the second one's work too. */
    void (*fn_pair)(struct worker_job *a, struct worker_job *b);
    long pair_key;
    void (*done)(struct worker_job *job); /* loop thread; frees the job */
    int cancelled;        /* set for done by worker_stop: free the job, nothing more */
    atomic_int abandoned; /* worker_abandon: fn need not run */
    struct worker_job *next;
};

/* Returns the fd the loop watches for finished jobs (LOOP_READ), or -1 (the
 * caller then runs without the thread). The thread starts with the first job. */
int worker_start(void);
void worker_run(struct worker_job *job);
/* On the loop thread, before the job's done has run: its result is no longer
 * wanted (the client left), so fn is skipped if it has not started. done is
 * still called, and frees the job. */
void worker_abandon(struct worker_job *job);
/* On the loop thread, when the fd is readable: calls done for finished jobs. */
void worker_collect(void);
/* Stop the thread after the job in hand; every job not yet collected gets
 * its done with cancelled set (free it, act on nothing). */
void worker_stop(void);

#endif
