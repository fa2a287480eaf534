/**
 * DLRM's dense-feature transform for Criteo counts: log(1 + x), with negative
 * values clamped to 0 and a missing value read as 0.
 */
export function normalizeCount(x: number): number {
  return x > 0 ? Math.log1p(x) : 0;
}
