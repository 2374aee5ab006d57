/* One WebSocket connection (RFC 6455) on a libuv loop, either end, framed
 * by wslay: the one WebSocket stack of everything except the gateway's
 * client-facing server (which frames itself, docs/architecture.md
 * "WebSocket framing"). The node-to-node link uses both ends
 * (src/cluster), chorus-bench the client end, chorusctl the client end
 * through the blocking wrapper of wsclient.h.
 *
 * wslay's callbacks make no system calls: bytes read by libuv are handed
 * to wslay before the read callback returns, and frames wslay produces are
 * collected in an output buffer handed to one uv_write at a time (the
 * next one collects meanwhile), as h2o wires it.
 *
 * Threads: everything runs on the loop thread of the ch_wsctx. Callbacks
 * never fire from inside the call that created or closed the connection.
 *
 * Lifecycle: ch_wsconn_connect / ch_wsconn_accept create a connection;
 * `open` fires once the handshake is done (client end), `message` per
 * received message, `closed` exactly once when the connection ends for any
 * reason other than the owner's ch_wsconn_close(); after ch_wsconn_close()
 * no callback fires and the memory is released once the socket closed. */
#ifndef CHORUS_COMMON_WSCONN_H
#define CHORUS_COMMON_WSCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"
#include "common/limits.h"

/* Bytes of one socket read (the context's shared read buffer). */
#define CH_WSCONN_READ_BYTES (64 * 1024)
/* Random bytes fetched at once for masking keys. */
#define CH_WSCONN_MASK_POOL 4096

/* What the connections of one loop share: one read buffer (wslay consumes
 * every byte before the read callback returns, so no connection keeps
 * input of its own) and a pool of random bytes for client masking keys
 * (RFC 6455 §5.3). Embedded by its owner; outlives its connections. */
struct ch_wsctx {
    uv_loop_t *loop;
    bool is_rbuf_busy; /* a read callback is using rbuf (asserted) */
    size_t n_conns;    /* connections not yet freed */
    size_t mask_off;   /* bytes of mask_pool used */
    unsigned char mask_pool[CH_WSCONN_MASK_POOL];
    char rbuf[CH_WSCONN_READ_BYTES];
};

void ch_wsctx_init(struct ch_wsctx *x, uv_loop_t *loop);
/* Checks that every connection was freed (asserted). */
void ch_wsctx_close(struct ch_wsctx *x);

struct ch_wsconn;

struct ch_wsconn_cbs {
    /* Client end: the server accepted the upgrade; ch_wsconn_send works.
     * May be NULL. */
    void (*open)(struct ch_wsconn *ws);
    /* One whole text or binary message; data is borrowed for the call.
     * Pings are answered by the connection itself. */
    void (*message)(struct ch_wsconn *ws, bool is_binary, const char *data,
                    size_t n);
    /* Everything queued was written to the socket (ch_wsconn_queued() is
     * 0 again after it was not). May be NULL. */
    void (*drained)(struct ch_wsconn *ws);
    /* The connection ended: status CH_ECONNECT (could not connect or
     * resolve), CH_EPROTO (refused or bad upgrade, bad frames), CH_ETOOBIG
     * (a message over max_msg_bytes), CH_ENOMEM, or CH_EIO (socket error,
     * or the peer closed: ch_wsconn_close_code() tells its close code);
     * why is one line, borrowed for the call. */
    void (*closed)(struct ch_wsconn *ws, int status, const char *why);
};

struct ch_wsconn_config {
    uint64_t max_msg_bytes; /* larger received messages: closed with 1009 */
    size_t max_write_bytes; /* framed bytes handed to one uv_write */
};

/* Connects to `hostport` ("HOST:PORT", also the Host header) and upgrades
 * `path` (e.g. "/stream/user/bench"). addr, when not NULL, is the resolved
 * address to use (copied); otherwise hostport is resolved on the loop's
 * thread pool. The server's Sec-WebSocket-Accept is checked. cbs (borrowed
 * until freed) and data are the owner's. On success *out is the
 * connection and every outcome is reported through cbs. Returns 0, or
 * CH_EINVAL (bad hostport, path too long) / CH_ENOMEM / CH_EIO with no
 * callback. */
__attribute__((warn_unused_result)) int ch_wsconn_connect(
    struct ch_wsctx *x, const char *hostport, const struct sockaddr *addr,
    const char *path, const struct ch_wsconn_config *cfg,
    const struct ch_wsconn_cbs *cbs, void *data, struct ch_wsconn **out);

/* Takes over `fd`, a connected TCP socket on which a client asked to
 * upgrade with Sec-WebSocket-Key `key` (the request was read and checked
 * by the caller, and nothing after it: a client sends no frames before
 * the answer, RFC 6455 §4.1). Answers 101 and serves the server end. The
 * fd is owned by the connection from the call on, also when it fails (it
 * is closed then). `peer` names the other end in logs (copied). Returns 0
 * or CH_EINVAL (bad key) / CH_ENOMEM / CH_EIO with no callback. */
__attribute__((warn_unused_result)) int
ch_wsconn_accept(struct ch_wsctx *x, int fd, const char *key, const char *peer,
                 const struct ch_wsconn_config *cfg,
                 const struct ch_wsconn_cbs *cbs, void *data,
                 struct ch_wsconn **out);

/* Queues one message (copied) and starts writing it. Returns 0,
 * CH_ECONNECT (not open, or closing) or CH_ENOMEM. */
__attribute__((warn_unused_result)) int
ch_wsconn_send(struct ch_wsconn *ws, bool is_binary, const void *p, size_t n);

/* Bytes queued and not yet written to the socket (the owner bounds it). */
size_t ch_wsconn_queued(const struct ch_wsconn *ws);
bool ch_wsconn_is_open(const struct ch_wsconn *ws);
/* Reads from the socket or stops reading (backpressure: messages already
 * received are still delivered). Reading is on after open. */
void ch_wsconn_set_reading(struct ch_wsconn *ws, bool on);
/* The close code the peer sent (0: none yet). */
unsigned ch_wsconn_close_code(const struct ch_wsconn *ws);
/* The peer as given to connect/accept. */
const char *ch_wsconn_peer(const struct ch_wsconn *ws);
/* The owner's pointer given to connect/accept. */
void *ch_wsconn_data(const struct ch_wsconn *ws);

/* Closes the connection: a close frame (1000) is sent if the socket takes
 * it at once, then the socket is closed; what was queued and not written
 * is dropped. No callback fires after this call (also none pending).
 * Safe to call from inside any of the connection's callbacks. */
void ch_wsconn_close(struct ch_wsconn *ws);

#endif
