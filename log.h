/* log.h: levelled logging to stderr (foreground) or syslog (daemon), and a
 * limiter for lines a remote peer can cause at will (STYLE §10).
 * Never pass passwords, SASL payloads or message bodies above LOG_DEBUG.
 * Must not: know about connections, configuration or the event loop (time
 * comes in through log_tick). */
#ifndef XMPPD_LOG_H
#define XMPPD_LOG_H

#include <time.h>

enum log_level { L_ERROR = 0, L_WARNING, L_NOTICE, L_INFO, L_DEBUG };

void log_init(int use_syslog, enum log_level max);
void log_set_level(enum log_level max);
int log_enabled(enum log_level lvl);
/* "error", "warning", "notice", "info" or "debug" (the log_level option). */
const char *log_level_name(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line a peer can repeat at will (quota hit, failed login, stream error...).
 * Per (kind, key) only the first LIMIT_LOG_REPEAT_BURST lines of a window of
 * log_repeat_window seconds are logged; the rest are counted, and when the
 * window closes one line says "KIND for KEY: N more lines in the last S s".
 * kind names the sort of event (a string literal: it is kept, not copied);
 * key says whose (the address before authentication, the bare JID after;
 * NULL = one counter for all). A fixed table: when it is full, the oldest
 * entry is summed up early and reused, so no count is ever lost. */
void log_limited(const char *kind, const char *key, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The current time in seconds (monotonic), once a second from the event
 * loop: windows that closed print their summary then, even when the flood
 * that filled them has stopped. */
void log_tick(time_t now);
/* Length of a window in seconds (log_repeat_window). */
void log_set_repeat_window(int seconds);
/* Print every pending summary now (shutdown). */
void log_repeat_flush(void);

/* web admin (issue 14): fn gets every line that is logged (without the
 * time and level prefix), after formatting; NULL stops it. One sink. */
typedef void (*log_sink_fn)(enum log_level lvl, const char *line);
void log_sink(log_sink_fn fn);

#define log_error(...) log_msg(L_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(L_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(L_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(L_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(L_DEBUG)) log_msg(L_DEBUG, __VA_ARGS__); } while (0)

#endif
