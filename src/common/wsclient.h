/* A small blocking WebSocket client (RFC 6455) for the CLI tools and tests:
 * one plain TCP connection, HTTP upgrade, then whole messages in and out
 * with a timeout each. Framing, masking, ping/pong, fragmentation and the
 * close handshake are done by wslay's event API over a non-blocking socket
 * driven with poll(2). Not thread-safe: one thread per client.
 *
 * The TCP connect and handshake helpers are public so that the HTTP client
 * (src/cli/httpc.c) and the event-driven bench (src/cli/bench.c) reuse them
 * instead of copying them. */
#ifndef CHORUS_COMMON_WSCLIENT_H
#define CHORUS_COMMON_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Opaque client. */
struct ch_wsc;

/* Length of a Sec-WebSocket-Key / Sec-WebSocket-Accept value plus NUL. */
#define CH_WS_KEY_SIZE 32

/* Splits "HOST:PORT" ("[V6]:PORT" also accepted) into host and port
 * strings. Returns 0 or CH_EINVAL (missing port, overlong host). */
__attribute__((warn_unused_result)) int
ch_hostport_split(const char *hostport, char *host, size_t host_size,
                  char *port, size_t port_size);

/* Resolves "HOST:PORT" (getaddrinfo, blocking) and connects a TCP socket
 * within timeout_ms (< 0: no limit). On success *fd is a connected socket in
 * non-blocking mode, with TCP_NODELAY and close-on-exec; the caller owns it.
 * On failure errmsg (CH_ERRMSG_SIZE bytes) gets one line such as
 * "cannot connect to 127.0.0.1:8080: Connection refused".
 * Returns 0, CH_EINVAL (bad address), CH_ECONNECT or CH_ETIMEDOUT. */
__attribute__((warn_unused_result)) int
ch_tcp_connect(const char *hostport, int timeout_ms, int *fd, char *errmsg);

/* Blocking-socket helpers shared by the CLI clients (monotonic ms; a
 * deadline < 0 means none). */
long long ch_deadline_after(int timeout_ms);
/* Waits until fd is ready for `events` (POLLIN/POLLOUT) or the deadline
 * passes. Returns 0, CH_ETIMEDOUT ("timed out <what>") or CH_EIO, with the
 * reason in errmsg (CH_ERRMSG_SIZE bytes). */
int ch_fd_wait(int fd, short events, long long deadline, const char *what,
               char *errmsg);
/* Sends all of data on the non-blocking socket fd before the deadline.
 * Returns 0, CH_ETIMEDOUT or CH_EIO with the reason in errmsg. */
int ch_fd_send_all(int fd, const void *data, size_t n, long long deadline,
                   const char *what, char *errmsg);

/* Fills key (CH_WS_KEY_SIZE bytes) with a fresh random base64
 * Sec-WebSocket-Key (RFC 6455 §4.1). Returns 0 or CH_EIO (no randomness). */
__attribute__((warn_unused_result)) int ch_ws_make_key(char *key);

/* Computes the Sec-WebSocket-Accept value for key into accept
 * (CH_WS_KEY_SIZE bytes): base64(SHA-1(key + GUID)), RFC 6455 §4.2.2.
 * Returns 0 or CH_EIO. */
__attribute__((warn_unused_result)) int ch_ws_accept_for_key(const char *key,
                                                             char *accept);

/* Writes the HTTP upgrade request for host_header / path / key into buf
 * (size bytes, NUL-terminated). Returns its length, or CH_ETOOBIG. */
__attribute__((warn_unused_result)) int
ch_ws_format_upgrade(char *buf, size_t size, const char *host_header,
                     const char *path, const char *key);

/* Incremental parser of the server's upgrade response. */
struct ch_ws_handshake {
    char accept_expected[CH_WS_KEY_SIZE]; /* from the key we sent */
    char buf[8192];                       /* response bytes so far */
    size_t len;                           /* bytes in buf */
};

/* Prepares hs for a request sent with key. Returns 0 or CH_EIO. */
__attribute__((warn_unused_result)) int
ch_ws_handshake_init(struct ch_ws_handshake *hs, const char *key);

/* Feeds n response bytes. Returns 0 while the response head is incomplete
 * (*done false); once it is complete, checks status 101, Upgrade and
 * Sec-WebSocket-Accept, sets *done and *used to the number of bytes of data
 * that belong to the head (the rest are already WebSocket frames).
 * Returns CH_EPROTO with errmsg set when the server refused or answered
 * badly, CH_ETOOBIG when the head exceeds the buffer. */
__attribute__((warn_unused_result)) int
ch_ws_handshake_feed(struct ch_ws_handshake *hs, const char *data, size_t n,
                     bool *done, size_t *used, char *errmsg);

/* Creates a client that accepts messages of at most max_msg_bytes (a larger
 * one fails the connection with close code 1009). Returns owned; free with
 * ch_wsc_destroy(). Returns 0 or CH_ENOMEM. */
__attribute__((warn_unused_result)) int ch_wsc_create(size_t max_msg_bytes,
                                                      struct ch_wsc **out);

/* Connects to hostport and upgrades `path` (e.g. "/stream/user/chorusctl")
 * within timeout_ms for connect and handshake each. Bytes that arrive
 * after the response head are kept for ch_wsc_recv(). Returns 0, CH_EINVAL,
 * CH_ECONNECT, CH_ETIMEDOUT, CH_EPROTO (refused upgrade, bad accept),
 * CH_EIO or CH_ENOMEM; the text is in ch_wsc_errmsg(). */
__attribute__((warn_unused_result)) int ch_wsc_connect(struct ch_wsc *c,
                                                       const char *hostport,
                                                       const char *path,
                                                       int timeout_ms);

/* Sends one unfragmented message (text, or binary when is_binary) and waits
 * up to timeout_ms (< 0: no limit) until it is written to the socket.
 * data is borrowed for the call. Returns 0, CH_ETIMEDOUT, CH_ESHUTDOWN
 * (interrupted by a signal), CH_EIO (socket error or closed connection). */
__attribute__((warn_unused_result)) int ch_wsc_send(struct ch_wsc *c,
                                                    bool is_binary,
                                                    const void *data, size_t n,
                                                    int timeout_ms);

/* Receives the next whole data message within timeout_ms (< 0: no limit;
 * 0: only what is already buffered or readable). Pings are answered and
 * fragments joined on the way. On success *data is owned by the caller
 * (free with ch_free(); NUL-terminated, *n excludes the NUL) and *is_binary
 * tells the opcode. Returns 0, CH_ETIMEDOUT, CH_ESHUTDOWN (interrupted by a
 * signal: poll returned EINTR), CH_EIO (socket error, connection closed by
 * the server: the text says which, with the close code), CH_ETOOBIG (message
 * over the limit), CH_EPROTO (bad frames) or CH_ENOMEM. */
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
