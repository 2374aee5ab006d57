/* Unit tests of the WebSocket connection (src/common/wsconn.c) with both
 * of its ends against each other on 127.0.0.1, and of the blocking client
 * built on it (src/common/wsclient.c): handshake and its accept check,
 * messages both ways, the size limit, closing from either side and from
 * inside a callback, backpressure, one read buffer for many connections,
 * and every allocation failing in turn. The server end is reached as the
 * gateway hands over node links: tests/lib/upgrade_server reads the
 * upgrade request and passes a duplicate of the socket to
 * ch_wsconn_accept. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/wsclient.h"
#include "common/wsconn.h"
#include "lib/heap.h"
#include "lib/loop.h"
#include "lib/upgrade_server.h"

#define WAIT_MS 5000
#define MAX_SIDES 64

/* One end of a connection and what it saw. */
struct side {
    struct fx *fx;
    struct ch_wsconn *ws;
    bool is_opened;
    bool is_closed;
    int close_status;
    unsigned close_code; /* ch_wsconn_close_code() when closed */
    char why[CH_ERRMSG_SIZE];
    unsigned n_msgs;
    size_t n_bytes;
    bool last_binary;
    struct ch_buf last;    /* the last message (libc memory: test's own) */
    bool close_in_message; /* ch_wsconn_close from the message callback */
    bool echo;             /* send every message back */
};

struct fx {
    uv_loop_t loop;
    struct ch_wsctx x;
    struct test_upgrade_server up;
    struct ch_wsconn_config srv_cfg;
    struct side cli[MAX_SIDES];
    struct side srv[MAX_SIDES];
    unsigned n_srv;
    bool refuse_accept; /* the upgrade callback closes the fd instead */
    bool is_fault_test; /* allocations fail: accept may too */
};

static const struct ch_wsconn_config default_cfg = {
    .max_msg_bytes = 4 * 1024 * 1024,
    .max_write_bytes = 64 * 1024,
};

/* ---- callbacks ---------------------------------------------------------- */

static void side_open(struct ch_wsconn *ws)
{
    struct side *s = ch_wsconn_data(ws);

    assert_false(s->is_opened);
    s->is_opened = true;
}

static void side_message(struct ch_wsconn *ws, bool is_binary, const char *data,
                         size_t n)
{
    struct side *s = ch_wsconn_data(ws);

    assert_false(s->is_closed);
    s->n_msgs++;
    s->n_bytes += n;
    s->last_binary = is_binary;
    s->last.len = 0;
    /* The test's own copy, outside the counted heap. */
    if (s->last.cap < n + 1) {
        free(s->last.data);
        s->last.data = malloc(n + 1);
        assert_non_null(s->last.data);
        s->last.cap = n + 1;
    }
    memcpy(s->last.data, data, n);
    s->last.len = n;
    if (s->echo)
        assert_int_equal(ch_wsconn_send(ws, is_binary, data, n), 0);
    if (s->close_in_message) {
        ch_wsconn_close(ws);
        s->ws = NULL;
    }
}

static void side_closed(struct ch_wsconn *ws, int status, const char *why)
{
    struct side *s = ch_wsconn_data(ws);

    assert_false(s->is_closed);
    assert_int_not_equal(status, 0);
    s->is_closed = true;
    s->close_status = status;
    s->close_code = ch_wsconn_close_code(ws);
    snprintf(s->why, sizeof s->why, "%s", why);
    s->ws = NULL;
}

static const struct ch_wsconn_cbs side_cbs = {
    .open = side_open,
    .message = side_message,
    .closed = side_closed,
};

static void on_upgrade(void *arg, int fd, const char *key, const char *path)
{
    struct fx *f = arg;
    struct side *s;
    int rv;

    (void)path;
    if (f->refuse_accept) {
        close(fd);
        return;
    }
    assert_true(f->n_srv < MAX_SIDES);
    s = &f->srv[f->n_srv++];
    s->fx = f;
    rv = ch_wsconn_accept(&f->x, fd, key, "client", &f->srv_cfg, &side_cbs, s,
                          &s->ws);
    if (rv != 0) {
        assert_true(f->is_fault_test);
        assert_int_equal(rv, CH_ENOMEM);
        s->ws = NULL;
    }
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    struct fx *f;

    test_heap_setup();
    f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    ch_wsctx_init(&f->x, &f->loop);
    f->srv_cfg = default_cfg;
    test_upgrade_server_start(&f->up, &f->loop, on_upgrade, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    for (unsigned i = 0; i < MAX_SIDES; i++) {
        if (f->cli[i].ws != NULL)
            ch_wsconn_close(f->cli[i].ws);
        if (f->srv[i].ws != NULL)
            ch_wsconn_close(f->srv[i].ws);
        free(f->cli[i].last.data);
        free(f->srv[i].last.data);
    }
    test_upgrade_server_stop(&f->up);
    test_loop_close(&f->loop);
    ch_wsctx_close(&f->x);
    free(f);
    test_heap_tear_down();
    return 0;
}

static struct side *client(struct fx *f, unsigned i)
{
    struct side *s = &f->cli[i];

    s->fx = f;
    assert_int_equal(ch_wsconn_connect(&f->x, f->up.addr, NULL, "/t",
                                       &default_cfg, &side_cbs, s, &s->ws),
                     0);
    return s;
}

static bool is_opened(void *arg)
{
    return ((struct side *)arg)->is_opened;
}

static bool is_closed(void *arg)
{
    return ((struct side *)arg)->is_closed;
}

static bool is_settled(void *arg)
{
    return is_opened(arg) || is_closed(arg);
}

struct count_wait {
    struct side *s;
    unsigned n;
};

static bool has_msgs(void *arg)
{
    struct count_wait *w = arg;
    return w->s->n_msgs >= w->n;
}

static void wait_msgs(struct fx *f, struct side *s, unsigned n)
{
    struct count_wait w = {s, n};

    assert_true(test_loop_run_until(&f->loop, has_msgs, &w, WAIT_MS));
}

/* A connected pair: cli[i] and the server end it got. */
static void pair(struct fx *f, unsigned i)
{
    struct side *c = client(f, i);

    assert_true(test_loop_run_until(&f->loop, is_opened, c, WAIT_MS));
    assert_true(f->n_srv == i + 1);
}

/* ---- tests -------------------------------------------------------------- */

static void test_wsconn_messages_both_ways(void **state)
{
    struct fx *f = *state;
    static const char bin[] = {0, 1, 2, (char)0xff, 0};

    pair(f, 0);
    assert_int_equal(ch_wsconn_send(f->cli[0].ws, false, "hello", 5), 0);
    wait_msgs(f, &f->srv[0], 1);
    assert_false(f->srv[0].last_binary);
    assert_int_equal(f->srv[0].last.len, 5);
    assert_memory_equal(f->srv[0].last.data, "hello", 5);

    assert_int_equal(ch_wsconn_send(f->srv[0].ws, true, bin, sizeof bin), 0);
    wait_msgs(f, &f->cli[0], 1);
    assert_true(f->cli[0].last_binary);
    assert_int_equal(f->cli[0].last.len, sizeof bin);
    assert_memory_equal(f->cli[0].last.data, bin, sizeof bin);
    assert_true(ch_wsconn_is_open(f->cli[0].ws));
    assert_string_equal(ch_wsconn_peer(f->cli[0].ws), f->up.addr);
}

/* A message larger than a read and than a write: arrives whole. */
static void test_wsconn_large_message_whole(void **state)
{
    struct fx *f = *state;
    size_t n = 3 * 1024 * 1024 + 7;
    char *big = malloc(n);

    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    pair(f, 0);
    assert_int_equal(ch_wsconn_send(f->cli[0].ws, false, big, n), 0);
    assert_true(ch_wsconn_queued(f->cli[0].ws) > 0);
    wait_msgs(f, &f->srv[0], 1);
    assert_int_equal(f->srv[0].last.len, n);
    assert_memory_equal(f->srv[0].last.data, big, n);
    free(big);
}

/* Over the receiver's limit: it closes with 1009 from the frame header;
 * both ends are told. */
static void test_wsconn_message_over_limit_closes_1009(void **state)
{
    struct fx *f = *state;
    char msg[2048];

    memset(msg, 'x', sizeof msg);
    f->srv_cfg.max_msg_bytes = 1024;
    pair(f, 0);
    assert_int_equal(ch_wsconn_send(f->cli[0].ws, false, msg, 1024), 0);
    wait_msgs(f, &f->srv[0], 1); /* at the limit: taken */
    assert_int_equal(ch_wsconn_send(f->cli[0].ws, false, msg, 1025), 0);
    assert_true(test_loop_run_until(&f->loop, is_closed, &f->srv[0], WAIT_MS));
    assert_int_equal(f->srv[0].close_status, CH_ETOOBIG);
    assert_int_equal(f->srv[0].n_msgs, 1);
    assert_true(test_loop_run_until(&f->loop, is_closed, &f->cli[0], WAIT_MS));
    assert_int_equal(f->cli[0].close_status, CH_EIO);
    assert_int_equal(f->cli[0].close_code, 1009);
}

/* The server's Sec-WebSocket-Accept must match the key sent. */
static void test_wsconn_wrong_accept_refused(void **state)
{
    struct fx *f = *state;

    f->up.canned = "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    client(f, 0);
    assert_true(test_loop_run_until(&f->loop, is_closed, &f->cli[0], WAIT_MS));
    assert_false(f->cli[0].is_opened);
    assert_int_equal(f->cli[0].close_status, CH_EPROTO);
    assert_non_null(strstr(f->cli[0].why, "Sec-WebSocket-Accept"));
}

/* The same canned answer with the right accept value opens: the check,
 * not the canned server, is what refused above. */
static void test_wsconn_right_accept_opens(void **state)
{
    struct fx *f = *state;

    f->up.canned = "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n";
    client(f, 0);
    assert_true(test_loop_run_until(&f->loop, is_opened, &f->cli[0], WAIT_MS));
}

static void test_wsconn_refused_upgrade(void **state)
{
    struct fx *f = *state;

    f->up.canned = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    client(f, 0);
    assert_true(test_loop_run_until(&f->loop, is_closed, &f->cli[0], WAIT_MS));
    assert_int_equal(f->cli[0].close_status, CH_EPROTO);
    assert_non_null(strstr(f->cli[0].why, "404"));
}

static void test_wsconn_connect_refused(void **state)
{
    struct fx *f = *state;
    struct side *s = &f->cli[0];
    char addr[64];
    uv_tcp_t t;
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof bound;

    /* A port that was free a moment ago and has no listener. */
    assert_int_equal(uv_tcp_init(&f->loop, &t), 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &len),
                     0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&bound)->sin_port));
    uv_close((uv_handle_t *)&t, NULL);
    s->fx = f;
    assert_int_equal(ch_wsconn_connect(&f->x, addr, NULL, "/", &default_cfg,
                                       &side_cbs, s, &s->ws),
                     0);
    assert_true(test_loop_run_until(&f->loop, is_closed, s, WAIT_MS));
    assert_int_equal(s->close_status, CH_ECONNECT);
    assert_non_null(strstr(s->why, addr));
}

/* Bad addresses are refused by the call itself: no callback, no leak. */
static void test_wsconn_bad_address(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {"", "nocolon", "host:", ":80", "h:port"};
    struct ch_wsconn *ws = NULL;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ch_wsconn_connect(&f->x, bad[i], NULL, "/",
                                           &default_cfg, &side_cbs, &f->cli[0],
                                           &ws),
                         CH_EINVAL);
    test_loop_run_for(&f->loop, 20);
    assert_false(f->cli[0].is_closed);
}

/* Closing from inside the message callback: the rest of the read is not
 * delivered, nothing fires afterwards, the peer gets a close frame. */
static void test_wsconn_close_inside_message(void **state)
{
    struct fx *f = *state;

    pair(f, 0);
    f->srv[0].close_in_message = true;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ch_wsconn_send(f->cli[0].ws, false, "m", 1), 0);
    assert_true(test_loop_run_until(&f->loop, is_closed, &f->cli[0], WAIT_MS));
    assert_int_equal(f->srv[0].n_msgs, 1);
    assert_false(f->srv[0].is_closed); /* closed by its owner: not told */
    assert_int_equal(f->cli[0].close_status, CH_EIO);
    assert_int_equal(f->cli[0].close_code, 1000);
}

/* The owner closes between callbacks: the peer is told (1000). */
static void test_wsconn_close_by_owner(void **state)
{
    struct fx *f = *state;

    pair(f, 0);
    ch_wsconn_close(f->srv[0].ws);
    f->srv[0].ws = NULL;
    assert_true(test_loop_run_until(&f->loop, is_closed, &f->cli[0], WAIT_MS));
    assert_int_equal(f->cli[0].close_code, 1000);
    /* Sending on a connection that is closing is refused. */
    test_loop_run_for(&f->loop, 10);
    assert_false(f->srv[0].is_closed);
}

/* Backpressure: a paused reader gets nothing until it reads again, then
 * everything in order. */
static void test_wsconn_pause_reading(void **state)
{
    struct fx *f = *state;
    char m[16];

    pair(f, 0);
    ch_wsconn_set_reading(f->srv[0].ws, false);
    for (int i = 0; i < 10; i++) {
        int n = snprintf(m, sizeof m, "m%d", i);
        assert_int_equal(ch_wsconn_send(f->cli[0].ws, false, m, (size_t)n), 0);
    }
    test_loop_run_for(&f->loop, 100);
    assert_int_equal(f->srv[0].n_msgs, 0);
    ch_wsconn_set_reading(f->srv[0].ws, true);
    wait_msgs(f, &f->srv[0], 10);
    assert_int_equal(f->srv[0].n_msgs, 10);
    assert_memory_equal(f->srv[0].last.data, "m9", 2);
}

struct all_wait {
    struct fx *f;
    unsigned n_sides;
    unsigned n_msgs;
};

static bool all_echoed(void *arg)
{
    struct all_wait *w = arg;

    for (unsigned i = 0; i < w->n_sides; i++) {
        if (w->f->cli[i].n_msgs < w->n_msgs)
            return false;
    }
    return true;
}

/* Many connections read into the context's one buffer (asserted never to
 * be in use twice) and keep their messages apart. */
static void test_wsconn_many_connections_one_read_buffer(void **state)
{
    struct fx *f = *state;
    struct all_wait w = {f, 40, 25};
    char m[32];

    for (unsigned i = 0; i < w.n_sides; i++)
        pair(f, i);
    for (unsigned i = 0; i < w.n_sides; i++)
        f->srv[i].echo = true;
    for (unsigned k = 0; k < w.n_msgs; k++) {
        for (unsigned i = 0; i < w.n_sides; i++) {
            int n = snprintf(m, sizeof m, "c%u-%u", i, k);
            assert_int_equal(ch_wsconn_send(f->cli[i].ws, false, m, (size_t)n),
                             0);
        }
    }
    assert_true(test_loop_run_until(&f->loop, all_echoed, &w, WAIT_MS));
    for (unsigned i = 0; i < w.n_sides; i++) {
        int n = snprintf(m, sizeof m, "c%u-%u", i, w.n_msgs - 1);
        assert_int_equal(f->cli[i].last.len, (size_t)n);
        assert_memory_equal(f->cli[i].last.data, m, (size_t)n);
    }
    assert_false(f->x.is_rbuf_busy);
}

/* Every allocation of a connect, exchange and close fails in turn: the
 * failure is reported (by the call or the closed callback), the loop
 * closes and nothing leaks (tear-down checks). */
static void exchange_with_fault(void *arg, int i)
{
    struct fx *g;
    struct side *c;
    int rv;

    (void)arg;
    setup((void **)&g);
    g->is_fault_test = true;
    g->srv[0].echo = true;
    test_heap_fault_config(i, 1);
    c = &g->cli[0];
    c->fx = g;
    rv = ch_wsconn_connect(&g->x, g->up.addr, NULL, "/t", &default_cfg,
                           &side_cbs, c, &c->ws);
    if (rv == 0 && test_loop_run_until(&g->loop, is_settled, c, WAIT_MS) &&
        !c->is_closed) {
        rv = ch_wsconn_send(c->ws, false, "ping", 4);
        if (rv == 0) {
            struct count_wait w = {c, 1};
            (void)test_loop_run_until(&g->loop, has_msgs, &w, 200);
        }
    }
    assert_true(rv == 0 || rv == CH_ENOMEM || rv == CH_EIO ||
                rv == CH_ECONNECT);
    test_heap_fault_off();
    teardown((void **)&g);
}

static void test_wsconn_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(exchange_with_fault, NULL, 4, 500);
}

/* ---- the blocking client ------------------------------------------------ */

/* An echo server on its own loop and thread. */
struct echo_server {
    struct fx f;
    pthread_t thread;
    uv_async_t stop;
};

static void echo_stop_cb(uv_async_t *a)
{
    struct echo_server *e = a->data;

    for (unsigned i = 0; i < e->f.n_srv; i++) {
        if (e->f.srv[i].ws != NULL)
            ch_wsconn_close(e->f.srv[i].ws);
        e->f.srv[i].ws = NULL;
    }
    test_upgrade_server_stop(&e->f.up);
    uv_close((uv_handle_t *)a, NULL);
}

static void *echo_main(void *arg)
{
    struct echo_server *e = arg;

    uv_run(&e->f.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Accepts with echo on. */
static void echo_upgrade(void *arg, int fd, const char *key, const char *path)
{
    struct fx *f = arg;

    on_upgrade(arg, fd, key, path);
    f->srv[f->n_srv - 1].echo = true;
}

static void test_wsc_blocking_round_trip(void **state)
{
    struct fx *f = *state;
    struct echo_server *e = calloc(1, sizeof *e);
    struct ch_wsc *c = NULL;
    bool is_binary;
    char *data;
    size_t n;

    (void)f;
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->f.loop), 0);
    ch_wsctx_init(&e->f.x, &e->f.loop);
    e->f.srv_cfg = default_cfg;
    test_upgrade_server_start(&e->f.up, &e->f.loop, echo_upgrade, &e->f);
    assert_int_equal(uv_async_init(&e->f.loop, &e->stop, echo_stop_cb), 0);
    e->stop.data = e;
    assert_int_equal(pthread_create(&e->thread, NULL, echo_main, e), 0);

    assert_int_equal(ch_wsc_create(1024, &c), 0);
    assert_int_equal(ch_wsc_connect(c, e->f.up.addr, "/x", WAIT_MS), 0);
    /* Nothing sent yet: a receive times out. */
    assert_int_equal(ch_wsc_recv(c, 50, &is_binary, &data, &n), CH_ETIMEDOUT);
    assert_int_equal(ch_wsc_send(c, false, "abc", 3, WAIT_MS), 0);
    assert_int_equal(ch_wsc_recv(c, WAIT_MS, &is_binary, &data, &n), 0);
    assert_false(is_binary);
    assert_int_equal(n, 3);
    assert_string_equal(data, "abc");
    ch_free(data);
    /* The echo of a message over the client's limit closes it (1009). */
    {
        char big[2000];
        memset(big, 'b', sizeof big);
        assert_int_equal(ch_wsc_send(c, true, big, sizeof big, WAIT_MS), 0);
        assert_int_equal(ch_wsc_recv(c, WAIT_MS, &is_binary, &data, &n),
                         CH_ETOOBIG);
    }
    ch_wsc_destroy(c);

    assert_int_equal(uv_async_send(&e->stop), 0);
    assert_int_equal(pthread_join(e->thread, NULL), 0);
    test_loop_close(&e->f.loop);
    ch_wsctx_close(&e->f.x);
    for (unsigned i = 0; i < MAX_SIDES; i++)
        free(e->f.srv[i].last.data);
    free(e);
}

static void test_wsc_connect_refused_and_bad_address(void **state)
{
    struct ch_wsc *c = NULL;

    (void)state;
    assert_int_equal(ch_wsc_create(1024, &c), 0);
    assert_int_equal(ch_wsc_connect(c, "no-port", "/", 1000), CH_EINVAL);
    assert_non_null(strstr(ch_wsc_errmsg(c), "bad address"));
    ch_wsc_destroy(c);
    assert_int_equal(ch_wsc_create(1024, &c), 0);
    /* Port 1 on loopback: nothing listens there. */
    assert_int_equal(ch_wsc_connect(c, "127.0.0.1:1", "/", WAIT_MS),
                     CH_ECONNECT);
    assert_non_null(strstr(ch_wsc_errmsg(c), "cannot connect"));
    assert_int_equal(ch_wsc_send(c, false, "x", 1, 10), CH_EIO);
    ch_wsc_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_wsconn_messages_both_ways),
        T(test_wsconn_large_message_whole),
        T(test_wsconn_message_over_limit_closes_1009),
        T(test_wsconn_wrong_accept_refused),
        T(test_wsconn_right_accept_opens),
        T(test_wsconn_refused_upgrade),
        T(test_wsconn_connect_refused),
        T(test_wsconn_bad_address),
        T(test_wsconn_close_inside_message),
        T(test_wsconn_close_by_owner),
        T(test_wsconn_pause_reading),
        T(test_wsconn_many_connections_one_read_buffer),
        T(test_wsc_blocking_round_trip),
        T(test_wsc_connect_refused_and_bad_address),
#undef T
        cmocka_unit_test(test_wsconn_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
