import { slotOfV2 } from "@pangea/features";
import type { CellIds } from "./pool-cells.js";

/**
 * The ids of the examples that sit in a column (a slot of the model, in its
 * slot order) but carry another slot in their top bits. Such an id is in no
 * row of its column's table and reads as missing, as an unknown id does: a
 * client that sends its slots in another order gets the model's answer for
 * examples with no ids, without an error. Counted so that shows.
 */
export function idsOfOtherSlots(x: CellIds, slotIds: readonly number[]): number {
  const S = slotIds.length;
  const ids = x.idWords;
  const offsets = x.cellOffsets;
  let other = 0;
  for (let c = 0; c < x.count * S; c++) {
    const slot = slotIds[c % S]!;
    const from = offsets ? offsets[c]! : c;
    const to = offsets ? offsets[c + 1]! : c + 1;
    for (let v = from; v < to; v++) {
      const hi = ids[2 * v + 1]!;
      if (hi === 0 && ids[2 * v] === 0) continue;
      if (slotOfV2(hi) !== slot) other++;
    }
  }
  return other;
}
