/* The node-to-node link, both of its ends (internal to src/cluster; its
 * unit tests and the fuzzers include it too).
 *
 * A follower forwards publishes and admin requests to the leader over one
 * persistent WebSocket connection to the leader's gateway port, path
 * CLUSTER_LINK_PATH; the gateway recognises the upgrade and hands the
 * socket to the cluster (cluster_link_accept), whose serving end (struct
 * lservers, link_server.c) runs the requests. The client end (struct
 * lclient, link_client.c) is common/wsconn.h's client. The leader answers
 * each request by id; many requests (or responses) travel in one binary
 * frame. docs/architecture.md "Clients on any node: forwarding".
 *
 * Frame layout (link.c), msgpack values in sequence:
 *   uint kind (1 requests, 2 responses), uint n, then n arrays:
 *   request  [req_id, op, ...]: PUBLISH [.., path, user, app, msgid, header,
 *            body], JOIN [.., id, raft, http, role], LEAVE [.., id],
 *            TRANSFER [.., id], REMOVED [.., id], FETCH [.., path, from,
 *            to], STATUS [.., 0], NUDGE [.., id]
 *   response [req_id, status, seq, time, index, is_dup, text] or, answering
 *            a FETCH, [.., text, n_msgs, bin msgs] with msgs n_msgs
 *            arrays [seq, time, user, app, msgid, header, body]
 * Decoders are zero-copy (byte fields point into the frame) and reject
 * anything malformed with CH_ECORRUPT. */
#ifndef CHORUS_CLUSTER_LINK_INT_H
#define CHORUS_CLUSTER_LINK_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "cluster/cluster.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/queue.h"
#include "common/wsconn.h"

enum link_kind { LINK_REQUESTS = 1, LINK_RESPONSES = 2 };

enum link_op {
    LINK_PUBLISH = 1,
    LINK_JOIN = 2,
    LINK_LEAVE = 3,
    LINK_TRANSFER = 4,
    LINK_REMOVED = 5, /* the leader tells a removed node [.., id] */
    LINK_FETCH = 6,   /* catch-up: stored messages [.., path, from, to] */
    LINK_STATUS = 7,  /* is the node caught up? [.., 0]: 0 or CH_EMISSING */
    LINK_NUDGE = 8,   /* a follower asks the leader for an entry [.., id] */
};

struct link_req {
    uint64_t req_id;
    enum link_op op;
    struct ch_msg msg;    /* PUBLISH: path, user, app, msgid, header, body */
    uint64_t id;          /* JOIN, LEAVE, TRANSFER (0: any) */
    struct ch_bytes raft; /* JOIN */
    struct ch_bytes http; /* JOIN */
    int role;             /* JOIN */
    int64_t from;         /* FETCH: first seq wanted (msg.path: topic) */
    int64_t to;           /* FETCH: last seq wanted */
};

struct link_resp {
    uint64_t req_id;
    int status; /* 0 or a CH_E* code */
    int64_t seq;
    int64_t time;
    uint64_t index; /* raft index the leader applied it at */
    bool is_dup;
    struct ch_bytes text; /* error text, may be empty */
    /* FETCH answers: n_msgs messages packed by link_fetched_pack (checked
     * by the decoder; read them with link_fetched_next). */
    uint32_t n_msgs;
    struct ch_bytes msgs;
};

/* Appends one stored message (seq, time and fields) to a FETCH answer's
 * messages. Returns 0 or CH_ENOMEM. */
int link_fetched_pack(struct ch_buf *out, const struct ch_msg *m);
/* Reads the next message of r->msgs at *off (start at 0) into *m (fields
 * point into the frame; path unset). Returns 0 or CH_ECORRUPT. */
int link_fetched_next(const struct link_resp *r, size_t *off, struct ch_msg *m);

/* Collects items of one kind; finish writes a frame. */
struct link_enc {
    struct ch_buf items;
    msgpack_packer pk;
    enum link_kind kind;
    uint32_t n;
};

void link_enc_init(struct link_enc *e, enum link_kind kind);
void link_enc_close(struct link_enc *e);
void link_enc_reset(struct link_enc *e);
int link_enc_req(struct link_enc *e, const struct link_req *r);
int link_enc_resp(struct link_enc *e, const struct link_resp *r);
/* Appends one item encoded earlier (by an encoder of the same kind). */
int link_enc_raw(struct link_enc *e, const void *item, size_t n);
/* Bytes encoded so far. */
size_t link_enc_size(const struct link_enc *e);
/* Appends the frame to out. Returns 0 or CH_ENOMEM. */
int link_enc_finish(const struct link_enc *e, struct ch_buf *out);

typedef void (*link_req_cb)(void *arg, const struct link_req *r);
typedef void (*link_resp_cb)(void *arg, const struct link_resp *r);
/* Decodes a frame, calling req_cb or resp_cb per item (NULL: that kind is
 * refused). The whole frame is validated before any callback runs.
 * Returns 0 or CH_ECORRUPT. */
int link_decode(const void *buf, size_t len, link_req_cb req_cb,
                link_resp_cb resp_cb, void *arg);

/* ---- the client end (link_client.c) ---------------------------------- */

/* A link to another node's gateway (to forward to the leader, to ask to
 * join, to tell a removed node). */
struct lclient;
typedef void (*lclient_resp_cb)(void *arg, const struct link_resp *r);
typedef void (*lclient_req_cb)(void *arg, const struct link_req *r);
/* The link opened (open: true) or ended (false; exactly once, never after
 * lclient_close, never from inside an lclient_* call). */
typedef void (*lclient_state_cb)(void *arg, struct lclient *l, bool open);

/* Starts connecting to the gateway at addr (HOST:PORT) as node self_id.
 * resp_cb / req_cb get the items of every frame received (NULL: that kind
 * closes the link as a protocol error). Returns NULL on a bad address or
 * no memory (no callback then). */
struct lclient *lclient_create(struct ch_wsctx *x, uint64_t self_id,
                               const char *addr, lclient_resp_cb resp_cb,
                               lclient_req_cb req_cb, lclient_state_cb state_cb,
                               void *arg);
bool lclient_is_open(const struct lclient *l);
/* Bytes queued on the link and not yet written. */
size_t lclient_queued(const struct lclient *l);
/* Sends one link frame (copied). Returns 0, CH_ECONNECT (not open) or
 * CH_ENOMEM. */
int lclient_send(struct lclient *l, const void *frame, size_t n);
/* Sends one request alone in a frame. Returns 0, CH_ECONNECT or
 * CH_ENOMEM. */
int lclient_send_req(struct lclient *l, const struct link_req *r);
/* Closes the link; no callback fires after this (safe inside callbacks). */
void lclient_close(struct lclient *l);

/* ---- the serving end (link_server.c) ---------------------------------- */

/* What the serving end runs requests with: the cluster (cluster.c), or a
 * test's stand-in. Each function is as its cluster_* namesake. */
struct link_handler {
    int (*publish)(void *data, const struct ch_msg *m, cluster_publish_cb cb,
                   void *arg);
    int (*join)(void *data, uint64_t id, const char *raft, const char *http,
                int role, cluster_admin_cb cb, void *arg);
    int (*leave)(void *data, uint64_t id, cluster_admin_cb cb, void *arg);
    int (*transfer)(void *data, uint64_t id, cluster_admin_cb cb, void *arg);
    void (*removed)(void *data, uint64_t id);
    bool (*is_leader)(void *data);
    /* STATUS, answered at once by any node: NULL when it holds every
     * message it should, else why not ("catching up: ..."). */
    const char *(*catching_up)(void *data);
    /* NUDGE, on the leader: append an entry soon (NULL: ignored). */
    void (*nudge)(void *data, uint64_t from_id);
    /* FETCH, answered at once (any member serves it); NULL: refused. */
    int (*fetch)(void *data, struct ch_bytes path, int64_t from, int64_t to,
                 struct ch_buf *out, uint32_t *n_msgs);
};

/* The links this node serves. */
struct lservers {
    struct ch_wsctx *x;           /* borrowed */
    const struct link_handler *h; /* borrowed */
    void *h_data;                 /* for h */
    struct ch_queue links;        /* struct lserver, open */
    struct ch_queue dirty;        /* with answers to send or reading to
                                     resume: lservers_flush's work */
    uv_idle_t idle;               /* active while dirty is not empty: the
                                     loop's poll must not block before the
                                     check phase flushes (answers made in a
                                     timer callback would wait) */
    size_t n_links;
    bool is_closed; /* lservers_close was called */
};

void lservers_init(struct lservers *s, struct ch_wsctx *x,
                   const struct link_handler *h, void *h_data);
/* Serves a link on fd, a connection whose upgrade request (key) was read
 * by the gateway (see cluster_link_accept). fd is owned from the call on.
 * Returns 0, CH_ESHUTDOWN, CH_EINVAL, CH_ENOMEM or CH_EIO. */
int lservers_accept(struct lservers *s, int fd, const char *key,
                    const char *peer);
/* Sends the answers collected since the last call, one frame per link,
 * and resumes reading paused links that have room again (loop's check
 * phase). */
void lservers_flush(struct lservers *s);
/* Closes every link; answers still to come are dropped. Requests in flight
 * keep their memory until their callbacks fire. */
void lservers_close(struct lservers *s);

#endif
