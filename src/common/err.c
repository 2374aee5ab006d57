/* Error code tables. */
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>

const char *ch_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
#define CH_ERR_TEXT(name, num, text)                                           \
    case name:                                                                 \
        return text;
        CH_ERR_MAP(CH_ERR_TEXT)
#undef CH_ERR_TEXT
    default:
        return "unknown error code";
    }
}

const char *ch_err_name(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define CH_ERR_NAME(name, num, text)                                           \
    case name:                                                                 \
        return #name;
        CH_ERR_MAP(CH_ERR_NAME)
#undef CH_ERR_NAME
    default:
        return "CH_E?";
    }
}

void ch__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
