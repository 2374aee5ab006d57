/* The serving end of node-to-node links (common/link.h): requests from
 * other nodes (forwarded publishes and admin requests, join requests, the
 * "you were removed" notice) are handed to the cluster, which runs them
 * here or forwards them on; answers are collected and sent as one frame per
 * loop turn. */
#include "common/alloc.h"
#include "common/log.h"
#include "gateway/gw_int.h"

#include <stdlib.h>
#include <string.h>

/* One request in flight; holds the connection. */
struct link_call {
    struct gw_conn *conn;
    uint64_t req_id;
};

void gw__link_open(struct gw_conn *c)
{
    c->is_link = true;
    ch_link_enc_init(&c->link_out, CH_LINK_RESPONSES);
}

static void respond(struct gw_conn *c, const struct ch_link_resp *r)
{
    if (c->closing || c->lingering)
        return;
    if (ch_link_enc_resp(&c->link_out, r) != 0) {
        log_error("gw", "out of memory answering a link conn=%llu",
                  (unsigned long long)c->id);
        gw__conn_close(c);
        return;
    }
    gw__sub_schedule_pump(c); /* sends the frame in the check phase */
}

static struct link_call *call_create(struct gw_conn *c, uint64_t req_id)
{
    struct link_call *lc = ch_malloc(sizeof *lc);
    if (lc == NULL)
        return NULL;
    lc->conn = c;
    lc->req_id = req_id;
    c->refs++;
    c->n_link_pending++;
    return lc;
}

static void call_end(struct link_call *lc)
{
    struct gw_conn *c = lc->conn;
    c->n_link_pending--;
    ch_free(lc);
    gw__conn_update_reading(c);
    gw__conn_unref(c);
}

static void publish_done(void *arg, int status, const struct store_result *res)
{
    struct link_call *lc = arg;
    struct ch_link_resp r;

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
    respond(lc->conn, &r);
    call_end(lc);
}

static void admin_done(void *arg, int status, const char *text)
{
    struct link_call *lc = arg;
    struct ch_link_resp r;

    memset(&r, 0, sizeof r);
    r.req_id = lc->req_id;
    r.status = status;
    r.text.p = text;
    r.text.n = strlen(text);
    respond(lc->conn, &r);
    call_end(lc);
}

static void refuse(struct gw_conn *c, uint64_t req_id, int status,
                   const char *text)
{
    struct ch_link_resp r;

    memset(&r, 0, sizeof r);
    r.req_id = req_id;
    r.status = status;
    r.text.p = text;
    r.text.n = strlen(text);
    respond(c, &r);
}

static void on_request(void *arg, const struct ch_link_req *req)
{
    struct gw_conn *c = arg;
    struct cluster *cl = c->gw->cluster;
    struct link_call *lc;
    char raft[CH_MAX_ADDR_BYTES + 1], http[CH_MAX_ADDR_BYTES + 1];
    int rv;

    if (req->op == CH_LINK_REMOVED) {
        cluster_removed_notice(cl, req->id);
        return;
    }
    /* Only the leader serves a peer's request: a node that lost leadership
     * says so and the sender retries with the leader it learns of, instead
     * of a second hop through a node that may be leaving. A join request
     * is the exception: it comes from a node that knows no leader yet. */
    if (req->op != CH_LINK_JOIN && !cluster_is_leader(cl)) {
        refuse(c, req->req_id, CH_ENOTLEADER, "not the leader");
        return;
    }
    lc = call_create(c, req->req_id);
    if (lc == NULL) {
        refuse(c, req->req_id, CH_ENOMEM, "out of memory");
        return;
    }
    switch (req->op) {
    case CH_LINK_PUBLISH:
        c->gw->metrics.publishes++;
        rv = cluster_publish_forwarded(cl, &req->msg, publish_done, lc);
        break;
    case CH_LINK_JOIN:
        if (req->raft.n >= sizeof raft || req->http.n >= sizeof http) {
            rv = CH_EINVAL;
            break;
        }
        memcpy(raft, req->raft.p, req->raft.n);
        raft[req->raft.n] = '\0';
        memcpy(http, req->http.p, req->http.n);
        http[req->http.n] = '\0';
        rv = cluster_join(cl, req->id, raft, http, req->role, admin_done, lc);
        break;
    case CH_LINK_LEAVE:
        rv = cluster_leave(cl, req->id, admin_done, lc);
        break;
    case CH_LINK_TRANSFER:
        rv = cluster_transfer(cl, req->id, admin_done, lc);
        break;
    default:
        rv = CH_EINVAL;
        break;
    }
    if (rv != 0) {
        refuse(c, req->req_id, rv, ch_strerror(rv));
        call_end(lc);
    }
}

void gw__link_frame(struct gw_conn *c, const char *frame, size_t len)
{
    if (ch_link_decode(frame, len, on_request, NULL, c) != 0) {
        log_warn("gw", "bad link frame conn=%llu len=%zu; closing",
                 (unsigned long long)c->id, len);
        gw__conn_close(c);
    }
}

void gw__link_flush(struct gw_conn *c)
{
    struct ch_buf frame;

    if (!c->is_link || c->link_out.n == 0 || c->closing)
        return;
    ch_buf_init(&frame);
    if (ch_link_enc_finish(&c->link_out, &frame) != 0) {
        ch_buf_free(&frame);
        gw__conn_close(c);
        return;
    }
    gw__ws_send_frame(c, frame.data, frame.len, true);
    ch_buf_free(&frame);
    ch_link_enc_reset(&c->link_out);
}

void gw__link_conn_closed(struct gw_conn *c)
{
    if (c->is_link)
        ch_link_enc_reset(&c->link_out);
}
