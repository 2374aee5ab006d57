/* Admin API (docs/protocol.md "HTTP API"): health, cluster status, topics,
 * metrics. */
#include "common/log.h"
#include "common/validate.h"
#include "gateway/gw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *role_name(int role)
{
    switch (role) {
    case CLUSTER_ROLE_VOTER:
        return "voter";
    case CLUSTER_ROLE_STANDBY:
        return "standby";
    default:
        return "spare";
    }
}

static void handle_cluster(struct gw_conn *c)
{
    struct cluster_status st;
    json_t *members = json_array();

    cluster_get_status(c->gw->cluster, &st);
    for (unsigned i = 0; members != NULL && i < st.n_members; i++) {
        const struct cluster_member *mb = &st.members[i];
        json_t *m = json_pack(
            "{s:I,s:s,s:s?,s:s}", "id", (json_int_t)mb->id, "raft", mb->raft,
            "http", mb->http[0] ? mb->http : NULL, "role", role_name(mb->role));
        if (m == NULL || json_array_append_new(members, m) != 0) {
            json_decref(members);
            members = NULL;
        }
    }
    if (members == NULL) {
        gw__respond_value(c, 200, NULL);
        return;
    }
    gw__respond_value(
        c, 200,
        json_pack("{s:I,s:s,s:I,s:o,s:I,s:I,s:o}", "id", (json_int_t)st.id,
                  "state", st.state, "term", (json_int_t)st.term, "leader",
                  st.leader_id ? json_integer((json_int_t)st.leader_id)
                               : json_null(),
                  "commitIndex", (json_int_t)st.commit_index, "appliedIndex",
                  (json_int_t)st.applied_index, "members", members));
}

static void change_done(void *arg, int status, const char *text)
{
    struct gw_conn *c = arg;
    int code;

    if (!gw__conn_closing(c)) {
        switch (status) {
        case 0:
            code = 200;
            break;
        case CH_EINVAL:
            code = 400;
            break;
        case CH_ENOTFOUND:
            code = 404;
            break;
        case CH_EBUSY:
            code = 409;
            break;
        default:
            code = 503;
            break;
        }
        if (status == 0)
            handle_cluster(c); /* the cluster as it is now */
        else
            gw__http_error(c, code, "%s", text[0] ? text : ch_strerror(status));
        gw__http_resume(c);
    }
    gw__conn_unref(c);
}

/* Reads a JSON integer field >= 0 (missing: *out untouched). */
static bool json_id(json_t *o, const char *name, uint64_t *out, bool required)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL)
        return !required;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* POST /admin/cluster/{join,leave,transfer} (docs/protocol.md "HTTP API"): any
 * node; the cluster forwards to the leader; the answer comes once committed. */
static void handle_change(struct gw_conn *c, const char *op, size_t op_n)
{
    json_t *body = NULL;
    uint64_t id = 0;
    int rv;

    if (c->req.body.len > 0) {
        bool is_nomem;
        body = gw__json_load(c->req.body.data, c->req.body.len, &is_nomem);
        if (body == NULL && is_nomem) {
            gw__http_error(c, 503, "out of memory");
            return;
        }
        if (body == NULL || !json_is_object(body)) {
            json_decref(body);
            gw__http_error(c, 400, "body must be a JSON object");
            return;
        }
    } else {
        body = json_object();
        if (body == NULL) {
            gw__http_error(c, 503, "out of memory");
            return;
        }
    }
    if (op_n == 4 && strncmp(op, "join", 4) == 0) {
        const char *raft = json_string_value(json_object_get(body, "raft"));
        const char *http = json_string_value(json_object_get(body, "http"));
        const char *role_s = json_string_value(json_object_get(body, "role"));
        int role = CLUSTER_ROLE_VOTER;
        if (role_s != NULL && strcmp(role_s, "standby") == 0)
            role = CLUSTER_ROLE_STANDBY;
        else if (role_s != NULL && strcmp(role_s, "spare") == 0)
            role = CLUSTER_ROLE_SPARE;
        else if (role_s != NULL && strcmp(role_s, "voter") != 0)
            role = -1;
        if (!json_id(body, "id", &id, true) || id == 0 || raft == NULL ||
            http == NULL || role < 0) {
            json_decref(body);
            gw__http_error(c, 400,
                           "join wants {\"id\":N,\"raft\":\"IP:PORT\","
                           "\"http\":\"HOST:PORT\",\"role\":\"voter|"
                           "standby|spare\"}");
            return;
        }
        rv = cluster_join(c->gw->cluster, id, raft, http, role, change_done, c);
    } else if (op_n == 5 && strncmp(op, "leave", 5) == 0) {
        if (!json_id(body, "id", &id, true) || id == 0) {
            json_decref(body);
            gw__http_error(c, 400, "leave wants {\"id\":N}");
            return;
        }
        rv = cluster_leave(c->gw->cluster, id, change_done, c);
    } else {
        if (!json_id(body, "id", &id, false)) {
            json_decref(body);
            gw__http_error(c, 400, "transfer wants {\"id\":N} or {}");
            return;
        }
        rv = cluster_transfer(c->gw->cluster, id, change_done, c);
    }
    json_decref(body);
    if (rv != 0) {
        gw__http_error(c, rv == CH_EINVAL ? 400 : 503, "%s",
                       rv == CH_EINVAL ? "bad id or address" : ch_strerror(rv));
        return;
    }
    c->refs++; /* until change_done */
}

static void handle_health(struct gw_conn *c)
{
    struct cluster_status st;
    const char *reason = cluster_health_reason(c->gw->cluster);
    json_t *leader;

    cluster_get_status(c->gw->cluster, &st);
    leader =
        st.leader_id ? json_integer((json_int_t)st.leader_id) : json_null();
    if (reason == NULL)
        gw__respond_value(c, 200,
                          json_pack("{s:s,s:I,s:s,s:o}", "status", "ok", "id",
                                    (json_int_t)st.id, "state", st.state,
                                    "leader", leader));
    else
        gw__respond_value(c, 503,
                          json_pack("{s:s,s:s,s:I,s:s,s:o}", "status",
                                    "unavailable", "reason", reason, "id",
                                    (json_int_t)st.id, "state", st.state,
                                    "leader", leader));
}

static json_t *topic_json(const char *path, size_t path_n,
                          const struct store_topic *t)
{
    return json_pack("{s:s%,s:I,s:I,s:I,s:I}", "path", path, path_n, "count",
                     (json_int_t)t->count, "firstSequenceId",
                     (json_int_t)t->first_seq, "lastSequenceId",
                     (json_int_t)t->last_seq, "bytes", (json_int_t)t->bytes);
}

struct topic_list {
    json_t *arr;
    bool is_nomem;
};

static int list_cb(void *arg, const char *path, size_t path_n,
                   const struct store_topic *t)
{
    struct topic_list *tl = arg;
    json_t *o = topic_json(path, path_n, t);

    if (o == NULL || json_array_append_new(tl->arr, o) != 0) {
        tl->is_nomem = true;
        return 1; /* stop: the answer would be incomplete */
    }
    return 0;
}

static void handle_topics(struct gw_conn *c, const char *query)
{
    char prefix[CH_MAX_TOPIC_BYTES + 2] = "";
    struct topic_list tl = {NULL, false};
    struct store_txn *t;
    size_t pn;
    int rv;

    rv = gw__query_get(query, "prefix", prefix, sizeof prefix);
    if (rv < 0) {
        gw__http_error(c, 400, "bad prefix");
        return;
    }
    if (rv > 0) {
        pn = strlen(prefix);
        if (pn > 0 && !(pn == 1 && prefix[0] == '/') &&
            !ch_valid_topic(prefix, pn)) {
            gw__http_error(c, 400, "bad prefix");
            return;
        }
    }
    pn = strlen(prefix);
    tl.arr = json_array();
    if (tl.arr == NULL) {
        gw__respond_value(c, 200, NULL);
        return;
    }
    rv = store_read_begin(c->gw->store, &t);
    if (rv == 0) {
        rv = store_topics_list(t, prefix, pn, list_cb, &tl);
        store_read_end(t);
    }
    if (rv != 0) {
        json_decref(tl.arr);
        gw__http_store_error(c, rv);
        return;
    }
    if (tl.is_nomem) {
        json_decref(tl.arr);
        gw__respond_value(c, 200, NULL);
        return;
    }
    gw__respond_value(c, 200, json_pack("{s:o}", "topics", tl.arr));
}

static void handle_topic(struct gw_conn *c, const char *path, size_t path_n)
{
    struct store_topic info;
    struct store_txn *t;
    int rv;

    if (!ch_valid_topic(path, path_n)) {
        gw__http_error(c, 400, "bad topic path");
        return;
    }
    rv = store_read_begin(c->gw->store, &t);
    if (rv == 0) {
        rv = store_topic_get(t, path, path_n, &info);
        store_read_end(t);
    }
    if (rv == CH_ENOTFOUND) {
        gw__http_error(c, 404, "topic %.*s was never written", (int)path_n,
                       path);
        return;
    }
    if (rv != 0) {
        gw__http_store_error(c, rv);
        return;
    }
    gw__respond_value(c, 200, topic_json(path, path_n, &info));
}

/* The metric table: written once, used for Prometheus text and JSON. */
#define GW_METRICS(X)                                                          \
    X("chorus_connections_total", "counter", gm.connections_total)             \
    X("chorus_connections", "gauge", gm.connections_current)                   \
    X("chorus_websocket_connections", "gauge", gm.ws_connections_current)      \
    X("chorus_connections_refused_total", "counter", gm.connections_refused)   \
    X("chorus_http_requests_total", "counter", gm.http_requests)               \
    X("chorus_commands_total", "counter", gm.commands)                         \
    X("chorus_publishes_total", "counter", gm.publishes)                       \
    X("chorus_publish_errors_total", "counter", gm.publish_errors)             \
    X("chorus_messages_delivered_total", "counter", gm.messages_delivered)     \
    X("chorus_bytes_out_total", "counter", gm.bytes_out)                       \
    X("chorus_slow_reader_switches_total", "counter", gm.slow_reader_switches) \
    X("chorus_publishes_committed_total", "counter", cm.publishes_committed)   \
    X("chorus_publishes_failed_total", "counter", cm.publishes_failed)         \
    X("chorus_publishes_deduplicated_total", "counter", cm.publishes_dup)      \
    X("chorus_raft_entries_applied_total", "counter", cm.entries_applied)      \
    X("chorus_raft_batches_proposed_total", "counter", cm.batches_proposed)    \
    X("chorus_snapshots_total", "counter", cm.snapshots_taken)                 \
    X("chorus_store_damaged_ranges_total", "counter", cm.damaged_ranges)       \
    X("chorus_publishes_pending", "gauge", cm.pending_publishes)               \
    X("chorus_raft_term", "gauge", st.term)                                    \
    X("chorus_raft_commit_index", "gauge", st.commit_index)                    \
    X("chorus_raft_applied_index", "gauge", st.applied_index)                  \
    X("chorus_raft_leader_id", "gauge", st.leader_id)                          \
    X("chorus_healthy", "gauge", (uint64_t)healthy)

static void handle_metrics(struct gw_conn *c, bool json)
{
    struct gw_metrics gm = c->gw->metrics;
    struct cluster_metrics cm;
    struct cluster_status st;
    bool healthy = cluster_is_healthy(c->gw->cluster);
    struct ch_buf b;
    json_t *o;

    cluster_get_metrics(c->gw->cluster, &cm);
    cluster_get_status(c->gw->cluster, &st);
    if (json) {
        o = json_object();
#define X_JSON(name, type, value)                                              \
    if (o != NULL && json_object_set_new(                                      \
                         o, name, json_integer((json_int_t)(value))) != 0) {   \
        json_decref(o);                                                        \
        o = NULL;                                                              \
    }
        GW_METRICS(X_JSON)
#undef X_JSON
        gw__respond_value(c, 200, o); /* NULL: out of memory */
        return;
    }
    ch_buf_init(&b);
#define X_TEXT(name, type, value)                                              \
    if (ch_buf_printf(&b, "# TYPE %s %s\n%s %llu\n", name, type, name,         \
                      (unsigned long long)(value)) != 0)                       \
        goto oom;
    GW_METRICS(X_TEXT)
#undef X_TEXT
    gw__http_respond(c, 200, "text/plain; version=0.0.4", b.data, b.len);
    ch_buf_free(&b);
    return;
oom:
    ch_buf_free(&b);
    gw__http_error(c, 503, "out of memory");
}

void gw__admin_handle(struct gw_conn *c)
{
    size_t url_n;
    const char *query = gw__url_split(&c->req, &url_n);
    const char *url = c->req.url.data ? c->req.url.data : "";
    bool get = c->req.method == HTTP_GET;

#define IS(p) (url_n == strlen(p) && strncmp(url, p, url_n) == 0)
    if (IS("/admin/healthcheck")) {
        if (get)
            handle_health(c);
        else
            gw__http_error(c, 405, "method not allowed");
    } else if (IS("/admin/cluster")) {
        if (get)
            handle_cluster(c);
        else
            gw__http_error(c, 405, "method not allowed");
    } else if (IS("/admin/cluster/join") || IS("/admin/cluster/leave") ||
               IS("/admin/cluster/transfer")) {
        if (c->req.method == HTTP_POST)
            handle_change(c, url + 15, url_n - 15);
        else
            gw__http_error(c, 405, "method not allowed");
    } else if (IS("/admin/topics")) {
        if (get)
            handle_topics(c, query);
        else
            gw__http_error(c, 405, "method not allowed");
    } else if (url_n > 14 && strncmp(url, "/admin/topics/", 14) == 0) {
        if (get)
            handle_topic(c, url + 13, url_n - 13);
        else
            gw__http_error(c, 405, "method not allowed");
    } else if (IS("/metrics") || IS("/admin/metrics")) {
        if (get)
            handle_metrics(c, IS("/admin/metrics"));
        else
            gw__http_error(c, 405, "method not allowed");
    } else {
        gw__http_error(c, 404, "no such endpoint");
    }
#undef IS
}
