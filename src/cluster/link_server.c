/* The serving end of node-to-node links (link_int.h): the gateway hands
 * over a connection that asked to upgrade to CLUSTER_LINK_PATH; the
 * request frames are decoded (link.c) and run through the handler (the
 * cluster), and their answers are collected and sent as one frame per link
 * per loop turn (lservers_flush, from the cluster's check phase).
 *
 * Only the leader serves a peer's request: a node that lost leadership
 * answers "not leader" and the sender retries with the leader it learns
 * of, instead of a second hop through a node that may be leaving. A join
 * request is the exception: it comes from a node that knows no leader yet,
 * and the cluster forwards it on. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/link_int.h"
#include "common/alloc.h"
#include "common/limits.h"
#include "common/log.h"

/* One served link. Lives until its connection is gone and no request of
 * it is in flight. */
struct lserver {
    struct lservers *set;
    struct ch_wsconn *ws;  /* NULL once closed */
    struct ch_queue link;  /* in set->links while ws is open */
    struct ch_queue dirty; /* in set->dirty while it has work */
    struct link_enc out;   /* answers collected this loop turn */
    size_t n_pending;      /* requests not answered yet */
    int refs;              /* the connection + requests in flight */
    char peer[CH_MAX_ADDR_BYTES + 1];
};

/* One request in flight; holds its link. */
struct link_call {
    struct lserver *l;
    uint64_t req_id;
};

/* ---- lifetime ----------------------------------------------------------- */

static void lserver_unref(struct lserver *l)
{
    CH_ASSERT(l->refs > 0);
    if (--l->refs > 0)
        return;
    CH_ASSERT(l->ws == NULL && l->n_pending == 0);
    CH_ASSERT(!ch_queue_linked(&l->link) && !ch_queue_linked(&l->dirty));
    link_enc_close(&l->out);
    ch_free(l);
}

/* The connection is gone (or being closed): drop what was collected. */
static void lserver_detach(struct lserver *l)
{
    struct lservers *s = l->set;

    if (l->ws == NULL)
        return;
    l->ws = NULL;
    ch_queue_remove(&l->link);
    ch_queue_remove(&l->dirty);
    CH_ASSERT(s->n_links > 0);
    s->n_links--;
    link_enc_reset(&l->out);
    lserver_unref(l);
}

static void lserver_close(struct lserver *l)
{
    struct ch_wsconn *ws = l->ws;

    if (ws == NULL)
        return;
    lserver_detach(l);
    ch_wsconn_close(ws);
}

static void idle_cb(uv_idle_t *h)
{
    (void)h; /* being active is its job: the poll does not block */
}

static void mark_dirty(struct lserver *l)
{
    struct lservers *s = l->set;
    int rv;

    if (l->ws == NULL || ch_queue_linked(&l->dirty))
        return;
    if (ch_queue_empty(&s->dirty)) {
        rv = uv_idle_start(&s->idle, idle_cb);
        CH_ASSERT(rv == 0); /* an initialised idle handle always starts */
    }
    ch_queue_insert_tail(&s->dirty, &l->dirty);
}

/* ---- answers ------------------------------------------------------------ */

static void respond(struct lserver *l, const struct link_resp *r)
{
    if (l->ws == NULL)
        return; /* the link went away: the peer treats it as unknown */
    if (link_enc_resp(&l->out, r) != 0) {
        log_error("link", "out of memory answering peer=%s; closing", l->peer);
        lserver_close(l);
        return;
    }
    mark_dirty(l); /* sent in the check phase, many per frame */
}

static void refuse(struct lserver *l, uint64_t req_id, int status,
                   const char *text)
{
    struct link_resp r;

    memset(&r, 0, sizeof r);
    r.req_id = req_id;
    r.status = status;
    r.text.p = text;
    r.text.n = strlen(text);
    respond(l, &r);
}

static struct link_call *call_create(struct lserver *l, uint64_t req_id)
{
    struct link_call *lc = ch_malloc(sizeof *lc);

    if (lc == NULL)
        return NULL;
    lc->l = l;
    lc->req_id = req_id;
    l->refs++;
    l->n_pending++;
    return lc;
}

static void call_end(struct link_call *lc)
{
    struct lserver *l = lc->l;

    CH_ASSERT(l->n_pending > 0);
    l->n_pending--;
    ch_free(lc);
    mark_dirty(l); /* reading may resume */
    lserver_unref(l);
}

static void publish_done(void *arg, int status, const struct store_result *res)
{
    struct link_call *lc = arg;
    struct link_resp r;

    memset(&r, 0, sizeof r);
    r.req_id = lc->req_id;
    r.status = status;
    if (status == 0 && res != NULL) {
        r.status = res->status;
        r.seq = res->seq;
        r.time = res->time;
        r.index = res->index;
        r.is_dup = res->is_dup;
    }
    respond(lc->l, &r);
    call_end(lc);
}

static void admin_done(void *arg, int status, const char *text)
{
    struct link_call *lc = arg;
    struct link_resp r;

    memset(&r, 0, sizeof r);
    r.req_id = lc->req_id;
    r.status = status;
    r.text.p = text;
    r.text.n = strlen(text);
    respond(lc->l, &r);
    call_end(lc);
}

/* Reads only while requests in flight and queued answers are under their
 * limits. Returns whether it reads. */
static bool lserver_update_reading(struct lserver *l)
{
    bool room = l->n_pending < CH_MAX_LINK_PENDING &&
                ch_wsconn_queued(l->ws) < CH_MAX_LINK_QUEUED_BYTES;

    ch_wsconn_set_reading(l->ws, room);
    return room;
}

/* ---- requests ----------------------------------------------------------- */

/* Copies an address of a request into out (CH_MAX_ADDR_BYTES + 1 bytes). */
static bool copy_addr(struct ch_bytes b, char *out)
{
    if (b.n > CH_MAX_ADDR_BYTES)
        return false;
    memcpy(out, b.p, b.n);
    out[b.n] = '\0';
    return true;
}

static int run_request(struct lserver *l, const struct link_req *req,
                       struct link_call *lc)
{
    const struct link_handler *h = l->set->h;
    void *d = l->set->h_data;
    char raft[CH_MAX_ADDR_BYTES + 1];
    char http[CH_MAX_ADDR_BYTES + 1];

    switch (req->op) {
    case LINK_PUBLISH:
        return h->publish(d, &req->msg, publish_done, lc);
    case LINK_JOIN:
        if (!copy_addr(req->raft, raft) || !copy_addr(req->http, http))
            return CH_EINVAL;
        return h->join(d, req->id, raft, http, req->role, admin_done, lc);
    case LINK_LEAVE:
        return h->leave(d, req->id, admin_done, lc);
    case LINK_TRANSFER:
        return h->transfer(d, req->id, admin_done, lc);
    case LINK_REMOVED:
    case LINK_FETCH:
    case LINK_STATUS:
    case LINK_NUDGE:
        break; /* handled before */
    }
    return CH_EINVAL;
}

/* FETCH (catch-up): read and answered at once, by any member; one chunk
 * (CH_CATCHUP_CHUNK_BYTES) per answer and the asking node has one in
 * flight, so the loop's work and the answer's memory stay bounded. */
static void serve_fetch(struct lserver *l, const struct link_req *req)
{
    struct lservers *s = l->set;
    struct link_resp r;
    struct ch_buf msgs;
    uint32_t n = 0;
    int rv;

    if (s->h->fetch == NULL) {
        refuse(l, req->req_id, CH_EINVAL, "fetch not served here");
        return;
    }
    ch_buf_init(&msgs);
    rv = s->h->fetch(s->h_data, req->msg.path, req->from, req->to, &msgs, &n);
    memset(&r, 0, sizeof r);
    r.req_id = req->req_id;
    r.status = rv;
    if (rv == 0) {
        CH_ASSERT(n >= 1 && n <= CH_MAX_CATCHUP_MSGS);
        r.n_msgs = n;
        r.msgs.p = msgs.data;
        r.msgs.n = msgs.len;
    } else {
        r.text.p = ch_strerror(rv);
        r.text.n = strlen(r.text.p);
    }
    respond(l, &r);
    ch_buf_free(&msgs);
}

static void on_request(void *arg, const struct link_req *req)
{
    struct lserver *l = arg;
    struct lservers *s = l->set;
    struct link_call *lc;
    int rv;

    if (l->ws == NULL)
        return; /* closed by an earlier request of the same frame */
    if (req->op == LINK_REMOVED) {
        s->h->removed(s->h_data, req->id);
        return;
    }
    if (req->op == LINK_FETCH) {
        serve_fetch(l, req);
        return;
    }
    if (req->op == LINK_STATUS) {
        const char *why =
            s->h->catching_up != NULL ? s->h->catching_up(s->h_data) : NULL;
        if (why == NULL)
            refuse(l, req->req_id, 0, "");
        else
            refuse(l, req->req_id, CH_EMISSING, why);
        return;
    }
    if (req->op == LINK_NUDGE) {
        if (!s->h->is_leader(s->h_data)) {
            refuse(l, req->req_id, CH_ENOTLEADER, "not the leader");
            return;
        }
        if (s->h->nudge != NULL)
            s->h->nudge(s->h_data, req->id);
        refuse(l, req->req_id, 0, "");
        return;
    }
    if (req->op != LINK_JOIN && !s->h->is_leader(s->h_data)) {
        refuse(l, req->req_id, CH_ENOTLEADER, "not the leader");
        return;
    }
    lc = call_create(l, req->req_id);
    if (lc == NULL) {
        refuse(l, req->req_id, CH_ENOMEM, "out of memory");
        return;
    }
    rv = run_request(l, req, lc);
    if (rv != 0) {
        /* The handler refused it at once: its callback never fires. */
        refuse(l, req->req_id, rv, ch_strerror(rv));
        call_end(lc);
    }
}

static void on_message(struct ch_wsconn *ws, bool is_binary, const char *data,
                       size_t n)
{
    struct lserver *l = ch_wsconn_data(ws);

    if (l->ws == NULL)
        return;
    if (!is_binary || link_decode(data, n, on_request, NULL, l) != 0) {
        log_warn("link", "bad link frame peer=%s len=%zu binary=%d; closing",
                 l->peer, n, is_binary);
        lserver_close(l);
        return;
    }
    /* Stop reading at once (libuv reads on in the same turn): what this
     * read holds is still delivered, so the overshoot is one read. It
     * resumes when a request is answered (call_end) or the answers are
     * written (on_drained). */
    (void)lserver_update_reading(l);
}

static void on_drained(struct ch_wsconn *ws)
{
    mark_dirty(ch_wsconn_data(ws)); /* reading may resume */
}

static void on_closed(struct ch_wsconn *ws, int status, const char *why)
{
    struct lserver *l = ch_wsconn_data(ws);

    log_info("link", "link closed peer=%s err=%s why=%s", l->peer,
             ch_err_name(status), why);
    lserver_detach(l);
}

static const struct ch_wsconn_cbs lserver_cbs = {
    .message = on_message,
    .drained = on_drained,
    .closed = on_closed,
};

/* ---- the set ------------------------------------------------------------ */

void lservers_init(struct lservers *s, struct ch_wsctx *x,
                   const struct link_handler *h, void *h_data)
{
    int rv;

    memset(s, 0, sizeof *s);
    s->x = x;
    s->h = h;
    s->h_data = h_data;
    ch_queue_init(&s->links);
    ch_queue_init(&s->dirty);
    rv = uv_idle_init(x->loop, &s->idle);
    CH_ASSERT(rv == 0); /* cannot fail on an initialised loop */
    s->idle.data = s;
}

int lservers_accept(struct lservers *s, int fd, const char *key,
                    const char *peer)
{
    struct ch_wsconn_config cfg = {
        .max_msg_bytes = CH_MAX_LINK_FRAME_BYTES,
        .max_write_bytes = CH_WRITE_CHUNK_BYTES,
    };
    struct lserver *l;
    int rv;

    if (s->is_closed) {
        close(fd);
        return CH_ESHUTDOWN;
    }
    l = ch_calloc(1, sizeof *l);
    if (l == NULL) {
        close(fd);
        return CH_ENOMEM;
    }
    l->set = s;
    l->refs = 1; /* the connection */
    ch_queue_init(&l->link);
    ch_queue_init(&l->dirty);
    link_enc_init(&l->out, LINK_RESPONSES);
    snprintf(l->peer, sizeof l->peer, "%.*s", CH_MAX_ADDR_BYTES, peer);
    rv =
        ch_wsconn_accept(s->x, fd, key, l->peer, &cfg, &lserver_cbs, l, &l->ws);
    if (rv != 0) {
        link_enc_close(&l->out);
        ch_free(l);
        return rv;
    }
    ch_queue_insert_tail(&s->links, &l->link);
    s->n_links++;
    log_info("link", "link open peer=%s", l->peer);
    return 0;
}

/* Sends what was collected and reads only while answers can drain. */
static void lserver_flush(struct lserver *l)
{
    struct ch_buf frame;

    if (l->out.n > 0) {
        ch_buf_init(&frame);
        if (link_enc_finish(&l->out, &frame) != 0 ||
            ch_wsconn_send(l->ws, true, frame.data, frame.len) != 0) {
            ch_buf_free(&frame);
            log_error("link", "cannot send answers peer=%s; closing", l->peer);
            lserver_close(l);
            return;
        }
        ch_buf_free(&frame);
        link_enc_reset(&l->out);
    }
    (void)lserver_update_reading(l);
    ch_queue_remove(&l->dirty);
}

void lservers_flush(struct lservers *s)
{
    struct ch_queue *e, *n;

    CH_QUEUE_FOREACH_SAFE(e, n, &s->dirty)
    {
        struct lserver *l = CH_QUEUE_DATA(e, struct lserver, dirty);
        CH_ASSERT(l->ws != NULL);
        lserver_flush(l);
    }
    if (ch_queue_empty(&s->dirty) && !s->is_closed)
        (void)uv_idle_stop(&s->idle); /* cannot fail */
}

void lservers_close(struct lservers *s)
{
    struct ch_queue *e;

    if (s->is_closed)
        return;
    s->is_closed = true;
    while ((e = ch_queue_head(&s->links)) != NULL)
        lserver_close(CH_QUEUE_DATA(e, struct lserver, link));
    CH_ASSERT(s->n_links == 0 && ch_queue_empty(&s->dirty));
    /* Embedded in its owner, which outlives the loop: no close callback
     * needed. */
    uv_close((uv_handle_t *)&s->idle, NULL);
}
