/*
 * log: receiptd's one leveled log, to stderr.
 *
 * Lines are "TIME LEVEL message", written with one write() each so that
 * lines from different threads never interleave. The level is set once at
 * start-up, before any other thread exists. A message below it costs one
 * comparison: the macros test the level before the arguments are evaluated,
 * so a log_debug() of an expensive value costs nothing when debug is off.
 */
#ifndef RECEIPT_DAEMON_LOG_H
#define RECEIPT_DAEMON_LOG_H

#include <stdarg.h>

typedef enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
} log_level;

/* The least level written; read by the macros. Set it with log_set_level(). */
extern log_level log_min_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "debug", "info", "warn" or "error"; returns 0 or -1. */
int log_level_parse(const char *name, log_level *out);

void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A library's own messages (libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER),
 * at debug level, its trailing newlines dropped; who is the name the line
 * starts with (a string literal, "http").
 */
void log_library(void *who, const char *fmt, va_list ap);

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= log_min_level)                                                              \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)

#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
