/* Fills the holes of one store from another in the same process: what the
 * catch-up does over the node link (docs/architecture.md "Snapshots and
 * catch-up"), for tests that restore state snapshots without a cluster. */
#ifndef CHORUS_TESTS_LIB_STORE_COPY_H
#define CHORUS_TESTS_LIB_STORE_COPY_H

#include <stdint.h>

#include "store/store.h"

/* Copies every message dst lacks from src, in chunks of at most
 * max_per_fill messages (>= 1). Returns 0 and the messages copied in
 * *n_copied (may be NULL), or the first store error. */
int store_copy_holes(struct store *dst, struct store *src, int64_t max_per_fill,
                     int64_t *n_copied);

#endif
