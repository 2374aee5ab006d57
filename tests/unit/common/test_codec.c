/* Unit tests of src/common/codec.c: raft commands (publish batch, member
 * changes) and stored record. */
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
#include "common/limits.h"

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
    assert_int_equal(cmd.n_members, 0);
    assert_null(cmd.members);
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
        /* bad type 3 */
        {"\x03\x00\x00\x00", 4},
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
        assert_null(cmd.members);
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

/* ---- member changes ----------------------------------------------------- */

static struct ch_member_change member(enum ch_member_op op, uint64_t id,
                                      struct ch_bytes raft,
                                      struct ch_bytes http, int role)
{
    struct ch_member_change c;

    memset(&c, 0, sizeof(c));
    c.op = op;
    c.id = id;
    c.raft = raft;
    c.http = http;
    c.role = role;
    return c;
}

static void *encode_members(const struct ch_member_change *c, uint32_t n,
                            int64_t time, size_t *len)
{
    void *out = NULL;

    assert_int_equal(ch_members_encode(c, n, time, malloc, &out, len), 0);
    assert_non_null(out);
    return out;
}

static void test_members_round_trip(void **state)
{
    char raft_max[CH_MAX_ADDR_BYTES];
    char http_max[CH_MAX_ADDR_BYTES];
    struct ch_member_change c[4];
    struct ch_cmd cmd;
    size_t len;
    void *buf;

    (void)state;
    memset(raft_max, '1', sizeof(raft_max));
    memset(http_max, 'h', sizeof(http_max));
    c[0] = member(CH_MEMBER_SET, 1, B("10.0.0.1:9001"), B("node1:8080"), 0);
    c[1] = member(CH_MEMBER_DEL, 7, B(""), B(""), 0);
    c[2] = member(CH_MEMBER_SET, UINT64_MAX,
                  (struct ch_bytes){raft_max, sizeof(raft_max)},
                  (struct ch_bytes){http_max, sizeof(http_max)}, 2);
    c[3] = member(CH_MEMBER_SET, 300, B(""), B(""), 1);
    buf = encode_members(c, 4, 1700000000, &len);

    assert_memory_equal(buf, "CHR1", 4);
    assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
    assert_int_equal(cmd.type, CH_CMD_MEMBERS);
    assert_int_equal(cmd.time, 1700000000);
    assert_int_equal(cmd.dedup_window_s, 0);
    assert_int_equal(cmd.n_msgs, 0);
    assert_null(cmd.msgs);
    assert_int_equal(cmd.n_members, 4);
    assert_non_null(cmd.members);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cmd.members[i].op, c[i].op);
        assert_true(cmd.members[i].id == c[i].id);
        assert_bytes_eq(cmd.members[i].raft, c[i].raft);
        assert_bytes_eq(cmd.members[i].http, c[i].http);
        assert_int_equal(cmd.members[i].role, c[i].role);
        assert_inside(cmd.members[i].raft, buf, len);
        assert_inside(cmd.members[i].http, buf, len);
    }
    ch_cmd_free(&cmd);
    assert_null(cmd.members);
    assert_int_equal(cmd.n_members, 0);
    ch_cmd_free(&cmd); /* idempotent */
    free(buf);

    /* negative time, no changes */
    buf = encode_members(NULL, 0, -9, &len);
    assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
    assert_int_equal(cmd.type, CH_CMD_MEMBERS);
    assert_int_equal(cmd.time, -9);
    assert_int_equal(cmd.n_members, 0);
    assert_null(cmd.members);
    ch_cmd_free(&cmd);
    free(buf);
}

static void test_members_del_ignores_addresses_and_role(void **state)
{
    char too_long[300];
    struct ch_member_change del;
    struct ch_cmd cmd;
    size_t len;
    void *buf;

    (void)state;
    memset(too_long, 'x', sizeof(too_long));
    del = member(CH_MEMBER_DEL, 5, (struct ch_bytes){too_long, 260},
                 (struct ch_bytes){too_long, sizeof(too_long)}, 17);
    buf = encode_members(&del, 1, 1, &len);
    assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
    assert_int_equal(cmd.n_members, 1);
    assert_int_equal(cmd.members[0].op, CH_MEMBER_DEL);
    assert_int_equal(cmd.members[0].id, 5);
    assert_int_equal(cmd.members[0].raft.n, 0);
    assert_int_equal(cmd.members[0].http.n, 0);
    assert_int_equal(cmd.members[0].role, 0);
    ch_cmd_free(&cmd);
    free(buf);
}

static void test_members_length_multiple_of_8_and_zero_padding(void **state)
{
    char raft[CH_MAX_ADDR_BYTES];

    (void)state;
    memset(raft, '9', sizeof(raft));
    for (size_t n = 0; n <= sizeof(raft); n++) {
        struct ch_member_change c = member(
            CH_MEMBER_SET, n + 1, (struct ch_bytes){raft, n}, B("h:1"), 1);
        const unsigned char *u;
        struct ch_cmd cmd;
        uint32_t plen;
        size_t len;
        void *buf = encode_members(&c, 1, 3, &len);

        u = buf;
        assert_int_equal(len % 8, 0);
        plen = (uint32_t)u[4] | (uint32_t)u[5] << 8 | (uint32_t)u[6] << 16 |
               (uint32_t)u[7] << 24;
        assert_true(8 + plen <= len && len - (8 + plen) < 8);
        for (size_t i = 8 + plen; i < len; i++)
            assert_int_equal(u[i], 0);
        assert_int_equal(ch_cmd_decode(buf, len, &cmd), 0);
        assert_int_equal(cmd.members[0].raft.n, n);
        assert_int_equal(cmd.members[0].id, n + 1);
        ch_cmd_free(&cmd);
        free(buf);
    }
}

static void test_members_encode_rejects_bad_changes(void **state)
{
    char big[300];
    struct ch_member_change ok =
        member(CH_MEMBER_SET, 1, B("a:1"), B("b:2"), 0);
    struct ch_member_change bad[] = {
        member((enum ch_member_op)0, 1, B("a:1"), B("b:2"), 0),
        member((enum ch_member_op)3, 1, B("a:1"), B("b:2"), 0),
        member(CH_MEMBER_SET, 0, B("a:1"), B("b:2"), 0),
        member(CH_MEMBER_DEL, 0, B(""), B(""), 0),
        member(CH_MEMBER_SET, 1, (struct ch_bytes){big, CH_MAX_ADDR_BYTES + 1},
               B("b:2"), 0),
        member(CH_MEMBER_SET, 1, B("a:1"),
               (struct ch_bytes){big, CH_MAX_ADDR_BYTES + 1}, 0),
        member(CH_MEMBER_SET, 1, B("a:1"), B("b:2"), 3),
        member(CH_MEMBER_SET, 1, B("a:1"), B("b:2"), -1),
        member(CH_MEMBER_SET, 1, (struct ch_bytes){NULL, 3}, B("b:2"), 0),
    };
    struct ch_member_change pair[2];
    void *out;
    size_t len;

    (void)state;
    memset(big, 'x', sizeof(big));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        out = NULL;
        if (ch_members_encode(&bad[i], 1, 1, malloc, &out, &len) != CH_EINVAL)
            fail_msg("bad member change %zu was encoded", i);
        assert_null(out);
        /* a bad change anywhere refuses the whole command */
        pair[0] = ok;
        pair[1] = bad[i];
        assert_int_equal(ch_members_encode(pair, 2, 1, malloc, &out, &len),
                         CH_EINVAL);
        assert_null(out);
    }
    assert_int_equal(ch_members_encode(NULL, 1, 1, malloc, &out, &len),
                     CH_EINVAL);
    assert_null(out);
    assert_int_equal(ch_members_encode(&ok, 1, 1, failing_alloc, &out, &len),
                     CH_ENOMEM);
    assert_null(out);
}

static void test_members_rejects_malformed(void **state)
{
    struct ch_member_change c[2] = {
        member(CH_MEMBER_SET, 42, B("10.1.2.3:7000"), B("host:80"), 1),
        member(CH_MEMBER_DEL, 43, B(""), B(""), 0)};
    struct ch_cmd cmd;
    unsigned char *buf;
    unsigned char *copy;
    size_t len;

    (void)state;
    buf = encode_members(c, 2, 11, &len);
    copy = malloc(len + 8);
    assert_non_null(copy);

    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        memcpy(copy, buf, n);
        assert_int_equal(ch_cmd_decode(copy, n, &cmd), CH_ECORRUPT);
        assert_null(cmd.members);
    }
    /* longer than the header says */
    memcpy(copy, buf, len);
    memset(copy + len, 0, 8);
    assert_int_equal(ch_cmd_decode(copy, len + 8, &cmd), CH_ECORRUPT);
    /* payload length field off by one, both ways */
    memcpy(copy, buf, len);
    copy[4] = (unsigned char)(copy[4] + 1);
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);
    memcpy(copy, buf, len);
    copy[4] = (unsigned char)(copy[4] - 1);
    assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);
    /* non-zero padding */
    memcpy(copy, buf, len);
    copy[len - 1] = 1;
    if ((copy[4] + 8u) % 8 != 0)
        assert_int_equal(ch_cmd_decode(copy, len, &cmd), CH_ECORRUPT);

    /* every single-bit corruption: decodes (within the limits) or fails
     * cleanly, never crashes or leaks */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, len);
            copy[i] ^= (unsigned char)(1u << bit);
            if (ch_cmd_decode(copy, len, &cmd) != 0) {
                assert_null(cmd.members);
                assert_null(cmd.msgs);
                continue;
            }
            for (uint32_t j = 0; j < cmd.n_members; j++) {
                const struct ch_member_change *m = &cmd.members[j];
                assert_true(m->op == CH_MEMBER_SET || m->op == CH_MEMBER_DEL);
                assert_true(m->id != 0);
                assert_true(m->raft.n <= CH_MAX_ADDR_BYTES &&
                            m->http.n <= CH_MAX_ADDR_BYTES);
                assert_true(m->role >= 0 && m->role <= 2);
                assert_inside(m->raft, copy, len);
                assert_inside(m->http, copy, len);
            }
            ch_cmd_free(&cmd);
        }
    }
    free(copy);
    free(buf);
}

/* Payload of a members command with one change: type 2, time 0, window 0,
 * n 1, then [op, id, bin raft (raft_n bytes), bin http (http_n), role]. */
static size_t members_payload(unsigned char *p, unsigned op, unsigned id,
                              size_t raft_n, size_t http_n, unsigned role)
{
    size_t n = 0;

    p[n++] = 0x02;
    p[n++] = 0x00;
    p[n++] = 0x00;
    p[n++] = 0x01;
    p[n++] = 0x95;
    p[n++] = (unsigned char)op;
    p[n++] = (unsigned char)id;
    p[n++] = 0xc5; /* bin16, big endian length */
    p[n++] = (unsigned char)(raft_n >> 8);
    p[n++] = (unsigned char)raft_n;
    memset(p + n, 'r', raft_n);
    n += raft_n;
    p[n++] = 0xc5; /* bin16, big endian length */
    p[n++] = (unsigned char)(http_n >> 8);
    p[n++] = (unsigned char)http_n;
    memset(p + n, 'h', http_n);
    n += http_n;
    p[n++] = (unsigned char)role;
    return n;
}

static void test_members_rejects_out_of_range_fields(void **state)
{
    static const struct {
        unsigned op, id;
        size_t raft_n, http_n;
        unsigned role;
        int want;
    } cases[] = {
        {1, 7, 0, 0, 0, 0},              /* minimal SET */
        {2, 7, 0, 0, 0, 0},              /* minimal DEL */
        {1, 7, 255, 255, 2, 0},          /* longest addresses, last role */
        {0, 7, 1, 1, 0, CH_ECORRUPT},    /* op 0 */
        {3, 7, 1, 1, 0, CH_ECORRUPT},    /* op 3 */
        {1, 0, 1, 1, 0, CH_ECORRUPT},    /* id 0 */
        {2, 0, 0, 0, 0, CH_ECORRUPT},    /* DEL of id 0 */
        {1, 7, 256, 1, 0, CH_ECORRUPT},  /* raft too long */
        {1, 7, 1, 256, 0, CH_ECORRUPT},  /* http too long */
        {1, 7, 1, 1, 3, CH_ECORRUPT},    /* role 3 */
        {1, 7, 1, 1, 0x7f, CH_ECORRUPT}, /* role 127 */
        {1, 7, 1, 1, 0xff, CH_ECORRUPT}, /* role -1 (negative fixint) */
        {1, 0xcc, 1, 1, 0, CH_ECORRUPT}, /* id: truncated uint8 marker */
    };
    unsigned char payload[700];
    unsigned char buf[716];
    struct ch_cmd cmd;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n =
            members_payload(payload, cases[i].op, cases[i].id, cases[i].raft_n,
                            cases[i].http_n, cases[i].role);
        size_t len = wrap_payload(buf, payload, n);
        int rv = ch_cmd_decode(buf, len, &cmd);

        if (rv != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, rv, cases[i].want);
        if (rv != 0) {
            assert_null(cmd.members);
            continue;
        }
        assert_int_equal(cmd.type, CH_CMD_MEMBERS);
        assert_int_equal(cmd.n_members, 1);
        assert_int_equal(cmd.members[0].op, cases[i].op);
        assert_int_equal(cmd.members[0].id, cases[i].id);
        assert_int_equal(cmd.members[0].raft.n, cases[i].raft_n);
        assert_int_equal(cmd.members[0].http.n, cases[i].http_n);
        assert_int_equal(cmd.members[0].role, cases[i].role);
        ch_cmd_free(&cmd);
    }
}

static void test_members_rejects_hostile_payloads(void **state)
{
    /* type 2, then: */
    static const struct {
        const char *p;
        size_t n;
    } cases[] = {
        /* window slot not 0 */
        {"\x02\x00\x01\x00", 4},
        /* n = 2^32-1 changes in a short buffer */
        {"\x02\x00\x00\xce\xff\xff\xff\xff", 8},
        /* more changes than present */
        {"\x02\x00\x00\x02\x95\x01\x01\xc4\x00\xc4\x00\x00", 12},
        /* a change claiming a 2^32-1 element array */
        {"\x02\x00\x00\x01\xdd\xff\xff\xff\xff", 9},
        /* a change of 4 fields, and of 6 */
        {"\x02\x00\x00\x01\x94\x01\x01\xc4\x00\xc4\x00", 11},
        {"\x02\x00\x00\x01\x96\x01\x01\xc4\x00\xc4\x00\x00\x00", 13},
        /* op as a string */
        {"\x02\x00\x00\x01\x95\xa1\x01\x01\xc4\x00\xc4\x00\x00", 13},
        /* id negative */
        {"\x02\x00\x00\x01\x95\x01\xff\xc4\x00\xc4\x00\x00", 12},
        /* raft as a huge map */
        {"\x02\x00\x00\x01\x95\x01\x01\xdf\xff\xff\xff\xff\xc4\x00\x00", 15},
        /* raft as an int */
        {"\x02\x00\x00\x01\x95\x01\x01\x05\xc4\x00\x00", 11},
        /* http bin claiming more bytes than present */
        {"\x02\x00\x00\x01\x95\x01\x01\xc4\x00\xc6\xff\xff\xff\xff\x00", 15},
        /* role as nil, as ext */
        {"\x02\x00\x00\x01\x95\x01\x01\xc4\x00\xc4\x00\xc0", 12},
        {"\x02\x00\x00\x01\x95\x01\x01\xc4\x00\xc4\x00\xd4\x01\x01", 14},
        /* trailing byte after the last change */
        {"\x02\x00\x00\x01\x95\x01\x01\xc4\x00\xc4\x00\x00\x00", 13},
        /* trailing byte after no changes */
        {"\x02\x00\x00\x00\xc0", 5},
    };
    unsigned char buf[64];
    struct ch_cmd cmd;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = wrap_payload(buf, cases[i].p, cases[i].n);
        if (ch_cmd_decode(buf, len, &cmd) != CH_ECORRUPT)
            fail_msg("hostile members payload %zu was accepted", i);
        assert_null(cmd.members);
        assert_null(cmd.msgs);
        assert_int_equal(cmd.n_members, 0);
    }
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
        cmocka_unit_test(test_members_round_trip),
        cmocka_unit_test(test_members_del_ignores_addresses_and_role),
        cmocka_unit_test(test_members_length_multiple_of_8_and_zero_padding),
        cmocka_unit_test(test_members_encode_rejects_bad_changes),
        cmocka_unit_test(test_members_rejects_malformed),
        cmocka_unit_test(test_members_rejects_out_of_range_fields),
        cmocka_unit_test(test_members_rejects_hostile_payloads),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_rejects_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
