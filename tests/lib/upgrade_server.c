/* The test upgrade server of upgrade_server.h. */
#include "upgrade_server.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ws_handshake.h"

#define REQUEST_MAX 8192

struct pending {
    struct ch_queue link;
    struct test_upgrade_server *s;
    uv_tcp_t tcp;
    uv_write_t wreq;
    char buf[REQUEST_MAX + 1];
    size_t len;
    char answer[512];
};

static void pending_closed(uv_handle_t *h)
{
    free(h->data);
}

static void pending_close(struct pending *p)
{
    ch_queue_remove(&p->link);
    if (!uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, pending_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct pending *p = h->data;

    (void)hint;
    buf->base = p->buf + p->len;
    buf->len = REQUEST_MAX - p->len;
}

/* The value of header `name` in the request head, copied into out. */
static bool header(const char *head, const char *name, char *out, size_t size)
{
    size_t nn = strlen(name);

    for (const char *l = strstr(head, "\r\n"); l != NULL;
         l = strstr(l + 2, "\r\n")) {
        const char *v;
        size_t vn;

        if (strncasecmp(l + 2, name, nn) != 0 || l[2 + nn] != ':')
            continue;
        v = l + 2 + nn + 1;
        while (*v == ' ')
            v++;
        vn = strcspn(v, "\r");
        if (vn >= size)
            return false;
        memcpy(out, v, vn);
        out[vn] = '\0';
        return true;
    }
    return false;
}

static void write_cb(uv_write_t *req, int status)
{
    (void)status;
    pending_close(req->data);
}

static void handle_request(struct pending *p)
{
    struct test_upgrade_server *s = p->s;
    char key[CH_WS_MAX_CLIENT_KEY + 1] = "";
    char accept[CH_WS_KEY_SIZE] = "";
    char path[1024] = "";
    uv_os_fd_t fd;
    uv_buf_t b;
    int dup_fd;

    s->n_upgrades++;
    assert_int_equal(sscanf(p->buf, "GET %1023s HTTP/1.1", path), 1);
    assert_true(header(p->buf, "Sec-WebSocket-Key", key, sizeof key));
    if (s->canned != NULL) {
        assert_int_equal(ch_ws_accept_for_key(key, accept), 0);
        /* "%s" in the canned answer stands for the right accept value. */
        const char *mark = strstr(s->canned, "%s");
        if (mark != NULL)
            snprintf(p->answer, sizeof p->answer, "%.*s%s%s",
                     (int)(mark - s->canned), s->canned, accept, mark + 2);
        else
            snprintf(p->answer, sizeof p->answer, "%s", s->canned);
        b = uv_buf_init(p->answer, (unsigned)strlen(p->answer));
        p->wreq.data = p;
        assert_int_equal(
            uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, write_cb), 0);
        uv_read_stop((uv_stream_t *)&p->tcp);
        return;
    }
    assert_int_equal(uv_fileno((uv_handle_t *)&p->tcp, &fd), 0);
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    assert_true(dup_fd >= 0);
    pending_close(p);
    s->cb(s->arg, dup_fd, key, path);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct pending *p = st->data;

    (void)buf;
    if (nread < 0) {
        pending_close(p);
        return;
    }
    p->len += (size_t)nread;
    p->buf[p->len] = '\0';
    if (strstr(p->buf, "\r\n\r\n") != NULL) {
        handle_request(p);
        return;
    }
    if (p->len == REQUEST_MAX)
        pending_close(p);
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct test_upgrade_server *s = server->data;
    struct pending *p;

    assert_int_equal(status, 0);
    p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->s = s;
    assert_int_equal(uv_tcp_init(s->loop, &p->tcp), 0);
    p->tcp.data = p;
    ch_queue_insert_tail(&s->pending, &p->link);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, read_cb),
                     0);
}

void test_upgrade_server_start(struct test_upgrade_server *s, uv_loop_t *loop,
                               test_upgrade_cb cb, void *arg)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof bound;

    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    ch_queue_init(&s->pending);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0),
                     0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, accept_cb), 0);
    assert_int_equal(
        uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
}

void test_upgrade_server_stop(struct test_upgrade_server *s)
{
    struct ch_queue *e;

    uv_close((uv_handle_t *)&s->listener, NULL);
    while ((e = ch_queue_head(&s->pending)) != NULL)
        pending_close(CH_QUEUE_DATA(e, struct pending, link));
}
