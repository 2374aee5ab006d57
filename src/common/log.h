/* Logging: one event per line on stderr,
 * `ts level component msg key=value...`. The only global state is the level. */
#ifndef CHORUS_COMMON_LOG_H
#define CHORUS_COMMON_LOG_H

#include <stdbool.h>

enum ch_log_level {
    CH_LOG_ERROR = 0,
    CH_LOG_WARN = 1,
    CH_LOG_INFO = 2,
    CH_LOG_DEBUG = 3
};

/* Parses "error|warn|info|debug"; returns 0 or CH_EINVAL. */
int ch_log_parse_level(const char *text, enum ch_log_level *out);
void ch_log_set_level(enum ch_log_level level);
bool ch_log_enabled(enum ch_log_level level);

__attribute__((format(printf, 3, 4))) void
ch_log(enum ch_log_level level, const char *component, const char *fmt, ...);

#define log_error(comp, ...) ch_log(CH_LOG_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)                                                    \
    do {                                                                       \
        if (ch_log_enabled(CH_LOG_WARN))                                       \
            ch_log(CH_LOG_WARN, comp, __VA_ARGS__);                            \
    } while (0)
#define log_info(comp, ...)                                                    \
    do {                                                                       \
        if (ch_log_enabled(CH_LOG_INFO))                                       \
            ch_log(CH_LOG_INFO, comp, __VA_ARGS__);                            \
    } while (0)
#define log_debug(comp, ...)                                                   \
    do {                                                                       \
        if (ch_log_enabled(CH_LOG_DEBUG))                                      \
            ch_log(CH_LOG_DEBUG, comp, __VA_ARGS__);                           \
    } while (0)

#endif
