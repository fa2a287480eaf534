import { isValidV2, slotOfV2 } from "@pangea/features";
import type { CellIds } from "./pool-cells.js";

/**
 * The ids of the examples that no row of their column's table can match:
 * ids that carry another slot in their top bits than the column's (a slot
 * of the model, in its slot order), and ids with the reserved top bit set
 * (a negative DT_INT64 id; no v2 id has it). Each reads as missing, as an
 * unknown id does: a client that sends its slots in another order, or ids
 * of another layout, gets the model's answer for examples with no ids,
 * without an error. Counted so that shows.
 */
export function misplacedIds(x: CellIds, slotIds: readonly number[]): number {
  const S = slotIds.length;
  const ids = x.idWords;
  const offsets = x.cellOffsets;
  let misplaced = 0;
  for (let c = 0; c < x.count * S; c++) {
    const slot = slotIds[c % S]!;
    const from = offsets ? offsets[c]! : c;
    const to = offsets ? offsets[c + 1]! : c + 1;
    for (let v = from; v < to; v++) {
      const hi = ids[2 * v + 1]!;
      if (hi === 0 && ids[2 * v] === 0) continue;
      if (!isValidV2(hi) || slotOfV2(hi) !== slot) misplaced++;
    }
  }
  return misplaced;
}
