/* Helpers shared by the fuzz targets. */
#include "fuzz_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

static char tmp_root[4096];
static struct store *stores[8];
static size_t n_stores;

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(void)
{
    if (tmp_root[0] != '\0')
        nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    for (size_t i = 0; i < n_stores; i++)
        store_close(stores[i]);
    n_stores = 0;
    remove_tree();
    tmp_root[0] = '\0';
}

const char *fuzz_tmpdir(void)
{
    const char *base;

    if (tmp_root[0] != '\0')
        return tmp_root;
    base = getenv("FUZZ_TMPDIR");
    if (base == NULL || *base == '\0')
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmp_root, sizeof tmp_root, "%s/chorus-fuzz.XXXXXX", base);
    if (mkdtemp(tmp_root) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(cleanup);
    return tmp_root;
}

static struct store *open_new(void)
{
    static unsigned long n_opened;
    char dir[4200], errmsg[CH_ERRMSG_SIZE];
    struct store *s;
    int rv;

    snprintf(dir, sizeof dir, "%s/store%lu", fuzz_tmpdir(), n_opened++);
    rv = store_open(dir, 1ULL << 30, &s, errmsg);
    if (rv != 0) {
        fprintf(stderr, "store_open %s: %s\n", dir, errmsg);
        abort();
    }
    /* LMDB keeps its files open and never reopens them by name: remove the
     * directory now, so a crash (which skips atexit) leaves nothing. */
    remove_tree();
    return s;
}

struct store *fuzz_store_reopen(struct store *old)
{
    for (size_t i = 0; i < n_stores; i++) {
        if (stores[i] == old) {
            store_close(old);
            stores[i] = open_new();
            return stores[i];
        }
    }
    abort();
}

struct store *fuzz_store_open(void)
{
    char dir[4200], errmsg[CH_ERRMSG_SIZE];
    struct store *s;
    int rv;

    if (n_stores == sizeof stores / sizeof stores[0])
        abort();
    snprintf(dir, sizeof dir, "%s/first%zu", fuzz_tmpdir(), n_stores);
    rv = store_open(dir, 1ULL << 30, &s, errmsg);
    if (rv != 0) {
        fprintf(stderr, "store_open %s: %s\n", dir, errmsg);
        abort();
    }
    stores[n_stores++] = s;
    /* LMDB keeps its files open and never reopens them by name: remove the
     * directory now, so a crash (which skips atexit) leaves nothing. */
    remove_tree();
    return s;
}

uint32_t fuzz_touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

int fuzz_utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char b = p[i];
        uint32_t cp;
        size_t len;

        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1Fu;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0Fu;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07u;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}
