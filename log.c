/* log.c: levelled logging to stderr or syslog (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

static int to_syslog;
static enum log_level max_level = L_INFO;

void log_init(int use_syslog, enum log_level max)
{
    to_syslog = use_syslog;
    max_level = max;
    if (to_syslog) {
        openlog("xmppd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
}

void log_set_level(enum log_level max)
{
    max_level = max;
}

int log_enabled(enum log_level lvl)
{
    return lvl <= max_level;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "notice", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    if (lvl > max_level) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    if (to_syslog) {
        vsyslog(prio[lvl], fmt, ap);
    } else {
        char line[1024];
        vsnprintf(line, sizeof(line), fmt, ap);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(stderr, "%04d-%02d-%02d %02d:%02d:%02d %s: %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, names[lvl], line);
    }
    va_end(ap);
}
