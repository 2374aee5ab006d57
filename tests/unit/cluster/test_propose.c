/* Unit tests of the proposal path (src/cluster/propose.c) on whole cluster
 * objects over libraft's fixture (tests/lib/cluster_fixture.h): many
 * publishes become one raft entry; the in-flight cap and how batches grow
 * beyond it; the batch limits; the pending-publishes limit; a timed-out
 * publish is answered once; leadership lost mid-flight is "outcome
 * unknown"; publishing from inside a publish callback; nothing is handed
 * to raft from inside a raft callback (asserted: the process aborts);
 * shutdown fails what was never proposed; every allocation failing in
 * turn. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cluster_fixture.h"
#include "lib/heap.h"
#include "lib/loop.h"

#define MAX_RECS 5000
#define STEPS 20000

/* What a publish callback saw. */
struct rec {
    unsigned n_fired;
    unsigned order; /* when it fired, counted over the test */
    int status;
    struct store_result res;
};

struct fx {
    struct cluster_fx cx;
    struct rec recs[MAX_RECS];
    unsigned n_fired;     /* callbacks so far */
    unsigned n_republish; /* chain: publish again from the callback */
    unsigned n_counted;   /* callbacks of count_cb */
    unsigned n_count_ok;
};

static struct fx *fx_of(void **state)
{
    return *state;
}

static int setup(void **state)
{
    return cf_setup(state, sizeof(struct fx));
}

static void start(struct fx *f, unsigned timeout_ms)
{
    struct cf_options o = {3, 3, timeout_ms};

    cf_start(&f->cx, &o);
}

static struct cluster *node(struct fx *f, unsigned i)
{
    return cf_node(&f->cx, i);
}

static struct ch_msg mk(const char *path, const char *msgid, const char *body,
                        size_t body_n)
{
    struct ch_msg m;

    memset(&m, 0, sizeof m);
    m.path.p = path;
    m.path.n = strlen(path);
    m.user.p = "u";
    m.user.n = 1;
    m.app.p = "app";
    m.app.n = 3;
    m.msgid.p = msgid;
    m.msgid.n = strlen(msgid);
    m.body.p = body;
    m.body.n = body_n;
    return m;
}

static struct fx *cb_fx; /* the test's fixture, for callbacks */

static void pub_cb(void *arg, int status, const struct store_result *res)
{
    struct rec *r = arg;
    struct fx *f = cb_fx;

    r->n_fired++;
    assert_int_equal(r->n_fired, 1); /* exactly once */
    r->order = f->n_fired++;
    r->status = status;
    if (res != NULL)
        r->res = *res;
    if (f->n_republish > 0) {
        struct ch_msg m = mk("/chain", "", "x", 1);
        unsigned i = f->n_fired + 100;

        f->n_republish--;
        /* Inside a callback (maybe a raft callback): only queued. */
        assert_int_equal(cluster_publish(node(f, 0), &m, pub_cb, &f->recs[i]),
                         0);
    }
}

static void count_cb(void *arg, int status, const struct store_result *res)
{
    struct fx *f = arg;

    (void)res;
    f->n_counted++;
    if (status == 0)
        f->n_count_ok++;
}

static void publish(struct fx *f, unsigned i, const char *path)
{
    struct ch_msg m = mk(path, "", "body", 4);

    assert_int_equal(cluster_publish(node(f, 0), &m, pub_cb, &f->recs[i]), 0);
}

struct fired_wait {
    struct fx *f;
    unsigned n;
};

static bool fired(void *arg)
{
    struct fired_wait *w = arg;
    return w->f->n_fired >= w->n;
}

static void wait_fired(struct fx *f, unsigned n)
{
    struct fired_wait w = {f, n};

    assert_true(cf_step_until(&f->cx, fired, &w, STEPS));
}

static int64_t topic_count(struct cluster *c, const char *path)
{
    struct store_txn *t;
    struct store_topic info;
    int64_t n = 0;

    assert_int_equal(store_read_begin(cluster_store(c), &t), 0);
    if (store_topic_get(t, path, strlen(path), &info) == 0)
        n = info.count;
    store_read_end(t);
    return n;
}

struct count_wait {
    struct fx *f;
    const char *path;
    int64_t n;
};

static bool all_stored(void *arg)
{
    struct count_wait *w = arg;

    for (unsigned i = 0; i < w->f->cx.n; i++) {
        if (topic_count(node(w->f, i), w->path) < w->n)
            return false;
    }
    return true;
}

static bool same_applied(void *arg)
{
    struct fx *f = arg;
    uint64_t applied = store_applied_index(cluster_store(node(f, 0)));

    for (unsigned i = 1; i < f->cx.n; i++) {
        if (store_applied_index(cluster_store(node(f, i))) != applied)
            return false;
    }
    return true;
}

/* ---- tests -------------------------------------------------------------- */

/* Publishes of one loop turn become ONE raft entry; answers come in order
 * with consecutive sequence ids; every replica stores them. */
static void test_propose_one_entry_per_turn(void **state)
{
    struct fx *f = fx_of(state);
    uint64_t before;
    struct count_wait cw = {f, "/b", 10};

    cb_fx = f;
    start(f, 0);
    before = node(f, 0)->metrics.batches_proposed;
    for (unsigned i = 0; i < 10; i++)
        publish(f, i, "/b");
    assert_int_equal(cluster_pending(node(f, 0)), 10);
    assert_int_equal(f->n_fired, 0); /* never from inside the call */
    wait_fired(f, 10);
    assert_int_equal(node(f, 0)->metrics.batches_proposed - before, 1);
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(f->recs[i].status, 0);
        assert_int_equal(f->recs[i].order, i);
        assert_int_equal(f->recs[i].res.seq, (int64_t)i + 1);
        assert_false(f->recs[i].res.is_dup);
    }
    assert_int_equal(cluster_pending(node(f, 0)), 0);
    assert_true(cf_step_until(&f->cx, all_stored, &cw, STEPS));
}

/* At most CH_MAX_ENTRIES_IN_FLIGHT entries wait for commit; beyond it the
 * open batch grows instead. */
static void test_propose_in_flight_cap(void **state)
{
    struct fx *f = fx_of(state);
    struct cluster *c;
    uint64_t before;

    cb_fx = f;
    start(f, 0);
    c = node(f, 0);
    before = c->metrics.batches_proposed;
    for (unsigned i = 0; i < 20; i++) {
        publish(f, i, "/cap");
        cluster__check(c); /* the check phase, without raft progress */
    }
    assert_int_equal(c->n_inflight, CH_MAX_ENTRIES_IN_FLIGHT);
    assert_int_equal(c->metrics.batches_proposed - before,
                     CH_MAX_ENTRIES_IN_FLIGHT);
    assert_non_null(c->open);
    assert_int_equal(c->open->n_waiters, 20 - CH_MAX_ENTRIES_IN_FLIGHT);
    for (unsigned k = 0; k < STEPS && f->n_fired < 20; k++) {
        cf_step(&f->cx);
        assert_true(c->n_inflight <= CH_MAX_ENTRIES_IN_FLIGHT);
    }
    assert_int_equal(f->n_fired, 20);
    for (unsigned i = 0; i < 20; i++)
        assert_int_equal(f->recs[i].res.seq, (int64_t)i + 1);
}

/* A batch closes at CH_MAX_BATCH_MSGS publishes or CH_MAX_BATCH_BYTES. */
static void test_propose_batch_limits(void **state)
{
    struct fx *f = fx_of(state);
    struct cluster *c;
    uint64_t before;
    size_t big_n = CH_MAX_BATCH_BYTES / 3 + 1;
    char *big = calloc(1, big_n);
    struct ch_msg m;

    assert_non_null(big);
    cb_fx = f;
    start(f, 0);
    c = node(f, 0);
    before = c->metrics.batches_proposed;
    m = mk("/n", "", "x", 1);
    for (unsigned i = 0; i < CH_MAX_BATCH_MSGS + 1; i++)
        assert_int_equal(cluster_publish(c, &m, count_cb, f), 0);
    cluster__check(c);
    assert_int_equal(c->metrics.batches_proposed - before, 2);
    /* Three bodies of a third of the limit do not fit one entry. */
    before = c->metrics.batches_proposed;
    m = mk("/bytes", "", big, big_n);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(cluster_publish(c, &m, count_cb, f), 0);
    cluster__check(c);
    assert_int_equal(c->metrics.batches_proposed - before, 2);
    for (unsigned k = 0; k < STEPS && f->n_counted < CH_MAX_BATCH_MSGS + 4; k++)
        cf_step(&f->cx);
    assert_int_equal(f->n_count_ok, CH_MAX_BATCH_MSGS + 4);
    free(big);
}

/* CH_MAX_PENDING_PUBLISHES unanswered publishes are taken; one more is
 * refused at once (its callback never fires). */
static void test_propose_pending_limit(void **state)
{
    struct fx *f = fx_of(state);
    struct cluster *c;
    struct ch_msg m = mk("/p", "", "", 0);

    cb_fx = f;
    start(f, 0);
    c = node(f, 0);
    for (unsigned i = 0; i < CH_MAX_PENDING_PUBLISHES; i++)
        assert_int_equal(cluster_publish(c, &m, count_cb, f), 0);
    assert_int_equal(cluster_publish(c, &m, count_cb, f), CH_EFULL);
    assert_int_equal(cluster_pending(c), CH_MAX_PENDING_PUBLISHES);
    /* Shutdown answers every one of them (never proposed: not done). */
    cf_stop(&f->cx);
    assert_int_equal(f->n_counted, CH_MAX_PENDING_PUBLISHES);
    assert_int_equal(f->n_count_ok, 0);
}

/* A publish that cannot commit in time is answered "timed out"; when the
 * entry commits later its callback does not fire again. */
static void test_propose_timeout_answered_once(void **state)
{
    struct fx *f = fx_of(state);
    struct cluster *c;
    struct count_wait cw = {f, "/t", 1};

    cb_fx = f;
    start(f, 30);
    c = node(f, 0);
    for (unsigned j = 1; j < 3; j++) {
        raft_fixture_saturate(&f->cx.f, 0, j);
        raft_fixture_saturate(&f->cx.f, j, 0);
    }
    publish(f, 0, "/t");
    cluster__check(c);
    assert_int_equal(c->n_inflight, 1);
    test_loop_run_for(&f->cx.loop, 60); /* past the 30 ms publish timeout */
    cluster__tick(c);
    assert_int_equal(f->recs[0].n_fired, 1);
    assert_int_equal(f->recs[0].status, CH_ETIMEDOUT);
    for (unsigned j = 1; j < 3; j++) {
        raft_fixture_desaturate(&f->cx.f, 0, j);
        raft_fixture_desaturate(&f->cx.f, j, 0);
    }
    /* It commits after all ("outcome unknown" was the truth). */
    assert_true(cf_step_until(&f->cx, all_stored, &cw, STEPS));
    assert_int_equal(f->recs[0].n_fired, 1);
}

/* The leader loses its majority with the entry in flight: the outcome is
 * unknown (the entry may still commit under the next leader). */
static void test_propose_leadership_lost_is_unknown(void **state)
{
    struct fx *f = fx_of(state);
    struct cluster *c;

    cb_fx = f;
    start(f, 0);
    c = node(f, 0);
    for (unsigned j = 1; j < 3; j++) {
        raft_fixture_saturate(&f->cx.f, 0, j);
        raft_fixture_saturate(&f->cx.f, j, 0);
    }
    publish(f, 0, "/l");
    cluster__check(c);
    assert_int_equal(c->n_inflight, 1);
    wait_fired(f, 1);
    assert_int_equal(f->recs[0].status, CH_EUNKNOWN);
    assert_int_equal(c->n_inflight, 0);
    /* A publish now is forwarded (no leader known here): it waits. */
    publish(f, 1, "/l");
    assert_int_equal(f->recs[1].n_fired, 0);
}

/* Publishing from inside a publish callback (which runs inside a raft
 * callback) only queues; the check phase proposes. */
static void test_propose_publish_from_callback(void **state)
{
    struct fx *f = fx_of(state);

    cb_fx = f;
    start(f, 0);
    f->n_republish = 5;
    publish(f, 0, "/first");
    wait_fired(f, 6);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(f->recs[100 + 1 + i].status, 0);
    assert_int_equal(topic_count(node(f, 0), "/chain"), 5);
}

/* The rule that crashed a leader, pinned: a raft request from inside a
 * raft callback aborts the process. */
static void test_propose_raft_request_inside_callback_aborts(void **state)
{
    struct fx *f = fx_of(state);
    pid_t pid;
    int wstatus;

    cb_fx = f;
    start(f, 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cluster *c = node(f, 0);
        static struct raft_barrier req;

        /* Quiet child: the assertion message is expected. */
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(3);
        cluster__raft_cb_enter(c);
        (void)cluster__raft_barrier(c, &req, NULL);
        _exit(0); /* not reached */
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus));
    assert_int_equal(WTERMSIG(wstatus), SIGABRT);
}

/* A follower refuses a forwarded publish: only the leader serves them. */
static void test_propose_forwarded_only_on_leader(void **state)
{
    struct fx *f = fx_of(state);
    struct ch_msg m = mk("/f", "", "x", 1);

    cb_fx = f;
    start(f, 0);
    assert_int_equal(
        cluster_publish_forwarded(node(f, 1), &m, pub_cb, &f->recs[0]),
        CH_ENOTLEADER);
    assert_int_equal(
        cluster_publish_forwarded(node(f, 0), &m, pub_cb, &f->recs[0]), 0);
    wait_fired(f, 1);
    assert_int_equal(f->recs[0].status, 0);
}

static void propose_with_fault(void *arg, int i)
{
    struct fx *g;
    struct ch_msg m = mk("/oom", "id1", "payload", 7);
    int rv;

    (void)arg;
    setup((void **)&g);
    cb_fx = g;
    start(g, 0);
    test_heap_fault_config(i, 1);
    rv = cluster_publish(node(g, 0), &m, pub_cb, &g->recs[0]);
    if (rv == 0) {
        struct fired_wait w = {g, 1};
        struct count_wait cw = {g, "/oom", 1};

        (void)cf_step_until(&g->cx, fired, &w, 3000);
        test_heap_fault_off();
        /* Whatever the answer, the replicas agree: one that ran out of
         * memory stops applying, it never skips the entry. */
        (void)cf_step_until(&g->cx, all_stored, &cw, 3000);
        (void)cf_step_until(&g->cx, same_applied, g, 3000);
        for (unsigned k = 1; k < g->cx.n; k++)
            assert_int_equal(topic_count(node(g, k), "/oom"),
                             topic_count(node(g, 0), "/oom"));
    } else {
        assert_int_equal(rv, CH_ENOMEM);
    }
    test_heap_fault_off();
    cf_teardown((void **)&g);
}

/* Every allocation of publishing, proposing and applying fails in turn:
 * a publish is refused at once or answered; replicas that could not
 * apply stop (never skip), nothing leaks. */
static void test_propose_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(propose_with_fault, NULL, 4, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, cf_teardown)
        T(test_propose_one_entry_per_turn),
        T(test_propose_in_flight_cap),
        T(test_propose_batch_limits),
        T(test_propose_pending_limit),
        T(test_propose_timeout_answered_once),
        T(test_propose_leadership_lost_is_unknown),
        T(test_propose_publish_from_callback),
        T(test_propose_raft_request_inside_callback_aborts),
        T(test_propose_forwarded_only_on_leader),
#undef T
        cmocka_unit_test(test_propose_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
