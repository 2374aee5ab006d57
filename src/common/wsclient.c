/* Blocking WebSocket client: wsconn.h's client end on a private libuv
 * loop, run by each call until its condition holds or its deadline
 * passes (see wsclient.h). */
#include "common/wsclient.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/queue.h"
#include "common/wsconn.h"

/* Bytes handed to one socket write. */
#define WSC_WRITE_BYTES (256 * 1024)

struct wsc_msg {
    struct ch_queue link; /* in ch_wsc.msgs */
    bool is_binary;
    size_t len; /* bytes in data, without the NUL */
    char *data; /* owned, len + 1 bytes, NUL-terminated */
};

struct ch_wsc {
    uv_loop_t loop;
    uv_timer_t timer; /* the deadline of the call in progress */
    bool is_timer_fired;
    struct ch_wsctx x;    /* read buffer and mask bytes of the loop */
    struct ch_wsconn *ws; /* NULL when not connected */
    size_t max_msg_bytes; /* limit for one received message */
    struct ch_queue msgs; /* received and not taken, owned */
    bool is_open;         /* the upgrade succeeded */
    bool is_sending;      /* what was sent is not all written yet */
    int end_status;       /* why the connection ended, 0 while it works */
    char errmsg[CH_ERRMSG_SIZE];
};

/* ---- connection callbacks ----------------------------------------------- */

static void on_open(struct ch_wsconn *ws)
{
    struct ch_wsc *c = ch_wsconn_data(ws);

    c->is_open = true;
}

static void on_message(struct ch_wsconn *ws, bool is_binary, const char *data,
                       size_t n)
{
    struct ch_wsc *c = ch_wsconn_data(ws);
    struct wsc_msg *m = ch_malloc(sizeof(*m));

    if (m != NULL)
        m->data = ch_malloc(n + 1);
    if (m == NULL || m->data == NULL) {
        ch_free(m);
        c->end_status = CH_ENOMEM;
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
        return;
    }
    m->is_binary = is_binary;
    m->len = n;
    if (n > 0)
        memcpy(m->data, data, n);
    m->data[n] = '\0';
    ch_queue_insert_tail(&c->msgs, &m->link);
    /* Bound what is held: read more only once the caller took these. */
    ch_wsconn_set_reading(ws, false);
}

static void on_closed(struct ch_wsconn *ws, int status, const char *why)
{
    struct ch_wsc *c = ch_wsconn_data(ws);

    CH_ASSERT(c->ws == ws);
    c->ws = NULL; /* freed by wsconn */
    if (c->end_status == 0) {
        c->end_status = status;
        snprintf(c->errmsg, sizeof(c->errmsg), "%s", why);
    }
}

static void on_drained(struct ch_wsconn *ws)
{
    struct ch_wsc *c = ch_wsconn_data(ws);

    c->is_sending = false;
}

static const struct ch_wsconn_cbs wsc_cbs = {
    .open = on_open,
    .message = on_message,
    .drained = on_drained,
    .closed = on_closed,
};

/* ---- running the loop --------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
    struct ch_wsc *c = t->data;

    c->is_timer_fired = true;
}

typedef bool (*wsc_cond)(const struct ch_wsc *c);

/* Runs the loop until cond holds, the connection ends or timeout_ms pass
 * (< 0: no limit; 0: one non-blocking turn). Returns 0 when cond holds,
 * else CH_ETIMEDOUT or the connection's end status, with errmsg set. */
static int run_until(struct ch_wsc *c, wsc_cond cond, int timeout_ms,
                     const char *what)
{
    int rv = 0;

    c->is_timer_fired = false;
    if (timeout_ms > 0) {
        rv = uv_timer_start(&c->timer, timer_cb, (uint64_t)timeout_ms, 0);
        CH_ASSERT(rv == 0); /* an initialised timer always starts */
    }
    while (!cond(c) && c->end_status == 0 && !c->is_timer_fired) {
        uv_run(&c->loop, timeout_ms == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        if (timeout_ms == 0)
            break;
    }
    (void)uv_timer_stop(&c->timer); /* cannot fail */
    if (cond(c))
        return 0;
    if (c->end_status != 0)
        return c->end_status;
    snprintf(c->errmsg, sizeof(c->errmsg), "timed out %s", what);
    return CH_ETIMEDOUT;
}

static bool is_open(const struct ch_wsc *c)
{
    return c->is_open;
}

/* Written to the socket: also when the connection ended right after
 * (e.g. the peer's answer to it was over our limit), which is not a
 * failure of the send. */
static bool is_sent(const struct ch_wsc *c)
{
    return !c->is_sending || (c->ws != NULL && ch_wsconn_queued(c->ws) == 0);
}

static bool has_msg(const struct ch_wsc *c)
{
    return !ch_queue_empty(&c->msgs);
}

/* ---- client ------------------------------------------------------------- */

int ch_wsc_create(size_t max_msg_bytes, struct ch_wsc **out)
{
    struct ch_wsc *c = ch_calloc(1, sizeof(*c));
    int rv;

    if (c == NULL)
        return CH_ENOMEM;
    if (uv_loop_init(&c->loop) != 0) {
        ch_free(c);
        return CH_ENOMEM;
    }
    rv = uv_timer_init(&c->loop, &c->timer);
    CH_ASSERT(rv == 0); /* a timer on a fresh loop cannot fail */
    c->timer.data = c;
    ch_wsctx_init(&c->x, &c->loop);
    ch_queue_init(&c->msgs);
    c->max_msg_bytes = max_msg_bytes;
    *out = c;
    return 0;
}

const char *ch_wsc_errmsg(const struct ch_wsc *c)
{
    return c->errmsg;
}

int ch_wsc_connect(struct ch_wsc *c, const char *hostport, const char *path,
                   int timeout_ms)
{
    struct ch_wsconn_config cfg = {
        .max_msg_bytes = c->max_msg_bytes,
        .max_write_bytes = WSC_WRITE_BYTES,
    };
    int rv;

    CH_ASSERT(c->ws == NULL && !c->is_open);
    c->errmsg[0] = '\0';
    c->end_status = 0;
    rv = ch_wsconn_connect(&c->x, hostport, NULL, path, &cfg, &wsc_cbs, c,
                           &c->ws);
    if (rv != 0) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 rv == CH_EINVAL ? "bad address %.200s (want HOST:PORT)"
                                 : "cannot connect to %.200s",
                 hostport);
        return rv;
    }
    rv = run_until(c, is_open, timeout_ms, "connecting");
    if (rv == CH_ETIMEDOUT) {
        snprintf(c->errmsg, sizeof(c->errmsg), "timed out connecting to %.200s",
                 hostport);
        ch_wsconn_close(c->ws);
        c->ws = NULL;
        c->end_status = CH_ETIMEDOUT;
    }
    return rv;
}

int ch_wsc_send(struct ch_wsc *c, bool is_binary, const void *data, size_t n,
                int timeout_ms)
{
    int rv;

    c->errmsg[0] = '\0';
    if (c->ws == NULL) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%s",
                 c->end_status != 0 ? "connection closed" : "not connected");
        return CH_EIO;
    }
    rv = ch_wsconn_send(c->ws, is_binary, data, n);
    c->is_sending = rv == 0;
    if (rv != 0) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%s",
                 rv == CH_ENOMEM ? "out of memory" : "connection closed");
        return rv == CH_ENOMEM ? rv : CH_EIO;
    }
    return run_until(c, is_sent, timeout_ms, "sending");
}

int ch_wsc_recv(struct ch_wsc *c, int timeout_ms, bool *is_binary, char **data,
                size_t *n)
{
    struct wsc_msg *m;
    int rv;

    if (c->ws == NULL && !has_msg(c)) {
        /* Ended before this call (e.g. while sending): the same answer as
         * if it had ended during it; errmsg still says why. */
        if (c->end_status != 0)
            return c->end_status;
        snprintf(c->errmsg, sizeof(c->errmsg), "not connected");
        return CH_EIO;
    }
    c->errmsg[0] = '\0';
    rv = run_until(c, has_msg, timeout_ms, "waiting for a message");
    if (rv != 0)
        return rv;
    m = CH_QUEUE_DATA(ch_queue_head(&c->msgs), struct wsc_msg, link);
    ch_queue_remove(&m->link);
    *data = m->data;
    *n = m->len;
    *is_binary = m->is_binary;
    ch_free(m);
    if (!has_msg(c) && c->ws != NULL)
        ch_wsconn_set_reading(c->ws, true);
    return 0;
}

void ch_wsc_destroy(struct ch_wsc *c)
{
    struct ch_queue *e;
    int rv;

    if (c == NULL)
        return;
    if (c->ws != NULL) {
        ch_wsconn_close(c->ws); /* close frame, best effort */
        c->ws = NULL;
    }
    uv_close((uv_handle_t *)&c->timer, NULL);
    /* Runs until the socket and the timer are closed (and a resolution
     * in flight has returned). */
    uv_run(&c->loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&c->loop);
    CH_ASSERT(rv == 0); /* every handle was closed above */
    ch_wsctx_close(&c->x);
    while ((e = ch_queue_head(&c->msgs)) != NULL) {
        struct wsc_msg *m = CH_QUEUE_DATA(e, struct wsc_msg, link);
        ch_queue_remove(e);
        ch_free(m->data);
        ch_free(m);
    }
    ch_free(c);
}
