import { mlp, mlpParams, taskCount, type DenseParam, type ModelShape } from "./architecture.js";
import type { Ops } from "./ops.js";

/**
 * Per-task towers, for architectures built for several tasks: task t's
 * ReLU layers `tower.{t}.{i}` from width `from`, then its output layer
 * `tower.{t}.out` of width 1. Named by the task's index, not its name, so
 * the parameters do not change when a task is renamed.
 */
export function towerParams(out: DenseParam[], shape: ModelShape, from: number, widths: readonly number[]): void {
  for (let t = 0; t < taskCount(shape); t++) {
    const last = mlpParams(out, `tower.${t}`, from, widths);
    out.push({ name: `tower.${t}.out.w`, shape: [last, 1] }, { name: `tower.${t}.out.b`, shape: [1] });
  }
}

/** The towers' outputs side by side, [B, T], task t's tower over inputOf(t). */
export function towers<T>(ops: Ops<T>, param: (name: string) => T, shape: ModelShape, layers: number, inputOf: (task: number) => T, dropout = 0): T {
  const outs: T[] = [];
  for (let t = 0; t < taskCount(shape); t++) {
    outs.push(ops.linear(mlp(ops, param, `tower.${t}`, inputOf(t), layers, dropout), param(`tower.${t}.out.w`), param(`tower.${t}.out.b`), false));
  }
  return outs.length === 1 ? outs[0]! : ops.concat(outs);
}
