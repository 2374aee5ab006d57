/* wslay I/O over in-memory buffers. */
#include "common/wsio.h"

#include <string.h>

ssize_t ch_wsio_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                     const struct ch_buf *in, size_t *in_off)
{
    size_t avail = in->len - *in_off;

    if (avail == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > avail)
        len = avail;
    memcpy(buf, in->data + *in_off, len);
    *in_off += len;
    return (ssize_t)len;
}

ssize_t ch_wsio_send(wslay_event_context_ptr ctx, const uint8_t *data,
                     size_t len, struct ch_buf *out, size_t chunk)
{
    if (out->len >= chunk) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > chunk - out->len)
        len = chunk - out->len;
    if (ch_buf_append(out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
        return -1;
    }
    return (ssize_t)len;
}
