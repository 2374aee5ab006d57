/* A deterministic, in-process stand-in for the cluster (cluster/cluster.h)
 * so the gateway can be fuzzed without raft, sockets between nodes or
 * timers. It behaves like the leader of a one-node cluster whose log
 * commits only when the harness calls fake_cluster_step(): publishes are
 * encoded with the real raft-command codec, decoded again and applied to
 * a real store, as cluster/fsm.c does; callbacks run from the step, never
 * from inside the call that queued them (as with the real cluster). */
#ifndef CHORUS_TESTS_LIB_FAKE_CLUSTER_H
#define CHORUS_TESTS_LIB_FAKE_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/cluster.h"

/* Returns NULL on out of memory. The store stays owned by the caller. */
struct cluster *fake_cluster_create(struct store *store);
void fake_cluster_destroy(struct cluster *c);
/* Commits and applies everything queued, then answers the callbacks.
 * Returns true if anything was done. */
bool fake_cluster_step(struct cluster *c);
/* True when no publish or admin request waits for an answer. */
bool fake_cluster_idle(struct cluster *c);
/* Node links the gateway handed over (each is closed at once). */
unsigned fake_cluster_link_accepts(struct cluster *c);
/* From the next step on, publishes are answered with `status` (0: they
 * commit again) and not applied. */
void fake_cluster_set_publish_status(struct cluster *c, int status);
/* NULL: healthy; else the reason cluster_health_reason() gives (borrowed,
 * must stay valid). */
void fake_cluster_set_health(struct cluster *c, const char *reason);
/* From the next step on, publishes are applied to the store without the
 * applied callback (true), as entries a snapshot brings: the gateway
 * learns of them only through fake_cluster_restored(). */
void fake_cluster_set_unseen(struct cluster *c, bool is_unseen);
/* Calls the restored callback, as after a snapshot was installed. */
void fake_cluster_restored(struct cluster *c);
/* From now on cluster_publish refuses at once with `rv` (CH_EFULL,
 * CH_ENOTLEADER, CH_ESHUTDOWN...; 0: publishes are taken again). */
void fake_cluster_set_publish_refusal(struct cluster *c, int rv);
/* The leader cluster_get_status reports (0: none known) and this node's
 * state (borrowed, must stay valid); by default 1 and "leader". */
void fake_cluster_set_leader(struct cluster *c, uint64_t leader_id,
                             const char *state);
/* Membership requests (join/leave/transfer) from now on: refused at once
 * with `refusal` if non-zero; else taken, and answered at the next step
 * with `status` and `text` (borrowed) if `status` is non-zero. Both 0:
 * the default (members 1..3 exist, others are "not found"). */
void fake_cluster_set_admin_outcome(struct cluster *c, int refusal, int status,
                                    const char *text);

/* The last membership request the cluster was given (taken or refused by
 * the stand-in itself). */
enum fake_admin_op {
    FAKE_ADMIN_NONE,
    FAKE_ADMIN_JOIN,
    FAKE_ADMIN_LEAVE,
    FAKE_ADMIN_TRANSFER,
};
struct fake_admin_req {
    enum fake_admin_op op;
    uint64_t id;
    char raft[CH_MAX_ADDR_BYTES + 1]; /* join */
    char http[CH_MAX_ADDR_BYTES + 1]; /* join */
    int role;                         /* join: CLUSTER_ROLE_* */
};
/* Membership requests seen so far; *last (if not NULL) gets the last. */
unsigned fake_cluster_admin_requests(struct cluster *c,
                                     struct fake_admin_req *last);

#endif
