/* Unit tests of the REST API (src/gateway/rest.c) in process against the
 * stand-in cluster (tests/lib/gw_harness.h), checked against
 * docs/protocol.md "REST": a publish answered after commit with the
 * #send JSON, X-Guble-/X-Chorus- headers, replays with from and limit
 * (capped at CH_REST_MAX_LIMIT), binary bodies as bodyBase64, the
 * de-dup of a repeated messageId, the defaults (user "anonymous", no
 * messageId, the exact path), bad requests, bodies over the limit (413),
 * publishes the cluster refuses (at once or when committing), and every
 * allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "lib/gw_harness.h"
#include "lib/heap.h"

/* ---- helpers ------------------------------------------------------------ */

static void publish(struct gw_fx *f, const char *topic, int n)
{
    char path[300];

    snprintf(path, sizeof path, "/api/message%s?userId=u", topic);
    for (int i = 0; i < n; i++)
        json_decref(hc_json(f, "POST", path, NULL, "x", 200));
}

/* ---- tests -------------------------------------------------------------- */

/* A publish is answered after commit with the #send JSON; the replay
 * gives every field, headers from X-Guble-/X-Chorus- included. */
static void test_rest_publish_then_replay(void **state)
{
    struct gw_fx *f = *state;
    json_t *v, *m;

    v = hc_json(f, "POST", "/api/message/r/s?userId=alice&messageId=m-1",
                "X-Guble-Color: red\r\nX-Chorus-Size: 9\r\nX-Other: no\r\n",
                "hello", 200);
    assert_int_equal(json_int_of(v, "sequenceId"), 1);
    assert_string_equal(json_str_of(v, "path"), "/r/s");
    assert_string_equal(json_str_of(v, "publisherMessageId"), "m-1");
    assert_true(json_int_of(v, "messagePublishingTime") > 0);
    json_decref(v);

    v = hc_json(f, "GET", "/api/message/r/s", NULL, NULL, 200);
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 1);
    m = json_array_get(v, 0);
    assert_string_equal(json_str_of(m, "path"), "/r/s");
    assert_int_equal(json_int_of(m, "sequenceId"), 1);
    assert_string_equal(json_str_of(m, "userId"), "alice");
    assert_string_equal(json_str_of(m, "applicationId"), "rest");
    assert_string_equal(json_str_of(m, "messageId"), "m-1");
    assert_true(json_int_of(m, "time") > 0);
    assert_string_equal(json_str_of(m, "body"), "hello");
    assert_string_equal(json_str_of(json_object_get(m, "headers"), "Color"),
                        "red");
    assert_string_equal(json_str_of(json_object_get(m, "headers"), "Size"),
                        "9");
    assert_int_equal(json_object_size(json_object_get(m, "headers")), 2);
    json_decref(v);
}

/* from and limit select the range; limit is capped at CH_REST_MAX_LIMIT;
 * a topic never written gives []. */
static void test_rest_replay_range(void **state)
{
    struct gw_fx *f = *state;
    const int n = CH_REST_MAX_LIMIT + 20;
    struct wclient w;
    json_t *v;

    /* Many at once over WebSocket: one answer per publish, in order. */
    wc_connect(f, &w, "/stream");
    for (int i = 0; i < n; i++)
        wc_send(&w, "> /many\n\nm");
    assert_true(wc_wait(&w, 1 + (size_t)n));
    wc_close(&w);

    v = hc_json(f, "GET", "/api/message/many?from=5&limit=3", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 3);
    assert_int_equal(json_int_of(json_array_get(v, 0), "sequenceId"), 5);
    assert_int_equal(json_int_of(json_array_get(v, 2), "sequenceId"), 7);
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/many", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), CH_REST_DEFAULT_LIMIT);
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/many?from=0&limit=1000000", NULL, NULL,
                200);
    assert_int_equal(json_array_size(v), CH_REST_MAX_LIMIT);
    assert_int_equal(json_int_of(json_array_get(v, 0), "sequenceId"), 1);
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/many?from=10015", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), n - 10014);
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/never/written", NULL, NULL, 200);
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 0);
    json_decref(v);
}

/* A body that is not UTF-8 comes back as bodyBase64. */
static void test_rest_binary_body_base64(void **state)
{
    struct gw_fx *f = *state;
    struct wclient w;
    json_t *v, *m;

    wc_connect(f, &w, "/stream");
    /* A binary frame: header empty, body 0xff 0x00 0x01. */
    assert_int_equal(ch_wsconn_send(w.ws, true, "> /bin\n\n\xff\x00\x01", 11),
                     0);
    assert_true(wc_wait(&w, 2));
    wc_close(&w);
    v = hc_json(f, "GET", "/api/message/bin", NULL, NULL, 200);
    m = json_array_get(v, 0);
    assert_non_null(m);
    assert_null(json_object_get(m, "body"));
    assert_string_equal(json_str_of(m, "bodyBase64"), "/wAB");
    json_decref(v);
}

/* The same (path, user, messageId) again is not stored twice: the answer
 * carries the original sequenceId. */
static void test_rest_repeated_message_id(void **state)
{
    struct gw_fx *f = *state;
    json_t *v;

    publish(f, "/d", 2);
    for (int i = 0; i < 2; i++) {
        v = hc_json(f, "POST", "/api/message/d?userId=u&messageId=once", NULL,
                    "x", 200);
        assert_int_equal(json_int_of(v, "sequenceId"), 3);
        json_decref(v);
    }
    v = hc_json(f, "GET", "/api/message/d", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 3);
    json_decref(v);
}

/* Bad paths, ids and numbers: 400; other methods 405; other URLs 404; a
 * body over --max-message-bytes 413. Each answer is a JSON error. */
static void test_rest_bad_requests(void **state)
{
    struct gw_fx *f = *state;
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {
        {"POST", "/api/message/a//b", 400},
        {"POST", "/api/message/a/../b", 400},
        {"POST", "/api/message/a?userId=bad%20user", 400},
        {"POST", "/api/message/a?messageId=%00", 400},
        {"GET", "/api/message/a?from=-1", 400},
        {"GET", "/api/message/a?from=x", 400},
        {"GET", "/api/message/a?limit=0", 400},
        /* Longer than any number: refused, not cut to a shorter one. */
        {"GET", "/api/message/a?from=10000000000000000000000000000000000001",
         400},
        {"PUT", "/api/message/a", 405},
        {"DELETE", "/api/message/a", 405},
        {"GET", "/api/messages/a", 404},
        {"GET", "/api/message/", 400}, /* "/" is not a topic */
    };
    json_t *v;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v = hc_json(f, cases[i].method, cases[i].path, NULL, "x",
                    cases[i].status);
        assert_non_null(json_object_get(v, "error"));
        json_decref(v);
    }
    v = hc_json(f, "GET", "/api/message/a", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 0); /* nothing was stored */
    json_decref(v);
}

/* A publish the cluster does not commit: 503 saying "not committed" or
 * "outcome unknown" (docs/protocol.md "REST"). */
static void test_rest_publish_refused(void **state)
{
    struct gw_fx *f = *state;
    json_t *v;

    fake_cluster_set_publish_status(f->cl, CH_ENOTLEADER);
    v = hc_json(f, "POST", "/api/message/x", NULL, "b", 503);
    assert_non_null(strstr(json_str_of(v, "error"), "not committed"));
    json_decref(v);
    fake_cluster_set_publish_status(f->cl, CH_ETIMEDOUT);
    v = hc_json(f, "POST", "/api/message/x", NULL, "b", 503);
    assert_non_null(strstr(json_str_of(v, "error"), "outcome unknown"));
    json_decref(v);
    fake_cluster_set_publish_status(f->cl, 0);
    v = hc_json(f, "POST", "/api/message/x", NULL, "b", 200);
    assert_int_equal(json_int_of(v, "sequenceId"), 1);
    json_decref(v);
}

static void rest_with_fault(void *arg, int i)
{
    struct gw_fx *f;
    struct hresp pub, get;
    bool has_pub, has_get;

    (void)arg;
    gwfx_setup((void **)&f);
    test_heap_fault_config(i, 1);
    has_pub = hc_request(f, "POST", "/api/message/oom?messageId=a",
                         "X-Guble-K: v\r\n", "x", &pub);
    has_get = hc_request(f, "GET", "/api/message/oom", NULL, NULL, &get);
    test_heap_fault_off();
    if (has_pub) {
        if (pub.status == 200) {
            json_t *v = json_loadb(pub.body, pub.body_n, 0, NULL);
            assert_non_null(v);
            assert_int_equal(json_int_of(v, "sequenceId"), 1);
            json_decref(v);
        } else if (pub.status != 503) {
            fail_msg("fault %d: POST %d %s", i, pub.status, pub.body);
        }
        hresp_free(&pub);
    }
    if (has_get) {
        json_t *v = json_loadb(get.body, get.body_n, 0, NULL);
        assert_non_null(v);
        if (get.status == 200) {
            json_t *m = json_array_get(v, 0);
            if (m != NULL) {
                /* Complete, or not there at all. */
                assert_int_equal(json_object_size(m), 8);
                assert_string_equal(json_str_of(m, "body"), "x");
                assert_string_equal(
                    json_str_of(json_object_get(m, "headers"), "K"), "v");
            }
        } else if (get.status != 503) {
            fail_msg("fault %d: GET %d %s", i, get.status, get.body);
        }
        json_decref(v);
        hresp_free(&get);
    }
    gwfx_teardown((void **)&f);
}

/* Publish (with headers) and replay with each allocation failing in turn:
 * the right answer or a 503 JSON error, never a crash, a leak or an
 * answer with fields missing. */
static void test_rest_each_allocation_fails(void **state)
{
    (void)state;
    (void)test_heap_each_fault(rest_with_fault, NULL, 11, 1000);
}

/* Without userId/messageId a publish is from "anonymous" with an empty
 * messageId; a replay reads the exact path (not its subtopics) and from
 * beyond the last message gives []. */
static void test_rest_defaults_and_exact_path(void **state)
{
    struct gw_fx *f = *state;
    json_t *v, *m;

    v = hc_json(f, "POST", "/api/message/p", NULL, "one", 200);
    assert_int_equal(json_int_of(v, "sequenceId"), 1);
    assert_string_equal(json_str_of(v, "publisherMessageId"), "");
    json_decref(v);
    json_decref(hc_json(f, "POST", "/api/message/p/sub", NULL, "two", 200));
    /* An empty body is a message too. */
    json_decref(hc_json(f, "POST", "/api/message/p", NULL, NULL, 200));
    v = hc_json(f, "GET", "/api/message/p", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 2);
    m = json_array_get(v, 0);
    assert_string_equal(json_str_of(m, "userId"), "anonymous");
    assert_string_equal(json_str_of(m, "messageId"), "");
    assert_string_equal(json_str_of(m, "path"), "/p");
    assert_int_equal(json_object_size(json_object_get(m, "headers")), 0);
    assert_int_equal(json_object_size(m), 8);
    m = json_array_get(v, 1);
    assert_int_equal(json_int_of(m, "sequenceId"), 2);
    assert_string_equal(json_str_of(m, "body"), "");
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/p?from=3", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 0);
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/p/sub?limit=1", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 1);
    assert_string_equal(json_str_of(json_array_get(v, 0), "body"), "two");
    json_decref(v);
}

/* Publishes refused at once by the cluster (full, no leader, shutting
 * down) and those whose leadership was lost: 503, "not committed" or
 * "outcome unknown"; nothing stored. */
static void test_rest_publish_refused_at_once(void **state)
{
    struct gw_fx *f = *state;
    static const int refusals[] = {CH_EFULL, CH_ENOTLEADER, CH_ESHUTDOWN};
    json_t *v;

    for (size_t i = 0; i < 3; i++) {
        fake_cluster_set_publish_refusal(f->cl, refusals[i]);
        v = hc_json(f, "POST", "/api/message/y", NULL, "b", 503);
        assert_non_null(strstr(json_str_of(v, "error"), "not committed"));
        json_decref(v);
    }
    fake_cluster_set_publish_refusal(f->cl, 0);
    fake_cluster_set_publish_status(f->cl, CH_EUNKNOWN);
    v = hc_json(f, "POST", "/api/message/y", NULL, "b", 503);
    assert_non_null(strstr(json_str_of(v, "error"), "leadership lost"));
    assert_non_null(strstr(json_str_of(v, "error"), "outcome unknown"));
    json_decref(v);
    fake_cluster_set_publish_status(f->cl, 0);
    v = hc_json(f, "GET", "/api/message/y", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 0);
    json_decref(v);
    assert_int_equal(f->gw->metrics.publish_errors, 4);
}

/* A body over --max-message-bytes: 413 with a JSON error, nothing stored;
 * one at the limit is taken. */
static void test_rest_body_over_limit_413(void **state)
{
    struct gw_fx *f = *state;
    const struct gw_fx_options o = {.max_message_bytes = 100};
    char body[102];
    json_t *v;

    gwfx_stop(f);
    gwfx_start(f, &o);
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    v = hc_json(f, "POST", "/api/message/big", NULL, body, 413);
    assert_non_null(strstr(json_str_of(v, "error"), "too large"));
    json_decref(v);
    body[100] = '\0';
    v = hc_json(f, "POST", "/api/message/big", NULL, body, 200);
    assert_int_equal(json_int_of(v, "sequenceId"), 1);
    json_decref(v);
    v = hc_json(f, "GET", "/api/message/big", NULL, NULL, 200);
    assert_int_equal(json_array_size(v), 1);
    assert_int_equal(strlen(json_str_of(json_array_get(v, 0), "body")), 100);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, gwfx_setup, gwfx_teardown)
        T(test_rest_publish_then_replay),
        T(test_rest_replay_range),
        T(test_rest_binary_body_base64),
        T(test_rest_repeated_message_id),
        T(test_rest_bad_requests),
        T(test_rest_publish_refused),
        T(test_rest_defaults_and_exact_path),
        T(test_rest_publish_refused_at_once),
        T(test_rest_body_over_limit_413),
#undef T
        cmocka_unit_test(test_rest_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
