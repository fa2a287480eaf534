import { describe, expect, it } from "vitest";
import { compileFeatureList, criteoFeatureListConfig } from "@pangea/features";
import { examplesFrom, type TensorProtoMsg } from "../src/api/tensors.js";
import { RawReader } from "../src/api/raw-features.js";
import { rawLayoutOf } from "../src/model/raw-layout.js";
import type { Examples } from "../src/model/servable.js";

/**
 * A raw feature sent ragged over gRPC (its values [nnz] with <feature>_lengths [B] or <feature>_row_splits [B + 1])
 * is read as the same values given per example are (RawReader's columns, which REST's lists become): the same ids in
 * the same cells, the same dense values; an empty row is the feature missing there.
 */
const criteo = compileFeatureList(criteoFeatureListConfig(), "criteo");
const spec = { numDense: 13, numSlots: 26, embeddingDim: 4 };
const layout = rawLayoutOf(criteo, spec, criteo.slotIds)!;

const strings = (v: string[]): TensorProtoMsg => ({ dtype: "DT_STRING", tensor_shape: { dim: [{ size: v.length }] }, string_val: v.map((s) => Buffer.from(s)) });
const int64 = (v: number[], dims = [v.length]): TensorProtoMsg => ({ dtype: "DT_INT64", tensor_shape: { dim: dims.map((size) => ({ size })) }, int64_val: BigInt64Array.from(v.map(BigInt)) });
const int32Packed = (v: number[]): TensorProtoMsg => ({ dtype: "DT_INT32", tensor_shape: { dim: [{ size: v.length }] }, tensor_content: new Uint8Array(Int32Array.from(v).buffer) });

const viaColumns = (columns: [string, unknown[][]][]) => new RawReader(layout).examples(new Map(columns), spec, 64);
const viaTensors = (inputs: Record<string, TensorProtoMsg>) => examplesFrom(inputs, spec, 64, criteo, layout);
const plain = (x: Examples) => ({ count: x.count, dense: Array.from(x.dense), ids: Array.from(x.idWords), cells: Array.from(x.cellOffsets ?? []) });

describe("raw features given ragged over gRPC", () => {
  // C1: two values, none, one; I2 (a count): one, none, one.
  const columns: [string, unknown[][]][] = [
    ["C1", [["a", "b"], [], ["c"]]],
    ["I2", [["7"], [], ["0"]]],
    ["C3", [["x"], ["y"], ["z"]]],
  ];

  it("lengths, row splits (DT_INT64 lists or packed DT_INT32) and plain [B] tensors beside them read as the same values given per example", () => {
    const expected = plain(viaColumns(columns));
    expect(expected.count).toBe(3);
    const byLengths = viaTensors({ C1: strings(["a", "b", "c"]), C1_lengths: int64([2, 0, 1]), I2: strings(["7", "0"]), I2_lengths: int64([1, 0, 1]), C3: strings(["x", "y", "z"]) });
    expect(plain(byLengths)).toEqual(expected);
    const bySplits = viaTensors({ C1: strings(["a", "b", "c"]), C1_row_splits: int32Packed([0, 2, 2, 3]), I2: strings(["7", "0"]), I2_row_splits: int64([0, 1, 1, 2]), C3: strings(["x", "y", "z"]) });
    expect(plain(bySplits)).toEqual(expected);
    // The empty row is the feature missing there: example 1's C1 cell has no ids, its I2 reads 0.
    expect(expected.cells[26 + 1]! - expected.cells[26]!).toBe(0);
    expect(expected.dense[13 + 1]).toBe(0);
  });

  it("a feature whose every row is empty, and one of a batch of one, are read too", () => {
    expect(plain(viaTensors({ C1: strings([]), C1_lengths: int64([0, 0]), C3: strings(["x", "y"]) }))).toEqual(plain(viaColumns([["C1", [[], []]], ["C3", [["x"], ["y"]]]])));
    expect(plain(viaTensors({ C1: strings(["a", "b", "c"]), C1_lengths: int64([3]) }))).toEqual(plain(viaColumns([["C1", [["a", "b", "c"]]]])));
  });

  it("a feature list's feature whose name ends in _lengths is that feature, not another's lengths", () => {
    const config = { slots: [{ name: "pos", slot: 1, type: "bytes" as const }, { name: "pos_lengths", slot: 2, type: "bytes" as const }], dense: [] };
    const list = compileFeatureList(config, "suffixes");
    const s = { numDense: 0, numSlots: 2, embeddingDim: 4 };
    const l = rawLayoutOf(list, s, list.slotIds)!;
    const x = examplesFrom({ pos: strings(["a"]), pos_lengths: strings(["b"]) }, s, 64, list, l);
    const y = new RawReader(l).examples(new Map([["pos", [["a"]]], ["pos_lengths", [["b"]]]]), s, 64);
    expect(plain(x)).toEqual(plain(y));
    // Then pos goes ragged by its row splits, beside the feature pos_lengths (not "given ragged twice").
    const r = examplesFrom({ pos: strings(["a", "c"]), pos_row_splits: int64([0, 2, 2]), pos_lengths: strings(["b", "d"]) }, s, 64, list, l);
    expect(plain(r)).toEqual(plain(new RawReader(l).examples(new Map([["pos", [["a", "c"], []]], ["pos_lengths", [["b"], ["d"]]]]), s, 64)));
  });

  it.each([
    ["lengths without their feature", { C3: strings(["x"]), C1_lengths: int64([1]) }, 'input "C1_lengths" gives the lengths of feature "C1", which the request does not give'],
    ["both forms for one feature", { C1: strings(["a"]), C1_lengths: int64([1]), C1_row_splits: int64([0, 1]) }, 'feature "C1" is given ragged twice, by "C1_lengths" and "C1_row_splits"; give one'],
    ["values of shape [B, k]", { C1: { ...strings(["a", "b"]), tensor_shape: { dim: [{ size: 1 }, { size: 2 }] } }, C1_lengths: int64([2]) }, "input C1 must be the ragged values [nnz] beside C1_lengths, got shape [1, 2]"],
    ["lengths of shape [B, 1]", { C1: strings(["a"]), C1_lengths: int64([1], [1, 1]) }, "input C1_lengths must have shape [B] (each example's count), got [1, 1]"],
    ["lengths that sum to more than the values", { C1: strings(["a"]), C1_lengths: int64([1, 1]) }, "input C1_lengths sums to 2 values, C1 holds 1"],
    ["splits that do not start at 0", { C1: strings(["a", "b"]), C1_row_splits: int64([1, 2]) }, "input C1_row_splits must start at 0 and end at 2 (the values C1 holds), got 1 .. 2"],
    ["splits that decrease", { C1: strings(["a", "b"]), C1_row_splits: int64([0, 2, 1, 2]) }, "input C1_row_splits must not decrease: 2 then 1 at cell 1"],
    ["a negative length", { C1: strings(["a"]), C1_lengths: int64([2, -1]) }, "input C1_lengths entry 1 is -1: expected a non-negative integer below 2^32"],
    ["ragged features disagreeing on the batch size", { C1: strings(["a"]), C1_lengths: int64([1]), C3: strings(["x", "y"]) }, "raw inputs disagree on the batch size: C1 has 1 examples, C3 has 2"],
    ["floats for a slot", { C1: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: 1 }] }, float_val: Float32Array.of(1) }, C1_lengths: int64([1]) }, "input C1 holds slot values, which must be DT_STRING (its bytes are hashed), got DT_FLOAT"],
    ["two values for a one-value dense feature", { I2: strings(["1", "2"]), I2_lengths: int64([2]) }, "input I2, example 0: expected at most 1 value, got 2"],
    ["positional values given ragged", { dense_values: strings(["1"]), dense_values_lengths: int64([1]) }, "input dense_values_lengths: dense_values gives every example's values by position and has no ragged form"],
  ] as [string, Record<string, TensorProtoMsg>, string][])("%s is refused naming it", (_what, inputs, message) => {
    expect(() => viaTensors(inputs)).toThrow(message);
  });

  it("more examples than --max-batch, ragged or not, are refused as too large before any is read, whatever their shape claims", () => {
    const huge = { dtype: "DT_INT32", tensor_shape: { dim: [{ size: 1e12 }] }, int_val: Int32Array.of(0, 0) };
    expect(() => viaTensors({ C1: strings([]), C1_lengths: huge })).toThrow("request carries 1000000000000 examples; this server takes at most 64 (--max-batch)");
    expect(() => viaTensors({ C1: strings([]), C1_row_splits: huge })).toThrow("request carries 999999999999 examples; this server takes at most 64 (--max-batch)");
    expect(() => viaTensors({ C1: { ...strings(["a"]), tensor_shape: { dim: [{ size: 1e12 }] } } })).toThrow("request carries 1000000000000 examples; this server takes at most 64 (--max-batch)");
    // Within the batch, a shape that claims more lengths than the tensor holds is refused as such.
    expect(() => viaTensors({ C1: strings([]), C1_lengths: { ...huge, tensor_shape: { dim: [{ size: 3 }] } } })).toThrow("input C1_lengths: 2 values for a shape of 3");
  });

  it("a row above the cap of values a cell takes is refused as too large", () => {
    const n = 4097;
    expect(() => viaTensors({ C1: strings(Array.from({ length: n }, (_, i) => `v${i}`)), C1_lengths: int64([n]) })).toThrow(/holds 4097 values; a cell takes at most 4096/);
  });
});
