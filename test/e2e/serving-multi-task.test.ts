import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlainForward, denseParams, dlrmSpec, rowWidths, validateSpec, type ExportManifest, type ModelSpec } from "@pangea/model";
import { DenseStore } from "../../services/orchestrator/src/params/dense-store.js";
import { EmbeddingStore } from "../../services/orchestrator/src/embeddings/embedding-store.js";
import { defaultSlotConfig } from "../../services/orchestrator/src/job/job-model.js";
import { saveCheckpoint } from "../../services/orchestrator/src/checkpoint/checkpoint.js";
import { tfServingServices } from "../../services/serving/src/api/tf-serving-grpc.js";
import { ENTRY, ROOT, runNode } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";
import { generateTfServingStubs } from "../support/tf-serving-stubs.js";

/**
 * A two-task model (click: bce, watch_time: mse) checkpointed, exported by
 * the real export command and served by a real serving process: each task
 * is a named output over gRPC (Predict, output_filter, GetModelMetadata, from
 * Node and from Python's grpcio with stubs generated from the .proto files),
 * REST (rows and columns, status, metadata) and `pangea predict`, equal to
 * the plain forward pass: the click output the sigmoid of its logit, the
 * watch_time output the logit itself.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-serve-mt-"));
const BASE = join(tmp, "models", "ranker");
const SLOTS = [1, 2];
const TASKS = [
  { name: "click", loss: "bce" as const, weight: 1 },
  { name: "watch_time", loss: "mse" as const, weight: 0.5 },
];
const spec: ModelSpec = validateSpec({ ...dlrmSpec(3, 2, 4, [8, 4], [6]), tasks: TASKS });
/** The same weights read as logits: every task's output untransformed. */
const logitSpec: ModelSpec = validateSpec({ ...spec, tasks: TASKS.map((t) => ({ ...t, loss: "mse" as const })) });
let dense: Float32Array[];
/** Each example's ids (decimal strings, one per slot) and the rows they have in the checkpoint (zeros for none). */
const examples = {
  dense: [
    [0.5, 1.2, 0],
    [2.1, 0.3, 0.7],
    [0, 0, 1.5],
    [1.1, 2.2, 3.3],
  ],
  ids: [] as string[][],
};
let pooled: Float32Array;
let serving: RunningService;
let manifest: ExportManifest;

const idOf = (slot: number, n: number) => ((BigInt(slot) << 48n) | BigInt(n)).toString();

beforeAll(async () => {
  const denseStore = new DenseStore(spec, 7, 0.01);
  // Weights of both signs and every size, so that both tasks' outputs vary across the examples.
  denseStore.values.forEach((v, p) => v.forEach((_, i) => (v[i] = Math.sin(3.7 * i + p) * 0.6)));
  dense = denseStore.values.map((v) => v.slice());
  const store = new EmbeddingStore(defaultSlotConfig({ sparseOptimizer: "adagrad", sparseLr: 0.01 }, 4), new Map(), 11);
  // Ids 1..3 of each slot have rows; example 3's slot-2 id has none (a missing row reads as zeros).
  for (const slot of SLOTS) for (let n = 1; n <= 3; n++) store.rowForTraining(n, (slot << 16) >>> 0);
  examples.ids = [
    [idOf(1, 1), idOf(2, 2)],
    [idOf(1, 2), idOf(2, 3)],
    [idOf(1, 3), idOf(2, 1)],
    [idOf(1, 1), idOf(2, 9)],
  ];
  // Each example's slots' rows side by side, as the forward pass takes them.
  const W = rowWidths(spec);
  const E = W.reduce((a, b) => a + b, 0);
  pooled = new Float32Array(examples.ids.length * E);
  examples.ids.forEach((row, e) => {
    let at = e * E;
    row.forEach((id, k) => {
      const t = store.table(SLOTS[k]!);
      const r = t.find(Number(BigInt(id) & 0xffffffffn), Number(BigInt(id) >> 32n));
      if (r >= 0) pooled.set(t.weights.subarray(r * W[k]!, (r + 1) * W[k]!), at);
      at += W[k]!;
    });
  });
  const checkpoint = saveCheckpoint(join(tmp, "ckpt"), "job-mt", 7, spec, denseStore, store, { index: 0, count: 1 }, undefined, SLOTS);
  const exp = spawnSync(process.execPath, [ENTRY.exportModel, "--checkpoint", checkpoint, "--out", BASE], { encoding: "utf8" });
  expect(exp.status, exp.stderr).toBe(0);
  manifest = JSON.parse(readFileSync(join(BASE, "1", "manifest.json"), "utf8")) as ExportManifest;
  // A batching window long enough that concurrent requests share a forward pass.
  serving = await startService(ENTRY.serving, ["--model-base-path", BASE, "--model-name", "ranker", "--port", "0", "--rest-port", "0", "--batch-window-us", "100000"]);
}, 60_000);

afterAll(async () => {
  client?.close();
  await serving?.stop();
});

/** The plain forward pass's predictions [B, T] and logits [B, T] of the examples. */
function reference(): { predictions: Float32Array; logits: Float32Array } {
  const B = examples.dense.length;
  const x = Float32Array.from(examples.dense.flat());
  const predictions = new Float32Array(B * TASKS.length);
  const logits = new Float32Array(B * TASKS.length);
  new PlainForward(spec, dense).predict(B, x, pooled, predictions);
  new PlainForward(logitSpec, dense).predict(B, x, pooled, logits);
  return { predictions, logits };
}

const column = (m: Float32Array, t: number) => Array.from({ length: m.length / TASKS.length }, (_, e) => m[e * TASKS.length + t]!);

function expectClose(got: readonly number[], want: readonly number[], what: string): void {
  expect(got, what).toHaveLength(want.length);
  got.forEach((g, i) => expect(Math.abs(g - want[i]!), `${what}[${i}]: ${g} against ${want[i]}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(want[i]!))));
}

function predictRequest(extra: Record<string, unknown> = {}) {
  return {
    model_spec: { name: "ranker" },
    inputs: {
      dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: examples.dense.length }, { size: 3 }] }, float_val: examples.dense.flat() },
      feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: examples.ids.length }, { size: 2 }] }, uint64_val: examples.ids.flat() },
    },
    ...extra,
  };
}

type Tensor = { dtype: string; tensor_shape: { dim: { size: string }[] }; float_val: number[] };
type Client = grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;

let client: Client | null = null;

function call<T>(method: string, req: unknown): Promise<T> {
  if (!client) {
    const { prediction } = tfServingServices();
    const P = grpc.makeGenericClientConstructor(prediction.service, "PredictionService");
    client = new P(serving.address, grpc.credentials.createInsecure()) as unknown as Client;
  }
  const c = client;
  return new Promise<T>((resolve, reject) => c[method]!(req, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as T))));
}

/** A counter of serving's /metrics. */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://${serving.rest}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  if (!line) throw new Error(`serving's /metrics has no ${name}`);
  return Number(line.slice(line.lastIndexOf(" ") + 1));
}

async function rest(path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://${serving.rest}${path}`, body === undefined ? {} : { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("serving a multi-task model", () => {
  it("the export's manifest lists the tasks, and serving's status lists them for the loaded version", async () => {
    expect(manifest.model.tasks).toEqual(TASKS);
    const status = await rest("/v1/models/ranker");
    const source = { job_id: manifest.source.jobId, step: manifest.source.step, checkpoint: manifest.source.checkpoint, exported_at: manifest.createdAt };
    expect(status.json).toEqual({ model_version_status: [{ version: "1", state: "AVAILABLE", status: { error_code: "OK", error_message: "" }, tasks: TASKS, source }] });
    // gRPC GetModelStatus: the tasks in Pangea's field 1000 of ModelVersionStatus (TF Serving's clients skip it).
    const { model } = tfServingServices();
    const M = grpc.makeGenericClientConstructor(model.service, "ModelService");
    const m = new M(serving.address, grpc.credentials.createInsecure()) as unknown as Client;
    const st = await new Promise<{ model_version_status: { version: string; state: string; pangea_tasks: unknown[]; pangea_source: unknown }[] }>((resolve, reject) =>
      m.GetModelStatus!({ model_spec: { name: "ranker" } }, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as never))),
    );
    m.close();
    expect(st.model_version_status.map((v) => [v.version, v.state, v.pangea_tasks])).toEqual([["1", "AVAILABLE", TASKS]]);
    // And where the version came from, in field 1001 (the step an int64, as a string).
    expect(st.model_version_status[0]!.pangea_source).toEqual({ ...source, step: String(source.step) });
  });

  it("gRPC Predict answers one [B] output per task, named by the task: the sigmoid of the click logit and the watch_time value", async () => {
    const { predictions, logits } = reference();
    const res = await call<{ outputs: Record<string, Tensor>; model_spec: { version: { value: string } } }>("Predict", predictRequest());
    expect(Object.keys(res.outputs).sort()).toEqual(["click", "watch_time"]);
    for (const [t, task] of TASKS.entries()) {
      expect(res.outputs[task.name]!.dtype).toBe("DT_FLOAT");
      expect(res.outputs[task.name]!.tensor_shape.dim.map((d) => Number(d.size))).toEqual([4]);
      expectClose(res.outputs[task.name]!.float_val, column(predictions, t), task.name);
    }
    expectClose(res.outputs.click!.float_val, column(logits, 0).map((z) => 1 / (1 + Math.exp(-z))), "click against sigmoid(logit)");
    expectClose(res.outputs.watch_time!.float_val, column(logits, 1), "watch_time against its logit");
    // Weights that make every output alike would pass the comparisons above without testing the columns.
    expect(new Set(res.outputs.click!.float_val.map((p) => p.toFixed(4))).size).toBe(4);
    expect(new Set(res.outputs.watch_time!.float_val.map((p) => p.toFixed(4))).size).toBe(4);
    expect(res.outputs.watch_time!.float_val.some((v) => v < 0 || v > 1)).toBe(true);
  });

  it("output_filter answers only the outputs named; an unknown or repeated name is INVALID_ARGUMENT naming it", async () => {
    const res = await call<{ outputs: Record<string, Tensor> }>("Predict", predictRequest({ output_filter: ["watch_time"] }));
    expect(Object.keys(res.outputs)).toEqual(["watch_time"]);
    expectClose(res.outputs.watch_time!.float_val, column(reference().predictions, 1), "filtered watch_time");
    const refused = async (filter: string[]) => (await call("Predict", predictRequest({ output_filter: filter })).then(() => null, (e: unknown) => e)) as grpc.ServiceError;
    const unknown = await refused(["click", "probabilities"]);
    expect(unknown.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(unknown.details).toBe('SERVING_ERR_BAD_INPUT: unknown output "probabilities" in output_filter; the model outputs click, watch_time');
    const twice = await refused(["click", "click"]);
    expect(twice.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(twice.details).toBe('SERVING_ERR_BAD_INPUT: output "click" is named twice in output_filter');
  });

  it("REST: rows answer an object of the tasks per example, columns a list per task; metadata lists each task's output", async () => {
    const { predictions } = reference();
    const rows = await rest("/v1/models/ranker:predict", { instances: examples.dense.map((d, i) => ({ dense_features: d, feature_ids: examples.ids[i] })) });
    expect(rows.status).toBe(200);
    const byRow = rows.json.predictions as { click: number; watch_time: number }[];
    expect(byRow.map((p) => Object.keys(p))).toEqual(Array(4).fill(["click", "watch_time"]));
    expectClose(byRow.map((p) => p.click), column(predictions, 0), "REST rows click");
    expectClose(byRow.map((p) => p.watch_time), column(predictions, 1), "REST rows watch_time");
    const cols = await rest("/v1/models/ranker:predict", { inputs: { dense_features: examples.dense, feature_ids: examples.ids } });
    expect(cols.status).toBe(200);
    const outputs = cols.json.outputs as Record<string, number[]>;
    expect(Object.keys(outputs)).toEqual(["click", "watch_time"]);
    expectClose(outputs.click!, column(predictions, 0), "REST columns click");
    expectClose(outputs.watch_time!, column(predictions, 1), "REST columns watch_time");
    const meta = await rest("/v1/models/ranker/metadata");
    expect(meta.status).toBe(200);
    const info = (name: string, dtype: string, dims: number[]) => ({ name, dtype, tensor_shape: { dim: dims.map((d) => ({ size: String(d) })) } });
    expect(meta.json).toEqual({
      model_spec: { name: "ranker", signature_name: "", version: "1" },
      metadata: {
        signature_def: {
          signature_def: {
            serving_default: {
              inputs: { dense_features: info("dense_features", "DT_FLOAT", [-1, 3]), feature_ids: info("feature_ids", "DT_INT64", [-1, 2]) },
              outputs: { click: info("click", "DT_FLOAT", [-1]), watch_time: info("watch_time", "DT_FLOAT", [-1]) },
              method_name: "tensorflow/serving/predict",
            },
          },
        },
      },
    });
    expect((await rest("/v1/models/ranker/versions/1/metadata")).json).toEqual(meta.json);
    expect((await rest("/v1/models/ranker/versions/5/metadata")).status).toBe(404);
  });

  it("an external client (Python grpcio, stubs generated from the TensorFlow Serving protos) reads every task's output and the metadata's signature", async () => {
    const stubs = join(tmp, "pystubs");
    const gen = generateTfServingStubs(stubs);
    expect(gen.status, gen.stderr).toBe(0);
    const py = spawnSync("/usr/bin/python3", [join(ROOT, "test/support/python/tf_serving_outputs.py"), stubs, serving.address, "ranker", JSON.stringify(examples), "click"], { encoding: "utf8", timeout: 30_000 });
    expect(py.status, py.stderr).toBe(0);
    type Out = { dtype: string; shape: number[]; values: number[] };
    const out = JSON.parse(py.stdout) as {
      all: Record<string, Out>;
      filtered: Record<string, Out>;
      unknown: { code: string; details: string };
      metadata: { version: number; method_name: string; inputs: Record<string, unknown>; outputs: Record<string, unknown> };
    };
    const { predictions } = reference();
    expect(Object.keys(out.all).sort()).toEqual(["click", "watch_time"]);
    for (const [t, task] of TASKS.entries()) {
      expect(out.all[task.name]!.dtype).toBe("DT_FLOAT");
      expect(out.all[task.name]!.shape).toEqual([4]);
      expectClose(out.all[task.name]!.values, column(predictions, t), `python ${task.name}`);
    }
    expect(Object.keys(out.filtered)).toEqual(["click"]);
    expect(out.unknown).toEqual({ code: "INVALID_ARGUMENT", details: 'SERVING_ERR_BAD_INPUT: unknown output "no_such_output" in output_filter; the model outputs click, watch_time' });
    expect(out.metadata).toEqual({
      version: 1,
      method_name: "tensorflow/serving/predict",
      inputs: { dense_features: { name: "dense_features", dtype: "DT_FLOAT", shape: [-1, 3] }, feature_ids: { name: "feature_ids", dtype: "DT_INT64", shape: [-1, 2] } },
      outputs: { click: { name: "click", dtype: "DT_FLOAT", shape: [-1] }, watch_time: { name: "watch_time", dtype: "DT_FLOAT", shape: [-1] } },
    });
  });

  it("GetModelMetadata refuses a request without metadata_field or with another field, naming it", async () => {
    const refused = async (req: unknown) => (await call("GetModelMetadata", req).then(() => null, (e: unknown) => e)) as grpc.ServiceError;
    const none = await refused({ model_spec: { name: "ranker" } });
    expect([none.code, none.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'SERVING_ERR_BAD_INPUT: metadata_field is empty; ask for "signature_def"']);
    const other = await refused({ model_spec: { name: "ranker" }, metadata_field: ["signature_def", "graph"] });
    expect([other.code, other.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'SERVING_ERR_BAD_INPUT: metadata field "graph" is not supported; the one there is is "signature_def"']);
    const unknown = await refused({ model_spec: { name: "other" }, metadata_field: ["signature_def"] });
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
  });

  it("concurrent requests batched into one forward pass each get their own examples' rows of every task", async () => {
    const { predictions } = reference();
    const passes = await metric("pangea_serving_forward_passes_total");
    const predicted = await metric("pangea_serving_examples_total");
    // Each request carries one example; together they run as one pass whose [B, T] output is split back by example.
    const answers = await Promise.all(
      examples.dense.map((d, e) =>
        call<{ outputs: Record<string, Tensor> }>("Predict", {
          model_spec: { name: "ranker" },
          inputs: {
            dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 3 }] }, float_val: d },
            feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, uint64_val: examples.ids[e] },
          },
        }),
      ),
    );
    expect(await metric("pangea_serving_examples_total")).toBe(predicted + 4);
    expect(await metric("pangea_serving_forward_passes_total")).toBeLessThan(passes + 4);
    answers.forEach((a, e) => {
      expectClose(a.outputs.click!.float_val, [predictions[e * 2]!], `example ${e} click`);
      expectClose(a.outputs.watch_time!.float_val, [predictions[e * 2 + 1]!], `example ${e} watch_time`);
    });
  });

  it("pangea predict prints an object of the tasks' outputs per example", async () => {
    const input = join(tmp, "examples.json");
    writeFileSync(input, JSON.stringify({ instances: examples.dense.map((d, i) => ({ dense_features: d, feature_ids: examples.ids[i] })) }));
    const r = await runNode(ENTRY.cli, ["predict", "--address", serving.address, "--model", "ranker", "--input", input], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { predictions: { click: number; watch_time: number }[]; model_version: number };
    expect(out.model_version).toBe(1);
    const { predictions } = reference();
    expectClose(out.predictions.map((p) => p.click), column(predictions, 0), "predict click");
    expectClose(out.predictions.map((p) => p.watch_time), column(predictions, 1), "predict watch_time");
  });

  it("the dense parameters are the model's for two tasks (the output layer has a column per task)", () => {
    const out = denseParams(spec).at(-1)!;
    expect(manifest.denseParams.at(-1)).toEqual({ name: out.name, shape: [...out.shape] });
    expect(out.shape.at(-1)).toBe(2);
  });
});
