/* Gateway lifecycle: listener, the pump check, shutdown. */
#include "common/alloc.h"
#include "common/log.h"
#include "gateway/gw_int.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Connections get this long to flush queued output at shutdown. */
#define GW_CLOSE_FLUSH_MS 300

int gw_create(uv_loop_t *loop, const struct gw_config *cfg,
              struct cluster *cluster, struct gw **out, char *errmsg)
{
    struct gw *gw = ch_calloc(1, sizeof *gw);

    gw__json_use_heap();
    if (gw == NULL) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "out of memory");
        return CH_ENOMEM;
    }
    gw->loop = loop;
    gw->cfg = *cfg;
    gw->conn_limit = cfg->max_connections; /* gw_start may lower it */
    gw->cluster = cluster;
    gw->store = cluster_store(cluster);
    ch_map_init(&gw->index);
    ch_queue_init(&gw->conns);
    ch_queue_init(&gw->pumps);
    cluster_set_applied_cb(cluster, gw__sub_applied, gw);
    cluster_set_restored_cb(cluster, gw__sub_restored, gw);
    *out = gw;
    return 0;
}

static void handle_closed(uv_handle_t *h);

static void pump_check_cb(uv_check_t *h)
{
    gw__sub_run_pumps(h->data);
}

static void pump_idle_cb(uv_idle_t *h)
{
    (void)h; /* being active is its job: the loop polls without blocking */
}

void gw__pumps_pending(struct gw *gw, bool pending)
{
    int rv;

    if (!gw->pump_inited || uv_is_closing((uv_handle_t *)&gw->pump_idle))
        return;
    rv = pending ? uv_idle_start(&gw->pump_idle, pump_idle_cb)
                 : uv_idle_stop(&gw->pump_idle);
    CH_ASSERT(rv == 0); /* an initialised idle handle */
}

/* Resolves HOST:PORT (IPv4/IPv6 literal or name) into *sa. */
static int resolve(const char *addr, struct sockaddr_storage *sa, char *errmsg)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints, *res = NULL;
    size_t hn;
    int rv;

    if (colon == NULL || colon == addr || colon[1] == '\0') {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad address '%s': want HOST:PORT",
                 addr);
        return CH_EINVAL;
    }
    hn = (size_t)(colon - addr);
    if (hn >= sizeof host) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad address '%s'", addr);
        return CH_EINVAL;
    }
    memcpy(host, addr, hn);
    host[hn] = '\0';
    if (host[0] == '[' && hn > 2 && host[hn - 1] == ']') {
        memmove(host, host + 1, hn - 2);
        host[hn - 2] = '\0';
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rv = getaddrinfo(host, colon + 1, &hints, &res);
    if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot resolve '%s': %s", addr,
                 gai_strerror(rv));
        return CH_EINVAL;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void linger_timer_cb(uv_timer_t *t)
{
    gw__linger_sweep(t->data);
}

/* Connections beyond what the file descriptor limit leaves (after
 * CH_FD_RESERVE for raft, LMDB and the node links) are refused like those
 * beyond --max-connections, so that running out of descriptors never
 * starves the node's own files and links. */
static void set_conn_limit(struct gw *gw)
{
    struct rlimit rl;

    gw->conn_limit = gw->cfg.max_connections;
    gw->fd_limit = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    gw->fd_limit = (uint64_t)rl.rlim_cur;
    if (gw->fd_limit < (uint64_t)gw->conn_limit + CH_FD_RESERVE)
        gw->conn_limit = gw->fd_limit > CH_FD_RESERVE + 1
                             ? (size_t)(gw->fd_limit - CH_FD_RESERVE)
                             : 1;
}

int gw_start(struct gw *gw, char *errmsg)
{
    struct sockaddr_storage sa;
    int rv;

    rv = resolve(gw->cfg.http_addr, &sa, errmsg);
    if (rv != 0)
        return rv;
    set_conn_limit(gw);
    /* Handles on a live loop initialise and start without failing (libuv:
     * they only link themselves in); binding and listening can fail. */
    rv = uv_tcp_init(gw->loop, &gw->listener);
    CH_ASSERT(rv == 0);
    gw->listener.data = gw;
    gw->n_handles_open++;
    gw->listening = true;
    rv = uv_check_init(gw->loop, &gw->pump_check);
    CH_ASSERT(rv == 0);
    gw->pump_check.data = gw;
    gw->n_handles_open++;
    rv = uv_idle_init(gw->loop, &gw->pump_idle);
    CH_ASSERT(rv == 0);
    gw->pump_idle.data = gw;
    gw->n_handles_open++;
    gw->pump_inited = true;
    rv = uv_check_start(&gw->pump_check, pump_check_cb);
    CH_ASSERT(rv == 0);
    rv = uv_timer_init(gw->loop, &gw->close_timer);
    CH_ASSERT(rv == 0);
    gw->close_timer.data = gw;
    gw->n_handles_open++;
    gw->timer_inited = true;
    rv = uv_timer_init(gw->loop, &gw->linger_timer);
    CH_ASSERT(rv == 0);
    gw->linger_timer.data = gw;
    gw->n_handles_open++;
    gw->linger_inited = true;
    rv = uv_timer_start(&gw->linger_timer, linger_timer_cb, GW_LINGER_MS / 4,
                        GW_LINGER_MS / 4);
    CH_ASSERT(rv == 0);
    rv = uv_tcp_bind(&gw->listener, (struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&gw->listener, 511, gw__conn_accept_cb);
    if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot listen on %.200s: %s",
                 gw->cfg.http_addr, uv_strerror(rv));
        return CH_EIO;
    }
    log_debug("gw", "listening http=%s", gw->cfg.http_addr);
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct gw *gw = h->data;
    gw->n_handles_open--;
    gw__maybe_closed(gw);
}

void gw_stop_accepting(struct gw *gw)
{
    if (gw->listening) {
        gw->listening = false;
        uv_close((uv_handle_t *)&gw->listener, handle_closed);
    }
}

void gw__maybe_closed(struct gw *gw)
{
    gw_close_cb cb;

    if (!gw->closing || !ch_queue_empty(&gw->conns) || gw->n_handles_open > 0)
        return;
    cb = gw->close_cb;
    gw->close_cb = NULL;
    if (cb != NULL)
        cb(gw, gw->close_arg);
}

static void close_timer_cb(uv_timer_t *t)
{
    struct gw *gw = t->data;
    struct ch_queue *q;

    /* A closed connection stays in the queue until it is freed. */
    CH_QUEUE_FOREACH (q, &gw->conns) {
        gw__conn_close(CH_QUEUE_DATA(q, struct gw_conn, link));
    }
    if (!uv_is_closing((uv_handle_t *)&gw->pump_check)) {
        uv_close((uv_handle_t *)&gw->pump_check, handle_closed);
        uv_close((uv_handle_t *)&gw->pump_idle, handle_closed);
    }
    uv_close((uv_handle_t *)&gw->close_timer, handle_closed);
    if (gw->linger_inited)
        uv_close((uv_handle_t *)&gw->linger_timer, handle_closed);
}

void gw_close(struct gw *gw, gw_close_cb cb, void *arg)
{
    struct ch_queue *q;
    bool is_flushed = true;
    int rv;

    gw->closing = true;
    gw->close_cb = cb;
    gw->close_arg = arg;
    gw_stop_accepting(gw);
    if (!gw->timer_inited) {
        /* gw_start failed part-way: no connection exists yet. */
        if (gw->pump_inited) {
            uv_close((uv_handle_t *)&gw->pump_check, handle_closed);
            uv_close((uv_handle_t *)&gw->pump_idle, handle_closed);
        }
        if (gw->linger_inited)
            uv_close((uv_handle_t *)&gw->linger_timer, handle_closed);
        gw__maybe_closed(gw);
        return;
    }
    CH_QUEUE_FOREACH (q, &gw->conns) {
        struct gw_conn *c = CH_QUEUE_DATA(q, struct gw_conn, link);
        gw__conn_flush(c);
        is_flushed = is_flushed && !c->writing && gw__conn_queued(c) == 0;
    }
    if (is_flushed) {
        /* Nothing to let go out first: close now (the close callback
         * still comes from a handle's close, never from this call). */
        close_timer_cb(&gw->close_timer);
        return;
    }
    rv = uv_timer_start(&gw->close_timer, close_timer_cb, GW_CLOSE_FLUSH_MS, 0);
    CH_ASSERT(rv == 0); /* initialised in gw_start, closed only here */
}

void gw_destroy(struct gw *gw)
{
    CH_ASSERT(ch_queue_empty(&gw->conns) && ch_queue_empty(&gw->pumps));
    CH_ASSERT(gw->index.n_entries == 0);
    ch_map_close(&gw->index);
    ch_free(gw);
}
