import { dimsOf, mlp, mlpParams, taskCount, type DenseParam, type ModelInputs, type ModelShape } from "./architecture.js";
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

/**
 * The params of a linear part named `linear` (a weight per dense feature
 * and a bias; the per-id weights live in the rows) and of a deep tower over
 * [dense, vectors]: `deep.{i}` ReLU layers, then `deep.logit` (a column
 * per task). With several tasks the linear part is shared: its one logit
 * adds to every task's deep output (the tasks' heads sit on the deep tower).
 */
export function linearAndDeepParams(linear: string, shape: ModelShape, deepMlp: readonly number[]): DenseParam[] {
  const out: DenseParam[] = [{ name: `${linear}.w`, shape: [shape.numDense, 1] }, { name: `${linear}.b`, shape: [1] }];
  const last = mlpParams(out, "deep", shape.numDense + vectorsWidth(shape), deepMlp);
  out.push({ name: "deep.logit.w", shape: [last, taskCount(shape)] }, { name: "deep.logit.b", shape: [taskCount(shape)] });
  return out;
}

/** The linear part's logit: the dense features' weighted sum and bias plus every slot's first-order weight, [B, 1]. */
export function linearPart<T>(ops: Ops<T>, param: (name: string) => T, linear: string, input: ModelInputs<T>, shape: ModelShape): T {
  return ops.add(ops.linear(input.dense, param(`${linear}.w`), param(`${linear}.b`), false), firstOrder(ops, input, shape));
}

/** The deep tower's outputs over [dense, the slots' vectors], [B, T]. */
export function deepPart<T>(ops: Ops<T>, param: (name: string) => T, input: ModelInputs<T>, v: T, layers: number, dropout = 0): T {
  return ops.linear(mlp(ops, param, "deep", ops.concat([input.dense, v]), layers, dropout), param("deep.logit.w"), param("deep.logit.b"), false);
}
