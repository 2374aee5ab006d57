/* Address checks (shared with chorusd's flag checks) and blocking socket
 * helpers for the command-line tools (chorusctl's HTTP client, chorus-bench):
 * split HOST:PORT, connect a TCP socket with a timeout, wait for readiness
 * and send everything before a deadline. The daemon never blocks: it uses
 * only ch_hostport_split and ch_hostport_valid. */
#ifndef CHORUS_COMMON_NET_H
#define CHORUS_COMMON_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Splits "HOST:PORT" ("[V6]:PORT" also accepted) into host and port
 * strings. Returns 0 or CH_EINVAL (missing port, overlong host). */
__attribute__((warn_unused_result)) int
ch_hostport_split(const char *hostport, char *host, size_t host_size,
                  char *port, size_t port_size);

/* True when hostport is "HOST:PORT" ("[V6]:PORT") with a non-empty host of
 * at most CH_MAX_ADDR_BYTES and a port from 1 to 65535. Nothing is
 * resolved. */
bool ch_hostport_valid(const char *hostport);

struct addrinfo;

/* Resolves "HOST:PORT" (getaddrinfo, blocking, any family) into *res,
 * owned by the caller (free with freeaddrinfo). Returns 0, CH_EINVAL (bad
 * address) or CH_ECONNECT (cannot resolve) with one line in errmsg
 * (CH_ERRMSG_SIZE bytes). */
__attribute__((warn_unused_result)) int
ch_resolve(const char *hostport, struct addrinfo **res, char *errmsg);

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

#endif
