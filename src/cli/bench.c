/* chorus-bench: load generator (docs/benchmarks.md). Many WebSocket
 * clients in one libuv loop speak the real protocol (docs/protocol.md),
 * each a client end of common/wsconn.h (the project's one client stack,
 * shared with the node link and chorusctl). Modes:
 * pub (pipelined publishes, ack latency), sync (window 1), replay (full
 * history read rate), fanout (N live subscribers, deliveries/s) and e2e
 * (publish-to-delivery latency). Every run is bounded by --timeout. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/net.h"
#include "common/validate.h"
#include "common/wsconn.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define BENCH_DEFAULT_SERVER "127.0.0.1:8080"
#define BENCH_USER_PATH "/stream/user/bench"
/* Framed bytes handed to one socket write of a connection. */
#define BENCH_WRITE_BYTES (1024 * 1024)
/* Bounds on options. */
#define BENCH_MAX_SERVERS 16
#define BENCH_MAX_COUNT 50000000ULL
#define BENCH_MAX_CONNS 10000
#define BENCH_MAX_WINDOW CH_MAX_UNANSWERED_PUBLISHES
#define BENCH_MAX_SIZE (64 * 1024 * 1024)
/* e2e bodies start with the message index in this many digits (the most
 * ch_parse_i64 takes). */
#define BENCH_IDX_DIGITS 19

enum bench_mode { MODE_PUB, MODE_SYNC, MODE_REPLAY, MODE_FANOUT, MODE_E2E };

static const char *const MODE_NAMES[] = {"pub", "sync", "replay", "fanout",
                                         "e2e"};

enum conn_role { ROLE_PUB, ROLE_SUB, ROLE_REPLAY };

enum bench_phase {
    PHASE_CONNECT, /* connecting the clients of the current step */
    PHASE_RUN,     /* publishing / reading */
    PHASE_DONE,    /* finished or failed; handles are closing */
};

struct bench_opts {
    enum bench_mode mode;
    const char *servers[BENCH_MAX_SERVERS]; /* borrowed from argv */
    size_t n_servers;
    char *servers_copy; /* owned copy of the -s list, split in place */
    unsigned n_publishers;
    unsigned n_subscribers;
    size_t size_bytes; /* body bytes */
    unsigned window;   /* unanswered publishes per publisher */
    uint64_t count;    /* publishes in total */
    const char *topic;
    unsigned timeout_s;
    unsigned hold_s; /* keep the clients connected this long at the end */
    bool is_json;
    bool is_fill; /* replay: publish --count messages first */
};

struct bench;

/* One client. Owned by bench.conns until the end of the run; its
 * connection is closed (ws NULL) when its step ends or the run fails. */
struct conn {
    struct bench *b;
    struct ch_wsconn *ws; /* NULL once closed */
    enum conn_role role;
    unsigned idx;         /* index in its role */
    const char *hostport; /* borrowed from opts */
    bool is_ready;        /* "#connected" received */
    /* publisher */
    uint64_t quota; /* publishes this client makes */
    uint64_t n_sent;
    uint64_t n_answered;
    uint64_t *sent_ns; /* owned ring of send times, window long */
    /* subscriber / replay */
    bool is_subscribed;  /* "#subscribed-to" received */
    uint64_t n_received; /* messages received */
    uint64_t n_expected; /* replay: from "#fetch-start" */
    bool has_fetch_start;
};

struct bench {
    const struct bench_opts *o;
    uv_loop_t *loop;
    struct sockaddr_storage addrs[BENCH_MAX_SERVERS]; /* resolved -s list */
    uv_timer_t timeout_timer;
    uv_timer_t progress_timer;
    uv_signal_t sigint;
    bool has_handles; /* the three handles above are inited */
    enum bench_phase phase;
    bool is_failed;
    char errmsg[CH_ERRMSG_SIZE];
    struct conn **conns; /* owned array of owned clients */
    size_t n_conns;
    size_t cap_conns;
    size_t n_ready; /* clients with "#connected" this step */
    size_t n_step;  /* clients started this step */
    size_t n_subscribed;
    bool is_filling; /* replay: in the fill step */
    bool is_holding; /* measured; clients kept open for --hold */
    /* publishing */
    char *frame; /* owned publish frame (non-e2e) */
    size_t frame_n;
    size_t frame_head_n; /* "> /topic\n\n" bytes */
    uint64_t n_sent;
    uint64_t n_answered; /* acks + errors, all publishers of this step */
    uint64_t n_acked;
    uint64_t n_errors;
    char first_error[160];
    uint32_t *ack_us; /* owned ack latency samples */
    uint64_t n_ack_samples;
    uint64_t *e2e_sent_ns; /* owned: e2e send time per index */
    uint32_t *e2e_us;      /* owned e2e latency samples */
    uint64_t n_e2e_samples;
    /* receiving */
    uint64_t n_delivered; /* fanout/e2e/replay messages received */
    uint64_t bytes_delivered;
    uint64_t t_start_ns; /* start of the measured phase */
    uint64_t t_end_ns;   /* end of the measured phase */
    uint64_t t_last_progress_ns;
    uint64_t last_progress_n;
    json_t *fill_result; /* replay: result of the fill step */
    /* The clients' shared read buffer and mask bytes (10,000 clients with
     * a 64 KiB buffer each was 640 MB). */
    struct ch_wsctx wsctx;
};

static void bench_fail(struct bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bench_finish(struct bench *b);
static int conn_start(struct bench *b, enum conn_role role, unsigned idx,
                      uint64_t quota);
static void step_started(struct bench *b);
static void start_reader(struct bench *b);

/* ---- connections --------------------------------------------------------- */

static bool conn_is_open(const struct conn *c)
{
    return c->ws != NULL;
}

static void conn_close(struct conn *c)
{
    if (c->ws == NULL)
        return;
    ch_wsconn_close(c->ws);
    c->ws = NULL;
}

/* Queues one text message (copied). */
static int conn_queue(struct conn *c, const char *data, size_t n)
{
    int rv = ch_wsconn_send(c->ws, false, data, n);

    if (rv != 0) {
        bench_fail(c->b, "cannot send to %s: %s", c->hostport, ch_strerror(rv));
        return rv;
    }
    return 0;
}

/* ---- publishing ---------------------------------------------------------- */

/* Queues publishes while the window has room. */
static void pub_fill(struct conn *c)
{
    struct bench *b = c->b;
    const struct bench_opts *o = b->o;
    char *e2e = NULL;
    uint64_t now;

    while (conn_is_open(c) && c->n_sent < c->quota &&
           c->n_sent - c->n_answered < o->window) {
        now = uv_hrtime();
        if (b->e2e_sent_ns != NULL) {
            /* e2e: the body starts with the global index of the message. */
            uint64_t idx = b->n_sent;
            e2e = b->frame + b->frame_head_n;
            snprintf(e2e, BENCH_IDX_DIGITS + 1, "%0*llu", BENCH_IDX_DIGITS,
                     (unsigned long long)idx);
            e2e[BENCH_IDX_DIGITS] = ' ';
            b->e2e_sent_ns[idx] = now;
        }
        if (conn_queue(c, b->frame, b->frame_n) != 0)
            return;
        c->sent_ns[c->n_sent % o->window] = now;
        c->n_sent++;
        b->n_sent++;
    }
}

/* Records the answer to the oldest unanswered publish of c. */
static void pub_answered(struct conn *c, bool is_ok, const char *text, size_t n)
{
    struct bench *b = c->b;
    uint64_t now = uv_hrtime();
    uint64_t lat_ns;

    if (c->n_answered >= c->n_sent) {
        bench_fail(b, "%s answered a publish that was not sent", c->hostport);
        return;
    }
    lat_ns = now - c->sent_ns[c->n_answered % b->o->window];
    c->n_answered++;
    b->n_answered++;
    if (is_ok) {
        b->n_acked++;
        b->ack_us[b->n_ack_samples++] =
            lat_ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(lat_ns / 1000);
    } else {
        b->n_errors++;
        if (b->first_error[0] == '\0') {
            const char *nl = memchr(text, '\n', n);
            size_t len = nl != NULL ? (size_t)(nl - text) : n;
            snprintf(b->first_error, sizeof(b->first_error), "%.*s", (int)len,
                     text);
        }
    }
    b->t_end_ns = now;
}

/* True when every publisher of the step got all its answers. */
static bool pubs_done(const struct bench *b)
{
    /* The publishers' quotas add up to --count and none answers more than
     * it sent, so the total tells. (A scan of every connection here, after
     * each answer and delivery, made a 10,000-client run quadratic.) */
    return b->n_answered >= b->o->count;
}

/* True when every subscriber got one message per acknowledged publish. */
static bool subs_done(const struct bench *b)
{
    if (b->n_delivered < b->n_acked * b->o->n_subscribers)
        return false;
    for (size_t i = 0; i < b->n_conns; i++) {
        const struct conn *c = b->conns[i];
        if (c->role == ROLE_SUB && c->n_received < b->n_acked)
            return false;
    }
    return true;
}

/* Called after answers and deliveries: moves the run on when done. */
static void check_progress(struct bench *b)
{
    enum bench_mode mode = b->o->mode;

    if (b->phase != PHASE_RUN)
        return;
    if (mode == MODE_REPLAY && b->is_filling) {
        if (!pubs_done(b))
            return;
        /* Fill done: close the publishers, then read it all back. */
        start_reader(b);
        return;
    }
    if (mode == MODE_PUB || mode == MODE_SYNC) {
        if (pubs_done(b))
            bench_finish(b);
        return;
    }
    if (mode == MODE_FANOUT || mode == MODE_E2E) {
        if (pubs_done(b) && subs_done(b))
            bench_finish(b);
    }
}

/* ---- messages from the server -------------------------------------------- */

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);

    return n >= pn && memcmp(s, prefix, pn) == 0;
}

/* True when the frame is status `word` ("#send", ...): the word followed by
 * ' ', '\n' or the end (an empty publisher id may leave no space). */
static bool is_status(const char *s, size_t n, const char *word)
{
    size_t wn = strlen(word);

    return has_prefix(s, n, word) && (n == wn || s[wn] == ' ' || s[wn] == '\n');
}

/* The client got "#connected": count it; start the step when all are. */
static void on_ready(struct conn *c)
{
    struct bench *b = c->b;
    char cmd[CH_MAX_TOPIC_BYTES + 32];

    if (c->is_ready)
        return;
    c->is_ready = true;
    if (c->role == ROLE_SUB) {
        snprintf(cmd, sizeof(cmd), "+ %s", b->o->topic);
        if (conn_queue(c, cmd, strlen(cmd)) != 0)
            return;
    }
    b->n_ready++;
    step_started(b);
}

/* A message (not a status line) arrived on c. */
static void on_delivery(struct conn *c, const char *data, size_t n)
{
    struct bench *b = c->b;
    const char *nl1 = memchr(data, '\n', n);
    const char *body = NULL;
    uint64_t now = uv_hrtime();

    c->n_received++;
    b->n_delivered++;
    b->bytes_delivered += n;
    b->t_end_ns = now;
    if (c->role == ROLE_REPLAY)
        return;
    if (b->e2e_us != NULL && nl1 != NULL) {
        const char *nl2 = memchr(nl1 + 1, '\n', (size_t)(data + n - nl1 - 1));
        long long idx;

        if (nl2 != NULL)
            body = nl2 + 1;
        if (body != NULL && (size_t)(data + n - body) >= BENCH_IDX_DIGITS &&
            ch_parse_i64(body, BENCH_IDX_DIGITS, &idx) && idx >= 0 &&
            (uint64_t)idx < b->o->count &&
            b->n_e2e_samples < b->o->count * b->o->n_subscribers) {
            uint64_t lat = now - b->e2e_sent_ns[idx];
            b->e2e_us[b->n_e2e_samples++] =
                lat / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(lat / 1000);
        }
    }
    check_progress(b);
}

static void on_replay_status(struct conn *c, const char *data, size_t n)
{
    struct bench *b = c->b;

    if (has_prefix(data, n, "#fetch-start ")) {
        /* "#fetch-start <path> <count>" */
        const char *sp = memchr(data + 13, ' ', n - 13);
        long long v;

        if (sp == NULL ||
            !ch_parse_i64(sp + 1, (size_t)(data + n - sp - 1), &v) || v < 0) {
            bench_fail(b, "bad fetch-start from %s", c->hostport);
            return;
        }
        if (!c->has_fetch_start)
            c->n_expected = (uint64_t)v;
        c->has_fetch_start = true;
    } else if (is_status(data, n, "#fetch-done")) {
        if (c->has_fetch_start && c->n_received >= c->n_expected &&
            b->phase == PHASE_RUN) {
            b->t_end_ns = uv_hrtime();
            bench_finish(b);
        }
    }
}

static void on_message(struct ch_wsconn *ws, bool is_binary, const char *data,
                       size_t n)
{
    struct conn *c = ch_wsconn_data(ws);

    (void)is_binary;
    if (c->b->phase == PHASE_DONE)
        return;
    if (n > 0 && data[0] == '#') {
        if (is_status(data, n, "#connected")) {
            on_ready(c);
        } else if (is_status(data, n, "#send")) {
            if (c->role == ROLE_PUB) {
                pub_answered(c, true, data, n);
                pub_fill(c);
                check_progress(c->b);
            }
        } else if (is_status(data, n, "#subscribed-to")) {
            if (c->role == ROLE_SUB && !c->is_subscribed) {
                c->is_subscribed = true;
                c->b->n_subscribed++;
                step_started(c->b);
            }
        } else if (c->role == ROLE_REPLAY) {
            on_replay_status(c, data, n);
        }
        return;
    }
    if (is_status(data, n, "!error-send")) {
        if (c->role == ROLE_PUB) {
            pub_answered(c, false, data, n);
            pub_fill(c);
            check_progress(c->b);
        }
        return;
    }
    if (n > 0 && data[0] == '!') {
        const char *nl = memchr(data, '\n', n);
        bench_fail(c->b, "%s: %.*s", c->hostport,
                   (int)(nl != NULL ? (size_t)(nl - data) : n), data);
        return;
    }
    on_delivery(c, data, n);
}

/* ---- connection set-up --------------------------------------------------- */

static void on_closed(struct ch_wsconn *ws, int status, const char *why)
{
    struct conn *c = ch_wsconn_data(ws);

    (void)status;
    c->ws = NULL; /* freed by wsconn */
    bench_fail(c->b, "%s", why);
}

static const struct ch_wsconn_cbs conn_cbs = {
    .message = on_message,
    .closed = on_closed,
};

/* Creates and connects one client. Returns 0 or a CH_E* code (the run is
 * failed with a message). */
static int conn_start(struct bench *b, enum conn_role role, unsigned idx,
                      uint64_t quota)
{
    size_t server = b->n_conns % b->o->n_servers;
    struct ch_wsconn_config cfg = {
        .max_msg_bytes = b->o->size_bytes + CH_FRAME_SLACK_BYTES,
        .max_write_bytes = BENCH_WRITE_BYTES,
    };
    struct conn *c;
    int rv;

    if (cfg.max_msg_bytes < CH_DEFAULT_MAX_MESSAGE_BYTES + CH_FRAME_SLACK_BYTES)
        cfg.max_msg_bytes = CH_DEFAULT_MAX_MESSAGE_BYTES + CH_FRAME_SLACK_BYTES;
    if (b->n_conns == b->cap_conns) {
        size_t cap = b->cap_conns ? b->cap_conns * 2 : 16;
        struct conn **p = ch_realloc(b->conns, cap * sizeof(*p));
        if (p == NULL)
            goto err_nomem;
        b->conns = p;
        b->cap_conns = cap;
    }
    c = ch_calloc(1, sizeof(*c));
    if (c == NULL)
        goto err_nomem;
    c->b = b;
    c->role = role;
    c->idx = idx;
    c->quota = quota;
    c->hostport = b->o->servers[server];
    if (role == ROLE_PUB) {
        c->sent_ns = ch_calloc(b->o->window, sizeof(*c->sent_ns));
        if (c->sent_ns == NULL) {
            ch_free(c);
            goto err_nomem;
        }
    }
    b->conns[b->n_conns++] = c;
    b->n_step++;
    rv = ch_wsconn_connect(&b->wsctx, c->hostport,
                           (const struct sockaddr *)&b->addrs[server],
                           BENCH_USER_PATH, &cfg, &conn_cbs, c, &c->ws);
    if (rv != 0) {
        c->ws = NULL;
        bench_fail(b, "cannot connect to %s: %s", c->hostport, ch_strerror(rv));
        return rv;
    }
    return 0;

err_nomem:
    bench_fail(b, "out of memory");
    return CH_ENOMEM;
}

/* ---- steps ----------------------------------------------------------------
 */

/* Starts the publishers of the current step (all connected by now). */
static void start_publishing(struct bench *b)
{
    b->phase = PHASE_RUN;
    b->t_start_ns = uv_hrtime();
    b->t_end_ns = b->t_start_ns;
    b->t_last_progress_ns = b->t_start_ns;
    b->last_progress_n = 0;
    for (size_t i = 0; i < b->n_conns && b->phase == PHASE_RUN; i++) {
        struct conn *c = b->conns[i];
        if (c->role == ROLE_PUB && conn_is_open(c))
            pub_fill(c);
    }
    check_progress(b);
}

/* Called when a client of the step became ready or subscribed. */
static void step_started(struct bench *b)
{
    enum bench_mode mode = b->o->mode;
    char cmd[CH_MAX_TOPIC_BYTES + 32];

    if (b->phase != PHASE_CONNECT || b->n_ready < b->n_step)
        return;
    if ((mode == MODE_FANOUT || mode == MODE_E2E) &&
        b->n_subscribed < b->o->n_subscribers)
        return;
    if (mode == MODE_REPLAY && !b->is_filling) {
        /* The reader is connected: ask for the whole history. */
        for (size_t i = 0; i < b->n_conns; i++) {
            struct conn *c = b->conns[i];
            if (c->role != ROLE_REPLAY || !conn_is_open(c))
                continue;
            snprintf(cmd, sizeof(cmd), "+ %s 0", b->o->topic);
            b->phase = PHASE_RUN;
            b->t_start_ns = uv_hrtime();
            b->t_end_ns = b->t_start_ns;
            b->t_last_progress_ns = b->t_start_ns;
            (void)conn_queue(c, cmd, strlen(cmd)); /* fails the run */
        }
        return;
    }
    start_publishing(b);
}

/* Connects the publishers, splitting count between them. */
static int start_publishers(struct bench *b, unsigned n_pubs)
{
    uint64_t each = b->o->count / n_pubs;
    uint64_t extra = b->o->count % n_pubs;

    for (unsigned i = 0; i < n_pubs; i++) {
        int rv = conn_start(b, ROLE_PUB, i, each + (i < extra ? 1 : 0));
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- results ------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Latency summary in ms of n samples (µs), sorted in place. */
static json_t *latency_json(uint32_t *us, uint64_t n)
{
    static const double qs[] = {0.5, 0.99, 0.999};
    static const char *const names[] = {"p50", "p99", "p999"};
    double sum = 0;
    json_t *o;

    if (n == 0)
        return json_null();
    qsort(us, (size_t)n, sizeof(*us), cmp_u32);
    o = json_object();
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        /* Nearest-rank percentile. */
        uint64_t rank = (uint64_t)ceil(qs[i] * (double)n);
        if (rank == 0)
            rank = 1;
        if (json_object_set_new(o, names[i],
                                json_real((double)us[rank - 1] / 1000.0)) != 0)
            goto err;
    }
    for (uint64_t i = 0; i < n; i++)
        sum += us[i];
    if (json_object_set_new(o, "min", json_real((double)us[0] / 1000.0)) != 0 ||
        json_object_set_new(o, "max", json_real((double)us[n - 1] / 1000.0)) !=
            0 ||
        json_object_set_new(o, "mean", json_real(sum / (double)n / 1000.0)) !=
            0 ||
        json_object_set_new(o, "samples", json_integer((json_int_t)n)) != 0)
        goto err;
    return o;

err:
    json_decref(o);
    return NULL;
}

static double elapsed_s(const struct bench *b)
{
    double s = (double)(b->t_end_ns - b->t_start_ns) / 1e9;

    return s > 0 ? s : 1e-9;
}

/* Figures of a publishing step (pub, sync, replay's fill). */
static json_t *pub_json(struct bench *b)
{
    const struct bench_opts *o = b->o;
    double s = elapsed_s(b);
    json_t *r;

    r = json_pack("{s:s, s:i, s:I, s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:o}",
                  "mode", o->mode == MODE_REPLAY ? "fill" : MODE_NAMES[o->mode],
                  "publishers",
                  (int)(o->mode == MODE_SYNC ? 1 : o->n_publishers), "size",
                  (json_int_t)o->size_bytes, "window", (int)o->window, "count",
                  (json_int_t)o->count, "acked", (json_int_t)b->n_acked,
                  "errors", (json_int_t)b->n_errors, "elapsedSeconds", s,
                  "msgsPerSec", (double)b->n_acked / s, "mbPerSec",
                  (double)b->n_acked * (double)o->size_bytes / s / 1e6,
                  "ackLatencyMs", latency_json(b->ack_us, b->n_ack_samples));
    if (r != NULL && b->first_error[0] != '\0' &&
        json_object_set_new(r, "firstError", json_string(b->first_error)) !=
            0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static void print_latency(const char *what, const json_t *lat)
{
    if (!json_is_object(lat)) {
        printf("  %-12s no samples\n", what);
        return;
    }
    printf("  %-12s p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f "
           "ms\n",
           what, json_real_value(json_object_get(lat, "p50")),
           json_real_value(json_object_get(lat, "p99")),
           json_real_value(json_object_get(lat, "p999")),
           json_real_value(json_object_get(lat, "max")),
           json_real_value(json_object_get(lat, "mean")));
}

static void print_pub(const json_t *r)
{
    printf("%s: %" JSON_INTEGER_FORMAT " publishes of %" JSON_INTEGER_FORMAT
           " B, %" JSON_INTEGER_FORMAT
           " publisher(s), window %" JSON_INTEGER_FORMAT "\n",
           json_string_value(json_object_get(r, "mode")),
           json_integer_value(json_object_get(r, "count")),
           json_integer_value(json_object_get(r, "size")),
           json_integer_value(json_object_get(r, "publishers")),
           json_integer_value(json_object_get(r, "window")));
    printf("  acked        %" JSON_INTEGER_FORMAT
           " (errors %" JSON_INTEGER_FORMAT ")\n",
           json_integer_value(json_object_get(r, "acked")),
           json_integer_value(json_object_get(r, "errors")));
    if (json_is_string(json_object_get(r, "firstError")))
        printf("  first error  %s\n",
               json_string_value(json_object_get(r, "firstError")));
    printf("  elapsed      %.3f s\n",
           json_real_value(json_object_get(r, "elapsedSeconds")));
    printf("  rate         %.0f msgs/s (%.2f MB/s)\n",
           json_real_value(json_object_get(r, "msgsPerSec")),
           json_real_value(json_object_get(r, "mbPerSec")));
    print_latency("ack latency", json_object_get(r, "ackLatencyMs"));
}

/* Builds the result of the whole run (owned). */
static json_t *result_json(struct bench *b)
{
    const struct bench_opts *o = b->o;
    double s = elapsed_s(b);
    json_t *r = NULL;

    switch (o->mode) {
    case MODE_PUB:
    case MODE_SYNC:
        r = pub_json(b);
        break;
    case MODE_REPLAY:
        r = json_pack(
            "{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:O?}", "mode", "replay",
            "topic", o->topic, "messages", (json_int_t)b->n_delivered, "bytes",
            (json_int_t)b->bytes_delivered, "elapsedSeconds", s, "msgsPerSec",
            (double)b->n_delivered / s, "mbPerSec",
            (double)b->bytes_delivered / s / 1e6, "fill", b->fill_result);
        break;
    case MODE_FANOUT:
        r = json_pack(
            "{s:s, s:i, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "mode", "fanout",
            "subscribers", (int)o->n_subscribers, "size",
            (json_int_t)o->size_bytes, "published", (json_int_t)b->n_acked,
            "errors", (json_int_t)b->n_errors, "deliveries",
            (json_int_t)b->n_delivered, "elapsedSeconds", s, "deliveriesPerSec",
            (double)b->n_delivered / s, "msgsPerSec", (double)b->n_acked / s);
        break;
    case MODE_E2E:
        r = json_pack("{s:s, s:I, s:i, s:I, s:I, s:I, s:f, s:o, s:o}", "mode",
                      "e2e", "size", (json_int_t)o->size_bytes, "window",
                      (int)o->window, "published", (json_int_t)b->n_acked,
                      "errors", (json_int_t)b->n_errors, "delivered",
                      (json_int_t)b->n_delivered, "elapsedSeconds", s,
                      "ackLatencyMs", latency_json(b->ack_us, b->n_ack_samples),
                      "e2eLatencyMs",
                      latency_json(b->e2e_us, b->n_e2e_samples));
        break;
    }
    return r;
}

static void print_result(const struct bench *b, const json_t *r)
{
    switch (b->o->mode) {
    case MODE_PUB:
    case MODE_SYNC:
        print_pub(r);
        break;
    case MODE_REPLAY:
        if (json_is_object(json_object_get(r, "fill")))
            print_pub(json_object_get(r, "fill"));
        printf("replay: %s\n", b->o->topic);
        printf("  messages     %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT
               " bytes)\n",
               json_integer_value(json_object_get(r, "messages")),
               json_integer_value(json_object_get(r, "bytes")));
        printf("  elapsed      %.3f s\n",
               json_real_value(json_object_get(r, "elapsedSeconds")));
        printf("  rate         %.0f msgs/s (%.2f MB/s)\n",
               json_real_value(json_object_get(r, "msgsPerSec")),
               json_real_value(json_object_get(r, "mbPerSec")));
        break;
    case MODE_FANOUT:
        printf("fanout: %" JSON_INTEGER_FORMAT
               " subscribers, %" JSON_INTEGER_FORMAT
               " publishes (errors %" JSON_INTEGER_FORMAT ")\n",
               json_integer_value(json_object_get(r, "subscribers")),
               json_integer_value(json_object_get(r, "published")),
               json_integer_value(json_object_get(r, "errors")));
        printf("  deliveries   %" JSON_INTEGER_FORMAT "\n",
               json_integer_value(json_object_get(r, "deliveries")));
        printf("  elapsed      %.3f s\n",
               json_real_value(json_object_get(r, "elapsedSeconds")));
        printf("  rate         %.0f deliveries/s (%.0f publishes/s)\n",
               json_real_value(json_object_get(r, "deliveriesPerSec")),
               json_real_value(json_object_get(r, "msgsPerSec")));
        break;
    case MODE_E2E:
        printf("e2e: %" JSON_INTEGER_FORMAT
               " publishes (errors %" JSON_INTEGER_FORMAT
               "), %" JSON_INTEGER_FORMAT " delivered\n",
               json_integer_value(json_object_get(r, "published")),
               json_integer_value(json_object_get(r, "errors")),
               json_integer_value(json_object_get(r, "delivered")));
        printf("  elapsed      %.3f s\n",
               json_real_value(json_object_get(r, "elapsedSeconds")));
        print_latency("ack latency", json_object_get(r, "ackLatencyMs"));
        print_latency("e2e latency", json_object_get(r, "e2eLatencyMs"));
        break;
    }
}

/* ---- run control --------------------------------------------------------- */

static void close_all(struct bench *b)
{
    for (size_t i = 0; i < b->n_conns; i++)
        conn_close(b->conns[i]);
}

static void stop_timers(struct bench *b)
{
    if (!b->has_handles)
        return;
    if (!uv_is_closing((uv_handle_t *)&b->timeout_timer))
        uv_close((uv_handle_t *)&b->timeout_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&b->progress_timer))
        uv_close((uv_handle_t *)&b->progress_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&b->sigint))
        uv_close((uv_handle_t *)&b->sigint, NULL);
}

static void bench_fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;

    if (b->phase == PHASE_DONE)
        return;
    b->phase = PHASE_DONE;
    b->is_failed = true;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof(b->errmsg), fmt, ap);
    va_end(ap);
    close_all(b);
    stop_timers(b);
}

/* The --hold time is over (or Ctrl-C): close the clients. */
static void on_hold_done(uv_timer_t *t)
{
    struct bench *b = t->data;

    close_all(b);
    stop_timers(b);
}

/* The measured step finished: end the run. With --hold the clients stay
 * connected (and idle) that long first, so that the node can be looked at
 * with all of them. */
static void bench_finish(struct bench *b)
{
    size_t n_open = 0;

    b->phase = PHASE_DONE;
    if (b->o->hold_s > 0 && !b->is_holding) {
        for (size_t i = 0; i < b->n_conns; i++)
            n_open += conn_is_open(b->conns[i]);
        b->is_holding = true;
        if (uv_timer_stop(&b->progress_timer) == 0 &&
            uv_timer_start(&b->timeout_timer, on_hold_done,
                           (uint64_t)b->o->hold_s * 1000, 0) == 0) {
            fprintf(stderr, "chorus-bench: holding %zu connections for %u s\n",
                    n_open, b->o->hold_s);
            return;
        }
    }
    close_all(b);
    stop_timers(b);
}

/* replay: the fill step is done; keep its figures, close its publishers
 * and connect the reader. */
static void start_reader(struct bench *b)
{
    b->is_filling = false;
    b->fill_result = pub_json(b);
    if (b->fill_result == NULL) {
        bench_fail(b, "out of memory");
        return;
    }
    close_all(b);
    b->phase = PHASE_CONNECT;
    b->n_ready = 0;
    b->n_step = 0;
    if (conn_start(b, ROLE_REPLAY, 0, 0) != 0)
        CH_ASSERT(b->phase == PHASE_DONE);
}

static void on_timeout(uv_timer_t *t)
{
    struct bench *b = t->data;

    bench_fail(b, "timed out after %u s (acked %llu of %llu, received %llu)",
               b->o->timeout_s, (unsigned long long)b->n_acked,
               (unsigned long long)b->o->count,
               (unsigned long long)b->n_delivered);
}

static void on_sigint(uv_signal_t *s, int signum)
{
    struct bench *b = s->data;

    (void)signum;
    if (b->is_holding) {
        /* The run is measured and reported: Ctrl-C only ends the hold. */
        on_hold_done(&b->timeout_timer);
        return;
    }
    bench_fail(b, "interrupted (acked %llu, received %llu)",
               (unsigned long long)b->n_acked,
               (unsigned long long)b->n_delivered);
}

static void on_progress(uv_timer_t *t)
{
    struct bench *b = t->data;
    uint64_t now = uv_hrtime();
    uint64_t n;
    double dt;

    if (b->phase != PHASE_RUN) {
        fprintf(stderr, "chorus-bench: %s: connecting (%zu of %zu ready)\n",
                MODE_NAMES[b->o->mode], b->n_ready, b->n_step);
        return;
    }
    n = b->o->mode == MODE_REPLAY && !b->is_filling ? b->n_delivered
        : b->o->mode == MODE_FANOUT                 ? b->n_delivered
                                                    : b->n_acked;
    dt = (double)(now - b->t_last_progress_ns) / 1e9;
    fprintf(stderr,
            "chorus-bench: %s%s: %.0f s, %llu acked, %llu errors, %llu "
            "received, %.0f/s\n",
            MODE_NAMES[b->o->mode],
            b->o->mode == MODE_REPLAY && b->is_filling ? " (fill)" : "",
            (double)(now - b->t_start_ns) / 1e9, (unsigned long long)b->n_acked,
            (unsigned long long)b->n_errors, (unsigned long long)b->n_delivered,
            dt > 0 ? (double)(n - b->last_progress_n) / dt : 0.0);
    b->t_last_progress_ns = now;
    b->last_progress_n = n;
}

/* Resolves every server once, before the loop runs. */
static int resolve_servers(struct bench *b)
{
    for (size_t i = 0; i < b->o->n_servers; i++) {
        struct addrinfo *res = NULL;
        int rv = ch_resolve(b->o->servers[i], &res, b->errmsg);

        if (rv != 0)
            return rv;
        memcpy(&b->addrs[i], res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    }
    return 0;
}

/* Prepares the publish frame "> /topic\n\n<body>". */
static int make_frame(struct bench *b)
{
    const struct bench_opts *o = b->o;
    size_t body_n = o->size_bytes;
    int head_n;

    if (o->mode == MODE_E2E && body_n < BENCH_IDX_DIGITS + 1)
        body_n = BENCH_IDX_DIGITS + 1;
    head_n = snprintf(NULL, 0, "> %s\n\n", o->topic);
    if (head_n < 0)
        return CH_EINVAL;
    b->frame_head_n = (size_t)head_n;
    b->frame_n = (size_t)head_n + body_n;
    b->frame = ch_malloc(b->frame_n + 1);
    if (b->frame == NULL)
        return CH_ENOMEM;
    snprintf(b->frame, b->frame_n + 1, "> %s\n\n", o->topic);
    /* Printable filler, varied so it does not compress to nothing. */
    for (size_t i = 0; i < body_n; i++)
        b->frame[(size_t)head_n + i] = (char)('a' + (i * 7 + i / 26) % 26);
    b->frame[b->frame_n] = '\0';
    return 0;
}

static int run(const struct bench_opts *o)
{
    uv_loop_t loop;
    struct bench b;
    json_t *result = NULL;
    int code = EXIT_FAIL;
    int rv;

    memset(&b, 0, sizeof(b));
    b.o = o;
    b.loop = &loop;
    b.phase = PHASE_CONNECT;
    b.is_filling = o->mode == MODE_REPLAY && o->is_fill;
    rv = resolve_servers(&b);
    if (rv != 0) {
        fprintf(stderr, "chorus-bench: %s\n", b.errmsg);
        return EXIT_FAIL;
    }
    if (make_frame(&b) != 0)
        goto err_nomem;
    b.ack_us = ch_malloc(sizeof(*b.ack_us) * (size_t)(o->count ? o->count : 1));
    if (b.ack_us == NULL)
        goto err_nomem;
    if (o->mode == MODE_E2E) {
        b.e2e_sent_ns = ch_calloc((size_t)o->count, sizeof(*b.e2e_sent_ns));
        b.e2e_us =
            ch_malloc(sizeof(*b.e2e_us) * (size_t)o->count * o->n_subscribers);
        if (b.e2e_sent_ns == NULL || b.e2e_us == NULL)
            goto err_nomem;
    }
    rv = uv_loop_init(&loop);
    if (rv != 0) {
        fprintf(stderr, "chorus-bench: loop init: %s\n", uv_strerror(rv));
        goto out;
    }
    ch_wsctx_init(&b.wsctx, &loop);
    /* uv_timer_init cannot fail; uv_signal_init can. */
    rv = uv_timer_init(&loop, &b.timeout_timer);
    CH_ASSERT(rv == 0);
    rv = uv_timer_init(&loop, &b.progress_timer);
    CH_ASSERT(rv == 0);
    rv = uv_signal_init(&loop, &b.sigint);
    if (rv != 0) {
        fprintf(stderr, "chorus-bench: signal handle: %s\n", uv_strerror(rv));
        uv_close((uv_handle_t *)&b.timeout_timer, NULL);
        uv_close((uv_handle_t *)&b.progress_timer, NULL);
        goto out_after_loop;
    }
    b.has_handles = true;
    b.timeout_timer.data = &b;
    b.progress_timer.data = &b;
    b.sigint.data = &b;
    if (uv_timer_start(&b.timeout_timer, on_timeout,
                       (uint64_t)o->timeout_s * 1000, 0) != 0 ||
        uv_timer_start(&b.progress_timer, on_progress, 1000, 1000) != 0 ||
        uv_signal_start(&b.sigint, on_sigint, SIGINT) != 0) {
        fprintf(stderr, "chorus-bench: cannot start timers\n");
        stop_timers(&b);
        goto out_after_loop;
    }

    switch (o->mode) {
    case MODE_PUB:
    case MODE_SYNC:
        rv = start_publishers(&b, o->n_publishers);
        break;
    case MODE_REPLAY:
        rv = o->is_fill ? start_publishers(&b, o->n_publishers)
                        : conn_start(&b, ROLE_REPLAY, 0, 0);
        break;
    case MODE_FANOUT:
    case MODE_E2E:
        rv = 0;
        for (unsigned i = 0; rv == 0 && i < o->n_subscribers; i++)
            rv = conn_start(&b, ROLE_SUB, i, 0);
        if (rv == 0)
            rv = start_publishers(&b, 1);
        break;
    }
    /* A failed start called bench_fail(), which closes what was opened. */
    if (rv != 0)
        CH_ASSERT(b.phase == PHASE_DONE);
    rv = uv_run(&loop, UV_RUN_DEFAULT);
    CH_ASSERT(rv == 0);

    if (b.is_failed) {
        fprintf(stderr, "chorus-bench: %s\n", b.errmsg);
        goto out_after_loop;
    }
    result = result_json(&b);
    if (result == NULL) {
        fprintf(stderr, "chorus-bench: out of memory\n");
        goto out_after_loop;
    }
    if (o->is_json) {
        char *s =
            json_dumps(result, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (s == NULL || puts(s) == EOF) {
            free(s);
            fprintf(stderr, "chorus-bench: cannot print the result\n");
            goto out_after_loop;
        }
        free(s);
    } else {
        print_result(&b, result);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "chorus-bench: cannot write stdout: %s\n",
                strerror(errno));
        goto out_after_loop;
    }
    if (b.n_errors > 0) {
        fprintf(stderr, "chorus-bench: %llu publishes failed (first: %s)\n",
                (unsigned long long)b.n_errors, b.first_error);
        goto out_after_loop;
    }
    code = EXIT_OK;

out_after_loop:
    /* Whatever happened, every handle is closed by now or closes here. */
    close_all(&b);
    stop_timers(&b);
    rv = uv_run(&loop, UV_RUN_DEFAULT);
    CH_ASSERT(rv == 0);
    rv = uv_loop_close(&loop);
    CH_ASSERT(rv == 0);
    ch_wsctx_close(&b.wsctx);
out:
    json_decref(result);
    json_decref(b.fill_result);
    for (size_t i = 0; i < b.n_conns; i++) {
        ch_free(b.conns[i]->sent_ns);
        ch_free(b.conns[i]);
    }
    ch_free(b.conns);
    ch_free(b.frame);
    ch_free(b.ack_us);
    ch_free(b.e2e_sent_ns);
    ch_free(b.e2e_us);
    return code;

err_nomem:
    fprintf(stderr, "chorus-bench: out of memory\n");
    goto out;
}

/* ---- command line -------------------------------------------------------- */

static const char USAGE_TEXT[] =
    "usage: chorus-bench COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  pub      pipelined publishes; msgs/s and ack latency p50/p99/p99.9\n"
    "  sync     one publish at a time (window 1)\n"
    "  replay   fill a topic (unless --no-fill), then read its whole "
    "history\n"
    "           with \"+ TOPIC 0\"; msgs/s and MB/s\n"
    "  fanout   N live subscribers and one publisher; deliveries/s\n"
    "  e2e      one subscriber, one publisher; publish-to-delivery latency\n"
    "\n"
    "options:\n"
    "  -s, --server HOST:PORT[,HOST:PORT...]  nodes; clients are spread "
    "over\n"
    "                           them (default $CHORUS_SERVER "
    "or " BENCH_DEFAULT_SERVER ")\n"
    "  --publishers N           publishing clients (pub, replay fill; "
    "default 1)\n"
    "  --subscribers N          live subscribers (fanout; default 10)\n"
    "  --size BYTES             body size (default 100)\n"
    "  --window N               unanswered publishes per publisher "
    "(default 1000;\n"
    "                           sync 1, e2e 1)\n"
    "  --count N                publishes in total (default 100000; sync, "
    "fanout,\n"
    "                           e2e 10000)\n"
    "  --topic PATH             topic (default /bench/COMMAND)\n"
    "  --no-fill                replay: read the topic as it is\n"
    "  --timeout SECONDS        fail when the run takes longer (default "
    "120)\n"
    "  --hold SECONDS           keep the clients connected (idle) this long\n"
    "                           after the run, e.g. to read the node's RSS\n"
    "  --json                   print one JSON object with the figures\n"
    "  -h, --help               print this help\n"
    "\n"
    "A progress line goes to stderr once per second. Exit status: 0 "
    "success,\n"
    "1 failure (connection error, timeout, any failed publish), 2 usage "
    "error.\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
                                                             ...)
{
    va_list ap;

    fputs("chorus-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nusage: chorus-bench pub|sync|replay|fanout|e2e [OPTIONS] (see "
          "chorus-bench --help)\n",
          stderr);
    return EXIT_USAGE;
}

/* Parses an unsigned number in [min, max]. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    long long v;

    if (!ch_parse_i64(s, strlen(s), &v) || v < 0 || (uint64_t)v < min ||
        (uint64_t)v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Splits the -s list (copied into o->servers_copy). */
static int parse_servers(struct bench_opts *o, const char *list)
{
    char *save = NULL;
    char *tok;
    char host[256];
    char port[16];

    ch_free(o->servers_copy);
    o->servers_copy = ch_strdup(list);
    if (o->servers_copy == NULL)
        return CH_ENOMEM;
    o->n_servers = 0;
    for (tok = strtok_r(o->servers_copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->n_servers == BENCH_MAX_SERVERS ||
            ch_hostport_split(tok, host, sizeof(host), port, sizeof(port)) != 0)
            return CH_EINVAL;
        o->servers[o->n_servers++] = tok;
    }
    return o->n_servers > 0 ? 0 : CH_EINVAL;
}

/* Fills o from argv. Returns -1 to run, else an exit code. */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    const char *server = getenv("CHORUS_SERVER");
    bool has_window = false;
    bool has_count = false;
    uint64_t v;
    size_t m;

    if (server == NULL || server[0] == '\0')
        server = BENCH_DEFAULT_SERVER;
    if (argc >= 2 &&
        (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(USAGE_TEXT, stdout);
        return EXIT_OK;
    }
    if (argc < 2)
        return usage_error("no command given");
    for (m = 0; m < sizeof(MODE_NAMES) / sizeof(MODE_NAMES[0]); m++) {
        if (strcmp(argv[1], MODE_NAMES[m]) == 0)
            break;
    }
    if (m == sizeof(MODE_NAMES) / sizeof(MODE_NAMES[0]))
        return usage_error("unknown command '%s'", argv[1]);
    o->mode = (enum bench_mode)m;
    o->n_publishers = 1;
    o->n_subscribers = o->mode == MODE_E2E ? 1 : 10;
    o->size_bytes = 100;
    o->window = 1000;
    o->count = 100000;
    o->timeout_s = 120;
    o->is_fill = true;
    o->topic = NULL;

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE_TEXT, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o->is_json = true;
            takes_value = false;
        } else if (strcmp(a, "--no-fill") == 0) {
            if (o->mode != MODE_REPLAY)
                return usage_error("--no-fill applies to replay only");
            o->is_fill = false;
            takes_value = false;
        } else if (val == NULL) {
            if (strcmp(a, "-s") == 0 || strncmp(a, "--", 2) == 0)
                return usage_error("option %s needs a value", a);
            return usage_error("unexpected argument '%s'", a);
        } else if (strcmp(a, "-s") == 0 || strcmp(a, "--server") == 0) {
            server = val;
        } else if (strcmp(a, "--publishers") == 0) {
            if (!parse_u64(val, 1, BENCH_MAX_CONNS, &v))
                return usage_error("bad --publishers '%s' (1..%d)", val,
                                   BENCH_MAX_CONNS);
            o->n_publishers = (unsigned)v;
        } else if (strcmp(a, "--subscribers") == 0) {
            if (!parse_u64(val, 1, BENCH_MAX_CONNS, &v))
                return usage_error("bad --subscribers '%s' (1..%d)", val,
                                   BENCH_MAX_CONNS);
            o->n_subscribers = (unsigned)v;
        } else if (strcmp(a, "--size") == 0) {
            if (!parse_u64(val, 0, BENCH_MAX_SIZE, &v))
                return usage_error("bad --size '%s' (0..%d)", val,
                                   BENCH_MAX_SIZE);
            o->size_bytes = (size_t)v;
        } else if (strcmp(a, "--window") == 0) {
            if (!parse_u64(val, 1, BENCH_MAX_WINDOW, &v))
                return usage_error("bad --window '%s' (1..%d)", val,
                                   BENCH_MAX_WINDOW);
            o->window = (unsigned)v;
            has_window = true;
        } else if (strcmp(a, "--count") == 0) {
            if (!parse_u64(val, 1, BENCH_MAX_COUNT, &v))
                return usage_error("bad --count '%s' (1..%llu)", val,
                                   (unsigned long long)BENCH_MAX_COUNT);
            o->count = v;
            has_count = true;
        } else if (strcmp(a, "--topic") == 0) {
            if (!ch_valid_topic(val, strlen(val)))
                return usage_error("bad topic '%s'", val);
            o->topic = val;
        } else if (strcmp(a, "--timeout") == 0) {
            if (!parse_u64(val, 1, 86400, &v))
                return usage_error("bad --timeout '%s' (1..86400 s)", val);
            o->timeout_s = (unsigned)v;
        } else if (strcmp(a, "--hold") == 0) {
            if (!parse_u64(val, 0, 86400, &v))
                return usage_error("bad --hold '%s' (0..86400 s)", val);
            o->hold_s = (unsigned)v;
        } else {
            return usage_error("unknown option '%s'", a);
        }
        if (takes_value)
            i++;
    }
    if (o->mode == MODE_SYNC) {
        if (has_window && o->window != 1)
            return usage_error("sync always uses --window 1");
        o->window = 1;
        o->n_publishers = 1;
    }
    if (o->mode == MODE_E2E && !has_window)
        o->window = 1;
    if ((o->mode == MODE_SYNC || o->mode == MODE_FANOUT ||
         o->mode == MODE_E2E) &&
        !has_count)
        o->count = 10000;
    if (o->mode == MODE_FANOUT || o->mode == MODE_E2E)
        o->n_publishers = 1;
    if (o->n_publishers > o->count)
        return usage_error("more publishers than messages");
    if (o->topic == NULL) {
        static const char *const topics[] = {"/bench/pub", "/bench/sync",
                                             "/bench/replay", "/bench/fanout",
                                             "/bench/e2e"};
        o->topic = topics[o->mode];
    }
    if (parse_servers(o, server) != 0)
        return usage_error("bad server list '%s' (HOST:PORT[,HOST:PORT...], "
                           "at most %d)",
                           server, BENCH_MAX_SERVERS);
    return -1;
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    int code;

    memset(&o, 0, sizeof(o));
    code = parse_args(argc, argv, &o);
    if (code < 0)
        code = run(&o);
    ch_free(o.servers_copy);
    return code;
}
