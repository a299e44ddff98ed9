/* map: an intrusive chained hash map of byte-string keys. Internal to kvpsync.
 * Keys come from the local cache or from authenticated senders only, so a
 * plain FNV-1a hash is enough (no hash flooding by outsiders). */
#ifndef SKD_KVPS_MAP_H
#define SKD_KVPS_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kvps_hnode {
    struct kvps_hnode *hnext;
    uint64_t hash;
    const uint8_t *key;
    size_t klen;
} kvps_hnode_t;

typedef struct kvps_map {
    kvps_hnode_t **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first add */
    size_t count;
} kvps_map_t;

uint64_t kvps_map_hash(const void *key, size_t klen);
kvps_hnode_t *kvps_map_get(const kvps_map_t *m, const void *key, size_t klen, uint64_t hash);
/* n->key, klen and hash must be set. Returns -1 when out of memory. */
int kvps_map_add(kvps_map_t *m, kvps_hnode_t *n);
void kvps_map_remove(kvps_map_t *m, kvps_hnode_t *n);
/* Frees the buckets, not the nodes. */
void kvps_map_free(kvps_map_t *m);

#endif
