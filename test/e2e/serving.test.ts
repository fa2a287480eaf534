import { gzipSync } from "node:zlib";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { tfServingServices } from "../../services/serving/src/api/tf-serving-grpc.js";
import { H2UnaryClient } from "../../services/serving/src/bench/h2-unary-client.js";
import { ENTRY, ROOT, lastLine, runNode, waitFor } from "../support/processes.js";
import { declaredFamilies, grafanaMetricNames } from "../support/grafana.js";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { SyntheticSource } from "../../services/compute/src/sources/synthetic.js";
import { RecordBlock } from "../../services/compute/src/sources/source.js";
import { encodeExample, encodeExampleBatch, encodeInstance } from "@pangea/monolith";
import { MAX_IDS_PER_CELL } from "@pangea/features";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { generateTfServingStubs } from "../support/tf-serving-stubs.js";

/**
 * train -> export -> serve with real processes: a trained checkpoint is
 * exported as versions of a model, the serving service answers TensorFlow
 * Serving's gRPC API (called by Python's grpcio with stubs generated from the
 * .proto files) and REST, swaps versions under load without a failed
 * request, and refuses bad input with the right status while it keeps serving.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-serve-"));
const BASE = join(tmp, "models", "ctr");
const SERVING = join(ROOT, "services/serving/dist/main.js");
const EXPORT = join(ROOT, "services/orchestrator/dist/export.js");
let checkpoint = "";
let server: ChildProcess | null = null;
let grpcAddress = "";
let restAddress = "";
let rows: { dense: number[][]; ids: string[][] };

async function startServing(extra: string[] = []): Promise<void> {
  server = spawn(process.execPath, [SERVING, "--model-base-path", BASE, "--model-name", "ctr", "--port", "0", "--rest-port", "0", "--poll-seconds", "0.3", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server!.stdout! }).once("line", resolve);
    server!.once("exit", (code) => reject(new Error(`serving exited with ${code}`)));
  });
  const ready = JSON.parse(line) as { address: string; rest: string };
  grpcAddress = ready.address;
  restAddress = ready.rest;
}

function exportVersion(version?: number): string {
  const r = spawnSync(process.execPath, [EXPORT, "--checkpoint", checkpoint, "--out", BASE, ...(version ? ["--version", String(version)] : [])], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return r.stdout;
}

async function rest(path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://${restAddress}${path}`, body === undefined ? {} : { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

type Client = grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;

function clients(): { predict: Client; model: Client } {
  const { prediction, model } = tfServingServices();
  const P = grpc.makeGenericClientConstructor(prediction.service, "PredictionService");
  const M = grpc.makeGenericClientConstructor(model.service, "ModelService");
  return { predict: new P(grpcAddress, grpc.credentials.createInsecure()) as unknown as Client, model: new M(grpcAddress, grpc.credentials.createInsecure()) as unknown as Client };
}

function call<T>(c: Client, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => c[method]!(req, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as T))));
}

function predictRequest(dense: number[][], ids: string[][], extra: Record<string, unknown> = {}) {
  return {
    model_spec: { name: "ctr" },
    inputs: {
      dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: dense.length }, { size: dense[0]?.length ?? 0 }] }, float_val: dense.flat() },
      feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: ids.length }, { size: ids[0]?.length ?? 0 }] }, uint64_val: ids.flat() },
    },
    ...extra,
  };
}

type PredictRes = { outputs: { probabilities: { float_val: number[] } }; model_spec: { version: { value: string } } };

beforeAll(async () => {
  const r = await runNode(ENTRY.cli, ["run", "--json", "--steps", "30", "--batch-size", "256", "--eval-records", "2000", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")], { timeoutMs: 120_000 });
  expect(r.code, r.stderr).toBe(0);
  checkpoint = (JSON.parse(r.stdout.trim().split("\n").at(-1)!) as JobStatus__Output).checkpointPath;
  exportVersion();
  // Requests use ids the model has rows for: the first rows of each slot's table, as 64-bit decimal strings.
  const manifest = JSON.parse(readFileSync(join(BASE, "1", "manifest.json"), "utf8")) as { slotIds: number[] };
  const idsOf = (slot: number) => {
    const b = readFileSync(join(BASE, "1", `slot-${slot}.ids.u64`));
    return Array.from({ length: 4 }, (_, i) => b.readBigUInt64LE(i * 8).toString());
  };
  const perSlot = manifest.slotIds.map(idsOf);
  rows = {
    dense: Array.from({ length: 4 }, (_, e) => Array.from({ length: 13 }, (_, j) => ((e + 1) * (j + 2)) % 5)),
    ids: Array.from({ length: 4 }, (_, e) => perSlot.map((ids) => ids[e]!)),
  };
  await startServing();
}, 150_000);

afterAll(() => {
  server?.kill("SIGTERM");
});

describe("export and serving", () => {
  it("an external client (Python grpcio, stubs generated from the TensorFlow Serving protos) calls Predict and GetModelStatus", async () => {
    const stubs = join(tmp, "pystubs");
    const gen = generateTfServingStubs(stubs);
    expect(gen.status, gen.stderr).toBe(0);
    const py = spawnSync("/usr/bin/python3", [join(ROOT, "test/support/python/tf_serving_client.py"), stubs, grpcAddress, "ctr", JSON.stringify(rows)], { encoding: "utf8", timeout: 30_000 });
    expect(py.status, py.stderr).toBe(0);
    const out = JSON.parse(py.stdout) as { probabilities: number[]; packed_probabilities: number[]; shape: number[]; version: number; status: { version: number; state: string; error_code: number }[]; unknown_model: string; unknown_model_details: string };
    expect(out.shape).toEqual([4]);
    expect(out.version).toBe(1);
    expect(out.status).toEqual([{ version: 1, state: "AVAILABLE", error_code: 0 }]);
    expect(out.unknown_model).toBe("NOT_FOUND");
    expect(out.unknown_model_details).toContain('no model named "no-such-model"');
    // The same examples over REST give the same probabilities; tensor_content and value lists agree.
    const viaRest = await rest("/v1/models/ctr:predict", { inputs: { dense_features: rows.dense, feature_ids: rows.ids } });
    const restP = (viaRest.json.outputs as { probabilities: number[] }).probabilities;
    out.probabilities.forEach((p, i) => {
      expect(p).toBeCloseTo(restP[i]!, 6);
      expect(out.packed_probabilities[i]).toBeCloseTo(p, 6);
      expect(p).toBeGreaterThan(0);
      expect(p).toBeLessThan(1);
    });
    expect(new Set(out.probabilities.map((p) => p.toFixed(5))).size).toBeGreaterThan(1);
  }, 60_000);

  it.each([
    ["an unknown model", { model_spec: { name: "nope" } }, grpc.status.NOT_FOUND, 'SERVING_ERR_UNKNOWN_MODEL: no model named "nope"'],
    ["an unknown version", { model_spec: { name: "ctr", version: { value: "99" } } }, grpc.status.NOT_FOUND, "model \"ctr\" has no version 99 loaded"],
    // Version 0 (a wrapper without a value on the wire) is looked up, as TF Serving and REST's /versions/0 do: no wrapper is the newest.
    ["version 0", { model_spec: { name: "ctr", version: { value: "0" } } }, grpc.status.NOT_FOUND, "model \"ctr\" has no version 0 loaded"],
    ["ids in the other dtype's field", "ids-field", grpc.status.INVALID_ARGUMENT, "input feature_ids: 0 values in uint64_val, shape [4, 26] needs 104 (the values are in int64_val: a DT_UINT64 tensor takes uint64_val)"],
    ["wrong input names", { inputs: { x: { dtype: "DT_FLOAT" } } }, grpc.status.INVALID_ARGUMENT, `unknown input "x": expected dense_features [B, 13] and feature_ids [B, 26], one of instances, examples, example_batch, or raw values of Criteo's layout (I1..I13, C1..C26)`],
    ["a wrong shape", "shape", grpc.status.INVALID_ARGUMENT, "input dense_features must have shape [B, 13], got [1, 12]"],
    ["a wrong dtype", "dtype", grpc.status.INVALID_ARGUMENT, "input feature_ids must be DT_INT64 or DT_UINT64 feature ids, got DT_FLOAT"],
    ["too many examples", "big", grpc.status.RESOURCE_EXHAUSTED, "request carries 5000 examples; this server takes at most 4096"],
    // 40 MB of ids is refused by its size before it is decoded (decoding such a request once took gigabytes).
    ["a request above the Predict size limit", "huge", grpc.status.RESOURCE_EXHAUSTED, "bytes; a Predict takes at most 33,554,432 (16 MiB + 4 KiB per --max-batch example)"],
  ])("%s gets the proper status naming the problem, and the server keeps serving", async (_what, change, code, message) => {
    const { predict } = clients();
    let req: Record<string, unknown>;
    if (change === "shape") req = predictRequest([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]], [rows.ids[0]!]);
    else if (change === "dtype") {
      req = predictRequest(rows.dense, rows.ids);
      (req.inputs as Record<string, Record<string, unknown>>).feature_ids!.dtype = "DT_FLOAT";
    } else if (change === "huge") {
      req = predictRequest(rows.dense, rows.ids);
      (req.inputs as Record<string, Record<string, unknown>>).feature_ids = { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 5_000_000 }, { size: 1 }] }, tensor_content: Buffer.alloc(40_000_000, 7) };
    } else if (change === "ids-field") {
      req = predictRequest(rows.dense, rows.ids);
      const ids = (req.inputs as Record<string, Record<string, unknown>>).feature_ids!;
      ids.int64_val = ids.uint64_val;
      delete ids.uint64_val;
    } else if (change === "big") req = predictRequest(Array.from({ length: 5000 }, () => rows.dense[0]!), Array.from({ length: 5000 }, () => rows.ids[0]!));
    else req = { ...predictRequest(rows.dense, rows.ids), ...(change as object) };
    await expect(call(predict, "Predict", req)).rejects.toMatchObject({ code, details: expect.stringContaining(message) });
    const ok = await call<PredictRes>(predict, "Predict", predictRequest(rows.dense, rows.ids));
    expect(ok.outputs.probabilities.float_val).toHaveLength(4);
    predict.close();
  });

  it("an inputs map entry without its TensorProto is INVALID_ARGUMENT naming the input, not the decoder's internal error", async () => {
    const { predict } = clients();
    // PredictRequest: model_spec { name: "ctr" }, then inputs' entry { key: "dense_features" } with no value (field 2).
    const key = Buffer.from("dense_features");
    const entry = Buffer.concat([Buffer.from([0x0a, key.length]), key]);
    const body = Buffer.concat([Buffer.from([0x0a, 5, 0x0a, 3]), Buffer.from("ctr"), Buffer.from([0x12, entry.length]), entry]);
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      predict.makeUnaryRequest("/tensorflow.serving.PredictionService/Predict", (b: Buffer) => b, (b: Buffer) => b, body, (e) => resolve(e)),
    );
    expect([err?.code, err?.details]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringContaining('inputs entry "dense_features" has no TensorProto value')]);
    expect(err?.details).not.toContain("Cannot read properties");
    predict.close();
  });

  it("the load generator's HTTP/2 gRPC caller gets what grpc-js gets, and the server's status and message on an error", async () => {
    const { prediction } = tfServingServices();
    const predict = prediction.service.Predict!;
    const h2 = new H2UnaryClient(grpcAddress);
    const { predict: viaGrpcJs } = clients();
    try {
      const answer = predict.responseDeserialize(await h2.call(predict.path, predict.requestSerialize(predictRequest(rows.dense, rows.ids)), 10_000)) as PredictRes;
      const expected = await call<PredictRes>(viaGrpcJs, "Predict", predictRequest(rows.dense, rows.ids));
      expect(answer.outputs.probabilities.float_val).toHaveLength(4);
      expect(answer.outputs.probabilities.float_val).toEqual(expected.outputs.probabilities.float_val);
      await expect(h2.call(predict.path, predict.requestSerialize({ model_spec: { name: "nope" } }), 10_000)).rejects.toThrow(`gRPC status ${grpc.status.NOT_FOUND}: SERVING_ERR_UNKNOWN_MODEL: no model named "nope"`);
      await expect(h2.call("/tensorflow.serving.PredictionService/NoSuchMethod", Buffer.alloc(0), 10_000)).rejects.toThrow(`gRPC status ${grpc.status.UNIMPLEMENTED}`);
    } finally {
      h2.close();
      viaGrpcJs.close();
    }
  });

  it("the load generator's open loop times only what follows its untimed first second, and reads the server's CPU over the same window", async () => {
    const gen = spawnSync(process.execPath, [join(ROOT, "services/serving/dist/bench/load-gen.js"), grpcAddress, "ctr", "4", "0", "1", String(rows.dense[0]!.length), JSON.stringify(rows.ids), "100"], { encoding: "utf8", env: { ...process.env, SERVER_PID: String(server!.pid) }, timeout: 30_000 });
    expect(gen.status, gen.stderr).toBe(0);
    const r = JSON.parse(lastLine(gen.stdout)) as { requests: number; errors: number; warmupErrors: number; requestsPerSec: number; serverCpuMs: number; generatorCpuMs: number; concurrency: number };
    // 2 s of requests at 100/s were sent; the timed second's 100 are the ones counted.
    expect(r.requests).toBe(100);
    expect([r.errors, r.warmupErrors]).toEqual([0, 0]);
    expect(r.requestsPerSec).toBeGreaterThan(60);
    expect(r.requestsPerSec).toBeLessThan(110);
    expect(r.serverCpuMs).toBeGreaterThan(0);
    expect(r.generatorCpuMs).toBeGreaterThan(0);
    expect(r.concurrency).toBeGreaterThan(0);
  });

  it("serving's /metrics (on the REST port) counts requests and times Predict by status", async () => {
    const text = await (await fetch(`http://${restAddress}/metrics`)).text();
    const value = (name: string, labels = "") => Number(text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(" ").at(-1));
    expect(value("pangea_serving_predict_requests_total")).toBeGreaterThan(0);
    expect(value("pangea_serving_examples_total")).toBeGreaterThan(0);
    expect(value("pangea_serving_model_version", 'model="ctr"')).toBe(1);
    expect(value("pangea_grpc_server_handling_seconds_count", 'method="/tensorflow.serving.PredictionService/Predict",code="OK"')).toBeGreaterThan(0);
    expect(value("pangea_grpc_server_handling_seconds_count", 'method="/tensorflow.serving.PredictionService/Predict",code="NOT_FOUND"')).toBeGreaterThan(0);
    // Ids no row can match read as missing, without an error: counted. Another slot's in a column (the slot order
    // reversed), and ids of the right slot with the reserved top bit (sent as negative int64s).
    const misplaced = async () => Number((await (await fetch(`http://${restAddress}/metrics`)).text()).split("\n").find((l) => /^pangea_serving_misplaced_ids_total[{ ]/.test(l))!.split(" ").at(-1));
    const nonzero = rows.ids.flat().filter((id) => id !== "0").length;
    const before = await misplaced();
    // Ids in their own slots' columns: none counted (on forward threads too, which are handed the ids' buffer).
    const placed = await rest("/v1/models/ctr:predict", { inputs: { dense_features: rows.dense, feature_ids: rows.ids } });
    expect(placed.status).toBe(200);
    expect(await misplaced()).toBe(before);
    const reversed = await rest("/v1/models/ctr:predict", { inputs: { dense_features: rows.dense, feature_ids: rows.ids.map((r) => [...r].reverse()) } });
    expect(reversed.status).toBe(200);
    expect((await misplaced()) - before).toBe(nonzero);
    const topBit = await rest("/v1/models/ctr:predict", { inputs: { dense_features: rows.dense, feature_ids: rows.ids.map((r) => r.map((id) => (id === "0" ? id : String((BigInt(id) | (1n << 63n)) - (1n << 64n))))) } });
    expect(topBit.status).toBe(200);
    expect((await misplaced()) - before).toBe(2 * nonzero);
    const declared = declaredFamilies(text);
    for (const name of grafanaMetricNames().filter((n) => n.startsWith("pangea_serving_"))) expect(declared.has(name), name).toBe(true);
  });

  it("pangea predict sends a JSON file's examples over gRPC and prints the probabilities; a server error exits 1, an input serving refuses 2", async () => {
    const file = join(tmp, "examples.json");
    writeFileSync(file, JSON.stringify({ instances: rows.dense.map((d, i) => ({ dense_features: d, feature_ids: rows.ids[i] })) }));
    const r = await runNode(ENTRY.cli, ["predict", "--address", grpcAddress, "--model", "ctr", "--input", file]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { predictions: number[]; model_version: number };
    const viaRest = (await rest("/v1/models/ctr:predict", { inputs: { dense_features: rows.dense, feature_ids: rows.ids } })).json.outputs as { probabilities: number[] };
    out.predictions.forEach((p, i) => expect(p).toBeCloseTo(viaRest.probabilities[i]!, 6));
    const bad = await runNode(ENTRY.cli, ["predict", "--address", grpcAddress, "--model", "nope", "--input", file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(`pangea predict: serving at ${grpcAddress}: NOT_FOUND: SERVING_ERR_UNKNOWN_MODEL: no model named "nope"; this server serves "ctr"`);
    // An input serving refuses (one dense value too few for this model) is the input's mistake: exit 2, as the CLI's own checks.
    const narrow = join(tmp, "narrow.json");
    writeFileSync(narrow, JSON.stringify({ instances: [{ dense_features: rows.dense[0]!.slice(1), feature_ids: rows.ids[0] }] }));
    const refused = await runNode(ENTRY.cli, ["predict", "--address", grpcAddress, "--model", "ctr", "--input", narrow]);
    expect([refused.code, refused.stderr.trim()]).toEqual([2, `pangea predict: serving at ${grpcAddress}: INVALID_ARGUMENT: SERVING_ERR_BAD_INPUT: input dense_features must have shape [B, ${rows.dense[0]!.length}], got [1, ${rows.dense[0]!.length - 1}]`]);
    // The REST port given for the gRPC one: said, not an empty "Resolution note".
    const restPort = await runNode(ENTRY.cli, ["predict", "--address", restAddress, "--model", "ctr", "--input", file]);
    expect(restPort.code).toBe(3);
    expect(restPort.stderr.trim()).toBe(`pangea predict: serving at ${restAddress} cannot be reached: it speaks HTTP/1, not gRPC: a REST, dashboard or metrics port? (--address takes serving's gRPC port, --port of pangea serve)`);
    expect(restPort.stderr).not.toContain("Resolution note");
    // pangea status given serving's ports instead of the orchestrator's: each said for what it is.
    const [atGrpc, atRest] = await Promise.all([grpcAddress, restAddress].map((a) => runNode(ENTRY.cli, ["status", "--orchestrator", a])));
    expect(atGrpc.code).toBe(1);
    expect(atGrpc.stderr).toContain(`orchestrator at ${grpcAddress}: UNIMPLEMENTED:`);
    expect(atGrpc.stderr).toContain("(what answers there is a gRPC server but not an orchestrator: serving's or another service's port? --orchestrator takes the orchestrator's port: the one pangea run and pangea up print after 'orchestrator', or 50051 for one started alone)");
    expect(atRest.code).toBe(3);
    expect(atRest.stderr.trim()).toBe(`pangea status: cannot reach orchestrator at ${restAddress} within 5.0s: it speaks HTTP/1, not gRPC: a REST, dashboard or metrics port? (--orchestrator takes the orchestrator's gRPC port: the one pangea run and pangea up print after 'orchestrator', or 50051 for one started alone)`);
  });

  it("REST: status, row and column predictions, and clear 4xx errors", async () => {
    const status = await rest("/v1/models/ctr");
    expect(status.status).toBe(200);
    // Each loaded version says which job and step it was exported from (Pangea's addition), as its manifest records it.
    const manifest = JSON.parse(readFileSync(join(BASE, "1", "manifest.json"), "utf8")) as { createdAt: string; source: { jobId: string; step: number; checkpoint: string } };
    const one = (status.json.model_version_status as { version: string; source?: unknown }[]).find((v) => v.version === "1");
    expect(one?.source).toEqual({ job_id: manifest.source.jobId, step: 30, checkpoint: checkpoint, exported_at: manifest.createdAt });
    const row = await rest("/v1/models/ctr:predict", { instances: rows.dense.map((d, i) => ({ dense_features: d, feature_ids: rows.ids[i] })) });
    expect(row.status).toBe(200);
    expect(row.json.predictions).toHaveLength(4);
    expect((await rest("/v1/models/other:predict", { instances: [] })).status).toBe(404);
    const posted = await fetch(`http://${restAddress}/v1/models/ctr`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect([posted.status, posted.headers.get("allow"), await posted.json()]).toEqual([405, "GET", { error: "POST /v1/models/ctr: the model's status and metadata take GET; predict with POST /v1/models/<name>[/versions/<v>]:predict" }]);
    // A path no route takes is answered in the same {"error": ...} shape.
    expect(await rest("/v1/models")).toEqual({ status: 404, json: { error: "no such resource: GET /v1/models; serving's REST API is GET /v1/models/<name>[/versions/<v>][/metadata] and POST /v1/models/<name>[/versions/<v>]:predict" } });
    // A version past 2^53 is named as given, not as the 1e+23 it would parse to.
    const huge = await rest("/v1/models/ctr/versions/99999999999999999999999");
    expect(huge.status).toBe(404);
    expect(huge.json.error).toBe("SERVING_ERR_UNKNOWN_MODEL: no version 99999999999999999999999: a version is an integer below 2^53");
    const bad = await rest("/v1/models/ctr:predict", { instances: [{ dense_features: [1], feature_ids: [] }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe("SERVING_ERR_BAD_INPUT: dense_features row 0 must have 13 values, got 1");
    const res = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: "{not json", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^SERVING_ERR_BAD_INPUT: the body is not valid JSON: .+/);
    // A "__proto__" key is refused, and named (fastify's own parser said only "Body is not valid JSON").
    const proto = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: '{"instances":[{"__proto__":{"x":1}}]}', headers: { "content-type": "application/json" } });
    expect(proto.status).toBe(400);
    expect(((await proto.json()) as { error: string }).error).toBe('SERVING_ERR_BAD_INPUT: the body has a key "__proto__", which no input is named');
    // Nesting past 32 is refused before the body is parsed: two million brackets (4 MB) had held the event loop 4.2 s.
    const deepError = 'SERVING_ERR_BAD_INPUT: the body nests arrays and objects more than 32 deep; a predict body nests five at most ({"inputs": {"feature_ids": [[[ids]]]}})';
    for (const n of [32, 2_000_000]) {
      const started = performance.now();
      const deep = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: `{"instances":${"[".repeat(n)}${"]".repeat(n)}}`, headers: { "content-type": "application/json" } });
      expect([deep.status, ((await deep.json()) as { error: string }).error]).toEqual([400, deepError]);
      process.stdout.write(`a body nested ${n + 1} deep refused in ${(performance.now() - started).toFixed(0)} ms\n`);
    }
    // 32 levels are parsed (and refused for what they hold).
    const deepest = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: `{"instances":${"[".repeat(31)}${"]".repeat(31)}}`, headers: { "content-type": "application/json" } });
    expect([deepest.status, ((await deepest.json()) as { error: string }).error]).toEqual([400, "SERVING_ERR_BAD_INPUT: instance 0 must be an object of named inputs, got a list"]);
    // A key given twice in one object is refused, naming it (JSON.parse would keep the last: half the instances answered).
    const inst = JSON.stringify({ dense_features: rows.dense[0], feature_ids: rows.ids[0] });
    const dense = JSON.stringify(rows.dense[0]);
    const ids = JSON.stringify(rows.ids[0]);
    for (const [key, body] of [
      ["instances", `{"instances":[${inst}],"instances":[${inst},${inst}]}`],
      ["dense_features", `{"instances":[{"dense_features":[1],"dense_features":${dense},"feature_ids":${ids}}]}`],
    ]) {
      const twice = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body, headers: { "content-type": "application/json" } });
      expect([twice.status, ((await twice.json()) as { error: string }).error]).toEqual([400, `SERVING_ERR_BAD_INPUT: the body gives the key "${key}" twice in one object; JSON.parse would keep only the last: give each key once`]);
    }
    // A gzip body is decompressed, as TF Serving does (it failed as "body size did not match Content-Length"); a corrupt one is 400.
    const rowsBody = JSON.stringify({ instances: rows.dense.map((d, i) => ({ dense_features: d, feature_ids: rows.ids[i] })) });
    const gz = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: gzipSync(rowsBody), headers: { "content-type": "application/json", "content-encoding": "gzip" } });
    expect(gz.status).toBe(200);
    expect(((await gz.json()) as { predictions: number[] }).predictions).toEqual(row.json.predictions);
    const corrupt = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: Buffer.from("not gzip at all"), headers: { "content-type": "application/json", "content-encoding": "gzip" } });
    expect(corrupt.status).toBe(400);
    expect(((await corrupt.json()) as { error: string }).error).toMatch(/^SERVING_ERR_BAD_INPUT: the gzip body does not decompress: /);
    const br = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", body: rowsBody, headers: { "content-type": "application/json", "content-encoding": "br" } });
    expect(br.status).toBe(415);
  });

  it("a new version is swapped in under load with zero failed requests; the newest 2 stay loaded; removing one rolls back; a corrupt one is refused", async () => {
    const { predict, model } = clients();
    const seen = new Set<string>();
    let failures = 0;
    let done = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        await Promise.all(
          Array.from({ length: 4 }, () =>
            call<PredictRes>(predict, "Predict", predictRequest(rows.dense, rows.ids)).then(
              (r) => {
                seen.add(r.model_spec.version.value);
                done++;
              },
              () => failures++,
            ),
          ),
        );
      }
    })();
    await waitFor("some requests", async () => done > 20, 10_000, 20);
    exportVersion(2);
    await waitFor("version 2 to serve", async () => seen.has("2"), 10_000, 50);
    exportVersion(3);
    await waitFor("version 3 to serve", async () => seen.has("3"), 10_000, 50);
    stop = true;
    await load;
    expect(failures).toBe(0);
    expect(done).toBeGreaterThan(40);
    type Status = { model_version_status: { version: string; state: string }[] };
    let st = await call<Status>(model, "GetModelStatus", { model_spec: { name: "ctr" } });
    expect(st.model_version_status.map((s) => `${s.version}:${s.state}`)).toEqual(["1:END", "2:AVAILABLE", "3:AVAILABLE"]);
    // Roll back: take version 3 away; requests go to 2.
    rmSync(join(BASE, "3"), { recursive: true });
    await waitFor("version 2 to serve again", async () => (await call<PredictRes>(predict, "Predict", predictRequest(rows.dense, rows.ids))).model_spec.version.value === "2", 10_000, 100);
    // A version whose files were altered is refused with the reason; version 2 keeps serving.
    cpSync(join(BASE, "2"), join(tmp, "v4"), { recursive: true });
    const f = join(tmp, "v4", "dense.f32");
    const bytes = readFileSync(f);
    bytes[10] ^= 0xff;
    writeFileSync(f, bytes);
    const m = JSON.parse(readFileSync(join(tmp, "v4", "manifest.json"), "utf8"));
    m.version = 4;
    writeFileSync(join(tmp, "v4", "manifest.json"), JSON.stringify(m));
    cpSync(join(tmp, "v4"), join(BASE, "4"), { recursive: true });
    await waitFor("version 4 to be refused", async () => {
      const s = await call<{ model_version_status: { version: string; state: string; status: { error_message: string } }[] }>(model, "GetModelStatus", { model_spec: { name: "ctr", version: { value: "4" } } }).catch(() => null);
      return s?.model_version_status[0]?.state === "END" ? s.model_version_status[0] : null;
    }, 10_000, 100).then((v) => expect(v.status.error_message).toMatch(/dense\.f32 fails its SHA-256 check/));
    expect((await call<PredictRes>(predict, "Predict", predictRequest(rows.dense, rows.ids))).model_spec.version.value).toBe("2");
    // Pinning over REST serves a chosen loaded version.
    st = await call<Status>(model, "GetModelStatus", { model_spec: { name: "ctr" } });
    expect(st.model_version_status.find((s) => s.version === "2")!.state).toBe("AVAILABLE");
    predict.close();
    model.close();
  }, 60_000);

  it("parameter sync: training on new data changes predictions within one interval; at the end the synced model equals the export of the final checkpoint", async () => {
    const { predict } = clients();
    const probs = async (version?: number) => {
      const req = predictRequest(rows.dense, rows.ids);
      if (version) (req.model_spec as Record<string, unknown>).version = { value: String(version) };
      const r = await call<PredictRes>(predict, "Predict", req);
      return { version: r.model_spec.version.value, p: r.outputs.probabilities.float_val };
    };
    const before = await probs();
    expect(before.version).toBe("2");
    // Training continues from the served model's checkpoint on other data (another seed), syncing every second.
    const c = await LocalCluster.start({
      trainers: 2,
      logDir: join(tmp, "sync-job"),
      orchestratorArgs: ["--job-id", "sync-job", "--steps", "60", "--batch-size", "256", "--seed", "7", "--restore-from", checkpoint, "--checkpoint-dir", join(tmp, "ckpt"),
        "--serving-sync", grpcAddress, "--sync-interval-seconds", "1", "--dense-sync-interval-seconds", "1"],
      computeArgs: ["--seed", "7", "--eval-records", "2000"],
      trainerArgs: [],
    });
    try {
      const status = new StatusClient(c.orchestratorAddress);
      await status.connect(5_000);
      await waitFor("training to start", async () => Number((await status.get()).step) >= 1, 60_000, 20);
      const started = Date.now();
      await waitFor("a prediction to change", async () => (await probs()).p.some((x, i) => Math.abs(x - before.p[i]!) > 1e-6), 10_000, 50);
      const delay = Date.now() - started;
      expect(delay).toBeLessThan(1_000 + 1_500);
      const final = await waitFor("the job to end", async () => {
        const s = await status.get();
        return s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED" ? s : null;
      }, 120_000);
      status.close();
      expect(final.state).toBe("JOB_STATE_COMPLETED");
      // The synced version 2 against an export of the final checkpoint, once the final push has
      // landed (polled for: it is sent as the job ends, and a fixed wait could be too short under load).
      const r = spawnSync(process.execPath, [EXPORT, "--checkpoint", final.checkpointPath, "--out", BASE, "--version", "5"], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      await waitFor("version 5 to serve", async () => (await probs()).version === "5", 10_000, 100);
      const exported = await probs(5);
      let synced = await probs(2);
      await waitFor("the final push to land in version 2", async () => {
        synced = await probs(2);
        return synced.p.every((x, i) => Math.abs(x - exported.p[i]!) < 5e-6);
      }, 10_000, 100).catch(() => undefined);
      synced.p.forEach((x, i) => expect(x).toBeCloseTo(exported.p[i]!, 5));
      expect(synced.p.some((x, i) => Math.abs(x - before.p[i]!) > 1e-4)).toBe(true);
    } finally {
      await c.stop(1_000);
      predict.close();
    }
  }, 150_000);

  it("Monolith inputs: serialized Instance, Example and ExampleBatch records predict exactly what the same examples as feature tensors predict", async () => {
    // A version exported with the feature list the training data was read with.
    const source = new SyntheticSource({ seed: 42, evalRecords: 100 });
    const listPath = join(tmp, "feature_list.json");
    writeFileSync(listPath, JSON.stringify(source.featureListConfig("fid_v2")));
    const r = spawnSync(process.execPath, [EXPORT, "--checkpoint", checkpoint, "--out", BASE, "--version", "9", "--feature-list", listPath], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const { predict } = clients();
    await waitFor("version 9", async () => (await call<PredictRes>(predict, "Predict", predictRequest(rows.dense, rows.ids)).catch(() => null))?.model_spec.version.value === "9", 10_000, 100);
    const n = 6;
    const samples = Array.from({ length: n }, (_, i) => source.plainSample("eval", i));
    const block = new RecordBlock(n, 13, 26);
    source.read("eval", 0, n, block);
    const dense = Array.from({ length: n }, (_, e) => Array.from(block.dense.subarray(e * 13, (e + 1) * 13)));
    const ids = Array.from({ length: n }, (_, e) => Array.from({ length: 26 }, (_, s) => ((BigInt(block.idWords[2 * (e * 26 + s) + 1]!) << 32n) | BigInt(block.idWords[2 * (e * 26 + s)]!)).toString()));
    const asTensors = (await call<PredictRes>(predict, "Predict", predictRequest(dense, ids))).outputs.probabilities.float_val;
    const strings = (name: string, records: Uint8Array[]) => ({
      model_spec: { name: "ctr" },
      inputs: { [name]: { dtype: "DT_STRING", tensor_shape: { dim: [{ size: records.length }] }, string_val: records.map((b) => Buffer.from(b)) } },
    });
    for (const [name, records] of [["instances", samples.map(encodeInstance)], ["examples", samples.map(encodeExample)], ["example_batch", [encodeExampleBatch(samples)]]] as const) {
      const got = (await call<PredictRes>(predict, "Predict", strings(name, [...records]))).outputs.probabilities.float_val;
      expect(got, name).toHaveLength(n);
      got.forEach((p, i) => expect(p, `${name} ${i}`).toBeCloseTo(asTensors[i]!, 5));
    }
    // Over REST, as TF Serving's REST API carries binary values: {"b64": ...}, columnar and by row.
    const rest = async (body: unknown) => {
      const res = await fetch(`http://${restAddress}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { predictions?: number[]; outputs?: { probabilities: number[] }; error?: string } };
    };
    const b64 = (b: Uint8Array) => ({ b64: Buffer.from(b).toString("base64") });
    for (const body of [{ inputs: { examples: samples.map((x) => b64(encodeExample(x))) } }, { instances: samples.map((x) => ({ instances: b64(encodeInstance(x)) })) }, { inputs: { example_batch: [b64(encodeExampleBatch(samples))] } }]) {
      const got = await rest(body);
      expect(got.status, JSON.stringify(got.body)).toBe(200);
      // TF Serving's answer follows the request's form: "outputs" to "inputs", "predictions" to "instances".
      const p = got.body.outputs?.probabilities ?? got.body.predictions!;
      expect(p).toHaveLength(n);
      p.forEach((x, i) => expect(x, `REST ${i}`).toBeCloseTo(asTensors[i]!, 5));
    }
    expect(await rest({ inputs: { examples: ["not b64 object"] } })).toEqual({ status: 400, body: { error: 'SERVING_ERR_BAD_INPUT: input examples, example 0: expected one serialized record as {"b64": "<base64>"}, got a string' } });
    expect(await rest({ inputs: { examples: [{ b64: "YW Jj" }] } })).toEqual({ status: 400, body: { error: 'SERVING_ERR_BAD_INPUT: input examples, example 0: "b64" holds 5 characters that are not base64 (A-Z, a-z, 0-9, + and /, padded with = to a multiple of 4)' } });
    await expect(call(predict, "Predict", strings("instances", [Uint8Array.of(0x0a, 0xff, 0xff)]))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^SERVING_ERR_BAD_INPUT: input instances, record 0: not a valid Monolith Instance: [^;]+$/),
    });
    // A bad Example (its features given twice) that walks as an Instance's fids of random slots gets no hint.
    const twice = Uint8Array.from([...encodeExample(samples[0]!), ...encodeExample(samples[1]!)]);
    await expect(call(predict, "Predict", strings("examples", [twice]))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^SERVING_ERR_BAD_INPUT: input examples, record 0: not a valid Monolith Example: feature '[^']+' is named twice in one example;[^;]+$/),
    });
    // A record of another kind than its input's: the error names the input it decodes as.
    await expect(call(predict, "Predict", strings("examples", [encodeExampleBatch(samples)]))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^SERVING_ERR_BAD_INPUT: input examples, record 0: not a valid Monolith Example: .+; it decodes as a Monolith ExampleBatch: send it as input example_batch$/),
    });
    await expect(call(predict, "Predict", strings("instances", [encodeExample(samples[0]!)]))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^SERVING_ERR_BAD_INPUT: input instances, record 0: not a valid Monolith Instance: .+; it decodes as a Monolith Example: send it as input examples$/),
    });
    // An ExampleBatch saying it holds more examples than --max-batch is too large, as as many Examples are.
    await expect(call(predict, "Predict", strings("example_batch", [Uint8Array.of(0x18, 0x88, 0x27)]))).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/^SERVING_ERR_TOO_LARGE: request carries 5000 examples; this server takes at most \d+ \(--max-batch\)$/),
    });
    expect(await rest({ inputs: { example_batch: b64(encodeExampleBatch(samples)) } })).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^SERVING_ERR_BAD_INPUT: input example_batch must be a list with one entry, the serialized ExampleBatch as \{"b64": "<base64>"\}, got /) },
    });
    expect(await rest({ inputs: { example_batch: [b64(encodeInstance(samples[0]!))] } })).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^SERVING_ERR_BAD_INPUT: input example_batch, record 0: not a valid Monolith ExampleBatch: .+; it decodes as a Monolith Instance: send it as input instances$/) },
    });
    // Records are held to the limits training holds them to, and the request to the ids any input may carry.
    const [bag, one] = [...samples[0]!.ids.entries()][0]!;
    const withIds = (n: number) => ({ ...samples[0]!, ids: new Map([...samples[0]!.ids, [bag, Uint32Array.from({ length: 2 * n }, (_, k) => one[k % 2]!)]]) });
    const wide = encodeExample(withIds(MAX_IDS_PER_CELL + 1));
    await expect(call(predict, "Predict", strings("examples", [encodeExample(samples[1]!), wide]))).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: `SERVING_ERR_TOO_LARGE: input examples, example 1: slot '${bag}' holds ${MAX_IDS_PER_CELL + 1} ids; a cell takes at most ${MAX_IDS_PER_CELL} (as training takes)`,
    });
    expect((await rest({ inputs: { examples: [b64(wide)] } })).status).toBe(413);
    const full = encodeExample(withIds(MAX_IDS_PER_CELL));
    const many = Array.from({ length: Math.ceil((1 << 20) / MAX_IDS_PER_CELL) }, () => full);
    await expect(call(predict, "Predict", strings("examples", many))).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/^SERVING_ERR_TOO_LARGE: input examples holds more than 1048576 ids by example \d+ \(\d+ ids\); a request takes at most 1048576$/),
    });
    // A cell at the limit is served.
    expect((await call<PredictRes>(predict, "Predict", strings("examples", [full]))).outputs.probabilities.float_val).toHaveLength(1);
    rmSync(join(BASE, "9"), { recursive: true });
    predict.close();
  }, 60_000);

  it("export refuses an existing version (a usage error, exit 2) and a broken checkpoint with one line", async () => {
    const again = await runNode(EXPORT, ["--checkpoint", checkpoint, "--out", BASE, "--version", "2"]);
    expect(again.code).toBe(2);
    expect(again.stderr.split("\n")[0]).toMatch(new RegExp(`^pangea-export: --version: ${join(BASE, "2")} already exists and versions are immutable; pick another, or leave --version out for the next one \\(\\d+\\)$`));
    const missing = await runNode(EXPORT, ["--checkpoint", join(tmp, "nope"), "--out", BASE]);
    expect(missing.code).toBe(1);
    expect(lastLine(missing.stderr)).toBe(`pangea-export: error ORCH_ERR_CHECKPOINT_NOT_FOUND: checkpoint ${join(tmp, "nope")} not found`);
  });

  it("export refuses a feature list serving could not load with this model, and writes no version (versions are immutable)", async () => {
    const broken = join(tmp, "broken-list.json");
    writeFileSync(broken, JSON.stringify({ slots: [{ name: "a", slot: 1 }], labels: [{ name: "click" }, { name: "click" }] }));
    const other = join(tmp, "other-list.json");
    writeFileSync(other, JSON.stringify({ slots: [{ name: "a", slot: 1 }] }));
    const before = readdirSync(BASE).sort();
    // Usage errors (exit 2): a list that does not parse, named before the checkpoint is read, and one that cannot go with the model.
    const a = await runNode(EXPORT, ["--checkpoint", checkpoint, "--out", BASE, "--feature-list", broken]);
    expect(a.code).toBe(2);
    expect(a.stderr.split("\n")[0]).toBe(`pangea-export: --feature-list: feature list ${broken}: label 'click' is declared twice`);
    const b = await runNode(EXPORT, ["--checkpoint", checkpoint, "--out", BASE, "--feature-list", other]);
    expect(b.code).toBe(2);
    expect(b.stderr.split("\n")[0]).toMatch(new RegExp(`^pangea-export: --feature-list ${other} cannot go with this model: the feature list's slots 1 are not the model's 1,2,`));
    // The model's slots and dense width, but a dim, a pooling or tasks it was not trained with: the version would say one model and hold another.
    const fitting = (change: (slot: Record<string, unknown>) => void, extra: Record<string, unknown> = {}) => {
      const slots = Array.from({ length: 26 }, (_, i) => ({ name: `C${i + 1}`, slot: i + 1 }) as Record<string, unknown>);
      change(slots[2]!);
      const file = join(tmp, `fitting-${readdirSync(tmp).length}.json`);
      writeFileSync(file, JSON.stringify({ slots, dense: [{ name: "I", size: 13 }], ...extra }));
      return file;
    };
    for (const [file, problem] of [
      [fitting((s) => (s.dim = 8)), "slot 3 (C3): the feature list gives embedding dim 8, the model has 16"],
      [fitting((s) => (s.pooling = "mean")), "slot 3 (C3): the feature list pools with mean, the model with sum"],
      [fitting(() => {}, { labels: [{ name: "click" }, { name: "conversion" }] }), "the feature list's labels are the tasks click (bce), conversion (bce), the model's tasks are ctr (bce)"],
      [fitting(() => {}, { labels: [{ name: "ctr", loss: "mse" }] }), "the feature list's labels are the tasks ctr (mse), the model's tasks are ctr (bce)"],
    ] as const) {
      const c = await runNode(EXPORT, ["--checkpoint", checkpoint, "--out", BASE, "--feature-list", file]);
      expect([c.code, c.stderr.split("\n")[0]]).toEqual([2, `pangea-export: --feature-list ${file} cannot go with this model: ${problem}`]);
    }
    // The model's shape, but inputs encoded otherwise than the training data was (the checkpoint records how): serving would
    // feed the model values it never learned on. The built-in data is read as Criteo's layout: C1..C26 hashed, I1..I13 log1p.
    const criteo = (change: (list: { slots: Record<string, unknown>[]; dense: Record<string, unknown>[] }) => void) => {
      const list = {
        slots: Array.from({ length: 26 }, (_, i) => ({ name: `C${i + 1}`, slot: i + 1, type: "bytes" }) as Record<string, unknown>),
        dense: Array.from({ length: 13 }, (_, i) => ({ name: `I${i + 1}`, transform: "log1p" }) as Record<string, unknown>),
      };
      change(list);
      const file = join(tmp, `encoding-${readdirSync(tmp).length}.json`);
      writeFileSync(file, JSON.stringify(list));
      return file;
    };
    for (const [file, problem] of [
      [criteo((l) => (l.dense[0]!.transform = "none")), "dense feature 'I1' was read with transform log1p in training, this list says none"],
      [criteo((l) => (l.slots[4]!.type = "int64")), "slot 5 ('C5') was hashed as type bytes in training, this list says int64"],
      [criteo((l) => ([l.slots[4]!.name, l.slots[5]!.name] = ["C6", "C5"])), "this list names slot 5 'C6', which is slot 6 in the training data's feature list (slot 5 is 'C5' there)"],
      [criteo((l) => l.dense.reverse()), "this list has dense feature 'I13' at position 1, the training data's feature list at 13 ('I1' is at 1 there)"],
    ] as const) {
      const c = await runNode(EXPORT, ["--checkpoint", checkpoint, "--out", BASE, "--feature-list", file]);
      expect([c.code, c.stderr.split("\n")[0]]).toEqual([2, `pangea-export: --feature-list ${file} cannot go with this model: ${problem}`]);
    }
    expect(readdirSync(BASE).sort()).toEqual(before);
    // The training data's own layout is taken, and so are new names and the hashed ids declared as ids (fid_v2).
    for (const list of [criteo(() => {}), criteo((l) => ((l.slots[0]!.name = "user"), (l.dense[0]!.name = "price"), (l.slots[1]!.type = "fid_v2")))]) {
      const same = await runNode(EXPORT, ["--checkpoint", checkpoint, "--out", join(tmp, "same-layout"), "--feature-list", list]);
      expect([same.code, same.stderr]).toEqual([0, ""]);
    }
  });
});
