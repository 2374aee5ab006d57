/* Internals of the gateway, shared by its files and unit tests. */
#ifndef CHORUS_GATEWAY_GW_INT_H
#define CHORUS_GATEWAY_GW_INT_H

#include <stdbool.h>

#include <http_parser.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/map.h"
#include "common/queue.h"
#include "gateway/gw.h"
#include "gateway/wsframe.h"

/* Bytes of one socket read (the gateway's shared read buffer). */
#define GW_READ_BYTES (64 * 1024)

/* ---- protocol (proto.c): one client command, parsed without side
 * effects so it can be unit-tested and fuzzed. ---- */
enum gw_cmd_type {
    GW_CMD_PUBLISH = 1,
    GW_CMD_SUBSCRIBE,
    GW_CMD_CANCEL,
};

struct gw_cmd {
    enum gw_cmd_type type;
    struct ch_bytes path;
    struct ch_bytes msgid;  /* publish: may be empty */
    struct ch_bytes header; /* publish: validated JSON object text or empty */
    struct ch_bytes body;   /* publish */
    bool has_start;         /* subscribe */
    long long start;
    bool has_max;
    long long max;
};

/* Parse outcomes besides 0. */
enum {
    GW_PARSE_BAD_REQUEST = 1, /* answer !error-bad-request <why> */
    GW_PARSE_BAD_SEND = 2,    /* a publish refused: !error-send <id> <why> */
};

/* Parses one frame. Returns 0 with *cmd filled (pointing into frame), or
 * GW_PARSE_* with a reason in why (static text) and, for a publish, the
 * msgid/path parsed so far in *cmd. max_body is --max-message-bytes. */
int gw_proto_parse(const char *frame, size_t len, size_t max_body,
                   struct gw_cmd *cmd, const char **why);

/* ---- connections ---- */
struct gw_conn;
struct gw_sub;

/* A publish of one WebSocket connection, answered in publish order. */
struct gw_pub {
    struct ch_queue link; /* in the connection's pubs, publish order */
    struct gw_conn *conn;
    bool done;
    struct ch_buf answer; /* the frame to send once it is at the head */
    char msgid[CH_MAX_ID_BYTES + 1];
    char path[CH_MAX_TOPIC_BYTES + 1];
};

/* Delivery position of one topic on one connection: the next sequenceId to
 * send. `behind` means messages from next_seq on must come from the store
 * (output was full, or a gap); the pump moves it forward. */
struct gw_cursor {
    int64_t next_seq;
    bool behind;
    size_t path_n;
    char path[CH_MAX_TOPIC_BYTES + 1];
};

enum gw_sub_state {
    GW_SUB_PENDING, /* replay queued behind another replay */
    GW_SUB_REPLAY,  /* sending stored messages replay_next..replay_end */
    GW_SUB_LIVE,    /* live delivery on */
};

/* The live subscriptions of one exact path, in gw->index. */
struct gw_index_entry {
    struct ch_queue subs; /* struct gw_sub (idx_link) */
};

struct gw_sub {
    struct ch_queue link;     /* in the connection's subs, command order */
    struct ch_queue idx_link; /* in its gw_index_entry */
    struct gw_index_entry *idx;
    struct gw_conn *conn;
    enum gw_sub_state state;
    bool has_start;
    long long start;
    bool has_max;
    long long max;
    int64_t replay_next;
    int64_t replay_end;
    size_t path_n;
    char path[CH_MAX_TOPIC_BYTES + 1];
};

/* One parsed HTTP request. */
struct gw_http_req {
    int method; /* enum http_method */
    struct ch_buf url;
    struct ch_buf body;
    struct ch_buf hdr_names;  /* NUL-separated names, as sent */
    struct ch_buf hdr_values; /* NUL-separated values, same order */
    size_t n_headers;
    size_t header_bytes;
    bool last_was_value;
    bool complete;
    bool too_large;
    bool is_nomem; /* an allocation failed while taking it (503) */
    bool keep_alive;
    bool upgrade;
};

/* The life of a connection; it only moves down the list. */
enum gw_conn_state {
    GW_CONN_OPEN,      /* HTTP requests, or WebSocket frames once is_ws */
    GW_CONN_DRAINING,  /* nothing more is read: what is owed (the HTTP
                          answer being prepared, or our WebSocket close
                          frame, after which nothing is sent) goes out,
                          then LINGERING */
    GW_CONN_LINGERING, /* write side shut; input dropped until the peer
                          closes or linger_until_ms */
    GW_CONN_CLOSING,   /* uv_close called */
    GW_CONN_CLOSED,    /* handle closed; freed when the last ref drops */
};

struct gw_conn {
    uv_tcp_t tcp; /* first: the handle's memory is the connection's */
    struct gw *gw;
    uint64_t id;
    struct ch_queue link; /* in gw->conns */
    enum gw_conn_state state;

    /* input */
    struct ch_buf in; /* own input: a partial frame or request only */
    size_t in_off;    /* bytes of `in` consumed */
    bool reading;     /* uv_read_start in effect */

    /* output: `out` collects bytes; `wbuf` is being written */
    struct ch_buf out;
    struct ch_buf wbuf;
    uv_write_t wreq;
    bool writing;             /* a uv_write of wbuf is in flight */
    bool is_failed;           /* out of memory while the index is walked
                                 (gw__sub_applied) or the pump holds a
                                 subscription: the next pump closes it */
    bool is_pumping;          /* gw__sub_pump is running for it */
    uint64_t linger_until_ms; /* LINGERING: then closed regardless */
    uv_shutdown_t shutdown_req;

    /* HTTP */
    http_parser parser;
    struct gw_http_req req;
    bool req_busy; /* a request is being answered asynchronously */

    /* WebSocket */
    bool is_ws; /* upgraded (ws, user, app, pubs, subs are in use) */
    struct ch_ws_reader ws; /* frames from the client (is_ws) */
    bool ws_close_sent;     /* our close frame is queued: no more */
    char user[CH_MAX_ID_BYTES + 1];
    char app[17];
    struct ch_queue pubs; /* struct gw_pub, publish order */
    size_t n_unanswered;
    struct ch_queue subs; /* struct gw_sub, command order */
    size_t n_subs;
    struct ch_map cursors;     /* path -> struct gw_cursor */
    size_t n_behind;           /* cursors with behind set */
    size_t n_replays;          /* subs in PENDING or REPLAY */
    struct ch_queue pump_link; /* in gw->pumps while a pump is due */

    size_t refs; /* the handle + async operations holding the connection */
};

/* True once uv_close was called: nothing more is done for c. */
static inline bool gw__conn_closing(const struct gw_conn *c)
{
    return c->state >= GW_CONN_CLOSING;
}

struct gw_metrics {
    uint64_t connections_total;
    uint64_t connections_current;
    uint64_t ws_connections_current;
    uint64_t http_requests;
    uint64_t commands;
    uint64_t publishes;
    uint64_t publish_errors;
    uint64_t messages_delivered;
    uint64_t bytes_out;
    uint64_t slow_reader_switches;
    uint64_t connections_refused; /* over --max-connections */
};

struct gw {
    uv_loop_t *loop;
    struct gw_config cfg;
    struct cluster *cluster;
    struct store *store;
    uv_tcp_t listener;
    bool listening;
    uv_tcp_t refuse_tcp;    /* closes a connection there is no memory for */
    bool is_refusing;       /* refuse_tcp is closing */
    bool is_accept_pending; /* another waits for refuse_tcp */
    uint64_t next_conn_id;
    struct ch_queue conns; /* struct gw_conn, newest first */
    struct ch_map index;   /* path -> struct gw_index_entry */
    bool is_delivering;    /* walking the index (gw__sub_applied) */
    struct ch_queue pumps; /* connections with work for the pump */
    uv_check_t pump_check;
    uv_idle_t pump_idle; /* active while pumps wait: poll must not block */
    /* Refused connections and failed accepts are logged once per burst:
     * not again before these times (uv_now; 0 at first: due). */
    uint64_t refusal_log_due_ms;
    uint64_t accept_error_log_due_ms;
    /* Connections taken at once: --max-connections, or fewer when the file
     * descriptor limit (fd_limit, less CH_FD_RESERVE for raft, LMDB and the
     * node links) does not fit them (gw_start). */
    size_t conn_limit;
    uint64_t fd_limit;
    bool is_rbuf_busy;        /* a read callback is using rbuf */
    char rbuf[GW_READ_BYTES]; /* every connection reads here (http.c) */
    uv_timer_t close_timer;
    uv_timer_t linger_timer; /* closes lingering connections */
    bool linger_inited;
    bool pump_inited;
    bool timer_inited;
    bool closing;
    int n_handles_open;
    gw_close_cb close_cb;
    void *close_arg;
    struct gw_metrics metrics;
};

#define GW_LINGER_MS 2000

/* gw.c */
void gw__maybe_closed(struct gw *gw);

/* http.c */
void gw__conn_accept_cb(uv_stream_t *server, int status);
/* A new connection whose handle is initialised but not connected: the
 * caller accepts (or, in tests, opens a descriptor) into c->tcp, then
 * calls gw__conn_start, or gw__conn_close on failure. NULL: no memory. */
struct gw_conn *gw__conn_new(struct gw *gw);
/* Starts reading HTTP requests on a connected c. */
void gw__conn_start(struct gw_conn *c);
void gw__conn_write(struct gw_conn *c, const void *p, size_t n);
void gw__conn_flush(struct gw_conn *c);
void gw__conn_close(struct gw_conn *c);
/* Closes gracefully: shut the write side, read and drop input until the
 * peer closes or GW_LINGER_MS pass, so it reads our last answer instead of
 * a reset. */
void gw__conn_linger(struct gw_conn *c);
void gw__linger_sweep(struct gw *gw);
void gw__conn_unref(struct gw_conn *c);
size_t gw__conn_queued(struct gw_conn *c);
bool gw__conn_has_room(struct gw_conn *c);
void gw__conn_update_reading(struct gw_conn *c);
void gw__http_resume(struct gw_conn *c);
void gw__http_respond(struct gw_conn *c, int status, const char *ctype,
                      const char *body, size_t body_n);
void gw__http_respond_json(struct gw_conn *c, int status, const char *json);
void gw__http_error(struct gw_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A store read that failed with rv: 503 when out of memory (it may pass),
 * else 500. */
void gw__http_store_error(struct gw_conn *c, int rv);
const char *gw__http_header(const struct gw_http_req *r, const char *name);

/* ws.c */
int gw__ws_upgrade(struct gw_conn *c);
void gw__ws_recv(struct gw_conn *c);
void gw__ws_send_text(struct gw_conn *c, const char *p, size_t n);
/* Sends the error text, then closes with 1011: the connection's delivery
 * state cannot be trusted any more (never from inside the index walk). */
void gw__ws_fail(struct gw_conn *c, const char *text, size_t n);
void gw__ws_send_frame(struct gw_conn *c, const char *p, size_t n, bool binary);

/* proto.c */
void gw__proto_handle(struct gw_conn *c, const char *frame, size_t len);
void gw__proto_conn_closed(struct gw_conn *c);
/* Appends the wire form of message m (docs/protocol.md) to out. */
int gw__msg_encode(const struct ch_msg *m, struct ch_buf *out);
bool gw__msg_is_text(const struct ch_msg *m);

/* sub.c */
int gw__sub_add(struct gw_conn *c, const struct gw_cmd *cmd);
void gw__sub_cancel(struct gw_conn *c, const char *path, size_t path_n);
void gw__sub_conn_closed(struct gw_conn *c);
void gw__sub_applied(void *arg, const struct ch_msg *msgs,
                     const struct store_result *results, size_t n);
void gw__sub_schedule_pump(struct gw_conn *c);
void gw__sub_pump(struct gw_conn *c);
void gw__sub_run_pumps(struct gw *gw);
/* Pumps are waiting for the check phase (or not): keeps the loop's poll
 * from blocking meanwhile. */
void gw__pumps_pending(struct gw *gw, bool pending);
void gw__sub_restored(void *arg);

/* rest.c / admin.c */
/* Splits the request URL: *path_n = bytes before '?'; returns the query
 * (after '?') or "". */
const char *gw__url_split(const struct gw_http_req *r, size_t *path_n);
/* Percent-decodes query parameter `name` into out (NUL-terminated).
 * Returns 1 if present, 0 if absent, -1 if present but not representable
 * (a NUL byte in it, or longer than out_size - 1): a bad request. */
int gw__query_get(const char *query, const char *name, char *out,
                  size_t out_size);
void gw__rest_handle(struct gw_conn *c);
void gw__admin_handle(struct gw_conn *c);
/* json.c */
struct json_t;
/* Routes jansson's allocations through the heap hook (gw_create). */
void gw__json_use_heap(void);
/* Parses n bytes of JSON text; NULL on failure, with *is_nomem telling
 * running out of memory (503) from bad input (400). */
struct json_t *gw__json_load(const char *p, size_t n, bool *is_nomem);
/* Appends the compact JSON text of v to out. Returns 0 or CH_ENOMEM. */
int gw__json_dump(const struct json_t *v, struct ch_buf *out);
/* Answers v (taken: released here) as JSON with status; v NULL means
 * building it ran out of memory: 503 instead. */
void gw__respond_value(struct gw_conn *c, int status, struct json_t *v);

#endif
