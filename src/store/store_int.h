/* Store internals shared by store.c, snapshot.c and the store's unit tests:
 * the struct body, the LMDB layout and the key/value encodings. */
#ifndef CHORUS_STORE_STORE_INT_H
#define CHORUS_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>
#include <pthread.h>

#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"

/* On-disk format version, in meta "format" (also in snapshots). 2: message
 * values end in a checksum (REC_CRC_BYTES). */
#define STORE_FORMAT_VERSION 2u

/* Named databases of the one environment. The numbers identify them in
 * snapshots: append-only. */
enum store_db {
    STORE_DB_TOPICS = 1,     /* path -> struct topic_rec (TOPIC_REC_BYTES) */
    STORE_DB_MSGS = 2,       /* topic id BE8 + seq BE8 -> ch_record + CRC */
    STORE_DB_DEDUP = 3,      /* topic id BE8 + user + 0 + msgid -> seq, time */
    STORE_DB_DEDUP_TIME = 4, /* time (ordered BE8) + dedup key -> empty */
    STORE_DB_META = 5,       /* "applied", "format", "next_topic" -> BE */
    STORE_DB_MEMBERS = 6,    /* member id BE8 -> member record */
    /* Local, never in snapshots: message ranges this node lacks (restored
     * from a state snapshot, not yet fetched from a peer). topic id BE8 +
     * from seq BE8 -> to seq BE8 (inclusive) + topic path. */
    STORE_DB_HOLES = 7,
};
#define STORE_N_DBS 7
/* holes key: topic id + first missing seq; value head: last missing seq. */
#define HOLE_KEY_BYTES 16
#define HOLE_VAL_HEAD_BYTES 8

/* topics value: id, first_seq, last_seq, count, bytes, each 8 bytes BE. */
#define TOPIC_REC_BYTES 40
/* dedup value: seq, time, each 8 bytes BE. */
#define DEDUP_REC_BYTES 16
/* msgs key: topic id + seq. */
#define MSG_KEY_BYTES 16
/* msgs value: the record, then CRC-32 (zlib) of key and record, BE. A
 * record damaged on disk is found when it is read, never served
 * (docs/architecture.md "Damaged files"). */
#define REC_CRC_BYTES 4
/* members key: member id (never 0). */
#define MEMBER_KEY_BYTES 8
/* members value: u8 role, u8 raft length, u8 http length, raft bytes, http
 * bytes (no NULs added; lengths bounded by struct store_member). */
#define MEMBER_REC_HEAD_BYTES 3
#define MEMBER_RAFT_MAX_BYTES (sizeof(((struct store_member *)0)->raft) - 1)
#define MEMBER_HTTP_MAX_BYTES (sizeof(((struct store_member *)0)->http) - 1)
#define MEMBER_REC_MAX_BYTES                                                   \
    (MEMBER_REC_HEAD_BYTES + MEMBER_RAFT_MAX_BYTES + MEMBER_HTTP_MAX_BYTES)
#define MEMBER_ROLE_MAX 2 /* 0 voter, 1 standby, 2 spare */
/* LMDB's compiled-in key limit (mdb_env_get_maxkeysize). */
#define STORE_MAX_KEY_BYTES 511

#define META_APPLIED "applied"
#define META_FORMAT "format"
#define META_NEXT_TOPIC "next_topic"

/* Longest store directory kept (its REBUILD mark is written there). */
#define CH_PATH_MAX 4096

/* Damage reports waiting for the loop (store_damage_take). */
#define STORE_DAMAGE_MAX 64

struct store {
    MDB_env *env;
    pthread_mutex_t damage_mu; /* reads may run on any thread */
    struct store_damage damage[STORE_DAMAGE_MAX];
    unsigned n_damage;
    MDB_dbi dbi[STORE_N_DBS + 1]; /* indexed by enum store_db */
    uint64_t applied;             /* cached meta "applied"; loop thread */
    struct ch_buf scratch;        /* record encoding in apply; loop thread */
    char errmsg[CH_ERRMSG_SIZE];  /* last error text (write path, open) */
    char dir[CH_PATH_MAX];        /* the environment's directory */
};

struct store_txn {
    struct store *s;
    MDB_txn *txn; /* read-only */
};

/* Translates an MDB code to CH_* and keeps `what: <mdb text>` in errmsg. */
/* True when p[0..n) is a topic record that obeys its invariants: id >= 1,
 * first_seq >= 1, first_seq - 1 <= last_seq < INT64_MAX,
 * 0 <= count <= last_seq - first_seq + 1, bytes >= 0. Records come from
 * the disk and from snapshots: damage is reported, never asserted. */
bool store__topic_rec_valid(const void *p, size_t n);
int store__err_from_mdb(struct store *s, int mdb_rc, const char *what);

/* A topic's id and last sequenceId in txn; *found false when absent.
 * For snapshot restore, which compares the local store with the
 * snapshot's. Returns 0 or CH_EIO/CH_ECORRUPT. */
int store__topic_ids(MDB_txn *txn, MDB_dbi dbi, const void *path, size_t path_n,
                     uint64_t *id, int64_t *last_seq, bool *found);
/* Records in txn that topic `id` (path) lacks seqs from..to. */
int store__hole_put(struct store *s, MDB_txn *txn, uint64_t id, int64_t from,
                    int64_t to, const void *path, size_t path_n);

/* Appends to b (holding a record) its checksum for the msgs key. Returns 0
 * or CH_ENOMEM. */
int store__rec_seal(struct ch_buf *b, const unsigned char key[MSG_KEY_BYTES]);
/* True when the msgs value v checks out for key k; *rec_n is then the
 * record's length without the checksum. */
bool store__rec_open(const MDB_val *k, const MDB_val *v, size_t *rec_n);

void store__put_be64(unsigned char *p, uint64_t v);
uint64_t store__get_be64(const unsigned char *p);

/* Decodes a members record (key and value as stored) into *out, NUL
 * terminating the addresses. Shared with snapshot restore, which validates
 * records with it. Returns 0 or CH_ECORRUPT. */
int store__member_decode(const void *key, size_t key_n, const void *val,
                         size_t val_n, struct store_member *out);

#endif
