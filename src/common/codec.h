/* msgpack codecs, each wire format described once:
 *  - the raft command (one entry = one batch of publishes, or another op),
 *  - the stored message record.
 * Decoders never copy byte fields: they point into the input buffer. */
#ifndef CHORUS_COMMON_CODEC_H
#define CHORUS_COMMON_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "common/buf.h"

/* Borrowed bytes: pointer + length, never NUL-terminated. */
struct ch_bytes {
    const char *p;
    size_t n;
};

/* One message. In a publish command seq is 0; time is the command's. */
struct ch_msg {
    struct ch_bytes path;
    struct ch_bytes user;   /* publisherUserId */
    struct ch_bytes app;    /* publisherApplicationId */
    struct ch_bytes msgid;  /* publisherMessageId, may be empty */
    struct ch_bytes header; /* header JSON object text, may be empty */
    struct ch_bytes body;   /* arbitrary bytes */
    int64_t seq;            /* sequenceId, >= 1 once stored */
    int64_t time;           /* messagePublishingTime, unix seconds */
};

/* Raft entry layout (docs/libraft.md "Entries": lengths must be multiples of
 * 8): u32 magic CH_CMD_MAGIC (little endian) | u32 payload length (LE) payload:
 * msgpack values, in order: uint type, int time (leader-stamped, unix s), int
 * dedup_window_s, uint n, then n message arrays [path, user, app, msgid,
 * header, body] (each field a msgpack bin) zero padding to a multiple of 8. */
#define CH_CMD_MAGIC 0x31524843u /* "CHR1" */
#define CH_CMD_HEADER_BYTES 8

enum ch_cmd_type {
    CH_CMD_PUBLISH = 1, /* a batch of publishes */
    CH_CMD_MEMBERS = 2, /* member directory changes */
};

/* One change of the member directory (the replicated map from raft id to
 * raft address, gateway HTTP address and role). */
enum ch_member_op {
    CH_MEMBER_SET = 1, /* insert or replace */
    CH_MEMBER_DEL = 2, /* remove (raft/http/role ignored) */
};

struct ch_member_change {
    enum ch_member_op op;
    uint64_t id;
    struct ch_bytes raft; /* IPv4:port, at most CH_MAX_ADDR_BYTES */
    struct ch_bytes http; /* host:port, at most CH_MAX_ADDR_BYTES */
    int role;             /* 0 voter, 1 standby, 2 spare */
};

/* Encodes a CH_CMD_MEMBERS entry (same 8-byte header and padding as a
 * publish batch; payload: uint type, int time, int 0, uint n, then n arrays
 * [op, id, raft, http, role]) into memory from `alloc`.
 * Returns 0, CH_EINVAL (bad op, address too long) or CH_ENOMEM. */
int ch_members_encode(const struct ch_member_change *changes, uint32_t n,
                      int64_t time, void *(*alloc)(size_t), void **out,
                      size_t *out_len);

/* Incremental encoder of a publish batch. */
struct ch_batch_enc {
    msgpack_sbuffer body; /* encoded message arrays so far */
    msgpack_packer pk;
    uint32_t n_msgs;
};

void ch_batch_enc_init(struct ch_batch_enc *e);
void ch_batch_enc_close(struct ch_batch_enc *e);
/* Drops what was added; keeps the memory. */
void ch_batch_enc_reset(struct ch_batch_enc *e);
/* Appends one message (seq and time ignored). Returns 0 or CH_ENOMEM. */
int ch_batch_enc_add(struct ch_batch_enc *e, const struct ch_msg *m);
/* Bytes the finished entry would take (header, payload, padding). */
size_t ch_batch_enc_size(const struct ch_batch_enc *e);
/* Writes the whole entry into a buffer from `alloc` (e.g. raft_malloc):
 * *out owned by the caller, *out_len a multiple of 8. The encoder keeps its
 * contents (call reset). Returns 0 or CH_ENOMEM. */
int ch_batch_enc_finish(const struct ch_batch_enc *e, int64_t time,
                        int64_t dedup_window_s, void *(*alloc)(size_t),
                        void **out, size_t *out_len);

/* A decoded command. `msgs` points into malloc'd memory owned by the
 * struct (free with ch_cmd_free); byte fields point into the input buffer,
 * which must outlive the struct. */
struct ch_cmd {
    enum ch_cmd_type type;
    int64_t time;
    int64_t dedup_window_s;
    uint32_t n_msgs;
    struct ch_msg *msgs; /* n_msgs entries; time set to the command's */
    /* CH_CMD_MEMBERS: n_members changes (malloc'd, freed by ch_cmd_free;
     * byte fields point into the input buffer). */
    uint32_t n_members;
    struct ch_member_change *members;
};

/* Decodes one raft entry. Returns 0, CH_ECORRUPT for anything malformed
 * (bad magic, length, type, field types, truncation), or CH_ENOMEM when
 * the message array cannot be allocated (the entry may be fine: a replica
 * must not skip it); never crashes. */
int ch_cmd_decode(const void *buf, size_t len, struct ch_cmd *out);
void ch_cmd_free(struct ch_cmd *c);

/* Stored record (value of a message in the store): msgpack array
 * [user, app, msgid, header, body, time]; path and seq live in the key.
 * Appends to `out`. Returns 0 or CH_ENOMEM. */
int ch_record_encode(const struct ch_msg *m, struct ch_buf *out);
/* Fills user, app, msgid, header, body, time of *out pointing into p.
 * Returns 0 or CH_ECORRUPT. */
int ch_record_decode(const void *p, size_t n, struct ch_msg *out);

/* msgpack reading/writing helpers shared by this project's decoders
 * (commands, records, store snapshots). Each reader takes one value at *off
 * in buf[0..len), advances *off past it, and returns 0 or CH_ECORRUPT (wrong
 * type, truncated, out of range). Byte fields point into buf. Containers are
 * read as headers only: msgpack-c allocates a zone sized from an array's
 * claimed element count before checking it against the input, so untrusted
 * input never reaches msgpack_unpack_next as a container. */
int ch_mp_read_array(const char *buf, size_t len, size_t *off, uint32_t *n);
/* A bin, or leniently a str. */
int ch_mp_read_bytes(const char *buf, size_t len, size_t *off,
                     struct ch_bytes *out);
int ch_mp_read_int(const char *buf, size_t len, size_t *off, int64_t *out);
int ch_mp_read_uint(const char *buf, size_t len, size_t *off, uint64_t *out);
/* Aims a packer at a ch_buf (appends; the packer returns -1 on no memory). */
void ch_mp_packer_init_buf(msgpack_packer *pk, struct ch_buf *b);
/* Packs p[0..n) as a msgpack bin. Returns 0 or -1 (no memory). */
int ch_mp_pack_bytes(msgpack_packer *pk, const void *p, size_t n);

#endif
