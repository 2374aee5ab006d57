/* The raft FSM: applies committed entries to the store (one LMDB write
 * transaction per entry, applied index inside it, so the re-apply after a
 * restart is a no-op), and takes/restores snapshots.
 *
 * An undecodable entry is applied as a no-op and reported through the
 * result, alike on every replica. When the store cannot take an entry,
 * apply returns an error on purpose: libraft then stops applying on this
 * node (a follower turns unavailable, a leader freezes its apply loop)
 * instead of skipping it, the node reports itself unhealthy, and after a
 * restart with room the entries are applied from the raft log,
 * idempotently (docs/architecture.md "Failure handling"). */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An entry to release the loaded log is asked for at most this often. */
#define RELEASE_NUDGE_EVERY_MS 1000

static int ensure_scratch(struct cluster *c, size_t n)
{
    struct store_result *p;
    size_t cap;

    if (n <= c->scratch_cap)
        return 0;
    cap = c->scratch_cap ? c->scratch_cap : 64;
    while (cap < n)
        cap *= 2;
    p = ch_realloc(c->scratch, cap * sizeof *p);
    if (p == NULL)
        return CH_ENOMEM;
    c->scratch = p;
    c->scratch_cap = cap;
    return 0;
}

/* The store cannot take an entry (disk or map full, I/O error). Skipping it
 * would make this replica diverge, so the FSM refuses it: libraft stops
 * applying here (docs/libraft.md "The FSM": a follower turns unavailable, a
 * leader freezes its apply loop), the node reports itself unhealthy with the
 * reason, a leader hands leadership over (from the tick, not from inside
 * raft), and nothing is corrupted. After a
 * restart with space freed (or a larger --store-max-bytes) the entries are
 * applied from the raft log, idempotently. */
static int node_failed(struct cluster *c, uint64_t index, int rv)
{
    if (rv == CH_ENOMEM)
        cluster__fail(c, "out of memory, applying stopped at index %llu",
                      (unsigned long long)index);
    else
        cluster__fail(c,
                      "store failure, applying stopped at index %llu: %s: "
                      "%.150s",
                      (unsigned long long)index, ch_strerror(rv),
                      store_errmsg(c->store));
    return RAFT_IOERR;
}

static int apply_entry(struct cluster *c, const struct raft_buffer *buf,
                       void **result);

/* Counts what the in-memory raft log holds since the last snapshot; when
 * its bytes reach half of --raft-log-max-bytes a snapshot is made due now
 * (libraft checks the threshold after each apply loop: setting it to the
 * entries counted makes the check pass), keeping only as many trailing
 * entries as fit in the other half at their average size. So the log in
 * memory stays near the limit whatever the entries' sizes: 1024 entries of
 * 1 MiB batches would otherwise be a GiB (docs/architecture.md "Snapshots
 * and catch-up"). */
static void count_log(struct cluster *c, size_t len)
{
    uint64_t half = c->cfg.log_max_bytes / 2;
    uint64_t avg;
    uint64_t trailing;

    c->log_entries++;
    c->log_bytes += len;
    if (half == 0 || c->log_bytes < half || c->r == NULL ||
        c->is_release_pending)
        return; /* a releasing snapshot is due anyway */
    avg = c->log_bytes / c->log_entries;
    trailing = half / (avg > 0 ? avg : 1);
    if (trailing < 1)
        trailing = 1;
    if (trailing > c->cfg.snapshot_trailing)
        trailing = c->cfg.snapshot_trailing;
    raft_set_snapshot_trailing(c->r, (unsigned)trailing);
    raft_set_snapshot_threshold(
        c->r, c->log_entries < UINT_MAX ? (unsigned)c->log_entries : UINT_MAX);
    c->is_snapshot_forced = true;
}

static void nudge_answered(void *arg, int status, const char *text)
{
    struct cluster *c = arg;

    c->is_nudge_asked = false;
    if (status != 0)
        log_debug("fsm", "entry asked for refused err=%s: %s",
                  ch_strerror(status), text);
}

/* raft_start reads each segment file into one buffer that its entries
 * point into, so one entry kept pins a whole segment (the open one is read
 * at its full --raft-segment-bytes) until a snapshot drops it: a restarted
 * node would hold the log it loaded until the next snapshot, and then
 * still the segment its trailing entries sit in. So once the loaded
 * entries are applied, the next entry applied makes a snapshot keeping
 * only itself, which is in no loaded buffer, and the tick after it hands
 * the heap back (docs/operations.md "Data directory"). On an idle cluster
 * that entry is asked for: a leader appends a barrier, a follower asks the
 * leader for one (link NUDGE). Trailing 0 is not an option: raft_uv takes
 * it for an installed snapshot and drops the entries after it too. */
void cluster__release_tick(struct cluster *c)
{
    struct link_req lr;
    uint64_t now = uv_now(c->loop);

    if (c->closing)
        return;
    if (c->loaded_last != 0) {
        if (raft_last_applied(c->r) < c->loaded_last)
            return;
        log_info("fsm",
                 "releasing loaded raft log at the next entry "
                 "loaded_last=%llu applied=%llu",
                 (unsigned long long)c->loaded_last,
                 (unsigned long long)raft_last_applied(c->r));
        c->release_after = raft_last_applied(c->r);
        c->loaded_last = 0;
        c->is_release_pending = true;
        raft_set_snapshot_trailing(c->r, 1);
        raft_set_snapshot_threshold(c->r, 1);
        c->is_snapshot_forced = true;
    }
    if (!c->is_release_pending || c->is_nudge_asked || now < c->nudge_ask_ms)
        return;
    c->nudge_ask_ms = now + RELEASE_NUDGE_EVERY_MS;
    if (raft_state(c->r) == RAFT_LEADER) {
        c->nudge_wanted = true;
        cluster__kick(c);
    } else if (raft_state(c->r) == RAFT_FOLLOWER) {
        memset(&lr, 0, sizeof lr);
        lr.op = LINK_NUDGE;
        lr.id = c->cfg.id;
        if (cluster__forward_admin(c, &lr, nudge_answered, c) == 0)
            c->is_nudge_asked = true;
    }
}

/* Every entry point libraft calls brackets itself (cluster__raft_cb_enter):
 * nothing is proposed from inside (cluster_int.h). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct cluster *c = fsm->data;
    int rv;

    cluster__raft_cb_enter(c);
    rv = apply_entry(c, buf, result);
    if (rv == 0)
        count_log(c, buf->len);
    cluster__raft_cb_leave(c);
    return rv;
}

static int apply_entry(struct cluster *c, const struct raft_buffer *buf,
                       void **result)
{
    /* libraft 0.15 passes no index: during apply it is last_applied + 1. */
    uint64_t index = raft_last_applied(c->r) + 1;
    struct ch_cmd cmd;
    bool skipped = false;
    int rv;

    c->metrics.entries_applied++;
    c->result.status = 0;
    c->result.n = 0;
    c->result.results = NULL;
    *result = &c->result;

    rv = ch_cmd_decode(buf->base, buf->len, &cmd);
    if (rv == CH_ENOMEM) {
        /* Skipping it would make this replica diverge: stop applying. */
        log_error("fsm", "out of memory decoding index=%llu len=%zu",
                  (unsigned long long)index, buf->len);
        return node_failed(c, index, rv);
    }
    if (rv != 0) {
        log_error("fsm", "undecodable entry skipped index=%llu len=%zu",
                  (unsigned long long)index, buf->len);
        c->result.status = CH_ECORRUPT;
        rv = store_set_applied(c->store, index);
        if (rv != 0)
            return node_failed(c, index, rv);
        return 0;
    }

    switch (cmd.type) {
    case CH_CMD_PUBLISH:
        if (ensure_scratch(c, cmd.n_msgs) != 0) {
            log_error("fsm", "out of memory applying index=%llu n=%u",
                      (unsigned long long)index, cmd.n_msgs);
            ch_cmd_free(&cmd);
            return node_failed(c, index, CH_ENOMEM);
        }
        rv = store_apply_publish(c->store, index, cmd.time, cmd.dedup_window_s,
                                 cmd.msgs, cmd.n_msgs, c->scratch, &skipped);
        if (rv != 0) {
            ch_cmd_free(&cmd);
            return node_failed(c, index, rv);
        }
        if (skipped) {
            /* Re-applied after a restart: already in the store, and nobody
             * waits for it (pending requests do not survive a restart). */
            break;
        }
        for (uint32_t i = 0; i < cmd.n_msgs; i++) {
            cmd.msgs[i].seq = c->scratch[i].seq;
            cmd.msgs[i].time = c->scratch[i].time;
            c->scratch[i].index = index;
        }
        c->result.n = cmd.n_msgs;
        c->result.results = c->scratch;
        if (c->applied_cb != NULL)
            c->applied_cb(c->applied_arg, cmd.msgs, c->scratch, cmd.n_msgs);
        /* Forwarded publishes waiting for this index can be answered. */
        cluster__forward_applied(c);
        break;
    case CH_CMD_MEMBERS:
        rv = store_apply_members(c->store, index, cmd.members, cmd.n_members,
                                 &skipped);
        if (rv == CH_EINVAL) {
            log_error("fsm", "bad member change ignored index=%llu",
                      (unsigned long long)index);
            c->result.status = CH_EINVAL;
        } else if (rv != 0) {
            ch_cmd_free(&cmd);
            return node_failed(c, index, rv);
        } else if (!skipped) {
            for (uint32_t i = 0; i < cmd.n_members; i++)
                log_info("fsm",
                         "member directory %s id=%llu raft=%.*s "
                         "http=%.*s",
                         cmd.members[i].op == CH_MEMBER_SET ? "set" : "del",
                         (unsigned long long)cmd.members[i].id,
                         (int)cmd.members[i].raft.n, cmd.members[i].raft.p,
                         (int)cmd.members[i].http.n, cmd.members[i].http.p);
        }
        break;
    default:
        log_error("fsm", "unknown command type=%d index=%llu", (int)cmd.type,
                  (unsigned long long)index);
        c->result.status = CH_ECORRUPT;
        break;
    }
    ch_cmd_free(&cmd);
    if (c->node_failed) {
        log_warn("fsm", "store writes work again index=%llu",
                 (unsigned long long)index);
        c->node_failed = false;
    }
    return 0;
}

/* v3 snapshot, step 1 (loop thread): pin a consistent read view. Every
 * applied entry is committed to LMDB before apply returns, so the view is
 * never older than last_applied (docs/libraft.md "The FSM"). */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct cluster *c = fsm->data;
    int rv;

    if (c->snap != NULL)
        return RAFT_BUSY;
    /* This snapshot covers everything applied: counting starts again, with
     * the configured entry threshold. */
    c->log_entries = 0;
    c->log_bytes = 0;
    if (c->cfg.log_max_bytes == 0 || c->r == NULL) {
        /* entries only: the configured settings stay */
    } else if (c->is_snapshot_forced) {
        /* Due by bytes: the trailing entries count_log chose stay. */
        raft_set_snapshot_threshold(c->r, c->cfg.snapshot_threshold);
        c->is_snapshot_forced = false;
    } else {
        /* Due by entries: their bytes fit, so all trailing entries do. */
        raft_set_snapshot_trailing(c->r, c->cfg.snapshot_trailing);
    }
    c->snap_index = raft_last_applied(c->r);
    c->snap_loop_ns = uv_hrtime();
    rv = store_snapshot_begin(c->store, &c->snap);
    c->snap_loop_ns = uv_hrtime() - c->snap_loop_ns;
    if (rv != 0) {
        log_warn("fsm", "snapshot begin failed err=%s: %s", ch_strerror(rv),
                 store_errmsg(c->store));
        c->snap = NULL;
        return RAFT_BUSY;
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* v3 snapshot, step 2 (thread pool): serialize the pinned view. Touches
 * only the snapshot objects. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    struct cluster *c = fsm->data;
    int rv;

    /* The snapshot describes messages that are only in LMDB (opened
     * MDB_NOSYNC): they must be on disk before libraft may drop the log
     * entries that carried them (docs/architecture.md "Snapshots and
     * catch-up"). Everything up to the pinned view was committed before
     * this runs, so one sync covers it. */
    c->snap_pool_ns = uv_hrtime(); /* read by finalize, after this */
    rv = store_sync(c->store);
    if (rv != 0)
        return RAFT_IOERR;
    rv = store_snapshot_write(c->snap, &c->snap_buf);
    if (rv != 0)
        return RAFT_IOERR;
    c->snap_pool_ns = uv_hrtime() - c->snap_pool_ns;
    c->snap_rbuf.base = c->snap_buf.data;
    c->snap_rbuf.len = c->snap_buf.len;
    *bufs = &c->snap_rbuf;
    *n_bufs = 1;
    return 0;
}

/* v3 snapshot, step 3 (loop thread): the snapshot was written (or failed);
 * release the view and the buffer. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *c = fsm->data;
    uint64_t t0 = uv_hrtime();

    CH_ASSERT(c->n_in_raft_cb == 0); /* from raft's I/O completion */
    if (c->snap != NULL) {
        store_snapshot_end(c->snap);
        c->snap = NULL;
    }
    /* loop_us: the work on the loop (pinning and releasing the view);
     * pool_ms: syncing LMDB and serializing, in the thread pool. */
    log_info("fsm",
             "snapshot taken bytes=%zu applied=%llu loop_us=%llu "
             "pool_ms=%.1f",
             c->snap_buf.len, (unsigned long long)raft_last_applied(c->r),
             (unsigned long long)((c->snap_loop_ns + uv_hrtime() - t0) / 1000),
             (double)c->snap_pool_ns / 1e6);
    c->metrics.snapshots_taken++;
    if (c->is_release_pending && c->snap_index > c->release_after) {
        /* libraft drops the entries after this returns: trim at the tick */
        c->is_release_pending = false;
        c->is_trim_due = true;
    }
    ch_buf_free(&c->snap_buf);
    c->snap_rbuf.base = NULL;
    c->snap_rbuf.len = 0;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* Restore: at start-up with the newest snapshot, or after InstallSnapshot.
 * If the store already holds that state (normal start-up), nothing to do. */
static int restore(struct cluster *c, struct raft_buffer *buf);

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cluster *c = fsm->data;
    int rv;

    cluster__raft_cb_enter(c);
    rv = restore(c, buf);
    cluster__raft_cb_leave(c);
    return rv;
}

static int restore(struct cluster *c, struct raft_buffer *buf)
{
    uint64_t t0;
    uint64_t snap_index;
    uint64_t applied = store_applied_index(c->store);
    int rv;

    rv = store_snapshot_index(buf->base, buf->len, &snap_index);
    if (rv != 0) {
        log_error("fsm", "snapshot unreadable len=%zu", buf->len);
        return RAFT_CORRUPT;
    }
    if (snap_index <= applied) {
        log_info("fsm", "snapshot restore skipped snapshot=%llu applied=%llu",
                 (unsigned long long)snap_index, (unsigned long long)applied);
        raft_free(buf->base);
        return 0;
    }
    t0 = uv_hrtime();
    rv = store_restore(c->store, buf->base, buf->len);
    if (rv != 0) {
        log_error("fsm", "snapshot restore failed err=%s: %s", ch_strerror(rv),
                  store_errmsg(c->store));
        return rv == CH_ECORRUPT ? RAFT_CORRUPT : RAFT_IOERR;
    }
    /* on the loop: one write transaction for the whole state */
    log_info("fsm",
             "snapshot restored snapshot=%llu was=%llu bytes=%zu ms=%.1f",
             (unsigned long long)snap_index, (unsigned long long)applied,
             buf->len, (double)(uv_hrtime() - t0) / 1e6);
    raft_free(buf->base);
    cluster__catchup_restored(c); /* fetch what the snapshot described */
    c->log_entries = 0;           /* the log before the snapshot is gone */
    c->log_bytes = 0;
    if (c->restored_cb != NULL)
        c->restored_cb(c->restored_arg);
    cluster__forward_applied(c);
    return 0;
}

int cluster__fsm_init(struct cluster *c)
{
    memset(&c->fsm, 0, sizeof c->fsm);
    c->fsm.version = 3;
    c->fsm.data = c;
    c->fsm.apply = fsm_apply;
    c->fsm.snapshot = fsm_snapshot;
    c->fsm.snapshot_async = fsm_snapshot_async;
    c->fsm.snapshot_finalize = fsm_snapshot_finalize;
    c->fsm.restore = fsm_restore;
    ch_buf_init(&c->snap_buf);
    return 0;
}

void cluster__fsm_close(struct cluster *c)
{
    if (c->snap != NULL) {
        store_snapshot_end(c->snap);
        c->snap = NULL;
    }
    ch_buf_free(&c->snap_buf);
    ch_free(c->scratch);
    c->scratch = NULL;
    c->scratch_cap = 0;
}
