/* Unit tests of src/common/codec.c: raft command and stored record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/err.h"

#define B(s) ((struct ch_bytes){.p = (s), .n = sizeof(s) - 1})

static struct ch_msg make_msg(struct ch_bytes path, struct ch_bytes user,
                              struct ch_bytes app, struct ch_bytes msgid,
                              struct ch_bytes header, struct ch_bytes body)
{
    struct ch_msg m;

    memset(&m, 0, sizeof(m));
    m.path = path;
    m.user = user;
    m.app = app;
    m.msgid = msgid;
    m.header = header;
    m.body = body;
    return m;
}

static void assert_bytes_eq(struct ch_bytes got, struct ch_bytes want)
{
    assert_int_equal(got.n, want.n);
    if (want.n > 0)
        assert_memory_equal(got.p, want.p, want.n);
}

/* The decoded byte fields must point into the entry (zero-copy). */
static void assert_inside(struct ch_bytes b, const void *buf, size_t len)
{
    const char *p = buf;

    if (b.n == 0)
        return;
    assert_true(b.p >= p && b.p + b.n <= p + len);
}

static void assert_msg_fields_eq(const struct ch_msg *got,
                                 const struct ch_msg *want)
{
    assert_bytes_eq(got->path, want->path);
    assert_bytes_eq(got->user, want->user);
    assert_bytes_eq(got->app, want->app);
    assert_bytes_eq(got->msgid, want->msgid);
    assert_bytes_eq(got->header, want->header);
    assert_bytes_eq(got->body, want->body);
}

/* Encodes msgs into a finished entry (malloc'd). */
static void *encode(const struct ch_msg *msgs, size_t n, int64_t time,
                    int64_t window, size_t *len)
{
    struct ch_batch_enc e;
    void *out = NULL;

    ch_batch_enc_init(&e);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ch_batch_enc_add(&e, &msgs[i]), 0);
    assert_int_equal(ch_batch_enc_finish(&e, time, window, malloc, &out, len),
                     0);
    assert_int_equal(*len, ch_batch_enc_size(&e));
    ch_batch_enc_close(&e);
    return out;
}

static void test_cmd_round_trip(void **state)
{
    static const char bin_body[] = {'a', 0, 'b', 0, 0, (char)0xff, 'c'};
    struct ch_msg msgs[4];
    struct ch_cmd cmd;
    size_t len;
    void *buf;

    (void)state;
    msgs[0] =
        make_msg(B("/foo"), B("alice"), B("app1"), B("42"),
                 B("{\"Content-Type\":\"text/plain\"}"), B("Hello World"));
    msgs[1] = make_msg(B("/foo/bar"), B("bob"), B("app2"), B(""), B(""),
                       (struct ch_bytes){bin_body, sizeof(bin_body)});
    msgs[2] = make_msg(B("/x"), B("anonymous"), B(""), B(""), B(""), B(""));
    msgs[3] = make_msg(B("/y"), B("u"), B("a"), B("m:1"), B("{}"),
                       (struct ch_bytes){NULL, 0});
    buf = encode(msgs, 4, 1700000000, 120, &len);

    assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
    assert_int_equal(cmd.type, CH_CMD_PUBLISH);
    assert_int_equal(cmd.time, 1700000000);
    assert_int_equal(cmd.dedup_window_s, 120);
    assert_int_equal(cmd.n_msgs, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_msg_fields_eq(&cmd.msgs[i], &msgs[i]);
        assert_int_equal(cmd.msgs[i].time, 1700000000);
        assert_int_equal(cmd.msgs[i].seq, 0);
        assert_inside(cmd.msgs[i].path, buf, len);
        assert_inside(cmd.msgs[i].body, buf, len);
        assert_inside(cmd.msgs[i].header, buf, len);
    }
    ch_cmd_free(&cmd);
    free(buf);
}

static void test_cmd_negative_time_and_empty_batch(void **state)
{
    struct ch_cmd cmd;
    size_t len;
    void *buf;

    (void)state;
    buf = encode(NULL, 0, -5, 0, &len);
    assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
    assert_int_equal(cmd.time, -5);
    assert_int_equal(cmd.dedup_window_s, 0);
    assert_int_equal(cmd.n_msgs, 0);
    ch_cmd_free(&cmd);
    free(buf);
}

static void test_cmd_length_multiple_of_8_and_zero_padding(void **state)
{
    char body[64];

    (void)state;
    memset(body, 'z', sizeof(body));
    for (size_t n = 0; n < sizeof(body); n++) {
        struct ch_msg m = make_msg(B("/t"), B("u"), B(""), B(""), B(""),
                                   (struct ch_bytes){body, n});
        const unsigned char *u;
        struct ch_cmd cmd;
        uint32_t plen;
        size_t len;
        void *buf = encode(&m, 1, 1, 1, &len);

        u = buf;
        assert_int_equal(len % 8, 0);
        plen = (uint32_t)u[4] | (uint32_t)u[5] << 8 | (uint32_t)u[6] << 16 |
               (uint32_t)u[7] << 24;
        assert_true(8 + plen <= len && len - (8 + plen) < 8);
        for (size_t i = 8 + plen; i < len; i++)
            assert_int_equal(u[i], 0);
        assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
        assert_int_equal(cmd.msgs[0].body.n, n);
        ch_cmd_free(&cmd);
        free(buf);
    }
}

static void test_cmd_header_magic_le(void **state)
{
    struct ch_msg m = make_msg(B("/t"), B("u"), B(""), B(""), B(""), B("x"));
    unsigned char *u;
    size_t len;

    (void)state;
    u = encode(&m, 1, 1, 1, &len);
    assert_memory_equal(u, "CHR1", 4);
    free(u);
}

static void test_cmd_rejects_malformed(void **state)
{
    static const char garbage[] = "\x01\x02\x03\x04\x05\x06\x07\x08"
                                  "\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10";
    struct ch_msg m =
        make_msg(B("/foo"), B("u"), B("a"), B("id"), B("{}"), B("body bytes"));
    struct ch_cmd cmd;
    unsigned char *buf;
    unsigned char *copy;
    size_t len;

    (void)state;
    buf = encode(&m, 1, 7, 9, &len);
    copy = malloc(len + 8);
    assert_non_null(copy);

    /* bad magic */
    memcpy(copy, buf, len);
    copy[0] ^= 0xff;
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);

    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        memcpy(copy, buf, n);
        assert_int_equal(ch_cmd_decode(copy, n, &cmd), CH_ECORRUPT);
    }

    /* longer than the header says */
    memcpy(copy, buf, len);
    memset(copy + len, 0, 8);
    assert_int_equal(ch_cmd_decode(copy, len + 8, &cmd), CH_ECORRUPT);

    /* payload length field wrong, both ways */
    memcpy(copy, buf, len);
    copy[4] = (unsigned char)(copy[4] + 1);
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);
    memcpy(copy, buf, len);
    copy[4] = (unsigned char)(copy[4] - 1);
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);
    memcpy(copy, buf, len);
    copy[7] = 0x80;
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);

    /* non-zero padding */
    memcpy(copy, buf, len);
    copy[len - 1] = 1;
    if ((copy[4] + 8u) % 8 != 0) /* there is padding */
        assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);

    /* unknown command type (first payload byte after fix_uint8 marker) */
    memcpy(copy, buf, len);
    copy[9] = 99;
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);

    /* garbage */
    assert_int_equal(ch_cmd_decode(garbage, sizeof(garbage) - 1, &cmd),
                     CH_ECORRUPT);
    assert_int_equal(ch_cmd_decode(NULL, 0, &cmd), CH_ECORRUPT);

    /* every single-byte corruption: decodes or fails, never crashes */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, len);
            copy[i] ^= (unsigned char)(1u << bit);
            if (ch_cmd_decode(copy, len, &cmd) == 0)
                ch_cmd_free(&cmd);
        }
    }
    free(copy);
    free(buf);
}

/* Builds an entry around a hand-written payload. */
static size_t wrap_payload(unsigned char *out, const void *payload, size_t n)
{
    size_t len = (8 + n + 7) & ~(size_t)7;

    memset(out, 0, len);
    memcpy(out, "CHR1", 4);
    out[4] = (unsigned char)n;
    out[5] = (unsigned char)(n >> 8);
    memcpy(out + 8, payload, n);
    return len;
}

static void test_cmd_rejects_hostile_payloads(void **state)
{
    /* type 1, time 0, window 0, then: */
    static const struct {
        const char *p;
        size_t n;
    } cases[] = {
        /* n = 2^32-1 messages in a short buffer */
        {"\x01\x00\x00\xce\xff\xff\xff\xff", 8},
        /* a message claiming a 2^32-1 element array */
        {"\x01\x00\x00\x01\xdd\xff\xff\xff\xff", 9},
        /* a field that is a huge array instead of bin */
        {"\x01\x00\x00\x01\x96\xdd\xff\xff\xff\xff", 10},
        /* a field that is a huge map */
        {"\x01\x00\x00\x01\x96\xdf\xff\xff\xff\xff", 10},
        /* a bin claiming more bytes than present */
        {"\x01\x00\x00\x01\x96\xc6\xff\xff\xff\xff", 10},
        /* a message array of 5 fields */
        {"\x01\x00\x00\x01\x95\xc4\x00\xc4\x00\xc4\x00\xc4\x00\xc4\x00", 15},
        /* an int where bin is expected */
        {"\x01\x00\x00\x01\x96\x01\xc4\x00\xc4\x00\xc4\x00\xc4\x00\xc4\x00",
         16},
        /* trailing byte after the last message */
        {"\x01\x00\x00\x00\xc0", 5},
        /* bad type 2 */
        {"\x02\x00\x00\x00", 4},
        /* time as a string */
        {"\x01\xa1x\x00\x00", 5},
        /* time above INT64_MAX */
        {"\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00", 12},
        /* negative count */
        {"\x01\x00\x00\xff", 4},
        /* reserved byte 0xc1 */
        {"\x01\x00\x00\xc1", 4},
        /* ext value as a field */
        {"\x01\x00\x00\x01\x96\xd4\x01\x01\xc4\x00\xc4\x00\xc4\x00\xc4\x00"
         "\xc4\x00",
         18},
    };
    unsigned char buf[64];
    struct ch_cmd cmd;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = wrap_payload(buf, cases[i].p, cases[i].n);
        if (ch_cmd_decode(buf, len, &cmd) != CH_ECORRUPT)
            fail_msg("hostile payload %zu was accepted", i);
        assert_null(cmd.msgs);
    }
}

static void test_cmd_accepts_str_and_compact_ints(void **state)
{
    /* type 1, time 5, window 120, n 1, [str x6] (lenient str fields) */
    static const char payload[] = "\x01\x05\x78\x01\x96"
                                  "\xa2/a\xa1u\xa0\xa0\xa0\xa3hey";
    unsigned char buf[64];
    struct ch_cmd cmd;
    size_t len;

    (void)state;
    len = wrap_payload(buf, payload, sizeof(payload) - 1);
    assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
    assert_int_equal(cmd.time, 5);
    assert_int_equal(cmd.dedup_window_s, 120);
    assert_int_equal(cmd.n_msgs, 1);
    assert_bytes_eq(cmd.msgs[0].path, B("/a"));
    assert_bytes_eq(cmd.msgs[0].user, B("u"));
    assert_bytes_eq(cmd.msgs[0].body, B("hey"));
    assert_int_equal(cmd.msgs[0].msgid.n, 0);
    ch_cmd_free(&cmd);
}

static void test_batch_enc_reset_reuse(void **state)
{
    struct ch_msg a =
        make_msg(B("/a"), B("u"), B(""), B("1"), B(""), B("first batch body"));
    struct ch_msg b =
        make_msg(B("/b"), B("v"), B("x"), B(""), B(""), B("second"));
    struct ch_batch_enc e;
    struct ch_cmd cmd;
    size_t empty_size;
    void *out;
    size_t len;

    (void)state;
    ch_batch_enc_init(&e);
    empty_size = ch_batch_enc_size(&e);
    assert_int_equal(ch_batch_enc_add(&e, &a), 0);
    assert_int_equal(ch_batch_enc_add(&e, &a), 0);
    assert_true(ch_batch_enc_size(&e) > empty_size);
    ch_batch_enc_reset(&e);
    assert_int_equal(e.n_msgs, 0);
    assert_int_equal(ch_batch_enc_size(&e), empty_size);
    assert_int_equal(ch_batch_enc_add(&e, &b), 0);
    assert_int_equal(ch_batch_enc_finish(&e, 3, 4, malloc, &out, &len), 0);
    assert_int_equal(ch_cmd_decode(out, len, &cmd), 0);
    assert_int_equal(cmd.n_msgs, 1);
    assert_msg_fields_eq(&cmd.msgs[0], &b);
    ch_cmd_free(&cmd);
    free(out);

    /* finish keeps the contents: a second finish gives the same entry */
    {
        void *out2;
        size_t len2;
        assert_int_equal(ch_batch_enc_finish(&e, 3, 4, malloc, &out, &len), 0);
        assert_int_equal(ch_batch_enc_finish(&e, 3, 4, malloc, &out2, &len2),
                         0);
        assert_int_equal(len, len2);
        assert_memory_equal(out, out2, len);
        free(out);
        free(out2);
    }
    ch_batch_enc_close(&e);
}

static void *failing_alloc(size_t n)
{
    (void)n;
    return NULL;
}

static void test_batch_enc_finish_alloc_failure(void **state)
{
    struct ch_batch_enc e;
    void *out = NULL;
    size_t len = 0;

    (void)state;
    ch_batch_enc_init(&e);
    assert_int_equal(ch_batch_enc_finish(&e, 1, 1, failing_alloc, &out, &len),
                     CH_ENOMEM);
    assert_null(out);
    ch_batch_enc_close(&e);
}

static void test_record_round_trip(void **state)
{
    static const char body[] = {0, 1, 2, 0, (char)0x80};
    struct ch_msg m =
        make_msg(B("/foo"), B("alice"), B("app"), B("id-1"), B("{\"a\":\"b\"}"),
                 (struct ch_bytes){body, sizeof(body)});
    struct ch_msg e = make_msg(B("/foo"), B("u"), B(""), B(""), B(""), B(""));
    struct ch_msg got;
    struct ch_buf buf;
    size_t first_len;

    (void)state;
    m.time = 1700000123;
    e.time = -3;
    ch_buf_init(&buf);
    assert_int_equal(ch_record_encode(&m, &buf), 0);
    first_len = buf.len;
    assert_int_equal(ch_record_encode(&e, &buf), 0); /* appends */

    memset(&got, 0, sizeof(got));
    got.seq = 77;
    assert_int_equal(ch_record_decode(buf.data, first_len, &got), 0);
    assert_bytes_eq(got.user, m.user);
    assert_bytes_eq(got.app, m.app);
    assert_bytes_eq(got.msgid, m.msgid);
    assert_bytes_eq(got.header, m.header);
    assert_bytes_eq(got.body, m.body);
    assert_int_equal(got.time, m.time);
    assert_int_equal(got.seq, 77); /* not part of the record */
    assert_null(got.path.p);
    assert_inside(got.body, buf.data, first_len);

    memset(&got, 0, sizeof(got));
    assert_int_equal(
        ch_record_decode(buf.data + first_len, buf.len - first_len, &got), 0);
    assert_bytes_eq(got.user, e.user);
    assert_int_equal(got.body.n, 0);
    assert_int_equal(got.time, -3);
    ch_buf_free(&buf);
}

static void test_record_rejects_malformed(void **state)
{
    struct ch_msg m = make_msg(B("/foo"), B("alice"), B("app"), B("id-1"),
                               B("{}"), B("payload"));
    struct ch_msg got;
    struct ch_buf buf;
    char *copy;

    (void)state;
    m.time = 99;
    ch_buf_init(&buf);
    assert_int_equal(ch_record_encode(&m, &buf), 0);
    copy = malloc(buf.len + 1);
    assert_non_null(copy);
    for (size_t n = 0; n < buf.len; n++) {
        memcpy(copy, buf.data, n);
        assert_int_equal(ch_record_decode(copy, n, &got), CH_ECORRUPT);
    }
    /* trailing byte */
    memcpy(copy, buf.data, buf.len);
    copy[buf.len] = 0;
    assert_int_equal(ch_record_decode(copy, buf.len + 1, &got), CH_ECORRUPT);
    /* not an array of 6 */
    memcpy(copy, buf.data, buf.len);
    copy[0] = (char)0x95;
    assert_int_equal(ch_record_decode(copy, buf.len, &got), CH_ECORRUPT);
    assert_int_equal(ch_record_decode("\xdd\xff\xff\xff\xff", 5, &got),
                     CH_ECORRUPT);
    assert_int_equal(ch_record_decode(NULL, 0, &got), CH_ECORRUPT);
    /* bit flips never crash */
    for (size_t i = 0; i < buf.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf.data, buf.len);
            copy[i] = (char)(copy[i] ^ (1 << bit));
            if (ch_record_decode(copy, buf.len, &got) == 0)
                assert_true(got.body.n < buf.len);
        }
    }
    free(copy);
    ch_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_round_trip),
        cmocka_unit_test(test_cmd_negative_time_and_empty_batch),
        cmocka_unit_test(test_cmd_length_multiple_of_8_and_zero_padding),
        cmocka_unit_test(test_cmd_header_magic_le),
        cmocka_unit_test(test_cmd_rejects_malformed),
        cmocka_unit_test(test_cmd_rejects_hostile_payloads),
        cmocka_unit_test(test_cmd_accepts_str_and_compact_ints),
        cmocka_unit_test(test_batch_enc_reset_reuse),
        cmocka_unit_test(test_batch_enc_finish_alloc_failure),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_rejects_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
