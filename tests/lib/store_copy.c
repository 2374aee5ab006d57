/* See store_copy.h. */
#include "store_copy.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

struct copy {
    struct ch_msg *msgs;
    char **bufs;
    size_t n;
    size_t cap;
    int rv;
};

static char *dup_bytes(const struct ch_bytes b)
{
    char *p = malloc(b.n + 1);

    if (p != NULL) {
        memcpy(p, b.p, b.n);
        p[b.n] = '\0';
    }
    return p;
}

static int copy_cb(void *arg, const struct ch_msg *m)
{
    struct copy *c = arg;
    struct ch_msg *d;
    char *f[6];

    if (c->n == c->cap) {
        c->rv = CH_EFULL;
        return 1;
    }
    f[0] = dup_bytes(m->path);
    f[1] = dup_bytes(m->user);
    f[2] = dup_bytes(m->app);
    f[3] = dup_bytes(m->msgid);
    f[4] = dup_bytes(m->header);
    f[5] = dup_bytes(m->body);
    for (int i = 0; i < 6; i++) {
        if (f[i] == NULL) {
            c->rv = CH_ENOMEM;
            return 1;
        }
        c->bufs[c->n * 6 + (size_t)i] = f[i];
    }
    d = &c->msgs[c->n++];
    *d = *m;
    d->path.p = f[0];
    d->user.p = f[1];
    d->app.p = f[2];
    d->msgid.p = f[3];
    d->header.p = f[4];
    d->body.p = f[5];
    return 0;
}

static void copy_reset(struct copy *c)
{
    for (size_t i = 0; i < c->n * 6; i++)
        free(c->bufs[i]);
    c->n = 0;
    c->rv = 0;
}

int store_copy_holes(struct store *dst, struct store *src, int64_t max_per_fill,
                     int64_t *n_copied)
{
    struct copy c = {0};
    int64_t total = 0;
    int rv = 0;

    c.cap = (size_t)max_per_fill;
    c.msgs = calloc(c.cap, sizeof *c.msgs);
    c.bufs = calloc(c.cap * 6, sizeof *c.bufs);
    if (c.msgs == NULL || c.bufs == NULL) {
        rv = CH_ENOMEM;
        goto out;
    }
    for (;;) {
        struct store_hole h;
        struct store_txn *t;
        int64_t want;

        rv = store_read_begin(dst, &t);
        if (rv != 0)
            break;
        rv = store_hole_first(t, &h);
        store_read_end(t);
        if (rv == CH_ENOTFOUND) {
            rv = 0;
            break;
        }
        if (rv != 0)
            break;
        want = h.to_seq - h.from_seq + 1;
        if (want > max_per_fill)
            want = max_per_fill;
        rv = store_read_begin(src, &t);
        if (rv != 0)
            break;
        rv = store_read_range(t, h.path, h.path_n, h.from_seq, want, 0, copy_cb,
                              &c, NULL);
        store_read_end(t);
        if (rv == 0)
            rv = c.rv;
        if (rv == 0 && c.n == 0)
            rv = CH_ENOTFOUND; /* src lacks them too */
        if (rv == 0)
            rv = store_fill(dst, h.path, h.path_n, c.msgs, c.n);
        total += (int64_t)c.n;
        copy_reset(&c);
        if (rv != 0)
            break;
    }
out:
    copy_reset(&c);
    free(c.msgs);
    free(c.bufs);
    if (n_copied != NULL)
        *n_copied = total;
    return rv;
}
