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
let client: grpc.Client & { Predict: (req: unknown, cb: (err: grpc.ServiceError | null, res: { outputs: Record<string, { float_val: number[] }> }) => void) => void };

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

const predictGrpc = () =>
  new Promise<number[]>((resolve, reject) =>
    client.Predict(
      {
        model_spec: { name: "ctr" },
        inputs: {
          dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: [0.5, 1] },
          feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: 1 }] }, uint64_val: [((1n << 48n) | 1n).toString()] },
        },
      },
      (err, res) => (err ? reject(err) : resolve(Object.values(res.outputs)[0]!.float_val)),
    ),
  );

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
