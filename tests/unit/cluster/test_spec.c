/* Unit tests of the --cluster specification parser and the raft address
 * check (src/cluster/spec.c, docs/operations.md "Running a node";
 * docs/libraft.md "Setup": libraft 0.15 takes IPv4 literals only). Leaks are
 * caught by LeakSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "common/err.h"

#define N_CASES(a) (sizeof(a) / sizeof((a)[0]))

/* ---- cluster_addr_valid_ipv4 ---- */

struct addr_case {
    const char *addr;
    bool want;
};

static void test_spec_addr_valid_ipv4_table(void **state)
{
    static const struct addr_case cases[] = {
        {"127.0.0.1:7001", true},
        {"0.0.0.0:1", true},
        {"10.1.2.3:65535", true},
        {"255.255.255.255:80", true},
        {"localhost:7001", false}, /* hostnames: raft 0.15 cannot use them */
        {"node1.example.com:7001", false},
        {"127.0.0.1", false},  /* no port */
        {"127.0.0.1:", false}, /* empty port */
        {":7001", false},      /* no host */
        {":", false},
        {"", false},
        {"127.0.0.1:0", false},     /* port 0 */
        {"127.0.0.1:65536", false}, /* port too large */
        {"127.0.0.1:99999999999999999999", false},
        {"127.0.0.1:-1", false},
        {"127.0.0.1:abc", false}, /* letters */
        {"127.0.0.1:80a", false},
        {"127.0.0.1:0x50", false},
        {"127.0.0.1:7001:1", false}, /* two colons */
        {"256.0.0.1:80", false},
        {"1.2.3:80", false},
        {"1.2.3.4.5:80", false},
        {"1.2.3.-4:80", false},
        {"[::1]:7001", false}, /* IPv6 */
        {"::1:7001", false},
        {"127.0.0.1 :80", false},
        {"1234567890123456789012345:80", false}, /* host longer than any IPv4 */
    };

    (void)state;
    for (size_t i = 0; i < N_CASES(cases); i++) {
        bool got = cluster_addr_valid_ipv4(cases[i].addr);
        if (got != cases[i].want)
            fail_msg("cluster_addr_valid_ipv4(\"%s\") = %d, want %d",
                     cases[i].addr, got, cases[i].want);
    }
}

/* ---- cluster_spec_parse: valid ---- */

static void test_spec_parse_one_member(void **state)
{
    struct cluster_member *m = NULL;
    unsigned n = 0;
    char errmsg[CH_ERRMSG_SIZE] = "";

    (void)state;
    assert_int_equal(
        cluster_spec_parse("1=127.0.0.1:7001/127.0.0.1:8081", &m, &n, errmsg),
        0);
    assert_int_equal(n, 1);
    assert_non_null(m);
    assert_int_equal(m[0].id, 1);
    assert_string_equal(m[0].raft, "127.0.0.1:7001");
    assert_string_equal(m[0].http, "127.0.0.1:8081");
    assert_int_equal(m[0].role, CLUSTER_ROLE_VOTER);
    free(m);
}

static void test_spec_parse_three_members(void **state)
{
    static const char spec[] = "1=127.0.0.1:7001/127.0.0.1:8081,"
                               "2=127.0.0.1:7002/127.0.0.1:8082,"
                               "3=10.0.0.3:7003/node3.example.com:8083";
    struct cluster_member *m = NULL;
    unsigned n = 0;
    char errmsg[CH_ERRMSG_SIZE] = "";

    (void)state;
    assert_int_equal(cluster_spec_parse(spec, &m, &n, errmsg), 0);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].id, 1);
    assert_int_equal(m[1].id, 2);
    assert_int_equal(m[2].id, 3);
    assert_string_equal(m[0].raft, "127.0.0.1:7001");
    assert_string_equal(m[1].raft, "127.0.0.1:7002");
    assert_string_equal(m[2].raft, "10.0.0.3:7003");
    assert_string_equal(m[0].http, "127.0.0.1:8081");
    assert_string_equal(m[1].http, "127.0.0.1:8082");
    /* the HTTP address may be a host name: only raft needs IPv4 */
    assert_string_equal(m[2].http, "node3.example.com:8083");
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(m[i].role, CLUSTER_ROLE_VOTER);
    free(m);
}

static void test_spec_parse_keeps_order_and_large_ids(void **state)
{
    static const char spec[] = "7=127.0.0.1:1/h:1,"
                               "3=127.0.0.1:2/h:2,"
                               "18446744073709551615=127.0.0.1:3/h:3";
    struct cluster_member *m = NULL;
    unsigned n = 0;
    char errmsg[CH_ERRMSG_SIZE] = "";

    (void)state;
    assert_int_equal(cluster_spec_parse(spec, &m, &n, errmsg), 0);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].id, 7);
    assert_int_equal(m[1].id, 3);
    assert_true(m[2].id == UINT64_MAX);
    assert_string_equal(m[2].raft, "127.0.0.1:3");
    assert_string_equal(m[2].http, "h:3");
    free(m);
}

/* Longest accepted addresses are kept whole (CH_MAX_ADDR_BYTES bytes). */
static void test_spec_parse_address_length_limits(void **state)
{
    char spec[1024];
    char http[CH_MAX_ADDR_BYTES + 8];
    struct cluster_member *m = NULL;
    unsigned n = 0;
    char errmsg[CH_ERRMSG_SIZE] = "";
    size_t host_n;

    (void)state;
    /* http of exactly CH_MAX_ADDR_BYTES: host + ":8080" */
    host_n = CH_MAX_ADDR_BYTES - 5;
    memset(http, 'h', host_n);
    memcpy(http + host_n, ":8080", 6);
    assert_int_equal(strlen(http), CH_MAX_ADDR_BYTES);
    snprintf(spec, sizeof spec, "1=127.0.0.1:7001/%s", http);
    assert_int_equal(cluster_spec_parse(spec, &m, &n, errmsg), 0);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].http, http);
    free(m);

    /* one byte more: refused, not truncated */
    m = NULL;
    memset(http, 'h', host_n + 1);
    memcpy(http + host_n + 1, ":8080", 6);
    assert_int_equal(strlen(http), CH_MAX_ADDR_BYTES + 1);
    snprintf(spec, sizeof spec, "1=127.0.0.1:7001/%s", http);
    errmsg[0] = '\0';
    assert_int_equal(cluster_spec_parse(spec, &m, &n, errmsg), CH_EINVAL);
    assert_null(m);
    assert_non_null(strstr(errmsg, "http address"));
}

/* ---- cluster_spec_parse: errors ---- */

struct bad_case {
    const char *spec;
    const char *want_in_errmsg; /* substring of errmsg */
};

static void expect_refused(const char *spec, const char *want_in_errmsg)
{
    struct cluster_member *sentinel = (struct cluster_member *)&sentinel;
    struct cluster_member *m = sentinel;
    unsigned n = 12345;
    char errmsg[CH_ERRMSG_SIZE];
    int rv;

    memset(errmsg, 0, sizeof errmsg);
    rv = cluster_spec_parse(spec, &m, &n, errmsg);
    if (rv != CH_EINVAL) {
        if (rv == 0) {
            free(m); /* the leak check must not hide the real failure */
            fail_msg("spec \"%s\": accepted with %u members, want CH_EINVAL",
                     spec ? spec : "(null)", n);
        }
        fail_msg("spec \"%s\": rv %d, want CH_EINVAL", spec ? spec : "(null)",
                 rv);
    }
    if (errmsg[0] == '\0')
        fail_msg("spec \"%s\": no errmsg", spec ? spec : "(null)");
    if (memchr(errmsg, '\0', sizeof errmsg) == NULL)
        fail_msg("spec \"%s\": errmsg not terminated", spec);
    if (want_in_errmsg != NULL && strstr(errmsg, want_in_errmsg) == NULL)
        fail_msg("spec \"%s\": errmsg \"%s\" lacks \"%s\"",
                 spec ? spec : "(null)", errmsg, want_in_errmsg);
    /* nothing handed out on error */
    if (m != sentinel)
        fail_msg("spec \"%s\": *out written on error", spec);
}

static void test_spec_parse_rejects_table(void **state)
{
    static const struct bad_case cases[] = {
        {"", "empty"},
        /* ids */
        {"1=127.0.0.1:7001/127.0.0.1:8081,1=127.0.0.1:7002/127.0.0.1:8082",
         "duplicate member id 1"},
        {"1=127.0.0.1:7001/h:1,2=127.0.0.1:7002/h:2,1=127.0.0.1:7003/h:3",
         "duplicate member id 1"},
        {"0=127.0.0.1:7001/127.0.0.1:8081", "bad member id"},
        {"=127.0.0.1:7001/127.0.0.1:8081", "bad member id"},
        {"abc=127.0.0.1:7001/127.0.0.1:8081", "bad member id"},
        {"1a=127.0.0.1:7001/127.0.0.1:8081", "bad member id"},
        {"1.5=127.0.0.1:7001/127.0.0.1:8081", "bad member id"},
        /* structure */
        {"1127.0.0.1:7001/127.0.0.1:8081", "ID=RAFT/HTTP"}, /* no '=' */
        {"1=127.0.0.1:7001", "ID=RAFT/HTTP"},               /* no '/' */
        {"1=127.0.0.1:7001 127.0.0.1:8081", "ID=RAFT/HTTP"},
        {"127.0.0.1:7001/127.0.0.1:8081", "ID=RAFT/HTTP"},
        {"1/127.0.0.1:7001=127.0.0.1:8081", "ID=RAFT/HTTP"}, /* '/' first */
        {"garbage", "ID=RAFT/HTTP"},
        {",", "offset 0"},
        {",1=127.0.0.1:7001/127.0.0.1:8081", "offset 0"}, /* leading , */
        {"1=127.0.0.1:7001/h:1,,2=127.0.0.1:7002/h:2", "offset"},
        /* raft address: IPv4 literal with a valid port only */
        {"1=localhost:7001/127.0.0.1:8081", "bad raft address"},
        {"1=node1.example.com:7001/127.0.0.1:8081", "bad raft address"},
        {"1=[::1]:7001/127.0.0.1:8081", "bad raft address"},
        {"1=127.0.0.1/127.0.0.1:8081", "bad raft address"},
        {"1=127.0.0.1:0/127.0.0.1:8081", "bad raft address"},
        {"1=127.0.0.1:65536/127.0.0.1:8081", "bad raft address"},
        {"1=127.0.0.1:/127.0.0.1:8081", "bad raft address"},
        {"1=127.0.0.1:abc/127.0.0.1:8081", "bad raft address"},
        {"1=127.0.0.1:70x1/127.0.0.1:8081", "bad raft address"},
        {"1=:7001/127.0.0.1:8081", "bad raft address"},
        {"1=/127.0.0.1:8081", "bad raft address"},
        {"1=300.0.0.1:7001/127.0.0.1:8081", "bad raft address"},
        /* http address: host:port */
        {"1=127.0.0.1:7001/127.0.0.1:0", "bad http address"},
        {"1=127.0.0.1:7001/127.0.0.1:65536", "bad http address"},
        {"1=127.0.0.1:7001/127.0.0.1:", "bad http address"},
        {"1=127.0.0.1:7001/127.0.0.1:http", "bad http address"},
        {"1=127.0.0.1:7001/127.0.0.1", "bad http address"},
        {"1=127.0.0.1:7001/:8081", "bad http address"},
        {"1=127.0.0.1:7001/", "bad http address"},
        {"1=127.0.0.1:7001/h:1/x", "bad http address"},
        /* an error in a later member frees the earlier ones */
        {"1=127.0.0.1:7001/h:1,2=127.0.0.1:7002/h:2,3=bad:1/h:3",
         "bad raft address"},
        {"1=127.0.0.1:7001/h:1,2=127.0.0.1:7002/h:0", "bad http address"},
    };

    (void)state;
    for (size_t i = 0; i < N_CASES(cases); i++)
        expect_refused(cases[i].spec, cases[i].want_in_errmsg);
}

static void test_spec_parse_rejects_null(void **state)
{
    (void)state;
    expect_refused(NULL, "empty");
}

/* Regression (was a bug): a trailing comma was accepted as if it were
 * not there. Input "1=127.0.0.1:7001/127.0.0.1:8081," returned 0 with one
 * member; a leading or doubled comma (an empty member) is refused, so the
 * trailing empty member should be too (the docs/operations.md "Running a node"
 * grammar is ID=RAFT/HTTP[,...]). Expected CH_EINVAL. */
static void test_spec_parse_rejects_trailing_comma(void **state)
{
    (void)state;
    expect_refused("1=127.0.0.1:7001/127.0.0.1:8081,", NULL);
    expect_refused("1=127.0.0.1:7001/h:1,2=127.0.0.1:7002/h:2,", NULL);
}

/* Regression (was a bug): ids go through strtoull, which accepts a
 * leading '-' and wraps: "-1=127.0.0.1:7001/127.0.0.1:8081" returned 0 with
 * member id 18446744073709551615. docs/operations.md: an id is N >= 1. Expected
 * CH_EINVAL "bad member id". */
static void test_spec_parse_rejects_negative_id(void **state)
{
    (void)state;
    expect_refused("-1=127.0.0.1:7001/127.0.0.1:8081", "bad member id");
}

/* Regression (was a bug): an id that overflows uint64
 * ("99999999999999999999=127.0.0.1:7001/127.0.0.1:8081") was accepted as
 * 18446744073709551615 (strtoull's ERANGE is ignored); combined with "-1="
 * it even ends as "duplicate member id 18446744073709551615". Expected
 * CH_EINVAL "bad member id". */
static void test_spec_parse_rejects_overflowing_id(void **state)
{
    (void)state;
    expect_refused("99999999999999999999=127.0.0.1:7001/127.0.0.1:8081",
                   "bad member id");
}

static void test_spec_parse_rejects_overlong(void **state)
{
    char spec[2048];
    char raft[CH_MAX_ADDR_BYTES + 16];
    char big[700];

    (void)state;
    /* raft address over the limit: port with leading zeros, still 80 */
    snprintf(raft, sizeof raft, "127.0.0.1:");
    memset(raft + 10, '0', CH_MAX_ADDR_BYTES + 1 - 10 - 2);
    memcpy(raft + CH_MAX_ADDR_BYTES + 1 - 2, "80", 3);
    assert_int_equal(strlen(raft), CH_MAX_ADDR_BYTES + 1);
    snprintf(spec, sizeof spec, "1=%s/127.0.0.1:8081", raft);
    expect_refused(spec, "bad raft address");

    /* http address of 300 bytes */
    memset(big, 'h', 295);
    memcpy(big + 295, ":8080", 6);
    snprintf(spec, sizeof spec, "1=127.0.0.1:7001/%s", big);
    expect_refused(spec, "bad http address");

    /* one member longer than any valid one: refused before splitting */
    memset(big, 'h', sizeof big - 6);
    memcpy(big + sizeof big - 6, ":8080", 6);
    snprintf(spec, sizeof spec, "1=127.0.0.1:7001/%s", big);
    expect_refused(spec, "bad cluster member");

    /* the same after a valid member: the first one is freed */
    snprintf(spec, sizeof spec, "1=127.0.0.1:7001/h:1,2=127.0.0.1:7002/%s",
             big);
    expect_refused(spec, "bad cluster member");
}

/* Many members: the array grows; all of them come back (and are freed). */
static void test_spec_parse_many_members(void **state)
{
    char spec[4096];
    size_t off = 0;
    struct cluster_member *m = NULL;
    unsigned n = 0;
    char errmsg[CH_ERRMSG_SIZE] = "";

    (void)state;
    for (unsigned i = 1; i <= 40; i++) {
        int k =
            snprintf(spec + off, sizeof spec - off, "%s%u=10.0.0.%u:%u/h%u:80",
                     i > 1 ? "," : "", i, i, 7000 + i, i);
        assert_true(k > 0 && (size_t)k < sizeof spec - off);
        off += (size_t)k;
    }
    assert_int_equal(cluster_spec_parse(spec, &m, &n, errmsg), 0);
    assert_int_equal(n, 40);
    for (unsigned i = 0; i < n; i++) {
        char want[32];
        assert_int_equal(m[i].id, i + 1);
        snprintf(want, sizeof want, "10.0.0.%u:%u", i + 1, 7001 + i);
        assert_string_equal(m[i].raft, want);
    }
    free(m);

    /* and a duplicate at the end frees all 40 */
    assert_true(off + 32 < sizeof spec);
    snprintf(spec + off, sizeof spec - off, ",17=10.0.0.99:1/h:1");
    expect_refused(spec, "duplicate member id 17");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_addr_valid_ipv4_table),
        cmocka_unit_test(test_spec_parse_one_member),
        cmocka_unit_test(test_spec_parse_three_members),
        cmocka_unit_test(test_spec_parse_keeps_order_and_large_ids),
        cmocka_unit_test(test_spec_parse_address_length_limits),
        cmocka_unit_test(test_spec_parse_rejects_table),
        cmocka_unit_test(test_spec_parse_rejects_null),
        cmocka_unit_test(test_spec_parse_rejects_trailing_comma),
        cmocka_unit_test(test_spec_parse_rejects_negative_id),
        cmocka_unit_test(test_spec_parse_rejects_overflowing_id),
        cmocka_unit_test(test_spec_parse_rejects_overlong),
        cmocka_unit_test(test_spec_parse_many_members),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
