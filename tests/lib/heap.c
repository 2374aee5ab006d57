/* The test heap of heap.h. */
#include "heap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <pthread.h>

#include "common/alloc.h"

/* Every block carries its size class in a header, so frees of blocks that
 * did not come from this heap would show (they do not: the hook is the
 * only way in). */
#define HEAP_MAGIC 0x43484850u /* "CHHP" */

struct heap_hdr {
    uint32_t magic;
    uint32_t pad;
    size_t size;
};

static struct {
    bool is_installed; /* once installed it stays: live blocks carry our
                        * header, whichever test made them */
    bool is_on;        /* between setup and tear-down */
    long live;         /* blocks of this heap not freed */
    long baseline;     /* live at setup */
    int delay;         /* allocations still to succeed before faults */
    int repeat;        /* faults still to inject (-1: forever), 0: none */
    unsigned hits;
} h;

/* Tests may run a server loop in a second thread. */
static pthread_mutex_t heap_mutex = PTHREAD_MUTEX_INITIALIZER;

static bool fault_now(void)
{
    if (h.repeat == 0)
        return false;
    if (h.delay > 0) {
        h.delay--;
        return false;
    }
    if (h.repeat > 0)
        h.repeat--;
    h.hits++;
    return true;
}

static void *wrap(struct heap_hdr *hdr, size_t size)
{
    if (hdr == NULL)
        return NULL;
    hdr->magic = HEAP_MAGIC;
    hdr->size = size;
    return hdr + 1;
}

static struct heap_hdr *hdr_of(void *ptr)
{
    struct heap_hdr *hdr = (struct heap_hdr *)ptr - 1;

    assert_int_equal(hdr->magic, HEAP_MAGIC);
    return hdr;
}

static void *t_malloc(void *data, size_t size)
{
    void *p = NULL;

    (void)data;
    pthread_mutex_lock(&heap_mutex);
    if (!fault_now()) {
        p = wrap(malloc(sizeof(struct heap_hdr) + size), size);
        if (p != NULL)
            h.live++;
    }
    pthread_mutex_unlock(&heap_mutex);
    return p;
}

static void *t_calloc(void *data, size_t nmemb, size_t size)
{
    void *p = NULL;

    (void)data;
    if (size != 0 && nmemb > (SIZE_MAX - sizeof(struct heap_hdr)) / size)
        return NULL;
    pthread_mutex_lock(&heap_mutex);
    if (!fault_now()) {
        p = wrap(calloc(1, sizeof(struct heap_hdr) + nmemb * size),
                 nmemb * size);
        if (p != NULL)
            h.live++;
    }
    pthread_mutex_unlock(&heap_mutex);
    return p;
}

static void *t_realloc(void *data, void *ptr, size_t size)
{
    struct heap_hdr *hdr;
    bool fault;

    if (ptr == NULL)
        return t_malloc(data, size);
    pthread_mutex_lock(&heap_mutex);
    fault = fault_now();
    pthread_mutex_unlock(&heap_mutex);
    if (fault)
        return NULL;
    hdr = hdr_of(ptr);
    return wrap(realloc(hdr, sizeof(struct heap_hdr) + size), size);
}

static void t_free(void *data, void *ptr)
{
    struct heap_hdr *hdr;

    (void)data;
    hdr = hdr_of(ptr);
    hdr->magic = 0;
    free(hdr);
    pthread_mutex_lock(&heap_mutex);
    h.live--;
    pthread_mutex_unlock(&heap_mutex);
}

static const struct ch_heap test_heap = {
    NULL, t_malloc, t_calloc, t_realloc, t_free,
};

void test_heap_setup(void)
{
    assert_false(h.is_on);
    if (!h.is_installed) {
        ch_heap_set(&test_heap);
        h.is_installed = true;
    }
    h.is_on = true;
    h.baseline = h.live;
    h.delay = 0;
    h.repeat = 0;
    h.hits = 0;
}

void test_heap_tear_down(void)
{
    long leaked = h.live - h.baseline;

    assert_true(h.is_on);
    h.is_on = false;
    h.repeat = 0;
    if (leaked != 0)
        fail_msg("%ld allocation(s) still live at tear-down", leaked);
}

void test_heap_fault_config(int delay, int repeat)
{
    h.delay = delay;
    h.repeat = repeat;
}

void test_heap_fault_off(void)
{
    h.repeat = 0;
}

unsigned test_heap_fault_hits(void)
{
    return h.hits;
}

long test_heap_live(void)
{
    return h.live - h.baseline;
}

unsigned test_heap_each_fault(void (*run)(void *arg, int i), void *arg,
                              unsigned min_runs, unsigned max_runs)
{
    unsigned i;

    for (i = 0; i < max_runs; i++) {
        run(arg, (int)i);
        /* Kept from the run: test_heap_setup resets it, tear-down not. */
        if (h.hits == 0)
            break;
    }
    print_message("allocation faults tried: %u\n", i);
    if (i < min_runs || i >= max_runs)
        fail_msg("%u runs: expected %u to %u", i, min_runs, max_runs);
    return i;
}
