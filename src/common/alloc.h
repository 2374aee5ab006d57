/* Every allocation of the project goes through this hook (as libraft's
 * raft_heap_set does), so tests can count what is live and fail the Nth
 * allocation to run the out-of-memory paths (tests/lib/heap.h).
 *
 * Memory from ch_malloc/ch_calloc/ch_realloc is freed with ch_free, never
 * with free(). Memory that libraries allocate themselves (msgpack-c's
 * sbuffer, raft_malloc, getaddrinfo; jansson's where the gateway has not
 * routed it here, see gw_create) is freed with the library's own
 * function. The default heap is libc's. */
#ifndef CHORUS_COMMON_ALLOC_H
#define CHORUS_COMMON_ALLOC_H

#include <stddef.h>

struct ch_heap {
    void *data; /* for the functions below */
    void *(*malloc)(void *data, size_t size);
    void *(*calloc)(void *data, size_t nmemb, size_t size);
    void *(*realloc)(void *data, void *ptr, size_t size);
    void (*free)(void *data, void *ptr);
};

/* Installs `heap` (borrowed until replaced) for every later call; NULL
 * restores libc's. Only while no memory of the previous heap is live
 * (tests set it up before and tear it down after the code under test).
 * Not thread-safe: call before other threads allocate. */
void ch_heap_set(const struct ch_heap *heap);

/* As malloc/calloc/realloc/free. ch_realloc(p, n) leaves p valid on
 * failure. ch_free(NULL) does nothing. */
__attribute__((malloc, warn_unused_result)) void *ch_malloc(size_t size);
__attribute__((malloc, warn_unused_result)) void *ch_calloc(size_t nmemb,
                                                            size_t size);
__attribute__((warn_unused_result)) void *ch_realloc(void *ptr, size_t size);
void ch_free(void *ptr);
/* How many allocations failed so far (in any thread): a library that
 * reports running out of memory as something else (jansson's parser says
 * "syntax error") is told apart by this count changing. */
unsigned long ch_alloc_failures(void);
/* Copy of the NUL-terminated s, or NULL on no memory. */
__attribute__((malloc, warn_unused_result)) char *ch_strdup(const char *s);

#endif
