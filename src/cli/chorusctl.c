/* chorusctl: the admin and client CLI (docs/operations.md "chorusctl"). Admin
 * commands speak the HTTP admin API (docs/protocol.md "HTTP API") through
 * httpc; `publish` uses the REST API and `tail` the WebSocket protocol
 * (docs/protocol.md) through ch_wsc. Exit status: 0 ok, 1 failure (one line on
 * stderr), 2 usage error. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cli/httpc.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/net.h"
#include "common/validate.h"
#include "common/wsclient.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define CTL_DEFAULT_SERVER "127.0.0.1:8080"
#define CTL_USER_ID "chorusctl"
/* Timeouts: connecting, ordinary requests, membership changes (a new voter
 * first catches up), publishes (server side bounded by --publish-timeout). */
#define CTL_CONNECT_TIMEOUT_MS 5000
#define CTL_REQUEST_TIMEOUT_MS 30000
#define CTL_MEMBERSHIP_TIMEOUT_MS 300000
/* Largest message tail accepts, and largest body publish reads. */
#define CTL_MAX_MSG_BYTES (64 * 1024 * 1024)
/* How often tail wakes up to notice SIGINT/SIGTERM. */
#define CTL_TAIL_POLL_MS 500
/* Bounds on the command line. */
#define CTL_MAX_POS 8
#define CTL_MAX_HEADERS 64

/* The only mutable global: set by the SIGINT/SIGTERM handler. */
static volatile sig_atomic_t g_interrupted;

enum ctl_opt {
    OPT_ROLE = 1u << 0,
    OPT_ID = 1u << 1,
    OPT_HEADER = 1u << 2,
    OPT_FROM = 1u << 3,
    OPT_LAST = 1u << 4,
    OPT_MAX = 1u << 5,
};

/* The parsed command line. Strings are borrowed from argv. */
struct ctl {
    const char *server;                   /* HOST:PORT of any member */
    bool is_json;                         /* --json */
    unsigned seen;                        /* enum ctl_opt bits given */
    const char *role;                     /* --role */
    const char *msg_id;                   /* --id */
    const char *from;                     /* --from */
    const char *last;                     /* --last */
    const char *max;                      /* -n */
    const char *headers[CTL_MAX_HEADERS]; /* --header K=V */
    size_t n_headers;
    const char *pos[CTL_MAX_POS]; /* command and its arguments */
    size_t n_pos;
};

struct ctl_cmd {
    const char *name;
    size_t min_args; /* positional arguments after the name */
    size_t max_args;
    unsigned opts; /* enum ctl_opt bits allowed */
    int (*run)(const struct ctl *ctl);
};

static const char USAGE_LINE[] =
    "usage: chorusctl [-s HOST:PORT] [--json] COMMAND [ARGS...]";

static const char USAGE_TEXT[] =
    "usage: chorusctl [-s HOST:PORT] [--json] COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  status                              cluster overview (members, roles, "
    "leader, term, indexes, health)\n"
    "  members                             the members\n"
    "  join ID RAFT_ADDR HTTP_ADDR [--role voter|standby|spare]\n"
    "                                      add a node; waits until committed\n"
    "  leave ID                            remove a node\n"
    "  transfer [ID]                       leadership transfer\n"
    "  topics [PREFIX]                     topics with counts and last "
    "sequenceId\n"
    "  topic PATH                          one topic\n"
    "  publish PATH [BODY | -] [--id MSGID] [--header K=V]...\n"
    "                                      publish BODY (stdin if - or "
    "absent) as user chorusctl\n"
    "  tail PATH [--from N | --last N] [-n MAX]\n"
    "                                      print messages (from sequenceId "
    "N, or the last N,\n"
    "                                      then live); exit after MAX, else "
    "follow until ^C\n"
    "\n"
    "options:\n"
    "  -s, --server HOST:PORT   node to talk to, any member (default "
    "$CHORUS_SERVER\n"
    "                           or " CTL_DEFAULT_SERVER ")\n"
    "  --json                   print the API's JSON objects (tail: one "
    "message per line)\n"
    "  -h, --help               print this help\n"
    "\n"
    "exit status: 0 success, 1 failure, 2 usage error\n";

/* ---- output helpers ------------------------------------------------------ */

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;

    fputs("chorusctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAIL;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
                                                             ...)
{
    va_list ap;

    fputs("chorusctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s (see chorusctl --help)\n", USAGE_LINE);
    return EXIT_USAGE;
}

/* Prints v as one line of JSON on stdout. */
static int print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

    if (s == NULL)
        return fail("out of memory");
    if (puts(s) == EOF) {
        free(s);
        return fail("cannot write to stdout: %s", strerror(errno));
    }
    free(s);
    return EXIT_OK;
}

/* Writes body so that one message stays on one line: control characters,
 * backslashes and bytes that are not UTF-8 are escaped C-style. */
static void print_escaped(FILE *f, const char *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    size_t len;

    while (i < n) {
        unsigned char ch = p[i];

        if (ch == '\\') {
            fputs("\\\\", f);
        } else if (ch == '\n') {
            fputs("\\n", f);
        } else if (ch == '\r') {
            fputs("\\r", f);
        } else if (ch == '\t') {
            fputs("\\t", f);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\x%02x", ch);
        } else if (ch < 0x80) {
            fputc(ch, f);
        } else {
            len = ch_utf8_seq_len(data + i, n - i);
            if (len == 0) {
                fprintf(f, "\\x%02x", ch);
            } else {
                fwrite(p + i, 1, len, f);
                i += len;
                continue;
            }
        }
        i++;
    }
}

/* Returns the integer field `key` of obj, or def. */
static json_int_t obj_int(const json_t *obj, const char *key, json_int_t def)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* Returns the string field `key` of obj, or def. */
static const char *obj_str(const json_t *obj, const char *key, const char *def)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : def;
}

/* Formats field `key` of obj for a table cell: integers, strings, null. */
static void cell(const json_t *obj, const char *key, char *out, size_t size)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v))
        snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, size, "%s", json_string_value(v));
    else if (json_is_true(v))
        snprintf(out, size, "true");
    else if (json_is_false(v))
        snprintf(out, size, "false");
    else
        snprintf(out, size, "-");
}

/* Prints a table of the objects in arr, one row each, with the given
 * headings and object keys; columns are as wide as their widest cell. */
static void print_table(const json_t *arr, size_t n_cols,
                        const char *const *heads, const char *const *keys)
{
    size_t width[8] = {0};
    char buf[512];
    size_t i;
    size_t c;
    const json_t *row;

    CH_ASSERT(n_cols <= 8);
    for (c = 0; c < n_cols; c++)
        width[c] = strlen(heads[c]);
    json_array_foreach(arr, i, row)
    {
        for (c = 0; c < n_cols; c++) {
            cell(row, keys[c], buf, sizeof(buf));
            if (strlen(buf) > width[c])
                width[c] = strlen(buf);
        }
    }
    for (c = 0; c < n_cols; c++)
        printf("%-*s%s", c + 1 < n_cols ? (int)width[c] : 0, heads[c],
               c + 1 < n_cols ? "  " : "\n");
    json_array_foreach(arr, i, row)
    {
        for (c = 0; c < n_cols; c++) {
            cell(row, keys[c], buf, sizeof(buf));
            printf("%-*s%s", c + 1 < n_cols ? (int)width[c] : 0, buf,
                   c + 1 < n_cols ? "  " : "\n");
        }
    }
}

/* ---- HTTP ---------------------------------------------------------------- */

/* Reports a non-2xx answer as one line: the server's {"error":...} text
 * when there is one, else the status and the start of the body. */
static int report_http_error(const char *method, const char *path,
                             const struct httpc_response *r)
{
    json_t *j = json_loadb(r->body.data != NULL ? r->body.data : "",
                           r->body.len, 0, NULL);
    const char *msg = obj_str(j, "error", NULL);
    char snippet[160];
    size_t n = 0;

    if (msg != NULL) {
        fail("%s (HTTP %d)", msg, r->status);
        json_decref(j);
        return EXIT_FAIL;
    }
    json_decref(j);
    for (size_t i = 0; i < r->body.len && n + 1 < sizeof(snippet); i++) {
        char ch = r->body.data[i];
        if (ch == '\n' || ch == '\r')
            break;
        snippet[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    snippet[n] = '\0';
    return fail("%s %s: HTTP %d%s%s", method, path, r->status,
                n > 0 ? ": " : "", snippet);
}

/* Sends a request and, on a 2xx answer with a JSON body, returns the
 * document in *out (owned; json_decref). Otherwise prints one line on
 * stderr and returns EXIT_FAIL. body may be NULL (no body). */
static int call(const struct ctl *ctl, const char *method, const char *path,
                const char *const *headers, const void *body, size_t body_n,
                int timeout_ms, json_t **out)
{
    struct httpc_response r;
    json_error_t jerr;
    int rv;

    *out = NULL;
    httpc_response_init(&r);
    rv = httpc_request(method, ctl->server, path, headers, body, body_n,
                       CTL_CONNECT_TIMEOUT_MS, timeout_ms, &r);
    if (rv != 0) {
        if (rv == CH_ECONNECT || rv == CH_EINVAL)
            fail("%s", r.errmsg);
        else
            fail("%s %s on %s: %s", method, path, ctl->server, r.errmsg);
        goto err;
    }
    if (r.status < 200 || r.status > 299) {
        report_http_error(method, path, &r);
        goto err;
    }
    *out = json_loadb(r.body.data != NULL ? r.body.data : "", r.body.len,
                      JSON_DECODE_ANY, &jerr);
    if (*out == NULL) {
        fail("%s %s: bad JSON in the answer: %s", method, path, jerr.text);
        goto err;
    }
    httpc_response_free(&r);
    return EXIT_OK;

err:
    httpc_response_free(&r);
    return EXIT_FAIL;
}

/* Sends a JSON body (borrowed) and returns the answer as call() does. */
static int call_json(const struct ctl *ctl, const char *method,
                     const char *path, const json_t *body, int timeout_ms,
                     json_t **out)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          NULL};
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rv;

    if (text == NULL)
        return fail("out of memory");
    rv = call(ctl, method, path, headers, text, strlen(text), timeout_ms, out);
    free(text);
    return rv;
}

/* Appends s percent-encoded (RFC 3986 unreserved and '/' kept). */
static int url_encode(struct ch_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rv = 0;

    for (; rv == 0 && *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
            ch == '~' || ch == '/') {
            rv = ch_buf_append(b, s, 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rv = ch_buf_append(b, esc, 3);
        }
    }
    return rv;
}

/* ---- argument checks ----------------------------------------------------- */

/* Parses a node id (≥ 1). */
static bool parse_id(const char *s, json_int_t *out)
{
    long long v;

    if (!ch_parse_i64(s, strlen(s), &v) || v < 1)
        return false;
    *out = (json_int_t)v;
    return true;
}

static bool valid_topic(const char *s)
{
    return ch_valid_topic(s, strlen(s));
}

/* ---- commands: cluster --------------------------------------------------- */

static const char *const MEMBER_HEADS[] = {"ID", "ROLE", "RAFT", "HTTP",
                                           "LEADER"};
static const char *const MEMBER_KEYS[] = {"id", "role", "raft", "http",
                                          "isLeader"};

/* Prints the members table of a /admin/cluster object. */
static void print_members(json_t *cluster)
{
    json_t *members = json_object_get(cluster, "members");
    json_int_t leader = obj_int(cluster, "leader", 0);
    json_t *copy;
    json_t *m;
    size_t i;

    if (!json_is_array(members)) {
        printf("(no members list)\n");
        return;
    }
    /* A copy with a marker column, so the server's objects stay as-is. */
    copy = json_deep_copy(members);
    if (copy == NULL) {
        print_table(members, 4, MEMBER_HEADS, MEMBER_KEYS);
        return;
    }
    json_array_foreach(copy, i, m)
    {
        if (json_is_object(m) &&
            json_object_set_new(
                m, "isLeader",
                json_string(obj_int(m, "id", -1) == leader ? "*" : "")) != 0)
            break;
    }
    print_table(copy, 5, MEMBER_HEADS, MEMBER_KEYS);
    json_decref(copy);
}

static int get_cluster(const struct ctl *ctl, json_t **out)
{
    int rv = call(ctl, "GET", "/admin/cluster", NULL, NULL, 0,
                  CTL_REQUEST_TIMEOUT_MS, out);

    if (rv == EXIT_OK && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return fail("GET /admin/cluster: answer is not a JSON object");
    }
    return rv;
}

/* Asks /admin/healthcheck; returns an owned object describing the health
 * (the server's object on 200, else {"status":"unavailable",...}). */
static json_t *get_health(const struct ctl *ctl)
{
    struct httpc_response r;
    json_t *j = NULL;
    int rv;

    httpc_response_init(&r);
    rv = httpc_request("GET", ctl->server, "/admin/healthcheck", NULL, NULL, 0,
                       CTL_CONNECT_TIMEOUT_MS, CTL_REQUEST_TIMEOUT_MS, &r);
    if (rv == 0)
        j = json_loadb(r.body.data != NULL ? r.body.data : "", r.body.len, 0,
                       NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    if (j != NULL && (rv != 0 || r.status != 200)) {
        const char *why = rv != 0 ? r.errmsg : obj_str(j, "error", NULL);
        /* Keep the server's fields, but make the verdict explicit. */
        if (json_object_set_new(j, "status", json_string("unavailable")) != 0 ||
            json_object_set_new(j, "httpStatus", json_integer(r.status)) != 0 ||
            (why != NULL && json_object_get(j, "error") == NULL &&
             json_object_set_new(j, "error", json_string(why)) != 0)) {
            json_decref(j);
            j = NULL;
        }
    }
    httpc_response_free(&r);
    return j;
}

static int cmd_status(const struct ctl *ctl)
{
    json_t *cluster = NULL;
    json_t *health;
    const json_t *leader;
    char buf[64];
    int rv;

    rv = get_cluster(ctl, &cluster);
    if (rv != EXIT_OK)
        return rv;
    health = get_health(ctl);
    if (health == NULL) {
        json_decref(cluster);
        return fail("out of memory");
    }
    if (ctl->is_json) {
        /* The /admin/cluster object plus the healthcheck answer. */
        if (json_object_set_new(cluster, "health", health) != 0) {
            json_decref(cluster);
            return fail("out of memory");
        }
        rv = print_json(cluster);
        json_decref(cluster);
        return rv;
    }
    leader = json_object_get(cluster, "leader");
    cell(cluster, "id", buf, sizeof(buf));
    printf("node      %s (%s)\n", buf, ctl->server);
    printf("state     %s\n", obj_str(cluster, "state", "-"));
    if (json_is_integer(leader))
        printf("leader    %" JSON_INTEGER_FORMAT "\n",
               json_integer_value(leader));
    else
        printf("leader    none\n");
    cell(cluster, "term", buf, sizeof(buf));
    printf("term      %s\n", buf);
    cell(cluster, "commitIndex", buf, sizeof(buf));
    printf("commit    %s\n", buf);
    cell(cluster, "appliedIndex", buf, sizeof(buf));
    printf("applied   %s\n", buf);
    if (json_integer_value(json_object_get(health, "httpStatus")) != 0 ||
        obj_str(health, "error", NULL) != NULL)
        printf("health    %s (%s)\n", obj_str(health, "status", "?"),
               obj_str(health, "error", "no detail"));
    else
        printf("health    %s\n", obj_str(health, "status", "ok"));
    printf("\n");
    print_members(cluster);
    json_decref(health);
    json_decref(cluster);
    return EXIT_OK;
}

static int cmd_members(const struct ctl *ctl)
{
    json_t *cluster = NULL;
    int rv;

    rv = get_cluster(ctl, &cluster);
    if (rv != EXIT_OK)
        return rv;
    if (ctl->is_json)
        rv = print_json(cluster);
    else
        print_members(cluster);
    json_decref(cluster);
    return rv;
}

static int cmd_join(const struct ctl *ctl)
{
    const char *role = ctl->role != NULL ? ctl->role : "voter";
    char host[256];
    char port[16];
    json_t *req;
    json_t *out = NULL;
    json_int_t id;
    int rv;

    if (!parse_id(ctl->pos[1], &id))
        return usage_error("bad node id '%s'", ctl->pos[1]);
    for (size_t i = 2; i <= 3; i++) {
        if (ch_hostport_split(ctl->pos[i], host, sizeof(host), port,
                              sizeof(port)) != 0)
            return usage_error("bad address '%s' (want HOST:PORT)",
                               ctl->pos[i]);
    }
    if (strcmp(role, "voter") != 0 && strcmp(role, "standby") != 0 &&
        strcmp(role, "spare") != 0)
        return usage_error("bad role '%s' (voter, standby or spare)", role);
    req = json_pack("{s:I, s:s, s:s, s:s}", "id", id, "raft", ctl->pos[2],
                    "http", ctl->pos[3], "role", role);
    if (req == NULL)
        return fail("out of memory");
    rv = call_json(ctl, "POST", "/admin/cluster/join", req,
                   CTL_MEMBERSHIP_TIMEOUT_MS, &out);
    json_decref(req);
    if (rv != EXIT_OK)
        return rv;
    if (ctl->is_json)
        rv = print_json(out);
    else
        printf("node %" JSON_INTEGER_FORMAT " joined as %s\n", id, role);
    json_decref(out);
    return rv;
}

static int cmd_leave(const struct ctl *ctl)
{
    json_t *req;
    json_t *out = NULL;
    json_int_t id;
    int rv;

    if (!parse_id(ctl->pos[1], &id))
        return usage_error("bad node id '%s'", ctl->pos[1]);
    req = json_pack("{s:I}", "id", id);
    if (req == NULL)
        return fail("out of memory");
    rv = call_json(ctl, "POST", "/admin/cluster/leave", req,
                   CTL_MEMBERSHIP_TIMEOUT_MS, &out);
    json_decref(req);
    if (rv != EXIT_OK)
        return rv;
    if (ctl->is_json)
        rv = print_json(out);
    else
        printf("node %" JSON_INTEGER_FORMAT " left\n", id);
    json_decref(out);
    return rv;
}

static int cmd_transfer(const struct ctl *ctl)
{
    json_t *req;
    json_t *out = NULL;
    json_int_t id = 0;
    json_int_t leader;
    int rv;

    if (ctl->n_pos > 1 && !parse_id(ctl->pos[1], &id))
        return usage_error("bad node id '%s'", ctl->pos[1]);
    req = id > 0 ? json_pack("{s:I}", "id", id) : json_object();
    if (req == NULL)
        return fail("out of memory");
    rv = call_json(ctl, "POST", "/admin/cluster/transfer", req,
                   CTL_MEMBERSHIP_TIMEOUT_MS, &out);
    json_decref(req);
    if (rv != EXIT_OK)
        return rv;
    if (ctl->is_json) {
        rv = print_json(out);
    } else {
        leader = obj_int(out, "leader", id);
        if (leader > 0)
            printf("leadership transferred to node %" JSON_INTEGER_FORMAT "\n",
                   leader);
        else
            printf("leadership transferred\n");
    }
    json_decref(out);
    return rv;
}

/* ---- commands: topics ---------------------------------------------------- */

static const char *const TOPIC_HEADS[] = {"PATH", "COUNT", "FIRST", "LAST",
                                          "BYTES"};
static const char *const TOPIC_KEYS[] = {"path", "count", "firstSequenceId",
                                         "lastSequenceId", "bytes"};

static int cmd_topics(const struct ctl *ctl)
{
    struct ch_buf path;
    json_t *out = NULL;
    json_t *topics;
    int rv;

    if (ctl->n_pos > 1 && !valid_topic(ctl->pos[1]))
        return usage_error("bad topic prefix '%s'", ctl->pos[1]);
    ch_buf_init(&path);
    if (ch_buf_printf(&path, "/admin/topics") != 0 ||
        (ctl->n_pos > 1 && (ch_buf_printf(&path, "?prefix=") != 0 ||
                            url_encode(&path, ctl->pos[1]) != 0))) {
        ch_buf_free(&path);
        return fail("out of memory");
    }
    rv = call(ctl, "GET", path.data, NULL, NULL, 0, CTL_REQUEST_TIMEOUT_MS,
              &out);
    ch_buf_free(&path);
    if (rv != EXIT_OK)
        return rv;
    topics = json_object_get(out, "topics");
    if (ctl->is_json) {
        rv = print_json(out);
    } else if (!json_is_array(topics)) {
        rv = fail("GET /admin/topics: answer has no \"topics\" array");
    } else {
        print_table(topics, 5, TOPIC_HEADS, TOPIC_KEYS);
    }
    json_decref(out);
    return rv;
}

static int cmd_topic(const struct ctl *ctl)
{
    struct ch_buf path;
    json_t *out = NULL;
    json_t *arr;
    int rv;

    if (!valid_topic(ctl->pos[1]))
        return usage_error("bad topic path '%s'", ctl->pos[1]);
    ch_buf_init(&path);
    /* The topic path goes after /admin/topics without doubling its '/'. */
    if (ch_buf_printf(&path, "/admin/topics") != 0 ||
        url_encode(&path, ctl->pos[1]) != 0) {
        ch_buf_free(&path);
        return fail("out of memory");
    }
    rv = call(ctl, "GET", path.data, NULL, NULL, 0, CTL_REQUEST_TIMEOUT_MS,
              &out);
    ch_buf_free(&path);
    if (rv != EXIT_OK)
        return rv;
    if (ctl->is_json) {
        rv = print_json(out);
    } else {
        arr = json_array();
        if (arr == NULL || json_array_append(arr, out) != 0)
            rv = fail("out of memory");
        else
            print_table(arr, 5, TOPIC_HEADS, TOPIC_KEYS);
        json_decref(arr);
    }
    json_decref(out);
    return rv;
}

/* ---- publish ------------------------------------------------------------- */

/* Reads all of stdin into b, up to CTL_MAX_MSG_BYTES. */
static int read_stdin(struct ch_buf *b)
{
    size_t n;

    for (;;) {
        if (ch_buf_reserve(b, 65536) != 0)
            return fail("out of memory");
        n = fread(b->data + b->len, 1, 65536, stdin);
        b->len += n;
        b->data[b->len] = '\0';
        if (b->len > CTL_MAX_MSG_BYTES)
            return fail("body on stdin is over %d bytes", CTL_MAX_MSG_BYTES);
        if (n == 0) {
            if (ferror(stdin))
                return fail("cannot read stdin: %s", strerror(errno));
            return EXIT_OK;
        }
    }
}

/* True for an HTTP header name token (RFC 9110 §5.6.2), no ':'. */
static bool valid_header_name(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || strchr(extra, ch) != NULL))
            return false;
    }
    return true;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ch_free(lines[i]);
}

static int cmd_publish(const struct ctl *ctl)
{
    const char *path = ctl->pos[1];
    const char *arg = ctl->n_pos > 2 ? ctl->pos[2] : "-";
    char *lines[CTL_MAX_HEADERS + 1];
    size_t n_lines = 0;
    struct ch_buf url;
    struct ch_buf body;
    json_t *out = NULL;
    const void *data;
    size_t data_n;
    int rv;

    if (!valid_topic(path))
        return usage_error("bad topic path '%s'", path);
    if (ctl->msg_id != NULL && !ch_valid_id(ctl->msg_id, strlen(ctl->msg_id)))
        return usage_error("bad message id '%s' (1-128 of A-Za-z0-9._:-)",
                           ctl->msg_id);
    for (size_t i = 0; i < ctl->n_headers; i++) {
        const char *h = ctl->headers[i];
        const char *eq = strchr(h, '=');
        if (eq == NULL || !valid_header_name(h, (size_t)(eq - h)) ||
            strpbrk(eq + 1, "\r\n") != NULL)
            return usage_error("bad header '%s' (want NAME=VALUE)", h);
    }
    for (size_t i = 0; i < ctl->n_headers; i++) {
        const char *h = ctl->headers[i];
        const char *eq = strchr(h, '=');
        struct ch_buf line;

        ch_buf_init(&line);
        if (ch_buf_printf(&line, "X-Guble-%.*s: %s", (int)(eq - h), h,
                          eq + 1) != 0) {
            free_lines(lines, n_lines);
            return fail("out of memory");
        }
        lines[n_lines++] = ch_buf_steal(&line, NULL);
    }
    lines[n_lines] = NULL;

    ch_buf_init(&body);
    if (strcmp(arg, "-") == 0) {
        rv = read_stdin(&body);
        if (rv != EXIT_OK)
            goto out_after_lines;
        data = body.data != NULL ? body.data : "";
        data_n = body.len;
    } else {
        data = arg;
        data_n = strlen(arg);
    }

    ch_buf_init(&url);
    if (ch_buf_printf(&url, "/api/message") != 0 ||
        url_encode(&url, path) != 0 ||
        ch_buf_printf(&url, "?userId=%s", CTL_USER_ID) != 0 ||
        (ctl->msg_id != NULL &&
         ch_buf_printf(&url, "&messageId=%s", ctl->msg_id) != 0)) {
        rv = fail("out of memory");
        goto out_after_url;
    }
    rv = call(ctl, "POST", url.data, (const char *const *)lines, data, data_n,
              CTL_REQUEST_TIMEOUT_MS, &out);
    if (rv != EXIT_OK)
        goto out_after_url;
    if (ctl->is_json)
        rv = print_json(out);
    else if (json_is_integer(json_object_get(out, "sequenceId")))
        printf("sequenceId %" JSON_INTEGER_FORMAT "\n",
               obj_int(out, "sequenceId", 0));
    else
        rv = print_json(out);
    json_decref(out);

out_after_url:
    ch_buf_free(&url);
out_after_lines:
    ch_buf_free(&body);
    free_lines(lines, n_lines);
    return rv;
}

/* ---- tail ---------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* Installs on_signal for SIGINT and SIGTERM without SA_RESTART, so a wait
 * in poll(2) returns early. */
static int install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0)
        return fail("cannot install signal handlers: %s", strerror(errno));
    return EXIT_OK;
}

/* One server message split into its parts (pointers into the frame). */
struct tail_msg {
    const char *path;
    size_t path_n;
    long long seq;
    const char *user, *app, *msg_id;
    size_t user_n, app_n, msg_id_n;
    long long time;
    const char *header;
    size_t header_n;
    const char *body;
    size_t body_n;
};

/* Splits "<path>,<seq>,<user>,<app>,<msgid>,<time>\n<header>\n<body>".
 * Returns false when the frame is not a message. */
static bool parse_message(const char *data, size_t n, struct tail_msg *m)
{
    const char *nl1 = memchr(data, '\n', n);
    const char *nl2;
    const char *field[6];
    size_t field_n[6];
    const char *p = data;
    size_t k = 0;

    if (nl1 == NULL)
        return false;
    /* First line: six comma-separated fields; ids never contain commas. */
    while (k < 6) {
        const char *end = k < 5 ? memchr(p, ',', (size_t)(nl1 - p)) : nl1;
        if (end == NULL)
            return false;
        field[k] = p;
        field_n[k] = (size_t)(end - p);
        k++;
        p = end + 1;
    }
    if (!ch_parse_i64(field[1], field_n[1], &m->seq) ||
        !ch_parse_i64(field[5], field_n[5], &m->time))
        return false;
    m->path = field[0];
    m->path_n = field_n[0];
    m->user = field[2];
    m->user_n = field_n[2];
    m->app = field[3];
    m->app_n = field_n[3];
    m->msg_id = field[4];
    m->msg_id_n = field_n[4];
    nl2 = memchr(nl1 + 1, '\n', (size_t)(data + n - (nl1 + 1)));
    m->header = nl1 + 1;
    if (nl2 == NULL) {
        m->header_n = (size_t)(data + n - m->header);
        m->body = data + n;
        m->body_n = 0;
    } else {
        m->header_n = (size_t)(nl2 - m->header);
        m->body = nl2 + 1;
        m->body_n = (size_t)(data + n - m->body);
    }
    return true;
}

/* Builds the JSON line of a message, in the REST replay's shape
 * (docs/protocol.md "HTTP API"). */
static json_t *message_json(const struct tail_msg *m)
{
    json_t *o;
    json_t *headers = NULL;
    json_t *body;
    char *b64;

    if (m->header_n > 0)
        headers = json_loadb(m->header, m->header_n, 0, NULL);
    if (headers == NULL)
        headers = m->header_n > 0 ? json_stringn(m->header, m->header_n)
                                  : json_object();
    o = json_pack("{s:s%, s:I, s:s%, s:s%, s:s%, s:I, s:o*}", "path", m->path,
                  m->path_n, "sequenceId", (json_int_t)m->seq, "userId",
                  m->user, m->user_n, "applicationId", m->app, m->app_n,
                  "messageId", m->msg_id, m->msg_id_n, "time",
                  (json_int_t)m->time, "headers", headers);
    if (o == NULL)
        return NULL;
    body = json_stringn(m->body, m->body_n);
    if (body != NULL) {
        if (json_object_set_new(o, "body", body) != 0)
            goto err;
        return o;
    }
    /* Not UTF-8: base64, as the REST API does. */
    b64 = ch_malloc(4 * ((m->body_n + 2) / 3) + 1);
    if (b64 == NULL)
        goto err;
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)m->body,
                    (int)m->body_n);
    if (json_object_set_new(o, "bodyBase64", json_string(b64)) != 0) {
        ch_free(b64);
        goto err;
    }
    ch_free(b64);
    return o;

err:
    json_decref(o);
    return NULL;
}

/* Prints one message; returns EXIT_OK or EXIT_FAIL. */
static int print_message(const struct ctl *ctl, const struct tail_msg *m)
{
    json_t *o;
    int rv = EXIT_OK;

    if (ctl->is_json) {
        o = message_json(m);
        if (o == NULL)
            return fail("out of memory");
        rv = print_json(o);
        json_decref(o);
    } else {
        /* Subtopic messages carry their path; the tailed topic's do not. */
        if (m->path_n != strlen(ctl->pos[1]) ||
            memcmp(m->path, ctl->pos[1], m->path_n) != 0)
            printf("%.*s ", (int)m->path_n, m->path);
        printf("%lld ", m->seq);
        print_escaped(stdout, m->body, m->body_n);
        putchar('\n');
    }
    if (fflush(stdout) != 0)
        return fail("cannot write to stdout: %s", strerror(errno));
    return rv;
}

/* Prints the first line of a server frame as an error. */
static int report_frame_error(const char *data, size_t n)
{
    const char *nl = memchr(data, '\n', n);
    size_t len = nl != NULL ? (size_t)(nl - data) : n;

    if (len > 300)
        len = 300;
    return fail("server: %.*s", (int)len, data);
}

static int cmd_tail(const struct ctl *ctl)
{
    const char *path = ctl->pos[1];
    long long from = -1;
    long long last = 0;
    long long max = 0;
    long long n_printed = 0;
    struct ch_wsc *ws = NULL;
    struct tail_msg m;
    char cmd[CH_MAX_TOPIC_BYTES + 64];
    bool is_binary;
    char *data;
    size_t n;
    int rv;

    if (!valid_topic(path))
        return usage_error("bad topic path '%s'", path);
    if ((ctl->seen & OPT_FROM) && (ctl->seen & OPT_LAST))
        return usage_error("--from and --last exclude each other");
    if (ctl->from != NULL &&
        (!ch_parse_i64(ctl->from, strlen(ctl->from), &from) || from < 0))
        return usage_error("bad --from '%s' (want N >= 0)", ctl->from);
    if (ctl->last != NULL &&
        (!ch_parse_i64(ctl->last, strlen(ctl->last), &last) || last < 0))
        return usage_error("bad --last '%s' (want N >= 0)", ctl->last);
    if (ctl->max != NULL &&
        (!ch_parse_i64(ctl->max, strlen(ctl->max), &max) || max < 1))
        return usage_error("bad -n '%s' (want MAX >= 1)", ctl->max);

    /* docs/protocol.md: no startId = live only; startId >= 0 = stored from it,
     * then live; -N = the last N, then live. The maxCount form is not used for
     * -n: it stops after the replay, and -n must also count live ones. */
    if (from >= 0)
        snprintf(cmd, sizeof(cmd), "+ %s %lld", path, from);
    else if (last > 0)
        snprintf(cmd, sizeof(cmd), "+ %s -%lld", path, last);
    else
        snprintf(cmd, sizeof(cmd), "+ %s", path);

    rv = install_signals();
    if (rv != EXIT_OK)
        return rv;
    if (ch_wsc_create(CTL_MAX_MSG_BYTES, &ws) != 0)
        return fail("out of memory");
    rv = ch_wsc_connect(ws, ctl->server, "/stream/user/" CTL_USER_ID,
                        CTL_CONNECT_TIMEOUT_MS);
    if (rv != 0) {
        if (rv == CH_ECONNECT || rv == CH_EINVAL)
            rv = fail("%s", ch_wsc_errmsg(ws));
        else
            rv = fail("%s: %s", ctl->server, ch_wsc_errmsg(ws));
        goto out;
    }
    rv = ch_wsc_send(ws, false, cmd, strlen(cmd), CTL_REQUEST_TIMEOUT_MS);
    if (rv != 0) {
        rv = fail("%s: %s", ctl->server, ch_wsc_errmsg(ws));
        goto out;
    }
    while (max == 0 || n_printed < max) {
        if (g_interrupted) {
            rv = EXIT_OK;
            goto out;
        }
        rv = ch_wsc_recv(ws, CTL_TAIL_POLL_MS, &is_binary, &data, &n);
        if (rv == CH_ETIMEDOUT)
            continue;
        if (rv != 0) {
            rv = fail("%s: %s", ctl->server, ch_wsc_errmsg(ws));
            goto out;
        }
        if (n > 0 && data[0] == '#') {
            /* Status: #connected, #fetch-start, #fetch-done,
             * #subscribed-to; nothing to print. */
            rv = EXIT_OK;
        } else if (n > 0 && data[0] == '!') {
            rv = report_frame_error(data, n);
        } else if (parse_message(data, n, &m)) {
            rv = print_message(ctl, &m);
            n_printed++;
        } else {
            rv = report_frame_error(data, n);
        }
        ch_free(data);
        if (rv != EXIT_OK)
            goto out;
    }
    rv = EXIT_OK;

out:
    ch_wsc_destroy(ws);
    return rv;
}

/* ---- command line -------------------------------------------------------- */

static const struct ctl_cmd COMMANDS[] = {
    {"status", 0, 0, 0, cmd_status},
    {"members", 0, 0, 0, cmd_members},
    {"join", 3, 3, OPT_ROLE, cmd_join},
    {"leave", 1, 1, 0, cmd_leave},
    {"transfer", 0, 1, 0, cmd_transfer},
    {"topics", 0, 1, 0, cmd_topics},
    {"topic", 1, 1, 0, cmd_topic},
    {"publish", 1, 2, OPT_ID | OPT_HEADER, cmd_publish},
    {"tail", 1, 1, OPT_FROM | OPT_LAST | OPT_MAX, cmd_tail},
};

static const char *opt_name(unsigned bit)
{
    switch (bit) {
    case OPT_ROLE:
        return "--role";
    case OPT_ID:
        return "--id";
    case OPT_HEADER:
        return "--header";
    case OPT_FROM:
        return "--from";
    case OPT_LAST:
        return "--last";
    case OPT_MAX:
        return "-n";
    default:
        return "?";
    }
}

/* Result of parsing argv: run, exit with a code, or print help. */
enum parse_result { PARSE_RUN, PARSE_HELP, PARSE_USAGE };

static enum parse_result parse_args(int argc, char **argv, struct ctl *ctl)
{
    bool is_opts_done = false;
    const char *env = getenv("CHORUS_SERVER");

    memset(ctl, 0, sizeof(*ctl));
    ctl->server = env != NULL && env[0] != '\0' ? env : CTL_DEFAULT_SERVER;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        unsigned bit = 0;

        if (is_opts_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (ctl->n_pos == CTL_MAX_POS) {
                usage_error("too many arguments");
                return PARSE_USAGE;
            }
            ctl->pos[ctl->n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            is_opts_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return PARSE_HELP;
        if (strcmp(a, "--json") == 0) {
            ctl->is_json = true;
            continue;
        }
        if (strncmp(a, "--server=", 9) == 0) {
            ctl->server = a + 9;
            continue;
        }
        if (strcmp(a, "-s") == 0 || strcmp(a, "--server") == 0) {
            slot = &ctl->server;
        } else if (strcmp(a, "--role") == 0) {
            slot = &ctl->role;
            bit = OPT_ROLE;
        } else if (strcmp(a, "--id") == 0) {
            slot = &ctl->msg_id;
            bit = OPT_ID;
        } else if (strcmp(a, "--from") == 0) {
            slot = &ctl->from;
            bit = OPT_FROM;
        } else if (strcmp(a, "--last") == 0) {
            slot = &ctl->last;
            bit = OPT_LAST;
        } else if (strcmp(a, "-n") == 0) {
            slot = &ctl->max;
            bit = OPT_MAX;
        } else if (strcmp(a, "--header") == 0 || strcmp(a, "-H") == 0) {
            bit = OPT_HEADER;
        } else {
            usage_error("unknown option '%s'", a);
            return PARSE_USAGE;
        }
        if (i + 1 >= argc) {
            usage_error("option %s needs a value", a);
            return PARSE_USAGE;
        }
        i++;
        ctl->seen |= bit;
        if (bit == OPT_HEADER) {
            if (ctl->n_headers == CTL_MAX_HEADERS) {
                usage_error("more than %d headers", CTL_MAX_HEADERS);
                return PARSE_USAGE;
            }
            ctl->headers[ctl->n_headers++] = argv[i];
        } else {
            *slot = argv[i];
        }
    }
    return PARSE_RUN;
}

int main(int argc, char **argv)
{
    const struct ctl_cmd *cmd = NULL;
    struct ctl ctl;
    size_t n_args;
    char host[256];
    char port[16];

    switch (parse_args(argc, argv, &ctl)) {
    case PARSE_HELP:
        fputs(USAGE_TEXT, stdout);
        return EXIT_OK;
    case PARSE_USAGE:
        return EXIT_USAGE;
    case PARSE_RUN:
        break;
    }
    if (ctl.n_pos == 0)
        return usage_error("no command given");
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        if (strcmp(ctl.pos[0], COMMANDS[i].name) == 0)
            cmd = &COMMANDS[i];
    }
    if (cmd == NULL)
        return usage_error("unknown command '%s'", ctl.pos[0]);
    n_args = ctl.n_pos - 1;
    if (n_args < cmd->min_args)
        return usage_error("%s: missing arguments", cmd->name);
    if (n_args > cmd->max_args)
        return usage_error("%s: too many arguments", cmd->name);
    for (unsigned bit = 1; bit <= OPT_MAX; bit <<= 1) {
        if ((ctl.seen & bit) && !(cmd->opts & bit))
            return usage_error("%s: option %s does not apply", cmd->name,
                               opt_name(bit));
    }
    if (ch_hostport_split(ctl.server, host, sizeof(host), port, sizeof(port)) !=
        0)
        return usage_error("bad server address '%s' (want HOST:PORT)",
                           ctl.server);
    /* A closed pipe (e.g. `| head`) should end us quietly with an error
     * from fflush rather than kill us mid-line. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return fail("cannot ignore SIGPIPE: %s", strerror(errno));
    return cmd->run(&ctl);
}
