/* One WebSocket connection on a libuv loop, framed by wslay: see
 * wsconn.h. */
#include "common/wsconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/net.h"
#include "common/ws_handshake.h"

/* Bytes of the client's upgrade request (path and Host included). */
#define WSCONN_MAX_REQUEST 2048

enum wsconn_state {
    WSCONN_RESOLVING,  /* client: waiting for getaddrinfo */
    WSCONN_CONNECTING, /* client: TCP connect in flight */
    WSCONN_HANDSHAKE,  /* client: upgrade sent, reading the answer */
    WSCONN_OPEN,       /* frames both ways */
    WSCONN_CLOSED,     /* ended; the socket is closing or closed */
};

struct ch_wsconn {
    struct ch_wsctx *x;
    enum wsconn_state state;
    bool is_server;
    bool has_tcp;         /* tcp initialised: freed through its close */
    bool has_gai;         /* getaddrinfo in flight */
    bool is_writing;      /* a uv_write of wbuf is in flight */
    bool is_reading;      /* uv_read_start in effect */
    bool want_reading;    /* the owner's choice (ch_wsconn_set_reading) */
    bool is_detached;     /* the owner closed it: no more callbacks */
    bool in_recv;         /* inside wslay_event_recv (callbacks run) */
    bool close_requested; /* ch_wsconn_close while in_recv */
    int refs;             /* the object itself + requests in flight */
    unsigned close_code;  /* the peer's close code, 0 if none */
    int end_status;       /* why it ended (told once the socket closed) */
    char end_why[CH_ERRMSG_SIZE];
    uv_tcp_t tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_write_t write_req;
    wslay_event_context_ptr wsl; /* owned once open */
    struct ch_ws_handshake *hs;  /* client, owned while upgrading */
    const char *in;              /* bytes being fed to wslay (borrowed) */
    size_t in_n;
    struct ch_buf out;  /* frames collecting for the next write */
    struct ch_buf wbuf; /* bytes of the write in flight */
    struct ch_wsconn_config cfg;
    const struct ch_wsconn_cbs *cbs; /* borrowed */
    void *data;                      /* the owner's */
    char peer[CH_MAX_ADDR_BYTES + 1];
};

/* ---- context ------------------------------------------------------------ */

void ch_wsctx_init(struct ch_wsctx *x, uv_loop_t *loop)
{
    x->loop = loop;
    x->is_rbuf_busy = false;
    x->n_conns = 0;
    x->mask_off = sizeof(x->mask_pool); /* filled on first use */
}

void ch_wsctx_close(struct ch_wsctx *x)
{
    CH_ASSERT(x->n_conns == 0);
    CH_ASSERT(!x->is_rbuf_busy);
}

/* Masking keys only keep intermediaries from being poisoned (RFC 6455
 * §10.3); a pool refilled from RAND_bytes keeps them unpredictable without
 * a library call per frame. */
static int mask_bytes(struct ch_wsctx *x, uint8_t *buf, size_t len)
{
    CH_ASSERT(len <= sizeof(x->mask_pool));
    if (sizeof(x->mask_pool) - x->mask_off < len) {
        if (RAND_bytes(x->mask_pool, (int)sizeof(x->mask_pool)) != 1)
            return CH_EIO;
        x->mask_off = 0;
    }
    memcpy(buf, x->mask_pool + x->mask_off, len);
    x->mask_off += len;
    return 0;
}

/* ---- lifetime ----------------------------------------------------------- */

static void unref(struct ch_wsconn *ws)
{
    CH_ASSERT(ws->refs > 0);
    if (--ws->refs > 0)
        return;
    CH_ASSERT(ws->state == WSCONN_CLOSED);
    if (ws->wsl != NULL)
        wslay_event_context_free(ws->wsl);
    ch_free(ws->hs);
    ch_buf_free(&ws->out);
    ch_buf_free(&ws->wbuf);
    CH_ASSERT(ws->x->n_conns > 0);
    ws->x->n_conns--;
    ch_free(ws);
}

/* Tells the owner why the connection ended (unless it closed it). */
static void notify_closed(struct ch_wsconn *ws)
{
    CH_ASSERT(ws->state == WSCONN_CLOSED);
    if (ws->is_detached || ws->cbs->closed == NULL)
        return;
    ws->is_detached = true; /* once */
    CH_ASSERT(ws->end_status != 0);
    ws->cbs->closed(ws, ws->end_status, ws->end_why);
}

static void tcp_closed_cb(uv_handle_t *h)
{
    struct ch_wsconn *ws = h->data;

    notify_closed(ws);
    unref(ws);
}

/* Ends the connection once and closes the socket. The owner is told from
 * the socket's close callback, so never from inside one of its own calls
 * (ch_wsconn_send may find the connection broken). */
static void finish(struct ch_wsconn *ws, int status, const char *why)
{
    if (ws->state == WSCONN_CLOSED)
        return;
    if (ws->has_gai)
        uv_cancel((uv_req_t *)&ws->gai); /* its callback still fires */
    ws->state = WSCONN_CLOSED;
    ws->is_reading = false;
    ws->end_status = status;
    snprintf(ws->end_why, sizeof(ws->end_why), "%s", why != NULL ? why : "");
    if (ws->has_tcp) {
        uv_close((uv_handle_t *)&ws->tcp, tcp_closed_cb);
    } else {
        /* Only while resolving (from its callback) or being discarded. */
        notify_closed(ws);
        unref(ws);
    }
}

/* Ends the connection with a formatted reason. */
static void failf(struct ch_wsconn *ws, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void failf(struct ch_wsconn *ws, int status, const char *fmt, ...)
{
    char why[CH_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    finish(ws, status, why);
}

/* ---- writing ------------------------------------------------------------ */

static void pump(struct ch_wsconn *ws);

static void write_cb(uv_write_t *req, int status)
{
    struct ch_wsconn *ws = req->data;

    CH_ASSERT(ws->is_writing);
    ws->is_writing = false;
    ws->wbuf.len = 0;
    if (status != 0) {
        if (status != UV_ECANCELED)
            failf(ws, CH_EIO, "write to %s: %s", ws->peer, uv_strerror(status));
    } else {
        pump(ws);
        if (ws->state == WSCONN_OPEN && !ws->is_detached &&
            ws->cbs->drained != NULL && ch_wsconn_queued(ws) == 0)
            ws->cbs->drained(ws);
    }
    unref(ws);
}

/* Hands what was collected to one uv_write, unless one is in flight. */
static void flush(struct ch_wsconn *ws)
{
    struct ch_buf tmp;
    uv_buf_t b;
    int rv;

    if (ws->state == WSCONN_CLOSED || ws->state == WSCONN_RESOLVING ||
        ws->state == WSCONN_CONNECTING || ws->is_writing || ws->out.len == 0)
        return;
    CH_ASSERT(ws->wbuf.len == 0);
    tmp = ws->wbuf;
    ws->wbuf = ws->out;
    ws->out = tmp;
    b = uv_buf_init(ws->wbuf.data, (unsigned)ws->wbuf.len);
    ws->write_req.data = ws;
    rv = uv_write(&ws->write_req, (uv_stream_t *)&ws->tcp, &b, 1, write_cb);
    if (rv != 0) {
        ws->wbuf.len = 0;
        failf(ws, CH_EIO, "write to %s: %s", ws->peer, uv_strerror(rv));
        return;
    }
    ws->is_writing = true;
    ws->refs++;
}

/* The connection is done once neither side will send anything more and
 * our last frames (a close frame among them) left: tell why. */
static void maybe_done(struct ch_wsconn *ws)
{
    unsigned sent;

    if (ws->state != WSCONN_OPEN || wslay_event_want_read(ws->wsl) ||
        wslay_event_want_write(ws->wsl) || ws->is_writing || ws->out.len > 0)
        return;
    sent = wslay_event_get_close_sent(ws->wsl)
               ? wslay_event_get_status_code_sent(ws->wsl)
               : 0;
    if (wslay_event_get_close_received(ws->wsl))
        failf(ws, CH_EIO, "connection closed by %s (code %u)", ws->peer,
              ws->close_code);
    else if (sent == WSLAY_CODE_MESSAGE_TOO_BIG)
        failf(ws, CH_ETOOBIG, "%s sent a message over %llu bytes", ws->peer,
              (unsigned long long)ws->cfg.max_msg_bytes);
    else
        failf(ws, CH_EPROTO, "bad frames from %s (closed with %u)", ws->peer,
              sent);
}

/* Lets wslay frame what is queued, writes it, and sees whether the
 * connection is done. */
static void pump(struct ch_wsconn *ws)
{
    int rv;

    if (ws->state != WSCONN_OPEN || ws->in_recv)
        return;
    if (wslay_event_want_write(ws->wsl)) {
        rv = wslay_event_send(ws->wsl);
        if (rv != 0) {
            failf(ws, rv == WSLAY_ERR_NOMEM ? CH_ENOMEM : CH_EIO,
                  "framing for %s failed", ws->peer);
            return;
        }
    }
    flush(ws);
    maybe_done(ws);
}

/* ---- wslay callbacks ---------------------------------------------------- */

static ssize_t wsl_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf,
                           size_t len, int flags, void *user_data)
{
    struct ch_wsconn *ws = user_data;

    (void)flags; /* always 0 (wslay.h) */
    if (ws->in_n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > ws->in_n)
        len = ws->in_n;
    memcpy(buf, ws->in, len);
    ws->in += len;
    ws->in_n -= len;
    return (ssize_t)len;
}

static ssize_t wsl_send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                           size_t len, int flags, void *user_data)
{
    struct ch_wsconn *ws = user_data;
    size_t room;

    (void)flags;
    room = ws->out.len < ws->cfg.max_write_bytes
               ? ws->cfg.max_write_bytes - ws->out.len
               : 0;
    if (room == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > room)
        len = room;
    if (ch_buf_append(&ws->out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
        return -1;
    }
    return (ssize_t)len;
}

static int wsl_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                          void *user_data)
{
    struct ch_wsconn *ws = user_data;

    if (mask_bytes(ws->x, buf, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

static void wsl_msg_cb(wslay_event_context_ptr ctx,
                       const struct wslay_event_on_msg_recv_arg *arg,
                       void *user_data)
{
    struct ch_wsconn *ws = user_data;

    (void)ctx;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->close_code = arg->status_code;
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* ping (answered by wslay) or pong */
    if (ws->is_detached || ws->state != WSCONN_OPEN)
        return;
    ws->cbs->message(ws, arg->opcode == WSLAY_BINARY_FRAME,
                     (const char *)arg->msg, arg->msg_length);
}

static const struct wslay_event_callbacks wsl_callbacks = {
    .recv_callback = wsl_recv_cb,
    .send_callback = wsl_send_cb,
    .genmask_callback = wsl_genmask_cb,
    .on_msg_recv_callback = wsl_msg_cb,
};

static int open_wslay(struct ch_wsconn *ws)
{
    int rv =
        ws->is_server
            ? wslay_event_context_server_init(&ws->wsl, &wsl_callbacks, ws)
            : wslay_event_context_client_init(&ws->wsl, &wsl_callbacks, ws);

    if (rv != 0) {
        ws->wsl = NULL;
        return CH_ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->wsl, ws->cfg.max_msg_bytes);
    ws->state = WSCONN_OPEN;
    return 0;
}

/* ---- reading ------------------------------------------------------------ */

static void close_now(struct ch_wsconn *ws);

/* Hands n bytes to wslay, which calls back per message. */
static void feed(struct ch_wsconn *ws, const char *data, size_t n)
{
    int rv;

    CH_ASSERT(ws->state == WSCONN_OPEN && !ws->in_recv);
    ws->in = data;
    ws->in_n = n;
    ws->in_recv = true;
    rv = wslay_event_recv(ws->wsl);
    ws->in_recv = false;
    ws->in = NULL;
    ws->in_n = 0;
    if (ws->close_requested) {
        close_now(ws);
        return;
    }
    if (ws->state != WSCONN_OPEN)
        return;
    if (rv != 0) {
        failf(ws, rv == WSLAY_ERR_NOMEM ? CH_ENOMEM : CH_EIO,
              "reading from %s failed", ws->peer);
        return;
    }
    pump(ws);
}

/* The client's upgrade answer, then frames. */
static void handshake_read(struct ch_wsconn *ws, const char *data, size_t n)
{
    char errmsg[CH_ERRMSG_SIZE];
    bool done = false;
    size_t used = 0;
    int rv;

    rv = ch_ws_handshake_feed(ws->hs, data, n, &done, &used, errmsg);
    if (rv != 0) {
        failf(ws, CH_EPROTO, "%s: %s", ws->peer, errmsg);
        return;
    }
    if (!done)
        return;
    ch_free(ws->hs);
    ws->hs = NULL;
    if (open_wslay(ws) != 0) {
        failf(ws, CH_ENOMEM, "out of memory");
        return;
    }
    if (!ws->is_detached && ws->cbs->open != NULL)
        ws->cbs->open(ws);
    if (ws->state != WSCONN_OPEN)
        return; /* closed by the owner in the callback */
    if (used < n)
        feed(ws, data + used, n - used);
    else
        pump(ws);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ch_wsconn *ws = h->data;

    (void)hint; /* reads are one fixed buffer: the bound is ours */
    /* libuv calls read_cb right after alloc_cb, one stream at a time, and
     * read_cb consumes every byte: one buffer serves every connection. */
    CH_ASSERT(!ws->x->is_rbuf_busy);
    ws->x->is_rbuf_busy = true;
    *buf = uv_buf_init(ws->x->rbuf, sizeof(ws->x->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ch_wsconn *ws = s->data;

    CH_ASSERT(buf->base == NULL || buf->base == ws->x->rbuf);
    if (nread > 0 && ws->state == WSCONN_HANDSHAKE)
        handshake_read(ws, buf->base, (size_t)nread);
    else if (nread > 0 && ws->state == WSCONN_OPEN)
        feed(ws, buf->base, (size_t)nread);
    else if (nread < 0 && ws->state != WSCONN_CLOSED)
        failf(ws, CH_EIO, "%s: %s", ws->peer,
              nread == UV_EOF ? "connection closed by the peer"
                              : uv_strerror((int)nread));
    if (buf->base != NULL)
        ws->x->is_rbuf_busy = false;
}

static void update_reading(struct ch_wsconn *ws)
{
    bool want = ws->want_reading &&
                (ws->state == WSCONN_HANDSHAKE || ws->state == WSCONN_OPEN);
    int rv;

    if (want == ws->is_reading)
        return;
    if (want)
        rv = uv_read_start((uv_stream_t *)&ws->tcp, alloc_cb, read_cb);
    else
        rv = uv_read_stop((uv_stream_t *)&ws->tcp);
    if (rv != 0) {
        failf(ws, CH_EIO, "%s: %s", ws->peer, uv_strerror(rv));
        return;
    }
    ws->is_reading = want;
}

/* ---- connecting (client) ------------------------------------------------ */

static void connect_cb(uv_connect_t *req, int status)
{
    struct ch_wsconn *ws = req->data;

    if (ws->state == WSCONN_CONNECTING) {
        if (status != 0) {
            failf(ws, CH_ECONNECT, "cannot connect to %s: %s", ws->peer,
                  uv_strerror(status));
        } else {
            /* Small frames: latency matters more than segment count. */
            (void)uv_tcp_nodelay(&ws->tcp, 1); /* best effort */
            ws->state = WSCONN_HANDSHAKE;
            update_reading(ws);
            flush(ws); /* the upgrade request */
        }
    }
    unref(ws);
}

/* Starts the TCP connect to addr. Returns 0 or a libuv error. */
static int start_connect(struct ch_wsconn *ws, const struct sockaddr *addr)
{
    int rv = uv_tcp_init(ws->x->loop, &ws->tcp);

    if (rv != 0)
        return rv;
    ws->tcp.data = ws;
    ws->has_tcp = true;
    ws->connect_req.data = ws;
    ws->state = WSCONN_CONNECTING;
    rv = uv_tcp_connect(&ws->connect_req, &ws->tcp, addr, connect_cb);
    if (rv != 0)
        return rv;
    ws->refs++;
    return 0;
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ch_wsconn *ws = req->data;
    int rv;

    ws->has_gai = false;
    if (ws->state == WSCONN_RESOLVING) {
        if (status != 0 || res == NULL) {
            failf(ws, CH_ECONNECT, "cannot resolve %s: %s", ws->peer,
                  status != 0 ? uv_strerror(status) : "no address");
        } else {
            rv = start_connect(ws, res->ai_addr);
            if (rv != 0)
                failf(ws, CH_ECONNECT, "cannot connect to %s: %s", ws->peer,
                      uv_strerror(rv));
        }
    }
    uv_freeaddrinfo(res);
    unref(ws);
}

static struct ch_wsconn *conn_alloc(struct ch_wsctx *x, const char *peer,
                                    const struct ch_wsconn_config *cfg,
                                    const struct ch_wsconn_cbs *cbs, void *data)
{
    struct ch_wsconn *ws = ch_calloc(1, sizeof(*ws));

    if (ws == NULL)
        return NULL;
    CH_ASSERT(cbs != NULL && cbs->message != NULL);
    CH_ASSERT(cfg->max_write_bytes > 0 && cfg->max_msg_bytes > 0);
    ws->x = x;
    ws->refs = 1;
    ws->want_reading = true;
    ws->cfg = *cfg;
    ws->cbs = cbs;
    ws->data = data;
    ch_buf_init(&ws->out);
    ch_buf_init(&ws->wbuf);
    snprintf(ws->peer, sizeof(ws->peer), "%.*s", CH_MAX_ADDR_BYTES, peer);
    x->n_conns++;
    return ws;
}

/* Drops a connection that failed before its owner ever saw it. */
static void discard(struct ch_wsconn *ws)
{
    ws->is_detached = true;
    finish(ws, CH_EIO, "discarded");
}

int ch_wsconn_connect(struct ch_wsctx *x, const char *hostport,
                      const struct sockaddr *addr, const char *path,
                      const struct ch_wsconn_config *cfg,
                      const struct ch_wsconn_cbs *cbs, void *data,
                      struct ch_wsconn **out)
{
    struct addrinfo hints;
    struct ch_wsconn *ws;
    char host[CH_MAX_ADDR_BYTES + 1];
    char port[16];
    char key[CH_WS_KEY_SIZE];
    char req[WSCONN_MAX_REQUEST];
    int n;
    int rv;

    if (strlen(hostport) > CH_MAX_ADDR_BYTES ||
        ch_hostport_split(hostport, host, sizeof(host), port, sizeof(port)) !=
            0)
        return CH_EINVAL;
    ws = conn_alloc(x, hostport, cfg, cbs, data);
    if (ws == NULL)
        return CH_ENOMEM;
    ws->state = WSCONN_RESOLVING;
    ws->hs = ch_malloc(sizeof(*ws->hs));
    if (ws->hs == NULL) {
        rv = CH_ENOMEM;
        goto err;
    }
    rv = ch_ws_make_key(key);
    if (rv == 0)
        rv = ch_ws_handshake_init(ws->hs, key);
    if (rv != 0)
        goto err;
    n = ch_ws_format_upgrade(req, sizeof(req), hostport, path, key);
    if (n < 0) {
        rv = CH_EINVAL;
        goto err;
    }
    rv = ch_buf_append(&ws->out, req, (size_t)n);
    if (rv != 0)
        goto err;
    if (addr != NULL) {
        rv = start_connect(ws, addr);
        if (rv != 0) {
            rv = CH_EIO;
            goto err;
        }
    } else {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        ws->gai.data = ws;
        rv = uv_getaddrinfo(x->loop, &ws->gai, resolved_cb, host, port, &hints);
        if (rv != 0) {
            rv = CH_EIO;
            goto err;
        }
        ws->has_gai = true;
        ws->refs++;
    }
    *out = ws;
    return 0;

err:
    discard(ws);
    return rv;
}

/* ---- accepting (server) ------------------------------------------------- */

int ch_wsconn_accept(struct ch_wsctx *x, int fd, const char *key,
                     const char *peer, const struct ch_wsconn_config *cfg,
                     const struct ch_wsconn_cbs *cbs, void *data,
                     struct ch_wsconn **out)
{
    char resp[256];
    struct ch_wsconn *ws;
    int n;
    int rv;

    n = ch_ws_format_accepted(resp, sizeof(resp), key);
    if (n < 0) {
        close(fd);
        return CH_EINVAL;
    }
    ws = conn_alloc(x, peer, cfg, cbs, data);
    if (ws == NULL) {
        close(fd);
        return CH_ENOMEM;
    }
    ws->is_server = true;
    ws->state = WSCONN_CONNECTING;
    ws->is_detached = true; /* no callback until it is handed out */
    rv = uv_tcp_init(x->loop, &ws->tcp);
    if (rv != 0) {
        close(fd);
        discard(ws);
        return CH_EIO;
    }
    ws->tcp.data = ws;
    ws->has_tcp = true;
    rv = uv_tcp_open(&ws->tcp, fd);
    if (rv != 0) {
        close(fd); /* not taken by the handle */
        discard(ws);
        return CH_EIO;
    }
    (void)uv_tcp_nodelay(&ws->tcp, 1); /* best effort */
    if (ch_buf_append(&ws->out, resp, (size_t)n) != 0 || open_wslay(ws) != 0) {
        discard(ws);
        return CH_ENOMEM;
    }
    update_reading(ws);
    flush(ws);
    if (ws->state != WSCONN_OPEN) {
        discard(ws);
        return CH_EIO;
    }
    ws->is_detached = false;
    *out = ws;
    return 0;
}

/* ---- owner's calls ------------------------------------------------------ */

int ch_wsconn_send(struct ch_wsconn *ws, bool is_binary, const void *p,
                   size_t n)
{
    struct wslay_event_msg msg;

    if (ws->state != WSCONN_OPEN || ws->is_detached ||
        !wslay_event_get_write_enabled(ws->wsl))
        return CH_ECONNECT;
    msg.opcode = is_binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
    msg.msg = p;
    msg.msg_length = n;
    if (wslay_event_queue_msg(ws->wsl, &msg) != 0)
        return CH_ENOMEM;
    pump(ws); /* inside wslay_event_recv: framed once it returns */
    return 0;
}

size_t ch_wsconn_queued(const struct ch_wsconn *ws)
{
    size_t n = ws->out.len + ws->wbuf.len;

    if (ws->wsl != NULL)
        n += wslay_event_get_queued_msg_length(ws->wsl);
    return n;
}

bool ch_wsconn_is_open(const struct ch_wsconn *ws)
{
    return ws->state == WSCONN_OPEN && !ws->is_detached;
}

void ch_wsconn_set_reading(struct ch_wsconn *ws, bool on)
{
    ws->want_reading = on;
    if (ws->state != WSCONN_CLOSED && ws->has_tcp)
        update_reading(ws);
}

unsigned ch_wsconn_close_code(const struct ch_wsconn *ws)
{
    return ws->close_code;
}

const char *ch_wsconn_peer(const struct ch_wsconn *ws)
{
    return ws->peer;
}

void *ch_wsconn_data(const struct ch_wsconn *ws)
{
    return ws->data;
}

/* Best effort close frame (only what the socket takes at once), then the
 * socket closes. */
static void close_now(struct ch_wsconn *ws)
{
    uv_buf_t b;

    ws->close_requested = false;
    if (ws->state == WSCONN_OPEN && !ws->is_writing &&
        wslay_event_get_write_enabled(ws->wsl) &&
        wslay_event_queue_close(ws->wsl, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0) ==
            0 &&
        wslay_event_send(ws->wsl) == 0 && ws->out.len > 0) {
        b = uv_buf_init(ws->out.data, (unsigned)ws->out.len);
        (void)uv_try_write((uv_stream_t *)&ws->tcp, &b, 1); /* best effort */
    }
    finish(ws, 0, NULL);
}

void ch_wsconn_close(struct ch_wsconn *ws)
{
    if (ws->is_detached)
        return;
    ws->is_detached = true;
    if (ws->in_recv) {
        ws->close_requested = true; /* wslay is running: after it returns */
        return;
    }
    close_now(ws);
}
