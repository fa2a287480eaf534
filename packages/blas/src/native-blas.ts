import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The addon's surface (native/blas.c). Operands are Float32Arrays with
 * element offsets; row-major; every extent is bounds-checked natively.
 */
export interface NativeBlas {
  /**
   * For i < batch: C[cOff + i*strideC] = op(A) op(B) (+ bias) (relu), op(A) M x K,
   * op(B) K x N, C M x N. bias: N values (per column) or M x N (biasPerRow = 1), or null.
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    A: Float32Array, aOff: number, B: Float32Array, bOff: number, C: Float32Array, cOff: number,
    batch: number, strideA: number, strideB: number, strideC: number,
    bias: Float32Array | null, biasOff: number, biasPerRow: number, relu: boolean,
  ): void;
  /** Sum pooling: dst[cellOf[v] (or v)] += src[rowOf[v]], rows of D floats; indices checked first. */
  gatherRows(src: Float32Array, D: number, rowOf: Int32Array, cellOf: Int32Array | null, dst: Float32Array): void;
  /** Its gradient: dst[rowOf[v]] += src[cellOf[v] (or v)]. */
  scatterAddRows(src: Float32Array, D: number, cellOf: Int32Array | null, rowOf: Int32Array, dst: Float32Array): void;
  /**
   * For each of B rows: slot s's take[s] columns, from `from` into its widths[s]-wide
   * block (blocks side by side from column `from` of a wideCols-wide row), copied to the
   * narrow matrix (narrowCols a row, side by side from narrowFrom); back = true copies
   * the other way. Extents checked first.
   */
  copyColumns(
    wide: Float32Array, wideCols: number, from: number, widths: Int32Array,
    narrow: Float32Array, narrowCols: number, narrowFrom: number, take: Int32Array, B: number, back: boolean,
  ): void;
  /**
   * DeepFM's second-order term of B rows of S slot vectors of width D (x [B, S*D]):
   * y[b] = 0.5 * sum_k ((sum_s x_sk)^2 - sum_s x_sk^2), with the JavaScript loop's bits. Extents checked first.
   */
  fmForward(x: Float32Array, B: number, S: number, D: number, y: Float32Array): void;
  /** Its gradient for upstream g [B]: dx_sk = g[b] * (sum_s' x_s'k - x_sk), written (not added), the JavaScript loop's bits. */
  fmGradient(x: Float32Array, g: Float32Array, B: number, S: number, D: number, dx: Float32Array): void;
  /**
   * Value v = b * S + s (example b of rowOf.length / S, slot s) has row rowOf[v] of rows W wide: its columns
   * from .. from+take are written to out[b * outStride + outAt + s * take + k]. Extents and indexes checked first.
   * (The source's arguments come first, as in gatherRows; scatterAddColumns starts with its source, the other matrix.)
   */
  gatherColumns(rows: Float32Array, W: number, from: number, take: number, rowOf: Int32Array, out: Float32Array, S: number, outStride: number, outAt: number): void;
  /** Back: dst[rowOf[v], from + k] += src[b * srcStride + srcAt + s * take + k], values in order (scatterAddRows' order). Checked first. */
  scatterAddColumns(src: Float32Array, take: number, rowOf: Int32Array, W: number, from: number, dst: Float32Array, S: number, srcStride: number, srcAt: number): void;
  /** An MMoE mixture's expert e, for gates g [B, E] and y, x [B, n]: y[b, k] += g[b, e] * x[b, k], the JavaScript loop's bits. */
  addGated(y: Float32Array, x: Float32Array, g: Float32Array, e: number, E: number, B: number, n: number): void;
  /** The gates' gradient column e: dg[b, e] = dy_b . x_b (dg [B, E], dy and x [B, n]), the JavaScript loop's bits. */
  gateGradient(dg: Float32Array, dy: Float32Array, x: Float32Array, e: number, E: number, B: number, n: number): void;
  /**
   * DLRM's dot interaction over the bottom output x [B, D] and the pooled
   * embeddings em [B, S, D], each at an element offset (all may be views of
   * one heap): out[outOff + b * outStride + p] = the dot products of the pairs
   * i < j of [x_b; em_b] in row order, outStride >= (S+1)S/2. Outputs may not
   * overlap inputs.
   */
  dotInteractionSplit(x: Float32Array, xOff: number, em: Float32Array, emOff: number, B: number, S: number, D: number, out: Float32Array, outOff: number, outStride: number): void;
  /** Its gradient, written (not added) to dx [B, D] and dem [B, S, D]. */
  dotInteractionSplitGrad(
    x: Float32Array, xOff: number, em: Float32Array, emOff: number, B: number, S: number, D: number,
    dOut: Float32Array, dOutOff: number, dOutStride: number, dx: Float32Array, dxOff: number, dem: Float32Array, demOff: number,
  ): void;
  /**
   * A dense layer's gradient ahead of its matmuls, in one pass over dy [rows, cols]
   * (each array at an element offset; outputs may not overlap inputs):
   * with y (its ReLU output) dz = dy where y > 0, else 0, and db = dz's column sums;
   * with y null, db = dy's column sums (dz unused).
   */
  biasReluGrad(
    dy: Float32Array, dyOff: number, y: Float32Array | null, yOff: number, dz: Float32Array | null, dzOff: number,
    rows: number, cols: number, db: Float32Array, dbOff: number,
  ): void;
  /**
   * Adagrad in place with coupled L2: g' = g + l2 w; acc += g'^2;
   * w -= lr g' / (sqrt(acc) + eps), in double precision rounded once to
   * float (the same bits as the JavaScript loop).
   */
  adagrad(w: Float32Array, acc: Float32Array, g: Float32Array, lr: number, eps: number, l2: number): void;
  /** dst += src, element by element (same lengths). */
  addInto(dst: Float32Array, src: Float32Array): void;
  /** The index of the first value that is NaN or above `max` in magnitude (JavaScript's !(Math.abs(x) <= max)), or -1. */
  firstOutside(a: Float32Array, max: number): number;
  /** a[i] /= n, in double rounded to float (the bits of the JavaScript loop on a Float32Array). */
  divideBy(a: Float32Array, n: number): void;
  /**
   * The orchestrator's embedding-table lookups, many ids at once (native/blas.c
   * says the index layout): id i's table tables[i] = tableOfSlot[its v2 slot]
   * (-1: none) and its row in indexes[table] (-1: absent). Reads only.
   */
  findRows(indexes: readonly Uint32Array[], tableOfSlot: Int32Array, ids: Uint32Array, count: number, rows: Int32Array, tables: Int32Array): void;
  /** out[offsets[i]..offsets[i+1]) = row rows[i] of weights[tables[i]] (that many floats wide), zeros where either is -1. */
  readRows(weights: readonly Float32Array[], tables: Int32Array, rows: Int32Array, count: number, offsets: Int32Array, out: Float32Array): void;
  /**
   * EmbeddingTable.rehash: an empty index (3 x a power of two words) filled with rows 0..size-1 of rowIds (word
   * pairs), each at its first free slot from its home, in row order.
   */
  rehashIndex(rowIds: Uint32Array, size: number, index: Uint32Array): void;
  /**
   * EmbeddingTable.findOrInsert for the ids i (in order) with tables[i] === table and rows[i] < 0, into one table's
   * index, rowIds, weights, state and lastUpdate (its slabs, rows = lastUpdate.length): a new row gets the id's words,
   * initial weights (initKind 0: all initValue; 1: uniform in ±initValue from mulberry32 seeded with hashWords(seed, lo,
   * hi), seedHash = hashWords(seed): the bits of the JavaScript), statePattern as its state and `now` as its stamp;
   * rows[i] is set. Returns the new size; or, at an id that would pass the index's load of 0.7 or the slabs' rows,
   * -(size + 1), the ids before it done (the caller grows the table, as findOrInsert would, and calls again).
   */
  insertRows(index: Uint32Array, rowIds: Uint32Array, weights: Float32Array, state: Float32Array, lastUpdate: Uint32Array, size: number, dim: number, statePattern: Float32Array, initKind: number, initValue: number, seedHash: number, now: number, ids: Uint32Array, count: number, tables: Int32Array, table: number, rows: Int32Array): number;
  /**
   * The unique ids of `count` (lo, hi) word pairs, first-seen order, into unique;
   * each id's index among them into inverse; returns how many. table: scratch of
   * 3 x a power of two (> count) words.
   */
  dedupIds(words: Uint32Array, count: number, table: Uint32Array, unique: Uint32Array, inverse: Int32Array): number;
  /**
   * The orchestrator's sparse Adagrad on `count` rows of one table: row rows[i]
   * takes the gradient sums[i*dim..] / workers (rounded to float), g' = g + wd w,
   * state += g'^2, w -= lr g' / sqrt(state), stamping lastUpdate[row] = now; the
   * bits of the JavaScript loop.
   */
  adagradRows(w: Float32Array, state: Float32Array, lastUpdate: Uint32Array, dim: number, rows: Int32Array, count: number, sums: Float32Array, workers: number, lr: number, wd: number, now: number): void;
  /**
   * A push's row gradients added into a step's per-table sums (the
   * orchestrator's SparseSums; native/blas.c says the layout): id i owns the
   * next widthOfSlot[its slot] values of grads; ids without a row are passed
   * over, ids with a value NaN or beyond maxAbs refused (progress[2] counts
   * them). Resumable from progress[0] (id) and progress[1] (value); stops
   * with progress[3] = the table that needs room (else -1).
   */
  accumulateRows(slots: readonly Int32Array[], sums: readonly Float32Array[], counts: Int32Array, widthOfSlot: Int32Array, ids: Uint32Array, tables: Int32Array, rows: Int32Array, count: number, grads: Float32Array, maxAbs: number, progress: Int32Array): void;
  /**
   * Serving's embedding pooling (services/serving's poolCells; native/blas.c
   * says the table layout): for `count` examples of dims.length columns,
   * out[e * E + slotAt[k] ..] (E = slotAt[columns]) = the rows of cell
   * e * columns + k's ids (offsets null: one id a cell), summed, then scaled
   * by pooling[k] (0 sum, 1 mean, 2 sqrtn); the bits of the JavaScript loop.
   */
  poolCells(
    keys: readonly Uint32Array[], slots: readonly Int32Array[], rows: readonly Float32Array[], dims: Int32Array, pooling: Int32Array,
    ids: Uint32Array, offsets: Uint32Array | null, count: number, slotAt: Int32Array, out: Float32Array,
  ): void;
  /** OpenBLAS's thread count for later calls. */
  setThreads(threads: number): void;
  threads(): number;
  /** OpenBLAS's build description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell MAX_THREADS=64". */
  config(): string;
  /** [seconds, flops] spent in gemm since the addon loaded. */
  counters(): [number, number];
}

export interface NativeBlasStatus {
  blas: NativeBlas | null;
  /** Why there is no addon ("" when there is one). */
  reason: string;
}

const addonPath = join(dirname(fileURLToPath(import.meta.url)), "..", "native", "build", "pangea_blas.node");
let cached: NativeBlasStatus | null = null;

/**
 * The native BLAS addon when it was built on this machine and loads, else
 * null with the reason. PANGEA_NATIVE_BLAS=off forces the fallback (to
 * compare, or to rule the addon out).
 */
export function nativeBlas(): NativeBlasStatus {
  if (cached) return cached;
  if (process.env.PANGEA_NATIVE_BLAS === "off") return (cached = { blas: null, reason: "disabled by PANGEA_NATIVE_BLAS=off" });
  if (!existsSync(addonPath)) {
    const status = join(dirname(addonPath), "status.json");
    const why = existsSync(status) ? (JSON.parse(readFileSync(status, "utf8")) as { reason: string }).reason : "the build step has not run";
    return (cached = { blas: null, reason: `not built: ${why}` });
  }
  try {
    const blas = createRequire(import.meta.url)(addonPath) as NativeBlas;
    return (cached = { blas, reason: "" });
  } catch (err) {
    return (cached = { blas: null, reason: `${addonPath} did not load: ${(err as Error).message.split("\n")[0]}` });
  }
}
