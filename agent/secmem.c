#include "secmem.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

int secmem_alloc(secmem_t *s, size_t cap) {
    s->data = NULL;
    s->cap = s->len = 0;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || cap == 0 || cap > (size_t)1 << 20) {
        errno = EINVAL;
        return -1;
    }
    size_t size = (cap + (size_t)page - 1) / (size_t)page * (size_t)page;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    if (mlock(p, size) != 0) {
        int e = errno;
        munmap(p, size);
        errno = e;
        return -1;
    }
    (void)madvise(p, size, MADV_DONTDUMP); /* best effort: the lock is what matters */
    (void)madvise(p, size, MADV_WIPEONFORK);
    s->data = p;
    s->cap = size;
    return 0;
}

void secmem_free(secmem_t *s) {
    if (s->data) {
        OPENSSL_cleanse(s->data, s->cap);
        munlock(s->data, s->cap);
        munmap(s->data, s->cap);
    }
    s->data = NULL;
    s->cap = s->len = 0;
}
