/* Connections and HTTP/1.1: accept, bounded input, http_parser, routing to
 * the REST/admin handlers or the WebSocket upgrade, batched output (one
 * uv_write in flight per connection, the next chunk collecting meanwhile). */
#include "common/alloc.h"
#include "common/log.h"
#include "gateway/gw_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void handle_read(struct gw_conn *c, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void http_process(struct gw_conn *c);

/* ---- output ---- */

size_t gw__conn_queued(struct gw_conn *c)
{
    return c->out.len + c->wbuf.len;
}

bool gw__conn_has_room(struct gw_conn *c)
{
    return !c->is_failed && gw__conn_queued(c) < c->gw->cfg.max_conn_buffer;
}

void gw__conn_write(struct gw_conn *c, const void *p, size_t n)
{
    if (c->state >= GW_CONN_LINGERING)
        return;
    if (ch_buf_append(&c->out, p, n) != 0) {
        log_error("gw", "out of memory conn=%llu", (unsigned long long)c->id);
        gw__conn_close(c);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct gw_conn *c = req->data;

    c->writing = false;
    c->gw->metrics.bytes_out += c->wbuf.len;
    c->wbuf.len = 0;
    if (status != 0) {
        log_debug("gw", "write failed conn=%llu err=%s",
                  (unsigned long long)c->id, uv_strerror(status));
        gw__conn_close(c);
        gw__conn_unref(c);
        return;
    }
    if (!gw__conn_closing(c)) {
        gw__conn_flush(c);
        if (c->is_ws)
            gw__sub_schedule_pump(c);
        gw__conn_update_reading(c);
        if (!c->writing && !gw__conn_closing(c)) {
            /* Nothing more to write: an idle connection keeps no output
             * buffers (a busy one keeps swapping the two). */
            ch_buf_free(&c->wbuf);
            if (c->out.len == 0)
                ch_buf_free(&c->out);
        }
    }
    gw__conn_unref(c);
}

void gw__conn_flush(struct gw_conn *c)
{
    uv_buf_t b;
    struct ch_buf tmp;
    int rv;

    if (c->state >= GW_CONN_LINGERING)
        return;
    if (c->writing || c->out.len == 0) {
        if (!c->writing && c->state == GW_CONN_DRAINING)
            gw__conn_linger(c); /* all that was owed is written */
        return;
    }
    /* Swap: out becomes the buffer in flight. */
    tmp = c->wbuf;
    c->wbuf = c->out;
    c->out = tmp;
    c->out.len = 0;
    b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    c->wreq.data = c;
    rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rv != 0) {
        log_debug("gw", "write failed conn=%llu err=%s",
                  (unsigned long long)c->id, uv_strerror(rv));
        c->wbuf.len = 0;
        gw__conn_close(c);
        return;
    }
    c->writing = true;
    c->refs++;
}

/* ---- lifecycle ---- */

static void close_cb(uv_handle_t *h)
{
    struct gw_conn *c = h->data;

    CH_ASSERT(c->state == GW_CONN_CLOSING);
    c->state = GW_CONN_CLOSED;
    gw__conn_unref(c);
}

static void conn_free(struct gw_conn *c)
{
    struct gw *gw = c->gw;

    CH_ASSERT(c->state == GW_CONN_CLOSED && c->refs == 0);
    CH_ASSERT(!c->writing && !ch_queue_linked(&c->pump_link));
    CH_ASSERT(ch_queue_empty(&c->subs) && ch_queue_empty(&c->pubs));
    CH_ASSERT(c->n_unanswered == 0 && c->n_behind == 0);
    ch_queue_remove(&c->link);
    ch_buf_free(&c->in);
    ch_buf_free(&c->out);
    ch_buf_free(&c->wbuf);
    ch_buf_free(&c->req.url);
    ch_buf_free(&c->req.body);
    ch_buf_free(&c->req.hdr_names);
    ch_buf_free(&c->req.hdr_values);
    if (c->is_ws)
        ch_ws_reader_close(&c->ws);
    ch_map_close(&c->cursors);
    ch_free(c);
    gw__maybe_closed(gw);
}

void gw__conn_unref(struct gw_conn *c)
{
    CH_ASSERT(c->refs > 0);
    c->refs--;
    if (c->refs == 0 && c->state == GW_CONN_CLOSED)
        conn_free(c);
}

void gw__conn_close(struct gw_conn *c)
{
    if (gw__conn_closing(c))
        return;
    if (c->gw->is_delivering || c->is_pumping) {
        /* Inside the walk of the subscription index, or the pump holds one
         * of its subscriptions: they must not be freed under them. The
         * next pump closes the connection. */
        c->is_failed = true;
        gw__sub_schedule_pump(c);
        return;
    }
    c->state = GW_CONN_CLOSING;
    c->gw->metrics.connections_current--;
    if (c->is_ws)
        c->gw->metrics.ws_connections_current--;
    if (c->is_ws) {
        gw__sub_conn_closed(c);
        gw__proto_conn_closed(c);
    }
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct gw_conn *c = req->data;
    (void)status; /* the linger timer closes the connection in any case */
    gw__conn_unref(c);
}

void gw__conn_linger(struct gw_conn *c)
{
    CH_ASSERT(c->state == GW_CONN_DRAINING && !c->writing);
    c->state = GW_CONN_LINGERING;
    c->linger_until_ms = uv_now(c->gw->loop) + GW_LINGER_MS;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb) !=
        0) {
        gw__conn_close(c);
        return;
    }
    c->refs++;
    if (c->is_ws) {
        gw__sub_conn_closed(c);
    }
    gw__conn_update_reading(c);
}

void gw__linger_sweep(struct gw *gw)
{
    uint64_t now = uv_now(gw->loop);
    struct ch_queue *e;

    /* Closing leaves the connection in the queue until it is freed. */
    CH_QUEUE_FOREACH (e, &gw->conns) {
        struct gw_conn *c = CH_QUEUE_DATA(e, struct gw_conn, link);
        if (c->state == GW_CONN_LINGERING && now >= c->linger_until_ms)
            gw__conn_close(c);
    }
}

void gw__conn_update_reading(struct gw_conn *c)
{
    bool want;
    int rv;

    if (gw__conn_closing(c))
        return;
    /* Backpressure (docs/protocol.md): stop reading while too many
     * publishes wait for answers, while output is full, or while an HTTP
     * request is being answered. Never an error. */
    want = c->state == GW_CONN_LINGERING ||
           (c->state == GW_CONN_OPEN && !c->req_busy &&
            c->n_unanswered < CH_MAX_UNANSWERED_PUBLISHES &&
            gw__conn_queued(c) < c->gw->cfg.max_conn_buffer);
    if (want == c->reading)
        return;
    if (want) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    } else {
        rv = uv_read_stop((uv_stream_t *)&c->tcp);
        CH_ASSERT(rv == 0); /* stopping always works */
    }
    if (rv != 0) {
        log_warn("gw", "read toggle failed conn=%llu err=%s",
                 (unsigned long long)c->id, uv_strerror(rv));
        gw__conn_close(c);
        return;
    }
    c->reading = want;
}

/* Input lands in the gateway's one read buffer unless the connection holds
 * a partial frame or request; then it is appended to the connection's own
 * buffer. So an idle connection keeps no read buffer and a read costs no
 * allocation (libuv calls read_cb right after alloc_cb, one stream at a
 * time). */
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct gw_conn *c = h->data;
    (void)hint; /* we read in fixed chunks: the input bound is ours */

    if (c->in_off == c->in.len) {
        ch_buf_free(&c->in); /* nothing pending: keep nothing */
        c->in_off = 0;
        /* One stream at a time: read_cb runs right after and releases it. */
        CH_ASSERT(!c->gw->is_rbuf_busy);
        c->gw->is_rbuf_busy = true;
        *buf = uv_buf_init(c->gw->rbuf, sizeof(c->gw->rbuf));
        return;
    }
    if (ch_buf_reserve(&c->in, GW_READ_BYTES) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = c->in.data + c->in.len;
    buf->len = GW_READ_BYTES;
}

static void process_input(struct gw_conn *c)
{
    if (c->is_ws)
        gw__ws_recv(c);
    else
        http_process(c);
}

/* Processes bytes read into the shared buffer in place; what is left (a
 * partial frame or request, or input waiting for an answer) moves to the
 * connection's own buffer. */
static void process_shared(struct gw_conn *c, size_t n)
{
    struct ch_buf own = c->in; /* empty and unallocated: see alloc_cb */
    const char *rest;
    size_t rest_n;

    CH_ASSERT(own.data == NULL && c->in_off == 0 && c->gw->is_rbuf_busy);
    c->in.data = c->gw->rbuf;
    c->in.len = n;
    c->in.cap = sizeof(c->gw->rbuf);
    c->in_off = 0;
    process_input(c);
    rest = c->in.data + c->in_off;
    rest_n = c->in.len - c->in_off;
    c->in = own;
    c->in_off = 0;
    if (rest_n > 0 && c->state < GW_CONN_LINGERING &&
        ch_buf_append(&c->in, rest, rest_n) != 0) {
        log_error("gw", "out of memory conn=%llu", (unsigned long long)c->id);
        gw__conn_close(c);
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gw_conn *c = s->data;

    if (buf->base == c->gw->rbuf) {
        handle_read(c, nread, buf);
        c->gw->is_rbuf_busy = false; /* whatever happened, it is released */
        return;
    }
    handle_read(c, nread, buf);
}

static void handle_read(struct gw_conn *c, ssize_t nread, const uv_buf_t *buf)
{
    if (nread == 0)
        return;
    if (c->state == GW_CONN_LINGERING) {
        /* Drop input until the peer closes. */
        c->in.len = 0;
        c->in_off = 0;
        if (nread < 0)
            gw__conn_close(c);
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("gw", "read failed conn=%llu err=%s",
                      (unsigned long long)c->id, uv_strerror((int)nread));
        /* On EOF, queued answers still go out (half-close), then close. */
        if (nread == UV_EOF && !c->is_ws && c->state == GW_CONN_OPEN &&
            (c->writing || c->req_busy || c->out.len > 0)) {
            c->state = GW_CONN_DRAINING;
            gw__conn_update_reading(c);
            return;
        }
        gw__conn_close(c);
        return;
    }
    if (buf->base == c->gw->rbuf) {
        process_shared(c, (size_t)nread);
    } else {
        c->in.len += (size_t)nread;
        process_input(c);
        if (c->in_off == c->in.len && !gw__conn_closing(c)) {
            /* The partial input is complete and handled: an idle
             * connection keeps no buffer of its own. */
            ch_buf_free(&c->in);
            c->in_off = 0;
        }
    }
    if (!gw__conn_closing(c)) {
        gw__conn_flush(c);
        gw__conn_update_reading(c);
    }
}

struct gw_conn *gw__conn_new(struct gw *gw)
{
    struct gw_conn *c = ch_calloc(1, sizeof *c);
    int rv;

    if (c == NULL)
        return NULL;
    c->gw = gw;
    c->id = ++gw->next_conn_id;
    c->state = GW_CONN_OPEN;
    ch_map_init(&c->cursors);
    ch_queue_init(&c->pubs);
    ch_queue_init(&c->subs);
    ch_queue_init(&c->pump_link);
    rv = uv_tcp_init(gw->loop, &c->tcp);
    CH_ASSERT(rv == 0); /* no socket is created: it cannot fail */
    c->tcp.data = c;
    c->refs = 1; /* the handle */
    ch_queue_insert_head(&gw->conns, &c->link);
    gw->metrics.connections_total++;
    gw->metrics.connections_current++;
    return c;
}

void gw__conn_start(struct gw_conn *c)
{
    CH_ASSERT(c->state == GW_CONN_OPEN && !c->reading);
    (void)uv_tcp_nodelay(&c->tcp, 1); /* best effort: latency */
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    gw__conn_update_reading(c);
}

static void refuse_closed(uv_handle_t *h)
{
    struct gw *gw = h->data;

    CH_ASSERT(gw->is_refusing);
    gw->is_refusing = false;
    gw->n_handles_open--;
    if (gw->is_accept_pending && gw->listening) {
        gw->is_accept_pending = false;
        gw__conn_accept_cb((uv_stream_t *)&gw->listener, 0);
    }
    gw__maybe_closed(gw);
}

/* A connection that cannot be served (no memory for it) is accepted into
 * the gateway's spare handle and closed: libuv stops polling a listener
 * until its pending connection is accepted, so leaving it would stop the
 * gateway accepting for good. One at a time; a second waits for the
 * first's close. */
static void refuse_pending(struct gw *gw, uv_stream_t *server)
{
    int rv;

    if (gw->is_refusing) {
        gw->is_accept_pending = true;
        return;
    }
    rv = uv_tcp_init(gw->loop, &gw->refuse_tcp);
    CH_ASSERT(rv == 0); /* no socket is created: it cannot fail */
    gw->refuse_tcp.data = gw;
    gw->is_refusing = true;
    gw->n_handles_open++;
    rv = uv_accept(server, (uv_stream_t *)&gw->refuse_tcp);
    if (rv != 0)
        log_warn("gw", "accept failed err=%s", uv_strerror(rv));
    uv_close((uv_handle_t *)&gw->refuse_tcp, refuse_closed);
}

/* One log line per burst of refusals: true when *due_ms has passed, which
 * then moves 10 s on. */
static bool burst_log_due(struct gw *gw, uint64_t *due_ms)
{
    uint64_t now = uv_now(gw->loop);

    if (now < *due_ms)
        return false;
    *due_ms = now + 10000;
    return true;
}

/* An accept that failed (libuv refuses a connection it cannot take a
 * descriptor for by itself; what reaches us is rarer). */
static void accept_failed(struct gw *gw, int status)
{
    gw->metrics.connections_refused++;
    if (burst_log_due(gw, &gw->accept_error_log_due_ms))
        log_warn("gw", "accept failed err=%s refused=%llu", uv_strerror(status),
                 (unsigned long long)gw->metrics.connections_refused);
}

/* A connection beyond the limit: refused. When the file descriptor limit,
 * not --max-connections, set the limit, the line says so
 * (docs/operations.md "Failure notes"). */
static void refuse_over_limit(struct gw *gw)
{
    gw->metrics.connections_refused++;
    if (!burst_log_due(gw, &gw->refusal_log_due_ms))
        return;
    if (gw->conn_limit < gw->cfg.max_connections)
        log_warn("gw",
                 "file descriptor limit reached, connection refused "
                 "limit=%zu fd_limit=%llu max_connections=%zu refused=%llu "
                 "(raise the hard limit: ulimit -Hn, LimitNOFILE=)",
                 gw->conn_limit, (unsigned long long)gw->fd_limit,
                 gw->cfg.max_connections,
                 (unsigned long long)gw->metrics.connections_refused);
    else
        log_warn("gw", "connection limit reached limit=%zu refused=%llu",
                 gw->conn_limit,
                 (unsigned long long)gw->metrics.connections_refused);
}

void gw__conn_accept_cb(uv_stream_t *server, int status)
{
    struct gw *gw = server->data;
    struct gw_conn *c;
    int rv;

    if (status != 0) {
        accept_failed(gw, status);
        return;
    }
    c = gw__conn_new(gw);
    if (c == NULL) {
        gw->metrics.connections_refused++;
        log_error("gw", "out of memory accepting a connection; refused");
        refuse_pending(gw, server);
        return;
    }
    rv = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rv == 0 && gw->metrics.connections_current > gw->conn_limit) {
        refuse_over_limit(gw);
        rv = UV_EMFILE;
    }
    if (rv != 0) {
        gw__conn_close(c);
        return;
    }
    gw__conn_start(c);
}

/* ---- HTTP parsing ---- */

static void req_reset(struct gw_http_req *r)
{
    r->method = 0;
    r->url.len = 0;
    r->body.len = 0;
    r->hdr_names.len = 0;
    r->hdr_values.len = 0;
    r->n_headers = 0;
    r->header_bytes = 0;
    r->last_was_value = false;
    r->complete = false;
    r->too_large = false;
    r->is_nomem = false;
    r->keep_alive = false;
    r->upgrade = false;
}

/* An allocation failed while taking the request: not the client's fault,
 * answered 503 instead of 400 (http_process). */
static int nomem(struct gw_http_req *r)
{
    r->is_nomem = true;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct gw_conn *c = p->data;
    req_reset(&c->req);
    return 0;
}

static int count_header_bytes(struct gw_conn *c, size_t n)
{
    c->req.header_bytes += n;
    return c->req.header_bytes > CH_MAX_HTTP_HEADER_BYTES ? -1 : 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct gw_conn *c = p->data;
    if (count_header_bytes(c, n) != 0)
        return -1;
    return ch_buf_append(&c->req.url, at, n) == 0 ? 0 : nomem(&c->req);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_conn *c = p->data;
    struct gw_http_req *r = &c->req;

    if (count_header_bytes(c, n) != 0)
        return -1;
    if (r->last_was_value || r->n_headers == 0) {
        /* A new header: terminate the previous pair. */
        if (r->n_headers > 0 && (ch_buf_append(&r->hdr_names, "", 1) != 0 ||
                                 ch_buf_append(&r->hdr_values, "", 1) != 0))
            return nomem(r);
        r->n_headers++;
        r->last_was_value = false;
    }
    return ch_buf_append(&r->hdr_names, at, n) == 0 ? 0 : nomem(r);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_conn *c = p->data;
    if (count_header_bytes(c, n) != 0)
        return -1;
    c->req.last_was_value = true;
    return ch_buf_append(&c->req.hdr_values, at, n) == 0 ? 0 : nomem(&c->req);
}

static int on_headers_complete(http_parser *p)
{
    struct gw_conn *c = p->data;
    struct gw_http_req *r = &c->req;

    if (r->n_headers > 0 && (ch_buf_append(&r->hdr_names, "", 1) != 0 ||
                             ch_buf_append(&r->hdr_values, "", 1) != 0))
        return nomem(r);
    r->method = p->method;
    r->keep_alive = http_should_keep_alive(p) != 0;
    if ((p->flags & F_CONTENTLENGTH) &&
        p->content_length > c->gw->cfg.max_message_bytes)
        r->too_large = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_conn *c = p->data;
    struct gw_http_req *r = &c->req;

    if (r->too_large || r->body.len + n > c->gw->cfg.max_message_bytes) {
        r->too_large = true;
        return 0; /* keep parsing; the body is dropped, answer is 413 */
    }
    return ch_buf_append(&r->body, at, n) == 0 ? 0 : nomem(r);
}

static int on_message_complete(http_parser *p)
{
    struct gw_conn *c = p->data;
    c->req.complete = true;
    c->req.upgrade = p->upgrade != 0;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

const char *gw__http_header(const struct gw_http_req *r, const char *name)
{
    const char *n = r->hdr_names.data;
    const char *v = r->hdr_values.data;

    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(n, name) == 0)
            return v;
        n += strlen(n) + 1;
        v += strlen(v) + 1;
    }
    return NULL;
}

static const char *status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

void gw__http_respond(struct gw_conn *c, int status, const char *ctype,
                      const char *body, size_t body_n)
{
    char head[256];
    int n;

    n = snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                 "%zu\r\n%s\r\n",
                 status, status_text(status), ctype, body_n,
                 c->req.keep_alive ? "" : "Connection: close\r\n");
    gw__conn_write(c, head, (size_t)n);
    gw__conn_write(c, body, body_n);
    if (!c->req.keep_alive && c->state == GW_CONN_OPEN)
        c->state = GW_CONN_DRAINING;
    c->req_busy = false;
    gw__conn_flush(c);
}

void gw__http_respond_json(struct gw_conn *c, int status, const char *json)
{
    gw__http_respond(c, status, "application/json", json, strlen(json));
}

void gw__http_error(struct gw_conn *c, int status, const char *fmt, ...)
{
    char text[512];
    struct ch_buf b;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ch_buf_init(&b);
    /* Minimal JSON string escaping of our own texts. */
    if (ch_buf_append(&b, "{\"error\":\"", 10) != 0)
        goto oom;
    for (const char *p = text; *p != '\0'; p++) {
        char esc[8];
        int n;
        if (*p == '"' || *p == '\\')
            n = snprintf(esc, sizeof esc, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            n = snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)*p);
        else
            n = snprintf(esc, sizeof esc, "%c", *p);
        if (ch_buf_append(&b, esc, (size_t)n) != 0)
            goto oom;
    }
    if (ch_buf_append(&b, "\"}", 2) != 0)
        goto oom;
    gw__http_respond(c, status, "application/json", b.data, b.len);
    ch_buf_free(&b);
    return;
oom:
    ch_buf_free(&b);
    gw__conn_close(c);
}

void gw__http_store_error(struct gw_conn *c, int rv)
{
    CH_ASSERT(rv != 0);
    if (rv == CH_ENOMEM)
        gw__http_error(c, 503, "out of memory");
    else if (rv == CH_EMISSING) /* never an answer with a gap */
        gw__http_error(c, 503, "catching up: messages not on this node yet");
    else
        gw__http_error(c, 500, "store read failed: %s", ch_strerror(rv));
}

static void dispatch(struct gw_conn *c)
{
    const char *url = c->req.url.data ? c->req.url.data : "";

    c->gw->metrics.http_requests++;
    c->req_busy = true;
    if (c->req.too_large) {
        c->req.keep_alive = false;
        gw__http_error(c, 413, "message too large (limit %zu bytes)",
                       c->gw->cfg.max_message_bytes);
        return;
    }
    if ((strncmp(url, "/stream", 7) == 0 &&
         (url[7] == '\0' || url[7] == '/' || url[7] == '?')) ||
        strncmp(url, CLUSTER_LINK_PATH, strlen(CLUSTER_LINK_PATH)) == 0) {
        if (gw__ws_upgrade(c) == 0)
            c->req_busy = false;
        return;
    }
    if (strncmp(url, "/api/", 5) == 0) {
        gw__rest_handle(c);
        return;
    }
    gw__admin_handle(c);
}

/* Runs the parser over buffered input while no request is being answered. */
static void http_process(struct gw_conn *c)
{
    while (c->state == GW_CONN_OPEN && !c->req_busy && !c->is_ws &&
           c->in_off < c->in.len) {
        size_t avail = c->in.len - c->in_off;
        size_t n = http_parser_execute(&c->parser, &parser_settings,
                                       c->in.data + c->in_off, avail);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);

        c->in_off += n;
        if (err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
        } else if (err != HPE_OK) {
            c->req.keep_alive = false;
            if (c->req.is_nomem)
                gw__http_error(c, 503, "out of memory");
            else if (c->req.header_bytes > CH_MAX_HTTP_HEADER_BYTES)
                gw__http_error(c, 431, "request headers too large");
            else
                gw__http_error(c, 400, "bad HTTP request: %s",
                               http_errno_description(err));
            c->in_off = c->in.len;
            return;
        }
        if (c->req.complete) {
            c->req.complete = false;
            dispatch(c);
            if (c->is_ws) {
                /* Bytes after the upgrade request are WebSocket frames. */
                gw__ws_recv(c);
                return;
            }
        } else if (n == avail) {
            break;
        }
    }
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
    }
}

void gw__http_resume(struct gw_conn *c)
{
    if (gw__conn_closing(c))
        return;
    http_process(c);
    gw__conn_flush(c);
    gw__conn_update_reading(c);
}
