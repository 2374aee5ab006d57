/* REST API (docs/protocol.md "HTTP API"): publish and replay over plain HTTP.
 */
#include "common/alloc.h"
#include "common/log.h"
#include "common/validate.h"
#include "gateway/gw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

const char *gw__url_split(const struct gw_http_req *r, size_t *path_n)
{
    const char *url = r->url.data ? r->url.data : "";
    const char *q = strchr(url, '?');

    *path_n = q ? (size_t)(q - url) : strlen(url);
    return q ? q + 1 : "";
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int gw__query_get(const char *query, const char *name, char *out,
                  size_t out_size)
{
    size_t name_n = strlen(name);
    const char *p = query;

    CH_ASSERT(out_size > 0);
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= name_n && strncmp(p, name, name_n) == 0 &&
            (len == name_n || p[name_n] == '=')) {
            size_t o = 0;
            for (size_t i = name_n + 1; i < len; i++) {
                char ch = p[i];
                if (ch == '%' && i + 2 < len && hexval(p[i + 1]) >= 0 &&
                    hexval(p[i + 2]) >= 0) {
                    ch = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                /* Cut or with a NUL inside, it is not the value sent. */
                if (ch == '\0' || o + 1 >= out_size) {
                    out[0] = '\0';
                    return -1;
                }
                out[o++] = ch;
            }
            out[o] = '\0';
            return 1;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return 0;
}

/* An in-flight REST publish. */
struct rest_pub {
    struct gw_conn *conn;
    char path[CH_MAX_TOPIC_BYTES + 1];
    char msgid[CH_MAX_ID_BYTES + 1];
};

static void rest_publish_cb(void *arg, int status,
                            const struct store_result *res)
{
    struct rest_pub *rp = arg;
    struct gw_conn *c = rp->conn;
    char json[512];

    if (status == 0 && res != NULL && res->status != 0)
        status = res->status;
    if (status == 0) {
        snprintf(json, sizeof json,
                 "{\"sequenceId\":%lld,\"path\":\"%s\",\"publisherMessageId\":"
                 "\"%s\",\"messagePublishingTime\":%lld}",
                 (long long)res->seq, rp->path, rp->msgid,
                 (long long)res->time);
        if (!gw__conn_closing(c))
            gw__http_respond_json(c, 200, json);
    } else if (!gw__conn_closing(c)) {
        c->gw->metrics.publish_errors++;
        if (status == CH_EINVAL)
            gw__http_error(c, 400, "invalid message");
        else if (status == CH_ETIMEDOUT || status == CH_EUNKNOWN)
            gw__http_error(c, 503, "publish %s: outcome unknown",
                           status == CH_ETIMEDOUT ? "timeout"
                                                  : "leadership lost");
        else
            gw__http_error(c, 503, "%s: not committed", ch_strerror(status));
    }
    ch_free(rp);
    gw__http_resume(c);
    gw__conn_unref(c);
}

/* Builds the header JSON object from X-Guble-* / X-Chorus-* headers into
 * out (left empty when there are none). Returns 0 or CH_ENOMEM. */
static int headers_json(const struct gw_http_req *r, struct ch_buf *out)
{
    const char *n = r->hdr_names.data;
    const char *v = r->hdr_values.data;
    json_t *obj = json_object();
    int rv = 0;

    if (obj == NULL)
        return CH_ENOMEM;
    for (size_t i = 0; i < r->n_headers && rv == 0; i++) {
        const char *name = NULL;
        if (strncasecmp(n, "x-guble-", 8) == 0)
            name = n + 8;
        else if (strncasecmp(n, "x-chorus-", 9) == 0)
            name = n + 9;
        if (name != NULL && *name != '\0' &&
            json_object_set_new(obj, name, json_string(v)) != 0)
            rv = CH_ENOMEM;
        n += strlen(n) + 1;
        v += strlen(v) + 1;
    }
    if (rv == 0 && json_object_size(obj) > 0)
        rv = gw__json_dump(obj, out);
    json_decref(obj);
    return rv;
}

static void rest_publish(struct gw_conn *c, const char *path, size_t path_n,
                         const char *query)
{
    char user[CH_MAX_ID_BYTES + 2] = "anonymous";
    char msgid[CH_MAX_ID_BYTES + 2] = "";
    struct rest_pub *rp;
    struct ch_msg m;
    struct ch_buf hdr;
    int rv;

    rv = gw__query_get(query, "userId", user, sizeof user);
    if (rv < 0 || (rv > 0 && !ch_valid_id(user, strlen(user)))) {
        gw__http_error(c, 400, "bad userId");
        return;
    }
    rv = gw__query_get(query, "messageId", msgid, sizeof msgid);
    if (rv < 0 ||
        (rv > 0 && msgid[0] != '\0' && !ch_valid_id(msgid, strlen(msgid)))) {
        gw__http_error(c, 400, "bad messageId");
        return;
    }
    ch_buf_init(&hdr);
    rp = ch_calloc(1, sizeof *rp);
    if (rp == NULL || headers_json(&c->req, &hdr) != 0) {
        ch_buf_free(&hdr);
        ch_free(rp);
        gw__http_error(c, 503, "out of memory");
        return;
    }
    rp->conn = c;
    memcpy(rp->path, path, path_n);
    CH_ASSERT(strlen(msgid) < sizeof rp->msgid); /* validated above */
    memcpy(rp->msgid, msgid, strlen(msgid) + 1);
    memset(&m, 0, sizeof m);
    m.path.p = path;
    m.path.n = path_n;
    m.user.p = user;
    m.user.n = strlen(user);
    m.app.p = "rest";
    m.app.n = 4;
    m.msgid.p = msgid;
    m.msgid.n = strlen(msgid);
    m.header.p = hdr.data;
    m.header.n = hdr.len;
    m.body.p = c->req.body.data ? c->req.body.data : "";
    m.body.n = c->req.body.len;
    c->gw->metrics.publishes++;
    rv = cluster_publish(c->gw->cluster, &m, rest_publish_cb, rp);
    ch_buf_free(&hdr);
    if (rv != 0) {
        ch_free(rp);
        c->gw->metrics.publish_errors++;
        gw__http_error(c, 503, "%s: not committed", ch_strerror(rv));
        return;
    }
    c->refs++; /* until rest_publish_cb */
}

struct replay_json {
    json_t *arr;
    int rv;
};

/* One stored message as REST JSON (docs/protocol.md "REST"); NULL when
 * out of memory (json_pack fails whole, never a message with fields
 * missing). */
static json_t *msg_to_json(const struct ch_msg *m)
{
    bool is_text = ch_valid_utf8(m->body.p, m->body.n);
    json_t *headers = NULL, *body;

    /* Stored headers are JSON objects (checked when published): failing
     * to load one is running out of memory, not a reason to drop it. */
    if (m->header.n > 0)
        headers = json_loadb(m->header.p, m->header.n, 0, NULL);
    else
        headers = json_object();
    if (headers == NULL)
        return NULL;
    if (is_text) {
        body = json_stringn(m->body.p, m->body.n);
    } else {
        size_t cap = 4 * ((m->body.n + 2) / 3) + 1;
        unsigned char *b64 = ch_malloc(cap);
        if (b64 == NULL) {
            json_decref(headers);
            return NULL;
        }
        EVP_EncodeBlock(b64, (const unsigned char *)m->body.p, (int)m->body.n);
        body = json_string((char *)b64);
        ch_free(b64);
    }
    return json_pack("{s:s%,s:I,s:s%,s:s%,s:s%,s:I,s:o,s:o}", "path", m->path.p,
                     m->path.n, "sequenceId", (json_int_t)m->seq, "userId",
                     m->user.p, m->user.n, "applicationId", m->app.p, m->app.n,
                     "messageId", m->msgid.p, m->msgid.n, "time",
                     (json_int_t)m->time, "headers", headers,
                     is_text ? "body" : "bodyBase64", body);
}

static int replay_json_cb(void *arg, const struct ch_msg *m)
{
    struct replay_json *rj = arg;
    json_t *o = msg_to_json(m);

    if (o == NULL || json_array_append_new(rj->arr, o) != 0) {
        rj->rv = CH_ENOMEM;
        return 1;
    }
    return 0;
}

static void rest_replay(struct gw_conn *c, const char *path, size_t path_n,
                        const char *query)
{
    char num[32];
    long long from = 1, limit = CH_REST_DEFAULT_LIMIT;
    struct replay_json rj = {NULL, 0};
    struct store_txn *t;
    int rv;

    rv = gw__query_get(query, "from", num, sizeof num);
    if (rv < 0 ||
        (rv > 0 && (!ch_parse_i64(num, strlen(num), &from) || from < 0))) {
        gw__http_error(c, 400, "bad from: want a number >= 0");
        return;
    }
    rv = gw__query_get(query, "limit", num, sizeof num);
    if (rv < 0 ||
        (rv > 0 && (!ch_parse_i64(num, strlen(num), &limit) || limit < 1))) {
        gw__http_error(c, 400, "bad limit: want a number >= 1");
        return;
    }
    if (limit > CH_REST_MAX_LIMIT)
        limit = CH_REST_MAX_LIMIT;
    rj.arr = json_array();
    if (rj.arr == NULL) {
        gw__http_error(c, 503, "out of memory");
        return;
    }
    rv = store_read_begin(c->gw->store, &t);
    if (rv == 0) {
        rv = store_read_range(t, path, path_n, from, limit, 0, replay_json_cb,
                              &rj, NULL);
        store_read_end(t);
    }
    if (rv == 0)
        rv = rj.rv;
    if (rv != 0) {
        json_decref(rj.arr);
        gw__http_store_error(c, rv);
        return;
    }
    gw__respond_value(c, 200, rj.arr);
}

void gw__rest_handle(struct gw_conn *c)
{
    size_t url_n;
    const char *query = gw__url_split(&c->req, &url_n);
    const char *url = c->req.url.data;
    const char *path;
    size_t path_n;

    if (url_n < 13 || strncmp(url, "/api/message/", 13) != 0) {
        gw__http_error(c, 404, "no such endpoint");
        return;
    }
    path = url + 12; /* keep the leading '/' of the topic */
    path_n = url_n - 12;
    if (!ch_valid_topic(path, path_n)) {
        gw__http_error(c, 400, "bad topic path");
        return;
    }
    if (c->req.method == HTTP_POST)
        rest_publish(c, path, path_n, query);
    else if (c->req.method == HTTP_GET)
        rest_replay(c, path, path_n, query);
    else
        gw__http_error(c, 405, "method not allowed");
}
