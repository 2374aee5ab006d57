/* libFuzzer target: store_restore of arbitrary bytes (store/snapshot.c).
 * A refused snapshot must leave the store exactly as it was; an accepted
 * one must leave a store that can be read (topics, messages up to a hole,
 * members), snapshotted again, restored again, and written to. Inputs are tried
 * as given and with their FNV-1a trailer recomputed, so the fuzzer gets past
 * the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_util.h"
#include "store/store.h"

#define SNAP_HEADER_BYTES 24
#define SNAP_TRAILER_BYTES 8

static struct store *st;
static struct ch_buf baseline; /* snapshot of the store between inputs */

static uint64_t fnv1a64(const unsigned char *b, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static void snapshot(struct ch_buf *out)
{
    struct store_snap *snap;

    out->len = 0;
    FUZZ_CHECK(store_snapshot_begin(st, &snap) == 0);
    FUZZ_CHECK(store_snapshot_write(snap, out) == 0);
    store_snapshot_end(snap);
}

static void publish(const char *path, const char *user, const char *msgid,
                    const char *body)
{
    struct ch_msg m;
    struct store_result res;
    bool skipped = false;

    memset(&m, 0, sizeof m);
    m.path.p = path;
    m.path.n = strlen(path);
    m.user.p = user;
    m.user.n = strlen(user);
    m.app.p = "fuzz";
    m.app.n = 4;
    m.msgid.p = msgid;
    m.msgid.n = strlen(msgid);
    m.body.p = body;
    m.body.n = strlen(body);
    FUZZ_CHECK(store_apply_publish(st, store_applied_index(st) + 1, 1700000000,
                                   120, &m, 1, &res, &skipped) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The store every input is restored onto: a few messages, a member. */
static void fill_baseline(void)
{
    struct ch_member_change mc = {
        CH_MEMBER_SET, 1, {"127.0.0.1:9001", 14}, {"127.0.0.1:8001", 14}, 0};
    bool skipped;

    publish("/a", "u1", "m1", "hello");
    publish("/a/b", "u1", "m2", "world");
    publish("/a", "u2", "", "again");
    FUZZ_CHECK(store_apply_members(st, store_applied_index(st) + 1, &mc, 1,
                                   &skipped) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    st = fuzz_store_open();
    fill_baseline();
    ch_buf_init(&baseline);
    snapshot(&baseline);
    return 0;
}

/* After an accepted input: a state snapshot cannot take a store back (a
 * store ahead of a snapshot is refused), so a fresh store gets the
 * baseline's content again. */
static void reset_store(void)
{
    struct ch_buf again;

    st = fuzz_store_reopen(st);
    fill_baseline();
    ch_buf_init(&again);
    snapshot(&again);
    FUZZ_CHECK(again.len == baseline.len &&
               memcmp(again.data, baseline.data, baseline.len) == 0);
    ch_buf_free(&again);
}

struct walk {
    struct store_txn *t;
    uint64_t n_msgs;
};

static int msg_cb(void *arg, const struct ch_msg *m)
{
    struct walk *w = arg;

    fuzz_touch(m->path.p, m->path.n);
    fuzz_touch(m->user.p, m->user.n);
    fuzz_touch(m->app.p, m->app.n);
    fuzz_touch(m->msgid.p, m->msgid.n);
    fuzz_touch(m->header.p, m->header.n);
    fuzz_touch(m->body.p, m->body.n);
    return ++w->n_msgs > 10000;
}

static int topic_cb(void *arg, const char *path, size_t path_n,
                    const struct store_topic *info)
{
    struct walk *w = arg;
    struct store_topic again;
    int rv;

    (void)info;
    fuzz_touch(path, path_n);
    rv = store_topic_get(w->t, path, path_n, &again);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT || rv == CH_ENOTFOUND);
    rv = store_read_range(w->t, path, path_n, 0, 1000, 0, msg_cb, w, NULL);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT || rv == CH_EMISSING);
    rv =
        store_read_range(w->t, path, path_n, INT64_MAX, 10, 1, msg_cb, w, NULL);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT || rv == CH_EMISSING);
    return w->n_msgs > 10000;
}

static int member_cb(void *arg, const struct store_member *m)
{
    (void)arg;
    fuzz_touch(m, sizeof *m);
    return 0;
}

static void check_readable(void)
{
    struct walk w = {NULL, 0};
    int rv;

    FUZZ_CHECK(store_check(st) == 0);
    FUZZ_CHECK(store_read_begin(st, &w.t) == 0);
    rv = store_topics_list(w.t, "", 0, topic_cb, &w);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    rv = store_topics_list(w.t, "/a", 2, topic_cb, &w);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    rv = store_members_list(w.t, member_cb, NULL);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    store_read_end(w.t);
}

static void try_restore(const uint8_t *data, size_t size)
{
    struct ch_buf snap1, snap2;
    uint64_t applied = 0;
    int rv = store_restore(st, data, size);

    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    ch_buf_init(&snap1);
    ch_buf_init(&snap2);
    snapshot(&snap1);
    if (rv != 0) {
        /* Refused: the store is unchanged. */
        FUZZ_CHECK(snap1.len == baseline.len &&
                   memcmp(snap1.data, baseline.data, baseline.len) == 0);
        goto out;
    }
    FUZZ_CHECK(store_snapshot_index(data, size, &applied) == 0);
    FUZZ_CHECK(store_applied_index(st) == applied);
    check_readable();
    /* Its own snapshot restores to the same content. */
    FUZZ_CHECK(store_restore(st, snap1.data, snap1.len) == 0);
    snapshot(&snap2);
    FUZZ_CHECK(snap1.len == snap2.len &&
               memcmp(snap1.data, snap2.data, snap1.len) == 0);
    /* Still writable (unless the index cannot advance). */
    if (applied < UINT64_MAX - 1) {
        publish("/a", "u1", "m1", "after restore");
        publish("/fuzz/new", "u3", "x", "after restore");
        check_readable();
    }
    reset_store();
out:
    ch_buf_free(&snap1);
    ch_buf_free(&snap2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_restore(data, size);
    if (size >= SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES) {
        unsigned char *fixed = malloc(size);
        uint64_t h;

        FUZZ_CHECK(fixed != NULL);
        memcpy(fixed, data, size);
        h = fnv1a64(fixed, size - SNAP_TRAILER_BYTES);
        for (int i = 0; i < 8; i++)
            fixed[size - SNAP_TRAILER_BYTES + (size_t)i] =
                (unsigned char)(h >> (8 * i));
        if (memcmp(fixed, data, size) != 0)
            try_restore(fixed, size);
        free(fixed);
    }
    return 0;
}
