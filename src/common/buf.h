/* Growable byte buffer. Owns its memory; free with ch_buf_free(). */
#ifndef CHORUS_COMMON_BUF_H
#define CHORUS_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct ch_buf {
    char *data; /* owned; NULL when empty and never grown */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

void ch_buf_init(struct ch_buf *b);
void ch_buf_free(struct ch_buf *b);
/* Makes room for n more bytes. Returns 0 or CH_ENOMEM. */
__attribute__((warn_unused_result)) int ch_buf_reserve(struct ch_buf *b,
                                                       size_t n);
/* Appends n bytes. Returns 0 or CH_ENOMEM. */
__attribute__((warn_unused_result)) int ch_buf_append(struct ch_buf *b,
                                                      const void *p, size_t n);
/* Appends formatted text (no NUL counted in len, but one is kept after it). */
__attribute__((warn_unused_result, format(printf, 2, 3))) int
ch_buf_printf(struct ch_buf *b, const char *fmt, ...);
/* Appends the decimal form of v (no printf: it is on the delivery path).
 * Returns 0 or CH_ENOMEM. */
__attribute__((warn_unused_result)) int ch_buf_append_i64(struct ch_buf *b,
                                                          long long v);
/* Drops the first n bytes. */
void ch_buf_consume(struct ch_buf *b, size_t n);
/* Takes the memory out of b (caller frees with ch_free()); b becomes empty. */
char *ch_buf_steal(struct ch_buf *b, size_t *len);

#endif
