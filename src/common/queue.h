/* An intrusive doubly linked queue (circular, with a head node), in the
 * style of libuv's and raft's queue.h: an element embeds a struct ch_queue
 * and is found back with CH_QUEUE_DATA. Insertion and removal are O(1) and
 * allocate nothing. An element not in a queue is initialised to point at
 * itself, so removing it twice is harmless and ch_queue_linked() tells. */
#ifndef CHORUS_COMMON_QUEUE_H
#define CHORUS_COMMON_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct ch_queue {
    struct ch_queue *next;
    struct ch_queue *prev;
};

/* The struct of type `type` whose member `field` is the element e. */
#define CH_QUEUE_DATA(e, type, field)                                          \
    ((type *)(void *)((char *)(e)-offsetof(type, field)))

/* Iterates e over the elements of head in order; e must not be removed
 * inside the loop (use CH_QUEUE_FOREACH_SAFE). */
#define CH_QUEUE_FOREACH(e, head)                                              \
    for ((e) = (head)->next; (e) != (head); (e) = (e)->next)

/* As CH_QUEUE_FOREACH, but e may be removed: n holds the next element. */
#define CH_QUEUE_FOREACH_SAFE(e, n, head)                                      \
    for ((e) = (head)->next, (n) = (e)->next; (e) != (head);                   \
         (e) = (n), (n) = (e)->next)

static inline void ch_queue_init(struct ch_queue *q)
{
    q->next = q;
    q->prev = q;
}

static inline bool ch_queue_empty(const struct ch_queue *head)
{
    return head->next == head;
}

/* True when element e is in some queue. */
static inline bool ch_queue_linked(const struct ch_queue *e)
{
    return e->next != e;
}

/* The first element, or NULL when the queue is empty. */
static inline struct ch_queue *ch_queue_head(const struct ch_queue *head)
{
    return head->next == head ? NULL : head->next;
}

static inline void ch_queue_insert_tail(struct ch_queue *head,
                                        struct ch_queue *e)
{
    e->next = head;
    e->prev = head->prev;
    e->prev->next = e;
    head->prev = e;
}

static inline void ch_queue_insert_head(struct ch_queue *head,
                                        struct ch_queue *e)
{
    e->next = head->next;
    e->prev = head;
    e->next->prev = e;
    head->next = e;
}

/* Takes e out of its queue (if any) and leaves it unlinked. */
static inline void ch_queue_remove(struct ch_queue *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    ch_queue_init(e);
}

/* Moves every element of `from` to the end of `to`; `from` ends empty. */
static inline void ch_queue_move(struct ch_queue *from, struct ch_queue *to)
{
    if (ch_queue_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    ch_queue_init(from);
}

#endif
