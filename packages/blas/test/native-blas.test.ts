import { existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { nativeBlas } from "../src/index.js";

/** Whether this machine can build the addon (C compiler + OpenBLAS headers and library). */
function buildable(): boolean {
  try {
    execFileSync(process.env.CC || "cc", ["--version"], { stdio: "ignore" });
  } catch {
    return false;
  }
  const header = ["/usr/include/cblas.h", "/usr/include/x86_64-linux-gnu/cblas.h", "/usr/include/aarch64-linux-gnu/cblas.h"].some(existsSync);
  const lib = ["/usr/lib/x86_64-linux-gnu/libopenblas.so", "/usr/lib/aarch64-linux-gnu/libopenblas.so", "/usr/lib/libopenblas.so"].some(existsSync);
  return header && lib;
}

let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const fill = (n: number) => Float32Array.from({ length: n }, rand);

/** Reference in float64: C = op(A) op(B) (+bias) (relu), row-major. */
function reference(ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, B: Float32Array, bias: Float32Array | null, perRow: boolean, relu: boolean): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[perRow ? i * N + j : j]! : 0;
      for (let k = 0; k < K; k++) s += A[ta ? k * M + i : i * K + k]! * B[tb ? j * K + k : k * N + j]!;
      C[i * N + j] = relu ? Math.max(0, s) : s;
    }
  }
  return C;
}

const { blas, reason } = nativeBlas();

describe("@pangea/blas native addon", () => {
  it(buildable() ? "is built and loads on this machine (it has a C compiler and OpenBLAS)" : "reports why it is absent (no C compiler or OpenBLAS here)", () => {
    if (buildable()) {
      expect(reason).toBe("");
      expect(blas!.config()).toMatch(/^OpenBLAS \d/);
    } else {
      expect(blas).toBeNull();
      expect(reason).toMatch(/not built|did not load|disabled/);
    }
  });

  it.runIf(blas)("gemm matches a float64 reference on random shapes, transposes, batches, biases and relu", () => {
    const shapes = [[1, 1, 1], [3, 5, 7], [17, 1, 33], [64, 65, 63], [129, 31, 257], [2, 300, 5], [5, 4, 0]];
    let cases = 0;
    for (const [M, N, K] of shapes as [number, number, number][]) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          for (const [biasKind, relu, batch] of [["none", false, 1], ["col", true, 1], ["row", false, 1], ["none", false, 3], ["col", true, 2]] as const) {
            const pad = 5; // operands at non-zero offsets inside larger arrays
            const A = fill(pad + batch * M * K + 3);
            const B = fill(pad + batch * K * N + 1);
            const C = new Float32Array(pad + batch * M * N + 2).fill(123);
            const bias = biasKind === "none" ? null : fill(pad + (biasKind === "row" ? M * N : N));
            blas!.gemm(ta, tb, M, N, K, A, pad, B, pad, C, pad, batch, M * K, K * N, M * N, bias, pad, biasKind === "row" ? 1 : 0, relu);
            for (let b = 0; b < batch; b++) {
              const ref = reference(ta, tb, M, N, K, A.subarray(pad + b * M * K), B.subarray(pad + b * K * N), bias ? bias.subarray(pad) : null, biasKind === "row", relu);
              let worst = 0;
              for (let i = 0; i < M * N; i++) worst = Math.max(worst, Math.abs(C[pad + b * M * N + i]! - ref[i]!));
              expect(worst, `M=${M} N=${N} K=${K} ta=${ta} tb=${tb} bias=${biasKind} relu=${relu} batch ${b}`).toBeLessThan(1e-4 * (1 + Math.sqrt(K)));
            }
            // Nothing outside the output was written.
            expect(Array.from(C.subarray(0, pad))).toEqual([123, 123, 123, 123, 123]);
            expect(Array.from(C.subarray(pad + batch * M * N))).toEqual([123, 123]);
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(shapes.length * 4 * 5);
  });

  it.runIf(blas)("broadcasts one operand over the batch with stride 0", () => {
    const [M, N, K, batch] = [4, 3, 5, 6];
    const A = fill(batch * M * K);
    const B = fill(K * N);
    const C = new Float32Array(batch * M * N);
    blas!.gemm(false, false, M, N, K, A, 0, B, 0, C, 0, batch, M * K, 0, M * N, null, 0, 0, false);
    const ref = reference(false, false, M, N, K, A.subarray(5 * M * K), B, null, false, false);
    for (let i = 0; i < M * N; i++) expect(C[5 * M * N + i]).toBeCloseTo(ref[i]!, 4);
  });

  it.runIf(blas)("refuses out-of-range operands and wrong types with a named error instead of touching memory", () => {
    const A = new Float32Array(12);
    const C = new Float32Array(9);
    const call = (f: () => void) => {
      try {
        f();
      } catch (err) {
        return `${(err as NodeJS.ErrnoException).code}: ${(err as Error).message}`;
      }
      return "no error";
    };
    expect(call(() => blas!.gemm(false, false, 3, 3, 4, A, 0, A, 0, C, 1, 1, 0, 0, 0, null, 0, 0, false))).toBe("PANGEA_BLAS_ERR_RANGE: C: elements 1..10 are outside its array of 9");
    expect(call(() => blas!.gemm(false, false, 3, 3, 4, A, 1, A, 0, C, 0, 1, 0, 0, 0, null, 0, 0, false))).toBe("PANGEA_BLAS_ERR_RANGE: A: elements 1..13 are outside its array of 12");
    expect(call(() => blas!.gemm(false, false, 3, 3, 4, A, 0, A, 0, C, 0, 2, 12, 0, 0, null, 0, 0, false))).toMatch(/^PANGEA_BLAS_ERR_RANGE: A: /);
    expect(call(() => blas!.gemm(false, false, 3, 3, 4, A, 0, A, 0, C, 0, 1, 0, 0, 0, new Float32Array(2), 0, 0, false))).toBe("PANGEA_BLAS_ERR_RANGE: bias: elements 0..3 are outside its array of 2");
    expect(call(() => blas!.gemm(false, false, 3, 3, 4, new Float64Array(12) as unknown as Float32Array, 0, A, 0, C, 0, 1, 0, 0, 0, null, 0, 0, false))).toBe("PANGEA_BLAS_ERR_ARG: A: expected a Float32Array");
    expect(call(() => blas!.setThreads(0))).toBe("PANGEA_BLAS_ERR_RANGE: threads: expected 1..1024");
    expect(call(() => (blas!.setThreads as unknown as () => void)())).toBe("PANGEA_BLAS_ERR_ARG: setThreads: expected 1 argument");
    expect(C.every((x) => x === 0)).toBe(true);
  });

  it.runIf(blas)("pools rows into cells and scatters cell gradients back, with or without a cell map; refuses bad indices", () => {
    const D = 3;
    const rows = fill(5 * D);
    const rowOf = Int32Array.from([4, 0, 4, 2, 1]);
    const cellOf = Int32Array.from([0, 0, 1, 2, 2]);
    const pooled = new Float32Array(3 * D);
    blas!.gatherRows(rows, D, rowOf, cellOf, pooled);
    const expectPooled = new Float64Array(3 * D);
    rowOf.forEach((r, v) => { for (let k = 0; k < D; k++) expectPooled[cellOf[v]! * D + k]! += rows[r * D + k]!; });
    pooled.forEach((x, i) => expect(x).toBeCloseTo(expectPooled[i]!, 6));
    const back = new Float32Array(5 * D);
    blas!.scatterAddRows(pooled, D, cellOf, rowOf, back);
    const expectBack = new Float64Array(5 * D);
    rowOf.forEach((r, v) => { for (let k = 0; k < D; k++) expectBack[r * D + k]! += pooled[cellOf[v]! * D + k]!; });
    back.forEach((x, i) => expect(x).toBeCloseTo(expectBack[i]!, 6));
    // Without a cell map, value v is cell v.
    const plain = new Float32Array(5 * D);
    blas!.gatherRows(rows, D, rowOf, null, plain);
    expect(Array.from(plain.subarray(0, D))).toEqual(Array.from(rows.subarray(4 * D, 5 * D)));
    expect(() => blas!.gatherRows(rows, D, Int32Array.from([5]), null, plain)).toThrow("value 0: row 5 of 5 or cell 0 of 5 is out of range");
    expect(() => blas!.scatterAddRows(pooled, D, Int32Array.from([-1]), Int32Array.from([0]), back)).toThrow(/value 0: row 0 of 5 or cell 4294967295 of 3 is out of range/);
  });

  it.runIf(blas)("copies each slot's columns out of its block and back, and refuses extents outside either array", () => {
    // 3 rows of slots 1 + 2 and 1 + 3 wide (a first-order weight, then the vector), 2 spare columns in front: 9 a row.
    const B = 3;
    const wideCols = 9;
    const widths = Int32Array.from([3, 4]);
    const wide = fill(B * wideCols);
    // Reference: the vectors (columns 1.. of each block) side by side, a narrow row of 1 spare + 5.
    const take = Int32Array.from([2, 3]);
    const narrow = new Float32Array(B * 6);
    blas!.copyColumns(wide, wideCols, 2 + 1, widths, narrow, 6, 1, take, B, false);
    const expected = new Float32Array(B * 6);
    for (let r = 0; r < B; r++) {
      let w = r * wideCols + 3;
      let n = r * 6 + 1;
      for (let s = 0; s < 2; s++) {
        for (let k = 0; k < take[s]!; k++) expected[n + k] = wide[w + k]!;
        w += widths[s]!;
        n += take[s]!;
      }
    }
    expect(Array.from(narrow)).toEqual(Array.from(expected));
    // Back: the same places of a cleared wide matrix get the narrow values, nothing else is written.
    const back = new Float32Array(B * wideCols);
    blas!.copyColumns(back, wideCols, 3, widths, narrow, 6, 1, take, B, true);
    for (let r = 0; r < B; r++) for (let c = 0; c < wideCols; c++) {
      const inVector = (c >= 3 && c < 5) || (c >= 6 && c < 9);
      expect(back[r * wideCols + c]).toBe(inVector ? wide[r * wideCols + c] : 0);
    }
    // One-float blocks (the first-order weights), on separate arrays and as views of one array (a wasm heap), apart and overlapping.
    const ones = Int32Array.from([1, 1]);
    const firsts = new Float32Array(B * 2);
    blas!.copyColumns(wide, wideCols, 2, widths, firsts, 2, 0, ones, B, false);
    expect(Array.from(firsts)).toEqual([0, 1, 2].flatMap((r) => [wide[r * wideCols + 2]!, wide[r * wideCols + 5]!]));
    const heap = new Float32Array(B * wideCols + 20);
    heap.set(wide);
    blas!.copyColumns(heap.subarray(0, B * wideCols), wideCols, 2, widths, heap.subarray(B * wideCols), 2, 0, ones, B, false);
    expect(Array.from(heap.subarray(B * wideCols, B * wideCols + 6))).toEqual(Array.from(firsts));
    // Overlapping (the narrow view starts inside the wide one): each block is copied in row order, as memmove would.
    const shared = Float32Array.from({ length: 40 }, (_, i) => i);
    const ref = shared.slice();
    for (let r = 0; r < 3; r++) for (const [w, n] of [[r * 9 + 2, 5 + r * 2], [r * 9 + 5, 5 + r * 2 + 1]] as const) ref[n] = ref[w]!;
    blas!.copyColumns(shared.subarray(0, 27), 9, 2, widths, shared.subarray(5, 11), 2, 0, ones, 3, false);
    expect(Array.from(shared)).toEqual(Array.from(ref));
    // A row's last block past the array's end, a negative width, mismatched lists: refused, nothing copied.
    const untouched = new Float32Array(B * 6);
    expect(() => blas!.copyColumns(wide, wideCols, 5, widths, untouched, 6, 1, take, B, false)).toThrow("wide: elements 0..29 are outside its array of 27");
    expect(() => blas!.copyColumns(wide, wideCols, 3, widths, untouched, 6, 2, take, B, false)).toThrow("narrow: elements 0..19 are outside its array of 18");
    expect(() => blas!.copyColumns(wide, wideCols, 3, Int32Array.from([3, -4]), untouched, 6, 1, take, B, false)).toThrow("copyColumns: slot 1 takes 3 of -4 columns");
    expect(() => blas!.copyColumns(wide, wideCols, 3, Int32Array.from([3]), untouched, 6, 1, take, B, false)).toThrow("copyColumns: take and widths must have one entry per slot");
    expect(() => blas!.copyColumns(wide, wideCols, 3, widths, untouched, 6, 1, Int32Array.from([4, 3]), B, false)).toThrow("copyColumns: slot 0 takes 4 of 3 columns");
    // Extents near 2^63 or 2^62 that would wrap around in unchecked arithmetic, on views of a larger buffer: refused, nothing read or written around them.
    const big = new Float32Array(8192).fill(7);
    const one = big.subarray(5000, 5001);
    expect(() => blas!.copyColumns(one, 2 ** 62 - 1024, 0, Int32Array.from([1]), untouched, 1, 0, Int32Array.from([1]), 5, true)).toThrow(/extents be 0\.\.2\^31-1/);
    expect(() => blas!.copyColumns(wide, wideCols, 3, widths, big.subarray(6000, 6001), 1, 2 ** 63 - 1024, Int32Array.from([1, 1]), 1, true)).toThrow(/extents be 0\.\.2\^31-1/);
    expect(() => blas!.gemm(false, false, 1, 1, 1, one, 0, one, 0, one, 0, 3, 2 ** 62, 0, 0, null, 0, 0, false)).toThrow(/A: offset 0, 3 x stride 4611686018427387904/);
    expect(big.every((x) => x === 7)).toBe(true);
    expect(untouched.every((x) => x === 0)).toBe(true);
  });

  it.runIf(blas)("computes DeepFM's second-order term and its gradient; refuses extents outside the arrays before writing", () => {
    // The definition in float64, a sum per column then per row: y = 0.5 * sum_k ((sum_s x_sk)^2 - sum_s x_sk^2), dx_sk = g (sum_s' x_s'k - x_sk).
    const formula = (x: Float32Array, B: number, S: number, D: number) => {
      const y: number[] = [];
      const colSums: number[][] = [];
      for (let b = 0; b < B; b++) {
        const cols = Array.from({ length: D }, (_, k) => { let t = 0; for (let s = 0; s < S; s++) t += x[b * S * D + s * D + k]!; return t; });
        let squares = 0;
        for (let i = 0; i < S * D; i++) squares += x[b * S * D + i]! ** 2;
        y.push(0.5 * (cols.reduce((a, c) => a + c * c, 0) - squares));
        colSums.push(cols);
      }
      return { y, colSums };
    };
    // B = 7: groups of four rows and a rest; D = 70: more columns than the kernel keeps on its stack.
    for (const [B, S, D] of [[7, 26, 16], [5, 3, 70], [4, 1, 2], [1, 2, 1]] as const) {
      const x = fill(B * S * D);
      const g = fill(B);
      const y = new Float32Array(B).fill(Number.NaN);
      const dx = new Float32Array(B * S * D).fill(Number.NaN);
      blas!.fmForward(x, B, S, D, y);
      blas!.fmGradient(x, g, B, S, D, dx);
      const { y: want, colSums } = formula(x, B, S, D);
      for (let b = 0; b < B; b++) {
        expect(y[b]).toBeCloseTo(want[b]!, 4);
        for (let s = 0; s < S; s++) for (let k = 0; k < D; k++) expect(dx[b * S * D + s * D + k]).toBeCloseTo(g[b]! * (colSums[b]![k]! - x[b * S * D + s * D + k]!), 5);
      }
      // y as a view of the same memory as x, in front of it: the same values (overlapping outputs: the trainer's addon-kernels test).
      const heap = new Float32Array(B + B * S * D);
      heap.set(x, B);
      blas!.fmForward(heap.subarray(B), B, S, D, heap.subarray(0, B));
      expect(Array.from(heap.subarray(0, B))).toEqual(Array.from(y));
    }
    // Nothing to do: no rows; rows of no slots score +0, of no columns -0 (as the loop: 0.5 x -squares, plus each column's 0).
    blas!.fmForward(new Float32Array(0), 0, 26, 16, new Float32Array(0));
    const zero = new Float32Array(2).fill(5);
    blas!.fmForward(new Float32Array(0), 2, 0, 16, zero);
    expect(Array.from(zero).map((v) => Object.is(v, 0))).toEqual([true, true]);
    blas!.fmForward(new Float32Array(0), 2, 26, 0, zero);
    expect(Array.from(zero).map((v) => Object.is(v, -0))).toEqual([true, true]);
    // Short arrays, negative or overflowing extents, wrong types: refused, nothing written.
    const untouched = new Float32Array(3 * 4 * 2);
    const x = fill(3 * 4 * 2);
    expect(() => blas!.fmForward(x.subarray(1), 3, 4, 2, untouched)).toThrow("x: 3 x 4 x 2 values are more than its 23");
    expect(() => blas!.fmForward(x, 3, 4, 2, untouched.subarray(0, 2))).toThrow("y: 3 values are more than its 2");
    expect(() => blas!.fmGradient(x, new Float32Array(2), 3, 4, 2, untouched)).toThrow("g: 3 values are more than its 2");
    expect(() => blas!.fmGradient(x, fill(3), 3, 4, 2, untouched.subarray(1))).toThrow("dx: 24 values are more than its 23");
    expect(() => blas!.fmForward(x, -1, 4, 2, untouched)).toThrow("fmForward: B, S and D must be 0..2^31-1");
    expect(() => blas!.fmGradient(x, fill(3), 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, untouched)).toThrow("fmGradient: B x S x D overflows");
    expect(() => blas!.fmForward(Float64Array.from(x) as unknown as Float32Array, 3, 4, 2, untouched)).toThrow("x: expected a Float32Array");
    expect(() => (blas!.fmGradient as unknown as (...a: unknown[]) => void)(x, fill(3), 3, 4, 2)).toThrow("fmGradient: expected 6 arguments");
    expect(untouched.every((v) => v === 0)).toBe(true);
  });

  it.runIf(blas)("adds a gated expert into a mixture and computes the gates' gradient; refuses extents outside the arrays before writing", () => {
    const B = 6;
    const E = 3;
    const n = 5;
    const g = fill(B * E);
    const x = fill(B * n);
    const dy = fill(B * n);
    const y = fill(B * n);
    const before = Float32Array.from(y);
    blas!.addGated(y, x, g, 1, E, B, n);
    const dg = new Float32Array(B * E).fill(9);
    blas!.gateGradient(dg, dy, x, 2, E, B, n);
    for (let b = 0; b < B; b++) {
      for (let k = 0; k < n; k++) expect(y[b * n + k]).toBeCloseTo(before[b * n + k]! + g[b * E + 1]! * x[b * n + k]!, 6);
      let dot = 0;
      for (let k = 0; k < n; k++) dot += dy[b * n + k]! * x[b * n + k]!;
      expect(dg[b * E + 2]).toBeCloseTo(dot, 6);
      // Only column e of the gates' gradient is written.
      expect(dg[b * E]).toBe(9);
      expect(dg[b * E + 1]).toBe(9);
    }
    // dg as a view of the same memory as dy, in front of it: the same values (overlapping outputs: the trainer's addon-kernels test).
    const heap = new Float32Array(B * E + B * n);
    heap.set(dy, B * E);
    blas!.gateGradient(heap.subarray(0, B * E), heap.subarray(B * E), x, 2, E, B, n);
    for (let b = 0; b < B; b++) expect(heap[b * E + 2]).toBe(dg[b * E + 2]);
    // Out of range: e, E, short arrays, wrong types; nothing written.
    const untouched = new Float32Array(B * n);
    expect(() => blas!.addGated(untouched, x, g, 3, E, B, n)).toThrow("addGated: expected 0 <= e < E and B, n, E within 0..2^31-1, got e 3, E 3, B 6, n 5");
    expect(() => blas!.addGated(untouched, x, g, 0, 0, B, n)).toThrow(/addGated: expected 0 <= e < E/);
    expect(() => blas!.addGated(untouched, x, g.subarray(1), 0, E, B, n)).toThrow("addGated: with B 6, n 5 and E 3, y needs 30 values (has 30), x 30 (has 30), g 18 (has 17)");
    expect(() => blas!.gateGradient(new Float32Array(B * E - 1), dy, x, 0, E, B, n)).toThrow("gateGradient: with B 6, n 5 and E 3, dg needs 18 values (has 17), dy 30 (has 30), x 30 (has 30)");
    expect(() => blas!.addGated(untouched, x, g, 0, E, -1, n)).toThrow(/addGated: expected 0 <= e < E/);
    expect(() => blas!.addGated(untouched, Array.from(x) as unknown as Float32Array, g, 0, E, B, n)).toThrow("x: expected a Float32Array");
    expect(() => (blas!.gateGradient as unknown as (...a: unknown[]) => void)(untouched, dy, x, 0, E, B)).toThrow("gateGradient: expected 7 arguments");
    expect(untouched.every((v) => v === 0)).toBe(true);
  });

  it.runIf(blas)("takes a window of columns of indexed rows into examples' rows and adds gradients back; whole rows as gatherRows and scatterAddRows do", () => {
    const W = 5;
    const rows = fill(4 * W);
    // 3 examples x 2 slots.
    const S = 2;
    const rowOf = Int32Array.from([3, 0, 3, 2, 1, 3]);
    // Columns 1..3 of each value's row, side by side: out [6, 3].
    const out = new Float32Array(rowOf.length * 3).fill(Number.NaN);
    blas!.gatherColumns(rows, W, 1, 3, rowOf, out, S, S * 3, 0);
    for (let v = 0; v < rowOf.length; v++) for (let k = 0; k < 3; k++) expect(out[v * 3 + k]).toBe(rows[rowOf[v]! * W + 1 + k]);
    const src = fill(rowOf.length * 3);
    const dst = new Float32Array(4 * W);
    blas!.scatterAddColumns(src, 3, rowOf, W, 1, dst, S, S * 3, 0);
    const want = new Float32Array(4 * W);
    for (let v = 0; v < rowOf.length; v++) for (let k = 0; k < 3; k++) want[rowOf[v]! * W + 1 + k]! += src[v * 3 + k]!;
    expect(Array.from(dst)).toEqual(Array.from(want));
    // After 2 other columns in rows of 9 (an architecture's input: dense features, then the slots): only those columns written.
    const wide = new Float32Array(3 * 9).fill(-7);
    blas!.gatherColumns(rows, W, 1, 3, rowOf, wide, S, 9, 2);
    for (let b = 0; b < 3; b++) {
      for (let c = 0; c < 9; c++) expect(wide[b * 9 + c]).toBe(c < 2 || c >= 8 ? -7 : rows[rowOf[b * S + Math.floor((c - 2) / 3)]! * W + 1 + ((c - 2) % 3)]);
    }
    const back = new Float32Array(4 * W);
    blas!.scatterAddColumns(wide, 3, rowOf, W, 1, back, S, 9, 2);
    const backWant = new Float32Array(4 * W);
    for (let v = 0; v < rowOf.length; v++) for (let k = 0; k < 3; k++) backWant[rowOf[v]! * W + 1 + k]! += wide[Math.floor(v / S) * 9 + 2 + (v % S) * 3 + k]!;
    expect(Array.from(back)).toEqual(Array.from(backWant));
    // The whole width: gatherRows' and scatterAddRows' results, to the bit.
    const whole = new Float32Array(rowOf.length * W);
    blas!.gatherColumns(rows, W, 0, W, rowOf, whole, S, S * W, 0);
    const pooled = new Float32Array(rowOf.length * W);
    blas!.gatherRows(rows, W, rowOf, null, pooled);
    expect(Array.from(whole)).toEqual(Array.from(pooled));
    const grads = fill(rowOf.length * W);
    const [a, b] = [new Float32Array(4 * W), new Float32Array(4 * W)];
    blas!.scatterAddColumns(grads, W, rowOf, W, 0, a, S, S * W, 0);
    blas!.scatterAddRows(grads, W, null, rowOf, b);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    // A window past the row, a row outside the table, a stride too small, S not dividing the values, a short matrix: refused before anything is written.
    const untouched = new Float32Array(rowOf.length * 3);
    expect(() => blas!.gatherColumns(rows, W, 3, 3, rowOf, untouched, S, 6, 0)).toThrow("gatherColumns: expected 0 <= from, 0 <= take, from + take <= W and 1 <= W <= 2^31-1, got W 5, from 3, take 3");
    expect(() => blas!.gatherColumns(rows, 0, 0, 0, rowOf, untouched, S, 6, 0)).toThrow(/gatherColumns: expected 0 <= from/);
    expect(() => blas!.gatherColumns(rows, W, 1, 3, Int32Array.from([0, 4]), untouched, S, 6, 0)).toThrow("gatherColumns: value 1: row 4 of 4 is out of range");
    expect(() => blas!.gatherColumns(rows, W, 1, 3, Int32Array.from([0, -1]), untouched, S, 6, 0)).toThrow("gatherColumns: value 1: row -1 of 4 is out of range");
    expect(() => blas!.gatherColumns(rows, W, 1, 3, rowOf, untouched, S, 5, 0)).toThrow("gatherColumns: expected S >= 1 dividing the 6 values and at + S x take <= stride (each 0..2^31-1), got S 2, stride 5, at 0, take 3");
    expect(() => blas!.gatherColumns(rows, W, 1, 3, rowOf, untouched, 4, 12, 0)).toThrow(/gatherColumns: expected S >= 1 dividing the 6 values/);
    expect(() => blas!.gatherColumns(rows, W, 1, 3, rowOf, untouched.subarray(1), S, 6, 0)).toThrow("gatherColumns: 3 rows of stride 6 need 18 floats, out has 17");
    expect(() => blas!.gatherColumns(rows, W, 1, 3, rowOf, untouched, S, 7, 1)).toThrow("gatherColumns: 3 rows of stride 7 need 21 floats, out has 18");
    expect(() => blas!.scatterAddColumns(src.subarray(1), 3, rowOf, W, 1, untouched, S, 6, 0)).toThrow("scatterAddColumns: 3 rows of stride 6 need 18 floats, src has 17");
    expect(() => blas!.scatterAddColumns(src, 3, rowOf, W, 1, untouched.subarray(0, 3 * W), S, 6, 0)).toThrow("scatterAddColumns: value 0: row 3 of 3 is out of range");
    expect(() => blas!.gatherColumns(rows, W, 1, 3, Array.from(rowOf) as unknown as Int32Array, untouched, S, 6, 0)).toThrow("rowOf: expected an Int32Array");
    expect(() => (blas!.gatherColumns as unknown as (...a: unknown[]) => void)(rows, W, 1, 3, rowOf, untouched)).toThrow("gatherColumns: expected 9 arguments");
    expect(untouched.every((v) => v === 0)).toBe(true);
    // rowOf sharing dst's memory: an add that turns an index out of range is caught as it is used.
    const buf = new ArrayBuffer(8 * 4);
    const shared = new Int32Array(buf, 0, 2);
    shared.set([0, 0]);
    expect(() => blas!.scatterAddColumns(Float32Array.from([0, 3e-45, 0, 0]), 2, shared, 2, 0, new Float32Array(buf, 0, 4), 1, 2, 0)).toThrow(/^scatterAddColumns: value 1: row \d+ of 2/);
  });

  // D = 4 and 6: the four-lane kernels (6 with a scalar rest); D = 8, 16, 32: the eight-lane ones where the CPU has AVX2 (n = 8, 9 around their blocks).
  it.runIf(blas).each([[3, 5, 4], [2, 27, 16], [3, 4, 6], [2, 8, 8], [2, 9, 32], [1, 1, 16]])("computes the DLRM dot interaction and its gradient (B %i, n %i, D %i)", (B, n, D) => {
    // z [B, n, D] per sample: x is its first vector, the embeddings the other n - 1.
    const z = fill(B * n * D);
    const S = n - 1;
    const x = new Float32Array(B * D);
    const em = new Float32Array(B * S * D);
    for (let b = 0; b < B; b++) {
      x.set(z.subarray(b * n * D, b * n * D + D), b * D);
      em.set(z.subarray(b * n * D + D, (b + 1) * n * D), b * S * D);
    }
    const P = (n * (n - 1)) / 2;
    const pairs = new Float32Array(B * P);
    blas!.dotInteractionSplit(x, 0, em, 0, B, S, D, pairs, 0, P);
    const dOut = fill(B * P);
    const dx = new Float32Array(B * D);
    const dem = new Float32Array(B * S * D);
    blas!.dotInteractionSplitGrad(x, 0, em, 0, B, S, D, dOut, 0, P, dx, 0, dem, 0);
    const refDz = new Float64Array(B * n * D);
    for (let b = 0, p = 0; b < B; b++) {
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++, p++) {
          let dot = 0;
          for (let k = 0; k < D; k++) {
            dot += z[(b * n + i) * D + k]! * z[(b * n + j) * D + k]!;
            refDz[(b * n + i) * D + k]! += dOut[p]! * z[(b * n + j) * D + k]!;
            refDz[(b * n + j) * D + k]! += dOut[p]! * z[(b * n + i) * D + k]!;
          }
          expect(pairs[p]).toBeCloseTo(dot, 5);
        }
      }
    }
    for (let b = 0; b < B; b++) {
      for (let k = 0; k < D; k++) expect(dx[b * D + k]).toBeCloseTo(refDz[b * n * D + k]!, 5);
      for (let k = 0; k < S * D; k++) expect(dem[b * S * D + k]).toBeCloseTo(refDz[b * n * D + D + k]!, 5);
    }
    expect(() => blas!.dotInteractionSplit(x, 0, em, 0, B + 1, S, D, pairs, 0, P)).toThrow(/x, dx shorter than B x D/);
  });

  it.runIf(blas).each([[3, 4, 4], [2, 26, 16], [3, 3, 6]])("the interaction at offsets in one heap, output rows strided, equals it on arrays of their own (B %i, S %i, D %i)", (B, S, D) => {
    const n = S + 1;
    const P = (n * (n - 1)) / 2;
    const stride = P + 3;
    // One "heap": x at 5, the embeddings after it, the pairs after those, gradients further on; dx starts dirty (it is overwritten).
    const xOff = 5, emOff = xOff + B * D + 2, outOff = emOff + B * S * D + 1, dxOff = outOff + B * stride, demOff = dxOff + B * D;
    const heap = fill(demOff + B * S * D + 4);
    const x = heap.slice(xOff, xOff + B * D);
    const em = heap.slice(emOff, emOff + B * S * D);
    const pairs = new Float32Array(B * P);
    blas!.dotInteractionSplit(x, 0, em, 0, B, S, D, pairs, 0, P);
    const before = heap.slice();
    blas!.dotInteractionSplit(heap, xOff, heap, emOff, B, S, D, heap, outOff, stride);
    for (let b = 0; b < B; b++) {
      expect(Array.from(heap.subarray(outOff + b * stride, outOff + b * stride + P))).toEqual(Array.from(pairs.subarray(b * P, (b + 1) * P)));
      // The stride's gap is left alone.
      expect(Array.from(heap.subarray(outOff + b * stride + P, outOff + (b + 1) * stride))).toEqual(Array.from(before.subarray(outOff + b * stride + P, outOff + (b + 1) * stride)));
    }
    const dx = new Float32Array(B * D);
    const dem = new Float32Array(B * S * D);
    const dOut = new Float32Array(B * P);
    for (let b = 0; b < B; b++) dOut.set(heap.subarray(outOff + b * stride, outOff + b * stride + P), b * P);
    blas!.dotInteractionSplitGrad(x, 0, em, 0, B, S, D, dOut, 0, P, dx, 0, dem, 0);
    blas!.dotInteractionSplitGrad(heap, xOff, heap, emOff, B, S, D, heap, outOff, stride, heap, dxOff, heap, demOff);
    expect(Array.from(heap.subarray(dxOff, dxOff + B * D))).toEqual(Array.from(dx));
    expect(Array.from(heap.subarray(demOff, demOff + B * S * D))).toEqual(Array.from(dem));
    expect(Array.from(heap.subarray(0, xOff))).toEqual(Array.from(before.subarray(0, xOff)));
    expect(() => blas!.dotInteractionSplit(heap, xOff, heap, emOff, B, S, D, heap, outOff, P - 1)).toThrow(/outStride >= \(S\+1\)S\/2/);
    expect(() => blas!.dotInteractionSplit(heap, heap.length - 1, heap, emOff, B, S, D, heap, outOff, stride)).toThrow(/x, dx shorter than B x D/);
    expect(() => blas!.dotInteractionSplit(heap, xOff, heap, emOff, B, S, D, heap, heap.length + 1, stride)).toThrow(`offset ${heap.length + 1} of out is outside its ${heap.length} values`);
    expect(() => blas!.dotInteractionSplit(heap, xOff, heap, emOff, B, S, D, heap, emOff, stride)).toThrow("an output overlaps an input");
    expect(() => blas!.dotInteractionSplitGrad(heap, xOff, heap, emOff, B, S, D, heap, outOff, stride, heap, dxOff, heap, dxOff)).toThrow("an output overlaps an input");
  });

  it.runIf(blas)("computes a dense layer's ReLU mask and bias gradient in one pass, at offsets; refuses short or overlapping arrays", () => {
    const rows = 5, cols = 7; // a four-lane block and a scalar rest per row
    const heap = fill(4 + 3 * rows * cols + cols);
    const dyOff = 4, yOff = dyOff + rows * cols, dzOff = yOff + rows * cols, dbOff = dzOff + rows * cols;
    heap[yOff + 1] = 0; // exactly 0 counts as inactive
    const dy = heap.slice(dyOff, dyOff + rows * cols), y = heap.slice(yOff, yOff + rows * cols);
    blas!.biasReluGrad(heap, dyOff, heap, yOff, heap, dzOff, rows, cols, heap, dbOff);
    const db = new Float64Array(cols);
    for (let i = 0; i < rows * cols; i++) {
      const z = y[i]! > 0 ? dy[i]! : 0;
      expect(heap[dzOff + i]).toBe(Math.fround(z));
      db[i % cols]! += z;
    }
    db.forEach((v, c) => expect(heap[dbOff + c]).toBeCloseTo(v, 5));
    // No ReLU: the column sums of dy alone.
    const db2 = new Float32Array(cols);
    blas!.biasReluGrad(heap, dyOff, null, 0, null, 0, rows, cols, db2, 0);
    db2.forEach((v, c) => expect(v).toBeCloseTo(dy.filter((_, i) => i % cols === c).reduce((a, b) => a + b, 0), 5));
    expect(() => blas!.biasReluGrad(heap, dyOff, heap, yOff, heap, dzOff, rows, cols, heap, heap.length - 1)).toThrow("db: 7 values needed from its offset, 1 there");
    expect(() => blas!.biasReluGrad(heap, dyOff, heap, yOff, heap, yOff, rows, cols, heap, dbOff)).toThrow("biasReluGrad: an output overlaps an input");
    expect(() => blas!.biasReluGrad(heap, dyOff, heap, yOff, null, 0, rows, cols, heap, dbOff)).toThrow("dz with y");
  });

  it.runIf(blas)("adds one array into another as JavaScript's float sums do; refuses different lengths", () => {
    const a = fill(1000);
    const b = fill(1000).map((x) => x * 1e-3);
    const js = a.slice();
    for (let i = 0; i < js.length; i++) js[i]! += b[i]!;
    blas!.addInto(a, b);
    expect(Array.from(a)).toEqual(Array.from(js));
    expect(() => blas!.addInto(a, new Float32Array(3))).toThrow("addInto: dst has 1000 values, src 3");
  });

  it.runIf(blas)("finds the first value that is NaN or above a bound in magnitude, as JavaScript's !(Math.abs(x) <= max) does, in and across blocks", () => {
    const js = (a: Float32Array, max: number) => a.findIndex((x) => !(Math.abs(x) <= max));
    const F32_MAX = 3.4028234663852886e38;
    expect(blas!.firstOutside(Float32Array.from([1, 2, 3]), F32_MAX)).toBe(-1);
    expect(blas!.firstOutside(new Float32Array(0), 1)).toBe(-1);
    expect(blas!.firstOutside(Float32Array.from([1, Infinity, NaN]), F32_MAX)).toBe(1);
    expect(blas!.firstOutside(Float32Array.from([0, 0, -Infinity]), F32_MAX)).toBe(2);
    expect(blas!.firstOutside(Float32Array.from([Infinity, NaN]), Infinity)).toBe(1);
    expect(blas!.firstOutside(Float32Array.from([NaN]), Infinity)).toBe(0);
    expect(blas!.firstOutside(Float32Array.from([0, 1]), Number.NaN)).toBe(0);
    expect(blas!.firstOutside(Float32Array.from([0, -0]), -1)).toBe(0);
    // A bound no float equals: 0.1 as a float is just above 0.1, the float below it just under.
    const tenth = Float32Array.from([0.1]);
    const under = new Float32Array(new Uint32Array([new Uint32Array(tenth.buffer)[0]! - 1]).buffer);
    expect(blas!.firstOutside(Float32Array.from([under[0]!, -under[0]!, tenth[0]!]), 0.1)).toBe(2);
    expect(js(Float32Array.from([under[0]!, -under[0]!, tenth[0]!]), 0.1)).toBe(2);
    // Every position of a long array, in a block of 16 and in the rest, against the JavaScript check.
    for (const n of [15, 16, 17, 33, 100]) {
      for (let at = -1; at < n; at++) {
        for (const bad of [Number.NaN, 2e6, -2e6, Infinity]) {
          const a = Float32Array.from({ length: n }, (_, i) => ((i * 37) % 19) * 1e5 - 9e5);
          if (at >= 0) a[at] = bad;
          expect(blas!.firstOutside(a, 1e6)).toBe(js(a, 1e6));
        }
      }
    }
  });

  it.runIf(blas)("divides in place with the bits of the JavaScript loop", () => {
    for (const n of [1, 2, 3, 7, 10]) {
      const a = Float32Array.from({ length: 1003 }, (_, i) => rand() * 10 ** ((i % 13) - 6));
      const b = Float32Array.from(a);
      for (let k = 0; k < b.length; k++) b[k]! /= n;
      blas!.divideBy(a, n);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    }
  });

  it.runIf(blas)("finds ids' rows in embedding-table indexes, and stops on a full index without the id", () => {
    // Capacity 4 (12 words: lo, hi, row + 1 a slot). Id (5, slot 3) fills every slot of index 0 (found from any home);
    // index 1 is empty; index 2 is full of another id (no empty slot: the probe must still end).
    const hi = 3 << 16;
    const full = Uint32Array.from({ length: 12 }, (_, i) => [5, hi, 8][i % 3]!);
    const empty = new Uint32Array(12);
    const other = Uint32Array.from({ length: 12 }, (_, i) => [6, hi, 2][i % 3]!);
    const tableOfSlot = new Int32Array(0x8000).fill(-1);
    tableOfSlot[3] = 0;
    const ids = Uint32Array.from([5, hi, 9, hi, 5, 4 << 16]);
    const rows = new Int32Array(3);
    const tables = new Int32Array(3);
    blas!.findRows([full, empty, other], tableOfSlot, ids, 3, rows, tables);
    expect([...rows, ...tables]).toEqual([7, -1, -1, 0, 0, -1]);
    tableOfSlot[3] = 1;
    blas!.findRows([full, empty, other], tableOfSlot, ids, 2, rows, tables);
    expect([...rows.subarray(0, 2), ...tables.subarray(0, 2)]).toEqual([-1, -1, 1, 1]);
    tableOfSlot[3] = 2;
    blas!.findRows([full, empty, other], tableOfSlot, ids, 1, rows, tables);
    expect(rows[0]).toBe(-1);
    expect(() => blas!.findRows([full, new Uint32Array(9)], tableOfSlot, ids, 1, rows, tables)).toThrow("findRows: indexes[1] has 9 words, expected 3 x a power of two");
    expect(() => blas!.findRows([full], tableOfSlot, ids, 1, rows, tables)).toThrow("findRows: id 0's slot maps to table 2 of 1");
    expect(() => blas!.findRows([full], new Int32Array(16), ids, 1, rows, tables)).toThrow("findRows: tableOfSlot needs 32768 entries");
    expect(() => blas!.findRows([full], tableOfSlot, ids, 4, rows, tables)).toThrow("ids 2 x count words (6 for 4)");
    expect(() => blas!.findRows([full as unknown as Uint32Array, new Float32Array(12) as unknown as Uint32Array], tableOfSlot, ids, 1, rows, tables)).toThrow("indexes[1]: expected a Uint32Array");
  });

  it.runIf(blas)("copies rows of several widths out of several tables, zeros where an id has none; checks every extent first", () => {
    const a = Float32Array.from({ length: 12 }, (_, i) => i + 1); // 4 rows of 3
    const b = Float32Array.from({ length: 10 }, (_, i) => 100 + i); // 2 rows of 5
    const tables = Int32Array.from([1, 0, -1, 0]);
    const rows = Int32Array.from([1, 3, 0, -1]);
    const offsets = Int32Array.from([0, 5, 8, 10, 13]);
    const out = new Float32Array(13).fill(-7);
    blas!.readRows([a, b], tables, rows, 4, offsets, out);
    expect(Array.from(out)).toEqual([105, 106, 107, 108, 109, 10, 11, 12, 0, 0, 0, 0, 0]);
    out.fill(-7);
    expect(() => blas!.readRows([a, b], Int32Array.from([1, 0, -1, 0]), Int32Array.from([2, 3, 0, -1]), 4, offsets, out)).toThrow("readRows: id 0's row 2 (5 floats) of table 1 is outside its weights");
    expect(() => blas!.readRows([a, b], tables, rows, 4, Int32Array.from([0, 5, 8, 10, 14]), out)).toThrow("readRows: id 3's place 10..14 is outside out's 13 floats");
    expect(() => blas!.readRows([a, b], tables, rows, 4, Int32Array.from([0, 5, 4, 10, 13]), out)).toThrow("readRows: id 1's place 5..4 is outside out's 13 floats");
    expect(() => blas!.readRows([a], tables, rows, 4, offsets, out)).toThrow("table 1 is outside its weights");
    expect(out.every((v) => v === -7)).toBe(true);
  });

  it.runIf(blas)("inserts a table's new ids in request order, finds those already in, stops where the table needs room; checks extents first", () => {
    const hi = 3 << 16;
    const cap = 8; // index slots: 5 rows fit under the load of 0.7
    const fresh = () => ({ index: new Uint32Array(3 * cap), rowIds: new Uint32Array(2 * 6), weights: new Float32Array(2 * 6).fill(-9), state: new Float32Array(2 * 6), last: new Uint32Array(6) });
    const t = fresh();
    const pattern = Float32Array.from([0.1, 0.2]);
    // Ids 5, 6, 5 (again), 7 of table 0; id 9 of table 1 and id 6 already holding a row are passed over.
    const ids = Uint32Array.from([5, hi, 6, hi, 5, hi, 9, hi, 7, hi, 6, hi]);
    const tables = Int32Array.from([0, 0, 0, 1, 0, 0]);
    const rows = Int32Array.from([-1, -1, -1, -1, -1, 4]);
    expect(blas!.insertRows(t.index, t.rowIds, t.weights, t.state, t.last, 0, 2, pattern, 0, 0.5, 0, 77, ids, 6, tables, 0, rows)).toBe(3);
    expect(Array.from(rows)).toEqual([0, 1, 0, -1, 2, 4]);
    expect(Array.from(t.rowIds.subarray(0, 6))).toEqual([5, hi, 6, hi, 7, hi]);
    expect(Array.from(t.weights.subarray(0, 8))).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -9, -9]);
    expect(Array.from(t.state.subarray(0, 6))).toEqual(Array.from(Float32Array.from([0.1, 0.2, 0.1, 0.2, 0.1, 0.2])));
    expect(Array.from(t.last.subarray(0, 4))).toEqual([77, 77, 77, 0]);
    // findRows finds what was inserted.
    const tableOfSlot = new Int32Array(0x8000).fill(-1);
    tableOfSlot[3] = 0;
    const found = new Int32Array(3);
    blas!.findRows([t.index], tableOfSlot, Uint32Array.from([7, hi, 5, hi, 8, hi]), 3, found, new Int32Array(3));
    expect(Array.from(found)).toEqual([2, 0, -1]);
    // Five rows fill the index to its load; the sixth id stops the call: -(size + 1), the ids before it done.
    const more = Uint32Array.from([10, hi, 11, hi, 12, hi]);
    const r2 = Int32Array.from([-1, -1, -1]);
    expect(blas!.insertRows(t.index, t.rowIds, t.weights, t.state, t.last, 3, 2, pattern, 0, 0.5, 0, 78, more, 3, new Int32Array(3), 0, r2)).toBe(-(5 + 1));
    expect(Array.from(r2)).toEqual([3, 4, -1]);
    // Uniform initial weights lie in ±range.
    const u = fresh();
    blas!.insertRows(u.index, u.rowIds, u.weights, u.state, u.last, 0, 2, new Float32Array(0), 1, 0.05, 12345, 1, more, 3, new Int32Array(3), 0, Int32Array.from([-1, -1, -1]));
    expect(Array.from(u.weights.subarray(0, 6)).every((x) => Math.abs(x) <= 0.05 && x !== 0)).toBe(true);
    // Extents checked before anything is written.
    const w0 = fresh();
    const call = (patch: Partial<Record<string, unknown>>) => {
      const a = { index: w0.index, rowIds: w0.rowIds, weights: w0.weights, state: w0.state, last: w0.last, size: 0, dim: 2, pattern, count: 3, rows: Int32Array.from([-1, -1, -1]), ...patch };
      return () => blas!.insertRows(a.index as Uint32Array, a.rowIds as Uint32Array, a.weights as Float32Array, a.state as Float32Array, a.last as Uint32Array, a.size as number, a.dim as number, a.pattern as Float32Array, 0, 1, 0, 1, more, a.count as number, new Int32Array(3), 0, a.rows as Int32Array);
    };
    expect(call({ index: new Uint32Array(9) })).toThrow("insertRows: index has 9 words, expected 3 x a power of two");
    expect(call({ weights: new Float32Array(11) })).toThrow("insertRows: size 0 of 6 rows; rowIds 12 words, weights 11, state 12 (2 a row)");
    expect(call({ size: 7 })).toThrow("insertRows: size 7 of 6 rows");
    expect(call({ state: new Float32Array(11) })).toThrow("insertRows: size 0 of 6 rows; rowIds 12 words, weights 12, state 11 (2 a row)");
    expect(call({ rows: Int32Array.from([-1, -1]) })).toThrow("insertRows: dim 2, count 3 (ids 6 words, tables 3, rows 2)");
    expect(call({ count: 4 })).toThrow("insertRows: dim 2, count 4 (ids 6 words, tables 3, rows 3)");
    expect(call({ dim: 0 })).toThrow("insertRows: dim 0");
    expect(w0.weights.every((v) => v === -9) && w0.index.every((v) => v === 0)).toBe(true);
    // rows over lastUpdate (each stamp lands on the rows entry it then sets): answers, in bounds.
    const buf = new ArrayBuffer(6 * 4);
    const shared = fresh();
    const over = new Int32Array(buf, 0, 3).fill(-1);
    blas!.insertRows(shared.index, shared.rowIds, shared.weights, shared.state, new Uint32Array(buf), 0, 2, pattern, 0, 1, 0, 3, more, 3, new Int32Array(3), 0, over);
    expect(Array.from(over)).toEqual([0, 1, 2]);
  });

  it.runIf(blas)("rebuilds a table's index with the JavaScript's layout: each row at its first free slot from its home, in row order", () => {
    // Ids crowded onto few homes (a 64-slot index, 44 rows: long probe runs that wrap around the end).
    const cap = 64;
    const size = 44;
    const rowIds = new Uint32Array(2 * 50);
    for (let r = 0; r < size; r++) {
      rowIds[2 * r] = (r * 2654435761) >>> 0;
      rowIds[2 * r + 1] = ((3 << 16) | (r % 5)) >>> 0;
    }
    const index = new Uint32Array(3 * cap);
    blas!.rehashIndex(rowIds, size, index);
    // The reference: EmbeddingTable's own probe (home = mix32(lo ^ mix32(hi ^ 0x27d4eb2d)) & mask), written out here.
    const mix = (h: number) => {
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      return (h ^ (h >>> 16)) >>> 0;
    };
    const expected = new Uint32Array(3 * cap);
    for (let r = 0; r < size; r++) {
      let at = mix(rowIds[2 * r]! ^ mix(rowIds[2 * r + 1]! ^ 0x27d4eb2d)) & (cap - 1);
      while (expected[3 * at + 2] !== 0) at = (at + 1) & (cap - 1);
      expected.set([rowIds[2 * r]!, rowIds[2 * r + 1]!, r + 1], 3 * at);
    }
    expect(index).toEqual(expected);
    expect(() => blas!.rehashIndex(rowIds, 45, new Uint32Array(3 * cap))).toThrow("rehashIndex: 45 rows (rowIds 100 words) into an index of 192 words");
    expect(() => blas!.rehashIndex(rowIds, 51, new Uint32Array(3 * 128))).toThrow("rehashIndex: 51 rows (rowIds 100 words)");
    // An index already holding entries (a careless caller): every row still lands in bounds, or a RangeError.
    const full = new Uint32Array(3 * 8).fill(1);
    expect(() => blas!.rehashIndex(rowIds, 2, full)).toThrow("rehashIndex: no free slot for row 0");
  });

  it.runIf(blas)("applies sparse Adagrad to many rows with the JavaScript loop's bits; refuses a row outside the table before changing any", () => {
    const dim = 5;
    const rowsN = 6;
    const w = fill(rowsN * dim);
    const state = Float32Array.from({ length: rowsN * dim }, () => 0.1 + Math.abs(rand()));
    const last = new Uint32Array(rowsN);
    const rows = Int32Array.from([4, 0, 2]);
    const sums = fill(3 * dim);
    sums[0] = -0;
    sums[1] = 0;
    for (const wd of [0, 0.01]) {
      const jw = w.slice();
      const js = state.slice();
      const lr = 0.05;
      const workers = 3;
      rows.forEach((row, i) => {
        for (let k = 0; k < dim; k++) {
          const g = Math.fround(sums[i * dim + k]! / workers);
          const gi = g + wd * jw[row * dim + k]!;
          const n = js[row * dim + k]! + gi * gi;
          js[row * dim + k] = n;
          jw[row * dim + k]! -= (lr * gi) / Math.sqrt(n);
        }
      });
      blas!.adagradRows(w, state, last, dim, rows, 3, sums, workers, lr, wd, 1234);
      expect(Array.from(w)).toEqual(Array.from(jw));
      expect(Array.from(state)).toEqual(Array.from(js));
      expect(Array.from(last)).toEqual([1234, 0, 1234, 0, 1234, 0]);
    }
    const before = w.slice();
    expect(() => blas!.adagradRows(w, state, last, dim, Int32Array.from([0, 6]), 2, sums, 1, 0.05, 0, 1)).toThrow("adagradRows: row 6 is outside the table");
    expect(() => blas!.adagradRows(w, state, last, dim, rows, 4, sums, 1, 0.05, 0, 1)).toThrow("rows needs count entries (3)");
    expect(Array.from(w)).toEqual(Array.from(before));
  });

  it.runIf(blas)("adds a push's row gradients into per-table sums, stops for room and resumes, refuses out-of-range values; checks every extent", () => {
    // Two tables: slot 1 (width 2) in table 0, slot 2 (width 3) in table 1.
    const widthOfSlot = new Int32Array(0x8000).fill(2);
    widthOfSlot[2] = 3;
    const id = (lo: number, slot: number) => [lo, slot << 16];
    // ids: (table 0 row 4), (table 1 row 0), (no row, width 2), (table 0 row 4 again), (table 1 row 1, refused: NaN), (table 0 row 1)
    const ids = Uint32Array.from([...id(10, 1), ...id(11, 2), ...id(12, 1), ...id(10, 1), ...id(13, 2), ...id(14, 1)]);
    const tables = Int32Array.from([0, 1, 0, 0, 1, 0]);
    const rows = Int32Array.from([4, 0, -1, 4, 1, 1]);
    const grads = Float32Array.from([1, 2, 3, 4, 5, 9, 9, 0.5, 0.25, NaN, 0, 0, 6, 7]);
    const slots = [new Int32Array(8).fill(-1), new Int32Array(4), new Int32Array(8).fill(-1), new Int32Array(4)];
    const sums = [new Float32Array(8).fill(99), new Float32Array(12).fill(99)];
    const counts = new Int32Array(2);
    const progress = new Int32Array(4);
    blas!.accumulateRows(slots, sums, counts, widthOfSlot, ids, tables, rows, 6, grads, 1e6, progress);
    expect([...progress]).toEqual([6, 14, 1, -1]);
    expect([...counts]).toEqual([2, 1]);
    expect([...slots[1]!.subarray(0, 2)]).toEqual([4, 1]);
    expect(slots[0]![4]).toBe(0);
    expect(slots[0]![1]).toBe(1);
    expect([...sums[0]!.subarray(0, 4)]).toEqual([1.5, 2.25, 6, 7]);
    expect([...sums[1]!.subarray(0, 3)]).toEqual([3, 4, 5]);
    // A value beyond maxAbs is refused like NaN: row 4's [1, 2] is summed, row 0's [3, 4, 5] refused.
    counts.fill(0);
    slots[0]!.fill(-1);
    slots[2]!.fill(-1);
    progress.fill(0);
    blas!.accumulateRows(slots, sums, counts, widthOfSlot, ids, tables, rows, 2, grads, 2.5, progress);
    expect([...progress]).toEqual([2, 5, 1, -1]);
    expect([...counts]).toEqual([1, 0]);
    // No room: a row past table 0's row map, then a full list of touched rows; it stops before the id, naming the table.
    const small = [new Int32Array(2).fill(-1), new Int32Array(1), new Int32Array(8).fill(-1), new Int32Array(4)];
    const smallSums = [new Float32Array(2), new Float32Array(12)];
    counts.fill(0);
    progress.fill(0);
    blas!.accumulateRows(small, smallSums, counts, widthOfSlot, ids, tables, rows, 6, grads, 1e6, progress);
    expect([...progress]).toEqual([0, 0, 0, 0]);
    small[0] = new Int32Array(8).fill(-1);
    blas!.accumulateRows(small, smallSums, counts, widthOfSlot, ids, tables, rows, 6, grads, 1e6, progress);
    // Row 4 summed (its place 0), row 0 of table 1, the id without a row, row 4 again, the refused one; row 1 needs room.
    expect([...progress]).toEqual([5, 12, 1, 0]);
    small[1] = new Int32Array(2);
    smallSums[0] = new Float32Array(4);
    smallSums[0].set([1.5, 2.25]);
    blas!.accumulateRows(small, smallSums, counts, widthOfSlot, ids, tables, rows, 6, grads, 1e6, progress);
    expect([...progress]).toEqual([6, 14, 1, -1]);
    expect([...smallSums[0]]).toEqual([1.5, 2.25, 6, 7]);
    // Extents: gradients too short, a table past the lists, a row map's place past the count, lists that do not pair up.
    const fresh = () => [new Int32Array(8).fill(-1), new Int32Array(4), new Int32Array(8).fill(-1), new Int32Array(4)];
    const p = () => new Int32Array(4);
    expect(() => blas!.accumulateRows(fresh(), sums, new Int32Array(2), widthOfSlot, ids, tables, rows, 6, grads.subarray(0, 13), 1e6, p())).toThrow(
      "accumulateRows: id 5's 2 gradient values from 12 are outside grads' 13",
    );
    expect(() => blas!.accumulateRows(fresh(), sums, new Int32Array(2), widthOfSlot, ids, Int32Array.from([0, 2, 0, 0, 1, 0]), rows, 6, grads, 1e6, p())).toThrow(
      "accumulateRows: id 1 has row 0 of table 2, outside the 2 tables",
    );
    const lying = fresh();
    lying[0]![4] = 3;
    expect(() => blas!.accumulateRows(lying, sums, new Int32Array(2), widthOfSlot, ids, tables, rows, 6, grads, 1e6, p())).toThrow("accumulateRows: table 0's row 4 is at place 3 of 0 summed rows");
    expect(() => blas!.accumulateRows(fresh().slice(0, 3), sums, new Int32Array(2), widthOfSlot, ids, tables, rows, 6, grads, 1e6, p())).toThrow(/^accumulateRows: 2 tables need 2 x as many slots lists \(3\)/);
    expect(() => blas!.accumulateRows(fresh(), sums, new Int32Array(2), widthOfSlot, ids, tables, rows, 7, grads, 1e6, p())).toThrow(/ids 2 x count words \(12 for 7\)/);
    expect(() => blas!.accumulateRows(fresh(), [sums[0]!, new Int32Array(3) as unknown as Float32Array], new Int32Array(2), widthOfSlot, ids, tables, rows, 6, grads, 1e6, p())).toThrow("sums[1]: expected a Float32Array");
    // A wrong element in the first list, and the second: a TypeError each (and the process lives on: no double free).
    const wrong = fresh() as unknown as Int32Array[];
    wrong[0] = new Float32Array(8) as unknown as Int32Array;
    expect(() => blas!.accumulateRows(wrong, sums, new Int32Array(2), widthOfSlot, ids, tables, rows, 6, grads, 1e6, p())).toThrow("slots[0]: expected an Int32Array");
    expect(() => blas!.accumulateRows([undefined as unknown as Int32Array], sums, new Int32Array(2), widthOfSlot, ids, tables, rows, 6, grads, 1e6, p())).toThrow("slots[0]: expected an Int32Array");
    // Two lists a table: as many tables as slots is allowed, one more list than that is not.
    expect(() => blas!.accumulateRows(new Array(2 * 0x8000 + 1).fill(new Int32Array(0)), [], new Int32Array(0), widthOfSlot, ids, tables, rows, 0, grads, 1e6, p())).toThrow("slots: 65537 entries, at most 65536");
  });

  it.runIf(blas)("deduplicates id word pairs in first-seen order with each one's index; refuses a table too small", () => {
    const words = Uint32Array.from([5, 1, 6, 1, 5, 1, 5, 2, 6, 1]);
    const table = new Uint32Array(3 * 8).fill(99); // stale scratch: cleared first
    const unique = new Uint32Array(10);
    const inverse = new Int32Array(5);
    expect(blas!.dedupIds(words, 5, table, unique, inverse)).toBe(3);
    expect(Array.from(unique.subarray(0, 6))).toEqual([5, 1, 6, 1, 5, 2]);
    expect(Array.from(inverse)).toEqual([0, 1, 0, 2, 1]);
    expect(() => blas!.dedupIds(words, 5, new Uint32Array(3 * 4), unique, inverse)).toThrow("a table of 3 x a power of two > count slots (12 words)");
    expect(() => blas!.dedupIds(words, 6, table, unique, inverse)).toThrow("dedupIds: 6 ids need 2 x count words (10)");
  });

  it.runIf(blas)("outputs sharing memory with inputs, or changed by a getter, never take a kernel out of bounds", () => {
    // A hostile or careless caller: outputs as views of the inputs' memory (what a kernel checked may change as it
    // writes), and a list whose getter runs JavaScript. Each call must end in bounds: an answer or a RangeError.
    const hi = 3 << 16;
    const index = Uint32Array.from({ length: 12 }, (_, i) => [5, hi, 8][i % 3]!);
    const shared = new Int32Array(0x8000 + 8);
    const tableOfSlot = shared.subarray(0, 0x8000);
    tableOfSlot[3] = 0;
    // rows and tables alias tableOfSlot's entry for slot 3: the first write changes the table number later ids read.
    const ids = Uint32Array.from([5, hi, 5, hi, 5, hi]);
    blas!.findRows([index], tableOfSlot, ids, 3, shared.subarray(3, 6), shared.subarray(2, 5));
    // readRows: out over offsets (the first copy rewrites the widths the check read).
    const buf = new ArrayBuffer(64 * 4);
    const offsets = new Int32Array(buf, 0, 4);
    offsets.set([0, 4, 8, 12]);
    const out = new Float32Array(buf, 0, 16);
    const weights = Float32Array.from({ length: 16 }, () => 3e9);
    try {
      blas!.readRows([weights], Int32Array.from([0, 0, 0]), Int32Array.from([0, 1, 2]), 3, offsets, out);
    } catch (err) {
      expect((err as Error).message).toMatch(/^readRows: /);
    }
    // adagradRows: lastUpdate over rows (stamping a row rewrites a later row number to `now`).
    const words = new ArrayBuffer(16 * 4);
    const rows = new Int32Array(words, 0, 4);
    rows.set([1, 2, 3, 0]);
    const last = new Uint32Array(words);
    expect(() => blas!.adagradRows(new Float32Array(64), new Float32Array(64).fill(1), last, 4, rows, 4, new Float32Array(16), 1, 0.1, 0, 999_999)).toThrow(
      "adagradRows: row 999999 is outside the table",
    );
    // dedupIds: unique over the table (the table fills up): a RangeError, not an endless probe.
    const table = new Uint32Array(3 * 8);
    for (let count = 1; count <= 7; count++) {
      try {
        blas!.dedupIds(Uint32Array.from({ length: 14 }, (_, i) => i % 3), count, table, table.subarray(0, 14), new Int32Array(7));
      } catch (err) {
        expect((err as Error).message).toMatch(/^dedupIds: the table is full/);
      }
    }
    // accumulateRows: sums over rows and tables (a sum written rewrites a later id's row and table number).
    const mem = new ArrayBuffer(64 * 4);
    const aRows = new Int32Array(mem, 0, 4);
    const aTables = new Int32Array(mem, 16, 4);
    aRows.set([0, 1, 2, 3]);
    const widths = new Int32Array(0x8000).fill(4);
    const huge = Float32Array.from({ length: 16 }, () => 3e9);
    try {
      blas!.accumulateRows([new Int32Array(16).fill(-1), new Int32Array(16)], [new Float32Array(mem)], new Int32Array(1), widths, new Uint32Array(8), aTables, aRows, 4, huge, 1e10, new Int32Array(4));
    } catch (err) {
      expect((err as Error).message).toMatch(/^accumulateRows: /);
    }
    // A getter on the slots list detaching grads' buffer: both lists are read before any memory is taken, so grads is refused.
    const gone = new Float32Array(4);
    const slotList = [new Int32Array(4).fill(-1), new Int32Array(4)];
    Object.defineProperty(slotList, 1, { get: () => (structuredClone(gone.buffer, { transfer: [gone.buffer] }), new Int32Array(4)) });
    expect(() => blas!.accumulateRows(slotList, [new Float32Array(16)], new Int32Array(1), widths, Uint32Array.from([0, 0]), new Int32Array(1), new Int32Array(1), 1, gone, 1e6, new Int32Array(4))).toThrow(
      "accumulateRows: id 0's 4 gradient values from 0 are outside grads' 0",
    );
    // A getter on the list detaching out's buffer: the list is read before out's memory is taken, so out is refused.
    const moving = new Float32Array(8);
    const list = [new Float32Array(8)];
    Object.defineProperty(list, 0, { get: () => (structuredClone(moving.buffer, { transfer: [moving.buffer] }), new Float32Array(8)) });
    expect(() => blas!.readRows(list, Int32Array.from([0]), Int32Array.from([0]), 1, Int32Array.from([0, 4]), moving)).toThrow("readRows: id 0's place 0..4 is outside out's 0 floats");
  });

  it.runIf(blas)("extents whose products overflow, or indexes an add changes, are refused instead of reaching memory", () => {
    const f = (n: number) => new Float32Array(n);
    expect(() => blas!.dotInteractionSplit(f(4), 0, f(4), 0, 2 ** 62, 1, 4, f(1), 0, 4)).toThrow("dot interaction: B and outStride must be 0..2^31-1");
    expect(() => blas!.biasReluGrad(f(4), 0, f(4), 0, f(4), 0, 2 ** 62, 4, f(4), 0)).toThrow("biasReluGrad: rows x cols overflows");
    expect(() => blas!.gemm(false, false, 0, 0, 0, f(1), 0, f(1), 0, f(1), 0, 2 ** 53, 0, 0, 0, null, 0, 0, false)).toThrow("gemm: M, N, K must be 0..2^31-1 and batch 1..2^31-1");
    // scatterAddRows with dst over rowOf: the first add turns rowOf[1] from 0 into a large row number.
    const buf = new ArrayBuffer(8 * 4);
    const rowOf = new Int32Array(buf, 0, 2);
    const dst = new Float32Array(buf, 0, 4);
    const src = Float32Array.from([0, 3e-45, 0, 0]); // the float whose bits are the int 2: rowOf[1] becomes 2, past dst's 2 rows of 2
    rowOf.set([0, 0]);
    expect(() => blas!.scatterAddRows(src, 2, null, rowOf, dst)).toThrow(/^value 1: row \d+ of 2/);
  });

  it.runIf(blas)("sparse Adagrad's scalar path (PANGEA_BLAS_NO_AVX2=1, a process of its own: the choice is made once) has the JavaScript loop's bits", () => {
    const script = `
      const { nativeBlas } = await import(${JSON.stringify(new URL("../dist/index.js", import.meta.url).href)});
      const blas = nativeBlas().blas;
      let seed = 3; const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      const dim = 9, n = 40, w = Float32Array.from({ length: n * dim }, rand), s = Float32Array.from({ length: n * dim }, () => 0.1 + Math.abs(rand()));
      const rows = Int32Array.from({ length: n }, (_, i) => (i * 7) % n), sums = Float32Array.from({ length: n * dim }, rand);
      const jw = w.slice(), js = s.slice();
      rows.forEach((row, i) => { for (let k = 0; k < dim; k++) { const g = Math.fround(sums[i * dim + k] / 3); const gi = g + 0.01 * jw[row * dim + k]; const v = js[row * dim + k] + gi * gi; js[row * dim + k] = v; jw[row * dim + k] -= (0.05 * gi) / Math.sqrt(v); } });
      blas.adagradRows(w, s, new Uint32Array(n), dim, rows, n, sums, 3, 0.05, 0.01, 1);
      process.stdout.write(String(w.every((x, i) => Object.is(x, jw[i])) && s.every((x, i) => Object.is(x, js[i]))));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, PANGEA_BLAS_NO_AVX2: "1" }, encoding: "utf8" });
    expect(out).toBe("true");
  });

  it.runIf(blas)("counts the flops and time it spends", () => {
    const [s0, f0] = blas!.counters();
    blas!.gemm(false, false, 8, 8, 8, fill(64), 0, fill(64), 0, new Float32Array(64), 0, 1, 0, 0, 0, null, 0, 0, false);
    const [s1, f1] = blas!.counters();
    expect(f1 - f0).toBe(2 * 8 * 8 * 8);
    expect(s1).toBeGreaterThan(s0);
  });
});
