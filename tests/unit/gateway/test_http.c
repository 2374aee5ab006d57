/* Unit tests of the gateway's connections and HTTP/1.1 (src/gateway/
 * http.c), in process against the stand-in cluster (tests/lib/
 * gw_harness.h): keep-alive and pipelining answered in order; Connection:
 * close drains, lingers (late input dropped) and closes when the client
 * does or the linger time is over; a request split into single bytes; bad
 * requests (400), unknown paths (404), bodies over the limit (413, also
 * chunked), headers at and over CH_MAX_HTTP_HEADER_BYTES (431); a client
 * that leaves while its publish is pending or its answer is being written
 * still gets the whole answer; --max-connections at its limit; node-link
 * upgrades handed over to the cluster (bad ones refused); frames in the
 * same read as the upgrade; every allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "lib/gw_harness.h"
#include "lib/heap.h"

static const char health[] =
    "GET /admin/healthcheck HTTP/1.1\r\nHost: t\r\n\r\n";

/* ---- tests -------------------------------------------------------------- */

/* Several requests in one write, answered in order on one connection. */
static void test_http_pipelined_in_order(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;
    static const char reqs[] =
        "GET /admin/healthcheck HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /nothing-here HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /admin/topics/never/written HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /admin/healthcheck HTTP/1.1\r\nHost: t\r\n\r\n";
    static const int want[] = {200, 404, 404, 200};

    hc_connect(f, &h);
    hc_sends(&h, reqs);
    for (size_t i = 0; i < 4; i++) {
        assert_true(hc_response(&h, &r));
        assert_int_equal(r.status, want[i]);
        assert_true(r.keep_alive);
        hresp_free(&r);
    }
    assert_false(h.is_eof);
    hc_close(&h);
}

/* Connection: close is answered, then the server closes. */
static void test_http_connection_close_drains(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;

    hc_connect(f, &h);
    hc_sends(&h, "GET /admin/healthcheck HTTP/1.1\r\nHost: t\r\n"
                 "Connection: close\r\n\r\n");
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    assert_false(r.keep_alive);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    hc_close(&h);
}

/* A request that arrives one byte per read (the connection keeps the
 * partial request in its own buffer). */
static void test_http_request_byte_by_byte(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;

    hc_connect(f, &h);
    for (size_t i = 0; i < sizeof health - 1; i++) {
        hc_send(&h, health + i, 1);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    hc_close(&h);
}

static void test_http_garbage_is_400(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;

    hc_connect(f, &h);
    hc_sends(&h, "BLAH BLAH\r\n\r\n");
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"error\""));
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    hc_close(&h);
}

/* Request headers: at CH_MAX_HTTP_HEADER_BYTES they are read, one byte
 * more is 431. */
static void test_http_header_limit(void **state)
{
    struct gw_fx *f = *state;
    static const char line[] = "GET /x HTTP/1.1\r\n";
    size_t cap = CH_MAX_HTTP_HEADER_BYTES + 256;
    char *req = malloc(cap);
    struct hclient h;
    struct hresp r;

    assert_non_null(req);
    for (int over = 0; over <= 1; over++) {
        /* The parser counts the URL, header names and values. */
        size_t fill = CH_MAX_HTTP_HEADER_BYTES - 2 /* "/x" */ - 4 /* "Host" */ -
                      1 /* "t" */ - 3 /* "X-A" */ + (size_t)over;
        size_t n = 0;

        n += (size_t)snprintf(req + n, cap - n, "%sHost: t\r\nX-A: ", line);
        memset(req + n, 'a', fill);
        n += fill;
        n += (size_t)snprintf(req + n, cap - n, "\r\n\r\n");
        hc_connect(f, &h);
        hc_send(&h, req, n);
        assert_true(hc_response(&h, &r));
        if (over)
            assert_int_equal(r.status, 431);
        else
            assert_int_equal(r.status, 404); /* read whole: no such path */
        hresp_free(&r);
        hc_close(&h);
    }
    free(req);
}

/* A body over --max-message-bytes is refused with 413 (from its
 * Content-Length); one at the limit is taken. */
static void test_http_body_limit(void **state)
{
    struct gw_fx *f = *state;
    struct gw_fx_options o = {1024, 0, 0};
    char body[1026];
    struct hresp r;

    gwfx_stop(f);
    gwfx_start(f, &o);
    memset(body, 'b', sizeof body);
    body[1024] = '\0';
    assert_true(
        hc_request(f, "POST", "/api/message/lim?userId=u", NULL, body, &r));
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    body[1024] = 'b';
    body[1025] = '\0';
    assert_true(
        hc_request(f, "POST", "/api/message/lim?userId=u", NULL, body, &r));
    assert_int_equal(r.status, 413);
    hresp_free(&r);
}

/* The client half-closes right after a publish: its answer still comes
 * once the publish is committed. */
static void test_http_eof_with_publish_pending(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;
    static const char req[] = "POST /api/message/eof?userId=u HTTP/1.1\r\n"
                              "Host: t\r\nContent-Length: 2\r\n\r\nhi";

    gwfx_hold(f, true);
    hc_connect(f, &h);
    hc_sends(&h, req);
    assert_int_equal(shutdown(h.fd, SHUT_WR), 0);
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(h.in_n, 0); /* nothing committed yet */
    gwfx_hold(f, false);
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"sequenceId\":1"));
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    hc_close(&h);
}

/* The client half-closes right behind a request whose answer is larger
 * than the socket buffers take at once (and does not read for a while):
 * the server sees the EOF while it still writes, keeps writing until the
 * whole answer is out, then closes. */
static void test_http_eof_while_answer_written(void **state)
{
    struct gw_fx *f = *state;
    const size_t body_n = 512 * 1024, n = 40; /* a 20 MiB answer */
    struct wclient p;
    struct hclient h;
    struct hresp r;
    struct gw_conn *c = NULL;
    struct ch_queue *q;
    char *frame = malloc(body_n + 16);
    /* Output room for the whole answer: the server keeps reading. */
    const struct gw_fx_options o = {.max_conn_buffer = 64 * 1024 * 1024};
    json_t *v;

    gwfx_stop(f);
    gwfx_start(f, &o);
    assert_non_null(frame);
    memcpy(frame, "> /big\n\n", 8);
    memset(frame + 8, 'B', body_n);
    frame[8 + body_n] = '\0';
    wc_connect(f, &p, "/stream");
    for (size_t i = 0; i < n; i++)
        wc_send(&p, frame);
    assert_true(wc_wait(&p, 1 + n));
    wc_close(&p);
    free(frame);

    hc_connect(f, &h);
    hc_set_reading(&h, false);
    hc_sends(&h, "GET /api/message/big?limit=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(shutdown(h.fd, SHUT_WR), 0);
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    /* The answer is being written and the EOF was read: draining. */
    CH_QUEUE_FOREACH (q, &f->gw->conns) {
        struct gw_conn *x = CH_QUEUE_DATA(q, struct gw_conn, link);
        if (!x->is_ws)
            c = x;
    }
    assert_non_null(c);
    assert_int_equal(c->state, GW_CONN_DRAINING);
    assert_true(c->writing);
    hc_set_reading(&h, true);
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    v = json_loadb(r.body, r.body_n, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), n);
    assert_int_equal(json_int_of(json_array_get(v, n - 1), "sequenceId"),
                     (long long)n);
    json_decref(v);
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    hc_close(&h);
}

/* --max-connections: that many are served, one more is closed at once,
 * and there is room again once one leaves. */
static void test_http_connection_limit(void **state)
{
    struct gw_fx *f = *state;
    struct gw_fx_options o = {0, 0, 3};
    struct hclient h[4];
    struct hresp r;

    gwfx_stop(f);
    gwfx_start(f, &o);
    for (int i = 0; i < 3; i++) {
        hc_connect(f, &h[i]);
        hc_sends(&h[i], health);
        assert_true(hc_response(&h[i], &r));
        assert_int_equal(r.status, 200);
        hresp_free(&r);
    }
    hc_connect(f, &h[3]);
    hc_sends(&h[3], health);
    assert_false(hc_response(&h[3], &r));
    assert_true(h[3].is_eof);
    assert_int_equal(f->gw->metrics.connections_refused, 1);
    hc_close(&h[3]);
    hc_close(&h[0]);
    for (int i = 0; i < 50 && f->gw->metrics.connections_current > 2; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    hc_connect(f, &h[0]);
    hc_sends(&h[0], health);
    assert_true(hc_response(&h[0], &r));
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    for (int i = 0; i < 3; i++)
        hc_close(&h[i]);
}

static const char link_upgrade[] =
    "GET /internal/link?from=2 HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* A node link's upgrade is handed to the cluster (which owns the link's
 * protocol); bytes after the request are refused. */
static void test_http_link_upgrade_handed_over(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;

    hc_connect(f, &h);
    hc_sends(&h, link_upgrade);
    /* The stand-in closes what it is given: the connection ends. */
    assert_true(hc_wait_eof(&h));
    assert_int_equal(h.in_n, 0); /* the gateway itself answered nothing */
    assert_int_equal(fake_cluster_link_accepts(f->cl), 1);
    hc_close(&h);

    /* Frames before the answer (RFC 6455 §4.1 forbids them), in the same
     * read as the request: 400, nothing handed over. */
    {
        char both[sizeof link_upgrade + 8];
        size_t n = sizeof link_upgrade - 1;

        memcpy(both, link_upgrade, n);
        memcpy(both + n, "\x82\x80xxxx", 6);
        hc_connect(f, &h);
        hc_send(&h, both, n + 6);
        assert_true(hc_response(&h, &r));
        assert_int_equal(r.status, 400);
        hresp_free(&r);
        assert_int_equal(fake_cluster_link_accepts(f->cl), 1);
        hc_close(&h);
    }
}

/* No memory for a new connection: it is closed, and the gateway keeps
 * accepting (libuv stops polling a listener whose pending connection is
 * never accepted). */
static void test_http_accept_survives_no_memory(void **state)
{
    struct gw_fx *f = *state;
    struct hclient a, b, h;
    struct hresp r;

    test_heap_fault_config(0, 2); /* the next two allocations fail */
    hc_connect(f, &a);
    hc_connect(f, &b);
    for (int i = 0; i < 20 && test_heap_fault_hits() < 2; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    test_heap_fault_off();
    assert_int_equal(test_heap_fault_hits(), 2);
    assert_int_equal(f->gw->metrics.connections_refused, 2);
    assert_true(hc_wait_eof(&a));
    assert_true(hc_wait_eof(&b));
    hc_close(&a);
    hc_close(&b);
    hc_connect(f, &h);
    hc_sends(&h, health);
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    hc_close(&h);
}

/* Every allocation of a REST publish and a replay fails in turn: an error
 * answer or the right one, never a crash or a leak. */
static void requests_with_fault(void *arg, int i)
{
    struct gw_fx *f;
    struct hresp r;

    (void)arg;
    gwfx_setup((void **)&f);
    test_heap_fault_config(i, 1);
    if (hc_request(f, "POST", "/api/message/oom?userId=u", NULL, "x", &r)) {
        if (!(r.status == 200 || r.status == 503))
            fail_msg("fault %d: POST answered %d %s", i, r.status, r.body);
        hresp_free(&r);
    }
    if (hc_request(f, "GET", "/api/message/oom", NULL, NULL, &r)) {
        if (!(r.status == 200 || r.status == 503))
            fail_msg("fault %d: GET answered %d %s", i, r.status, r.body);
        hresp_free(&r);
    }
    test_heap_fault_off();
    gwfx_teardown((void **)&f);
}

static void test_http_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(requests_with_fault, NULL, 6, 500);
}

/* ---- more connection behaviour ------------------------------------------ */

/* The gateway's one connection (NULL if there is none or more). */
static struct gw_conn *only_conn(struct gw_fx *f)
{
    struct ch_queue *q = ch_queue_head(&f->gw->conns);

    if (q == NULL || q->next != &f->gw->conns)
        return NULL;
    return CH_QUEUE_DATA(q, struct gw_conn, link);
}

static bool no_conns(void *arg)
{
    struct gw_fx *f = arg;

    return ch_queue_empty(&f->gw->conns);
}

/* Keep-alive: requests one after the other (each after the previous
 * answer) on one connection; an HTTP/1.0 request without keep-alive is
 * answered with Connection: close, then the server closes. */
static void test_http_keep_alive_sequential(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;

    hc_connect(f, &h);
    for (int i = 0; i < 3; i++) {
        hc_sends(&h, health);
        assert_true(hc_response(&h, &r));
        assert_int_equal(r.status, 200);
        assert_true(r.keep_alive);
        hresp_free(&r);
        assert_false(h.is_eof);
    }
    assert_int_equal(f->gw->metrics.connections_total, 1);
    assert_int_equal(f->gw->metrics.http_requests, 3);
    hc_close(&h);

    hc_connect(f, &h);
    hc_sends(&h, "GET /admin/healthcheck HTTP/1.0\r\n\r\n");
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    assert_false(r.keep_alive);
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    hc_close(&h);
}

/* After a Connection: close request nothing more is read (a request
 * pipelined behind it is not answered); the answer is written, the write
 * side shut (the client sees EOF) and the connection lingers, dropping
 * what the client still sends, until the client closes. */
static void test_http_close_lingers(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;
    struct gw_conn *c;

    hc_connect(f, &h);
    hc_sends(&h, "GET /admin/healthcheck HTTP/1.1\r\nHost: t\r\n"
                 "Connection: close\r\n\r\n"
                 "GET /admin/cluster HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    assert_false(r.keep_alive);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    assert_int_equal(h.in_n, 0); /* the second request was not answered */
    assert_int_equal(f->gw->metrics.http_requests, 1);
    c = only_conn(f);
    assert_non_null(c);
    assert_int_equal(c->state, GW_CONN_LINGERING);
    /* Input is read and dropped while lingering (no reset for the
     * client's late bytes). */
    hc_sends(&h, health);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_ptr_equal(only_conn(f), c);
    assert_int_equal(c->state, GW_CONN_LINGERING);
    assert_int_equal(f->gw->metrics.http_requests, 1);
    hc_close(&h);
    assert_true(gwfx_run_until(f, no_conns, f, GWFX_WAIT_MS));
    assert_int_equal(f->gw->metrics.connections_current, 0);
}

/* A lingering connection whose client never closes is closed by the
 * server once the linger time is over (bounded wait, no timing claim). */
static void test_http_linger_ends_without_client(void **state)
{
    struct gw_fx *f = *state;
    struct hclient h;
    struct hresp r;

    hc_connect(f, &h);
    hc_sends(&h, "GET /admin/healthcheck HTTP/1.1\r\nHost: t\r\n"
                 "Connection: close\r\n\r\n");
    assert_true(hc_response(&h, &r));
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    assert_non_null(only_conn(f));
    assert_true(gwfx_run_until(f, no_conns, f, GW_LINGER_MS + GWFX_WAIT_MS));
    hc_close(&h);
}

/* Unknown paths are 404 with a JSON error, and the connection stays
 * usable (keep-alive). */
static void test_http_unknown_path_404(void **state)
{
    struct gw_fx *f = *state;
    static const char *paths[] = {
        "/",    "/nothing",     "/streamx", "/stream/other",
        "/api", "/api/other/x", "/admin",   "/metricsx",
    };
    struct hclient h;
    struct hresp r;
    char req[256];

    hc_connect(f, &h);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n",
                 paths[i]);
        hc_sends(&h, req);
        assert_true(hc_response(&h, &r));
        if (r.status != 404)
            fail_msg("GET %s: %d %s", paths[i], r.status, r.body);
        assert_true(r.keep_alive);
        assert_non_null(strstr(r.body, "{\"error\":\""));
        hresp_free(&r);
    }
    hc_sends(&h, health);
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    hc_close(&h);
}

/* A chunked body (no Content-Length) over --max-message-bytes: 413 once
 * the request is read, then the connection closes; nothing is stored. */
static void test_http_chunked_body_over_limit_413(void **state)
{
    struct gw_fx *f = *state;
    struct gw_fx_options o = {1024, 0, 0};
    struct hclient h;
    struct hresp r;
    char chunk[700];

    gwfx_stop(f);
    gwfx_start(f, &o);
    memset(chunk, 'c', sizeof chunk);
    hc_connect(f, &h);
    hc_sends(&h, "POST /api/message/chunked HTTP/1.1\r\nHost: t\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 2; i++) { /* 1400 bytes in two chunks */
        hc_sends(&h, "2bc\r\n");
        hc_send(&h, chunk, sizeof chunk);
        hc_sends(&h, "\r\n");
    }
    hc_sends(&h, "0\r\n\r\n");
    assert_true(hc_response(&h, &r));
    assert_int_equal(r.status, 413);
    assert_false(r.keep_alive);
    assert_non_null(strstr(r.body, "too large"));
    hresp_free(&r);
    assert_true(hc_wait_eof(&h));
    hc_close(&h);
    assert_true(hc_request(f, "GET", "/api/message/chunked", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "[]");
    hresp_free(&r);
    assert_int_equal(f->gw->metrics.publishes, 0);
}

/* A link upgrade that is not a valid WebSocket upgrade is refused with 400
 * and not handed over. */
static void test_http_link_upgrade_bad_refused(void **state)
{
    struct gw_fx *f = *state;
    struct hresp r;

    assert_true(hc_request(f, "GET", "/internal/link",
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\n", /* no key */
                           NULL, &r));
    assert_int_equal(r.status, 400);
    hresp_free(&r);
    assert_true(hc_request(f, "GET", "/internal/link", NULL, NULL, &r));
    assert_int_equal(r.status, 400);
    hresp_free(&r);
    assert_int_equal(fake_cluster_link_accepts(f->cl), 0);
}

static bool has_subscribed_x(void *arg)
{
    struct hclient *h = arg;

    return h->is_eof ||
           (h->in != NULL && memmem(h->in, h->in_n, "#subscribed-to /x", 17));
}

/* Frames a client sends right behind its upgrade request, in the same
 * read, are WebSocket frames: they are answered after the greeting. */
static void test_http_frames_behind_upgrade(void **state)
{
    struct gw_fx *f = *state;
    static const char upgrade[] =
        "GET /stream/user/bob HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    /* "+ /x", masked with the key 0 (RFC 6455 §5.3: XOR with zeros). */
    static const char frame[] = "\x81\x84\x00\x00\x00\x00+ /x";
    char both[sizeof upgrade + sizeof frame];
    struct hclient h;
    const char *end;

    memcpy(both, upgrade, sizeof upgrade - 1);
    memcpy(both + sizeof upgrade - 1, frame, sizeof frame - 1);
    hc_connect(f, &h);
    hc_send(&h, both, sizeof upgrade + sizeof frame - 2);
    assert_true(gwfx_run_until(f, has_subscribed_x, &h, GWFX_WAIT_MS));
    h.in[h.in_n] = '\0';
    assert_memory_equal(h.in, "HTTP/1.1 101 ", 13);
    /* The 101 answer, then two unmasked text frames: the greeting and
     * the answer to the frame. */
    end = strstr(h.in, "\r\n\r\n");
    assert_non_null(end);
    end += 4;
    assert_int_equal((unsigned char)end[0], 0x81);
    assert_non_null(
        memmem(end, h.in_n - (size_t)(end - h.in), "#connected", 10));
    assert_non_null(
        memmem(end, h.in_n - (size_t)(end - h.in), "\"UserId\":\"bob\"", 14));
    assert_non_null(memmem(end, h.in_n - (size_t)(end - h.in),
                           "\x81\x11#subscribed-to /x", 19));
    hc_close(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, gwfx_setup, gwfx_teardown)
        T(test_http_pipelined_in_order),
        T(test_http_connection_close_drains),
        T(test_http_request_byte_by_byte),
        T(test_http_garbage_is_400),
        T(test_http_header_limit),
        T(test_http_body_limit),
        T(test_http_eof_with_publish_pending),
        T(test_http_eof_while_answer_written),
        T(test_http_connection_limit),
        T(test_http_link_upgrade_handed_over),
        T(test_http_accept_survives_no_memory),
        T(test_http_keep_alive_sequential),
        T(test_http_close_lingers),
        T(test_http_linger_ends_without_client),
        T(test_http_unknown_path_404),
        T(test_http_chunked_body_over_limit_413),
        T(test_http_link_upgrade_bad_refused),
        T(test_http_frames_behind_upgrade),
#undef T
        cmocka_unit_test(test_http_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
