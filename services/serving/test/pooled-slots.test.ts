import { gzipSync } from "node:zlib";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rng, createLogger } from "@pangea/kit";
import { denseParams, initDenseParams, rowWidths, validateSpec, type ModelSpec } from "@pangea/model";
import type { FastifyInstance } from "@pangea/observe";
import { ModelManager } from "../src/model/model-manager.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { startRest } from "../src/api/rest.js";
import { MAX_IDS_PER_CELL, examplesFrom, type TensorProtoMsg } from "../src/api/tensors.js";
import { addTfServing, MODEL_SERVICE, PREDICTION_SERVICE } from "../src/api/tf-serving-grpc.js";
import { startServer, type RunningServer } from "@pangea/rpc";
import { ENTRY, runNode } from "../../../test/support/processes.js";
import { writeModel } from "./support/versions.js";

/**
 * Several ids per cell, slots of different dims and mean/sqrtn pooling,
 * through REST Predict (a cell given as a list), checked against PyTorch
 * (test/support/python/torch_ctr.py) on the same weights and rows.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PYTHON = "/usr/bin/python3";
const torch = spawnSync(PYTHON, ["-c", "import torch"]).status === 0;

const SLOTS = [1, 2];
const spec: ModelSpec = validateSpec({ numDense: 2, numSlots: 2, embeddingDim: 3, slotDims: [2, 3], slotPooling: ["mean", "sqrtn"], architecture: { name: "wide-deep", deepMlp: [4] } });
const widths = rowWidths(spec); // [3, 4]: the dim plus wide-deep's first-order weight
const rng = new Rng(3);
const dense = initDenseParams(spec, 5).map((v) => v.map((x) => x + rng.normal() * 0.1));
/** Slot 1 holds ids 1..4, slot 2 ids 1..3 (an id's high word carries its slot). */
const rowsOf = SLOTS.map((_, k) => Float32Array.from({ length: (k === 0 ? 4 : 3) * widths[k]! }, () => rng.normal() * 0.5));
const word = (slot: number, n: number) => [n, (slot << 16) >>> 0];
const id = (slot: number, n: number) => String((BigInt(slot) << 48n) | BigInt(n));

/** Three examples: several ids in a cell, an empty cell, an id the model lacks (counts toward the mean, reads as zeros). */
const CELLS: number[][][] = [
  [[1, 2, 3], [1]],
  [[], [2, 3]],
  [[4, 99], [3, 1, 2]],
];
const DENSE = [[0.5, 1], [2, 0], [1, 1]];

const base = mkdtempSync(join(tmpdir(), "pangea-pooled-"));
const models = new ModelManager("ctr", base, 1, createLogger("serving-test", "silent"));
let rest: { app: FastifyInstance; address: string };
let grpcServer: RunningServer;

beforeAll(async () => {
  writeModel(base, 1, {
    spec,
    slotIds: SLOTS,
    dense: Float32Array.from(dense.flatMap((v) => Array.from(v))),
    tables: SLOTS.map((slot, k) => ({ slot, ids: Uint32Array.from(Array.from({ length: rowsOf[k]!.length / widths[k]! }, (_, i) => word(slot, i + 1)).flat()), rows: rowsOf[k]! })),
  });
  models.scan();
  rest = await startRest("127.0.0.1", 0, models, new MicroBatcher(0, 64), 64);
  grpcServer = await startServer("127.0.0.1", 0, (s) => addTfServing(s, models, new MicroBatcher(0, 64), 64), [PREDICTION_SERVICE, MODEL_SERVICE]);
});
afterAll(async () => {
  await rest.app.close();
  await grpcServer.shutdown(100);
});

/** What PyTorch predicts: every known id's row once, the unknown one a zero row. */
function torchPredictions(): number[] {
  const rows: number[] = [];
  const offsets = [0];
  const rowOf = new Map<string, number>();
  const inverse: number[] = [];
  const cellOfValue: number[] = [];
  CELLS.forEach((example, e) =>
    example.forEach((ids, k) => {
      for (const n of ids) {
        const key = `${k}:${n}`;
        if (!rowOf.has(key)) {
          rowOf.set(key, offsets.length - 1);
          const w = widths[k]!;
          const known = n <= rowsOf[k]!.length / w;
          for (let j = 0; j < w; j++) rows.push(known ? rowsOf[k]![(n - 1) * w + j]! : 0);
          offsets.push(offsets[offsets.length - 1]! + w);
        }
        inverse.push(rowOf.get(key)!);
        cellOfValue.push(e * 2 + k);
      }
    }),
  );
  const input = {
    architecture: spec.architecture,
    numDense: 2,
    numSlots: 2,
    embeddingDim: 3,
    slotDims: [2, 3],
    rowWidths: widths,
    pooling: ["mean", "sqrtn"],
    params: denseParams(spec).map((p, i) => ({ name: p.name, shape: p.shape, values: Array.from(dense[i]!) })),
    batch: { size: 3, dense: DENSE.flat(), labels: [0, 0, 0], weights: null, rows, rowOffsets: offsets, uniqueRows: offsets.length - 1, inverse, cellOfValue },
  };
  const run = spawnSync(PYTHON, [join(ROOT, "test/support/python/torch_ctr.py")], { input: JSON.stringify(input), encoding: "utf8" });
  if (run.status !== 0) throw new Error(`torch_ctr.py exited ${run.status}: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { probabilities: number[] }).probabilities;
}

describe("ragged ids, mixed dims and mean/sqrtn pooling in serving", () => {
  it.runIf(torch)("REST Predict with a list per cell equals PyTorch's probabilities", async () => {
    const instances = CELLS.map((example, e) => ({ dense_features: DENSE[e], feature_ids: example.map((ids, k) => ids.map((n) => id(SLOTS[k]!, n))) }));
    const res = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ instances }) });
    expect(res.status).toBe(200);
    const got = ((await res.json()) as { predictions: number[] }).predictions;
    const want = torchPredictions();
    got.forEach((p, e) => expect(p, `example ${e}`).toBeCloseTo(want[e]!, 5));
    expect(Math.max(...want) - Math.min(...want)).toBeGreaterThan(0.01);
  });

  it.runIf(torch)("pangea predict sends a list per cell as ragged ids over gRPC: the same probabilities", async () => {
    const instances = CELLS.map((example, e) => ({ dense_features: DENSE[e], feature_ids: example.map((ids, k) => ids.map((n) => id(SLOTS[k]!, n))) }));
    const input = join(base, "ragged.json");
    writeFileSync(input, JSON.stringify({ instances }));
    const r = await runNode(ENTRY.cli, ["predict", "--address", grpcServer.address, "--model", "ctr", "--input", input]);
    expect(r.code, r.stderr).toBe(0);
    const got = (JSON.parse(r.stdout) as { predictions: number[] }).predictions;
    const want = torchPredictions();
    got.forEach((p, e) => expect(p, `example ${e}`).toBeCloseTo(want[e]!, 5));
  });

  it("a cell above the cap, or an id above 2^64, is refused naming it", async () => {
    const post = (body: unknown) => fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const big = await post({ instances: [{ dense_features: [0, 0], feature_ids: [new Array(MAX_IDS_PER_CELL + 1).fill(id(1, 1)), []] }] });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: string }).error).toBe(`SERVING_ERR_TOO_LARGE: cell 0 (example 0, slot #0) holds ${MAX_IDS_PER_CELL + 1} ids; a cell takes at most ${MAX_IDS_PER_CELL}`);
    const wrapped = await post({ instances: [{ dense_features: [0, 0], feature_ids: [String((1n << 64n) + 5n), 0] }] });
    expect(wrapped.status).toBe(400);
    expect(((await wrapped.json()) as { error: string }).error).toMatch(/is not a 64-bit integer/);
    // A body above the limit (1 MiB at --max-batch 64) is refused before it is parsed.
    const huge = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ instances: [], pad: "x".repeat(1 << 20) }) });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: string }).error).toBe("SERVING_ERR_TOO_LARGE: request body above 1048576 bytes");
    // Compressed, the limit holds for what it decompresses to: 4 MiB of JSON in a few kB of gzip is refused.
    const bomb = gzipSync(Buffer.from(JSON.stringify({ instances: [], pad: " ".repeat(4 << 20) })));
    expect(bomb.length).toBeLessThan(64 << 10);
    const inflated = await fetch(`http://${rest.address}/v1/models/ctr:predict`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: bomb });
    expect(inflated.status).toBe(413);
  });

  it("row splits and lengths describe the same cells; bad splits are refused naming the input", () => {
    const values: TensorProtoMsg = { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 3 }] }, uint64_val: BigUint64Array.from([id(1, 1), id(1, 2), id(2, 1)], BigInt) };
    const denseT: TensorProtoMsg = { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: Float32Array.of(1, 2) };
    const splits = (v: number[]): TensorProtoMsg => ({ dtype: "DT_INT64", tensor_shape: { dim: [{ size: v.length }] }, int64_val: BigInt64Array.from(v, BigInt) });
    const a = examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_row_splits: splits([0, 2, 3]) }, spec, 64);
    const b = examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_lengths: { dtype: "DT_INT32", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, int_val: Int32Array.of(2, 1) } }, spec, 64);
    expect(Array.from(a.cellOffsets!)).toEqual([0, 2, 3]);
    expect(Array.from(b.cellOffsets!)).toEqual([0, 2, 3]);
    expect(() => examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_row_splits: splits([0, 3, 2]) }, spec, 64)).toThrow(/feature_ids_row_splits must start at 0 and end at 3/);
    expect(() => examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_row_splits: splits([0, 3]) }, spec, 64)).toThrow(/must have shape \[3\]/);
    expect(() => examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_row_splits: splits([0, 2, 1, 3].slice(0, 3)) }, spec, 64)).toThrow(/end at 3/);
    // Lengths whose sum wraps around 2^32 to the ids given (5 + (2^32 - 2) = 3 in 32 bits): refused, not cells past the ids.
    const lengths = (v: number[]): TensorProtoMsg => ({ dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, uint64_val: BigUint64Array.from(v, BigInt) });
    expect(() => examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_lengths: lengths([5, 2 ** 32 - 2]) }, spec, 64)).toThrow("input feature_ids_lengths sums to 4294967299 ids, feature_ids holds 3");
    expect(Array.from(examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_lengths: lengths([0, 3]) }, spec, 64).cellOffsets!)).toEqual([0, 0, 3]);
  });

  it("DT_INT32 splits and lengths packed in tensor_content (as tf.make_tensor_proto writes them) read as their value lists do", () => {
    const values: TensorProtoMsg = { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 3 }] }, uint64_val: BigUint64Array.from([id(1, 1), id(1, 2), id(2, 1)], BigInt) };
    const denseT: TensorProtoMsg = { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: Float32Array.of(1, 2) };
    const packed = (v: number[], dim: number[]): TensorProtoMsg => ({ dtype: "DT_INT32", tensor_shape: { dim: dim.map((size) => ({ size })) }, tensor_content: Buffer.from(Int32Array.from(v).buffer) });
    expect(Array.from(examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_row_splits: packed([0, 2, 3], [3]) }, spec, 64).cellOffsets!)).toEqual([0, 2, 3]);
    expect(Array.from(examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_lengths: packed([2, 1], [1, 2]) }, spec, 64).cellOffsets!)).toEqual([0, 2, 3]);
    expect(() => examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_lengths: packed([4, -1], [1, 2]) }, spec, 64)).toThrow("input feature_ids_lengths entry 1 is -1: expected a non-negative integer");
    const short = { ...packed([0, 2, 3], [3]), tensor_content: Buffer.alloc(10) };
    expect(() => examplesFrom({ dense_features: denseT, feature_ids: values, feature_ids_row_splits: short }, spec, 64)).toThrow("input feature_ids_row_splits: tensor_content has 10 bytes for 3 DT_INT32 values");
  });
});
