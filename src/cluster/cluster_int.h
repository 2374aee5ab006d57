/* Internals of the cluster module, shared by its files and unit tests. */
#ifndef CHORUS_CLUSTER_CLUSTER_INT_H
#define CHORUS_CLUSTER_CLUSTER_INT_H

#include <limits.h>

#include <raft.h>
#include <raft/uv.h>

#include "cluster/cluster.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/codec.h"

/* One publish waiting for its outcome. */
struct waiter {
    cluster_publish_cb cb; /* NULL once answered (e.g. timed out) */
    void *arg;
    uint64_t deadline_ms; /* uv_now() based */
};

/* A batch of publishes that becomes one raft entry. */
struct batch {
    struct raft_apply req; /* req.data = this batch */
    struct cluster *c;
    struct ch_batch_enc enc;
    struct waiter *waiters; /* n_waiters, in publish order */
    size_t n_waiters;
    size_t cap_waiters;
    bool proposed;      /* handed to raft_apply */
    struct batch *next; /* in the waiting or in-flight list */
};

/* The FSM's answer for one applied entry (result of fsm->apply). */
struct fsm_result {
    int status; /* 0 or CH_ECORRUPT (entry undecodable) */
    size_t n;
    const struct store_result *results;
};

struct cluster {
    uv_loop_t *loop;
    struct cluster_config cfg;
    struct store *store;
    char raft_dir[PATH_MAX];
    char errmsg[CH_ERRMSG_SIZE];

    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    struct raft *r; /* the raft the FSM reports to: &raft, or a fixture's */
    bool raft_inited;
    bool raft_started;

    /* FSM scratch, reused for every entry. */
    struct store_result *scratch;
    size_t scratch_cap;
    struct fsm_result result;
    struct store_snap *snap;  /* snapshot in progress */
    struct ch_buf snap_buf;   /* its serialized bytes */
    struct raft_buffer snap_rbuf;

    cluster_applied_cb applied_cb;
    void *applied_arg;

    /* Proposals: `open` takes new publishes; full or flushed batches wait
     * in waiting_head..tail until an in-flight slot is free. */
    struct batch *open;
    struct batch *waiting_head, *waiting_tail;
    struct batch *inflight_head, *inflight_tail;
    unsigned n_inflight;
    size_t n_pending; /* publishes not yet answered */

    uv_check_t flush_check;  /* proposes batches once per loop turn */
    uv_timer_t tick_timer;   /* publish timeouts, leader monitor */
    uint64_t last_leader_id;
    int last_state;
    bool barrier_pending;
    bool is_ready; /* leader's barrier done, or follower with leader */
    struct raft_barrier barrier;

    bool accepting_stopped;
    bool closing;
    int n_handles_open;
    cluster_close_cb close_cb;
    void *close_arg;

    struct cluster_metrics metrics;
};

/* fsm.c */
int cluster__fsm_init(struct cluster *c);
void cluster__fsm_close(struct cluster *c);

/* propose.c */
void cluster__propose_flush(struct cluster *c);
void cluster__propose_expire(struct cluster *c);
void cluster__propose_fail_all(struct cluster *c, int status);
void cluster__batch_free(struct batch *b);

#endif
