/* Logging to stderr with a level and a monotonic-ish wall clock stamp. */
#ifndef THAW_COMMON_LOG_H
#define THAW_COMMON_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int thaw_log_level;
/* Prefix for every line, e.g. "thaw" or "thaw worker 1234". */
void log_set_prefix(const char *prefix);
void thaw_log(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) thaw_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) thaw_log(LOG_WARN, __VA_ARGS__)
#define log_info(...) thaw_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (thaw_log_level >= LOG_DEBUG)                                                   \
			thaw_log(LOG_DEBUG, __VA_ARGS__);                                          \
	} while (0)

#endif
