/* Membership on the leader (docs/protocol.md "HTTP API", docs/libraft.md
 * "Membership"): join, leave and transfer, one change at a time; the replicated
 * member directory (id → raft address, gateway address, role); joining with
 * --join ADDR; telling a removed node. */
#include "cluster/cluster_int.h"
#include "common/alloc.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JOIN_RETRY_MS 1000
/* A voter-to-be catching up as a standby is asked this often whether it
 * holds every message, and given this long before the join fails (it
 * stays a standby: join again, or remove it). */
#define JOIN_STATUS_EVERY_MS 500
#define JOIN_CATCHUP_WAIT_MS (30 * 60 * 1000)

bool cluster__is_member(struct cluster *c, uint64_t id)
{
    for (unsigned i = 0; i < c->r->configuration.n; i++) {
        if (c->r->configuration.servers[i].id == id)
            return true;
    }
    return false;
}

static const struct raft_server *config_server(struct cluster *c, uint64_t id)
{
    for (unsigned i = 0; i < c->r->configuration.n; i++) {
        if (c->r->configuration.servers[i].id == id)
            return &c->r->configuration.servers[i];
    }
    return NULL;
}

static void change_done(struct cluster *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void change_done(struct cluster *c, int status, const char *fmt, ...)
{
    struct mchange *m = c->change;
    char text[256] = "";
    va_list ap;

    if (m == NULL)
        return;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
    }
    c->change = NULL;
    if (m->status_link != NULL)
        lclient_close(m->status_link);
    if (status == 0)
        log_info("cluster", "membership change done op=%d id=%llu", m->op,
                 (unsigned long long)m->id);
    else
        log_warn("cluster", "membership change failed op=%d id=%llu err=%s",
                 m->op, (unsigned long long)m->id, text);
    m->cb(m->arg, status, text);
    ch_free(m);
}

static int raft_to_ch(int rv)
{
    switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return CH_ENOTLEADER;
    case RAFT_CANTCHANGE:
        return CH_EBUSY;
    case RAFT_NOTFOUND:
    case RAFT_BADID:
        return CH_ENOTFOUND;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return CH_EBUSY;
    default:
        return CH_EIO;
    }
}

/* Proposes directory changes as their own raft entry; cb on apply. */
static int propose_members(struct cluster *c, struct raft_apply *req,
                           const struct ch_member_change *changes, uint32_t n,
                           raft_apply_cb cb)
{
    struct raft_buffer buf;
    void *data;
    size_t len;
    int rv;

    /* The leader stamps the time into the entry (never read on apply). */
    rv = ch_members_encode(changes, n, (int64_t)time(NULL), raft_malloc, &data,
                           &len);
    if (rv != 0)
        return rv;
    buf.base = data;
    buf.len = len;
    rv = cluster__raft_apply(c, req, &buf, cb);
    if (rv != 0) {
        raft_free(data);
        return raft_to_ch(rv);
    }
    return 0;
}

/* ---- telling a removed node ---- */

struct notice {
    struct lclient *l;
    uint64_t id;
};

static void notice_state(void *arg, struct lclient *l, bool open)
{
    struct notice *n = arg;
    struct link_req r;

    if (open) {
        memset(&r, 0, sizeof r);
        r.op = LINK_REMOVED;
        r.id = n->id;
        if (lclient_send_req(l, &r) == 0)
            log_info("cluster", "told removed node id=%llu",
                     (unsigned long long)n->id);
        /* The node answers nothing; it shuts down and closes the link. */
        return;
    }
    ch_free(n);
}

static void notify_removed(struct cluster *c, uint64_t id, const char *http)
{
    struct notice *n = ch_calloc(1, sizeof *n);

    if (n == NULL || http[0] == '\0') {
        ch_free(n);
        return;
    }
    n->id = id;
    /* The node answers nothing: any frame from it closes the link. */
    n->l =
        lclient_create(&c->wsctx, c->cfg.id, http, NULL, NULL, notice_state, n);
    if (n->l == NULL)
        ch_free(n);
}

/* ---- the steps of a change ----
 *
 * A change is a chain of raft requests (join: directory entry, raft_add,
 * raft_assign; leave: raft_remove, directory entry). Each callback only
 * records the outcome and marks the next step due; the check phase runs
 * it (cluster__membership_run). Nothing is handed to raft from inside a
 * raft callback (docs/architecture.md "Raft": libraft 0.15 runs callbacks
 * in the middle of its own state changes). */

/* Marks the next step of the change in progress due. */
static void step_due(struct cluster *c, enum mchange_step step)
{
    struct mchange *m = c->change;

    CH_ASSERT(m != NULL && !m->is_due);
    m->step = step;
    m->is_due = true;
    cluster__kick(c);
}

/* The outcome of a raft change of the change in progress (inside its
 * callback): a failure ends the change with "<what> <id> failed"; success
 * marks `next` due, or ends the change when is_last. */
static void change_step_done(struct raft_change *req, int status,
                             const char *what, enum mchange_step next,
                             bool is_last)
{
    struct cluster *c = req->data;
    struct mchange *m = c->change;

    cluster__raft_cb_enter(c);
    CH_ASSERT(m != NULL && req == &m->change_req);
    if (status != 0)
        change_done(c, raft_to_ch(status), "%s %llu failed: %s", what,
                    (unsigned long long)m->id, raft_strerror(status));
    else if (is_last)
        change_done(c, 0, NULL);
    else
        step_due(c, next);
    cluster__raft_cb_leave(c);
}

/* The join's last step: the standby became a voter. */
static void join_promote_cb(struct raft_change *req, int status)
{
    change_step_done(req, status, "promotion of", MSTEP_START, true);
}

/* Assigned as a standby: a standby or spare join is done; a voter-to-be
 * first catches up (MSTEP_JOIN_WAIT, run by the tick). */
static void join_assign_cb(struct raft_change *req, int status)
{
    struct cluster *c = req->data;
    struct mchange *m = c->change;

    cluster__raft_cb_enter(c);
    CH_ASSERT(m != NULL && req == &m->change_req);
    if (status != 0) {
        change_done(c, raft_to_ch(status), "assignment of %llu failed: %s",
                    (unsigned long long)m->id, raft_strerror(status));
    } else if (m->role != CLUSTER_ROLE_VOTER) {
        change_done(c, 0, NULL);
    } else {
        m->step = MSTEP_JOIN_WAIT;
        m->status_next_ms = uv_now(c->loop);
        m->wait_deadline_ms = uv_now(c->loop) + JOIN_CATCHUP_WAIT_MS;
        log_info("cluster",
                 "new member catching up as a standby id=%llu http=%s",
                 (unsigned long long)m->id, m->http);
    }
    cluster__raft_cb_leave(c);
}

static void join_add_cb(struct raft_change *req, int status)
{
    struct cluster *c = req->data;
    bool is_spare = c->change->role == CLUSTER_ROLE_SPARE;

    change_step_done(req, status, "adding", MSTEP_JOIN_ASSIGN, is_spare);
}

static void join_dir_cb(struct raft_apply *req, int status, void *result)
{
    struct cluster *c = req->data;

    (void)result;
    cluster__raft_cb_enter(c);
    if (status != 0)
        change_done(c, raft_to_ch(status), "directory update failed: %s",
                    raft_strerror(status));
    else
        step_due(c, MSTEP_JOIN_ADD);
    cluster__raft_cb_leave(c);
}

static int start_join(struct cluster *c, struct mchange *m)
{
    struct ch_member_change ch;

    memset(&ch, 0, sizeof ch);
    ch.op = CH_MEMBER_SET;
    ch.id = m->id;
    ch.raft.p = m->raft;
    ch.raft.n = strlen(m->raft);
    ch.http.p = m->http;
    ch.http.n = strlen(m->http);
    ch.role = m->role;
    m->apply_req.data = c;
    return propose_members(c, &m->apply_req, &ch, 1, join_dir_cb);
}

/* The node was added (as a spare): a voter or standby is promoted once it
 * caught up with the log (0.15 runs the catch-up rounds before appending
 * the configuration). */
/* A voter-to-be is assigned as a standby first: it receives the log (and
 * a snapshot, whose messages it then fetches) without voting, so it
 * becomes a voter only once it holds every message (docs/architecture.md
 * "Membership"). */
static int join_assign(struct cluster *c, struct mchange *m)
{
    int rv;

    m->change_req.data = c;
    rv = cluster__raft_assign(c, &m->change_req, m->id, RAFT_STANDBY,
                              join_assign_cb);
    return rv == 0 ? 0 : raft_to_ch(rv);
}

static int join_promote(struct cluster *c, struct mchange *m)
{
    int rv;

    m->change_req.data = c;
    rv = cluster__raft_assign(c, &m->change_req, m->id, RAFT_VOTER,
                              join_promote_cb);
    return rv == 0 ? 0 : raft_to_ch(rv);
}

/* ---- a voter-to-be catching up (MSTEP_JOIN_WAIT) ---- */

static void status_link_close(struct mchange *m)
{
    if (m->status_link != NULL)
        lclient_close(m->status_link);
    m->status_link = NULL;
    m->status_asked = false;
}

static void status_send(struct cluster *c, struct mchange *m)
{
    struct link_req r;

    memset(&r, 0, sizeof r);
    r.req_id = ++c->next_req_id;
    r.op = LINK_STATUS;
    if (lclient_send_req(m->status_link, &r) != 0)
        status_link_close(m);
    else
        m->status_asked = true;
}

static void status_resp(void *arg, const struct link_resp *r)
{
    struct cluster *c = arg;
    struct mchange *m = c->change;

    if (m == NULL || m->step != MSTEP_JOIN_WAIT || !m->status_asked)
        return;
    m->status_asked = false;
    m->status_next_ms = uv_now(c->loop) + JOIN_STATUS_EVERY_MS;
    if (r->status != 0) {
        log_debug("cluster", "new member not caught up id=%llu: %.*s",
                  (unsigned long long)m->id, (int)r->text.n, r->text.p);
        return;
    }
    status_link_close(m);
    log_info("cluster", "new member caught up id=%llu; promoting",
             (unsigned long long)m->id);
    step_due(c, MSTEP_JOIN_PROMOTE);
}

static void status_state(void *arg, struct lclient *l, bool open)
{
    struct cluster *c = arg;
    struct mchange *m = c->change;

    if (m == NULL || l != m->status_link)
        return;
    if (open) {
        status_send(c, m);
        return;
    }
    m->status_link = NULL; /* ended: no lclient_close */
    m->status_asked = false;
    m->status_next_ms = uv_now(c->loop) + JOIN_STATUS_EVERY_MS;
}

/* Asks the new member, every JOIN_STATUS_EVERY_MS, whether it caught up. */
static void join_wait_tick(struct cluster *c, struct mchange *m)
{
    uint64_t now = uv_now(c->loop);

    if (raft_state(c->r) != RAFT_LEADER) {
        status_link_close(m);
        change_done(c, CH_ENOTLEADER, "leadership lost during the change");
        return;
    }
    if (now >= m->wait_deadline_ms) {
        status_link_close(m);
        change_done(c, CH_ETIMEDOUT,
                    "node %llu did not catch up within %d s: it stays a "
                    "standby",
                    (unsigned long long)m->id, JOIN_CATCHUP_WAIT_MS / 1000);
        return;
    }
    if (m->status_asked || now < m->status_next_ms)
        return;
    if (m->status_link == NULL) {
        m->status_link = lclient_create(&c->wsctx, c->cfg.id, m->http,
                                        status_resp, NULL, status_state, c);
        if (m->status_link == NULL)
            m->status_next_ms = now + JOIN_STATUS_EVERY_MS;
        return; /* asks once open */
    }
    if (lclient_is_open(m->status_link))
        status_send(c, m);
}

static int join_add(struct cluster *c, struct mchange *m)
{
    int rv;

    m->change_req.data = c;
    rv = cluster__raft_add(c, &m->change_req, m->id, m->raft, join_add_cb);
    return rv == 0 ? 0 : raft_to_ch(rv);
}

static void leave_dir_cb(struct raft_apply *req, int status, void *result)
{
    struct cluster *c = req->data;
    struct mchange *m = c->change;

    (void)result;
    cluster__raft_cb_enter(c);
    notify_removed(c, m->id, m->http);
    if (status != 0) {
        /* Removed from raft already; only the directory entry stays. */
        log_warn("cluster", "directory cleanup failed id=%llu status=%d",
                 (unsigned long long)m->id, status);
    }
    change_done(c, 0, NULL);
    cluster__raft_cb_leave(c);
}

static void leave_remove_cb(struct raft_change *req, int status)
{
    change_step_done(req, status, "removing", MSTEP_LEAVE_DIR, false);
}

/* The node left raft: its directory entry goes too. */
static int leave_dir(struct cluster *c, struct mchange *m)
{
    struct ch_member_change ch;

    memset(&ch, 0, sizeof ch);
    ch.op = CH_MEMBER_DEL;
    ch.id = m->id;
    m->apply_req.data = c;
    if (propose_members(c, &m->apply_req, &ch, 1, leave_dir_cb) != 0) {
        /* It left raft all the same: report it, keep the stale entry. */
        notify_removed(c, m->id, m->http);
        change_done(c, 0, NULL);
    }
    return 0;
}

/* The leader itself leaves: hand leadership over, then the new leader
 * removes us (the request is forwarded to it). */
static void leave_self_transfer_cb(struct raft_transfer *req)
{
    struct cluster *c = req->data;
    struct mchange *m = c->change;
    struct link_req lr;
    int rv;

    cluster__raft_cb_enter(c);
    if (raft_state(c->r) == RAFT_LEADER) {
        change_done(c, CH_EBUSY,
                    "leadership transfer before leaving did not happen; "
                    "try again");
    } else {
        c->change = NULL;
        memset(&lr, 0, sizeof lr);
        lr.op = LINK_LEAVE;
        lr.id = m->id;
        /* Only queued: sent from the check phase or the tick. */
        rv = cluster__forward_admin(c, &lr, m->cb, m->arg);
        if (rv != 0)
            m->cb(m->arg, rv, "cannot forward the leave to the new leader");
        ch_free(m);
    }
    cluster__raft_cb_leave(c);
}

static int start_leave(struct cluster *c, struct mchange *m)
{
    int rv;

    if (m->id == c->cfg.id) {
        m->transfer_req.data = c;
        rv = cluster__raft_transfer(c, &m->transfer_req, 0,
                                    leave_self_transfer_cb);
        return rv == 0 ? 0 : raft_to_ch(rv);
    }
    m->change_req.data = c;
    rv = cluster__raft_remove(c, &m->change_req, m->id, leave_remove_cb);
    return rv == 0 ? 0 : raft_to_ch(rv);
}

/* ---- transfer ---- */

static void transfer_cb(struct raft_transfer *req)
{
    struct cluster *c = req->data;
    struct mchange *m = c->change;
    raft_id leader_id = 0;
    const char *addr = NULL;

    cluster__raft_cb_enter(c);
    raft_leader(c->r, &leader_id, &addr);
    /* 0.15 can end a transfer silently (docs/architecture.md "Raft"):
     * check that it happened. */
    if (raft_state(c->r) == RAFT_LEADER ||
        (m->id != 0 && leader_id != 0 && leader_id != m->id))
        change_done(c, CH_EIO, "leadership transfer to %llu did not happen",
                    (unsigned long long)m->id);
    else
        change_done(c, 0, NULL);
    cluster__raft_cb_leave(c);
}

static int start_transfer(struct cluster *c, struct mchange *m)
{
    int rv;

    m->transfer_req.data = c;
    rv = cluster__raft_transfer(c, &m->transfer_req, m->id, transfer_cb);
    return rv == 0 ? 0 : raft_to_ch(rv);
}

static void answer_all(struct cluster *c);

/* Runs the step of the change in progress that is due, and answers the
 * requests refused at once (check phase). */
void cluster__membership_run(struct cluster *c)
{
    struct mchange *m = c->change;
    int rv;

    CH_ASSERT(c->n_in_raft_cb == 0);
    answer_all(c);
    if (m == NULL || !m->is_due)
        return;
    m->is_due = false;
    if (raft_state(c->r) != RAFT_LEADER) {
        change_done(c, CH_ENOTLEADER, "leadership lost during the change");
        return;
    }
    switch (m->step) {
    case MSTEP_START:
        rv = m->op == LINK_JOIN    ? start_join(c, m)
             : m->op == LINK_LEAVE ? start_leave(c, m)
                                   : start_transfer(c, m);
        break;
    case MSTEP_JOIN_ADD:
        rv = join_add(c, m);
        break;
    case MSTEP_JOIN_ASSIGN:
        rv = join_assign(c, m);
        break;
    case MSTEP_JOIN_PROMOTE:
        rv = join_promote(c, m);
        break;
    case MSTEP_JOIN_WAIT:
        CH_ASSERT(0 && "the wait is run by the tick, never due");
        rv = CH_EINVAL;
        break;
    case MSTEP_LEAVE_DIR:
        rv = leave_dir(c, m);
        break;
    default:
        CH_ASSERT(0 && "unknown membership step");
        rv = CH_EINVAL;
        break;
    }
    if (rv != 0)
        change_done(c, rv, "%s", ch_strerror(rv));
}

/* ---- refusals ---- */

/* An admin request refused (or done) at once, answered from the check
 * phase. */
struct admin_answer {
    struct ch_queue link; /* in c->admin_answers */
    cluster_admin_cb cb;
    void *arg;
    int status;
    char text[160];
};

/* Queues the answer of an admin request. Returns 0 (cb fires from the
 * check phase) or CH_ENOMEM (cb never fires). */
static int answer_later(struct cluster *c, cluster_admin_cb cb, void *arg,
                        int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int answer_later(struct cluster *c, cluster_admin_cb cb, void *arg,
                        int status, const char *fmt, ...)
{
    struct admin_answer *a = ch_malloc(sizeof *a);
    va_list ap;

    if (a == NULL)
        return CH_ENOMEM;
    a->cb = cb;
    a->arg = arg;
    a->status = status;
    va_start(ap, fmt);
    vsnprintf(a->text, sizeof a->text, fmt, ap);
    va_end(ap);
    ch_queue_insert_tail(&c->admin_answers, &a->link);
    cluster__kick(c);
    return 0;
}

static void answer_all(struct cluster *c)
{
    struct ch_queue *e;

    while ((e = ch_queue_head(&c->admin_answers)) != NULL) {
        struct admin_answer *a = CH_QUEUE_DATA(e, struct admin_answer, link);

        ch_queue_remove(e);
        a->cb(a->arg, a->status, a->text);
        ch_free(a);
    }
}

/* Validates and starts one change on the leader. */
int cluster__admin_local(struct cluster *c, const struct link_req *r,
                         cluster_admin_cb cb, void *arg)
{
    const struct raft_server *s;
    struct mchange *m;

    if (raft_state(c->r) != RAFT_LEADER)
        return cluster__forward_admin(c, r, cb, arg);
    if (c->change != NULL)
        return answer_later(c, cb, arg, CH_EBUSY,
                            "a membership change is already in progress");
    s = config_server(c, r->id);
    switch (r->op) {
    case LINK_JOIN:
        if (r->id == 0 || r->raft.n == 0 || r->raft.n > CH_MAX_ADDR_BYTES ||
            r->http.n == 0 || r->http.n > CH_MAX_ADDR_BYTES)
            return answer_later(c, cb, arg, CH_EINVAL,
                                "join needs an id >= 1, a raft and an HTTP "
                                "address");
        if (s != NULL) {
            bool same = strlen(s->address) == r->raft.n &&
                        memcmp(s->address, r->raft.p, r->raft.n) == 0;
            return answer_later(c, cb, arg, CH_EBUSY,
                                "id %llu is already a member%s",
                                (unsigned long long)r->id,
                                same ? "" : " (with another raft address)");
        }
        break;
    case LINK_LEAVE:
        if (s == NULL)
            return answer_later(c, cb, arg, CH_ENOTFOUND,
                                "id %llu is not a member",
                                (unsigned long long)r->id);
        break;
    case LINK_TRANSFER:
        if (r->id != 0 && (s == NULL || s->role != RAFT_VOTER))
            return answer_later(c, cb, arg, CH_ENOTFOUND,
                                "id %llu is not a voting member",
                                (unsigned long long)r->id);
        if (r->id == c->cfg.id)
            return answer_later(c, cb, arg, 0, "%s", "");
        break;
    default:
        return answer_later(c, cb, arg, CH_EINVAL, "unknown admin operation");
    }

    m = ch_calloc(1, sizeof *m);
    if (m == NULL)
        return CH_ENOMEM;
    m->c = c;
    m->op = r->op;
    m->id = r->id;
    m->role = r->role;
    m->cb = cb;
    m->arg = arg;
    snprintf(m->raft, sizeof m->raft, "%.*s", (int)r->raft.n, r->raft.p);
    snprintf(m->http, sizeof m->http, "%.*s", (int)r->http.n, r->http.p);
    if (r->op == LINK_LEAVE &&
        !cluster__member_http(c, r->id, m->http, sizeof m->http))
        m->http[0] = '\0';
    c->change = m;
    log_info("cluster", "membership change op=%d id=%llu raft=%s http=%s",
             m->op, (unsigned long long)m->id, m->raft, m->http);
    /* Started from the check phase: this may run inside a raft callback
     * (an admin request answered after a publish, for one). */
    step_due(c, MSTEP_START);
    return 0;
}

static int admin_request(struct cluster *c, const struct link_req *r,
                         cluster_admin_cb cb, void *arg)
{
    if (c->closing || c->accepting_stopped || c->removed)
        return CH_ESHUTDOWN;
    if (c->raft_started && raft_state(c->r) == RAFT_LEADER)
        return cluster__admin_local(c, r, cb, arg);
    return cluster__forward_admin(c, r, cb, arg);
}

int cluster_join(struct cluster *c, uint64_t id, const char *raft,
                 const char *http, int role, cluster_admin_cb cb, void *arg)
{
    struct link_req r;

    if (id == 0 || raft == NULL || http == NULL ||
        !cluster_addr_valid_ipv4(raft) || strlen(raft) > CH_MAX_ADDR_BYTES ||
        strlen(http) > CH_MAX_ADDR_BYTES || strchr(http, ':') == NULL ||
        role < CLUSTER_ROLE_VOTER || role > CLUSTER_ROLE_SPARE)
        return CH_EINVAL;
    memset(&r, 0, sizeof r);
    r.op = LINK_JOIN;
    r.id = id;
    r.raft.p = raft;
    r.raft.n = strlen(raft);
    r.http.p = http;
    r.http.n = strlen(http);
    r.role = role;
    return admin_request(c, &r, cb, arg);
}

int cluster_leave(struct cluster *c, uint64_t id, cluster_admin_cb cb,
                  void *arg)
{
    struct link_req r;

    if (id == 0)
        return CH_EINVAL;
    memset(&r, 0, sizeof r);
    r.op = LINK_LEAVE;
    r.id = id;
    return admin_request(c, &r, cb, arg);
}

int cluster_transfer(struct cluster *c, uint64_t id, cluster_admin_cb cb,
                     void *arg)
{
    struct link_req r;

    memset(&r, 0, sizeof r);
    r.op = LINK_TRANSFER;
    r.id = id;
    return admin_request(c, &r, cb, arg);
}

void cluster_removed_notice(struct cluster *c, uint64_t id)
{
    if (id != c->cfg.id || c->removed)
        return;
    c->removed = true;
    log_warn("cluster",
             "removed from the cluster by the leader id=%llu; "
             "shutting down",
             (unsigned long long)c->cfg.id);
    if (c->removed_cb != NULL)
        c->removed_cb(c->removed_arg);
}

/* ---- directory upkeep and --join ---- */

static void directory_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    if (status != 0)
        log_warn("cluster", "directory update failed status=%d", status);
    ch_free(req);
}

/* On the ready leader: members of the configuration missing from the
 * directory get an entry (from --cluster, or our own address). */
static void directory_fill(struct cluster *c)
{
    struct ch_member_change ch[16];
    struct store_txn *t;
    struct raft_apply *req;
    uint32_t n = 0;

    if (store_read_begin(c->store, &t) != 0)
        return;
    for (unsigned i = 0; i < c->r->configuration.n && n < 16; i++) {
        const struct raft_server *s = &c->r->configuration.servers[i];
        struct store_member m;
        const char *http = NULL;
        if (store_member_get(t, s->id, &m) == 0)
            continue;
        if (s->id == c->cfg.id)
            http = c->cfg.http_addr;
        for (unsigned k = 0; http == NULL && k < c->n_spec_members; k++) {
            if (c->spec_members[k].id == s->id)
                http = c->spec_members[k].http;
        }
        if (http == NULL)
            continue;
        memset(&ch[n], 0, sizeof ch[n]);
        ch[n].op = CH_MEMBER_SET;
        ch[n].id = s->id;
        ch[n].raft.p = s->address;
        ch[n].raft.n = strlen(s->address);
        ch[n].http.p = http;
        ch[n].http.n = strlen(http);
        ch[n].role = s->role == RAFT_VOTER     ? CLUSTER_ROLE_VOTER
                     : s->role == RAFT_STANDBY ? CLUSTER_ROLE_STANDBY
                                               : CLUSTER_ROLE_SPARE;
        n++;
    }
    if (n > 0) {
        req = ch_calloc(1, sizeof *req);
        if (req != NULL && propose_members(c, req, ch, n, directory_cb) != 0)
            ch_free(req);
    }
    store_read_end(t);
}

static void join_resp(void *arg, const struct link_resp *r)
{
    struct cluster *c = arg;

    if (r->status == 0) {
        log_info("cluster", "join accepted id=%llu",
                 (unsigned long long)c->cfg.id);
        c->join_done = true;
    } else {
        log_warn("cluster", "join refused id=%llu err=%.*s",
                 (unsigned long long)c->cfg.id, (int)r->text.n, r->text.p);
        if (r->status == CH_EBUSY && r->text.n > 0 &&
            memmem(r->text.p, r->text.n, "already a member", 16) != NULL)
            c->join_done = true;
    }
    if (c->join_link != NULL) {
        lclient_close(c->join_link);
        c->join_link = NULL;
    }
    c->join_retry_ms = uv_now(c->loop) + JOIN_RETRY_MS;
}

static void join_state(void *arg, struct lclient *l, bool open)
{
    struct cluster *c = arg;
    struct link_req r;

    if (l != c->join_link)
        return;
    if (!open) {
        c->join_link = NULL;
        c->join_retry_ms = uv_now(c->loop) + JOIN_RETRY_MS;
        return;
    }
    memset(&r, 0, sizeof r);
    r.req_id = 1;
    r.op = LINK_JOIN;
    r.id = c->cfg.id;
    r.raft.p = c->cfg.raft_addr;
    r.raft.n = strlen(c->cfg.raft_addr);
    r.http.p = c->cfg.http_addr;
    r.http.n = strlen(c->cfg.http_addr);
    r.role = CLUSTER_ROLE_VOTER;
    if (lclient_send_req(l, &r) != 0) {
        lclient_close(l);
        c->join_link = NULL;
        c->join_retry_ms = uv_now(c->loop) + JOIN_RETRY_MS;
    }
}

void cluster__membership_tick(struct cluster *c)
{
    uint64_t now = uv_now(c->loop);
    bool member = cluster__is_member(c, c->cfg.id);

    if (member)
        c->was_member = true;
    if (c->is_ready && raft_state(c->r) == RAFT_LEADER &&
        !c->directory_checked) {
        c->directory_checked = true;
        directory_fill(c);
    }
    if (raft_state(c->r) != RAFT_LEADER)
        c->directory_checked = false;

    /* --join ADDR: ask until we are a member. */
    if (c->cfg.join_addr != NULL && !c->join_done && !member &&
        c->join_link == NULL && now >= c->join_retry_ms) {
        log_info("cluster", "asking to join via=%s id=%llu", c->cfg.join_addr,
                 (unsigned long long)c->cfg.id);
        c->join_link = lclient_create(&c->wsctx, c->cfg.id, c->cfg.join_addr,
                                      join_resp, NULL, join_state, c);
        if (c->join_link == NULL)
            c->join_retry_ms = now + JOIN_RETRY_MS;
    }
    if (member && c->join_link != NULL) {
        lclient_close(c->join_link);
        c->join_link = NULL;
    }
    if (c->change != NULL && c->change->step == MSTEP_JOIN_WAIT)
        join_wait_tick(c, c->change);
}

void cluster__membership_close(struct cluster *c)
{
    if (c->join_link != NULL) {
        lclient_close(c->join_link);
        c->join_link = NULL;
    }
    if (c->change != NULL && c->change->step == MSTEP_JOIN_WAIT) {
        /* Waiting on the new member, not on raft: ends here. */
        status_link_close(c->change);
        change_done(c, CH_ESHUTDOWN, "shutting down");
    }
    /* Other changes wait on a raft request: raft_close fails it with
     * LEADERSHIPLOST and its callback runs change_done. */
}
