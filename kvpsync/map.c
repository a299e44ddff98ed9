#include "map.h"

#include <stdlib.h>
#include <string.h>

uint64_t kvps_map_hash(const void *key, size_t klen) {
    const uint8_t *p = key;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

kvps_hnode_t *kvps_map_get(const kvps_map_t *m, const void *key, size_t klen, uint64_t hash) {
    if (m->nbuckets == 0)
        return NULL;
    for (kvps_hnode_t *n = m->buckets[hash & (m->nbuckets - 1)]; n; n = n->hnext)
        if (n->hash == hash && n->klen == klen && memcmp(n->key, key, klen) == 0)
            return n;
    return NULL;
}

static int grow(kvps_map_t *m) {
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
    kvps_hnode_t **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        kvps_hnode_t *n = m->buckets[i];
        while (n) {
            kvps_hnode_t *next = n->hnext;
            n->hnext = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

int kvps_map_add(kvps_map_t *m, kvps_hnode_t *n) {
    if (m->count >= m->nbuckets && grow(m) != 0)
        return -1;
    kvps_hnode_t **b = &m->buckets[n->hash & (m->nbuckets - 1)];
    n->hnext = *b;
    *b = n;
    m->count++;
    return 0;
}

void kvps_map_remove(kvps_map_t *m, kvps_hnode_t *n) {
    kvps_hnode_t **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    m->count--;
}

void kvps_map_free(kvps_map_t *m) {
    free(m->buckets);
    memset(m, 0, sizeof *m);
}
