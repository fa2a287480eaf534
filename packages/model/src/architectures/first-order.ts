import type { ModelInputs } from "./architecture.js";
import type { Ops } from "./ops.js";

/**
 * Architectures with a first-order (linear) part keep one weight per id in
 * column 0 of its embedding row, before the embedding vector: the same
 * table, pull and push carry both (row width = embedding dim + 1).
 */
export const FIRST_ORDER_COLUMNS = 1;

/** The sum of the slots' first-order weights, [B, 1]. */
export function firstOrder<T>(ops: Ops<T>, input: ModelInputs<T>, slots: number, dim: number): T {
  return ops.sumSlots(ops.slotColumns(input.emb, slots, dim + FIRST_ORDER_COLUMNS, 0, 1), slots, 1);
}

/** The slots' embedding vectors without their first-order weights, [B, slots * dim]. */
export function vectors<T>(ops: Ops<T>, input: ModelInputs<T>, slots: number, dim: number): T {
  return ops.slotColumns(input.emb, slots, dim + FIRST_ORDER_COLUMNS, FIRST_ORDER_COLUMNS, dim);
}
