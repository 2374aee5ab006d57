/* Validation of names from clients (docs/protocol.md "Topics and messages").
 * Pure functions. */
#ifndef CHORUS_COMMON_VALIDATE_H
#define CHORUS_COMMON_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

/* A topic path: starts with '/', segments of [A-Za-z0-9._-]+ separated by
 * single '/', at most CH_MAX_TOPIC_BYTES, no "." or ".." segment. */
bool ch_valid_topic(const char *p, size_t n);
/* A user id or publisher message id: 1..CH_MAX_ID_BYTES of [A-Za-z0-9._:-]. */
bool ch_valid_id(const char *p, size_t n);
/* True when `path` equals `prefix` or lies below it (whole segments). */
bool ch_topic_under(const char *path, size_t path_n, const char *prefix,
                    size_t prefix_n);
/* Parses a decimal int64 (optional leading '-'); whole string. */
bool ch_parse_i64(const char *p, size_t n, long long *out);

/* True when p[0..n) is well-formed UTF-8 (RFC 3629: no overlongs,
 * no surrogates, at most U+10FFFF). */
bool ch_valid_utf8(const char *p, size_t n);
/* Bytes of the well-formed UTF-8 sequence at p (n bytes available): 1-4,
 * or 0 when p does not start one (same rules as ch_valid_utf8). */
size_t ch_utf8_seq_len(const char *p, size_t n);

#endif
