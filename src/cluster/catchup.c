/* Catch-up (docs/architecture.md "Snapshots and catch-up"): a snapshot
 * carries the store's state, not its messages, so a node that installed
 * one (it fell behind past the leader's log, or it is new) lacks the
 * messages the snapshot's topics hold beyond its own: holes in the store.
 * This node fetches them from a member that has them, over a node link
 * (link op FETCH), one bounded chunk at a time (CH_MAX_CATCHUP_MSGS,
 * CH_CATCHUP_CHUNK_BYTES) with one request in flight: that is the flow
 * control, and memory stays one chunk whatever the store holds. The leader
 * is asked first; a member that lacks the range (it is catching up itself)
 * or fails makes the next member the one asked. Until the holes are gone
 * the node reports itself unhealthy ("catching up") and its reads stop at
 * a hole (CH_EMISSING), never skipping it. Fills are local state (the
 * messages are the cluster's committed ones), not raft entries; the holes
 * are in LMDB, so a restart resumes where it stopped. The tick also runs
 * the scrub after start and stops the node when a read found damage on
 * disk (docs/architecture.md "Damaged files"). */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* A FETCH unanswered this long is given up (the link is closed). */
#define CATCHUP_ANSWER_MS 15000
/* After a failure, the next member is asked after this. */
#define CATCHUP_RETRY_MS 200
/* Members considered (the directory is small). */
#define CATCHUP_MAX_PEERS 16
/* The scrub after start checks this much per tick (on the loop). */
#define SCRUB_MSGS_PER_TICK 2048
#define SCRUB_BYTES_PER_TICK (2u << 20)

struct peer_list {
    uint64_t ids[CATCHUP_MAX_PEERS];
    unsigned n;
    uint64_t self;
};

static int peer_cb(void *arg, const struct store_member *m)
{
    struct peer_list *pl = arg;

    if (m->id != pl->self && pl->n < CATCHUP_MAX_PEERS)
        pl->ids[pl->n++] = m->id;
    return 0;
}

/* The member to ask on turn `turn`: the leader first, then the others in
 * id order, round and round (the leader among them only when it is the
 * one member left: a leader that just failed is not asked twice in a
 * row). 0 when none is known. */
static uint64_t pick_peer(struct cluster *c, unsigned turn)
{
    struct peer_list pl = {.n = 0, .self = c->cfg.id};
    struct store_txn *t;
    raft_id leader = 0;
    const char *addr = NULL;
    unsigned k = 0;

    raft_leader(c->r, &leader, &addr);
    if (leader == c->cfg.id)
        leader = 0;
    if (turn == 0 && leader != 0)
        return leader;
    if (store_read_begin(c->store, &t) != 0)
        return 0;
    (void)store_members_list(t, peer_cb, &pl);
    store_read_end(t);
    if (leader != 0 && pl.n > 1) {
        for (unsigned i = 0; i < pl.n; i++) {
            if (pl.ids[i] != leader)
                pl.ids[k++] = pl.ids[i];
        }
        pl.n = k;
    }
    if (pl.n == 0)
        return 0;
    return pl.ids[(turn == 0 ? 0 : turn - 1) % pl.n];
}

static void notify(struct cluster *c)
{
    if (c->restored_cb != NULL)
        c->restored_cb(c->restored_arg); /* waiting reads go on */
}

/* Drops the link (no callback after) and asks the next member later. */
static void give_up_peer(struct cluster *c, const char *why)
{
    struct cluster_catchup *cu = &c->catchup;

    log_warn("catchup", "peer failed peer=%llu fetched=%llu reason=%s",
             (unsigned long long)cu->peer_id, (unsigned long long)cu->fetched,
             why);
    if (cu->l != NULL)
        lclient_close(cu->l);
    cu->l = NULL;
    cu->in_flight = false;
    cu->turn++;
    cu->retry_ms = uv_now(c->loop) + CATCHUP_RETRY_MS;
}

static void finish(struct cluster *c)
{
    struct cluster_catchup *cu = &c->catchup;

    if (cu->l != NULL)
        lclient_close(cu->l);
    cu->l = NULL;
    cu->in_flight = false;
    cu->active = false;
    cu->missing = 0;
    ch_free(cu->msgs);
    cu->msgs = NULL;
    log_info("catchup", "catchup finished id=%llu fetched=%llu",
             (unsigned long long)c->cfg.id, (unsigned long long)cu->fetched);
    notify(c);
}

/* Sends the FETCH for the first hole, or finishes when none is left. */
static void send_next(struct cluster *c)
{
    struct cluster_catchup *cu = &c->catchup;
    struct store_hole h;
    struct store_txn *t;
    struct link_req req;
    int rv;

    CH_ASSERT(cu->active && !cu->in_flight);
    if (cu->l == NULL || !lclient_is_open(cu->l))
        return;
    rv = store_read_begin(c->store, &t);
    if (rv == 0) {
        rv = store_hole_first(t, &h);
        store_read_end(t);
    }
    if (rv == CH_ENOTFOUND) {
        finish(c);
        return;
    }
    if (rv != 0) {
        cluster__fail(c, "catch-up: store unreadable: %s", ch_strerror(rv));
        return;
    }
    memset(&req, 0, sizeof req);
    req.req_id = ++c->next_req_id;
    req.op = LINK_FETCH;
    memcpy(cu->path, h.path, h.path_n + 1);
    cu->path_n = h.path_n;
    req.msg.path.p = cu->path;
    req.msg.path.n = cu->path_n;
    req.from = h.from_seq;
    req.to = h.to_seq;
    rv = lclient_send_req(cu->l, &req);
    if (rv != 0) {
        give_up_peer(c, ch_strerror(rv));
        return;
    }
    cu->req_id = req.req_id;
    cu->from = h.from_seq;
    cu->in_flight = true;
    cu->deadline_ms = uv_now(c->loop) + CATCHUP_ANSWER_MS;
}

static void on_answer(void *arg, const struct link_resp *r)
{
    struct cluster *c = arg;
    struct cluster_catchup *cu = &c->catchup;
    size_t off = 0;
    int rv;

    if (!cu->in_flight || r->req_id != cu->req_id)
        return; /* not ours (or given up on) */
    cu->in_flight = false;
    if (r->status != 0 || r->n_msgs == 0) {
        give_up_peer(c, r->status == CH_EMISSING || r->status == 0
                            ? "it lacks the range"
                            : ch_strerror(r->status));
        return;
    }
    CH_ASSERT(r->n_msgs <= CH_MAX_CATCHUP_MSGS);
    for (uint32_t i = 0; i < r->n_msgs; i++) {
        struct ch_msg *m = &cu->msgs[i];
        rv = link_fetched_next(r, &off, m);
        CH_ASSERT(rv == 0); /* the decoder checked every message */
        m->path.p = cu->path;
        m->path.n = cu->path_n;
    }
    rv = store_fill(c->store, cu->path, cu->path_n, cu->msgs, r->n_msgs);
    if (rv == CH_EINVAL) {
        /* Not what the hole needs (a peer's bad answer, or the holes
         * changed meanwhile): ask again, elsewhere. */
        give_up_peer(c, store_errmsg(c->store));
        return;
    }
    if (rv != 0) {
        cluster__fail(c, "catch-up: store cannot be written: %s: %.150s",
                      ch_strerror(rv), store_errmsg(c->store));
        return;
    }
    cu->fetched += r->n_msgs;
    cu->missing -= r->n_msgs;
    if (cu->missing < 0)
        cu->missing = 0;
    notify(c);
    send_next(c);
}

static void on_state(void *arg, struct lclient *l, bool open)
{
    struct cluster *c = arg;
    struct cluster_catchup *cu = &c->catchup;

    if (l != cu->l)
        return;
    if (open) {
        send_next(c);
        return;
    }
    cu->l = NULL; /* it ended: no lclient_close */
    give_up_peer(c, "link closed");
}

/* Starts the catch-up when the store has holes. */
static void maybe_start(struct cluster *c)
{
    struct cluster_catchup *cu = &c->catchup;
    struct store_txn *t;
    uint64_t n_holes = 0;
    int64_t n_msgs = 0;
    int rv;

    rv = store_read_begin(c->store, &t);
    if (rv == 0) {
        rv = store_missing(t, &n_holes, &n_msgs);
        store_read_end(t);
    }
    if (rv != 0 || n_holes == 0)
        return;
    if (cu->msgs == NULL) {
        cu->msgs = ch_calloc(CH_MAX_CATCHUP_MSGS, sizeof(struct ch_msg));
        if (cu->msgs == NULL) {
            cu->wanted = true; /* again at the next tick */
            return;
        }
    }
    cu->active = true;
    cu->missing = n_msgs;
    cu->turn = 0;
    cu->retry_ms = 0;
    log_info("catchup", "catchup started id=%llu missing=%lld ranges=%llu",
             (unsigned long long)c->cfg.id, (long long)n_msgs,
             (unsigned long long)n_holes);
}

void cluster__catchup_restored(struct cluster *c)
{
    if (!c->catchup.active)
        c->catchup.wanted = true; /* started from the tick, not raft's cb */
    else
        c->catchup.recount = true;
}

/* Damage a read found on disk (docs/architecture.md "Damaged files"): the
 * store is marked to be rebuilt and the node stops; the next start moves
 * the damaged file aside and fetches everything again. Nothing is written
 * into the damaged file. */
static void repair_damage(struct cluster *c)
{
    struct store_damage d;
    char why[CH_ERRMSG_SIZE];
    int rv;

    if (c->catchup.is_store_damaged || !store_damage_take(c->store, &d))
        return;
    c->catchup.is_store_damaged = true;
    c->metrics.damaged_ranges++;
    snprintf(why, sizeof why,
             "store damage found topic=%.80s from=%lld to=%lld why=%.40s",
             d.path, (long long)d.from_seq, (long long)d.to_seq, d.why);
    log_error("catchup", "%s: stopping; the next start rebuilds the store",
              why);
    rv = store_rebuild_mark(c->store, why);
    if (rv != 0)
        log_error("catchup", "store rebuild mark not written: %s",
                  store_errmsg(c->store));
    if (c->fatal_cb != NULL)
        c->fatal_cb(c->fatal_arg, why);
}

/* One pass over the whole store after start, a slice per tick: damage is
 * found before a client asks for it. */
static void scrub(struct cluster *c)
{
    struct cluster_catchup *cu = &c->catchup;
    int rv;

    if (cu->scrub.is_done)
        return;
    if (cu->scrub_start_ms == 0)
        cu->scrub_start_ms = uv_now(c->loop) + 1;
    rv = store_scrub_step(c->store, &cu->scrub, SCRUB_MSGS_PER_TICK,
                          SCRUB_BYTES_PER_TICK);
    if (rv != 0) {
        log_warn("catchup", "store scrub stopped err=%s", ch_strerror(rv));
        cu->scrub.is_done = true;
        return;
    }
    if (cu->scrub.is_done)
        log_info(
            "catchup",
            "store scrub finished records=%llu bytes=%llu "
            "unread_ranges=%llu ms=%llu",
            (unsigned long long)cu->scrub.records,
            (unsigned long long)cu->scrub.bytes,
            (unsigned long long)cu->scrub.unread,
            (unsigned long long)(uv_now(c->loop) + 1 - cu->scrub_start_ms));
}

void cluster__catchup_tick(struct cluster *c)
{
    struct cluster_catchup *cu = &c->catchup;
    char http[CH_MAX_ADDR_BYTES + 1];
    uint64_t now = uv_now(c->loop);

    if (c->closing || c->node_failed)
        return;
    scrub(c);
    repair_damage(c);
    if (!cu->active) {
        if (!cu->wanted)
            return;
        cu->wanted = false;
        maybe_start(c);
        if (!cu->active)
            return;
    }
    if (cu->recount) {
        struct store_txn *t;
        uint64_t n_holes;
        cu->recount = false;
        if (store_read_begin(c->store, &t) == 0) {
            if (store_missing(t, &n_holes, &cu->missing) != 0)
                cu->missing = 0;
            store_read_end(t);
        }
    }
    if (cu->l != NULL && now >= cu->deadline_ms) {
        give_up_peer(c, cu->in_flight ? "no answer in time"
                                      : "no connection in time");
        return;
    }
    if (cu->l != NULL || now < cu->retry_ms)
        return;
    cu->peer_id = pick_peer(c, cu->turn);
    if (cu->peer_id == 0 ||
        !cluster__member_http(c, cu->peer_id, http, sizeof http)) {
        cu->turn++;
        cu->retry_ms = now + CATCHUP_RETRY_MS;
        return;
    }
    cu->l = lclient_create(&c->wsctx, c->cfg.id, http, on_answer,
                           NULL /* peers only answer */, on_state, c);
    if (cu->l == NULL) {
        cu->turn++;
        cu->retry_ms = now + CATCHUP_RETRY_MS;
        return;
    }
    /* Bounds the connection as the answer is bounded: a peer cut off the
     * network leaves a connect waiting for minutes. */
    cu->deadline_ms = now + CATCHUP_ANSWER_MS;
    log_info("catchup", "fetching from peer=%llu http=%s missing=%lld",
             (unsigned long long)cu->peer_id, http, (long long)cu->missing);
}

void cluster__catchup_init(struct cluster *c)
{
    memset(&c->catchup, 0, sizeof c->catchup);
    c->catchup.wanted = true; /* holes left by an earlier run resume */
}

void cluster__catchup_close(struct cluster *c)
{
    if (c->catchup.l != NULL)
        lclient_close(c->catchup.l);
    c->catchup.l = NULL;
    c->catchup.in_flight = false;
    c->catchup.active = false;
    ch_free(c->catchup.msgs);
    c->catchup.msgs = NULL;
}

const char *cluster__catchup_reason(struct cluster *c)
{
    struct cluster_catchup *cu = &c->catchup;

    if (cu->is_store_damaged)
        return "store damaged: stopping to rebuild it (see the log)";
    if (!cu->active && !cu->wanted)
        return NULL;
    if (!cu->active)
        return "catching up: checking for missing messages";
    snprintf(cu->reason, sizeof cu->reason,
             "catching up: %lld messages missing", (long long)cu->missing);
    return cu->reason;
}

/* ---- the serving end: FETCH ---- */

struct fetch_read {
    struct ch_buf *out;
    uint32_t n;
    int rv;
};

static int fetch_cb(void *arg, const struct ch_msg *m)
{
    struct fetch_read *fr = arg;

    fr->rv = link_fetched_pack(fr->out, m);
    if (fr->rv != 0)
        return 1;
    fr->n++;
    return fr->out->len >= CH_CATCHUP_CHUNK_BYTES; /* one chunk */
}

int cluster__fetch(struct cluster *c, struct ch_bytes path, int64_t from,
                   int64_t to, struct ch_buf *out, uint32_t *n_msgs)
{
    struct fetch_read fr = {out, 0, 0};
    struct store_txn *t;
    int64_t max = to - from + 1;
    int rv;

    *n_msgs = 0;
    if (from < 1 || to < from || path.n == 0 || path.n > CH_MAX_TOPIC_BYTES)
        return CH_EINVAL;
    if (max > CH_MAX_CATCHUP_MSGS)
        max = CH_MAX_CATCHUP_MSGS;
    rv = store_read_begin(c->store, &t);
    if (rv != 0)
        return rv;
    rv = store_read_range(t, path.p, path.n, from, max, 0, fetch_cb, &fr, NULL);
    store_read_end(t);
    if (fr.rv != 0)
        return fr.rv;
    if (rv == CH_EMISSING && fr.n > 0)
        rv = 0; /* what it has before its own hole */
    if (rv == 0 && fr.n == 0)
        rv = CH_EMISSING; /* nothing of it here */
    *n_msgs = fr.n;
    return rv;
}
