import { printable } from "@pangea/kit";
import type { ModelShape } from "@pangea/model";
import { MAX_IDS_PER_CELL } from "@pangea/features";
import type { SampleAssembler } from "@pangea/monolith";
import { ServingErrors } from "../errors.js";
import type { Examples } from "../model/servable.js";

/** Ids one ragged cell may hold (raw values too, one id each): training's limit too. */
export { MAX_IDS_PER_CELL };
/** Ids a whole request may hold (a cell: MAX_IDS_PER_CELL); beyond, it is refused. */
export const MAX_IDS_PER_REQUEST = 1 << 20;

/**
 * Examples gathered one assembled sample at a time into the ragged form
 * (cell = example * S + column): a slot may hold any number of ids, whose
 * rows are summed as in training. Each example is held to the limits
 * training holds a record to (MAX_IDS_PER_CELL in a cell), and the request
 * to MAX_IDS_PER_REQUEST ids, whichever input it came from.
 */
export class RaggedExamples {
  // Typed arrays grown by doubling: ids' high words past 2^31 would be heap numbers in a plain array.
  private dense = new Float32Array(256);
  private ids = new Uint32Array(1024);
  private offsets = new Uint32Array(256);
  private examples = 0;
  private idCount = 0;
  private cells = 0;

  /** `slotNames`: each column's slot name (the feature list's), for naming a cell too large; absent: its column. */
  constructor(private readonly spec: ModelShape, private readonly maxBatch: number, private readonly input: string, private readonly slotNames?: readonly string[]) {}

  get count(): number {
    return this.examples;
  }

  take(asm: SampleAssembler): void {
    const S = this.spec.numSlots;
    const D = this.spec.numDense;
    if (this.examples >= this.maxBatch) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${this.input} carries more than ${this.maxBatch} examples (--max-batch)`);
    const n = asm.count;
    if (this.idCount + n > MAX_IDS_PER_REQUEST) {
      throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${this.input} holds more than ${MAX_IDS_PER_REQUEST} ids by example ${this.examples} (${n} ids); a request takes at most ${MAX_IDS_PER_REQUEST}`);
    }
    this.dense = room(this.dense, (this.examples + 1) * D);
    this.ids = room(this.ids, 2 * (this.idCount + n));
    this.offsets = room(this.offsets, this.cells + S + 1);
    this.dense.set(asm.dense.subarray(0, D), this.examples * D);
    const columns = asm.columns;
    const words = asm.words;
    const ids = this.ids;
    let inOrder = true;
    for (let v = 1; v < n && inOrder; v++) inOrder = columns[v]! >= columns[v - 1]!;
    // Values given column by column (positional raw inputs, a row's slots in order) are taken in one pass; others
    // gathered per column.
    let at = this.idCount;
    let v = 0;
    for (let col = 0; col < S; col++) {
      if (inOrder) {
        while (v < n && columns[v]! < col) v++;
        for (; v < n && columns[v] === col; v++, at++) {
          ids[2 * at] = words[2 * v]!;
          ids[2 * at + 1] = words[2 * v + 1]!;
        }
      } else {
        for (let u = 0; u < n; u++) {
          if (columns[u] !== col) continue;
          ids[2 * at] = words[2 * u]!;
          ids[2 * at + 1] = words[2 * u + 1]!;
          at++;
        }
      }
      const held = at - this.offsets[this.cells]!;
      if (held > MAX_IDS_PER_CELL) {
        const slot = this.slotNames?.[col] !== undefined ? `slot '${printable(this.slotNames[col]!, 40)}'` : `slot #${col}`;
        throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${this.input}, example ${this.examples}: ${slot} holds ${held} ids; a cell takes at most ${MAX_IDS_PER_CELL} (as training takes)`);
      }
      this.offsets[++this.cells] = at;
    }
    this.idCount = at;
    this.examples++;
  }

  finish(): Examples {
    if (this.examples === 0) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `input ${this.input} holds no examples: a request needs at least one`);
    return {
      count: this.examples,
      dense: this.dense.slice(0, this.examples * this.spec.numDense),
      idWords: this.ids.slice(0, 2 * this.idCount),
      cellOffsets: this.offsets.slice(0, this.cells + 1),
    };
  }
}

/** `a`, or a copy at least twice as long, with room for `need` elements. */
function room<T extends Float32Array | Uint32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const grown = new (a.constructor as new (n: number) => T)(Math.max(need, 2 * a.length));
  grown.set(a);
  return grown;
}
