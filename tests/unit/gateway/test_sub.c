/* Unit tests of the gateway's WebSocket side: publishes (src/gateway/
 * proto.c) and subscriptions — the cursor, the behind state and the pump
 * (src/gateway/sub.c) — in process against the stand-in cluster (tests/
 * lib/gw_harness.h), checked against docs/protocol.md: answers in publish
 * order, error texts, live delivery with subtopics once per connection,
 * replay then live without gap or duplicate while messages are committed,
 * -N and N M, cancel, the subscription limit, a reader that stops reading
 * catching up from the store with the output held at its limit, the
 * unanswered-publish limit, a restored store re-read, frames over the
 * limit, bad commands, and every allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/gw_harness.h"
#include "lib/heap.h"

/* ---- helpers ------------------------------------------------------------ */

static void publish(struct wclient *w, const char *path, const char *msgid,
                    const char *body)
{
    char frame[512];

    snprintf(frame, sizeof frame, "> %s%s%s\n\n%s", path, msgid ? " " : "",
             msgid ? msgid : "", body);
    wc_send(w, frame);
}

static void expect_prefix(struct wclient *w, size_t i, const char *prefix)
{
    assert_true(i < w->n_msgs);
    if (strncmp(w->msgs[i], prefix, strlen(prefix)) != 0)
        fail_msg("message %zu: expected \"%s...\", got \"%s\"", i, prefix,
                 w->msgs[i]);
}

/* A delivered message: "<path>,<seq>,..." (docs/protocol.md "A
 * message"). Returns false for status lines. */
static bool msg_of(const char *text, char *path, size_t path_size,
                   long long *seq)
{
    const char *comma = strchr(text, ',');
    size_t n;

    if (text[0] != '/' || comma == NULL)
        return false;
    n = (size_t)(comma - text);
    assert_true(n < path_size);
    memcpy(path, text, n);
    path[n] = '\0';
    *seq = strtoll(comma + 1, NULL, 10);
    return true;
}

static void expect_msg(struct wclient *w, size_t i, const char *path,
                       long long seq)
{
    char p[300];
    long long s;

    assert_true(i < w->n_msgs);
    if (!msg_of(w->msgs[i], p, sizeof p, &s) || strcmp(p, path) != 0 ||
        s != seq)
        fail_msg("message %zu: expected %s,%lld, got \"%.80s\"", i, path, seq,
                 w->msgs[i]);
}

/* Publishes n messages to path from a client of its own, answered. */
static void publish_n(struct gw_fx *f, const char *path, int n)
{
    struct wclient p;

    wc_connect(f, &p, "/stream/user/pub");
    for (int i = 0; i < n; i++)
        publish(&p, path, NULL, "x");
    assert_true(wc_wait(&p, 1 + (size_t)n));
    for (int i = 0; i < n; i++)
        expect_prefix(&p, 1 + (size_t)i, "#send\n");
    wc_close(&p);
}

/* The gateway's connection with subscriptions (the only one). */
static struct gw_conn *subscriber_conn(struct gw_fx *f)
{
    struct ch_queue *q;

    CH_QUEUE_FOREACH (q, &f->gw->conns) {
        struct gw_conn *c = CH_QUEUE_DATA(q, struct gw_conn, link);
        if (c->is_ws && c->n_subs > 0)
            return c;
    }
    return NULL;
}

static void spin(struct gw_fx *f, int turns)
{
    for (int i = 0; i < turns; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- publishes ---------------------------------------------------------- */

/* Pipelined publishes are answered in publish order, also when a bad one
 * (answered at once) sits behind pending ones. */
static void test_ws_answers_in_publish_order(void **state)
{
    struct gw_fx *f = *state;
    struct wclient w;

    wc_connect(f, &w, "/stream");
    gwfx_hold(f, true);
    publish(&w, "/o", "m1", "a");
    publish(&w, "/o", "m2", "b");
    wc_send(&w, "> no-slash m3\n\nc"); /* refused for its path */
    publish(&w, "/o", "m4", "d");
    spin(f, 20);
    assert_int_equal(w.n_msgs, 1); /* nothing answered out of order */
    gwfx_hold(f, false);
    assert_true(wc_wait(&w, 5));
    expect_prefix(&w, 1, "#send m1\n{\"sequenceId\":1,\"path\":\"/o\"");
    expect_prefix(&w, 2, "#send m2\n{\"sequenceId\":2,\"path\":\"/o\"");
    expect_prefix(&w, 3, "!error-send m3 ");
    assert_non_null(strstr(w.msgs[3], "\"sequenceId\":0"));
    expect_prefix(&w, 4, "#send m4\n{\"sequenceId\":3,\"path\":\"/o\"");
    wc_close(&w);
}

/* A publish the cluster does not commit gets the text docs/protocol.md
 * "Answers" promises: "not committed" or "unknown". */
static void test_ws_publish_error_texts(void **state)
{
    struct gw_fx *f = *state;
    struct wclient w;

    wc_connect(f, &w, "/stream");
    fake_cluster_set_publish_status(f->cl, CH_ENOTLEADER);
    publish(&w, "/e", "m1", "a");
    assert_true(wc_wait(&w, 2));
    expect_prefix(&w, 1, "!error-send m1 no leader: not committed\n");
    fake_cluster_set_publish_status(f->cl, CH_ETIMEDOUT);
    publish(&w, "/e", "m2", "a");
    assert_true(wc_wait(&w, 3));
    expect_prefix(&w, 2, "!error-send m2 publish timeout: outcome unknown\n");
    fake_cluster_set_publish_status(f->cl, 0);
    publish(&w, "/e", "m2", "a"); /* the retry is stored */
    assert_true(wc_wait(&w, 4));
    expect_prefix(&w, 3, "#send m2\n{\"sequenceId\":1,");
    assert_int_equal(f->gw->metrics.publish_errors, 2);
    wc_close(&w);
}

/* Above CH_MAX_UNANSWERED_PUBLISHES unanswered publishes the socket is not
 * read (never an error); once answers come, every publish is answered in
 * order. */
static void test_ws_unanswered_publish_limit(void **state)
{
    struct gw_fx *f = *state;
    /* Beyond the limit by more than one read of the socket takes. */
    const size_t n = CH_MAX_UNANSWERED_PUBLISHES + GW_READ_BYTES / 4;
    struct gw_conn *c = NULL;
    struct wclient w;
    struct ch_queue *q;
    char id[32];

    wc_connect(f, &w, "/stream");
    gwfx_hold(f, true);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "m%zu", i);
        publish(&w, "/u", id, "x");
    }
    for (int i = 0; i < 100000; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        CH_QUEUE_FOREACH (q, &f->gw->conns) {
            c = CH_QUEUE_DATA(q, struct gw_conn, link);
            if (c->is_ws)
                break;
        }
        if (c != NULL && c->n_unanswered >= CH_MAX_UNANSWERED_PUBLISHES)
            break;
    }
    assert_non_null(c);
    assert_true(c->n_unanswered >= CH_MAX_UNANSWERED_PUBLISHES);
    /* What one read brought is taken whole; then reading stops. */
    assert_true(c->n_unanswered < CH_MAX_UNANSWERED_PUBLISHES + GW_READ_BYTES);
    assert_false(c->reading);
    spin(f, 50);
    assert_false(c->reading);
    assert_true(c->n_unanswered < n);
    assert_false(w.is_closed);
    gwfx_hold(f, false);
    assert_true(wc_wait(&w, 1 + n));
    for (size_t i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "#send m%zu\n{\"sequenceId\":%zu,", i,
                 i + 1);
        expect_prefix(&w, 1 + i, want);
    }
    wc_close(&w);
}

/* ---- live delivery ------------------------------------------------------ */

/* A live subscription also gets subtopics (whole segments only); a message
 * matched by two subscriptions of a connection comes once. */
static void test_ws_live_subtopics_once(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;

    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /a");
    wc_send(&s, "+ /a/b");
    assert_true(wc_wait(&s, 3));
    expect_prefix(&s, 1, "#subscribed-to /a");
    expect_prefix(&s, 2, "#subscribed-to /a/b");
    publish_n(f, "/a/b/c", 1);
    publish_n(f, "/ab", 1);
    publish_n(f, "/a", 2);
    assert_true(wc_wait(&s, 6));
    expect_msg(&s, 3, "/a/b/c", 1);
    expect_msg(&s, 4, "/a", 1);
    expect_msg(&s, 5, "/a", 2);
    spin(f, 20);
    assert_int_equal(s.n_msgs, 6); /* /ab not, nothing twice */
    /* The whole message: path,seq,user,app,msgid,time / header / body. */
    assert_non_null(strstr(s.msgs[3], ",pub,"));
    assert_non_null(strstr(s.msgs[3], "\n\nx")); /* empty header */
    wc_close(&s);
}

/* "- /path" ends the subscription: "#canceled", then nothing more. */
static void test_ws_cancel(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;

    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /c");
    publish_n(f, "/c", 1);
    assert_true(wc_wait(&s, 3));
    expect_msg(&s, 2, "/c", 1);
    wc_send(&s, "- /c");
    assert_true(wc_wait(&s, 4));
    expect_prefix(&s, 3, "#canceled /c");
    publish_n(f, "/c", 1);
    wc_send(&s, "+ /other"); /* a marker: answered after the publish */
    assert_true(wc_wait(&s, 5));
    expect_prefix(&s, 4, "#subscribed-to /other");
    assert_int_equal(subscriber_conn(f)->cursors.n_entries, 1);
    wc_close(&s);
}

/* ---- replay ------------------------------------------------------------- */

/* "+ /r 3": fetch-start with the count, the stored messages, fetch-done,
 * subscribed-to, then live from the next one. */
static void test_ws_replay_then_live(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;

    publish_n(f, "/r", 5);
    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /r 3");
    assert_true(wc_wait(&s, 7));
    expect_prefix(&s, 1, "#fetch-start /r 3");
    expect_msg(&s, 2, "/r", 3);
    expect_msg(&s, 3, "/r", 4);
    expect_msg(&s, 4, "/r", 5);
    expect_prefix(&s, 5, "#fetch-done /r");
    expect_prefix(&s, 6, "#subscribed-to /r");
    publish_n(f, "/r", 2);
    assert_true(wc_wait(&s, 9));
    expect_msg(&s, 7, "/r", 6);
    expect_msg(&s, 8, "/r", 7);
    wc_close(&s);
}

/* "-N": the last N; "N M" and "N,M": at most M from N and no live part;
 * a topic never written: "#fetch-start /x 0". */
static void test_ws_replay_forms(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;

    publish_n(f, "/t", 5);
    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /t -2");
    assert_true(wc_wait(&s, 6));
    expect_prefix(&s, 1, "#fetch-start /t 2");
    expect_msg(&s, 2, "/t", 4);
    expect_msg(&s, 3, "/t", 5);
    expect_prefix(&s, 4, "#fetch-done /t");
    expect_prefix(&s, 5, "#subscribed-to /t");
    wc_close(&s);

    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /t 2 2");
    wc_send(&s, "+ /t 4,9");
    wc_send(&s, "+ /never 0");
    assert_true(wc_wait(&s, 12));
    expect_prefix(&s, 1, "#fetch-start /t 2");
    expect_msg(&s, 2, "/t", 2);
    expect_msg(&s, 3, "/t", 3);
    expect_prefix(&s, 4, "#fetch-done /t");
    expect_prefix(&s, 5, "#fetch-start /t 2"); /* 4,5: all there is */
    expect_msg(&s, 6, "/t", 4);
    expect_msg(&s, 7, "/t", 5);
    expect_prefix(&s, 8, "#fetch-done /t");
    expect_prefix(&s, 9, "#fetch-start /never 0");
    expect_prefix(&s, 10, "#fetch-done /never");
    expect_prefix(&s, 11, "#subscribed-to /never");
    /* Bounded replays leave nothing: no live part for /t. */
    publish_n(f, "/t", 1);
    publish_n(f, "/never", 1);
    assert_true(wc_wait(&s, 13));
    expect_msg(&s, 12, "/never", 1);
    spin(f, 20);
    assert_int_equal(s.n_msgs, 13);
    wc_close(&s);
}

/* A replay from 1 while another client keeps publishing to the topic: the
 * subscriber sees every sequenceId once, in order, across the hand-over
 * from the store to live delivery. */
static void test_ws_replay_handover_while_publishing(void **state)
{
    struct gw_fx *f = *state;
    const int before = 300, during = 300;
    struct wclient s, p;
    char body[2048];
    long long want = 1;
    int sent = 0;

    /* Bodies large enough that the replay takes several slices. */
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    wc_connect(f, &p, "/stream/user/pub");
    for (int i = 0; i < before; i++)
        publish(&p, "/h", NULL, body);
    assert_true(wc_wait(&p, 1 + (size_t)before));
    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /h 1");
    /* Publish one per loop turn while the replay runs. */
    while (sent < during) {
        publish(&p, "/h", NULL, "live");
        sent++;
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(wc_wait(&p, 1 + (size_t)(before + during)));
    /* fetch-start, fetch-done, subscribed-to and every message once. */
    assert_true(wc_wait(&s, 1 + 3 + (size_t)(before + during)));
    for (size_t i = 1; i < s.n_msgs; i++) {
        char path[300];
        long long seq;
        if (!msg_of(s.msgs[i], path, sizeof path, &seq))
            continue;
        assert_string_equal(path, "/h");
        if (seq != want)
            fail_msg("message %zu: sequenceId %lld, expected %lld", i, seq,
                     want);
        want++;
    }
    assert_int_equal(want, before + during + 1);
    expect_prefix(&s, 1, "#fetch-start /h ");
    wc_close(&s);
    wc_close(&p);
}

/* ---- slow readers ------------------------------------------------------- */

struct slow {
    struct gw_fx *f;
    size_t max_queued;
    size_t limit;
};

static bool switched(void *arg)
{
    struct slow *sl = arg;
    struct gw_conn *c = subscriber_conn(sl->f);

    if (c != NULL && gw__conn_queued(c) > sl->max_queued)
        sl->max_queued = gw__conn_queued(c);
    return sl->f->gw->metrics.slow_reader_switches > 0;
}

/* A subscriber that stops reading: its output stays at the connection
 * buffer limit (plus the message that crossed it), it is switched to the
 * store and, once it reads again, gets every message in order. */
static void test_ws_slow_reader_catches_up(void **state)
{
    const struct gw_fx_options o = {.max_conn_buffer = 64 * 1024};
    const size_t body_n = 16 * 1024, n = 1000;
    struct gw_fx *f = *state;
    struct wclient s, p;
    struct slow sl = {f, 0, 0};
    char *frame = malloc(body_n + 64);
    long long want = 1;

    gwfx_stop(f);
    gwfx_start(f, &o);
    assert_non_null(frame);
    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /slow");
    assert_true(wc_wait(&s, 2));
    ch_wsconn_set_reading(s.ws, false);
    wc_connect(f, &p, "/stream/user/pub");
    int k = snprintf(frame, body_n + 64, "> /slow\n\n");
    memset(frame + k, 's', body_n);
    frame[(size_t)k + body_n] = '\0';
    /* 16 MB: more than the kernel buffers between the two ends hold. */
    for (size_t i = 0; i < n; i++) {
        wc_send(&p, frame);
        if (i % 50 == 0)
            (void)switched(&sl);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(gwfx_run_until(f, switched, &sl, GWFX_WAIT_MS));
    assert_true(wc_wait(&p, 1 + n));
    for (int i = 0; i < 100; i++) {
        (void)switched(&sl);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(sl.max_queued >= 64 * 1024);
    assert_true(sl.max_queued < 64 * 1024 + body_n + 1024);
    assert_int_equal(subscriber_conn(f)->n_behind, 1);
    ch_wsconn_set_reading(s.ws, true);
    assert_true(wc_wait(&s, 2 + n));
    for (size_t i = 2; i < s.n_msgs; i++) {
        char path[300];
        long long seq;
        if (!msg_of(s.msgs[i], path, sizeof path, &seq))
            continue;
        if (seq != want)
            fail_msg("message %zu: sequenceId %lld, expected %lld", i, seq,
                     want);
        want++;
    }
    assert_int_equal(want, (long long)n + 1);
    /* Caught up: live again. */
    assert_int_equal(subscriber_conn(f)->n_behind, 0);
    free(frame);
    wc_close(&s);
    wc_close(&p);
}

/* The store jumped ahead without live delivery (a snapshot was
 * installed): the restored callback makes every cursor read the store. */
static void test_ws_restored_store_reread(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;

    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /snap");
    assert_true(wc_wait(&s, 2));
    fake_cluster_set_unseen(f->cl, true);
    publish_n(f, "/snap", 3);
    spin(f, 20);
    assert_int_equal(s.n_msgs, 2); /* not delivered live */
    fake_cluster_set_unseen(f->cl, false);
    fake_cluster_restored(f->cl);
    assert_true(wc_wait(&s, 5));
    expect_msg(&s, 2, "/snap", 1);
    expect_msg(&s, 3, "/snap", 2);
    expect_msg(&s, 4, "/snap", 3);
    publish_n(f, "/snap", 1);
    assert_true(wc_wait(&s, 6));
    expect_msg(&s, 5, "/snap", 4);
    wc_close(&s);
}

/* ---- limits and bad input ----------------------------------------------- */

/* CH_MAX_SUBS_PER_CONN subscriptions work; one more is refused with the
 * documented text; after a cancel there is room again. */
static void test_ws_subscription_limit(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;
    char cmd[64];
    size_t n = CH_MAX_SUBS_PER_CONN;

    wc_connect(f, &s, "/stream");
    for (size_t i = 0; i < n; i++) {
        snprintf(cmd, sizeof cmd, "+ /s/%zu", i);
        wc_send(&s, cmd);
    }
    wc_send(&s, "+ /s/over");
    assert_true(wc_wait(&s, 2 + n));
    expect_prefix(&s, n, "#subscribed-to /s/1023");
    expect_prefix(&s, 1 + n,
                  "!error-bad-request too many subscriptions (limit 1024)");
    wc_send(&s, "- /s/7");
    wc_send(&s, "+ /s/over");
    assert_true(wc_wait(&s, 4 + n));
    expect_prefix(&s, 2 + n, "#canceled /s/7");
    expect_prefix(&s, 3 + n, "#subscribed-to /s/over");
    assert_int_equal(subscriber_conn(f)->n_subs, n);
    wc_close(&s);
}

/* Bad commands get !error-bad-request and the connection keeps working. */
static void test_ws_bad_commands(void **state)
{
    struct gw_fx *f = *state;
    static const char *bad[] = {
        "x /a", "+ nopath", "+ /a b", "+ /a//b", "- /a 1", "+ /a 1 2 3", "",
    };
    const size_t n = sizeof bad / sizeof bad[0];
    struct wclient s;

    wc_connect(f, &s, "/stream");
    for (size_t i = 0; i < n; i++)
        wc_send(&s, bad[i]);
    wc_send(&s, "> /p m\n{not json\nbody");
    wc_send(&s, "+ /ok");
    assert_true(wc_wait(&s, 3 + n));
    for (size_t i = 0; i < n; i++)
        expect_prefix(&s, 1 + i, "!error-");
    expect_prefix(&s, 1 + n, "!error-bad-request bad header JSON");
    expect_prefix(&s, 2 + n, "#subscribed-to /ok");
    assert_false(s.is_closed);
    wc_close(&s);
}

/* A frame above --max-message-bytes + the slack closes with 1009 as soon
 * as its header announces it. */
static void test_ws_frame_over_limit_closes_1009(void **state)
{
    const struct gw_fx_options o = {.max_message_bytes = 1024};
    struct gw_fx *f = *state;
    size_t n = 1024 + CH_FRAME_SLACK_BYTES + 1;
    char *big = malloc(n + 1);
    struct wclient s;

    gwfx_stop(f);
    gwfx_start(f, &o);
    assert_non_null(big);
    memset(big, 'z', n);
    big[n] = '\0';
    memcpy(big, "> /big\n\n", 8);
    wc_connect(f, &s, "/stream");
    wc_send(&s, big);
    assert_true(wc_wait_closed(&s));
    assert_int_equal(s.close_code, 1009);
    free(big);
    wc_close(&s);
}

/* ---- allocation failures ------------------------------------------------ */

static void fault_message(struct ch_wsconn *ws, bool is_binary,
                          const char *data, size_t n)
{
    size_t *count = ch_wsconn_data(ws);

    (void)is_binary;
    (void)data;
    (void)n;
    if (n > 0 && data[0] == '!')
        count[1]++; /* an error answer */
    count[0]++;
}

static void fault_closed(struct ch_wsconn *ws, int status, const char *why)
{
    size_t *count = ch_wsconn_data(ws);

    (void)status;
    (void)why;
    count[2] = 1;
}

static const struct ch_wsconn_cbs fault_cbs = {
    .message = fault_message,
    .closed = fault_closed,
};

struct fault_wait {
    size_t *count;
    size_t want;
};

static bool fault_done(void *arg)
{
    struct fault_wait *fw = arg;

    return fw->count[0] >= fw->want || fw->count[1] > 0 || fw->count[2];
}

static void ws_with_fault(void *arg, int i)
{
    static const char *cmds[] = {"> /f m1\n{\"k\":\"v\"}\nx", "+ /f 1", "+ /g",
                                 "> /g/h m2\n\ny"};
    /* greeting, #send, fetch-start, msg, fetch-done, subscribed-to,
     * subscribed-to, #send, the live /g/h. */
    const size_t want = 9;
    struct ch_wsconn_config cfg = {
        .max_msg_bytes = 1 << 20,
        .max_write_bytes = 64 * 1024,
    };
    struct gw_fx *f;
    struct ch_wsconn *ws = NULL;
    size_t count[3] = {0, 0, 0};
    struct fault_wait fw = {count, want};
    bool ok = true;

    (void)arg;
    gwfx_setup((void **)&f);
    test_heap_fault_config(i, 1);
    if (ch_wsconn_connect(&f->x, f->addr, NULL, "/stream", &cfg, &fault_cbs,
                          count, &ws) != 0) {
        ws = NULL;
        ok = false;
    }
    for (size_t k = 0; ok && k < sizeof cmds / sizeof cmds[0]; k++) {
        /* Commands after the greeting (the connection is open). */
        struct fault_wait open = {count, 1};
        if (!gwfx_run_until(f, fault_done, &open, GWFX_WAIT_MS))
            fail_msg("fault %d: no greeting, no close", i);
        if (count[2] || count[1] > 0)
            break;
        if (ch_wsconn_send(ws, false, cmds[k], strlen(cmds[k])) != 0)
            ok = false;
    }
    if (ok && !count[2] && !gwfx_run_until(f, fault_done, &fw, GWFX_WAIT_MS))
        fail_msg("fault %d: %zu of %zu answers, no error, no close", i,
                 count[0], want);
    if (ok && !count[2] && count[1] == 0)
        assert_int_equal(count[0], want);
    test_heap_fault_off();
    if (ws != NULL && !count[2])
        ch_wsconn_close(ws);
    gwfx_teardown((void **)&f);
}

/* Publish, replay and live delivery with each allocation failing in turn
 * (the server's and the test client's: both share the heap hook): every
 * run ends with the answers, an error answer or a closed connection —
 * never a crash, a leak or silence. */
static void test_ws_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(ws_with_fault, NULL, 11, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, gwfx_setup, gwfx_teardown)
        T(test_ws_answers_in_publish_order),
        T(test_ws_publish_error_texts),
        T(test_ws_unanswered_publish_limit),
        T(test_ws_live_subtopics_once),
        T(test_ws_cancel),
        T(test_ws_replay_then_live),
        T(test_ws_replay_forms),
        T(test_ws_replay_handover_while_publishing),
        T(test_ws_slow_reader_catches_up),
        T(test_ws_restored_store_reread),
        T(test_ws_subscription_limit),
        T(test_ws_bad_commands),
        T(test_ws_frame_over_limit_closes_1009),
#undef T
        cmocka_unit_test(test_ws_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
