/* The WebSocket opening handshake (RFC 6455 §4), both ends, written once:
 * the client's key and upgrade request, the server's 101 answer with its
 * Sec-WebSocket-Accept, and the client's check of that answer. The
 * gateway (server), the node-to-node link (both ends, through wsconn.h)
 * and the tools all use these; nothing else computes an accept value. */
#ifndef CHORUS_COMMON_WS_HANDSHAKE_H
#define CHORUS_COMMON_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Length of a Sec-WebSocket-Key / Sec-WebSocket-Accept value plus NUL. */
#define CH_WS_KEY_SIZE 32
/* Longest client key the server takes (a valid one has 24 characters). */
#define CH_WS_MAX_CLIENT_KEY 60
/* Bytes of an upgrade response head the client reads at most. */
#define CH_WS_MAX_RESPONSE_HEAD 8192

/* Fills key (CH_WS_KEY_SIZE bytes) with a fresh random base64
 * Sec-WebSocket-Key (§4.1). Returns 0 or CH_EIO (no randomness). */
__attribute__((warn_unused_result)) int ch_ws_make_key(char *key);

/* Computes the Sec-WebSocket-Accept value for key into accept
 * (CH_WS_KEY_SIZE bytes): base64(SHA-1(key + GUID)), §4.2.2.
 * Returns 0, CH_EINVAL (key longer than CH_WS_MAX_CLIENT_KEY) or CH_EIO. */
__attribute__((warn_unused_result)) int ch_ws_accept_for_key(const char *key,
                                                             char *accept);

/* Writes the client's upgrade request for host_header / path / key into
 * buf (size bytes, NUL-terminated). Returns its length, or CH_ETOOBIG. */
__attribute__((warn_unused_result)) int
ch_ws_format_upgrade(char *buf, size_t size, const char *host_header,
                     const char *path, const char *key);

/* Writes the server's "101 Switching Protocols" answer to a request that
 * carried `key` into buf (size bytes, NUL-terminated). Returns its length,
 * or CH_EINVAL (bad key) / CH_ETOOBIG / CH_EIO. */
__attribute__((warn_unused_result)) int
ch_ws_format_accepted(char *buf, size_t size, const char *key);

/* The client's incremental parser of the server's upgrade response. */
struct ch_ws_handshake {
    char accept_expected[CH_WS_KEY_SIZE]; /* from the key we sent */
    char buf[CH_WS_MAX_RESPONSE_HEAD];    /* response bytes so far */
    size_t len;                           /* bytes in buf */
};

/* Prepares hs for a request sent with key. Returns 0 or CH_EIO. */
__attribute__((warn_unused_result)) int
ch_ws_handshake_init(struct ch_ws_handshake *hs, const char *key);

/* Feeds n response bytes. Returns 0 while the response head is incomplete
 * (*done false); once it is complete, checks status 101, Upgrade and
 * Sec-WebSocket-Accept, sets *done and *used to the number of bytes of data
 * that belong to the head (the rest are already WebSocket frames).
 * Returns CH_EPROTO with errmsg (CH_ERRMSG_SIZE) set when the server
 * refused or answered badly (a wrong accept value included), CH_ETOOBIG
 * when the head exceeds CH_WS_MAX_RESPONSE_HEAD. */
__attribute__((warn_unused_result)) int
ch_ws_handshake_feed(struct ch_ws_handshake *hs, const char *data, size_t n,
                     bool *done, size_t *used, char *errmsg);

#endif
