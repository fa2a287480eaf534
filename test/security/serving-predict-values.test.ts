import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { predictRequestLimit, tfServingServices } from "../../services/serving/src/api/tf-serving-grpc.js";
import type { RunningService } from "../support/service.js";
import { servingOfTestModel } from "../support/serving-process.js";

/**
 * A gRPC Predict's decoding costs what its inputs may legitimately hold, on a
 * real serving process (--max-batch 4096): a request at the size limit, 32 MiB
 * of one-byte int64_val varints, is refused by its value count before any
 * array is made for them. protobufjs decoded it into 33.5M strings: 3.4 GB
 * of peak RSS and 32 s of blocked event loop, and 10 at once ended serving.
 */
let serving: RunningService;
let client: grpc.Client;
let close = async () => {};

beforeAll(async () => {
  ({ serving, client, close } = await servingOfTestModel("pangea-sec-values-", ["--max-batch", "4096"]));
});
afterAll(() => close());

const predict = tfServingServices().prediction.service.Predict!;
const peakRssMiB = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${serving.child.pid}/status`, "utf8"))![1]) / 1024;

const call = (body: Buffer) =>
  new Promise<{ code: number; details: string }>((resolve) =>
    client.makeUnaryRequest(predict.path, (b: Buffer) => b, (b: Buffer) => b, body, (err) => resolve({ code: err?.code ?? 0, details: err?.details ?? "" })),
  );

const varint = (n: number): number[] => (n < 128 ? [n] : [(n % 128) | 128, ...varint(Math.floor(n / 128))]);
/** PredictRequest{model_spec{name: "ctr"}, inputs{"feature_ids": TensorProto{dtype: DT_INT64, int64_val: `n` ones, packed}}}, by hand: protobufjs would take a minute to encode it. */
function oneByteIds(n: number): Buffer {
  const tensor = Buffer.concat([Buffer.from([0x08, 0x09, 0x52, ...varint(n)]), Buffer.alloc(n, 1)]);
  const entry = Buffer.concat([Buffer.from([0x0a, 0x0b]), Buffer.from("feature_ids"), Buffer.from([0x12, ...varint(tensor.length)]), tensor]);
  return Buffer.concat([Buffer.from([0x0a, 0x05, 0x0a, 0x03, ...Buffer.from("ctr"), 0x12, ...varint(entry.length)]), entry]);
}

describe("gRPC Predict value counts", () => {
  it("a 32 MiB request of one-byte ids is refused by its count, naming the input, in bounded memory", async () => {
    const limit = predictRequestLimit(4096);
    const n = limit - 64;
    const body = oneByteIds(n);
    expect(body.length).toBeLessThanOrEqual(limit);
    // The first request is served: the process's own peak is reached before the one measured.
    const small = predict.requestSerialize({
      model_spec: { name: "ctr" },
      inputs: {
        dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: [0.5, 1] },
        feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: 1 }] }, uint64_val: [String((1n << 48n) | 1n)] },
      },
    }) as Buffer;
    expect(await call(small)).toEqual({ code: 0, details: "" });
    const before = peakRssMiB();
    expect(await call(body)).toEqual({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: `SERVING_ERR_TOO_LARGE: input feature_ids holds ${n.toLocaleString("en-US")} values; a Predict's inputs hold at most 2,097,152 in all (2^20 ids + 256 per --max-batch example)`,
    });
    // The received message and its copies are all it costs (measured: +53 MiB); decoded, it cost 3.1 GB more.
    expect(peakRssMiB() - before).toBeLessThan(256);
    expect(await call(small)).toEqual({ code: 0, details: "" });
  }, 120_000);
});
