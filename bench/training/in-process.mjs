#!/usr/bin/env node
// Configuration (1) of the training benchmark: one Pangea trainer in one
// process, no network: the compute service's Criteo reader and hashing, the
// trainer's deduplication and its model (TensorFlow.js; matmuls on the native
// BLAS when built), the orchestrator's embedding table with its sparse
// Adagrad and its dense Adagrad, wired directly. Prints one JSON line.
// --architecture takes what ctr_torch.py takes ({"name": ..., hyper-parameters}; default DLRM in the Kaggle widths),
// --steps 0 is one pass, and the rate after the first --warmup-steps steps is reported as the cluster and PyTorch report it.
// Usage: node in-process.mjs --data F [--eval-fraction 0.0909] [--batch 4096] [--threads 1] [--dense-lr 0.01] [--sparse-lr 0.05]
//        [--architecture JSON] [--steps 0] [--warmup-steps 10]
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const load = (p) => import(join(root, p));
const { CriteoTsvSource } = await load("services/compute/dist/sources/criteo-tsv.js");
const { RecordBlock } = await load("services/compute/dist/sources/source.js");
const { IdDeduper } = await load("services/trainer/dist/features/dedup.js");
const { CtrModel } = await load("services/trainer/dist/model/ctr-model.js");
const { selectBackend } = await load("services/trainer/dist/backend/select-backend.js");
const { DenseStore } = await load("services/orchestrator/dist/params/dense-store.js");
const { EmbeddingTable } = await load("services/orchestrator/dist/embeddings/embedding-table.js");
const { DEFAULT_INITIALIZER } = await load("services/orchestrator/dist/embeddings/initializer.js");
const { makeSparseOptimizer } = await load("services/orchestrator/dist/optim/sparse-optimizers.js");
const { aucAndLogloss, architectureConfig, uniformRowWidth, validateSpec } = await load("packages/model/dist/index.js");
const { nativeBlas } = await load("packages/blas/dist/index.js");

const flag = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined) throw new Error(`--${name}: expected a value`);
  return v;
};
const data = flag("data");
if (!data) {
  console.error("in-process.mjs: --data <Criteo TSV> is required");
  process.exit(2);
}
const B = Number(flag("batch", "4096"));
const threads = Number(flag("threads", "1"));
const seed = Number(flag("seed", "42"));
const { name: modelName, ...hyper } = JSON.parse(flag("architecture", JSON.stringify({ name: "dlrm", bottomMlp: [512, 256, 64, 16], topMlp: [512, 256] })));
const spec = validateSpec({ numDense: 13, numSlots: 26, embeddingDim: 16, architecture: architectureConfig(modelName, hyper) });
if (spec.architecture.dropout) {
  console.error("in-process.mjs: --architecture: dropout is not wired here (the cluster draws its masks per batch); leave it out");
  process.exit(2);
}
// A row: the embedding and what the architecture keeps per id beside it (DeepFM's, Wide&Deep's first-order weight).
const D = uniformRowWidth(spec);

const backend = await selectBackend(flag("backend", "auto"), threads);
const source = await CriteoTsvSource.open({ paths: [data], evalFraction: Number(flag("eval-fraction", "0.0909")) });
const model = new CtrModel(spec);
const dense = new DenseStore(spec, seed, Number(flag("dense-lr", "0.01")), "adagrad");
const table = new EmbeddingTable(D, seed, makeSparseOptimizer("adagrad", { learningRate: Number(flag("sparse-lr", "0.05")) }), DEFAULT_INITIALIZER, 1 << 16);
const block = new RecordBlock(B, spec.numDense, spec.numSlots);
const dedup = new IdDeduper();

function rowsOf(unique, count, create) {
  const rows = new Float32Array(count * D);
  const at = new Int32Array(count);
  for (let u = 0; u < count; u++) {
    const r = create ? table.findOrInsert(unique[2 * u], unique[2 * u + 1]) : table.find(unique[2 * u], unique[2 * u + 1]);
    at[u] = r;
    if (r >= 0) rows.set(table.weights.subarray(r * D, (r + 1) * D), u * D);
  }
  return { rows, at };
}

const onePass = Math.floor(source.info.trainRecords / B);
const steps = Math.min(Number(flag("steps", "0")) || onePass, onePass);
const warmup = Number(flag("warmup-steps", "10"));
let tWarm = null;
const counters0 = nativeBlas().blas?.counters() ?? [0, 0];
const t0 = performance.now();
let firstLoss = NaN;
let lastLoss = NaN;
for (let s = 0; s < steps; s++) {
  if (s === warmup) tWarm = performance.now();
  source.read("train", s * B, B, block);
  const { unique, uniqueCount, inverse } = dedup.dedup(block.idWords, block.nnz);
  const { rows, at } = rowsOf(unique, uniqueCount, true);
  const out = model.trainStep(dense.values, rows, uniqueCount, { size: B, dense: block.dense, labels: block.labels, weights: null, inverse, cellOfValue: null });
  dense.apply(out.denseGrads);
  for (let u = 0; u < uniqueCount; u++) table.applyGradient(at[u], out.rowGrads, u * D);
  if (s === 0) firstLoss = out.loss;
  lastLoss = out.loss;
}
const tEnd = performance.now();
const seconds = (tEnd - t0) / 1000;
const counters1 = nativeBlas().blas?.counters() ?? [0, 0];

const preds = [];
const labels = [];
for (let start = 0; start < source.info.evalRecords; start += B) {
  const n = Math.min(B, source.info.evalRecords - start);
  const eb = new RecordBlock(n, spec.numDense, spec.numSlots);
  source.read("eval", start, n, eb);
  const { unique, uniqueCount, inverse } = dedup.dedup(eb.idWords, eb.nnz);
  const { rows } = rowsOf(unique, uniqueCount, false);
  const p = model.predict(dense.values, rows, uniqueCount, { size: n, dense: eb.dense, labels: eb.labels, weights: null, inverse, cellOfValue: null });
  for (let i = 0; i < n; i++) {
    preds.push(p[i]);
    labels.push(eb.labels[i]);
  }
}
const { auc, logloss } = aucAndLogloss(preds, labels);
const gemmSeconds = counters1[0] - counters0[0];
process.stdout.write(
  `${JSON.stringify({
    name: "pangea-in-process",
    model: modelName,
    framework: `Pangea trainer, TensorFlow.js ${backend.name}, ${threads} BLAS thread(s)`,
    samples: steps * B,
    steps,
    seconds: +seconds.toFixed(3),
    samplesPerSec: Math.round((steps * B) / seconds),
    msPerStep: +((1000 * seconds) / steps).toFixed(2),
    samplesPerSecAfterWarmup: tWarm === null ? 0 : Math.round(((steps - warmup) * B) / ((tEnd - tWarm) / 1000)),
    warmupSteps: tWarm === null ? 0 : warmup,
    auc: +auc.toFixed(4),
    logloss: +logloss.toFixed(4),
    firstLoss: +firstLoss.toFixed(4),
    lastLoss: +lastLoss.toFixed(4),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    matmulSeconds: +gemmSeconds.toFixed(3),
    matmulGflops: gemmSeconds > 0 ? +((counters1[1] - counters0[1]) / gemmSeconds / 1e9).toFixed(1) : null,
  })}\n`,
);
