/* The client end of node-to-node links (link_int.h): common/wsconn.h's
 * client connection to another node's gateway at CLUSTER_LINK_PATH,
 * carrying binary link frames (link.c). Used to forward to the leader
 * (forward.c), to ask to join and to tell a removed node (membership.c).
 *
 * Lifecycle: lclient_create starts resolving and connecting; state_cb(true)
 * once the upgrade is accepted (its Sec-WebSocket-Accept checked);
 * state_cb(false) exactly once when it fails or closes, never after
 * lclient_close. */
#include <stdio.h>
#include <string.h>

#include "cluster/link_int.h"
#include "common/alloc.h"
#include "common/limits.h"
#include "common/log.h"

struct lclient {
    struct ch_wsconn *ws; /* NULL once closed */
    bool is_open;
    bool is_closed; /* closed by the owner or ended */
    bool in_decode; /* items of a frame are being handed out */
    lclient_resp_cb resp_cb;
    lclient_req_cb req_cb;
    lclient_state_cb state_cb;
    void *arg;
};

static void on_open(struct ch_wsconn *ws)
{
    struct lclient *l = ch_wsconn_data(ws);

    l->is_open = true;
    log_debug("link", "link open addr=%s", ch_wsconn_peer(ws));
    l->state_cb(l->arg, l, true);
}

/* Item callbacks: after the owner closed the link inside one of them, the
 * rest of the frame is dropped. */
static void on_resp(void *arg, const struct link_resp *r)
{
    struct lclient *l = arg;

    if (!l->is_closed)
        l->resp_cb(l->arg, r);
}

static void on_req(void *arg, const struct link_req *r)
{
    struct lclient *l = arg;

    if (!l->is_closed)
        l->req_cb(l->arg, r);
}

static void lclient_end(struct lclient *l, const char *why)
{
    struct ch_wsconn *ws = l->ws;

    log_debug("link", "link closed addr=%s why=%s", ch_wsconn_peer(ws), why);
    l->ws = NULL;
    l->is_open = false;
    l->is_closed = true;
    ch_wsconn_close(ws);
    l->state_cb(l->arg, l, false);
    ch_free(l);
}

static void on_message(struct ch_wsconn *ws, bool is_binary, const char *data,
                       size_t n)
{
    struct lclient *l = ch_wsconn_data(ws);
    int rv;

    if (l->is_closed)
        return;
    CH_ASSERT(!l->in_decode);
    l->in_decode = true;
    rv = is_binary ? link_decode(data, n, l->req_cb != NULL ? on_req : NULL,
                                 l->resp_cb != NULL ? on_resp : NULL, l)
                   : CH_EPROTO;
    l->in_decode = false;
    if (l->is_closed) {
        ch_free(l); /* lclient_close ran inside a callback */
        return;
    }
    if (rv != 0) {
        log_warn("link", "bad link frame from addr=%s len=%zu binary=%d",
                 ch_wsconn_peer(ws), n, is_binary);
        lclient_end(l, "bad frame");
    }
}

static void on_closed(struct ch_wsconn *ws, int status, const char *why)
{
    struct lclient *l = ch_wsconn_data(ws);

    (void)status;
    CH_ASSERT(!l->is_closed && !l->in_decode);
    l->ws = NULL; /* freed by wsconn */
    l->is_open = false;
    l->is_closed = true;
    log_debug("link", "link closed why=%s", why);
    l->state_cb(l->arg, l, false);
    ch_free(l);
}

static const struct ch_wsconn_cbs lclient_cbs = {
    .open = on_open,
    .message = on_message,
    .closed = on_closed,
};

struct lclient *lclient_create(struct ch_wsctx *x, uint64_t self_id,
                               const char *addr, lclient_resp_cb resp_cb,
                               lclient_req_cb req_cb, lclient_state_cb state_cb,
                               void *arg)
{
    struct ch_wsconn_config cfg = {
        .max_msg_bytes = CH_MAX_LINK_FRAME_BYTES,
        .max_write_bytes = CH_WRITE_CHUNK_BYTES,
    };
    struct lclient *l = ch_calloc(1, sizeof *l);
    char path[sizeof(CLUSTER_LINK_PATH) + 32];

    if (l == NULL)
        return NULL;
    CH_ASSERT(state_cb != NULL);
    l->resp_cb = resp_cb;
    l->req_cb = req_cb;
    l->state_cb = state_cb;
    l->arg = arg;
    snprintf(path, sizeof path, "%s?from=%llu", CLUSTER_LINK_PATH,
             (unsigned long long)self_id);
    if (ch_wsconn_connect(x, addr, NULL, path, &cfg, &lclient_cbs, l, &l->ws) !=
        0) {
        ch_free(l);
        return NULL;
    }
    return l;
}

bool lclient_is_open(const struct lclient *l)
{
    return l->is_open;
}

size_t lclient_queued(const struct lclient *l)
{
    return l->ws != NULL ? ch_wsconn_queued(l->ws) : 0;
}

int lclient_send(struct lclient *l, const void *frame, size_t n)
{
    if (!l->is_open)
        return CH_ECONNECT;
    return ch_wsconn_send(l->ws, true, frame, n);
}

int lclient_send_req(struct lclient *l, const struct link_req *r)
{
    struct link_enc enc;
    struct ch_buf frame;
    int rv;

    link_enc_init(&enc, LINK_REQUESTS);
    ch_buf_init(&frame);
    rv = link_enc_req(&enc, r);
    if (rv == 0)
        rv = link_enc_finish(&enc, &frame);
    if (rv == 0)
        rv = lclient_send(l, frame.data, frame.len);
    link_enc_close(&enc);
    ch_buf_free(&frame);
    return rv;
}

void lclient_close(struct lclient *l)
{
    CH_ASSERT(!l->is_closed);
    l->is_closed = true;
    l->is_open = false;
    if (l->ws != NULL) {
        ch_wsconn_close(l->ws);
        l->ws = NULL;
    }
    if (!l->in_decode)
        ch_free(l);
}
