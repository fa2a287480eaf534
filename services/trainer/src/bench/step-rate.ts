/**
 * The trainer's consumption rate (a benchmark, not a test): an architecture
 * (default DLRM) with its default hyper-parameters on Criteo's shape, on
 * this machine's backend, one process, compute only (no network), at the
 * cluster's default batch size. Prints one JSON line.
 * Usage: node step-rate.js [--model NAME] [--batch N] [--steps N] [--backend B]
 */
import { Rng } from "@pangea/kit";
import { architectureConfig, initDenseParams, rowWidths, validateSpec } from "@pangea/model";
import { selectBackend, type BackendPreference } from "../backend/select-backend.js";
import { CtrModel } from "../model/ctr-model.js";

const flag = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const B = Number(flag("batch", "1024"));
const steps = Number(flag("steps", "30"));
const backend = await selectBackend(flag("backend", "auto") as BackendPreference);
const name = flag("model", "dlrm");
const spec = validateSpec({ numDense: 13, numSlots: 26, embeddingDim: 16, architecture: architectureConfig(name, {}) });
const W = rowWidths(spec)[0]!;
const model = new CtrModel(spec);
const values = initDenseParams(spec, 1);
const rng = new Rng(3);
const unique = 8000;
const rows = Float32Array.from({ length: unique * W }, () => rng.uniform(-0.05, 0.05));
const batch = {
  size: B,
  dense: Float32Array.from({ length: B * 13 }, () => rng.next() * 3),
  labels: Float32Array.from({ length: B }, () => (rng.next() < 0.3 ? 1 : 0)),
  inverse: Int32Array.from({ length: B * 26 }, () => Math.floor(rng.next() * unique)),
  cellOfValue: null,
};
for (let i = 0; i < 3; i++) model.trainStep(values, rows, unique, batch);
const t = performance.now();
for (let i = 0; i < steps; i++) model.trainStep(values, rows, unique, batch);
const seconds = (performance.now() - t) / 1000;
process.stdout.write(`${JSON.stringify({ name: "trainer step (compute only)", model: name, backend: backend.name, batch: B, steps, seconds: +seconds.toFixed(3), samplesPerSec: Math.round((B * steps) / seconds) })}\n`);
