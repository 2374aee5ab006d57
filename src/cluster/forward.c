/* Forwarding (docs/protocol.md "Delivery guarantees"): a follower sends
 * publishes and admin requests to the leader over one persistent link
 * (link_client.c), many requests per frame, and answers `#send` itself once
 * its own FSM has applied the leader's raft index — that makes
 * read-your-writes hold on every node.
 *
 * Requests wait in `fwd_queued` while no leader is known or the link is
 * down, and fail at the publish timeout ("no leader: not committed"). Once
 * sent, a lost link or leader makes the outcome unknown (a retry with the
 * same publisher message id is de-duplicated by the FSM). */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Admin requests get longer: a join is answered once the new voter caught
 * up (it may fetch a whole store); chorusctl waits as long. */
#define FWD_ADMIN_TIMEOUT_MS 300000
/* Requests per frame and bytes per frame. */
#define FWD_FRAME_MAX_REQS 4096
#define FWD_FRAME_MAX_BYTES (1024 * 1024)
#define FWD_RECONNECT_MS 100

static struct fwd_req *fwd_of(struct ch_queue *e)
{
    return e != NULL ? CH_QUEUE_DATA(e, struct fwd_req, link) : NULL;
}

/* The first request of q, or NULL. */
static struct fwd_req *fwd_head(const struct ch_queue *q)
{
    return fwd_of(ch_queue_head(q));
}

static void fwd_push(struct ch_queue *q, struct fwd_req *r)
{
    CH_ASSERT(!ch_queue_linked(&r->link));
    ch_queue_insert_tail(q, &r->link);
}

static struct fwd_req *fwd_pop(struct ch_queue *q)
{
    struct fwd_req *r = fwd_head(q);

    if (r != NULL)
        ch_queue_remove(&r->link);
    return r;
}

/* Removes the request with req_id (answers come nearly in order, so the
 * search ends at the head almost always). */
static struct fwd_req *fwd_take(struct ch_queue *q, uint64_t req_id)
{
    struct ch_queue *e;

    CH_QUEUE_FOREACH (e, q) {
        struct fwd_req *r = fwd_of(e);
        if (r->req_id == req_id) {
            ch_queue_remove(e);
            return r;
        }
    }
    return NULL;
}

static void req_free(struct fwd_req *r)
{
    CH_ASSERT(!ch_queue_linked(&r->link));
    ch_buf_free(&r->item);
    ch_free(r);
}

/* Answers and frees a request. */
static void req_answer(struct cluster *c, struct fwd_req *r, int status,
                       const char *text)
{
    if (r->op == LINK_PUBLISH) {
        CH_ASSERT(c->n_pending > 0);
        c->n_pending--;
        if (status == 0)
            c->metrics.publishes_committed++;
        else
            c->metrics.publishes_failed++;
        r->pub_cb(r->arg, status, status == 0 ? &r->res : NULL);
    } else {
        r->admin_cb(r->arg, status, text ? text : "");
    }
    req_free(r);
}

static struct fwd_req *req_create(struct cluster *c, const struct link_req *lr,
                                  uint64_t timeout_ms)
{
    struct fwd_req *r = ch_calloc(1, sizeof *r);
    struct link_enc enc;
    struct link_req copy = *lr;

    if (r == NULL)
        return NULL;
    ch_queue_init(&r->link);
    r->req_id = ++c->next_req_id;
    r->op = lr->op;
    r->deadline_ms = uv_now(c->loop) + timeout_ms;
    copy.req_id = r->req_id;
    link_enc_init(&enc, LINK_REQUESTS);
    if (link_enc_req(&enc, &copy) != 0) {
        link_enc_close(&enc);
        ch_free(r);
        return NULL;
    }
    /* Keep the encoded item: it is the only copy of the message. */
    r->item = enc.items;
    return r;
}

int cluster__forward_publish(struct cluster *c, const struct ch_msg *m,
                             cluster_publish_cb cb, void *arg)
{
    struct link_req lr;
    struct fwd_req *r;

    memset(&lr, 0, sizeof lr);
    lr.op = LINK_PUBLISH;
    lr.msg = *m;
    r = req_create(c, &lr, c->cfg.publish_timeout_ms);
    if (r == NULL)
        return CH_ENOMEM;
    r->pub_cb = cb;
    r->arg = arg;
    fwd_push(&c->fwd_queued, r);
    c->n_pending++;
    cluster__kick(c); /* sent from the check phase */
    return 0;
}

int cluster__forward_admin(struct cluster *c, const struct link_req *lr,
                           cluster_admin_cb cb, void *arg)
{
    struct fwd_req *r = req_create(c, lr, FWD_ADMIN_TIMEOUT_MS);

    if (r == NULL)
        return CH_ENOMEM;
    r->admin_cb = cb;
    r->arg = arg;
    fwd_push(&c->fwd_queued, r);
    cluster__kick(c);
    return 0;
}

bool cluster__member_http(struct cluster *c, uint64_t id, char *out,
                          size_t out_size)
{
    struct store_txn *t;
    struct store_member m;
    int rv;

    if (id == c->cfg.id) {
        snprintf(out, out_size, "%s", c->cfg.http_addr);
        return true;
    }
    if (store_read_begin(c->store, &t) == 0) {
        rv = store_member_get(t, id, &m);
        store_read_end(t);
        if (rv == 0 && m.http[0] != '\0') {
            snprintf(out, out_size, "%s", m.http);
            return true;
        }
    }
    for (unsigned i = 0; i < c->n_spec_members; i++) {
        if (c->spec_members[i].id == id) {
            snprintf(out, out_size, "%s", c->spec_members[i].http);
            return true;
        }
    }
    return false;
}

/* ---- links to the leader ---- */

/* Finds and removes the request answered by `resp`. */
static struct fwd_req *take_sent(struct cluster *c, uint64_t req_id)
{
    struct fwd_req *r = NULL;
    if (c->link != NULL)
        r = fwd_take(&c->link->sent, req_id);
    if (r == NULL && c->old_link != NULL)
        r = fwd_take(&c->old_link->sent, req_id);
    return r;
}

static void on_response(void *arg, const struct link_resp *resp)
{
    struct fwd_link *fl = arg;
    struct cluster *c = fl->c;
    struct fwd_req *r = take_sent(c, resp->req_id);
    char text[256];

    if (r == NULL)
        return; /* timed out already */
    snprintf(text, sizeof text, "%.*s", (int)resp->text.n, resp->text.p);
    if (resp->status == CH_ENOTLEADER) {
        /* The peer was not leader: certainly not done; try again once we
         * know better (until the deadline). */
        r->sent = false;
        fwd_push(&c->fwd_queued, r);
        return;
    }
    if (r->op != LINK_PUBLISH || resp->status != 0) {
        req_answer(c, r, resp->status, text);
        return;
    }
    r->res.status = 0;
    r->res.is_dup = resp->is_dup;
    r->res.seq = resp->seq;
    r->res.time = resp->time;
    r->res.index = resp->index;
    /* Read-your-writes: answer once this node applied the entry. */
    fwd_push(&c->fwd_apply, r);
    cluster__forward_applied(c);
}

/* Forgets a link whose connection is gone (what it sent and did not hear
 * back about may have been committed) and frees it. */
static void link_lost(struct fwd_link *fl)
{
    struct cluster *c = fl->c;
    struct fwd_req *r;

    if (c->link == fl)
        c->link = NULL;
    if (c->old_link == fl)
        c->old_link = NULL;
    while ((r = fwd_pop(&fl->sent)) != NULL)
        req_answer(c, r, CH_EUNKNOWN,
                   "leader connection lost: outcome unknown");
    ch_free(fl);
}

static void on_link_state(void *arg, struct lclient *l, bool open)
{
    struct fwd_link *fl = arg;
    struct cluster *c = fl->c;
    (void)l;

    if (open) {
        fl->open = true;
        log_info("cluster", "forwarding link open leader=%llu",
                 (unsigned long long)fl->leader_id);
        if (fl == c->link)
            cluster__forward_flush(c);
        return;
    }
    log_info("cluster", "forwarding link lost leader=%llu",
             (unsigned long long)fl->leader_id);
    if (fl == c->link)
        c->link_retry_ms = uv_now(c->loop) + FWD_RECONNECT_MS;
    link_lost(fl);
}

static void close_link(struct fwd_link *fl)
{
    if (fl == NULL)
        return;
    lclient_close(fl->l); /* no callback after this */
    link_lost(fl);
}

/* The leader changed: the current link drains its answers (a leader that
 * handed over still answers what it took) while a new one is opened. */
static void retire_link(struct cluster *c)
{
    close_link(c->old_link);
    c->old_link = c->link;
    c->link = NULL;
    if (c->old_link != NULL && ch_queue_empty(&c->old_link->sent))
        close_link(c->old_link);
}

/* This node became leader: run what was queued here. */
static void local_publish_cb(void *arg, const struct link_req *lr);

struct local_ctx {
    struct cluster *c;
    struct fwd_req *r;
    int rv;
};

static void run_queued_locally(struct cluster *c)
{
    struct fwd_req *r;
    struct ch_queue keep;

    ch_queue_init(&keep);
    while ((r = fwd_pop(&c->fwd_queued)) != NULL) {
        struct link_enc enc;
        struct ch_buf frame;
        struct local_ctx ctx = {c, r, CH_ENOMEM};

        /* Decode our own copy and hand it to the local path. */
        link_enc_init(&enc, LINK_REQUESTS);
        ch_buf_init(&frame);
        if (link_enc_raw(&enc, r->item.data, r->item.len) == 0 &&
            link_enc_finish(&enc, &frame) == 0)
            link_decode(frame.data, frame.len, local_publish_cb, NULL, &ctx);
        link_enc_close(&enc);
        ch_buf_free(&frame);
        if (ctx.rv != 0)
            fwd_push(&keep, r); /* failed: answered at its deadline */
    }
    ch_queue_move(&keep, &c->fwd_queued);
}

static void relay_publish_cb(void *arg, int status,
                             const struct store_result *res)
{
    struct fwd_req *r = arg;

    r->pub_cb(r->arg, status, res);
    req_free(r);
}

static void relay_admin_cb(void *arg, int status, const char *text)
{
    struct fwd_req *r = arg;
    r->admin_cb(r->arg, status, text);
    req_free(r);
}

static void local_publish_cb(void *arg, const struct link_req *lr)
{
    struct local_ctx *ctx = arg;
    struct cluster *c = ctx->c;
    struct fwd_req *r = ctx->r;

    if (lr->op == LINK_PUBLISH) {
        /* The pending count moves to the local batch. */
        c->n_pending--;
        ctx->rv =
            cluster__propose_local(c, &lr->msg, relay_publish_cb, r, false);
        if (ctx->rv != 0)
            c->n_pending++;
    } else {
        ctx->rv = cluster__admin_local(c, lr, relay_admin_cb, r);
    }
}

/* Answers the requests of q whose deadline passed. Publishes share one
 * timeout and are in deadline order; admin requests have a longer one, so
 * the walk skips those and ends at the first publish still in time. */
static void expire(struct cluster *c, struct ch_queue *q, uint64_t now,
                   int status, const char *admin_text)
{
    struct ch_queue *e, *n;

    CH_QUEUE_FOREACH_SAFE(e, n, q)
    {
        struct fwd_req *r = fwd_of(e);

        if (r->deadline_ms > now) {
            if (r->op == LINK_PUBLISH)
                break;
            continue;
        }
        ch_queue_remove(e);
        req_answer(c, r, status, r->op == LINK_PUBLISH ? NULL : admin_text);
    }
}

void cluster__forward_tick(struct cluster *c)
{
    uint64_t now = uv_now(c->loop);
    raft_id leader_id = 0;
    const char *leader_addr = NULL;
    char http[CH_MAX_ADDR_BYTES + 1];
    struct fwd_link *fl;

    /* Deadlines: queued ones were never sent (not committed). */
    expire(c, &c->fwd_queued, now, CH_ENOTLEADER,
           "no leader reachable: not done");
    if (c->link != NULL)
        expire(c, &c->link->sent, now, CH_ETIMEDOUT,
               "timed out: outcome unknown");
    if (c->old_link != NULL)
        expire(c, &c->old_link->sent, now, CH_ETIMEDOUT,
               "timed out: outcome unknown");
    if (c->old_link != NULL && ch_queue_empty(&c->old_link->sent))
        close_link(c->old_link);
    /* Committed on the leader, not yet applied here. */
    expire(c, &c->fwd_apply, now, CH_ETIMEDOUT,
           "committed, not yet applied on this node");

    if (!c->raft_started)
        return;
    raft_leader(c->r, &leader_id, &leader_addr);
    if (c->link != NULL && c->link->leader_id != leader_id)
        retire_link(c); /* the leader changed */
    if (leader_id == c->cfg.id && raft_state(c->r) == RAFT_LEADER) {
        if (c->is_ready)
            run_queued_locally(c);
        return;
    }
    if (c->link != NULL || leader_id == 0 || now < c->link_retry_ms)
        return;
    if (ch_queue_empty(&c->fwd_queued))
        return; /* connect on demand */
    if (!cluster__member_http(c, leader_id, http, sizeof http)) {
        log_warn("cluster", "no gateway address for leader=%llu",
                 (unsigned long long)leader_id);
        c->link_retry_ms = now + 1000;
        return;
    }
    fl = ch_calloc(1, sizeof *fl);
    if (fl == NULL) {
        c->link_retry_ms = now + 1000;
        return;
    }
    fl->c = c;
    fl->leader_id = leader_id;
    ch_queue_init(&fl->sent);
    fl->l =
        lclient_create(&c->wsctx, c->cfg.id, http, on_response,
                       NULL /* the leader only answers */, on_link_state, fl);
    if (fl->l == NULL) {
        ch_free(fl);
        c->link_retry_ms = now + 1000;
        return;
    }
    c->link = fl;
}

void cluster__forward_flush(struct cluster *c)
{
    struct link_enc enc;
    struct ch_buf frame;
    size_t bytes = 0;

    if (c->link == NULL || !c->link->open || ch_queue_empty(&c->fwd_queued))
        return;
    link_enc_init(&enc, LINK_REQUESTS);
    ch_buf_init(&frame);
    while (!ch_queue_empty(&c->fwd_queued) &&
           lclient_queued(c->link->l) < CH_MAX_LINK_QUEUED_BYTES) {
        struct fwd_req *r = fwd_head(&c->fwd_queued);
        if (enc.n > 0 && (enc.n >= FWD_FRAME_MAX_REQS ||
                          bytes + r->item.len > FWD_FRAME_MAX_BYTES)) {
            if (link_enc_finish(&enc, &frame) != 0 ||
                lclient_send(c->link->l, frame.data, frame.len) != 0)
                goto fail;
            link_enc_reset(&enc);
            frame.len = 0;
            bytes = 0;
        }
        if (link_enc_raw(&enc, r->item.data, r->item.len) != 0)
            goto fail;
        bytes += r->item.len;
        fwd_pop(&c->fwd_queued);
        r->sent = true;
        fwd_push(&c->link->sent, r);
    }
    if (enc.n > 0 && (link_enc_finish(&enc, &frame) != 0 ||
                      lclient_send(c->link->l, frame.data, frame.len) != 0))
        goto fail;
    link_enc_close(&enc);
    ch_buf_free(&frame);
    return;
fail:
    link_enc_close(&enc);
    ch_buf_free(&frame);
    /* Requests moved to `sent` are failed as unknown with the link. */
    close_link(c->link);
}

void cluster__forward_applied(struct cluster *c)
{
    uint64_t applied = store_applied_index(c->store);
    struct fwd_req *r;

    while ((r = fwd_head(&c->fwd_apply)) != NULL && r->res.index <= applied) {
        fwd_pop(&c->fwd_apply);
        req_answer(c, r, 0, NULL);
    }
}

void cluster__forward_fail_all(struct cluster *c, int status)
{
    struct fwd_req *r;

    close_link(c->link);
    close_link(c->old_link);
    while ((r = fwd_pop(&c->fwd_queued)) != NULL)
        req_answer(c, r, status == CH_EUNKNOWN ? CH_ESHUTDOWN : status,
                   "node shutting down: not done");
    while ((r = fwd_pop(&c->fwd_apply)) != NULL)
        req_answer(c, r, CH_EUNKNOWN,
                   "committed, not yet applied on this node");
}
