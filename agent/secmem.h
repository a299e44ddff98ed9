/* secmem: a small buffer for one secret in locked memory.
 *
 * Its own mapping, locked (never swapped), left out of core dumps, overwritten
 * and unmapped on free. The 32-byte instance secret lives only here. */
#ifndef SK_SECMEM_H
#define SK_SECMEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct secmem {
    uint8_t *data; /* NULL until secmem_alloc succeeds */
    size_t cap;
    size_t len;
} secmem_t;

/* Maps and locks cap bytes (rounded up to pages); -1 (errno set) if the
 * memory cannot be locked: the caller must not go on without it. */
int secmem_alloc(secmem_t *s, size_t cap);
/* Overwrites, unlocks and unmaps; s is empty afterwards. Safe on an empty s. */
void secmem_free(secmem_t *s);

#endif
