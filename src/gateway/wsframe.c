/* WebSocket framing, server side (RFC 6455 §5): see wsframe.h. */
#include "gateway/wsframe.h"

#include "common/err.h"
#include "common/validate.h"

#include <string.h>

void ch_ws_reader_init(struct ch_ws_reader *r, uint64_t max_msg)
{
    memset(r, 0, sizeof *r);
    r->max_msg = max_msg;
    ch_buf_init(&r->frag);
}

void ch_ws_reader_close(struct ch_ws_reader *r)
{
    ch_buf_free(&r->frag);
    r->frag_opcode = 0;
    r->frag_done = false;
}

static bool fail(struct ch_ws_event *ev, uint16_t code, const char *why)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = CH_WS_EV_ERROR;
    ev->code = code;
    ev->why = why;
    return true;
}

/* XORs p with the 4-byte mask, eight bytes at a time (§5.3). */
static void unmask(char *p, size_t n, const uint8_t mask[4])
{
    uint64_t m8;
    uint32_t m4;
    size_t i = 0;

    memcpy(&m4, mask, 4);
    m8 = ((uint64_t)m4 << 32) | m4;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] = (char)((uint8_t)p[i] ^ mask[i & 3]);
}

/* §7.4: codes a peer may send. */
static bool close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A complete control frame (payload unmasked). */
static bool control_event(unsigned opcode, char *p, size_t n,
                          struct ch_ws_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->data = p;
    ev->n = n;
    if (opcode == CH_WS_PING) {
        ev->kind = CH_WS_EV_PING;
        return true;
    }
    if (opcode == CH_WS_PONG) {
        ev->kind = CH_WS_EV_PONG;
        return true;
    }
    ev->kind = CH_WS_EV_CLOSE;
    ev->code = CH_WS_CLOSE_NO_STATUS;
    if (n == 1)
        return fail(ev, CH_WS_CLOSE_PROTOCOL, "close frame of one byte");
    if (n >= 2) {
        ev->code = (uint16_t)get_be((const uint8_t *)p, 2);
        if (!close_code_valid(ev->code))
            return fail(ev, CH_WS_CLOSE_PROTOCOL, "bad close code");
        if (!ch_valid_utf8(p + 2, n - 2))
            return fail(ev, CH_WS_CLOSE_BAD_DATA, "close reason not UTF-8");
    }
    return true;
}

static bool message_event(bool binary, char *p, size_t n,
                          struct ch_ws_event *ev)
{
    if (!binary && !ch_valid_utf8(p, n))
        return fail(ev, CH_WS_CLOSE_BAD_DATA, "text message not UTF-8");
    memset(ev, 0, sizeof *ev);
    ev->kind = CH_WS_EV_MESSAGE;
    ev->binary = binary;
    ev->data = p;
    ev->n = n;
    return true;
}

bool ch_ws_read(struct ch_ws_reader *r, char *in, size_t n, size_t *off,
                struct ch_ws_event *ev)
{
    CH_ASSERT(*off <= n && (in != NULL || n == 0));
    CH_ASSERT(r->frag_opcode == 0 || r->frag_opcode == CH_WS_TEXT ||
              r->frag_opcode == CH_WS_BINARY);
    if (r->frag_done) {
        r->frag.len = 0;
        r->frag_done = false;
    }
    for (;;) {
        const uint8_t *h = (const uint8_t *)in + *off;
        size_t avail = n - *off;
        size_t hdr = 2;
        uint64_t len;
        unsigned opcode;
        bool fin;
        char *payload;

        if (avail < 2)
            return false;
        fin = (h[0] & 0x80) != 0;
        opcode = h[0] & 0x0F;
        len = h[1] & 0x7F;
        if ((h[0] & 0x70) != 0)
            return fail(ev, CH_WS_CLOSE_PROTOCOL, "reserved bits set");
        if ((h[1] & 0x80) == 0)
            return fail(ev, CH_WS_CLOSE_PROTOCOL, "client frame not masked");
        if (opcode & 0x8) {
            if (opcode != CH_WS_CLOSE && opcode != CH_WS_PING &&
                opcode != CH_WS_PONG)
                return fail(ev, CH_WS_CLOSE_PROTOCOL, "unknown opcode");
            if (!fin || len > CH_WS_MAX_CONTROL)
                return fail(ev, CH_WS_CLOSE_PROTOCOL,
                            "fragmented or long control frame");
        } else if (opcode == CH_WS_CONT) {
            if (r->frag_opcode == 0)
                return fail(ev, CH_WS_CLOSE_PROTOCOL,
                            "continuation without a message");
        } else if (opcode == CH_WS_TEXT || opcode == CH_WS_BINARY) {
            if (r->frag_opcode != 0)
                return fail(ev, CH_WS_CLOSE_PROTOCOL,
                            "new message inside a fragmented one");
        } else {
            return fail(ev, CH_WS_CLOSE_PROTOCOL, "unknown opcode");
        }
        if (len == 126) {
            hdr = 4;
            if (avail < hdr)
                return false;
            len = get_be(h + 2, 2);
        } else if (len == 127) {
            hdr = 10;
            if (avail < hdr)
                return false;
            len = get_be(h + 2, 8);
            if (len >> 63)
                return fail(ev, CH_WS_CLOSE_PROTOCOL, "frame length too big");
        }
        if ((opcode & 0x8) == 0 &&
            (len > r->max_msg ||
             (opcode == CH_WS_CONT && r->frag.len > r->max_msg - len)))
            return fail(ev, CH_WS_CLOSE_TOO_BIG, "message too big");
        hdr += 4; /* the mask */
        if (avail < hdr || avail - hdr < len)
            return false;
        payload = in + *off + hdr;
        unmask(payload, (size_t)len, h + hdr - 4);
        *off += hdr + (size_t)len;
        CH_ASSERT(*off <= n);

        if (opcode & 0x8)
            return control_event(opcode, payload, (size_t)len, ev);
        if (opcode != CH_WS_CONT && fin) /* the common case: one frame */
            return message_event(opcode == CH_WS_BINARY, payload, (size_t)len,
                                 ev);
        if (opcode != CH_WS_CONT) {
            r->frag_opcode = (uint8_t)opcode;
            r->frag.len = 0;
        }
        if (ch_buf_append(&r->frag, payload, (size_t)len) != 0)
            return fail(ev, CH_WS_CLOSE_INTERNAL, "out of memory");
        CH_ASSERT(r->frag.len <= r->max_msg); /* checked from the header */
        if (fin) {
            bool binary = r->frag_opcode == CH_WS_BINARY;
            r->frag_opcode = 0;
            r->frag_done = true;
            return message_event(binary, r->frag.data, r->frag.len, ev);
        }
    }
}

size_t ch_ws_frame_header(uint8_t hdr[CH_WS_MAX_HEADER], unsigned opcode,
                          uint64_t n)
{
    CH_ASSERT(opcode <= 0xF &&
              (opcode < CH_WS_CLOSE || n <= CH_WS_MAX_CONTROL));
    CH_ASSERT((n >> 63) == 0); /* §5.2: the most significant bit is 0 */
    hdr[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (n < 126) {
        hdr[1] = (uint8_t)n;
        return 2;
    }
    if (n <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(n >> 8);
        hdr[3] = (uint8_t)n;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    return 10;
}

int ch_ws_write_frame(struct ch_buf *out, unsigned opcode, const void *p,
                      size_t n)
{
    uint8_t hdr[CH_WS_MAX_HEADER];
    size_t hn = ch_ws_frame_header(hdr, opcode, n);

    if (ch_buf_reserve(out, hn + n) != 0)
        return CH_ENOMEM;
    memcpy(out->data + out->len, hdr, hn);
    if (n > 0)
        memcpy(out->data + out->len + hn, p, n);
    out->len += hn + n;
    return 0;
}

int ch_ws_write_close(struct ch_buf *out, uint16_t code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    if (code == CH_WS_CLOSE_NO_STATUS)
        return ch_ws_write_frame(out, CH_WS_CLOSE, NULL, 0);
    return ch_ws_write_frame(out, CH_WS_CLOSE, p, sizeof p);
}
