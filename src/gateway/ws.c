/* WebSocket (RFC 6455) on top of a connection: the upgrade handshake
 * (§4.2.2), then frames read from the connection's input in place and
 * written straight into its output (wsframe.h). */
#include "common/log.h"
#include "common/validate.h"
#include "common/ws_handshake.h"
#include "gateway/gw_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

static bool header_has_token(const char *value, const char *token)
{
    size_t tn = strlen(token);
    const char *p = value;

    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (strncasecmp(p, token, tn) == 0 &&
            (p[tn] == '\0' || p[tn] == ',' || p[tn] == ' '))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

static void random_app_id(char out[17])
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[16];

    if (RAND_bytes(r, sizeof r) != 1) {
        /* Not security relevant; fall back to the clock. */
        unsigned long long t =
            (unsigned long long)time(NULL) ^ (unsigned long long)(uintptr_t)out;
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(t >> (i % 8 * 8)) ^ (unsigned char)(i * 37);
    }
    for (size_t i = 0; i < 16; i++)
        out[i] = alnum[r[i] % (sizeof alnum - 1)];
    out[16] = '\0';
}

/* The client's Sec-WebSocket-Key when the request is a WebSocket upgrade
 * (RFC 6455 §4.2.1); otherwise answers 400 and returns NULL. */
static const char *upgrade_key(struct gw_conn *c)
{
    const char *upgrade = gw__http_header(&c->req, "upgrade");
    const char *connection = gw__http_header(&c->req, "connection");
    const char *key = gw__http_header(&c->req, "sec-websocket-key");
    const char *version = gw__http_header(&c->req, "sec-websocket-version");

    if (c->req.method != HTTP_GET || upgrade == NULL ||
        strcasecmp(upgrade, "websocket") != 0 || connection == NULL ||
        !header_has_token(connection, "upgrade") || key == NULL ||
        key[0] == '\0' || strlen(key) > CH_WS_MAX_CLIENT_KEY ||
        version == NULL || strcmp(version, "13") != 0) {
        c->req.keep_alive = false;
        gw__http_error(c, 400, "WebSocket upgrade required (RFC 6455)");
        return NULL;
    }
    return key;
}

/* A node link: the connection becomes the cluster's, which answers the
 * upgrade and speaks the link protocol (docs/architecture.md "Clients on
 * any node: forwarding"). The socket is handed over as a duplicate; this
 * connection then closes without a word (closing a descriptor does not
 * shut the socket down). */
static int link_handover(struct gw_conn *c, const char *key, const char *query)
{
    char peer[96];
    uv_os_fd_t fd;
    int dup_fd;
    int rv;

    if (c->in_off < c->in.len) {
        /* A client waits for the answer before it sends frames (§4.1). */
        c->req.keep_alive = false;
        gw__http_error(c, 400, "data after the upgrade request");
        return CH_EPROTO;
    }
    rv = uv_fileno((const uv_handle_t *)&c->tcp, &fd);
    CH_ASSERT(rv == 0); /* an open TCP handle has a descriptor */
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        c->req.keep_alive = false;
        gw__http_error(c, 503, "cannot take the link: %s", strerror(errno));
        return CH_EIO;
    }
    snprintf(peer, sizeof peer, "conn=%llu %.64s", (unsigned long long)c->id,
             query != NULL ? query : "");
    rv = cluster_link_accept(c->gw->cluster, dup_fd, key, peer);
    if (rv != 0)
        log_warn("gw", "link refused conn=%llu err=%s",
                 (unsigned long long)c->id, ch_strerror(rv));
    gw__conn_close(c);
    return rv == 0 ? 0 : rv;
}

int gw__ws_upgrade(struct gw_conn *c)
{
    const char *url = c->req.url.data;
    const char *user = "anonymous";
    size_t user_n = strlen(user);
    const char *key;
    char resp[256];
    char hello[512];
    const char *q;
    size_t path_n;
    int n;

    q = strchr(url, '?');
    path_n = q ? (size_t)(q - url) : strlen(url);
    if (path_n == strlen(CLUSTER_LINK_PATH) &&
        strncmp(url, CLUSTER_LINK_PATH, path_n) == 0) {
        key = upgrade_key(c);
        return key != NULL ? link_handover(c, key, q ? q + 1 : NULL)
                           : CH_EINVAL;
    }
    if (path_n > 13 && strncmp(url, "/stream/user/", 13) == 0) {
        user = url + 13;
        user_n = path_n - 13;
        if (!ch_valid_id(user, user_n)) {
            c->req.keep_alive = false;
            gw__http_error(c, 400, "bad user id");
            return CH_EINVAL;
        }
    } else if (path_n != 7) {
        gw__http_error(c, 404, "no such endpoint");
        return CH_ENOTFOUND;
    }
    key = upgrade_key(c);
    if (key == NULL)
        return CH_EINVAL;
    n = ch_ws_format_accepted(resp, sizeof resp, key);
    if (n < 0) {
        c->req.keep_alive = false;
        gw__http_error(c, 400, "bad Sec-WebSocket-Key");
        return CH_EINVAL;
    }

    /* Frames above body limit + slack cannot be parsed: they are closed
     * with 1009 (docs/protocol.md). */
    ch_ws_reader_init(&c->ws,
                      c->gw->cfg.max_message_bytes + CH_FRAME_SLACK_BYTES);
    memcpy(c->user, user, user_n);
    c->user[user_n] = '\0';
    random_app_id(c->app);
    c->is_ws = true;
    c->gw->metrics.ws_connections_current++;
    gw__conn_write(c, resp, (size_t)n);
    n = snprintf(
        hello, sizeof hello,
        "#connected You are connected to the server.\n"
        "{\"ApplicationId\":\"%s\",\"UserId\":\"%s\",\"Time\":\"%lld\"}",
        c->app, c->user, (long long)time(NULL));
    gw__ws_send_text(c, hello, (size_t)n);
    log_debug("gw", "websocket open conn=%llu user=%s app=%s",
              (unsigned long long)c->id, c->user, c->app);
    return 0;
}

/* Queues our close frame; nothing is sent after it, and the connection
 * closes once it is written (RFC 6455 §5.5.1). */
static void send_close(struct gw_conn *c, uint16_t code)
{
    if (c->state != GW_CONN_OPEN)
        return;
    c->state = GW_CONN_DRAINING;
    if (ch_ws_write_close(&c->out, code) != 0)
        gw__conn_close(c);
}

static void handle_event(struct gw_conn *c, const struct ch_ws_event *ev)
{
    switch (ev->kind) {
    case CH_WS_EV_MESSAGE:
        gw__proto_handle(c, ev->data, ev->n);
        return;
    case CH_WS_EV_PING:
        if (ch_ws_write_frame(&c->out, CH_WS_PONG, ev->data, ev->n) != 0)
            gw__conn_close(c);
        return;
    case CH_WS_EV_PONG:
        return;
    case CH_WS_EV_CLOSE:
        /* Echo the peer's code (§5.5.1). */
        send_close(c, ev->code);
        return;
    case CH_WS_EV_ERROR:
        log_debug("gw", "websocket protocol error conn=%llu code=%u why=%s",
                  (unsigned long long)c->id, ev->code, ev->why);
        send_close(c, ev->code);
        return;
    }
}

/* Handles every complete frame in the input; a partial one stays. */
void gw__ws_recv(struct gw_conn *c)
{
    struct ch_ws_event ev;

    CH_ASSERT(c->is_ws);
    while (c->state == GW_CONN_OPEN &&
           ch_ws_read(&c->ws, c->in.data, c->in.len, &c->in_off, &ev))
        handle_event(c, &ev);
    if (c->state != GW_CONN_OPEN) {
        c->in_off = c->in.len; /* nothing after a close is read */
    }
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
    } else if (c->in_off > 0) {
        ch_buf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
}

/* Writes the frame straight into the output: no copy per connection
 * besides this one, no allocation per message. */
void gw__ws_send_frame(struct gw_conn *c, const char *p, size_t n, bool binary)
{
    /* Nothing after our close frame (DRAINING), RFC 6455 §5.5.1. */
    if (c->state != GW_CONN_OPEN || !c->is_ws)
        return;
    if (ch_ws_write_frame(&c->out, binary ? CH_WS_BINARY : CH_WS_TEXT, p, n) !=
        0) {
        log_error("gw", "out of memory conn=%llu", (unsigned long long)c->id);
        gw__conn_close(c);
    }
}

void gw__ws_send_text(struct gw_conn *c, const char *p, size_t n)
{
    gw__ws_send_frame(c, p, n, false);
}

void gw__ws_fail(struct gw_conn *c, const char *text, size_t n)
{
    gw__ws_send_text(c, text, n);
    send_close(c, CH_WS_CLOSE_INTERNAL);
}
