/* Validation of names from clients. */
#include "common/validate.h"
#include "common/limits.h"

#include <limits.h>

static bool seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool ch_valid_topic(const char *p, size_t n)
{
    size_t i = 0;

    if (n < 2 || n > CH_MAX_TOPIC_BYTES || p[0] != '/')
        return false;
    while (i < n) {
        size_t start;
        if (p[i] != '/')
            return false;
        start = ++i;
        while (i < n && seg_char(p[i]))
            i++;
        if (i == start)
            return false; /* empty segment: "//" or trailing '/' */
        if (i < n && p[i] != '/')
            return false;
        if ((i - start == 1 && p[start] == '.') ||
            (i - start == 2 && p[start] == '.' && p[start + 1] == '.'))
            return false;
    }
    return true;
}

bool ch_valid_id(const char *p, size_t n)
{
    if (n < 1 || n > CH_MAX_ID_BYTES)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!seg_char(p[i]) && p[i] != ':')
            return false;
    }
    return true;
}

bool ch_topic_under(const char *path, size_t path_n, const char *prefix,
                    size_t prefix_n)
{
    if (prefix_n == 0 || (prefix_n == 1 && prefix[0] == '/'))
        return true;
    if (path_n < prefix_n)
        return false;
    for (size_t i = 0; i < prefix_n; i++) {
        if (path[i] != prefix[i])
            return false;
    }
    return path_n == prefix_n || path[prefix_n] == '/';
}

bool ch_parse_i64(const char *p, size_t n, long long *out)
{
    bool neg = false;
    unsigned long long v = 0;
    size_t i = 0;

    if (n == 0)
        return false;
    if (p[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (n - i > 19)
        return false;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long long)(p[i] - '0');
    }
    if (v > (unsigned long long)LLONG_MAX)
        return false;
    *out = neg ? -(long long)v : (long long)v;
    return true;
}
