/* Whole cluster objects (src/cluster) on libraft's in-memory fixture, for
 * the unit tests of the proposal path, forwarding and membership: every
 * node is a real struct cluster (cluster_create, its FSM on a real store
 * in a temporary directory) whose raft is a fixture server, so consensus
 * runs deterministically in virtual time while the node links between
 * nodes are real WebSocket connections on 127.0.0.1 (each node's "gateway"
 * is a tests/lib/upgrade_server handing link upgrades to
 * cluster_link_accept, as the real gateway does).
 *
 * cf_step() advances everything by one event: one fixture event, one
 * non-blocking turn of the loop, and each node's check phase
 * (cluster__check); cf_tick() runs each node's periodic work
 * (cluster__tick). */
#ifndef CHORUS_TESTS_LIB_CLUSTER_FIXTURE_H
#define CHORUS_TESTS_LIB_CLUSTER_FIXTURE_H

#include <stdbool.h>

#include <raft.h>
#include <raft/fixture.h>
#include <uv.h>

#include "cluster/cluster_int.h"
#include "lib/upgrade_server.h"
#include "store/store.h"

#define CF_MAX_NODES 5

struct cf_node {
    struct cluster *c;
    struct store *store;
    char dir[300];
    struct test_upgrade_server gw; /* the node's gateway, for links */
};

struct cf_options {
    unsigned n_voters;           /* bootstrapped voters (the first ones) */
    unsigned n_nodes;            /* nodes in all (the rest: empty, idle) */
    unsigned publish_timeout_ms; /* 0: 5000 */
};

struct cluster_fx {
    struct raft_fixture f; /* zeroed (libraft pitfall: n is not reset) */
    uv_loop_t loop;
    char base[256];
    unsigned n;
    unsigned publish_timeout_ms;
    bool is_running; /* started and not stopped */
    struct cf_node nodes[CF_MAX_NODES];
};

/* cmocka set-up and tear-down for a test's fixture struct of `size`
 * bytes whose first member is a struct cluster_fx (zeroed, not started):
 * the test heap is counting between them; the tear-down stops the
 * cluster if it runs and fails the test on a leak. */
int cf_setup(void **state, size_t size);
int cf_teardown(void **state);

/* Sets up and starts the nodes; node 0 becomes leader and is ready (its
 * leader barrier applied). Fails the test on error. */
void cf_start(struct cluster_fx *x, const struct cf_options *o);
/* Adds an empty node (as one started with --join: no configuration, it
 * waits to be added) and returns its index (its id is index + 1, its raft
 * address "<id>"). */
unsigned cf_grow(struct cluster_fx *x);
/* Stops everything (fixture first: its pending callbacks fire), closes
 * the loop, removes the directories. Does nothing if not running. */
void cf_stop(struct cluster_fx *x);

/* The cluster object of node i. */
struct cluster *cf_node(struct cluster_fx *x, unsigned i);
/* One event of everything (see the file comment). */
void cf_step(struct cluster_fx *x);
/* Runs each node's periodic work once. */
void cf_tick(struct cluster_fx *x);
/* Steps (ticking every 50 fixture steps) until pred(arg) or max_steps. */
bool cf_step_until(struct cluster_fx *x, bool (*pred)(void *), void *arg,
                   unsigned max_steps);

/* The outcome of one admin request (cluster_admin_cb): record it with
 * cf_answer_cb (arg: the struct), wait for it with cf_answered. */
struct cf_answer {
    unsigned n_fired; /* fails the test if it fires twice */
    int status;
    char text[200];
};
void cf_answer_cb(void *arg, int status, const char *text);
bool cf_answered(void *arg);

/* The leader's index, or n when there is none. */
unsigned cf_leader(struct cluster_fx *x);

#endif
