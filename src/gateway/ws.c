/* WebSocket (RFC 6455) on top of a connection: the upgrade handshake
 * (§4.2.2), then frames read from the connection's input in place and
 * written straight into its output (wsframe.h). */
#include "common/log.h"
#include "common/validate.h"
#include "gateway/gw_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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
    int n;

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

    /* Frames above body limit + slack cannot be parsed: they are closed
     * with 1009 (SPEC §4). */
    ch_ws_reader_init(&c->ws, is_link ? CH_MAX_LINK_FRAME_BYTES
                                      : c->gw->cfg.max_message_bytes +
                                            CH_FRAME_SLACK_BYTES);
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

/* Queues our close frame; nothing is sent after it, and the connection
 * closes once it is written (RFC 6455 §5.5.1). */
static void send_close(struct gw_conn *c, uint16_t code)
{
    if (c->ws_close_sent)
        return;
    c->ws_close_sent = true;
    c->close_after_write = true;
    if (ch_ws_write_close(&c->out, code) != 0)
        gw__conn_close(c);
}

static void handle_event(struct gw_conn *c, const struct ch_ws_event *ev)
{
    switch (ev->kind) {
    case CH_WS_EV_MESSAGE:
        if (c->is_link) {
            if (ev->binary)
                gw__link_frame(c, ev->data, ev->n);
            return;
        }
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

    while (!c->closing && !c->ws_close_sent &&
           ch_ws_read(&c->ws, c->in.data, c->in.len, &c->in_off, &ev))
        handle_event(c, &ev);
    if (c->ws_close_sent) {
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
    if (c->closing || !c->is_ws || c->ws_close_sent)
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
