import { dimsOf, type ModelInputs, type ModelShape } from "./architecture.js";
import type { Ops } from "./ops.js";

/**
 * Architectures with a first-order (linear) part keep one weight per id in
 * column 0 of its embedding row, before the embedding vector: the same
 * table, pull and push carry both (row width = embedding dim + 1).
 */
export const FIRST_ORDER_COLUMNS = 1;

/** The sum of the slots' first-order weights, [B, 1]. */
export function firstOrder<T>(ops: Ops<T>, input: ModelInputs<T>, shape: ModelShape): T {
  const dims = dimsOf(shape);
  return ops.sumSlots(ops.slotColumns(input.emb, dims.map((d) => d + FIRST_ORDER_COLUMNS), 0, dims.map(() => 1)), shape.numSlots, 1);
}

/** The slots' embedding vectors without their first-order weights, [B, sum of the slots' dims]. */
export function vectors<T>(ops: Ops<T>, input: ModelInputs<T>, shape: ModelShape): T {
  const dims = dimsOf(shape);
  return ops.slotColumns(input.emb, dims.map((d) => d + FIRST_ORDER_COLUMNS), FIRST_ORDER_COLUMNS, dims);
}

/** The width of every slot's vector together. */
export function vectorsWidth(shape: ModelShape): number {
  return dimsOf(shape).reduce((a, d) => a + d, 0);
}
