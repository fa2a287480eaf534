/**
 * Embedding-table throughput (a benchmark, not a test): the workload of
 * bench/cpp/flat_hash_map_bench.cc — insert ROWS ids, then BATCHES batches of
 * BATCH Zipf-like (log-uniform rank) ids looked up (row copied out) and
 * updated with Adagrad — on Pangea's EmbeddingTable (an id at a time, and a
 * batch at a time on the native addon, as pulls and pushes use it, inserts
 * included) and on a
 * JS Map baseline.
 * Prints one JSON line per measurement. --batched-insert times only the
 * batch-at-a-time insert (the addon's, as a pull's new ids get their rows),
 * in a process of its own: memory growth is most of an insert's cost, and
 * a process already holding a large table pays more for it.
 * Usage: node embedding-table.js ROWS DIM BATCHES BATCH [--no-map] [--batched-insert]
 */
import { mix32, Rng } from "@pangea/kit";
import { nativeBlas } from "@pangea/blas";
import { V2_MAX_SLOT } from "@pangea/features";
import { EmbeddingTable } from "../embeddings/embedding-table.js";
import { makeSparseOptimizer } from "../optim/sparse-optimizers.js";

const [rows, dim, batches, batch] = process.argv.slice(2, 6).map(Number) as [number, number, number, number];
const withMap = !process.argv.includes("--no-map");
const batchedInsert = process.argv.includes("--batched-insert");

function idLo(i: number): number {
  return mix32((i ^ 0x9e3779b9) >>> 0);
}
function idHi(i: number): number {
  return mix32((i + 0x7f4a7c15) >>> 0) & 0x7fffffff;
}

function report(impl: string, op: string, n: number, seconds: number): void {
  process.stdout.write(`${JSON.stringify({ impl, op, dim, rows, perSec: Math.round(n / seconds) })}\n`);
}

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

// The same log-uniform rank stream as the C++ side (mulberry32, seed 12345).
const rng = new Rng(12345);
const n = batches * batch;
const streamLo = new Uint32Array(n);
const streamHi = new Uint32Array(n);
for (let j = 0; j < n; j++) {
  const i = Math.floor(Math.pow(rows, rng.next())) - 1;
  streamLo[j] = idLo(i);
  streamHi[j] = idHi(i);
}
const out = new Float32Array(batch * dim);
const grad = new Float32Array(dim).fill(0.001);

if (batchedInsert) {
  const { blas } = nativeBlas();
  if (!blas) throw new Error("--batched-insert needs the native addon (packages/blas)");
  // findRows, then insertMany for the ids without a row: what a training pull does with its new ids.
  const table = new EmbeddingTable(dim, 1, makeSparseOptimizer("adagrad", { learningRate: 0.05 }), { kind: "constant", value: 0.01 }, 1024);
  const tableOfSlot = new Int32Array(V2_MAX_SLOT + 1);
  const chunk = new Uint32Array(2 * batch);
  const found = new Int32Array(batch);
  const tables = new Int32Array(batch);
  report("pangea EmbeddingTable, batched (addon)", "insert", rows, time(() => {
    for (let from = 0; from < rows; from += batch) {
      const k = Math.min(batch, rows - from);
      for (let j = 0; j < k; j++) {
        chunk[2 * j] = idLo(from + j);
        chunk[2 * j + 1] = idHi(from + j);
      }
      blas.findRows([table.index], tableOfSlot, chunk, k, found, tables);
      table.insertMany(chunk, k, tables, 0, found);
    }
  }));
  for (let i = 0; i < rows; i += 9973) if (table.find(idLo(i), idHi(i)) !== i) throw new Error(`batched insert: id ${i} is not row ${i}`);
  process.exit(0);
}

{
  const table = new EmbeddingTable(dim, 1, makeSparseOptimizer("adagrad", { learningRate: 0.05 }), { kind: "constant", value: 0.01 }, 1024);
  report("pangea EmbeddingTable", "insert", rows, time(() => {
    for (let i = 0; i < rows; i++) table.findOrInsert(idLo(i), idHi(i));
  }));
  report("pangea EmbeddingTable", "lookup", n, time(() => {
    for (let b = 0; b < batches; b++) {
      for (let j = 0; j < batch; j++) {
        const row = table.find(streamLo[b * batch + j]!, streamHi[b * batch + j]!);
        out.set(table.weights.subarray(row * dim, (row + 1) * dim), j * dim);
      }
    }
  }));
  report("pangea EmbeddingTable", "apply_gradients", n, time(() => {
    for (let j = 0; j < n; j++) table.applyGradient(table.find(streamLo[j]!, streamHi[j]!), grad, 0);
  }));
  const { blas } = nativeBlas();
  if (blas) {
    // A batch at a time, as a pull (findRows + readRows) and a step's update (findRows + applyMeans) use the table;
    // the ids arrive as (lo, hi) word pairs, as in a request. Every slot maps to this one table.
    const words = new Uint32Array(2 * n);
    for (let j = 0; j < n; j++) {
      words[2 * j] = streamLo[j]!;
      words[2 * j + 1] = streamHi[j]!;
    }
    const tableOfSlot = new Int32Array(V2_MAX_SLOT + 1);
    const found = new Int32Array(batch);
    const tables = new Int32Array(batch);
    const offsets = Int32Array.from({ length: batch + 1 }, (_, j) => j * dim);
    const sums = new Float32Array(batch * dim).fill(grad[0]!);
    const ids = (b: number) => words.subarray(2 * b * batch, 2 * (b + 1) * batch);
    report("pangea EmbeddingTable, batched (addon)", "lookup", n, time(() => {
      for (let b = 0; b < batches; b++) {
        blas.findRows([table.index], tableOfSlot, ids(b), batch, found, tables);
        blas.readRows([table.weights], tables, found, batch, offsets, out);
      }
    }));
    report("pangea EmbeddingTable, batched (addon)", "apply_gradients", n, time(() => {
      for (let b = 0; b < batches; b++) {
        blas.findRows([table.index], tableOfSlot, ids(b), batch, found, tables);
        table.applyMeans(found, batch, sums, 1);
      }
    }));
  }
}

if (withMap) {
  // Baseline: a Map from BigInt id to row, rows and Adagrad state in flat arrays.
  const index = new Map<bigint, number>();
  let weights = new Float32Array(1024 * dim);
  let accum = new Float32Array(1024 * dim);
  const key = (lo: number, hi: number) => (BigInt(hi) << 32n) | BigInt(lo);
  report("js Map<bigint, row>", "insert", rows, time(() => {
    for (let i = 0; i < rows; i++) {
      const k = key(idLo(i), idHi(i));
      if (index.has(k)) continue;
      const row = index.size;
      index.set(k, row);
      if ((row + 1) * dim > weights.length) {
        const w = new Float32Array(weights.length * 2);
        w.set(weights);
        weights = w;
        const a = new Float32Array(accum.length * 2);
        a.set(accum);
        accum = a;
      }
      weights.fill(0.01, row * dim, (row + 1) * dim);
      accum.fill(0.1, row * dim, (row + 1) * dim);
    }
  }));
  report("js Map<bigint, row>", "lookup", n, time(() => {
    for (let b = 0; b < batches; b++) {
      for (let j = 0; j < batch; j++) {
        const row = index.get(key(streamLo[b * batch + j]!, streamHi[b * batch + j]!))!;
        out.set(weights.subarray(row * dim, (row + 1) * dim), j * dim);
      }
    }
  }));
  report("js Map<bigint, row>", "apply_gradients", n, time(() => {
    for (let j = 0; j < n; j++) {
      const row = index.get(key(streamLo[j]!, streamHi[j]!))!;
      for (let k = 0; k < dim; k++) {
        const g = grad[k]!;
        const a = accum[row * dim + k]! + g * g;
        accum[row * dim + k] = a;
        weights[row * dim + k]! -= (0.05 * g) / Math.sqrt(a);
      }
    }
  }));
}
