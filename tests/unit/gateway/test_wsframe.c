/* Unit tests of the gateway's WebSocket framing (src/gateway/wsframe.c,
 * RFC 6455 §5): client frames built here byte by byte (masked, as a
 * client must), fed whole, split at every byte and back to back; every
 * protocol violation with the close code it must get; the writer checked
 * by reading its frames back.
 *
 * Input is copied into heap buffers of exactly its length, so ASan reports
 * any read past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "gateway/wsframe.h"

#define MAX_MSG 100000

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one client frame: header, mask, masked payload. `len_override`
 * (when not UINT64_MAX) is written as the length instead of n. */
static void frame_ex(struct ch_buf *b, bool fin, uint8_t rsv, unsigned opcode,
                     bool masked, const void *payload, size_t n,
                     uint64_t len_override)
{
    uint8_t h[14];
    size_t hn = 2;
    uint64_t len = len_override != UINT64_MAX ? len_override : n;

    h[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
    h[1] = masked ? 0x80 : 0;
    if (len < 126) {
        h[1] |= (uint8_t)len;
    } else if (len <= 0xFFFF) {
        h[1] |= 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hn = 4;
    } else {
        h[1] |= 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        hn = 10;
    }
    assert_int_equal(ch_buf_append(b, h, hn), 0);
    if (masked)
        assert_int_equal(ch_buf_append(b, MASK, 4), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = ((const uint8_t *)payload)[i];
        if (masked)
            c ^= MASK[i & 3];
        assert_int_equal(ch_buf_append(b, &c, 1), 0);
    }
}

static void frame(struct ch_buf *b, bool fin, unsigned opcode,
                  const char *payload, size_t n)
{
    frame_ex(b, fin, 0, opcode, true, payload, n, UINT64_MAX);
}

struct reader {
    struct ch_ws_reader r;
    char *in; /* heap copy of the input, exactly its length */
    size_t n;
    size_t off;
};

static void reader_start(struct reader *rd, const struct ch_buf *b,
                         uint64_t max)
{
    ch_ws_reader_init(&rd->r, max);
    rd->n = b->len;
    rd->in = malloc(b->len ? b->len : 1);
    assert_non_null(rd->in);
    memcpy(rd->in, b->data, b->len);
    rd->off = 0;
}

static void reader_stop(struct reader *rd)
{
    ch_ws_reader_close(&rd->r);
    free(rd->in);
}

static bool next(struct reader *rd, struct ch_ws_event *ev)
{
    return ch_ws_read(&rd->r, rd->in, rd->n, &rd->off, ev);
}

/* Reads a single event from the frames in b and checks it is an error
 * with `code`. */
static void expect_error(const struct ch_buf *b, uint16_t code)
{
    struct reader rd;
    struct ch_ws_event ev;

    reader_start(&rd, b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_ERROR);
    assert_int_equal(ev.code, code);
    assert_non_null(ev.why);
    reader_stop(&rd);
}

static void test_single_text_frame(void **state)
{
    struct ch_buf b;
    struct reader rd;
    struct ch_ws_event ev;

    (void)state;
    ch_buf_init(&b);
    frame(&b, true, CH_WS_TEXT, "hello", 5);
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_false(ev.binary);
    assert_int_equal(ev.n, 5);
    assert_memory_equal(ev.data, "hello", 5);
    assert_int_equal(rd.off, b.len);
    assert_false(next(&rd, &ev)); /* nothing more */
    reader_stop(&rd);
    ch_buf_free(&b);
}

/* Every payload length around the 126 / 65536 header forms and the
 * eight-byte unmasking, fed whole, and every split of a short frame. */
static void test_lengths_and_splits(void **state)
{
    static const size_t lens[] = {0,  1,   3,   7,   8,    9,     15,    16,
                                  17, 125, 126, 127, 1000, 65535, 65536, 70001};
    char *payload = malloc(70001);
    struct ch_ws_event ev;

    (void)state;
    assert_non_null(payload);
    for (size_t i = 0; i < 70001; i++)
        payload[i] = (char)('a' + (i * 7 + i / 13) % 26);
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        struct ch_buf b;
        struct reader rd;
        ch_buf_init(&b);
        frame(&b, true, CH_WS_BINARY, payload, lens[k]);
        reader_start(&rd, &b, MAX_MSG);
        assert_true(next(&rd, &ev));
        assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
        assert_true(ev.binary);
        assert_int_equal(ev.n, lens[k]);
        if (lens[k] > 0)
            assert_memory_equal(ev.data, payload, lens[k]);
        assert_int_equal(rd.off, b.len);
        reader_stop(&rd);
        ch_buf_free(&b);
    }
    /* A 300-byte frame offered one byte more at a time: no event (and
     * nothing consumed) until the last byte is there. */
    {
        struct ch_buf b;
        ch_buf_init(&b);
        frame(&b, true, CH_WS_TEXT, payload, 300);
        for (size_t cut = 0; cut < b.len; cut++) {
            struct ch_buf part;
            struct reader rd;
            ch_buf_init(&part);
            assert_int_equal(ch_buf_append(&part, b.data, cut), 0);
            reader_start(&rd, &part, MAX_MSG);
            assert_false(next(&rd, &ev));
            assert_int_equal(rd.off, 0);
            reader_stop(&rd);
            ch_buf_free(&part);
        }
        ch_buf_free(&b);
    }
    free(payload);
}

static void test_frames_back_to_back(void **state)
{
    struct ch_buf b;
    struct reader rd;
    struct ch_ws_event ev;

    (void)state;
    ch_buf_init(&b);
    frame(&b, true, CH_WS_TEXT, "one", 3);
    frame(&b, true, CH_WS_PING, "p", 1);
    frame(&b, true, CH_WS_BINARY, "\xff\x00", 2);
    frame(&b, true, CH_WS_PONG, "", 0);
    frame(&b, true, CH_WS_TEXT, "two", 3);
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_memory_equal(ev.data, "one", 3);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_PING);
    assert_int_equal(ev.n, 1);
    assert_memory_equal(ev.data, "p", 1);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_true(ev.binary);
    assert_memory_equal(ev.data, "\xff\x00", 2);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_PONG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_memory_equal(ev.data, "two", 3);
    assert_false(next(&rd, &ev));
    assert_int_equal(rd.off, b.len);
    reader_stop(&rd);
    ch_buf_free(&b);
}

/* A text message in three fragments with a ping between them (§5.4),
 * then an ordinary message: the fragments' state is reset. */
static void test_fragmented_message(void **state)
{
    struct ch_buf b;
    struct reader rd;
    struct ch_ws_event ev;

    (void)state;
    ch_buf_init(&b);
    frame(&b, false, CH_WS_TEXT, "hel", 3);
    frame(&b, true, CH_WS_PING, "x", 1);
    frame(&b, false, CH_WS_CONT, "lo ", 3);
    frame(&b, true, CH_WS_CONT, "w\xc3\xb6rld", 6);
    frame(&b, true, CH_WS_TEXT, "next", 4);
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_PING);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_false(ev.binary);
    assert_int_equal(ev.n, 12);
    assert_memory_equal(ev.data, "hello w\xc3\xb6rld", 12);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_int_equal(ev.n, 4);
    assert_memory_equal(ev.data, "next", 4);
    reader_stop(&rd);
    ch_buf_free(&b);
}

/* A character split between two fragments is valid: the whole message is
 * checked, not each fragment. */
static void test_utf8_across_fragments(void **state)
{
    struct ch_buf b;
    struct reader rd;
    struct ch_ws_event ev;

    (void)state;
    ch_buf_init(&b);
    frame(&b, false, CH_WS_TEXT, "\xe2\x82", 2);
    frame(&b, true, CH_WS_CONT, "\xac", 1);
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
    assert_memory_equal(ev.data, "\xe2\x82\xac", 3);
    reader_stop(&rd);
    ch_buf_free(&b);
}

static void test_close_frames(void **state)
{
    struct ch_ws_event ev;
    struct ch_buf b;
    struct reader rd;

    (void)state;
    /* code and reason */
    ch_buf_init(&b);
    frame(&b, true, CH_WS_CLOSE,
          "\x03\xe8"
          "bye",
          5);
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_CLOSE);
    assert_int_equal(ev.code, 1000);
    reader_stop(&rd);
    ch_buf_free(&b);
    /* no payload: 1005 */
    ch_buf_init(&b);
    frame(&b, true, CH_WS_CLOSE, "", 0);
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_CLOSE);
    assert_int_equal(ev.code, CH_WS_CLOSE_NO_STATUS);
    reader_stop(&rd);
    ch_buf_free(&b);
    /* an application code */
    ch_buf_init(&b);
    frame(&b, true, CH_WS_CLOSE, "\x0f\xa0", 2); /* 4000 */
    reader_start(&rd, &b, MAX_MSG);
    assert_true(next(&rd, &ev));
    assert_int_equal(ev.kind, CH_WS_EV_CLOSE);
    assert_int_equal(ev.code, 4000);
    reader_stop(&rd);
    ch_buf_free(&b);
}

static void test_protocol_errors(void **state)
{
    static const struct {
        const char *name;
        bool fin;
        uint8_t rsv;
        unsigned opcode;
        bool masked;
        const char *payload;
        size_t n;
        uint16_t code;
    } cases[] = {
        {"unmasked", true, 0, CH_WS_TEXT, false, "a", 1, 1002},
        {"rsv1", true, 4, CH_WS_TEXT, true, "a", 1, 1002},
        {"rsv3", true, 1, CH_WS_BINARY, true, "a", 1, 1002},
        {"opcode 3", true, 0, 0x3, true, "a", 1, 1002},
        {"opcode 0xB", true, 0, 0xB, true, "", 0, 1002},
        {"continuation first", true, 0, CH_WS_CONT, true, "a", 1, 1002},
        {"fragmented ping", false, 0, CH_WS_PING, true, "a", 1, 1002},
        {"text not UTF-8", true, 0, CH_WS_TEXT, true, "a\xff", 2, 1007},
        {"text overlong", true, 0, CH_WS_TEXT, true, "\xc0\xaf", 2, 1007},
        {"close one byte", true, 0, CH_WS_CLOSE, true, "\x03", 1, 1002},
        {"close code 999", true, 0, CH_WS_CLOSE, true, "\x03\xe7", 2, 1002},
        {"close code 1005", true, 0, CH_WS_CLOSE, true, "\x03\xed", 2, 1002},
        {"close code 1006", true, 0, CH_WS_CLOSE, true, "\x03\xee", 2, 1002},
        {"close code 5000", true, 0, CH_WS_CLOSE, true, "\x13\x88", 2, 1002},
        {"close reason not UTF-8", true, 0, CH_WS_CLOSE, true, "\x03\xe8\xff",
         3, 1007},
    };
    char big[126];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ch_buf b;
        ch_buf_init(&b);
        frame_ex(&b, cases[i].fin, cases[i].rsv, cases[i].opcode,
                 cases[i].masked, cases[i].payload, cases[i].n, UINT64_MAX);
        print_message("case %s\n", cases[i].name);
        expect_error(&b, cases[i].code);
        ch_buf_free(&b);
    }
    /* a control frame of 126 bytes */
    memset(big, 'p', sizeof big);
    {
        struct ch_buf b;
        ch_buf_init(&b);
        frame(&b, true, CH_WS_PING, big, sizeof big);
        expect_error(&b, 1002);
        ch_buf_free(&b);
    }
    /* a new message while a fragmented one is open */
    {
        struct ch_buf b;
        ch_buf_init(&b);
        frame(&b, false, CH_WS_TEXT, "a", 1);
        frame(&b, true, CH_WS_TEXT, "b", 1);
        expect_error(&b, 1002);
        ch_buf_free(&b);
    }
    /* a 64-bit length with the top bit set (only the header is sent) */
    {
        struct ch_buf b;
        ch_buf_init(&b);
        frame_ex(&b, true, 0, CH_WS_BINARY, true, NULL, 0,
                 0x8000000000000000ULL);
        expect_error(&b, 1002);
        ch_buf_free(&b);
    }
}

/* At the limit: a message of max_msg bytes passes; one byte more is
 * refused from the frame header alone (the payload never has to arrive),
 * in one frame or by its fragments. */
static void test_message_limit(void **state)
{
    const uint64_t max = 1000;
    char *p = malloc(1001);
    struct ch_ws_event ev;

    (void)state;
    assert_non_null(p);
    memset(p, 'm', 1001);
    {
        struct ch_buf b;
        struct reader rd;
        ch_buf_init(&b);
        frame(&b, true, CH_WS_TEXT, p, 1000);
        reader_start(&rd, &b, max);
        assert_true(next(&rd, &ev));
        assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
        assert_int_equal(ev.n, 1000);
        reader_stop(&rd);
        ch_buf_free(&b);
    }
    {
        struct ch_buf b;
        struct reader rd;
        ch_buf_init(&b);
        frame_ex(&b, true, 0, CH_WS_TEXT, true, NULL, 0, 1001); /* header */
        reader_start(&rd, &b, max);
        assert_true(next(&rd, &ev));
        assert_int_equal(ev.kind, CH_WS_EV_ERROR);
        assert_int_equal(ev.code, CH_WS_CLOSE_TOO_BIG);
        reader_stop(&rd);
        ch_buf_free(&b);
    }
    {
        struct ch_buf b;
        struct reader rd;
        ch_buf_init(&b);
        frame(&b, false, CH_WS_BINARY, p, 600);
        frame_ex(&b, true, 0, CH_WS_CONT, true, NULL, 0, 401); /* header */
        reader_start(&rd, &b, max);
        assert_true(next(&rd, &ev));
        assert_int_equal(ev.kind, CH_WS_EV_ERROR);
        assert_int_equal(ev.code, CH_WS_CLOSE_TOO_BIG);
        reader_stop(&rd);
        ch_buf_free(&b);
    }
    {
        struct ch_buf b;
        struct reader rd;
        ch_buf_init(&b);
        frame(&b, false, CH_WS_BINARY, p, 600);
        frame(&b, true, CH_WS_CONT, p, 400);
        reader_start(&rd, &b, max);
        assert_true(next(&rd, &ev));
        assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
        assert_int_equal(ev.n, 1000);
        reader_stop(&rd);
        ch_buf_free(&b);
    }
    free(p);
}

/* The writer's frames, masked the way a client would and read back. */
static void test_writer_round_trip(void **state)
{
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
    char *p = malloc(70000);
    uint8_t hdr[CH_WS_MAX_HEADER];

    (void)state;
    assert_non_null(p);
    for (size_t i = 0; i < 70000; i++)
        p[i] = (char)(i * 31);
    assert_int_equal(ch_ws_frame_header(hdr, CH_WS_TEXT, 125), 2);
    assert_int_equal(hdr[0], 0x81);
    assert_int_equal(hdr[1], 125);
    assert_int_equal(ch_ws_frame_header(hdr, CH_WS_BINARY, 126), 4);
    assert_int_equal(hdr[0], 0x82);
    assert_int_equal(hdr[1], 126);
    assert_int_equal(ch_ws_frame_header(hdr, CH_WS_BINARY, 65536), 10);
    assert_int_equal(hdr[1], 127);
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        struct ch_buf out, masked;
        struct reader rd;
        struct ch_ws_event ev;
        size_t hn;
        ch_buf_init(&out);
        ch_buf_init(&masked);
        assert_int_equal(ch_ws_write_frame(&out, CH_WS_BINARY, p, lens[k]), 0);
        hn = out.len - lens[k];
        assert_int_equal((uint8_t)out.data[0], 0x82);     /* FIN, binary */
        assert_int_equal((uint8_t)out.data[1] & 0x80, 0); /* not masked */
        frame(&masked, true, CH_WS_BINARY, out.data + hn, lens[k]);
        reader_start(&rd, &masked, MAX_MSG);
        assert_true(next(&rd, &ev));
        assert_int_equal(ev.kind, CH_WS_EV_MESSAGE);
        assert_int_equal(ev.n, lens[k]);
        if (lens[k] > 0)
            assert_memory_equal(ev.data, p, lens[k]);
        reader_stop(&rd);
        ch_buf_free(&out);
        ch_buf_free(&masked);
    }
    {
        struct ch_buf out;
        ch_buf_init(&out);
        assert_int_equal(ch_ws_write_close(&out, 1009), 0);
        assert_int_equal(out.len, 4);
        assert_memory_equal(out.data, "\x88\x02\x03\xf1", 4);
        out.len = 0;
        assert_int_equal(ch_ws_write_close(&out, CH_WS_CLOSE_NO_STATUS), 0);
        assert_int_equal(out.len, 2);
        assert_memory_equal(out.data, "\x88\x00", 2);
        ch_buf_free(&out);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_text_frame),
        cmocka_unit_test(test_lengths_and_splits),
        cmocka_unit_test(test_frames_back_to_back),
        cmocka_unit_test(test_fragmented_message),
        cmocka_unit_test(test_utf8_across_fragments),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_message_limit),
        cmocka_unit_test(test_writer_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
