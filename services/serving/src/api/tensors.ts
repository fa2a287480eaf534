import { printableNames } from "@pangea/kit";
import type { ModelShape } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import type { Examples } from "../model/servable.js";
import { MAX_IDS_PER_CELL, MAX_IDS_PER_REQUEST, RaggedExamples } from "./ragged-examples.js";
import { INPUT_DENSE_VALUES, INPUT_SLOT_VALUES, RawReader, isRawInput, type RawColumn } from "./raw-features.js";
import type { RawLayout } from "../model/raw-layout.js";
import { slotNamesOf, type FeatureList } from "@pangea/features";
import { BatchSizeError, SampleAssembler, WireError, decodeRecordOfKind, type MessageKind } from "@pangea/monolith";
import { checkBatchSize } from "./batch-size.js";

/**
 * A TensorFlow TensorProto's fields that inputs are read from, as
 * predict-request.ts decodes them (and json-inputs.ts builds them): values in
 * typed arrays, 64-bit integers in BigInt64Array/BigUint64Array (their memory
 * is the lo/hi word pairs ids are kept as), bytes as views.
 */
export interface TensorProtoMsg {
  dtype?: string;
  tensor_shape?: { dim?: { size?: string | number }[]; unknown_rank?: boolean };
  tensor_content?: Uint8Array;
  float_val?: Float32Array;
  double_val?: Float64Array;
  int_val?: Int32Array;
  int64_val?: BigInt64Array;
  uint64_val?: BigUint64Array;
  string_val?: Uint8Array[];
}

export const INPUT_DENSE = "dense_features";
export const INPUT_IDS = "feature_ids";
/** Ragged ids: feature_ids as the values [nnz] of all cells in order (example-major, then slot), with one of these. */
export const INPUT_ROW_SPLITS = "feature_ids_row_splits";
export const INPUT_LENGTHS = "feature_ids_lengths";
const RAGGED_INPUTS = [INPUT_ROW_SPLITS, INPUT_LENGTHS];
export { MAX_IDS_PER_CELL, MAX_IDS_PER_REQUEST };
export const OUTPUT_PROBS = "probabilities";
/** Monolith inputs: serialized records, DT_STRING. */
export const INPUT_INSTANCES = "instances";
export const INPUT_EXAMPLES = "examples";
export const INPUT_EXAMPLE_BATCH = "example_batch";
/** Each Monolith input's record kind, and the message's name. */
const MONOLITH_KINDS: Record<string, { kind: MessageKind; message: string }> = {
  [INPUT_INSTANCES]: { kind: "instance", message: "Instance" },
  [INPUT_EXAMPLES]: { kind: "example", message: "Example" },
  [INPUT_EXAMPLE_BATCH]: { kind: "examplebatch", message: "ExampleBatch" },
};
export const MONOLITH_INPUTS: readonly string[] = Object.keys(MONOLITH_KINDS);

const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);

function shapeOf(t: TensorProtoMsg, name: string): number[] {
  if (t.tensor_shape?.unknown_rank) throw bad(`input ${name}: the shape must be known`);
  return (t.tensor_shape?.dim ?? []).map((d) => {
    const n = Number(d.size ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) throw bad(`input ${name}: dimension ${d.size} is not a size`);
    return n;
  });
}

type ValueField = "float_val" | "double_val" | "int64_val" | "uint64_val";
const FLOAT_FIELDS: Readonly<Record<string, ValueField>> = { DT_FLOAT: "float_val", DT_DOUBLE: "double_val" };
const ID_FIELDS: Readonly<Record<string, ValueField>> = { DT_INT64: "int64_val", DT_UINT64: "uint64_val" };

/** The `count` values in the field of t's dtype (one of `fields`); values in another's field are named as the mistake. */
function typedValues<T extends { length: number }>(t: TensorProtoMsg, name: string, count: number, fields: Readonly<Record<string, ValueField>>, none: T): T {
  const field = fields[t.dtype!]!;
  const vals = (t[field] ?? none) as T;
  if (vals.length !== count) {
    const other = Object.values(fields).find((f) => f !== field && t[f]?.length);
    throw bad(`input ${name}: ${vals.length} values in ${field}, shape [${(t.tensor_shape?.dim ?? []).map((d) => Number(d.size ?? 0)).join(", ")}] needs ${count}${other ? ` (the values are in ${other}: a ${t.dtype} tensor takes ${field})` : ""}`);
  }
  return vals;
}

function floatsOf(t: TensorProtoMsg, name: string, count: number): Float32Array {
  if (t.dtype !== "DT_FLOAT" && t.dtype !== "DT_DOUBLE") throw bad(`input ${name} must be DT_FLOAT (or DT_DOUBLE), got ${t.dtype ?? "no dtype"}`);
  let out: Float32Array;
  if (t.tensor_content && t.tensor_content.length > 0) {
    const width = t.dtype === "DT_FLOAT" ? 4 : 8;
    if (t.tensor_content.length !== count * width) throw bad(`input ${name}: tensor_content has ${t.tensor_content.length} bytes for ${count} values`);
    const copy = Buffer.from(t.tensor_content);
    out = t.dtype === "DT_FLOAT" ? new Float32Array(copy.buffer, copy.byteOffset, count) : Float32Array.from(new Float64Array(copy.buffer, copy.byteOffset, count));
  } else {
    out = Float32Array.from(typedValues<Float32Array | Float64Array>(t, name, count, FLOAT_FIELDS, new Float32Array(0)));
  }
  for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i]!)) throw bad(`input ${name}: the value at flat index ${i} is not a finite 32-bit float (${out[i]}; values beyond ±3.4e38 become Infinity)`);
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
  // int64 ids above 2^63 arrive negative; the bits are what matter, and a 64-bit array's memory is its lo/hi words.
  const vals = typedValues<BigInt64Array | BigUint64Array>(t, name, count, ID_FIELDS, new BigUint64Array(0));
  return new Uint32Array(vals.buffer, vals.byteOffset, count * 2);
}

/**
 * The model's inputs from a request's named tensors: dense_features DT_FLOAT
 * [B, numDense] (normalised as in training: log(1 + count)) and feature_ids
 * DT_INT64/DT_UINT64 [B, numSlots], one feature id per slot in the model's
 * slot order (0 = missing); or Monolith records; or raw feature values,
 * hashed here as training hashes them (see raw-features.ts).
 */
export function examplesFrom(inputs: Record<string, TensorProtoMsg>, spec: ModelShape, maxBatch: number, featureList: FeatureList | null = null, rawLayout: RawLayout | null = null): Examples {
  const names = Object.keys(inputs);
  const monolith = names.filter((n) => MONOLITH_INPUTS.includes(n));
  if (monolith.length) {
    if (names.length !== 1) throw bad(`a Monolith input (${monolith.join(", ")}) must come alone; got ${names.join(", ")}`);
    if (!featureList) throw bad(`input ${names[0]} needs a feature list to decode Monolith records; export the model with --feature-list`);
    return examplesFromMonolith(names[0]!, inputs[names[0]!]!, spec, maxBatch, featureList);
  }
  if (names.length && !names.includes(INPUT_DENSE) && !names.includes(INPUT_IDS)) {
    // What a slot input's values may be, for its refusal of floats: a named slot's by its kind, slot_values' any slot's.
    const slotTypes = (n: string): string | null => {
      if (n === INPUT_SLOT_VALUES) return "DT_STRING, or for int64 and fid slots DT_INT64, DT_UINT64 or DT_INT32";
      const kind = rawLayout?.list.slotByName.get(n)?.kind;
      if (!kind) return null;
      return kind === "bytes" ? "DT_STRING (its bytes are hashed)" : "DT_INT64, DT_UINT64, DT_INT32 or decimal DT_STRING";
    };
    const companions = raggedCompanions(names, (n) => rawLayout !== null && isRawInput(rawLayout, n));
    const features = names.filter((n) => !companions.has(n));
    const companionOf = new Map([...companions].map(([c, feature]) => [feature, c]));
    return examplesFromRaw(features, (n) => {
      const c = companionOf.get(n);
      return c ? raggedColumnOf(inputs[n]!, n, slotTypes(n), inputs[c]!, c, maxBatch) : rawColumnOf(inputs[n]!, n, slotTypes(n), maxBatch);
    }, spec, maxBatch, rawLayout);
  }
  const ragged = names.filter((n) => RAGGED_INPUTS.includes(n));
  if (ragged.length) return raggedExamplesFrom(inputs, ragged, spec, maxBatch);
  const unknown = names.filter((n) => n !== INPUT_DENSE && n !== INPUT_IDS);
  if (unknown.length || !inputs[INPUT_DENSE] || !inputs[INPUT_IDS]) {
    throw bad(`inputs must be exactly ${INPUT_DENSE} [B, ${spec.numDense}] and ${INPUT_IDS} [B, ${spec.numSlots}] (or ragged: ${INPUT_IDS} [nnz] with ${INPUT_ROW_SPLITS} or ${INPUT_LENGTHS}), or one of ${MONOLITH_INPUTS.join(", ")}, or raw feature values; got ${names.length ? names.join(", ") : "none"}`);
  }
  const ds = shapeOf(inputs[INPUT_DENSE]!, INPUT_DENSE);
  const is = shapeOf(inputs[INPUT_IDS]!, INPUT_IDS);
  if (ds.length !== 2 || ds[1] !== spec.numDense) throw bad(`input ${INPUT_DENSE} must have shape [B, ${spec.numDense}], got [${ds.join(", ")}]`);
  if (is.length !== 2 || is[1] !== spec.numSlots) throw bad(`input ${INPUT_IDS} must have shape [B, ${spec.numSlots}], got [${is.join(", ")}]`);
  const B = ds[0]!;
  if (is[0] !== B) throw bad(`inputs disagree on the batch size: ${INPUT_DENSE} has ${B}, ${INPUT_IDS} has ${is[0]}`);
  if (B === 0) throw bad(`input ${INPUT_DENSE} has shape [0, ${spec.numDense}]: a request needs at least one example`);
  checkBatchSize(B, maxBatch);
  return { count: B, dense: floatsOf(inputs[INPUT_DENSE]!, INPUT_DENSE, B * spec.numDense), idWords: idsOf(inputs[INPUT_IDS]!, INPUT_IDS, B * spec.numSlots) };
}

/**
 * Several ids per cell, as TensorFlow's ragged tensors carry them:
 * feature_ids [nnz] holds every cell's ids in order (example by example,
 * slot by slot within one), and feature_ids_row_splits [B*S + 1] (where each
 * cell starts: 0, ..., nnz) or feature_ids_lengths [B, S] (how many each
 * cell holds) says which are whose. A cell's ids are pooled as its slot
 * pools them in training (sum, mean or sqrtn); an empty cell is zeros.
 */
function raggedExamplesFrom(inputs: Record<string, TensorProtoMsg>, ragged: string[], spec: ModelShape, maxBatch: number): Examples {
  const S = spec.numSlots;
  const unknown = Object.keys(inputs).filter((n) => n !== INPUT_DENSE && n !== INPUT_IDS && !RAGGED_INPUTS.includes(n));
  if (ragged.length !== 1 || unknown.length || !inputs[INPUT_DENSE] || !inputs[INPUT_IDS]) {
    throw bad(`ragged ids are ${INPUT_DENSE} [B, ${spec.numDense}], ${INPUT_IDS} [nnz] and one of ${INPUT_ROW_SPLITS} [B*${S} + 1] or ${INPUT_LENGTHS} [B, ${S}]; got ${Object.keys(inputs).join(", ")}`);
  }
  const ds = shapeOf(inputs[INPUT_DENSE]!, INPUT_DENSE);
  if (ds.length !== 2 || ds[1] !== spec.numDense) throw bad(`input ${INPUT_DENSE} must have shape [B, ${spec.numDense}], got [${ds.join(", ")}]`);
  const B = ds[0]!;
  if (B === 0) throw bad(`input ${INPUT_DENSE} has shape [0, ${spec.numDense}]: a request needs at least one example`);
  checkBatchSize(B, maxBatch);
  const is = shapeOf(inputs[INPUT_IDS]!, INPUT_IDS);
  if (is.length !== 1) throw bad(`input ${INPUT_IDS} must be the ragged values [nnz] with ${ragged[0]}, got shape [${is.join(", ")}]`);
  const nnz = is[0]!;
  if (nnz > MAX_IDS_PER_REQUEST) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${INPUT_IDS} holds ${nnz} ids; a request takes at most ${MAX_IDS_PER_REQUEST}`);
  const name = ragged[0]!;
  const cells = B * S;
  const rs = shapeOf(inputs[name]!, name);
  if (name === INPUT_ROW_SPLITS) {
    if (rs.length !== 1 || rs[0] !== cells + 1) throw bad(`input ${name} must have shape [${cells + 1}] (B*${S} + 1 cells' starts), got [${rs.join(", ")}]`);
  } else if (rs.length !== 2 || rs[0] !== B || rs[1] !== S) {
    throw bad(`input ${name} must have shape [${B}, ${S}], got [${rs.join(", ")}]`);
  }
  const offsets = cellOffsets(inputs[name]!, name, name === INPUT_ROW_SPLITS ? "row_splits" : "lengths", cells, nnz, INPUT_IDS, "ids");
  for (let c = 0; c < cells; c++) {
    const n = offsets[c + 1]! - offsets[c]!;
    if (n > MAX_IDS_PER_CELL) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `cell ${c} (example ${Math.floor(c / S)}, slot #${c % S}) holds ${n} ids; a cell takes at most ${MAX_IDS_PER_CELL}`);
  }
  return { count: B, dense: floatsOf(inputs[INPUT_DENSE]!, INPUT_DENSE, B * spec.numDense), idWords: idsOf(inputs[INPUT_IDS]!, INPUT_IDS, nnz), cellOffsets: offsets };
}

/**
 * Where each of `cells` cells starts in the ragged values (`nnz` of them, in input `valuesName`), from row splits
 * (each cell's start, then nnz: cells + 1 entries) or lengths (each cell's count); the tensor's shape is the caller's
 * to check.
 */
function cellOffsets(t: TensorProtoMsg, name: string, form: "row_splits" | "lengths", cells: number, nnz: number, valuesName: string, unit: "ids" | "values"): Uint32Array {
  if (form === "row_splits") {
    const splits = countsOf(t, name, cells + 1);
    const offsets = new Uint32Array(cells + 1);
    if (splits[0] !== 0 || splits[cells] !== nnz) throw bad(`input ${name} must start at 0 and end at ${nnz} (the ${unit} ${valuesName} holds), got ${splits[0]} .. ${splits[cells]}`);
    for (let c = 0; c < cells; c++) if (splits[c + 1]! < splits[c]!) throw bad(`input ${name} must not decrease: ${splits[c]} then ${splits[c + 1]} at cell ${c}`);
    offsets.set(splits);
    return offsets;
  }
  // Read (and their number checked against the values given) before the offsets are made: a shape alone claims nothing.
  const lengths = countsOf(t, name, cells);
  const offsets = new Uint32Array(cells + 1);
  // Summed as a number, not into the Uint32Array: lengths near 2^32 would wrap there to a total that matches
  // and cells whose values run past the ones given.
  let total = 0;
  for (let c = 0; c < cells; c++) offsets[c + 1] = Math.min((total += lengths[c]!), 0xffffffff);
  if (total !== nnz) throw bad(`input ${name} sums to ${total} ${unit}, ${valuesName} holds ${nnz}`);
  return offsets;
}

/** A raw feature's ragged form: the feature's values [nnz] with one of these beside it, named after it. */
const RAGGED_SUFFIXES = { "_row_splits": "row_splits", "_lengths": "lengths" } as const;

/**
 * The inputs that give another raw input's rows (`<feature>_lengths` [B] or `<feature>_row_splits` [B + 1]), each
 * mapped to its feature. A name the layout knows is a feature, whatever it ends in; one that only looks like a
 * companion is refused here when its feature is not in the request, or has both forms.
 */
function raggedCompanions(names: readonly string[], knows: (name: string) => boolean): Map<string, string> {
  const out = new Map<string, string>();
  const given = new Set(names);
  for (const n of names) {
    if (knows(n)) continue;
    for (const [suffix, form] of Object.entries(RAGGED_SUFFIXES)) {
      if (!n.endsWith(suffix)) continue;
      const feature = n.slice(0, -suffix.length);
      if (!knows(feature)) continue;
      if (feature === INPUT_DENSE_VALUES || feature === INPUT_SLOT_VALUES) throw bad(`input ${n}: ${feature} gives every example's values by position and has no ragged form`);
      if (!given.has(feature)) throw bad(`input ${printableNames([n])} gives the ${form} of feature ${printableNames([feature])}, which the request does not give`);
      const other = Object.keys(RAGGED_SUFFIXES).find((x) => x !== suffix && given.has(feature + x) && !knows(feature + x));
      if (other) throw bad(`feature ${printableNames([feature])} is given ragged twice, by ${printableNames([n])} and ${printableNames([feature + other])}; give one`);
      out.set(n, feature);
    }
  }
  return out;
}

/**
 * A slot's values (`slotTypes`: the dtypes it takes) are never floats: DT_FLOAT rounds integers above 2^24 (DT_DOUBLE
 * above 2^53) to other ids before they leave the client, which nothing here could tell; training takes no float for a
 * slot either.
 */
function refuseFloatSlotValues(t: TensorProtoMsg, name: string, slotTypes: string | null): void {
  if (slotTypes && (t.dtype === "DT_FLOAT" || t.dtype === "DT_DOUBLE")) {
    throw bad(`input ${name} holds slot values, which must be ${slotTypes}, got ${t.dtype} (a float rounds integers above 2^24, a double above 2^53, into other ids)`);
  }
}

/** A raw feature given ragged: its values [nnz], and per example where they start (`<feature>_row_splits`) or how many are whose (`<feature>_lengths`). */
function raggedColumnOf(t: TensorProtoMsg, name: string, slotTypes: string | null, rows: TensorProtoMsg, rowsName: string, maxBatch: number): RawColumn {
  refuseFloatSlotValues(t, name, slotTypes);
  const shape = shapeOf(t, name);
  if (shape.length !== 1) throw bad(`input ${name} must be the ragged values [nnz] beside ${rowsName}, got shape [${shape.join(", ")}]`);
  const nnz = shape[0]!;
  if (nnz > MAX_IDS_PER_REQUEST) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${name} holds ${nnz} values; a request takes at most ${MAX_IDS_PER_REQUEST}`);
  const form = rowsName.endsWith("_row_splits") ? "row_splits" : "lengths";
  const rs = shapeOf(rows, rowsName);
  if (rs.length !== 1 || (form === "row_splits" && rs[0]! < 1)) throw bad(`input ${rowsName} must have shape ${form === "row_splits" ? "[B + 1] (each example's start, then nnz)" : "[B] (each example's count)"}, got [${rs.join(", ")}]`);
  const B = form === "row_splits" ? rs[0]! - 1 : rs[0]!;
  // Before any example is made: a request of millions of empty rows would hold the event loop for seconds.
  checkBatchSize(B, maxBatch);
  const offsets = cellOffsets(rows, rowsName, form, B, nnz, name, "values");
  const values = rawValuesOf(t, name, nnz, shape);
  return Array.from({ length: B }, (_, e) => values.slice(offsets[e]!, offsets[e + 1]!));
}

/** Non-negative integer counts or offsets (below 2^32) from an integer tensor. */
function countsOf(t: TensorProtoMsg, name: string, count: number): Uint32Array {
  if (t.dtype === "DT_INT32") {
    let v: Int32Array;
    if (t.tensor_content && t.tensor_content.length > 0) {
      // Packed, as tf.make_tensor_proto writes it: little-endian int32s.
      if (t.tensor_content.length !== count * 4) throw bad(`input ${name}: tensor_content has ${t.tensor_content.length} bytes for ${count} DT_INT32 values`);
      const copy = Buffer.from(t.tensor_content);
      v = new Int32Array(copy.buffer, copy.byteOffset, count);
    } else {
      v = t.int_val ?? new Int32Array(0);
    }
    if (v.length !== count) throw bad(`input ${name}: ${v.length} values for a shape of ${count}`);
    const wrong = v.findIndex((x) => !Number.isInteger(x) || x < 0);
    if (wrong >= 0) throw bad(`input ${name} entry ${wrong} is ${v[wrong]}: expected a non-negative integer`);
    return Uint32Array.from(v);
  }
  if (t.dtype !== "DT_INT64" && t.dtype !== "DT_UINT64") throw bad(`input ${name} must be DT_INT64, DT_UINT64 or DT_INT32, got ${t.dtype ?? "no dtype"}`);
  const words = idsOf(t, name, count);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    if (words[2 * i + 1] !== 0) {
      const value = BigInt.asIntN(64, (BigInt(words[2 * i + 1]!) << 32n) | BigInt(words[2 * i]!));
      throw bad(`input ${name} entry ${i} is ${value}: expected a non-negative integer below 2^32`);
    }
    out[i] = words[2 * i]!;
  }
  return out;
}

/**
 * Raw inputs (by tensor or JSON) into examples. A name that is no input at
 * all is refused first, with every form the model takes; only then are the
 * inputs' values read (`columnOf`).
 */
export function examplesFromRaw(names: readonly string[], columnOf: (name: string) => RawColumn, spec: ModelShape, maxBatch: number, layout: RawLayout | null): Examples {
  const reader = layout ? new RawReader(layout) : null;
  const unknown = names.find((n) => !reader?.knows(n));
  if (unknown !== undefined) {
    const raw = reader
      ? `raw values ${reader.describe(spec)}`
      : "raw values (not for this version: it was exported without a feature list and is not laid out as Criteo's data, 13 dense values and slots 1-26)";
    throw bad(`unknown input ${printableNames([unknown])}: expected ${INPUT_DENSE} [B, ${spec.numDense}] and ${INPUT_IDS} [B, ${spec.numSlots}], one of ${MONOLITH_INPUTS.join(", ")}, or ${raw}`);
  }
  return reader!.examples(new Map(names.map((n) => [n, columnOf(n)])), spec, maxBatch);
}

/** A raw input tensor's values per example: shape [B] (one value each) or [B, k] (k each); a slot's never floats (refuseFloatSlotValues). */
function rawColumnOf(t: TensorProtoMsg, name: string, slotTypes: string | null, maxBatch: number): RawColumn {
  refuseFloatSlotValues(t, name, slotTypes);
  const shape = shapeOf(t, name);
  if (shape.length < 1 || shape.length > 2) throw bad(`input ${name} must have shape [B] or [B, k], got [${shape.join(", ")}]`);
  const B = shape[0]!;
  // Before any example is made (see raggedColumnOf).
  checkBatchSize(B, maxBatch);
  const k = shape[1] ?? 1;
  const values = rawValuesOf(t, name, B * k, shape);
  return Array.from({ length: B }, (_, e) => values.slice(e * k, (e + 1) * k));
}

/** Packed tensor_content as values; 64-bit integers as bigints, so that no integer passes for a string. */
const PACKED: Record<string, (b: Uint8Array) => unknown[]> = {
  DT_INT64: (b) => Array.from(new BigInt64Array(b.buffer, b.byteOffset, b.length / 8)),
  DT_UINT64: (b) => Array.from(new BigUint64Array(b.buffer, b.byteOffset, b.length / 8)),
  DT_INT32: (b) => Array.from(new Int32Array(b.buffer, b.byteOffset, b.length / 4)),
  DT_FLOAT: (b) => Array.from(new Float32Array(b.buffer, b.byteOffset, b.length / 4)),
  DT_DOUBLE: (b) => Array.from(new Float64Array(b.buffer, b.byteOffset, b.length / 8)),
};
const WIDTH: Record<string, number> = { DT_INT64: 8, DT_UINT64: 8, DT_INT32: 4, DT_FLOAT: 4, DT_DOUBLE: 8 };

/** The `count` values of a raw input of `shape`, counted before any is made a JS value (tensor_content is not in the decoder's count). */
function rawValuesOf(t: TensorProtoMsg, name: string, count: number, shape: readonly number[]): unknown[] {
  const dtype = t.dtype ?? "no dtype";
  const checked = (n: number) => {
    if (n !== count) throw bad(`input ${name}: ${n} values for shape [${shape.join(", ")}]`);
  };
  if (dtype === "DT_STRING") {
    checked(t.string_val?.length ?? 0);
    return t.string_val ?? [];
  }
  const unpack = PACKED[dtype];
  if (!unpack) throw bad(`input ${name} must be DT_STRING, DT_INT64, DT_UINT64, DT_INT32, DT_FLOAT or DT_DOUBLE raw values, got ${dtype}`);
  if (t.tensor_content && t.tensor_content.length > 0) {
    if (t.tensor_content.length % WIDTH[dtype]! !== 0) throw bad(`input ${name}: tensor_content has ${t.tensor_content.length} bytes, not a whole number of ${dtype} values`);
    checked(t.tensor_content.length / WIDTH[dtype]!);
    return unpack(Buffer.from(t.tensor_content));
  }
  const values = { DT_INT64: t.int64_val, DT_UINT64: t.uint64_val, DT_INT32: t.int_val, DT_FLOAT: t.float_val, DT_DOUBLE: t.double_val }[dtype];
  checked(values?.length ?? 0);
  return values ? Array.from<unknown>(values) : [];
}

/** A DT_FLOAT output [B], as proto-loader encodes it (a list, not a typed array). */
export function floatTensor(p: Float32Array): { dtype: string; tensor_shape: { dim: { size: number }[] }; float_val: number[] } {
  return { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: p.length }] }, float_val: Array.from(p) };
}

/**
 * Monolith records (Instance, Example, or one ExampleBatch) decoded with the
 * feature list the model was exported with, into ragged examples: each cell
 * keeps every id its record gives the slot, summed as in training.
 */
function examplesFromMonolith(name: string, t: TensorProtoMsg, spec: ModelShape, maxBatch: number, list: FeatureList): Examples {
  if (t.dtype !== "DT_STRING") throw bad(`input ${name} must be DT_STRING serialized records, got ${t.dtype ?? "no dtype"}`);
  const records = t.string_val ?? [];
  const shape = shapeOf(t, name);
  if (shape.length !== 1 || shape[0] !== records.length) throw bad(`input ${name} must have shape [${records.length}] for its ${records.length} records, got [${shape.join(", ")}]`);
  if (name === INPUT_EXAMPLE_BATCH && records.length !== 1) throw bad(`input ${name} takes one serialized ExampleBatch, got ${records.length}`);
  const out = new RaggedExamples(spec, maxBatch, name, slotNamesOf(list));
  const asm = new SampleAssembler(list);
  records.forEach((r, i) => {
    try {
      decodeRecordOfKind(MONOLITH_KINDS[name]!.kind, r, asm, () => out.take(asm), maxBatch);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      // More examples than --max-batch: too large (RESOURCE_EXHAUSTED, 413), as the same examples as Examples are.
      if (err instanceof BatchSizeError) checkBatchSize(err.batchSize, maxBatch);
      const other = inputDecoding(r, name, list, maxBatch);
      const hint = other ? `; it decodes as a Monolith ${MONOLITH_KINDS[other]!.message}: send it as input ${other}` : "";
      throw bad(`input ${name}, record ${i}: not a valid Monolith ${MONOLITH_KINDS[name]!.message}: ${err.message}${hint}`);
    }
  });
  return out.finish();
}

/**
 * The other Monolith input a record that failed as `name`'s kind decodes as, if any: into ids more of which are of
 * slots the model has than not (bytes of one kind can walk as another's fields, as fids of random slots).
 */
function inputDecoding(record: Uint8Array, name: string, list: FeatureList, maxBatch: number): string | undefined {
  return MONOLITH_INPUTS.find((other) => {
    if (other === name) return false;
    const asm = new SampleAssembler(list);
    let ids = 0;
    try {
      decodeRecordOfKind(MONOLITH_KINDS[other]!.kind, record, asm, () => (ids += asm.count), maxBatch);
    } catch {
      // Only a hint: whatever stops the decode (a wire error, a cell past its bounds) says it is not that kind.
      return false;
    }
    return ids > 0 && asm.unconfiguredIds < ids;
  });
}

