// The module, not the package's index: parse workers load the hashing code without zod and pino.
import { mix32 } from "@pangea/kit/rng";

/**
 * MurmurHash3 x86 32-bit over a byte range. Feature values are hashed from
 * their raw bytes, so a value read from a file and the same value produced in
 * memory get the same id.
 */
export function murmur3(bytes: Uint8Array, start: number, end: number, seed: number): number {
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const len = end - start;
  const blockEnd = start + (len & ~3);
  let i = start;
  for (; i < blockEnd; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[i + 2]! << 16;
    if (tail >= 2) k ^= bytes[i + 1]! << 8;
    k ^= bytes[i]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  return mix32(h ^ len);
}

const SEED_LO = 0x9747b28c;

/**
 * A 48-bit hash of a byte range as (lo 32 bits, hi 16 bits): two murmur3
 * passes, the second seeded by the first, so the 48 bits do not repeat the
 * same 32.
 */
export function hash48(bytes: Uint8Array, start: number, end: number, out: Uint32Array, at: number): void {
  const lo = murmur3(bytes, start, end, SEED_LO);
  const hi = murmur3(bytes, start, end, lo ^ 0x5bd1e995);
  out[at] = lo;
  out[at + 1] = hi & 0xffff;
}
