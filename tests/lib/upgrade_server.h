/* A TCP listener for tests that plays the gateway's part in front of a
 * WebSocket server end: it reads one HTTP upgrade request per connection,
 * then either hands the socket over (a duplicate descriptor, as the
 * gateway does for node links) with the client's key and path, or, when
 * a canned answer is set, writes it and closes (to test how clients take
 * refusals and wrong accept values). Port chosen by the kernel. */
#ifndef CHORUS_TESTS_LIB_UPGRADE_SERVER_H
#define CHORUS_TESTS_LIB_UPGRADE_SERVER_H

#include <stdbool.h>

#include <uv.h>

#include "common/queue.h"

/* fd is owned by the callee. */
typedef void (*test_upgrade_cb)(void *arg, int fd, const char *key,
                                const char *path);

struct test_upgrade_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    char addr[32]; /* "127.0.0.1:<port>" */
    test_upgrade_cb cb;
    void *arg;
    const char *canned;      /* answer instead of handing over (borrowed);
                                "%s" in it is replaced by the right accept */
    struct ch_queue pending; /* connections still sending their request */
    unsigned n_upgrades;     /* requests read so far */
};

/* Listens on 127.0.0.1 (free port). Fails the test on error. */
void test_upgrade_server_start(struct test_upgrade_server *s, uv_loop_t *loop,
                               test_upgrade_cb cb, void *arg);
/* Closes the listener and pending connections (their close callbacks run
 * on the loop). */
void test_upgrade_server_stop(struct test_upgrade_server *s);

#endif
