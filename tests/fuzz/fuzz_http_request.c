/* libFuzzer target: the gateway's whole request path, in-process. The
 * input is the byte stream a client sends on one connection: HTTP/1.1
 * requests (REST publish/replay, admin API, bodies, pipelining), and after
 * an upgrade to /stream, WebSocket frames carrying client commands (an
 * upgrade to /internal/link is handed over to the cluster: the fake one
 * closes it). The marker "|~|" splits the stream into separate
 * reads; between reads the loop runs, the (fake) cluster commits queued
 * publishes and the subscription pumps run, so answers and deliveries
 * interleave with input as on a real server.
 *
 * The connection is a real libuv TCP handle opened on one end of a
 * socketpair, set up like gw__conn_accept_cb does, so http.c's own read,
 * parse (http_parser with the server's settings and limits), dispatch and
 * write paths run unchanged. The cluster is tests/lib/fake_cluster.c over
 * a real store, reset to empty before each input.
 *
 * Checks: no sanitizer report; the answer starts like an HTTP response;
 * after the client goes away the connection, its subscriptions and every
 * pending request are released (no leak, no stuck reference). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/log.h"
#include "fuzz_util.h"
#include "gateway/gw_int.h"
#include "lib/fake_cluster.h"

#define SPLIT "|~|"
#define SPLIT_N 3
#define MAX_PUMPS 64

static uv_loop_t loop;
static struct store *st;
static struct cluster *cl;
static struct gw *gw;
static struct ch_buf empty_snap;

/* What the client received (echoed to stderr with FUZZ_ECHO=1). */
static bool echo;
static size_t out_total;
static char out_head[16];

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct gw_config cfg;
    struct store_snap *snap;
    char errmsg[CH_ERRMSG_SIZE];

    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as chorusd does */
    echo = getenv("FUZZ_ECHO") != NULL;
    ch_log_set_level(echo ? CH_LOG_DEBUG : CH_LOG_ERROR);
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    st = fuzz_store_open();
    cl = fake_cluster_create(st);
    FUZZ_CHECK(cl != NULL);
    memset(&cfg, 0, sizeof cfg);
    cfg.http_addr = "127.0.0.1:0"; /* never listened on */
    /* Small limits, so inputs of a few KB reach them. */
    cfg.max_message_bytes = 2048;
    cfg.max_conn_buffer = 16 * 1024;
    FUZZ_CHECK(gw_create(&loop, &cfg, cl, &gw, errmsg) == 0);
    ch_buf_init(&empty_snap);
    FUZZ_CHECK(store_snapshot_begin(st, &snap) == 0);
    FUZZ_CHECK(store_snapshot_write(snap, &empty_snap) == 0);
    store_snapshot_end(snap);
    return 0;
}

/* As gw__conn_accept_cb, with uv_tcp_open instead of uv_accept. */
static uint64_t conn_open(int fd)
{
    struct gw_conn *c = gw__conn_new(gw);

    FUZZ_CHECK(c != NULL);
    FUZZ_CHECK(uv_tcp_open(&c->tcp, fd) == 0);
    gw__conn_start(c);
    return c->id;
}

static struct gw_conn *conn_find(uint64_t id)
{
    struct ch_queue *e;

    CH_QUEUE_FOREACH (e, &gw->conns) {
        struct gw_conn *c = CH_QUEUE_DATA(e, struct gw_conn, link);
        if (c->id == id)
            return c;
    }
    return NULL;
}

static bool drain(int fd)
{
    char buf[65536];
    ssize_t n;
    bool got = false;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        got = true;
        if (echo)
            fwrite(buf, 1, (size_t)n, stderr);
        if (out_total < sizeof out_head) {
            size_t k = sizeof out_head - out_total;
            memcpy(out_head + out_total, buf, (size_t)n < k ? (size_t)n : k);
        }
        out_total += (size_t)n;
    }
    return got;
}

/* One turn of the server: I/O, commits, subscription pumps, client reads.
 * Returns true if anything moved. */
static bool turn(int peer)
{
    bool busy;

    uv_run(&loop, UV_RUN_NOWAIT);
    busy = fake_cluster_step(cl);
    if (!ch_queue_empty(&gw->pumps)) {
        gw__sub_run_pumps(gw);
        busy = true;
    }
    if (peer >= 0 && drain(peer))
        busy = true;
    return busy;
}

/* Turns until nothing moves (at least two, at most max). */
static void settle(int peer, int max)
{
    for (int i = 0; i < max; i++)
        if (!turn(peer) && i >= 1)
            break;
}

static void send_all(int peer, const uint8_t *p, size_t n)
{
    int stalls = 0;

    while (n > 0) {
        ssize_t w = send(peer, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            /* The server does not read (backpressure): let it run; past a
             * bound the client gives up on the rest. */
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && ++stalls < 1000) {
                turn(peer);
                continue;
            }
            return; /* EPIPE: the server closed; the rest is dropped */
        }
        p += w;
        n -= (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];
    uint64_t id;
    size_t off = 0;
    int i;

    FUZZ_CHECK(store_restore(st, empty_snap.data, empty_snap.len) == 0);
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    FUZZ_CHECK(fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0);
    out_total = 0;
    memset(out_head, 0, sizeof out_head);
    id = conn_open(fds[0]);

    /* The client's reads, one per chunk. */
    while (off <= size) {
        const uint8_t *hit = NULL;
        size_t n;

        if (size - off >= SPLIT_N)
            hit = memmem(data + off, size - off, SPLIT, SPLIT_N);
        n = hit ? (size_t)(hit - (data + off)) : size - off;
        send_all(fds[1], data + off, n);
        settle(fds[1], 8);
        if (hit == NULL)
            break;
        off += n + SPLIT_N;
    }
    settle(fds[1], MAX_PUMPS);

    /* The client half-closes, reads what is left, then goes away. */
    shutdown(fds[1], SHUT_WR);
    settle(fds[1], MAX_PUMPS);
    drain(fds[1]);
    close(fds[1]);
    for (i = 0;
         i < MAX_PUMPS && (conn_find(id) != NULL || !fake_cluster_idle(cl));
         i++)
        turn(-1);
    /* A lingering connection waits for the linger timer: close it now. */
    if (conn_find(id) != NULL) {
        struct gw_conn *c = conn_find(id);
        FUZZ_CHECK(c->state == GW_CONN_LINGERING ||
                   c->state == GW_CONN_DRAINING || c->req_busy || c->is_ws);
        gw__conn_close(c);
    }
    for (i = 0; i < 10 * MAX_PUMPS &&
                (conn_find(id) != NULL || !fake_cluster_idle(cl));
         i++)
        turn(-1);

    /* Everything released. */
    FUZZ_CHECK(conn_find(id) == NULL);
    FUZZ_CHECK(fake_cluster_idle(cl));
    FUZZ_CHECK(ch_queue_empty(&gw->conns) && ch_queue_empty(&gw->pumps));
    FUZZ_CHECK(gw->index.n_entries == 0);
    FUZZ_CHECK(gw->metrics.connections_current == 0 &&
               gw->metrics.ws_connections_current == 0);
    /* Whatever came back is HTTP. */
    if (out_total > 0)
        FUZZ_CHECK(
            memcmp(out_head, "HTTP/1.1 ", out_total < 9 ? out_total : 9) == 0);
    return 0;
}
