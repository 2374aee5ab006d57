/* Growable byte buffer. */
#include "common/buf.h"
#include "common/alloc.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ch_buf_init(struct ch_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void ch_buf_free(struct ch_buf *b)
{
    ch_free(b->data);
    ch_buf_init(b);
}

int ch_buf_reserve(struct ch_buf *b, size_t n)
{
    size_t want = b->len + n + 1; /* room for a trailing NUL */
    size_t cap;
    char *p;

    CH_ASSERT(b->len <= b->cap && (b->data != NULL || b->cap == 0));
    if (want < b->len)
        return CH_ENOMEM;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    p = ch_realloc(b->data, cap);
    if (p == NULL)
        return CH_ENOMEM;
    b->data = p;
    b->cap = cap;
    CH_ASSERT(b->cap >= want);
    return 0;
}

int ch_buf_append(struct ch_buf *b, const void *p, size_t n)
{
    int rv;

    CH_ASSERT(p != NULL || n == 0);
    rv = ch_buf_reserve(b, n);
    if (rv != 0)
        return rv;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ch_buf_printf(struct ch_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    int rv;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CH_EINVAL;
    rv = ch_buf_reserve(b, (size_t)n);
    if (rv != 0)
        return rv;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int ch_buf_append_i64(struct ch_buf *b, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u;

    /* Negate in unsigned arithmetic: LLONG_MIN has no positive twin. */
    u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[sizeof tmp - 1 - n++] = '-';
    return ch_buf_append(b, tmp + sizeof tmp - n, n);
}

void ch_buf_consume(struct ch_buf *b, size_t n)
{
    CH_ASSERT(n <= b->len); /* callers consume what they read */
    if (n == b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

char *ch_buf_steal(struct ch_buf *b, size_t *len)
{
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    ch_buf_init(b);
    return p;
}
