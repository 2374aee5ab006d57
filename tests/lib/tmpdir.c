/* The temporary directories of tmpdir.h. */
#include "tmpdir.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

void test_tmpdir_make(char *out, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(out, size, "%s/chorus-%s-XXXXXX",
                     tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", name);

    assert_true(n > 0 && (size_t)n < size);
    assert_non_null(mkdtemp(out));
}

static int rm_entry(const char *p, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void test_tmpdir_remove(const char *dir)
{
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}
