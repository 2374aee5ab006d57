/* The allocation hook of alloc.h. */
#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

static void *libc_malloc(void *data, size_t size)
{
    (void)data;
    return malloc(size);
}

static void *libc_calloc(void *data, size_t nmemb, size_t size)
{
    (void)data;
    return calloc(nmemb, size);
}

static void *libc_realloc(void *data, void *ptr, size_t size)
{
    (void)data;
    return realloc(ptr, size);
}

static void libc_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static const struct ch_heap libc_heap = {
    NULL, libc_malloc, libc_calloc, libc_realloc, libc_free,
};

/* The one mutable global besides the log level (docs/architecture.md,
 * "Memory"): tests swap it, the daemon never does. */
static const struct ch_heap *current_heap = &libc_heap;

void ch_heap_set(const struct ch_heap *heap)
{
    current_heap = heap != NULL ? heap : &libc_heap;
}

/* Allocations that failed: any thread may fail one. */
static unsigned long n_failures;

static void *counted(void *p, size_t size)
{
    if (p == NULL && size > 0)
        __atomic_add_fetch(&n_failures, 1, __ATOMIC_RELAXED);
    return p;
}

void *ch_malloc(size_t size)
{
    return counted(current_heap->malloc(current_heap->data, size), size);
}

void *ch_calloc(size_t nmemb, size_t size)
{
    return counted(current_heap->calloc(current_heap->data, nmemb, size),
                   nmemb * size);
}

void *ch_realloc(void *ptr, size_t size)
{
    return counted(current_heap->realloc(current_heap->data, ptr, size), size);
}

unsigned long ch_alloc_failures(void)
{
    return __atomic_load_n(&n_failures, __ATOMIC_RELAXED);
}

void ch_free(void *ptr)
{
    if (ptr != NULL)
        current_heap->free(current_heap->data, ptr);
}

char *ch_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ch_malloc(n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}
