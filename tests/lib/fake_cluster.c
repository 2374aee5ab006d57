/* The fake cluster of fake_cluster.h. */
#include "fake_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/err.h"

#define FAKE_TIME0 1700000000 /* deterministic clock, +1 s per step */
#define FAKE_DEDUP_WINDOW_S 120
#define FAKE_MAX_PENDING 100000

struct fake_pub {
    cluster_publish_cb cb;
    void *arg;
};

struct fake_admin {
    cluster_admin_cb cb;
    void *arg;
    int status;
    const char *text;
};

struct cluster {
    struct store *store;
    cluster_applied_cb applied_cb;
    void *applied_arg;
    cluster_restored_cb restored_cb;
    void *restored_arg;
    struct ch_batch_enc enc;
    struct fake_pub *pubs;
    size_t n_pubs, cap_pubs;
    struct fake_admin *admins;
    size_t n_admins, cap_admins;
    int64_t time;
    unsigned n_link_accepts;
    int publish_status;        /* non-zero: the step fails publishes so */
    const char *health_reason; /* NULL: healthy */
    bool is_unseen;            /* applied without the applied callback */
    int publish_refusal;       /* non-zero: cluster_publish refuses so */
    uint64_t leader_id;        /* cluster_get_status */
    const char *state;
    int admin_refusal;      /* non-zero: membership requests refused so */
    int admin_status;       /* non-zero: ... and answered so */
    const char *admin_text; /* with this text */
    unsigned n_admin_requests;
    struct fake_admin_req last_admin;
    struct cluster_metrics metrics;
};

static void fail(const char *what, int rv)
{
    fprintf(stderr, "fake_cluster: %s failed: %s\n", what, ch_strerror(rv));
    abort();
}

struct cluster *fake_cluster_create(struct store *store)
{
    struct cluster *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->store = store;
    c->time = FAKE_TIME0;
    c->leader_id = 1;
    c->state = "leader";
    ch_batch_enc_init(&c->enc);
    return c;
}

void fake_cluster_destroy(struct cluster *c)
{
    if (c == NULL)
        return;
    ch_batch_enc_close(&c->enc);
    free(c->pubs);
    free(c->admins);
    free(c);
}

bool fake_cluster_idle(struct cluster *c)
{
    return c->n_pubs == 0 && c->n_admins == 0;
}

static bool step_publishes(struct cluster *c)
{
    struct fake_pub *pubs = c->pubs;
    size_t n_pubs = c->n_pubs;
    struct store_result *results;
    struct ch_cmd cmd;
    void *entry = NULL;
    size_t entry_n = 0;
    bool skipped = false;
    uint64_t index;
    int rv;

    if (n_pubs == 0)
        return false;
    /* Callbacks may publish again: they queue into fresh arrays. */
    c->pubs = NULL;
    c->n_pubs = c->cap_pubs = 0;
    if (c->publish_status != 0) {
        /* Not committed (or outcome unknown): nothing is applied. */
        ch_batch_enc_reset(&c->enc);
        for (size_t i = 0; i < n_pubs; i++)
            pubs[i].cb(pubs[i].arg, c->publish_status, NULL);
        c->metrics.publishes_failed += n_pubs;
        free(pubs);
        return true;
    }
    rv = ch_batch_enc_finish(&c->enc, c->time, FAKE_DEDUP_WINDOW_S, malloc,
                             &entry, &entry_n);
    if (rv != 0)
        fail("ch_batch_enc_finish", rv);
    ch_batch_enc_reset(&c->enc);
    rv = ch_cmd_decode(entry, entry_n, &cmd);
    if (rv == CH_ENOMEM) {
        /* As a node that cannot apply: the outcome stays unknown. */
        for (size_t i = 0; i < n_pubs; i++)
            pubs[i].cb(pubs[i].arg, CH_EUNKNOWN, NULL);
        free(entry);
        free(pubs);
        return true;
    }
    if (rv != 0 || cmd.type != CH_CMD_PUBLISH || cmd.n_msgs != n_pubs)
        fail("decoding our own batch", rv ? rv : CH_ECORRUPT);
    results = calloc(n_pubs, sizeof *results);
    if (results == NULL)
        fail("calloc", CH_ENOMEM);
    index = store_applied_index(c->store) + 1;
    rv = store_apply_publish(c->store, index, cmd.time, cmd.dedup_window_s,
                             cmd.msgs, cmd.n_msgs, results, &skipped);
    if (rv == CH_ENOMEM) {
        for (size_t i = 0; i < n_pubs; i++)
            pubs[i].cb(pubs[i].arg, CH_EUNKNOWN, NULL);
        ch_cmd_free(&cmd);
        free(results);
        free(entry);
        free(pubs);
        return true;
    }
    if (rv != 0 || skipped)
        fail("store_apply_publish", rv ? rv : CH_EIO);
    c->metrics.entries_applied++;
    c->metrics.batches_proposed++;
    /* As cluster/fsm.c: the applied callback sees the assigned ids. */
    for (size_t i = 0; i < n_pubs; i++) {
        cmd.msgs[i].seq = results[i].seq;
        cmd.msgs[i].time = results[i].time;
        results[i].index = index;
        if (results[i].status != 0)
            c->metrics.publishes_failed++;
        else if (results[i].is_dup)
            c->metrics.publishes_dup++;
        else
            c->metrics.publishes_committed++;
    }
    if (c->applied_cb != NULL && !c->is_unseen)
        c->applied_cb(c->applied_arg, cmd.msgs, results, n_pubs);
    for (size_t i = 0; i < n_pubs; i++)
        pubs[i].cb(pubs[i].arg, 0, &results[i]);
    ch_cmd_free(&cmd);
    free(results);
    free(entry);
    free(pubs);
    return true;
}

static bool step_admins(struct cluster *c)
{
    struct fake_admin *admins = c->admins;
    size_t n = c->n_admins;

    if (n == 0)
        return false;
    c->admins = NULL;
    c->n_admins = c->cap_admins = 0;
    for (size_t i = 0; i < n; i++)
        admins[i].cb(admins[i].arg, admins[i].status, admins[i].text);
    free(admins);
    return true;
}

bool fake_cluster_step(struct cluster *c)
{
    bool did = step_publishes(c);

    did |= step_admins(c);
    c->time++;
    return did;
}

/* ---- the cluster API used by the gateway ---- */

struct store *cluster_store(struct cluster *c)
{
    return c->store;
}

void cluster_set_applied_cb(struct cluster *c, cluster_applied_cb cb, void *arg)
{
    c->applied_cb = cb;
    c->applied_arg = arg;
}

void cluster_set_restored_cb(struct cluster *c, cluster_restored_cb cb,
                             void *arg)
{
    c->restored_cb = cb;
    c->restored_arg = arg;
}

int cluster_publish(struct cluster *c, const struct ch_msg *m,
                    cluster_publish_cb cb, void *arg)
{
    int rv;

    if (c->publish_refusal != 0)
        return c->publish_refusal;
    if (c->n_pubs >= FAKE_MAX_PENDING)
        return CH_EFULL;
    if (c->n_pubs == c->cap_pubs) {
        size_t cap = c->cap_pubs ? c->cap_pubs * 2 : 16;
        struct fake_pub *p = realloc(c->pubs, cap * sizeof *p);
        if (p == NULL)
            return CH_ENOMEM;
        c->pubs = p;
        c->cap_pubs = cap;
    }
    /* The encoder copies the bytes: the caller's buffers may go away. */
    rv = ch_batch_enc_add(&c->enc, m);
    if (rv != 0)
        return rv;
    c->pubs[c->n_pubs].cb = cb;
    c->pubs[c->n_pubs].arg = arg;
    c->n_pubs++;
    c->metrics.pending_publishes = c->n_pubs;
    return 0;
}

/* Forwarded publishes are committed like local ones here. */
int cluster_publish_forwarded(struct cluster *c, const struct ch_msg *m,
                              cluster_publish_cb cb, void *arg)
{
    return cluster_publish(c, m, cb, arg);
}

static int queue_admin(struct cluster *c, int status, cluster_admin_cb cb,
                       void *arg)
{
    const char *text = status == CH_ENOTFOUND ? "no such member" : "";

    if (c->admin_refusal != 0)
        return c->admin_refusal;
    if (c->admin_status != 0) {
        status = c->admin_status;
        text = c->admin_text != NULL ? c->admin_text : "";
    }
    if (c->n_admins == c->cap_admins) {
        size_t cap = c->cap_admins ? c->cap_admins * 2 : 8;
        struct fake_admin *p = realloc(c->admins, cap * sizeof *p);
        if (p == NULL)
            return CH_ENOMEM;
        c->admins = p;
        c->cap_admins = cap;
    }
    c->admins[c->n_admins].cb = cb;
    c->admins[c->n_admins].arg = arg;
    c->admins[c->n_admins].status = status;
    c->admins[c->n_admins].text = text;
    c->n_admins++;
    return 0;
}

static void note_admin(struct cluster *c, enum fake_admin_op op, uint64_t id)
{
    c->n_admin_requests++;
    memset(&c->last_admin, 0, sizeof c->last_admin);
    c->last_admin.op = op;
    c->last_admin.id = id;
}

/* Members 1..3 exist; others are "not found" (answered asynchronously). */
static int member_status(uint64_t id)
{
    return id >= 1 && id <= 3 ? 0 : CH_ENOTFOUND;
}

int cluster_join(struct cluster *c, uint64_t id, const char *raft,
                 const char *http, int role, cluster_admin_cb cb, void *arg)
{
    note_admin(c, FAKE_ADMIN_JOIN, id);
    snprintf(c->last_admin.raft, sizeof c->last_admin.raft, "%s", raft);
    snprintf(c->last_admin.http, sizeof c->last_admin.http, "%s", http);
    c->last_admin.role = role;
    if (id == 0 || strlen(raft) > CH_MAX_ADDR_BYTES ||
        strlen(http) > CH_MAX_ADDR_BYTES || role < CLUSTER_ROLE_VOTER ||
        role > CLUSTER_ROLE_SPARE)
        return CH_EINVAL;
    return queue_admin(c, 0, cb, arg);
}

int cluster_leave(struct cluster *c, uint64_t id, cluster_admin_cb cb,
                  void *arg)
{
    note_admin(c, FAKE_ADMIN_LEAVE, id);
    if (id == 0)
        return CH_EINVAL;
    return queue_admin(c, member_status(id), cb, arg);
}

int cluster_transfer(struct cluster *c, uint64_t id, cluster_admin_cb cb,
                     void *arg)
{
    note_admin(c, FAKE_ADMIN_TRANSFER, id);
    return queue_admin(c, id == 0 ? 0 : member_status(id), cb, arg);
}

void cluster_removed_notice(struct cluster *c, uint64_t id)
{
    (void)c;
    (void)id;
}

int cluster_link_accept(struct cluster *c, int fd, const char *ws_key,
                        const char *peer)
{
    (void)ws_key;
    (void)peer;
    c->n_link_accepts++;
    close(fd); /* owned from the call on: the link is not served here */
    return CH_ESHUTDOWN;
}

unsigned fake_cluster_link_accepts(struct cluster *c)
{
    return c->n_link_accepts;
}

void cluster_get_status(struct cluster *c, struct cluster_status *out)
{
    memset(out, 0, sizeof *out);
    out->id = 1;
    out->state = c->state;
    out->term = 3;
    out->leader_id = c->leader_id;
    out->commit_index = store_applied_index(c->store);
    out->applied_index = out->commit_index;
    out->n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        out->members[i].id = i + 1;
        snprintf(out->members[i].raft, sizeof out->members[i].raft,
                 "127.0.0.1:%u", 9000 + i);
        snprintf(out->members[i].http, sizeof out->members[i].http,
                 "127.0.0.1:%u", 8000 + i);
        out->members[i].role = CLUSTER_ROLE_VOTER;
    }
}

bool cluster_is_leader(struct cluster *c)
{
    return c->leader_id == 1; /* this node is 1 */
}

bool cluster_is_healthy(struct cluster *c)
{
    return c->health_reason == NULL;
}

const char *cluster_health_reason(struct cluster *c)
{
    return c->health_reason;
}

void fake_cluster_set_publish_status(struct cluster *c, int status)
{
    c->publish_status = status;
}

void fake_cluster_set_health(struct cluster *c, const char *reason)
{
    c->health_reason = reason;
}

void fake_cluster_set_unseen(struct cluster *c, bool is_unseen)
{
    c->is_unseen = is_unseen;
}

void fake_cluster_restored(struct cluster *c)
{
    if (c->restored_cb != NULL)
        c->restored_cb(c->restored_arg);
}

void fake_cluster_set_publish_refusal(struct cluster *c, int rv)
{
    c->publish_refusal = rv;
}

void fake_cluster_set_leader(struct cluster *c, uint64_t leader_id,
                             const char *state)
{
    c->leader_id = leader_id;
    c->state = state;
}

void fake_cluster_set_admin_outcome(struct cluster *c, int refusal, int status,
                                    const char *text)
{
    c->admin_refusal = refusal;
    c->admin_status = status;
    c->admin_text = text;
}

unsigned fake_cluster_admin_requests(struct cluster *c,
                                     struct fake_admin_req *last)
{
    if (last != NULL)
        *last = c->last_admin;
    return c->n_admin_requests;
}

void cluster_get_metrics(struct cluster *c, struct cluster_metrics *out)
{
    *out = c->metrics;
}
