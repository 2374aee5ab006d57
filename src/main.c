/* chorusd: wires store, cluster and gateway on one libuv loop and owns the
 * process lifecycle (start-up rules of docs/operations.md "Running a node",
 * clean SIGTERM/SIGINT). */
#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/net.h"
#include "config.h"
#include "gateway/gw.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

extern char **environ;

struct node {
    uv_loop_t loop;
    struct chorusd_config cfg;
    struct store *store;
    struct cluster *cluster;
    struct gw *gw;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t drain_timer;
    uint64_t drain_deadline_ms;
    bool drain_inited;
    bool signals_inited;
    bool stopping;
    bool started; /* "stopped" is logged only after "started" */
    int exit_code;
};

/* raft 0.15 takes IPv4 literals only (docs/libraft.md "Setup"): resolve a name.
 */
static int resolve_raft_addr(char *addr, size_t size, char *errmsg)
{
    char host[256];
    char *colon = strrchr(addr, ':');
    struct addrinfo hints, *res = NULL;
    struct in_addr a;
    char ip[INET_ADDRSTRLEN];
    int rv;

    if (colon == NULL || colon == addr || colon[1] == '\0' ||
        (size_t)(colon - addr) >= sizeof host) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad --raft '%s': want IPv4:PORT",
                 addr);
        return CH_EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (inet_pton(AF_INET, host, &a) != 1) {
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET;
        rv = getaddrinfo(host, NULL, &hints, &res);
        if (rv != 0) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "cannot resolve --raft '%s': %s",
                     addr, gai_strerror(rv));
            return CH_EINVAL;
        }
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip,
                  sizeof ip);
        freeaddrinfo(res);
        snprintf(host, sizeof host, "%s%s", ip, colon);
        snprintf(addr, size, "%s", host);
    }
    if (!cluster_addr_valid_ipv4(addr)) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad --raft '%s': want IPv4:PORT",
                 addr);
        return CH_EINVAL;
    }
    return 0;
}

static void loop_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void gw_closed(struct gw *gw, void *arg)
{
    struct node *n = arg;
    (void)gw;
    if (n->drain_inited) {
        uv_close((uv_handle_t *)&n->drain_timer, NULL);
        n->drain_inited = false;
    }
    if (n->signals_inited) {
        uv_close((uv_handle_t *)&n->sigterm, NULL);
        uv_close((uv_handle_t *)&n->sigint, NULL);
        n->signals_inited = false;
    }
    if (n->started)
        log_info("main", "stopped id=%llu", (unsigned long long)n->cfg.id);
}

static void cluster_closed(struct cluster *c, void *arg)
{
    struct node *n = arg;
    (void)c;
    /* Publishes were answered by the cluster close; flush and close
     * connections. */
    gw_close(n->gw, gw_closed, n);
}

/* Publishes taken before the signal get this long to commit. */
#define DRAIN_TIMEOUT_MS 3000
/* Exit status of a node that stopped to rebuild its damaged store at the
 * next start (EX_TEMPFAIL: start it again). */
#define CHORUSD_EXIT_REBUILD 75

static void close_all(struct node *n);

static void drain_cb(uv_timer_t *t)
{
    struct node *n = t->data;

    if (cluster_pending(n->cluster) > 0 &&
        uv_now(&n->loop) < n->drain_deadline_ms)
        return;
    (void)uv_timer_stop(t); /* cannot fail */
    close_all(n);
}

/* SIGTERM: stop taking work, let publishes in flight commit (bounded),
 * then close raft, flush and close connections (docs/operations.md "Running a
 * node"). */
static void node_stop(struct node *n)
{
    if (n->stopping)
        return;
    n->stopping = true;
    if (n->gw != NULL)
        gw_stop_accepting(n->gw);
    if (n->cluster != NULL && n->drain_inited) {
        int rv;

        cluster_stop_accepting(n->cluster);
        n->drain_deadline_ms = uv_now(&n->loop) + DRAIN_TIMEOUT_MS;
        rv = uv_timer_start(&n->drain_timer, drain_cb, 10, 10);
        CH_ASSERT(rv == 0); /* initialised, not closing */
        return;
    }
    close_all(n);
}

static void close_all(struct node *n)
{
    if (n->cluster != NULL) {
        cluster_close(n->cluster, cluster_closed, n);
    } else if (n->gw != NULL) {
        gw_close(n->gw, gw_closed, n);
    } else {
        gw_closed(NULL, n);
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct node *n = h->data;
    log_info("main", "signal received signal=%s, shutting down",
             signum == SIGTERM ? "SIGTERM" : "SIGINT");
    node_stop(n);
}

/* The leader removed this node from the cluster: stop cleanly (exit 0). */
static void removed_cb(void *arg)
{
    node_stop(arg);
}

/* The store is damaged and marked to be rebuilt: stop, saying so in one
 * line; the next start rebuilds it (docs/operations.md "Damaged files"). */
static void fatal_cb(void *arg, const char *why)
{
    struct node *n = arg;

    fprintf(stderr,
            "chorusd: %s/store/data.mdb is damaged (%s): stopping; the next "
            "start rebuilds the store from the raft log and peers\n",
            n->cfg.data, why);
    n->exit_code = CHORUSD_EXIT_REBUILD;
    node_stop(n);
}

static int node_start(struct node *n, char *errmsg)
{
    struct cluster_config cc;
    struct gw_config gc;
    char store_dir[PATH_MAX + 16];
    bool rebuilt;
    int rv;

    rv = ch_mkdirs(n->cfg.data, errmsg);
    if (rv != 0)
        return rv;
    snprintf(store_dir, sizeof store_dir, "%s/store", n->cfg.data);
    rv = store_rebuild_prepare(store_dir, &rebuilt, errmsg);
    if (rv != 0)
        return rv;
    if (rebuilt)
        log_warn("main",
                 "store rebuilt dir=%s: the damaged data.mdb was kept as "
                 "data.mdb.damaged; the raft log and peers fill the new one",
                 store_dir);
    rv = store_open(store_dir, n->cfg.store_max_bytes, &n->store, errmsg);
    if (rv != 0)
        return rv;

    memset(&cc, 0, sizeof cc);
    cc.id = n->cfg.id;
    cc.raft_addr = n->cfg.raft;
    cc.http_addr = n->cfg.http;
    cc.data_dir = n->cfg.data;
    cc.cluster_spec = n->cfg.has_cluster ? n->cfg.cluster : NULL;
    cc.join = n->cfg.join;
    cc.join_addr = n->cfg.join_addr[0] ? n->cfg.join_addr : NULL;
    cc.dedup_window_s = (int64_t)n->cfg.dedup_window_s;
    cc.publish_timeout_ms = (unsigned)n->cfg.publish_timeout_ms;
    cc.election_timeout_ms = (unsigned)n->cfg.election_timeout_ms;
    cc.heartbeat_timeout_ms = (unsigned)n->cfg.heartbeat_timeout_ms;
    cc.segment_bytes = (size_t)n->cfg.raft_segment_bytes;
    cc.snapshot_threshold = (unsigned)n->cfg.snapshot_threshold;
    cc.snapshot_trailing = (unsigned)n->cfg.snapshot_trailing;
    cc.log_max_bytes = n->cfg.raft_log_max_bytes;
    rv = cluster_create(&n->loop, &cc, n->store, &n->cluster, errmsg);
    if (rv != 0)
        return rv;
    cluster_set_removed_cb(n->cluster, removed_cb, n);
    cluster_set_fatal_cb(n->cluster, fatal_cb, n);

    memset(&gc, 0, sizeof gc);
    gc.http_addr = n->cfg.http;
    gc.max_message_bytes = (size_t)n->cfg.max_message_bytes;
    gc.max_conn_buffer = (size_t)n->cfg.max_connection_buffer;
    gc.max_connections = (size_t)n->cfg.max_connections;
    rv = gw_create(&n->loop, &gc, n->cluster, &n->gw, errmsg);
    if (rv != 0)
        return rv;
    rv = gw_start(n->gw, errmsg);
    if (rv != 0)
        return rv;
    rv = cluster_start(n->cluster, errmsg);
    if (rv != 0)
        return rv;

    if (uv_signal_init(&n->loop, &n->sigterm) != 0 ||
        uv_signal_init(&n->loop, &n->sigint) != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot install signal handlers");
        return CH_EIO;
    }
    n->signals_inited = true;
    rv = uv_timer_init(&n->loop, &n->drain_timer);
    CH_ASSERT(rv == 0); /* a timer on a live loop cannot fail */
    n->drain_timer.data = n;
    n->drain_inited = true;
    n->sigterm.data = n;
    n->sigint.data = n;
    if (uv_signal_start(&n->sigterm, signal_cb, SIGTERM) != 0 ||
        uv_signal_start(&n->sigint, signal_cb, SIGINT) != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot install signal handlers");
        return CH_EIO;
    }
    n->started = true;
    log_info("main", "node started id=%llu http=%s raft=%s data=%s",
             (unsigned long long)n->cfg.id, n->cfg.http, n->cfg.raft,
             n->cfg.data);
    return 0;
}

/* Raises the soft file descriptor limit so that --max-connections fit
 * (Debian's default soft limit is 1024), as far as the hard limit allows.
 * A hard limit below the need is not an error: it only matters when the
 * descriptors actually run out, and the gateway warns then
 * (docs/operations.md "Failure notes"). */
static void raise_fd_limit(uint64_t max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)(max_connections + CH_FD_RESERVE);
    rlim_t old;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("main", "getrlimit failed err=%s", strerror(errno));
        return;
    }
    old = rl.rlim_cur;
    if (old >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                      ? want
                      : rl.rlim_max;
    if (rl.rlim_cur > old) {
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("main", "setrlimit failed err=%s", strerror(errno));
            return;
        }
        log_info("main", "file descriptor limit raised from=%llu to=%llu",
                 (unsigned long long)old, (unsigned long long)rl.rlim_cur);
    }
    if (rl.rlim_cur < want)
        log_debug("main",
                  "file descriptor limit below what --max-connections needs "
                  "limit=%llu max_connections=%llu need=%llu",
                  (unsigned long long)rl.rlim_cur,
                  (unsigned long long)max_connections,
                  (unsigned long long)want);
}

/* Checks the flags that config_parse cannot (addresses, the --cluster
 * specification) before anything else happens, so that a bad flag is one
 * line on stderr and nothing else (docs/operations.md "Running a node"). */
static int check_flags(struct chorusd_config *cfg, char *errmsg)
{
    int rv;

    rv = resolve_raft_addr(cfg->raft, sizeof cfg->raft, errmsg);
    if (rv != 0)
        return rv;
    if (!ch_hostport_valid(cfg->http)) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad --http '%.200s': want HOST:PORT",
                 cfg->http);
        return CH_EINVAL;
    }
    if (cfg->join_addr[0] != '\0' && !ch_hostport_valid(cfg->join_addr)) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad --join '%.200s': want HOST:PORT",
                 cfg->join_addr);
        return CH_EINVAL;
    }
    if (cfg->has_cluster) {
        struct cluster_member *members;
        unsigned n_members;
        rv = cluster_spec_parse(cfg->cluster, &members, &n_members, errmsg);
        if (rv != 0)
            return rv;
        ch_free(members);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct node node;
    char errmsg[CH_ERRMSG_SIZE] = "";
    int rv;

    rv = config_parse(argc, argv, environ, &node.cfg, errmsg, sizeof errmsg);
    if (rv == CONFIG_HELP) {
        config_usage(stdout);
        return 0;
    }
    if (rv != CONFIG_OK) {
        fprintf(stderr, "chorusd: %s\n", errmsg);
        return 2;
    }
    rv = check_flags(&node.cfg, errmsg);
    if (rv != 0) {
        fprintf(stderr, "chorusd: %s\n", errmsg);
        return 2;
    }
    ch_log_set_level(node.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(node.cfg.max_connections);
    rv = uv_loop_init(&node.loop);
    if (rv != 0) {
        fprintf(stderr, "chorusd: cannot create event loop: %s\n",
                uv_strerror(rv));
        return 1;
    }
    rv = node_start(&node, errmsg);
    if (rv != 0) {
        fprintf(stderr, "chorusd: %s\n", errmsg);
        node.exit_code = 1;
        node_stop(&node);
    }
    uv_run(&node.loop, UV_RUN_DEFAULT);

    if (node.gw != NULL)
        gw_destroy(node.gw);
    if (node.cluster != NULL)
        cluster_destroy(node.cluster);
    if (node.store != NULL)
        store_close(node.store);
    if (uv_loop_close(&node.loop) != 0) {
        uv_walk(&node.loop, loop_walk_close, NULL);
        uv_run(&node.loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&node.loop) != 0)
            log_warn("main", "event loop did not close cleanly");
    }
    return node.exit_code;
}
