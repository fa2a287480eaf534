import type { DlrmSpec } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import type { Examples } from "../model/servable.js";
import type { FeatureList } from "@pangea/features";
import { SampleAssembler, WireError, decodeExample, decodeExampleBatch, decodeInstance } from "@pangea/monolith";

/** A TensorFlow TensorProto as proto-loader decodes it (keepCase, longs as strings, bytes as Buffers). */
export interface TensorProtoMsg {
  dtype?: string;
  tensor_shape?: { dim?: { size?: string | number }[]; unknown_rank?: boolean };
  tensor_content?: Buffer;
  float_val?: number[];
  double_val?: number[];
  int_val?: number[];
  int64_val?: (string | number)[];
  uint64_val?: (string | number)[];
  string_val?: Buffer[];
}

export const INPUT_DENSE = "dense_features";
export const INPUT_IDS = "feature_ids";
export const OUTPUT_PROBS = "probabilities";
/** Monolith inputs: serialized records, DT_STRING. */
export const INPUT_INSTANCES = "instances";
export const INPUT_EXAMPLES = "examples";
export const INPUT_EXAMPLE_BATCH = "example_batch";
const MONOLITH_INPUTS = [INPUT_INSTANCES, INPUT_EXAMPLES, INPUT_EXAMPLE_BATCH];

const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);

function shapeOf(t: TensorProtoMsg, name: string): number[] {
  if (t.tensor_shape?.unknown_rank) throw bad(`input ${name}: the shape must be known`);
  return (t.tensor_shape?.dim ?? []).map((d) => {
    const n = Number(d.size ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) throw bad(`input ${name}: dimension ${d.size} is not a size`);
    return n;
  });
}

function floatsOf(t: TensorProtoMsg, name: string, count: number): Float32Array {
  if (t.dtype !== "DT_FLOAT" && t.dtype !== "DT_DOUBLE") throw bad(`input ${name} must be DT_FLOAT, got ${t.dtype ?? "no dtype"}`);
  let out: Float32Array;
  if (t.tensor_content && t.tensor_content.length > 0) {
    const width = t.dtype === "DT_FLOAT" ? 4 : 8;
    if (t.tensor_content.length !== count * width) throw bad(`input ${name}: tensor_content has ${t.tensor_content.length} bytes for ${count} values`);
    const copy = Buffer.from(t.tensor_content);
    out = t.dtype === "DT_FLOAT" ? new Float32Array(copy.buffer, copy.byteOffset, count) : Float32Array.from(new Float64Array(copy.buffer, copy.byteOffset, count));
  } else {
    const vals = t.dtype === "DT_FLOAT" ? (t.float_val ?? []) : (t.double_val ?? []);
    if (vals.length !== count) throw bad(`input ${name}: ${vals.length} values for shape of ${count}`);
    out = Float32Array.from(vals);
  }
  for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i]!)) throw bad(`input ${name}: value ${i} is ${out[i]}`);
  return out;
}

/** 64-bit ids as (lo, hi) word pairs. */
function idsOf(t: TensorProtoMsg, name: string, count: number): Uint32Array {
  if (t.dtype !== "DT_INT64" && t.dtype !== "DT_UINT64") throw bad(`input ${name} must be DT_INT64 or DT_UINT64 feature ids, got ${t.dtype ?? "no dtype"}`);
  if (t.tensor_content && t.tensor_content.length > 0) {
    if (t.tensor_content.length !== count * 8) throw bad(`input ${name}: tensor_content has ${t.tensor_content.length} bytes for ${count} ids`);
    const copy = Buffer.from(t.tensor_content);
    return new Uint32Array(copy.buffer, copy.byteOffset, count * 2);
  }
  const vals = t.dtype === "DT_INT64" ? (t.int64_val ?? []) : (t.uint64_val ?? []);
  if (vals.length !== count) throw bad(`input ${name}: ${vals.length} ids for shape of ${count}`);
  const words = new Uint32Array(count * 2);
  vals.forEach((v, i) => {
    // int64 ids above 2^63 arrive negative; the bits are what matter.
    const x = BigInt.asUintN(64, BigInt(v));
    words[2 * i] = Number(x & 0xffffffffn);
    words[2 * i + 1] = Number(x >> 32n);
  });
  return words;
}

/**
 * The model's inputs from a request's named tensors: dense_features DT_FLOAT
 * [B, numDense] (normalised as in training: log(1 + count)) and feature_ids
 * DT_INT64/DT_UINT64 [B, numSlots], one feature id per slot in the model's
 * slot order (0 = missing).
 */
export function examplesFrom(inputs: Record<string, TensorProtoMsg>, spec: DlrmSpec, maxBatch: number, featureList: FeatureList | null = null): Examples {
  const names = Object.keys(inputs);
  const monolith = names.filter((n) => MONOLITH_INPUTS.includes(n));
  if (monolith.length) {
    if (names.length !== 1) throw bad(`a Monolith input (${monolith.join(", ")}) must come alone; got ${names.join(", ")}`);
    if (!featureList) throw bad(`input ${names[0]} needs a feature list to decode Monolith records; export the model with --feature-list`);
    return examplesFromMonolith(names[0]!, inputs[names[0]!]!, spec, maxBatch, featureList);
  }
  const unknown = names.filter((n) => n !== INPUT_DENSE && n !== INPUT_IDS);
  if (unknown.length || !inputs[INPUT_DENSE] || !inputs[INPUT_IDS]) {
    throw bad(`inputs must be exactly ${INPUT_DENSE} [B, ${spec.numDense}] and ${INPUT_IDS} [B, ${spec.numSlots}], or one of ${MONOLITH_INPUTS.join(", ")}; got ${names.length ? names.join(", ") : "none"}`);
  }
  const ds = shapeOf(inputs[INPUT_DENSE]!, INPUT_DENSE);
  const is = shapeOf(inputs[INPUT_IDS]!, INPUT_IDS);
  if (ds.length !== 2 || ds[1] !== spec.numDense) throw bad(`input ${INPUT_DENSE} must have shape [B, ${spec.numDense}], got [${ds.join(", ")}]`);
  if (is.length !== 2 || is[1] !== spec.numSlots) throw bad(`input ${INPUT_IDS} must have shape [B, ${spec.numSlots}], got [${is.join(", ")}]`);
  const B = ds[0]!;
  if (is[0] !== B) throw bad(`inputs disagree on the batch size: ${INPUT_DENSE} has ${B}, ${INPUT_IDS} has ${is[0]}`);
  if (B === 0) throw bad(`input ${INPUT_DENSE} has shape [0, ${spec.numDense}]: a request needs at least one example`);
  if (B > maxBatch) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `request carries ${B} examples; this server takes at most ${maxBatch} (--max-batch)`);
  return { count: B, dense: floatsOf(inputs[INPUT_DENSE]!, INPUT_DENSE, B * spec.numDense), idWords: idsOf(inputs[INPUT_IDS]!, INPUT_IDS, B * spec.numSlots) };
}

export function probabilitiesTensor(p: Float32Array): TensorProtoMsg {
  return { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: p.length }] }, float_val: Array.from(p) };
}

/**
 * Monolith records (Instance, Example, or one ExampleBatch) decoded with the
 * feature list the model was exported with, into ragged examples: each cell
 * keeps every id its record gives the slot, summed as in training.
 */
function examplesFromMonolith(name: string, t: TensorProtoMsg, spec: DlrmSpec, maxBatch: number, list: FeatureList): Examples {
  if (t.dtype !== "DT_STRING") throw bad(`input ${name} must be DT_STRING serialized records, got ${t.dtype ?? "no dtype"}`);
  const records = t.string_val ?? [];
  const shape = shapeOf(t, name);
  if (shape.length !== 1 || shape[0] !== records.length) throw bad(`input ${name} must have shape [${records.length}] for its ${records.length} records, got [${shape.join(", ")}]`);
  if (name === INPUT_EXAMPLE_BATCH && records.length !== 1) throw bad(`input ${name} takes one serialized ExampleBatch, got ${records.length}`);
  const S = spec.numSlots;
  const dense: number[] = [];
  const ids: number[] = [];
  const offsets: number[] = [0];
  const asm = new SampleAssembler(list);
  const take = () => {
    if (offsets.length - 1 >= maxBatch * S) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${name} carries more than ${maxBatch} examples (--max-batch)`);
    for (let d = 0; d < spec.numDense; d++) dense.push(asm.dense[d]!);
    for (let col = 0; col < S; col++) {
      for (let v = 0; v < asm.count; v++) if (asm.columns[v] === col) ids.push(asm.words[2 * v]!, asm.words[2 * v + 1]!);
      offsets.push(ids.length / 2);
    }
  };
  records.forEach((r, i) => {
    try {
      if (name === INPUT_EXAMPLE_BATCH) decodeExampleBatch(r, 0, r.length, asm, () => take(), maxBatch);
      else {
        asm.reset();
        if (name === INPUT_INSTANCES) decodeInstance(r, 0, r.length, asm);
        else decodeExample(r, 0, r.length, asm);
        take();
      }
    } catch (err) {
      if (err instanceof WireError) throw bad(`input ${name}, record ${i}: not a valid Monolith ${name === INPUT_INSTANCES ? "Instance" : name === INPUT_EXAMPLES ? "Example" : "ExampleBatch"}: ${err.message}`);
      throw err;
    }
  });
  const count = (offsets.length - 1) / S;
  if (count === 0) throw bad(`input ${name} holds no examples: a request needs at least one`);
  if (count > maxBatch) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `request carries ${count} examples; this server takes at most ${maxBatch} (--max-batch)`);
  return { count, dense: Float32Array.from(dense), idWords: Uint32Array.from(ids), cellOffsets: Uint32Array.from(offsets) };
}
