/* Store snapshots for raft: the store's *state*, not its messages
 * (docs/architecture.md "Snapshots and catch-up").
 *
 * Format (all integers of the header and trailer little endian):
 *   u32 magic SNAP_MAGIC | u32 format version | u64 applied index |
 *   u64 n_records
 *   n_records times, msgpack: uint db (enum store_db), bin key, bin value,
 *     databases in enum order, keys in LMDB order within each
 *   u64 FNV-1a 64 of every byte before it
 * Version 2 (SNAP_STATE) carries every database but the messages and the
 * local holes: its size depends on the number of topics and de-dup
 * entries, never on the number of messages. Version 1 (SNAP_WHOLE, written
 * before) carried the messages too; it is still restored.
 * The record count and checksum let restore tell a complete snapshot from
 * a truncated or damaged one before it touches the store. Databases added
 * later (append-only numbers, e.g. members) simply have no records in older
 * snapshots, which restore as those databases empty. */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <msgpack.h>

#include "common/alloc.h"
#include "common/codec.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/validate.h"
#include "store/store_int.h"

#define SNAP_MAGIC 0x31534843u /* "CHS1" */
#define SNAP_WHOLE 1u          /* every database, messages included */
#define SNAP_STATE 2u          /* no messages (STORE_DB_MSGS), no holes */
#define SNAP_HEADER_BYTES 24
#define SNAP_TRAILER_BYTES 8
/* Smallest record: positive fixint db, bin8 of 1 byte key, empty bin8. */
#define SNAP_MIN_RECORD_BYTES (1 + 3 + 2)

struct store_snap {
    struct store *s;
    MDB_txn *txn;     /* read-only view pinned by begin */
    uint64_t applied; /* applied index of that view */
};

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* Which databases a snapshot of `version` carries. */
static bool in_snapshot(uint32_t version, enum store_db db)
{
    if (db == STORE_DB_HOLES)
        return false; /* local: what this node lacks */
    return version == SNAP_WHOLE || db != STORE_DB_MSGS;
}

int store_snapshot_begin(struct store *s, struct store_snap **out)
{
    struct store_snap *snap;
    MDB_val k = {.mv_size = sizeof(META_APPLIED) - 1,
                 .mv_data = (void *)META_APPLIED};
    MDB_val v;
    int rc;
    int rv;

    snap = ch_calloc(1, sizeof(*snap));
    if (snap == NULL)
        return CH_ENOMEM;
    snap->s = s;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &snap->txn);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "begin snapshot txn");
        goto err_after_alloc;
    }
    /* The index must be the one of this view, not the cached one. */
    rc = mdb_get(snap->txn, s->dbi[STORE_DB_META], &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        snap->applied = store__get_be64(v.mv_data);
    } else if (rc == MDB_NOTFOUND) {
        snap->applied = 0;
    } else {
        rv = rc != 0 ? store__err_from_mdb(s, rc, "get applied") : CH_ECORRUPT;
        goto err_after_txn;
    }
    *out = snap;
    return 0;

err_after_txn:
    mdb_txn_abort(snap->txn);
err_after_alloc:
    ch_free(snap);
    return rv;
}

/* Appends one database's records. Runs off the loop thread: no errmsg. */
static int write_db(struct store_snap *snap, enum store_db db,
                    msgpack_packer *pk, uint64_t *n_records)
{
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv = 0;

    rc = mdb_cursor_open(snap->txn, snap->s->dbi[db], &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open snapshot cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (msgpack_pack_uint8(pk, (uint8_t)db) != 0 ||
            ch_mp_pack_bytes(pk, k.mv_data, k.mv_size) != 0 ||
            ch_mp_pack_bytes(pk, v.mv_data, v.mv_size) != 0) {
            rv = CH_ENOMEM;
            break;
        }
        (*n_records)++;
    }
    if (rv == 0 && rc != MDB_NOTFOUND)
        rv = store__err_from_mdb(NULL, rc, "read for snapshot");
    mdb_cursor_close(cur);
    return rv;
}

int store_snapshot_write(struct store_snap *snap, struct ch_buf *out)
{
    unsigned char hdr[SNAP_HEADER_BYTES];
    unsigned char trailer[SNAP_TRAILER_BYTES];
    size_t start = out->len;
    uint64_t n_records = 0;
    msgpack_packer pk;
    int rv;

    CH_ASSERT(snap->txn != NULL && snap->s != NULL);
    memset(hdr, 0, sizeof(hdr));
    hdr[0] = (unsigned char)SNAP_MAGIC;
    hdr[1] = (unsigned char)(SNAP_MAGIC >> 8);
    hdr[2] = (unsigned char)(SNAP_MAGIC >> 16);
    hdr[3] = (unsigned char)(SNAP_MAGIC >> 24);
    hdr[4] = (unsigned char)SNAP_STATE;
    put_le64(hdr + 8, snap->applied);
    rv = ch_buf_append(out, hdr, sizeof(hdr));
    if (rv != 0)
        goto err_rollback;
    ch_mp_packer_init_buf(&pk, out);
    for (int db = 1; db <= STORE_N_DBS; db++) {
        if (!in_snapshot(SNAP_STATE, (enum store_db)db))
            continue;
        rv = write_db(snap, (enum store_db)db, &pk, &n_records);
        if (rv != 0)
            goto err_rollback;
    }
    CH_ASSERT(out->len >= start + SNAP_HEADER_BYTES);
    put_le64((unsigned char *)out->data + start + 16, n_records);
    put_le64(trailer, fnv1a64(out->data + start, out->len - start));
    rv = ch_buf_append(out, trailer, sizeof(trailer));
    if (rv != 0)
        goto err_rollback;
    return 0;

err_rollback:
    out->len = start;
    return rv;
}

void store_snapshot_end(struct store_snap *snap)
{
    if (snap == NULL)
        return;
    mdb_txn_abort(snap->txn);
    ch_free(snap);
}

/* Checks the fixed header; fills the index and record count. */
static int read_header(const void *buf, size_t len, uint64_t *applied,
                       uint64_t *n_records, uint32_t *version_out)
{
    const unsigned char *p = buf;
    uint32_t magic;
    uint32_t version;

    if (buf == NULL || len < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES)
        return CH_ECORRUPT;
    magic = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
            (uint32_t)p[3] << 24;
    version = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
              (uint32_t)p[7] << 24;
    if (magic != SNAP_MAGIC || (version != SNAP_WHOLE && version != SNAP_STATE))
        return CH_ECORRUPT;
    *version_out = version;
    *applied = get_le64(p + 8);
    *n_records = get_le64(p + 16);
    return 0;
}

int store_snapshot_index(const void *buf, size_t len, uint64_t *index)
{
    uint64_t n_records;
    uint32_t version;

    return read_header(buf, len, index, &n_records, &version);
}

struct snap_record {
    enum store_db db;
    struct ch_bytes key;
    struct ch_bytes value;
};

static int read_record(const char *p, size_t end, size_t *off,
                       struct snap_record *r)
{
    uint64_t db;

    if (ch_mp_read_uint(p, end, off, &db) != 0 || db < 1 || db > STORE_N_DBS ||
        ch_mp_read_bytes(p, end, off, &r->key) != 0 ||
        ch_mp_read_bytes(p, end, off, &r->value) != 0)
        return CH_ECORRUPT;
    r->db = (enum store_db)db;
    return 0;
}

/* LMDB's default key order: memcmp, then the shorter first. */
static int key_cmp(const struct ch_bytes *a, const struct ch_bytes *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->p, b->p, n);

    if (c != 0)
        return c;
    return a->n < b->n ? -1 : a->n > b->n;
}

static bool key_is(const struct ch_bytes *k, const char *name)
{
    return k->n == strlen(name) && memcmp(k->p, name, k->n) == 0;
}

static bool value_is_u64(const struct ch_bytes *v, uint64_t want)
{
    return v->n == 8 && store__get_be64((const unsigned char *)v->p) == want;
}

/* Checks what the store relies on when reading a record back. */
static int check_record(const struct snap_record *r, uint64_t applied)
{
    struct ch_msg m;

    if (r->key.n == 0 || r->key.n > STORE_MAX_KEY_BYTES)
        return CH_ECORRUPT;
    switch (r->db) {
    case STORE_DB_TOPICS:
        if (!ch_valid_topic(r->key.p, r->key.n) ||
            !store__topic_rec_valid(r->value.p, r->value.n))
            return CH_ECORRUPT;
        return 0;
    case STORE_DB_MSGS:
        if (r->key.n != MSG_KEY_BYTES ||
            ch_record_decode(r->value.p, r->value.n, &m) != 0)
            return CH_ECORRUPT;
        return 0;
    case STORE_DB_DEDUP:
        /* topic id, user (>= 1), NUL, msgid (>= 1) */
        if (r->key.n < 8 + 3 || r->value.n != DEDUP_REC_BYTES)
            return CH_ECORRUPT;
        return 0;
    case STORE_DB_DEDUP_TIME:
        if (r->key.n < 8 + 8 + 3 || r->value.n != 0)
            return CH_ECORRUPT;
        return 0;
    case STORE_DB_META:
        if (key_is(&r->key, META_APPLIED))
            return value_is_u64(&r->value, applied) ? 0 : CH_ECORRUPT;
        if (key_is(&r->key, META_FORMAT))
            return value_is_u64(&r->value, STORE_FORMAT_VERSION) ? 0
                                                                 : CH_ECORRUPT;
        if (key_is(&r->key, META_NEXT_TOPIC))
            return r->value.n == 8 ? 0 : CH_ECORRUPT;
        return 0; /* other meta entries are carried as they are */
    case STORE_DB_MEMBERS: {
        struct store_member mb;

        return store__member_decode(r->key.p, r->key.n, r->value.p, r->value.n,
                                    &mb);
    }
    case STORE_DB_HOLES:
        return CH_ECORRUPT; /* local: never in a snapshot */
    }
    return CH_ECORRUPT;
}

/* Validates the whole buffer; on success *applied, *n_records, *end (end
 * of the record stream) describe it. */
static int validate(const void *buf, size_t len, uint64_t *applied,
                    uint64_t *n_records, size_t *end, uint32_t *version)
{
    const char *p = buf;
    const unsigned char *u = buf;
    struct ch_bytes last[STORE_N_DBS + 1];
    bool has_last[STORE_N_DBS + 1] = {false};
    int last_db = 1;
    size_t off = SNAP_HEADER_BYTES;
    int rv;

    rv = read_header(buf, len, applied, n_records, version);
    if (rv != 0)
        return rv;
    *end = len - SNAP_TRAILER_BYTES;
    if (fnv1a64(buf, *end) != get_le64(u + *end))
        return CH_ECORRUPT;
    if (*n_records > (*end - off) / SNAP_MIN_RECORD_BYTES)
        return CH_ECORRUPT;
    for (uint64_t i = 0; i < *n_records; i++) {
        struct snap_record r;

        if (read_record(p, *end, &off, &r) != 0 ||
            !in_snapshot(*version, r.db) || check_record(&r, *applied) != 0)
            return CH_ECORRUPT;
        /* Databases in order and keys strictly increasing: restore
         * inserts with MDB_APPEND. */
        if ((int)r.db < last_db ||
            (has_last[r.db] && key_cmp(&last[r.db], &r.key) >= 0))
            return CH_ECORRUPT;
        last_db = (int)r.db;
        last[r.db] = r.key;
        has_last[r.db] = true;
    }
    if (off != *end)
        return CH_ECORRUPT;
    return 0;
}

/* Before a state snapshot replaces the topic records: every message a
 * snapshot topic holds beyond the local store's last one becomes a hole.
 * The local store must be a prefix of the snapshot's history: same topic
 * ids, no topic ahead. */
static int note_holes(struct store *s, MDB_txn *txn, const char *p, size_t end,
                      uint64_t n_records)
{
    size_t off = SNAP_HEADER_BYTES;

    for (uint64_t i = 0; i < n_records; i++) {
        struct snap_record r;
        const unsigned char *tv;
        uint64_t id;
        uint64_t local_id = 0;
        int64_t first;
        int64_t last;
        int64_t local_last = 0;
        int64_t from;
        bool found;
        int rv;

        if (read_record(p, end, &off, &r) != 0)
            return CH_ECORRUPT;
        if (r.db != STORE_DB_TOPICS)
            continue;
        CH_ASSERT(r.value.n == TOPIC_REC_BYTES); /* validated */
        tv = (const unsigned char *)r.value.p;
        id = store__get_be64(tv);
        first = (int64_t)store__get_be64(tv + 8);
        last = (int64_t)store__get_be64(tv + 16);
        rv = store__topic_ids(txn, s->dbi[STORE_DB_TOPICS], r.key.p, r.key.n,
                              &local_id, &local_last, &found);
        if (rv != 0)
            return rv;
        if (found && (local_id != id || local_last > last)) {
            snprintf(s->errmsg, sizeof(s->errmsg),
                     "restore: local topic %.*s (id %llu, last %lld) is not "
                     "a prefix of the snapshot's (id %llu, last %lld)",
                     (int)(r.key.n > 100 ? 100 : r.key.n), r.key.p,
                     (unsigned long long)local_id, (long long)local_last,
                     (unsigned long long)id, (long long)last);
            return CH_ECORRUPT;
        }
        from = found ? local_last + 1 : 1;
        if (from < first)
            from = first;
        if (from > last)
            continue;
        rv = store__hole_put(s, txn, id, from, last, r.key.p, r.key.n);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int store_restore(struct store *s, const void *buf, size_t len)
{
    const char *p = buf;
    uint64_t applied;
    uint64_t n_records;
    uint32_t version;
    size_t end;
    size_t off = SNAP_HEADER_BYTES;
    unsigned char ab[8];
    MDB_val k;
    MDB_val v;
    MDB_txn *txn;
    int rc;
    int rv;

    rv = validate(buf, len, &applied, &n_records, &end, &version);
    if (rv != 0) {
        snprintf(s->errmsg, sizeof(s->errmsg), "restore: corrupt snapshot");
        return rv;
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "begin restore txn");
    if (version == SNAP_STATE && s->applied > applied) {
        snprintf(s->errmsg, sizeof(s->errmsg),
                 "restore: the store (applied %llu) is ahead of the snapshot "
                 "(%llu)",
                 (unsigned long long)s->applied, (unsigned long long)applied);
        rv = CH_ECORRUPT;
        goto err_after_txn;
    }
    if (version == SNAP_STATE) {
        rv = note_holes(s, txn, p, end, n_records);
        if (rv != 0)
            goto err_after_txn;
    }
    for (int db = 1; db <= STORE_N_DBS; db++) {
        /* A state snapshot keeps the local messages (and what they lack);
         * a whole one replaces them. */
        if (version == SNAP_STATE && !in_snapshot(version, (enum store_db)db))
            continue;
        rc = mdb_drop(txn, s->dbi[db], 0); /* empty it, keep the handle */
        if (rc != 0) {
            rv = store__err_from_mdb(s, rc, "restore: empty db");
            goto err_after_txn;
        }
    }
    for (uint64_t i = 0; i < n_records; i++) {
        struct snap_record r;

        /* Validated above; checked again rather than trusted. */
        if (read_record(p, end, &off, &r) != 0) {
            rv = CH_ECORRUPT;
            goto err_after_txn;
        }
        k.mv_size = r.key.n;
        k.mv_data = (void *)r.key.p;
        v.mv_size = r.value.n;
        v.mv_data = (void *)r.value.p;
        if (r.db == STORE_DB_MSGS) {
            /* A whole-store snapshot (format 1) holds records without the
             * store's checksum (check_record decoded them). */
            CH_ASSERT(r.key.n == MSG_KEY_BYTES);
            s->scratch.len = 0;
            if (ch_buf_append(&s->scratch, r.value.p, r.value.n) != 0 ||
                store__rec_seal(&s->scratch, (const unsigned char *)r.key.p) !=
                    0) {
                snprintf(s->errmsg, sizeof(s->errmsg),
                         "restore: out of memory");
                rv = CH_ENOMEM;
                goto err_after_txn;
            }
            v.mv_size = s->scratch.len;
            v.mv_data = s->scratch.data;
        }
        rc = mdb_put(txn, s->dbi[r.db], &k, &v, MDB_APPEND);
        if (rc != 0) {
            rv = store__err_from_mdb(s, rc, "restore: put");
            goto err_after_txn;
        }
    }
    /* A snapshot of a store that never applied anything has no "applied"
     * record; write the header's index either way. */
    store__put_be64(ab, applied);
    k.mv_size = sizeof(META_APPLIED) - 1;
    k.mv_data = (void *)META_APPLIED;
    v.mv_size = sizeof(ab);
    v.mv_data = ab;
    rc = mdb_put(txn, s->dbi[STORE_DB_META], &k, &v, 0);
    if (rc == 0) {
        store__put_be64(ab, STORE_FORMAT_VERSION);
        k.mv_size = sizeof(META_FORMAT) - 1;
        k.mv_data = (void *)META_FORMAT;
        rc = mdb_put(txn, s->dbi[STORE_DB_META], &k, &v, 0);
    }
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "restore: put meta");
        goto err_after_txn;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "commit restore txn");
    s->applied = applied;
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
    return rv;
}
