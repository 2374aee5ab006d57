/* Unit tests of membership (src/cluster/membership.c) on whole cluster
 * objects over libraft's fixture (tests/lib/cluster_fixture.h): a join
 * runs directory entry, raft_add and raft_assign as steps of the check
 * phase and the new node ends a voter with the same state; one change at
 * a time; refusals answered from the check phase, never from inside the
 * call; a leave removes the node and its directory entry and tells it; a
 * transfer; the leader leaving itself hands leadership over and the new
 * leader (reached over a real node link) removes it; a change that loses
 * leadership fails; every allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "lib/cluster_fixture.h"
#include "lib/heap.h"
#include "lib/loop.h"

#define STEPS 30000

struct fx {
    struct cluster_fx cx;
};

static int setup(void **state)
{
    return cf_setup(state, sizeof(struct fx));
}

static void start(struct fx *f, unsigned n_voters)
{
    struct cf_options o = {n_voters, n_voters, 0};

    cf_start(&f->cx, &o);
}

static struct cluster *node(struct fx *f, unsigned i)
{
    return cf_node(&f->cx, i);
}

static void wait_answer(struct fx *f, struct cf_answer *a)
{
    assert_true(cf_step_until(&f->cx, cf_answered, a, STEPS));
}

/* The membership engine itself (cluster_join/leave/transfer funnel into
 * it; the fixture's raft addresses are "1", "2", ... which the public
 * calls, expecting IPv4, would refuse). */
static int admin(struct fx *f, unsigned on, enum link_op op, uint64_t id,
                 const char *raft, const char *http, struct cf_answer *a)
{
    struct link_req r;

    memset(&r, 0, sizeof r);
    r.op = op;
    r.id = id;
    r.raft.p = raft;
    r.raft.n = raft != NULL ? strlen(raft) : 0;
    r.http.p = http;
    r.http.n = http != NULL ? strlen(http) : 0;
    r.role = CLUSTER_ROLE_VOTER;
    return cluster__admin_local(node(f, on), &r, cf_answer_cb, a);
}

static const struct raft_server *config_find(struct cluster *c, uint64_t id)
{
    for (unsigned i = 0; i < c->r->configuration.n; i++) {
        if (c->r->configuration.servers[i].id == id)
            return &c->r->configuration.servers[i];
    }
    return NULL;
}

static int member_get(struct cluster *c, uint64_t id, struct store_member *m)
{
    struct store_txn *t;
    int rv;

    assert_int_equal(store_read_begin(cluster_store(c), &t), 0);
    rv = store_member_get(t, id, m);
    store_read_end(t);
    return rv;
}

struct applied_wait {
    struct fx *f;
    unsigned i;
    uint64_t index;
};

static bool has_applied(void *arg)
{
    struct applied_wait *w = arg;
    return store_applied_index(cluster_store(node(w->f, w->i))) >= w->index;
}

static bool has_member3(void *arg)
{
    struct store_member m;

    return member_get(arg, 3, &m) == 0;
}

/* ---- tests -------------------------------------------------------------- */

/* join: directory entry, raft_add, raft_assign; each step from the check
 * phase. The new node ends a voter and holds the same state. */
static void test_membership_join_voter(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0};
    struct store_member m;
    struct applied_wait w;
    unsigned n4;

    start(f, 3);
    n4 = cf_grow(&f->cx);
    assert_int_equal(
        admin(f, 0, LINK_JOIN, 4, "4", f->cx.nodes[n4].gw.addr, &a), 0);
    assert_int_equal(a.n_fired, 0);
    assert_non_null(node(f, 0)->change);
    assert_int_equal(node(f, 0)->change->step, MSTEP_START);
    wait_answer(f, &a);
    assert_int_equal(a.status, 0);
    assert_null(node(f, 0)->change);
    assert_non_null(config_find(node(f, 0), 4));
    assert_int_equal(config_find(node(f, 0), 4)->role, RAFT_VOTER);
    assert_int_equal(member_get(node(f, 0), 4, &m), 0);
    assert_string_equal(m.http, f->cx.nodes[n4].gw.addr);
    /* The new node applies everything the leader did. */
    w.f = f;
    w.i = n4;
    w.index = store_applied_index(cluster_store(node(f, 0)));
    assert_true(cf_step_until(&f->cx, has_applied, &w, STEPS));
    assert_int_equal(member_get(node(f, n4), 4, &m), 0);
}

static void count_pub_cb(void *arg, int status, const struct store_result *r)
{
    unsigned *n = arg;

    (void)r;
    assert_int_equal(status, 0);
    (*n)++;
}

static bool all_published(void *arg)
{
    unsigned *n = arg;
    return *n == 40;
}

struct gate_watch {
    struct fx *f;
    unsigned n4;
    struct cf_answer *a;
    bool saw_standby_waiting;
};

static int64_t missing_of(struct cluster *c)
{
    struct store_txn *t;
    uint64_t holes = 0;
    int64_t msgs = 0;

    assert_int_equal(store_read_begin(cluster_store(c), &t), 0);
    assert_int_equal(store_missing(t, &holes, &msgs), 0);
    store_read_end(t);
    return msgs;
}

/* Never a voter with a store that has holes. */
static bool gate_check(void *arg)
{
    struct gate_watch *g = arg;
    const struct raft_server *s = config_find(node(g->f, 0), 4);

    if (s != NULL && s->role == RAFT_VOTER)
        assert_int_equal(missing_of(node(g->f, g->n4)), 0);
    if (s != NULL && s->role == RAFT_STANDBY && node(g->f, 0)->change != NULL &&
        node(g->f, 0)->change->step == MSTEP_JOIN_WAIT)
        g->saw_standby_waiting = true;
    return cf_answered(g->a);
}

static bool waiting_on_node(void *arg)
{
    struct gate_watch *g = arg;
    (void)gate_check(arg);
    return g->saw_standby_waiting;
}

/* A voter-to-be that lacks messages (here: it restored a state snapshot
 * and its fetching is held) is a standby until it caught up; the leader
 * asks it (link STATUS) and promotes it once it holds every message. */
static void test_membership_voter_promoted_once_caught_up(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0};
    struct gate_watch g = {f, 0, &a, false};
    struct store_snap *snap;
    struct ch_buf buf;
    struct cluster *c4;
    unsigned n_pub = 0;
    char body[40][16];

    start(f, 3);
    for (unsigned i = 0; i < 40; i++) {
        struct ch_msg m;
        memset(&m, 0, sizeof m);
        snprintf(body[i], sizeof body[i], "m%u", i);
        m.path.p = i % 2 ? "/g/a" : "/g/b";
        m.path.n = 4;
        m.user.p = "u";
        m.user.n = 1;
        m.body.p = body[i];
        m.body.n = strlen(body[i]);
        assert_int_equal(cluster_publish(node(f, 0), &m, count_pub_cb, &n_pub),
                         0);
    }
    assert_true(cf_step_until(&f->cx, all_published, &n_pub, STEPS));

    /* the new node holds the leader's state and none of its messages */
    g.n4 = cf_grow(&f->cx);
    c4 = node(f, g.n4);
    ch_buf_init(&buf);
    assert_int_equal(store_snapshot_begin(cluster_store(node(f, 0)), &snap), 0);
    assert_int_equal(store_snapshot_write(snap, &buf), 0);
    store_snapshot_end(snap);
    assert_int_equal(store_restore(cluster_store(c4), buf.data, buf.len), 0);
    ch_buf_free(&buf);
    assert_int_equal(missing_of(c4), 40);
    /* its fetching held: catching up, asking no one yet */
    c4->catchup.wanted = false;
    c4->catchup.active = true;
    c4->catchup.missing = 40;
    c4->catchup.retry_ms = UINT64_MAX;
    c4->catchup.msgs = ch_calloc(CH_MAX_CATCHUP_MSGS, sizeof(struct ch_msg));
    assert_non_null(c4->catchup.msgs);

    assert_int_equal(
        admin(f, 0, LINK_JOIN, 4, "4", f->cx.nodes[g.n4].gw.addr, &a), 0);
    assert_true(cf_step_until(&f->cx, waiting_on_node, &g, STEPS));
    for (unsigned k = 0; k < 2000; k++)
        cf_step(&f->cx);
    assert_int_equal(a.n_fired, 0);
    assert_int_equal(config_find(node(f, 0), 4)->role, RAFT_STANDBY);

    /* released: it fetches, then is promoted */
    c4->catchup.retry_ms = 0;
    assert_true(cf_step_until(&f->cx, gate_check, &g, STEPS));
    assert_int_equal(a.status, 0);
    assert_int_equal(config_find(node(f, 0), 4)->role, RAFT_VOTER);
    assert_int_equal(missing_of(c4), 0);
    assert_false(c4->catchup.active);
}

/* A second change while one runs is refused, from the check phase. */
static void test_membership_one_change_at_a_time(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0}, b = {0};

    start(f, 3);
    assert_int_equal(admin(f, 0, LINK_TRANSFER, 2, NULL, NULL, &a), 0);
    assert_int_equal(admin(f, 0, LINK_LEAVE, 3, NULL, NULL, &b), 0);
    assert_int_equal(b.n_fired, 0); /* never from inside the call */
    cluster__check(node(f, 0));
    assert_int_equal(b.n_fired, 1);
    assert_int_equal(b.status, CH_EBUSY);
    assert_non_null(strstr(b.text, "already in progress"));
    wait_answer(f, &a);
    assert_int_equal(a.status, 0);
}

static void test_membership_refusals(void **state)
{
    struct fx *f = *state;
    struct cf_answer a[5];
    static const int want[] = {CH_EBUSY, CH_ENOTFOUND, CH_ENOTFOUND, CH_EINVAL,
                               0};

    memset(a, 0, sizeof a);
    start(f, 3);
    assert_int_equal(admin(f, 0, LINK_JOIN, 2, "2", "h:1", &a[0]), 0);
    assert_int_equal(admin(f, 0, LINK_LEAVE, 9, NULL, NULL, &a[1]), 0);
    assert_int_equal(admin(f, 0, LINK_TRANSFER, 9, NULL, NULL, &a[2]), 0);
    assert_int_equal(admin(f, 0, LINK_JOIN, 0, "", "", &a[3]), 0);
    /* Transfer to itself: nothing to do, done. */
    assert_int_equal(admin(f, 0, LINK_TRANSFER, 1, NULL, NULL, &a[4]), 0);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(a[i].n_fired, 0);
    cluster__check(node(f, 0));
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(a[i].n_fired, 1);
        assert_int_equal(a[i].status, want[i]);
    }
    assert_non_null(strstr(a[0].text, "already a member"));
    assert_non_null(strstr(a[1].text, "not a member"));
    /* The public calls check their arguments themselves (no callback). */
    assert_int_equal(cluster_join(node(f, 0), 5, "not-ipv4", "h:1",
                                  CLUSTER_ROLE_VOTER, cf_answer_cb, &a[0]),
                     CH_EINVAL);
    assert_int_equal(cluster_join(node(f, 0), 5, "127.0.0.1:1", "no-port",
                                  CLUSTER_ROLE_VOTER, cf_answer_cb, &a[0]),
                     CH_EINVAL);
    assert_int_equal(cluster_leave(node(f, 0), 0, cf_answer_cb, &a[0]),
                     CH_EINVAL);
    assert_int_equal(a[0].n_fired, 1);
}

/* leave: raft_remove, then the directory entry; the node is told (over a
 * link to its gateway) and knows it was removed. */
static void test_membership_leave_follower(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0};
    struct store_member m;

    start(f, 3);
    /* The ready leader fills the directory in (from --cluster). */
    assert_true(cf_step_until(&f->cx, has_member3, node(f, 0), STEPS));
    assert_int_equal(admin(f, 0, LINK_LEAVE, 3, NULL, NULL, &a), 0);
    wait_answer(f, &a);
    assert_int_equal(a.status, 0);
    assert_null(config_find(node(f, 0), 3));
    assert_int_equal(member_get(node(f, 0), 3, &m), CH_ENOTFOUND);
    for (unsigned k = 0; k < 2000 && !node(f, 2)->removed; k++)
        cf_step(&f->cx);
    assert_true(node(f, 2)->removed);
}

static bool leader_is_2(void *arg)
{
    struct fx *f = arg;
    return cf_leader(&f->cx) == 1;
}

static void test_membership_transfer(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0};

    start(f, 3);
    assert_int_equal(admin(f, 0, LINK_TRANSFER, 2, NULL, NULL, &a), 0);
    wait_answer(f, &a);
    assert_int_equal(a.status, 0);
    assert_true(cf_step_until(&f->cx, leader_is_2, f, STEPS));
}

/* The leader leaves: it hands leadership over and forwards the leave to
 * the new leader (over a node link), which removes it. */
static void test_membership_leader_leaves_itself(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0};

    start(f, 3);
    assert_int_equal(admin(f, 0, LINK_LEAVE, 1, NULL, NULL, &a), 0);
    wait_answer(f, &a);
    assert_int_equal(a.status, 0);
    assert_true(cf_leader(&f->cx) == 1 || cf_leader(&f->cx) == 2);
    assert_null(config_find(node(f, cf_leader(&f->cx)), 1));
}

/* The leader loses its majority before the next step runs: the change
 * fails instead of running on a node that no longer leads. */
static void test_membership_leadership_lost_fails_change(void **state)
{
    struct fx *f = *state;
    struct cf_answer a = {0};

    start(f, 3);
    for (unsigned j = 1; j < 3; j++) {
        raft_fixture_saturate(&f->cx.f, 0, j);
        raft_fixture_saturate(&f->cx.f, j, 0);
    }
    assert_int_equal(admin(f, 0, LINK_LEAVE, 3, NULL, NULL, &a), 0);
    wait_answer(f, &a);
    assert_int_not_equal(a.status, 0);
    assert_null(node(f, 0)->change);
}

/* Every allocation of a transfer fails in turn: refused or done, and
 * nothing leaks. */
static void transfer_with_fault(void *arg, int i)
{
    struct fx *g;
    struct cf_answer a = {0};
    int rv;

    (void)arg;
    setup((void **)&g);
    start(g, 3);
    test_heap_fault_config(i, 1);
    rv = admin(g, 0, LINK_TRANSFER, 2, NULL, NULL, &a);
    if (rv == 0)
        (void)cf_step_until(&g->cx, cf_answered, &a, STEPS);
    else
        assert_int_equal(rv, CH_ENOMEM);
    test_heap_fault_off();
    cf_teardown((void **)&g);
}

static void test_membership_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(transfer_with_fault, NULL, 1, 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, cf_teardown)
        T(test_membership_join_voter),
        T(test_membership_voter_promoted_once_caught_up),
        T(test_membership_one_change_at_a_time),
        T(test_membership_refusals),
        T(test_membership_leave_follower),
        T(test_membership_transfer),
        T(test_membership_leader_leaves_itself),
        T(test_membership_leadership_lost_fails_change),
#undef T
        cmocka_unit_test(test_membership_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
