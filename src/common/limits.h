/* Every limit of a node in one place, with its default and the flag that
 * changes it (docs/protocol.md, docs/operations.md). */
#ifndef CHORUS_COMMON_LIMITS_H
#define CHORUS_COMMON_LIMITS_H

/* Topic path bytes (docs/protocol.md "Topics and messages"). */
#define CH_MAX_TOPIC_BYTES 255
/* User / publisher message id bytes (docs/protocol.md "Topics and messages").
 */
#define CH_MAX_ID_BYTES 128
/* --max-message-bytes default: body bytes of one publish. */
#define CH_DEFAULT_MAX_MESSAGE_BYTES (1024 * 1024)
/* Header JSON bytes of one publish (not counted in the body limit). */
#define CH_MAX_HEADER_BYTES (64 * 1024)
/* A WebSocket frame may carry the command line and header on top of the
 * body; frames above body limit + this slack are not parsed (close 1009). */
#define CH_FRAME_SLACK_BYTES (CH_MAX_HEADER_BYTES + 1024)
/* Bytes of a node address (HOST:PORT; raft or gateway) without its NUL.
 * Every struct that holds one keeps CH_MAX_ADDR_BYTES + 1 bytes, so an
 * address accepted anywhere fits everywhere (flags, --cluster, join
 * requests, the member directory, link targets). */
#define CH_MAX_ADDR_BYTES 255
/* --dedup-window default, seconds. */
#define CH_DEFAULT_DEDUP_WINDOW_S 120
/* --publish-timeout default, ms. */
#define CH_DEFAULT_PUBLISH_TIMEOUT_MS 5000
/* --max-connection-buffer default: bytes queued for one client. */
#define CH_DEFAULT_MAX_CONN_BUFFER (4 * 1024 * 1024)
/* Unanswered publishes on one connection before it stops being read. */
#define CH_MAX_UNANSWERED_PUBLISHES 10000
/* Bytes read from the store for one connection per pump turn. */
#define CH_REPLAY_SLICE_BYTES (256 * 1024)
/* Framed bytes a node link (either end) hands to one uv_write. */
#define CH_WRITE_CHUNK_BYTES (256 * 1024)
/* Payload bytes of one raft entry (a batch closes when it would pass). */
#define CH_MAX_BATCH_BYTES (1024 * 1024)
/* Publishes in one raft entry. */
#define CH_MAX_BATCH_MSGS 4096
/* Raft entries proposed and not yet applied. */
#define CH_MAX_ENTRIES_IN_FLIGHT 8
/* Publishes queued in the cluster (waiting + in flight) before refusal. */
#define CH_MAX_PENDING_PUBLISHES 200000
/* HTTP request line + header bytes. */
#define CH_MAX_HTTP_HEADER_BYTES (64 * 1024)
/* Subscriptions per connection. */
#define CH_MAX_SUBS_PER_CONN 1024
/* --max-connections default: client connections per node at once. */
#define CH_DEFAULT_MAX_CONNECTIONS 20000
/* File descriptors a node needs besides client connections: raft peers,
 * LMDB, raft segments, node links, logs (the limit is raised to fit). */
#define CH_FD_RESERVE 256
/* REST replay: default and maximum `limit`. */
#define CH_REST_DEFAULT_LIMIT 100
#define CH_REST_MAX_LIMIT 10000
/* Bytes of one node-to-node link frame (a batch of forwarded publishes). */
#define CH_MAX_LINK_FRAME_BYTES (64 * 1024 * 1024)
/* Catch-up (docs/architecture.md "Snapshots and catch-up"): one FETCH
 * answer carries at most this many messages and stops after the one that
 * reaches CH_CATCHUP_CHUNK_BYTES of encoded messages (a message is at most
 * 1 MiB of body + 64 KiB of header: an answer stays far below the frame
 * limit). One FETCH in flight per catching-up node. */
#define CH_MAX_CATCHUP_MSGS 4096
#define CH_CATCHUP_CHUNK_BYTES (1024 * 1024)
/* Link requests a node serves for one peer before it stops reading it. */
#define CH_MAX_LINK_PENDING 100000
/* Bytes queued on a node link and not yet written: the forwarding end
 * stops filling it, the serving end stops reading requests. */
#define CH_MAX_LINK_QUEUED_BYTES (8 * 1024 * 1024)
/* LMDB map size is --store-max-bytes (default 64 GiB, virtual; pages are
 * allocated on use). */

#endif
