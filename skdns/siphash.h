/* siphash: SipHash-1-3 (keyed, 64-bit), for hash tables whose keys come
 * from outside: with a random key, nobody can aim collisions at one chain. */
#ifndef SKDNS_SIPHASH_H
#define SKDNS_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash13(const uint64_t key[2], const void *data, size_t len);

#endif
