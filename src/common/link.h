/* The node-to-node link protocol: a follower forwards publishes and admin
 * requests to the leader over one persistent WebSocket connection
 * (binary frames on the leader's gateway port, path CH_LINK_PATH); the
 * leader answers each request by id. Many requests (or responses) travel in
 * one frame. Frame layout, msgpack values in sequence:
 *   uint kind (1 requests, 2 responses), uint n, then n arrays:
 *   request  [req_id, op, ...]: PUBLISH [.., path, user, app, msgid, header,
 *            body], JOIN [.., id, raft, http, role], LEAVE [.., id],
 *            TRANSFER [.., id], REMOVED [.., id]
 *   response [req_id, status, seq, time, index, is_dup, text]
 * Decoders are zero-copy (byte fields point into the frame) and reject
 * anything malformed with CH_ECORRUPT. */
#ifndef CHORUS_COMMON_LINK_H
#define CHORUS_COMMON_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "common/buf.h"
#include "common/codec.h"

#define CH_LINK_PATH "/internal/link"

enum ch_link_kind { CH_LINK_REQUESTS = 1, CH_LINK_RESPONSES = 2 };

enum ch_link_op {
    CH_LINK_PUBLISH = 1,
    CH_LINK_JOIN = 2,
    CH_LINK_LEAVE = 3,
    CH_LINK_TRANSFER = 4,
    CH_LINK_REMOVED = 5, /* the leader tells a removed node [.., id] */
};

struct ch_link_req {
    uint64_t req_id;
    enum ch_link_op op;
    struct ch_msg msg;    /* PUBLISH: path, user, app, msgid, header, body */
    uint64_t id;          /* JOIN, LEAVE, TRANSFER (0: any) */
    struct ch_bytes raft; /* JOIN */
    struct ch_bytes http; /* JOIN */
    int role;             /* JOIN */
};

struct ch_link_resp {
    uint64_t req_id;
    int status; /* 0 or a CH_E* code */
    int64_t seq;
    int64_t time;
    uint64_t index; /* raft index the leader applied it at */
    bool is_dup;
    struct ch_bytes text; /* error text, may be empty */
};

/* Collects items of one kind; finish writes a frame. */
struct ch_link_enc {
    struct ch_buf items;
    msgpack_packer pk;
    enum ch_link_kind kind;
    uint32_t n;
};

void ch_link_enc_init(struct ch_link_enc *e, enum ch_link_kind kind);
void ch_link_enc_close(struct ch_link_enc *e);
void ch_link_enc_reset(struct ch_link_enc *e);
int ch_link_enc_req(struct ch_link_enc *e, const struct ch_link_req *r);
int ch_link_enc_resp(struct ch_link_enc *e, const struct ch_link_resp *r);
/* Appends one item encoded earlier (by an encoder of the same kind). */
int ch_link_enc_raw(struct ch_link_enc *e, const void *item, size_t n);
/* Bytes encoded so far. */
size_t ch_link_enc_size(const struct ch_link_enc *e);
/* Appends the frame to out. Returns 0 or CH_ENOMEM. */
int ch_link_enc_finish(const struct ch_link_enc *e, struct ch_buf *out);

typedef void (*ch_link_req_cb)(void *arg, const struct ch_link_req *r);
typedef void (*ch_link_resp_cb)(void *arg, const struct ch_link_resp *r);
/* Decodes a frame, calling req_cb or resp_cb per item (NULL: that kind is
 * refused). The whole frame is validated before any callback runs.
 * Returns 0 or CH_ECORRUPT. */
int ch_link_decode(const void *buf, size_t len, ch_link_req_cb req_cb,
                   ch_link_resp_cb resp_cb, void *arg);

#endif
