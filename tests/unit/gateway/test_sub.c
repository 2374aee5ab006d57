/* Unit tests of the gateway's WebSocket side: publishes (src/gateway/
 * proto.c) and subscriptions — the cursor, the behind state and the pump
 * (src/gateway/sub.c) — in process against the stand-in cluster (tests/
 * lib/gw_harness.h), checked against docs/protocol.md: answers in publish
 * order, error texts, live delivery with subtopics once per connection,
 * replay then live without gap or duplicate while messages are committed,
 * -N and N M, cancel, the subscription limit, a reader that stops reading
 * catching up from the store with the output held at its limit, the
 * unanswered-publish limit, a restored store re-read, frames over the
 * limit, bad commands, the greeting and bad user ids, publishes refused at
 * once, the same path subscribed twice, a start id beyond the end, a
 * replay held back by its reader with messages committed meanwhile, and
 * every allocation failing in turn (also while a live subscription is
 * set up). */
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

struct replay_full {
    struct gw_fx *f;
    size_t limit;
};

static bool replay_held(void *arg)
{
    struct replay_full *rf = arg;
    struct gw_conn *c = subscriber_conn(rf->f);

    return c != NULL && c->n_replays == 1 && gw__conn_queued(c) >= rf->limit;
}

/* Messages committed while a replay is held back (its reader does not
 * read) and none after: once the reader reads again, the replay hands
 * over to live and those messages come from the store, in order, without
 * waiting for another message. */
static void test_ws_replay_handover_then_quiet(void **state)
{
    const struct gw_fx_options o = {.max_conn_buffer = 64 * 1024};
    const size_t body_n = 16 * 1024, n = 1000, k = 5;
    struct gw_fx *f = *state;
    struct replay_full rf = {f, 64 * 1024};
    char *frame = malloc(body_n + 64);
    struct wclient s, p;
    long long want = 1;
    int len;

    gwfx_stop(f);
    gwfx_start(f, &o);
    assert_non_null(frame);
    len = snprintf(frame, body_n + 64, "> /q\n\n");
    memset(frame + len, 'q', body_n);
    frame[(size_t)len + body_n] = '\0';
    wc_connect(f, &p, "/stream/user/pub");
    /* 16 MB: more than the kernel buffers between the two ends hold. */
    for (size_t i = 0; i < n; i++) {
        wc_send(&p, frame);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(wc_wait(&p, 1 + n));
    wc_connect(f, &s, "/stream");
    ch_wsconn_set_reading(s.ws, false);
    wc_send(&s, "+ /q 1");
    assert_true(gwfx_run_until(f, replay_held, &rf, GWFX_WAIT_MS));
    for (size_t i = 0; i < k; i++)
        publish(&p, "/q", NULL, "late");
    assert_true(wc_wait(&p, 1 + n + k));
    spin(f, 20);
    assert_int_equal(subscriber_conn(f)->n_replays, 1); /* still held */
    ch_wsconn_set_reading(s.ws, true);
    /* fetch-start, fetch-done, subscribed-to and every message once. */
    assert_true(wc_wait(&s, 1 + 3 + n + k));
    expect_prefix(&s, 1, "#fetch-start /q 1000");
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
    assert_int_equal(want, (long long)(n + k) + 1);
    free(frame);
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
    if (n > 0 && data[0] == '!')
        count[1]++; /* an error answer */
    if (n >= 5 && memcmp(data, "/f,1,", 5) == 0)
        count[3]++; /* the replayed message: at most once */
    if (n >= 7 && memcmp(data, "/g/h,1,", 7) == 0)
        count[4]++; /* the live message: at most once */
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
    /* messages, errors, closed, /f,1 and /g/h,1 received */
    size_t count[5] = {0, 0, 0, 0, 0};
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
    if (count[3] > 1 || count[4] > 1)
        fail_msg("fault %d: a message delivered twice (/f,1: %zu, /g/h,1: "
                 "%zu)",
                 i, count[3], count[4]);
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

/* ---- more ---------------------------------------------------------------- */

/* The greeting (docs/protocol.md "WebSocket"): the text line, then JSON
 * with a random 16-alphanumeric ApplicationId (another per connection),
 * the user of the path ("anonymous" on /stream) and the time as a string
 * of digits; the ids are those of the messages published on it. */
static void test_ws_connected_greeting(void **state)
{
    struct gw_fx *f = *state;
    struct wclient a, b;
    char app[2][17];
    struct wclient *w[2] = {&a, &b};
    static const char *user[2] = {"anonymous", "bob.1:x-Y_z"};

    wc_connect(f, &a, "/stream");
    wc_connect(f, &b, "/stream/user/bob.1:x-Y_z");
    for (int i = 0; i < 2; i++) {
        static const char line[] =
            "#connected You are connected to the server.\n";
        const char *t;
        json_t *v;

        expect_prefix(w[i], 0, line);
        v = json_loads(w[i]->msgs[0] + strlen(line), 0, NULL);
        assert_non_null(v);
        assert_int_equal(json_object_size(v), 3);
        assert_string_equal(json_str_of(v, "UserId"), user[i]);
        t = json_str_of(v, "ApplicationId");
        assert_int_equal(strlen(t), 16);
        for (size_t k = 0; k < 16; k++)
            assert_true((t[k] >= 'a' && t[k] <= 'z') ||
                        (t[k] >= 'A' && t[k] <= 'Z') ||
                        (t[k] >= '0' && t[k] <= '9'));
        memcpy(app[i], t, 17);
        t = json_str_of(v, "Time");
        assert_true(strlen(t) >= 10 && strspn(t, "0123456789") == strlen(t));
        json_decref(v);
    }
    assert_string_not_equal(app[0], app[1]);
    /* A message carries its publisher's user and application ids. */
    wc_send(&a, "+ /g");
    assert_true(wc_wait(&a, 2));
    publish(&b, "/g", "id-1", "hi");
    assert_true(wc_wait(&a, 3));
    {
        char want[128];
        snprintf(want, sizeof want, "/g,1,bob.1:x-Y_z,%s,id-1,", app[1]);
        expect_prefix(&a, 2, want);
    }
    wc_close(&a);
    wc_close(&b);
}

/* A bad user id in the path: the upgrade is refused with 400. */
static void test_ws_bad_user_refused(void **state)
{
    struct gw_fx *f = *state;
    static const char *paths[] = {"/stream/user/a%20b", "/stream/user/a/b"};
    struct hresp r;

    for (size_t i = 0; i < 2; i++) {
        assert_true(hc_request(f, "GET", paths[i],
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n",
                               NULL, &r));
        assert_int_equal(r.status, 400);
        hresp_free(&r);
    }
    assert_int_equal(f->gw->metrics.ws_connections_current, 0);
}

/* The same path subscribed twice on one connection: each message once;
 * another connection gets its own copy. */
static void test_ws_live_same_path_twice_once(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s, t;

    wc_connect(f, &s, "/stream");
    wc_connect(f, &t, "/stream");
    wc_send(&s, "+ /d");
    wc_send(&s, "+ /d");
    wc_send(&t, "+ /d");
    assert_true(wc_wait(&s, 3));
    assert_true(wc_wait(&t, 2));
    publish_n(f, "/d", 2);
    assert_true(wc_wait(&s, 5));
    assert_true(wc_wait(&t, 4));
    expect_msg(&s, 3, "/d", 1);
    expect_msg(&s, 4, "/d", 2);
    expect_msg(&t, 2, "/d", 1);
    expect_msg(&t, 3, "/d", 2);
    wc_send(&s, "+ /marker");
    assert_true(wc_wait(&s, 6));
    expect_prefix(&s, 5, "#subscribed-to /marker"); /* nothing in between */
    /* One cancel ends both. */
    wc_send(&s, "- /d");
    assert_true(wc_wait(&s, 7));
    expect_prefix(&s, 6, "#canceled /d");
    publish_n(f, "/d", 1);
    assert_true(wc_wait(&t, 5));
    expect_msg(&t, 4, "/d", 3);
    wc_send(&s, "+ /marker2");
    assert_true(wc_wait(&s, 8));
    expect_prefix(&s, 7, "#subscribed-to /marker2");
    wc_close(&s);
    wc_close(&t);
}

/* A start id beyond the last stored message: nothing replayed, and live
 * delivery starts at that id ("stored messages with sequenceId >= N"). */
static void test_ws_replay_start_beyond_end(void **state)
{
    struct gw_fx *f = *state;
    struct wclient s;

    publish_n(f, "/b", 3);
    wc_connect(f, &s, "/stream");
    wc_send(&s, "+ /b 6");
    assert_true(wc_wait(&s, 4));
    expect_prefix(&s, 1, "#fetch-start /b 0");
    expect_prefix(&s, 2, "#fetch-done /b");
    expect_prefix(&s, 3, "#subscribed-to /b");
    publish_n(f, "/b", 5); /* 4..8 */
    assert_true(wc_wait(&s, 7));
    expect_msg(&s, 4, "/b", 6);
    expect_msg(&s, 5, "/b", 7);
    expect_msg(&s, 6, "/b", 8);
    spin(f, 20);
    assert_int_equal(s.n_msgs, 7);
    wc_close(&s);
}

static bool cluster_busy(void *arg)
{
    return !fake_cluster_idle(arg);
}

/* Publishes the cluster refuses at once (cluster_publish fails) and one
 * whose leadership was lost get the documented texts; answers stay in
 * publish order. */
static void test_ws_publish_refused_texts(void **state)
{
    struct gw_fx *f = *state;
    static const struct {
        int rv;
        const char *text;
    } cases[] = {
        {CH_EFULL, "too many pending publishes: not committed"},
        {CH_ENOTLEADER, "no leader: not committed"},
        {CH_ESHUTDOWN, "node shutting down: not committed"},
    };
    struct wclient w;
    char want[128];
    size_t n = sizeof cases / sizeof cases[0];

    wc_connect(f, &w, "/stream");
    for (size_t i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%zu", i);
        fake_cluster_set_publish_refusal(f->cl, cases[i].rv);
        publish(&w, "/e", id, "a");
        assert_true(wc_wait(&w, 2 + i));
    }
    fake_cluster_set_publish_refusal(f->cl, 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(want, sizeof want,
                 "!error-send r%zu %s\n{\"sequenceId\":0,\"path\":\"/e\","
                 "\"publisherMessageId\":\"r%zu\"",
                 i, cases[i].text, i);
        expect_prefix(&w, 1 + i, want);
    }
    /* Taken, then leadership lost before it was applied. */
    fake_cluster_set_publish_status(f->cl, CH_EUNKNOWN);
    publish(&w, "/e", "u1", "a");
    assert_true(wc_wait(&w, 2 + n));
    expect_prefix(&w, 1 + n,
                  "!error-send u1 leadership lost: outcome unknown\n");
    fake_cluster_set_publish_status(f->cl, 0);
    /* An answer held back by a pending publish keeps its place. */
    gwfx_hold(f, true);
    publish(&w, "/e", "ok1", "a");
    assert_true(gwfx_run_until(f, cluster_busy, f->cl, GWFX_WAIT_MS));
    fake_cluster_set_publish_refusal(f->cl, CH_EFULL);
    publish(&w, "/e", "full", "a");
    spin(f, 20);
    assert_int_equal(w.n_msgs, 2 + n);
    fake_cluster_set_publish_refusal(f->cl, 0);
    gwfx_hold(f, false);
    assert_true(wc_wait(&w, 4 + n));
    expect_prefix(&w, 2 + n, "#send ok1\n{\"sequenceId\":1,");
    expect_prefix(&w, 3 + n, "!error-send full too many pending");
    assert_int_equal(f->gw->metrics.publish_errors, n + 2);
    wc_close(&w);
}

struct live_fault {
    char bad[200]; /* the first wrong outcome */
};

static void live_subscribe_with_fault(void *arg, int i)
{
    struct live_fault *lf = arg;
    struct gw_fx *f;
    struct wclient s;
    bool ok;

    gwfx_setup((void **)&f);
    publish_n(f, "/l", 3);
    wc_connect(f, &s, "/stream");
    test_heap_fault_config(i, 1);
    wc_send(&s, "+ /l");
    ok = wc_wait(&s, 2);
    test_heap_fault_off();
    if (ok && !s.is_closed && s.msgs[1][0] != '!') {
        expect_prefix(&s, 1, "#subscribed-to /l");
        publish_n(f, "/l", 1);
        assert_true(wc_wait(&s, 3));
        spin(f, 20);
        if (lf->bad[0] == '\0' &&
            (s.n_msgs != 3 || strncmp(s.msgs[2], "/l,4,", 5) != 0))
            snprintf(lf->bad, sizeof lf->bad,
                     "fault %d: %zu messages after #subscribed-to, the first "
                     "\"%.30s\" (expected only /l,4)",
                     i, s.n_msgs - 2, s.msgs[2]);
    }
    wc_close(&s);
    gwfx_teardown((void **)&f);
}

/* A live subscription ("+ /path", no start id) sends only what is
 * committed after it, also when an allocation fails while it is set up:
 * with each allocation of the subscribe failing in turn, it is refused
 * (!error-...) or it works, and in neither case are the messages stored
 * before it sent (a failed store read used to start the cursor at 1: the
 * whole history followed the next live message). */
static void test_ws_live_subscribe_fault_no_history(void **state)
{
    struct live_fault lf = {""};

    (void)state;
    (void)test_heap_each_fault(live_subscribe_with_fault, &lf, 3, 100);
    if (lf.bad[0] != '\0')
        fail_msg("%s", lf.bad);
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
        T(test_ws_replay_handover_then_quiet),
        T(test_ws_slow_reader_catches_up),
        T(test_ws_restored_store_reread),
        T(test_ws_subscription_limit),
        T(test_ws_bad_commands),
        T(test_ws_frame_over_limit_closes_1009),
        T(test_ws_connected_greeting),
        T(test_ws_bad_user_refused),
        T(test_ws_live_same_path_twice_once),
        T(test_ws_replay_start_beyond_end),
        T(test_ws_publish_refused_texts),
#undef T
        cmocka_unit_test(test_ws_each_allocation_fails),
        cmocka_unit_test(test_ws_live_subscribe_fault_no_history),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
