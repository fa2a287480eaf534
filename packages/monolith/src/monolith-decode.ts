import { hashedIdV2, int64IdV2, isValidV2, normalizeCount, slotOfV2, v1HiToV2Hi, type FeatureList, type SlotKind } from "@pangea/features";
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, BatchSizeError, WireError, FitError, WireReader } from "./protowire.js";

/** Names Monolith gives to the label, line id and weight when they travel as named features. */
export const LABEL_FEATURE = "__LABEL__";
export const LINE_ID_FEATURE = "__LINE_ID__";
export const WEIGHT_FEATURE = "instance_weight";

/**
 * One sample being assembled from a decoded message: its feature ids (v2, as
 * word pairs, each with its column), dense values and labels. Reused from
 * sample to sample to avoid per-record allocation.
 */
export class SampleAssembler {
  words = new Uint32Array(512);
  columns = new Int32Array(256);
  count = 0;
  readonly dense: Float32Array;
  labels: number[] = [];
  weight = 1;
  lineId: Uint8Array | null = null;
  /** Ids whose slot is not in the feature list: read, counted, not trained on. */
  unconfiguredIds = 0;
  private readonly scratch = new Uint32Array(2);
  /** The sample each slot column and dense offset was last named in (a count of resets): one named twice is refused. */
  private sample = 1;
  private readonly slotNamed: Uint32Array;
  private readonly denseNamed: Uint32Array;
  /** The label field and the special features this sample gave (SPECIAL bits). */
  private special = 0;

  constructor(readonly list: FeatureList) {
    this.dense = new Float32Array(list.numDense);
    this.slotNamed = new Uint32Array(list.slotIds.length);
    this.denseNamed = new Uint32Array(list.numDense);
  }

  reset(): void {
    this.count = 0;
    this.dense.fill(0);
    this.labels.length = 0;
    this.weight = 1;
    this.lineId = null;
    this.special = 0;
    if (++this.sample > 0xffffffff) {
      this.sample = 1;
      this.slotNamed.fill(0);
      this.denseNamed.fill(0);
    }
  }

  /**
   * Notes that this sample names a feature. A second time is refused: protobuf would take both, a dense feature keeping
   * its last value and a slot the ids of both, where Monolith's writers name each feature once. Names the feature
   * list does not declare are not tracked (they are not read).
   */
  named(name: string, slot: { column: number } | undefined, dense: { offset: number } | undefined): void {
    const bit = SPECIAL.get(name) ?? 0;
    if (bit) {
      if (this.special & bit) throw twice(name);
      if (bit === LABEL_BIT && this.special & LABEL_FIELD) throw bothLabels();
      this.special |= bit;
      return;
    }
    const seen = slot ? this.slotNamed : dense ? this.denseNamed : null;
    if (!seen) return;
    const at = slot ? slot.column : dense!.offset;
    if (seen[at] === this.sample) throw twice(name);
    seen[at] = this.sample;
  }

  /** An Example's label field (101): refused beside a __LABEL__ feature, which would add its labels after these. */
  labelField(): void {
    if (this.special & LABEL_BIT) throw bothLabels();
    this.special |= LABEL_FIELD;
  }

  private push(lo: number, hi: number, column: number): void {
    if (this.count === this.columns.length) {
      const w = new Uint32Array(this.words.length * 2);
      w.set(this.words);
      this.words = w;
      const c = new Int32Array(this.columns.length * 2);
      c.set(this.columns);
      this.columns = c;
    }
    this.words[2 * this.count] = lo;
    this.words[2 * this.count + 1] = hi;
    this.columns[this.count++] = column;
  }

  addV2(lo: number, hi: number): void {
    if (!isValidV2(hi)) throw new WireError(`fid ${(BigInt(hi) << 32n) | BigInt(lo)} has the reserved top bit set, which no v2 fid may`);
    const column = this.list.columnOfSlot[slotOfV2(hi)]!;
    if (column < 0) this.unconfiguredIds++;
    else this.push(lo, hi, column);
  }

  addV1(lo: number, hi: number): void {
    this.addV2(lo, v1HiToV2Hi(hi));
  }

  /** Hashes a raw value (bytes[start, end)) into an id of the named feature's slot. */
  addRaw(bytes: Uint8Array, start: number, end: number, column: number, slot: number): void {
    hashedIdV2(bytes, start, end, slot, this.scratch, 0);
    this.push(this.scratch[0]!, this.scratch[1]!, column);
  }

  addInt64(lo: number, hi: number, column: number, slot: number): void {
    int64IdV2(lo, hi, slot, this.scratch, 0);
    this.push(this.scratch[0]!, this.scratch[1]!, column);
  }

  /** A 64-bit integer value of a configured feature, as its kind reads it: an int64 to hash, or a v1/v2 id. */
  addInteger(feature: { column: number; slot: number; kind: SlotKind }, lo: number, hi: number): void {
    if (feature.kind === "int64") this.addInt64(lo, hi, feature.column, feature.slot);
    else if (feature.kind === "fid_v1") this.addV1(lo, hi);
    else this.addV2(lo, hi);
  }
}

/** Monolith's named features that are not features (bits of SampleAssembler's special), and the label field's bit. */
const SPECIAL = new Map<string, number>([[LABEL_FEATURE, 1], [WEIGHT_FEATURE, 2], [LINE_ID_FEATURE, 4]]);
const LABEL_BIT = 1;
const LABEL_FIELD = 8;
const twice = (name: string) => new WireError(`feature '${shortName(name)}' is named twice in one example; Monolith's writers name each feature once (protobuf would keep both, a dense feature its last value)`);
const bothLabels = () => new WireError(`the example gives labels both in its label field and in a '${LABEL_FEATURE}' feature; give them in one of the two`);

/** What a feature's name maps to in the feature list. */
function targetOf(list: FeatureList, name: string) {
  return { slot: list.slotByName.get(name), dense: list.denseByName.get(name) };
}

const utf8 = new TextDecoder();

function readName(r: WireReader): string {
  const { start, end } = r.bytes();
  return utf8.decode(r.buf.subarray(start, end));
}

/** Dense values of one named feature, written at its offset; fewer than its size leave 0s (missing), more are refused. */
class DenseWriter {
  private i = 0;
  constructor(private readonly asm: SampleAssembler, private readonly name: string, private readonly target: { offset: number; size: number; log1p: boolean } | undefined, private readonly isLabel: boolean) {}
  add(v: number): void {
    if (this.isLabel) this.asm.labels.push(v);
    else if (this.target) {
      if (this.i === this.target.size) throw new FitError(`dense feature '${shortName(this.name)}' holds more than ${this.target.size} value${this.target.size === 1 ? "" : "s"}, the size the feature list declares`);
      this.asm.dense[this.target.offset + this.i++] = this.target.log1p ? normalizeCount(v) : v;
    }
  }
}

/** A feature's name in a message: the file's bytes, cut (the message's edge escapes what cannot be printed). */
const shortName = (name: string) => (name.length > 40 ? `${name.slice(0, 40)}…` : name);

/** A signed int64's value as a number (exact below 2^53), from its two 32-bit words. */
const int64Number = (lo: number, hi: number) => (hi | 0) * 4294967296 + (lo >>> 0);

/**
 * Where a named feature's int64 and bytes values go, by what the feature
 * list declares it: a slot of that kind hashes them, a dense feature takes
 * int64 values as numbers (Monolith files often hold counts as int64_list).
 * A value of a kind the declaration cannot take is refused: dropping it
 * trained the slot on nothing, without a word.
 */
function valueSinks(asm: SampleAssembler, name: string, slot: { column: number; slot: number; kind: SlotKind } | undefined, floats: DenseWriter | null) {
  const wrong = (held: string) =>
    new FitError(
      slot
        ? `feature '${shortName(name)}' holds ${held} values; the feature list declares it a slot of type ${slot.kind}${held === "bytes" ? " (strings are type bytes)" : held === "int64" ? " (integers to hash are type int64)" : " (a float feature is dense)"}`
        : `dense feature '${shortName(name)}' holds ${held} values; it takes numbers (float, double or int64)`,
    );
  return {
    raw: (buf: Uint8Array, start: number, end: number) => {
      if (slot?.kind === "bytes") asm.addRaw(buf, start, end, slot.column, slot.slot);
      else if (slot || floats) throw wrong("bytes");
    },
    int: (lo: number, hi: number) => {
      if (slot?.kind === "int64") asm.addInt64(lo, hi, slot.column, slot.slot);
      else if (slot) throw wrong("int64");
      else floats?.add(int64Number(lo, hi));
    },
    float: (v: number) => {
      if (slot) throw wrong("float");
      floats?.add(v);
    },
  };
}

/** Decodes a monolith.io.proto.Feature (Example's and ExampleBatch's feature) of the given name into `asm`. */
export function decodeExampleFeature(r: WireReader, name: string, asm: SampleAssembler): void {
  const { slot, dense } = targetOf(asm.list, name);
  asm.named(name, slot, dense);
  const isLabel = name === LABEL_FEATURE;
  const isWeight = name === WEIGHT_FEATURE;
  const floats = new DenseWriter(asm, name, dense, isLabel);
  const sink = valueSinks(asm, name, slot, dense || isLabel ? floats : null);
  const onFloat = (v: number) => (isWeight ? (asm.weight = v) : isLabel ? floats.add(v) : sink.float(v));
  const onRaw = (start: number, end: number) => {
    if (name === LINE_ID_FEATURE) asm.lineId = r.buf.subarray(start, end);
    else sink.raw(r.buf, start, end);
  };
  const onInt = sink.int;
  const listOf = (sub: WireReader, each: (item: WireReader, wt: number) => void) => {
    while (!sub.done()) {
      const t = sub.tag();
      if (t >>> 3 === 1) each(sub, t & 7);
      else sub.skip(t & 7);
    }
  };
  const listsOf = (sub: WireReader, each: (item: WireReader, wt: number) => void) => {
    while (!sub.done()) {
      const t = sub.tag();
      if (t >>> 3 === 1 && (t & 7) === WIRE_LEN) listOf(sub.sub(), each);
      else sub.skip(t & 7);
    }
  };
  while (!r.done()) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    switch (field) {
      case 1: // fid_v1_list
        listOf(r.sub(), (s, w) => s.repeatedFixed64(w, (lo, hi) => asm.addV1(lo, hi)));
        break;
      case 2: // fid_v2_list
        listOf(r.sub(), (s, w) => s.repeatedFixed64(w, (lo, hi) => asm.addV2(lo, hi)));
        break;
      case 3: // float_list
        listOf(r.sub(), (s, w) => s.repeatedFloat(w, onFloat));
        break;
      case 4: // double_list
        listOf(r.sub(), (s, w) => s.repeatedDouble(w, onFloat));
        break;
      case 5: // int64_list
        listOf(r.sub(), (s, w) => s.repeatedVarint64(w, onInt));
        break;
      case 6: // bytes_list
        listOf(r.sub(), (s, w) => {
          if (w !== WIRE_LEN) throw new WireError(`bytes value with wire type ${w}`);
          const { start, end } = s.bytes();
          onRaw(start, end);
        });
        break;
      case 7: // fid_v2_lists
        listsOf(r.sub(), (s, w) => s.repeatedFixed64(w, (lo, hi) => asm.addV2(lo, hi)));
        break;
      case 8: // float_lists
        listsOf(r.sub(), (s, w) => s.repeatedFloat(w, onFloat));
        break;
      case 9: // double_lists
        listsOf(r.sub(), (s, w) => s.repeatedDouble(w, onFloat));
        break;
      case 10: // int64_lists
        listsOf(r.sub(), (s, w) => s.repeatedVarint64(w, onInt));
        break;
      case 11: // bytes_lists
        listsOf(r.sub(), (s, w) => {
          if (w !== WIRE_LEN) throw new WireError(`bytes value with wire type ${w}`);
          const { start, end } = s.bytes();
          onRaw(start, end);
        });
        break;
      case 12: // int64_value
        if (wt !== WIRE_VARINT) throw new WireError(`int64_value with wire type ${wt}`);
        r.varint64();
        onInt(r.lo, r.hi);
        break;
      case 13: // float_value
        if (wt !== WIRE_I32) throw new WireError(`float_value with wire type ${wt}`);
        onFloat(r.float32());
        break;
      case 14: // double_value
        if (wt !== WIRE_I64) throw new WireError(`double_value with wire type ${wt}`);
        onFloat(r.float64());
        break;
      case 15: {
        // bytes_value
        if (wt !== WIRE_LEN) throw new WireError(`bytes_value with wire type ${wt}`);
        const { start, end } = r.bytes();
        onRaw(start, end);
        break;
      }
      case 16: // fid_v1_lists
        listsOf(r.sub(), (s, w) => s.repeatedFixed64(w, (lo, hi) => asm.addV1(lo, hi)));
        break;
      default:
        r.skip(wt);
    }
  }
}

/**
 * Finds a length-delimited sub-message's name (field 1) and its feature payload (field `featureField`). A second
 * payload is refused, not merged as protobuf merges a singular message field given twice: Monolith's writers give
 * it once, but an ExampleBatch's feature list (the same fields) holds one per example, and taken as one Example it
 * was silently its last example alone.
 */
function namedFeature(r: WireReader, featureField: number): { name: string; feature: { start: number; end: number } | null } {
  let name = "";
  let feature: { start: number; end: number } | null = null;
  let features = 0;
  while (!r.done()) {
    const t = r.tag();
    if (t >>> 3 === 1 && (t & 7) === WIRE_LEN) name = readName(r);
    else if (t >>> 3 === featureField && (t & 7) === WIRE_LEN) {
      feature = r.bytes();
      features++;
    } else r.skip(t & 7);
  }
  if (features > 1) throw new WireError(`named feature '${name}' holds ${features} features where an Example's holds one; an ExampleBatch's feature list holds one per example (--format examplebatch)`);
  return { name, feature };
}

/** monolith.io.proto.Example into `asm` (which the caller has reset). */
export function decodeExample(buf: Uint8Array, start: number, end: number, asm: SampleAssembler): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === WIRE_LEN) {
      const nf = namedFeature(r.sub(), 2);
      if (nf.feature) decodeExampleFeature(new WireReader(buf, nf.feature.start, nf.feature.end), nf.name, asm);
    } else if (field === 100 && wt === WIRE_LEN) {
      const { start: s, end: e } = r.bytes();
      asm.lineId = buf.subarray(s, e);
    } else if (field === 101) {
      asm.labelField();
      r.repeatedFloat(wt, (v) => asm.labels.push(v));
    } else if (field === 102) {
      if (wt !== WIRE_I32) throw new WireError(`instance_weight with wire type ${wt}`);
      asm.weight = r.float32();
    } else r.skip(wt);
  }
}

/** idl.matrix.proto.Feature (an Instance's feature column) into `asm`. */
function decodeInstanceFeature(r: WireReader, asm: SampleAssembler): void {
  // proto2 writes the name (field 1) first, but a reader may not rely on field order.
  const startPos = r.pos;
  let name = "";
  while (!r.done()) {
    const t = r.tag();
    if (t >>> 3 === 1 && (t & 7) === WIRE_LEN) name = readName(r);
    else r.skip(t & 7);
  }
  r.pos = startPos;
  const { slot, dense } = targetOf(asm.list, name);
  asm.named(name, slot, dense);
  const floats = new DenseWriter(asm, name, dense, false);
  const sink = valueSinks(asm, name, slot, dense ? floats : null);
  const onRaw = (start: number, end: number) => sink.raw(r.buf, start, end);
  const onInt = sink.int;
  while (!r.done()) {
    const t = r.tag();
    const wt = t & 7;
    switch (t >>> 3) {
      case 2:
        r.repeatedFixed64(wt, (lo, hi) => asm.addV2(lo, hi));
        break;
      case 3:
        r.repeatedFloat(wt, sink.float);
        break;
      case 4:
        r.repeatedVarint64(wt, onInt);
        break;
      case 5: {
        if (wt !== WIRE_LEN) throw new WireError(`bytes_value with wire type ${wt}`);
        const { start, end } = r.bytes();
        onRaw(start, end);
        break;
      }
      case 6:
      case 7:
      case 8:
      case 9: {
        const field = t >>> 3;
        const sub = r.sub();
        while (!sub.done()) {
          const it = sub.tag();
          if (it >>> 3 !== 1) {
            sub.skip(it & 7);
            continue;
          }
          if (field === 6) sub.repeatedFixed64(it & 7, (lo, hi) => asm.addV2(lo, hi));
          else if (field === 7) sub.repeatedFloat(it & 7, sink.float);
          else if (field === 8) sub.repeatedVarint64(it & 7, onInt);
          else {
            const { start, end } = sub.bytes();
            onRaw(start, end);
          }
        }
        break;
      }
      default:
        r.skip(wt);
    }
  }
}

/** parser.proto.Instance into `asm` (which the caller has reset). */
export function decodeInstance(buf: Uint8Array, start: number, end: number, asm: SampleAssembler): void {
  const r = new WireReader(buf, start, end);
  while (!r.done()) {
    const tag = r.tag();
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1:
        r.repeatedFixed64(wt, (lo, hi) => asm.addV1(lo, hi));
        break;
      case 3:
        r.repeatedFloat(wt, (v) => asm.labels.push(v));
        break;
      case 4:
        if (wt !== WIRE_I32) throw new WireError(`instance_weight with wire type ${wt}`);
        asm.weight = r.float32();
        break;
      case 5: {
        if (wt !== WIRE_LEN) throw new WireError(`line_id with wire type ${wt}`);
        const { start: s, end: e } = r.bytes();
        asm.lineId = buf.subarray(s, e);
        break;
      }
      case 9:
        if (wt !== WIRE_LEN) throw new WireError(`feature with wire type ${wt}`);
        decodeInstanceFeature(r.sub(), asm);
        break;
      default:
        r.skip(wt);
    }
  }
}

/**
 * monolith.io.proto.ExampleBatch, column-major: every named feature list
 * holds one feature per example (INDIVIDUAL) or one for all (SHARED).
 * Calls `each` once per example with `asm` filled.
 */
/** The most examples one ExampleBatch may expand to: batch_size is a varint, and with SHARED lists alone nothing else bounds it. */
export const MAX_EXAMPLE_BATCH = 1 << 16;

export function decodeExampleBatch(buf: Uint8Array, start: number, end: number, asm: SampleAssembler, each: (index: number) => void, maxExamples = MAX_EXAMPLE_BATCH): number {
  const r = new WireReader(buf, start, end);
  const lists: { name: string; shared: boolean; features: { start: number; end: number }[] }[] = [];
  let batchSize = 0;
  while (!r.done()) {
    const tag = r.tag();
    const wt = tag & 7;
    if (tag >>> 3 === 1 && wt === WIRE_LEN) {
      const s = r.sub();
      const list = { name: "", shared: false, features: [] as { start: number; end: number }[] };
      while (!s.done()) {
        const t = s.tag();
        const f = t >>> 3;
        if (f === 1 && (t & 7) === WIRE_LEN) list.name = readName(s);
        else if (f === 2 && (t & 7) === WIRE_LEN) list.features.push(s.bytes());
        else if (f === 3 && (t & 7) === WIRE_VARINT) list.shared = s.varint32() === 1;
        else s.skip(t & 7);
      }
      lists.push(list);
    } else if (tag >>> 3 === 3 && wt === WIRE_VARINT) {
      batchSize = r.varint32();
    } else r.skip(wt);
  }
  if (batchSize > maxExamples) throw new BatchSizeError(batchSize, maxExamples);
  for (const l of lists) {
    const need = l.shared ? 1 : batchSize;
    if (l.features.length !== need) {
      throw new WireError(`feature list '${l.name}' holds ${l.features.length} features, expected ${need} (${l.shared ? "SHARED" : "INDIVIDUAL"}, batch_size ${batchSize})`);
    }
  }
  for (let i = 0; i < batchSize; i++) {
    asm.reset();
    for (const l of lists) {
      const f = l.features[l.shared ? 0 : i]!;
      decodeExampleFeature(new WireReader(buf, f.start, f.end), l.name, asm);
    }
    each(i);
  }
  return batchSize;
}

/** The three Monolith record kinds a file, topic or request carries. */
export type MessageKind = "instance" | "example" | "examplebatch";

/**
 * Decodes one record of `kind`, calling `each` once per sample with `asm` filled: once for an Instance or an
 * Example, once per example of an ExampleBatch (at most `maxExamples`). Throws the decoders' WireError, or what `each`
 * throws; the samples a batch passed to `each` before its bad example are the caller's to drop.
 */
export function decodeRecordOfKind(kind: MessageKind, buf: Uint8Array, asm: SampleAssembler, each: (index: number) => void, maxExamples = MAX_EXAMPLE_BATCH): void {
  if (kind === "examplebatch") {
    decodeExampleBatch(buf, 0, buf.length, asm, each, maxExamples);
    return;
  }
  asm.reset();
  if (kind === "instance") decodeInstance(buf, 0, buf.length, asm);
  else decodeExample(buf, 0, buf.length, asm);
  each(0);
}
