import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { startServer, type RunningServer } from "@pangea/rpc";
import type { FastifyInstance } from "@pangea/observe";
import { denseParams, validateSpec } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { startRest } from "../src/api/rest.js";
import { PREDICTION_SERVICE, addTfServing, tfServingServices } from "../src/api/tf-serving-grpc.js";
import { SLOT, SPEC, idWords, writeModel, writeVersion } from "./support/versions.js";

/**
 * Output names of single-task models, over gRPC and REST on real servers:
 * a click model (no tasks in its manifest, as every version exported before
 * tasks) answers `probabilities` exactly as before; a model whose one task is
 * a regression answers under the task's name, so no client reads a value as
 * a probability.
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-outputs-"));
const models = new ModelManager("ctr", base, 2, log);
const regression = validateSpec({ ...SPEC, tasks: [{ name: "watch_time", loss: "mse", weight: 1 }] });
let server: RunningServer;
let rest: { app: FastifyInstance; address: string };
let client: grpc.Client & Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: { outputs: Record<string, { float_val: number[] }> }) => void) => void>;

beforeAll(async () => {
  writeVersion(base, 1);
  const n = denseParams(regression).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  writeModel(base, 2, { spec: regression, slotIds: [SLOT], dense: Float32Array.from({ length: n }, (_, i) => Math.cos(i)), tables: [{ slot: SLOT, ids: Uint32Array.from(idWords(1)), rows: Float32Array.of(0.5, -2) }] });
  models.scan();
  const batcher = new MicroBatcher(0, 64);
  server = await startServer("127.0.0.1", 0, (s) => addTfServing(s, models, batcher, 64), [PREDICTION_SERVICE]);
  rest = await startRest("127.0.0.1", 0, models, batcher, 64);
  const P = grpc.makeGenericClientConstructor(tfServingServices().prediction.service, "PredictionService");
  client = new P(server.address, grpc.credentials.createInsecure()) as unknown as typeof client;
});
afterAll(async () => {
  client.close();
  await server.shutdown(100);
  await rest.app.close();
});

const inputs = {
  dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 2 }, { size: 2 }] }, float_val: [1, 2, 3, 4] },
  feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 2 }, { size: 1 }] }, uint64_val: ["65537", "65538"] },
};
const predict = (version: number, outputFilter: string[] = []) =>
  new Promise<Record<string, number[]>>((resolve, reject) =>
    client.Predict!({ model_spec: { name: "ctr", version: { value: String(version) } }, inputs, output_filter: outputFilter }, (err, res) =>
      err ? reject(err) : resolve(Object.fromEntries(Object.entries(res.outputs).map(([k, t]) => [k, t.float_val])))),
  );
const restJson = async (path: string, body?: unknown) => (await fetch(`http://${rest.address}${path}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json() as Promise<Record<string, unknown>>;
const rows = { instances: [{ dense_features: [1, 2], feature_ids: ["65537"] }, { dense_features: [3, 4], feature_ids: ["65538"] }] };
const columns = { inputs: { dense_features: [[1, 2], [3, 4]], feature_ids: [["65537"], ["65538"]] } };

describe("a single-task model's outputs", () => {
  it("a click model answers probabilities, with or without output_filter naming it; its task's name is no output", async () => {
    const all = await predict(1);
    expect(Object.keys(all)).toEqual(["probabilities"]);
    expect(all.probabilities).toHaveLength(2);
    expect(await predict(1, ["probabilities"])).toEqual(all);
    await expect(predict(1, ["ctr"])).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'SERVING_ERR_BAD_INPUT: unknown output "ctr" in output_filter; the model outputs probabilities' });
    const byRow = await restJson("/v1/models/ctr/versions/1:predict", rows);
    expect(byRow).toEqual({ predictions: all.probabilities, model_version: 1 });
    expect(await restJson("/v1/models/ctr/versions/1:predict", columns)).toEqual({ outputs: { probabilities: all.probabilities }, model_version: 1 });
  });

  it("a model of one regression task answers under the task's name; REST rows stay plain values", async () => {
    const all = await predict(2);
    expect(Object.keys(all)).toEqual(["watch_time"]);
    expect(await restJson("/v1/models/ctr/versions/2:predict", rows)).toEqual({ predictions: all.watch_time, model_version: 2 });
    expect(await restJson("/v1/models/ctr/versions/2:predict", columns)).toEqual({ outputs: { watch_time: all.watch_time }, model_version: 2 });
    const outputs = (v: number) => restJson(`/v1/models/ctr/versions/${v}/metadata`).then((m) => Object.keys((m as { metadata: { signature_def: { signature_def: { serving_default: { outputs: object } } } } }).metadata.signature_def.signature_def.serving_default.outputs));
    expect(await outputs(1)).toEqual(["probabilities"]);
    expect(await outputs(2)).toEqual(["watch_time"]);
  });

  it("the status lists each loaded version's tasks: a manifest without tasks is one click task", async () => {
    const status = (await restJson("/v1/models/ctr")) as { model_version_status: { version: string; tasks: unknown }[] };
    expect(status.model_version_status.map((v) => [v.version, v.tasks])).toEqual([
      ["1", [{ name: "ctr", loss: "bce", weight: 1 }]],
      ["2", [{ name: "watch_time", loss: "mse", weight: 1 }]],
    ]);
  });
});
