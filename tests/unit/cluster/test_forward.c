/* Unit tests of forwarding (src/cluster/forward.c) on whole cluster
 * objects over libraft's fixture, with real node links between them
 * (tests/lib/cluster_fixture.h): a follower's publish is run by the
 * leader and answered once the follower applied it (read-your-writes);
 * without a leader it fails at the publish timeout, not committed; a
 * link lost after sending makes the outcome unknown; admin requests are
 * forwarded; an admin request's longer deadline does not hold back the
 * expiry of publishes queued behind it; a duplicate publisher message id
 * is answered with the original; every allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/cluster_fixture.h"
#include "lib/heap.h"
#include "lib/loop.h"

#define STEPS 30000

struct rec {
    unsigned n_fired;
    int status;
    struct store_result res;
    uint64_t applied_then; /* the follower's applied index when answered */
    struct cluster *c;     /* where it was published */
};

/* Outcomes live with the fixture: requests still pending when a test
 * returns are answered by its tear-down. */
struct fx {
    struct cluster_fx cx;
    struct rec r[2];
    struct cf_answer a;
};

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

static void pub_cb(void *arg, int status, const struct store_result *res)
{
    struct rec *r = arg;

    r->n_fired++;
    assert_int_equal(r->n_fired, 1);
    r->status = status;
    if (res != NULL)
        r->res = *res;
    r->applied_then = store_applied_index(cluster_store(r->c));
}

static void publish(struct fx *f, unsigned on, const char *msgid, struct rec *r)
{
    struct ch_msg m;

    memset(&m, 0, sizeof m);
    m.path.p = "/fwd";
    m.path.n = 4;
    m.user.p = "u";
    m.user.n = 1;
    m.app.p = "a";
    m.app.n = 1;
    m.msgid.p = msgid;
    m.msgid.n = strlen(msgid);
    m.body.p = "b";
    m.body.n = 1;
    r->c = node(f, on);
    assert_int_equal(cluster_publish(node(f, on), &m, pub_cb, r), 0);
}

static bool rec_fired(void *arg)
{
    return ((struct rec *)arg)->n_fired > 0;
}

/* ---- tests -------------------------------------------------------------- */

/* A follower forwards; the leader commits; the follower answers only once
 * its own store has the entry (read-your-writes on every node). */
static void test_forward_publish_read_your_writes(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->r[0];

    start(f, 0);
    publish(f, 1, "m1", r);
    assert_int_equal(r->n_fired, 0);
    assert_true(cf_step_until(&f->cx, rec_fired, r, STEPS));
    assert_int_equal(r->status, 0);
    assert_int_equal(r->res.seq, 1);
    assert_true(r->res.index > 0);
    assert_true(r->applied_then >= r->res.index);
    assert_non_null(node(f, 1)->link); /* one persistent link */
    assert_int_equal(cluster_pending(node(f, 1)), 0);
}

/* The same publisher message id again: the original sequenceId. */
static void test_forward_duplicate_answered_with_original(void **state)
{
    struct fx *f = *state;
    struct rec *a = &f->r[0], *b = &f->r[1];

    start(f, 0);
    publish(f, 1, "dup", a);
    assert_true(cf_step_until(&f->cx, rec_fired, a, STEPS));
    publish(f, 2, "dup", b);
    assert_true(cf_step_until(&f->cx, rec_fired, b, STEPS));
    assert_int_equal(b->status, 0);
    assert_true(b->res.is_dup);
    assert_int_equal(b->res.seq, a->res.seq);
}

/* No leader: the request waits, then fails at the publish timeout as not
 * committed (it was never sent). */
static void test_forward_no_leader_times_out(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->r[0];

    start(f, 30);
    raft_fixture_kill(&f->cx.f, 0);
    raft_fixture_kill(&f->cx.f, 2);
    /* Node 2 alone becomes a candidate: no leader known. */
    for (unsigned k = 0; k < STEPS && node(f, 1)->r->state != RAFT_CANDIDATE;
         k++)
        raft_fixture_step(&f->cx.f);
    assert_int_equal(raft_state(node(f, 1)->r), RAFT_CANDIDATE);
    publish(f, 1, "nl", r);
    cluster__tick(node(f, 1));
    assert_int_equal(r->n_fired, 0);
    test_loop_run_for(&f->cx.loop, 60);
    cluster__tick(node(f, 1));
    assert_int_equal(r->n_fired, 1);
    assert_int_equal(r->status, CH_ENOTLEADER);
}

/* An admin request (deadline minutes away) queued first does not hold
 * back the expiry of the publishes queued behind it. */
static void test_forward_admin_does_not_block_publish_expiry(void **state)
{
    struct fx *f = *state;
    struct cf_answer *a = &f->a;
    struct rec *r = &f->r[0];

    start(f, 30);
    raft_fixture_kill(&f->cx.f, 0);
    raft_fixture_kill(&f->cx.f, 2);
    for (unsigned k = 0; k < STEPS && node(f, 1)->r->state != RAFT_CANDIDATE;
         k++)
        raft_fixture_step(&f->cx.f);
    assert_int_equal(cluster_transfer(node(f, 1), 3, cf_answer_cb, a), 0);
    publish(f, 1, "behind", r);
    test_loop_run_for(&f->cx.loop, 60);
    cluster__tick(node(f, 1));
    assert_int_equal(r->n_fired, 1);
    assert_int_equal(r->status, CH_ENOTLEADER);
    assert_int_equal(a->n_fired, 0); /* still within its own deadline */
}

/* Sent, then the link goes away before the answer: the entry may have
 * been committed, so the outcome is unknown. */
static void test_forward_link_lost_is_unknown(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->r[0];

    start(f, 0);
    /* The leader cannot commit: its followers do not hear it. */
    for (unsigned j = 1; j < 3; j++) {
        raft_fixture_saturate(&f->cx.f, 0, j);
        raft_fixture_saturate(&f->cx.f, j, 0);
    }
    publish(f, 1, "lost", r);
    cluster__tick(node(f, 1));
    for (unsigned k = 0;
         k < 5000 && cluster_pending(node(f, 0)) == 0 && r->n_fired == 0; k++) {
        uv_run(&f->cx.loop, UV_RUN_NOWAIT);
        cluster__check(node(f, 0));
        cluster__check(node(f, 1));
    }
    assert_int_equal(cluster_pending(node(f, 0)), 1); /* the leader has it */
    lservers_close(&node(f, 0)->lservers);
    for (unsigned k = 0; k < 5000 && r->n_fired == 0; k++)
        uv_run(&f->cx.loop, UV_RUN_NOWAIT);
    assert_int_equal(r->n_fired, 1);
    assert_int_equal(r->status, CH_EUNKNOWN);
}

/* Admin requests on a follower run on the leader. */
static void test_forward_admin_request(void **state)
{
    struct fx *f = *state;
    struct cf_answer *a = &f->a;

    start(f, 0);
    assert_int_equal(cluster_transfer(node(f, 2), 2, cf_answer_cb, a), 0);
    assert_true(cf_step_until(&f->cx, cf_answered, a, STEPS));
    assert_int_equal(a->status, 0);
}

static void forward_with_fault(void *arg, int i)
{
    struct fx *g;
    struct rec *r;
    struct ch_msg m;
    int rv;

    (void)arg;
    setup((void **)&g);
    start(g, 2000);
    memset(&m, 0, sizeof m);
    m.path.p = "/oom";
    m.path.n = 4;
    m.user.p = "u";
    m.user.n = 1;
    r = &g->r[0];
    r->c = node(g, 1);
    test_heap_fault_config(i, 1);
    rv = cluster_publish(node(g, 1), &m, pub_cb, r);
    if (rv == 0)
        (void)cf_step_until(&g->cx, rec_fired, r, 5000);
    else
        assert_int_equal(rv, CH_ENOMEM);
    test_heap_fault_off();
    cf_teardown((void **)&g);
}

/* Every allocation of a forwarded publish fails in turn. */
static void test_forward_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(forward_with_fault, NULL, 6, 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, cf_teardown)
        T(test_forward_publish_read_your_writes),
        T(test_forward_duplicate_answered_with_original),
        T(test_forward_no_leader_times_out),
        T(test_forward_admin_does_not_block_publish_expiry),
        T(test_forward_link_lost_is_unknown),
        T(test_forward_admin_request),
#undef T
        cmocka_unit_test(test_forward_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
