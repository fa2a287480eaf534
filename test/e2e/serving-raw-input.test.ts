import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { startServer, type RunningServer } from "@pangea/rpc";
import { denseParams, dlrmSpec, type ModelSpec } from "@pangea/model";
import { bigIntToWords, hashedIdV2, int64IdV2 } from "@pangea/features";
import type { FastifyInstance } from "@pangea/observe";
import { CriteoTsvSource } from "../../services/compute/src/sources/criteo-tsv.js";
import { RecordBlock } from "../../services/compute/src/sources/source.js";
import { ModelManager } from "../../services/serving/src/model/model-manager.js";
import { MicroBatcher } from "../../services/serving/src/batching/micro-batcher.js";
import { startRest } from "../../services/serving/src/api/rest.js";
import { PREDICTION_SERVICE, addTfServing, tfServingServices } from "../../services/serving/src/api/tf-serving-grpc.js";
import { SPEC as SMALL_SPEC, writeVersion, writeModel } from "../../services/serving/test/support/versions.js";
import { ENTRY, runNode } from "../support/processes.js";

/**
 * Raw feature values at serving's Predict (REST and gRPC, real servers on
 * port 0): a Criteo row's own fields predict exactly what the ids compute's
 * TSV reader makes of the same row predict; named features of an exported
 * feature list likewise; bad raw input is refused naming the input and what
 * was expected.
 *
 * Versions: 1 = a Criteo-shaped model exported without a feature list, 2 = a
 * model exported with a feature list, 3 = a small model with neither.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-raw-"));
const base = join(tmp, "models");
const models = new ModelManager("ctr", base, 3, createLogger("serving-test", "silent"));
const batcher = new MicroBatcher(0, 64);
let rest: { app: FastifyInstance; address: string };
let grpcServer: RunningServer;

// Two Criteo rows (label, I1..I13, C1..C26) with empty fields, a negative count and a non-ASCII token.
const ROWS = [
  ["1", "5", "", "-2", "0", "123456", "7", "", "1", "0", "3", "", "2", "44",
    "68fd1e64", "80e26c9b", "", "fb936136", "7b4723c4", "25c83c98", "7e0ccccf", "de7995b8", "1f89b562", "a73ee510",
    "a8cd5504", "b2cb9c98", "37c9c164", "2824a5f6", "1adce6ef", "8ba8b39a", "891b62e7", "e5ba7672", "f54016b9", "21ddcdc9",
    "b1252a9d", "07b5194c", "", "3a171ecb", "c5c50484", "café"],
  ["0", "", "0", "14", "", "2", "", "0", "3", "", "", "1", "", "",
    "05db9164", "207b2d81", "d52980aa", "b66d15e3", "25c83c98", "", "6f6d9be8", "0b153874", "a73ee510", "3b08e48b",
    "755e4a50", "", "5978055e", "07d13a8f", "5a4bb5f6", "", "cfef1c29", "07c540c4", "", "", "5a6d3e1e", "b1252a9d",
    "", "32c7478e", "", ""],
];
const spec = dlrmSpec(13, 26, 4, [8, 4], [8]);
const SLOTS = Array.from({ length: 26 }, (_, k) => k + 1);
/** What compute's --format criteo reader makes of ROWS: normalised dense values and one id per slot. */
let computed: { dense: number[][]; ids: string[][] };

const wave = (n: number, scale: number, phase: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + phase) * scale);
const denseCount = (s: ModelSpec) => denseParams(s).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);

/** Tables holding a row for each given id of each slot (and one other id), every row different. */
function tablesFor(slots: number[], idsOf: (column: number) => bigint[], dim: number) {
  return slots.map((slot, column) => {
    const ids = [...new Set([...idsOf(column), (BigInt(slot) << 48n) | 12345n])];
    const words = new Uint32Array(ids.length * 2);
    ids.forEach((id, i) => bigIntToWords(id, words, 2 * i));
    return { slot, ids: words, rows: wave(ids.length * dim, 0.8, column) };
  });
}

// Version 2's feature list: a string, an int64 and an id feature, a log1p count and a two-value float.
const LIST = {
  slots: [
    { name: "user", slot: 5, type: "bytes" },
    { name: "item", slot: 7, type: "int64" },
    { name: "ctx", slot: 9, type: "fid_v2" },
  ],
  dense: [
    { name: "clicks", size: 1, transform: "log1p" },
    { name: "pos", size: 2 },
  ],
};
const listSpec = dlrmSpec(3, 3, 4, [4], []);
const CTX_ID = (9n << 48n) | 777n;
const ITEM = 123456789012n;

/** The ids training gives version 2's raw values, from the shared hashing compute's decoders call. */
function listIds(user: string, item: bigint): bigint[] {
  const w = new Uint32Array(2);
  const asId = () => (BigInt(w[1]!) << 32n) | BigInt(w[0]!);
  const b = Buffer.from(user);
  hashedIdV2(b, 0, b.length, 5, w, 0);
  const u = asId();
  bigIntToWords(item, w, 0);
  int64IdV2(w[0]!, w[1]!, 7, w, 0);
  return [u, asId(), CTX_ID];
}

beforeAll(async () => {
  const tsv = join(tmp, "rows.tsv");
  writeFileSync(tsv, ROWS.map((r) => r.join("\t")).join("\n") + "\n");
  const source = await CriteoTsvSource.open({ paths: [tsv], evalFraction: 0 });
  const block = new RecordBlock(2, 13, 26);
  source.read("train", 0, 2, block);
  const id = (e: number, s: number) => (BigInt(block.idWords[2 * (e * 26 + s) + 1]!) << 32n) | BigInt(block.idWords[2 * (e * 26 + s)]!);
  computed = {
    dense: [0, 1].map((e) => Array.from(block.dense.subarray(e * 13, (e + 1) * 13))),
    ids: [0, 1].map((e) => SLOTS.map((_, s) => id(e, s).toString())),
  };
  writeModel(base, 1, { spec, slotIds: SLOTS, dense: wave(denseCount(spec), 0.3, 0), tables: tablesFor(SLOTS, (s) => [id(0, s), id(1, s)], 4) });
  writeModel(base, 2, {
    spec: listSpec,
    slotIds: [5, 7, 9],
    dense: wave(denseCount(listSpec), 0.4, 1),
    tables: tablesFor([5, 7, 9], (c) => [listIds("u-42", ITEM)[c]!], 4),
    featureList: { name: "feature_list.json", text: JSON.stringify(LIST) },
  });
  writeVersion(base, 3);
  models.scan();
  expect(models.versions("ctr").map((v) => `${v.version}:${v.state}:${v.error ?? ""}`)).toEqual(["1:AVAILABLE:", "2:AVAILABLE:", "3:AVAILABLE:"]);
  rest = await startRest("127.0.0.1", 0, models, batcher, 64);
  grpcServer = await startServer("127.0.0.1", 0, (s) => addTfServing(s, models, batcher, 64), [PREDICTION_SERVICE]);
});

afterAll(async () => {
  await rest?.app.close();
  await grpcServer?.shutdown(100);
});

async function restPredict(version: number, body: unknown): Promise<{ status: number; json: { error?: string; predictions?: number[]; outputs?: { probabilities: number[] } } }> {
  // A string is sent as it is: JSON that JSON.stringify cannot write (a number of 400 digits).
  const res = await fetch(`http://${rest.address}/v1/models/ctr/versions/${version}:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as { error?: string } };
}

type Tensor = Record<string, unknown>;
const strings = (rows: string[][]): Tensor => ({ dtype: "DT_STRING", tensor_shape: { dim: [{ size: rows.length }, { size: rows[0]!.length }] }, string_val: rows.flat().map((s) => Buffer.from(s)) });
const column = (dtype: string, field: string, values: unknown[]): Tensor => ({ dtype, tensor_shape: { dim: [{ size: values.length }] }, [field]: values });

function grpcPredict(version: number, inputs: Record<string, Tensor>): Promise<number[]> {
  const P = grpc.makeGenericClientConstructor(tfServingServices().prediction.service, "PredictionService");
  const client = new P(grpcServer.address, grpc.credentials.createInsecure()) as unknown as Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: { outputs: { probabilities: { float_val: number[] } } }) => void) => void> & grpc.Client;
  return new Promise<number[]>((resolve, reject) =>
    client.Predict!({ model_spec: { name: "ctr", version: { value: String(version) } }, inputs }, (err, res) => (err ? reject(err) : resolve(res.outputs.probabilities.float_val))),
  ).finally(() => client.close());
}

const dense = (r: string[]) => r.slice(1, 14);
const tokens = (r: string[]) => r.slice(14);
const named = (r: string[]) => Object.fromEntries([...dense(r).map((v, k) => [`I${k + 1}`, v]), ...tokens(r).map((v, k) => [`C${k + 1}`, v])]);

describe("a raw Criteo row (a version exported without a feature list: compute's --format criteo layout)", () => {
  let viaIds: number[];

  beforeAll(async () => {
    const r = await restPredict(1, { instances: [0, 1].map((e) => ({ dense_features: computed.dense[e], feature_ids: computed.ids[e] })) });
    expect(r.status).toBe(200);
    viaIds = r.json.predictions!;
    expect(viaIds).toHaveLength(2);
    expect(viaIds[0]).not.toBe(viaIds[1]);
  });

  it("REST, features named I1..I13, C1..C26 with the row's own text: exactly the ids' predictions", async () => {
    const r = await restPredict(1, { instances: ROWS.map(named) });
    expect(r.status).toBe(200);
    expect(r.json.predictions).toEqual(viaIds);
  });

  it("REST, counts as JSON integers (null = missing) and columnar: the same", async () => {
    const asInts = ROWS.map((row) => Object.fromEntries(Object.entries(named(row)).map(([k, v]) => [k, k.startsWith("I") ? (v === "" ? null : Number(v)) : v])));
    const r = await restPredict(1, { inputs: Object.fromEntries(Object.keys(asInts[0]!).map((k) => [k, asInts.map((x) => x[k])])) });
    expect(r.status).toBe(200);
    expect(r.json.outputs!.probabilities).toEqual(viaIds);
  });

  it("REST: a count past 2^53 as a JSON number is taken as its digits are (it was refused as 'expected an integer count', its string taken)", async () => {
    const big = (I1: unknown) => restPredict(1, { instances: [{ ...named(ROWS[0]!), I1 }] });
    const [asNumber, asText] = await Promise.all([big(123456789012345678901234567890), big("123456789012345678901234567890")]);
    expect([asNumber.status, asText.status]).toEqual([200, 200]);
    expect(asNumber.json.predictions).toEqual(asText.json.predictions);
  });

  it("REST: a value as {\"b64\": ...} is its bytes, as gRPC's DT_STRING value is: the row's own token so written predicts what it does, and a token that is not UTF-8 what gRPC's bytes do", async () => {
    const b64 = (b: Buffer) => ({ b64: b.toString("base64") });
    const own = await restPredict(1, { instances: ROWS.map((r) => ({ ...named(r), C1: b64(Buffer.from(tokens(r)[0]!)) })) });
    expect([own.status, own.json.predictions]).toEqual([200, viaIds]);
    const notUtf8 = Buffer.from([0xff, 0x41, 0xfe]);
    const rest = await restPredict(1, { instances: [{ ...named(ROWS[0]!), C1: b64(notUtf8) }] });
    expect(rest.status).toBe(200);
    const byName: Record<string, Tensor> = {};
    for (let k = 0; k < 13; k++) byName[`I${k + 1}`] = column("DT_STRING", "string_val", [Buffer.from(dense(ROWS[0]!)[k]!)]);
    for (let k = 0; k < 26; k++) byName[`C${k + 1}`] = column("DT_STRING", "string_val", [k === 0 ? notUtf8 : Buffer.from(tokens(ROWS[0]!)[k]!)]);
    const viaGrpc = await grpcPredict(1, byName);
    expect(rest.json.predictions!.map((p) => Math.fround(p))).toEqual(viaGrpc);
    expect(rest.json.predictions![0]).not.toBe(viaIds[0]);
    const broken = await restPredict(1, { instances: [{ ...named(ROWS[0]!), C1: { b64: "not base64!" } }] });
    expect([broken.status, broken.json.error]).toEqual([400, expect.stringContaining('input C1, example 0: "b64" holds 11 characters that are not base64')]);
  });

  it("REST, by position (dense_values, slot_values): the same", async () => {
    const r = await restPredict(1, { instances: ROWS.map((row) => ({ dense_values: dense(row), slot_values: tokens(row) })) });
    expect(r.status).toBe(200);
    expect(r.json.predictions).toEqual(viaIds);
  });

  it("gRPC: ids, positional DT_STRING values and named features all predict the same", async () => {
    const ids = await grpcPredict(1, {
      dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 2 }, { size: 13 }] }, float_val: computed.dense.flat() },
      feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: 2 }, { size: 26 }] }, uint64_val: computed.ids.flat() },
    });
    expect(ids).toEqual(viaIds.map((p) => Math.fround(p)));
    expect(await grpcPredict(1, { dense_values: strings(ROWS.map(dense)), slot_values: strings(ROWS.map(tokens)) })).toEqual(ids);
    const byName: Record<string, Tensor> = {};
    for (let k = 0; k < 13; k++) byName[`I${k + 1}`] = column("DT_STRING", "string_val", ROWS.map((r) => Buffer.from(dense(r)[k]!)));
    for (let k = 0; k < 26; k++) byName[`C${k + 1}`] = column("DT_STRING", "string_val", ROWS.map((r) => Buffer.from(tokens(r)[k]!)));
    expect(await grpcPredict(1, byName)).toEqual(ids);
    // Counts as packed DT_INT64 (an empty field is a missing count, 0).
    const counts = BigInt64Array.from(ROWS.flatMap((r) => dense(r).map((v) => BigInt(v === "" ? 0 : Number(v)))));
    const packed = { dtype: "DT_INT64", tensor_shape: { dim: [{ size: 2 }, { size: 13 }] }, tensor_content: Buffer.from(counts.buffer) };
    expect(await grpcPredict(1, { dense_values: packed, slot_values: strings(ROWS.map(tokens)) })).toEqual(ids);
  });
});

describe("named features of the feature list a version was exported with", () => {
  it("REST and gRPC: a string, an int64, an id and dense values predict what their ids do", async () => {
    const [u, i, c] = listIds("u-42", ITEM);
    const denseFeatures = [Math.fround(Math.log1p(3)), 0.5, -2];
    const viaIds = await restPredict(2, { instances: [{ dense_features: denseFeatures, feature_ids: [u!.toString(), i!.toString(), c!.toString()] }] });
    expect(viaIds.status).toBe(200);
    const raw = await restPredict(2, { instances: [{ user: "u-42", item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [0.5, -2] }] });
    expect(raw.status).toBe(200);
    expect(raw.json.predictions).toEqual(viaIds.json.predictions);
    const viaGrpc = await grpcPredict(2, {
      user: column("DT_STRING", "string_val", [Buffer.from("u-42")]),
      item: column("DT_INT64", "int64_val", [ITEM.toString()]),
      ctx: column("DT_UINT64", "uint64_val", [CTX_ID.toString()]),
      clicks: column("DT_INT64", "int64_val", ["3"]),
      pos: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }, { size: 2 }] }, float_val: [0.5, -2] },
    });
    expect(viaGrpc).toEqual(viaIds.json.predictions!.map((p) => Math.fround(p)));
  });
});

describe("pangea predict with raw values (REST's JSON forms, sent over gRPC)", () => {
  const predict = async (version: number, body: unknown) => {
    const file = join(tmp, `predict-${Math.random().toString(36).slice(2)}.json`);
    // JSON.stringify cannot write a number past a double's range: put in as text.
    writeFileSync(file, JSON.stringify(body).replace('"__HUGE__"', "1e400"));
    const r = await runNode(ENTRY.cli, ["predict", "--address", grpcServer.address, "--model", "ctr", "--version", String(version), "--input", file]);
    return { code: r.code, predictions: r.code === 0 ? (JSON.parse(r.stdout) as { predictions: number[] }).predictions : null, stderr: r.stderr.trim() };
  };

  it("Criteo rows by name (their own text, and counts as integers by column) and a feature list's features predict what their ids do", async () => {
    const viaIds = await restPredict(1, { instances: [0, 1].map((e) => ({ dense_features: computed.dense[e], feature_ids: computed.ids[e] })) });
    const expected = viaIds.json.predictions!.map((p) => Math.fround(p));
    expect(await predict(1, { instances: ROWS.map(named) })).toEqual({ code: 0, predictions: expected, stderr: "" });
    // Columnar, counts as JSON integers where the row has one and "" where it has none.
    const asInts = ROWS.map((row) => Object.fromEntries(Object.entries(named(row)).map(([k, v]) => [k, k.startsWith("I") && v !== "" ? Number(v) : v])));
    expect(await predict(1, { inputs: Object.fromEntries(Object.keys(asInts[0]!).map((k) => [k, asInts.map((x) => x[k])])) })).toEqual({ code: 0, predictions: expected, stderr: "" });
    const [u, i, c] = listIds("u-42", ITEM);
    const listIdsWay = await restPredict(2, { instances: [{ dense_features: [Math.fround(Math.log1p(3)), 0.5, -2], feature_ids: [u!.toString(), i!.toString(), c!.toString()] }] });
    const listExpected = { code: 0, predictions: listIdsWay.json.predictions!.map((p) => Math.fround(p)), stderr: "" };
    expect(await predict(2, { instances: [{ user: "u-42", item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [0.5, -2] }] })).toEqual(listExpected);
    // A lone value beside lists of one is a list of one; a feature named "__proto__" is one like any other (it was dropped).
    expect(await predict(2, { instances: [{ user: ["u-42"], item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [0.5, -2] }] })).toEqual(listExpected);
    const proto = await predict(2, JSON.parse(`{"instances": [{"user": "u-42", "item": ${ITEM}, "ctx": "${CTX_ID}", "clicks": 3, "pos": [0.5, -2], "__proto__": "x"}]}`));
    expect([proto.code, proto.stderr]).toEqual([2, expect.stringContaining("__proto__")]);
    // [] in every example is missing there, as REST reads it (the command had refused it): left out of the request.
    const withoutPos = await restPredict(2, { instances: [{ user: "u-42", item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [] }] });
    expect(withoutPos.status).toBe(200);
    const emptyPos = await predict(2, { instances: [{ user: "u-42", item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [] }] });
    expect(emptyPos).toEqual({ code: 0, predictions: withoutPos.json.predictions!.map((p) => Math.fround(p)), stderr: "" });
    expect(emptyPos.predictions).not.toEqual(listExpected.predictions);
  });

  it("examples giving a feature different numbers of values (lists of other lengths, a null, the feature left out) go ragged and predict what REST predicts for the same JSON", async () => {
    const rows = [
      { user: ["u-42", "u-7"], item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [0.5, -2] },
      { user: "u-42", item: Number(ITEM), ctx: CTX_ID.toString(), clicks: null, pos: [0.5] },
      { item: Number(ITEM), ctx: CTX_ID.toString(), clicks: 3, pos: [0.5, -2] },
      { user: [], item: Number(ITEM), ctx: [CTX_ID.toString(), CTX_ID.toString()], clicks: 3, pos: null },
    ];
    const viaRest = await restPredict(2, { instances: rows });
    expect(viaRest.status).toBe(200);
    const expected = viaRest.json.predictions!.map((p) => Math.fround(p));
    // Each example's change moves its prediction: a value read into another example would show.
    expect(new Set(expected).size).toBe(rows.length);
    expect(await predict(2, { instances: rows })).toEqual({ code: 0, predictions: expected, stderr: "" });
    const columns = Object.fromEntries(["user", "item", "ctx", "clicks", "pos"].map((k) => [k, rows.map((r) => (r as Record<string, unknown>)[k] ?? null)]));
    expect(await predict(2, { inputs: columns })).toEqual({ code: 0, predictions: expected, stderr: "" });
    // Criteo's rows: a count given as null and a token left out.
    const criteoRows = [{ ...named(ROWS[0]!), I2: null }, Object.fromEntries(Object.entries(named(ROWS[1]!)).filter(([k]) => k !== "C7"))];
    const criteoRest = await restPredict(1, { instances: criteoRows });
    expect(criteoRest.status).toBe(200);
    expect(await predict(1, { instances: criteoRows })).toEqual({ code: 0, predictions: criteoRest.json.predictions!.map((p) => Math.fround(p)), stderr: "" });
  });

  it.each([
    ["a key named as another's ragged rows", { instances: [{ ...named(ROWS[0]!), C1_lengths: 0 }] }, `pangea predict: invalid --input: "C1_lengths" beside "C1" would be read over gRPC as the rows of "C1" (serving's ragged form); for a feature of that name send the examples to serving's REST API (curl -d @file http://<rest address>/v1/models/<name>:predict)`],
    ["a null in a list", { instances: [{ ...named(ROWS[0]!), C2: ["x", null] }] }, `pangea predict: invalid --input: feature "C2" of example 0 has a null in its list, which a gRPC tensor cannot carry (a null for the whole feature is sent as no values); serving's REST API reads it as missing (curl -d @file http://<rest address>/v1/models/<name>:predict)`],
    ["positional values of different lengths", { instances: [{ dense_values: dense(ROWS[0]!), slot_values: tokens(ROWS[0]!) }, { dense_values: dense(ROWS[1]!).slice(1), slot_values: tokens(ROWS[1]!) }] }, `pangea predict: invalid --input: dense_values of example 1 has 12 values, example 0 13; by position every example gives every value (a missing one as null is for serving's REST API: curl -d @file http://<rest address>/v1/models/<name>:predict)`],
    ["strings and numbers in one feature", { instances: [named(ROWS[0]!), { ...named(ROWS[1]!), C1: 5 }] }, `pangea predict: invalid --input: feature "C1" mixes strings and numbers, which one gRPC tensor cannot carry (only "" beside whole numbers, as missing counts); give all as strings or all as numbers, or send the examples to serving's REST API (curl -d @file http://<rest address>/v1/models/<name>:predict)`],
    ["a number past a double's range", { instances: [{ ...named(ROWS[0]!), I1: "__HUGE__" }] }, `pangea predict: invalid --input: feature "I1" of example 0 is a number beyond a double's range (JSON reads it as Infinity)`],
    ["instances of no input", { instances: [{}] }, "pangea predict: invalid --input: the instances name no inputs; give dense_features and feature_ids, or raw feature values by name"],
    ["no examples", { instances: [] }, "pangea predict: invalid --input: no examples; give at least one"],
    ["raw values beside the ids' inputs", { instances: [{ dense_features: [1], feature_ids: [1], I1: 5 }] }, `pangea predict: invalid --input: "I1" beside dense_features and feature_ids; give the ids' two inputs or raw feature values by name, not both`],
  ])("%s: refused by the command, exit 2, one line naming the feature", async (_what, body, message) => {
    const r = await predict(1, body);
    expect([r.code, r.stderr.split("\n")[0]]).toEqual([2, message]);
  });

  it("[] for a name serving does not know, or for dense_values, is serving's refusal as over REST (the command had left it out and predicted)", async () => {
    const typo = await predict(1, { instances: [{ ...named(ROWS[0]!), C1_typo: [] }] });
    expect([typo.code, typo.stderr]).toEqual([2, expect.stringContaining('unknown input "C1_typo"')]);
    const dense = await predict(1, { instances: [{ dense_values: [], slot_values: tokens(ROWS[0]!) }] });
    expect([dense.code, dense.stderr]).toEqual([2, expect.stringContaining("input dense_values, example 0: expected 13 values")]);
  });

  it("a value serving refuses (a fraction for a Criteo count) is serving's INVALID_ARGUMENT, exit 2, naming the input", async () => {
    const r = await predict(1, { instances: [{ ...named(ROWS[0]!), I4: 1.5 }] });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('input I4, example 0: expected an integer count (or "" or null for missing), got 1.5');
  });
});

describe("bad raw input: 400 over REST, INVALID_ARGUMENT over gRPC, one line naming the input and what was expected", () => {
  const criteo = (change: Record<string, unknown>) => ({ ...named(ROWS[0]!), ...change });
  it.each([
    ["a count that is not an integer", 1, { instances: [criteo({ I4: "1.5" })] }, 'input I4, example 0: expected an integer count (or "" or null for missing), got "1.5"'],
    // Counts and values past float32's range had become Infinity in the forward pass and a made-up probability.
    ["a count of 400 digits", 1, { instances: [criteo({ I1: `1${"0".repeat(399)}` })] }, `input I1, example 0: "1${"0".repeat(63)}… (336 more chars)" is too large a count (it reads as Infinity)`],
    ["a count of 400 digits as a JSON number", 1, `{"instances":[${JSON.stringify(criteo({ I1: 0 })).replace('"I1":0', `"I1":1${"0".repeat(399)}`)}]}`, "input I1, example 0: Infinity is too large a count (it reads as Infinity)"],
    ["a number for a token", 1, { instances: [criteo({ C3: 7 })] }, "input C3, example 0: expected a string (its bytes are hashed), got 7"],
    ["two values for a one-value dense feature", 1, { instances: [criteo({ I1: [1, 2] })] }, "input I1, example 0: expected at most 1 value, got 2"],
    ["a row of 25 slot values", 1, { instances: [{ slot_values: tokens(ROWS[0]!).slice(1) }] }, `input slot_values, example 0: expected 26 values, one per slot (${SLOTS.map((s) => `C${s}`).join(", ")}), got 25`],
    ["positional and named mixed", 1, { instances: [{ dense_values: dense(ROWS[0]!), C1: "x" }] }, "dense_values give raw values by position and cannot be mixed with features by name; got dense_values, C1"],
    ["columns of different lengths", 1, { inputs: { I1: [1, 2], C1: ["a"] } }, "raw inputs disagree on the batch size: I1 has 2 examples, C1 has 1"],
    ["a name the layout lacks", 1, { instances: [criteo({ C27: "x" })] },
      `unknown input "C27": expected dense_features [B, 13] and feature_ids [B, 26], one of instances, examples, example_batch, or raw values of Criteo's layout (I1..I13, C1..C26): dense_values [B, 13] and slot_values [B, 26], or features by name (C1, C2, C3, C4, C5, C6, C7, C8, ... 39 in all)`],
    ["a word for an int64 feature", 2, { instances: [{ item: "abc" }] }, 'input item, example 0: expected an integer (its 8 bytes are hashed); above 2^53 as a decimal string, got "abc"'],
    // Integers that are no 64-bit ones say so, not that an integer was expected.
    ["an int64 past 2^64, as a string", 2, { instances: [{ item: "18446744073709551616" }] }, 'input item, example 0: "18446744073709551616" is outside the 64-bit range (-2^63 .. 2^64-1)'],
    ["an int64 of 30 digits", 2, { instances: [{ item: "9".repeat(30) }] }, `input item, example 0: "${"9".repeat(30)}" is outside the 64-bit range (-2^63 .. 2^64-1)`],
    ["an int64 of 300 digits, as a JSON number", 2, { instances: [{ item: 1e300 }] }, "input item, example 0: 1e+300 is outside the 64-bit range (-2^63 .. 2^64-1)"],
    ["an int64 past 2^53, as a JSON number", 2, { instances: [{ item: 2 ** 60 }] }, "input item, example 0: 1152921504606847000 is beyond ±2^53, where a JSON number has lost its last digits: give it as a decimal string"],
    ["an id with the reserved bit", 2, { instances: [{ ctx: (1n << 63n).toString() }] }, "input ctx, example 0: fid 9223372036854775808 has the reserved top bit set, which no v2 fid may"],
    ["a dense value that is not a number", 2, { instances: [{ pos: [1, "x"] }] }, 'input pos, example 0: expected a finite number (or null for missing), got "x"'],
    // A JSON string is no number even when it reads as one (TF Serving's REST refuses a string for a DT_FLOAT input).
    ["a dense value past float32's range", 2, { instances: [{ pos: [1, 1e39] }] }, "input pos, example 0: 1e+39 is beyond float32's range (about ±3.4e38), which the model takes"],
    ["a dense value given as a string of digits", 2, { instances: [{ pos: [1, "5"] }] }, 'input pos, example 0: expected a finite number (or null for missing), got "5"'],
    // Each character escaped once: the newline had come back as \\n (printable's escape, then JSON's of its backslash).
    ["a dense value with a newline", 2, { instances: [{ pos: [1, "1\n2"] }] }, 'input pos, example 0: expected a finite number (or null for missing), got "1\\n2"'],
    ["a body with neither inputs nor instances", 1, {}, 'the body needs "inputs" {dense_features, feature_ids} or "instances" [{dense_features, feature_ids}], or the same with raw feature values'],
    ["a misspelt key", 1, { instancez: [criteo({})] }, 'unknown key "instancez" in the body; a predict body takes "instances" or "inputs", and optionally "signature_name"'],
    ["a key of neither kind, ignored as TF Serving ignores it", 1, { rows: [] }, 'the body needs "inputs" {dense_features, feature_ids} or "instances" [{dense_features, feature_ids}], or the same with raw feature values'],
    ["output_filter, which REST does not apply", 1, { instances: [criteo({})], output_filter: ["probabilities"] }, 'unknown key "output_filter" in the body; a predict body takes "instances" or "inputs", and optionally "signature_name" (output_filter is gRPC\'s; REST answers every output)'],
    ["an instance that is no object", 1, { instances: [criteo({}), 7] }, "instance 1 must be an object of named inputs, got a number"],
    ["instances that name no input", 1, { instances: [{}] }, "the instances name no inputs; expected dense_features and feature_ids, or the raw features the model was exported with"],
    ["inputs that are a list", 1, { inputs: [1] }, '"inputs" must be an object of named inputs, each a list with one entry per example; got a list'],
    ["a body that is a list", 1, [criteo({})], 'the body must be a JSON object with "instances" or "inputs", got a list'],
    ["raw values for a version that has no layout for them", 3, { instances: [{ C1: "x" }] },
      `unknown input "C1": expected dense_features [B, ${SMALL_SPEC.numDense}] and feature_ids [B, ${SMALL_SPEC.numSlots}], one of instances, examples, example_batch, or raw values (not for this version: it was exported without a feature list and is not laid out as Criteo's data, 13 dense values and slots 1-26)`],
  ])("%s", async (_what, version, body, message) => {
    const r = await restPredict(version, body);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(`SERVING_ERR_BAD_INPUT: ${message}`);
  });

  it("a body key of neither kind (Vertex AI's parameters, a client's own) is ignored, as TF Serving ignores it", async () => {
    const plain = await restPredict(1, { instances: [criteo({})] });
    const more = await restPredict(1, { instances: [criteo({})], parameters: { any: 1 }, request_id: "r1" });
    expect(more.status).toBe(200);
    expect(more.json.predictions).toEqual(plain.json.predictions);
  });

  it("a cell of more raw values than a cell of ids may hold: 413 naming input and example, as for ids", async () => {
    const r = await restPredict(1, { instances: [criteo({}), criteo({ C1: Array.from({ length: 4097 }, (_, k) => `v${k}`) })] });
    expect(r.status).toBe(413);
    expect(r.json.error).toBe("SERVING_ERR_TOO_LARGE: input C1, example 1 holds 4097 values; a cell takes at most 4096");
    // 4096 is taken.
    expect((await restPredict(1, { instances: [criteo({ C1: Array.from({ length: 4096 }, (_, k) => `v${k}`) })] })).status).toBe(200);
  });

  it.each([
    ["an unknown name, whatever its tensor", { x: { dtype: "DT_FLOAT" } },
      `unknown input "x": expected dense_features [B, 13] and feature_ids [B, 26], one of instances, examples, example_batch, or raw values of Criteo's layout (I1..I13, C1..C26): dense_values [B, 13] and slot_values [B, 26], or features by name (C1, C2, C3, C4, C5, C6, C7, C8, ... 39 in all)`],
    ["a dtype raw values never have", { C1: column("DT_BOOL", "bool_val", [true]) }, "input C1 must be DT_STRING, DT_INT64, DT_UINT64, DT_INT32, DT_FLOAT or DT_DOUBLE raw values, got DT_BOOL"],
    ["a count that is not an integer", { I4: column("DT_FLOAT", "float_val", [1.5]) }, 'input I4, example 0: expected an integer count (or "" or null for missing), got 1.5'],
    ["a token given as an integer", { C2: column("DT_INT64", "int64_val", ["5"]) }, "input C2, example 0: expected a string (its bytes are hashed), got 5"],
    // A float rounds 16777217 to 16777216 in the client: another id, which nothing here could tell (it was taken).
    ["a slot's values as floats", { C1: column("DT_FLOAT", "float_val", [16777217]) }, "input C1 holds slot values, which must be DT_STRING (its bytes are hashed), got DT_FLOAT (a float rounds integers above 2^24, a double above 2^53, into other ids)"],
    ["slot_values as doubles", { slot_values: { dtype: "DT_DOUBLE", tensor_shape: { dim: [{ size: 1 }, { size: 26 }] }, double_val: new Array(26).fill(1) } }, "input slot_values holds slot values, which must be DT_STRING, or for int64 and fid slots DT_INT64, DT_UINT64 or DT_INT32, got DT_DOUBLE (a float rounds integers above 2^24, a double above 2^53, into other ids)"],
    ["dense_values of the wrong width", { dense_values: strings([["1", "2"]]) }, "input dense_values, example 0: expected 13 values (I1, I2, I3, I4, I5, I6, I7, I8, I9, I10, I11, I12, I13), got 2"],
    ["a shape of rank 3", { C1: { dtype: "DT_STRING", tensor_shape: { dim: [{ size: 1 }, { size: 1 }, { size: 1 }] }, string_val: [Buffer.from("a")] } }, "input C1 must have shape [B] or [B, k], got [1, 1, 1]"],
    // Counted against the shape before any value is made a JS value (packed bytes are not in the decoder's count).
    ["packed values more than the shape holds", { C1: { dtype: "DT_INT64", tensor_shape: { dim: [{ size: 1 }] }, tensor_content: Buffer.alloc(8 * 3) } }, "input C1: 3 values for shape [1]"],
    ["strings fewer than the shape holds", { C1: { dtype: "DT_STRING", tensor_shape: { dim: [{ size: 2 }] }, string_val: [Buffer.from("a")] } }, "input C1: 1 values for shape [2]"],
  ])("gRPC: %s", async (_what, inputs, message) => {
    await expect(grpcPredict(1, inputs)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: `SERVING_ERR_BAD_INPUT: ${message}` });
  });
});
