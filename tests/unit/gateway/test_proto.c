/* Unit tests of the gateway's client protocol (src/gateway/proto.c,
 * docs/protocol.md): gw_proto_parse() on table-driven well-formed and malformed
 * frames, and the wire form of messages (gw__msg_encode, gw__msg_is_text).
 *
 * Every frame is copied into a heap buffer of exactly its length, so ASan
 * reports any read past the frame. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/limits.h"
#include "gateway/gw_int.h"

/* A byte string literal with its length (may hold NUL bytes). */
#define LIT(s)                                                                 \
    {                                                                          \
        s, sizeof(s) - 1                                                       \
    }

struct lit {
    const char *p; /* NULL: do not check this field */
    size_t n;
};

#define DEFAULT_MAX_BODY 1024

struct parse_case {
    const char *name;
    struct lit frame;
    size_t max_body; /* 0: DEFAULT_MAX_BODY */
    int want_rv;
    const char *want_why; /* NULL: not checked (also when want_rv is 0) */
    /* Checked when want_rv == 0 (and, for path/msgid, also on
     * GW_PARSE_BAD_SEND, where the caller echoes them). */
    enum gw_cmd_type type;
    struct lit path;
    struct lit msgid;
    struct lit header;
    struct lit body;
    bool has_start;
    long long start;
    bool has_max;
    long long max;
};

static bool bytes_eq(struct ch_bytes got, struct lit want)
{
    return got.n == want.n &&
           (want.n == 0 || memcmp(got.p, want.p, want.n) == 0);
}

/* Prints bytes with escapes for failure messages. */
static const char *show(const char *p, size_t n, char *out, size_t out_size)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 5 < out_size; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            out[o++] = (char)ch;
        } else {
            int k = snprintf(out + o, out_size - o, "\\x%02x", ch);
            o += (size_t)k;
        }
    }
    out[o] = '\0';
    return out;
}

/* Parses a private heap copy of frame (exact length). *copy owned by the
 * caller (free()); cmd points into it. */
static int parse_copy(const char *frame, size_t len, size_t max_body,
                      struct gw_cmd *cmd, const char **why, char **copy)
{
    *copy = malloc(len > 0 ? len : 1);
    assert_non_null(*copy);
    if (len > 0)
        memcpy(*copy, frame, len);
    *why = NULL;
    return gw_proto_parse(*copy, len, max_body, cmd, why);
}

static void check_field(const char *name, const char *field,
                        struct ch_bytes got, struct lit want)
{
    char a[512], b[512];

    if (want.p == NULL)
        return;
    if (!bytes_eq(got, want))
        fail_msg("[%s] %s = \"%s\" (%zu bytes), want \"%s\" (%zu bytes)", name,
                 field, show(got.p, got.n, a, sizeof a), got.n,
                 show(want.p, want.n, b, sizeof b), want.n);
}

static void run_cases(const struct parse_case *cases, size_t n_cases)
{
    for (size_t i = 0; i < n_cases; i++) {
        const struct parse_case *tc = &cases[i];
        struct gw_cmd cmd;
        const char *why;
        char *copy;
        char shown[512];
        size_t max_body = tc->max_body ? tc->max_body : DEFAULT_MAX_BODY;
        int rv =
            parse_copy(tc->frame.p, tc->frame.n, max_body, &cmd, &why, &copy);

        if (rv != tc->want_rv)
            fail_msg("[%s] frame \"%s\": rv %d (why \"%s\"), want %d", tc->name,
                     show(tc->frame.p, tc->frame.n, shown, sizeof shown), rv,
                     why ? why : "(null)", tc->want_rv);
        if (rv != 0) {
            if (why == NULL || why[0] == '\0')
                fail_msg("[%s] error without a reason", tc->name);
            if (tc->want_why != NULL && strcmp(why, tc->want_why) != 0)
                fail_msg("[%s] why \"%s\", want \"%s\"", tc->name, why,
                         tc->want_why);
        }
        if (rv == 0 || rv == GW_PARSE_BAD_SEND) {
            if (tc->type != 0 && cmd.type != tc->type)
                fail_msg("[%s] type %d, want %d", tc->name, (int)cmd.type,
                         (int)tc->type);
            check_field(tc->name, "path", cmd.path, tc->path);
            check_field(tc->name, "msgid", cmd.msgid, tc->msgid);
        }
        if (rv == 0) {
            check_field(tc->name, "header", cmd.header, tc->header);
            check_field(tc->name, "body", cmd.body, tc->body);
            if (cmd.type != GW_CMD_PUBLISH) {
                if (cmd.has_start != tc->has_start)
                    fail_msg("[%s] has_start %d, want %d", tc->name,
                             cmd.has_start, tc->has_start);
                if (tc->has_start && cmd.start != tc->start)
                    fail_msg("[%s] start %lld, want %lld", tc->name, cmd.start,
                             tc->start);
                if (cmd.has_max != tc->has_max)
                    fail_msg("[%s] has_max %d, want %d", tc->name, cmd.has_max,
                             tc->has_max);
                if (tc->has_max && cmd.max != tc->max)
                    fail_msg("[%s] max %lld, want %lld", tc->name, cmd.max,
                             tc->max);
            }
        }
        free(copy);
    }
}

#define N_CASES(a) (sizeof(a) / sizeof((a)[0]))

/* ---- publish ---- */

static void test_proto_parse_publish_table(void **state)
{
    static const struct parse_case cases[] = {
        {.name = "no msgid, no newline",
         .frame = LIT("> /foo"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT(""),
         .header = LIT(""),
         .body = LIT("")},
        {.name = "msgid, no newline",
         .frame = LIT("> /foo 42"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("42"),
         .header = LIT(""),
         .body = LIT("")},
        {.name = "spec example",
         .frame = LIT("> /foo 42\n{\"Content-Type\":\"text/plain\"}\nHello "
                      "World"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("42"),
         .header = LIT("{\"Content-Type\":\"text/plain\"}"),
         .body = LIT("Hello World")},
        {.name = "header and body, no msgid",
         .frame = LIT("> /a/b.c\n{\"k\":[1,2]}\nbody"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/a/b.c"),
         .msgid = LIT(""),
         .header = LIT("{\"k\":[1,2]}"),
         .body = LIT("body")},
        {.name = "one newline: header only",
         .frame = LIT("> /foo m1\n{\"a\":1}"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m1"),
         .header = LIT("{\"a\":1}"),
         .body = LIT("")},
        {.name = "one trailing newline: empty header and body",
         .frame = LIT("> /foo\n"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .header = LIT(""),
         .body = LIT("")},
        {.name = "empty header, body",
         .frame = LIT("> /foo\n\nbody"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .header = LIT(""),
         .body = LIT("body")},
        {.name = "two newlines, empty header and body",
         .frame = LIT("> /foo\n\n"),
         .type = GW_CMD_PUBLISH,
         .header = LIT(""),
         .body = LIT("")},
        {.name = "binary body: NULs and newlines stay in the body",
         .frame = LIT("> /foo m1\n{}\nbin\0ary\nwith\n\nnl\0"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m1"),
         .header = LIT("{}"),
         .body = LIT("bin\0ary\nwith\n\nnl\0")},
        {.name = "body of newlines only",
         .frame = LIT("> /foo\n\n\n\n"),
         .type = GW_CMD_PUBLISH,
         .header = LIT(""),
         .body = LIT("\n\n")},
        {.name = "high bytes in body",
         .frame = LIT("> /foo\n\n\xff\xfe\x80"),
         .type = GW_CMD_PUBLISH,
         .body = LIT("\xff\xfe\x80")},
        {.name = "CRLF after the first line",
         .frame = LIT("> /foo m1\r\n{}\nbody"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m1"),
         .header = LIT("{}"),
         .body = LIT("body")},
        {.name = "CRLF after path only",
         .frame = LIT("> /foo\r\n\nbody"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT(""),
         .header = LIT(""),
         .body = LIT("body")},
        {.name = "CR at the end of a frame without newline",
         .frame = LIT("> /foo m1\r"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m1")},
        {.name = "CRLF after header tolerated too",
         .frame = LIT("> /foo\n{}\r\nbody\r\n"),
         .type = GW_CMD_PUBLISH,
         .header = LIT("{}"),
         .body = LIT("body\r\n")},
        {.name = "line ending in spaces",
         .frame = LIT("> /foo m1   \n{}\nb"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m1"),
         .header = LIT("{}"),
         .body = LIT("b")},
        {.name = "path ending in spaces",
         .frame = LIT("> /foo  "),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("")},
        {.name = "several spaces between arguments",
         .frame = LIT(">   /foo    m1"),
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m1")},
        {.name = "msgid with every allowed character class",
         .frame = LIT("> /foo aZ09._:-"),
         .type = GW_CMD_PUBLISH,
         .msgid = LIT("aZ09._:-")},
        {.name = "header JSON with spaces around the object",
         .frame = LIT("> /foo\n  {\"a\" : \"b\"}  \nx"),
         .type = GW_CMD_PUBLISH,
         .header = LIT("  {\"a\" : \"b\"}  "),
         .body = LIT("x")},
        {.name = "empty JSON object header",
         .frame = LIT("> /foo\n{}\n"),
         .type = GW_CMD_PUBLISH,
         .header = LIT("{}"),
         .body = LIT("")},

        /* errors */
        {.name = "only '>'",
         .frame = LIT(">"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "'> ' without path",
         .frame = LIT("> "),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "'>' then newline",
         .frame = LIT(">\n{}\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "bad path: relative",
         .frame = LIT("> foo m1\n{}\nbody"),
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "bad topic path",
         .type = GW_CMD_PUBLISH,
         .path = LIT("foo"),
         .msgid = LIT("m1")},
        {.name = "bad path: root",
         .frame = LIT("> / m1"),
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "bad topic path",
         .msgid = LIT("m1")},
        {.name = "bad path: empty segment",
         .frame = LIT("> /a//b"),
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "bad topic path"},
        {.name = "bad path: dot-dot segment",
         .frame = LIT("> /a/../b 7"),
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "bad topic path",
         .path = LIT("/a/../b"),
         .msgid = LIT("7")},
        {.name = "bad path: trailing slash",
         .frame = LIT("> /a/"),
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "bad topic path"},
        {.name = "bad path and bad header: path wins",
         .frame = LIT("> nope\nnot json\n"),
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "bad topic path"},
        {.name = "body one byte over max_body",
         .frame = LIT("> /foo m2\n{}\n123456789"),
         .max_body = 8,
         .want_rv = GW_PARSE_BAD_SEND,
         .want_why = "message too large",
         .type = GW_CMD_PUBLISH,
         .path = LIT("/foo"),
         .msgid = LIT("m2")},
        {.name = "body exactly max_body",
         .frame = LIT("> /foo m2\n{}\n12345678"),
         .max_body = 8,
         .type = GW_CMD_PUBLISH,
         .body = LIT("12345678")},
        {.name = "max_body counts body only, not the header",
         .frame = LIT("> /foo\n{\"long\":\"header text\"}\n1234"),
         .max_body = 4,
         .type = GW_CMD_PUBLISH,
         .body = LIT("1234")},
        {.name = "bad msgid: '$'",
         .frame = LIT("> /foo bad$id"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad publisher message id"},
        {.name = "bad msgid: slash",
         .frame = LIT("> /foo a/b\n{}\nx"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad publisher message id"},
        {.name = "bad msgid: non-ASCII",
         .frame = LIT("> /foo \xc3\xa9"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad publisher message id"},
        {.name = "bad msgid: comma",
         .frame = LIT("> /foo a,b"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad publisher message id"},
        {.name = "too many arguments",
         .frame = LIT("> /foo m1 extra\n{}\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "too many arguments"},
        {.name = "header not JSON",
         .frame = LIT("> /foo m1\nnot json\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON array",
         .frame = LIT("> /foo\n[1,2]\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON string",
         .frame = LIT("> /foo\n\"str\"\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON number",
         .frame = LIT("> /foo\n12\n"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON null",
         .frame = LIT("> /foo\nnull"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON unterminated object",
         .frame = LIT("> /foo\n{\"a\":1\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON object with trailing garbage",
         .frame = LIT("> /foo\n{}x\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header JSON with a NUL byte",
         .frame = LIT("> /foo\n{}\0\nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "header of spaces only",
         .frame = LIT("> /foo\n   \nbody"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad header JSON: want an object"},
        {.name = "no space after '>'",
         .frame = LIT(">/foo"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
    };

    (void)state;
    run_cases(cases, N_CASES(cases));
}

/* ---- subscribe / cancel ---- */

static void test_proto_parse_subscribe_table(void **state)
{
    static const struct parse_case cases[] = {
        {.name = "live only",
         .frame = LIT("+ /t"),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/t"),
         .has_start = false,
         .has_max = false},
        {.name = "start 0",
         .frame = LIT("+ /t 0"),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/t"),
         .has_start = true,
         .start = 0},
        {.name = "start 5",
         .frame = LIT("+ /t 5"),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/t"),
         .has_start = true,
         .start = 5},
        {.name = "start -3",
         .frame = LIT("+ /t -3"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = -3},
        {.name = "start 3 max 2 (space)",
         .frame = LIT("+ /t 3 2"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = 3,
         .has_max = true,
         .max = 2},
        {.name = "start 3 max 2 (comma)",
         .frame = LIT("+ /t 3,2"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = 3,
         .has_max = true,
         .max = 2},
        {.name = "negative start with max",
         .frame = LIT("+ /t -10,4"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = -10,
         .has_max = true,
         .max = 4},
        {.name = "max 0",
         .frame = LIT("+ /t 1 0"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = 1,
         .has_max = true,
         .max = 0},
        {.name = "leading zeros",
         .frame = LIT("+ /t 007"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = 7},
        {.name = "subtopic path",
         .frame = LIT("+ /a/b/c"),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/a/b/c")},
        {.name = "line ending in spaces",
         .frame = LIT("+ /t 3 2   "),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/t"),
         .has_start = true,
         .start = 3,
         .has_max = true,
         .max = 2},
        {.name = "path ending in spaces",
         .frame = LIT("+ /t  "),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/t")},
        {.name = "trailing newline only",
         .frame = LIT("+ /t 4\n"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = 4},
        {.name = "CRLF",
         .frame = LIT("+ /t 4\r\n"),
         .type = GW_CMD_SUBSCRIBE,
         .path = LIT("/t"),
         .has_start = true,
         .start = 4},
        {.name = "int64 max start and max",
         .frame = LIT("+ /t 9223372036854775807 9223372036854775807"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = LLONG_MAX,
         .has_max = true,
         .max = LLONG_MAX},
        {.name = "int64 min start",
         .frame = LIT("+ /t -9223372036854775808"),
         .type = GW_CMD_SUBSCRIBE,
         .has_start = true,
         .start = LLONG_MIN},

        /* errors */
        {.name = "bad start",
         .frame = LIT("+ /t x"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "bad max (comma)",
         .frame = LIT("+ /t 1,x"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "negative max",
         .frame = LIT("+ /t 1 -2"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "negative max (comma)",
         .frame = LIT("+ /t 1,-2"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "empty start before comma",
         .frame = LIT("+ /t ,5"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "empty max after comma",
         .frame = LIT("+ /t 5,"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "two commas",
         .frame = LIT("+ /t 1,2,3"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "too many arguments",
         .frame = LIT("+ /t 1 2 3"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "too many arguments"},
        {.name = "too many arguments after comma form",
         .frame = LIT("+ /t 1,2 3"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "too many arguments"},
        {.name = "lone minus",
         .frame = LIT("+ /t -"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "plus sign",
         .frame = LIT("+ /t +5"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "decimal point",
         .frame = LIT("+ /t 1.5"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "int64 max + 1",
         .frame = LIT("+ /t 9223372036854775808"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "int64 min - 1",
         .frame = LIT("+ /t -9223372036854775809"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "20 digits",
         .frame = LIT("+ /t 99999999999999999999"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad start id"},
        {.name = "max int64 max + 1",
         .frame = LIT("+ /t 1 9223372036854775808"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "max int64 min",
         .frame = LIT("+ /t 1 -9223372036854775808"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad max count"},
        {.name = "only '+'",
         .frame = LIT("+"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "'+ '",
         .frame = LIT("+ "),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "'+   ' (spaces only)",
         .frame = LIT("+    "),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "bad path",
         .frame = LIT("+ bad"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad topic path"},
        {.name = "bad path: root",
         .frame = LIT("+ / 1"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad topic path"},
        {.name = "data after the command line",
         .frame = LIT("+ /t\nextra"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unexpected data after the command line"},
        {.name = "no space after '+'",
         .frame = LIT("+/t"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
    };

    (void)state;
    run_cases(cases, N_CASES(cases));
}

static void test_proto_parse_cancel_table(void **state)
{
    static const struct parse_case cases[] = {
        {.name = "cancel",
         .frame = LIT("- /t"),
         .type = GW_CMD_CANCEL,
         .path = LIT("/t")},
        {.name = "cancel, trailing spaces",
         .frame = LIT("- /t/u   "),
         .type = GW_CMD_CANCEL,
         .path = LIT("/t/u")},
        {.name = "cancel, CRLF",
         .frame = LIT("- /t\r\n"),
         .type = GW_CMD_CANCEL,
         .path = LIT("/t")},
        {.name = "'- '",
         .frame = LIT("- "),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "only '-'",
         .frame = LIT("-"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "missing topic path"},
        {.name = "bad path",
         .frame = LIT("- t"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "bad topic path"},
        {.name = "start id not allowed",
         .frame = LIT("- /t 5"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "too many arguments"},
        {.name = "data after the command line",
         .frame = LIT("- /t\n{}"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unexpected data after the command line"},
        {.name = "no space after '-'",
         .frame = LIT("-/t"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
    };

    (void)state;
    run_cases(cases, N_CASES(cases));
}

static void test_proto_parse_unknown_commands(void **state)
{
    static const struct parse_case cases[] = {
        {.name = "empty frame",
         .frame = LIT(""),
         .want_rv = GW_PARSE_BAD_REQUEST},
        {.name = "x",
         .frame = LIT("x"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "x with args",
         .frame = LIT("x /t"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = ">foo",
         .frame = LIT(">foo"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "#x",
         .frame = LIT("#x"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "# x",
         .frame = LIT("# x"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "newline only",
         .frame = LIT("\n"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "space first",
         .frame = LIT(" > /foo"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "NUL byte",
         .frame = LIT("\0"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "'>>'",
         .frame = LIT(">> /foo"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
        {.name = "tab separator",
         .frame = LIT(">\t/foo"),
         .want_rv = GW_PARSE_BAD_REQUEST,
         .want_why = "unknown command"},
    };

    (void)state;
    run_cases(cases, N_CASES(cases));
}

/* ---- limits built at run time ---- */

/* "> /foo <id>" with an id of n 'a's. */
static int parse_msgid_of(size_t n, struct gw_cmd *cmd, const char **why,
                          char **copy)
{
    char frame[8 + CH_MAX_ID_BYTES + 8];
    size_t len;

    assert_true(n + 8 <= sizeof frame);
    memcpy(frame, "> /foo ", 7);
    memset(frame + 7, 'a', n);
    len = 7 + n;
    return parse_copy(frame, len, DEFAULT_MAX_BODY, cmd, why, copy);
}

static void test_proto_parse_msgid_length_limit(void **state)
{
    struct gw_cmd cmd;
    const char *why;
    char *copy;

    (void)state;
    assert_int_equal(CH_MAX_ID_BYTES, 128);
    assert_int_equal(parse_msgid_of(1, &cmd, &why, &copy), 0);
    assert_int_equal(cmd.msgid.n, 1);
    free(copy);
    assert_int_equal(parse_msgid_of(128, &cmd, &why, &copy), 0);
    assert_int_equal(cmd.type, GW_CMD_PUBLISH);
    assert_int_equal(cmd.msgid.n, 128);
    free(copy);
    assert_int_equal(parse_msgid_of(129, &cmd, &why, &copy),
                     GW_PARSE_BAD_REQUEST);
    assert_string_equal(why, "bad publisher message id");
    free(copy);
}

static void test_proto_parse_body_limit_large(void **state)
{
    const size_t max_body = CH_DEFAULT_MAX_MESSAGE_BYTES;
    const char *head = "> /big m9\n{}\n";
    size_t head_n = strlen(head);
    char *frame = malloc(head_n + max_body + 1);
    struct gw_cmd cmd;
    const char *why;
    char *copy;

    (void)state;
    assert_non_null(frame);
    memcpy(frame, head, head_n);
    memset(frame + head_n, '\n', max_body + 1); /* newlines: all body */

    assert_int_equal(
        parse_copy(frame, head_n + max_body, max_body, &cmd, &why, &copy), 0);
    assert_int_equal(cmd.body.n, max_body);
    assert_int_equal(cmd.header.n, 2);
    free(copy);

    assert_int_equal(
        parse_copy(frame, head_n + max_body + 1, max_body, &cmd, &why, &copy),
        GW_PARSE_BAD_SEND);
    assert_string_equal(why, "message too large");
    /* the caller echoes id and path in !error-send */
    assert_int_equal(cmd.msgid.n, 2);
    assert_memory_equal(cmd.msgid.p, "m9", 2);
    assert_int_equal(cmd.path.n, 4);
    assert_memory_equal(cmd.path.p, "/big", 4);
    free(copy);
    free(frame);
}

static void test_proto_parse_header_limit(void **state)
{
    /* header: {"k":"aaaa..."} of exactly n bytes */
    const size_t limit = CH_MAX_HEADER_BYTES;
    size_t len = 7 + 1 + limit + 1 + 4;
    char *frame = malloc(len + 1);
    struct gw_cmd cmd;
    const char *why;
    char *copy;
    char *h;

    (void)state;
    assert_non_null(frame);
    memcpy(frame, "> /foo\n", 7);
    h = frame + 7;
    /* header of limit bytes */
    memcpy(h, "{\"k\":\"", 6);
    memset(h + 6, 'a', limit - 8);
    memcpy(h + limit - 2, "\"}", 2);
    memcpy(h + limit, "\nbody", 5);
    len = 7 + limit + 5;
    assert_int_equal(
        parse_copy(frame, len, DEFAULT_MAX_BODY, &cmd, &why, &copy), 0);
    assert_int_equal(cmd.header.n, limit);
    assert_int_equal(cmd.body.n, 4);
    free(copy);

    /* one more byte: a space inside the object, still valid JSON */
    memmove(h + 1, h, limit + 5);
    h[0] = '{';
    h[1] = ' ';
    len++;
    assert_int_equal(
        parse_copy(frame, len, DEFAULT_MAX_BODY, &cmd, &why, &copy),
        GW_PARSE_BAD_REQUEST);
    assert_string_equal(why, "header too large");
    free(copy);
    free(frame);
}

static void test_proto_parse_max_body_zero(void **state)
{
    struct gw_cmd cmd;
    const char *why;
    char *copy;

    (void)state;
    assert_int_equal(parse_copy("> /foo\n{}\n", 10, 0, &cmd, &why, &copy), 0);
    free(copy);
    assert_int_equal(parse_copy("> /foo\n{}\nx", 11, 0, &cmd, &why, &copy),
                     GW_PARSE_BAD_SEND);
    assert_string_equal(why, "message too large");
    free(copy);
}

/* The parser stays inside [frame, frame + len): a longer buffer whose tail
 * would change the outcome is parsed by its prefix only. */
static void test_proto_parse_respects_len(void **state)
{
    const char *buf = "+ /t 12 3 4";
    struct gw_cmd cmd;
    const char *why;
    char *copy;

    (void)state;
    assert_int_equal(parse_copy(buf, 7, DEFAULT_MAX_BODY, &cmd, &why, &copy),
                     0);
    assert_true(cmd.has_start);
    assert_int_equal(cmd.start, 12);
    assert_false(cmd.has_max);
    free(copy);
    assert_int_equal(parse_copy(buf, 6, DEFAULT_MAX_BODY, &cmd, &why, &copy),
                     0);
    assert_int_equal(cmd.start, 1);
    free(copy);
}

/* ---- message wire form ---- */

static struct ch_msg make_msg(const char *path, int64_t seq, const char *user,
                              const char *app, const char *msgid,
                              const char *header, const char *body,
                              size_t body_n, int64_t time)
{
    struct ch_msg m;

    memset(&m, 0, sizeof m);
    m.path.p = path;
    m.path.n = strlen(path);
    m.user.p = user;
    m.user.n = strlen(user);
    m.app.p = app;
    m.app.n = strlen(app);
    m.msgid.p = msgid;
    m.msgid.n = strlen(msgid);
    m.header.p = header;
    m.header.n = strlen(header);
    m.body.p = body;
    m.body.n = body_n;
    m.seq = seq;
    m.time = time;
    return m;
}

static void expect_encoding(const struct ch_msg *m, const char *want,
                            size_t want_n)
{
    struct ch_buf out;
    char a[512], b[512];

    ch_buf_init(&out);
    assert_int_equal(gw__msg_encode(m, &out), 0);
    if (out.len != want_n || memcmp(out.data, want, want_n) != 0)
        fail_msg("encoded \"%s\", want \"%s\"",
                 show(out.data, out.len, a, sizeof a),
                 show(want, want_n, b, sizeof b));
    ch_buf_free(&out);
}

static void test_proto_msg_encode_wire_form(void **state)
{
    static const char want1[] =
        "/foo,42,alice,app0123456789abc,m1,1700000000\n{\"k\":\"v\"}\nHello";
    static const char want2[] = "/a/b,1,anonymous,APP,,0\n\n";
    static const char want3[] = "/bin,7,u,a,id,5\n{}\nx\0y\nz\n";
    static const char want4[] = "/t,9223372036854775807,u,a,m,-1\n\n\xff";
    struct ch_msg m;

    (void)state;
    m = make_msg("/foo", 42, "alice", "app0123456789abc", "m1", "{\"k\":\"v\"}",
                 "Hello", 5, 1700000000);
    expect_encoding(&m, want1, sizeof want1 - 1);

    /* empty msgid, header and body */
    m = make_msg("/a/b", 1, "anonymous", "APP", "", "", "", 0, 0);
    expect_encoding(&m, want2, sizeof want2 - 1);

    /* binary body with NUL and newlines: copied verbatim */
    m = make_msg("/bin", 7, "u", "a", "id", "{}", "x\0y\nz\n", 6, 5);
    expect_encoding(&m, want3, sizeof want3 - 1);

    /* int64 extremes */
    m = make_msg("/t", INT64_MAX, "u", "a", "m", "", "\xff", 1, -1);
    expect_encoding(&m, want4, sizeof want4 - 1);
}

static void test_proto_msg_encode_appends(void **state)
{
    struct ch_buf out;
    struct ch_msg m = make_msg("/x", 3, "u", "a", "i", "{}", "b", 1, 9);
    static const char want[] = "PRE/x,3,u,a,i,9\n{}\nb/x,3,u,a,i,9\n{}\nb";

    (void)state;
    ch_buf_init(&out);
    assert_int_equal(ch_buf_append(&out, "PRE", 3), 0);
    assert_int_equal(gw__msg_encode(&m, &out), 0);
    assert_int_equal(gw__msg_encode(&m, &out), 0);
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, sizeof want - 1);
    ch_buf_free(&out);
}

/* The encoded message splits back at its first two newlines into the
 * first line, header and body (the same framing clients parse). */
static void test_proto_msg_encode_round_trip_split(void **state)
{
    static const char body[] = "line1\nline2\n\0end";
    struct ch_msg m = make_msg("/r", 11, "u1", "app", "mid", "{\"a\":1}", body,
                               sizeof body - 1, 77);
    struct ch_buf out;
    const char *nl1, *nl2;

    (void)state;
    ch_buf_init(&out);
    assert_int_equal(gw__msg_encode(&m, &out), 0);
    nl1 = memchr(out.data, '\n', out.len);
    assert_non_null(nl1);
    nl2 = memchr(nl1 + 1, '\n', out.len - (size_t)(nl1 + 1 - out.data));
    assert_non_null(nl2);
    assert_int_equal(nl1 - out.data, (long)strlen("/r,11,u1,app,mid,77"));
    assert_memory_equal(out.data, "/r,11,u1,app,mid,77", nl1 - out.data);
    assert_int_equal(nl2 - nl1 - 1, 7);
    assert_memory_equal(nl1 + 1, "{\"a\":1}", 7);
    assert_int_equal(out.len - (size_t)(nl2 + 1 - out.data), sizeof body - 1);
    assert_memory_equal(nl2 + 1, body, sizeof body - 1);
    ch_buf_free(&out);
}

struct text_case {
    struct lit header;
    struct lit body;
    bool want;
};

static void test_proto_msg_is_text(void **state)
{
    static const struct text_case cases[] = {
        {LIT(""), LIT(""), true},
        {LIT("{}"), LIT("Hello World"), true},
        {LIT("{\"k\":\"\xc3\xa9\"}"),
         LIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), true},
        {LIT(""), LIT("line\nbreaks\r\n\ttab"), true},
        {LIT(""), LIT("\xff"), false},
        {LIT("{}"), LIT("ok then \xfe"), false},
        {LIT(""), LIT("\xc3"), false},             /* truncated */
        {LIT(""), LIT("\xc3\xa9\xe2\x82"), false}, /* truncated at end */
        {LIT(""), LIT("\xc0\xaf"), false},         /* overlong '/' */
        {LIT(""), LIT("\xe0\x80\xaf"), false},     /* overlong */
        {LIT(""), LIT("\xed\xa0\x80"), false},     /* surrogate U+D800 */
        {LIT(""), LIT("\xf4\x90\x80\x80"), false}, /* above U+10FFFF */
        {LIT(""), LIT("\x80"), false},             /* lone continuation */
        {LIT("\xff"), LIT("text"), false},         /* header is checked too */
    };

    (void)state;
    for (size_t i = 0; i < N_CASES(cases); i++) {
        struct ch_msg m = make_msg("/t", 1, "u", "a", "", "", "", 0, 0);
        char shown[128];
        m.header.p = cases[i].header.p;
        m.header.n = cases[i].header.n;
        m.body.p = cases[i].body.p;
        m.body.n = cases[i].body.n;
        if (gw__msg_is_text(&m) != cases[i].want)
            fail_msg("case %zu body \"%s\": is_text %d, want %d", i,
                     show(m.body.p, m.body.n, shown, sizeof shown),
                     !cases[i].want, cases[i].want);
    }
}

/* A body produced by a publish of arbitrary binary bytes is sent binary;
 * a body of the same frame's text sent as text (docs/protocol.md "A message").
 */
static void test_proto_parse_then_is_text(void **state)
{
    static const char frame_bin[] = "> /foo\n{}\n\x01\x02\xff\x00";
    static const char frame_txt[] = "> /foo\n{}\n\xc3\xa9t\xc3\xa9";
    struct gw_cmd cmd;
    struct ch_msg m;
    const char *why;
    char *copy;

    (void)state;
    assert_int_equal(parse_copy(frame_bin, sizeof frame_bin - 1,
                                DEFAULT_MAX_BODY, &cmd, &why, &copy),
                     0);
    m = make_msg("/foo", 1, "u", "a", "", "", "", 0, 0);
    m.header = cmd.header;
    m.body = cmd.body;
    assert_int_equal(m.body.n, 4);
    assert_false(gw__msg_is_text(&m));
    free(copy);

    assert_int_equal(parse_copy(frame_txt, sizeof frame_txt - 1,
                                DEFAULT_MAX_BODY, &cmd, &why, &copy),
                     0);
    m.header = cmd.header;
    m.body = cmd.body;
    assert_true(gw__msg_is_text(&m));
    free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_parse_publish_table),
        cmocka_unit_test(test_proto_parse_subscribe_table),
        cmocka_unit_test(test_proto_parse_cancel_table),
        cmocka_unit_test(test_proto_parse_unknown_commands),
        cmocka_unit_test(test_proto_parse_msgid_length_limit),
        cmocka_unit_test(test_proto_parse_body_limit_large),
        cmocka_unit_test(test_proto_parse_header_limit),
        cmocka_unit_test(test_proto_parse_max_body_zero),
        cmocka_unit_test(test_proto_parse_respects_len),
        cmocka_unit_test(test_proto_msg_encode_wire_form),
        cmocka_unit_test(test_proto_msg_encode_appends),
        cmocka_unit_test(test_proto_msg_encode_round_trip_split),
        cmocka_unit_test(test_proto_msg_is_text),
        cmocka_unit_test(test_proto_parse_then_is_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
