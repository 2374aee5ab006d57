/* The gateway test harness of gw_harness.h. */
#include "gw_harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <http_parser.h>

#include "lib/heap.h"
#include "lib/loop.h"
#include "lib/tmpdir.h"

static void hc_abandon(uv_poll_t *p);

/* ---- the gateway ---- */

static void idle_cb(uv_idle_t *h)
{
    (void)h; /* being active is its job: the poll does not block */
}

static void commit_cb(uv_check_t *h)
{
    struct gw_fx *f = h->data;

    if (!f->is_holding)
        (void)fake_cluster_step(f->cl);
    /* Commits made now are answered on the next turn: no sleeping in
     * poll while the stand-in has work. */
    if (!f->is_holding && !fake_cluster_idle(f->cl))
        uv_idle_start(&f->idle, idle_cb);
    else
        uv_idle_stop(&f->idle);
}

void gwfx_start(struct gw_fx *f, const struct gw_fx_options *o)
{
    struct gw_config cfg;
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char errmsg[CH_ERRMSG_SIZE] = "";

    /* As chorusd: a write to a connection the client closed is an error
     * (EPIPE) the gateway handles, not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    test_tmpdir_make(f->dir, sizeof f->dir, "gw");
    if (store_open(f->dir, 1ULL << 30, &f->store, errmsg) != 0)
        fail_msg("store_open: %s", errmsg);
    f->cl = fake_cluster_create(f->store);
    assert_non_null(f->cl);
    memset(&cfg, 0, sizeof cfg);
    cfg.http_addr = "127.0.0.1:0";
    cfg.max_message_bytes = o != NULL && o->max_message_bytes
                                ? o->max_message_bytes
                                : CH_DEFAULT_MAX_MESSAGE_BYTES;
    cfg.max_conn_buffer = o != NULL && o->max_conn_buffer
                              ? o->max_conn_buffer
                              : CH_DEFAULT_MAX_CONN_BUFFER;
    cfg.max_connections =
        o != NULL && o->max_connections ? o->max_connections : 100;
    assert_int_equal(gw_create(&f->loop, &cfg, f->cl, &f->gw, errmsg), 0);
    if (gw_start(f->gw, errmsg) != 0)
        fail_msg("gw_start: %s", errmsg);
    assert_int_equal(
        uv_tcp_getsockname(&f->gw->listener, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->port);
    ch_wsctx_init(&f->x, &f->loop);
    assert_int_equal(uv_check_init(&f->loop, &f->commit), 0);
    f->commit.data = f;
    assert_int_equal(uv_check_start(&f->commit, commit_cb), 0);
    assert_int_equal(uv_idle_init(&f->loop, &f->idle), 0);
    uv_idle_start(&f->idle, idle_cb);
}

static void gw_closed(struct gw *gw, void *arg)
{
    (void)gw;
    *(bool *)arg = true;
}

static bool is_true(void *arg)
{
    return *(bool *)arg;
}

void gwfx_stop(struct gw_fx *f)
{
    bool closed = false;

    for (size_t i = 0; i < GWFX_MAX_CLIENTS; i++) {
        if (f->clients[i] != NULL)
            ch_wsconn_close(f->clients[i]);
        f->clients[i] = NULL;
        if (f->hpolls[i] != NULL)
            hc_abandon(f->hpolls[i]);
        f->hpolls[i] = NULL;
    }
    /* What the stand-in still holds is answered before the gateway goes. */
    f->is_holding = false;
    for (int i = 0; i < 100 && !fake_cluster_idle(f->cl); i++)
        (void)fake_cluster_step(f->cl);
    gw_close(f->gw, gw_closed, &closed);
    assert_true(test_loop_run_until(&f->loop, is_true, &closed, 5000));
    uv_close((uv_handle_t *)&f->commit, NULL);
    uv_close((uv_handle_t *)&f->idle, NULL);
    test_loop_close(&f->loop);
    ch_wsctx_close(&f->x);
    gw_destroy(f->gw);
    fake_cluster_destroy(f->cl);
    store_close(f->store);
    test_tmpdir_remove(f->dir);
}

int gwfx_setup(void **state)
{
    struct gw_fx *f = calloc(1, sizeof *f);

    assert_non_null(f);
    test_heap_setup();
    gwfx_start(f, NULL);
    *state = f;
    return 0;
}

int gwfx_teardown(void **state)
{
    struct gw_fx *f = *state;

    gwfx_stop(f);
    free(f);
    test_heap_tear_down();
    return 0;
}

bool gwfx_run_until(struct gw_fx *f, bool (*pred)(void *), void *arg,
                    unsigned max_ms)
{
    return test_loop_run_until(&f->loop, pred, arg, max_ms);
}

void gwfx_hold(struct gw_fx *f, bool is_holding)
{
    f->is_holding = is_holding;
    if (!is_holding)
        uv_idle_start(&f->idle, idle_cb);
}

json_t *hc_json(struct gw_fx *f, const char *method, const char *path,
                const char *headers, const char *body, int status)
{
    struct hresp r;
    json_error_t err;
    json_t *v;

    assert_true(hc_request(f, method, path, headers, body, &r));
    if (r.status != status)
        fail_msg("%s %s: %d %s, expected %d", method, path, r.status, r.body,
                 status);
    v = json_loadb(r.body, r.body_n, 0, &err);
    if (v == NULL)
        fail_msg("%s %s: not JSON (%s): %s", method, path, err.text, r.body);
    hresp_free(&r);
    return v;
}

long long json_int_of(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);

    if (!json_is_integer(v))
        fail_msg("field %s missing or not an integer", name);
    return json_integer_value(v);
}

const char *json_str_of(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);

    if (!json_is_string(v))
        fail_msg("field %s missing or not a string", name);
    return json_string_value(v);
}

/* ---- WebSocket clients ---- */

/* Replaces `old` by `now` in the fixture's client list. */
static void track(struct gw_fx *f, struct ch_wsconn *now, struct ch_wsconn *old)
{
    for (size_t i = 0; i < GWFX_MAX_CLIENTS; i++) {
        if (f->clients[i] == old) {
            f->clients[i] = now;
            return;
        }
    }
    if (old != NULL)
        fail_msg("client %p not tracked", (void *)old);
    fail_msg("more than %d clients open", GWFX_MAX_CLIENTS);
}

/* ---- the HTTP client ---- */

static void hc_read(struct hclient *h);

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct hclient *h = p->data;

    (void)status;
    (void)events;
    /* A poll being closed may still report once; its client has moved on. */
    if (h == NULL || uv_is_closing((uv_handle_t *)p) || h->poll != p)
        return;
    hc_read(h);
}

static void poll_closed(uv_handle_t *h)
{
    free(h);
}

/* Replaces `old` by `now` in the fixture's list of raw HTTP clients. */
static void hc_track(struct gw_fx *f, uv_poll_t *now, uv_poll_t *old)
{
    for (size_t i = 0; i < GWFX_MAX_CLIENTS; i++) {
        if (f->hpolls[i] == old) {
            f->hpolls[i] = now;
            return;
        }
    }
    if (old != NULL)
        fail_msg("HTTP client %p not tracked", (void *)old);
    fail_msg("more than %d HTTP clients open", GWFX_MAX_CLIENTS);
}

/* Closes the socket of a client a failed test left behind (its struct
 * hclient is gone with the test's stack: never touched). */
static void hc_abandon(uv_poll_t *p)
{
    uv_os_fd_t fd;

    p->data = NULL;
    if (uv_fileno((uv_handle_t *)p, &fd) != 0)
        fd = -1;
    uv_close((uv_handle_t *)p, poll_closed);
    if (fd >= 0)
        close(fd);
}

void hc_connect(struct gw_fx *f, struct hclient *h)
{
    struct sockaddr_in sa;
    int one = 1;
    int rv;

    memset(h, 0, sizeof *h);
    h->f = f;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(h->fd >= 0);
    (void)setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    assert_int_equal(uv_ip4_addr("127.0.0.1", f->port, &sa), 0);
    rv = connect(h->fd, (struct sockaddr *)&sa, sizeof sa);
    assert_true(rv == 0 || errno == EINPROGRESS);
    h->poll = malloc(sizeof *h->poll);
    assert_non_null(h->poll);
    assert_int_equal(uv_poll_init(&f->loop, h->poll, h->fd), 0);
    h->poll->data = h;
    assert_int_equal(uv_poll_start(h->poll, UV_READABLE, poll_cb), 0);
    hc_track(f, h->poll, NULL);
    /* Loopback: the handshake completes as the loop accepts. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

void hc_send(struct hclient *h, const void *p, size_t n)
{
    const char *b = p;

    for (int tries = 0; n > 0; tries++) {
        ssize_t w = send(h->fd, b, n, MSG_NOSIGNAL);

        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            h->is_eof = true; /* the server closed: what is left is lost */
            return;
        }
        assert_true(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                              errno == ENOTCONN));
        assert_true(tries < 100000);
        uv_run(&h->f->loop, UV_RUN_NOWAIT); /* let the server read */
    }
}

void hc_sends(struct hclient *h, const char *s)
{
    hc_send(h, s, strlen(s));
}

/* Reads what is there (non-blocking). */
static void hc_read(struct hclient *h)
{
    for (;;) {
        ssize_t r;

        if (h->in_cap - h->in_n < 4096) {
            h->in_cap = h->in_cap ? h->in_cap * 2 : 16384;
            h->in = realloc(h->in, h->in_cap + 1);
            assert_non_null(h->in);
        }
        r = recv(h->fd, h->in + h->in_n, h->in_cap - h->in_n, 0);
        if (r > 0) {
            h->in_n += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            h->is_eof = true;
            if (h->poll != NULL && !uv_is_closing((uv_handle_t *)h->poll))
                uv_poll_stop(h->poll); /* nothing more to wait for */
        }
        return;
    }
}

struct parse {
    struct hresp *r;
    bool is_done;
};

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct parse *ps = p->data;
    struct hresp *r = ps->r;

    r->body = realloc(r->body, r->body_n + n + 1);
    assert_non_null(r->body);
    memcpy(r->body + r->body_n, at, n);
    r->body_n += n;
    r->body[r->body_n] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    struct parse *ps = p->data;

    ps->is_done = true;
    ps->r->status = (int)p->status_code;
    ps->r->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

/* Parses one whole response at the start of the input; takes it out. */
static bool take_response(struct hclient *h, struct hresp *r)
{
    http_parser_settings st;
    http_parser p;
    struct parse ps = {r, false};
    size_t used;

    memset(r, 0, sizeof *r);
    memset(&st, 0, sizeof st);
    st.on_body = on_body;
    st.on_message_complete = on_complete;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &ps;
    used = http_parser_execute(&p, &st, h->in, h->in_n);
    if (!ps.is_done && h->is_eof) /* a body up to EOF */
        (void)http_parser_execute(&p, &st, NULL, 0);
    if (!ps.is_done) {
        hresp_free(r);
        return false;
    }
    memmove(h->in, h->in + used, h->in_n - used);
    h->in_n -= used;
    return true;
}

struct resp_wait {
    struct hclient *h;
    struct hresp *r;
    bool got;
};

static bool has_response(void *arg)
{
    struct resp_wait *w = arg;

    hc_read(w->h);
    if (!w->got)
        w->got = take_response(w->h, w->r);
    return w->got || w->h->is_eof;
}

bool hc_response(struct hclient *h, struct hresp *r)
{
    struct resp_wait w = {h, r, false};

    (void)gwfx_run_until(h->f, has_response, &w, GWFX_WAIT_MS);
    if (!w.got)
        w.got = take_response(h, r);
    return w.got;
}

static bool is_eof(void *arg)
{
    struct hclient *h = arg;

    hc_read(h);
    return h->is_eof;
}

bool hc_wait_eof(struct hclient *h)
{
    return gwfx_run_until(h->f, is_eof, h, GWFX_WAIT_MS);
}

void hc_set_reading(struct hclient *h, bool on)
{
    assert_non_null(h->poll);
    if (on && !h->is_eof)
        assert_int_equal(uv_poll_start(h->poll, UV_READABLE, poll_cb), 0);
    else if (!on)
        assert_int_equal(uv_poll_stop(h->poll), 0);
}

void hc_close(struct hclient *h)
{
    if (h->poll != NULL) {
        hc_track(h->f, NULL, h->poll);
        uv_close((uv_handle_t *)h->poll, poll_closed);
        h->poll = NULL;
    }
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    free(h->in);
    h->in = NULL;
    h->in_n = h->in_cap = 0;
}

void hresp_free(struct hresp *r)
{
    free(r->body);
    r->body = NULL;
    r->body_n = 0;
}

bool hc_request(struct gw_fx *f, const char *method, const char *path,
                const char *headers, const char *body, struct hresp *r)
{
    struct hclient h;
    char head[4096];
    bool ok;

    hc_connect(f, &h);
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n",
             method, path, headers != NULL ? headers : "",
             body != NULL ? strlen(body) : (size_t)0);
    hc_sends(&h, head);
    if (body != NULL)
        hc_sends(&h, body);
    ok = hc_response(&h, r);
    hc_close(&h);
    return ok;
}

/* ---- the WebSocket client ---- */

static void wc_message(struct ch_wsconn *ws, bool is_binary, const char *data,
                       size_t n)
{
    struct wclient *w = ch_wsconn_data(ws);
    char *m;

    (void)is_binary;
    if (w->n_msgs == w->cap_msgs) {
        w->cap_msgs = w->cap_msgs ? w->cap_msgs * 2 : 64;
        w->msgs = realloc(w->msgs, w->cap_msgs * sizeof *w->msgs);
        assert_non_null(w->msgs);
    }
    m = malloc(n + 1);
    assert_non_null(m);
    memcpy(m, data, n);
    m[n] = '\0';
    w->msgs[w->n_msgs++] = m;
}

static void wc_open(struct ch_wsconn *ws)
{
    struct wclient *w = ch_wsconn_data(ws);

    w->is_open = true;
}

static void wc_closed(struct ch_wsconn *ws, int status, const char *why)
{
    struct wclient *w = ch_wsconn_data(ws);

    (void)why;
    w->is_closed = true;
    w->close_status = status;
    w->close_code = ch_wsconn_close_code(ws);
    track(w->f, NULL, ws);
    w->ws = NULL;
}

static const struct ch_wsconn_cbs wc_cbs = {
    .open = wc_open,
    .message = wc_message,
    .closed = wc_closed,
};

void wc_connect(struct gw_fx *f, struct wclient *w, const char *path)
{
    struct ch_wsconn_config cfg = {
        .max_msg_bytes = 8 * 1024 * 1024,
        .max_write_bytes = 64 * 1024,
    };

    memset(w, 0, sizeof *w);
    w->f = f;
    assert_int_equal(
        ch_wsconn_connect(&f->x, f->addr, NULL, path, &cfg, &wc_cbs, w, &w->ws),
        0);
    track(f, w->ws, NULL);
    assert_true(wc_wait(w, 1));
    assert_non_null(strstr(w->msgs[0], "#connected"));
}

void wc_send(struct wclient *w, const char *text)
{
    assert_non_null(w->ws);
    assert_int_equal(ch_wsconn_send(w->ws, false, text, strlen(text)), 0);
}

struct wc_wait {
    struct wclient *w;
    size_t n;
};

static bool has_msgs(void *arg)
{
    struct wc_wait *x = arg;

    return x->w->n_msgs >= x->n || x->w->is_closed;
}

bool wc_wait(struct wclient *w, size_t n)
{
    struct wc_wait x = {w, n};

    (void)gwfx_run_until(w->f, has_msgs, &x, GWFX_WAIT_MS);
    return w->n_msgs >= n;
}

static bool is_closed(void *arg)
{
    return ((struct wclient *)arg)->is_closed;
}

bool wc_wait_closed(struct wclient *w)
{
    return gwfx_run_until(w->f, is_closed, w, GWFX_WAIT_MS);
}

void wc_close(struct wclient *w)
{
    if (w->ws != NULL) {
        track(w->f, NULL, w->ws);
        ch_wsconn_close(w->ws);
    }
    w->ws = NULL;
    for (size_t i = 0; i < w->n_msgs; i++)
        free(w->msgs[i]);
    free(w->msgs);
    w->msgs = NULL;
    w->n_msgs = w->cap_msgs = 0;
}
