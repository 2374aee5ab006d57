/* Unit tests of the store (src/store): apply, reads, topic listing,
 * de-dup, member directory, reopen, snapshots. Each test uses a fresh
 * temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/err.h"
#include "common/limits.h"
#include "lib/store_copy.h"
#include "lib/tmpdir.h"
#include "store/store.h"

#define MAP_BYTES (64ULL * 1024 * 1024)
#define WINDOW 120

struct fx {
    char dir[256];  /* temp dir holding every store of the test */
    char path[300]; /* the main store's directory (below dir) */
    struct store *s;
    uint64_t index; /* last raft index used */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char errmsg[CH_ERRMSG_SIZE];

    assert_non_null(f);
    test_tmpdir_make(f->dir, sizeof f->dir, "store");
    /* a missing directory with a missing parent: open creates both */
    snprintf(f->path, sizeof(f->path), "%s/a/b", f->dir);
    assert_int_equal(store_open(f->path, MAP_BYTES, &f->s, errmsg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    store_close(f->s);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static struct ch_msg msg(const char *path, const char *user, const char *msgid,
                         const char *body)
{
    struct ch_msg m;

    memset(&m, 0, sizeof(m));
    m.path.p = path;
    m.path.n = strlen(path);
    m.user.p = user;
    m.user.n = strlen(user);
    m.app.p = "app0123456789abc";
    m.app.n = 16;
    m.msgid.p = msgid;
    m.msgid.n = strlen(msgid);
    m.header.p = "{\"k\":\"v\"}";
    m.header.n = 9;
    m.body.p = body;
    m.body.n = strlen(body);
    return m;
}

/* Applies a batch at the next index; asserts it was applied. */
static void apply(struct fx *f, int64_t time, const struct ch_msg *msgs,
                  size_t n, struct store_result *res)
{
    bool skipped = true;

    f->index++;
    assert_int_equal(store_apply_publish(f->s, f->index, time, WINDOW, msgs, n,
                                         res, &skipped),
                     0);
    assert_false(skipped);
    assert_int_equal(store_applied_index(f->s), f->index);
}

/* Publishes one message; returns its result. */
static struct store_result pub1(struct fx *f, int64_t time, const char *path,
                                const char *user, const char *msgid,
                                const char *body)
{
    struct ch_msg m = msg(path, user, msgid, body);
    struct store_result r;

    apply(f, time, &m, 1, &r);
    return r;
}

/* Publishes one message that must be stored. */
static void pub(struct fx *f, int64_t time, const char *path, const char *user,
                const char *msgid, const char *body)
{
    struct store_result r = pub1(f, time, path, user, msgid, body);

    assert_int_equal(r.status, 0);
    assert_true(r.seq >= 1);
}

/* Read collector: copies what the callback sees. */
#define MAX_READ 64
struct got_msg {
    char path[256];
    char user[130];
    char app[130];
    char msgid[130];
    char header[64];
    char body[256];
    size_t body_n;
    int64_t seq;
    int64_t time;
};
struct collect {
    struct got_msg msgs[MAX_READ];
    size_t n;
    size_t stop_after; /* return non-zero after this many (0: never) */
};

static void copy_field(char *dst, size_t cap, struct ch_bytes b)
{
    assert_true(b.n < cap);
    if (b.n > 0)
        memcpy(dst, b.p, b.n);
    dst[b.n] = '\0';
}

static int collect_cb(void *arg, const struct ch_msg *m)
{
    struct collect *c = arg;
    struct got_msg *g;

    assert_true(c->n < MAX_READ);
    g = &c->msgs[c->n++];
    copy_field(g->path, sizeof(g->path), m->path);
    copy_field(g->user, sizeof(g->user), m->user);
    copy_field(g->app, sizeof(g->app), m->app);
    copy_field(g->msgid, sizeof(g->msgid), m->msgid);
    copy_field(g->header, sizeof(g->header), m->header);
    copy_field(g->body, sizeof(g->body), m->body);
    g->body_n = m->body.n;
    g->seq = m->seq;
    g->time = m->time;
    return c->stop_after != 0 && c->n >= c->stop_after;
}

/* As read_range below, returning the read's status; *next as it set. */
static int read_range_rv(struct store *s, const char *path, int64_t from,
                         int64_t max_count, struct collect *c, int64_t *next)
{
    struct store_txn *t;
    int rv;

    c->n = 0;
    assert_int_equal(store_read_begin(s, &t), 0);
    rv = store_read_range(t, path, strlen(path), from, max_count, 0, collect_cb,
                          c, next);
    store_read_end(t);
    return rv;
}

static int64_t read_range(struct store *s, const char *path, int64_t from,
                          int64_t max_count, size_t max_bytes,
                          struct collect *c)
{
    struct store_txn *t;
    int64_t next = -12345;

    c->n = 0;
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_read_range(t, path, strlen(path), from, max_count,
                                      max_bytes, collect_cb, c, &next),
                     0);
    store_read_end(t);
    return next;
}

static int topic_get(struct store *s, const char *path, struct store_topic *o)
{
    struct store_txn *t;
    int rv;

    assert_int_equal(store_read_begin(s, &t), 0);
    rv = store_topic_get(t, path, strlen(path), o);
    store_read_end(t);
    return rv;
}

static int64_t topic_count(struct store *s, const char *path)
{
    struct store_topic t;

    if (topic_get(s, path, &t) == CH_ENOTFOUND)
        return 0;
    return t.count;
}

/* ---- append and reads --------------------------------------------------- */

static void test_store_append_and_read_all(void **state)
{
    struct fx *f = *state;
    struct ch_msg m[3] = {msg("/a", "alice", "m1", "one"),
                          msg("/a", "bob", "", "two"),
                          msg("/a", "carol", "m3", "three")};
    static const char bin[] = {'x', 0, 'y', 0};
    struct store_result r[3];
    struct collect c = {0};

    m[1].body.p = bin;
    m[1].body.n = sizeof(bin);
    m[2].header.n = 0;
    m[2].app.n = 0;
    apply(f, 1000, m, 3, r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].status, 0);
        assert_false(r[i].is_dup);
        assert_int_equal(r[i].seq, i + 1);
        assert_int_equal(r[i].time, 1000);
    }

    for (int64_t from = 0; from <= 1; from++) {
        assert_int_equal(read_range(f->s, "/a", from, 0, 0, &c), 4);
        assert_int_equal(c.n, 3);
    }
    assert_string_equal(c.msgs[0].path, "/a");
    assert_string_equal(c.msgs[0].user, "alice");
    assert_string_equal(c.msgs[0].app, "app0123456789abc");
    assert_string_equal(c.msgs[0].msgid, "m1");
    assert_string_equal(c.msgs[0].header, "{\"k\":\"v\"}");
    assert_string_equal(c.msgs[0].body, "one");
    assert_int_equal(c.msgs[0].seq, 1);
    assert_int_equal(c.msgs[0].time, 1000);
    assert_int_equal(c.msgs[1].body_n, sizeof(bin));
    assert_memory_equal(c.msgs[1].body, bin, sizeof(bin));
    assert_string_equal(c.msgs[1].msgid, "");
    assert_int_equal(c.msgs[1].seq, 2);
    assert_string_equal(c.msgs[2].header, "");
    assert_string_equal(c.msgs[2].app, "");
    assert_int_equal(c.msgs[2].seq, 3);
}

static void test_store_read_forms(void **state)
{
    struct fx *f = *state;
    struct collect c = {0};
    char body[16];

    for (int i = 1; i <= 5; i++) {
        snprintf(body, sizeof(body), "body-%05d", i); /* 10 bytes */
        pub(f, 1000 + i, "/r", "u", "", body);
    }
    /* from the middle */
    assert_int_equal(read_range(f->s, "/r", 3, 0, 0, &c), 6);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.msgs[0].seq, 3);
    assert_string_equal(c.msgs[0].body, "body-00003");
    assert_int_equal(c.msgs[0].time, 1003);
    assert_int_equal(c.msgs[2].seq, 5);
    /* max_count */
    assert_int_equal(read_range(f->s, "/r", 2, 2, 0, &c), 4);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.msgs[1].seq, 3);
    /* max_bytes: stops once reached, after at least one message */
    assert_int_equal(read_range(f->s, "/r", 1, 0, 15, &c), 3);
    assert_int_equal(c.n, 2);
    assert_int_equal(read_range(f->s, "/r", 1, 0, 20, &c), 3);
    assert_int_equal(c.n, 2);
    assert_int_equal(read_range(f->s, "/r", 1, 0, 1, &c), 2);
    assert_int_equal(c.n, 1);
    assert_int_equal(read_range(f->s, "/r", 1, 10, 21, &c), 4);
    assert_int_equal(c.n, 3);
    /* both limits: the tighter wins */
    assert_int_equal(read_range(f->s, "/r", 1, 1, 1000, &c), 2);
    assert_int_equal(c.n, 1);
    /* past the end: nothing, next_seq is from_seq */
    assert_int_equal(read_range(f->s, "/r", 6, 0, 0, &c), 6);
    assert_int_equal(c.n, 0);
    assert_int_equal(read_range(f->s, "/r", 100, 0, 0, &c), 100);
    assert_int_equal(c.n, 0);
    /* the callback stops the read; that message counts */
    c.stop_after = 2;
    assert_int_equal(read_range(f->s, "/r", 1, 0, 0, &c), 3);
    assert_int_equal(c.n, 2);
    c.stop_after = 0;
    /* exact path only: a subtopic is a different log */
    pub(f, 2000, "/r/sub", "u", "", "sub");
    assert_int_equal(read_range(f->s, "/r", 1, 0, 0, &c), 6);
    assert_int_equal(c.n, 5);
    assert_int_equal(read_range(f->s, "/r/sub", 1, 0, 0, &c), 2);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.msgs[0].path, "/r/sub");
}

static void test_store_unknown_topic(void **state)
{
    struct fx *f = *state;
    struct store_topic t;
    struct collect c = {0};

    pub(f, 1, "/known", "u", "", "x");
    assert_int_equal(topic_get(f->s, "/unknown", &t), CH_ENOTFOUND);
    assert_int_equal(topic_get(f->s, "/know", &t), CH_ENOTFOUND);
    assert_int_equal(topic_get(f->s, "not a topic", &t), CH_ENOTFOUND);
    assert_int_equal(topic_get(f->s, "", &t), CH_ENOTFOUND);
    assert_int_equal(read_range(f->s, "/unknown", 1, 0, 0, &c), 1);
    assert_int_equal(c.n, 0);
    assert_int_equal(read_range(f->s, "/unknown", 0, 0, 0, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(read_range(f->s, "bad", 1, 0, 0, &c), 1);
    assert_int_equal(c.n, 0);
}

static void test_store_seqs_gapless_and_per_topic(void **state)
{
    struct fx *f = *state;
    struct ch_msg m[4] = {msg("/a", "u", "", "a1"), msg("/b", "u", "", "b1"),
                          msg("/a", "u", "", "a2"), msg("/c", "u", "", "c1")};
    struct store_result r[4];
    struct collect c = {0};

    apply(f, 10, m, 4, r);
    assert_int_equal(r[0].seq, 1);
    assert_int_equal(r[1].seq, 1);
    assert_int_equal(r[2].seq, 2);
    assert_int_equal(r[3].seq, 1);
    apply(f, 11, m, 3, r);
    assert_int_equal(r[0].seq, 3);
    assert_int_equal(r[1].seq, 2);
    assert_int_equal(r[2].seq, 4);
    assert_int_equal(read_range(f->s, "/a", 1, 0, 0, &c), 5);
    assert_int_equal(c.n, 4);
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.msgs[i].seq, (int64_t)i + 1);
    assert_string_equal(c.msgs[3].body, "a2");
    assert_int_equal(read_range(f->s, "/b", 1, 0, 0, &c), 3);
    assert_int_equal(c.n, 2);
    assert_int_equal(read_range(f->s, "/c", 1, 0, 0, &c), 2);
    assert_int_equal(c.n, 1);
}

static void test_store_topic_meta(void **state)
{
    struct fx *f = *state;
    struct store_topic t;

    pub(f, 1, "/m", "u", "", "12345");
    pub(f, 2, "/m", "u", "", "");
    pub(f, 3, "/m", "u", "", "abc");
    assert_int_equal(topic_get(f->s, "/m", &t), 0);
    assert_int_equal(t.first_seq, 1);
    assert_int_equal(t.last_seq, 3);
    assert_int_equal(t.count, 3);
    assert_int_equal(t.bytes, 8);
}

/* ---- topic listing ------------------------------------------------------ */

#define MAX_TOPICS 16
struct topic_list {
    char paths[MAX_TOPICS][64];
    int64_t counts[MAX_TOPICS];
    size_t n;
    size_t stop_after;
};

static int topic_list_cb(void *arg, const char *path, size_t path_n,
                         const struct store_topic *t)
{
    struct topic_list *l = arg;

    assert_true(l->n < MAX_TOPICS && path_n < 64);
    memcpy(l->paths[l->n], path, path_n);
    l->paths[l->n][path_n] = '\0';
    l->counts[l->n] = t->count;
    l->n++;
    return l->stop_after != 0 && l->n >= l->stop_after;
}

static size_t list(struct store *s, const char *prefix, struct topic_list *l)
{
    struct store_txn *t;

    l->n = 0;
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(
        store_topics_list(t, prefix, strlen(prefix), topic_list_cb, l), 0);
    store_read_end(t);
    return l->n;
}

static void test_store_topics_list_prefix(void **state)
{
    static const char *const topics[] = {
        "/foo", "/foo/bar",     "/foobar", "/foo-x",   "/foo.y",
        "/bar", "/foo/bar/baz", "/fo",     "/foo/bar2"};
    struct fx *f = *state;
    struct topic_list l = {0};

    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        pub(f, 1, topics[i], "u", "", "x");
    pub(f, 2, "/foo", "u", "", "y");

    assert_int_equal(list(f->s, "/foo", &l), 4);
    assert_string_equal(l.paths[0], "/foo");
    assert_int_equal(l.counts[0], 2);
    assert_string_equal(l.paths[1], "/foo/bar");
    assert_string_equal(l.paths[2], "/foo/bar/baz");
    assert_string_equal(l.paths[3], "/foo/bar2");

    assert_int_equal(list(f->s, "/foo/bar", &l), 2);
    assert_string_equal(l.paths[0], "/foo/bar");
    assert_string_equal(l.paths[1], "/foo/bar/baz");

    assert_int_equal(list(f->s, "/", &l), 9);
    assert_int_equal(list(f->s, "", &l), 9);
    /* path order */
    for (size_t i = 1; i < l.n; i++)
        assert_true(strcmp(l.paths[i - 1], l.paths[i]) < 0);

    assert_int_equal(list(f->s, "/nope", &l), 0);
    assert_int_equal(list(f->s, "/f", &l), 0);
    assert_int_equal(list(f->s, "/foobar", &l), 1);

    l.stop_after = 2;
    assert_int_equal(list(f->s, "/", &l), 2);
}

static void test_store_topics_list_empty_store(void **state)
{
    struct fx *f = *state;
    struct topic_list l = {0};

    assert_int_equal(list(f->s, "/", &l), 0);
    assert_int_equal(list(f->s, "/foo", &l), 0);
}

/* ---- apply semantics ---------------------------------------------------- */

static void test_store_reopen_keeps_everything(void **state)
{
    struct fx *f = *state;
    char errmsg[CH_ERRMSG_SIZE];
    struct store_result r;
    struct collect c = {0};
    struct store_topic t;

    pub(f, 5, "/p", "u", "id1", "one");
    pub(f, 6, "/p", "u", "", "two");
    pub(f, 7, "/q", "u", "", "three");
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->path, MAP_BYTES, &f->s, errmsg), 0);
    assert_int_equal(store_applied_index(f->s), f->index);
    assert_int_equal(read_range(f->s, "/p", 1, 0, 0, &c), 3);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.msgs[1].body, "two");
    assert_int_equal(c.msgs[1].time, 6);
    assert_int_equal(topic_get(f->s, "/q", &t), 0);
    assert_int_equal(t.last_seq, 1);
    /* the de-dup table survived too */
    r = pub1(f, 8, "/p", "u", "id1", "one again");
    assert_true(r.is_dup);
    assert_int_equal(r.seq, 1);
    assert_int_equal(r.time, 5);
    /* and new messages continue the sequence */
    r = pub1(f, 9, "/p", "u", "", "four");
    assert_int_equal(r.seq, 3);
}

static void test_store_reapply_is_noop(void **state)
{
    struct fx *f = *state;
    struct ch_msg m = msg("/re", "u", "", "x");
    struct store_result r;
    bool skipped = false;

    pub(f, 1, "/re", "u", "", "x");
    pub(f, 2, "/re", "u", "", "y");
    assert_int_equal(store_applied_index(f->s), 2);
    for (uint64_t idx = 0; idx <= 2; idx++) {
        r.seq = -7;
        skipped = false;
        assert_int_equal(
            store_apply_publish(f->s, idx, 3, WINDOW, &m, 1, &r, &skipped), 0);
        assert_true(skipped);
        assert_int_equal(r.seq, -7); /* results untouched */
    }
    assert_int_equal(topic_count(f->s, "/re"), 2);
    assert_int_equal(store_applied_index(f->s), 2);
    /* an index gap is fine (raft entries of other kinds) */
    f->index = 10;
    r = pub1(f, 4, "/re", "u", "", "z");
    assert_int_equal(r.seq, 3);
    assert_int_equal(store_applied_index(f->s), 11);
}

static void test_store_set_applied(void **state)
{
    struct fx *f = *state;

    assert_int_equal(store_applied_index(f->s), 0);
    assert_int_equal(store_set_applied(f->s, 5), 0);
    assert_int_equal(store_applied_index(f->s), 5);
    assert_int_equal(store_set_applied(f->s, 3), 0); /* never goes back */
    assert_int_equal(store_applied_index(f->s), 5);
}

static void test_store_invalid_message_in_batch(void **state)
{
    struct fx *f = *state;
    char long_id[130];
    struct ch_msg m[8];
    struct store_result r[8];
    struct collect c = {0};

    memset(long_id, 'i', 129);
    long_id[129] = '\0';
    m[0] = msg("/ok", "u", "", "1");
    m[1] = msg("bad", "u", "", "2");      /* bad path */
    m[2] = msg("/ok", "", "", "3");       /* empty user */
    m[3] = msg("/ok", "u u", "", "4");    /* bad user */
    m[4] = msg("/ok", "u", "a,b", "5");   /* bad msgid */
    m[5] = msg("/ok", "u", long_id, "6"); /* msgid too long */
    m[6] = msg("/a//b", "u", "", "7");
    m[7] = msg("/ok", "u", "", "8");
    apply(f, 50, m, 8, r);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].seq, 1);
    for (int i = 1; i <= 6; i++) {
        assert_int_equal(r[i].status, CH_EINVAL);
        assert_false(r[i].is_dup);
    }
    assert_int_equal(r[7].status, 0);
    assert_int_equal(r[7].seq, 2); /* no gap for the refused ones */
    assert_int_equal(read_range(f->s, "/ok", 1, 0, 0, &c), 3);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.msgs[1].body, "8");
}

static void test_store_map_full_is_enospace(void **state)
{
    struct fx *f = *state;
    char path[320];
    char errmsg[CH_ERRMSG_SIZE];
    struct store *s;
    struct ch_msg m = msg("/big", "u", "", "");
    struct store_result r;
    bool skipped;
    char *big;

    snprintf(path, sizeof(path), "%s/small", f->dir);
    assert_int_equal(store_open(path, 256 * 1024, &s, errmsg), 0);
    big = calloc(1, 1024 * 1024);
    assert_non_null(big);
    m.body.p = big;
    m.body.n = 1024 * 1024;
    assert_int_equal(store_apply_publish(s, 1, 1, WINDOW, &m, 1, &r, &skipped),
                     CH_ENOSPACE);
    assert_true(strlen(store_errmsg(s)) > 0);
    assert_int_equal(store_applied_index(s), 0);
    /* nothing applied; the store keeps working */
    m.body.n = 10;
    assert_int_equal(store_apply_publish(s, 1, 1, WINDOW, &m, 1, &r, &skipped),
                     0);
    assert_int_equal(r.seq, 1);
    assert_int_equal(store_applied_index(s), 1);
    assert_int_equal(store_check(s), 0);
    assert_int_equal(store_sync(s), 0);
    free(big);
    store_close(s);
}

/* ---- de-dup ------------------------------------------------------------- */

static void test_store_dedup_within_window(void **state)
{
    struct fx *f = *state;
    struct store_result r1;
    struct store_result r2;
    struct collect c = {0};

    r1 = pub1(f, 1000, "/d", "alice", "msg-1", "original");
    assert_false(r1.is_dup);
    pub(f, 1001, "/d", "bob", "", "other");
    r2 = pub1(f, 1000 + WINDOW, "/d", "alice", "msg-1", "retry");
    assert_int_equal(r2.status, 0);
    assert_true(r2.is_dup);
    assert_int_equal(r2.seq, r1.seq);
    assert_int_equal(r2.time, 1000);
    assert_int_equal(topic_count(f->s, "/d"), 2);
    assert_int_equal(read_range(f->s, "/d", 1, 0, 0, &c), 3);
    assert_string_equal(c.msgs[0].body, "original");
    /* a duplicate keeps its original time: still a dup at the edge */
    r2 = pub1(f, 1000 + WINDOW, "/d", "alice", "msg-1", "retry 2");
    assert_true(r2.is_dup);
}

static void test_store_dedup_outside_window(void **state)
{
    struct fx *f = *state;
    struct store_result r1;
    struct store_result r2;
    struct store_result r3;

    r1 = pub1(f, 1000, "/d", "alice", "msg-1", "original");
    r2 = pub1(f, 1000 + WINDOW + 1, "/d", "alice", "msg-1", "anew");
    assert_false(r2.is_dup);
    assert_int_equal(r2.seq, r1.seq + 1);
    assert_int_equal(r2.time, 1000 + WINDOW + 1);
    assert_int_equal(topic_count(f->s, "/d"), 2);
    /* the new entry now de-dups with its own seq/time */
    r3 = pub1(f, 1000 + WINDOW + 2, "/d", "alice", "msg-1", "again");
    assert_true(r3.is_dup);
    assert_int_equal(r3.seq, r2.seq);
    assert_int_equal(r3.time, r2.time);
}

static void test_store_dedup_purge_uses_command_time(void **state)
{
    struct fx *f = *state;
    struct store_result r;

    pub(f, 1000, "/d", "u", "a", "1");
    /* an unrelated apply far later purges the old entry ... */
    pub(f, 5000, "/other", "u", "", "x");
    /* ... so even a command stamped within the old window (leader clock
     * went back) stores the id anew */
    r = pub1(f, 1001, "/d", "u", "a", "2");
    assert_false(r.is_dup);
    assert_int_equal(r.seq, 2);
}

static void test_store_dedup_within_batch(void **state)
{
    struct fx *f = *state;
    struct ch_msg m[4] = {
        msg("/d", "u", "x", "first"), msg("/d", "u", "x", "second"),
        msg("/d", "u", "y", "third"), msg("/d", "u", "x", "fourth")};
    struct store_result r[4];

    apply(f, 77, m, 4, r);
    assert_false(r[0].is_dup);
    assert_int_equal(r[0].seq, 1);
    assert_true(r[1].is_dup);
    assert_int_equal(r[1].seq, 1);
    assert_int_equal(r[1].time, 77);
    assert_false(r[2].is_dup);
    assert_int_equal(r[2].seq, 2);
    assert_true(r[3].is_dup);
    assert_int_equal(r[3].seq, 1);
    assert_int_equal(topic_count(f->s, "/d"), 2);
}

static void test_store_dedup_key_independence(void **state)
{
    struct fx *f = *state;
    struct ch_msg m[6] = {
        msg("/d", "alice", "1", "a"),  msg("/d", "bob", "1", "b"),
        msg("/e", "alice", "1", "c"),  msg("/d/sub", "alice", "1", "d"),
        msg("/d", "alice", "1:", "e"), msg("/d", "alice", "", "f")};
    struct store_result r[6];

    apply(f, 10, m, 6, r);
    for (int i = 0; i < 6; i++)
        assert_false(r[i].is_dup);
    /* the empty msgid never de-dups */
    apply(f, 11, &m[5], 1, r);
    assert_false(r[0].is_dup);
    assert_int_equal(topic_count(f->s, "/d"), 5);
    /* each pair de-dups on its own */
    apply(f, 12, m, 5, r);
    for (int i = 0; i < 5; i++)
        assert_true(r[i].is_dup);
    assert_int_equal(topic_count(f->s, "/d"), 5);
    assert_int_equal(topic_count(f->s, "/e"), 1);
    assert_int_equal(topic_count(f->s, "/d/sub"), 1);
}

static void test_store_dedup_longest_key(void **state)
{
    struct fx *f = *state;
    char path[256];
    char user[129];
    char id[129];
    struct store_result r;

    path[0] = '/';
    memset(path + 1, 'p', 254);
    path[255] = '\0';
    memset(user, 'u', 128);
    user[128] = '\0';
    memset(id, 'i', 128);
    id[128] = '\0';
    r = pub1(f, 1, path, user, id, "x");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.seq, 1);
    r = pub1(f, 2, path, user, id, "x");
    assert_true(r.is_dup);
}

/* ---- member directory --------------------------------------------------- */

static struct ch_member_change mset(uint64_t id, const char *raft,
                                    const char *http, int role)
{
    struct ch_member_change c;

    memset(&c, 0, sizeof(c));
    c.op = CH_MEMBER_SET;
    c.id = id;
    c.raft.p = raft;
    c.raft.n = strlen(raft);
    c.http.p = http;
    c.http.n = strlen(http);
    c.role = role;
    return c;
}

static struct ch_member_change mdel(uint64_t id)
{
    struct ch_member_change c;

    memset(&c, 0, sizeof(c));
    c.op = CH_MEMBER_DEL;
    c.id = id;
    return c;
}

/* Applies member changes at the next index; returns the store's code. */
static int members_apply(struct fx *f, const struct ch_member_change *c,
                         size_t n)
{
    bool skipped = true;
    int rv;

    f->index++;
    rv = store_apply_members(f->s, f->index, c, n, &skipped);
    assert_false(skipped);
    assert_int_equal(store_applied_index(f->s), f->index);
    return rv;
}

static int member_get(struct store *s, uint64_t id, struct store_member *out)
{
    struct store_txn *t;
    int rv;

    assert_int_equal(store_read_begin(s, &t), 0);
    rv = store_member_get(t, id, out);
    store_read_end(t);
    return rv;
}

#define MAX_MEMBERS 16
struct member_list {
    struct store_member m[MAX_MEMBERS];
    size_t n;
    size_t stop_after; /* return non-zero after this many (0: never) */
};

static int member_list_cb(void *arg, const struct store_member *m)
{
    struct member_list *l = arg;

    assert_true(l->n < MAX_MEMBERS);
    l->m[l->n++] = *m;
    return l->stop_after != 0 && l->n >= l->stop_after;
}

static size_t members_list(struct store *s, struct member_list *l)
{
    struct store_txn *t;

    l->n = 0;
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_members_list(t, member_list_cb, l), 0);
    store_read_end(t);
    return l->n;
}

static void assert_member(struct store *s, uint64_t id, const char *raft,
                          const char *http, int role)
{
    struct store_member m;

    memset(&m, 0x55, sizeof(m));
    assert_int_equal(member_get(s, id, &m), 0);
    assert_true(m.id == id);
    assert_string_equal(m.raft, raft);
    assert_string_equal(m.http, http);
    assert_int_equal(m.role, role);
}

/* Asserts both stores hold the same member directory. */
static void assert_same_members(struct store *a, struct store *b)
{
    struct member_list *la = calloc(1, sizeof(*la));
    struct member_list *lb = calloc(1, sizeof(*lb));

    assert_non_null(la);
    assert_non_null(lb);
    assert_int_equal(members_list(a, la), members_list(b, lb));
    for (size_t i = 0; i < la->n; i++) {
        assert_true(la->m[i].id == lb->m[i].id);
        assert_string_equal(la->m[i].raft, lb->m[i].raft);
        assert_string_equal(la->m[i].http, lb->m[i].http);
        assert_int_equal(la->m[i].role, lb->m[i].role);
    }
    free(la);
    free(lb);
}

static void test_store_members_set_replace_delete(void **state)
{
    struct fx *f = *state;
    struct ch_member_change c[3];
    struct store_member m;

    assert_int_equal(member_get(f->s, 1, &m), CH_ENOTFOUND);
    c[0] = mset(1, "10.0.0.1:9001", "n1:8080", 0);
    c[1] = mset(2, "10.0.0.2:9001", "n2:8080", 1);
    c[2] = mset(3, "10.0.0.3:9001", "", 2);
    assert_int_equal(members_apply(f, c, 3), 0);
    assert_member(f->s, 1, "10.0.0.1:9001", "n1:8080", 0);
    assert_member(f->s, 2, "10.0.0.2:9001", "n2:8080", 1);
    assert_member(f->s, 3, "10.0.0.3:9001", "", 2);

    /* replace, delete, delete of an unknown id: one entry, in order */
    c[0] = mset(1, "10.9.9.9:1", "elsewhere:81", 2);
    c[1] = mdel(2);
    c[2] = mdel(99);
    assert_int_equal(members_apply(f, c, 3), 0);
    assert_member(f->s, 1, "10.9.9.9:1", "elsewhere:81", 2);
    assert_int_equal(member_get(f->s, 2, &m), CH_ENOTFOUND);
    assert_int_equal(member_get(f->s, 99, &m), CH_ENOTFOUND);
    assert_member(f->s, 3, "10.0.0.3:9001", "", 2);

    /* later changes in one entry win: set, delete, set again */
    c[0] = mset(4, "a:1", "b:1", 0);
    c[1] = mdel(4);
    c[2] = mset(4, "a:2", "b:2", 1);
    assert_int_equal(members_apply(f, c, 3), 0);
    assert_member(f->s, 4, "a:2", "b:2", 1);
    c[0] = mset(5, "a:5", "b:5", 0);
    c[1] = mdel(5);
    assert_int_equal(members_apply(f, c, 2), 0);
    assert_int_equal(member_get(f->s, 5, &m), CH_ENOTFOUND);

    /* an empty entry still advances the applied index */
    assert_int_equal(members_apply(f, NULL, 0), 0);
    assert_int_equal(member_get(f->s, 0, &m), CH_ENOTFOUND);
    assert_int_equal(member_get(f->s, UINT64_MAX, &m), CH_ENOTFOUND);
}

static void test_store_members_list_in_id_order(void **state)
{
    struct fx *f = *state;
    /* ids whose little-endian bytes would sort differently */
    static const uint64_t ids[] = {300, 1,   UINT64_C(1) << 40,
                                   2,   256, UINT64_MAX};
    static const uint64_t sorted[] = {1,         2, 256, 300, UINT64_C(1) << 40,
                                      UINT64_MAX};
    struct ch_member_change c[6];
    struct member_list l = {0};
    char raft[6][32];

    assert_int_equal(members_list(f->s, &l), 0);
    for (size_t i = 0; i < 6; i++) {
        snprintf(raft[i], sizeof(raft[i]), "10.0.0.%zu:9000", i);
        c[i] = mset(ids[i], raft[i], "h:1", (int)(i % 3));
    }
    assert_int_equal(members_apply(f, c, 6), 0);
    assert_int_equal(members_list(f->s, &l), 6);
    for (size_t i = 0; i < 6; i++) {
        size_t k = 0;

        assert_true(l.m[i].id == sorted[i]);
        while (ids[k] != sorted[i])
            k++;
        assert_string_equal(l.m[i].raft, raft[k]);
        assert_string_equal(l.m[i].http, "h:1");
        assert_int_equal(l.m[i].role, (int)(k % 3));
    }
    /* the callback stops the listing */
    l.stop_after = 2;
    assert_int_equal(members_list(f->s, &l), 2);
    assert_true(l.m[1].id == 2);
}

static void test_store_members_reapply_is_skipped(void **state)
{
    struct fx *f = *state;
    struct ch_member_change c = mset(1, "10.0.0.1:1", "h:1", 0);
    struct ch_member_change other = mset(1, "10.0.0.2:2", "h:2", 1);
    struct ch_member_change del = mdel(1);
    struct store_result r;
    bool skipped = false;

    assert_int_equal(members_apply(f, &c, 1), 0);
    pub(f, 1, "/m", "u", "", "x"); /* a publish in between */
    assert_int_equal(store_applied_index(f->s), 2);
    for (uint64_t idx = 0; idx <= 2; idx++) {
        skipped = false;
        assert_int_equal(store_apply_members(f->s, idx, &other, 1, &skipped),
                         0);
        assert_true(skipped);
        skipped = false;
        assert_int_equal(store_apply_members(f->s, idx, &del, 1, &skipped), 0);
        assert_true(skipped);
    }
    assert_member(f->s, 1, "10.0.0.1:1", "h:1", 0);
    assert_int_equal(store_applied_index(f->s), 2);
    /* a member entry's index also stops a publish from re-applying */
    {
        struct ch_msg m = msg("/m", "u", "", "y");
        skipped = false;
        assert_int_equal(
            store_apply_publish(f->s, 1, 2, WINDOW, &m, 1, &r, &skipped), 0);
        assert_true(skipped);
    }
    assert_int_equal(topic_count(f->s, "/m"), 1);
}

static void test_store_members_invalid_change_refused(void **state)
{
    struct fx *f = *state;
    char raft_max[CH_MAX_ADDR_BYTES + 1];
    char http_max[CH_MAX_ADDR_BYTES + 1];
    char raft_long[CH_MAX_ADDR_BYTES + 2];
    char http_long[CH_MAX_ADDR_BYTES + 2];
    struct ch_member_change c[3];
    struct ch_member_change bad[6];
    struct store_member m;
    struct member_list l = {0};

    memset(raft_max, 'r', CH_MAX_ADDR_BYTES);
    raft_max[CH_MAX_ADDR_BYTES] = '\0';
    memset(http_max, 'h', CH_MAX_ADDR_BYTES);
    http_max[CH_MAX_ADDR_BYTES] = '\0';
    memset(raft_long, 'r', CH_MAX_ADDR_BYTES + 1);
    raft_long[CH_MAX_ADDR_BYTES + 1] = '\0';
    memset(http_long, 'h', CH_MAX_ADDR_BYTES + 1);
    http_long[CH_MAX_ADDR_BYTES + 1] = '\0';

    /* the longest fields fit exactly */
    c[0] = mset(1, raft_max, http_max, 2);
    assert_int_equal(members_apply(f, c, 1), 0);
    assert_member(f->s, 1, raft_max, http_max, 2);

    bad[0] = mset(20, raft_long, "h:1", 0);
    bad[1] = mset(20, "r:1", http_long, 0);
    bad[2] = mset(20, "r:1", "h:1", 0);
    bad[2].op = (enum ch_member_op)7;
    bad[3] = mset(20, "r:1", "h:1", 3);
    bad[4] = mset(20, "r:1", "h:1", -1);
    bad[5] = mset(0, "r:1", "h:1", 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* a good change before and after the bad one: none applied */
        c[0] = mset(10, "r:10", "h:10", 0);
        c[1] = bad[i];
        c[2] = mdel(1);
        if (members_apply(f, c, 3) != CH_EINVAL) /* index still advances */
            fail_msg("bad change %zu was applied", i);
        assert_true(strlen(store_errmsg(f->s)) > 0);
        assert_int_equal(member_get(f->s, 10, &m), CH_ENOTFOUND);
        assert_int_equal(member_get(f->s, 20, &m), CH_ENOTFOUND);
        assert_member(f->s, 1, raft_max, http_max, 2);
        assert_int_equal(members_list(f->s, &l), 1);
        /* the refused entry is done: applying it again is skipped */
        {
            bool skipped = false;
            assert_int_equal(
                store_apply_members(f->s, f->index, c, 3, &skipped), 0);
            assert_true(skipped);
        }
    }

    /* a DEL ignores its raft, http and role */
    c[0] = mdel(1);
    c[0].raft.p = raft_long;
    c[0].raft.n = strlen(raft_long);
    c[0].http.p = http_long;
    c[0].http.n = strlen(http_long);
    c[0].role = 9;
    assert_int_equal(members_apply(f, c, 1), 0);
    assert_int_equal(member_get(f->s, 1, &m), CH_ENOTFOUND);

    /* the store keeps working */
    c[0] = mset(2, "r:2", "h:2", 1);
    assert_int_equal(members_apply(f, c, 1), 0);
    assert_member(f->s, 2, "r:2", "h:2", 1);
}

static void test_store_members_survive_reopen(void **state)
{
    struct fx *f = *state;
    char errmsg[CH_ERRMSG_SIZE];
    struct ch_member_change c[2] = {mset(1, "10.0.0.1:9001", "n1:80", 0),
                                    mset(7, "10.0.0.7:9001", "n7:80", 1)};
    struct member_list l = {0};

    assert_int_equal(members_apply(f, c, 2), 0);
    pub(f, 1, "/p", "u", "", "x");
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->path, MAP_BYTES, &f->s, errmsg), 0);
    assert_int_equal(store_applied_index(f->s), f->index);
    assert_int_equal(members_list(f->s, &l), 2);
    assert_member(f->s, 1, "10.0.0.1:9001", "n1:80", 0);
    assert_member(f->s, 7, "10.0.0.7:9001", "n7:80", 1);
    assert_int_equal(topic_count(f->s, "/p"), 1);
}

/* A store made before the members database existed opens with it empty. */
static void test_store_members_added_to_older_store(void **state)
{
    struct fx *f = *state;
    char errmsg[CH_ERRMSG_SIZE];
    struct ch_member_change c = mset(3, "10.0.0.3:9001", "n3:80", 2);
    struct member_list l = {0};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    pub(f, 1, "/old", "u", "id", "x");
    store_close(f->s);
    f->s = NULL;
    /* remove the members database, as in a store of the previous build */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    assert_int_equal(mdb_env_open(env, f->path, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "members", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "members", 0, &dbi), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);

    assert_int_equal(store_open(f->path, MAP_BYTES, &f->s, errmsg), 0);
    assert_int_equal(store_applied_index(f->s), f->index);
    assert_int_equal(topic_count(f->s, "/old"), 1);
    assert_int_equal(members_list(f->s, &l), 0);
    assert_int_equal(members_apply(f, &c, 1), 0);
    assert_member(f->s, 3, "10.0.0.3:9001", "n3:80", 2);
}

/* ---- snapshots ---------------------------------------------------------- */

static void snapshot(struct store *s, struct ch_buf *out)
{
    struct store_snap *snap;

    ch_buf_init(out);
    assert_int_equal(store_snapshot_begin(s, &snap), 0);
    assert_int_equal(store_snapshot_write(snap, out), 0);
    store_snapshot_end(snap);
}

static struct store *open_second(struct fx *f, const char *name)
{
    char path[320];
    char errmsg[CH_ERRMSG_SIZE];
    struct store *s;

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_int_equal(store_open(path, MAP_BYTES, &s, errmsg), 0);
    return s;
}

/* Asserts both stores list the same topics with the same messages. */
static void assert_same_content(struct store *a, struct store *b)
{
    struct topic_list la = {0};
    struct topic_list lb = {0};
    struct collect *ca = calloc(1, sizeof(*ca));
    struct collect *cb = calloc(1, sizeof(*cb));

    assert_non_null(ca);
    assert_non_null(cb);
    assert_int_equal(list(a, "/", &la), list(b, "/", &lb));
    for (size_t i = 0; i < la.n; i++) {
        assert_string_equal(la.paths[i], lb.paths[i]);
        assert_int_equal(la.counts[i], lb.counts[i]);
        assert_int_equal(read_range(a, la.paths[i], 1, 0, 0, ca),
                         read_range(b, lb.paths[i], 1, 0, 0, cb));
        assert_int_equal(ca->n, cb->n);
        for (size_t j = 0; j < ca->n; j++) {
            const struct got_msg *x = &ca->msgs[j];
            const struct got_msg *y = &cb->msgs[j];
            assert_string_equal(x->path, y->path);
            assert_string_equal(x->user, y->user);
            assert_string_equal(x->app, y->app);
            assert_string_equal(x->msgid, y->msgid);
            assert_string_equal(x->header, y->header);
            assert_int_equal(x->body_n, y->body_n);
            assert_memory_equal(x->body, y->body, x->body_n);
            assert_int_equal(x->seq, y->seq);
            assert_int_equal(x->time, y->time);
        }
    }
    free(ca);
    free(cb);
}

static void test_store_snapshot_round_trip(void **state)
{
    struct fx *f = *state;
    struct store *s2;
    struct ch_buf snap;
    struct store_result r;
    uint64_t idx = 0;

    pub(f, 100, "/s", "u", "id-1", "one");
    pub(f, 101, "/s", "u", "", "two");
    pub(f, 102, "/s/t", "v", "id-2", "three");
    pub(f, 103, "/z", "w", "", "");
    snapshot(f->s, &snap);
    assert_int_equal(store_snapshot_index(snap.data, snap.len, &idx), 0);
    assert_int_equal(idx, f->index);

    s2 = open_second(f, "second");
    assert_int_equal(store_restore(s2, snap.data, snap.len), 0);
    assert_int_equal(store_applied_index(s2), f->index);
    /* the state came, the messages did not: they are holes until copied */
    {
        struct collect *c = calloc(1, sizeof(*c));
        int64_t next = 0;
        int64_t n_msgs = 0;
        uint64_t n_holes = 0;
        struct store_txn *t;

        assert_non_null(c);
        assert_int_equal(topic_count(s2, "/s"), 2);
        assert_int_equal(read_range_rv(s2, "/s", 1, 0, c, &next), CH_EMISSING);
        assert_int_equal(c->n, 0);
        assert_int_equal(next, 1);
        assert_int_equal(store_read_begin(s2, &t), 0);
        assert_int_equal(store_missing(t, &n_holes, &n_msgs), 0);
        store_read_end(t);
        assert_int_equal(n_holes, 3);
        assert_int_equal(n_msgs, 4);
        free(c);
    }
    assert_int_equal(store_copy_holes(s2, f->s, 1000, NULL), 0);
    assert_same_content(f->s, s2);

    /* restored de-dup state and counters behave like the original's */
    {
        struct ch_msg m = msg("/s", "u", "id-1", "again");
        bool skipped;
        assert_int_equal(store_apply_publish(s2, f->index + 1, 104, WINDOW, &m,
                                             1, &r, &skipped),
                         0);
        assert_true(r.is_dup);
        assert_int_equal(r.seq, 1);
        m = msg("/s", "u", "", "new");
        assert_int_equal(store_apply_publish(s2, f->index + 2, 104, WINDOW, &m,
                                             1, &r, &skipped),
                         0);
        assert_int_equal(r.seq, 3);
        m = msg("/brand-new", "u", "", "new");
        assert_int_equal(store_apply_publish(s2, f->index + 3, 104, WINDOW, &m,
                                             1, &r, &skipped),
                         0);
        assert_int_equal(r.seq, 1);
    }

    /* a store ahead of the snapshot is not its prefix: refused, unchanged */
    assert_int_equal(store_restore(s2, snap.data, snap.len), CH_ECORRUPT);
    assert_int_equal(store_applied_index(s2), f->index + 3);
    assert_int_equal(topic_count(s2, "/brand-new"), 1);

    /* what was restored and filled survives a reopen */
    store_close(s2);
    s2 = open_second(f, "second");
    assert_int_equal(store_applied_index(s2), f->index + 3);
    assert_int_equal(topic_count(s2, "/s"), 3);
    store_close(s2);
    ch_buf_free(&snap);
}

static void test_store_snapshot_of_empty_store(void **state)
{
    struct fx *f = *state;
    struct store *s2;
    struct ch_buf snap;
    uint64_t idx = 99;

    snapshot(f->s, &snap);
    assert_int_equal(store_snapshot_index(snap.data, snap.len, &idx), 0);
    assert_int_equal(idx, 0);
    s2 = open_second(f, "second");
    pub(f, 1, "/x", "u", "", "x"); /* f->s changes, snap does not */
    assert_int_equal(store_restore(s2, snap.data, snap.len), 0);
    assert_int_equal(store_applied_index(s2), 0);
    assert_int_equal(topic_count(s2, "/x"), 0);
    store_close(s2);
    ch_buf_free(&snap);
}

static void test_store_snapshot_is_a_consistent_view(void **state)
{
    struct fx *f = *state;
    struct store_snap *sn;
    struct store *s2;
    struct ch_buf snap;
    uint64_t idx;

    pub(f, 1, "/v", "u", "", "before");
    assert_int_equal(store_snapshot_begin(f->s, &sn), 0);
    /* writes after begin are not in the snapshot */
    pub(f, 2, "/v", "u", "", "after");
    pub(f, 3, "/w", "u", "", "after");
    ch_buf_init(&snap);
    assert_int_equal(store_snapshot_write(sn, &snap), 0);
    store_snapshot_end(sn);
    assert_int_equal(store_snapshot_index(snap.data, snap.len, &idx), 0);
    assert_int_equal(idx, 1);
    s2 = open_second(f, "second");
    assert_int_equal(store_restore(s2, snap.data, snap.len), 0);
    assert_int_equal(topic_count(s2, "/v"), 1);
    assert_int_equal(topic_count(s2, "/w"), 0);
    store_close(s2);
    ch_buf_free(&snap);
}

static void test_store_restore_corrupt_leaves_store_unchanged(void **state)
{
    struct fx *f = *state;
    struct store *s2;
    struct ch_buf snap;
    struct ch_buf before;
    struct ch_buf after;
    unsigned char *copy;
    uint64_t idx;

    pub(f, 1, "/c", "u", "id", "snapshot content");
    pub(f, 2, "/c/d", "u", "", "more");
    snapshot(f->s, &snap);

    /* the target has content of its own that must survive */
    s2 = open_second(f, "second");
    {
        struct ch_msg m = msg("/mine", "me", "", "keep me");
        struct store_result r;
        bool skipped;
        assert_int_equal(
            store_apply_publish(s2, 7, 1, WINDOW, &m, 1, &r, &skipped), 0);
    }
    snapshot(s2, &before);
    copy = malloc(snap.len);
    assert_non_null(copy);

    /* every truncation */
    for (size_t n = 0; n < snap.len; n++) {
        memcpy(copy, snap.data, n);
        assert_int_equal(store_restore(s2, copy, n), CH_ECORRUPT);
    }
    /* every single-bit flip */
    for (size_t i = 0; i < snap.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, snap.data, snap.len);
            copy[i] ^= (unsigned char)(1u << bit);
            assert_int_equal(store_restore(s2, copy, snap.len), CH_ECORRUPT);
        }
    }
    assert_int_equal(store_restore(s2, NULL, 0), CH_ECORRUPT);
    assert_int_equal(store_snapshot_index("short", 5, &idx), CH_ECORRUPT);
    memcpy(copy, snap.data, snap.len);
    copy[0] ^= 1;
    assert_int_equal(store_snapshot_index(copy, snap.len, &idx), CH_ECORRUPT);

    assert_int_equal(store_applied_index(s2), 7);
    snapshot(s2, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    assert_int_equal(topic_count(s2, "/mine"), 1);
    assert_int_equal(topic_count(s2, "/c"), 0);

    free(copy);
    store_close(s2);
    ch_buf_free(&snap);
    ch_buf_free(&before);
    ch_buf_free(&after);
}

static void test_store_snapshot_appends_to_buffer(void **state)
{
    struct fx *f = *state;
    struct store_snap *sn;
    struct store *s2;
    struct ch_buf buf;
    uint64_t idx;

    pub(f, 1, "/x", "u", "", "x");
    ch_buf_init(&buf);
    assert_int_equal(ch_buf_append(&buf, "prefix", 6), 0);
    assert_int_equal(store_snapshot_begin(f->s, &sn), 0);
    assert_int_equal(store_snapshot_write(sn, &buf), 0);
    store_snapshot_end(sn);
    assert_memory_equal(buf.data, "prefix", 6);
    assert_int_equal(store_snapshot_index(buf.data + 6, buf.len - 6, &idx), 0);
    assert_int_equal(idx, 1);
    s2 = open_second(f, "second");
    assert_int_equal(store_restore(s2, buf.data + 6, buf.len - 6), 0);
    assert_int_equal(topic_count(s2, "/x"), 1);
    store_close(s2);
    ch_buf_free(&buf);
}

static void test_store_snapshot_carries_members(void **state)
{
    struct fx *f = *state;
    struct ch_member_change c[3] = {mset(1, "10.0.0.1:9001", "n1:80", 0),
                                    mset(2, "10.0.0.2:9001", "n2:80", 1),
                                    mset(UINT64_C(1) << 33, "", "", 2)};
    struct ch_member_change mine = mset(50, "10.5.5.5:1", "mine:1", 0);
    struct member_list l = {0};
    struct ch_buf snap;
    struct ch_buf plain;
    struct store *s2;
    bool skipped;

    /* a snapshot of a store with no members (as from an older build) */
    pub(f, 1, "/s", "u", "", "one");
    snapshot(f->s, &plain);

    assert_int_equal(members_apply(f, c, 3), 0);
    pub(f, 2, "/s", "u", "", "two");
    snapshot(f->s, &snap);

    /* into a fresh store */
    s2 = open_second(f, "second");
    assert_int_equal(store_restore(s2, snap.data, snap.len), 0);
    assert_int_equal(store_applied_index(s2), f->index);
    assert_same_members(f->s, s2);
    assert_int_equal(store_copy_holes(s2, f->s, 1000, NULL), 0);
    assert_same_content(f->s, s2);
    assert_member(s2, UINT64_C(1) << 33, "", "", 2);
    store_close(s2);

    /* over a store (behind the snapshot) with members of its own:
     * replaced, not merged */
    s2 = open_second(f, "third");
    assert_int_equal(store_apply_members(s2, 1, &mine, 1, &skipped), 0);
    assert_int_equal(members_list(s2, &l), 1);
    assert_int_equal(store_restore(s2, snap.data, snap.len), 0);
    assert_same_members(f->s, s2);
    /* and survives a reopen */
    store_close(s2);
    s2 = open_second(f, "third");
    assert_same_members(f->s, s2);
    store_close(s2);

    /* a snapshot without members restores an empty directory */
    s2 = open_second(f, "fourth");
    assert_int_equal(store_restore(s2, plain.data, plain.len), 0);
    assert_int_equal(members_list(s2, &l), 0);
    assert_int_equal(topic_count(s2, "/s"), 1);

    store_close(s2);
    ch_buf_free(&snap);
    ch_buf_free(&plain);
}

/* Publishes n messages of `size` bytes to path in batches of 1000 (no
 * publisher ids: no de-dup entries). */
static void fill_topic(struct fx *f, const char *path, size_t n, size_t size)
{
    static struct ch_msg batch[1000];
    static struct store_result res[1000];
    char *body = malloc(size + 1);

    assert_non_null(body);
    memset(body, 'x', size);
    body[size] = '\0';
    while (n > 0) {
        size_t k = n < 1000 ? n : 1000;
        for (size_t i = 0; i < k; i++)
            batch[i] = msg(path, "u", "", body);
        apply(f, 100, batch, k, res);
        n -= k;
    }
    free(body);
}

/* A snapshot carries the state, not the messages: 1k and 100k messages
 * make snapshots of the same size (the whole-store format grew 100x). */
static void test_store_snapshot_size_independent_of_messages(void **state)
{
    struct fx *f = *state;
    struct ch_buf small;
    struct ch_buf big;

    fill_topic(f, "/size/a", 500, 100);
    fill_topic(f, "/size/b", 500, 100);
    snapshot(f->s, &small);
    fill_topic(f, "/size/a", 49500, 100);
    fill_topic(f, "/size/b", 49500, 100);
    snapshot(f->s, &big);
    assert_int_equal(topic_count(f->s, "/size/a"), 50000);
    /* same records, only the counters' values differ */
    assert_true(big.len <= small.len + 64);
    assert_true(big.len < 2048);
    ch_buf_free(&small);
    ch_buf_free(&big);
}

/* A store that applied part of the history keeps its messages; what the
 * snapshot holds beyond them become holes; reads stop at a hole with
 * CH_EMISSING, never skipping it; fills close them. */
static void test_store_restore_over_prefix_notes_holes(void **state)
{
    struct fx *f = *state;
    struct collect *c = calloc(1, sizeof(*c));
    struct ch_buf s1;
    struct ch_buf s2;
    struct store *b;
    struct store_hole h;
    struct store_txn *t;
    int64_t next = 0;
    int64_t copied = 0;

    assert_non_null(c);
    for (int i = 0; i < 5; i++)
        pub(f, 100, "/a", "u", "", "a");
    for (int i = 0; i < 3; i++)
        pub(f, 100, "/b", "u", "", "b");
    snapshot(f->s, &s1);
    b = open_second(f, "b");
    assert_int_equal(store_restore(b, s1.data, s1.len), 0);
    assert_int_equal(store_copy_holes(b, f->s, 2, &copied), 0);
    assert_int_equal(copied, 8);

    for (int i = 0; i < 4; i++)
        pub(f, 101, "/a", "u", "", "more");
    pub(f, 101, "/c", "u", "", "c1");
    pub(f, 101, "/c", "u", "", "c2");
    snapshot(f->s, &s2);
    assert_int_equal(store_restore(b, s2.data, s2.len), 0);
    assert_int_equal(store_applied_index(b), f->index);

    /* /a: 1..5 kept, 6..9 missing; /b complete; /c 1..2 missing */
    assert_int_equal(read_range_rv(b, "/a", 1, 0, c, &next), CH_EMISSING);
    assert_int_equal(c->n, 5);
    assert_int_equal(next, 6);
    assert_int_equal(read_range_rv(b, "/a", 7, 0, c, &next), CH_EMISSING);
    assert_int_equal(c->n, 0);
    /* a read limited before the hole is an ordinary read */
    assert_int_equal(read_range_rv(b, "/a", 2, 3, c, &next), 0);
    assert_int_equal(c->n, 3);
    assert_int_equal(read_range_rv(b, "/b", 1, 0, c, &next), 0);
    assert_int_equal(c->n, 3);
    assert_int_equal(read_range_rv(b, "/c", 1, 0, c, &next), CH_EMISSING);
    assert_int_equal(topic_count(b, "/c"), 2);

    assert_int_equal(store_read_begin(b, &t), 0);
    assert_int_equal(store_hole_first(t, &h), 0);
    store_read_end(t);
    assert_string_equal(h.path, "/a");
    assert_int_equal(h.from_seq, 6);
    assert_int_equal(h.to_seq, 9);

    /* fills must start at a hole and stay inside it: nothing stored */
    {
        struct ch_msg m[2] = {msg("/a", "u", "", "x"), msg("/a", "u", "", "y")};
        m[0].seq = 7;
        m[1].seq = 8;
        assert_int_equal(store_fill(b, "/a", 2, m, 1), CH_EINVAL);
        m[0].seq = 9;
        m[1].seq = 10;
        assert_int_equal(store_fill(b, "/a", 2, m, 2), CH_EINVAL);
        m[0].seq = 6;
        m[1].seq = 8;
        assert_int_equal(store_fill(b, "/a", 2, m, 2), CH_EINVAL);
        m[0].seq = 1;
        assert_int_equal(store_fill(b, "/b", 2, m, 1), CH_EINVAL);
        assert_int_equal(read_range_rv(b, "/a", 1, 0, c, &next), CH_EMISSING);
        assert_int_equal(c->n, 5);
    }

    assert_int_equal(store_copy_holes(b, f->s, 3, &copied), 0);
    assert_int_equal(copied, 6);
    assert_same_content(f->s, b);
    assert_int_equal(store_read_begin(b, &t), 0);
    assert_int_equal(store_hole_first(t, &h), CH_ENOTFOUND);
    store_read_end(t);

    /* a store whose topic ids differ is not a prefix: refused */
    store_close(b);
    b = open_second(f, "other");
    {
        struct ch_msg m = msg("/c", "u", "", "first here");
        struct store_result r;
        bool skipped;
        assert_int_equal(
            store_apply_publish(b, 1, 100, WINDOW, &m, 1, &r, &skipped), 0);
    }
    assert_int_equal(store_restore(b, s2.data, s2.len), CH_ECORRUPT);
    assert_int_equal(store_applied_index(b), 1);
    store_close(b);
    ch_buf_free(&s1);
    ch_buf_free(&s2);
    free(c);
}

/* Same checksum as snapshot.c, to forge snapshots that pass it. */
static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static void reseal(unsigned char *p, size_t len)
{
    uint64_t h = fnv1a64(p, len - 8);

    for (int i = 0; i < 8; i++) {
        p[len - 8 + (size_t)i] = (unsigned char)h;
        h >>= 8;
    }
}

/* A member record that passes the checksum but not validation (as from a
 * buggy writer) is refused as a whole: the target keeps its content. */
static void test_store_restore_rejects_bad_member_record(void **state)
{
    static const char raft[] = "10.7.7.7:7777";
    struct fx *f = *state;
    struct ch_member_change c = mset(9, raft, "n9:80", 1);
    struct ch_member_change mine = mset(50, "10.5.5.5:1", "mine:1", 0);
    struct ch_buf snap;
    struct ch_buf before;
    struct ch_buf after;
    unsigned char *copy;
    unsigned char *at = NULL;
    struct store *s2;
    bool skipped;
    size_t rec; /* offset of the member record's role byte */

    pub(f, 1, "/s", "u", "", "one");
    assert_int_equal(members_apply(f, &c, 1), 0);
    snapshot(f->s, &snap);
    for (size_t i = 0; i + sizeof(raft) - 1 <= snap.len; i++) {
        if (memcmp(snap.data + i, raft, sizeof(raft) - 1) == 0) {
            at = (unsigned char *)snap.data + i;
            break;
        }
    }
    assert_non_null(at);
    rec = (size_t)(at - (unsigned char *)snap.data) - 3;
    assert_int_equal((unsigned char)snap.data[rec], 1);
    assert_int_equal((unsigned char)snap.data[rec + 1], sizeof(raft) - 1);

    s2 = open_second(f, "second");
    pub(f, 2, "/other", "u", "", "x");
    assert_int_equal(store_apply_members(s2, 3, &mine, 1, &skipped), 0);
    snapshot(s2, &before);
    copy = malloc(snap.len);
    assert_non_null(copy);

    /* the untouched copy restores (sanity check of the forging) */
    memcpy(copy, snap.data, snap.len);
    reseal(copy, snap.len);
    assert_memory_equal(copy, snap.data, snap.len);

    /* role out of range */
    memcpy(copy, snap.data, snap.len);
    copy[rec] = 3;
    reseal(copy, snap.len);
    assert_int_equal(store_restore(s2, copy, snap.len), CH_ECORRUPT);
    /* lengths that disagree with the value size */
    memcpy(copy, snap.data, snap.len);
    copy[rec + 1]++;
    reseal(copy, snap.len);
    assert_int_equal(store_restore(s2, copy, snap.len), CH_ECORRUPT);
    memcpy(copy, snap.data, snap.len);
    copy[rec + 2]--;
    reseal(copy, snap.len);
    assert_int_equal(store_restore(s2, copy, snap.len), CH_ECORRUPT);
    /* member id 0 (key is the 8 bytes before the value's bin8 header) */
    memcpy(copy, snap.data, snap.len);
    assert_int_equal(copy[rec - 3], 9);
    copy[rec - 3] = 0;
    reseal(copy, snap.len);
    assert_int_equal(store_restore(s2, copy, snap.len), CH_ECORRUPT);

    assert_int_equal(store_applied_index(s2), 3);
    snapshot(s2, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    assert_member(s2, 50, "10.5.5.5:1", "mine:1", 0);

    free(copy);
    store_close(s2);
    ch_buf_free(&snap);
    ch_buf_free(&before);
    ch_buf_free(&after);
}

/* A topic record that passes the checksum but breaks its invariants (found
 * by fuzz_snapshot: a restored record with a broken count made the next
 * publish trip an assertion) is refused as a whole. */
static void test_store_restore_rejects_bad_topic_record(void **state)
{
    static const char path[] = "/topic-rec";
    struct fx *f = *state;
    struct ch_buf snap;
    struct ch_buf before;
    struct ch_buf after;
    unsigned char *copy;
    unsigned char *rec = NULL;
    struct store *s2;
    static const struct {
        size_t field; /* offset in the 40-byte record */
        int64_t value;
    } bad[] = {
        {0, 0},          /* topic id 0 */
        {8, 0},          /* first sequenceId 0 */
        {16, -5},        /* last below first - 1 */
        {16, INT64_MAX}, /* no room for the next id */
        {24, -1},        /* negative count */
        {24, 3},         /* more messages than ids */
        {32, -1},        /* negative bytes */
    };

    pub(f, 1, path, "u", "", "one");
    pub(f, 2, path, "u", "", "two");
    snapshot(f->s, &snap);
    /* The record follows its key: bin8 header, the path, bin8 header. */
    for (size_t i = 0; i + sizeof(path) - 1 + 2 + 40 <= snap.len; i++) {
        if (memcmp(snap.data + i, path, sizeof(path) - 1) == 0 &&
            (unsigned char)snap.data[i + sizeof(path) - 1] == 0xc4 &&
            (unsigned char)snap.data[i + sizeof(path)] == 40) {
            rec = (unsigned char *)snap.data + i + sizeof(path) + 1;
            break;
        }
    }
    assert_non_null(rec);
    s2 = open_second(f, "second");
    snapshot(s2, &before);
    copy = malloc(snap.len);
    assert_non_null(copy);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        size_t at = (size_t)(rec - (unsigned char *)snap.data) + bad[k].field;
        uint64_t v = (uint64_t)bad[k].value;

        memcpy(copy, snap.data, snap.len);
        for (int b = 7; b >= 0; b--) {
            copy[at + (size_t)b] = (unsigned char)v;
            v >>= 8;
        }
        reseal(copy, snap.len);
        if (store_restore(s2, copy, snap.len) != CH_ECORRUPT)
            fail_msg("bad topic record %zu was restored", k);
    }
    /* The untouched copy restores: the forging is right. */
    memcpy(copy, snap.data, snap.len);
    reseal(copy, snap.len);
    snapshot(s2, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    assert_int_equal(store_restore(s2, copy, snap.len), 0);

    free(copy);
    store_close(s2);
    ch_buf_free(&snap);
    ch_buf_free(&before);
    ch_buf_free(&after);
}

static void test_store_open_bad_dir(void **state)
{
    struct fx *f = *state;
    char path[320];
    char errmsg[CH_ERRMSG_SIZE] = "";
    struct store *s = NULL;
    FILE *fp;

    /* a regular file where the directory should be */
    snprintf(path, sizeof(path), "%s/file", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_not_equal(store_open(path, MAP_BYTES, &s, errmsg), 0);
    assert_null(s);
    assert_true(strlen(errmsg) > 0);
}

/* ---- damage on disk ----------------------------------------------------- */

enum tamper { FLIP_BODY_BYTE, DELETE_RECORD };

/* With the store closed, changes the record (topic id 1, seq) behind the
 * store's back through LMDB itself, as a damaged disk would (a flipped
 * bit that LMDB does not notice, or a lost record), then reopens it. */
static void tamper(struct fx *f, int64_t seq, enum tamper how)
{
    unsigned char key[16] = {0};
    char errmsg[CH_ERRMSG_SIZE];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {.mv_size = sizeof key, .mv_data = key};
    MDB_val v;
    unsigned char copy[4096];

    store_close(f->s);
    f->s = NULL;
    key[7] = 1; /* topic id 1, big-endian */
    for (int i = 0; i < 8; i++)
        key[15 - i] = (unsigned char)((uint64_t)seq >> (8 * i));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    assert_int_equal(mdb_env_open(env, f->path, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    if (how == DELETE_RECORD) {
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    } else {
        assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
        assert_true(v.mv_size <= sizeof copy && v.mv_size > 10);
        memcpy(copy, v.mv_data, v.mv_size);
        copy[v.mv_size - 8] ^= 0x10; /* in the body: still decodes */
        v.mv_data = copy;
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(store_open(f->path, MAP_BYTES, &f->s, errmsg), 0);
}

/* A record whose bytes changed on disk is never passed: the read stops
 * before it (CH_EMISSING, as at a hole) and reports the damage once. The
 * store is then marked; at the next open the damaged file is moved aside
 * and the store starts empty (the node rebuilds it from raft and peers). */
static void test_store_damaged_record_not_served(void **state)
{
    struct fx *f = *state;
    struct collect *c = calloc(1, sizeof(*c));
    struct store_damage d;
    char errmsg[CH_ERRMSG_SIZE];
    char moved[400];
    bool rebuilt = true;
    int64_t next = 0;

    assert_non_null(c);
    for (int i = 0; i < 6; i++) {
        char body[32];
        snprintf(body, sizeof body, "message number %d", i + 1);
        pub(f, 100, "/a", "u", "", body);
    }
    tamper(f, 4, FLIP_BODY_BYTE);
    assert_int_equal(read_range_rv(f->s, "/a", 1, 0, c, &next), CH_EMISSING);
    assert_int_equal(c->n, 3);
    assert_int_equal(next, 4);
    assert_string_equal(c->msgs[2].body, "message number 3");
    /* read again: the same answer, one report */
    assert_int_equal(read_range_rv(f->s, "/a", 2, 0, c, &next), CH_EMISSING);
    assert_true(store_damage_take(f->s, &d));
    assert_false(store_damage_take(f->s, &d));
    assert_string_equal(d.path, "/a");
    assert_int_equal(d.from_seq, 4);
    assert_int_equal(d.to_seq, 4);
    assert_string_equal(d.why, "checksum mismatch");
    /* reads after the damage are refused too; before it they work */
    assert_int_equal(read_range_rv(f->s, "/a", 5, 0, c, &next), 0);
    assert_int_equal(c->n, 2);
    assert_int_equal(read_range_rv(f->s, "/a", 1, 3, c, &next), 0);

    /* without a mark, nothing moves */
    assert_int_equal(store_rebuild_prepare(f->path, &rebuilt, errmsg), 0);
    assert_false(rebuilt);
    assert_int_equal(store_rebuild_mark(f->s, "test"), 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_rebuild_prepare(f->path, &rebuilt, errmsg), 0);
    assert_true(rebuilt);
    snprintf(moved, sizeof moved, "%s/data.mdb.damaged", f->path);
    assert_int_equal(access(moved, F_OK), 0);
    assert_int_equal(store_open(f->path, MAP_BYTES, &f->s, errmsg), 0);
    assert_int_equal(store_applied_index(f->s), 0);
    assert_int_equal(topic_count(f->s, "/a"), 0);
    assert_int_equal(store_rebuild_prepare(f->path, &rebuilt, errmsg), 0);
    assert_false(rebuilt); /* the mark is gone */
    free(c);
}

/* A record missing from the middle or the end of a topic is damage too:
 * the read never jumps over it or ends early as if the topic were
 * shorter. */
static void test_store_missing_records_are_damage(void **state)
{
    struct fx *f = *state;
    struct collect *c = calloc(1, sizeof(*c));
    struct store_damage d;
    int64_t next = 0;

    assert_non_null(c);
    for (int i = 0; i < 6; i++)
        pub(f, 100, "/a", "u", "", "x");
    tamper(f, 3, DELETE_RECORD);
    tamper(f, 6, DELETE_RECORD);
    assert_int_equal(read_range_rv(f->s, "/a", 1, 0, c, &next), CH_EMISSING);
    assert_int_equal(c->n, 2);
    assert_int_equal(next, 3);
    assert_true(store_damage_take(f->s, &d));
    assert_int_equal(d.from_seq, 3);
    assert_int_equal(d.to_seq, 3);
    assert_int_equal(read_range_rv(f->s, "/a", 4, 0, c, &next), CH_EMISSING);
    assert_int_equal(c->n, 2); /* 4, 5; then 6 is missing at the end */
    assert_true(store_damage_take(f->s, &d));
    assert_int_equal(d.from_seq, 6);
    assert_int_equal(d.to_seq, 6);
    /* a read limited before the damage is an ordinary read */
    assert_int_equal(read_range_rv(f->s, "/a", 4, 2, c, &next), 0);
    assert_int_equal(c->n, 2);
    free(c);
}

/* The scrub reads everything in slices and reports damage no client read
 * asked for; it ends, counting what it checked. */
static void test_store_scrub_finds_damage(void **state)
{
    struct fx *f = *state;
    struct store_scrub sc;
    struct store_damage d;
    int steps = 0;

    fill_topic(f, "/a", 2500, 10);
    fill_topic(f, "/b", 10, 10);
    tamper(f, 2000, FLIP_BODY_BYTE);
    memset(&sc, 0, sizeof sc);
    while (!sc.is_done) {
        assert_int_equal(store_scrub_step(f->s, &sc, 300, 1 << 20), 0);
        assert_true(++steps < 100);
    }
    assert_true(steps >= 7); /* sliced: 300 at a time */
    assert_int_equal(sc.records, 1999 + 10);
    assert_int_equal(sc.unread, 1);
    assert_true(store_damage_take(f->s, &d));
    assert_string_equal(d.path, "/a");
    assert_int_equal(d.from_seq, 2000);
    assert_false(store_damage_take(f->s, &d));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_store_append_and_read_all),
        T(test_store_read_forms),
        T(test_store_unknown_topic),
        T(test_store_seqs_gapless_and_per_topic),
        T(test_store_topic_meta),
        T(test_store_topics_list_prefix),
        T(test_store_topics_list_empty_store),
        T(test_store_reopen_keeps_everything),
        T(test_store_reapply_is_noop),
        T(test_store_set_applied),
        T(test_store_invalid_message_in_batch),
        T(test_store_map_full_is_enospace),
        T(test_store_dedup_within_window),
        T(test_store_dedup_outside_window),
        T(test_store_dedup_purge_uses_command_time),
        T(test_store_dedup_within_batch),
        T(test_store_dedup_key_independence),
        T(test_store_dedup_longest_key),
        T(test_store_snapshot_round_trip),
        T(test_store_snapshot_of_empty_store),
        T(test_store_snapshot_is_a_consistent_view),
        T(test_store_restore_corrupt_leaves_store_unchanged),
        T(test_store_snapshot_appends_to_buffer),
        T(test_store_members_set_replace_delete),
        T(test_store_members_list_in_id_order),
        T(test_store_members_reapply_is_skipped),
        T(test_store_members_invalid_change_refused),
        T(test_store_members_survive_reopen),
        T(test_store_members_added_to_older_store),
        T(test_store_snapshot_carries_members),
        T(test_store_restore_rejects_bad_member_record),
        T(test_store_restore_rejects_bad_topic_record),
        T(test_store_snapshot_size_independent_of_messages),
        T(test_store_restore_over_prefix_notes_holes),
        T(test_store_open_bad_dir),
        T(test_store_damaged_record_not_served),
        T(test_store_missing_records_are_damage),
        T(test_store_scrub_finds_damage),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
