/* Blocking WebSocket client (RFC 6455) over one TCP socket: connect, HTTP
 * upgrade, whole-message send/receive with timeouts. wslay does the framing;
 * its callbacks do non-blocking socket I/O and poll(2) supplies the waits. */
#include "common/wsclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "common/alloc.h"
#include "common/buf.h"

/* RFC 6455 §1.3: appended to the key before hashing. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* How long ch_wsc_destroy() waits to hand the close frame to the kernel. */
#define WSC_CLOSE_WAIT_MS 200

struct wsc_msg {
    struct wsc_msg *next; /* owned list link */
    bool is_binary;
    size_t len; /* bytes in data, without the NUL */
    char *data; /* owned, len + 1 bytes, NUL-terminated */
};

struct ch_wsc {
    int fd;                      /* owned socket, -1 when not connected */
    wslay_event_context_ptr ctx; /* owned, NULL when not connected */
    size_t max_msg_bytes;        /* limit for one received message */
    struct ch_buf pending_in;    /* bytes read with the upgrade response */
    size_t pending_off;          /* bytes of pending_in already consumed */
    struct wsc_msg *head, *tail; /* received messages, owned */
    bool is_eof;                 /* the peer closed the TCP stream */
    bool is_nomem;               /* a message could not be stored */
    int sock_errno;              /* errno of a failed recv/send, or 0 */
    int close_code;              /* status of a received close, or 0 */
    char errmsg[CH_ERRMSG_SIZE]; /* text of the last failure */
};

/* ---- time ---------------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: no deadline) for poll(). */
static int remaining_ms(long long deadline)
{
    long long left;

    if (deadline < 0)
        return -1;
    left = deadline - now_ms();
    if (left < 0)
        return 0;
    if (left > 0x7fffffff)
        return 0x7fffffff;
    return (int)left;
}

long long ch_deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int ch_fd_wait(int fd, short events, long long deadline, const char *what,
               char *errmsg)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rv;

    do {
        rv = poll(&pfd, 1, remaining_ms(deadline));
    } while (rv < 0 && errno == EINTR);
    if (rv == 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "timed out %s", what);
        return CH_ETIMEDOUT;
    }
    if (rv < 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "poll: %s", strerror(errno));
        return CH_EIO;
    }
    return 0;
}

int ch_fd_send_all(int fd, const void *data, size_t n, long long deadline,
                   const char *what, char *errmsg)
{
    const char *p = data;
    ssize_t w;
    int rv;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "send: %s", strerror(errno));
            return CH_EIO;
        }
        rv = ch_fd_wait(fd, POLLOUT, deadline, what, errmsg);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- addresses and TCP --------------------------------------------------- */

int ch_hostport_split(const char *hostport, char *host, size_t host_size,
                      char *port, size_t port_size)
{
    const char *colon;
    const char *h = hostport;
    size_t hn;

    if (hostport == NULL || hostport[0] == '\0')
        return CH_EINVAL;
    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (end == NULL || end[1] != ':')
            return CH_EINVAL;
        h = hostport + 1;
        hn = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (colon == NULL)
            return CH_EINVAL;
        hn = (size_t)(colon - hostport);
    }
    if (hn == 0 || hn >= host_size || colon[1] == '\0' ||
        strlen(colon + 1) >= port_size)
        return CH_EINVAL;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return CH_EINVAL;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* Waits for a non-blocking connect on fd to finish. Returns 0 or an errno. */
static int connect_wait(int fd, long long deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    int rv;

    for (;;) {
        rv = poll(&pfd, 1, remaining_ms(deadline));
        if (rv > 0)
            break;
        if (rv == 0)
            return ETIMEDOUT;
        if (errno != EINTR)
            return errno;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}

int ch_tcp_connect(const char *hostport, int timeout_ms, int *fd, char *errmsg)
{
    char host[256];
    char port[16];
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct addrinfo *ai;
    long long deadline = ch_deadline_after(timeout_ms);
    int last_err = ECONNREFUSED;
    int one = 1;
    int s;
    int rv;

    if (ch_hostport_split(hostport, host, sizeof(host), port, sizeof(port)) !=
        0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad address %s (want HOST:PORT)",
                 hostport);
        return CH_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot resolve %.200s: %s", host,
                 gai_strerror(rv));
        return CH_ECONNECT;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        s = socket(ai->ai_family,
                   ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);
        if (s < 0) {
            last_err = errno;
            continue;
        }
        if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0)
            last_err = 0;
        else if (errno == EINPROGRESS)
            last_err = connect_wait(s, deadline);
        else
            last_err = errno;
        if (last_err == 0) {
            /* Latency matters more than segment count for small frames. */
            if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) !=
                0) {
                last_err = errno;
                close(s);
                continue;
            }
            freeaddrinfo(res);
            *fd = s;
            return 0;
        }
        close(s);
        if (last_err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    snprintf(errmsg, CH_ERRMSG_SIZE, "cannot connect to %s: %s", hostport,
             last_err == ETIMEDOUT ? "timed out" : strerror(last_err));
    return last_err == ETIMEDOUT ? CH_ETIMEDOUT : CH_ECONNECT;
}

/* ---- handshake ----------------------------------------------------------- */

int ch_ws_make_key(char *key)
{
    unsigned char raw[16];

    if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return CH_EIO;
    /* 16 bytes encode to 24 characters + NUL. */
    if (EVP_EncodeBlock((unsigned char *)key, raw, (int)sizeof(raw)) != 24)
        return CH_EIO;
    return 0;
}

int ch_ws_accept_for_key(const char *key, char *accept)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char joined[128];
    int n;

    n = snprintf(joined, sizeof(joined), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(joined))
        return CH_EIO;
    if (EVP_Digest(joined, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1 ||
        md_len != 20)
        return CH_EIO;
    /* 20 bytes encode to 28 characters + NUL. */
    if (EVP_EncodeBlock((unsigned char *)accept, md, (int)md_len) != 28)
        return CH_EIO;
    return 0;
}

int ch_ws_format_upgrade(char *buf, size_t size, const char *host_header,
                         const char *path, const char *key)
{
    int n = snprintf(buf, size,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, host_header, key);
    if (n < 0 || (size_t)n >= size)
        return CH_ETOOBIG;
    return n;
}

int ch_ws_handshake_init(struct ch_ws_handshake *hs, const char *key)
{
    hs->len = 0;
    return ch_ws_accept_for_key(key, hs->accept_expected);
}

/* Headers of the upgrade response, gathered by http_parser callbacks. */
struct hs_parse {
    const char *field; /* last header name (points into the head) */
    size_t field_n;
    bool has_upgrade;  /* Upgrade: websocket */
    bool has_accept;   /* Sec-WebSocket-Accept present */
    bool is_accept_ok; /* ... and equal to the expected value */
    const char *expected;
    bool is_done;
};

static bool field_is(const struct hs_parse *p, const char *name)
{
    return p->field_n == strlen(name) &&
           strncasecmp(p->field, name, p->field_n) == 0;
}

static int hs_on_header_field(http_parser *hp, const char *at, size_t n)
{
    struct hs_parse *p = hp->data;

    p->field = at;
    p->field_n = n;
    return 0;
}

static int hs_on_header_value(http_parser *hp, const char *at, size_t n)
{
    struct hs_parse *p = hp->data;

    if (field_is(p, "Upgrade")) {
        p->has_upgrade = n == 9 && strncasecmp(at, "websocket", 9) == 0;
    } else if (field_is(p, "Sec-WebSocket-Accept")) {
        p->has_accept = true;
        p->is_accept_ok =
            n == strlen(p->expected) && memcmp(at, p->expected, n) == 0;
    }
    return 0;
}

static int hs_on_headers_complete(http_parser *hp)
{
    struct hs_parse *p = hp->data;

    p->is_done = true;
    /* 1: no body is expected; the rest of the stream is frames. */
    return 1;
}

int ch_ws_handshake_feed(struct ch_ws_handshake *hs, const char *data, size_t n,
                         bool *done, size_t *used, char *errmsg)
{
    http_parser_settings settings;
    http_parser hp;
    struct hs_parse p;
    const char *end;
    size_t old_len = hs->len;
    size_t head_len;
    size_t parsed;

    *done = false;
    *used = n;
    if (n > sizeof(hs->buf) - 1 - hs->len)
        n = sizeof(hs->buf) - 1 - hs->len;
    memcpy(hs->buf + hs->len, data, n);
    hs->len += n;
    hs->buf[hs->len] = '\0';
    end = strstr(hs->buf, "\r\n\r\n");
    if (end == NULL) {
        if (hs->len == sizeof(hs->buf) - 1) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "upgrade response head too large");
            return CH_ETOOBIG;
        }
        return 0;
    }
    head_len = (size_t)(end - hs->buf) + 4;
    *used = head_len - old_len;

    memset(&settings, 0, sizeof(settings));
    settings.on_header_field = hs_on_header_field;
    settings.on_header_value = hs_on_header_value;
    settings.on_headers_complete = hs_on_headers_complete;
    memset(&p, 0, sizeof(p));
    p.expected = hs->accept_expected;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &p;
    parsed = http_parser_execute(&hp, &settings, hs->buf, head_len);
    if (!p.is_done || (HTTP_PARSER_ERRNO(&hp) != HPE_OK && parsed < head_len)) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad upgrade response: %s",
                 http_errno_description(HTTP_PARSER_ERRNO(&hp)));
        return CH_EPROTO;
    }
    if (hp.status_code != 101) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "upgrade refused: HTTP %u",
                 hp.status_code);
        return CH_EPROTO;
    }
    if (!p.has_upgrade) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "upgrade response lacks Upgrade: websocket");
        return CH_EPROTO;
    }
    if (!p.has_accept || !p.is_accept_ok) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "upgrade response has a wrong Sec-WebSocket-Accept");
        return CH_EPROTO;
    }
    *done = true;
    return 0;
}

/* ---- wslay callbacks ----------------------------------------------------- */

static ssize_t wsc_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf,
                           size_t len, int flags, void *user_data)
{
    struct ch_wsc *c = user_data;
    ssize_t n;

    (void)flags; /* always 0 (wslay.h) */
    if (c->pending_off < c->pending_in.len) {
        size_t avail = c->pending_in.len - c->pending_off;
        if (len > avail)
            len = avail;
        memcpy(buf, c->pending_in.data + c->pending_off, len);
        c->pending_off += len;
        return (ssize_t)len;
    }
    /* Bound what one receive can queue: read more only once the caller
     * took the messages already decoded. */
    if (c->head != NULL) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    for (;;) {
        n = recv(c->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n == 0) {
            c->is_eof = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
        c->sock_errno = errno;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static ssize_t wsc_send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                           size_t len, int flags, void *user_data)
{
    struct ch_wsc *c = user_data;
    int sflags = MSG_NOSIGNAL;
    ssize_t n;

    if (flags & WSLAY_MSG_MORE)
        sflags |= MSG_MORE;
    for (;;) {
        n = send(c->fd, data, len, sflags);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
        c->sock_errno = errno;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static int wsc_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                          void *user_data)
{
    (void)user_data;
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

static void wsc_on_msg_cb(wslay_event_context_ptr ctx,
                          const struct wslay_event_on_msg_recv_arg *arg,
                          void *user_data)
{
    struct ch_wsc *c = user_data;
    struct wsc_msg *m;

    (void)ctx;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        c->close_code = arg->status_code;
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* ping/pong: wslay answers pings itself */
    m = ch_malloc(sizeof(*m));
    if (m == NULL) {
        c->is_nomem = true;
        return;
    }
    m->data = ch_malloc(arg->msg_length + 1);
    if (m->data == NULL) {
        ch_free(m);
        c->is_nomem = true;
        return;
    }
    m->next = NULL;
    m->is_binary = arg->opcode == WSLAY_BINARY_FRAME;
    m->len = arg->msg_length;
    if (arg->msg_length > 0)
        memcpy(m->data, arg->msg, arg->msg_length);
    m->data[m->len] = '\0';
    if (c->tail != NULL)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
}

/* ---- client -------------------------------------------------------------- */

int ch_wsc_create(size_t max_msg_bytes, struct ch_wsc **out)
{
    struct ch_wsc *c = ch_calloc(1, sizeof(*c));

    if (c == NULL)
        return CH_ENOMEM;
    c->fd = -1;
    c->max_msg_bytes = max_msg_bytes;
    ch_buf_init(&c->pending_in);
    *out = c;
    return 0;
}

const char *ch_wsc_errmsg(const struct ch_wsc *c)
{
    return c->errmsg;
}

/* Reads the upgrade response; keeps bytes after its head in pending_in. */
static int read_upgrade(struct ch_wsc *c, struct ch_ws_handshake *hs,
                        long long deadline)
{
    char buf[4096];
    bool done = false;
    size_t used;
    ssize_t r;
    int rv;

    while (!done) {
        r = recv(c->fd, buf, sizeof(buf), 0);
        if (r > 0) {
            rv = ch_ws_handshake_feed(hs, buf, (size_t)r, &done, &used,
                                      c->errmsg);
            if (rv != 0)
                return rv;
            if (done && used < (size_t)r) {
                rv =
                    ch_buf_append(&c->pending_in, buf + used, (size_t)r - used);
                if (rv != 0) {
                    snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
                    return rv;
                }
            }
            continue;
        }
        if (r == 0) {
            snprintf(c->errmsg, sizeof(c->errmsg),
                     "connection closed during the upgrade");
            return CH_EIO;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            snprintf(c->errmsg, sizeof(c->errmsg), "recv: %s", strerror(errno));
            return CH_EIO;
        }
        rv = ch_fd_wait(c->fd, POLLIN, deadline,
                        "waiting for the upgrade response", c->errmsg);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int ch_wsc_connect(struct ch_wsc *c, const char *hostport, const char *path,
                   int timeout_ms)
{
    struct wslay_event_callbacks cbs;
    struct ch_ws_handshake *hs = NULL;
    char key[CH_WS_KEY_SIZE];
    char req[2048];
    int req_n;
    int rv;

    CH_ASSERT(c->fd < 0 && c->ctx == NULL);
    c->errmsg[0] = '\0';
    rv = ch_tcp_connect(hostport, timeout_ms, &c->fd, c->errmsg);
    if (rv != 0)
        goto err;
    hs = ch_malloc(sizeof(*hs));
    if (hs == NULL) {
        rv = CH_ENOMEM;
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
        goto err_after_connect;
    }
    rv = ch_ws_make_key(key);
    if (rv == 0)
        rv = ch_ws_handshake_init(hs, key);
    if (rv != 0) {
        snprintf(c->errmsg, sizeof(c->errmsg), "cannot make a key");
        goto err_after_hs;
    }
    req_n = ch_ws_format_upgrade(req, sizeof(req), hostport, path, key);
    if (req_n < 0) {
        rv = req_n;
        snprintf(c->errmsg, sizeof(c->errmsg), "path too long");
        goto err_after_hs;
    }
    rv =
        ch_fd_send_all(c->fd, req, (size_t)req_n, ch_deadline_after(timeout_ms),
                       "sending the upgrade request", c->errmsg);
    if (rv != 0)
        goto err_after_hs;
    rv = read_upgrade(c, hs, ch_deadline_after(timeout_ms));
    if (rv != 0)
        goto err_after_hs;

    memset(&cbs, 0, sizeof(cbs));
    cbs.recv_callback = wsc_recv_cb;
    cbs.send_callback = wsc_send_cb;
    cbs.genmask_callback = wsc_genmask_cb;
    cbs.on_msg_recv_callback = wsc_on_msg_cb;
    if (wslay_event_context_client_init(&c->ctx, &cbs, c) != 0) {
        c->ctx = NULL;
        rv = CH_ENOMEM;
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
        goto err_after_hs;
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, c->max_msg_bytes);
    ch_free(hs);
    return 0;

err_after_hs:
    ch_free(hs);
err_after_connect:
    close(c->fd);
    c->fd = -1;
    ch_buf_free(&c->pending_in);
    c->pending_off = 0;
err:
    return rv;
}

/* Describes why the connection can no longer carry messages. */
static int ended_error(struct ch_wsc *c)
{
    int sent = wslay_event_get_close_sent(c->ctx)
                   ? wslay_event_get_status_code_sent(c->ctx)
                   : 0;

    if (c->is_nomem) {
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
        return CH_ENOMEM;
    }
    if (sent == WSLAY_CODE_MESSAGE_TOO_BIG) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "received a message over %zu bytes", c->max_msg_bytes);
        return CH_ETOOBIG;
    }
    if (sent == WSLAY_CODE_PROTOCOL_ERROR ||
        sent == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "bad frames from the server (close code %d)", sent);
        return CH_EPROTO;
    }
    if (c->sock_errno != 0) {
        snprintf(c->errmsg, sizeof(c->errmsg), "connection error: %s",
                 strerror(c->sock_errno));
        return CH_EIO;
    }
    if (wslay_event_get_close_received(c->ctx)) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "connection closed by the server (code %d)", c->close_code);
        return CH_EIO;
    }
    snprintf(c->errmsg, sizeof(c->errmsg), "connection closed by the server");
    return CH_EIO;
}

/* Drives wslay until a message is queued (want_msg) or the send queue is
 * empty (!want_msg), or deadline. */
static int pump(struct ch_wsc *c, bool want_msg, long long deadline)
{
    struct pollfd pfd;
    int rv;

    for (;;) {
        if (c->is_nomem)
            return ended_error(c);
        if (want_msg && c->head != NULL)
            return 0;
        if (!want_msg && !wslay_event_want_write(c->ctx))
            return 0;
        if (c->pending_off < c->pending_in.len &&
            wslay_event_want_read(c->ctx)) {
            if (wslay_event_recv(c->ctx) != 0 || c->is_eof)
                return ended_error(c);
            continue;
        }
        pfd.fd = c->fd;
        pfd.events = 0;
        pfd.revents = 0;
        if (wslay_event_want_read(c->ctx) && c->head == NULL)
            pfd.events |= POLLIN;
        if (wslay_event_want_write(c->ctx))
            pfd.events |= POLLOUT;
        if (pfd.events == 0) {
            if (c->head != NULL && want_msg)
                return 0;
            return ended_error(c);
        }
        rv = poll(&pfd, 1, remaining_ms(deadline));
        if (rv < 0) {
            if (errno == EINTR) {
                snprintf(c->errmsg, sizeof(c->errmsg), "interrupted");
                return CH_ESHUTDOWN;
            }
            snprintf(c->errmsg, sizeof(c->errmsg), "poll: %s", strerror(errno));
            return CH_EIO;
        }
        if (rv == 0) {
            snprintf(c->errmsg, sizeof(c->errmsg), "timed out");
            return CH_ETIMEDOUT;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (wslay_event_recv(c->ctx) != 0 || c->is_eof) {
                /* Let queued messages out before reporting the end. */
                if (want_msg && c->head != NULL)
                    return 0;
                return ended_error(c);
            }
        }
        if (wslay_event_want_write(c->ctx)) {
            if (wslay_event_send(c->ctx) != 0)
                return ended_error(c);
        }
    }
}

int ch_wsc_send(struct ch_wsc *c, bool is_binary, const void *data, size_t n,
                int timeout_ms)
{
    struct wslay_event_msg msg;
    int rv;

    if (c->ctx == NULL) {
        snprintf(c->errmsg, sizeof(c->errmsg), "not connected");
        return CH_EIO;
    }
    c->errmsg[0] = '\0';
    msg.opcode = is_binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
    msg.msg = data;
    msg.msg_length = n;
    rv = wslay_event_queue_msg(c->ctx, &msg);
    if (rv == WSLAY_ERR_NOMEM) {
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
        return CH_ENOMEM;
    }
    if (rv != 0)
        return ended_error(c);
    return pump(c, false, ch_deadline_after(timeout_ms));
}

int ch_wsc_recv(struct ch_wsc *c, int timeout_ms, bool *is_binary, char **data,
                size_t *n)
{
    struct wsc_msg *m;
    int rv;

    if (c->ctx == NULL) {
        snprintf(c->errmsg, sizeof(c->errmsg), "not connected");
        return CH_EIO;
    }
    c->errmsg[0] = '\0';
    rv = pump(c, true, ch_deadline_after(timeout_ms));
    if (rv != 0)
        return rv;
    m = c->head;
    c->head = m->next;
    if (c->head == NULL)
        c->tail = NULL;
    *data = m->data;
    *n = m->len;
    *is_binary = m->is_binary;
    ch_free(m);
    return 0;
}

void ch_wsc_destroy(struct ch_wsc *c)
{
    struct wsc_msg *m;

    if (c == NULL)
        return;
    if (c->ctx != NULL) {
        /* RFC 6455 §7.1.2: start the closing handshake; a failure here
         * only means the peer is already gone. */
        if (!wslay_event_get_close_sent(c->ctx) &&
            wslay_event_queue_close(c->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL,
                                    0) == 0 &&
            pump(c, false, ch_deadline_after(WSC_CLOSE_WAIT_MS)) != 0)
            c->errmsg[0] = '\0';
        wslay_event_context_free(c->ctx);
    }
    if (c->fd >= 0)
        close(c->fd);
    while (c->head != NULL) {
        m = c->head;
        c->head = m->next;
        ch_free(m->data);
        ch_free(m);
    }
    ch_buf_free(&c->pending_in);
    ch_free(c);
}
