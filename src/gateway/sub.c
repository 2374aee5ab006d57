/* Subscriptions: one cursor mechanism for replay, live and slow readers
 * (docs/architecture.md "Subscriptions: one cursor mechanism"). Each connection
 * keeps, per topic it receives, the next sequenceId to send. Live messages go
 * straight from the applied batch (encoded once) while the cursor is at the
 * head and the output has room; otherwise the cursor is marked behind and the
 * pump reads from the store from that point on. A cursor never skips or
 * repeats, so the replay→live hand-over and slow readers need no special case.
 */
#include "common/alloc.h"
#include "common/log.h"
#include "common/validate.h"
#include "gateway/gw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- index: topic path -> subscriptions on it ---- */

static int index_add(struct gw *gw, struct gw_sub *s)
{
    struct gw_index_entry *ie = ch_map_get(&gw->index, s->path, s->path_n);

    CH_ASSERT(!gw->is_delivering);
    if (ie == NULL) {
        ie = ch_malloc(sizeof *ie);
        if (ie == NULL)
            return CH_ENOMEM;
        ch_queue_init(&ie->subs);
        if (ch_map_set(&gw->index, s->path, s->path_n, ie) != 0) {
            ch_free(ie);
            return CH_ENOMEM;
        }
    }
    ch_queue_insert_tail(&ie->subs, &s->idx_link);
    s->idx = ie;
    return 0;
}

static void index_remove(struct gw *gw, struct gw_sub *s)
{
    struct gw_index_entry *ie = s->idx;

    /* gw__sub_applied walks the entries: never changed under it. */
    CH_ASSERT(!gw->is_delivering);
    CH_ASSERT(ie != NULL && ch_map_get(&gw->index, s->path, s->path_n) == ie);
    ch_queue_remove(&s->idx_link);
    s->idx = NULL;
    if (ch_queue_empty(&ie->subs)) {
        ch_map_del(&gw->index, s->path, s->path_n);
        ch_free(ie);
    }
}

/* ---- cursors ---- */

static struct gw_cursor *cursor_get(struct gw_conn *c, const char *path,
                                    size_t path_n)
{
    return ch_map_get(&c->cursors, path, path_n);
}

static struct gw_cursor *cursor_create(struct gw_conn *c, const char *path,
                                       size_t path_n, int64_t next_seq)
{
    struct gw_cursor *cur;

    CH_ASSERT(next_seq >= 1 && path_n > 0 && path_n <= CH_MAX_TOPIC_BYTES);
    CH_ASSERT(cursor_get(c, path, path_n) == NULL);
    cur = ch_calloc(1, sizeof *cur);
    if (cur == NULL)
        return NULL;
    cur->next_seq = next_seq;
    cur->path_n = path_n;
    memcpy(cur->path, path, path_n);
    if (ch_map_set(&c->cursors, path, path_n, cur) != 0) {
        ch_free(cur);
        return NULL;
    }
    return cur;
}

static void cursor_set_behind(struct gw_conn *c, struct gw_cursor *cur,
                              bool behind)
{
    if (cur->behind == behind)
        return;
    cur->behind = behind;
    if (behind) {
        c->n_behind++;
    } else {
        CH_ASSERT(c->n_behind > 0);
        c->n_behind--;
    }
    CH_ASSERT(c->n_behind <= c->cursors.n_entries);
}

static void cursor_free(struct gw_conn *c, struct gw_cursor *cur)
{
    cursor_set_behind(c, cur, false);
    ch_map_del(&c->cursors, cur->path, cur->path_n);
    ch_free(cur);
}

/* Drops cursors that no subscription of the connection matches any more. */
static void cursors_gc(struct gw_conn *c)
{
    struct ch_map_entry *e, *next;
    size_t b;

    for (e = ch_map_first(&c->cursors, &b); e != NULL; e = next) {
        struct gw_cursor *cur = e->value;
        struct ch_queue *q;
        bool matched = false;
        size_t nb = b;
        next = ch_map_next(&c->cursors, e, &nb);
        CH_QUEUE_FOREACH (q, &c->subs) {
            struct gw_sub *s = CH_QUEUE_DATA(q, struct gw_sub, link);
            matched =
                ch_topic_under(cur->path, cur->path_n, s->path, s->path_n);
            if (matched)
                break;
        }
        if (!matched)
            cursor_free(c, cur);
        b = nb;
    }
}

/* ---- sending ---- */

/* Sends "#<type> <path>" or "#<type> <path> <n>" (n >= 0). */
static void send_status(struct gw_conn *c, const char *type, const char *path,
                        long long n)
{
    char text[CH_MAX_TOPIC_BYTES + 64];
    int len;

    if (n >= 0)
        len = snprintf(text, sizeof text, "#%s %s %lld", type, path, n);
    else
        len = snprintf(text, sizeof text, "#%s %s", type, path);
    gw__ws_send_text(c, text, (size_t)len);
}

static void send_encoded(struct gw_conn *c, const char *p, size_t n,
                         bool is_text)
{
    gw__ws_send_frame(c, p, n, !is_text);
    c->gw->metrics.messages_delivered++;
}

/* Encodes and sends one stored message (store read callback helper). */
static int send_msg(struct gw_conn *c, const struct ch_msg *m,
                    struct ch_buf *scratch)
{
    scratch->len = 0;
    if (gw__msg_encode(m, scratch) != 0)
        return CH_ENOMEM;
    send_encoded(c, scratch->data, scratch->len, gw__msg_is_text(m));
    return 0;
}

void gw__sub_schedule_pump(struct gw_conn *c)
{
    struct gw *gw = c->gw;

    if (ch_queue_linked(&c->pump_link) || gw__conn_closing(c))
        return;
    c->refs++; /* until the pump ran */
    if (ch_queue_empty(&gw->pumps))
        gw__pumps_pending(gw, true);
    ch_queue_insert_tail(&gw->pumps, &c->pump_link);
}

void gw__sub_run_pumps(struct gw *gw)
{
    struct ch_queue due;
    struct ch_queue *e;

    /* Pumps scheduled while these run wait for the next turn. */
    ch_queue_init(&due);
    ch_queue_move(&gw->pumps, &due);
    while ((e = ch_queue_head(&due)) != NULL) {
        struct gw_conn *c = CH_QUEUE_DATA(e, struct gw_conn, pump_link);

        ch_queue_remove(e);
        if (c->is_failed)
            gw__conn_close(c); /* failed inside the delivery walk */
        if (!gw__conn_closing(c)) {
            gw__sub_pump(c);
            if (c->is_failed)
                gw__conn_close(c); /* a send failed inside the pump */
        }
        if (!gw__conn_closing(c)) {
            gw__conn_flush(c);
            gw__conn_update_reading(c);
        }
        gw__conn_unref(c);
    }
    if (ch_queue_empty(&gw->pumps))
        gw__pumps_pending(gw, false);
}

/* ---- subscribe / cancel ---- */

static void sub_free(struct gw_conn *c, struct gw_sub *s)
{
    CH_ASSERT(s->conn == c && c->n_subs > 0);
    ch_queue_remove(&s->link);
    if (s->state != GW_SUB_LIVE) {
        CH_ASSERT(c->n_replays > 0);
        c->n_replays--;
    }
    index_remove(c->gw, s);
    c->n_subs--;
    ch_free(s);
}

static int64_t topic_last(struct store_txn *t, const char *path, size_t path_n)
{
    struct store_topic info;
    if (store_topic_get(t, path, path_n, &info) != 0)
        return 0;
    return info.last_seq;
}

int gw__sub_add(struct gw_conn *c, const struct gw_cmd *cmd)
{
    struct gw_sub *s;
    int rv;

    CH_ASSERT(c->is_ws && c->n_subs <= CH_MAX_SUBS_PER_CONN);
    CH_ASSERT(cmd->type == GW_CMD_SUBSCRIBE && cmd->path.n > 0 &&
              cmd->path.n <= CH_MAX_TOPIC_BYTES);
    if (c->n_subs >= CH_MAX_SUBS_PER_CONN)
        return CH_EFULL;
    s = ch_calloc(1, sizeof *s);
    if (s == NULL)
        return CH_ENOMEM;
    s->conn = c;
    s->path_n = cmd->path.n;
    memcpy(s->path, cmd->path.p, cmd->path.n);
    s->has_start = cmd->has_start;
    s->start = cmd->start;
    s->has_max = cmd->has_max;
    s->max = cmd->max;
    s->state = cmd->has_start ? GW_SUB_PENDING : GW_SUB_LIVE;
    rv = index_add(c->gw, s);
    if (rv != 0) {
        ch_free(s);
        return rv;
    }
    ch_queue_insert_tail(&c->subs, &s->link);
    c->n_subs++;

    if (s->state == GW_SUB_LIVE) {
        /* Live only: from the head of the exact path on. */
        if (cursor_get(c, s->path, s->path_n) == NULL) {
            struct store_txn *t;
            int64_t last;
            /* Without the head the cursor would start at 1: the whole
             * history would follow the next live message. */
            rv = store_read_begin(c->gw->store, &t);
            if (rv != 0) {
                sub_free(c, s);
                return rv;
            }
            last = topic_last(t, s->path, s->path_n);
            store_read_end(t);
            if (cursor_create(c, s->path, s->path_n, last + 1) == NULL) {
                sub_free(c, s);
                return CH_ENOMEM;
            }
        }
        send_status(c, "subscribed-to", s->path, -1);
        return 0;
    }
    c->n_replays++;
    gw__sub_schedule_pump(c);
    return 0;
}

void gw__sub_cancel(struct gw_conn *c, const char *path, size_t path_n)
{
    struct ch_queue *q, *n;

    CH_QUEUE_FOREACH_SAFE(q, n, &c->subs)
    {
        struct gw_sub *s = CH_QUEUE_DATA(q, struct gw_sub, link);
        if (s->path_n == path_n && memcmp(s->path, path, path_n) == 0)
            sub_free(c, s);
    }
    cursors_gc(c);
}

void gw__sub_conn_closed(struct gw_conn *c)
{
    struct ch_map_entry *e, *next;
    struct ch_queue *q;
    size_t b;

    while ((q = ch_queue_head(&c->subs)) != NULL)
        sub_free(c, CH_QUEUE_DATA(q, struct gw_sub, link));
    for (e = ch_map_first(&c->cursors, &b); e != NULL; e = next) {
        size_t nb = b;
        next = ch_map_next(&c->cursors, e, &nb);
        cursor_free(c, e->value);
        b = nb;
    }
}

/* ---- the pump: store reads while the output has room ---- */

struct pump_read {
    struct gw_conn *c;
    struct ch_buf *scratch;
    int rv;
};

static int pump_read_cb(void *arg, const struct ch_msg *m)
{
    struct pump_read *pr = arg;

    pr->rv = send_msg(pr->c, m, pr->scratch);
    if (pr->rv != 0)
        return 1;
    return gw__conn_has_room(pr->c) ? 0 : 1;
}

/* Starts a pending replay: counts what it will send (docs/protocol.md). */
static void replay_begin(struct gw_conn *c, struct store_txn *t,
                         struct gw_sub *s)
{
    struct store_topic info;
    int64_t from, n = 0;

    if (store_topic_get(t, s->path, s->path_n, &info) != 0)
        memset(&info, 0, sizeof info);
    if (s->start < 0)
        from = info.last_seq + s->start + 1;
    else
        from = s->start;
    if (from < 1)
        from = 1;
    if (info.count > 0 && from < info.first_seq)
        from = info.first_seq;
    if (info.count > 0 && from <= info.last_seq)
        n = info.last_seq - from + 1;
    if (s->has_max && n > s->max)
        n = s->max;
    CH_ASSERT(from >= 1 && n >= 0);
    s->replay_next = from;
    s->replay_end = from + n - 1;
    s->state = GW_SUB_REPLAY;
    send_status(c, "fetch-start", s->path, (long long)n);
}

/* The replay sent everything: hand over to live through the cursor. */
static int replay_end(struct gw_conn *c, struct gw_sub *s)
{
    struct gw_cursor *cur;
    int64_t next = s->replay_end + 1;

    CH_ASSERT(s->state == GW_SUB_REPLAY && s->replay_next > s->replay_end);
    send_status(c, "fetch-done", s->path, -1);
    if (s->has_max) {
        sub_free(c, s);
        cursors_gc(c);
        return 0;
    }
    if (s->start > next)
        next = s->start; /* startId beyond the end: skip until it */
    s->state = GW_SUB_LIVE;
    c->n_replays--;
    send_status(c, "subscribed-to", s->path, -1);
    cur = cursor_get(c, s->path, s->path_n);
    if (cur == NULL) {
        cur = cursor_create(c, s->path, s->path_n, next);
        if (cur == NULL)
            return CH_ENOMEM;
    } else if (cur->next_seq < next) {
        cur->next_seq = next;
    }
    /* Messages committed during the replay come from the store. */
    cursor_set_behind(c, cur, true);
    return 0;
}

static int pump_replays(struct gw_conn *c, struct store_txn *t,
                        struct ch_buf *scratch)
{
    struct pump_read pr = {c, scratch, 0};

    while (c->n_replays > 0 && gw__conn_has_room(c)) {
        struct gw_sub *s = NULL;
        struct ch_queue *q;
        int rv;

        /* Replays run one after another, in command order. */
        CH_QUEUE_FOREACH (q, &c->subs) {
            s = CH_QUEUE_DATA(q, struct gw_sub, link);
            if (s->state != GW_SUB_LIVE)
                break;
            s = NULL;
        }
        CH_ASSERT(s != NULL); /* n_replays counts them */
        if (s->state == GW_SUB_PENDING)
            replay_begin(c, t, s);
        if (s->replay_next <= s->replay_end) {
            int64_t next = s->replay_next;
            rv = store_read_range(t, s->path, s->path_n, s->replay_next,
                                  s->replay_end - s->replay_next + 1,
                                  CH_REPLAY_SLICE_BYTES, pump_read_cb, &pr,
                                  &next);
            if (rv == CH_EMISSING && pr.rv == 0) {
                /* This node lacks what comes next (catching up): the
                 * replay waits, never skips; gw__sub_restored pumps it
                 * again as the missing messages arrive. */
                CH_ASSERT(next >= s->replay_next);
                s->replay_next = next;
                return 0;
            }
            if (rv != 0 || pr.rv != 0)
                return rv != 0 ? rv : pr.rv;
            if (next == s->replay_next) {
                /* Trimmed or missing: nothing more to send. */
                next = s->replay_end + 1;
            }
            s->replay_next = next;
            if (s->replay_next <= s->replay_end)
                return 0; /* slice used up or no room: wait for a write */
        }
        rv = replay_end(c, s);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int pump_cursors(struct gw_conn *c, struct store_txn *t,
                        struct ch_buf *scratch)
{
    struct pump_read pr = {c, scratch, 0};
    struct ch_map_entry *e;
    size_t b;

    for (e = ch_map_first(&c->cursors, &b);
         e != NULL && c->n_behind > 0 && gw__conn_has_room(c);
         e = ch_map_next(&c->cursors, e, &b)) {
        struct gw_cursor *cur = e->value;
        int64_t next = cur->next_seq;
        int rv;

        if (!cur->behind)
            continue;
        rv = store_read_range(t, cur->path, cur->path_n, cur->next_seq, 0,
                              CH_REPLAY_SLICE_BYTES, pump_read_cb, &pr, &next);
        if (rv == CH_EMISSING && pr.rv == 0) {
            /* Waits behind until the missing messages arrive (as a
             * replay does); the other cursors go on. */
            CH_ASSERT(next >= cur->next_seq);
            cur->next_seq = next;
            continue;
        }
        if (rv != 0 || pr.rv != 0)
            return rv != 0 ? rv : pr.rv;
        cur->next_seq = next;
        if (next > topic_last(t, cur->path, cur->path_n))
            cursor_set_behind(c, cur, false); /* caught up: live again */
        else
            return 0; /* slice used up or no room: wait for a write */
    }
    return 0;
}

void gw__sub_pump(struct gw_conn *c)
{
    struct store_txn *t;
    struct ch_buf scratch;
    int rv;

    if (gw__conn_closing(c) || (c->n_replays == 0 && c->n_behind == 0) ||
        !gw__conn_has_room(c))
        return;
    rv = store_read_begin(c->gw->store, &t);
    if (rv != 0) {
        log_error("gw", "store read failed conn=%llu err=%s",
                  (unsigned long long)c->id, ch_strerror(rv));
        gw__ws_fail(c, "!error-server-internal store read failed", 40);
        return;
    }
    ch_buf_init(&scratch);
    c->is_pumping = true; /* a failed send defers the close: is_failed */
    rv = pump_replays(c, t, &scratch);
    if (rv == 0)
        rv = pump_cursors(c, t, &scratch);
    c->is_pumping = false;
    store_read_end(t);
    ch_buf_free(&scratch);
    if (rv != 0) {
        /* What was sent of the failed slice is not recorded in the
         * cursor: going on would repeat or skip messages. The client
         * resumes from the last sequenceId it got (docs/protocol.md
         * "Answers"). */
        log_error("gw", "replay failed conn=%llu err=%s",
                  (unsigned long long)c->id, ch_strerror(rv));
        gw__ws_fail(c, "!error-server-internal replay failed", 36);
    }
}

/* ---- live delivery from the applied batch ---- */

struct live_msg {
    const struct ch_msg *m;
    struct ch_buf *frame; /* encoded once, on first use */
    bool encoded;
    bool is_text;
};

static void deliver(struct gw_conn *c, struct live_msg *lm)
{
    const struct ch_msg *m = lm->m;
    struct gw_cursor *cur;

    if (gw__conn_closing(c) || c->is_failed)
        return;
    cur = cursor_get(c, m->path.p, m->path.n);
    if (cur == NULL) {
        /* First message of a subtopic on this connection. */
        cur = cursor_create(c, m->path.p, m->path.n, m->seq);
        if (cur == NULL) {
            log_error("gw", "out of memory conn=%llu",
                      (unsigned long long)c->id);
            gw__conn_close(c); /* deferred to the pump: see is_failed */
            return;
        }
    }
    CH_ASSERT(m->seq >= 1 && cur->next_seq >= 1);
    if (m->seq < cur->next_seq)
        return; /* already sent on this connection */
    if (cur->behind || m->seq > cur->next_seq || !gw__conn_has_room(c)) {
        if (!cur->behind)
            c->gw->metrics.slow_reader_switches++;
        cursor_set_behind(c, cur, true);
        gw__sub_schedule_pump(c);
        return;
    }
    if (!lm->encoded) {
        lm->frame->len = 0;
        if (gw__msg_encode(m, lm->frame) != 0) {
            cursor_set_behind(c, cur, true);
            gw__sub_schedule_pump(c);
            return;
        }
        lm->is_text = gw__msg_is_text(m);
        lm->encoded = true;
    }
    send_encoded(c, lm->frame->data, lm->frame->len, lm->is_text);
    cur->next_seq = m->seq + 1;
    gw__sub_schedule_pump(c); /* flushes in the check phase */
}

void gw__sub_applied(void *arg, const struct ch_msg *msgs,
                     const struct store_result *results, size_t n)
{
    struct gw *gw = arg;
    struct ch_buf frame;

    if (gw->index.n_entries == 0)
        return;
    ch_buf_init(&frame);
    CH_ASSERT(!gw->is_delivering);
    gw->is_delivering = true;
    for (size_t i = 0; i < n; i++) {
        const struct ch_msg *m = &msgs[i];
        struct live_msg lm = {m, &frame, false, false};
        size_t k;

        if (results[i].status != 0 || results[i].is_dup)
            continue;
        /* Every prefix of the path, whole segments: /a/b/c, /a/b, /a. */
        k = m->path.n;
        while (k > 0) {
            struct gw_index_entry *ie = ch_map_get(&gw->index, m->path.p, k);
            struct ch_queue *q;

            if (ie != NULL) {
                CH_QUEUE_FOREACH (q, &ie->subs) {
                    struct gw_sub *s =
                        CH_QUEUE_DATA(q, struct gw_sub, idx_link);
                    if (s->state == GW_SUB_LIVE)
                        deliver(s->conn, &lm);
                }
            }
            do {
                k--;
            } while (k > 0 && m->path.p[k] != '/');
        }
    }
    gw->is_delivering = false;
    ch_buf_free(&frame);
}

void gw__sub_restored(void *arg)
{
    struct gw *gw = arg;

    /* The store jumped ahead (snapshot from the leader), or messages it
     * lacked arrived (catch-up): every cursor re-reads from the store and
     * every waiting replay goes on; the pump finds out what is new. A subtopic
     * that first appeared within the snapshot has no cursor and is not
     * looked for: the old heads are gone, so where to start it is unknown
     * (docs/protocol.md "Delivery guarantees", known exception). */
    struct ch_queue *q;

    CH_QUEUE_FOREACH (q, &gw->conns) {
        struct gw_conn *c = CH_QUEUE_DATA(q, struct gw_conn, link);
        struct ch_map_entry *e;
        size_t b;
        if (!c->is_ws || gw__conn_closing(c))
            continue;
        for (e = ch_map_first(&c->cursors, &b); e != NULL;
             e = ch_map_next(&c->cursors, e, &b))
            cursor_set_behind(c, e->value, true);
        gw__sub_schedule_pump(c);
    }
}
