/* buf: a growable byte buffer with an upper bound.
 *
 * Every buffer that holds outside input has a limit so that a hostile peer
 * cannot make skd allocate without bound; appends past it fail with -1. */
#ifndef SKD_BUF_H
#define SKD_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0: no limit (only for data skd produces itself) */
} buf_t;

void buf_init(buf_t *b, size_t limit);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(buf_t *b);
/* Like buf_free, but overwrites the bytes first (for buffers that held secrets). */
void buf_free_secure(buf_t *b);
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *data, size_t len);
int buf_append_str(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes. */
void buf_consume(buf_t *b, size_t n);
/* Moves the storage of src into dst (dst must be empty); src becomes empty. */
void buf_move(buf_t *dst, buf_t *src);

#endif
