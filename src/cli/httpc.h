/* A tiny blocking HTTP/1.1 client for chorusctl: one request per TCP
 * connection (Connection: close), the response parsed with http_parser,
 * bounded in time and size. */
#ifndef CHORUS_CLI_HTTPC_H
#define CHORUS_CLI_HTTPC_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* Largest response body accepted. */
#define HTTPC_MAX_BODY_BYTES (64 * 1024 * 1024)

struct httpc_response {
    int status;                  /* HTTP status code, 0 before a response */
    struct ch_buf body;          /* owned body bytes (NUL-terminated) */
    char errmsg[CH_ERRMSG_SIZE]; /* why the request failed, "" when ok */
};

/* Initialises r (empty). */
void httpc_response_init(struct httpc_response *r);
/* Frees the body held by r. */
void httpc_response_free(struct httpc_response *r);

/* Sends `method path` to hostport ("HOST:PORT") with the extra header lines
 * in headers (NULL-terminated array of "Name: value", borrowed; may be NULL)
 * and body (borrowed, body_n bytes; sent with Content-Length when body is
 * not NULL). Waits up to connect_timeout_ms for the connection and
 * timeout_ms for the whole response after it. Fills r (initialised by the
 * caller) with the status and body of any HTTP answer, including 4xx/5xx.
 * Returns 0 when a response arrived, else CH_EINVAL (bad address),
 * CH_ECONNECT, CH_ETIMEDOUT, CH_EIO, CH_EPROTO (unparsable response),
 * CH_ETOOBIG or CH_ENOMEM, with r->errmsg set to one line. */
__attribute__((warn_unused_result)) int
httpc_request(const char *method, const char *hostport, const char *path,
              const char *const *headers, const void *body, size_t body_n,
              int connect_timeout_ms, int timeout_ms, struct httpc_response *r);

#endif
