/* WebSocket (RFC 6455) on top of a connection: the upgrade handshake
 * (§4.2.2), and wslay for framing. wslay's callbacks make no syscalls: recv
 * copies bytes the connection already read, send copies frames into the
 * connection's output chunk and says WOULDBLOCK once it is full. */
#include "common/log.h"
#include "common/validate.h"
#include "common/wsio.h"
#include "gateway/gw_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static ssize_t recv_callback(wslay_event_context_ptr ctx, uint8_t *buf,
                             size_t len, int flags, void *user_data)
{
    struct gw_conn *c = user_data;
    (void)flags;
    return ch_wsio_recv(ctx, buf, len, &c->in, &c->in_off);
}

static ssize_t send_callback(wslay_event_context_ptr ctx, const uint8_t *data,
                             size_t len, int flags, void *user_data)
{
    struct gw_conn *c = user_data;
    (void)flags;
    return ch_wsio_send(ctx, data, len, &c->out, CH_WRITE_CHUNK_BYTES);
}

static void on_msg_recv_callback(wslay_event_context_ptr ctx,
                                 const struct wslay_event_on_msg_recv_arg *arg,
                                 void *user_data)
{
    struct gw_conn *c = user_data;
    (void)ctx;

    if (c->closing)
        return;
    if (c->is_link) {
        if (arg->opcode == WSLAY_BINARY_FRAME)
            gw__link_frame(c, (const char *)arg->msg, arg->msg_length);
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        gw__proto_handle(c, (const char *)arg->msg, arg->msg_length);
}

static int genmask_callback(wslay_event_context_ptr ctx, uint8_t *buf,
                            size_t len, void *user_data)
{
    (void)ctx;
    (void)user_data;
    /* Servers do not mask; wslay asks only clients. */
    memset(buf, 0, len);
    return 0;
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = recv_callback,
    .send_callback = send_callback,
    .genmask_callback = genmask_callback,
    .on_msg_recv_callback = on_msg_recv_callback,
};

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

int gw__ws_upgrade(struct gw_conn *c)
{
    const char *url = c->req.url.data;
    const char *upgrade = gw__http_header(&c->req, "upgrade");
    const char *connection = gw__http_header(&c->req, "connection");
    const char *key = gw__http_header(&c->req, "sec-websocket-key");
    const char *version = gw__http_header(&c->req, "sec-websocket-version");
    const char *user = "anonymous";
    size_t user_n = strlen(user);
    unsigned char sha[SHA_DIGEST_LENGTH];
    unsigned char accept[64];
    char concat[128];
    char resp[256];
    char hello[512];
    const char *q;
    size_t path_n;
    bool is_link = false;
    int n, rv;

    q = strchr(url, '?');
    path_n = q ? (size_t)(q - url) : strlen(url);
    if (path_n == strlen(CH_LINK_PATH) &&
        strncmp(url, CH_LINK_PATH, path_n) == 0) {
        is_link = true;
    } else if (path_n > 13 && strncmp(url, "/stream/user/", 13) == 0) {
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
    if (c->req.method != HTTP_GET || upgrade == NULL ||
        strcasecmp(upgrade, "websocket") != 0 || connection == NULL ||
        !header_has_token(connection, "upgrade") || key == NULL ||
        strlen(key) > 60 || version == NULL || strcmp(version, "13") != 0) {
        c->req.keep_alive = false;
        gw__http_error(c, 400, "WebSocket upgrade required (RFC 6455)");
        return CH_EINVAL;
    }
    n = snprintf(concat, sizeof concat, "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)concat, (size_t)n, sha);
    EVP_EncodeBlock(accept, sha, SHA_DIGEST_LENGTH);

    rv = wslay_event_context_server_init(&c->ws, &ws_callbacks, c);
    if (rv != 0) {
        c->ws = NULL;
        c->req.keep_alive = false;
        gw__http_error(c, 500, "out of memory");
        return CH_ENOMEM;
    }
    /* Frames above body limit + slack cannot be parsed: wslay closes them
     * with 1009 (SPEC §4). */
    wslay_event_config_set_max_recv_msg_length(
        c->ws, is_link ? CH_MAX_LINK_FRAME_BYTES
                       : c->gw->cfg.max_message_bytes + CH_FRAME_SLACK_BYTES);
    memcpy(c->user, user, user_n);
    c->user[user_n] = '\0';
    random_app_id(c->app);
    c->is_ws = true;
    c->gw->metrics.ws_connections_current++;

    n = snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    gw__conn_write(c, resp, (size_t)n);
    if (is_link) {
        gw__link_open(c);
        log_info("gw", "link open conn=%llu from=%s", (unsigned long long)c->id,
                 q ? q + 1 : "?");
        return 0;
    }
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

void gw__ws_recv(struct gw_conn *c)
{
    int rv;

    if (c->closing || c->ws == NULL)
        return;
    rv = wslay_event_recv(c->ws);
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
    }
    if (rv != 0) {
        log_debug("gw", "websocket protocol error conn=%llu rv=%d",
                  (unsigned long long)c->id, rv);
        gw__conn_close(c);
        return;
    }
    if (!wslay_event_want_read(c->ws)) {
        /* A close frame arrived (or we sent one): flush it, then close. */
        c->close_after_write = true;
    }
}

void gw__ws_send_frame(struct gw_conn *c, const char *p, size_t n, bool binary)
{
    struct wslay_event_msg msg;
    int rv;

    if (c->closing || c->ws == NULL)
        return;
    msg.opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
    msg.msg = (const uint8_t *)p;
    msg.msg_length = n;
    rv = wslay_event_queue_msg(c->ws, &msg);
    if (rv != 0) {
        log_debug("gw", "websocket queue failed conn=%llu rv=%d",
                  (unsigned long long)c->id, rv);
        if (rv == WSLAY_ERR_NOMEM)
            gw__conn_close(c);
    }
}

void gw__ws_send_text(struct gw_conn *c, const char *p, size_t n)
{
    gw__ws_send_frame(c, p, n, false);
}
