/* The proposal path: publishes are appended to an open batch; once per loop
 * turn (uv_check) closed batches become ONE raft entry each (one buffer per
 * raft_apply, docs/libraft.md "Entries"), with at most CH_MAX_ENTRIES_IN_FLIGHT
 * entries proposed and not yet applied. Beyond the cap, batches grow instead.
 * The leader stamps the publishing time and the de-dup window into the
 * entry, so apply is deterministic on every node. */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct batch *batch_create(struct cluster *c)
{
    struct batch *b = ch_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->c = c;
    b->req.data = b;
    ch_queue_init(&b->link);
    ch_batch_enc_init(&b->enc);
    return b;
}

void cluster__batch_free(struct batch *b)
{
    CH_ASSERT(!ch_queue_linked(&b->link));
    ch_batch_enc_close(&b->enc);
    ch_free(b->waiters);
    ch_free(b);
}

static struct batch *queue_batch(struct ch_queue *e)
{
    return e != NULL ? CH_QUEUE_DATA(e, struct batch, link) : NULL;
}

/* Answers one waiter (at most once). */
static void waiter_answer(struct cluster *c, struct waiter *w, int status,
                          const struct store_result *res)
{
    cluster_publish_cb cb = w->cb;

    if (cb == NULL)
        return;
    w->cb = NULL;
    CH_ASSERT(c->n_pending > 0);
    c->n_pending--;
    if (status == 0 && res != NULL && res->status == 0) {
        c->metrics.publishes_committed++;
        if (res->is_dup)
            c->metrics.publishes_dup++;
    } else {
        c->metrics.publishes_failed++;
    }
    cb(w->arg, status, res);
}

static void close_open_batch(struct cluster *c)
{
    if (c->open == NULL)
        return;
    ch_queue_insert_tail(&c->waiting, &c->open->link);
    c->open = NULL;
}

int cluster_publish(struct cluster *c, const struct ch_msg *m,
                    cluster_publish_cb cb, void *arg)
{
    if (c->closing || c->accepting_stopped || c->removed)
        return CH_ESHUTDOWN;
    if (!c->raft_started)
        return CH_ENOTLEADER;
    if (c->node_failed)
        return CH_EIO; /* this node cannot apply: it could not answer */
    if (c->n_pending >= CH_MAX_PENDING_PUBLISHES)
        return CH_EFULL;
    if (raft_state(c->r) == RAFT_LEADER)
        return cluster__propose_local(c, m, cb, arg, false);
    /* A follower (or a node without a known leader) forwards; the request
     * waits for a leader until the publish timeout. */
    return cluster__forward_publish(c, m, cb, arg);
}

int cluster_publish_forwarded(struct cluster *c, const struct ch_msg *m,
                              cluster_publish_cb cb, void *arg)
{
    if (c->closing || c->accepting_stopped || c->removed)
        return CH_ESHUTDOWN;
    if (!c->raft_started || raft_state(c->r) != RAFT_LEADER)
        return CH_ENOTLEADER;
    if (c->n_pending >= CH_MAX_PENDING_PUBLISHES)
        return CH_EFULL;
    return cluster__propose_local(c, m, cb, arg, true);
}

/* Appends a publish to the open batch (leader only). */
int cluster__propose_local(struct cluster *c, const struct ch_msg *m,
                           cluster_publish_cb cb, void *arg, bool remote)
{
    struct batch *b;
    struct waiter *w;
    int rv;

    if (c->open != NULL &&
        (c->open->n_waiters >= CH_MAX_BATCH_MSGS ||
         ch_batch_enc_size(&c->open->enc) + m->body.n + m->header.n >
             CH_MAX_BATCH_BYTES))
        close_open_batch(c);
    if (c->open == NULL) {
        c->open = batch_create(c);
        if (c->open == NULL)
            return CH_ENOMEM;
        cluster__kick(c); /* proposed from this turn's check phase */
    }
    b = c->open;
    if (b->n_waiters == b->cap_waiters) {
        size_t cap = b->cap_waiters ? b->cap_waiters * 2 : 16;
        struct waiter *grown = ch_realloc(b->waiters, cap * sizeof *grown);
        if (grown == NULL)
            return CH_ENOMEM;
        b->waiters = grown;
        b->cap_waiters = cap;
    }
    rv = ch_batch_enc_add(&b->enc, m);
    if (rv != 0)
        return rv;
    w = &b->waiters[b->n_waiters++];
    b->has_remote |= remote;
    w->cb = cb;
    w->arg = arg;
    w->deadline_ms = uv_now(c->loop) + c->cfg.publish_timeout_ms;
    c->n_pending++;
    return 0;
}

static void nudge_cb(struct raft_barrier *req, int status)
{
    struct cluster *c = req->data;

    (void)status;
    cluster__raft_cb_enter(c);
    c->nudge_pending = false; /* a wanted nudge goes in the check phase */
    cluster__raft_cb_leave(c);
}

/* Followers learn the commit index with the next AppendEntries, which
 * comes with new entries or the next heartbeat. When the pipeline goes
 * idle after publishes forwarded by followers (who wait to apply before
 * answering), a barrier entry carries the commit index to them at once
 * instead of a heartbeat later. Under load new entries do that anyway. */
void cluster__nudge_followers(struct cluster *c)
{
    if (!c->nudge_wanted || c->nudge_pending)
        return;
    c->nudge_wanted = false;
    if (c->n_inflight > 0 || !ch_queue_empty(&c->waiting) || c->open != NULL ||
        raft_state(c->r) != RAFT_LEADER)
        return; /* entries are on their way: they carry the commit index */
    c->nudge.data = c;
    if (cluster__raft_barrier(c, &c->nudge, nudge_cb) == 0)
        c->nudge_pending = true;
}

static void batch_applied(struct cluster *c, struct batch *b, int status,
                          const struct fsm_result *fr);

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct batch *b = req->data;
    struct cluster *c = b->c;

    cluster__raft_cb_enter(c);
    batch_applied(c, b, status, result);
    cluster__raft_cb_leave(c);
}

/* The outcome of a proposed batch (inside its raft callback). */
static void batch_applied(struct cluster *c, struct batch *b, int status,
                          const struct fsm_result *fr)
{
    bool remote;

    CH_ASSERT(b->proposed && ch_queue_linked(&b->link));
    ch_queue_remove(&b->link);
    CH_ASSERT(c->n_inflight > 0);
    c->n_inflight--;

    if (status != 0) {
        /* LEADERSHIPLOST (deposed or closing): the entry may still be
         * committed by the next leader. A failed local write does not tell
         * either: the followers may hold it and a later leader commit it.
         * Both are "outcome unknown". */
        int st = CH_EUNKNOWN;
        if (status != RAFT_LEADERSHIPLOST) {
            /* 0.15 keeps leading after a failed log write
             * (docs/libraft.md "Callbacks"): report it and hand
             * leadership over. */
            cluster__fail(c, "raft log write failed (%s, %d): %s",
                          raft_strerror(status), status, raft_errmsg(c->r));
        }
        for (size_t i = 0; i < b->n_waiters; i++)
            waiter_answer(c, &b->waiters[i], st, NULL);
    } else if (fr == NULL || fr->status != 0 || fr->n != b->n_waiters) {
        for (size_t i = 0; i < b->n_waiters; i++)
            waiter_answer(c, &b->waiters[i], CH_EIO, NULL);
    } else {
        for (size_t i = 0; i < b->n_waiters; i++) {
            const struct store_result *r = &fr->results[i];
            waiter_answer(c, &b->waiters[i], r->status == 0 ? 0 : r->status, r);
        }
    }
    remote = b->has_remote && status == 0;
    cluster__batch_free(b);
    /* Nothing is proposed from inside a raft callback: libraft 0.15 fails
     * pending applies from inside its step-down, while raft_state() still
     * says leader and the replication state is already gone — a raft_apply
     * there crashed the leader (found by tests/chaos). The freed slot and
     * the follower nudge are used in the check phase of this loop turn. */
    if (remote)
        c->nudge_wanted = true;
}

/* Proposes one batch. Returns 0, or an error after answering its waiters. */
static int propose(struct cluster *c, struct batch *b)
{
    struct raft_buffer buf;
    void *data;
    size_t len;
    int rv;

    rv = ch_batch_enc_finish(&b->enc, (int64_t)time(NULL),
                             c->cfg.dedup_window_s, raft_malloc, &data, &len);
    if (rv != 0)
        goto err;
    buf.base = data;
    buf.len = len;
    rv = cluster__raft_apply(c, &b->req, &buf, apply_cb);
    if (rv != 0) {
        raft_free(data);
        log_warn("cluster", "raft_apply refused rv=%d (%s) n=%zu", rv,
                 raft_strerror(rv), b->n_waiters);
        rv = rv == RAFT_NOTLEADER ? CH_ENOTLEADER : CH_EIO;
        goto err;
    }
    b->proposed = true;
    c->n_inflight++;
    c->metrics.batches_proposed++;
    ch_queue_insert_tail(&c->inflight, &b->link);
    return 0;
err:
    /* Never handed to raft: certainly not committed. */
    for (size_t i = 0; i < b->n_waiters; i++)
        waiter_answer(c, &b->waiters[i], rv, NULL);
    cluster__batch_free(b);
    return rv;
}

void cluster__propose_flush(struct cluster *c)
{
    if (!c->raft_started)
        return;
    CH_ASSERT(c->n_inflight <= CH_MAX_ENTRIES_IN_FLIGHT);
    if (c->open != NULL && ch_queue_empty(&c->waiting) &&
        c->n_inflight < CH_MAX_ENTRIES_IN_FLIGHT)
        close_open_batch(c);
    while (!ch_queue_empty(&c->waiting) &&
           c->n_inflight < CH_MAX_ENTRIES_IN_FLIGHT) {
        struct batch *b = queue_batch(ch_queue_head(&c->waiting));
        ch_queue_remove(&b->link);
        propose(c, b);
        if (ch_queue_empty(&c->waiting) && c->open != NULL &&
            c->n_inflight < CH_MAX_ENTRIES_IN_FLIGHT)
            close_open_batch(c);
    }
}

static void expire_batch(struct cluster *c, struct batch *b, uint64_t now)
{
    for (size_t i = 0; i < b->n_waiters; i++) {
        struct waiter *w = &b->waiters[i];
        if (w->deadline_ms > now)
            break; /* waiters are in deadline order */
        /* Even a batch not yet proposed may still be proposed later: the
         * outcome of a timed-out publish is always unknown. */
        waiter_answer(c, w, CH_ETIMEDOUT, NULL);
    }
}

void cluster__propose_expire(struct cluster *c)
{
    uint64_t now = uv_now(c->loop);
    struct ch_queue *e;

    CH_QUEUE_FOREACH (e, &c->inflight) {
        expire_batch(c, queue_batch(e), now);
    }
    CH_QUEUE_FOREACH (e, &c->waiting) {
        expire_batch(c, queue_batch(e), now);
    }
    if (c->open != NULL)
        expire_batch(c, c->open, now);
}

void cluster__propose_fail_all(struct cluster *c, int status)
{
    struct batch *b;

    close_open_batch(c);
    while ((b = queue_batch(ch_queue_head(&c->waiting))) != NULL) {
        ch_queue_remove(&b->link);
        for (size_t i = 0; i < b->n_waiters; i++)
            waiter_answer(c, &b->waiters[i], status, NULL);
        cluster__batch_free(b);
    }
}
