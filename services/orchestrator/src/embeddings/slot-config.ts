import type { SlotConfigFile, SlotSettings } from "@pangea/service-flags";
import type { SlotConfig } from "./embedding-store.js";

/**
 * The tables' settings from a --slot-config file (as readSlotConfig checked
 * it) over the flags' settings `base`: what it leaves out falls back to
 * them. Returns the default for unnamed slots and the per-slot map.
 */
export function slotConfigOver(file: SlotConfigFile, base: SlotConfig): { defaults: SlotConfig; perSlot: Map<number, SlotConfig> } {
  // Another optimizer starts from its own defaults, but keeps the L2 strength (--sparse-l2 is job-wide).
  const merge = (b: SlotConfig, o: SlotSettings | undefined): SlotConfig => ({
    ...b,
    ...o,
    hyper: { ...(o?.optimizer && o.optimizer !== b.optimizer ? (b.hyper.l2 !== undefined ? { l2: b.hyper.l2 } : {}) : b.hyper), ...o?.hyper },
  } as SlotConfig);
  const defaults = merge(base, file.default);
  const perSlot = new Map<number, SlotConfig>();
  for (const [n, o] of file.slots) {
    // Dim and pooling named for the slot itself are kept apart from the default's: a feature list's own may not contradict them (model-tables).
    const { pooling: _inherited, ...rest } = merge(defaults, o);
    perSlot.set(n, { ...rest, ...(o.dim !== undefined ? { slotDim: o.dim } : {}), ...(o.pooling ? { pooling: o.pooling } : {}) });
  }
  return { defaults, perSlot };
}
