/* Internals of the cluster module, shared by its files and unit tests. */
#ifndef CHORUS_CLUSTER_CLUSTER_INT_H
#define CHORUS_CLUSTER_CLUSTER_INT_H

#include <limits.h>

#include <raft.h>
#include <raft/uv.h>

#include "cluster/cluster.h"
#include "cluster/link_int.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/queue.h"
#include "common/wsconn.h"

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
    bool proposed;        /* handed to raft_apply */
    bool has_remote;      /* holds publishes forwarded by other nodes */
    struct ch_queue link; /* in c->waiting or c->inflight */
};

/* A request forwarded to the leader over the link (forward.c). */
struct fwd_req {
    struct ch_queue link; /* in fwd_queued, a link's sent, or fwd_apply */
    uint64_t req_id;
    enum link_op op;
    struct ch_buf item; /* the encoded request (cluster/link_int.h) */
    uint64_t deadline_ms;
    bool sent;
    cluster_publish_cb pub_cb; /* PUBLISH */
    cluster_admin_cb admin_cb; /* other ops */
    void *arg;
    struct store_result res; /* PUBLISH answer, waiting for local apply */
};

/* One link to a leader and the requests sent on it. */
struct fwd_link {
    struct cluster *c;
    struct lclient *l;  /* NULL when none */
    uint64_t leader_id; /* whom it goes to */
    bool open;
    struct ch_queue sent; /* struct fwd_req sent, no answer yet */
};

/* The next raft request of a membership change (membership.c). */
enum mchange_step {
    MSTEP_START,        /* join: directory entry; leave: remove or hand
                           over; transfer: transfer */
    MSTEP_JOIN_ADD,     /* raft_add (as a spare) */
    MSTEP_JOIN_ASSIGN,  /* raft_assign to standby (a voter-to-be too) */
    MSTEP_JOIN_WAIT,    /* a voter-to-be catches up as a standby: the tick
                           asks it (link STATUS) until it holds every
                           message */
    MSTEP_JOIN_PROMOTE, /* raft_assign to voter */
    MSTEP_LEAVE_DIR,    /* the directory entry goes */
};

/* A membership change run by the leader (membership.c); one at a time. */
struct mchange {
    struct cluster *c;
    enum mchange_step step; /* what runs next */
    bool is_due;            /* step runs in the next check phase */
    enum link_op op;
    uint64_t id;
    char raft[CH_MAX_ADDR_BYTES + 1];
    char http[CH_MAX_ADDR_BYTES + 1];
    int role;
    cluster_admin_cb cb;
    void *arg;
    /* MSTEP_JOIN_WAIT: the link asking the new node, when to ask next,
     * and when to give up. */
    struct lclient *status_link;
    bool status_asked;
    uint64_t status_next_ms;
    uint64_t wait_deadline_ms;
    struct raft_apply apply_req;
    struct raft_change change_req;
    struct raft_transfer transfer_req;
};

/* Fetching the messages this node lacks (catchup.c). */
struct cluster_catchup {
    bool wanted;  /* check for holes at the next tick (start, restore) */
    bool active;  /* holes exist: fetching */
    bool recount; /* a restore added holes: recount what is missing */
    struct lclient *l;
    uint64_t peer_id;
    unsigned turn;     /* which member to ask (pick_peer) */
    uint64_t retry_ms; /* no new link before */
    bool in_flight;    /* a FETCH sent, not answered */
    uint64_t req_id;   /* its id */
    uint64_t deadline_ms;
    int64_t from;                      /* its first seq */
    char path[CH_MAX_TOPIC_BYTES + 1]; /* its topic */
    size_t path_n;
    int64_t missing;          /* messages still missing (health) */
    struct store_scrub scrub; /* the pass over the store after start */
    uint64_t scrub_start_ms;
    bool is_store_damaged; /* damage found: the node stops to rebuild */
    uint64_t fetched;      /* messages stored by this catch-up */
    struct ch_msg *msgs;   /* an answer's messages (CH_MAX_CATCHUP_MSGS) */
    char reason[96];
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
    /* Raft log entries applied since the last snapshot began, and their
     * bytes: a snapshot is due by bytes as well as by entries (fsm.c). */
    uint64_t log_entries;
    uint64_t log_bytes;
    bool is_snapshot_forced; /* threshold and trailing lowered for bytes */
    /* Last index raft_start loaded from a big log, 0 once the release is
     * armed: the loaded entries pin their segment-sized buffers until a
     * snapshot drops every one of them (fsm.c cluster__release_tick). */
    uint64_t loaded_last;
    /* The heap the loaded log sat in is handed back to the system at the
     * tick after a releasing snapshot (malloc keeps freed heap otherwise). */
    uint64_t release_after;  /* applied when the release was armed */
    bool is_release_pending; /* a releasing snapshot is due or running */
    bool is_nudge_asked;     /* a follower asked the leader for an entry */
    uint64_t nudge_ask_ms;   /* when it may ask (again) */
    bool is_trim_due;
    struct store_snap *snap; /* snapshot in progress */
    uint64_t snap_index;     /* its index */
    uint64_t snap_loop_ns;   /* its time on the loop (fsm_snapshot) */
    uint64_t snap_pool_ns;   /* its time in the pool (sync + serialize) */
    struct ch_buf snap_buf;  /* its serialized bytes */
    struct raft_buffer snap_rbuf;

    cluster_applied_cb applied_cb;
    void *applied_arg;
    cluster_fatal_cb fatal_cb;
    void *fatal_arg;
    cluster_removed_cb removed_cb;
    void *removed_arg;
    cluster_restored_cb restored_cb;
    void *restored_arg;

    /* Initial members from --cluster: HTTP addresses until the replicated
     * directory has them. */
    struct cluster_member *spec_members;
    unsigned n_spec_members;
    bool directory_checked; /* leader proposed missing directory entries */

    /* Forwarding to the leader (forward.c). */
    struct fwd_link *link;     /* to the current leader, or NULL */
    struct fwd_link *old_link; /* to the previous one, draining answers */
    uint64_t next_req_id;
    struct ch_queue fwd_queued; /* struct fwd_req not sent yet */
    struct ch_queue fwd_apply;  /* answered, waiting for local apply */
    uint64_t link_retry_ms;     /* no reconnect before */

    /* Joining with --join ADDR (membership.c). */
    struct lclient *join_link;
    bool join_done;
    uint64_t join_retry_ms;

    /* The membership change in progress on the leader, or NULL. */
    struct mchange *change;
    /* Admin requests refused at once, answered from the check phase (a
     * callback never fires from inside the call that registered it). */
    struct ch_queue admin_answers;
    bool removed;     /* told we were removed; shutting down */
    bool node_failed; /* store or raft log cannot be written */
    bool step_down_pending;
    char fail_reason[CH_ERRMSG_SIZE];
    bool was_member;

    /* Proposals: `open` takes new publishes; full or flushed batches wait
     * in `waiting` until an in-flight slot is free. */
    struct batch *open;
    struct ch_queue waiting;  /* struct batch, oldest first */
    struct ch_queue inflight; /* struct batch, proposed, oldest first */
    unsigned n_inflight;
    size_t n_pending; /* publishes not yet answered */

    uv_check_t flush_check; /* proposes batches once per loop turn */
    uv_timer_t tick_timer;  /* publish timeouts, leader monitor */
    uint64_t last_leader_id;
    int last_state;
    bool barrier_pending;
    bool nudge_pending; /* a barrier telling followers the commit index */
    bool nudge_wanted;
    struct raft_barrier nudge;
    bool is_ready; /* leader's barrier done, or follower with leader */
    struct raft_barrier barrier;

    /* Raft callbacks running now: nothing is handed to raft while it is
     * not 0 (cluster__raft_*; docs/architecture.md "Raft"). */
    unsigned n_in_raft_cb;
    uv_idle_t kick; /* active while work waits for the check phase */
    bool is_kick_inited;

    bool accepting_stopped;
    bool closing;
    int n_handles_open;
    cluster_close_cb close_cb;
    void *close_arg;

    /* Node links: the connections of both ends share one read buffer;
     * the links peers opened to this node are served here. */
    struct ch_wsctx wsctx;
    struct lservers lservers;
    struct cluster_catchup catchup;

    struct cluster_metrics metrics;
};

/* cluster.c */
/* Every function libraft calls (FSM, request callbacks) brackets itself
 * with enter/leave; every call that hands libraft a new request goes
 * through the cluster__raft_* wrappers, which assert no callback is
 * running. libraft 0.15 runs callbacks in the middle of its own state
 * changes: it fails pending applies from inside its step-down while
 * raft_state() still says leader, and a raft_apply there crashed a leader
 * (tests/chaos/repro_leader_stepdown.py). Work found inside a callback is
 * done from the check phase (cluster__kick). */
void cluster__raft_cb_enter(struct cluster *c);
void cluster__raft_cb_leave(struct cluster *c);
int cluster__raft_apply(struct cluster *c, struct raft_apply *req,
                        const struct raft_buffer *buf, raft_apply_cb cb);
int cluster__raft_barrier(struct cluster *c, struct raft_barrier *req,
                          raft_barrier_cb cb);
int cluster__raft_add(struct cluster *c, struct raft_change *req, raft_id id,
                      const char *address, raft_change_cb cb);
int cluster__raft_assign(struct cluster *c, struct raft_change *req, raft_id id,
                         int role, raft_change_cb cb);
int cluster__raft_remove(struct cluster *c, struct raft_change *req, raft_id id,
                         raft_change_cb cb);
int cluster__raft_transfer(struct cluster *c, struct raft_transfer *req,
                           raft_id id, raft_transfer_cb cb);
/* Makes the loop reach its check phase without waiting in poll (work was
 * queued from a timer or a raft callback). */
void cluster__kick(struct cluster *c);
/* The periodic work (every heartbeat): leader monitor, publish and
 * forward deadlines, links to the leader, membership upkeep. */
void cluster__tick(struct cluster *c);
/* The work of each loop turn's check phase: due membership steps, batches
 * proposed, follower nudge, forwarded requests and link answers sent. */
void cluster__check(struct cluster *c);
/* A leader that cannot apply hands leadership over (best effort). */
void cluster__step_down(struct cluster *c);
/* Marks the node unhealthy with a reason (logged once) and steps down. */
void cluster__fail(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* fsm.c */
int cluster__fsm_init(struct cluster *c);
void cluster__fsm_close(struct cluster *c);

/* forward.c */
int cluster__forward_publish(struct cluster *c, const struct ch_msg *m,
                             cluster_publish_cb cb, void *arg);
int cluster__forward_admin(struct cluster *c, const struct link_req *r,
                           cluster_admin_cb cb, void *arg);
void cluster__forward_tick(struct cluster *c);
void cluster__forward_flush(struct cluster *c);
void cluster__forward_applied(struct cluster *c);
void cluster__forward_fail_all(struct cluster *c, int status);
/* Looks up a member's gateway address (directory, then --cluster).
 * Returns true and fills out. */
bool cluster__member_http(struct cluster *c, uint64_t id, char *out,
                          size_t out_size);

/* catchup.c */
void cluster__catchup_init(struct cluster *c);
void cluster__catchup_close(struct cluster *c);
/* A snapshot was restored (from inside raft's callback: the work waits for
 * the tick). */
void cluster__catchup_restored(struct cluster *c);
void cluster__catchup_tick(struct cluster *c);
/* After a restart, asks the leader for an entry once the loaded log is
 * applied, so that log can be dropped (fsm.c). */
void cluster__release_tick(struct cluster *c);
/* "catching up: …" while messages are missing, else NULL. */
const char *cluster__catchup_reason(struct cluster *c);
/* The serving end of FETCH: packs (link_fetched_pack) the stored messages
 * of path from `from` on (at most to - from + 1, one chunk) into out.
 * Returns 0 (*n_msgs >= 1), CH_EMISSING (none of them here), CH_EINVAL,
 * CH_ENOMEM or a store error. */
int cluster__fetch(struct cluster *c, struct ch_bytes path, int64_t from,
                   int64_t to, struct ch_buf *out, uint32_t *n_msgs);
/* membership.c */
int cluster__admin_local(struct cluster *c, const struct link_req *r,
                         cluster_admin_cb cb, void *arg);
/* Runs the due step of the change in progress and answers refused admin
 * requests (check phase). */
void cluster__membership_run(struct cluster *c);
void cluster__membership_tick(struct cluster *c);
void cluster__membership_close(struct cluster *c);
bool cluster__is_member(struct cluster *c, uint64_t id);

/* propose.c */
int cluster__propose_local(struct cluster *c, const struct ch_msg *m,
                           cluster_publish_cb cb, void *arg, bool remote);
void cluster__propose_flush(struct cluster *c);
void cluster__propose_expire(struct cluster *c);
void cluster__propose_fail_all(struct cluster *c, int status);
void cluster__nudge_followers(struct cluster *c);
void cluster__batch_free(struct batch *b);

#endif
