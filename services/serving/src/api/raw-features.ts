import { printableBytes, valueSnippet } from "@pangea/kit";
import { bigIntToWords, normalizeCount, parseCount, slotNamesOf, type SlotKind } from "@pangea/features";
import type { ModelShape } from "@pangea/model";
import { SampleAssembler, WireError } from "@pangea/monolith";
import { ServingErrors } from "../errors.js";
import type { Examples } from "../model/servable.js";
import type { RawLayout } from "../model/raw-layout.js";
import { MAX_IDS_PER_CELL, RaggedExamples } from "./ragged-examples.js";
import { checkBatchSize } from "./batch-size.js";

/** Raw values by position: every dense value, and one value per slot in the model's slot order. */
export const INPUT_DENSE_VALUES = "dense_values";
export const INPUT_SLOT_VALUES = "slot_values";

/** One raw input: per example, the values given for it (a named feature may have several). */
export type RawColumn = readonly (readonly unknown[])[];

const bad = (msg: string) => ServingErrors.create("SERVING_ERR_BAD_INPUT", msg);
const utf8In = new TextEncoder();
const utf8Out = new TextDecoder();
/** Where a string value's UTF-8 is written before it is hashed or parsed; grown for a longer one, up to SCRATCH_MAX. */
let scratch = new Uint8Array(256);
/** Past this, a string gets an array of its own: one huge value must not pin its size for the process's life. */
const SCRATCH_MAX = 1 << 16;
/** The array utf8Of last wrote to: scratch, or a longer string's own. */
let utf8 = scratch;

/**
 * A string's UTF-8 in `utf8` (valid until the next call), its length
 * returned. TextEncoder.encode made a new array per value: 40% of turning
 * 4,096 Criteo rows into examples, measured. ASCII is copied by hand; past
 * the first other character the rest goes through encodeInto.
 */
function utf8Of(s: string): number {
  const n = s.length;
  const need = n * 3;
  if (need > scratch.length && need <= SCRATCH_MAX) scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(need, scratch.length * 2)));
  const out = need <= scratch.length ? scratch : new Uint8Array(need);
  utf8 = out;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return i + utf8In.encodeInto(s.slice(i), out.subarray(i)).written;
    out[i] = c;
  }
  return n;
}

function show(v: unknown): string {
  if (v instanceof Uint8Array) return `'${printableBytes(v)}'`;
  return valueSnippet(v);
}

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * A 64-bit integer given as a JSON number, a decimal string or decimal bytes; for an integer that is none of 64 bits,
 * why (where "expected an integer" would mislead: one past 64 bits, a JSON number past 2^53); null for anything else.
 */
function integerOf(v: unknown): bigint | { outOfRange: string } | null {
  if (typeof v === "number") {
    if (Number.isSafeInteger(v)) return BigInt(v);
    if (!Number.isInteger(v)) return null;
    return { outOfRange: v < Number(INT64_MIN) || v > Number(UINT64_MAX) ? `${v} is outside the 64-bit range (-2^63 .. 2^64-1)` : `${v} is beyond ±2^53, where a JSON number has lost its last digits: give it as a decimal string` };
  }
  if (typeof v === "bigint") return v;
  const s = v instanceof Uint8Array ? utf8Out.decode(v) : typeof v === "string" ? v : null;
  if (s === null || !/^-?\d+$/.test(s)) return null;
  // Any digits past 20 are past 2^64 (leading zeros aside), however many there are: not made a bigint.
  const digits = s.replace(/^(-?)0+(?=\d)/, "$1");
  const n = digits.replace("-", "").length > 20 ? null : BigInt(digits);
  if (n === null || n < INT64_MIN || n > UINT64_MAX) return { outOfRange: `${show(v)} is outside the 64-bit range (-2^63 .. 2^64-1)` };
  // At most 20 digits as written (leading zeros count).
  return s.replace("-", "").length <= 20 ? n : null;
}

/** True when `name` is a raw input of `layout`: a feature by name, or the positional dense_values and slot_values. */
export function isRawInput(layout: RawLayout, name: string): boolean {
  return name === INPUT_DENSE_VALUES || name === INPUT_SLOT_VALUES || layout.list.slotByName.has(name) || layout.list.denseByName.has(name);
}

const KIND_EXPECTS: Record<SlotKind, string> = {
  bytes: "a string (its bytes are hashed)",
  int64: "an integer (its 8 bytes are hashed); above 2^53 as a decimal string",
  fid_v1: "a v1 feature id; above 2^53 as a decimal string",
  fid_v2: "a v2 feature id; above 2^53 as a decimal string",
};

/**
 * Turns raw values into examples exactly as training reads the same values:
 * a slot's value is hashed (or taken as an id) by the shared assembler
 * compute decodes records with, a dense value gets the layout's transform.
 */
export class RawReader {
  private readonly asm: SampleAssembler;
  private readonly words = new Uint32Array(2);
  private readonly slotNames: string[];

  constructor(private readonly layout: RawLayout) {
    this.asm = new SampleAssembler(layout.list);
    this.slotNames = layout.list.config.slots.map((s) => s.name);
  }

  /** True when `name` is a raw input of this layout. */
  knows(name: string): boolean {
    return isRawInput(this.layout, name);
  }

  /** The raw inputs this layout takes, for error messages. */
  describe(spec: ModelShape): string {
    return `of ${this.layout.source}: ${INPUT_DENSE_VALUES} [B, ${spec.numDense}] and ${INPUT_SLOT_VALUES} [B, ${spec.numSlots}], or features by name (${this.featureNames()})`;
  }

  /** Examples from raw inputs, all of which this layout knows. */
  examples(inputs: ReadonlyMap<string, RawColumn>, spec: ModelShape, maxBatch: number): Examples {
    const names = [...inputs.keys()];
    const positional = names.filter((n) => n === INPUT_DENSE_VALUES || n === INPUT_SLOT_VALUES);
    if (positional.length && positional.length !== names.length) {
      throw bad(`${positional.join(" and ")} give raw values by position and cannot be mixed with features by name; got ${names.join(", ")}`);
    }
    const B = inputs.get(names[0]!)!.length;
    for (const n of names) {
      const b = inputs.get(n)!.length;
      if (b !== B) throw bad(`raw inputs disagree on the batch size: ${names[0]} has ${B} examples, ${n} has ${b}`);
    }
    checkBatchSize(B, maxBatch);
    const out = new RaggedExamples(spec, maxBatch, names.length === 1 ? names[0]! : `${names.slice(0, 3).join(", ")}${names.length > 3 ? ", ..." : ""}`, slotNamesOf(this.layout.list));
    for (let e = 0; e < B; e++) {
      this.asm.reset();
      for (const n of names) {
        const values = inputs.get(n)![e]!;
        if (n === INPUT_DENSE_VALUES) this.addDenseRow(values, e);
        else if (n === INPUT_SLOT_VALUES) this.addSlotRow(values, e);
        else this.addNamed(n, values, e);
      }
      out.take(this.asm);
    }
    return out.finish();
  }

  private featureNames(): string {
    const all = [...this.slotNames, ...this.layout.list.config.dense.map((d) => d.name)];
    return all.length > 8 ? `${all.slice(0, 8).join(", ")}, ... ${all.length} in all` : all.join(", ");
  }

  private addDenseRow(values: readonly unknown[], e: number): void {
    const list = this.layout.list;
    if (values.length !== list.numDense) {
      throw bad(`input ${INPUT_DENSE_VALUES}, example ${e}: expected ${list.numDense} values (${list.config.dense.map((d) => (d.size > 1 ? `${d.name}[${d.size}]` : d.name)).join(", ")}), got ${values.length}`);
    }
    for (const [name, d] of list.denseByName) {
      for (let k = 0; k < d.size; k++) this.setDense(d, k, values[d.offset + k], () => `input ${INPUT_DENSE_VALUES}, example ${e}, value ${d.offset + k} (${name})`);
    }
  }

  private addSlotRow(values: readonly unknown[], e: number): void {
    if (values.length !== this.slotNames.length) {
      throw bad(`input ${INPUT_SLOT_VALUES}, example ${e}: expected ${this.slotNames.length} values, one per slot (${this.slotNames.join(", ")}), got ${values.length}`);
    }
    values.forEach((v, column) => {
      const name = this.slotNames[column]!;
      this.addSlotValue(this.layout.list.slotByName.get(name)!, v, () => `input ${INPUT_SLOT_VALUES}, example ${e}, value ${column} (${name})`);
    });
  }

  private addNamed(name: string, values: readonly unknown[], e: number): void {
    const where = () => `input ${name}, example ${e}`;
    const slot = this.layout.list.slotByName.get(name);
    if (slot) {
      // As for ids (tensors.ts): one cell's values are pooled in one pass, so their number is bounded the same.
      if (values.length > MAX_IDS_PER_CELL) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `${where()} holds ${values.length} values; a cell takes at most ${MAX_IDS_PER_CELL}`);
      for (const v of values) this.addSlotValue(slot, v, where);
      return;
    }
    const d = this.layout.list.denseByName.get(name)!;
    if (values.length > d.size) throw bad(`${where()}: expected at most ${d.size} value${d.size > 1 ? "s" : ""}, got ${values.length}`);
    values.forEach((v, k) => this.setDense(d, k, v, where));
  }

  /** A slot's value: null is missing; anything else becomes an id as training makes it. */
  private addSlotValue(s: { column: number; slot: number; kind: SlotKind }, v: unknown, where: () => string): void {
    if (v === null || v === undefined) return;
    if (s.kind === "bytes") {
      if (typeof v === "string") {
        const n = utf8Of(v); // first: it sets utf8
        this.asm.addRaw(utf8, 0, n, s.column, s.slot);
      } else if (v instanceof Uint8Array) this.asm.addRaw(v, 0, v.length, s.column, s.slot);
      else throw bad(`${where()}: expected ${KIND_EXPECTS.bytes}, got ${show(v)}`);
      return;
    }
    const n = integerOf(v);
    if (typeof n !== "bigint") throw bad(`${where()}: ${n?.outOfRange ?? `expected ${KIND_EXPECTS[s.kind]}, got ${show(v)}`}`);
    bigIntToWords(n, this.words, 0);
    try {
      this.asm.addInteger(s, this.words[0]!, this.words[1]!);
    } catch (err) {
      if (err instanceof WireError) throw bad(`${where()}: ${err.message}`);
      throw err;
    }
  }

  /** Dense value k of a feature; null is missing and reads as 0, as in training (so is "" for a Criteo count, as an empty TSV field). */
  private setDense(d: { offset: number; log1p: boolean }, k: number, v: unknown, where: () => string): void {
    const mode = this.layout.dense;
    let x = mode === "numbers" ? numberOf(v) : countOf(v);
    if (Number.isNaN(x) && mode === "counts or numbers") x = numberOf(v);
    if (Number.isNaN(x)) throw bad(`${where()}: expected ${DENSE_EXPECTS[mode]}, got ${show(v)}`);
    // A count of 309 digits or more reads as Infinity, as does a dense value past float32's range once stored: training
    // refuses such a record, and the forward pass would answer with a made-up probability.
    if (!Number.isFinite(x)) throw bad(`${where()}: ${show(v)} is too large a count (it reads as Infinity)`);
    this.asm.dense[d.offset + k] = d.log1p ? normalizeCount(x) : x;
    if (!Number.isFinite(this.asm.dense[d.offset + k]!)) throw bad(`${where()}: ${show(v)} is beyond float32's range (about ±3.4e38), which the model takes`);
  }
}

const DENSE_EXPECTS = {
  counts: 'an integer count (or "" or null for missing)',
  numbers: "a finite number (or null for missing)",
  "counts or numbers": 'an integer count or a finite number (or "" or null for missing)',
} as const;

/** A Criteo count, read as compute reads the TSV field: digits with an optional minus, empty = missing. */
function countOf(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === "bigint") v = String(v);
  // Any whole number, past 2^53 too (a JSON number's lost last digits do not matter to log1p; a TSV's digits past 2^53
  // read the same), and one too large for a double as what it reads as, Infinity, which is refused as too large.
  if (typeof v === "number") return Number.isInteger(v) || Math.abs(v) === Infinity ? v : Number.NaN;
  if (typeof v === "string") {
    const n = utf8Of(v); // first: it sets utf8
    return parseCount(utf8, 0, n);
  }
  return v instanceof Uint8Array ? parseCount(v, 0, v.length) : Number.NaN;
}

/** Decimal text (digits, an optional point and exponent): what a DT_STRING dense value may hold; not hex, not spaces. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A dense value: a JSON number, a gRPC float or integer, or decimal text in a DT_STRING tensor (its values arrive as
 * bytes). A JSON string is not a number: "5" for a float feature is the client's mistake, refused as TF Serving's REST
 * refuses a string for a DT_FLOAT input.
 */
function numberOf(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "number") return Number.isFinite(v) ? v : Number.NaN;
  const s = v instanceof Uint8Array ? utf8Out.decode(v) : null;
  // Decimal text only: Number() also reads "0x10" as 16, "0b1" as 1 and " 5 " as 5.
  if (typeof s === "string" && DECIMAL.test(s)) {
    const n = Number(s);
    return Number.isFinite(n) ? n : Number.NaN;
  }
  return Number.NaN;
}
