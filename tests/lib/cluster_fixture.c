/* The cluster test fixture of cluster_fixture.h. */
#include "cluster_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "lib/heap.h"
#include "lib/loop.h"
#include "lib/tmpdir.h"

/* A snapshot per this many entries would only slow the tests. */
#define CF_NO_SNAPSHOTS (1u << 30)

/* The fixture's raft_io has no async work: the FSM runs as v2 with its
 * snapshot taken in one go (begin + write). */
static int sync_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                         unsigned *n_bufs)
{
    (void)fsm;
    (void)bufs;
    (void)n_bufs;
    return RAFT_BUSY; /* none: thresholds are out of reach anyway */
}

static void on_upgrade(void *arg, int fd, const char *key, const char *path)
{
    struct cf_node *nd = arg;

    (void)path;
    (void)cluster_link_accept(nd->c, fd, key, "test-link");
}

/* Creates node i: its store, its cluster object and its fixture server. */
static void node_create(struct cluster_fx *x, unsigned i, const char *spec,
                        const struct cf_options *o)
{
    struct cf_node *nd = &x->nodes[i];
    struct cluster_config cfg;
    char raft_addr[32];
    char errmsg[CH_ERRMSG_SIZE];
    struct raft *r;

    snprintf(nd->dir, sizeof nd->dir, "%s/n%u", x->base, i + 1);
    snprintf(raft_addr, sizeof raft_addr, "127.0.0.1:%u", 9001 + i);
    errmsg[0] = '\0';
    if (store_open(nd->dir, 1ULL << 30, &nd->store, errmsg) != 0)
        fail_msg("store_open %s: %s", nd->dir, errmsg);
    memset(&cfg, 0, sizeof cfg);
    cfg.id = i + 1;
    cfg.raft_addr = raft_addr; /* only read by cluster_start */
    cfg.http_addr = nd->gw.addr;
    cfg.data_dir = nd->dir;
    cfg.cluster_spec = spec;
    cfg.dedup_window_s = 120;
    cfg.publish_timeout_ms =
        o->publish_timeout_ms ? o->publish_timeout_ms : 5000;
    cfg.election_timeout_ms = 1000;
    cfg.heartbeat_timeout_ms = 100;
    if (cluster_create(&x->loop, &cfg, nd->store, &nd->c, errmsg) != 0)
        fail_msg("cluster_create: %s", errmsg);
    /* Only cluster_start reads these two (locals of the caller). */
    nd->c->cfg.raft_addr = NULL;
    nd->c->cfg.cluster_spec = NULL;
    assert_int_equal(cluster__fsm_init(nd->c), 0);
    nd->c->fsm.version = 2;
    nd->c->fsm.snapshot = sync_snapshot;
    nd->c->fsm.snapshot_async = NULL;
    nd->c->fsm.snapshot_finalize = NULL;
    assert_int_equal(raft_fixture_grow(&x->f, &nd->c->fsm), 0);
    r = raft_fixture_get(&x->f, i);
    raft_set_snapshot_threshold(r, CF_NO_SNAPSHOTS);
    raft_set_snapshot_trailing(r, CF_NO_SNAPSHOTS);
    nd->c->r = r;
    nd->c->raft_started = true; /* the fixture runs it */
}

void cf_start(struct cluster_fx *x, const struct cf_options *o)
{
    struct raft_configuration conf;
    char spec[CF_MAX_NODES * 64];
    size_t spec_n = 0;

    memset(x, 0, sizeof *x);
    assert_true(o->n_nodes <= CF_MAX_NODES && o->n_voters <= o->n_nodes);
    x->n = o->n_nodes;
    x->publish_timeout_ms = o->publish_timeout_ms;
    assert_int_equal(uv_loop_init(&x->loop), 0);
    test_tmpdir_make(x->base, sizeof x->base, "cf");
    assert_int_equal(raft_fixture_initialize(&x->f), 0);
    /* Gateways first: their addresses go into the --cluster spec, which
     * is where a node finds a member's gateway before the directory has
     * it. */
    for (unsigned i = 0; i < x->n; i++) {
        test_upgrade_server_start(&x->nodes[i].gw, &x->loop, on_upgrade,
                                  &x->nodes[i]);
        spec_n += (size_t)snprintf(spec + spec_n, sizeof spec - spec_n,
                                   "%s%u=127.0.0.1:%u/%s", i ? "," : "", i + 1,
                                   9001 + i, x->nodes[i].gw.addr);
    }
    for (unsigned i = 0; i < x->n; i++)
        node_create(x, i, spec, o);
    assert_int_equal(raft_fixture_configuration(&x->f, o->n_voters, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&x->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&x->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&x->f, 10000));
    assert_int_equal(raft_fixture_leader_index(&x->f), 0);
    /* The new leader's barrier (cluster.c monitor) makes it ready. */
    cf_tick(x);
    for (unsigned k = 0; k < 2000 && !x->nodes[0].c->is_ready; k++)
        cf_step(x);
    assert_true(x->nodes[0].c->is_ready);
    cf_tick(x);
    x->is_running = true;
}

static void closed_cb(struct cluster *c, void *arg)
{
    (void)c;
    *(bool *)arg = true;
}

static bool is_true(void *arg)
{
    return *(bool *)arg;
}

unsigned cf_grow(struct cluster_fx *x)
{
    unsigned i = x->n;
    struct cf_options o = {0, 0, x->publish_timeout_ms};

    assert_true(i < CF_MAX_NODES);
    test_upgrade_server_start(&x->nodes[i].gw, &x->loop, on_upgrade,
                              &x->nodes[i]);
    node_create(x, i, NULL, &o);
    x->n++;
    /* Empty: no configuration, waits to be added (as a --join node). */
    assert_int_equal(raft_start(x->nodes[i].c->r), 0);
    return i;
}

void cf_stop(struct cluster_fx *x)
{
    if (!x->is_running)
        return;
    x->is_running = false;
    /* The fixture first: pending raft requests fail into the clusters,
     * which still exist. */
    raft_fixture_close(&x->f);
    for (unsigned i = 0; i < x->n; i++) {
        struct cf_node *nd = &x->nodes[i];
        bool closed = false;

        test_upgrade_server_stop(&nd->gw);
        if (nd->c == NULL)
            continue;
        nd->c->r = NULL; /* freed with the fixture */
        cluster_close(nd->c, closed_cb, &closed);
        assert_true(test_loop_run_until(&x->loop, is_true, &closed, 5000));
    }
    test_loop_close(&x->loop);
    for (unsigned i = 0; i < x->n; i++) {
        struct cf_node *nd = &x->nodes[i];

        if (nd->c != NULL)
            cluster_destroy(nd->c);
        if (nd->store != NULL)
            store_close(nd->store);
    }
    test_tmpdir_remove(x->base);
}

void cf_answer_cb(void *arg, int status, const char *text)
{
    struct cf_answer *a = arg;

    a->n_fired++;
    assert_int_equal(a->n_fired, 1);
    a->status = status;
    snprintf(a->text, sizeof a->text, "%s", text);
}

bool cf_answered(void *arg)
{
    return ((struct cf_answer *)arg)->n_fired > 0;
}

int cf_setup(void **state, size_t size)
{
    struct cluster_fx *x;

    assert_true(size >= sizeof *x);
    x = calloc(1, size);
    assert_non_null(x);
    test_heap_setup();
    *state = x;
    return 0;
}

int cf_teardown(void **state)
{
    struct cluster_fx *x = *state;

    cf_stop(x);
    free(x);
    test_heap_tear_down();
    return 0;
}

struct cluster *cf_node(struct cluster_fx *x, unsigned i)
{
    assert_true(i < x->n);
    return x->nodes[i].c;
}

void cf_step(struct cluster_fx *x)
{
    raft_fixture_step(&x->f);
    uv_run(&x->loop, UV_RUN_NOWAIT);
    for (unsigned i = 0; i < x->n; i++)
        cluster__check(x->nodes[i].c);
}

void cf_tick(struct cluster_fx *x)
{
    for (unsigned i = 0; i < x->n; i++)
        cluster__tick(x->nodes[i].c);
}

bool cf_step_until(struct cluster_fx *x, bool (*pred)(void *), void *arg,
                   unsigned max_steps)
{
    for (unsigned k = 0; k < max_steps && !pred(arg); k++) {
        cf_step(x);
        if (k % 50 == 49)
            cf_tick(x);
    }
    return pred(arg);
}

unsigned cf_leader(struct cluster_fx *x)
{
    return raft_fixture_leader_index(&x->f);
}
