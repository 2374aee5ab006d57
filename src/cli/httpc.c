/* Blocking HTTP/1.1 client: one request, Connection: close, response parsed
 * by http_parser. */
#include "cli/httpc.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "common/net.h"

/* Response parsing state shared with the http_parser callbacks. */
struct httpc_parse {
    struct httpc_response *r;
    bool is_complete; /* on_message_complete fired */
    int rv;           /* first failure inside a callback, or 0 */
};

void httpc_response_init(struct httpc_response *r)
{
    r->status = 0;
    ch_buf_init(&r->body);
    r->errmsg[0] = '\0';
}

void httpc_response_free(struct httpc_response *r)
{
    ch_buf_free(&r->body);
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    struct httpc_parse *p = hp->data;

    if (p->r->body.len + n > HTTPC_MAX_BODY_BYTES) {
        p->rv = CH_ETOOBIG;
        return -1;
    }
    if (ch_buf_append(&p->r->body, at, n) != 0) {
        p->rv = CH_ENOMEM;
        return -1;
    }
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct httpc_parse *p = hp->data;

    p->r->status = (int)hp->status_code;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct httpc_parse *p = hp->data;

    p->is_complete = true;
    return 0;
}

/* Builds the request head (and body) into out. */
static int format_request(struct ch_buf *out, const char *method,
                          const char *hostport, const char *path,
                          const char *const *headers, const void *body,
                          size_t body_n)
{
    int rv;

    rv = ch_buf_printf(out,
                       "%s %s HTTP/1.1\r\nHost: %s\r\n"
                       "User-Agent: chorusctl\r\nAccept: application/json\r\n"
                       "Connection: close\r\n",
                       method, path, hostport);
    for (size_t i = 0; rv == 0 && headers != NULL && headers[i] != NULL; i++)
        rv = ch_buf_printf(out, "%s\r\n", headers[i]);
    if (rv == 0 && body != NULL)
        rv = ch_buf_printf(out, "Content-Length: %zu\r\n", body_n);
    if (rv == 0)
        rv = ch_buf_append(out, "\r\n", 2);
    if (rv == 0 && body != NULL)
        rv = ch_buf_append(out, body, body_n);
    return rv;
}

/* Reads and parses the response until it is complete or the peer closes. */
static int read_response(int fd, long long deadline, struct httpc_response *r)
{
    http_parser_settings settings;
    struct httpc_parse p = {.r = r};
    http_parser hp;
    char buf[16384];
    size_t parsed;
    ssize_t n;
    int rv;

    memset(&settings, 0, sizeof(settings));
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &p;

    while (!p.is_complete) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                snprintf(r->errmsg, sizeof(r->errmsg), "recv: %s",
                         strerror(errno));
                return CH_EIO;
            }
            rv = ch_fd_wait(fd, POLLIN, deadline, "waiting for the response",
                            r->errmsg);
            if (rv != 0)
                return rv;
            continue;
        }
        /* n == 0 is EOF, which http_parser needs to end a body that has no
         * length. */
        parsed = http_parser_execute(&hp, &settings, buf, (size_t)n);
        if (p.rv != 0) {
            snprintf(r->errmsg, sizeof(r->errmsg), "%s",
                     p.rv == CH_ETOOBIG ? "response too large"
                                        : "out of memory");
            return p.rv;
        }
        if (HTTP_PARSER_ERRNO(&hp) != HPE_OK || parsed != (size_t)n) {
            snprintf(r->errmsg, sizeof(r->errmsg), "bad HTTP response: %s",
                     http_errno_description(HTTP_PARSER_ERRNO(&hp)));
            return CH_EPROTO;
        }
        if (n == 0 && !p.is_complete) {
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "connection closed before the response was complete");
            return CH_EIO;
        }
    }
    return 0;
}

int httpc_request(const char *method, const char *hostport, const char *path,
                  const char *const *headers, const void *body, size_t body_n,
                  int connect_timeout_ms, int timeout_ms,
                  struct httpc_response *r)
{
    struct ch_buf req;
    long long deadline;
    int fd = -1;
    int rv;

    r->status = 0;
    r->errmsg[0] = '\0';
    r->body.len = 0;
    ch_buf_init(&req);
    rv = format_request(&req, method, hostport, path, headers, body, body_n);
    if (rv != 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "out of memory");
        goto err;
    }
    rv = ch_tcp_connect(hostport, connect_timeout_ms, &fd, r->errmsg);
    if (rv != 0)
        goto err_after_req;
    deadline = ch_deadline_after(timeout_ms);
    rv = ch_fd_send_all(fd, req.data, req.len, deadline, "sending the request",
                        r->errmsg);
    if (rv == CH_EIO) {
        /* A server may answer (413, 400) and close before reading all of a
         * large body; its answer is still the best report. */
        char send_err[CH_ERRMSG_SIZE];

        memcpy(send_err, r->errmsg, sizeof(send_err));
        rv = read_response(fd, deadline, r);
        if (rv != 0)
            memcpy(r->errmsg, send_err, sizeof(send_err));
    } else if (rv == 0) {
        rv = read_response(fd, deadline, r);
    }
    if (rv != 0)
        goto err_after_connect;
    close(fd);
    ch_buf_free(&req);
    return 0;

err_after_connect:
    close(fd);
err_after_req:
    ch_buf_free(&req);
err:
    r->status = 0;
    return rv;
}
