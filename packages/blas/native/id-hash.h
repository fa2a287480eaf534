/*
 * The 32-bit mix of Pangea's feature-id hashing (packages/kit's mix32, a
 * MurmurHash3 finalizer), for the addon's table kernels and the C++ table
 * benchmark (bench/cpp), which must hash exactly as the JavaScript does.
 */
#ifndef PANGEA_ID_HASH_H
#define PANGEA_ID_HASH_H
#include <stdint.h>

static inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

#endif
