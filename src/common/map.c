/* String-keyed hash map. */
#include "common/map.h"
#include "common/alloc.h"
#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a. */
static uint64_t hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void ch_map_init(struct ch_map *m)
{
    m->buckets = NULL;
    m->n_buckets = 0;
    m->n_entries = 0;
}

void ch_map_close(struct ch_map *m)
{
    for (size_t b = 0; b < m->n_buckets; b++) {
        struct ch_map_entry *e = m->buckets[b];
        while (e != NULL) {
            struct ch_map_entry *next = e->next;
            ch_free(e);
            e = next;
        }
    }
    ch_free(m->buckets);
    ch_map_init(m);
}

static struct ch_map_entry **find(const struct ch_map *m, const char *key,
                                  size_t key_n)
{
    struct ch_map_entry **pp;

    CH_ASSERT(key != NULL || key_n == 0);
    if (m->n_buckets == 0)
        return NULL;
    /* A power of two: the hash is masked, never taken modulo. */
    CH_ASSERT((m->n_buckets & (m->n_buckets - 1)) == 0);
    pp = &m->buckets[hash(key, key_n) & (m->n_buckets - 1)];
    while (*pp != NULL) {
        if ((*pp)->key_n == key_n && memcmp((*pp)->key, key, key_n) == 0)
            return pp;
        pp = &(*pp)->next;
    }
    return pp;
}

void *ch_map_get(const struct ch_map *m, const char *key, size_t key_n)
{
    struct ch_map_entry **pp = find(m, key, key_n);
    return pp != NULL && *pp != NULL ? (*pp)->value : NULL;
}

static int grow(struct ch_map *m)
{
    size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
    struct ch_map_entry **b = ch_calloc(n, sizeof *b);

    if (b == NULL)
        return CH_ENOMEM;
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct ch_map_entry *e = m->buckets[i];
        while (e != NULL) {
            struct ch_map_entry *next = e->next;
            size_t slot = hash(e->key, e->key_n) & (n - 1);
            e->next = b[slot];
            b[slot] = e;
            e = next;
        }
    }
    ch_free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
    CH_ASSERT(m->n_entries < m->n_buckets);
    return 0;
}

int ch_map_set(struct ch_map *m, const char *key, size_t key_n, void *value)
{
    struct ch_map_entry **pp;
    struct ch_map_entry *e;

    /* Replacing a value never allocates (and so never fails). */
    pp = find(m, key, key_n);
    if (pp != NULL && *pp != NULL) {
        (*pp)->value = value;
        return 0;
    }
    if (m->n_entries >= m->n_buckets) {
        int rv = grow(m);
        if (rv != 0)
            return rv;
        pp = find(m, key, key_n);
    }
    CH_ASSERT(pp != NULL && *pp == NULL);
    e = ch_malloc(sizeof *e + key_n + 1);
    if (e == NULL)
        return CH_ENOMEM;
    e->next = NULL;
    e->value = value;
    e->key_n = key_n;
    memcpy(e->key, key, key_n);
    e->key[key_n] = '\0';
    *pp = e;
    m->n_entries++;
    return 0;
}

void *ch_map_del(struct ch_map *m, const char *key, size_t key_n)
{
    struct ch_map_entry **pp = find(m, key, key_n);
    struct ch_map_entry *e;
    void *v;

    if (pp == NULL || *pp == NULL)
        return NULL;
    e = *pp;
    *pp = e->next;
    v = e->value;
    ch_free(e);
    CH_ASSERT(m->n_entries > 0);
    m->n_entries--;
    return v;
}

struct ch_map_entry *ch_map_first(const struct ch_map *m, size_t *bucket)
{
    for (size_t b = 0; b < m->n_buckets; b++) {
        if (m->buckets[b] != NULL) {
            *bucket = b;
            return m->buckets[b];
        }
    }
    return NULL;
}

struct ch_map_entry *ch_map_next(const struct ch_map *m, struct ch_map_entry *e,
                                 size_t *bucket)
{
    if (e->next != NULL)
        return e->next;
    for (size_t b = *bucket + 1; b < m->n_buckets; b++) {
        if (m->buckets[b] != NULL) {
            *bucket = b;
            return m->buckets[b];
        }
    }
    return NULL;
}
