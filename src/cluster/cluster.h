/* The cluster: one raft group per node (libraft 0.15 on the node's libuv
 * loop), the FSM that applies commands to the store, and the proposal path
 * that batches many publishes into one raft entry.
 *
 * Threads: every function here runs on the loop thread. Callbacks fire on
 * the loop thread, never synchronously from the call that registered them. */
#ifndef CHORUS_CLUSTER_CLUSTER_H
#define CHORUS_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/codec.h"
#include "common/limits.h"
#include "store/store.h"

struct cluster;

/* One member of the initial configuration (--cluster). */
struct cluster_member {
    uint64_t id;
    char raft[CH_MAX_ADDR_BYTES + 1]; /* IPv4:port */
    char http[CH_MAX_ADDR_BYTES + 1]; /* host:port */
    int role;                         /* CLUSTER_ROLE_* */
};

enum {
    CLUSTER_ROLE_VOTER = 0,
    CLUSTER_ROLE_STANDBY = 1,
    CLUSTER_ROLE_SPARE = 2
};

/* Parses `ID=RAFT/HTTP[,ID=RAFT/HTTP...]` into a malloc'd array (ch_free()).
 * RAFT must be an IPv4 literal with a port. Ids unique and >= 1.
 * Returns 0 or CH_EINVAL with a reason in errmsg. */
int cluster_spec_parse(const char *text, struct cluster_member **out,
                       unsigned *n_out, char *errmsg);
/* Checks "a.b.c.d:port" (raft 0.15 takes only IPv4 literals). */
bool cluster_addr_valid_ipv4(const char *addr);

struct cluster_config {
    uint64_t id;
    const char *raft_addr;    /* borrowed until cluster_destroy */
    const char *http_addr;    /* advertised gateway address */
    const char *data_dir;     /* raft log in data_dir/raft */
    const char *cluster_spec; /* --cluster or NULL */
    bool join;                /* --join given */
    const char *join_addr;    /* --join HTTP address or NULL */
    int64_t dedup_window_s;
    unsigned publish_timeout_ms;
    /* Raft tuning (0: defaults). */
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    size_t segment_bytes; /* raft_uv segment size */
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    /* Raft log bytes held in memory (docs/architecture.md "Snapshots and
     * catch-up"); 0: entries only. */
    uint64_t log_max_bytes;
};

/* Creates the cluster object (no I/O yet besides creating data_dir/raft).
 * Borrows loop and store until cluster_destroy. Returns 0 or CH_EINVAL /
 * CH_EIO / CH_ENOMEM with a reason in errmsg (CH_ERRMSG_SIZE). */
int cluster_create(uv_loop_t *loop, const struct cluster_config *cfg,
                   struct store *store, struct cluster **out, char *errmsg);
/* Initializes raft, bootstraps per the start-up rules (docs/operations.md
 * "Running a node") and starts it. Returns 0 or an error with a reason in
 * errmsg. */
int cluster_start(struct cluster *c, char *errmsg);

/* First step of shutdown: new publishes are refused with CH_ESHUTDOWN;
 * those already taken still complete. */
void cluster_stop_accepting(struct cluster *c);
/* Publishes taken and not yet answered. */
size_t cluster_pending(struct cluster *c);

typedef void (*cluster_close_cb)(struct cluster *c, void *arg);
/* Fails every publish not yet proposed (CH_ESHUTDOWN), closes raft (those
 * in flight fail with CH_EUNKNOWN), closes handles; then cb. Safe to call
 * once, also when cluster_start failed or was never called. */
void cluster_close(struct cluster *c, cluster_close_cb cb, void *arg);
/* Frees the object; only after the close callback. */
void cluster_destroy(struct cluster *c);

/* Called on every node after each applied publish batch, with the batch's
 * messages (seq/time set) and results (borrowed for the call). Messages
 * with results[i].status != 0 or is_dup were not stored. */
typedef void (*cluster_applied_cb)(void *arg, const struct ch_msg *msgs,
                                   const struct store_result *results,
                                   size_t n);
void cluster_set_applied_cb(struct cluster *c, cluster_applied_cb cb,
                            void *arg);

/* Completion of a publish: status 0 and *res, or CH_ETIMEDOUT /
 * CH_EUNKNOWN (outcome unknown), CH_ESHUTDOWN, CH_ENOTLEADER,
 * CH_EINVAL (res->status), CH_EIO (not committed). */
typedef void (*cluster_publish_cb)(void *arg, int status,
                                   const struct store_result *res);

/* Proposes one publish (fields copied at once; user/app/msgid/header/body as
 * the gateway validated them). If 0 is returned, cb fires exactly once,
 * within the publish timeout (or at close). Otherwise cb never fires:
 * CH_ENOTLEADER (no leader reachable), CH_EFULL (too many pending),
 * CH_ESHUTDOWN, CH_ENOMEM. */
int cluster_publish(struct cluster *c, const struct ch_msg *m,
                    cluster_publish_cb cb, void *arg);

/* Completion of an admin request: status 0 or CH_E*, with a one-line
 * reason (borrowed for the call; "" on success). */
typedef void (*cluster_admin_cb)(void *arg, int status, const char *text);

/* Membership (docs/protocol.md "HTTP API"): any node takes them and forwards to
 * the leader. join adds `id` with its raft and HTTP address (a voter first
 * catches up as a standby... then is promoted); leave removes it (the leader
 * transfers leadership first when it is the one leaving); transfer moves
 * leadership to `id` (0: any voter). If 0 is returned, cb fires exactly once;
 * otherwise never (CH_EINVAL, CH_ESHUTDOWN, CH_ENOMEM). */
int cluster_join(struct cluster *c, uint64_t id, const char *raft,
                 const char *http, int role, cluster_admin_cb cb, void *arg);
int cluster_leave(struct cluster *c, uint64_t id, cluster_admin_cb cb,
                  void *arg);
int cluster_transfer(struct cluster *c, uint64_t id, cluster_admin_cb cb,
                     void *arg);

/* The leader tells a removed node (link op REMOVED): if `id` is this node,
 * the removed callback fires (the node shuts down). */
void cluster_removed_notice(struct cluster *c, uint64_t id);
typedef void (*cluster_removed_cb)(void *arg);
void cluster_set_removed_cb(struct cluster *c, cluster_removed_cb cb,
                            void *arg);
/* The node must stop: its store is damaged and marked to be rebuilt at the
 * next start (docs/architecture.md "Damaged files"); `why` is one line. */
typedef void (*cluster_fatal_cb)(void *arg, const char *why);
void cluster_set_fatal_cb(struct cluster *c, cluster_fatal_cb cb, void *arg);
/* Called after the store was replaced by a snapshot from the leader. */
typedef void (*cluster_restored_cb)(void *arg);
void cluster_set_restored_cb(struct cluster *c, cluster_restored_cb cb,
                             void *arg);

/* As cluster_publish, for a publish another node forwarded here (the
 * leader then makes sure followers learn the commit quickly: they answer
 * their clients only once they applied it). */
int cluster_publish_forwarded(struct cluster *c, const struct ch_msg *m,
                              cluster_publish_cb cb, void *arg);

/* The path of node-to-node links on the gateway port. */
#define CLUSTER_LINK_PATH "/internal/link"

/* Serves a node-to-node link (docs/architecture.md "Clients on any node:
 * forwarding"): the gateway read a WebSocket upgrade request for
 * CLUSTER_LINK_PATH on fd, checked it, and hands the connection over; the
 * cluster answers the upgrade (Sec-WebSocket-Accept for `ws_key`) and
 * speaks the link protocol on it from then on. fd is owned by the cluster
 * from the call on, also on error (closed then). peer names the other end
 * in logs (copied). Returns 0, CH_ESHUTDOWN, CH_EINVAL (bad key),
 * CH_ENOMEM or CH_EIO. */
int cluster_link_accept(struct cluster *c, int fd, const char *ws_key,
                        const char *peer);

/* The store this node applies to (for reads by the gateway). */
struct store *cluster_store(struct cluster *c);

struct cluster_status {
    uint64_t id;
    const char *state; /* leader|follower|candidate|unavailable|joining */
    uint64_t term;
    uint64_t leader_id; /* 0: none known */
    uint64_t commit_index;
    uint64_t applied_index;
    unsigned n_members;
    struct cluster_member members[16];
};
void cluster_get_status(struct cluster *c, struct cluster_status *out);
/* True when this node is the leader (requests from other nodes are run
 * here only then). */
bool cluster_is_leader(struct cluster *c);
/* True when this node knows a leader and is ready to take publishes. */
bool cluster_is_healthy(struct cluster *c);
/* Why the node is not healthy (NULL when it is): borrowed until the next
 * loop turn. */
const char *cluster_health_reason(struct cluster *c);

/* Counters for /metrics. */
struct cluster_metrics {
    uint64_t publishes_committed;
    uint64_t publishes_failed;
    uint64_t publishes_dup;
    uint64_t entries_applied;
    uint64_t batches_proposed;
    uint64_t snapshots_taken;
    uint64_t damaged_ranges; /* found damaged on disk, fetched again */
    uint64_t pending_publishes;
};
void cluster_get_metrics(struct cluster *c, struct cluster_metrics *out);

#endif
