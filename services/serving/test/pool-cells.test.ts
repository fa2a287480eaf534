import { describe, expect, it } from "vitest";
import { nativeBlas } from "@pangea/blas";
import type { Pooling } from "@pangea/model";
import { poolCells, poolCellsInJs, type CellIds } from "../src/model/pool-cells.js";
import { RowTable } from "../src/model/row-table.js";

const blas = nativeBlas().blas;

let seed = 5;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;

/** Columns of mixed widths (1, 3, 4, 16, 7: the lanes and the rest), each table with some ids set and some removed. */
function tables(): RowTable[] {
  return [1, 3, 4, 16, 7].map((dim, k) => {
    const t = new RowTable(dim);
    for (let v = 1; v <= 400; v++) t.set(v, k + 1, Float32Array.from({ length: dim }, () => rand() * 4 - 2));
    for (let v = 1; v <= 400; v += 7) t.remove(v, k + 1);
    return t;
  });
}

/** `count` examples: per cell 0-5 ids (as offsets) or one (no offsets), found, removed, unknown, another slot's, or (0, 0). */
function examples(count: number, S: number, bags: boolean): CellIds {
  const words: number[] = [];
  const offsets = [0];
  for (let c = 0; c < count * S; c++) {
    const n = bags ? Math.floor(rand() * 6) : 1;
    for (let i = 0; i < n; i++) {
      const r = rand();
      const k = c % S;
      if (r < 0.1) words.push(0, 0);
      else if (r < 0.2) words.push(1 + Math.floor(rand() * 400), ((k + 1) % S) + 1);
      else words.push(1 + Math.floor(rand() * (r < 0.3 ? 900 : 400)), k + 1);
    }
    offsets.push(words.length / 2);
  }
  return { count, idWords: Uint32Array.from(words), ...(bags ? { cellOffsets: Uint32Array.from(offsets) } : {}) };
}

const slotAtOf = (ts: RowTable[]) => {
  const a = new Int32Array(ts.length + 1);
  ts.forEach((t, k) => (a[k + 1] = a[k]! + t.dim));
  return a;
};

describe("serving's embedding pooling", () => {
  it.runIf(blas)("the addon's pooled rows equal the JavaScript loop's bit for bit: bags of 0-5 ids, single ids, sum/mean/sqrtn, mixed widths, unknown and removed ids", () => {
    const ts = tables();
    const slotAt = slotAtOf(ts);
    const E = slotAt[ts.length]!;
    for (const pooling of [["sum", "mean", "sqrtn", "mean", "sqrtn"], ["sqrtn", "sum", "mean", "sqrtn", "sum"]] as Pooling[][]) {
      for (const bags of [true, false]) {
        for (const count of [1, 3, 64]) {
          const x = examples(count, ts.length, bags);
          const js = new Float32Array(count * E + 3).fill(7);
          const native = new Float32Array(count * E + 3).fill(7);
          poolCellsInJs(x, ts, pooling, slotAt, js);
          poolCells(x, ts, pooling, slotAt, native);
          expect(Buffer.from(native.buffer).equals(Buffer.from(js.buffer))).toBe(true);
          // Past the examples' floats nothing is written.
          expect([...native.subarray(count * E)]).toEqual([7, 7, 7]);
          // Something was pooled, and scaled: not a comparison of zeros.
          expect(native.subarray(0, count * E).some((v) => v !== 0 && v !== 7)).toBe(true);
        }
      }
    }
  });

  it.runIf(blas)("the addon refuses extents outside the arrays with a RangeError naming them, before writing", () => {
    const ts = tables();
    const slotAt = slotAtOf(ts);
    const E = slotAt[ts.length]!;
    const v = ts.map((t) => t.view());
    const keys = v.map((t) => t.keys);
    const slots = v.map((t) => t.slots);
    const rows = v.map((t) => t.rows);
    const dims = Int32Array.from(v.map((t) => t.dim));
    const codes = new Int32Array(ts.length);
    const x = examples(4, ts.length, true);
    const out = new Float32Array(4 * E).fill(3);
    const call = (o: Partial<{ ids: Uint32Array; offsets: Uint32Array | null; count: number; out: Float32Array; slots: Int32Array[]; codes: Int32Array; rows: Float32Array[] }>) =>
      blas!.poolCells(keys, o.slots ?? slots, o.rows ?? rows, dims, o.codes ?? codes, o.ids ?? x.idWords, o.offsets === undefined ? x.cellOffsets! : o.offsets, o.count ?? 4, slotAt, o.out ?? out);
    expect(() => call({ out: new Float32Array(4 * E - 1) })).toThrow(/poolCells: 4 examples of 5 columns \(31 floats each\) need out 4 x 31 floats \(has 123\)/);
    expect(() => call({ count: 5 })).toThrow(RangeError);
    expect(() => call({ offsets: null, ids: new Uint32Array(2 * 4 * 5 - 1) })).toThrow(/ids 2 words a cell \(has 39\)/);
    const badOffsets = Uint32Array.from(x.cellOffsets!);
    badOffsets[3] = 100_000;
    expect(() => call({ offsets: badOffsets })).toThrow(/cell 2's ids \d+\.\.100000 are outside ids'/);
    expect(() => call({ codes: Int32Array.from([0, 0, 3, 0, 0]) })).toThrow("poolCells: column 2: width 4 at 4 of 31, 1024 buckets (a power of two) with 2048 key words (2 a bucket), pooling 3 (0 sum, 1 mean, 2 sqrtn)");
    expect(() => call({ slots: [...slots.slice(0, 4), new Int32Array(48).fill(-1)] })).toThrow(/column 4: .* 48 buckets \(a power of two\)/);
    // A table whose bucket names a row past its rows (corrupt, or changed under the reader): refused, not read.
    expect(() => call({ rows: [...rows.slice(0, 4), new Float32Array(7)] })).toThrow(/column 4's table names row \d+, beyond its 7 floats of 7-wide rows/);
    expect(() => blas!.poolCells(keys, slots, rows, dims, codes, x.idWords, x.cellOffsets!, 4, slotAt, new Int32Array(4 * E) as unknown as Float32Array)).toThrow(TypeError);
    expect(() => blas!.poolCells([...keys, keys[0]!], slots, rows, dims, codes, x.idWords, x.cellOffsets!, 4, slotAt, out)).toThrow(/5 columns \(dims\) need as many keys, slots and rows lists \(6, 5, 5\)/);
    // Empty offsets are offsets (too few), not the one-id-a-cell form.
    expect(() => call({ offsets: new Uint32Array(0) })).toThrow(/need out 4 x 31 floats \(has 124\), offsets count x columns \+ 1 entries \(has 0\)/);
  });

  it.runIf(blas)("the addon reads every column's place and width before writing: an output over the caller's own arrays cannot move a later write", () => {
    // One column of width 4 whose row's bits, written over slotAt, would put the next example's row 2^28 floats away.
    const t = new RowTable(4);
    t.set(5, 0, new Float32Array(new Uint32Array(4).fill(0x10000000).buffer));
    const v = t.view();
    const buf = new ArrayBuffer(64);
    const out = new Float32Array(buf, 0, 16);
    const slotAt = new Int32Array(buf, 0, 2);
    slotAt.set([0, 4]);
    blas!.poolCells([v.keys], [v.slots], [v.rows], Int32Array.of(4), Int32Array.of(1), Uint32Array.of(5, 0, 5, 0), null, 2, slotAt, out);
    // Both examples' rows were written where the places said before the first write.
    expect(new Uint32Array(buf, 16, 4).every((w) => w === 0x10000000)).toBe(true);
  });
});
