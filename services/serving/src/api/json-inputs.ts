import { jsonIdProblem, jsonIdText } from "@pangea/features";
import { kindOf, notANumberProblem, printableNames } from "@pangea/kit";
import { predictBodyProblem } from "@pangea/schema";
import { ServingErrors } from "../errors.js";
import type { Examples, Servable } from "../model/servable.js";
import type { RawColumn } from "./raw-features.js";
import { INPUT_DENSE, INPUT_EXAMPLE_BATCH, INPUT_IDS, INPUT_LENGTHS, MONOLITH_INPUTS, examplesFrom, examplesFromRaw, type TensorProtoMsg } from "./tensors.js";
import { checkBatchSize } from "./batch-size.js";

type Json = Record<string, unknown>;

/** JSON inputs in TensorFlow Serving's REST shapes: columnar {"inputs": {...}} or row {"instances": [{...}]}; `names`: jsonInputNames(body). */
function tensorsFromJson(body: Json, names: readonly string[], numDense: number, numSlots: number): Record<string, TensorProtoMsg> {
  const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);
  let dense: unknown[];
  let ids: unknown[];
  if (body.instances) {
    // Rows take the names "inputs" does: a key neither knows is a mistake to say, not to pass over.
    const extra = names.filter((k) => k !== INPUT_DENSE && k !== INPUT_IDS);
    if (extra.length) throw bad(`unknown inputs ${printableNames(extra)} in "instances"; expected ${INPUT_DENSE} and ${INPUT_IDS}`);
  }
  if (body.inputs && typeof body.inputs === "object") {
    const inputs = body.inputs as Json;
    const extra = Object.keys(inputs).filter((k) => k !== INPUT_DENSE && k !== INPUT_IDS);
    if (extra.length) throw bad(`unknown inputs ${printableNames(extra)}; expected ${INPUT_DENSE} and ${INPUT_IDS}`);
    const missing = [INPUT_DENSE, INPUT_IDS].filter((k) => inputs[k] === undefined);
    if (missing.length) throw bad(`"inputs" has no ${missing.join(" and no ")}; expected ${INPUT_DENSE} and ${INPUT_IDS}`);
    dense = inputs[INPUT_DENSE] as unknown[];
    ids = inputs[INPUT_IDS] as unknown[];
  } else {
    // examplesFromJson checked the body's shape: instances, a list of objects.
    const instances = body.instances as Json[];
    const lacking = instances.findIndex((r) => r[INPUT_DENSE] === undefined || r[INPUT_IDS] === undefined);
    if (lacking >= 0) {
      const missing = [INPUT_DENSE, INPUT_IDS].filter((k) => instances[lacking]![k] === undefined);
      throw bad(`instance ${lacking} has no ${missing.join(" and no ")}; every instance needs ${INPUT_DENSE} and ${INPUT_IDS}`);
    }
    dense = instances.map((r) => r[INPUT_DENSE]);
    ids = instances.map((r) => r[INPUT_IDS]);
  }
  if (!Array.isArray(dense) || !Array.isArray(ids)) throw bad(`${INPUT_DENSE} and ${INPUT_IDS} must be lists of rows`);
  const rows = (v: unknown[], width: number, name: string) =>
    v.map((r, i) => {
      if (!Array.isArray(r) || r.length !== width) throw bad(`${name} row ${i} must have ${width} values, got ${Array.isArray(r) ? `${r.length}` : kindOf(r)}`);
      return r;
    });
  const d = rows(dense, numDense, INPUT_DENSE);
  const f = rows(ids, numSlots, INPUT_IDS);
  // Said of the inputs the client sent (the ragged form's lengths tensor is this parser's, not theirs).
  if (d.length !== f.length) throw bad(`inputs disagree on the batch size: ${INPUT_DENSE} has ${d.length}, ${INPUT_IDS} has ${f.length}`);
  const id = (x: unknown, e: number, s: number): string => {
    const text = jsonIdText(x);
    if (text === null) throw bad(`${INPUT_IDS} row ${e} slot #${s}: ${jsonIdProblem(x)}`);
    return text;
  };
  d.forEach((r, i) =>
    r.forEach((x, j) => {
      const problem = notANumberProblem(x);
      if (problem) throw bad(`${INPUT_DENSE} row ${i} value ${j} ${problem}`);
    }),
  );
  const denseTensor: TensorProtoMsg = { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: d.length }, { size: numDense }] }, float_val: Float32Array.from(d.flat() as number[]) };
  // A cell given as a list holds several ids (pooled as its slot pools them): the ids go as ragged values with their lengths.
  if (f.some((r) => r.some(Array.isArray))) {
    const lengths: number[] = [];
    const values: string[] = [];
    f.forEach((r, e) =>
      r.forEach((cell, s) => {
        const cellIds = Array.isArray(cell) ? cell : [cell];
        lengths.push(cellIds.length);
        for (const x of cellIds) values.push(id(x, e, s));
      }),
    );
    return {
      [INPUT_DENSE]: denseTensor,
      [INPUT_IDS]: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: values.length }] }, uint64_val: BigUint64Array.from(values, BigInt) },
      [INPUT_LENGTHS]: { dtype: "DT_INT64", tensor_shape: { dim: [{ size: f.length }, { size: numSlots }] }, int64_val: BigInt64Array.from(lengths, BigInt) },
    };
  }
  return {
    [INPUT_DENSE]: denseTensor,
    [INPUT_IDS]: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: f.length }, { size: numSlots }] }, uint64_val: BigUint64Array.from(f.flatMap((r, e) => r.map((x, s) => id(x, e, s))), BigInt) },
  };
}

/** The input names a JSON body gives: the keys of "inputs", or of every row of "instances" (examplesFromJson checked their shape). */
function jsonInputNames(body: Json): string[] {
  if (body.inputs !== undefined) return Object.keys(body.inputs as Json);
  const names = new Set<string>();
  for (const r of body.instances as Json[]) for (const k of Object.keys(r)) names.add(k);
  return [...names];
}

/**
 * One raw input's values from JSON, per example: a list is that example's
 * values (a row for dense_values and slot_values), anything else its one
 * value; an input a row leaves out has none there.
 */
function rawColumnFromJson(body: Json, name: string, entries = "one entry per example"): RawColumn {
  const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);
  const valuesOf = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  if (body.inputs && typeof body.inputs === "object") {
    const col = (body.inputs as Json)[name];
    if (!Array.isArray(col)) throw bad(`input ${name} must be a list with ${entries}, got ${kindOf(col)}`);
    return col.map(valuesOf);
  }
  // examplesFromJson checked the body's shape: instances, a list of objects.
  return (body.instances as Json[]).map((r) => valuesOf(r[name]));
}

/** A base64 text as TF Serving's REST API writes binary values: standard alphabet, padded. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Raw values written as TF Serving's REST API writes binary ones, {"b64": "<base64>"}, as their bytes: what a gRPC
 * DT_STRING value is (a token that is not UTF-8, which JSON text cannot hold, is hashed as compute hashes it).
 */
function binaryValues(column: RawColumn, name: string): RawColumn {
  return column.map((values, e) =>
    values.map((v) => {
      const text = b64Text(v);
      return text === undefined ? v : b64Bytes(text, name, e);
    }),
  );
}

/** The text of a JSON value written {"b64": "<text>"} (that key alone, a string), or undefined. */
function b64Text(v: unknown): string | undefined {
  if (!v || typeof v !== "object" || Array.isArray(v) || Object.keys(v).length !== 1) return undefined;
  const text = (v as Json).b64;
  return typeof text === "string" ? text : undefined;
}

/** A "b64" value's bytes; refused naming the input and example when it is not base64. */
function b64Bytes(text: string, name: string, e: number): Buffer {
  if (!BASE64.test(text)) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `input ${name}, example ${e}: "b64" holds ${text.length} characters that are not base64 (A-Z, a-z, 0-9, + and /, padded with = to a multiple of 4)`);
  return Buffer.from(text, "base64");
}

/**
 * Serialized Monolith records over REST, as TF Serving's REST API carries
 * binary values: each example's value `{"b64": "<base64>"}`, in the columnar
 * ({"inputs": {"examples": [...]}}) or row ({"instances": [{"examples": ...}]}) form.
 */
function monolithTensorFromJson(body: Json, name: string): TensorProtoMsg {
  const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);
  // An ExampleBatch is one record however many examples it holds.
  const entries = name === INPUT_EXAMPLE_BATCH ? 'one entry, the serialized ExampleBatch as {"b64": "<base64>"}' : 'one entry per example, each a serialized record as {"b64": "<base64>"}';
  const records = rawColumnFromJson(body, name, entries).map((values, e) => {
    const text = values.length === 1 ? b64Text(values[0]) : undefined;
    if (text === undefined) throw bad(`input ${name}, example ${e}: expected one serialized record as {"b64": "<base64>"}, got ${values.length === 1 ? kindOf(values[0]) : `${values.length} values`}`);
    return b64Bytes(text, name, e);
  });
  return { dtype: "DT_STRING", tensor_shape: { dim: [{ size: records.length }] }, string_val: records };
}

/** A JSON body's examples: feature ids with dense features, or raw feature values. */
export function examplesFromJson(body: Json, servable: Servable, maxBatch: number): Examples {
  const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);
  const problem = predictBodyProblem(body, "REST");
  if (problem) throw bad(problem);
  const names = jsonInputNames(body);
  const { spec } = servable;
  const given = (body.instances as unknown[] | undefined)?.length ?? 1;
  // Said as given: an empty list reached the id form's check, which named an input the request never sent.
  if (given === 0) throw bad(`"instances" is empty: a request needs at least one example`);
  // Too many instances is said as such before their contents are looked at (a million empty objects were "no inputs").
  checkBatchSize(given, maxBatch);
  if (!names.length) throw bad(`the ${body.inputs !== undefined ? "inputs" : "instances"} name no inputs; expected ${INPUT_DENSE} and ${INPUT_IDS}${servable.rawLayout ? ", or the raw features the model was exported with" : ""}`);
  const monolith = names.find((n) => MONOLITH_INPUTS.includes(n));
  if (monolith !== undefined) {
    if (names.length !== 1) throw bad(`a Monolith input (${monolith}) must come alone; got ${printableNames(names)}`);
    return examplesFrom({ [monolith]: monolithTensorFromJson(body, monolith) }, spec, maxBatch, servable.featureList, servable.rawLayout);
  }
  if (names.length && !names.includes(INPUT_DENSE) && !names.includes(INPUT_IDS)) return examplesFromRaw(names, (n) => binaryValues(rawColumnFromJson(body, n), n), spec, maxBatch, servable.rawLayout);
  return examplesFrom(tensorsFromJson(body, names, spec.numDense, spec.numSlots), spec, maxBatch);
}
