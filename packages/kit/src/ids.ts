/**
 * The parameter-server shard of a 64-bit feature id, by Monolith's rule
 * id % shards, computed from its 32-bit words (no BigInt on the hot path).
 */
export function shardOfId(lo: number, hi: number, count: number): number {
  if (count === 1) return 0;
  return ((hi % count) * (0x100000000 % count) + (lo % count)) % count;
}
