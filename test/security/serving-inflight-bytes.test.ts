import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tfServingServices } from "../../services/serving/src/api/tf-serving-grpc.js";
import { metricValue } from "../support/metrics.js";
import type { RunningService } from "../support/service.js";
import { servingOfTestModel } from "../support/serving-process.js";

/**
 * The bytes of Predict requests in flight are bounded across callers
 * (--max-inflight-request-mb), on a real serving process: with a budget of
 * 1 MiB and a 0.7 MiB request held by a 1 s batch window (long enough
 * for a loaded CI machine to send the next two while it waits), another
 * 0.7 MiB request is refused at once, over gRPC and REST, naming the flag,
 * and counted; once answered the budget is free again; a request larger
 * than the whole budget is served when it is alone.
 */
const PAD = 700 * 1024;
let serving: RunningService;
let client: grpc.Client;
let close = async () => {};

beforeAll(async () => {
  ({ serving, client, close } = await servingOfTestModel("pangea-sec-inflight-", ["--max-inflight-request-mb", "1", "--batch-window-us", "1000000"]));
});
afterAll(() => close());

const predict = tfServingServices().prediction.service.Predict!;

/** A valid one-example Predict grown to `pad` bytes more by an unknown field (99), which the decoder skips. */
function paddedPredict(pad: number): Buffer {
  const req = predict.requestSerialize({
    model_spec: { name: "ctr" },
    inputs: {
      dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: [0.5, 1] },
      feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: 1 }] }, uint64_val: [String((1n << 48n) | 1n)] },
    },
  });
  const length: number[] = [];
  for (let n = pad; ; n >>>= 7) {
    if (n < 128) {
      length.push(n);
      break;
    }
    length.push((n & 127) | 128);
  }
  return Buffer.concat([req, Buffer.from([0x9a, 0x06, ...length]), Buffer.alloc(pad, 7)]);
}

const callGrpc = (body: Buffer) =>
  new Promise<{ code: number; details: string; outputs: number }>((resolve) =>
    client.makeUnaryRequest(predict.path, (b: Buffer) => b, (b: Buffer) => b, body, (err, res) =>
      resolve(err ? { code: err.code, details: err.details, outputs: 0 } : { code: 0, details: "", outputs: Object.keys((predict.responseDeserialize(res!) as { outputs: object }).outputs).length }),
    ),
  );

/** A valid one-example REST predict grown to `pad` bytes more by whitespace. */
async function callRest(pad: number): Promise<{ status: number; retryAfter: string | null; body: { error?: string; predictions?: number[] } }> {
  const body = `${JSON.stringify({ instances: [{ dense_features: [0.5, 1], feature_ids: ["281474976710657"] }] })}${" ".repeat(pad)}`;
  const res = await fetch(`http://${serving.rest}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { error?: string; predictions?: number[] } };
}

async function metric(name: string): Promise<number> {
  const value = await metricValue(serving.rest!, name);
  if (value === null) throw new Error(`no ${name} in /metrics`);
  return value;
}

async function until(what: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000 && !(await what()); i++) await new Promise((r) => setTimeout(r, 10));
}

describe("--max-inflight-request-mb", () => {
  it("refuses a request that would pass the budget beside one in flight, over gRPC and REST, naming the flag; counts it; frees the budget once answered", async () => {
    const held = callGrpc(paddedPredict(PAD));
    await until(async () => (await metric("pangea_serving_inflight_request_bytes")) > 0);
    expect(await metric("pangea_serving_inflight_request_bytes")).toBeGreaterThan(PAD);

    const [refused, rest] = await Promise.all([callGrpc(paddedPredict(PAD)), callRest(PAD)]);
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/^SERVING_ERR_OVERLOADED: 0\.7 MiB of requests are in flight; this one's 0\.7 MiB would pass --max-inflight-request-mb 1\.0 MiB; retry later$/);
    expect([rest.status, rest.retryAfter]).toEqual([503, "1"]);
    expect(rest.body.error).toMatch(/^SERVING_ERR_OVERLOADED: 0\.7 MiB of requests are in flight; this one's 0\.7 MiB would pass --max-inflight-request-mb 1\.0 MiB; retry later$/);

    expect(await held).toEqual({ code: 0, details: "", outputs: 1 });
    expect(await metric("pangea_serving_inflight_refused_requests_total")).toBe(2);
    await until(async () => (await metric("pangea_serving_inflight_request_bytes")) === 0);
    expect(await metric("pangea_serving_inflight_request_bytes")).toBe(0);
    // The budget is free again: the same requests go through, one after the other.
    expect(await callGrpc(paddedPredict(PAD))).toEqual({ code: 0, details: "", outputs: 1 });
    const again = await callRest(PAD);
    expect([again.status, again.body.predictions?.length]).toEqual([200, 1]);
  });

  it("takes a small request (at most 64 KiB) beside others whatever they hold: one large request does not turn small callers away", async () => {
    await until(async () => (await metric("pangea_serving_inflight_request_bytes")) === 0);
    const held = callGrpc(paddedPredict(1024 * 1024 - 16 * 1024));
    await until(async () => (await metric("pangea_serving_inflight_request_bytes")) > 0);
    // 1008 KiB held: 48 KiB more passes the 1 MiB budget, and is taken; 80 KiB is refused.
    const [small, smallRest, larger] = await Promise.all([callGrpc(paddedPredict(48 * 1024)), callRest(48 * 1024), callGrpc(paddedPredict(80 * 1024))]);
    expect(small).toEqual({ code: 0, details: "", outputs: 1 });
    expect([smallRest.status, smallRest.body.predictions?.length]).toEqual([200, 1]);
    expect(larger.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await held).toEqual({ code: 0, details: "", outputs: 1 });
  });

  it("serves a request larger than the whole budget when nothing else is in flight", async () => {
    await until(async () => (await metric("pangea_serving_inflight_request_bytes")) === 0);
    expect(await callGrpc(paddedPredict(3 * PAD))).toEqual({ code: 0, details: "", outputs: 1 });
    const rest = await callRest(3 * PAD);
    expect([rest.status, rest.body.predictions?.length]).toEqual([200, 1]);
    expect(await metric("pangea_serving_inflight_refused_requests_total")).toBe(3);
  });
});
