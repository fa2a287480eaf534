import { slotOfV2 } from "@pangea/features";
import { ModelErrors } from "./errors.js";
import { rowWidths, type ModelSpec } from "./spec.js";


/**
 * Where embedding rows of different widths sit when sent or pooled side by
 * side: rows are concatenated in id order, each as wide as its slot's row
 * (the slot comes from the id itself). Pulls, pushes and parameter sync carry
 * rows this way; when every slot has one width it is the plain [count, width]
 * layout of before.
 */
export class RowLayout {
  /** The width every slot shares, or null when they differ. */
  readonly uniform: number | null;
  private readonly widthOfSlot = new Map<number, number>();

  constructor(slotIds: readonly number[], widths: readonly number[]) {
    slotIds.forEach((slot, i) => this.widthOfSlot.set(slot, widths[i]!));
    this.uniform = widths.length > 0 && widths.every((w) => w === widths[0]) ? widths[0]! : null;
  }

  static of(spec: ModelSpec, slotIds: readonly number[]): RowLayout {
    return new RowLayout(slotIds, rowWidths(spec));
  }

  /** The row width of an id (by its high word's slot); throws naming the slot if the model has none such. */
  widthOf(hi: number): number {
    if (this.uniform !== null) return this.uniform;
    const w = this.widthOfSlot.get(slotOfV2(hi));
    if (w === undefined) throw ModelErrors.create("MODEL_ERR_UNKNOWN_SLOT", `an id of slot ${slotOfV2(hi)}, which the model does not have`);
    return w;
  }

  /** Where each of count ids' rows starts, and the total at [count]; null when every row has the uniform width (row i at i * width). */
  offsets(ids: Uint32Array, count: number): Int32Array | null {
    if (this.uniform !== null) return null;
    const at = new Int32Array(count + 1);
    for (let i = 0; i < count; i++) at[i + 1] = at[i]! + this.widthOf(ids[2 * i + 1]!);
    return at;
  }

  /** The values count ids' rows take together. */
  total(ids: Uint32Array, count: number, offsets: Int32Array | null = this.offsets(ids, count)): number {
    return offsets ? offsets[count]! : count * this.uniform!;
  }
}
