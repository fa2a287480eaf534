import { PlainForward, poolingOf, type ModelSpec, type Pooling } from "@pangea/model";
import type { RowTable } from "./row-table.js";
import { poolCells } from "./pool-cells.js";

/**
 * Examples as the model takes them: dense [B, numDense] and ids as (lo, hi)
 * words. Without cellOffsets, one id per slot [B, S, 2] (id 0 = missing);
 * with them, cell c = example * S + column holds ids cellOffsets[c] ..
 * cellOffsets[c + 1] (their rows are summed, as in training).
 */
export interface Examples {
  count: number;
  dense: Float32Array;
  idWords: Uint32Array;
  cellOffsets?: Uint32Array;
}

/**
 * A model version's forward pass: pools each cell's embedding rows, then
 * runs the dense layers. The same class runs in the event loop and on the
 * forward threads (over the same shared tables), so both give the same bits.
 */
export class Scorer {
  /** An example's pooled row: every slot's row side by side; slot k's starts at slotAt[k]. */
  private readonly slotAt: Int32Array;
  /** Each slot's pooling of a cell's several ids, in slot order. */
  private readonly pooling: Pooling[];
  private readonly T: number;
  private forward: PlainForward;
  private pooledScratch = new Float32Array(0);

  /** columnTables: the tables in the model's slot order (a lookup per column: an array index, not a Map probe). */
  constructor(
    private readonly spec: ModelSpec,
    rowWidths: readonly number[],
    private columnTables: RowTable[],
    dense: Float32Array[],
    tasks: number,
  ) {
    this.pooling = poolingOf(spec);
    this.slotAt = new Int32Array(spec.numSlots + 1);
    rowWidths.forEach((w, k) => (this.slotAt[k + 1] = this.slotAt[k]! + w));
    this.forward = new PlainForward(spec, dense);
    this.T = tasks;
  }

  setDense(values: Float32Array[]): void {
    this.forward = new PlainForward(this.spec, values);
  }

  /** Points at the tables' current arrays (a forward thread, after an update grew them). */
  setTables(columnTables: RowTable[]): void {
    this.columnTables = columnTables;
  }

  /** The examples' predictions [count, T] row-major: per task, a probability (bce) or a value (mse). */
  predict(x: Examples): Float32Array {
    const n = x.count * this.slotAt[this.spec.numSlots]!;
    if (this.pooledScratch.length < n) this.pooledScratch = new Float32Array(Math.max(n, this.pooledScratch.length * 2));
    const pooled = this.pooledScratch.subarray(0, n);
    poolCells(x, this.columnTables, this.pooling, this.slotAt, pooled);
    const out = new Float32Array(x.count * this.T);
    this.forward.predict(x.count, x.dense, pooled, out);
    return out;
  }
}
