/* The gateway (src/gateway) in process for unit tests: a real gateway
 * listening on 127.0.0.1 (port chosen by the kernel) over a real store in
 * a temporary directory, with the stand-in cluster of fake_cluster.h,
 * which commits what was published once per loop turn (its check phase)
 * unless told to hold. Clients on the same loop: a raw HTTP client on a
 * plain non-blocking socket, and WebSocket clients on common/wsconn.
 * Every wait is bounded. */
#ifndef CHORUS_TESTS_LIB_GW_HARNESS_H
#define CHORUS_TESTS_LIB_GW_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "common/wsconn.h"
#include "gateway/gw_int.h"
#include "lib/fake_cluster.h"

#define GWFX_WAIT_MS 5000
#define GWFX_MAX_CLIENTS 16

struct gw_fx_options {
    size_t max_message_bytes; /* 0: the default */
    size_t max_conn_buffer;   /* 0: the default */
    size_t max_connections;   /* 0: 100 */
};

struct gw_fx {
    uv_loop_t loop;
    char dir[256];
    struct store *store;
    struct cluster *cl; /* the stand-in */
    struct gw *gw;
    char addr[64]; /* 127.0.0.1:<port> */
    int port;
    struct ch_wsctx x; /* for the WebSocket clients */
    /* Clients not closed yet: a failed test leaves them behind (its stack
     * is gone), gwfx_stop closes them without callbacks. */
    struct ch_wsconn *clients[GWFX_MAX_CLIENTS];
    /* Raw HTTP clients not closed yet, by their poll handle: likewise. */
    uv_poll_t *hpolls[GWFX_MAX_CLIENTS];
    uv_check_t commit; /* steps the stand-in once per loop turn */
    uv_idle_t idle;    /* keeps the poll from blocking while it has work */
    bool is_holding;   /* publishes wait (no commit) */
};

/* cmocka set-up and tear-down: a started fixture (default options) with
 * the test heap counting between them (the tear-down fails the test on a
 * leak). */
int gwfx_setup(void **state);
int gwfx_teardown(void **state);
void gwfx_start(struct gw_fx *f, const struct gw_fx_options *o);
/* Closes the gateway and every client's loop handle, the store and the
 * directory; fails the test if the loop cannot be closed. */
void gwfx_stop(struct gw_fx *f);
bool gwfx_run_until(struct gw_fx *f, bool (*pred)(void *), void *arg,
                    unsigned max_ms);
/* Publishes wait (true) or commit every loop turn (false, the default). */
void gwfx_hold(struct gw_fx *f, bool is_holding);

/* ---- a raw HTTP client ---- */

struct hclient {
    struct gw_fx *f;
    int fd;
    uv_poll_t *poll; /* wakes the loop when the server writes */
    char *in;        /* bytes received and not consumed (test memory) */
    size_t in_n, in_cap;
    bool is_eof; /* the server closed (or reset) */
};

struct hresp {
    int status;
    char *body; /* NUL-terminated, test memory (free()) */
    size_t body_n;
    bool keep_alive;
};

/* Connects (fails the test if it cannot). */
void hc_connect(struct gw_fx *f, struct hclient *h);
/* Sends all of p; stops (is_eof) if the server closed the connection. */
void hc_send(struct hclient *h, const void *p, size_t n);
void hc_sends(struct hclient *h, const char *s);
/* Waits for the next whole response and takes it out of the input.
 * Returns false if none came within GWFX_WAIT_MS or the connection ended
 * first. */
bool hc_response(struct hclient *h, struct hresp *r);
/* Waits until the server closed the connection. */
bool hc_wait_eof(struct hclient *h);
/* Stops (false) or resumes (true) reading the socket: what the server
 * writes then waits in the kernel's buffers. */
void hc_set_reading(struct hclient *h, bool on);
void hc_close(struct hclient *h);
void hresp_free(struct hresp *r);
/* One request on a fresh connection: method, path, body (may be NULL),
 * extra header lines ("Name: value\r\n..."), the response. */
bool hc_request(struct gw_fx *f, const char *method, const char *path,
                const char *headers, const char *body, struct hresp *r);

/* One request whose answer must have `status` (else the test fails) and
 * a JSON body, returned (json_decref it). */
json_t *hc_json(struct gw_fx *f, const char *method, const char *path,
                const char *headers, const char *body, int status);
/* Field `name` of object o; fails the test if missing or of another
 * type. */
long long json_int_of(json_t *o, const char *name);
const char *json_str_of(json_t *o, const char *name);

/* ---- a WebSocket client ---- */

struct wclient {
    struct gw_fx *f;
    struct ch_wsconn *ws;
    bool is_open;
    bool is_closed;
    int close_status;
    unsigned close_code;
    char **msgs; /* received, NUL-terminated (test memory) */
    size_t n_msgs, cap_msgs;
};

/* Connects to path and waits for the "#connected" greeting (msgs[0]). */
void wc_connect(struct gw_fx *f, struct wclient *w, const char *path);
void wc_send(struct wclient *w, const char *text);
/* Waits until n messages in all were received. */
bool wc_wait(struct wclient *w, size_t n);
bool wc_wait_closed(struct wclient *w);
void wc_close(struct wclient *w);

#endif
