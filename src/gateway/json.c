/* JSON for the gateway's answers and inputs, on jansson: its allocations
 * go through the project's heap hook (common/alloc.h), so tests count and
 * fail them, and a parse that ran out of memory is told apart from bad
 * input (jansson reports both as syntax errors). */
#include "common/alloc.h"
#include "gateway/gw_int.h"

#include <jansson.h>

static void *json_alloc(size_t n)
{
    return ch_malloc(n);
}

static void json_release(void *p)
{
    ch_free(p);
}

void gw__json_use_heap(void)
{
    json_malloc_t m;
    json_free_t f;

    /* Before jansson's first allocation (gw_create), or again: the same
     * functions. jansson's memory is never freed with free() here. */
    json_get_alloc_funcs(&m, &f);
    if (m != json_alloc)
        json_set_alloc_funcs(json_alloc, json_release);
}

struct json_t *gw__json_load(const char *p, size_t n, bool *is_nomem)
{
    unsigned long failures = ch_alloc_failures();
    json_error_t err;
    json_t *v = json_loadb(p, n, 0, &err);

    *is_nomem = v == NULL && ch_alloc_failures() != failures;
    return v;
}

struct dump {
    struct ch_buf *out;
    bool is_failed;
};

static int dump_cb(const char *p, size_t n, void *arg)
{
    struct dump *d = arg;

    /* Sticky: jansson does not check every call's result (an object key
     * that failed was skipped and the dump went on). */
    if (d->is_failed || ch_buf_append(d->out, p, n) != 0) {
        d->is_failed = true;
        return -1;
    }
    return 0;
}

int gw__json_dump(const struct json_t *v, struct ch_buf *out)
{
    struct dump d = {out, false};

    CH_ASSERT(v != NULL);
    /* Into our buffer: no jansson-owned text to free with its allocator. */
    if (json_dump_callback(v, dump_cb, &d, JSON_COMPACT) != 0 || d.is_failed)
        return CH_ENOMEM;
    return 0;
}

void gw__respond_value(struct gw_conn *c, int status, struct json_t *v)
{
    struct ch_buf b;

    ch_buf_init(&b);
    /* v is NULL when building it ran out of memory (json_pack fails
     * whole): an error, never an answer with fields missing. */
    if (v == NULL || gw__json_dump(v, &b) != 0) {
        json_decref(v);
        ch_buf_free(&b);
        gw__http_error(c, 503, "out of memory");
        return;
    }
    json_decref(v);
    gw__http_respond(c, status, "application/json", b.data, b.len);
    ch_buf_free(&b);
}
