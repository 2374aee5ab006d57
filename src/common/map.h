/* A string-keyed hash map (chained, grows by doubling). Keys are copied;
 * values are borrowed pointers. Used for topic indexes and cursors. */
#ifndef CHORUS_COMMON_MAP_H
#define CHORUS_COMMON_MAP_H

#include <stddef.h>

struct ch_map_entry {
    struct ch_map_entry *next;
    void *value;
    size_t key_n;
    char key[]; /* key_n bytes + NUL */
};

struct ch_map {
    struct ch_map_entry **buckets;
    size_t n_buckets;
    size_t n_entries;
};

void ch_map_init(struct ch_map *m);
/* Frees the entries (not the values). */
void ch_map_close(struct ch_map *m);
/* Value for key, or NULL. */
void *ch_map_get(const struct ch_map *m, const char *key, size_t key_n);
/* Sets key to value (replacing). Returns 0 or CH_ENOMEM. */
int ch_map_set(struct ch_map *m, const char *key, size_t key_n, void *value);
/* Removes key; returns its value or NULL. */
void *ch_map_del(struct ch_map *m, const char *key, size_t key_n);

/* Iteration: for (e = ch_map_first(m, &b); e; e = ch_map_next(m, e, &b)).
 * The current entry must not be deleted while iterating past it. */
struct ch_map_entry *ch_map_first(const struct ch_map *m, size_t *bucket);
struct ch_map_entry *ch_map_next(const struct ch_map *m, struct ch_map_entry *e,
                                 size_t *bucket);

#endif
