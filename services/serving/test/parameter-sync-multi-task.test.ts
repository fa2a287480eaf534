import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { PlainForward, denseParams, initDenseParams, modelIdentity, validateSpec } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { addParameterSync } from "../src/api/parameter-sync.js";
import { PREDICTION_SERVICE, addTfServing, tfServingServices } from "../src/api/tf-serving-grpc.js";
import { writeModel } from "./support/versions.js";
import { encodeSyncUpdate, pushSync } from "./support/sync.js";

/**
 * Parameter sync to a version with two tasks (a deepfm whose output layer
 * has a column per task), on a real gRPC server with Predict beside it:
 * synced rows and dense weights change both tasks' outputs exactly as the
 * forward pass with those weights computes them; dense tensors shaped for
 * one task are refused whole, naming the tensor; an update from a model with
 * other tasks (its shapes the same) is refused naming them, one from the
 * same model with other task weights applies.
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-sync-mt-"));
const models = new ModelManager("ranker", base, 1, log);
const TASKS = [
  { name: "like", loss: "bce" as const, weight: 1 },
  { name: "dwell", loss: "mse" as const, weight: 1 },
];
const spec = validateSpec({ numDense: 2, numSlots: 1, embeddingDim: 2, tasks: TASKS, architecture: { name: "deepfm", deepMlp: [4] } });
const oneTask = validateSpec({ ...spec, tasks: undefined });
const W = 3; // deepfm's row: a first-order weight and a 2-dim factor
const words = (n: number) => [n, (1 << 16) >>> 0];
const params = denseParams(spec);
let server: RunningServer;
let client: grpc.Client & { Predict: (req: unknown, cb: (err: grpc.ServiceError | null, res: { outputs: Record<string, { float_val: number[] }> }) => void) => void };

beforeAll(async () => {
  writeModel(base, 1, {
    spec,
    slotIds: [1],
    dense: Float32Array.from(initDenseParams(spec, 3).flatMap((v) => Array.from(v))),
    tables: [{ slot: 1, ids: Uint32Array.from(words(1)), rows: Float32Array.of(0.1, 0.2, -0.3) }],
  });
  models.scan();
  server = await startServer("127.0.0.1", 0, (s) => {
    addParameterSync(s, models, new MicroBatcher(0, 64), log);
    addTfServing(s, models, new MicroBatcher(0, 64), 64);
  }, [PARAMETER_SYNC_SERVICE_NAME, PREDICTION_SERVICE]);
  const P = grpc.makeGenericClientConstructor(tfServingServices().prediction.service, "PredictionService");
  client = new P(server.address, grpc.credentials.createInsecure()) as unknown as typeof client;
});
afterAll(async () => {
  client.close();
  await server.shutdown(100);
});

const DENSE = [0.4, -1.3, 2.0, 0.7];
/** Two examples: id 1, then id 2 (a row only once synced). */
function predict(): Promise<Record<string, number[]>> {
  const req = {
    model_spec: { name: "ranker" },
    inputs: {
      dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 2 }, { size: 2 }] }, float_val: DENSE },
      feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 2 }, { size: 1 }] }, uint64_val: [((1n << 48n) | 1n).toString(), ((1n << 48n) | 2n).toString()] },
    },
  };
  return new Promise((resolve, reject) => client.Predict(req, (err, res) => (err ? reject(err) : resolve(Object.fromEntries(Object.entries(res.outputs).map(([k, t]) => [k, t.float_val]))))));
}

/** What the forward pass with these weights and rows (of ids 1 and 2) predicts, per task. */
function expected(dense: Float32Array[], rows: Float32Array): Record<string, number[]> {
  const out = new Float32Array(2 * TASKS.length);
  new PlainForward(spec, dense).predict(2, Float32Array.from(DENSE), rows, out);
  return Object.fromEntries(TASKS.map((t, k) => [t.name, [out[k]!, out[TASKS.length + k]!]]));
}

const filled = (seed: number) => params.map((p, i) => ({ name: p.name, shape: [...p.shape], data: Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, (_, k) => Math.sin(seed + 1.3 * k + i) * 0.5) }));

describe("parameter sync to a multi-task version", () => {
  it("synced rows and dense weights update both tasks' outputs", async () => {
    const before = await predict();
    expect(Object.keys(before)).toEqual(["like", "dwell"]);
    const dense = filled(1);
    const rows = Float32Array.of(0.9, -0.4, 0.25, -0.6, 0.3, 0.8);
    const ack = await pushSync(server.address, encodeSyncUpdate({ seq: 1, ids: Uint32Array.from([...words(1), ...words(2)]), rows, rowsShape: [2, W], dense }));
    expect(ack).toMatchObject({ rowsApplied: 2n, denseApplied: true });
    const after = await predict();
    const want = expected(dense.map((d) => d.data), rows);
    for (const t of TASKS) {
      after[t.name]!.forEach((v, i) => expect(v, `${t.name}[${i}]`).toBeCloseTo(want[t.name]![i]!, 6));
      expect(after[t.name], t.name).not.toEqual(before[t.name]);
    }
  });

  it("refuses dense tensors shaped for one task whole, naming the output layer's tensor", async () => {
    const before = await predict();
    const single = denseParams(oneTask);
    const wrong = single.findIndex((p, i) => p.shape.join() !== params[i]!.shape.join());
    expect(wrong).toBeGreaterThanOrEqual(0);
    const dense = filled(2).map((d, i) => (i === wrong ? { ...d, shape: [...single[i]!.shape], data: new Float32Array(single[i]!.shape.reduce((a, b) => a * b, 1)) } : d));
    const err = (await pushSync(server.address, encodeSyncUpdate({ seq: 2, ids: Uint32Array.from(words(1)), rows: Float32Array.of(5, 5, 5), rowsShape: [1, W], dense })).then(() => null, (e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe(`SERVING_ERR_BAD_INPUT: parameter sync from orchestrator-test: ${params[wrong]!.name} has shape [${single[wrong]!.shape.join(", ")}], the model's is [${params[wrong]!.shape.join(", ")}]`);
    expect(await predict()).toEqual(before);
  });

  it("refuses an update from a model with other tasks of the same shapes whole, counted, naming the tasks; the same model with other task weights applies", async () => {
    const before = await predict();
    const refusedBefore = models.syncRefused;
    const otherTasks = validateSpec({ ...spec, tasks: [TASKS[0]!, { name: "share", loss: "bce", weight: 1 }] });
    expect(denseParams(otherTasks).map((p) => p.shape.join())).toEqual(params.map((p) => p.shape.join()));
    const u = { seq: 3, run: "job-2", ids: Uint32Array.from(words(1)), rows: Float32Array.of(5, 5, 5), rowsShape: [1, W], dense: filled(3) };
    const err = (await pushSync(server.address, encodeSyncUpdate({ ...u, model: modelIdentity(otherTasks) })).then(() => null, (e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("SERVING_ERR_OTHER_MODEL: parameter sync from orchestrator-test: the update is from another model than version 1's: tasks [like (bce), share (bce)] against [like (bce), dwell (mse)]");
    expect(models.syncRefused).toBe(refusedBefore + 1);
    expect(await predict()).toEqual(before);

    const reweighted = validateSpec({ ...spec, tasks: [{ ...TASKS[0]!, weight: 0.2 }, { ...TASKS[1]!, weight: 4 }] });
    const ack = await pushSync(server.address, encodeSyncUpdate({ ...u, model: modelIdentity(reweighted) }));
    expect(ack).toMatchObject({ rowsApplied: 1n, denseApplied: true, ignored: false });
    expect(models.syncRefused).toBe(refusedBefore + 1);
    expect(await predict()).not.toEqual(before);
  });
});
