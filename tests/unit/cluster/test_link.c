/* Unit tests of the node-to-node link with both of its ends against each
 * other (src/cluster/link_client.c and link_server.c over
 * src/common/wsconn.c, frames from link.c), on 127.0.0.1: requests reach
 * the handler and their answers come back by id; only the leader serves
 * (a join excepted); the removed notice; refusals; bad frames close the
 * link; requests outliving their link; the pending-requests limit pauses
 * reading and resumes it; closing every link; every allocation failing in
 * turn. The handler is a stand-in that records requests and answers them
 * when the test says, as the cluster answers from a later loop turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/link_int.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/limits.h"
#include "lib/heap.h"
#include "lib/loop.h"
#include "lib/upgrade_server.h"

#define WAIT_MS 10000

/* One request the handler got. */
struct call {
    enum link_op op;
    char path[CH_MAX_TOPIC_BYTES + 1];
    char body[64];
    uint64_t id;
    char raft[CH_MAX_ADDR_BYTES + 1];
    cluster_publish_cb pub_cb;
    cluster_admin_cb admin_cb;
    void *arg;
    bool is_done;
};

/* One answer the client got. */
struct answer {
    uint64_t req_id;
    int status;
    int64_t seq;
    uint64_t index;
    bool is_dup;
    char text[64];
};

struct fx {
    uv_loop_t loop;
    uv_check_t flush; /* lservers_flush once per turn, as cluster.c */
    struct ch_wsctx x;
    struct test_upgrade_server up;
    struct lservers set;
    /* handler */
    bool is_leader;
    int refuse_with; /* the handler's synchronous answer, 0: take it */
    struct call *calls;
    size_t n_calls, cap_calls;
    unsigned n_removed;
    uint64_t removed_id;
    unsigned n_nudged;
    uint64_t nudged_by;
    /* client */
    struct lclient *l;
    bool is_open;
    bool is_ended;
    struct answer *answers;
    size_t n_answers, cap_answers;
    bool is_fault_test;
};

/* ---- the stand-in handler ----------------------------------------------- */

static struct call *add_call(struct fx *f, enum link_op op, void *arg)
{
    struct call *c;

    if (f->n_calls == f->cap_calls) {
        f->cap_calls = f->cap_calls ? f->cap_calls * 2 : 64;
        f->calls = realloc(f->calls, f->cap_calls * sizeof *f->calls);
        assert_non_null(f->calls);
    }
    c = &f->calls[f->n_calls++];
    memset(c, 0, sizeof *c);
    c->op = op;
    c->arg = arg;
    return c;
}

static int h_publish(void *data, const struct ch_msg *m, cluster_publish_cb cb,
                     void *arg)
{
    struct fx *f = data;
    struct call *c;

    if (f->refuse_with != 0)
        return f->refuse_with;
    c = add_call(f, LINK_PUBLISH, arg);
    c->pub_cb = cb;
    snprintf(c->path, sizeof c->path, "%.*s", (int)m->path.n, m->path.p);
    snprintf(c->body, sizeof c->body, "%.*s", (int)m->body.n, m->body.p);
    return 0;
}

static int h_join(void *data, uint64_t id, const char *raft, const char *http,
                  int role, cluster_admin_cb cb, void *arg)
{
    struct fx *f = data;
    struct call *c;

    (void)http;
    (void)role;
    if (f->refuse_with != 0)
        return f->refuse_with;
    c = add_call(f, LINK_JOIN, arg);
    c->admin_cb = cb;
    c->id = id;
    snprintf(c->raft, sizeof c->raft, "%s", raft);
    return 0;
}

static int h_admin(struct fx *f, enum link_op op, uint64_t id,
                   cluster_admin_cb cb, void *arg)
{
    struct call *c;

    if (f->refuse_with != 0)
        return f->refuse_with;
    c = add_call(f, op, arg);
    c->admin_cb = cb;
    c->id = id;
    return 0;
}

static int h_leave(void *data, uint64_t id, cluster_admin_cb cb, void *arg)
{
    return h_admin(data, LINK_LEAVE, id, cb, arg);
}

static int h_transfer(void *data, uint64_t id, cluster_admin_cb cb, void *arg)
{
    return h_admin(data, LINK_TRANSFER, id, cb, arg);
}

static void h_removed(void *data, uint64_t id)
{
    struct fx *f = data;

    f->n_removed++;
    f->removed_id = id;
}

static void h_nudge(void *data, uint64_t from_id)
{
    struct fx *f = data;

    f->n_nudged++;
    f->nudged_by = from_id;
}

static bool h_is_leader(void *data)
{
    return ((struct fx *)data)->is_leader;
}

static const struct link_handler handler = {
    .publish = h_publish,
    .join = h_join,
    .leave = h_leave,
    .transfer = h_transfer,
    .removed = h_removed,
    .is_leader = h_is_leader,
    .nudge = h_nudge,
};

/* Answers every open call: publishes with seq = 100 + their number. */
static void complete_all(struct fx *f)
{
    for (size_t i = 0; i < f->n_calls; i++) {
        struct call *c = &f->calls[i];
        struct store_result res;

        if (c->is_done)
            continue;
        c->is_done = true;
        if (c->op == LINK_PUBLISH) {
            memset(&res, 0, sizeof res);
            res.seq = 100 + (int64_t)i;
            res.time = 1700000000;
            res.index = 5000 + i;
            res.is_dup = i % 2 == 1;
            c->pub_cb(c->arg, 0, &res);
        } else {
            c->admin_cb(c->arg, 0, "");
        }
    }
}

/* ---- the client --------------------------------------------------------- */

static void on_resp(void *arg, const struct link_resp *r)
{
    struct fx *f = arg;
    struct answer *a;

    if (f->n_answers == f->cap_answers) {
        f->cap_answers = f->cap_answers ? f->cap_answers * 2 : 64;
        f->answers = realloc(f->answers, f->cap_answers * sizeof *f->answers);
        assert_non_null(f->answers);
    }
    a = &f->answers[f->n_answers++];
    a->req_id = r->req_id;
    a->status = r->status;
    a->seq = r->seq;
    a->index = r->index;
    a->is_dup = r->is_dup;
    snprintf(a->text, sizeof a->text, "%.*s", (int)r->text.n, r->text.p);
}

static void on_state(void *arg, struct lclient *l, bool open)
{
    struct fx *f = arg;

    assert_ptr_equal(l, f->l);
    if (open) {
        f->is_open = true;
        return;
    }
    f->is_ended = true;
    f->is_open = false;
    f->l = NULL; /* freed by link_client.c */
}

static void on_upgrade(void *arg, int fd, const char *key, const char *path)
{
    struct fx *f = arg;
    int rv;

    assert_non_null(strstr(path, CLUSTER_LINK_PATH "?from=7"));
    rv = lservers_accept(&f->set, fd, key, "test-peer");
    if (rv != 0)
        assert_true(f->is_fault_test || rv == CH_ESHUTDOWN);
}

static void flush_cb(uv_check_t *h)
{
    struct fx *f = h->data;

    lservers_flush(&f->set);
}

static bool is_open(void *arg)
{
    return ((struct fx *)arg)->is_open;
}

static bool is_ended(void *arg)
{
    return ((struct fx *)arg)->is_ended;
}

static bool is_settled(void *arg)
{
    return is_open(arg) || is_ended(arg);
}

struct n_wait {
    size_t *n;
    size_t want;
};

static bool reached(void *arg)
{
    struct n_wait *w = arg;
    return *w->n >= w->want;
}

static void wait_calls(struct fx *f, size_t n)
{
    struct n_wait w = {&f->n_calls, n};
    assert_true(test_loop_run_until(&f->loop, reached, &w, WAIT_MS));
}

static void wait_answers(struct fx *f, size_t n)
{
    struct n_wait w = {&f->n_answers, n};
    assert_true(test_loop_run_until(&f->loop, reached, &w, WAIT_MS));
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    struct fx *f;

    test_heap_setup();
    f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->is_leader = true;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    ch_wsctx_init(&f->x, &f->loop);
    lservers_init(&f->set, &f->x, &handler, f);
    assert_int_equal(uv_check_init(&f->loop, &f->flush), 0);
    f->flush.data = f;
    assert_int_equal(uv_check_start(&f->flush, flush_cb), 0);
    test_upgrade_server_start(&f->up, &f->loop, on_upgrade, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    if (f->l != NULL)
        lclient_close(f->l);
    if (!f->set.is_closed)
        lservers_close(&f->set);
    complete_all(f); /* requests outliving their link */
    uv_close((uv_handle_t *)&f->flush, NULL);
    test_upgrade_server_stop(&f->up);
    test_loop_close(&f->loop);
    ch_wsctx_close(&f->x);
    free(f->calls);
    free(f->answers);
    free(f);
    test_heap_tear_down();
    return 0;
}

static void connect_client(struct fx *f)
{
    f->l = lclient_create(&f->x, 7, f->up.addr, on_resp, NULL, on_state, f);
    assert_non_null(f->l);
    assert_true(test_loop_run_until(&f->loop, is_open, f, WAIT_MS));
    assert_true(lclient_is_open(f->l));
}

/* Sends one frame of the requests r[0..n). */
static void send_reqs(struct fx *f, const struct link_req *r, size_t n)
{
    struct link_enc enc;
    struct ch_buf frame;

    link_enc_init(&enc, LINK_REQUESTS);
    ch_buf_init(&frame);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(link_enc_req(&enc, &r[i]), 0);
    assert_int_equal(link_enc_finish(&enc, &frame), 0);
    assert_int_equal(lclient_send(f->l, frame.data, frame.len), 0);
    link_enc_close(&enc);
    ch_buf_free(&frame);
}

static struct link_req publish_req(uint64_t req_id, const char *path,
                                   const char *body)
{
    struct link_req r;

    memset(&r, 0, sizeof r);
    r.req_id = req_id;
    r.op = LINK_PUBLISH;
    r.msg.path.p = path;
    r.msg.path.n = strlen(path);
    r.msg.user.p = "u";
    r.msg.user.n = 1;
    r.msg.app.p = "a";
    r.msg.app.n = 1;
    r.msg.body.p = body;
    r.msg.body.n = strlen(body);
    return r;
}

static struct link_req admin_req(uint64_t req_id, enum link_op op, uint64_t id)
{
    struct link_req r;

    memset(&r, 0, sizeof r);
    r.req_id = req_id;
    r.op = op;
    r.id = id;
    if (op == LINK_JOIN) {
        r.raft.p = "127.0.0.1:7009";
        r.raft.n = strlen(r.raft.p);
        r.http.p = "127.0.0.1:8089";
        r.http.n = strlen(r.http.p);
    }
    return r;
}

/* ---- tests -------------------------------------------------------------- */

static void test_link_requests_answered_by_id(void **state)
{
    struct fx *f = *state;
    struct link_req r[3];

    connect_client(f);
    r[0] = publish_req(11, "/a", "one");
    r[1] = publish_req(12, "/b/c", "two");
    r[2] = admin_req(13, LINK_LEAVE, 4);
    send_reqs(f, r, 3);
    wait_calls(f, 3);
    assert_int_equal(f->calls[0].op, LINK_PUBLISH);
    assert_string_equal(f->calls[0].path, "/a");
    assert_string_equal(f->calls[0].body, "one");
    assert_string_equal(f->calls[1].path, "/b/c");
    assert_int_equal(f->calls[2].op, LINK_LEAVE);
    assert_int_equal(f->calls[2].id, 4);
    /* Nothing is answered before the handler answers. */
    test_loop_run_for(&f->loop, 20);
    assert_int_equal(f->n_answers, 0);
    complete_all(f);
    wait_answers(f, 3);
    assert_int_equal(f->answers[0].req_id, 11);
    assert_int_equal(f->answers[0].status, 0);
    assert_int_equal(f->answers[0].seq, 100);
    assert_int_equal(f->answers[0].index, 5000);
    assert_false(f->answers[0].is_dup);
    assert_int_equal(f->answers[1].req_id, 12);
    assert_int_equal(f->answers[1].seq, 101);
    assert_true(f->answers[1].is_dup);
    assert_int_equal(f->answers[2].req_id, 13);
    assert_int_equal(f->answers[2].status, 0);
}

/* A node that is not the leader refuses requests, so the sender retries
 * with the leader; a join (from a node that knows no leader) is served. */
static void test_link_not_leader_refuses_but_serves_join(void **state)
{
    struct fx *f = *state;
    struct link_req r[3];

    f->is_leader = false;
    connect_client(f);
    r[0] = publish_req(1, "/a", "x");
    r[1] = admin_req(2, LINK_JOIN, 9);
    r[2] = admin_req(3, LINK_TRANSFER, 0);
    send_reqs(f, r, 3);
    wait_answers(f, 2);
    assert_int_equal(f->answers[0].req_id, 1);
    assert_int_equal(f->answers[0].status, CH_ENOTLEADER);
    assert_string_equal(f->answers[0].text, "not the leader");
    assert_int_equal(f->answers[1].req_id, 3);
    assert_int_equal(f->answers[1].status, CH_ENOTLEADER);
    assert_int_equal(f->n_calls, 1);
    assert_int_equal(f->calls[0].op, LINK_JOIN);
    assert_int_equal(f->calls[0].id, 9);
    assert_string_equal(f->calls[0].raft, "127.0.0.1:7009");
    complete_all(f);
    wait_answers(f, 3);
    assert_int_equal(f->answers[2].req_id, 2);
    assert_int_equal(f->answers[2].status, 0);
}

static void test_link_removed_notice(void **state)
{
    struct fx *f = *state;
    struct link_req r = admin_req(1, LINK_REMOVED, 5);

    connect_client(f);
    send_reqs(f, &r, 1);
    for (int i = 0; i < 100 && f->n_removed == 0; i++)
        test_loop_run_for(&f->loop, 10);
    assert_int_equal(f->n_removed, 1);
    assert_int_equal(f->removed_id, 5);
    assert_int_equal(f->n_calls, 0);
    test_loop_run_for(&f->loop, 20);
    assert_int_equal(f->n_answers, 0); /* a notice is not answered */
}

/* A follower's ask for an entry (after a restart, to release the log it
 * loaded) reaches the handler on the leader and is answered at once; a node
 * that is not the leader refuses it, so the asking node asks again later. */
static void test_link_nudge(void **state)
{
    struct fx *f = *state;
    struct link_req r = admin_req(7, LINK_NUDGE, 3);

    connect_client(f);
    send_reqs(f, &r, 1);
    wait_answers(f, 1);
    assert_int_equal(f->answers[0].req_id, 7);
    assert_int_equal(f->answers[0].status, 0);
    assert_int_equal(f->n_nudged, 1);
    assert_int_equal(f->nudged_by, 3);
    assert_int_equal(f->n_calls, 0);
    f->is_leader = false;
    r.req_id = 8;
    send_reqs(f, &r, 1);
    wait_answers(f, 2);
    assert_int_equal(f->answers[1].req_id, 8);
    assert_int_equal(f->answers[1].status, CH_ENOTLEADER);
    assert_int_equal(f->n_nudged, 1);
}

/* A request the handler refuses at once is answered with its code. */
static void test_link_handler_refusal_answered(void **state)
{
    struct fx *f = *state;
    struct link_req r = publish_req(8, "/a", "x");

    f->refuse_with = CH_EFULL;
    connect_client(f);
    send_reqs(f, &r, 1);
    wait_answers(f, 1);
    assert_int_equal(f->answers[0].req_id, 8);
    assert_int_equal(f->answers[0].status, CH_EFULL);
    assert_string_equal(f->answers[0].text, ch_strerror(CH_EFULL));
    assert_int_equal(f->n_calls, 0);
}

/* Anything that is not a valid binary link frame closes the link; the
 * requests before it in other frames were served. */
static void test_link_bad_frame_closes(void **state)
{
    struct fx *f = *state;
    struct link_req r = publish_req(1, "/a", "x");
    static const char garbage[] = "\x01\x05\xff\xff";

    connect_client(f);
    send_reqs(f, &r, 1);
    wait_calls(f, 1);
    assert_int_equal(lclient_send(f->l, garbage, sizeof garbage), 0);
    assert_true(test_loop_run_until(&f->loop, is_ended, f, WAIT_MS));
    assert_int_equal(f->set.n_links, 0);
    /* Its request is answered into the void. */
    complete_all(f);
    test_loop_run_for(&f->loop, 20);
    assert_int_equal(f->n_answers, 0);
}

/* A frame of responses sent to the serving end is a protocol error. */
static void test_link_responses_to_server_close(void **state)
{
    struct fx *f = *state;
    struct link_enc enc;
    struct link_resp resp;
    struct ch_buf frame;

    connect_client(f);
    memset(&resp, 0, sizeof resp);
    resp.req_id = 1;
    link_enc_init(&enc, LINK_RESPONSES);
    ch_buf_init(&frame);
    assert_int_equal(link_enc_resp(&enc, &resp), 0);
    assert_int_equal(link_enc_finish(&enc, &frame), 0);
    assert_int_equal(lclient_send(f->l, frame.data, frame.len), 0);
    link_enc_close(&enc);
    ch_buf_free(&frame);
    assert_true(test_loop_run_until(&f->loop, is_ended, f, WAIT_MS));
}

/* The client goes away with requests in flight: their answers are
 * dropped, nothing leaks (tear-down checks). */
static void test_link_requests_outlive_link(void **state)
{
    struct fx *f = *state;
    struct link_req r[2];

    connect_client(f);
    r[0] = publish_req(1, "/a", "x");
    r[1] = admin_req(2, LINK_TRANSFER, 3);
    send_reqs(f, r, 2);
    wait_calls(f, 2);
    lclient_close(f->l);
    f->l = NULL;
    for (int i = 0; i < 100 && f->set.n_links > 0; i++)
        test_loop_run_for(&f->loop, 10);
    assert_int_equal(f->set.n_links, 0);
    complete_all(f);
    test_loop_run_for(&f->loop, 20);
    assert_int_equal(f->n_answers, 0);
}

/* At CH_MAX_LINK_PENDING unanswered requests the serving end stops
 * reading the link; answering them lets the rest in. */
static void test_link_pending_limit_pauses_reading(void **state)
{
    struct fx *f = *state;
    const size_t per_frame = 4096;
    const size_t total = CH_MAX_LINK_PENDING + 3 * per_frame;
    struct link_req *r = calloc(per_frame, sizeof *r);
    size_t last;

    assert_non_null(r);
    connect_client(f);
    for (size_t sent = 0; sent < total; sent += per_frame) {
        for (size_t i = 0; i < per_frame; i++)
            r[i] = publish_req(sent + i + 1, "/p", "b");
        send_reqs(f, r, per_frame);
    }
    free(r);
    wait_calls(f, CH_MAX_LINK_PENDING);
    /* Held: the count stops short of everything. */
    do {
        last = f->n_calls;
        test_loop_run_for(&f->loop, 100);
    } while (f->n_calls != last);
    assert_true(f->n_calls >= CH_MAX_LINK_PENDING);
    assert_true(f->n_calls < total);
    while (f->n_calls < total) {
        last = f->n_calls;
        complete_all(f);
        wait_calls(f, last + 1);
    }
    complete_all(f);
    wait_answers(f, total);
    assert_int_equal(f->answers[total - 1].req_id, total);
}

static void test_link_close_all(void **state)
{
    struct fx *f = *state;
    int fds[2];

    connect_client(f);
    assert_int_equal(f->set.n_links, 1);
    lservers_close(&f->set);
    assert_true(test_loop_run_until(&f->loop, is_ended, f, WAIT_MS));
    /* After close nothing more is served; the fd is closed. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(
        lservers_accept(&f->set, fds[0], "dGhlIHNhbXBsZSBub25jZQ==", "x"),
        CH_ESHUTDOWN);
    assert_int_equal(close(fds[0]), -1); /* already closed */
    close(fds[1]);
}

static void test_link_client_bad_address(void **state)
{
    struct fx *f = *state;

    assert_null(
        lclient_create(&f->x, 7, "nocolon", on_resp, NULL, on_state, f));
    assert_null(lclient_create(&f->x, 7, "", on_resp, NULL, on_state, f));
    test_loop_run_for(&f->loop, 10);
    assert_false(f->is_ended);
}

static void link_with_fault(void *arg, int i)
{
    struct fx *g;
    struct link_req r = publish_req(1, "/a", "x");

    (void)arg;
    setup((void **)&g);
    g->is_fault_test = true;
    test_heap_fault_config(i, 1);
    g->l = lclient_create(&g->x, 7, g->up.addr, on_resp, NULL, on_state, g);
    if (g->l != NULL && test_loop_run_until(&g->loop, is_settled, g, WAIT_MS) &&
        g->is_open) {
        struct link_enc enc;
        struct ch_buf frame;
        struct n_wait w = {&g->n_calls, 1};
        struct n_wait wa = {&g->n_answers, 1};

        link_enc_init(&enc, LINK_REQUESTS);
        ch_buf_init(&frame);
        if (link_enc_req(&enc, &r) == 0 && link_enc_finish(&enc, &frame) == 0 &&
            g->l != NULL)
            (void)lclient_send(g->l, frame.data, frame.len);
        link_enc_close(&enc);
        ch_buf_free(&frame);
        (void)test_loop_run_until(&g->loop, reached, &w, 100);
        complete_all(g);
        (void)test_loop_run_until(&g->loop, reached, &wa, 100);
    }
    test_heap_fault_off();
    teardown((void **)&g);
}

/* Every allocation of a connect, a publish and its answer fails in turn:
 * the link fails cleanly or works, and nothing leaks. */
/* FETCH (catch-up): the request and an answer carrying messages survive
 * the codec; answers whose messages do not match their count or layout
 * are refused whole. */
struct fetch_seen {
    struct link_req req;
    struct link_resp resp;
    int n_req;
    int n_resp;
};

static void fetch_req_cb(void *arg, const struct link_req *r)
{
    struct fetch_seen *fs = arg;
    fs->req = *r;
    fs->n_req++;
}

static void fetch_resp_cb(void *arg, const struct link_resp *r)
{
    struct fetch_seen *fs = arg;
    fs->resp = *r;
    fs->n_resp++;
}

static void encode_fetch_answer(struct ch_buf *frame, uint32_t n_claimed,
                                const struct ch_buf *msgs)
{
    struct link_enc enc;
    struct link_resp r;

    memset(&r, 0, sizeof r);
    r.req_id = 9;
    r.n_msgs = n_claimed;
    r.msgs.p = msgs->data;
    r.msgs.n = msgs->len;
    link_enc_init(&enc, LINK_RESPONSES);
    assert_int_equal(link_enc_resp(&enc, &r), 0);
    ch_buf_init(frame);
    assert_int_equal(link_enc_finish(&enc, frame), 0);
    link_enc_close(&enc);
}

static void test_link_fetch_codec(void **state)
{
    struct fetch_seen fs;
    struct link_enc enc;
    struct link_req req;
    struct ch_buf frame;
    struct ch_buf msgs;
    struct ch_msg m;
    size_t off = 0;
    (void)state;

    memset(&req, 0, sizeof req);
    req.req_id = 7;
    req.op = LINK_FETCH;
    req.msg.path.p = "/a/b";
    req.msg.path.n = 4;
    req.from = 5;
    req.to = 90;
    link_enc_init(&enc, LINK_REQUESTS);
    assert_int_equal(link_enc_req(&enc, &req), 0);
    ch_buf_init(&frame);
    assert_int_equal(link_enc_finish(&enc, &frame), 0);
    link_enc_close(&enc);
    memset(&fs, 0, sizeof fs);
    assert_int_equal(
        link_decode(frame.data, frame.len, fetch_req_cb, NULL, &fs), 0);
    assert_int_equal(fs.n_req, 1);
    assert_int_equal(fs.req.op, LINK_FETCH);
    assert_int_equal(fs.req.from, 5);
    assert_int_equal(fs.req.to, 90);
    assert_memory_equal(fs.req.msg.path.p, "/a/b", 4);
    ch_buf_free(&frame);

    /* to before from: refused */
    req.from = 10;
    req.to = 9;
    link_enc_init(&enc, LINK_REQUESTS);
    assert_int_equal(link_enc_req(&enc, &req), 0);
    ch_buf_init(&frame);
    assert_int_equal(link_enc_finish(&enc, &frame), 0);
    link_enc_close(&enc);
    assert_int_equal(
        link_decode(frame.data, frame.len, fetch_req_cb, NULL, &fs),
        CH_ECORRUPT);
    ch_buf_free(&frame);

    /* an answer with two messages */
    ch_buf_init(&msgs);
    memset(&m, 0, sizeof m);
    m.seq = 5;
    m.time = 1700000000;
    m.user.p = "u";
    m.user.n = 1;
    m.body.p = "hello";
    m.body.n = 5;
    assert_int_equal(link_fetched_pack(&msgs, &m), 0);
    m.seq = 6;
    m.header.p = "{}";
    m.header.n = 2;
    assert_int_equal(link_fetched_pack(&msgs, &m), 0);
    encode_fetch_answer(&frame, 2, &msgs);
    memset(&fs, 0, sizeof fs);
    assert_int_equal(
        link_decode(frame.data, frame.len, NULL, fetch_resp_cb, &fs), 0);
    assert_int_equal(fs.n_resp, 1);
    assert_int_equal(fs.resp.n_msgs, 2);
    assert_int_equal(link_fetched_next(&fs.resp, &off, &m), 0);
    assert_int_equal(m.seq, 5);
    assert_int_equal(m.time, 1700000000);
    assert_memory_equal(m.body.p, "hello", 5);
    assert_int_equal(link_fetched_next(&fs.resp, &off, &m), 0);
    assert_int_equal(m.seq, 6);
    assert_memory_equal(m.header.p, "{}", 2);
    assert_int_equal(off, fs.resp.msgs.n);
    ch_buf_free(&frame);

    /* a count that does not match the messages: refused, nothing seen */
    encode_fetch_answer(&frame, 3, &msgs);
    memset(&fs, 0, sizeof fs);
    assert_int_equal(
        link_decode(frame.data, frame.len, NULL, fetch_resp_cb, &fs),
        CH_ECORRUPT);
    assert_int_equal(fs.n_resp, 0);
    ch_buf_free(&frame);
    encode_fetch_answer(&frame, 1, &msgs); /* bytes left over */
    assert_int_equal(
        link_decode(frame.data, frame.len, NULL, fetch_resp_cb, &fs),
        CH_ECORRUPT);
    ch_buf_free(&frame);
    /* more than one answer may carry */
    encode_fetch_answer(&frame, CH_MAX_CATCHUP_MSGS + 1, &msgs);
    assert_int_equal(
        link_decode(frame.data, frame.len, NULL, fetch_resp_cb, &fs),
        CH_ECORRUPT);
    ch_buf_free(&frame);
    ch_buf_free(&msgs);
}

static void test_link_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(link_with_fault, NULL, 6, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_link_requests_answered_by_id),
        T(test_link_not_leader_refuses_but_serves_join),
        T(test_link_removed_notice),
        T(test_link_handler_refusal_answered),
        T(test_link_bad_frame_closes),
        T(test_link_responses_to_server_close),
        T(test_link_requests_outlive_link),
        T(test_link_pending_limit_pauses_reading),
        T(test_link_close_all),
        T(test_link_client_bad_address),
        T(test_link_nudge),
#undef T
        cmocka_unit_test(test_link_each_allocation_fails),
        cmocka_unit_test(test_link_fetch_codec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
