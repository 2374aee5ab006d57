/* The client protocol (docs/protocol.md): command parsing, publishes answered
 * in publish order, and the wire form of messages. */
#include "common/alloc.h"
#include "common/log.h"
#include "common/validate.h"
#include "gateway/gw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- parsing (pure) ---- */

/* Next space-separated token of [*p, end). */
static bool next_token(const char **p, const char *end, struct ch_bytes *tok)
{
    const char *s = *p;

    while (s < end && *s == ' ')
        s++;
    if (s == end) {
        *p = s;
        return false;
    }
    tok->p = s;
    while (s < end && *s != ' ')
        s++;
    tok->n = (size_t)(s - tok->p);
    *p = s;
    return true;
}

static bool parse_num(struct ch_bytes t, long long *out)
{
    return ch_parse_i64(t.p, t.n, out);
}

int gw_proto_parse(const char *frame, size_t len, size_t max_body,
                   struct gw_cmd *cmd, const char **why)
{
    const char *nl, *line_end, *p;
    struct ch_bytes tok;

    memset(cmd, 0, sizeof *cmd);
    if (len == 0 || frame == NULL) {
        *why = "empty command";
        return GW_PARSE_BAD_REQUEST;
    }
    nl = memchr(frame, '\n', len);
    line_end = nl ? nl : frame + len;
    p = frame + 1;
    if (line_end > frame && line_end[-1] == '\r')
        line_end--;
    if (len >= 2 && frame[1] != ' ' && frame[1] != '\n') {
        *why = "unknown command";
        return GW_PARSE_BAD_REQUEST;
    }
    switch (frame[0]) {
    case '>': {
        const char *hdr, *hdr_end, *nl2;
        cmd->type = GW_CMD_PUBLISH;
        if (!next_token(&p, line_end, &cmd->path)) {
            *why = "missing topic path";
            return GW_PARSE_BAD_REQUEST;
        }
        if (next_token(&p, line_end, &tok)) {
            if (!ch_valid_id(tok.p, tok.n)) {
                *why = "bad publisher message id";
                return GW_PARSE_BAD_REQUEST;
            }
            cmd->msgid = tok;
        }
        if (next_token(&p, line_end, &tok)) {
            *why = "too many arguments";
            return GW_PARSE_BAD_REQUEST;
        }
        if (nl != NULL) {
            hdr = nl + 1;
            nl2 = memchr(hdr, '\n', (size_t)(frame + len - hdr));
            hdr_end = nl2 ? nl2 : frame + len;
            cmd->body.p = nl2 ? nl2 + 1 : frame + len;
            cmd->body.n = (size_t)(frame + len - cmd->body.p);
            if (hdr_end > hdr && hdr_end[-1] == '\r')
                hdr_end--;
            cmd->header.p = hdr;
            cmd->header.n = (size_t)(hdr_end - hdr);
        } else {
            cmd->header.p = frame + len;
            cmd->body.p = frame + len;
        }
        if (!ch_valid_topic(cmd->path.p, cmd->path.n)) {
            *why = "bad topic path";
            return GW_PARSE_BAD_SEND;
        }
        if (cmd->body.n > max_body) {
            *why = "message too large";
            return GW_PARSE_BAD_SEND;
        }
        if (cmd->header.n > 0) {
            bool is_nomem;
            json_t *j;
            if (cmd->header.n > CH_MAX_HEADER_BYTES) {
                *why = "header too large";
                return GW_PARSE_BAD_REQUEST;
            }
            j = gw__json_load(cmd->header.p, cmd->header.n, &is_nomem);
            if (j == NULL && is_nomem) {
                *why = "out of memory: not committed";
                return GW_PARSE_BAD_SEND;
            }
            if (j == NULL || !json_is_object(j)) {
                json_decref(j);
                *why = "bad header JSON: want an object";
                return GW_PARSE_BAD_REQUEST;
            }
            json_decref(j);
        }
        return 0;
    }
    case '+':
    case '-':
        cmd->type = frame[0] == '+' ? GW_CMD_SUBSCRIBE : GW_CMD_CANCEL;
        if (nl != NULL && (size_t)(nl - frame) + 1 < len) {
            *why = "unexpected data after the command line";
            return GW_PARSE_BAD_REQUEST;
        }
        if (!next_token(&p, line_end, &cmd->path)) {
            *why = "missing topic path";
            return GW_PARSE_BAD_REQUEST;
        }
        if (!ch_valid_topic(cmd->path.p, cmd->path.n)) {
            *why = "bad topic path";
            return GW_PARSE_BAD_REQUEST;
        }
        if (cmd->type == GW_CMD_CANCEL) {
            if (next_token(&p, line_end, &tok)) {
                *why = "too many arguments";
                return GW_PARSE_BAD_REQUEST;
            }
            return 0;
        }
        if (next_token(&p, line_end, &tok)) {
            const char *comma = memchr(tok.p, ',', tok.n);
            struct ch_bytes start = tok, max = {NULL, 0};
            bool has_max = false;
            if (comma != NULL) {
                start.n = (size_t)(comma - tok.p);
                max.p = comma + 1;
                max.n = (size_t)(tok.p + tok.n - max.p);
                has_max = true;
            } else if (next_token(&p, line_end, &max)) {
                has_max = true;
            }
            if (!parse_num(start, &cmd->start)) {
                *why = "bad start id";
                return GW_PARSE_BAD_REQUEST;
            }
            cmd->has_start = true;
            if (has_max) {
                if (!parse_num(max, &cmd->max) || cmd->max < 0) {
                    *why = "bad max count";
                    return GW_PARSE_BAD_REQUEST;
                }
                cmd->has_max = true;
            }
            if (next_token(&p, line_end, &tok)) {
                *why = "too many arguments";
                return GW_PARSE_BAD_REQUEST;
            }
        }
        return 0;
    default:
        *why = "unknown command";
        return GW_PARSE_BAD_REQUEST;
    }
}

/* ---- messages ---- */

bool gw__msg_is_text(const struct ch_msg *m)
{
    return ch_valid_utf8(m->header.p, m->header.n) &&
           ch_valid_utf8(m->body.p, m->body.n);
}

int gw__msg_encode(const struct ch_msg *m, struct ch_buf *out)
{
    int rv = ch_buf_reserve(out, m->path.n + m->user.n + m->app.n + m->msgid.n +
                                     m->header.n + m->body.n + 64);
    if (rv != 0)
        return rv;
    rv = ch_buf_append(out, m->path.p, m->path.n);
    if (rv == 0)
        rv = ch_buf_append(out, ",", 1);
    if (rv == 0)
        rv = ch_buf_append_i64(out, (long long)m->seq);
    if (rv == 0)
        rv = ch_buf_append(out, ",", 1);
    if (rv == 0)
        rv = ch_buf_append(out, m->user.p, m->user.n);
    if (rv == 0)
        rv = ch_buf_append(out, ",", 1);
    if (rv == 0)
        rv = ch_buf_append(out, m->app.p, m->app.n);
    if (rv == 0)
        rv = ch_buf_append(out, ",", 1);
    if (rv == 0)
        rv = ch_buf_append(out, m->msgid.p, m->msgid.n);
    if (rv == 0)
        rv = ch_buf_append(out, ",", 1);
    if (rv == 0)
        rv = ch_buf_append_i64(out, (long long)m->time);
    if (rv == 0)
        rv = ch_buf_append(out, "\n", 1);
    if (rv == 0)
        rv = ch_buf_append(out, m->header.p, m->header.n);
    if (rv == 0)
        rv = ch_buf_append(out, "\n", 1);
    if (rv == 0)
        rv = ch_buf_append(out, m->body.p, m->body.n);
    return rv;
}

/* ---- publishes, answered in order ---- */

static void send_answers(struct gw_conn *c)
{
    struct ch_queue *e;

    while ((e = ch_queue_head(&c->pubs)) != NULL) {
        struct gw_pub *p = CH_QUEUE_DATA(e, struct gw_pub, link);
        if (!p->done)
            break; /* answers leave in publish order */
        ch_queue_remove(e);
        if (!gw__conn_closing(c))
            gw__ws_send_text(c, p->answer.data, p->answer.len);
        ch_buf_free(&p->answer);
        ch_free(p);
        CH_ASSERT(c->n_unanswered > 0);
        c->n_unanswered--;
    }
    if (!gw__conn_closing(c)) {
        gw__conn_flush(c);
        gw__conn_update_reading(c);
    }
}

static const char *error_text(int status)
{
    switch (status) {
    case CH_ETIMEDOUT:
        return "publish timeout: outcome unknown";
    case CH_EUNKNOWN:
        return "leadership lost: outcome unknown";
    case CH_ENOTLEADER:
        return "no leader: not committed";
    case CH_ESHUTDOWN:
        return "node shutting down: not committed";
    case CH_EFULL:
        return "too many pending publishes: not committed";
    case CH_EINVAL:
        return "invalid message: not committed";
    case CH_ENOMEM:
        return "out of memory: not committed";
    default:
        return "store or raft failure: not committed";
    }
}

static int append_str(struct ch_buf *b, const char *s)
{
    return ch_buf_append(b, s, strlen(s));
}

/* Builds the answer frame; no printf (one per publish, docs/protocol.md
 * "Answers"). */
static void pub_answer(struct gw_pub *p, int status,
                       const struct store_result *res, const char *why)
{
    CH_ASSERT(!p->done && p->answer.len == 0); /* answered once */
    struct ch_buf *b = &p->answer;
    long long seq = 0, t = 0;
    int rv;

    if (status == 0 && res != NULL) {
        seq = res->seq;
        t = res->time;
    }
    if (status == 0) {
        rv = append_str(b, p->msgid[0] ? "#send " : "#send");
        rv |= append_str(b, p->msgid);
    } else {
        rv = append_str(b, "!error-send ");
        rv |= append_str(b, p->msgid);
        rv |= append_str(b, " ");
        rv |= append_str(b, why ? why : error_text(status));
    }
    rv |= append_str(b, "\n{\"sequenceId\":");
    rv |= ch_buf_append_i64(b, seq);
    rv |= append_str(b, ",\"path\":\"");
    rv |= append_str(b, p->path);
    rv |= append_str(b, "\",\"publisherMessageId\":\"");
    rv |= append_str(b, p->msgid);
    rv |= append_str(b, "\",\"messagePublishingTime\":");
    rv |= ch_buf_append_i64(b, t);
    rv |= append_str(b, "}");
    if (rv != 0)
        b->len = 0;
    p->done = true;
}

static struct gw_pub *pub_push(struct gw_conn *c, const struct gw_cmd *cmd)
{
    struct gw_pub *p = ch_calloc(1, sizeof *p);
    size_t n;

    if (p == NULL)
        return NULL;
    ch_buf_init(&p->answer);
    p->conn = c;
    n = cmd->msgid.n <= CH_MAX_ID_BYTES ? cmd->msgid.n : CH_MAX_ID_BYTES;
    if (n > 0)
        memcpy(p->msgid, cmd->msgid.p, n);
    p->msgid[n] = '\0';
    /* The path is echoed in the JSON answer: only a valid one. */
    if (ch_valid_topic(cmd->path.p, cmd->path.n)) {
        memcpy(p->path, cmd->path.p, cmd->path.n);
        p->path[cmd->path.n] = '\0';
    }
    ch_queue_insert_tail(&c->pubs, &p->link);
    c->n_unanswered++;
    return p;
}

static void publish_cb(void *arg, int status, const struct store_result *res)
{
    struct gw_pub *p = arg;
    struct gw_conn *c = p->conn;

    CH_ASSERT(c->refs > 0 && ch_queue_linked(&p->link));
    CH_ASSERT(status != 0 || res != NULL);
    if (status == 0 && res != NULL && res->status != 0)
        status = res->status;
    if (status != 0)
        c->gw->metrics.publish_errors++;
    pub_answer(p, status, res, NULL);
    send_answers(c);
    gw__conn_unref(c);
}

static void handle_publish(struct gw_conn *c, const struct gw_cmd *cmd,
                           int parse_rv, const char *why)
{
    struct gw_pub *p = pub_push(c, cmd);
    struct ch_msg m;
    int rv;

    if (p == NULL) {
        gw__conn_close(c);
        return;
    }
    c->gw->metrics.publishes++;
    if (parse_rv != 0) {
        c->gw->metrics.publish_errors++;
        if (parse_rv == GW_PARSE_BAD_SEND) {
            pub_answer(p, CH_EINVAL, NULL, why);
        } else {
            p->done = true;
            if (ch_buf_printf(&p->answer, "!error-bad-request %s", why) != 0)
                p->answer.len = 0;
        }
        send_answers(c);
        return;
    }
    memset(&m, 0, sizeof m);
    m.path = cmd->path;
    m.user.p = c->user;
    m.user.n = strlen(c->user);
    m.app.p = c->app;
    m.app.n = strlen(c->app);
    m.msgid = cmd->msgid;
    m.header = cmd->header;
    m.body = cmd->body;
    rv = cluster_publish(c->gw->cluster, &m, publish_cb, p);
    if (rv != 0) {
        c->gw->metrics.publish_errors++;
        pub_answer(p, rv, NULL, NULL);
        send_answers(c);
        return;
    }
    c->refs++; /* until publish_cb */
}

void gw__proto_handle(struct gw_conn *c, const char *frame, size_t len)
{
    struct gw_cmd cmd;
    const char *why = NULL;
    char text[128];
    int rv, n;

    c->gw->metrics.commands++;
    rv = gw_proto_parse(frame, len, c->gw->cfg.max_message_bytes, &cmd, &why);
    if (len > 0 && frame[0] == '>' &&
        (len == 1 || frame[1] == ' ' || frame[1] == '\n')) {
        handle_publish(c, &cmd, rv, why);
        return;
    }
    if (rv != 0) {
        n = snprintf(text, sizeof text, "!error-bad-request %s", why);
        gw__ws_send_text(c, text, (size_t)n);
        return;
    }
    if (cmd.type == GW_CMD_SUBSCRIBE) {
        rv = gw__sub_add(c, &cmd);
        if (rv == CH_EFULL) {
            n = snprintf(text, sizeof text,
                         "!error-bad-request too many subscriptions (limit "
                         "%d)",
                         CH_MAX_SUBS_PER_CONN);
            gw__ws_send_text(c, text, (size_t)n);
        } else if (rv != 0) {
            n = snprintf(text, sizeof text, "!error-server-internal %s",
                         ch_strerror(rv));
            gw__ws_send_text(c, text, (size_t)n);
        }
        return;
    }
    gw__sub_cancel(c, cmd.path.p, cmd.path.n);
    n = snprintf(text, sizeof text, "#canceled %.*s", (int)cmd.path.n,
                 cmd.path.p);
    gw__ws_send_text(c, text, (size_t)n);
}

void gw__proto_conn_closed(struct gw_conn *c)
{
    /* Answered publishes are dropped; pending ones free themselves in
     * publish_cb (the connection stays allocated until then). */
    send_answers(c);
}
