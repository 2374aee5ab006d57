/* wslay I/O over in-memory buffers, shared by the gateway's connections and
 * the cluster's link client (DESIGN: wslay callbacks make no syscalls).
 * recv hands wslay bytes the connection already read into `in` (from
 * *in_off on); send appends frames to `out` until it holds `chunk` bytes,
 * then says WOULDBLOCK so one socket write carries many frames. */
#ifndef CHORUS_COMMON_WSIO_H
#define CHORUS_COMMON_WSIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wslay/wslay.h>

#include "common/buf.h"

ssize_t ch_wsio_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                     const struct ch_buf *in, size_t *in_off);
ssize_t ch_wsio_send(wslay_event_context_ptr ctx, const uint8_t *data,
                     size_t len, struct ch_buf *out, size_t chunk);

#endif
