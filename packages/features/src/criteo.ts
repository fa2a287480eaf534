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
