/* The client end of a node-to-node link: one TCP connection to another
 * node's gateway, upgraded to WebSocket (RFC 6455 §4.1, client frames
 * masked) and carrying binary link frames (common/link.h). Used to forward
 * to the leader, to ask to join, and to tell a removed node.
 *
 * Lifecycle: lclient_create starts resolving/connecting; state_cb(true)
 * once the handshake is done; state_cb(false) exactly once when it fails or
 * closes (not after lclient_close). Memory is freed after the handle
 * closes. */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/wsio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define LINK_READ_BYTES (64 * 1024)
#define LINK_MAX_HANDSHAKE_BYTES 4096
#define LINK_MAX_FRAME_BYTES (64 * 1024 * 1024)

enum lstate { L_RESOLVING, L_CONNECTING, L_HANDSHAKE, L_OPEN, L_CLOSED };

struct lclient {
    struct cluster *c;
    uv_tcp_t tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_write_t wreq;
    char addr[CH_MAX_ADDR_BYTES + 1];
    enum lstate state;
    bool detached; /* owner closed it: no more callbacks */
    bool tcp_inited;
    bool writing;
    bool bad_frame; /* a frame did not decode: the link is closed */
    int refs;       /* handle + pending requests */
    struct ch_buf in;
    size_t in_off;
    struct ch_buf out;
    struct ch_buf wbuf;
    wslay_event_context_ptr ws;
    uint64_t mask_state;
    lclient_resp_cb resp_cb;
    lclient_req_cb req_cb;
    lclient_state_cb state_cb;
    void *arg;
};

static void lclient_unref(struct lclient *l)
{
    if (--l->refs > 0)
        return;
    ch_buf_free(&l->in);
    ch_buf_free(&l->out);
    ch_buf_free(&l->wbuf);
    if (l->ws != NULL)
        wslay_event_context_free(l->ws);
    ch_free(l);
}

static void on_tcp_closed(uv_handle_t *h)
{
    lclient_unref(h->data);
}

/* Closes the connection; tells the owner unless it closed it itself. */
static void lclient_fail(struct lclient *l, const char *why)
{
    bool was_open;

    if (l->state == L_CLOSED)
        return;
    was_open = l->state == L_OPEN;
    l->state = L_CLOSED;
    if (!l->detached)
        log_debug("link", "link closed addr=%s open=%d why=%s", l->addr,
                  was_open, why);
    if (l->tcp_inited)
        uv_close((uv_handle_t *)&l->tcp, on_tcp_closed);
    else
        lclient_unref(l);
    if (!l->detached && l->state_cb != NULL)
        l->state_cb(l->arg, l, false);
}

static void flush(struct lclient *l);

static void write_cb(uv_write_t *req, int status)
{
    struct lclient *l = req->data;

    l->writing = false;
    l->wbuf.len = 0;
    if (status != 0)
        lclient_fail(l, uv_strerror(status));
    else if (l->state != L_CLOSED)
        flush(l);
    lclient_unref(l);
}

static void flush(struct lclient *l)
{
    struct ch_buf tmp;
    uv_buf_t b;
    int rv;

    if (l->state == L_CLOSED)
        return;
    if (l->ws != NULL && l->state == L_OPEN) {
        rv = wslay_event_send(l->ws);
        if (rv != 0) {
            lclient_fail(l, "websocket send failed");
            return;
        }
    }
    if (l->writing || l->out.len == 0)
        return;
    tmp = l->wbuf;
    l->wbuf = l->out;
    l->out = tmp;
    l->out.len = 0;
    b = uv_buf_init(l->wbuf.data, (unsigned)l->wbuf.len);
    l->wreq.data = l;
    rv = uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &b, 1, write_cb);
    if (rv != 0) {
        l->wbuf.len = 0;
        lclient_fail(l, uv_strerror(rv));
        return;
    }
    l->writing = true;
    l->refs++;
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user_data)
{
    struct lclient *l = user_data;
    (void)flags;
    return ch_wsio_recv(ctx, buf, len, &l->in, &l->in_off);
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user_data)
{
    struct lclient *l = user_data;
    (void)flags;
    return ch_wsio_send(ctx, data, len, &l->out, CH_WRITE_CHUNK_BYTES);
}

/* Masking keys (RFC 6455 §5.3) only keep proxies from caching: a fast
 * xorshift seeded once from RAND_bytes is enough on an internal link. */
static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user_data)
{
    struct lclient *l = user_data;
    (void)ctx;

    for (size_t i = 0; i < len; i++) {
        l->mask_state ^= l->mask_state << 13;
        l->mask_state ^= l->mask_state >> 7;
        l->mask_state ^= l->mask_state << 17;
        buf[i] = (uint8_t)l->mask_state;
    }
    return 0;
}

static void ws_on_msg(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    struct lclient *l = user_data;
    (void)ctx;

    if (arg->opcode != WSLAY_BINARY_FRAME || l->detached ||
        l->state != L_OPEN || l->bad_frame)
        return;
    if (ch_link_decode(arg->msg, arg->msg_length, l->req_cb, l->resp_cb,
                       l->arg) != 0) {
        log_warn("link", "bad frame from addr=%s len=%zu", l->addr,
                 arg->msg_length);
        l->bad_frame = true; /* the link is failed after wslay returns */
    }
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv,
    .send_callback = ws_send,
    .genmask_callback = ws_genmask,
    .on_msg_recv_callback = ws_on_msg,
};

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct lclient *l = h->data;
    (void)hint;

    if (l->in_off > 0 && l->in_off == l->in.len) {
        l->in.len = 0;
        l->in_off = 0;
    }
    if (ch_buf_reserve(&l->in, LINK_READ_BYTES) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = l->in.data + l->in.len;
    buf->len = LINK_READ_BYTES;
}

/* Parses the HTTP response to our upgrade request. */
static int handshake_done(struct lclient *l)
{
    const char *end;
    int rv;

    end = memmem(l->in.data, l->in.len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (l->in.len > LINK_MAX_HANDSHAKE_BYTES)
            return CH_EPROTO;
        return CH_EBUSY; /* need more */
    }
    if (l->in.len < 12 || strncmp(l->in.data, "HTTP/1.1 101", 12) != 0)
        return CH_EPROTO;
    l->in_off = (size_t)(end + 4 - l->in.data);
    rv = wslay_event_context_client_init(&l->ws, &ws_callbacks, l);
    if (rv != 0) {
        l->ws = NULL;
        return CH_ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(l->ws, LINK_MAX_FRAME_BYTES);
    l->state = L_OPEN;
    return 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lclient *l = s->data;
    int rv;
    (void)buf;

    if (nread == 0 || l->state == L_CLOSED)
        return;
    if (nread < 0) {
        lclient_fail(l, uv_strerror((int)nread));
        return;
    }
    l->in.len += (size_t)nread;
    if (l->state == L_HANDSHAKE) {
        rv = handshake_done(l);
        if (rv == CH_EBUSY)
            return;
        if (rv != 0) {
            lclient_fail(l, "bad handshake");
            return;
        }
        log_debug("link", "link open addr=%s", l->addr);
        if (!l->detached && l->state_cb != NULL)
            l->state_cb(l->arg, l, true);
        if (l->state != L_OPEN)
            return;
    }
    l->refs++; /* callbacks below may fail the link */
    rv = wslay_event_recv(l->ws);
    if (l->in_off == l->in.len) {
        l->in.len = 0;
        l->in_off = 0;
    }
    if (l->bad_frame) {
        lclient_fail(l, "bad frame");
    } else if (rv != 0 || !wslay_event_want_read(l->ws)) {
        lclient_fail(l, "websocket closed");
    } else {
        flush(l);
    }
    lclient_unref(l);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct lclient *l = req->data;
    unsigned char key[16];
    unsigned char key64[32];
    char head[512];
    int n, rv;

    lclient_unref(l);
    if (l->state == L_CLOSED)
        return;
    if (status != 0) {
        lclient_fail(l, uv_strerror(status));
        return;
    }
    if (RAND_bytes(key, sizeof key) != 1 ||
        RAND_bytes((unsigned char *)&l->mask_state, sizeof l->mask_state) !=
            1) {
        lclient_fail(l, "no random bytes");
        return;
    }
    l->mask_state |= 1;
    EVP_EncodeBlock(key64, key, sizeof key);
    n = snprintf(head, sizeof head,
                 "GET %s?from=%llu HTTP/1.1\r\nHost: %s\r\nUpgrade: "
                 "websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                 "%s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 CH_LINK_PATH, (unsigned long long)l->c->cfg.id, l->addr,
                 key64);
    l->state = L_HANDSHAKE;
    if (ch_buf_append(&l->out, head, (size_t)n) != 0) {
        lclient_fail(l, "out of memory");
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    rv = uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, read_cb);
    if (rv != 0) {
        lclient_fail(l, uv_strerror(rv));
        return;
    }
    flush(l);
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lclient *l = req->data;
    int rv;

    lclient_unref(l);
    if (l->state == L_CLOSED) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        lclient_fail(l, status ? uv_strerror(status) : "no address");
        return;
    }
    rv = uv_tcp_init(l->c->loop, &l->tcp);
    if (rv != 0) {
        uv_freeaddrinfo(res);
        lclient_fail(l, uv_strerror(rv));
        return;
    }
    l->tcp.data = l;
    l->tcp_inited = true;
    l->state = L_CONNECTING;
    l->connect_req.data = l;
    rv = uv_tcp_connect(&l->connect_req, &l->tcp, res->ai_addr, connect_cb);
    uv_freeaddrinfo(res);
    if (rv != 0) {
        lclient_fail(l, uv_strerror(rv));
        return;
    }
    l->refs++;
}

struct lclient *lclient_create(struct cluster *c, const char *addr,
                               lclient_resp_cb resp_cb, lclient_req_cb req_cb,
                               lclient_state_cb state_cb, void *arg)
{
    struct lclient *l = ch_calloc(1, sizeof *l);
    struct addrinfo hints;
    char host[CH_MAX_ADDR_BYTES + 1];
    const char *colon = strrchr(addr, ':');
    int rv;

    if (l == NULL)
        return NULL;
    l->c = c;
    l->refs = 1; /* dropped when the handle closes (or at fail w/o handle) */
    l->resp_cb = resp_cb;
    l->req_cb = req_cb;
    l->state_cb = state_cb;
    l->arg = arg;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    if (colon == NULL || colon == addr ||
        (size_t)(colon - addr) >= sizeof host) {
        ch_free(l);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    l->gai.data = l;
    l->state = L_RESOLVING;
    rv = uv_getaddrinfo(c->loop, &l->gai, resolved_cb, host, colon + 1, &hints);
    if (rv != 0) {
        ch_free(l);
        return NULL;
    }
    l->refs++;
    return l;
}

bool lclient_is_open(const struct lclient *l)
{
    return l->state == L_OPEN;
}

size_t lclient_queued(const struct lclient *l)
{
    size_t n = l->out.len + l->wbuf.len;
    if (l->ws != NULL)
        n += wslay_event_get_queued_msg_length(l->ws);
    return n;
}

int lclient_send(struct lclient *l, const void *frame, size_t n)
{
    struct wslay_event_msg msg;

    if (l->state != L_OPEN)
        return CH_ECONNECT;
    msg.opcode = WSLAY_BINARY_FRAME;
    msg.msg = frame;
    msg.msg_length = n;
    if (wslay_event_queue_msg(l->ws, &msg) != 0)
        return CH_ENOMEM;
    flush(l);
    return 0;
}

void lclient_close(struct lclient *l)
{
    l->detached = true;
    lclient_fail(l, "closed by owner");
}
