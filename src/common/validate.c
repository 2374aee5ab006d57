/* Validation of names from clients. */
#include "common/validate.h"
#include "common/limits.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

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
    /* The negative range is one larger: "-9223372036854775808" is valid. */
    if (v > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
        return false;
    if (neg && v == (unsigned long long)LLONG_MAX + 1u)
        *out = LLONG_MIN;
    else
        *out = neg ? -(long long)v : (long long)v;
    return true;
}

size_t ch_utf8_seq_len(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c;
    size_t len;
    uint32_t cp;

    if (n == 0)
        return 0;
    c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool ch_valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t len;

        /* ASCII runs eight bytes at a time (message bodies are mostly). */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i == n)
            break;
        len = ch_utf8_seq_len(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}
