import { SchemaErrors } from "./errors.js";
import { PAYLOAD_MEMBERS, STRUCT_POINTERS } from "./gen/pangea-pointers.js";

/**
 * Checks every pointer of a received message against the bytes really there,
 * before capnp-es reads it. capnp-es trusts list headers: a composite list
 * whose header claims 2^22 zero-sized elements made it allocate and copy
 * 2^22 full-sized structs (seconds of CPU for a 272-byte message). Here each
 * struct and list must lie inside its segment, a list's element count times
 * its element size (at least one word per struct element, one per void
 * element) must fit in the bytes that follow it, and the words visited in
 * all may not exceed the message's own words (so pointers that share content
 * cannot amplify a small message either). Failures name the field.
 *
 * The walk is schema-aware only for naming: pointer slots are named from the
 * table schema-gen writes from the Cap'n Proto compiler's view of the schema
 * (gen/pangea-pointers.ts), and any other pointer is still followed and checked.
 */

interface StructShape {
  /** Name of each pointer slot, with the shape of a struct (or of a list's struct elements) it points to. */
  ptrs: readonly (readonly [string, StructShape?])[];
}

const SHAPES = new Map<string, StructShape>();

/** A struct's shape from the generated pointer table (a slot the table does not name is called by its index). */
function shapeOf(struct: string): StructShape {
  let shape = SHAPES.get(struct);
  if (shape) return shape;
  const ptrs: (readonly [string, StructShape?])[] = [];
  shape = { ptrs };
  SHAPES.set(struct, shape);
  (STRUCT_POINTERS[struct] ?? []).forEach((slot, i) => ptrs.push(slot ? [slot[0], slot[1] === undefined ? undefined : shapeOf(slot[1])] : [`pointer ${i}`]));
  return shape;
}

const MAX_DEPTH = 64;
/** Bytes per element of list element sizes 0..6 (void, bit, byte, 2, 4, 8 bytes, pointer); bits are handled apart. */
const ELEMENT_BYTES = [0, 0, 1, 2, 4, 8, 8];
const ELEMENT_NAMES = ["void", "bit", "byte", "2-byte", "4-byte", "8-byte", "pointer"];

interface Segment {
  start: number;
  bytes: number;
}

/** The segments of a framed message whose header checkFraming has already accepted. */
export function segmentsOf(view: DataView): Segment[] {
  const n = view.getUint32(0, true) + 1;
  let at = Math.ceil((4 + 4 * n) / 8) * 8;
  const out: Segment[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = view.getUint32(4 + 4 * i, true) * 8;
    out.push({ start: at, bytes });
    at += bytes;
  }
  return out;
}

export function checkPointerBounds(view: DataView, peer: string): void {
  new BoundsWalk(view, segmentsOf(view), peer).root();
}

class BoundsWalk {
  private budgetWords: number;

  constructor(private readonly view: DataView, private readonly segs: Segment[], private readonly peer: string) {
    // A little slack for zero-sized structs, which take no words but are charged one.
    this.budgetWords = segs.reduce((n, s) => n + s.bytes / 8, 0) + 64;
  }

  private fail(path: string, what: string): never {
    throw SchemaErrors.create("SCHEMA_ERR_BAD_MESSAGE", `${this.peer}: ${path || "root"}: ${what}`);
  }

  private charge(words: number, path: string): void {
    this.budgetWords -= words;
    if (this.budgetWords < 0) this.fail(path, "the message's pointers reach more words than the message holds (shared or overlapping content)");
  }

  root(): void {
    const s = this.segs[0]!;
    if (s.bytes < 8) this.fail("", "the first segment has no root pointer");
    // The Message envelope: pointer 0 is sender, pointer 1 the payload union (its shape chosen by the type field).
    const target = this.follow(0, s.start, "", 1);
    if (!target) this.fail("", "null root pointer");
    if (target.kind !== "struct") this.fail("", "the root is not a struct");
    const type = target.dataWords > 0 ? this.view.getUint16(target.at, true) : 0;
    const payload = PAYLOAD_MEMBERS[type];
    const shape: StructShape = { ptrs: [["sender"], payload ? [payload[0], shapeOf(payload[1])] : ["payload"]] };
    this.walkStruct(target, shape, "", 1);
  }

  /**
   * Resolves the pointer word at byte `at` of segment `seg` (following far
   * pointers) to the object it points to, checked to lie inside its segment.
   */
  private follow(seg: number, at: number, path: string, depth: number): Target | null {
    if (depth > MAX_DEPTH) this.fail(path, `pointers nest deeper than ${MAX_DEPTH}`);
    const v = this.view;
    const lo = v.getUint32(at, true);
    const hi = v.getUint32(at + 4, true);
    if (lo === 0 && hi === 0) return null;
    const kind = lo & 3;
    if (kind === 2) {
      const padSeg = this.segs[hi];
      if (!padSeg) this.fail(path, `far pointer to segment ${hi} of ${this.segs.length}`);
      const padAt = padSeg.start + (lo >>> 3) * 8;
      const double = (lo & 4) !== 0;
      if (padAt + (double ? 16 : 8) > padSeg.start + padSeg.bytes) this.fail(path, `far pointer's landing pad lies outside segment ${hi}`);
      if (!double) {
        if ((v.getUint32(padAt, true) & 3) === 2) this.fail(path, "far pointer lands on another far pointer");
        return this.follow(hi, padAt, path, depth + 1);
      }
      // Double far: the pad's first word is a far pointer to the content, its second a tag describing it.
      const flo = v.getUint32(padAt, true);
      const fseg = v.getUint32(padAt + 4, true);
      if ((flo & 7) !== 2) this.fail(path, "double-far landing pad does not start with a far pointer");
      const contentSeg = this.segs[fseg];
      if (!contentSeg) this.fail(path, `far pointer to segment ${fseg} of ${this.segs.length}`);
      return this.decode(fseg, contentSeg.start + (flo >>> 3) * 8, v.getUint32(padAt + 8, true), v.getUint32(padAt + 12, true), path);
    }
    if (kind === 3) this.fail(path, "capability pointers are not part of this schema");
    const s = this.segs[seg]!;
    const target = at + 8 + ((lo | 0) >> 2) * 8;
    if (target < s.start || target > s.start + s.bytes) this.fail(path, `pointer offset leads outside its segment`);
    return this.decode(seg, target, lo, hi, path);
  }

  private decode(seg: number, at: number, lo: number, hi: number, path: string): Target {
    const s = this.segs[seg]!;
    const end = s.start + s.bytes;
    if ((lo & 3) === 0) {
      const dataWords = hi & 0xffff;
      const ptrCount = hi >>> 16;
      const bytes = (dataWords + ptrCount) * 8;
      if (at + bytes > end) this.fail(path, `struct of ${bytes} bytes, but only ${Math.max(0, end - at)} bytes of the segment follow`);
      this.charge(Math.max(1, dataWords + ptrCount), path);
      return { kind: "struct", seg, at, dataWords, ptrCount };
    }
    if ((lo & 3) !== 1) this.fail(path, "a far pointer's tag is not a struct or list pointer");
    const size = hi & 7;
    const count = hi >>> 3;
    const avail = Math.max(0, end - at);
    if (size === 7) {
      // Composite: `count` is the words of all elements; a tag word before them gives the element count and size.
      if (at + 8 + count * 8 > end) this.fail(path, `list claims ${count * 8 + 8} bytes of struct elements, but only ${avail} bytes of the segment follow`);
      const tag = this.view.getUint32(at, true);
      const tagHi = this.view.getUint32(at + 4, true);
      if ((tag & 3) !== 0) this.fail(path, "composite list tag is not a struct tag");
      const n = (tag | 0) >> 2;
      const dataWords = tagHi & 0xffff;
      const ptrCount = tagHi >>> 16;
      const per = dataWords + ptrCount;
      if (n < 0 || n * Math.max(1, per) > count) {
        this.fail(path, `list claims ${n} elements of ${per * 8} bytes (at least 8 counted each), but holds ${count * 8} bytes`);
      }
      this.charge(1 + Math.max(count, n), path);
      return { kind: "structs", seg, at: at + 8, n, dataWords, ptrCount };
    }
    const need = size === 0 ? 0 : size === 1 ? Math.ceil(count / 8) : count * ELEMENT_BYTES[size]!;
    if (at + need > end) {
      this.fail(path, `list claims ${count} ${ELEMENT_NAMES[size]} elements (${need} bytes), but only ${avail} bytes of the segment follow`);
    }
    // Void elements take no bytes; count each as a word so a huge claimed count cannot be iterated for free.
    this.charge(size === 0 ? count : Math.ceil(need / 8), path);
    return { kind: size === 6 ? "pointers" : "data", seg, at, n: count };
  }

  private walkStruct(t: { seg: number; at: number; dataWords: number; ptrCount: number }, shape: StructShape | undefined, path: string, depth: number): void {
    const base = t.at + t.dataWords * 8;
    for (let i = 0; i < t.ptrCount; i++) {
      const slot = shape?.ptrs[i];
      const name = slot ? slot[0] : `pointer ${i}`;
      const p = path ? `${path}.${name}` : name;
      const child = this.follow(t.seg, base + i * 8, p, depth + 1);
      if (child) this.walk(child, slot?.[1], p, depth + 1);
    }
  }

  private walk(t: Target, shape: StructShape | undefined, path: string, depth: number): void {
    if (t.kind === "struct") this.walkStruct(t, shape, path, depth);
    else if (t.kind === "structs") {
      const per = (t.dataWords + t.ptrCount) * 8;
      if (t.ptrCount === 0) return;
      for (let i = 0; i < t.n; i++) this.walkStruct({ seg: t.seg, at: t.at + i * per, dataWords: t.dataWords, ptrCount: t.ptrCount }, shape, `${path}[${i}]`, depth);
    } else if (t.kind === "pointers") {
      for (let i = 0; i < t.n; i++) {
        const child = this.follow(t.seg, t.at + i * 8, `${path}[${i}]`, depth + 1);
        if (child) this.walk(child, shape, `${path}[${i}]`, depth + 1);
      }
    }
  }
}

type Target =
  | { kind: "struct"; seg: number; at: number; dataWords: number; ptrCount: number }
  | { kind: "structs"; seg: number; at: number; n: number; dataWords: number; ptrCount: number }
  | { kind: "pointers" | "data"; seg: number; at: number; n: number };
