/* Unit tests of src/common/validate.c (docs/protocol.md "Topics and messages"
 * names). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/limits.h"
#include "common/validate.h"

struct name_case {
    const char *text;
    bool want;
};

static void test_valid_topic_table(void **state)
{
    static const struct name_case cases[] = {
        {"/foo", true},      {"/foo/bar", true},   {"/a", true},
        {"/a/.b", true},     {"/a/b.", true},      {"/...", true},
        {"/a-b_c.D9", true}, {"/a/b/c/d/e", true}, {"/", false},
        {"", false},         {"foo", false},       {"foo/bar", false},
        {"//a", false},      {"/a/", false},       {"/a//b", false},
        {"/.", false},       {"/..", false},       {"/a/.", false},
        {"/a/..", false},    {"/./a", false},      {"/../a", false},
        {"/a b", false},     {"/a,b", false},      {"/a\nb", false},
        {"/a?b", false},     {"/a*", false},       {"/\xc3\xa9", false},
        {"/a\\b", false},    {"/a:b", false}, /* ':' is allowed in ids, not in
                                                 topics */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].text;
        bool got = ch_valid_topic(t, strlen(t));
        if (got != cases[i].want)
            fail_msg("ch_valid_topic(\"%s\") = %d, want %d", t, got,
                     cases[i].want);
    }
}

static void test_valid_topic_embedded_nul(void **state)
{
    (void)state;
    assert_false(ch_valid_topic("/a\0b", 4));
    assert_false(ch_valid_topic("/a\0", 3));
}

static void test_valid_topic_length_limit(void **state)
{
    char buf[CH_MAX_TOPIC_BYTES + 2];

    (void)state;
    buf[0] = '/';
    memset(buf + 1, 'a', sizeof(buf) - 1);
    assert_int_equal(CH_MAX_TOPIC_BYTES, 255);
    assert_true(ch_valid_topic(buf, 255));
    assert_false(ch_valid_topic(buf, 256));
    /* a segment break near the limit */
    buf[100] = '/';
    assert_true(ch_valid_topic(buf, 255));
}

static void test_valid_id_table(void **state)
{
    static const struct name_case cases[] = {
        {"a", true},    {"user-1", true}, {"A.b_c:d-9", true},
        {"42", true},   {":", true},      {".", true},
        {"", false},    {"a b", false},   {"a/b", false},
        {"a,b", false}, {"a\n", false},   {"\xc3\xa9", false},
        {"a+b", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].text;
        bool got = ch_valid_id(t, strlen(t));
        if (got != cases[i].want)
            fail_msg("ch_valid_id(\"%s\") = %d, want %d", t, got,
                     cases[i].want);
    }
}

static void test_valid_id_length_limit(void **state)
{
    char buf[CH_MAX_ID_BYTES + 1];

    (void)state;
    memset(buf, 'x', sizeof(buf));
    assert_true(ch_valid_id(buf, 1));
    assert_true(ch_valid_id(buf, 128));
    assert_false(ch_valid_id(buf, 129));
    assert_false(ch_valid_id("a\0", 2));
}

struct under_case {
    const char *path;
    const char *prefix;
    bool want;
};

static void test_topic_under_table(void **state)
{
    static const struct under_case cases[] = {
        {"/foo", "/foo", true},         {"/foo/bar", "/foo", true},
        {"/foo/bar/baz", "/foo", true}, {"/foo/bar/baz", "/foo/bar", true},
        {"/foobar", "/foo", false},     {"/foo.x", "/foo", false},
        {"/fo", "/foo", false},         {"/bar/foo", "/foo", false},
        {"/foo", "/foo/bar", false},    {"/anything", "/", true},
        {"/anything", "", true},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct under_case *c = &cases[i];
        bool got = ch_topic_under(c->path, strlen(c->path), c->prefix,
                                  strlen(c->prefix));
        if (got != c->want)
            fail_msg("ch_topic_under(\"%s\", \"%s\") = %d, want %d", c->path,
                     c->prefix, got, c->want);
    }
}

struct i64_case {
    const char *text;
    bool ok;
    long long want;
};

static void test_parse_i64_table(void **state)
{
    static const struct i64_case cases[] = {
        {"0", true, 0},
        {"1", true, 1},
        {"-1", true, -1},
        {"-0", true, 0},
        {"007", true, 7},
        {"42", true, 42},
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775807", true, -INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"18446744073709551616", false, 0},
        {"99999999999999999999", false, 0},
        {"00000000000000000001", false, 0}, /* 20 digits: refused */
        {"", false, 0},
        {"-", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"1a", false, 0},
        {"--1", false, 0},
        {"1-", false, 0},
        {"0x10", false, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct i64_case *c = &cases[i];
        long long got = 12345;
        bool ok = ch_parse_i64(c->text, strlen(c->text), &got);
        if (ok != c->ok)
            fail_msg("ch_parse_i64(\"%s\") ok = %d, want %d", c->text, ok,
                     c->ok);
        if (ok && got != c->want)
            fail_msg("ch_parse_i64(\"%s\") = %lld, want %lld", c->text, got,
                     c->want);
        if (!ok && got != 12345)
            fail_msg("ch_parse_i64(\"%s\") wrote its output on failure",
                     c->text);
    }
}

static void test_parse_i64_not_nul_terminated(void **state)
{
    long long v = 0;

    (void)state;
    assert_true(ch_parse_i64("123456", 3, &v));
    assert_int_equal(v, 123);
}

static void test_valid_utf8_table(void **state)
{
    static const struct {
        const char *p;
        size_t n;
        bool want;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"caf\xc3\xa9", 5, true},
        {"\xe2\x82\xac", 3, true},      /* U+20AC */
        {"\xf0\x9f\x98\x80", 4, true},  /* U+1F600 */
        {"a\0b", 3, true},              /* NUL is valid UTF-8 */
        {"\xc3", 1, false},             /* truncated */
        {"\xc0\xaf", 2, false},         /* overlong */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* above U+10FFFF */
        {"\xff", 1, false},
        {"\x80", 1, false},         /* lone continuation */
        {"\xe2\x28\xa1", 3, false}, /* bad continuation */
        /* around the eight-byte ASCII fast path */
        {"abcdefghijklmnop", 16, true},
        {"abcdefg\xff", 8, false},
        {"abcdefgh\xff", 9, false},
        {"abcdefghijklmno\x80", 16, false},
        {"abcdefgh\xc3\xa9ijklmnop", 18, true},
        {"abcdefg\xc3\xa9", 9, true},
        {"abcdefghijklmnop\xe2\x82", 18, false}, /* truncated at the end */
        {"abcdefgh\xed\xa0\x80"
         "abcdefgh",
         19, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (ch_valid_utf8(cases[i].p, cases[i].n) != cases[i].want)
            fail_msg("ch_valid_utf8 case %zu: want %d", i, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_topic_table),
        cmocka_unit_test(test_valid_topic_embedded_nul),
        cmocka_unit_test(test_valid_topic_length_limit),
        cmocka_unit_test(test_valid_id_table),
        cmocka_unit_test(test_valid_id_length_limit),
        cmocka_unit_test(test_topic_under_table),
        cmocka_unit_test(test_parse_i64_table),
        cmocka_unit_test(test_parse_i64_not_nul_terminated),
        cmocka_unit_test(test_valid_utf8_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
