import type { FeatureListConfig, SlotKind } from "./feature-list.js";

/** Criteo's layout: a label, 13 integer counts I1..I13, 26 categorical tokens C1..C26. */
export const CRITEO_NUM_DENSE = 13;
export const CRITEO_NUM_SLOTS = 26;
/** Token C(k + 1) is hashed into slot CRITEO_SLOT_BASE + k. */
export const CRITEO_SLOT_BASE = 1;

export const criteoDenseName = (k: number): string => `I${k + 1}`;
export const criteoSlotName = (k: number): string => `C${k + 1}`;

/**
 * Criteo's layout as a feature list: C1..C26 hashed from their bytes into
 * consecutive slots, I1..I13 as log(1 + count). `type` lets a data set that
 * already holds ids of these slots say so.
 */
export function criteoFeatureListConfig(type: SlotKind = "bytes", slotBase = CRITEO_SLOT_BASE): FeatureListConfig {
  return {
    slots: Array.from({ length: CRITEO_NUM_SLOTS }, (_, k) => ({ name: criteoSlotName(k), slot: slotBase + k, type })),
    dense: Array.from({ length: CRITEO_NUM_DENSE }, (_, k) => ({ name: criteoDenseName(k), size: 1, transform: "log1p" as const })),
    label: { index: 0, column: "label" },
  };
}

/**
 * A Criteo count: an optional, possibly negative decimal integer in
 * bytes[start, end); empty reads as 0 (missing). NaN when it is not one.
 */
export function parseCount(b: Uint8Array, start: number, end: number): number {
  if (start === end) return 0;
  let i = start;
  let sign = 1;
  if (b[i] === 45) {
    sign = -1;
    i++;
  }
  if (i === end) return Number.NaN;
  let v = 0;
  for (; i < end; i++) {
    const d = b[i]! - 48;
    if (d < 0 || d > 9) return Number.NaN;
    v = v * 10 + d;
  }
  return sign * v;
}

/**
 * Why a feature list cannot describe Criteo TSV as compute reads it, or null.
 * The file's columns fix the layout: C1..C26 hashed from their bytes into
 * slots 1..26 and I1..I13 as log(1 + count), in that order, one label (the
 * line's first field). What a list may add is each slot's dim and pooling.
 */
export function criteoLayoutMismatch(list: FeatureListConfig, slotBase = CRITEO_SLOT_BASE): string | null {
  const want = criteoFeatureListConfig("bytes", slotBase);
  if (list.slots.length !== want.slots.length) return `it declares ${list.slots.length} slot${list.slots.length === 1 ? "" : "s"}, the layout ${want.slots.length}`;
  for (const [i, w] of want.slots.entries()) {
    const s = list.slots[i]!;
    if (s.name !== w.name || s.slot !== w.slot || (s.type ?? "fid_v2") !== w.type) return `its slots[${i}] is '${s.name}' (slot ${s.slot}, type ${s.type ?? "fid_v2"}), the layout's '${w.name}' (slot ${w.slot}, type ${w.type})`;
  }
  const dense = list.dense ?? [];
  if (dense.length !== want.dense!.length) return `it declares ${dense.length} dense feature${dense.length === 1 ? "" : "s"}, the layout ${want.dense!.length}`;
  for (const [i, w] of want.dense!.entries()) {
    const d = dense[i]!;
    if (d.name !== w.name || (d.size ?? 1) !== w.size || (d.transform ?? "none") !== w.transform) return `its dense[${i}] is '${d.name}' (size ${d.size ?? 1}, transform ${d.transform ?? "none"}), the layout's '${w.name}' (size ${w.size}, transform ${w.transform})`;
  }
  // The label is the line's first field: a list reading it elsewhere would be ignored.
  const label = list.label;
  if (label && (label.index !== 0 || label.column !== "label")) return `its label reads index ${label.index}, column '${label.column}'; a Criteo line's label is its first field (leave "label" out)`;
  return null;
}
