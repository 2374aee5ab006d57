/* The store: one LMDB environment holding per-topic message logs, topic
 * metadata, the publisher-message-id de-dup table and the applied raft
 * index. Writes happen only through apply (one write transaction per raft
 * entry, the applied index inside it, so re-applying is a no-op). Reads use
 * read transactions; they are cheap (memory-mapped).
 *
 * Threads: one thread (the loop) writes; read transactions may be used on
 * any thread, each on one thread only (env opened with MDB_NOTLS). */
#ifndef CHORUS_STORE_STORE_H
#define CHORUS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/limits.h"

struct store;
struct store_txn;  /* a read transaction */
struct store_snap; /* a snapshot in progress (pinned read view) */

/* Topic metadata. */
struct store_topic {
    int64_t first_seq; /* first stored sequenceId (1 unless trimmed) */
    int64_t last_seq;  /* last assigned sequenceId */
    int64_t count;     /* stored messages */
    int64_t bytes;     /* sum of stored body bytes */
};

/* Outcome of one publish of an applied batch. */
struct store_result {
    int status;     /* 0, or CH_EINVAL (bad path/ids: not stored) */
    bool is_dup;    /* an earlier publish with the same (path, user, msgid)
                       within the window: seq/time are the original's */
    int64_t seq;    /* sequenceId assigned (or the original's) */
    int64_t time;   /* publishing time (or the original's) */
    uint64_t index; /* raft index of the entry (set by the cluster) */
};

/* Opens (creating) the store in directory `dir` (created if missing).
 * On error returns CH_EIO/CH_ENOMEM/CH_ECORRUPT and writes a reason into
 * errmsg (CH_ERRMSG_SIZE bytes). *out owned; free with store_close. */
int store_open(const char *dir, uint64_t map_bytes, struct store **out,
               char *errmsg);
void store_close(struct store *s);
/* Last error text of the store (for logs). */
const char *store_errmsg(const struct store *s);

/* Index of the last raft entry whose effect is in the store (0 if none). */
uint64_t store_applied_index(struct store *s);

/* Applies a publish batch in ONE write transaction: if index <= applied
 * index, nothing changes and *skipped is true (results untouched).
 * Otherwise, first de-dup entries older than time - dedup_window_s are
 * dropped; then per message, in order: validate (path, ids), de-dup by
 * (path, user, msgid) when msgid is non-empty, assign the topic's next
 * sequenceId, store the record, update topic meta and de-dup table; finally
 * the applied index becomes `index`. results[i] is filled for each msg.
 * Deterministic: uses only its arguments and stored state.
 * Returns 0, or CH_EIO/CH_ENOSPACE on an LMDB failure (nothing applied). */
int store_apply_publish(struct store *s, uint64_t index, int64_t time,
                        int64_t dedup_window_s, const struct ch_msg *msgs,
                        size_t n, struct store_result *results, bool *skipped);

/* A member of the replicated directory. */
struct store_member {
    uint64_t id;
    char raft[CH_MAX_ADDR_BYTES + 1]; /* IPv4:port */
    char http[CH_MAX_ADDR_BYTES + 1]; /* host:port */
    int role;                         /* 0 voter, 1 standby, 2 spare */
};

/* Applies member directory changes in ONE write transaction, in order
 * (SET inserts or replaces by id, DEL removes; DEL of an unknown id is not
 * an error), with the applied index, like store_apply_publish (skipped when
 * index <= applied). Returns 0, CH_EINVAL (a field too long: nothing
 * applied, but the applied index still advances), CH_EIO/CH_ENOSPACE. */
int store_apply_members(struct store *s, uint64_t index,
                        const struct ch_member_change *changes, size_t n,
                        bool *skipped);

/* Called per member in id order; return non-zero to stop. */
typedef int (*store_member_cb)(void *arg, const struct store_member *m);
int store_members_list(struct store_txn *t, store_member_cb cb, void *arg);
/* One member; CH_ENOTFOUND if absent. */
int store_member_get(struct store_txn *t, uint64_t id,
                     struct store_member *out);

/* Records that entry `index` was applied with no other effect. */
int store_set_applied(struct store *s, uint64_t index);

/* Read transactions. */
int store_read_begin(struct store *s, struct store_txn **out);
void store_read_end(struct store_txn *t);

/* Topic metadata; CH_ENOTFOUND if the topic was never written. */
int store_topic_get(struct store_txn *t, const char *path, size_t path_n,
                    struct store_topic *out);

/* Called per message; `m` (all fields set, path included) is valid only
 * during the call. Return non-zero to stop the read (no error). */
typedef int (*store_msg_cb)(void *arg, const struct ch_msg *m);

/* Reads messages of exactly `path` with seq >= from_seq, in order, calling
 * cb for each, until max_count messages were passed (max_count <= 0: no
 * limit), the body bytes passed reach max_bytes (after at least one message;
 * 0: no limit), cb returns non-zero (that message counts as passed), or the
 * log ends. *next_seq (may be NULL) is the seq after the last passed
 * message, or from_seq if none. Returns 0 or CH_EIO/CH_ECORRUPT, or
 * CH_EMISSING when the read reached messages this node lacks (a hole, see
 * store_restore): the messages before it were passed, *next_seq is the
 * first missing one; ask again once it was filled. */
int store_read_range(struct store_txn *t, const char *path, size_t path_n,
                     int64_t from_seq, int64_t max_count, size_t max_bytes,
                     store_msg_cb cb, void *arg, int64_t *next_seq);

/* Called per topic in path order; return non-zero to stop. */
typedef int (*store_topic_cb)(void *arg, const char *path, size_t path_n,
                              const struct store_topic *t);
/* Lists topics equal to or below `prefix` (whole segments: "/foo" matches
 * "/foo" and "/foo/bar", not "/foobar"); prefix_n == 0 or "/" lists all. */
int store_topics_list(struct store_txn *t, const char *prefix, size_t prefix_n,
                      store_topic_cb cb, void *arg);

/* Snapshots carry the store's state, not its messages (docs/architecture.md
 * "Snapshots and catch-up"): topic metadata, the de-dup table, members and
 * meta. begin (loop thread) pins a consistent read view; write (any one
 * thread, e.g. the libuv pool) serializes it into `out`; end releases the
 * view (same thread as write, or the loop once write is done). The format
 * starts with a fixed header carrying the applied index. Before a snapshot
 * may replace log entries the store must be synced (store_sync): the
 * messages it describes are only in LMDB. */
int store_snapshot_begin(struct store *s, struct store_snap **out);
int store_snapshot_write(struct store_snap *snap, struct ch_buf *out);
void store_snapshot_end(struct store_snap *snap);
/* Reads the applied index recorded in a snapshot buffer. */
int store_snapshot_index(const void *buf, size_t len, uint64_t *index);
/* Makes the store's state the snapshot's, in one write transaction. The
 * local store must be a prefix of the snapshot's history (it applied fewer
 * entries of the same log): its messages are kept, and every message the
 * snapshot's topics hold beyond them becomes a hole, to be fetched from a
 * peer (store_hole_first, store_fill). A snapshot of the older, whole-store
 * format replaces everything. Returns 0 or CH_ECORRUPT (store unchanged:
 * damaged snapshot, or a local store that is not a prefix) / CH_EIO. */
int store_restore(struct store *s, const void *buf, size_t len);
/* A range of messages this node lacks. */
struct store_hole {
    uint64_t topic_id;
    int64_t from_seq; /* first missing */
    int64_t to_seq;   /* last missing */
    char path[CH_MAX_TOPIC_BYTES + 1];
    size_t path_n;
};
/* The first hole (topic id order), or CH_ENOTFOUND when none. */
int store_hole_first(struct store_txn *t, struct store_hole *out);
/* Holes and messages missing in all. */
int store_missing(struct store_txn *t, uint64_t *n_holes, int64_t *n_msgs);
/* Stores fetched messages msgs[0..n) (seq and time set, as a peer read
 * them) of topic `path` in one write transaction: they must start at the
 * first seq of one of its holes and be contiguous within it; the hole
 * shrinks or goes. Applied index and topic metadata are untouched.
 * Returns 0, CH_EINVAL (not a hole's start, bad message: nothing stored),
 * CH_EIO/CH_ENOSPACE. */
int store_fill(struct store *s, const char *path, size_t path_n,
               const struct ch_msg *msgs, size_t n);

/* A range of one topic's messages a read found damaged on disk (a record
 * whose checksum fails, records missing, LMDB reporting its own structure
 * corrupt): never served; the node stops to rebuild its store
 * (store_rebuild_mark, docs/architecture.md "Damaged files"). */
struct store_damage {
    char path[CH_MAX_TOPIC_BYTES + 1];
    size_t path_n;
    int64_t from_seq;
    int64_t to_seq;
    char why[48];
};
/* Takes the oldest damage report not yet taken; false when none. Reads
 * report from any thread; up to STORE_DAMAGE_MAX wait, more are dropped
 * (found again by the next read of that range). */
bool store_damage_take(struct store *s, struct store_damage *out);
/* Damage is not repaired in place: LMDB has no checksums of its own, and
 * writing into a damaged page can crash it (seen: mdb_cursor_del on a page
 * with a flipped node size). Instead the store is marked (a file REBUILD
 * next to data.mdb, holding `why`), the node stops, and at the next start
 * store_rebuild_prepare moves data.mdb aside: the node starts on an empty
 * store, which the raft snapshot and log rebuild and catch-up fills from
 * peers (docs/architecture.md "Damaged files"). Returns 0 or CH_EIO. */
int store_rebuild_mark(struct store *s, const char *why);
/* Before store_open: when dir holds a REBUILD mark, moves data.mdb to
 * data.mdb.damaged (replacing an older one), removes lock.mdb and the mark,
 * and sets *rebuilt. Returns 0 or CH_EIO (errmsg set). */
int store_rebuild_prepare(const char *dir, bool *rebuilt, char *errmsg);

/* A pass over every stored message checking what reads check (checksums,
 * no record missing), a slice at a time; damage found is reported as by
 * reads. Zeroed to start. */
struct store_scrub {
    char path[CH_MAX_TOPIC_BYTES + 1]; /* topic being read */
    size_t path_n;
    int64_t next_seq; /* 0: start at the first topic */
    bool is_done;
    uint64_t records; /* checked so far */
    uint64_t bytes;   /* their body bytes */
    uint64_t unread;  /* topic ranges skipped: holes or damage */
};
/* Checks up to `budget` more messages and about `max_bytes` of bodies.
 * Returns 0 (sc->is_done once the last topic was read) or CH_EIO. */
int store_scrub_step(struct store *s, struct store_scrub *sc, int64_t budget,
                     size_t max_bytes);

/* Flushes the store to disk (mdb_env_sync force). Any thread (the
 * snapshot's pool thread calls it while the loop writes). */
int store_sync(struct store *s);
/* Cheap health probe: a read transaction can be opened. */
int store_check(struct store *s);

#endif
