/* Temporary directories for tests: made under $TMPDIR (or /tmp), removed
 * with everything in them. Failures fail the test (cmocka). */
#ifndef CHORUS_TESTS_LIB_TMPDIR_H
#define CHORUS_TESTS_LIB_TMPDIR_H

#include <stddef.h>

/* Makes a new directory "<TMPDIR>/chorus-<name>-XXXXXX" and writes its
 * path to out. */
void test_tmpdir_make(char *out, size_t size, const char *name);
/* Removes dir and everything below it. */
void test_tmpdir_remove(const char *dir);

#endif
