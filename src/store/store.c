/* The store: per-topic message logs in one LMDB environment, written only
 * by applying raft entries (one write transaction per entry, the applied
 * index inside it) and read through read transactions on any thread.
 *
 * Layout (store_int.h): topics maps a path to a topic id and its counters;
 * messages are keyed by (topic id, seq) so a topic's log is one contiguous
 * key range; the de-dup table is keyed by (topic id, user, msgid), which
 * keeps the longest key (8 + 128 + 1 + 128, plus 8 for the time index) under
 * LMDB's 511-byte limit where the path itself (255) would not fit.
 *
 * The member directory (raft id -> raft address, HTTP address, role) lives
 * in its own database, also written only by applying raft entries. Stores
 * created before it existed gain the empty database on open. */
#include "store/store.h"
#include "common/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lmdb.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/validate.h"
#include "store/store_int.h"

/* Longest de-dup key: topic id, user, separator, msgid. */
#define DEDUP_KEY_MAX (8 + CH_MAX_ID_BYTES + 1 + CH_MAX_ID_BYTES)
/* Longest de-dup time index key: ordered time, de-dup key. */
#define DEDUP_TIME_KEY_MAX (8 + DEDUP_KEY_MAX)
/* Concurrent read transactions (LMDB reader table slots). */
#define STORE_MAX_READERS 1024

static const char *const db_names[STORE_N_DBS + 1] = {
    [STORE_DB_TOPICS] = "topics", [STORE_DB_MSGS] = "msgs",
    [STORE_DB_DEDUP] = "dedup",   [STORE_DB_DEDUP_TIME] = "dedup_time",
    [STORE_DB_META] = "meta",     [STORE_DB_MEMBERS] = "members",
    [STORE_DB_HOLES] = "holes",
};

struct topic_rec {
    uint64_t id;
    int64_t first_seq;
    int64_t last_seq;
    int64_t count;
    int64_t bytes;
};

void store__put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

uint64_t store__get_be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Times are signed; flipping the sign bit makes big-endian byte order match
 * numeric order, so the time index can be scanned from its start. */
static uint64_t time_to_ordered(int64_t t)
{
    return (uint64_t)t ^ (UINT64_C(1) << 63);
}

/* Two's complement without relying on implementation-defined casts. */
static int64_t u64_to_i64(uint64_t u)
{
    return u > (uint64_t)INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

static int64_t ordered_to_time(uint64_t u)
{
    return u64_to_i64(u ^ (UINT64_C(1) << 63));
}

static int64_t get_be64_signed(const unsigned char *p)
{
    return u64_to_i64(store__get_be64(p));
}

static void put_be64_signed(unsigned char *p, int64_t v)
{
    store__put_be64(p, (uint64_t)v);
}

static uint32_t rec_crc(const void *key, const void *rec, size_t rec_n)
{
    uLong crc = crc32_z(0L, Z_NULL, 0);

    crc = crc32_z(crc, key, MSG_KEY_BYTES);
    crc = crc32_z(crc, rec, rec_n);
    return (uint32_t)crc;
}

int store__rec_seal(struct ch_buf *b, const unsigned char key[MSG_KEY_BYTES])
{
    uint32_t crc = rec_crc(key, b->data, b->len);
    unsigned char c[REC_CRC_BYTES];

    c[0] = (unsigned char)(crc >> 24);
    c[1] = (unsigned char)(crc >> 16);
    c[2] = (unsigned char)(crc >> 8);
    c[3] = (unsigned char)crc;
    return ch_buf_append(b, c, sizeof c);
}

bool store__rec_open(const MDB_val *k, const MDB_val *v, size_t *rec_n)
{
    const unsigned char *c;
    uint32_t crc;

    if (k->mv_size != MSG_KEY_BYTES || v->mv_size < REC_CRC_BYTES)
        return false;
    *rec_n = v->mv_size - REC_CRC_BYTES;
    c = (const unsigned char *)v->mv_data + *rec_n;
    crc = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 |
          (uint32_t)c[3];
    return crc == rec_crc(k->mv_data, v->mv_data, *rec_n);
}

int store__err_from_mdb(struct store *s, int mdb_rc, const char *what)
{
    if (s != NULL)
        snprintf(s->errmsg, sizeof(s->errmsg), "%s: %s", what,
                 mdb_strerror(mdb_rc));
    if (mdb_rc == MDB_MAP_FULL)
        return CH_ENOSPACE;
    if (mdb_rc == ENOMEM)
        return CH_ENOMEM;
    return CH_EIO;
}

static int set_err(struct store *s, int code, const char *what)
{
    if (s != NULL)
        snprintf(s->errmsg, sizeof(s->errmsg), "%s", what);
    return code;
}

/* ---- records ------------------------------------------------------------ */

static void topic_rec_encode(const struct topic_rec *t, unsigned char *p)
{
    store__put_be64(p, t->id);
    put_be64_signed(p + 8, t->first_seq);
    put_be64_signed(p + 16, t->last_seq);
    put_be64_signed(p + 24, t->count);
    put_be64_signed(p + 32, t->bytes);
}

bool store__topic_rec_valid(const void *v, size_t n)
{
    const unsigned char *p = v;
    int64_t first, last, count;

    if (n != TOPIC_REC_BYTES || store__get_be64(p) == 0)
        return false;
    first = get_be64_signed(p + 8);
    last = get_be64_signed(p + 16);
    count = get_be64_signed(p + 24);
    return first >= 1 && last >= first - 1 && last < INT64_MAX && count >= 0 &&
           count <= last - first + 1 && get_be64_signed(p + 32) >= 0;
}

static int topic_rec_decode(const MDB_val *v, struct topic_rec *t)
{
    const unsigned char *p = v->mv_data;

    if (!store__topic_rec_valid(v->mv_data, v->mv_size))
        return CH_ECORRUPT;
    t->id = store__get_be64(p);
    t->first_seq = get_be64_signed(p + 8);
    t->last_seq = get_be64_signed(p + 16);
    t->count = get_be64_signed(p + 24);
    t->bytes = get_be64_signed(p + 32);
    return 0;
}

static void topic_to_public(const struct topic_rec *r, struct store_topic *t)
{
    t->first_seq = r->first_seq;
    t->last_seq = r->last_seq;
    t->count = r->count;
    t->bytes = r->bytes;
}

/* Loads a topic; *found false (return 0) when it was never written.
 * `es` receives error text (NULL on read paths, which may run on any
 * thread and so must not write the store). */
static int topic_load(struct store *es, MDB_txn *txn, MDB_dbi dbi,
                      const char *path, size_t path_n, struct topic_rec *t,
                      bool *found)
{
    MDB_val k = {.mv_size = path_n, .mv_data = (void *)path};
    MDB_val v;
    int rc;

    *found = false;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store__err_from_mdb(es, rc, "get topic");
    if (topic_rec_decode(&v, t) != 0)
        return set_err(es, CH_ECORRUPT, "bad topic record");
    *found = true;
    return 0;
}

int store__topic_ids(MDB_txn *txn, MDB_dbi dbi, const void *path, size_t path_n,
                     uint64_t *id, int64_t *last_seq, bool *found)
{
    struct topic_rec t;
    int rv;

    rv = topic_load(NULL, txn, dbi, path, path_n, &t, found);
    if (rv != 0 || !*found)
        return rv;
    *id = t.id;
    *last_seq = t.last_seq;
    return 0;
}

/* ---- holes: ranges this node lacks (docs/architecture.md "Snapshots and
 * catch-up") ----------------------------------------------------------- */

int store__hole_put(struct store *s, MDB_txn *txn, uint64_t id, int64_t from,
                    int64_t to, const void *path, size_t path_n)
{
    unsigned char hk[HOLE_KEY_BYTES];
    unsigned char hv[HOLE_VAL_HEAD_BYTES + CH_MAX_TOPIC_BYTES];
    MDB_val k = {.mv_size = sizeof hk, .mv_data = hk};
    MDB_val v;
    int rc;

    CH_ASSERT(id >= 1 && from >= 1 && to >= from);
    CH_ASSERT(path_n >= 1 && path_n <= CH_MAX_TOPIC_BYTES);
    store__put_be64(hk, id);
    put_be64_signed(hk + 8, from);
    put_be64_signed(hv, to);
    memcpy(hv + HOLE_VAL_HEAD_BYTES, path, path_n);
    v.mv_size = HOLE_VAL_HEAD_BYTES + path_n;
    v.mv_data = hv;
    rc = mdb_put(txn, s->dbi[STORE_DB_HOLES], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put hole");
    return 0;
}

/* Decodes a holes record into *h. Returns 0 or CH_ECORRUPT. */
static int hole_decode(const MDB_val *k, const MDB_val *v, struct store_hole *h)
{
    size_t path_n;

    if (k->mv_size != HOLE_KEY_BYTES || v->mv_size <= HOLE_VAL_HEAD_BYTES ||
        v->mv_size > HOLE_VAL_HEAD_BYTES + CH_MAX_TOPIC_BYTES)
        return CH_ECORRUPT;
    h->topic_id = store__get_be64(k->mv_data);
    h->from_seq = get_be64_signed((const unsigned char *)k->mv_data + 8);
    h->to_seq = get_be64_signed(v->mv_data);
    path_n = v->mv_size - HOLE_VAL_HEAD_BYTES;
    memcpy(h->path, (const char *)v->mv_data + HOLE_VAL_HEAD_BYTES, path_n);
    h->path[path_n] = '\0';
    h->path_n = path_n;
    if (h->topic_id == 0 || h->from_seq < 1 || h->to_seq < h->from_seq ||
        !ch_valid_topic(h->path, h->path_n))
        return CH_ECORRUPT;
    return 0;
}

/* The first hole of topic `id` that ends at or after `from`: *found, and
 * its bounds in *h. */
static int hole_find(MDB_txn *txn, MDB_dbi dbi, uint64_t id, int64_t from,
                     struct store_hole *h, bool *found)
{
    unsigned char hk[HOLE_KEY_BYTES];
    MDB_cursor *cur;
    MDB_val k = {.mv_size = sizeof hk, .mv_data = hk};
    MDB_val v;
    MDB_stat st;
    int rc;
    int rv = 0;

    *found = false;
    /* Every read asks: with no holes at all (the usual case) no cursor is
     * opened (mdb_cursor_open allocates; mdb_stat reads the txn's copy of
     * the database record). */
    rc = mdb_stat(txn, dbi, &st);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "stat holes");
    if (st.ms_entries == 0)
        return 0;
    store__put_be64(hk, id);
    put_be64_signed(hk + 8, 0);
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open holes cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        rv = hole_decode(&k, &v, h);
        if (rv != 0 || h->topic_id != id)
            break;
        if (h->to_seq >= from) {
            *found = true;
            break;
        }
    }
    if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND)
        rv = store__err_from_mdb(NULL, rc, "read holes");
    mdb_cursor_close(cur);
    return rv;
}

int store_hole_first(struct store_txn *t, struct store_hole *out)
{
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv;

    rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_HOLES], &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open holes cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == MDB_NOTFOUND)
        rv = CH_ENOTFOUND;
    else if (rc != 0)
        rv = store__err_from_mdb(NULL, rc, "read holes");
    else
        rv = hole_decode(&k, &v, out);
    mdb_cursor_close(cur);
    return rv;
}

int store_missing(struct store_txn *t, uint64_t *n_holes, int64_t *n_msgs)
{
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv = 0;

    *n_holes = 0;
    *n_msgs = 0;
    rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_HOLES], &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open holes cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct store_hole h;

        rv = hole_decode(&k, &v, &h);
        if (rv != 0)
            break;
        (*n_holes)++;
        *n_msgs += h.to_seq - h.from_seq + 1;
    }
    if (rv == 0 && rc != MDB_NOTFOUND)
        rv = store__err_from_mdb(NULL, rc, "read holes");
    mdb_cursor_close(cur);
    return rv;
}

static int meta_get_u64(struct store *es, MDB_txn *txn, MDB_dbi dbi,
                        const char *name, uint64_t *out)
{
    MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val v;
    int rc;

    *out = 0;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store__err_from_mdb(es, rc, "get meta");
    if (v.mv_size != 8)
        return set_err(es, CH_ECORRUPT, "bad meta record");
    *out = store__get_be64(v.mv_data);
    return 0;
}

static int meta_put_u64(struct store *s, MDB_txn *txn, const char *name,
                        uint64_t value)
{
    unsigned char buf[8];
    MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val v = {.mv_size = sizeof(buf), .mv_data = buf};
    int rc;

    store__put_be64(buf, value);
    rc = mdb_put(txn, s->dbi[STORE_DB_META], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put meta");
    return 0;
}

/* ---- open / close ------------------------------------------------------- */

static int check_format(struct store *s, MDB_txn *txn)
{
    static const char name[] = META_FORMAT;
    MDB_val k = {.mv_size = sizeof(name) - 1, .mv_data = (void *)name};
    MDB_val v;
    unsigned char buf[8];
    int rc;

    rc = mdb_get(txn, s->dbi[STORE_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        store__put_be64(buf, STORE_FORMAT_VERSION);
        v.mv_size = sizeof(buf);
        v.mv_data = buf;
        rc = mdb_put(txn, s->dbi[STORE_DB_META], &k, &v, 0);
        if (rc != 0)
            return store__err_from_mdb(s, rc, "put format");
        return 0;
    }
    if (rc != 0)
        return store__err_from_mdb(s, rc, "get format");
    if (v.mv_size != 8 || store__get_be64(v.mv_data) != STORE_FORMAT_VERSION)
        return set_err(s, CH_ECORRUPT, "unsupported store format version");
    return 0;
}

int store_open(const char *dir, uint64_t map_bytes, struct store **out,
               char *errmsg)
{
    struct store *s;
    MDB_txn *txn;
    int n_dead;
    int rc;
    int rv;

    s = ch_calloc(1, sizeof(*s));
    if (s == NULL) {
        if (errmsg != NULL)
            snprintf(errmsg, CH_ERRMSG_SIZE, "out of memory");
        return CH_ENOMEM;
    }
    ch_buf_init(&s->scratch);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    rc = pthread_mutex_init(&s->damage_mu, NULL);
    CH_ASSERT(rc == 0); /* default attributes: cannot fail on Linux */
    rv = ch_mkdirs(dir, s->errmsg);
    if (rv != 0)
        goto err_after_alloc;
    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "mdb_env_create");
        goto err_after_alloc;
    }
    rc = mdb_env_set_mapsize(s->env, (size_t)map_bytes);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, STORE_N_DBS + 2);
    /* Gateway replays, health probes and a snapshot may each hold a read
     * transaction at once; LMDB's default of 126 slots is tight. */
    if (rc == 0)
        rc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "configure env");
        goto err_after_env;
    }
    /* NOTLS: read transactions are handed between threads (snapshots).
     * NOSYNC: the raft log is the source of truth; entries after the last
     * snapshot are re-applied on restart and store_sync runs before raft
     * drops log entries (docs/architecture.md "Storage"). */
    rc = mdb_env_open(s->env, dir, MDB_NOTLS | MDB_NOSYNC, 0644);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "mdb_env_open");
        goto err_after_env;
    }
    /* Free reader slots left by a process killed with -9. */
    rc = mdb_reader_check(s->env, &n_dead);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "mdb_reader_check");
        goto err_after_env;
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "begin open txn");
        goto err_after_env;
    }
    /* MDB_CREATE also adds databases introduced after the store was made
     * (append-only enum), so older stores open with them empty. */
    for (int i = 1; i <= STORE_N_DBS; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc != 0) {
            rv = store__err_from_mdb(s, rc, "mdb_dbi_open");
            goto err_after_txn;
        }
    }
    rv = check_format(s, txn);
    if (rv != 0)
        goto err_after_txn;
    rv = meta_get_u64(s, txn, s->dbi[STORE_DB_META], META_APPLIED, &s->applied);
    if (rv != 0)
        goto err_after_txn;
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "commit open txn");
        goto err_after_env;
    }
    *out = s;
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
err_after_env:
    mdb_env_close(s->env);
err_after_alloc:
    if (errmsg != NULL)
        snprintf(errmsg, CH_ERRMSG_SIZE, "store %.90s/data.mdb: %.140s", dir,
                 s->errmsg);
    ch_buf_free(&s->scratch);
    (void)pthread_mutex_destroy(&s->damage_mu);
    ch_free(s);
    return rv;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    mdb_env_close(s->env);
    ch_buf_free(&s->scratch);
    (void)pthread_mutex_destroy(&s->damage_mu);
    ch_free(s);
}

const char *store_errmsg(const struct store *s)
{
    return s->errmsg;
}

uint64_t store_applied_index(struct store *s)
{
    return s->applied;
}

/* ---- apply -------------------------------------------------------------- */

static size_t dedup_key(unsigned char *p, uint64_t topic_id,
                        const struct ch_msg *m)
{
    size_t n = 8;

    /* Validated before (msg_valid): the key fits DEDUP_KEY_MAX. */
    CH_ASSERT(m->user.n <= CH_MAX_ID_BYTES && m->msgid.n <= CH_MAX_ID_BYTES);
    CH_ASSERT(topic_id >= 1);
    store__put_be64(p, topic_id);
    memcpy(p + n, m->user.p, m->user.n);
    n += m->user.n;
    p[n++] = 0; /* ids never contain NUL, so the split is unambiguous */
    memcpy(p + n, m->msgid.p, m->msgid.n);
    return n + m->msgid.n;
}

/* Deletes one de-dup entry and its time index entry. */
static int dedup_delete(struct store *s, MDB_txn *txn, const unsigned char *dk,
                        size_t dk_n, int64_t time)
{
    unsigned char tk[DEDUP_TIME_KEY_MAX];
    MDB_val k = {.mv_size = dk_n, .mv_data = (void *)dk};
    int rc;

    rc = mdb_del(txn, s->dbi[STORE_DB_DEDUP], &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__err_from_mdb(s, rc, "delete dedup");
    store__put_be64(tk, time_to_ordered(time));
    memcpy(tk + 8, dk, dk_n);
    k.mv_size = 8 + dk_n;
    k.mv_data = tk;
    rc = mdb_del(txn, s->dbi[STORE_DB_DEDUP_TIME], &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__err_from_mdb(s, rc, "delete dedup time");
    return 0;
}

/* Drops de-dup entries older than cutoff, oldest first. The cutoff comes
 * from the command, never the clock, so every replica drops the same. */
static int dedup_purge(struct store *s, MDB_txn *txn, int64_t cutoff)
{
    unsigned char dk[DEDUP_KEY_MAX];
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv = 0;

    rc = mdb_cursor_open(txn, s->dbi[STORE_DB_DEDUP_TIME], &cur);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "open dedup time cursor");
    /* Always restart at the first key: we delete from the front, and
     * positioning after mdb_cursor_del differs between LMDB versions. */
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        size_t dk_n;
        MDB_val dkv;

        if (k.mv_size <= 8 || k.mv_size - 8 > sizeof(dk)) {
            rv = set_err(s, CH_ECORRUPT, "bad dedup time key");
            goto out;
        }
        if (ordered_to_time(store__get_be64(k.mv_data)) >= cutoff)
            break;
        dk_n = k.mv_size - 8;
        /* Copy: the key lives in a page the deletes below may touch. */
        memcpy(dk, (const unsigned char *)k.mv_data + 8, dk_n);
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            rv = store__err_from_mdb(s, rc, "delete dedup time");
            goto out;
        }
        dkv.mv_size = dk_n;
        dkv.mv_data = dk;
        rc = mdb_del(txn, s->dbi[STORE_DB_DEDUP], &dkv, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            rv = store__err_from_mdb(s, rc, "delete dedup");
            goto out;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        rv = store__err_from_mdb(s, rc, "scan dedup time");
out:
    mdb_cursor_close(cur);
    return rv;
}

/* Looks up a live de-dup entry. An entry older than cutoff (left over only
 * if the purge missed it) is deleted and reported as absent. */
static int dedup_find(struct store *s, MDB_txn *txn, const unsigned char *dk,
                      size_t dk_n, int64_t cutoff, struct store_result *r,
                      bool *found)
{
    MDB_val k = {.mv_size = dk_n, .mv_data = (void *)dk};
    MDB_val v;
    int64_t seq;
    int64_t time;
    int rc;

    *found = false;
    rc = mdb_get(txn, s->dbi[STORE_DB_DEDUP], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store__err_from_mdb(s, rc, "get dedup");
    if (v.mv_size != DEDUP_REC_BYTES)
        return set_err(s, CH_ECORRUPT, "bad dedup record");
    seq = get_be64_signed(v.mv_data);
    time = get_be64_signed((const unsigned char *)v.mv_data + 8);
    if (time < cutoff)
        return dedup_delete(s, txn, dk, dk_n, time);
    r->is_dup = true;
    r->seq = seq;
    r->time = time;
    *found = true;
    return 0;
}

static int dedup_store(struct store *s, MDB_txn *txn, const unsigned char *dk,
                       size_t dk_n, int64_t seq, int64_t time)
{
    unsigned char rec[DEDUP_REC_BYTES];
    unsigned char tk[DEDUP_TIME_KEY_MAX];
    MDB_val k = {.mv_size = dk_n, .mv_data = (void *)dk};
    MDB_val v = {.mv_size = sizeof(rec), .mv_data = rec};
    int rc;

    put_be64_signed(rec, seq);
    put_be64_signed(rec + 8, time);
    rc = mdb_put(txn, s->dbi[STORE_DB_DEDUP], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put dedup");
    store__put_be64(tk, time_to_ordered(time));
    memcpy(tk + 8, dk, dk_n);
    k.mv_size = 8 + dk_n;
    k.mv_data = tk;
    v.mv_size = 0;
    v.mv_data = rec;
    rc = mdb_put(txn, s->dbi[STORE_DB_DEDUP_TIME], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put dedup time");
    return 0;
}

static bool msg_valid(const struct ch_msg *m)
{
    /* Validated here too, not only in the gateway: keys are built from
     * these and a bad entry must fail alone, identically on every node. */
    return ch_valid_topic(m->path.p, m->path.n) &&
           ch_valid_id(m->user.p, m->user.n) &&
           (m->msgid.n == 0 || ch_valid_id(m->msgid.p, m->msgid.n)) &&
           (m->app.n == 0 || ch_valid_id(m->app.p, m->app.n));
}

static int new_topic(struct store *s, MDB_txn *txn, struct topic_rec *t)
{
    uint64_t next;
    int rv;

    rv = meta_get_u64(s, txn, s->dbi[STORE_DB_META], META_NEXT_TOPIC, &next);
    if (rv != 0)
        return rv;
    if (next == 0)
        next = 1;
    rv = meta_put_u64(s, txn, META_NEXT_TOPIC, next + 1);
    if (rv != 0)
        return rv;
    t->id = next;
    t->first_seq = 1;
    t->last_seq = 0;
    t->count = 0;
    t->bytes = 0;
    return 0;
}

static int apply_one(struct store *s, MDB_txn *txn, const struct ch_msg *msg,
                     int64_t time, int64_t cutoff, struct store_result *r)
{
    unsigned char dk[DEDUP_KEY_MAX];
    unsigned char mk[MSG_KEY_BYTES];
    unsigned char tv[TOPIC_REC_BYTES];
    size_t dk_n = 0;
    struct topic_rec t;
    struct ch_msg m = *msg;
    bool has_topic;
    bool is_dup;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv;

    r->status = 0;
    r->is_dup = false;
    r->seq = 0;
    r->time = time;
    if (!msg_valid(&m)) {
        r->status = CH_EINVAL;
        return 0;
    }
    m.time = time;
    rv = topic_load(s, txn, s->dbi[STORE_DB_TOPICS], m.path.p, m.path.n, &t,
                    &has_topic);
    if (rv != 0)
        return rv;
    /* Without the topic there can be no de-dup entry for it. */
    if (has_topic && m.msgid.n > 0) {
        dk_n = dedup_key(dk, t.id, &m);
        rv = dedup_find(s, txn, dk, dk_n, cutoff, r, &is_dup);
        if (rv != 0 || is_dup)
            return rv;
    }
    if (!has_topic) {
        rv = new_topic(s, txn, &t);
        if (rv != 0)
            return rv;
    }
    t.last_seq++;
    t.count++;
    t.bytes += (int64_t)m.body.n;
    CH_ASSERT(t.id >= 1 && t.last_seq >= 1 && t.count >= 1);

    s->scratch.len = 0;
    store__put_be64(mk, t.id);
    put_be64_signed(mk + 8, t.last_seq);
    rv = ch_record_encode(&m, &s->scratch);
    if (rv == 0)
        rv = store__rec_seal(&s->scratch, mk);
    if (rv != 0)
        return set_err(s, rv, "encode record");
    k.mv_size = sizeof(mk);
    k.mv_data = mk;
    v.mv_size = s->scratch.len;
    v.mv_data = s->scratch.data;
    rc = mdb_put(txn, s->dbi[STORE_DB_MSGS], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put message");

    topic_rec_encode(&t, tv);
    k.mv_size = m.path.n;
    k.mv_data = (void *)m.path.p;
    v.mv_size = sizeof(tv);
    v.mv_data = tv;
    rc = mdb_put(txn, s->dbi[STORE_DB_TOPICS], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put topic");

    if (m.msgid.n > 0) {
        dk_n = dedup_key(dk, t.id, &m);
        rv = dedup_store(s, txn, dk, dk_n, t.last_seq, time);
        if (rv != 0)
            return rv;
    }
    r->seq = t.last_seq;
    return 0;
}

int store_apply_publish(struct store *s, uint64_t index, int64_t time,
                        int64_t dedup_window_s, const struct ch_msg *msgs,
                        size_t n, struct store_result *results, bool *skipped)
{
    MDB_txn *txn;
    int64_t window = dedup_window_s < 0 ? 0 : dedup_window_s;
    int64_t cutoff;
    int rc;
    int rv;

    *skipped = false;
    if (n > 0 && (msgs == NULL || results == NULL))
        return set_err(s, CH_EINVAL, "apply: no messages/results");
    /* Raft re-applies entries after the last snapshot on restart. */
    if (index <= s->applied) {
        *skipped = true;
        return 0;
    }
    cutoff = time < INT64_MIN + window ? INT64_MIN : time - window;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "begin apply txn");
    rv = dedup_purge(s, txn, cutoff);
    if (rv != 0)
        goto err_after_txn;
    for (size_t i = 0; i < n; i++) {
        rv = apply_one(s, txn, &msgs[i], time, cutoff, &results[i]);
        if (rv != 0)
            goto err_after_txn;
    }
    rv = meta_put_u64(s, txn, META_APPLIED, index);
    if (rv != 0)
        goto err_after_txn;
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "commit apply txn");
    CH_ASSERT(index > s->applied); /* applied only moves forward */
    s->applied = index;
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
    return rv;
}

/* ---- member directory --------------------------------------------------- */

/* Why a change cannot be applied, or NULL. DEL ignores raft, http, role. */
static const char *member_change_error(const struct ch_member_change *c)
{
    if (c->op != CH_MEMBER_SET && c->op != CH_MEMBER_DEL)
        return "unknown member op";
    if (c->id == 0)
        return "member id 0";
    if (c->op == CH_MEMBER_DEL)
        return NULL;
    if (c->raft.n > MEMBER_RAFT_MAX_BYTES)
        return "member raft address too long";
    if (c->http.n > MEMBER_HTTP_MAX_BYTES)
        return "member http address too long";
    if ((c->raft.n > 0 && c->raft.p == NULL) ||
        (c->http.n > 0 && c->http.p == NULL))
        return "member address without bytes";
    if (c->role < 0 || c->role > MEMBER_ROLE_MAX)
        return "bad member role";
    return NULL;
}

static size_t member_encode(const struct ch_member_change *c, unsigned char *p)
{
    p[0] = (unsigned char)c->role;
    p[1] = (unsigned char)c->raft.n;
    p[2] = (unsigned char)c->http.n;
    if (c->raft.n > 0)
        memcpy(p + MEMBER_REC_HEAD_BYTES, c->raft.p, c->raft.n);
    if (c->http.n > 0)
        memcpy(p + MEMBER_REC_HEAD_BYTES + c->raft.n, c->http.p, c->http.n);
    return MEMBER_REC_HEAD_BYTES + c->raft.n + c->http.n;
}

int store__member_decode(const void *key, size_t key_n, const void *val,
                         size_t val_n, struct store_member *out)
{
    const unsigned char *v = val;
    size_t raft_n;
    size_t http_n;

    if (key == NULL || key_n != MEMBER_KEY_BYTES || val == NULL ||
        val_n < MEMBER_REC_HEAD_BYTES)
        return CH_ECORRUPT;
    raft_n = v[1];
    http_n = v[2];
    if (store__get_be64(key) == 0 || v[0] > MEMBER_ROLE_MAX ||
        raft_n > MEMBER_RAFT_MAX_BYTES || http_n > MEMBER_HTTP_MAX_BYTES ||
        val_n != MEMBER_REC_HEAD_BYTES + raft_n + http_n)
        return CH_ECORRUPT;
    out->id = store__get_be64(key);
    out->role = v[0];
    memcpy(out->raft, v + MEMBER_REC_HEAD_BYTES, raft_n);
    out->raft[raft_n] = '\0';
    memcpy(out->http, v + MEMBER_REC_HEAD_BYTES + raft_n, http_n);
    out->http[http_n] = '\0';
    return 0;
}

static int member_apply_one(struct store *s, MDB_txn *txn,
                            const struct ch_member_change *c)
{
    unsigned char key[MEMBER_KEY_BYTES];
    unsigned char rec[MEMBER_REC_MAX_BYTES];
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
    MDB_val v;
    int rc;

    store__put_be64(key, c->id);
    if (c->op == CH_MEMBER_DEL) {
        rc = mdb_del(txn, s->dbi[STORE_DB_MEMBERS], &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return store__err_from_mdb(s, rc, "delete member");
        return 0;
    }
    v.mv_size = member_encode(c, rec);
    v.mv_data = rec;
    rc = mdb_put(txn, s->dbi[STORE_DB_MEMBERS], &k, &v, 0);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "put member");
    return 0;
}

int store_apply_members(struct store *s, uint64_t index,
                        const struct ch_member_change *changes, size_t n,
                        bool *skipped)
{
    const char *bad = NULL;
    size_t bad_i = 0;
    MDB_txn *txn;
    int rc;
    int rv;

    *skipped = false;
    if (n > 0 && changes == NULL)
        return set_err(s, CH_EINVAL, "apply members: no changes");
    if (index <= s->applied) {
        *skipped = true;
        return 0;
    }
    /* All or nothing: check every change before writing any. */
    for (size_t i = 0; i < n && bad == NULL; i++) {
        bad = member_change_error(&changes[i]);
        bad_i = i;
    }

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "begin apply members txn");
    for (size_t i = 0; i < n && bad == NULL; i++) {
        rv = member_apply_one(s, txn, &changes[i]);
        if (rv != 0)
            goto err_after_txn;
    }
    /* Even a refused entry advances the applied index: it is refused the
     * same way on every replica and must not be applied again. */
    rv = meta_put_u64(s, txn, META_APPLIED, index);
    if (rv != 0)
        goto err_after_txn;
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "commit apply members txn");
    s->applied = index;
    if (bad != NULL) {
        snprintf(s->errmsg, sizeof(s->errmsg),
                 "apply members index=%llu change=%zu: %s",
                 (unsigned long long)index, bad_i, bad);
        return CH_EINVAL;
    }
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
    return rv;
}

int store_set_applied(struct store *s, uint64_t index)
{
    MDB_txn *txn;
    int rc;
    int rv;

    if (index <= s->applied)
        return 0;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "begin txn");
    rv = meta_put_u64(s, txn, META_APPLIED, index);
    if (rv != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "commit txn");
    s->applied = index;
    return 0;
}

int store_fill(struct store *s, const char *path, size_t path_n,
               const struct ch_msg *msgs, size_t n)
{
    unsigned char hk[HOLE_KEY_BYTES];
    unsigned char mk[MSG_KEY_BYTES];
    struct store_hole h;
    struct topic_rec t;
    bool found;
    MDB_txn *txn;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv;

    CH_ASSERT(n >= 1);
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "begin fill txn");
    rv = topic_load(s, txn, s->dbi[STORE_DB_TOPICS], path, path_n, &t, &found);
    if (rv != 0)
        goto err;
    if (found)
        rv = hole_find(txn, s->dbi[STORE_DB_HOLES], t.id, msgs[0].seq, &h,
                       &found);
    if (rv != 0)
        goto err;
    /* Filled from the start of a hole, contiguously, within it. */
    if (!found || h.from_seq != msgs[0].seq ||
        msgs[0].seq + (int64_t)n - 1 > h.to_seq) {
        rv = set_err(s, CH_EINVAL, "fill: not the start of a missing range");
        goto err;
    }
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].seq != h.from_seq + (int64_t)i || !msg_valid(&msgs[i])) {
            rv = set_err(s, CH_EINVAL, "fill: bad message");
            goto err;
        }
        s->scratch.len = 0;
        store__put_be64(mk, t.id);
        put_be64_signed(mk + 8, msgs[i].seq);
        rv = ch_record_encode(&msgs[i], &s->scratch);
        if (rv == 0)
            rv = store__rec_seal(&s->scratch, mk);
        if (rv != 0) {
            rv = set_err(s, rv, "encode record");
            goto err;
        }
        k.mv_size = sizeof mk;
        k.mv_data = mk;
        v.mv_size = s->scratch.len;
        v.mv_data = s->scratch.data;
        rc = mdb_put(txn, s->dbi[STORE_DB_MSGS], &k, &v, MDB_NOOVERWRITE);
        if (rc != 0) {
            rv = store__err_from_mdb(s, rc, "fill: put message");
            goto err;
        }
    }
    store__put_be64(hk, t.id);
    put_be64_signed(hk + 8, h.from_seq);
    k.mv_size = sizeof hk;
    k.mv_data = hk;
    rc = mdb_del(txn, s->dbi[STORE_DB_HOLES], &k, NULL);
    if (rc != 0) {
        rv = store__err_from_mdb(s, rc, "fill: delete hole");
        goto err;
    }
    if (h.from_seq + (int64_t)n <= h.to_seq) {
        rv = store__hole_put(s, txn, t.id, h.from_seq + (int64_t)n, h.to_seq,
                             path, path_n);
        if (rv != 0)
            goto err;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__err_from_mdb(s, rc, "commit fill txn");
    return 0;

err:
    mdb_txn_abort(txn);
    return rv;
}

/* ---- reads -------------------------------------------------------------- */

/* Read paths may run on any thread: they return codes but leave the
 * store's errmsg alone (it belongs to the loop thread). */

int store_read_begin(struct store *s, struct store_txn **out)
{
    struct store_txn *t;
    int rc;

    t = ch_malloc(sizeof(*t));
    if (t == NULL)
        return CH_ENOMEM;
    t->s = s;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    if (rc != 0) {
        ch_free(t);
        return store__err_from_mdb(NULL, rc, "begin read txn");
    }
    *out = t;
    return 0;
}

void store_read_end(struct store_txn *t)
{
    if (t == NULL)
        return;
    CH_ASSERT(t->txn != NULL && t->s != NULL);
    mdb_txn_abort(t->txn);
    ch_free(t);
}

int store_topic_get(struct store_txn *t, const char *path, size_t path_n,
                    struct store_topic *out)
{
    struct topic_rec r;
    bool found;
    int rv;

    if (!ch_valid_topic(path, path_n))
        return CH_ENOTFOUND; /* such a topic can never have been written */
    rv = topic_load(NULL, t->txn, t->s->dbi[STORE_DB_TOPICS], path, path_n, &r,
                    &found);
    if (rv != 0)
        return rv;
    if (!found)
        return CH_ENOTFOUND;
    topic_to_public(&r, out);
    return 0;
}

/* Reports damage found by a read (any thread). A range already waiting is
 * not queued twice. */
static void damaged(struct store *s, const char *path, size_t path_n,
                    int64_t from, int64_t to, const char *why)
{
    struct store_damage *d;
    int rc;

    if (to < from)
        to = from;
    rc = pthread_mutex_lock(&s->damage_mu);
    CH_ASSERT(rc == 0);
    for (unsigned i = 0; i < s->n_damage; i++) {
        d = &s->damage[i];
        if (d->path_n == path_n && memcmp(d->path, path, path_n) == 0 &&
            d->from_seq == from)
            goto out;
    }
    if (s->n_damage < STORE_DAMAGE_MAX) {
        d = &s->damage[s->n_damage++];
        CH_ASSERT(path_n <= CH_MAX_TOPIC_BYTES);
        memcpy(d->path, path, path_n);
        d->path[path_n] = '\0';
        d->path_n = path_n;
        d->from_seq = from;
        d->to_seq = to;
        snprintf(d->why, sizeof d->why, "%s", why);
    }
out:
    rc = pthread_mutex_unlock(&s->damage_mu);
    CH_ASSERT(rc == 0);
}

bool store_damage_take(struct store *s, struct store_damage *out)
{
    bool found = false;
    int rc = pthread_mutex_lock(&s->damage_mu);

    CH_ASSERT(rc == 0);
    if (s->n_damage > 0) {
        *out = s->damage[0];
        memmove(&s->damage[0], &s->damage[1],
                (s->n_damage - 1) * sizeof s->damage[0]);
        s->n_damage--;
        found = true;
    }
    rc = pthread_mutex_unlock(&s->damage_mu);
    CH_ASSERT(rc == 0);
    return found;
}

#define REBUILD_MARK "REBUILD"

int store_rebuild_mark(struct store *s, const char *why)
{
    char path[CH_PATH_MAX + 16];
    FILE *f;
    int rv = 0;

    snprintf(path, sizeof path, "%s/" REBUILD_MARK, s->dir);
    f = fopen(path, "w");
    if (f == NULL)
        return set_err(s, CH_EIO, "cannot write the rebuild mark");
    if (fprintf(f, "%s\n", why) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        rv = set_err(s, CH_EIO, "cannot write the rebuild mark");
    if (fclose(f) != 0 && rv == 0)
        rv = set_err(s, CH_EIO, "cannot write the rebuild mark");
    return rv;
}

int store_rebuild_prepare(const char *dir, bool *rebuilt, char *errmsg)
{
    char mark[CH_PATH_MAX + 16];
    char from[CH_PATH_MAX + 16];
    char to[CH_PATH_MAX + 32];

    *rebuilt = false;
    snprintf(mark, sizeof mark, "%s/" REBUILD_MARK, dir);
    if (access(mark, F_OK) != 0)
        return 0;
    snprintf(from, sizeof from, "%s/data.mdb", dir);
    snprintf(to, sizeof to, "%s/data.mdb.damaged", dir);
    if (rename(from, to) != 0 && errno != ENOENT) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "store %.100s: cannot move aside: %s",
                 from, strerror(errno));
        return CH_EIO;
    }
    snprintf(from, sizeof from, "%s/lock.mdb", dir);
    if (unlink(from) != 0 && errno != ENOENT) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "store %.100s: %s", from,
                 strerror(errno));
        return CH_EIO;
    }
    if (unlink(mark) != 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "store %.100s: %s", mark,
                 strerror(errno));
        return CH_EIO;
    }
    *rebuilt = true;
    return 0;
}

static int scrub_count(void *arg, const struct ch_msg *m)
{
    struct store_scrub *sc = arg;

    sc->records++;
    sc->bytes += m->body.n;
    return 0;
}

/* Makes the cursor's key the topic being scrubbed, from its first seq. */
static void scrub_topic(struct store_scrub *sc, const MDB_val *k)
{
    size_t n = k->mv_size <= CH_MAX_TOPIC_BYTES ? k->mv_size : 0;

    memcpy(sc->path, k->mv_data, n);
    sc->path[n] = '\0';
    sc->path_n = n;
    sc->next_seq = 1;
}

int store_scrub_step(struct store *s, struct store_scrub *sc, int64_t budget,
                     size_t max_bytes)
{
    uint64_t bytes_end = sc->bytes + max_bytes;
    struct store_txn *t;
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv;

    if (sc->is_done)
        return 0;
    rv = store_read_begin(s, &t);
    if (rv != 0)
        return rv;
    rc = mdb_cursor_open(t->txn, s->dbi[STORE_DB_TOPICS], &cur);
    if (rc != 0) {
        store_read_end(t);
        return store__err_from_mdb(NULL, rc, "open topics cursor");
    }
    if (sc->next_seq == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0)
            scrub_topic(sc, &k);
    } else {
        k.mv_size = sc->path_n;
        k.mv_data = sc->path;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && (k.mv_size != sc->path_n ||
                        memcmp(k.mv_data, sc->path, sc->path_n) != 0))
            scrub_topic(sc, &k); /* that topic is gone: the next one */
    }
    while (rc == 0 && budget > 0 && sc->bytes < bytes_end) {
        uint64_t before = sc->records;
        int64_t next = sc->next_seq;

        rv = store_read_range(t, sc->path, sc->path_n, sc->next_seq, budget,
                              (size_t)(bytes_end - sc->bytes), scrub_count, sc,
                              &next);
        budget -= (int64_t)(sc->records - before);
        if (sc->bytes >= bytes_end)
            budget = 0;
        if (rv == CH_EMISSING) {
            sc->unread++; /* a hole, or damage the read reported */
        } else if (rv != 0) {
            break;
        } else if (budget <= 0) {
            sc->next_seq = next; /* may have more: resume there */
            break;
        }
        rv = 0;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (rc == 0)
            scrub_topic(sc, &k);
    }
    if (rc == MDB_NOTFOUND)
        sc->is_done = true;
    else if (rc != 0 && rv == 0)
        rv = store__err_from_mdb(NULL, rc, "scrub topics");
    mdb_cursor_close(cur);
    store_read_end(t);
    return rv;
}

int store_read_range(struct store_txn *t, const char *path, size_t path_n,
                     int64_t from_seq, int64_t max_count, size_t max_bytes,
                     store_msg_cb cb, void *arg, int64_t *next_seq)
{
    unsigned char mk[MSG_KEY_BYTES];
    struct topic_rec r;
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int64_t next = from_seq;
    int64_t end;
    int64_t n_passed = 0;
    size_t n_bytes = 0;
    struct store_hole hole;
    bool has_hole;
    bool is_limited = false;
    bool found;
    int rc;
    int rv;

    CH_ASSERT(t != NULL && cb != NULL);
    if (next_seq != NULL)
        *next_seq = from_seq;
    if (!ch_valid_topic(path, path_n))
        return 0;
    rv = topic_load(NULL, t->txn, t->s->dbi[STORE_DB_TOPICS], path, path_n, &r,
                    &found);
    if (rv != 0 || !found)
        return rv;
    if (from_seq > r.last_seq)
        return 0;
    if (from_seq < r.first_seq)
        from_seq = r.first_seq; /* >= 1 (store__topic_rec_valid) */
    next = from_seq;
    rv = hole_find(t->txn, t->s->dbi[STORE_DB_HOLES], r.id, from_seq, &hole,
                   &has_hole);
    if (rv != 0)
        return rv;
    if (has_hole && hole.from_seq <= from_seq)
        return CH_EMISSING; /* nothing here to read yet */

    rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_MSGS], &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open msgs cursor");
    store__put_be64(mk, r.id);
    put_be64_signed(mk + 8, from_seq);
    k.mv_size = sizeof(mk);
    k.mv_data = mk;
    /* Every seq from the topic's first to its last is a record or in a
     * hole (store_restore, store_fill): a missing one, a record whose
     * checksum fails or keys out of order are damage on disk. The records
     * before it are passed; it is reported (store_damage_take) and read as
     * a hole until repaired. */
    end = has_hole ? hole.from_seq - 1 : r.last_seq;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct ch_msg m;
        size_t rec_n;
        int stop;

        if (k.mv_size != MSG_KEY_BYTES) {
            damaged(t->s, path, path_n, next, end, "bad key");
            rv = CH_EMISSING;
            goto out;
        }
        if (store__get_be64(k.mv_data) != r.id)
            break; /* past this topic's range */
        memset(&m, 0, sizeof(m));
        m.path.p = path;
        m.path.n = path_n;
        m.seq = get_be64_signed((const unsigned char *)k.mv_data + 8);
        if (m.seq > r.last_seq)
            break; /* beyond the topic's record: not served */
        if (m.seq < next) {
            damaged(t->s, path, path_n, next, end, "keys out of order");
            rv = CH_EMISSING;
            goto out;
        }
        if (has_hole && m.seq >= hole.from_seq)
            break; /* the records after a hole wait until it is filled */
        if (m.seq > next) {
            damaged(t->s, path, path_n, next, m.seq - 1, "records missing");
            rv = CH_EMISSING;
            goto out;
        }
        if (!store__rec_open(&k, &v, &rec_n) ||
            ch_record_decode(v.mv_data, rec_n, &m) != 0) {
            damaged(t->s, path, path_n, m.seq, m.seq, "checksum mismatch");
            rv = CH_EMISSING;
            goto out;
        }
        stop = cb(arg, &m);
        n_passed++;
        n_bytes += m.body.n;
        next = m.seq + 1;
        if (stop != 0 || (max_count > 0 && n_passed >= max_count) ||
            (max_bytes > 0 && n_bytes >= max_bytes)) {
            is_limited = true;
            break;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        /* LMDB found its own structure damaged (MDB_CORRUPTED,
         * MDB_PAGE_NOTFOUND): what is left of the range is unreadable. */
        damaged(t->s, path, path_n, next, end, mdb_strerror(rc));
        rv = CH_EMISSING;
        goto out;
    }
    if (!is_limited && next <= end) {
        damaged(t->s, path, path_n, next, end, "records missing");
        rv = CH_EMISSING;
        goto out;
    }
    /* The records before a hole are contiguous: a read that ran out of them
     * stopped at the hole, which the caller must hear about (a read that
     * just ended would look like the end of the topic: a gap). */
    if (rv == 0 && has_hole && !is_limited) {
        CH_ASSERT(next == hole.from_seq);
        rv = CH_EMISSING;
    }
out:
    mdb_cursor_close(cur);
    if (next_seq != NULL)
        *next_seq = next;
    return rv;
}

int store_topics_list(struct store_txn *t, const char *prefix, size_t prefix_n,
                      store_topic_cb cb, void *arg)
{
    bool all = prefix_n == 0 || (prefix_n == 1 && prefix[0] == '/');
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv = 0;

    if (!all && prefix_n > CH_MAX_TOPIC_BYTES)
        return 0; /* longer than any topic */
    rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_TOPICS], &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open topics cursor");
    k.mv_size = prefix_n;
    k.mv_data = (void *)prefix;
    for (rc = mdb_cursor_get(cur, &k, &v, all ? MDB_FIRST : MDB_SET_RANGE);
         rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct topic_rec r;
        struct store_topic pub;

        if (!all &&
            (k.mv_size < prefix_n || memcmp(k.mv_data, prefix, prefix_n) != 0))
            break; /* keys sharing the prefix bytes are contiguous */
        /* "/foo-x" and "/foo.y" sort between "/foo" and "/foo/..." */
        if (!all && !ch_topic_under(k.mv_data, k.mv_size, prefix, prefix_n))
            continue;
        if (topic_rec_decode(&v, &r) != 0) {
            rv = CH_ECORRUPT;
            break;
        }
        topic_to_public(&r, &pub);
        if (cb(arg, k.mv_data, k.mv_size, &pub) != 0)
            break;
    }
    if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND)
        rv = store__err_from_mdb(NULL, rc, "list topics");
    mdb_cursor_close(cur);
    return rv;
}

int store_members_list(struct store_txn *t, store_member_cb cb, void *arg)
{
    struct store_member m;
    MDB_cursor *cur;
    MDB_val k;
    MDB_val v;
    int rc;
    int rv = 0;

    rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_MEMBERS], &cur);
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "open members cursor");
    /* Big-endian keys: LMDB's byte order is id order. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (store__member_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                                 &m) != 0) {
            rv = CH_ECORRUPT;
            break;
        }
        if (cb(arg, &m) != 0)
            break;
    }
    if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND)
        rv = store__err_from_mdb(NULL, rc, "list members");
    mdb_cursor_close(cur);
    return rv;
}

int store_member_get(struct store_txn *t, uint64_t id, struct store_member *out)
{
    unsigned char key[MEMBER_KEY_BYTES];
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
    MDB_val v;
    int rc;

    if (id == 0)
        return CH_ENOTFOUND; /* never stored */
    store__put_be64(key, id);
    rc = mdb_get(t->txn, t->s->dbi[STORE_DB_MEMBERS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return CH_ENOTFOUND;
    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "get member");
    return store__member_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                                out);
}

/* ---- maintenance -------------------------------------------------------- */

int store_sync(struct store *s)
{
    int rc = mdb_env_sync(s->env, 1);

    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "mdb_env_sync"); /* any thread */
    return 0;
}

int store_check(struct store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);

    if (rc != 0)
        return store__err_from_mdb(NULL, rc, "begin read txn");
    mdb_txn_abort(txn);
    return 0;
}
