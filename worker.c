/* worker.c: see worker.h. One thread, two lists under one mutex: jobs to do
 * and jobs done. The thread writes a byte to a pipe for each finished job;
 * the loop reads the pipe and runs the done callbacks, so every connection
 * and store access stays on the loop thread. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* PBKDF2 needs a few hundred bytes of stack; the default 8 MiB reservation
 * would only cost address space, but keep it small for 32-bit routers. */
#define WORKER_STACK (128 * 1024)

/* Apart from w: w's initialisers are zero bytes on common C libraries, so
 * that it can live in .bss rather than take its size in the binary. */
static int wake_pipe[2] = {-1, -1};

static struct {
    int started;   /* thread running */
    int no_thread; /* creating it failed: jobs run inline from then on */
    int stopping;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct worker_job *todo, **todo_tail;
    struct worker_job *done;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Both with w.lock held. */
static struct worker_job *take(void)
{
    struct worker_job *job = w.todo;
    w.todo = job->next;
    if (!w.todo) {
        w.todo_tail = &w.todo;
    }
    return job;
}

static void finished(struct worker_job *job)
{
    job->next = w.done;
    w.done = job;
    /* A full pipe already holds a wake-up for the loop: nothing is lost. */
    ssize_t r = write(wake_pipe[1], "", 1);
    (void)r;
}

/* On the helper thread: the work of one job, or of a pair; abandoned jobs
 * are skipped. */
static void run_jobs(struct worker_job *job, struct worker_job *other)
{
    int skip = atomic_load(&job->abandoned);
    int skip_other = other && atomic_load(&other->abandoned);
    if (other && !skip && !skip_other) {
        job->fn_pair(job, other);
        return;
    }
    if (!skip) {
        job->fn(job);
    }
    if (other && !skip_other) {
        other->fn(other);
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&w.lock);
    for (;;) {
        while (!w.todo && !w.stopping) {
            pthread_cond_wait(&w.wake, &w.lock);
        }
        if (w.stopping) {
            break;
        }
        struct worker_job *job = take(), *other = NULL;
        if (job->fn_pair && job->pair_key && w.todo && w.todo->fn_pair == job->fn_pair &&
            w.todo->pair_key == job->pair_key) {
            other = take();
        }
        pthread_mutex_unlock(&w.lock);
        run_jobs(job, other);
        pthread_mutex_lock(&w.lock);
        finished(job);
        if (other) {
            finished(other);
        }
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

int worker_start(void)
{
    if (wake_pipe[0] >= 0) {
        return wake_pipe[0];
    }
    if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        log_warn("worker: pipe: %s; hashing on the event loop", strerror(errno));
        wake_pipe[0] = wake_pipe[1] = -1;
        return -1;
    }
    w.todo_tail = &w.todo;
    return wake_pipe[0];
}

/* The thread starts with the first job: an idle server never pays for it. */
static int start_thread(void)
{
#if defined(M_ARENA_MAX)
    /* glibc would give the thread its own malloc arena (a few hundred KiB
     * resident for the few small contexts mbedTLS allocates there): share
     * the main one, the lock is uncontended at this rate. */
    mallopt(M_ARENA_MAX, 1);
#endif
    pthread_attr_t attr;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setstacksize(&attr, WORKER_STACK);
        /* Signals are the loop's business (its self-pipe): the thread
         * inherits a mask that blocks them all. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&w.thread, &attr, worker_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        /* The pipe stays open: the loop watches it and must not be left
         * with a closed (or reused) descriptor. */
        log_warn("worker: cannot start a thread (%s); hashing on the event loop", strerror(rc));
        w.no_thread = 1;
        return -1;
    }
    w.started = 1;
    return 0;
}

void worker_abandon(struct worker_job *job)
{
    atomic_store(&job->abandoned, 1);
}

void worker_run(struct worker_job *job)
{
    job->cancelled = 0;
    atomic_init(&job->abandoned, 0);
    job->next = NULL;
    if (wake_pipe[0] < 0 || w.stopping || w.no_thread || (!w.started && start_thread() < 0)) {
        job->fn(job);
        job->done(job);
        return;
    }
    pthread_mutex_lock(&w.lock);
    *w.todo_tail = job;
    w.todo_tail = &job->next;
    pthread_cond_signal(&w.wake);
    pthread_mutex_unlock(&w.lock);
}

/* Oldest first: the done list is pushed at its head. */
static void run_done(struct worker_job *list)
{
    struct worker_job *rev = NULL;
    while (list) {
        struct worker_job *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct worker_job *next = rev->next;
        rev->done(rev);
        rev = next;
    }
}

void worker_collect(void)
{
    char sink[256];
    while (read(wake_pipe[0], sink, sizeof(sink)) > 0) {
    }
    pthread_mutex_lock(&w.lock);
    struct worker_job *list = w.done;
    w.done = NULL;
    pthread_mutex_unlock(&w.lock);
    run_done(list);
}

void worker_stop(void)
{
    if (wake_pipe[0] < 0) {
        return;
    }
    pthread_mutex_lock(&w.lock);
    w.stopping = 1;
    pthread_cond_signal(&w.wake);
    pthread_mutex_unlock(&w.lock);
    if (w.started) {
        pthread_join(w.thread, NULL);
        w.started = 0;
    }
    /* Shutting down: no job's outcome is acted on any more. */
    for (int pass = 0; pass < 2; pass++) {
        struct worker_job *job = pass ? w.todo : w.done, *next;
        for (; job; job = next) {
            next = job->next;
            job->cancelled = 1;
            job->done(job);
        }
    }
    w.done = NULL;
    w.todo = NULL;
    w.todo_tail = &w.todo;
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    wake_pipe[0] = wake_pipe[1] = -1;
    w.stopping = 0;
    w.no_thread = 0;
}
