/* A blocking WebSocket client (RFC 6455) for chorusctl: connect and
 * upgrade, then whole messages in and out, each call bounded by a timeout.
 * It is the event-driven client of wsconn.h (wslay framing, the checked
 * handshake) driven by a private libuv loop that each call runs until its
 * condition holds or its time is up. Not thread-safe: one thread per
 * client. */
#ifndef CHORUS_COMMON_WSCLIENT_H
#define CHORUS_COMMON_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Opaque client. */
struct ch_wsc;

/* Creates a client that accepts messages of at most max_msg_bytes (a larger
 * one fails the connection with close code 1009). Returns owned; free with
 * ch_wsc_destroy(). Returns 0 or CH_ENOMEM. */
__attribute__((warn_unused_result)) int ch_wsc_create(size_t max_msg_bytes,
                                                      struct ch_wsc **out);

/* Connects to hostport and upgrades `path` (e.g. "/stream/user/chorusctl")
 * within timeout_ms (resolution, connect and handshake; < 0: no limit).
 * Frames that arrive with the answer are kept for ch_wsc_recv(). The
 * server's Sec-WebSocket-Accept is checked. Returns 0, CH_EINVAL,
 * CH_ECONNECT, CH_ETIMEDOUT, CH_EPROTO (refused upgrade, bad accept),
 * CH_EIO or CH_ENOMEM; the text is in ch_wsc_errmsg(). */
__attribute__((warn_unused_result)) int ch_wsc_connect(struct ch_wsc *c,
                                                       const char *hostport,
                                                       const char *path,
                                                       int timeout_ms);

/* Sends one unfragmented message (text, or binary when is_binary) and waits
 * up to timeout_ms (< 0: no limit) until it is written to the socket.
 * data is borrowed for the call. Returns 0, CH_ETIMEDOUT, CH_ENOMEM or
 * CH_EIO (socket error or closed connection). */
__attribute__((warn_unused_result)) int ch_wsc_send(struct ch_wsc *c,
                                                    bool is_binary,
                                                    const void *data, size_t n,
                                                    int timeout_ms);

/* Receives the next whole data message within timeout_ms (< 0: no limit;
 * 0: only what is already buffered or readable). Pings are answered and
 * fragments joined on the way. On success *data is owned by the caller
 * (free with ch_free(); NUL-terminated, *n excludes the NUL) and *is_binary
 * tells the opcode. Returns 0, CH_ETIMEDOUT, CH_EIO (socket error,
 * connection closed by the server: the text says which, with the close
 * code), CH_ETOOBIG (message over the limit), CH_EPROTO (bad frames) or
 * CH_ENOMEM; once the connection ended, after the messages received
 * before, the same code again (also when it ended during another call). */
__attribute__((warn_unused_result)) int ch_wsc_recv(struct ch_wsc *c,
                                                    int timeout_ms,
                                                    bool *is_binary,
                                                    char **data, size_t *n);

/* Text of the last failure ("" when none); valid until the next call. */
const char *ch_wsc_errmsg(const struct ch_wsc *c);

/* Sends a close frame (best effort, short wait), closes the socket and
 * frees c. NULL is allowed. */
void ch_wsc_destroy(struct ch_wsc *c);

#endif
