/* Logger implementation: formats the whole line first, then one write. */
#include "common/log.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum ch_log_level g_level = CH_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int ch_log_parse_level(const char *text, enum ch_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum ch_log_level)i;
            return 0;
        }
    }
    return CH_EINVAL;
}

void ch_log_set_level(enum ch_log_level level)
{
    g_level = level;
}

bool ch_log_enabled(enum ch_log_level level)
{
    return level <= g_level;
}

void ch_log(enum ch_log_level level, const char *component, const char *fmt,
            ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int rv;
    va_list ap;

    if (!ch_log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    rv = snprintf(line + n, sizeof line - n, ".%03ldZ %s %s ",
                  ts.tv_nsec / 1000000, level_names[level], component);
    if (rv > 0)
        n += (size_t)rv;
    va_start(ap, fmt);
    rv = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (rv > 0)
        n += (size_t)rv;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so lines from several processes do not mix. */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nothing sensible left to report to. */
    }
}
