/* log.c: levelled logging to stderr or syslog, and the repeat limiter (see
 * log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "limits.h"

static int to_syslog;
static log_sink_fn sink; /* web admin (issue 14): a copy of every line */
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

const char *log_level_name(enum log_level lvl)
{
    /* char arrays, not pointers: no relocations */
    static const char names[][8] = {"error", "warning", "notice", "info", "debug"};
    return names[lvl];
}

int log_enabled(enum log_level lvl)
{
    return lvl <= max_level;
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum log_level lvl, const char *fmt,
                                                           va_list ap)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (sink) {
        sink(lvl, line);
    }
    if (to_syslog) {
        syslog(prio[lvl], "%s", line);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02d %02d:%02d:%02d %s: %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, log_level_name(lvl), line);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl > max_level) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

/* ---- repeat limiter ----
 * A fixed open-addressed table keyed by hash(kind, key), probed over a few
 * slots; a router's RAM log buffer or flash is what it protects, so the
 * table's size, not the number of peers, bounds both memory and output. */
#define REPEAT_PROBE 4
#define REPEAT_KEY_MAX 96

struct repeat {
    const char *kind;       /* NULL: free slot */
    char key[REPEAT_KEY_MAX];
    time_t start;           /* time of the first line of the window */
    unsigned lines;         /* lines in this window, logged or not */
    unsigned suppressed;    /* of which not logged */
    enum log_level lvl;     /* most severe level among those not logged */
};

static struct repeat repeats[LIMIT_LOG_REPEAT_SLOTS];
static time_t repeat_now;
static int repeat_window = LIMIT_LOG_REPEAT_WINDOW;

void log_set_repeat_window(int seconds)
{
    repeat_window = seconds > 0 ? seconds : 1;
}

/* The window of r is over (or r is evicted): say what was not logged, free r. */
static void repeat_close(struct repeat *r)
{
    if (r->suppressed) {
        long secs = (long)(repeat_now - r->start);
        log_msg(r->lvl, "%s for %s: %u more lines in the last %ld s", r->kind,
                r->key[0] ? r->key : "all", r->suppressed, secs > 0 ? secs : 1);
    }
    r->kind = NULL;
}

static unsigned repeat_hash(const char *kind, const char *key)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const char *p = kind; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    h = (h ^ 0xffu) * 16777619u; /* separator: ("ab","c") differs from ("a","bc") */
    for (const char *p = key; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    return h;
}

static struct repeat *repeat_find(const char *kind, const char *key)
{
    unsigned h = repeat_hash(kind, key);
    struct repeat *victim = NULL;
    for (unsigned i = 0; i < REPEAT_PROBE; i++) {
        struct repeat *r = &repeats[(h + i) % LIMIT_LOG_REPEAT_SLOTS];
        if (r->kind && repeat_now - r->start >= repeat_window) {
            repeat_close(r);
        }
        if (r->kind && strcmp(r->kind, kind) == 0 && strcmp(r->key, key) == 0) {
            return r;
        }
        /* Prefer a free slot, else the oldest window. */
        if (!victim || (victim->kind && (!r->kind || r->start < victim->start))) {
            victim = r;
        }
    }
    if (victim->kind) {
        repeat_close(victim); /* early, but its count is not lost */
    }
    victim->kind = kind;
    strcpy(victim->key, key); /* cut to fit by log_limited */
    victim->start = repeat_now;
    victim->lines = victim->suppressed = 0;
    return victim;
}

void log_limited(const char *kind, const char *key, enum log_level lvl, const char *fmt, ...)
{
    char k[REPEAT_KEY_MAX];
    if (lvl > max_level) {
        return;
    }
    snprintf(k, sizeof(k), "%s", key ? key : ""); /* compared as it is stored */
    struct repeat *r = repeat_find(kind, k);
    if (r->lines < LIMIT_LOG_REPEAT_BURST) {
        r->lines++;
        va_list ap;
        va_start(ap, fmt);
        log_vmsg(lvl, fmt, ap);
        va_end(ap);
        return;
    }
    if (r->suppressed == 0 || lvl < r->lvl) {
        r->lvl = lvl;
    }
    if (r->suppressed < 0xffffffffu) {
        r->suppressed++;
    }
}

void log_tick(time_t now)
{
    repeat_now = now;
    for (int i = 0; i < LIMIT_LOG_REPEAT_SLOTS; i++) {
        struct repeat *r = &repeats[i];
        if (r->kind && now - r->start >= repeat_window) {
            repeat_close(r);
        }
    }
}

void log_repeat_flush(void)
{
    for (int i = 0; i < LIMIT_LOG_REPEAT_SLOTS; i++) {
        if (repeats[i].kind) {
            repeat_close(&repeats[i]);
        }
    }
}

void log_sink(log_sink_fn fn)
{
    sink = fn;
}
