/* The cluster object: raft on the node's loop, start-up rules
 * (docs/operations.md "Running a node"), the leader monitor and shutdown. */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ELECTION_TIMEOUT_MS 500
#define DEFAULT_HEARTBEAT_TIMEOUT_MS 50
#define DEFAULT_SNAPSHOT_THRESHOLD 1024
#define DEFAULT_SNAPSHOT_TRAILING 512
#define CONNECT_RETRY_DELAY_MS 200
/* A log loaded at start at least this big is released by an early
 * snapshot (fsm.c cluster__release_tick); below it waits for the next one. */
#define CLUSTER_LOADED_LOG_RELEASE_BYTES (4u << 20)

static const char *state_name(int state)
{
    switch (state) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

/* True when raft's directory holds persisted state (metadata or segments). */
static bool raft_dir_has_state(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    if (d == NULL)
        return false;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "metadata", 8) == 0 ||
            strncmp(e->d_name, "snapshot-", 9) == 0 ||
            strncmp(e->d_name, "open-", 5) == 0 ||
            (e->d_name[0] >= '0' && e->d_name[0] <= '9')) {
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

/* Bytes of the closed segments in raft's directory: after raft_start these
 * are what it loaded (it closes open segments while loading). */
static uint64_t raft_dir_segment_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    uint64_t bytes = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0)
            bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return bytes;
}

/* The newest snapshot-* data file in dir (not .meta), or "" */
static void newest_snapshot(const char *dir, char *out, size_t out_n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned long long best = 0;

    out[0] = '\0';
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        unsigned long long term, index, ts;
        int n = 0;
        if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu%n", &term, &index, &ts,
                   &n) != 3 ||
            e->d_name[n] != '\0' || index < best)
            continue;
        best = index;
        snprintf(out, out_n, "%s", e->d_name);
    }
    closedir(d);
}

/* One line saying which file could not be loaded: libraft names segments
 * in its message (twice: raft's and the io's copy), not snapshots. */
static void raft_start_error(struct cluster *c, int rv, char *errmsg)
{
    const char *why =
        c->io.errmsg[0] != '\0' ? c->io.errmsg : raft_errmsg(&c->raft);
    char snap[128];

    if (strstr(why, "segment") == NULL &&
        (strstr(why, "LZ4") != NULL || strstr(why, "snapshot") != NULL)) {
        newest_snapshot(c->raft_dir, snap, sizeof snap);
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "raft data in %.60s cannot be loaded (%.30s): snapshot "
                 "%.50s: %.60s",
                 c->raft_dir, raft_strerror(rv), snap, why);
        return;
    }
    snprintf(errmsg, CH_ERRMSG_SIZE,
             "raft data in %.50s cannot be loaded (%.30s): %.130s", c->raft_dir,
             raft_strerror(rv), why);
}

/* ---- the serving end of node links runs requests here ---- */

static int link_publish(void *data, const struct ch_msg *m,
                        cluster_publish_cb cb, void *arg)
{
    return cluster_publish_forwarded(data, m, cb, arg);
}

static int link_join(void *data, uint64_t id, const char *raft,
                     const char *http, int role, cluster_admin_cb cb, void *arg)
{
    return cluster_join(data, id, raft, http, role, cb, arg);
}

static int link_leave(void *data, uint64_t id, cluster_admin_cb cb, void *arg)
{
    return cluster_leave(data, id, cb, arg);
}

static int link_transfer(void *data, uint64_t id, cluster_admin_cb cb,
                         void *arg)
{
    return cluster_transfer(data, id, cb, arg);
}

static void link_removed(void *data, uint64_t id)
{
    cluster_removed_notice(data, id);
}

static bool link_is_leader(void *data)
{
    return cluster_is_leader(data);
}

static int link_fetch(void *data, struct ch_bytes path, int64_t from,
                      int64_t to, struct ch_buf *out, uint32_t *n_msgs)
{
    return cluster__fetch(data, path, from, to, out, n_msgs);
}

static const char *link_catching_up(void *data)
{
    return cluster__catchup_reason(data);
}

static void link_nudge(void *data, uint64_t from_id)
{
    struct cluster *c = data;

    log_info("cluster", "entry asked for by a follower id=%llu",
             (unsigned long long)from_id);
    c->nudge_wanted = true;
    cluster__kick(c);
}

static const struct link_handler link_handler = {
    .nudge = link_nudge,
    .fetch = link_fetch,
    .catching_up = link_catching_up,
    .publish = link_publish,
    .join = link_join,
    .leave = link_leave,
    .transfer = link_transfer,
    .removed = link_removed,
    .is_leader = link_is_leader,
};

int cluster_link_accept(struct cluster *c, int fd, const char *ws_key,
                        const char *peer)
{
    return lservers_accept(&c->lservers, fd, ws_key, peer);
}

int cluster_create(uv_loop_t *loop, const struct cluster_config *cfg,
                   struct store *store, struct cluster **out, char *errmsg)
{
    struct cluster *c;
    int rv;

    c = ch_calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "out of memory");
        return CH_ENOMEM;
    }
    c->loop = loop;
    c->cfg = *cfg;
    if (c->cfg.election_timeout_ms == 0)
        c->cfg.election_timeout_ms = DEFAULT_ELECTION_TIMEOUT_MS;
    if (c->cfg.heartbeat_timeout_ms == 0)
        c->cfg.heartbeat_timeout_ms = DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (c->cfg.snapshot_threshold == 0)
        c->cfg.snapshot_threshold = DEFAULT_SNAPSHOT_THRESHOLD;
    if (c->cfg.snapshot_trailing == 0)
        c->cfg.snapshot_trailing = DEFAULT_SNAPSHOT_TRAILING;
    if (c->cfg.heartbeat_timeout_ms >= c->cfg.election_timeout_ms) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "heartbeat timeout must be below the election timeout");
        ch_free(c);
        return CH_EINVAL;
    }
    c->store = store;
    c->r = &c->raft;
    ch_queue_init(&c->admin_answers);
    ch_queue_init(&c->waiting);
    ch_queue_init(&c->inflight);
    ch_queue_init(&c->fwd_queued);
    ch_queue_init(&c->fwd_apply);
    ch_wsctx_init(&c->wsctx, loop);
    lservers_init(&c->lservers, &c->wsctx, &link_handler, c);
    cluster__catchup_init(c);
    c->last_state = -1;
    if ((size_t)snprintf(c->raft_dir, sizeof c->raft_dir, "%s/raft",
                         cfg->data_dir) >= sizeof c->raft_dir) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "data dir path too long");
        ch_free(c);
        return CH_EINVAL;
    }
    if (cfg->cluster_spec != NULL) {
        rv = cluster_spec_parse(cfg->cluster_spec, &c->spec_members,
                                &c->n_spec_members, errmsg);
        if (rv != 0) {
            ch_free(c);
            return rv;
        }
    }
    rv = ch_mkdirs(c->raft_dir, errmsg);
    if (rv != 0) {
        ch_free(c->spec_members);
        ch_free(c);
        return rv;
    }
    *out = c;
    return 0;
}

struct store *cluster_store(struct cluster *c)
{
    return c->store;
}

void cluster_set_applied_cb(struct cluster *c, cluster_applied_cb cb, void *arg)
{
    c->applied_cb = cb;
    c->applied_arg = arg;
}

void cluster_set_removed_cb(struct cluster *c, cluster_removed_cb cb, void *arg)
{
    c->removed_cb = cb;
    c->removed_arg = arg;
}

void cluster_set_fatal_cb(struct cluster *c, cluster_fatal_cb cb, void *arg)
{
    c->fatal_cb = cb;
    c->fatal_arg = arg;
}

void cluster_set_restored_cb(struct cluster *c, cluster_restored_cb cb,
                             void *arg)
{
    c->restored_cb = cb;
    c->restored_arg = arg;
}

/* Decides whether to bootstrap and with which configuration (docs/operations.md
 * "Running a node"). */
static int maybe_bootstrap(struct cluster *c, char *errmsg)
{
    struct raft_configuration conf;
    struct cluster_member *members = NULL;
    unsigned n = 0;
    bool self_named = false;
    int rv;

    if (c->cfg.join) {
        log_info("cluster", "join mode: waiting to be added id=%llu",
                 (unsigned long long)c->cfg.id);
        return 0;
    }
    if (raft_dir_has_state(c->raft_dir)) {
        log_info("cluster", "restarting from state dir=%s", c->raft_dir);
        return 0;
    }
    if (store_applied_index(c->store) > 0) {
        /* A store without its raft log (e.g. an LMDB copy put in a fresh
         * data dir): new entries would get indexes the store believes it
         * applied already and be skipped. Refuse rather than lose data. */
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "data dir holds a store (applied index %llu) but no raft "
                 "log in %.100s: restore a whole data dir, not the store alone",
                 (unsigned long long)store_applied_index(c->store),
                 c->raft_dir);
        return CH_EINVAL;
    }
    raft_configuration_init(&conf);
    if (c->cfg.cluster_spec != NULL) {
        rv = cluster_spec_parse(c->cfg.cluster_spec, &members, &n, errmsg);
        if (rv != 0)
            goto err;
        for (unsigned i = 0; i < n; i++) {
            if (members[i].id == c->cfg.id) {
                self_named = true;
                if (strcmp(members[i].raft, c->cfg.raft_addr) != 0) {
                    snprintf(errmsg, CH_ERRMSG_SIZE,
                             "--cluster gives id %llu raft address %.80s but "
                             "--raft is %.80s",
                             (unsigned long long)c->cfg.id, members[i].raft,
                             c->cfg.raft_addr);
                    rv = CH_EINVAL;
                    goto err;
                }
            }
            rv = raft_configuration_add(&conf, members[i].id, members[i].raft,
                                        RAFT_VOTER);
            if (rv != 0) {
                snprintf(errmsg, CH_ERRMSG_SIZE, "configuration: %s",
                         raft_strerror(rv));
                rv = CH_EINVAL;
                goto err;
            }
        }
        if (!self_named) {
            snprintf(errmsg, CH_ERRMSG_SIZE,
                     "--cluster does not name this node's id %llu (use "
                     "--join to join an existing cluster)",
                     (unsigned long long)c->cfg.id);
            rv = CH_EINVAL;
            goto err;
        }
    } else {
        rv = raft_configuration_add(&conf, c->cfg.id, c->cfg.raft_addr,
                                    RAFT_VOTER);
        if (rv != 0) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "configuration: %s",
                     raft_strerror(rv));
            rv = CH_EINVAL;
            goto err;
        }
    }
    rv = raft_bootstrap(&c->raft, &conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        log_info("cluster", "already bootstrapped: %s", c->io.errmsg);
        rv = 0;
    } else if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bootstrap failed: %s (%d): %.200s",
                 raft_strerror(rv), rv, c->io.errmsg);
        rv = CH_EIO;
        goto err;
    } else {
        log_info("cluster", "bootstrapped id=%llu voters=%u",
                 (unsigned long long)c->cfg.id, n ? n : 1);
    }
err:
    raft_configuration_close(&conf);
    ch_free(members);
    return rv;
}

/* ---- handing raft requests, and the callbacks' bracket ---- */

void cluster__raft_cb_enter(struct cluster *c)
{
    c->n_in_raft_cb++;
}

void cluster__raft_cb_leave(struct cluster *c)
{
    CH_ASSERT(c->n_in_raft_cb > 0);
    c->n_in_raft_cb--;
}

int cluster__raft_apply(struct cluster *c, struct raft_apply *req,
                        const struct raft_buffer *buf, raft_apply_cb cb)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    CH_ASSERT(buf->len % 8 == 0); /* 0.15 cannot read back other lengths */
    return raft_apply(c->r, req, buf, 1, cb);
}

int cluster__raft_barrier(struct cluster *c, struct raft_barrier *req,
                          raft_barrier_cb cb)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    return raft_barrier(c->r, req, cb);
}

int cluster__raft_add(struct cluster *c, struct raft_change *req, raft_id id,
                      const char *address, raft_change_cb cb)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    return raft_add(c->r, req, id, address, cb);
}

int cluster__raft_assign(struct cluster *c, struct raft_change *req, raft_id id,
                         int role, raft_change_cb cb)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    return raft_assign(c->r, req, id, role, cb);
}

int cluster__raft_remove(struct cluster *c, struct raft_change *req, raft_id id,
                         raft_change_cb cb)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    return raft_remove(c->r, req, id, cb);
}

int cluster__raft_transfer(struct cluster *c, struct raft_transfer *req,
                           raft_id id, raft_transfer_cb cb)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    return raft_transfer(c->r, req, id, cb);
}

static void kick_cb(uv_idle_t *h)
{
    (void)h; /* being active is its job: the poll does not block */
}

void cluster__kick(struct cluster *c)
{
    int rv;

    if (!c->is_kick_inited || c->closing)
        return;
    rv = uv_idle_start(&c->kick, kick_cb);
    CH_ASSERT(rv == 0); /* an initialised idle handle always starts */
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct cluster *c = req->data;

    cluster__raft_cb_enter(c);
    c->barrier_pending = false;
    if (status != 0) {
        log_warn("cluster", "leader barrier failed status=%d", status);
    } else if (raft_state(c->r) == RAFT_LEADER) {
        c->is_ready = true;
        log_info("cluster", "leader ready id=%llu term=%llu applied=%llu",
                 (unsigned long long)c->cfg.id,
                 (unsigned long long)c->r->current_term,
                 (unsigned long long)raft_last_applied(c->r));
    }
    cluster__raft_cb_leave(c);
}

/* Once per tick: leadership changes and publish timeouts. libraft 0.15 has
 * no state-change callback (docs/libraft.md "Callbacks"), so poll. */
static void monitor(struct cluster *c)
{
    int state = raft_state(c->r);
    raft_id leader_id = 0;
    const char *leader_addr = NULL;

    raft_leader(c->r, &leader_id, &leader_addr);
    if (state != c->last_state || leader_id != c->last_leader_id) {
        log_info("cluster",
                 "state changed id=%llu state=%s term=%llu "
                 "leader=%llu",
                 (unsigned long long)c->cfg.id, state_name(state),
                 (unsigned long long)c->r->current_term,
                 (unsigned long long)leader_id);
        if (c->last_state == RAFT_LEADER && state != RAFT_LEADER)
            c->is_ready = false;
        if (state == RAFT_LEADER && c->last_state != RAFT_LEADER) {
            /* 0.15 appends no no-op on election: a barrier makes sure every
             * earlier entry reached the FSM before we call ourselves ready
             * (docs/libraft.md "Entries"). */
            c->is_ready = false;
            c->barrier.data = c;
            if (!c->barrier_pending &&
                cluster__raft_barrier(c, &c->barrier, barrier_cb) == 0)
                c->barrier_pending = true;
        }
        if (state == RAFT_FOLLOWER)
            c->is_ready = leader_id != 0;
        c->last_state = state;
        c->last_leader_id = leader_id;
    }
}

void cluster__tick(struct cluster *c)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    if (c->closing)
        return;
    monitor(c);
    if (c->node_failed)
        cluster__step_down(c);
    cluster__propose_expire(c);
    cluster__forward_tick(c);
    cluster__membership_tick(c);
    cluster__catchup_tick(c);
    cluster__release_tick(c);
    cluster__forward_flush(c);
    if (c->is_trim_due) {
        uint64_t t0 = uv_hrtime();
        c->is_trim_due = false;
        (void)malloc_trim(0); /* 1 if memory was released: either is fine */
        log_info("cluster",
                 "heap trimmed after releasing the loaded log us=%llu",
                 (unsigned long long)((uv_hrtime() - t0) / 1000));
    }
}

void cluster__check(struct cluster *c)
{
    CH_ASSERT(c->n_in_raft_cb == 0);
    if (c->closing)
        return;
    if (c->is_kick_inited)
        (void)uv_idle_stop(&c->kick); /* cannot fail; kicked again if due */
    cluster__membership_run(c);
    cluster__propose_flush(c);
    cluster__nudge_followers(c);
    cluster__forward_flush(c);
    lservers_flush(&c->lservers);
}

static void tick_cb(uv_timer_t *t)
{
    cluster__tick(t->data);
}

static void check_cb(uv_check_t *h)
{
    cluster__check(h->data);
}

/* raft_start reports a busy port as a bare RAFT_IOERR with no text: probe
 * the raft address first, before anything is written to the data dir. */
static int probe_raft_port(struct cluster *c, char *errmsg)
{
    struct sockaddr_in sa;
    char host[64];
    const char *colon = strrchr(c->cfg.raft_addr, ':');
    int fd, one = 1, rv = 0;

    if (colon == NULL || (size_t)(colon - c->cfg.raft_addr) >= sizeof host)
        return 0; /* validated earlier; let raft report it */
    memcpy(host, c->cfg.raft_addr, (size_t)(colon - c->cfg.raft_addr));
    host[colon - c->cfg.raft_addr] = '\0';
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return 0;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot listen on raft address %s: %s",
                 c->cfg.raft_addr, strerror(errno));
        rv = CH_EIO;
    }
    close(fd);
    return rv;
}

int cluster_start(struct cluster *c, char *errmsg)
{
    uint64_t loaded;
    int rv;

    rv = probe_raft_port(c, errmsg);
    if (rv != 0)
        return rv;

    rv = raft_uv_tcp_init(&c->transport, c->loop);
    if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "raft transport init failed: %s",
                 raft_strerror(rv));
        return CH_EIO;
    }
    rv = raft_uv_init(&c->io, c->loop, c->raft_dir, &c->transport);
    if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "raft io init failed: %.200s",
                 c->io.errmsg);
        raft_uv_tcp_close(&c->transport);
        return CH_EIO;
    }
    /* A corrupt segment must fail loudly, never be dropped silently
     * (docs/libraft.md "Setup"). */
    raft_uv_set_auto_recovery(&c->io, false);
    /* Switching to a fresh segment costs ~35 ms on ext4 here (the first
     * O_DSYNC write into newly allocated space waits for a journal commit),
     * and every entry waits behind it: docs/benchmarks.md. Large segments
     * make that rare. */
    if (c->cfg.segment_bytes != 0)
        raft_uv_set_segment_size(&c->io, c->cfg.segment_bytes);
    raft_uv_set_connect_retry_delay(&c->io, CONNECT_RETRY_DELAY_MS);
    /* raft_uv implements async_work but reports version 1; the async (v3)
     * snapshot needs 2 (upstream did the same in v0.17.1). */
    c->io.version = 2;
    cluster__fsm_init(c);
    rv = raft_init(&c->raft, &c->io, &c->fsm, c->cfg.id, c->cfg.raft_addr);
    if (rv != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "raft data in %.60s cannot be loaded (raft_init %d): %.140s",
                 c->raft_dir, rv, raft_errmsg(c->r));
        /* libraft 0.15's raft_init frees what it allocated when it fails:
         * raft_close would free it again (a damaged metadata file showed
         * it). Only the io and the transport are left to release. */
        raft_uv_close(&c->io);
        raft_uv_tcp_close(&c->transport);
        return CH_EIO;
    }
    c->raft_inited = true;
    c->raft.data = c;
    raft_set_election_timeout(&c->raft, c->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, c->cfg.heartbeat_timeout_ms);
    raft_set_pre_vote(&c->raft, true);
    raft_set_snapshot_threshold(&c->raft, c->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, c->cfg.snapshot_trailing);

    rv = maybe_bootstrap(c, errmsg);
    if (rv != 0)
        return rv;

    /* Handles on a live loop initialise and start without failing. */
    rv = uv_check_init(c->loop, &c->flush_check);
    CH_ASSERT(rv == 0);
    c->flush_check.data = c;
    c->n_handles_open++;
    rv = uv_check_start(&c->flush_check, check_cb);
    CH_ASSERT(rv == 0);
    rv = uv_timer_init(c->loop, &c->tick_timer);
    CH_ASSERT(rv == 0);
    c->tick_timer.data = c;
    c->n_handles_open++;
    rv = uv_idle_init(c->loop, &c->kick);
    CH_ASSERT(rv == 0);
    c->kick.data = c;
    c->n_handles_open++;
    c->is_kick_inited = true; /* the three handles above */

    rv = raft_start(&c->raft);
    if (rv != 0) {
        raft_start_error(c, rv, errmsg);
        return CH_EIO;
    }
    c->raft_started = true;
    /* The store applied only entries this log held: a log that ends before
     * them lost some (a truncated or damaged file raft could not tell).
     * Such a node must not vote or serve as if its log were whole
     * (docs/operations.md "Damaged files"). */
    if (store_applied_index(c->store) > raft_last_index(c->r)) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "raft log in %.100s ends at index %llu but the store "
                 "applied %llu: log entries were lost (damaged or "
                 "truncated files); replace this node",
                 c->raft_dir, (unsigned long long)raft_last_index(c->r),
                 (unsigned long long)store_applied_index(c->store));
        return CH_ECORRUPT;
    }
    loaded = raft_dir_segment_bytes(c->raft_dir);
    if (loaded >= CLUSTER_LOADED_LOG_RELEASE_BYTES) {
        c->loaded_last = raft_last_index(c->r);
        log_info("cluster",
                 "raft log loaded bytes=%llu last=%llu: released by a "
                 "snapshot after the next entry",
                 (unsigned long long)loaded,
                 (unsigned long long)c->loaded_last);
    }
    rv = uv_timer_start(&c->tick_timer, tick_cb, c->cfg.heartbeat_timeout_ms,
                        c->cfg.heartbeat_timeout_ms);
    CH_ASSERT(rv == 0);
    monitor(c);
    log_info("cluster", "started id=%llu raft=%s state=%s applied=%llu",
             (unsigned long long)c->cfg.id, c->cfg.raft_addr,
             state_name(raft_state(c->r)),
             (unsigned long long)raft_last_applied(c->r));
    return 0;
}

static void maybe_closed(struct cluster *c)
{
    if (c->n_handles_open > 0 || c->raft_inited)
        return;
    if (c->close_cb != NULL) {
        cluster_close_cb cb = c->close_cb;
        c->close_cb = NULL;
        cb(c, c->close_arg);
    }
}

static void handle_close_cb(uv_handle_t *h)
{
    struct cluster *c = h->data;
    c->n_handles_open--;
    maybe_closed(c);
}

static void on_raft_closed(struct raft *r)
{
    struct cluster *c = r->data;

    CH_ASSERT(c->n_in_raft_cb == 0);
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    c->raft_inited = false;
    maybe_closed(c);
}

void cluster_stop_accepting(struct cluster *c)
{
    c->accepting_stopped = true;
}

size_t cluster_pending(struct cluster *c)
{
    return c->n_pending;
}

void cluster_close(struct cluster *c, cluster_close_cb cb, void *arg)
{
    CH_ASSERT(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    c->close_arg = arg;

    /* Never proposed: certainly not committed. */
    cluster__propose_fail_all(c, CH_ESHUTDOWN);
    if (c->is_kick_inited) {
        /* The check, the tick and the kick were initialised together. */
        CH_ASSERT(c->n_handles_open == 3);
        uv_close((uv_handle_t *)&c->flush_check, handle_close_cb);
        uv_close((uv_handle_t *)&c->tick_timer, handle_close_cb);
        uv_close((uv_handle_t *)&c->kick, handle_close_cb);
    }
    if (c->raft_inited) {
        c->raft.data = c;
        /* In-flight applies fail with LEADERSHIPLOST: outcome unknown.
         * Pending membership changes fail the same way (synchronously). */
        raft_close(&c->raft, on_raft_closed);
        CH_ASSERT(c->n_in_raft_cb == 0);
    }
    cluster__forward_fail_all(c, CH_ESHUTDOWN);
    cluster__membership_close(c);
    cluster__catchup_close(c);
    lservers_close(&c->lservers);
    if (!c->raft_inited)
        maybe_closed(c);
}

void cluster_destroy(struct cluster *c)
{
    ch_wsctx_close(&c->wsctx); /* every link was freed with the loop */
    cluster__fsm_close(c);
    ch_free(c->spec_members);
    ch_free(c);
}

void cluster_get_status(struct cluster *c, struct cluster_status *out)
{
    raft_id leader_id = 0;
    const char *leader_addr = NULL;
    int state;

    memset(out, 0, sizeof *out);
    out->id = c->cfg.id;
    if (!c->raft_started) {
        out->state = c->cfg.join ? "joining" : "unavailable";
        return;
    }
    state = raft_state(c->r);
    raft_leader(c->r, &leader_id, &leader_addr);
    out->state = state_name(state);
    out->term = c->r->current_term;
    out->leader_id = leader_id;
    out->commit_index = c->r->commit_index;
    out->applied_index = raft_last_applied(c->r);
    for (unsigned i = 0;
         i < c->r->configuration.n &&
         out->n_members < sizeof out->members / sizeof out->members[0];
         i++) {
        const struct raft_server *s = &c->r->configuration.servers[i];
        struct cluster_member *m = &out->members[out->n_members++];
        m->id = s->id;
        snprintf(m->raft, sizeof m->raft, "%s", s->address);
        if (!cluster__member_http(c, s->id, m->http, sizeof m->http))
            m->http[0] = '\0';
        m->role = s->role == RAFT_VOTER     ? CLUSTER_ROLE_VOTER
                  : s->role == RAFT_STANDBY ? CLUSTER_ROLE_STANDBY
                                            : CLUSTER_ROLE_SPARE;
    }
    if (c->cfg.join && !c->was_member &&
        (!cluster__is_member(c, c->cfg.id) || leader_id == 0)) {
        out->state = "joining";
        out->leader_id = 0;
    }
}

static void step_down_cb(struct raft_transfer *req)
{
    struct cluster *c = req->data;

    cluster__raft_cb_enter(c);
    ch_free(req);
    c->step_down_pending = false;
    log_info("cluster",
             "leadership handed over after a store failure "
             "state=%s",
             state_name(raft_state(c->r)));
    cluster__raft_cb_leave(c);
}

void cluster__step_down(struct cluster *c)
{
    struct raft_transfer *req;

    if (!c->raft_started || raft_state(c->r) != RAFT_LEADER ||
        c->step_down_pending)
        return;
    req = ch_calloc(1, sizeof *req);
    if (req == NULL)
        return;
    req->data = c;
    if (cluster__raft_transfer(c, req, 0, step_down_cb) != 0)
        ch_free(req);
    else
        c->step_down_pending = true;
}

void cluster__fail(struct cluster *c, const char *fmt, ...)
{
    va_list ap;

    if (c->node_failed)
        return;
    va_start(ap, fmt);
    vsnprintf(c->fail_reason, sizeof c->fail_reason, fmt, ap);
    va_end(ap);
    c->node_failed = true;
    log_error("cluster", "node unhealthy: %s", c->fail_reason);
    /* Not here: this runs inside raft callbacks (see propose.c apply_cb);
     * the tick hands leadership over. */
}

const char *cluster_health_reason(struct cluster *c)
{
    raft_id leader_id = 0;
    const char *leader_addr = NULL;

    if (!c->raft_started || c->closing)
        return "not running";
    if (c->removed)
        return "removed from the cluster";
    if (c->node_failed)
        return c->fail_reason;
    if (c->cfg.join && !cluster__is_member(c, c->cfg.id))
        return "waiting to be added to the cluster";
    raft_leader(c->r, &leader_id, &leader_addr);
    if (leader_id == 0)
        return "no leader known";
    if (raft_state(c->r) == RAFT_LEADER && !c->is_ready)
        return "new leader catching up";
    if (store_check(c->store) != 0)
        return "store unreadable";
    return cluster__catchup_reason(c);
}

bool cluster_is_leader(struct cluster *c)
{
    return c->raft_started && !c->closing && raft_state(c->r) == RAFT_LEADER;
}

bool cluster_is_healthy(struct cluster *c)
{
    return cluster_health_reason(c) == NULL;
}

void cluster_get_metrics(struct cluster *c, struct cluster_metrics *out)
{
    *out = c->metrics;
    out->pending_publishes = c->n_pending;
}
