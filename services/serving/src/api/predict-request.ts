import { printable } from "@pangea/kit";
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireError, WireReader } from "@pangea/monolith";
import { ServingErrors } from "../errors.js";
import { MAX_IDS_PER_REQUEST, type TensorProtoMsg } from "./tensors.js";

/**
 * tensorflow_serving's PredictRequest decoded from its wire bytes into the
 * shape the handler reads: numeric repeated fields straight into typed arrays
 * (64-bit integers as BigInt64Array/BigUint64Array, whose memory is the ids'
 * lo/hi word pairs), tensor_content and string_val as views of the request's
 * bytes. protobufjs made a string per int64 and a Buffer per string value:
 * a 32 MiB request of one-byte ids took 3.5 GB and 18 s of event loop.
 *
 * Each TensorProto is walked twice: once to count its values (a packed varint
 * is a byte without the continuation bit, fixed widths by length, no
 * allocation), then, if the request's running count is within
 * predictValueLimit, to fill arrays of exactly that size. Fields the handler
 * never reads (half_val, bool_val, complex, uint32_val, version_number) are
 * skipped unread.
 */

export interface ModelSpecMsg {
  name?: string;
  version?: { value?: string };
  version_label?: string;
  signature_name?: string;
}

export interface PredictMsg {
  model_spec?: ModelSpecMsg;
  inputs: Record<string, TensorProtoMsg>;
  output_filter: string[];
}

/**
 * Values a Predict's inputs may hold in all: MAX_IDS_PER_REQUEST ids, and 256
 * per example the batch may hold for dense values, ragged lengths and raw
 * values (a Criteo example is 39). Counted before anything is allocated for
 * them, so a decoded request holds at most this many 8-byte values or views.
 */
export const VALUES_PER_EXAMPLE = 256;
export function predictValueLimit(maxBatch: number): number {
  return MAX_IDS_PER_REQUEST + VALUES_PER_EXAMPLE * maxBatch;
}

/** tensorflow.DataType's names, as schemas/proto/tensorflow/core/framework/types.proto numbers them; another number stays a number, as protobufjs leaves it. */
const DTYPES: Readonly<Record<number, string>> = {
  0: "DT_INVALID", 1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16", 6: "DT_INT8", 7: "DT_STRING",
  8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 14: "DT_BFLOAT16", 19: "DT_HALF", 22: "DT_UINT32", 23: "DT_UINT64",
};

// Field numbers, from predict.proto, model.proto, tensor.proto and tensor_shape.proto.
const REQ_MODEL_SPEC = 1, REQ_INPUTS = 2, REQ_OUTPUT_FILTER = 3;
const SPEC_NAME = 1, SPEC_VERSION = 2, SPEC_SIGNATURE = 3, SPEC_VERSION_LABEL = 4;
const ENTRY_KEY = 1, ENTRY_VALUE = 2;
const T_DTYPE = 1, T_SHAPE = 2, T_CONTENT = 4, T_FLOAT = 5, T_DOUBLE = 6, T_INT = 7, T_STRING = 8, T_INT64 = 10, T_UINT64 = 17;
const SHAPE_DIM = 2, SHAPE_UNKNOWN_RANK = 3, DIM_SIZE = 1;

const utf8 = new TextDecoder();

/**
 * The request in `bytes`; a malformed one is SERVING_ERR_BAD_INPUT, one whose
 * inputs hold more than `maxValues` values SERVING_ERR_TOO_LARGE naming the
 * input that passed the bound.
 */
export function decodePredictRequest(bytes: Uint8Array, maxValues: number): PredictMsg {
  const d = new PredictDecoder(bytes, maxValues);
  try {
    return d.request();
  } catch (err) {
    if (err instanceof WireError) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `the request is not a valid PredictRequest (${printable(err.message, 200)})`);
    throw err;
  }
}

/** Value counts of one TensorProto's fields that the handler reads. */
interface Counts {
  float: number;
  double: number;
  int: number;
  int64: number;
  uint64: number;
  string: number;
}

class PredictDecoder {
  private values = 0;

  constructor(private readonly buf: Uint8Array, private readonly maxValues: number) {}

  request(): PredictMsg {
    const r = new WireReader(this.buf);
    const out: PredictMsg = { inputs: {}, output_filter: [] };
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === REQ_MODEL_SPEC) out.model_spec = this.modelSpec(this.sub(r, tag, "model_spec"));
      else if (field === REQ_INPUTS) this.entry(this.sub(r, tag, "inputs"), out.inputs);
      else if (field === REQ_OUTPUT_FILTER) {
        this.charge(1, "output_filter");
        out.output_filter.push(this.string(r, tag, "output_filter"));
      }
      else r.skip(tag & 7);
    }
    return out;
  }

  /**
   * Counts `n` more things the request makes an object or string of beyond the tensors' values (an inputs entry, a
   * shape's dim, an output_filter name): a request of millions of empty entries or dims would cost as many objects.
   */
  private charge(n: number, what: string, refusal = () => `the request's ${what} take it past ${this.maxValues.toLocaleString("en-US")} values and entries in all (2^20 ids + ${VALUES_PER_EXAMPLE} per --max-batch example)`): void {
    this.values += n;
    if (this.values > this.maxValues) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", refusal());
  }

  private sub(r: WireReader, tag: number, name: string): WireReader {
    if ((tag & 7) !== WIRE_LEN) throw new WireError(`${name} has wire type ${tag & 7}, not a length-delimited field`);
    return r.sub();
  }

  private string(r: WireReader, tag: number, name: string): string {
    if ((tag & 7) !== WIRE_LEN) throw new WireError(`${name} has wire type ${tag & 7}, not a string`);
    const { start, end } = r.bytes();
    return utf8.decode(this.buf.subarray(start, end));
  }

  private varint(r: WireReader, tag: number, name: string): void {
    if ((tag & 7) !== WIRE_VARINT) throw new WireError(`${name} has wire type ${tag & 7}, not a varint`);
    r.varint64();
  }

  /** The last varint read as a signed 64-bit decimal, as protobufjs gives an int64 with longs: String. */
  private int64Text(r: WireReader): string {
    return r.hi === 0 && r.lo < 0x80000000 ? String(r.lo) : BigInt.asIntN(64, (BigInt(r.hi) << 32n) | BigInt(r.lo)).toString();
  }

  private modelSpec(r: WireReader): ModelSpecMsg {
    const spec: ModelSpecMsg = {};
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === SPEC_NAME) spec.name = this.string(r, tag, "model_spec.name");
      else if (field === SPEC_SIGNATURE) spec.signature_name = this.string(r, tag, "model_spec.signature_name");
      else if (field === SPEC_VERSION_LABEL) spec.version_label = this.string(r, tag, "model_spec.version_label");
      else if (field === SPEC_VERSION) {
        // An Int64Value: its one field, value = 1, left out when 0.
        const v = this.sub(r, tag, "model_spec.version");
        spec.version = {};
        while (!v.done()) {
          const t = v.tag();
          if (t >>> 3 === 1) {
            this.varint(v, t, "model_spec.version.value");
            spec.version.value = this.int64Text(v);
          } else v.skip(t & 7);
        }
      } else r.skip(tag & 7);
    }
    return spec;
  }

  /** One `map<string, TensorProto> inputs` entry; a later entry of the same key replaces an earlier one, as protobufjs does. */
  private entry(r: WireReader, into: Record<string, TensorProtoMsg>): void {
    this.charge(1, "inputs entries");
    let key = "";
    let value: { start: number; end: number } | null = null;
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === ENTRY_KEY) key = this.string(r, tag, "an inputs key");
      else if (field === ENTRY_VALUE) {
        if ((tag & 7) !== WIRE_LEN) throw new WireError(`inputs entry ${JSON.stringify(printable(key, 80))} has a value of wire type ${tag & 7}, not a TensorProto`);
        value = r.bytes();
      } else r.skip(tag & 7);
    }
    // Said as before, when protobufjs failed on such an entry: a sender that leaves the value out has made a mistake,
    // not asked for an empty tensor.
    if (!value) throw new WireError(`inputs entry ${JSON.stringify(printable(key, 80))} has no TensorProto value`);
    Object.defineProperty(into, key, { value: this.tensor(key, value.start, value.end), enumerable: true, configurable: true, writable: true });
  }

  private tensor(name: string, start: number, end: number): TensorProtoMsg {
    const n = this.count(new WireReader(this.buf, start, end));
    const total = n.float + n.double + n.int + n.int64 + n.uint64 + n.string;
    this.charge(total, "values", () => `input ${printable(name, 80)} holds ${total.toLocaleString("en-US")} values; a Predict's inputs hold at most ${this.maxValues.toLocaleString("en-US")} in all (2^20 ids + ${VALUES_PER_EXAMPLE} per --max-batch example)`);
    return this.fill(new WireReader(this.buf, start, end), n);
  }

  /** Pass one: how many values each read field holds, packed (a run) and unpacked (one per tag) alike. */
  private count(r: WireReader): Counts {
    const n: Counts = { float: 0, double: 0, int: 0, int64: 0, uint64: 0, string: 0 };
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === T_FLOAT) n.float += this.countFixed(r, wire, WIRE_I32, 4, "float_val");
      else if (field === T_DOUBLE) n.double += this.countFixed(r, wire, WIRE_I64, 8, "double_val");
      else if (field === T_INT) n.int += this.countVarints(r, wire, "int_val");
      else if (field === T_INT64) n.int64 += this.countVarints(r, wire, "int64_val");
      else if (field === T_UINT64) n.uint64 += this.countVarints(r, wire, "uint64_val");
      else if (field === T_STRING) {
        if (wire !== WIRE_LEN) throw new WireError(`string_val has wire type ${wire}, not bytes`);
        r.bytes();
        n.string++;
      } else r.skip(wire);
    }
    return n;
  }

  private countFixed(r: WireReader, wire: number, single: number, width: number, name: string): number {
    if (wire === single) {
      r.skip(wire);
      return 1;
    }
    if (wire !== WIRE_LEN) throw new WireError(`${name} has wire type ${wire}`);
    const { start, end } = r.bytes();
    if ((end - start) % width !== 0) throw new WireError(`packed ${name} of ${end - start} bytes is not a multiple of ${width}`);
    return (end - start) / width;
  }

  private countVarints(r: WireReader, wire: number, name: string): number {
    if (wire === WIRE_VARINT) {
      r.varint64();
      return 1;
    }
    if (wire !== WIRE_LEN) throw new WireError(`${name} has wire type ${wire}`);
    const { start, end } = r.bytes();
    const b = this.buf;
    if (end > start && b[end - 1]! >= 0x80) throw new WireError(`packed ${name} ends inside a varint`);
    let values = 0;
    for (let i = start; i < end; i++) if (b[i]! < 0x80) values++;
    return values;
  }

  /** Pass two: the tensor, its arrays sized by pass one's counts. */
  private fill(r: WireReader, n: Counts): TensorProtoMsg {
    const t: TensorProtoMsg = {};
    const float = n.float ? new Float32Array(n.float) : null;
    const double = n.double ? new Float64Array(n.double) : null;
    const int = n.int ? new Int32Array(n.int) : null;
    const int64 = n.int64 ? new BigInt64Array(n.int64) : null;
    const uint64 = n.uint64 ? new BigUint64Array(n.uint64) : null;
    // Views made once: an unpacked field comes one value per tag.
    const floatBytes = float && new Uint8Array(float.buffer);
    const doubleBytes = double && new Uint8Array(double.buffer);
    const int64Words = int64 && new Uint32Array(int64.buffer);
    const uint64Words = uint64 && new Uint32Array(uint64.buffer);
    const strings: Uint8Array[] = [];
    // Where the next value of each goes (in words for the 64-bit ones).
    let fi = 0, di = 0, ii = 0, li = 0, ui = 0;
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === T_DTYPE) {
        this.varint(r, tag, "dtype");
        // An enum is an int32: its high word is the sign's.
        const v = r.lo | 0;
        t.dtype = DTYPES[v] ?? (v as unknown as string);
      } else if (field === T_SHAPE) t.tensor_shape = this.shape(this.sub(r, tag, "tensor_shape"));
      else if (field === T_CONTENT) {
        if (wire !== WIRE_LEN) throw new WireError(`tensor_content has wire type ${wire}, not bytes`);
        const { start, end } = r.bytes();
        t.tensor_content = this.buf.subarray(start, end);
      } else if (field === T_FLOAT) fi = this.fillFixed(r, wire, floatBytes!, fi, 4);
      else if (field === T_DOUBLE) di = this.fillFixed(r, wire, doubleBytes!, di, 8);
      else if (field === T_INT) {
        // An int32's varint: a negative one is sign-extended to 10 bytes, its low word the value.
        if (wire === WIRE_VARINT) {
          r.varint64();
          int![ii++] = r.lo;
        } else for (const run = r.sub(); !run.done(); ) {
          run.varint64();
          int![ii++] = run.lo;
        }
      } else if (field === T_INT64) li = this.fillWords(r, wire, int64Words!, li);
      else if (field === T_UINT64) ui = this.fillWords(r, wire, uint64Words!, ui);
      else if (field === T_STRING) {
        const { start, end } = r.bytes();
        strings.push(this.buf.subarray(start, end));
      } else r.skip(wire);
    }
    if (float) t.float_val = float;
    if (double) t.double_val = double;
    if (int) t.int_val = int;
    if (int64) t.int64_val = int64;
    if (uint64) t.uint64_val = uint64;
    if (strings.length) t.string_val = strings;
    return t;
  }

  /** Floats or doubles, one (wire type I32/I64) or a packed run, copied as bytes: the host is little-endian, as the wire. */
  private fillFixed(r: WireReader, wire: number, into: Uint8Array, at: number, width: number): number {
    if (wire !== WIRE_LEN) {
      into.set(this.buf.subarray(r.pos, r.pos + width), at * width);
      r.skip(wire);
      return at + 1;
    }
    const { start, end } = r.bytes();
    // An empty run is legal and may be all the field has: then there is no array to copy into.
    if (end > start) into.set(this.buf.subarray(start, end), at * width);
    return at + (end - start) / width;
  }

  /** 64-bit varints, one or a packed run, as lo/hi word pairs from word `at`; returns the next word. */
  private fillWords(r: WireReader, wire: number, words: Uint32Array, at: number): number {
    if (wire === WIRE_VARINT) {
      r.varint64();
      words[at] = r.lo;
      words[at + 1] = r.hi;
      return at + 2;
    }
    for (const run = r.sub(); !run.done(); at += 2) {
      run.varint64();
      words[at] = run.lo;
      words[at + 1] = run.hi;
    }
    return at;
  }

  private shape(r: WireReader): NonNullable<TensorProtoMsg["tensor_shape"]> {
    const shape: NonNullable<TensorProtoMsg["tensor_shape"]> = {};
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === SHAPE_DIM) {
        this.charge(1, "tensor_shape dims");
        const d = this.sub(r, tag, "tensor_shape.dim");
        const dim: { size?: string } = {};
        while (!d.done()) {
          const t = d.tag();
          if (t >>> 3 === DIM_SIZE) {
            this.varint(d, t, "tensor_shape.dim.size");
            dim.size = this.int64Text(d);
          } else d.skip(t & 7);
        }
        (shape.dim ??= []).push(dim);
      } else if (field === SHAPE_UNKNOWN_RANK) {
        this.varint(r, tag, "tensor_shape.unknown_rank");
        shape.unknown_rank = r.lo !== 0 || r.hi !== 0;
      } else r.skip(tag & 7);
    }
    return shape;
  }
}
