import { nativeBlas } from "@pangea/blas";
import { POOLINGS, poolingScale, type Pooling } from "@pangea/model";
import type { RowTable } from "./row-table.js";

/** Examples' ids as the model takes them (see Scorer's Examples). */
export interface CellIds {
  count: number;
  idWords: Uint32Array;
  cellOffsets?: Uint32Array;
}

/**
 * Each example's pooled row, every column's (slot's) pooled embedding side
 * by side: column k's dims[k] floats start at slotAt[k] of the example's
 * slotAt[S] floats. out[0 .. count * slotAt[S]) is overwritten.
 */
export type PoolCells = (x: CellIds, columns: readonly RowTable[], pooling: readonly Pooling[], slotAt: Int32Array, out: Float32Array) => void;

const blas = nativeBlas().blas;

/**
 * On the addon when built: the same loop in C, about twice as fast on a
 * batch of 64 (49-64 against 111-143 µs; the forward pass's largest item in
 * serving's profile was this loop), with the same bits (a test compares the
 * two on random tables, bags and poolings).
 */
export const poolCells: PoolCells = blas
  ? (x, columns, pooling, slotAt, out) => {
      const S = columns.length;
      const keys = new Array<Uint32Array>(S);
      const slots = new Array<Int32Array>(S);
      const rows = new Array<Float32Array>(S);
      const dims = new Int32Array(S);
      const codes = new Int32Array(S);
      for (let k = 0; k < S; k++) {
        const v = columns[k]!.view();
        keys[k] = v.keys;
        slots[k] = v.slots;
        rows[k] = v.rows;
        dims[k] = v.dim;
        codes[k] = POOLINGS.indexOf(pooling[k]!);
      }
      blas.poolCells(keys, slots, rows, dims, codes, x.idWords, x.cellOffsets ?? null, x.count, slotAt, out);
    }
  : poolCellsInJs;

/** The JavaScript loop (the fallback without the addon). */
export function poolCellsInJs(x: CellIds, columns: readonly RowTable[], pooling: readonly Pooling[], slotAt: Int32Array, out: Float32Array): void {
  const S = columns.length;
  const E = slotAt[S]!;
  out.fill(0, 0, x.count * E);
  const offsets = x.cellOffsets;
  const ids = x.idWords;
  for (let c = 0; c < x.count * S; c++) {
    const from = offsets ? offsets[c]! : c;
    const to = offsets ? offsets[c + 1]! : c + 1;
    const column = c % S;
    // The column's own table: an id of another slot is not in it and reads as missing, as an unknown id does.
    const table = columns[column]!;
    const rows = table.rows;
    const D = table.dim;
    const at = ((c - column) / S) * E + slotAt[column]!;
    let n = 0;
    for (let v = from; v < to; v++) {
      const lo = ids[2 * v]!;
      const hi = ids[2 * v + 1]!;
      if (lo === 0 && hi === 0) continue;
      // Every id given counts toward a mean, found or not, as every id of a training cell does.
      n++;
      const r = table.find(lo, hi);
      if (r < 0) continue;
      for (let k = 0, src = r * D; k < D; k++) out[at + k]! += rows[src + k]!;
    }
    const f = poolingScale(pooling[column]!, n);
    if (f !== 1) for (let k = 0; k < D; k++) out[at + k]! *= f;
  }
}
