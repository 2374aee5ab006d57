/* Writes the seed corpora of the fuzz targets into <dir>/<target>/.
 * The committed corpus (tests/fuzz/corpus) is this program's output:
 *   build-fuzz/gen_seeds tests/fuzz/corpus
 * Binary seeds are made with the project's own encoders, so they follow
 * the formats as they are now. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/link_int.h"
#include "common/codec.h"
#include "fuzz_util.h"
#include "store/store.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* ---- fuzz_ws_command: one frame payload each ---- */

static void ws_command(void)
{
    static const struct {
        const char *name, *text;
    } seeds[] = {
        {"publish_bare", "> /foo/bar"},
        {"publish_full", "> /foo/bar msg-1\n{\"k\":\"v\",\"n\":1}\nhello body"},
        {"publish_no_header", "> /foo msg-2\n\nbody only"},
        {"publish_crlf", "> /foo m3\r\n{}\r\nbody"},
        {"publish_binary_body", "> /foo\n\n\xff\xfe\x00\x01"},
        {"subscribe", "+ /foo"},
        {"subscribe_start", "+ /foo 5"},
        {"subscribe_start_max", "+ /foo 5,10"},
        {"subscribe_neg_start", "+ /foo/bar -3 2"},
        {"cancel", "- /foo"},
        {"bad_topic", "> foo"},
        {"bad_dotdot", "+ /a/../b"},
        {"bad_msgid", "> /a bad!id"},
        {"bad_header_json", "> /a m\n{not json}\nx"},
        {"bad_header_array", "> /a m\n[1,2]\nx"},
        {"bad_max", "+ /a 1,-1"},
        {"bad_number", "+ /a 99999999999999999999"},
        {"unknown_cmd", "x /a"},
        {"no_space", ">/a"},
        {"extra_args", "- /a b"},
        {"trailing_data", "+ /a\nmore"},
        {"utf8_mixed", "> /u\n{\"h\":\"\xc3\xa9\"}\n\xe2\x82\xac \xed\xa0\x80"},
    };

    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        put_str("fuzz_ws_command", seeds[i].name, seeds[i].text);
}

/* ---- fuzz_http_request: a client's byte stream ---- */

/* A masked client frame (RFC 6455 §5.2) appended to b. */
static void ws_frame(struct ch_buf *b, int fin, int opcode, const void *p,
                     size_t n, const unsigned char mask[4])
{
    unsigned char h[14];
    size_t hn = 0;
    const unsigned char *u = p;

    h[hn++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[hn++] = (unsigned char)(0x80 | n);
    } else {
        h[hn++] = 0x80 | 126;
        h[hn++] = (unsigned char)(n >> 8);
        h[hn++] = (unsigned char)n;
    }
    memcpy(h + hn, mask, 4);
    hn += 4;
    if (ch_buf_append(b, h, hn) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(u[i] ^ mask[i % 4]);
        if (ch_buf_append(b, &c, 1) != 0)
            abort();
    }
}

static const unsigned char zero_mask[4] = {0, 0, 0, 0};
static const unsigned char some_mask[4] = {0x12, 0x34, 0x56, 0x78};

static void text(struct ch_buf *b, const char *s)
{
    if (ch_buf_append(b, s, strlen(s)) != 0)
        abort();
}

static void text_frame(struct ch_buf *b, const char *s)
{
    ws_frame(b, 1, 1, s, strlen(s), zero_mask);
}

#define SPLIT "|~|"

static const char *upgrade_hdrs =
    " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

static void http_request(void)
{
    static const struct {
        const char *name, *text;
    } seeds[] = {
        {"health", "GET /admin/healthcheck HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"cluster", "GET /admin/cluster HTTP/1.1\r\n\r\n"},
        {"metrics_pipelined", "GET /metrics HTTP/1.1\r\n\r\n"
                              "GET /admin/metrics HTTP/1.1\r\n\r\n"},
        {"rest_publish_replay",
         "POST /api/message/foo/bar?userId=u1&messageId=m1 HTTP/1.1\r\n"
         "Content-Length: 5\r\nX-Chorus-Trace: abc\r\nX-Guble-K: v\r\n\r\n"
         "hello" SPLIT
         "GET /api/message/foo/bar?from=1&limit=10 HTTP/1.1\r\n\r\n" SPLIT
         "GET /admin/topics?prefix=%2Ffoo HTTP/1.1\r\n\r\n"
         "GET /admin/topics/foo/bar HTTP/1.1\r\n\r\n"},
        {"rest_publish_dup",
         "POST /api/message/a?messageId=x HTTP/1.1\r\nContent-Length: "
         "1\r\n\r\n1"
         "POST /api/message/a?messageId=x HTTP/1.1\r\nContent-Length: "
         "1\r\n\r\n2" SPLIT
         "GET /api/message/a HTTP/1.1\r\nConnection: close\r\n\r\n"},
        {"rest_chunked",
         "POST /api/message/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n\r\n"},
        {"rest_split_reads",
         "PO" SPLIT "ST /api/mess" SPLIT "age/s HTTP/1.1\r\nContent-Le" SPLIT
         "ngth: 3\r\n\r\nab" SPLIT "c"},
        {"rest_too_large",
         "POST /api/message/big HTTP/1.1\r\nContent-Length: 99999\r\n\r\nxx"},
        {"rest_bad_query",
         "GET /api/message/a?from=-1&limit=zz HTTP/1.1\r\n\r\n"},
        {"rest_bad_user", "POST /api/message/a?userId=a%20b "
                          "HTTP/1.1\r\nContent-Length: 0\r\n\r\n"},
        {"http10", "GET /admin/topics HTTP/1.0\r\n\r\n"},
        {"join",
         "POST /admin/cluster/join HTTP/1.1\r\nContent-Length: 71\r\n\r\n"
         "{\"id\":4,\"raft\":\"127.0.0.1:9004\",\"http\":\"127.0.0.1:8004\","
         "\"role\":\"spare\"}"},
        {"leave_transfer",
         "POST /admin/cluster/leave HTTP/1.1\r\nContent-Length: 8\r\n\r\n"
         "{\"id\":2}" SPLIT "POST /admin/cluster/transfer "
         "HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}" SPLIT
         "POST /admin/cluster/leave HTTP/1.1\r\nContent-Length: 8\r\n\r\n"
         "{\"id\":9}"},
        {"bad_method", "DELETE /admin/cluster HTTP/1.1\r\n\r\n"},
        {"not_found", "GET /nope HTTP/1.1\r\n\r\n"},
        {"garbage", "GARBAGE\r\n\r\n"},
        {"upgrade_missing_key", "GET /stream HTTP/1.1\r\nUpgrade: "
                                "websocket\r\nConnection: upgrade\r\n\r\n"},
    };
    struct ch_buf b;
    char frame[256];

    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        put_str("fuzz_http_request", seeds[i].name, seeds[i].text);

    /* WebSocket client sessions. */
    ch_buf_init(&b);
    text(&b, "GET /stream/user/alice");
    text(&b, upgrade_hdrs);
    text(&b, SPLIT);
    text_frame(&b, "+ /foo");
    text(&b, SPLIT);
    text_frame(&b, "> /foo m1\n{\"k\":\"v\"}\nhello");
    text_frame(&b, "> /foo/bar\n\nworld");
    text(&b, SPLIT);
    text_frame(&b, "+ /foo 1,1");
    text_frame(&b, "- /foo");
    text_frame(&b, "> bad");
    ws_frame(&b, 1, 9, "ping", 4, some_mask);     /* ping */
    ws_frame(&b, 1, 8, "\x03\xe8", 2, zero_mask); /* close 1000 */
    put("fuzz_http_request", "ws_session", b.data, b.len);

    b.len = 0;
    text(&b, "GET /stream");
    text(&b, upgrade_hdrs);
    /* A fragmented publish, then a subscription replaying it. */
    ws_frame(&b, 0, 1, "> /frag\n\nab", 11, some_mask);
    ws_frame(&b, 1, 0, "cd", 2, some_mask);
    text(&b, SPLIT);
    text_frame(&b, "+ /frag 1");
    ws_frame(&b, 1, 2, "> /bin\n\n\x00\xff", 10, zero_mask); /* binary */
    put("fuzz_http_request", "ws_fragmented", b.data, b.len);

    b.len = 0;
    text(&b, "GET /stream?x=1");
    text(&b, upgrade_hdrs);
    for (int i = 0; i < 20; i++) {
        snprintf(frame, sizeof frame, "> /t/%d id%d\n\nbody%d", i % 3, i, i);
        text_frame(&b, frame);
    }
    text(&b, SPLIT);
    text_frame(&b, "+ /t 1");
    text_frame(&b, "+ /t/1 -2");
    put("fuzz_http_request", "ws_many", b.data, b.len);

    /* A node-to-node link: requests of every kind in one binary frame. */
    {
        struct link_enc e;
        struct link_req r;
        struct ch_buf f;

        link_enc_init(&e, LINK_REQUESTS);
        memset(&r, 0, sizeof r);
        r.req_id = 1;
        r.op = LINK_PUBLISH;
        r.msg.path = (struct ch_bytes){"/link/t", 7};
        r.msg.user = (struct ch_bytes){"u", 1};
        r.msg.app = (struct ch_bytes){"a", 1};
        r.msg.msgid = (struct ch_bytes){"m1", 2};
        r.msg.body = (struct ch_bytes){"hi", 2};
        if (link_enc_req(&e, &r) != 0)
            abort();
        memset(&r, 0, sizeof r);
        r.req_id = 2;
        r.op = LINK_JOIN;
        r.id = 5;
        r.raft = (struct ch_bytes){"127.0.0.1:9005", 14};
        r.http = (struct ch_bytes){"127.0.0.1:8005", 14};
        if (link_enc_req(&e, &r) != 0)
            abort();
        r.req_id = 3;
        r.op = LINK_LEAVE;
        r.id = 2;
        if (link_enc_req(&e, &r) != 0)
            abort();
        r.req_id = 4;
        r.op = LINK_TRANSFER;
        r.id = 0;
        if (link_enc_req(&e, &r) != 0)
            abort();
        r.req_id = 5;
        r.op = LINK_REMOVED;
        r.id = 3;
        if (link_enc_req(&e, &r) != 0)
            abort();
        ch_buf_init(&f);
        if (link_enc_finish(&e, &f) != 0)
            abort();
        b.len = 0;
        text(&b, "GET /internal/link?from=2");
        text(&b, upgrade_hdrs);
        ws_frame(&b, 1, 2, f.data, f.len, zero_mask);
        put("fuzz_http_request", "link_requests", b.data, b.len);
        ch_buf_free(&f);
        link_enc_close(&e);
    }
    ch_buf_free(&b);
}

/* ---- fuzz_codec: raft entries, records, link frames ---- */

static struct ch_msg msg(const char *path, const char *msgid,
                         const char *header, const char *body)
{
    struct ch_msg m;

    memset(&m, 0, sizeof m);
    m.path = (struct ch_bytes){path, strlen(path)};
    m.user = (struct ch_bytes){"user1", 5};
    m.app = (struct ch_bytes){"app1", 4};
    m.msgid = (struct ch_bytes){msgid, strlen(msgid)};
    m.header = (struct ch_bytes){header, strlen(header)};
    m.body = (struct ch_bytes){body, strlen(body)};
    m.time = 1700000000;
    return m;
}

static void codec(void)
{
    struct ch_msg ms[3] = {msg("/a", "m1", "", "hello"),
                           msg("/a/b", "", "{\"k\":1}", "x"),
                           msg("/c", "m3", "", "")};
    struct ch_member_change mc[2] = {
        {CH_MEMBER_SET, 4, {"127.0.0.1:9004", 14}, {"127.0.0.1:8004", 14}, 1},
        {CH_MEMBER_DEL, 2, {"", 0}, {"", 0}, 0}};
    struct ch_batch_enc e;
    struct link_enc le;
    struct link_resp resp;
    struct ch_buf b;
    void *out;
    size_t out_n;

    ch_batch_enc_init(&e);
    if (ch_batch_enc_add(&e, &ms[0]) != 0 ||
        ch_batch_enc_finish(&e, 1700000000, 120, malloc, &out, &out_n) != 0)
        abort();
    put("fuzz_codec", "cmd_publish_1", out, out_n);
    /* Near-valid: a byte short, and one padding byte set. */
    put("fuzz_codec", "cmd_publish_truncated", out, out_n - 1);
    ((unsigned char *)out)[out_n - 1] = 1;
    put("fuzz_codec", "cmd_publish_bad_padding", out, out_n);
    free(out);
    if (ch_batch_enc_add(&e, &ms[1]) != 0 ||
        ch_batch_enc_add(&e, &ms[2]) != 0 ||
        ch_batch_enc_finish(&e, 1700000001, 0, malloc, &out, &out_n) != 0)
        abort();
    put("fuzz_codec", "cmd_publish_3", out, out_n);
    free(out);
    ch_batch_enc_close(&e);

    if (ch_members_encode(mc, 2, 1700000002, malloc, &out, &out_n) != 0)
        abort();
    put("fuzz_codec", "cmd_members", out, out_n);
    free(out);

    ch_buf_init(&b);
    if (ch_record_encode(&ms[1], &b) != 0)
        abort();
    put("fuzz_codec", "record", b.data, b.len);
    put("fuzz_codec", "record_truncated", b.data, b.len - 1);

    link_enc_init(&le, LINK_RESPONSES);
    memset(&resp, 0, sizeof resp);
    resp.req_id = 7;
    resp.seq = 3;
    resp.time = 1700000000;
    resp.index = 12;
    if (link_enc_resp(&le, &resp) != 0)
        abort();
    resp.req_id = 8;
    resp.status = -5;
    resp.is_dup = true;
    resp.text = (struct ch_bytes){"not leader", 10};
    if (link_enc_resp(&le, &resp) != 0)
        abort();
    b.len = 0;
    if (link_enc_finish(&le, &b) != 0)
        abort();
    put("fuzz_codec", "link_responses", b.data, b.len);
    link_enc_close(&le);

    link_enc_init(&le, LINK_REQUESTS);
    {
        struct link_req r;
        memset(&r, 0, sizeof r);
        r.req_id = 1;
        r.op = LINK_PUBLISH;
        r.msg = ms[0];
        if (link_enc_req(&le, &r) != 0)
            abort();
        memset(&r, 0, sizeof r);
        r.req_id = 2;
        r.op = LINK_JOIN;
        r.id = 5;
        r.raft = (struct ch_bytes){"127.0.0.1:9005", 14};
        r.http = (struct ch_bytes){"h:1", 3};
        r.role = 2;
        if (link_enc_req(&le, &r) != 0)
            abort();
        r.req_id = 3;
        r.op = LINK_LEAVE;
        if (link_enc_req(&le, &r) != 0)
            abort();
    }
    b.len = 0;
    if (link_enc_finish(&le, &b) != 0)
        abort();
    put("fuzz_codec", "link_requests", b.data, b.len);
    link_enc_close(&le);
    ch_buf_free(&b);
}

/* ---- fuzz_snapshot ---- */

static void snapshot_to(struct store *s, struct ch_buf *out)
{
    struct store_snap *snap;

    out->len = 0;
    if (store_snapshot_begin(s, &snap) != 0 ||
        store_snapshot_write(snap, out) != 0)
        abort();
    store_snapshot_end(snap);
}

static void snapshot(void)
{
    struct store *s = fuzz_store_open();
    struct ch_msg ms[3] = {msg("/a", "m1", "", "hello"),
                           msg("/a/b", "", "{\"k\":1}", "x"),
                           msg("/c", "m3", "", "")};
    struct ch_member_change mc = {
        CH_MEMBER_SET, 1, {"127.0.0.1:9001", 14}, {"127.0.0.1:8001", 14}, 0};
    struct store_result res[3];
    struct ch_buf b;
    bool skipped;

    ch_buf_init(&b);
    snapshot_to(s, &b);
    put("fuzz_snapshot", "empty", b.data, b.len);
    if (store_apply_publish(s, 1, 1700000000, 120, ms, 3, res, &skipped) != 0 ||
        store_apply_members(s, 2, &mc, 1, &skipped) != 0)
        abort();
    snapshot_to(s, &b);
    put("fuzz_snapshot", "populated", b.data, b.len);
    put("fuzz_snapshot", "populated_truncated", b.data, b.len - 9);
    b.data[b.len / 2] ^= 0x40;
    put("fuzz_snapshot", "populated_bitflip", b.data, b.len);
    ch_buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    ws_command();
    http_request();
    codec();
    snapshot();
    return 0;
}
