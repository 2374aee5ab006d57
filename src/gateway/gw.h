/* The gateway: HTTP/1.1 and WebSocket on one port, the guble-compatible
 * client protocol (docs/protocol.md), subscriptions, REST and admin API
 * (docs/protocol.md "HTTP API"). Runs on the node's loop thread; reads the
 * store directly (memory-mapped read transactions) and writes only through the
 * cluster. */
#ifndef CHORUS_GATEWAY_GW_H
#define CHORUS_GATEWAY_GW_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster/cluster.h"

struct gw;

struct gw_config {
    const char *http_addr;    /* HOST:PORT to listen on (borrowed) */
    size_t max_message_bytes; /* body limit of one publish */
    size_t max_conn_buffer;   /* output bytes queued per client */
    size_t max_connections;   /* client connections at once */
};

/* Creates the gateway; borrows loop and cluster until gw_destroy. Registers
 * itself as the cluster's applied callback. */
int gw_create(uv_loop_t *loop, const struct gw_config *cfg,
              struct cluster *cluster, struct gw **out, char *errmsg);
/* Binds and listens. Returns 0, or CH_EIO with e.g. "address in use". */
int gw_start(struct gw *gw, char *errmsg);
/* Stops accepting new connections (first step of shutdown). */
void gw_stop_accepting(struct gw *gw);

typedef void (*gw_close_cb)(struct gw *gw, void *arg);
/* Closes every connection (after a bounded flush of queued output) and the
 * listener; then cb. */
void gw_close(struct gw *gw, gw_close_cb cb, void *arg);
void gw_destroy(struct gw *gw);

#endif
