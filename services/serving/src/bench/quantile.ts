/** The value at fraction `p` (0..1) of an ascending array: the nearest rank below, the last for p = 1; undefined when empty. */
export function quantile(sorted: readonly number[], p: number): number | undefined {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : undefined;
}
