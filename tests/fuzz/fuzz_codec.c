/* libFuzzer target: the msgpack decoders of untrusted bytes:
 *  - ch_cmd_decode (raft entries), with a re-encode round trip for publish
 *    batches (ch_batch_enc_*) and member changes (ch_members_encode);
 *  - ch_record_decode (stored records), with a ch_record_encode round trip;
 *  - link_decode (node-to-node link frames), with a link_enc_*
 *    round trip of every request and response.
 * Every input goes through all three decoders. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/link_int.h"
#include "common/codec.h"
#include "common/err.h"
#include "fuzz_util.h"

static bool bytes_eq(struct ch_bytes a, struct ch_bytes b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static const char *in_lo, *in_hi;

static void check_field(struct ch_bytes b)
{
    if (b.n == 0)
        return;
    FUZZ_CHECK(b.p >= in_lo && b.p + b.n <= in_hi);
    fuzz_touch(b.p, b.n);
}

static void check_msg_fields(const struct ch_msg *m)
{
    check_field(m->path);
    check_field(m->user);
    check_field(m->app);
    check_field(m->msgid);
    check_field(m->header);
    check_field(m->body);
}

static bool msg_eq(const struct ch_msg *a, const struct ch_msg *b)
{
    return bytes_eq(a->path, b->path) && bytes_eq(a->user, b->user) &&
           bytes_eq(a->app, b->app) && bytes_eq(a->msgid, b->msgid) &&
           bytes_eq(a->header, b->header) && bytes_eq(a->body, b->body);
}

/* ---- raft commands ---- */

static void roundtrip_publish(const struct ch_cmd *cmd)
{
    struct ch_batch_enc e;
    struct ch_cmd again;
    void *out = NULL;
    size_t out_n = 0;

    ch_batch_enc_init(&e);
    for (uint32_t i = 0; i < cmd->n_msgs; i++)
        FUZZ_CHECK(ch_batch_enc_add(&e, &cmd->msgs[i]) == 0);
    FUZZ_CHECK(ch_batch_enc_finish(&e, cmd->time, cmd->dedup_window_s, malloc,
                                   &out, &out_n) == 0);
    FUZZ_CHECK(out_n % 8 == 0 && out_n == ch_batch_enc_size(&e));
    FUZZ_CHECK(ch_cmd_decode(out, out_n, &again) == 0);
    FUZZ_CHECK(again.type == CH_CMD_PUBLISH && again.n_msgs == cmd->n_msgs &&
               again.time == cmd->time &&
               again.dedup_window_s == cmd->dedup_window_s);
    for (uint32_t i = 0; i < cmd->n_msgs; i++) {
        FUZZ_CHECK(msg_eq(&again.msgs[i], &cmd->msgs[i]));
        FUZZ_CHECK(again.msgs[i].time == cmd->time);
    }
    ch_cmd_free(&again);
    free(out);
    ch_batch_enc_close(&e);
}

static void roundtrip_members(const struct ch_cmd *cmd)
{
    struct ch_cmd again;
    void *out = NULL;
    size_t out_n = 0;
    int rv;

    rv = ch_members_encode(cmd->members, cmd->n_members, cmd->time, malloc,
                           &out, &out_n);
    /* The encoder may refuse what the decoder accepted (address too long),
     * never the other way round. */
    FUZZ_CHECK(rv == 0 || rv == CH_EINVAL);
    if (rv != 0)
        return;
    FUZZ_CHECK(out_n % 8 == 0);
    FUZZ_CHECK(ch_cmd_decode(out, out_n, &again) == 0);
    FUZZ_CHECK(again.type == CH_CMD_MEMBERS &&
               again.n_members == cmd->n_members && again.time == cmd->time);
    for (uint32_t i = 0; i < cmd->n_members; i++) {
        const struct ch_member_change *a = &again.members[i];
        const struct ch_member_change *b = &cmd->members[i];
        FUZZ_CHECK(a->op == b->op && a->id == b->id);
        if (a->op == CH_MEMBER_SET)
            FUZZ_CHECK(bytes_eq(a->raft, b->raft) &&
                       bytes_eq(a->http, b->http) && a->role == b->role);
    }
    ch_cmd_free(&again);
    free(out);
}

static void fuzz_cmd(const uint8_t *data, size_t size)
{
    struct ch_cmd cmd;
    int rv = ch_cmd_decode(data, size, &cmd);

    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    if (rv != 0) {
        FUZZ_CHECK(cmd.msgs == NULL && cmd.members == NULL);
        return;
    }
    FUZZ_CHECK(size % 8 == 0);
    if (cmd.type == CH_CMD_PUBLISH) {
        FUZZ_CHECK(cmd.n_members == 0);
        for (uint32_t i = 0; i < cmd.n_msgs; i++) {
            check_msg_fields(&cmd.msgs[i]);
            FUZZ_CHECK(cmd.msgs[i].time == cmd.time);
        }
        roundtrip_publish(&cmd);
    } else {
        FUZZ_CHECK(cmd.type == CH_CMD_MEMBERS && cmd.n_msgs == 0);
        for (uint32_t i = 0; i < cmd.n_members; i++) {
            const struct ch_member_change *mc = &cmd.members[i];
            FUZZ_CHECK(mc->op == CH_MEMBER_SET || mc->op == CH_MEMBER_DEL);
            check_field(mc->raft);
            check_field(mc->http);
        }
        roundtrip_members(&cmd);
    }
    ch_cmd_free(&cmd);
    FUZZ_CHECK(cmd.msgs == NULL && cmd.members == NULL);
}

/* ---- stored records ---- */

static void fuzz_record(const uint8_t *data, size_t size)
{
    struct ch_msg m, again;
    struct ch_buf b;
    int rv;

    memset(&m, 0, sizeof m);
    m.path.p = "/keep";
    m.path.n = 5;
    m.seq = 42;
    rv = ch_record_decode(data, size, &m);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    /* Path and seq come from the key: never touched. */
    FUZZ_CHECK(m.seq == 42 && m.path.n == 5);
    if (rv != 0)
        return;
    FUZZ_CHECK(m.path.p[0] == '/'); /* still ours */
    check_field(m.user);
    check_field(m.app);
    check_field(m.msgid);
    check_field(m.header);
    check_field(m.body);
    ch_buf_init(&b);
    FUZZ_CHECK(ch_record_encode(&m, &b) == 0);
    memset(&again, 0, sizeof again);
    FUZZ_CHECK(ch_record_decode(b.data, b.len, &again) == 0);
    FUZZ_CHECK(bytes_eq(again.user, m.user) && bytes_eq(again.app, m.app) &&
               bytes_eq(again.msgid, m.msgid) &&
               bytes_eq(again.header, m.header) &&
               bytes_eq(again.body, m.body) && again.time == m.time);
    ch_buf_free(&b);
}

/* ---- link frames ---- */

struct link_seen {
    struct link_enc reqs;
    struct link_enc resps;
    struct link_req *req; /* copies, fields into the input */
    struct link_resp *resp;
    size_t n_req, n_resp, cap_req, cap_resp;
    size_t check_i; /* second pass: next item to compare */
};

static void on_link_req(void *arg, const struct link_req *r)
{
    struct link_seen *s = arg;

    FUZZ_CHECK(r->op >= LINK_PUBLISH && r->op <= LINK_NUDGE);
    FUZZ_CHECK(r->op != LINK_FETCH || (r->from >= 1 && r->to >= r->from));
    check_msg_fields(&r->msg);
    check_field(r->raft);
    check_field(r->http);
    FUZZ_CHECK(r->op != LINK_JOIN || (r->role >= 0 && r->role <= 2));
    FUZZ_CHECK(link_enc_req(&s->reqs, r) == 0);
    if (s->n_req == s->cap_req) {
        s->cap_req = s->cap_req ? 2 * s->cap_req : 8;
        s->req = realloc(s->req, s->cap_req * sizeof *s->req);
        FUZZ_CHECK(s->req != NULL);
    }
    s->req[s->n_req++] = *r;
}

static void on_link_resp(void *arg, const struct link_resp *r)
{
    struct link_seen *s = arg;

    FUZZ_CHECK(r->status <= 0);
    check_field(r->text);
    check_field(r->msgs);
    FUZZ_CHECK(r->n_msgs <= CH_MAX_CATCHUP_MSGS);
    {
        size_t off = 0;
        struct ch_msg m;
        for (uint32_t i = 0; i < r->n_msgs; i++) {
            FUZZ_CHECK(link_fetched_next(r, &off, &m) == 0);
            check_msg_fields(&m);
        }
        FUZZ_CHECK(off == r->msgs.n); /* the decoder checked it all */
    }
    FUZZ_CHECK(link_enc_resp(&s->resps, r) == 0);
    if (s->n_resp == s->cap_resp) {
        s->cap_resp = s->cap_resp ? 2 * s->cap_resp : 8;
        s->resp = realloc(s->resp, s->cap_resp * sizeof *s->resp);
        FUZZ_CHECK(s->resp != NULL);
    }
    s->resp[s->n_resp++] = *r;
}

static void again_req_cb(void *arg, const struct link_req *r)
{
    struct link_seen *s = arg;
    const struct link_req *o;

    FUZZ_CHECK(s->check_i < s->n_req);
    o = &s->req[s->check_i++];
    FUZZ_CHECK(r->req_id == o->req_id && r->op == o->op);
    switch (r->op) {
    case LINK_PUBLISH:
        FUZZ_CHECK(msg_eq(&r->msg, &o->msg));
        break;
    case LINK_JOIN:
        FUZZ_CHECK(r->id == o->id && bytes_eq(r->raft, o->raft) &&
                   bytes_eq(r->http, o->http) && r->role == o->role);
        break;
    case LINK_FETCH:
        FUZZ_CHECK(bytes_eq(r->msg.path, o->msg.path) && r->from == o->from &&
                   r->to == o->to);
        break;
    default:
        FUZZ_CHECK(r->id == o->id);
    }
}

static void again_resp_cb(void *arg, const struct link_resp *r)
{
    struct link_seen *s = arg;
    const struct link_resp *o;

    FUZZ_CHECK(s->check_i < s->n_resp);
    o = &s->resp[s->check_i++];
    FUZZ_CHECK(r->req_id == o->req_id && r->status == o->status &&
               r->seq == o->seq && r->time == o->time && r->index == o->index &&
               r->is_dup == o->is_dup && bytes_eq(r->text, o->text) &&
               r->n_msgs == o->n_msgs && bytes_eq(r->msgs, o->msgs));
}

static void fuzz_link(const uint8_t *data, size_t size)
{
    struct link_seen s;
    struct ch_buf frame;
    int rv;

    memset(&s, 0, sizeof s);
    link_enc_init(&s.reqs, LINK_REQUESTS);
    link_enc_init(&s.resps, LINK_RESPONSES);
    rv = link_decode(data, size, on_link_req, on_link_resp, &s);
    FUZZ_CHECK(rv == 0 || rv == CH_ECORRUPT);
    /* Validated before any callback: nothing delivered on failure. */
    if (rv != 0)
        FUZZ_CHECK(s.n_req == 0 && s.n_resp == 0);
    /* A frame holds one kind only. */
    FUZZ_CHECK(s.n_req == 0 || s.n_resp == 0);
    /* Refusing a kind refuses the frame. */
    if (rv == 0 && s.n_req > 0)
        FUZZ_CHECK(link_decode(data, size, NULL, on_link_resp, &s) ==
                   CH_ECORRUPT);
    if (rv == 0) {
        bool is_req = s.n_req > 0 ||
                      (s.n_resp == 0 && size > 0 && data[0] == LINK_REQUESTS);
        ch_buf_init(&frame);
        FUZZ_CHECK(link_enc_finish(is_req ? &s.reqs : &s.resps, &frame) == 0);
        s.check_i = 0;
        FUZZ_CHECK(link_decode(frame.data, frame.len, again_req_cb,
                               again_resp_cb, &s) == 0);
        FUZZ_CHECK(s.check_i == s.n_req + s.n_resp);
        ch_buf_free(&frame);
    }
    free(s.req);
    free(s.resp);
    link_enc_close(&s.reqs);
    link_enc_close(&s.resps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_lo = (const char *)data;
    in_hi = in_lo + size;
    fuzz_cmd(data, size);
    fuzz_record(data, size);
    fuzz_link(data, size);
    return 0;
}
