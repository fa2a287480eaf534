import { describe, expect, it } from "vitest";
import { nativeBlas } from "@pangea/blas";
import { SparseSums } from "../src/aggregation/sparse-sums.js";
import { EmbeddingStore } from "../src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../src/job/job.js";

const blas = nativeBlas().blas;

let seed = 11;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;

/** Slots 1-3 of widths 4, 1 and 16 (a mix, as per-slot dims make), with some rows in each. */
function store(): EmbeddingStore {
  const defaults = defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.1 }, 4);
  const s = new EmbeddingStore(defaults, new Map([[2, { ...defaults, dim: 1 }], [3, { ...defaults, dim: 16 }]]), 1);
  for (let slot = 1; slot <= 3; slot++) for (let v = 0; v < 3000; v++) s.rowForTraining(...words(slot, v));
  return s;
}

/** A v2 id's (lo, hi) words: the slot in the high word's bits 16..30, the value below. */
function words(slot: number, value: number): [number, number] {
  return [(value * 2654435761) >>> 0, ((slot << 16) | (value & 0xff)) >>> 0];
}

/** A push: `n` ids of slots 1-3 (some never seen: no row), each with its slot's width of gradients, a few of them NaN or huge. */
function push(s: EmbeddingStore, n: number) {
  const ids = new Uint32Array(2 * n);
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    const slot = 1 + Math.floor(rand() * 3);
    const [lo, hi] = words(slot, Math.floor(rand() * 4000));
    ids[2 * i] = lo;
    ids[2 * i + 1] = hi;
    for (let k = 0; k < s.widthOf(hi); k++) values.push(rand() < 0.002 ? (rand() < 0.5 ? Number.NaN : 5e6) : rand() * 2 - 1);
  }
  return { ids, count: n, grads: Float32Array.from(values), found: s.findRows(ids, n) };
}

describe("SparseSums", () => {
  it.runIf(blas)("the addon's sums equal the JavaScript loop's bit for bit: several pushes, mixed widths, ids without rows, refused values, growth", () => {
    const s = store();
    const native = new SparseSums(s, blas);
    const js = new SparseSums(s, null);
    let refused = 0;
    for (let p = 0; p < 6; p++) {
      // Pushes of growing size, so each table's sums grow several times.
      const g = push(s, 200 * 2 ** p);
      const a = native.add(g.ids, g.count, g.grads, g.found, 1e6);
      expect(js.add(g.ids, g.count, g.grads, g.found, 1e6)).toBe(a);
      refused += a;
    }
    expect(refused).toBeGreaterThan(0);
    const drained = (sums: SparseSums) => {
      const out: { table: number; rows: number[]; sums: Float32Array }[] = [];
      sums.drain((table, rows, count, values) => out.push({ table, rows: [...rows.subarray(0, count)], sums: values.slice(0, count * s.tableAt(table).dim) }));
      return out;
    };
    const fromNative = drained(native);
    const fromJs = drained(js);
    expect(fromNative.map((t) => t.table)).toEqual([0, 1, 2]);
    expect(fromNative.map((t) => t.rows)).toEqual(fromJs.map((t) => t.rows));
    fromNative.forEach((t, i) => expect(Buffer.from(t.sums.buffer).equals(Buffer.from(fromJs[i]!.sums.buffer))).toBe(true));
    // Drained: the next step starts from nothing, in both.
    const g = push(s, 50);
    native.add(g.ids, g.count, g.grads, g.found, 1e6);
    js.add(g.ids, g.count, g.grads, g.found, 1e6);
    const again = drained(native);
    expect(again.map((t) => t.rows)).toEqual(drained(js).map((t) => t.rows));
    expect(again.reduce((n, t) => n + t.rows.length, 0)).toBeLessThanOrEqual(50);
  });

  it("a row in two pushes is summed once, in the order added; an id without a row is passed over", () => {
    const s = store();
    const sums = new SparseSums(s);
    const [lo, hi] = words(1, 7);
    const [lo2, hi2] = words(1, 3999); // never trained: no row
    const ids = Uint32Array.from([lo, hi, lo2, hi2]);
    const found = s.findRows(ids, 2);
    expect(found.rows[1]).toBe(-1);
    sums.add(ids, 2, Float32Array.from([0.1, 0.2, 0.3, 0.4, 9, 9, 9, 9]), found, 1e6);
    sums.add(ids, 1, Float32Array.from([0.7, 0.6, 0.5, 0.4]), found, 1e6);
    const got: number[][] = [];
    sums.drain((_, rows, count, values) => got.push([count, rows[0]!, ...values.subarray(0, 4)]));
    expect(got).toEqual([[1, found.rows[0]!, Math.fround(Math.fround(0.1) + Math.fround(0.7)), Math.fround(Math.fround(0.2) + Math.fround(0.6)), Math.fround(Math.fround(0.3) + Math.fround(0.5)), Math.fround(Math.fround(0.4) + Math.fround(0.4))]]);
  });
});
