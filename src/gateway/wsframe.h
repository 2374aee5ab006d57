/* WebSocket framing (RFC 6455 §5) for the server side of a connection:
 * reads client frames (masked) in place and writes server frames
 * (unmasked) straight into an output buffer. No I/O and no allocation per
 * frame: a message sent in one frame is handed out where it lies in the
 * input, unmasked in place; only fragmented messages are copied together.
 *
 * Replaces wslay on the gateway (clients still use wslay): profiles showed
 * wslay unmasking and UTF-8-checking byte by byte (31 % of the leader's CPU
 * at 1 KiB publishes), one malloc and copy per queued outgoing message, and
 * ~8 KiB of buffers per connection. */
#ifndef CHORUS_GATEWAY_WSFRAME_H
#define CHORUS_GATEWAY_WSFRAME_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opcodes (§5.2). */
#define CH_WS_CONT 0x0
#define CH_WS_TEXT 0x1
#define CH_WS_BINARY 0x2
#define CH_WS_CLOSE 0x8
#define CH_WS_PING 0x9
#define CH_WS_PONG 0xA

/* Close codes (§7.4.1). */
#define CH_WS_CLOSE_NORMAL 1000
#define CH_WS_CLOSE_PROTOCOL 1002
#define CH_WS_CLOSE_NO_STATUS 1005 /* received close without a code */
#define CH_WS_CLOSE_BAD_DATA 1007
#define CH_WS_CLOSE_TOO_BIG 1009
#define CH_WS_CLOSE_INTERNAL 1011

/* A control frame's payload limit (§5.5) and the largest frame header. */
#define CH_WS_MAX_CONTROL 125
#define CH_WS_MAX_HEADER 14

enum ch_ws_event_kind {
    CH_WS_EV_MESSAGE, /* a whole text or binary message */
    CH_WS_EV_PING,
    CH_WS_EV_PONG,
    CH_WS_EV_CLOSE, /* the peer's close frame; answer it and stop */
    CH_WS_EV_ERROR, /* a protocol violation; close with `code` and stop */
};

struct ch_ws_event {
    enum ch_ws_event_kind kind;
    bool binary; /* MESSAGE: binary (else text, valid UTF-8) */
    char *data;  /* payload, valid until the next ch_ws_read */
    size_t n;
    uint16_t code;   /* CLOSE: the peer's code (1005: none); ERROR: ours */
    const char *why; /* ERROR: what was wrong, for the log */
};

struct ch_ws_reader {
    uint64_t max_msg;    /* payload bytes of one message (frames joined) */
    struct ch_buf frag;  /* fragments of the message being joined */
    uint8_t frag_opcode; /* TEXT/BINARY while joining, else 0 */
    bool frag_done;      /* frag was handed out: reset on the next read */
};

void ch_ws_reader_init(struct ch_ws_reader *r, uint64_t max_msg);
void ch_ws_reader_close(struct ch_ws_reader *r);

/* Reads the next event from in[*off, n). Returns true with *ev set and
 * *off past the frames used; false when no complete frame is there yet
 * (call again with more bytes). Payload bytes are unmasked in place. A
 * frame that would make a message longer than max_msg is refused from its
 * header (ERROR 1009) before it arrives whole; running out of memory while
 * joining fragments is ERROR 1011. After ERROR or CLOSE the caller stops
 * reading. */
bool ch_ws_read(struct ch_ws_reader *r, char *in, size_t n, size_t *off,
                struct ch_ws_event *ev);

/* Writes the header of an unmasked final frame with `n` payload bytes into
 * hdr; returns its length. */
size_t ch_ws_frame_header(uint8_t hdr[CH_WS_MAX_HEADER], unsigned opcode,
                          uint64_t n);

/* Appends one unmasked final frame. Returns 0 or CH_ENOMEM. */
__attribute__((warn_unused_result)) int
ch_ws_write_frame(struct ch_buf *out, unsigned opcode, const void *p, size_t n);

/* Appends a close frame with `code` (none when 1005) and no reason. */
__attribute__((warn_unused_result)) int ch_ws_write_close(struct ch_buf *out,
                                                          uint16_t code);

#endif
