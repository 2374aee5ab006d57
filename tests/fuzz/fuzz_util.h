/* Helpers shared by the fuzz targets. */
#ifndef CHORUS_TESTS_FUZZ_FUZZ_UTIL_H
#define CHORUS_TESTS_FUZZ_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "store/store.h"

/* Aborts with a message: libFuzzer reports it as a crash with the input. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)

void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

/* A fresh temporary directory (under $FUZZ_TMPDIR, /dev/shm or /tmp),
 * removed with its content at exit (and by fuzz_store_open). Aborts on
 * failure. */
const char *fuzz_tmpdir(void);

/* Opens a store in a new directory under fuzz_tmpdir(), then removes the
 * directory (the open store keeps its files); closed at exit. */
struct store *fuzz_store_open(void);
/* Closes a store fuzz_store_open gave and returns a new, empty one in its
 * place. */
struct store *fuzz_store_reopen(struct store *old);

/* Reads every byte of p[0..n) so ASan sees out-of-bounds field pointers;
 * returns a checksum so the reads are not optimised away. */
uint32_t fuzz_touch(const void *p, size_t n);

/* Reference UTF-8 check (RFC 3629), written independently of
 * common/validate.c for differential testing. */
int fuzz_utf8_ok(const unsigned char *p, size_t n);

#endif
