/* Unit tests of the admin API (src/gateway/admin.c) in process against
 * the stand-in cluster (tests/lib/gw_harness.h), checked against
 * docs/protocol.md "Admin": health with and without a reason, the cluster
 * status, membership changes answered from the cluster's callback (and
 * their bad bodies), topics by whole-segment prefix and one by one,
 * Prometheus text and JSON metrics that agree (and the text format line by
 * line), no leader known, what membership requests hand to the cluster
 * and how its outcomes map to statuses (409, 503, 400), prefixes next to
 * keys that sort between a topic and its subtopics, methods and unknown
 * paths, and every allocation failing in turn. */
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

static json_t *request(struct gw_fx *f, const char *method, const char *path,
                       const char *body, int status)
{
    return hc_json(f, method, path, NULL, body, status);
}

static void publish(struct gw_fx *f, const char *topic, int n)
{
    char path[300];

    snprintf(path, sizeof path, "/api/message%s", topic);
    for (int i = 0; i < n; i++)
        json_decref(request(f, "POST", path, "body", 200));
}

/* Checks a complete /admin/cluster answer. */
static void check_cluster(json_t *v)
{
    json_t *members = json_object_get(v, "members");

    assert_int_equal(json_int_of(v, "id"), 1);
    assert_string_equal(json_str_of(v, "state"), "leader");
    assert_int_equal(json_int_of(v, "term"), 3);
    assert_int_equal(json_int_of(v, "leader"), 1);
    assert_true(json_int_of(v, "commitIndex") >= 0);
    assert_true(json_int_of(v, "appliedIndex") >= 0);
    assert_true(json_is_array(members));
    assert_int_equal(json_array_size(members), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_array_get(members, i);
        assert_int_equal(json_int_of(m, "id"), (long long)i + 1);
        (void)json_str_of(m, "raft");
        (void)json_str_of(m, "role");
        assert_non_null(json_object_get(m, "http"));
    }
}

/* ---- tests -------------------------------------------------------------- */

/* 200 "ok" when healthy, 503 with the cluster's reason when not. */
static void test_admin_health(void **state)
{
    struct gw_fx *f = *state;
    json_t *v;

    v = request(f, "GET", "/admin/healthcheck", NULL, 200);
    assert_string_equal(json_str_of(v, "status"), "ok");
    assert_int_equal(json_int_of(v, "leader"), 1);
    assert_null(json_object_get(v, "reason"));
    json_decref(v);
    fake_cluster_set_health(f->cl, "no leader known");
    v = request(f, "GET", "/admin/healthcheck", NULL, 503);
    assert_string_equal(json_str_of(v, "status"), "unavailable");
    assert_string_equal(json_str_of(v, "reason"), "no leader known");
    json_decref(v);
    fake_cluster_set_health(f->cl, NULL);
    v = request(f, "GET", "/admin/healthcheck", NULL, 200);
    json_decref(v);
}

static void test_admin_cluster_status(void **state)
{
    struct gw_fx *f = *state;
    json_t *v;

    publish(f, "/c", 2);
    v = request(f, "GET", "/admin/cluster", NULL, 200);
    check_cluster(v);
    assert_int_equal(json_int_of(v, "appliedIndex"), 2);
    json_decref(v);
}

/* Membership changes: answered (with the cluster as it is then) once the
 * cluster calls back; refusals map to 400/404; bad bodies are 400 before
 * the cluster sees them. */
static void test_admin_membership_changes(void **state)
{
    struct gw_fx *f = *state;
    static const struct {
        const char *path, *body;
        int status;
    } cases[] = {
        {"/admin/cluster/join",
         "{\"id\":4,\"raft\":\"127.0.0.1:9004\",\"http\":\"127.0.0.1:8004\"}",
         200},
        {"/admin/cluster/join",
         "{\"id\":5,\"raft\":\"a:1\",\"http\":\"b:2\",\"role\":\"spare\"}",
         200},
        {"/admin/cluster/leave", "{\"id\":2}", 200},
        {"/admin/cluster/leave", "{\"id\":9}", 404}, /* not a member */
        {"/admin/cluster/transfer", "{}", 200},
        {"/admin/cluster/transfer", "", 200},
        {"/admin/cluster/transfer", "{\"id\":3}", 200},
        /* Refused before the cluster is asked. */
        {"/admin/cluster/join", "{\"id\":4,\"raft\":\"a:1\"}", 400},
        {"/admin/cluster/join",
         "{\"id\":4,\"raft\":\"a:1\",\"http\":\"b:2\",\"role\":\"king\"}", 400},
        {"/admin/cluster/join", "{\"id\":0,\"raft\":\"a:1\",\"http\":\"b:2\"}",
         400},
        {"/admin/cluster/leave", "{}", 400},
        {"/admin/cluster/leave", "{\"id\":-1}", 400},
        {"/admin/cluster/leave", "{\"id\":\"2\"}", 400},
        {"/admin/cluster/leave", "[2]", 400},
        {"/admin/cluster/leave", "{\"id\":", 400},
        {"/admin/cluster/transfer", "{\"id\":1.5}", 400},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v =
            request(f, "POST", cases[i].path, cases[i].body, cases[i].status);
        if (cases[i].status == 200)
            check_cluster(v);
        else
            (void)json_str_of(v, "error");
        json_decref(v);
    }
    /* A long address is refused whole, never cut. */
    {
        char body[1024];
        char addr[CH_MAX_ADDR_BYTES + 2];
        json_t *v;
        memset(addr, 'a', sizeof addr - 1);
        addr[sizeof addr - 1] = '\0';
        snprintf(body, sizeof body,
                 "{\"id\":6,\"raft\":\"%s\",\"http\":\"b:2\"}", addr);
        v = request(f, "POST", "/admin/cluster/join", body, 400);
        json_decref(v);
    }
}

/* Topics under a prefix match whole segments; one topic by path; a topic
 * never written is 404. */
static void test_admin_topics(void **state)
{
    struct gw_fx *f = *state;
    json_t *v, *topics;

    publish(f, "/a/b", 3);
    publish(f, "/a/c", 1);
    publish(f, "/ab", 1);
    v = request(f, "GET", "/admin/topics?prefix=/a", NULL, 200);
    topics = json_object_get(v, "topics");
    assert_int_equal(json_array_size(topics), 2);
    assert_string_equal(json_str_of(json_array_get(topics, 0), "path"), "/a/b");
    assert_int_equal(json_int_of(json_array_get(topics, 0), "count"), 3);
    assert_string_equal(json_str_of(json_array_get(topics, 1), "path"), "/a/c");
    json_decref(v);
    v = request(f, "GET", "/admin/topics", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(v, "topics")), 3);
    json_decref(v);
    v = request(f, "GET", "/admin/topics?prefix=/", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(v, "topics")), 3);
    json_decref(v);
    json_decref(request(f, "GET", "/admin/topics?prefix=a//b", NULL, 400));

    v = request(f, "GET", "/admin/topics/a/b", NULL, 200);
    assert_string_equal(json_str_of(v, "path"), "/a/b");
    assert_int_equal(json_int_of(v, "count"), 3);
    assert_int_equal(json_int_of(v, "firstSequenceId"), 1);
    assert_int_equal(json_int_of(v, "lastSequenceId"), 3);
    assert_true(json_int_of(v, "bytes") >= 3 * 4);
    json_decref(v);
    v = request(f, "GET", "/admin/topics/never", NULL, 404);
    assert_non_null(strstr(json_str_of(v, "error"), "never written"));
    json_decref(v);
    json_decref(request(f, "GET", "/admin/topics/a/../b", NULL, 400));
}

/* The Prometheus text and the JSON give the same figures. */
static void test_admin_metrics(void **state)
{
    struct gw_fx *f = *state;
    struct hresp r;
    json_t *v;
    const char *line;

    publish(f, "/m", 4);
    assert_true(hc_request(f, "GET", "/metrics", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE chorus_publishes_total counter\n"));
    line = strstr(r.body, "\nchorus_publishes_total ");
    assert_non_null(line);
    assert_int_equal(strtoll(line + 24, NULL, 10), 4);
    line = strstr(r.body, "\nchorus_publishes_committed_total ");
    assert_non_null(line);
    assert_int_equal(strtoll(line + 34, NULL, 10), 4);
    assert_non_null(strstr(r.body, "\nchorus_healthy 1\n"));
    hresp_free(&r);
    v = request(f, "GET", "/admin/metrics", NULL, 200);
    assert_int_equal(json_int_of(v, "chorus_publishes_total"), 4);
    assert_int_equal(json_int_of(v, "chorus_publishes_committed_total"), 4);
    assert_int_equal(json_int_of(v, "chorus_healthy"), 1);
    assert_int_equal(json_object_size(v), 24);
    json_decref(v);
}

/* Wrong methods are 405, unknown admin paths 404, all as JSON errors. */
static void test_admin_methods_and_paths(void **state)
{
    struct gw_fx *f = *state;
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {
        {"POST", "/admin/healthcheck", 405}, {"DELETE", "/admin/cluster", 405},
        {"GET", "/admin/cluster/join", 405}, {"PUT", "/admin/topics", 405},
        {"POST", "/admin/topics/a", 405},    {"POST", "/metrics", 405},
        {"GET", "/admin/nothing", 404},      {"GET", "/admin/cluster/", 404},
        {"GET", "/admin/topics/", 404},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v =
            request(f, cases[i].method, cases[i].path, NULL, cases[i].status);
        (void)json_str_of(v, "error");
        json_decref(v);
    }
}

/* The admin requests run with faults, and how a complete answer looks. */
enum admin_req {
    AR_CLUSTER,
    AR_HEALTH,
    AR_TOPICS,
    AR_TOPIC,
    AR_METRICS_JSON,
    AR_METRICS,
    AR_LEAVE,
    AR_N
};

static const struct {
    const char *method, *path, *body;
} admin_reqs[AR_N] = {
    [AR_CLUSTER] = {"GET", "/admin/cluster", NULL},
    [AR_HEALTH] = {"GET", "/admin/healthcheck", NULL},
    [AR_TOPICS] = {"GET", "/admin/topics?prefix=/t", NULL},
    [AR_TOPIC] = {"GET", "/admin/topics/t/1", NULL},
    [AR_METRICS_JSON] = {"GET", "/admin/metrics", NULL},
    [AR_METRICS] = {"GET", "/metrics", NULL},
    [AR_LEAVE] = {"POST", "/admin/cluster/leave", "{\"id\":2}"},
};

static void check_complete(enum admin_req k, const struct hresp *r)
{
    json_t *v;

    if (k == AR_METRICS) {
        assert_non_null(strstr(r->body, "\nchorus_healthy 1\n"));
        return;
    }
    v = json_loadb(r->body, r->body_n, 0, NULL);
    if (v == NULL)
        fail_msg("%s: 200 and not JSON: %s", admin_reqs[k].path, r->body);
    if (k == AR_CLUSTER || k == AR_LEAVE)
        check_cluster(v);
    else if (k == AR_HEALTH)
        assert_string_equal(json_str_of(v, "status"), "ok");
    else if (k == AR_TOPICS)
        assert_int_equal(json_array_size(json_object_get(v, "topics")), 2);
    else if (k == AR_TOPIC)
        assert_int_equal(json_object_size(v), 5);
    else if (k == AR_METRICS_JSON)
        assert_int_equal(json_object_size(v), 24);
    json_decref(v);
}

static void admin_with_fault(void *arg, int i)
{
    enum admin_req k = *(enum admin_req *)arg;
    struct gw_fx *f;
    struct hresp r;
    bool has;

    gwfx_setup((void **)&f);
    publish(f, "/t/1", 1);
    publish(f, "/t/2", 1);
    test_heap_fault_config(i, 1);
    has = hc_request(f, admin_reqs[k].method, admin_reqs[k].path, NULL,
                     admin_reqs[k].body, &r);
    test_heap_fault_off();
    if (has && r.status == 200)
        check_complete(k, &r);
    else if (has && r.status != 503) /* out of memory, nothing else */
        fail_msg("%s with fault %d: %d %s", admin_reqs[k].path, i, r.status,
                 r.body);
    if (has)
        hresp_free(&r);
    gwfx_teardown((void **)&f);
}

/* Each admin answer with each allocation failing in turn: complete, or a
 * 503 JSON error (or the connection closed), never an answer with fields
 * missing, a crash or a leak. */
static void test_admin_each_allocation_fails(void **state)
{
    (void)state;
    for (enum admin_req k = 0; k < AR_N; k++)
        (void)test_heap_each_fault(admin_with_fault, &k, 1, 1000);
}

/* No leader known: health is 503 with the reason and "leader": null; the
 * cluster status says the same; the metrics agree. */
static void test_admin_no_leader(void **state)
{
    struct gw_fx *f = *state;
    struct hresp r;
    json_t *v;

    fake_cluster_set_leader(f->cl, 0, "follower");
    fake_cluster_set_health(f->cl, "no leader known");
    v = request(f, "GET", "/admin/healthcheck", NULL, 503);
    assert_string_equal(json_str_of(v, "status"), "unavailable");
    assert_string_equal(json_str_of(v, "reason"), "no leader known");
    assert_string_equal(json_str_of(v, "state"), "follower");
    assert_int_equal(json_int_of(v, "id"), 1);
    assert_true(json_is_null(json_object_get(v, "leader")));
    assert_int_equal(json_object_size(v), 5);
    json_decref(v);
    v = request(f, "GET", "/admin/cluster", NULL, 200);
    assert_true(json_is_null(json_object_get(v, "leader")));
    assert_string_equal(json_str_of(v, "state"), "follower");
    json_decref(v);
    assert_true(hc_request(f, "GET", "/metrics", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\nchorus_healthy 0\n"));
    assert_non_null(strstr(r.body, "\nchorus_raft_leader_id 0\n"));
    hresp_free(&r);
    /* Another node leads: this one is healthy again and names it. */
    fake_cluster_set_leader(f->cl, 3, "follower");
    fake_cluster_set_health(f->cl, NULL);
    v = request(f, "GET", "/admin/healthcheck", NULL, 200);
    assert_int_equal(json_int_of(v, "leader"), 3);
    assert_int_equal(json_object_size(v), 4);
    json_decref(v);
}

/* What reaches the cluster: join's id, addresses and role (voter by
 * default); leave's id; transfer's id (0 without one). Bad bodies never
 * reach it. Its outcomes map to statuses: 409 for a change already
 * running, 503 for no leader, refusals at once 503, with its text. */
static void test_admin_membership_outcomes(void **state)
{
    struct gw_fx *f = *state;
    static const struct {
        const char *role;
        int want;
    } roles[] = {
        {"", CLUSTER_ROLE_VOTER},
        {",\"role\":\"voter\"", CLUSTER_ROLE_VOTER},
        {",\"role\":\"standby\"", CLUSTER_ROLE_STANDBY},
        {",\"role\":\"spare\"", CLUSTER_ROLE_SPARE},
    };
    struct fake_admin_req req;
    unsigned n;
    char body[256];
    json_t *v;

    for (size_t i = 0; i < 4; i++) {
        snprintf(body, sizeof body,
                 "{\"id\":7,\"raft\":\"10.0.0.7:9007\",\"http\":"
                 "\"node7:8007\"%s}",
                 roles[i].role);
        json_decref(request(f, "POST", "/admin/cluster/join", body, 200));
        n = fake_cluster_admin_requests(f->cl, &req);
        assert_int_equal(n, i + 1);
        assert_int_equal(req.op, FAKE_ADMIN_JOIN);
        assert_int_equal(req.id, 7);
        assert_string_equal(req.raft, "10.0.0.7:9007");
        assert_string_equal(req.http, "node7:8007");
        assert_int_equal(req.role, roles[i].want);
    }
    json_decref(request(f, "POST", "/admin/cluster/leave", "{\"id\":3}", 200));
    assert_int_equal(fake_cluster_admin_requests(f->cl, &req), 5);
    assert_int_equal(req.op, FAKE_ADMIN_LEAVE);
    assert_int_equal(req.id, 3);
    json_decref(request(f, "POST", "/admin/cluster/transfer", NULL, 200));
    assert_int_equal(fake_cluster_admin_requests(f->cl, &req), 6);
    assert_int_equal(req.op, FAKE_ADMIN_TRANSFER);
    assert_int_equal(req.id, 0);
    json_decref(
        request(f, "POST", "/admin/cluster/transfer", "{\"id\":2}", 200));
    assert_int_equal(fake_cluster_admin_requests(f->cl, &req), 7);
    assert_int_equal(req.id, 2);

    /* Refused before the cluster is asked. */
    json_decref(request(f, "POST", "/admin/cluster/join",
                        "{\"id\":7,\"raft\":\"a:1\",\"http\":\"b:2\","
                        "\"role\":\"boss\"}",
                        400));
    json_decref(request(f, "POST", "/admin/cluster/leave", "{\"id\":0}", 400));
    json_decref(request(f, "POST", "/admin/cluster/transfer", "nope", 400));
    assert_int_equal(fake_cluster_admin_requests(f->cl, NULL), 7);

    /* The cluster's answers. */
    fake_cluster_set_admin_outcome(f->cl, 0, CH_EBUSY,
                                   "another membership change is running");
    v = request(f, "POST", "/admin/cluster/leave", "{\"id\":2}", 409);
    assert_string_equal(json_str_of(v, "error"),
                        "another membership change is running");
    json_decref(v);
    fake_cluster_set_admin_outcome(f->cl, 0, CH_ENOTLEADER, "");
    v = request(f, "POST", "/admin/cluster/transfer", "{}", 503);
    assert_true(strlen(json_str_of(v, "error")) > 0); /* ch_strerror */
    json_decref(v);
    fake_cluster_set_admin_outcome(f->cl, 0, CH_EINVAL, "bad address");
    v = request(f, "POST", "/admin/cluster/join",
                "{\"id\":8,\"raft\":\"a:1\",\"http\":\"b:2\"}", 400);
    assert_string_equal(json_str_of(v, "error"), "bad address");
    json_decref(v);
    fake_cluster_set_admin_outcome(f->cl, CH_ESHUTDOWN, 0, NULL);
    v = request(f, "POST", "/admin/cluster/leave", "{\"id\":2}", 503);
    json_decref(v);
    fake_cluster_set_admin_outcome(f->cl, CH_EINVAL, 0, NULL);
    v = request(f, "POST", "/admin/cluster/leave", "{\"id\":2}", 400);
    json_decref(v);
    fake_cluster_set_admin_outcome(f->cl, 0, 0, NULL);
    assert_int_equal(fake_cluster_admin_requests(f->cl, NULL), 12);
    /* The connection of a refused change stays usable. */
    json_decref(request(f, "POST", "/admin/cluster/leave", "{\"id\":2}", 200));
}

/* /metrics is Prometheus text: for every metric a "# TYPE name
 * counter|gauge" line, then "name value"; names unique; the same names and
 * values as /admin/metrics. */
static void test_admin_metrics_text_format(void **state)
{
    struct gw_fx *f = *state;
    struct hresp r;
    json_t *js;
    char *save = NULL;
    size_t n = 0;
    const char *type_name = NULL;

    publish(f, "/mt", 2);
    js = request(f, "GET", "/admin/metrics", NULL, 200);
    assert_true(hc_request(f, "GET", "/metrics", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_true(r.body_n > 0 && r.body[r.body_n - 1] == '\n');
    for (char *line = strtok_r(r.body, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128], kind[16], rest[2];
        unsigned long long value;
        if (type_name == NULL) {
            if (sscanf(line, "# TYPE %127s %15s %1s", name, kind, rest) != 2)
                fail_msg("not a TYPE line: \"%s\"", line);
            assert_true(strcmp(kind, "counter") == 0 ||
                        strcmp(kind, "gauge") == 0);
            assert_true(strncmp(name, "chorus_", 7) == 0);
            if (strcmp(kind, "counter") == 0)
                assert_true(strlen(name) > 6 &&
                            strcmp(name + strlen(name) - 6, "_total") == 0);
            type_name = strstr(line, name);
            continue;
        }
        if (sscanf(line, "%127s %llu %1s", name, &value, rest) != 2 ||
            strspn(strchr(line, ' ') + 1, "0123456789") !=
                strlen(strchr(line, ' ') + 1))
            fail_msg("not a sample line: \"%s\"", line);
        assert_memory_equal(type_name, name, strlen(name));
        /* The JSON has the same name (once: JSON keys are unique), and the
         * same value but for the figures the requests themselves move. */
        assert_true(json_is_integer(json_object_get(js, name)));
        if (strcmp(name, "chorus_http_requests_total") != 0 &&
            strcmp(name, "chorus_bytes_out_total") != 0 &&
            strcmp(name, "chorus_connections_total") != 0)
            assert_int_equal(json_int_of(js, name), (long long)value);
        json_object_del(js, name); /* a second sample would not find it */
        type_name = NULL;
        n++;
    }
    assert_null(type_name);
    assert_int_equal(n, 24);
    assert_int_equal(json_object_size(js), 0);
    json_decref(js);
    hresp_free(&r);
}

/* Prefixes match whole segments at every depth, and a topic path itself
 * is a prefix of its own subtopics only. */
static void test_admin_topics_prefix_segments(void **state)
{
    struct gw_fx *f = *state;
    static const struct {
        const char *prefix;
        const char *want; /* the paths, space-separated */
    } cases[] = {
        /* "/x-a" and "/x.b" sort between "/x" and "/x/y": skipped, and
         * the listing goes on. */
        {"/x", "/x /x/y /x/y/z /x/yz"},
        {"/x-a", "/x-a"},
        {"/x/y", "/x/y /x/y/z"},
        {"/x/y/z", "/x/y/z"},
        {"/x/yz", "/x/yz"},
        {"/x/y/z/w", ""},
        {"/xy", "/xy"},
        {"/q", ""},
    };

    publish(f, "/x", 1);
    publish(f, "/x-a", 1);
    publish(f, "/x.b", 1);
    publish(f, "/x/y", 1);
    publish(f, "/x/y/z", 2);
    publish(f, "/x/yz", 1);
    publish(f, "/xy", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[300], got[300] = "";
        json_t *v, *topics;

        snprintf(path, sizeof path, "/admin/topics?prefix=%s", cases[i].prefix);
        v = request(f, "GET", path, NULL, 200);
        topics = json_object_get(v, "topics");
        assert_true(json_is_array(topics));
        for (size_t k = 0; k < json_array_size(topics); k++) {
            json_t *t = json_array_get(topics, k);
            if (k > 0)
                strcat(got, " ");
            strcat(got, json_str_of(t, "path"));
            assert_int_equal(json_object_size(t), 5);
        }
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("prefix %s: \"%s\", expected \"%s\"", cases[i].prefix, got,
                     cases[i].want);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, gwfx_setup, gwfx_teardown)
        T(test_admin_health),
        T(test_admin_cluster_status),
        T(test_admin_membership_changes),
        T(test_admin_topics),
        T(test_admin_metrics),
        T(test_admin_methods_and_paths),
        T(test_admin_no_leader),
        T(test_admin_membership_outcomes),
        T(test_admin_metrics_text_format),
        T(test_admin_topics_prefix_segments),
#undef T
        cmocka_unit_test(test_admin_each_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
