import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "@pangea/kit";
import { newRegistry, type FastifyInstance } from "@pangea/observe";
import { startServer, type RunningServer } from "@pangea/rpc";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { PREDICTION_SERVICE, addTfServing, tfServingServices } from "../src/api/tf-serving-grpc.js";
import { startRest } from "../src/api/rest.js";
import { registerServingMetrics } from "../src/monitor/serving-metrics.js";
import { writeVersion } from "./support/versions.js";

/**
 * Load shedding (--max-queued-requests): with one request already waiting
 * for its pass (held by a 300 ms batch window) and a bound of 1, the next
 * Predict is refused at once, RESOURCE_EXHAUSTED over gRPC and 503 over
 * REST, and counted in pangea_serving_shed_requests_total; the waiting one
 * is still answered.
 */
const base = mkdtempSync(join(tmpdir(), "pangea-shed-"));
const models = new ModelManager("ctr", base, 1, createLogger("serving-test", "silent"));
const batcher = new MicroBatcher(300_000, 64, { maxQueued: 1 });
const registry = newRegistry("serving");
let server: RunningServer;
let rest: { app: FastifyInstance; address: string };
type PredictCallback = (err: grpc.ServiceError | null, res: { outputs: Record<string, { float_val: number[] }> }) => void;
let client: grpc.Client & { Predict: ((req: unknown, cb: PredictCallback) => void) & ((req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: PredictCallback) => void) };

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  registerServingMetrics(registry, models, batcher);
  server = await startServer("127.0.0.1", 0, (s) => addTfServing(s, models, batcher, 64), [PREDICTION_SERVICE]);
  rest = await startRest("127.0.0.1", 0, models, batcher, 64, registry);
  const P = grpc.makeGenericClientConstructor(tfServingServices().prediction.service, "PredictionService");
  client = new P(server.address, grpc.credentials.createInsecure()) as unknown as typeof client;
});
afterAll(async () => {
  client.close();
  await rest.app.close();
  await server.shutdown(100);
});

const predictGrpc = (deadlineMs?: number) =>
  new Promise<number[]>((resolve, reject) =>
    client.Predict(
      {
        model_spec: { name: "ctr" },
        inputs: {
          dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: [0.5, 1] },
          feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: 1 }] }, uint64_val: [((1n << 48n) | 1n).toString()] },
        },
      },
      new grpc.Metadata(),
      deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs },
      (err, res) => (err ? reject(err) : resolve(Object.values(res.outputs)[0]!.float_val)),
    ),
  );

/** `count` examples of the test model's inputs (2 dense values, 1 slot), as a request decodes to. */
function examples(count: number) {
  const idWords = new Uint32Array(count * 2);
  for (let i = 0; i < count; i++) idWords.set([1, 1 << 16], 2 * i);
  return { count, dense: new Float32Array(count * 2).fill(0.5), idWords };
}

async function untilQueued(n: number): Promise<void> {
  for (let i = 0; i < 200 && batcher.queued < n; i++) await new Promise((r) => setTimeout(r, 2));
  expect(batcher.queued).toBe(n);
}

describe("a full queue", () => {
  it("refuses the next Predict at once: RESOURCE_EXHAUSTED over gRPC, 503 over REST, counted; the waiting one is answered", async () => {
    const waiting = predictGrpc();
    await untilQueued(1);
    const err = (await predictGrpc().then(() => null, (e: unknown) => e)) as grpc.ServiceError;
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toBe("SERVING_ERR_OVERLOADED: 1 requests are waiting for a forward pass (--max-queued-requests 1); retry later");
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ instances: [{ dense_features: [0.5, 1], feature_ids: ["65537"] }] }) });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as { error: string }).error).toMatch(/^SERVING_ERR_OVERLOADED: /);
    expect(await waiting).toHaveLength(1);
    expect(batcher.shed).toBe(2);
    const metrics = await (await fetch(`http://${rest.address}/metrics`)).text();
    expect(metrics).toMatch(/^pangea_serving_shed_requests_total(\{[^}]*\})? 2$/m);
    // With room again, a Predict goes through.
    expect(await predictGrpc()).toHaveLength(1);
  });
});

describe("what waits is bounded by examples too, and a request whose caller gave up is not computed", () => {
  it("a request that would bring the waiting examples past 64 per --max-queued-requests is refused at once; a request alone is taken whatever its size", async () => {
    const b = new MicroBatcher(300_000, 4096, { maxQueued: 2 });
    const servable = models.get("ctr");
    const big = b.predict(servable, examples(1000)); // alone in the queue: taken, though above 128
    await expect(b.predict(servable, examples(1))).rejects.toThrow("1000 examples are waiting for a forward pass (at most 128: 64 for each of --max-queued-requests 2); retry later");
    expect(b.shed).toBe(1);
    expect(await big).toHaveLength(1000);
    const a = b.predict(servable, examples(100));
    await expect(b.predict(servable, examples(29))).rejects.toThrow(/^100 examples are waiting/);
    const c = b.predict(servable, examples(28));
    expect([(await a).length, (await c).length]).toEqual([100, 28]);
  });

  it("a gRPC Predict whose deadline passes while it waits is dropped before its pass and counted", async () => {
    const examplesBefore = batcher.examples;
    const err = (await predictGrpc(50).then(() => null, (e: unknown) => e)) as grpc.ServiceError;
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // The 300 ms window closes after the caller left: the request is taken off the queue, not computed.
    for (let i = 0; i < 100 && batcher.abandoned === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(batcher.abandoned).toBe(1);
    expect(batcher.examples).toBe(examplesBefore);
    const metrics = await (await fetch(`http://${rest.address}/metrics`)).text();
    expect(metrics).toMatch(/^pangea_serving_abandoned_requests_total(\{[^}]*\})? 1$/m);
    expect(await predictGrpc()).toHaveLength(1);
  });
});
