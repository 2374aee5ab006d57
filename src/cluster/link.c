/* Node-to-node link codec. */
#include "cluster/link_int.h"
#include "common/err.h"

#include <string.h>

void link_enc_init(struct link_enc *e, enum link_kind kind)
{
    ch_buf_init(&e->items);
    ch_mp_packer_init_buf(&e->pk, &e->items);
    e->kind = kind;
    e->n = 0;
}

void link_enc_close(struct link_enc *e)
{
    ch_buf_free(&e->items);
}

void link_enc_reset(struct link_enc *e)
{
    e->items.len = 0;
    e->n = 0;
}

int link_enc_raw(struct link_enc *e, const void *item, size_t n)
{
    int rv = ch_buf_append(&e->items, item, n);
    if (rv == 0)
        e->n++;
    return rv;
}

size_t link_enc_size(const struct link_enc *e)
{
    return e->items.len;
}

static int pack_bytes(msgpack_packer *pk, struct ch_bytes b)
{
    return ch_mp_pack_bytes(pk, b.p, b.n);
}

int link_enc_req(struct link_enc *e, const struct link_req *r)
{
    msgpack_packer *pk = &e->pk;
    size_t mark = e->items.len;
    int rv = 0;

    switch (r->op) {
    case LINK_PUBLISH:
        rv |= msgpack_pack_array(pk, 8);
        rv |= msgpack_pack_uint64(pk, r->req_id);
        rv |= msgpack_pack_uint32(pk, (uint32_t)r->op);
        rv |= pack_bytes(pk, r->msg.path);
        rv |= pack_bytes(pk, r->msg.user);
        rv |= pack_bytes(pk, r->msg.app);
        rv |= pack_bytes(pk, r->msg.msgid);
        rv |= pack_bytes(pk, r->msg.header);
        rv |= pack_bytes(pk, r->msg.body);
        break;
    case LINK_JOIN:
        rv |= msgpack_pack_array(pk, 6);
        rv |= msgpack_pack_uint64(pk, r->req_id);
        rv |= msgpack_pack_uint32(pk, (uint32_t)r->op);
        rv |= msgpack_pack_uint64(pk, r->id);
        rv |= pack_bytes(pk, r->raft);
        rv |= pack_bytes(pk, r->http);
        rv |= msgpack_pack_uint32(pk, (uint32_t)r->role);
        break;
    case LINK_FETCH:
        rv |= msgpack_pack_array(pk, 5);
        rv |= msgpack_pack_uint64(pk, r->req_id);
        rv |= msgpack_pack_uint32(pk, (uint32_t)r->op);
        rv |= pack_bytes(pk, r->msg.path);
        rv |= msgpack_pack_int64(pk, r->from);
        rv |= msgpack_pack_int64(pk, r->to);
        break;
    case LINK_LEAVE:
    case LINK_TRANSFER:
    case LINK_REMOVED:
    case LINK_STATUS:
    case LINK_NUDGE:
        rv |= msgpack_pack_array(pk, 3);
        rv |= msgpack_pack_uint64(pk, r->req_id);
        rv |= msgpack_pack_uint32(pk, (uint32_t)r->op);
        rv |= msgpack_pack_uint64(pk, r->id);
        break;
    default:
        return CH_EINVAL;
    }
    if (rv != 0) {
        e->items.len = mark;
        return CH_ENOMEM;
    }
    e->n++;
    return 0;
}

int link_enc_resp(struct link_enc *e, const struct link_resp *r)
{
    msgpack_packer *pk = &e->pk;
    size_t mark = e->items.len;
    int rv = 0;

    rv |= msgpack_pack_array(pk, r->msgs.n > 0 || r->n_msgs > 0 ? 9 : 7);
    rv |= msgpack_pack_uint64(pk, r->req_id);
    rv |= msgpack_pack_int64(pk, r->status);
    rv |= msgpack_pack_int64(pk, r->seq);
    rv |= msgpack_pack_int64(pk, r->time);
    rv |= msgpack_pack_uint64(pk, r->index);
    rv |= msgpack_pack_uint32(pk, r->is_dup ? 1u : 0u);
    rv |= pack_bytes(pk, r->text);
    if (r->msgs.n > 0 || r->n_msgs > 0) {
        rv |= msgpack_pack_uint32(pk, r->n_msgs);
        rv |= pack_bytes(pk, r->msgs);
    }
    if (rv != 0) {
        e->items.len = mark;
        return CH_ENOMEM;
    }
    e->n++;
    return 0;
}

int link_fetched_pack(struct ch_buf *out, const struct ch_msg *m)
{
    msgpack_packer pk;
    size_t mark = out->len;
    int rv = 0;

    ch_mp_packer_init_buf(&pk, out);
    rv |= msgpack_pack_array(&pk, 7);
    rv |= msgpack_pack_int64(&pk, m->seq);
    rv |= msgpack_pack_int64(&pk, m->time);
    rv |= pack_bytes(&pk, m->user);
    rv |= pack_bytes(&pk, m->app);
    rv |= pack_bytes(&pk, m->msgid);
    rv |= pack_bytes(&pk, m->header);
    rv |= pack_bytes(&pk, m->body);
    if (rv != 0) {
        out->len = mark;
        return CH_ENOMEM;
    }
    return 0;
}

int link_fetched_next(const struct link_resp *r, size_t *off, struct ch_msg *m)
{
    uint32_t n;

    memset(m, 0, sizeof *m);
    if (ch_mp_read_array(r->msgs.p, r->msgs.n, off, &n) != 0 || n != 7 ||
        ch_mp_read_int(r->msgs.p, r->msgs.n, off, &m->seq) != 0 ||
        ch_mp_read_int(r->msgs.p, r->msgs.n, off, &m->time) != 0 ||
        ch_mp_read_bytes(r->msgs.p, r->msgs.n, off, &m->user) != 0 ||
        ch_mp_read_bytes(r->msgs.p, r->msgs.n, off, &m->app) != 0 ||
        ch_mp_read_bytes(r->msgs.p, r->msgs.n, off, &m->msgid) != 0 ||
        ch_mp_read_bytes(r->msgs.p, r->msgs.n, off, &m->header) != 0 ||
        ch_mp_read_bytes(r->msgs.p, r->msgs.n, off, &m->body) != 0)
        return CH_ECORRUPT;
    return 0;
}

int link_enc_finish(const struct link_enc *e, struct ch_buf *out)
{
    msgpack_packer pk;
    int rv = 0;

    ch_mp_packer_init_buf(&pk, out);
    rv |= msgpack_pack_uint32(&pk, (uint32_t)e->kind);
    rv |= msgpack_pack_uint32(&pk, e->n);
    if (rv != 0)
        return CH_ENOMEM;
    return ch_buf_append(out, e->items.data, e->items.len);
}

static int read_req(const char *p, size_t len, size_t *off, struct link_req *r)
{
    uint32_t n;
    uint64_t u;

    memset(r, 0, sizeof *r);
    if (ch_mp_read_array(p, len, off, &n) != 0 || n < 3 ||
        ch_mp_read_uint(p, len, off, &r->req_id) != 0 ||
        ch_mp_read_uint(p, len, off, &u) != 0)
        return CH_ECORRUPT;
    r->op = (enum link_op)u;
    switch (u) {
    case LINK_PUBLISH:
        if (n != 8 || ch_mp_read_bytes(p, len, off, &r->msg.path) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->msg.user) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->msg.app) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->msg.msgid) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->msg.header) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->msg.body) != 0)
            return CH_ECORRUPT;
        return 0;
    case LINK_JOIN:
        if (n != 6 || ch_mp_read_uint(p, len, off, &r->id) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->raft) != 0 ||
            ch_mp_read_bytes(p, len, off, &r->http) != 0 ||
            ch_mp_read_uint(p, len, off, &u) != 0 || u > 2)
            return CH_ECORRUPT;
        r->role = (int)u;
        return 0;
    case LINK_FETCH:
        if (n != 5 || ch_mp_read_bytes(p, len, off, &r->msg.path) != 0 ||
            ch_mp_read_int(p, len, off, &r->from) != 0 ||
            ch_mp_read_int(p, len, off, &r->to) != 0 || r->from < 1 ||
            r->to < r->from)
            return CH_ECORRUPT;
        return 0;
    case LINK_LEAVE:
    case LINK_TRANSFER:
    case LINK_REMOVED:
    case LINK_STATUS:
    case LINK_NUDGE:
        if (n != 3 || ch_mp_read_uint(p, len, off, &r->id) != 0)
            return CH_ECORRUPT;
        return 0;
    default:
        return CH_ECORRUPT;
    }
}

static int read_resp(const char *p, size_t len, size_t *off,
                     struct link_resp *r)
{
    uint32_t n;
    int64_t status;
    uint64_t dup;

    memset(r, 0, sizeof *r);
    if (ch_mp_read_array(p, len, off, &n) != 0 || (n != 7 && n != 9) ||
        ch_mp_read_uint(p, len, off, &r->req_id) != 0 ||
        ch_mp_read_int(p, len, off, &status) != 0 ||
        ch_mp_read_int(p, len, off, &r->seq) != 0 ||
        ch_mp_read_int(p, len, off, &r->time) != 0 ||
        ch_mp_read_uint(p, len, off, &r->index) != 0 ||
        ch_mp_read_uint(p, len, off, &dup) != 0 || dup > 1 ||
        ch_mp_read_bytes(p, len, off, &r->text) != 0)
        return CH_ECORRUPT;
    if (status > 0 || status < -1000)
        return CH_ECORRUPT;
    r->status = (int)status;
    r->is_dup = dup == 1;
    if (n == 9) {
        uint64_t n_msgs;
        size_t moff = 0;
        struct ch_msg m;

        if (ch_mp_read_uint(p, len, off, &n_msgs) != 0 ||
            n_msgs > CH_MAX_CATCHUP_MSGS ||
            ch_mp_read_bytes(p, len, off, &r->msgs) != 0)
            return CH_ECORRUPT;
        r->n_msgs = (uint32_t)n_msgs;
        /* Every message well formed and the blob exactly used. */
        for (uint32_t i = 0; i < r->n_msgs; i++) {
            if (link_fetched_next(r, &moff, &m) != 0)
                return CH_ECORRUPT;
        }
        if (moff != r->msgs.n)
            return CH_ECORRUPT;
    }
    return 0;
}

/* One pass: validate only (cb NULL) or deliver. */
static int decode_pass(const char *p, size_t len, bool deliver,
                       link_req_cb req_cb, link_resp_cb resp_cb, void *arg)
{
    size_t off = 0;
    uint64_t kind, n;

    if (ch_mp_read_uint(p, len, &off, &kind) != 0 ||
        ch_mp_read_uint(p, len, &off, &n) != 0)
        return CH_ECORRUPT;
    if ((kind == LINK_REQUESTS && req_cb == NULL) ||
        (kind == LINK_RESPONSES && resp_cb == NULL) ||
        (kind != LINK_REQUESTS && kind != LINK_RESPONSES))
        return CH_ECORRUPT;
    /* Every item takes at least 4 bytes: bound n by the frame size. */
    if (n > len / 4 + 1)
        return CH_ECORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        if (kind == LINK_REQUESTS) {
            struct link_req r;
            if (read_req(p, len, &off, &r) != 0)
                return CH_ECORRUPT;
            if (deliver)
                req_cb(arg, &r);
        } else {
            struct link_resp r;
            if (read_resp(p, len, &off, &r) != 0)
                return CH_ECORRUPT;
            if (deliver)
                resp_cb(arg, &r);
        }
    }
    return off == len ? 0 : CH_ECORRUPT;
}

int link_decode(const void *buf, size_t len, link_req_cb req_cb,
                link_resp_cb resp_cb, void *arg)
{
    int rv = decode_pass(buf, len, false, req_cb, resp_cb, arg);
    if (rv != 0)
        return rv;
    return decode_pass(buf, len, true, req_cb, resp_cb, arg);
}
