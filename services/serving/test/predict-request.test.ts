import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tfServingServices } from "../src/api/tf-serving-grpc.js";
import { decodePredictRequest, predictValueLimit, type PredictMsg } from "../src/api/predict-request.js";
import { ROOT } from "../../../test/support/processes.js";
import { generateTfServingStubs } from "../../../test/support/tf-serving-stubs.js";

/**
 * Our PredictRequest decoder against Google's protobuf: requests encoded by
 * python3-protobuf, with repeated numbers packed (tensor.proto as it is) and
 * unpacked (classes from a copy marked [packed = false]), decode to what
 * protobufjs decodes them to, field by field that serving reads.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-predict-request-"));
const forms: Record<string, { name: string; bytes: Buffer }[]> = {};

function encodeWith(stubs: string): { name: string; bytes: Buffer }[] {
  const py = spawnSync("/usr/bin/python3", [join(ROOT, "test/support/python/predict_request_forms.py"), stubs], { encoding: "utf8", timeout: 60_000 });
  if (py.status !== 0) throw new Error(`predict_request_forms.py failed: ${py.stderr}`);
  return (JSON.parse(py.stdout) as { name: string; base64: string }[]).map((c) => ({ name: c.name, bytes: Buffer.from(c.base64, "base64") }));
}

beforeAll(() => {
  const packed = generateTfServingStubs(join(tmp, "packed"));
  if (packed.status !== 0) throw new Error(`protoc failed: ${packed.stderr}`);
  const source = join(tmp, "unpacked-proto");
  cpSync(join(ROOT, "schemas/proto"), source, { recursive: true });
  const tensor = join(source, "tensorflow/core/framework/tensor.proto");
  const text = readFileSync(tensor, "utf8");
  if (!text.includes("[packed = true]")) throw new Error("tensor.proto declares no packed field to unpack");
  writeFileSync(tensor, text.replaceAll("[packed = true]", "[packed = false]"));
  const unpacked = generateTfServingStubs(join(tmp, "unpacked"), source);
  if (unpacked.status !== 0) throw new Error(`protoc failed: ${unpacked.stderr}`);
  forms.packed = encodeWith(join(tmp, "packed"));
  forms.unpacked = encodeWith(join(tmp, "unpacked"));
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const predict = tfServingServices().prediction.service.Predict!;
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");
const list = (v: ArrayLike<number | bigint> | undefined) => (v && v.length ? Array.from(v, (x) => (typeof x === "bigint" ? String(x) : x)) : undefined);

type Loose = Record<string, unknown>;
/** A decoded request in one comparable form: the fields serving reads, 64-bit values as decimal text, bytes as hex. */
function comparable(m: PredictMsg | Loose): Loose {
  const inputs = (m.inputs ?? {}) as Record<string, Loose>;
  const spec = m.model_spec as Loose | undefined;
  return {
    model_spec: spec && { name: spec.name, version: spec.version, signature_name: spec.signature_name, version_label: spec.version_label },
    output_filter: (m.output_filter as string[] | undefined)?.length ? m.output_filter : undefined,
    inputs: Object.fromEntries(
      Object.entries(inputs).map(([k, t]) => {
        const shape = t.tensor_shape as { dim?: { size?: string | number }[]; unknown_rank?: boolean } | undefined;
        return [
          k,
          {
            dtype: t.dtype,
            tensor_shape: shape && { dim: shape.dim?.map((d) => ({ size: d.size === undefined ? undefined : String(d.size) })), unknown_rank: shape.unknown_rank || undefined },
            tensor_content: t.tensor_content ? hex(t.tensor_content as Uint8Array) : undefined,
            float_val: list(t.float_val as ArrayLike<number>),
            double_val: list(t.double_val as ArrayLike<number>),
            int_val: list(t.int_val as ArrayLike<number>),
            int64_val: list(t.int64_val as ArrayLike<number>),
            uint64_val: list(t.uint64_val as ArrayLike<number>),
            string_val: (t.string_val as Uint8Array[] | undefined)?.map(hex),
          },
        ];
      }),
    ),
  };
}

describe("PredictRequest decoding against python3-protobuf's encoding", () => {
  it("packed and unpacked repeated numbers are two encodings", () => {
    for (const i of [0, 1]) expect(forms.unpacked![i]!.bytes.length).toBeGreaterThan(forms.packed![i]!.bytes.length);
  });

  for (const form of ["packed", "unpacked"]) {
    it(`every field kind, ${form}, decodes as protobufjs decodes it`, () => {
      for (const { name, bytes } of forms[form]!) {
        const ours = comparable(decodePredictRequest(bytes, predictValueLimit(4096)));
        const theirs = comparable(predict.requestDeserialize(bytes) as Loose);
        expect(ours, name).toEqual(theirs);
        // Not vacuous: the request's inputs are there, values and all.
        expect(Object.keys(ours.inputs as Loose).length, name).toBeGreaterThan(1);
      }
      const every = decodePredictRequest(forms[form]![0]!.bytes, predictValueLimit(4096));
      expect(Array.from(every.inputs.uint64s!.uint64_val!).at(-1)).toBe(2n ** 64n - 1n);
      expect(Array.from(every.inputs.int64s!.int64_val!)).toContain(-(2n ** 63n));
      expect(every.inputs.dtype_DT_HALF!.dtype).toBe("DT_HALF");
    });
  }
});

/** What `f` throws: its code and its message. */
function thrown(f: () => unknown): [string, string] {
  try {
    f();
  } catch (err) {
    return [(err as { code: string }).code, (err as Error).message];
  }
  throw new Error("expected a refusal, got none");
}

describe("PredictRequest decoding of what python3-protobuf does not write", () => {
  it("empty packed runs, and one field both packed and unpacked, decode as protobufjs decodes them", () => {
    // inputs{"x": TensorProto{float_val: [] packed, int64_val: [] packed, int_val: [], uint64_val: [5] then [300, 1] packed then 7, double_val: 0.5 unpacked}}
    const tensor = [0x2a, 0x00, 0x52, 0x00, 0x3a, 0x00, 0x88, 0x01, 0x05, 0x8a, 0x01, 0x03, 0xac, 0x02, 0x01, 0x88, 0x01, 0x07, 0x31, ...new Uint8Array(Float64Array.of(0.5).buffer)];
    const bytes = Buffer.from([0x12, tensor.length + 5, 0x0a, 0x01, 0x78, 0x12, tensor.length, ...tensor]);
    const ours = decodePredictRequest(bytes, 100);
    expect(comparable(ours)).toEqual(comparable(predict.requestDeserialize(bytes) as Loose));
    expect(Array.from(ours.inputs.x!.uint64_val!)).toEqual([5n, 300n, 1n, 7n]);
    expect(ours.inputs.x!.float_val).toBeUndefined();
  });
});

describe("PredictRequest decoding bounds and refusals", () => {
  /** A request whose one input, feature_ids, holds `n` one-byte int64 varints, packed. */
  const oneByteIds = (n: number) =>
    predict.requestSerialize({ model_spec: { name: "ctr" }, inputs: { feature_ids: { dtype: "DT_INT64", int64_val: new Array<string>(n).fill("1") } } }) as Buffer;

  it("counts values before making arrays for them, and refuses past the bound naming the input", () => {
    const limit = predictValueLimit(1);
    expect(limit).toBe((1 << 20) + 256);
    // The inputs entry counts as one.
    expect(decodePredictRequest(oneByteIds(limit - 1), limit).inputs.feature_ids!.int64_val!.length).toBe(limit - 1);
    expect(thrown(() => decodePredictRequest(oneByteIds(limit + 1), limit))).toEqual([
      "SERVING_ERR_TOO_LARGE",
      "input feature_ids holds 1,048,833 values; a Predict's inputs hold at most 1,048,832 in all (2^20 ids + 256 per --max-batch example)",
    ]);
  });

  it("counts the objects a request makes besides values (inputs entries, shape dims, output_filter names) against the same bound", () => {
    const limit = 1000;
    const many = (n: number) => Array.from({ length: n }, (_, i) => `o${i}`);
    const refused = (what: string) => ["SERVING_ERR_TOO_LARGE", `the request's ${what} take it past 1,000 values and entries in all (2^20 ids + 256 per --max-batch example)`];
    expect(thrown(() => decodePredictRequest(predict.requestSerialize({ model_spec: { name: "ctr" }, output_filter: many(1001) }) as Buffer, limit))).toEqual(refused("output_filter"));
    const inputs = Object.fromEntries(many(1001).map((k) => [k, { dtype: "DT_FLOAT" }]));
    expect(thrown(() => decodePredictRequest(predict.requestSerialize({ model_spec: { name: "ctr" }, inputs }) as Buffer, limit))).toEqual(refused("inputs entries"));
    const dims = { dim: Array.from({ length: 1001 }, () => ({ size: "1" })) };
    expect(thrown(() => decodePredictRequest(predict.requestSerialize({ model_spec: { name: "ctr" }, inputs: { x: { dtype: "DT_FLOAT", tensor_shape: dims } } }) as Buffer, limit))).toEqual(refused("tensor_shape dims"));
    // Within it, each is decoded.
    expect(decodePredictRequest(predict.requestSerialize({ model_spec: { name: "ctr" }, output_filter: many(1000) }) as Buffer, limit).output_filter).toHaveLength(1000);
  });

  it("malformed bytes are refused as not a PredictRequest, one line naming what is wrong", () => {
    const entry = (value: number[]) => Buffer.from([0x12, value.length + 3, 0x0a, 0x01, 0x78, ...value]);
    const cases: [Buffer, string][] = [
      // inputs entry "x" without a value
      [Buffer.from([0x12, 0x03, 0x0a, 0x01, 0x78]), 'inputs entry "x" has no TensorProto value'],
      // int64_val packed, its last varint cut in the middle
      [entry([0x12, 0x04, 0x52, 0x02, 0x01, 0x80]), "packed int64_val ends inside a varint"],
      // float_val packed of 3 bytes
      [entry([0x12, 0x05, 0x2a, 0x03, 0x00, 0x00, 0x00]), "packed float_val of 3 bytes is not a multiple of 4"],
      // string_val as a varint
      [entry([0x12, 0x02, 0x40, 0x01]), "string_val has wire type 0, not bytes"],
      // a length past the end
      [Buffer.from([0x0a, 0x09, 0x0a]), "length 9 runs past the end of the message (1 bytes left)"],
    ];
    for (const [bytes, why] of cases) {
      expect(thrown(() => decodePredictRequest(bytes, 1000)), why).toEqual(["SERVING_ERR_BAD_INPUT", `the request is not a valid PredictRequest (${why})`]);
    }
  });
});
