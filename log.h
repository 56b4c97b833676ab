/* log.h: levelled logging to stderr (foreground) or syslog (daemon).
 * Never pass passwords, SASL payloads or message bodies above LOG_DEBUG. */
#ifndef XMPPD_LOG_H
#define XMPPD_LOG_H

enum log_level { L_ERROR = 0, L_WARNING, L_NOTICE, L_INFO, L_DEBUG };

void log_init(int use_syslog, enum log_level max);
void log_set_level(enum log_level max);
int log_enabled(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(L_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(L_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(L_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(L_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(L_DEBUG)) log_msg(L_DEBUG, __VA_ARGS__); } while (0)

#endif
