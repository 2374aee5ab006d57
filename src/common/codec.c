/* msgpack codecs: the raft commands (publish batch, member changes) and the
 * stored message record. Every format is written and read here once;
 * decoders are zero-copy and treat their input as hostile (raft entries and
 * store values are fuzzed). */
#include "common/codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/limits.h"

/* Fields of one message array in a command, and of a record array. */
#define CMD_MSG_FIELDS 6
#define RECORD_FIELDS 6

/* Fixed-width prefix of a command payload: fix_uint8 type (2 bytes),
 * fix_int64 time (9), fix_int64 dedup window (9), fix_uint32 n (5). Fixed
 * widths make ch_batch_enc_size exact before the time is known. */
#define CMD_PREFIX_BYTES (2 + 9 + 9 + 5)

/* Smallest encoding of one message array: fixarray + 6 empty bins. */
#define CMD_MIN_MSG_BYTES (1 + CMD_MSG_FIELDS * 2)

/* Fields of one member change array: op, id, raft, http, role. */
#define CMD_MEMBER_FIELDS 5
/* Smallest encoding of one member change: fixarray, fixint op, fixint id,
 * 2 empty bins, fixint role. */
#define CMD_MIN_MEMBER_BYTES (1 + 1 + 1 + 2 + 2 + 1)
/* Limits of struct ch_member_change (codec.h): the store keeps the
 * addresses NUL-terminated in char[CH_MAX_ADDR_BYTES + 1]. */
#define CMD_MEMBER_MAX_RAFT_BYTES CH_MAX_ADDR_BYTES
#define CMD_MEMBER_MAX_HTTP_BYTES CH_MAX_ADDR_BYTES
#define CMD_MEMBER_MAX_ROLE 2 /* 0 voter, 1 standby, 2 spare */

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* ---- msgpack helpers ---------------------------------------------------- */

static int buf_write_cb(void *data, const char *p, size_t n)
{
    struct ch_buf *b = data;

    return ch_buf_append(b, p, n) == 0 ? 0 : -1;
}

void ch_mp_packer_init_buf(msgpack_packer *pk, struct ch_buf *b)
{
    msgpack_packer_init(pk, b, buf_write_cb);
}

int ch_mp_pack_bytes(msgpack_packer *pk, const void *p, size_t n)
{
    if (msgpack_pack_bin(pk, n) != 0)
        return -1;
    /* An empty body would hand a possibly NULL pointer to memcpy. */
    if (n > 0 && msgpack_pack_bin_body(pk, p, n) != 0)
        return -1;
    return 0;
}

/* Scalar readers. msgpack-c's msgpack_unpack_next allocates a zone per
 * call, which cost two mallocs per field on the apply and replay paths
 * (callgrind); the scalar encodings are simple enough to read directly
 * (msgpack spec: fixint, (u)int8..64, fixstr/str8..32, bin8..32). */
static uint64_t get_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads a length-prefixed str or bin at *off. */
static int read_raw(const char *buf, size_t len, size_t *off,
                    struct ch_bytes *out)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = *off, hdr, n;

    if (pos >= len)
        return CH_ECORRUPT;
    switch (p[pos]) {
    case 0xc4: /* bin8 */
    case 0xd9: /* str8 */
        hdr = 1;
        break;
    case 0xc5: /* bin16 */
    case 0xda: /* str16 */
        hdr = 2;
        break;
    case 0xc6: /* bin32 */
    case 0xdb: /* str32 */
        hdr = 4;
        break;
    default:
        if (p[pos] >= 0xa0 && p[pos] <= 0xbf) { /* fixstr */
            n = p[pos] & 0x1fu;
            hdr = 0;
            break;
        }
        return CH_ECORRUPT;
    }
    if (hdr > 0) {
        if (len - pos - 1 < hdr)
            return CH_ECORRUPT;
        n = (size_t)get_be(p + pos + 1, hdr);
    }
    pos += 1 + hdr;
    if (n > len - pos)
        return CH_ECORRUPT;
    out->p = buf + pos;
    out->n = n;
    *off = pos + n;
    return 0;
}

/* Reads any msgpack integer: *neg tells a negative one (in *i), else *u. */
static int read_integer(const char *buf, size_t len, size_t *off, bool *neg,
                        uint64_t *u, int64_t *i)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = *off, n;
    unsigned char c;

    if (pos >= len)
        return CH_ECORRUPT;
    c = p[pos];
    if (c <= 0x7f) {
        *neg = false;
        *u = c;
        *off = pos + 1;
        return 0;
    }
    if (c >= 0xe0) {
        *neg = true;
        *i = (int8_t)c;
        *off = pos + 1;
        return 0;
    }
    if (c >= 0xcc && c <= 0xcf) { /* uint8..64 */
        n = (size_t)1 << (c - 0xcc);
        if (len - pos - 1 < n)
            return CH_ECORRUPT;
        *neg = false;
        *u = get_be(p + pos + 1, n);
        *off = pos + 1 + n;
        return 0;
    }
    if (c >= 0xd0 && c <= 0xd3) { /* int8..64 */
        uint64_t raw;
        int64_t v;
        n = (size_t)1 << (c - 0xd0);
        if (len - pos - 1 < n)
            return CH_ECORRUPT;
        raw = get_be(p + pos + 1, n);
        /* Sign-extend from n bytes. */
        if (n < 8 && (raw >> (n * 8 - 1)) & 1)
            raw |= ~(uint64_t)0 << (n * 8);
        memcpy(&v, &raw, sizeof v);
        *off = pos + 1 + n;
        if (v >= 0) {
            *neg = false;
            *u = (uint64_t)v;
        } else {
            *neg = true;
            *i = v;
        }
        return 0;
    }
    return CH_ECORRUPT;
}

int ch_mp_read_array(const char *buf, size_t len, size_t *off, uint32_t *n)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = *off;

    if (pos >= len)
        return CH_ECORRUPT;
    if (p[pos] >= 0x90 && p[pos] <= 0x9f) {
        *n = p[pos] & 0x0fu;
        *off = pos + 1;
        return 0;
    }
    if (p[pos] == 0xdc) {
        if (len - pos < 3)
            return CH_ECORRUPT;
        *n = (uint32_t)p[pos + 1] << 8 | p[pos + 2];
        *off = pos + 3;
        return 0;
    }
    if (p[pos] == 0xdd) {
        if (len - pos < 5)
            return CH_ECORRUPT;
        *n = (uint32_t)p[pos + 1] << 24 | (uint32_t)p[pos + 2] << 16 |
             (uint32_t)p[pos + 3] << 8 | p[pos + 4];
        *off = pos + 5;
        return 0;
    }
    return CH_ECORRUPT;
}

int ch_mp_read_bytes(const char *buf, size_t len, size_t *off,
                     struct ch_bytes *out)
{
    return read_raw(buf, len, off, out);
}

int ch_mp_read_int(const char *buf, size_t len, size_t *off, int64_t *out)
{
    size_t pos = *off;
    bool neg;
    uint64_t u = 0;
    int64_t i = 0;

    if (read_integer(buf, len, &pos, &neg, &u, &i) != 0)
        return CH_ECORRUPT;
    if (!neg && u > (uint64_t)INT64_MAX)
        return CH_ECORRUPT;
    *out = neg ? i : (int64_t)u;
    *off = pos;
    return 0;
}

int ch_mp_read_uint(const char *buf, size_t len, size_t *off, uint64_t *out)
{
    size_t pos = *off;
    bool neg;
    uint64_t u = 0;
    int64_t i = 0;

    if (read_integer(buf, len, &pos, &neg, &u, &i) != 0 || neg)
        return CH_ECORRUPT;
    *out = u;
    *off = pos;
    return 0;
}

/* ---- raft command ------------------------------------------------------- */

void ch_batch_enc_init(struct ch_batch_enc *e)
{
    msgpack_sbuffer_init(&e->body);
    msgpack_packer_init(&e->pk, &e->body, msgpack_sbuffer_write);
    e->n_msgs = 0;
}

void ch_batch_enc_close(struct ch_batch_enc *e)
{
    msgpack_sbuffer_destroy(&e->body);
    e->n_msgs = 0;
}

void ch_batch_enc_reset(struct ch_batch_enc *e)
{
    msgpack_sbuffer_clear(&e->body);
    e->n_msgs = 0;
}

int ch_batch_enc_add(struct ch_batch_enc *e, const struct ch_msg *m)
{
    size_t before = e->body.size;
    const struct ch_bytes *fields[CMD_MSG_FIELDS] = {
        &m->path, &m->user, &m->app, &m->msgid, &m->header, &m->body};

    if (e->n_msgs == UINT32_MAX)
        return CH_ENOMEM;
    if (msgpack_pack_array(&e->pk, CMD_MSG_FIELDS) != 0)
        goto err_rollback;
    for (size_t i = 0; i < CMD_MSG_FIELDS; i++) {
        if (ch_mp_pack_bytes(&e->pk, fields[i]->p, fields[i]->n) != 0)
            goto err_rollback;
    }
    e->n_msgs++;
    return 0;

err_rollback:
    /* A half-written message would corrupt the batch: drop it. */
    e->body.size = before;
    return CH_ENOMEM;
}

size_t ch_batch_enc_size(const struct ch_batch_enc *e)
{
    return pad8(CH_CMD_HEADER_BYTES + CMD_PREFIX_BYTES + e->body.size);
}

/* Packer target writing into a preallocated buffer of known size. */
struct fixed_writer {
    char *p;
    size_t cap;
    size_t len;
};

static int fixed_write_cb(void *data, const char *p, size_t n)
{
    struct fixed_writer *w = data;

    if (n > w->cap - w->len)
        return -1;
    memcpy(w->p + w->len, p, n);
    w->len += n;
    return 0;
}

int ch_batch_enc_finish(const struct ch_batch_enc *e, int64_t time,
                        int64_t dedup_window_s, void *(*alloc)(size_t),
                        void **out, size_t *out_len)
{
    size_t payload = CMD_PREFIX_BYTES + e->body.size;
    size_t total = ch_batch_enc_size(e);
    struct fixed_writer w;
    msgpack_packer pk;
    char *p;

    if (payload > UINT32_MAX)
        return CH_ENOMEM; /* cannot be described by the header */
    p = alloc(total);
    if (p == NULL)
        return CH_ENOMEM;
    put_le32((unsigned char *)p, CH_CMD_MAGIC);
    put_le32((unsigned char *)p + 4, (uint32_t)payload);
    w.p = p + CH_CMD_HEADER_BYTES;
    w.cap = payload;
    w.len = 0;
    msgpack_packer_init(&pk, &w, fixed_write_cb);
    /* The prefix fits by construction (CMD_PREFIX_BYTES), so these cannot
     * fail; checked anyway so a change of widths is caught. */
    if (msgpack_pack_fix_uint8(&pk, CH_CMD_PUBLISH) != 0 ||
        msgpack_pack_fix_int64(&pk, time) != 0 ||
        msgpack_pack_fix_int64(&pk, dedup_window_s) != 0 ||
        msgpack_pack_fix_uint32(&pk, e->n_msgs) != 0)
        CH_ASSERT(!"command prefix overflow");
    CH_ASSERT(w.len == CMD_PREFIX_BYTES);
    if (e->body.size > 0)
        memcpy(w.p + w.len, e->body.data, e->body.size);
    /* Zero padding: entries are compared byte for byte across replicas. */
    memset(p + CH_CMD_HEADER_BYTES + payload, 0,
           total - CH_CMD_HEADER_BYTES - payload);
    *out = p;
    *out_len = total;
    return 0;
}

/* ---- member changes ----------------------------------------------------- */

static bool member_op_valid(uint64_t op)
{
    return op == CH_MEMBER_SET || op == CH_MEMBER_DEL;
}

/* Fields a decoded change must satisfy, whatever its op (the decoder does
 * not know which fields an op ignores; the encoder writes ignored ones as
 * empty/0, so they always pass). */
static bool member_fields_valid(uint64_t id, size_t raft_n, size_t http_n,
                                uint64_t role)
{
    return id != 0 && raft_n <= CMD_MEMBER_MAX_RAFT_BYTES &&
           http_n <= CMD_MEMBER_MAX_HTTP_BYTES && role <= CMD_MEMBER_MAX_ROLE;
}

/* Whether ch_members_encode accepts a change: a DEL's raft, http and role
 * are ignored (and written as empty/0), a SET's must be in range. */
static bool member_change_encodable(const struct ch_member_change *c)
{
    if (c->op == CH_MEMBER_DEL)
        return c->id != 0;
    if (c->op != CH_MEMBER_SET || c->role < 0 ||
        (c->raft.n > 0 && c->raft.p == NULL) ||
        (c->http.n > 0 && c->http.p == NULL))
        return false;
    return member_fields_valid(c->id, c->raft.n, c->http.n, (uint64_t)c->role);
}

/* Packer target that only counts bytes (first pass of the encoder). */
static int count_write_cb(void *data, const char *p, size_t n)
{
    size_t *count = data;

    (void)p;
    *count += n;
    return 0;
}

/* Packs the payload of a members command. The prefix has the fixed widths
 * of a publish batch's, so both command kinds start alike. */
static int members_pack(msgpack_packer *pk,
                        const struct ch_member_change *changes, uint32_t n,
                        int64_t time)
{
    if (msgpack_pack_fix_uint8(pk, CH_CMD_MEMBERS) != 0 ||
        msgpack_pack_fix_int64(pk, time) != 0 ||
        msgpack_pack_fix_int64(pk, 0) != 0 || /* dedup window slot */
        msgpack_pack_fix_uint32(pk, n) != 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const struct ch_member_change *c = &changes[i];
        bool is_set = c->op == CH_MEMBER_SET;

        if (msgpack_pack_array(pk, CMD_MEMBER_FIELDS) != 0 ||
            msgpack_pack_uint64(pk, (uint64_t)c->op) != 0 ||
            msgpack_pack_uint64(pk, c->id) != 0 ||
            ch_mp_pack_bytes(pk, c->raft.p, is_set ? c->raft.n : 0) != 0 ||
            ch_mp_pack_bytes(pk, c->http.p, is_set ? c->http.n : 0) != 0 ||
            msgpack_pack_uint64(pk, is_set ? (uint64_t)c->role : 0) != 0)
            return -1;
    }
    return 0;
}

int ch_members_encode(const struct ch_member_change *changes, uint32_t n,
                      int64_t time, void *(*alloc)(size_t), void **out,
                      size_t *out_len)
{
    struct fixed_writer w;
    msgpack_packer pk;
    size_t payload = 0;
    size_t total;
    char *p;

    if (n > 0 && changes == NULL)
        return CH_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        if (!member_change_encodable(&changes[i]))
            return CH_EINVAL;
    }
    /* Two passes, counting then writing, so the entry is one allocation
     * of the exact size from `alloc` (raft_malloc for proposals). */
    msgpack_packer_init(&pk, &payload, count_write_cb);
    if (members_pack(&pk, changes, n, time) != 0)
        CH_ASSERT(!"counting packer failed");
    if (payload > UINT32_MAX)
        return CH_ENOMEM; /* cannot be described by the header */
    total = pad8(CH_CMD_HEADER_BYTES + payload);
    p = alloc(total);
    if (p == NULL)
        return CH_ENOMEM;
    put_le32((unsigned char *)p, CH_CMD_MAGIC);
    put_le32((unsigned char *)p + 4, (uint32_t)payload);
    w.p = p + CH_CMD_HEADER_BYTES;
    w.cap = payload;
    w.len = 0;
    msgpack_packer_init(&pk, &w, fixed_write_cb);
    /* Same input, same bytes: the second pass fits by construction. */
    if (members_pack(&pk, changes, n, time) != 0)
        CH_ASSERT(!"members payload overflow");
    CH_ASSERT(w.len == payload);
    memset(p + CH_CMD_HEADER_BYTES + payload, 0,
           total - CH_CMD_HEADER_BYTES - payload);
    *out = p;
    *out_len = total;
    return 0;
}

/* ---- command decoding --------------------------------------------------- */

/* Decodes n message arrays at *off (publish batch). */
static int decode_msgs(const char *p, size_t end, size_t *off, uint64_t n,
                       struct ch_cmd *out)
{
    struct ch_msg *msgs = NULL;

    /* Bound the allocation by what the input can hold. */
    if (n > (end - *off) / CMD_MIN_MSG_BYTES)
        return CH_ECORRUPT;
    if (n > 0) {
        msgs = ch_calloc((size_t)n, sizeof(*msgs));
        if (msgs == NULL)
            return CH_ENOMEM; /* not the entry's fault: never skip it */
    }
    for (uint64_t i = 0; i < n; i++) {
        struct ch_msg *m = &msgs[i];
        uint32_t n_fields;

        if (ch_mp_read_array(p, end, off, &n_fields) != 0 ||
            n_fields != CMD_MSG_FIELDS ||
            ch_mp_read_bytes(p, end, off, &m->path) != 0 ||
            ch_mp_read_bytes(p, end, off, &m->user) != 0 ||
            ch_mp_read_bytes(p, end, off, &m->app) != 0 ||
            ch_mp_read_bytes(p, end, off, &m->msgid) != 0 ||
            ch_mp_read_bytes(p, end, off, &m->header) != 0 ||
            ch_mp_read_bytes(p, end, off, &m->body) != 0)
            goto err;
        m->seq = 0;
        m->time = out->time;
    }
    out->n_msgs = (uint32_t)n;
    out->msgs = msgs;
    return 0;

err:
    ch_free(msgs);
    return CH_ECORRUPT;
}

/* Decodes n member change arrays at *off. */
static int decode_members(const char *p, size_t end, size_t *off, uint64_t n,
                          struct ch_cmd *out)
{
    struct ch_member_change *members = NULL;

    if (n > (end - *off) / CMD_MIN_MEMBER_BYTES)
        return CH_ECORRUPT;
    if (n > 0) {
        members = ch_calloc((size_t)n, sizeof(*members));
        if (members == NULL)
            return CH_ENOMEM; /* not the entry's fault: never skip it */
    }
    for (uint64_t i = 0; i < n; i++) {
        struct ch_member_change *c = &members[i];
        uint32_t n_fields;
        uint64_t op;
        uint64_t role;

        if (ch_mp_read_array(p, end, off, &n_fields) != 0 ||
            n_fields != CMD_MEMBER_FIELDS ||
            ch_mp_read_uint(p, end, off, &op) != 0 || !member_op_valid(op) ||
            ch_mp_read_uint(p, end, off, &c->id) != 0 ||
            ch_mp_read_bytes(p, end, off, &c->raft) != 0 ||
            ch_mp_read_bytes(p, end, off, &c->http) != 0 ||
            ch_mp_read_uint(p, end, off, &role) != 0 ||
            !member_fields_valid(c->id, c->raft.n, c->http.n, role))
            goto err;
        c->op = (enum ch_member_op)op;
        c->role = (int)role;
    }
    out->n_members = (uint32_t)n;
    out->members = members;
    return 0;

err:
    ch_free(members);
    return CH_ECORRUPT;
}

int ch_cmd_decode(const void *buf, size_t len, struct ch_cmd *out)
{
    const unsigned char *u = buf;
    const char *p = buf;
    size_t plen;
    size_t end;
    size_t off = CH_CMD_HEADER_BYTES;
    uint64_t type;
    uint64_t n;
    int rv = CH_ECORRUPT;

    memset(out, 0, sizeof(*out));
    if (buf == NULL || len < CH_CMD_HEADER_BYTES || get_le32(u) != CH_CMD_MAGIC)
        return CH_ECORRUPT;
    plen = get_le32(u + 4);
    if (plen > len - CH_CMD_HEADER_BYTES ||
        pad8(CH_CMD_HEADER_BYTES + plen) != len)
        return CH_ECORRUPT;
    end = CH_CMD_HEADER_BYTES + plen;
    for (size_t i = end; i < len; i++) {
        if (u[i] != 0)
            return CH_ECORRUPT;
    }

    if (ch_mp_read_uint(p, end, &off, &type) != 0 ||
        (type != CH_CMD_PUBLISH && type != CH_CMD_MEMBERS))
        return CH_ECORRUPT;
    if (ch_mp_read_int(p, end, &off, &out->time) != 0 ||
        ch_mp_read_int(p, end, &off, &out->dedup_window_s) != 0 ||
        ch_mp_read_uint(p, end, &off, &n) != 0)
        goto err;
    if (type == CH_CMD_PUBLISH)
        rv = decode_msgs(p, end, &off, n, out);
    else if (out->dedup_window_s == 0) /* unused slot: always 0 */
        rv = decode_members(p, end, &off, n, out);
    else
        rv = CH_ECORRUPT;
    if (rv != 0)
        goto err;
    if (off != end) {
        rv = CH_ECORRUPT; /* trailing bytes inside the payload */
        goto err;
    }
    out->type = (enum ch_cmd_type)type;
    return 0;

err:
    ch_cmd_free(out); /* what a decode_* call kept; out is zeroed otherwise */
    memset(out, 0, sizeof(*out));
    return rv == CH_ENOMEM ? CH_ENOMEM : CH_ECORRUPT;
}

void ch_cmd_free(struct ch_cmd *c)
{
    ch_free(c->msgs);
    c->msgs = NULL;
    c->n_msgs = 0;
    ch_free(c->members);
    c->members = NULL;
    c->n_members = 0;
}

/* ---- stored record ------------------------------------------------------ */

int ch_record_encode(const struct ch_msg *m, struct ch_buf *out)
{
    size_t before = out->len;
    msgpack_packer pk;

    ch_mp_packer_init_buf(&pk, out);
    if (msgpack_pack_array(&pk, RECORD_FIELDS) != 0 ||
        ch_mp_pack_bytes(&pk, m->user.p, m->user.n) != 0 ||
        ch_mp_pack_bytes(&pk, m->app.p, m->app.n) != 0 ||
        ch_mp_pack_bytes(&pk, m->msgid.p, m->msgid.n) != 0 ||
        ch_mp_pack_bytes(&pk, m->header.p, m->header.n) != 0 ||
        ch_mp_pack_bytes(&pk, m->body.p, m->body.n) != 0 ||
        msgpack_pack_int64(&pk, m->time) != 0)
        goto err_rollback;
    return 0;

err_rollback:
    out->len = before;
    if (out->data != NULL)
        out->data[out->len] = '\0';
    return CH_ENOMEM;
}

int ch_record_decode(const void *p, size_t n, struct ch_msg *out)
{
    const char *b = p;
    size_t off = 0;
    uint32_t n_fields;
    struct ch_msg m = *out;

    if (p == NULL || ch_mp_read_array(b, n, &off, &n_fields) != 0 ||
        n_fields != RECORD_FIELDS ||
        ch_mp_read_bytes(b, n, &off, &m.user) != 0 ||
        ch_mp_read_bytes(b, n, &off, &m.app) != 0 ||
        ch_mp_read_bytes(b, n, &off, &m.msgid) != 0 ||
        ch_mp_read_bytes(b, n, &off, &m.header) != 0 ||
        ch_mp_read_bytes(b, n, &off, &m.body) != 0 ||
        ch_mp_read_int(b, n, &off, &m.time) != 0 || off != n)
        return CH_ECORRUPT;
    *out = m;
    return 0;
}
