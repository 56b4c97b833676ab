/* fuzz_log.c: log.h for fuzz builds. Every message is formatted at every level
 * (so arguments of log_debug() are evaluated and checked by ASan's printf
 * interceptors) but printed only when XMPPD_FUZZ_LOG is set in the environment:
 * the harnesses would otherwise drown libFuzzer's output. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int verbose = -1;

void log_init(int use_syslog, enum log_level max)
{
    (void)use_syslog;
    (void)max;
}

void log_set_level(enum log_level max)
{
    (void)max;
}

const char *log_level_name(enum log_level lvl)
{
    static const char names[][8] = {"error", "warning", "notice", "info", "debug"};
    return names[lvl];
}

int log_enabled(enum log_level lvl)
{
    (void)lvl;
    return 1;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "notice", "info", "debug"};
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (verbose < 0) {
        verbose = getenv("XMPPD_FUZZ_LOG") != NULL;
    }
    if (verbose) {
        fprintf(stderr, "%s: %s\n", (unsigned)lvl < 5 ? names[lvl] : "?", line);
    }
}

/* No limiter here: every line is formatted (so ASan checks its arguments). */
void log_limited(const char *kind, const char *key, enum log_level lvl, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    (void)kind;
    (void)key;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_msg(lvl, "%s", line);
}

void log_tick(time_t now)
{
    (void)now;
}

void log_set_repeat_window(int seconds)
{
    (void)seconds;
}

void log_repeat_flush(void)
{
}

/* web admin (issue 14): the harness logs nothing, so a sink gets nothing. */
void log_sink(log_sink_fn fn)
{
    (void)fn;
}
