import { rowWidths, type ModelSpec, type Pooling } from "@pangea/model";
import { OrchestratorErrors } from "../errors.js";
import type { SlotConfig } from "./embedding-store.js";

export interface TableSettings {
  defaults: SlotConfig;
  perSlot: ReadonlyMap<number, SlotConfig>;
}

/**
 * Each slot's embedding dim, in slot order: --slot-config's dim for the
 * slot, else the one the feature list declares, else the default slot's
 * (--embedding-dim unless --slot-config's default says otherwise). A slot
 * whose --slot-config and feature list disagree is refused, naming both.
 */
export function resolveSlotDims(slotIds: readonly number[], declared: readonly number[], s: TableSettings): number[] {
  return slotIds.map((slot, i) => {
    const configured = s.perSlot.get(slot)?.slotDim;
    const listed = declared[i] || 0;
    if (configured !== undefined && listed > 0 && configured !== listed) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", `slot ${slot}: --slot-config gives embedding dim ${configured}, the feature list ${listed}; make them agree`);
    }
    return configured ?? (listed || s.defaults.dim);
  });
}

/**
 * Each slot's pooling, in slot order: --slot-config's for the slot, else
 * the feature list's, else --slot-config's default, else sum. A slot whose
 * --slot-config and feature list disagree is refused, naming both.
 */
export function resolveSlotPooling(slotIds: readonly number[], declared: readonly string[], s: TableSettings): Pooling[] {
  return slotIds.map((slot, i) => {
    const configured = s.perSlot.get(slot)?.pooling;
    const listed = (declared[i] || undefined) as Pooling | undefined;
    if (configured && listed && configured !== listed) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", `slot ${slot}: --slot-config pools with ${configured}, the feature list with ${listed}; make them agree`);
    }
    return configured ?? listed ?? s.defaults.pooling ?? "sum";
  });
}

/**
 * The table settings the model's embedding tables are made with: every
 * slot of the model with rows of its row width (its dim plus what the
 * architecture keeps per id beside it); any other slot with the defaults'.
 */
export function tablesFor(spec: ModelSpec, slotIds: readonly number[], s: TableSettings): TableSettings {
  const widths = rowWidths(spec);
  const perSlot = new Map(s.perSlot);
  slotIds.forEach((slot, i) => perSlot.set(slot, { ...(s.perSlot.get(slot) ?? s.defaults), dim: widths[i]! }));
  // The width of a slot outside the model (only tables of declared slots are ever made; this keeps widthOf total).
  const spare = rowWidths({ ...spec, slotDims: undefined })[0] ?? s.defaults.dim;
  return { defaults: { ...s.defaults, dim: spare }, perSlot };
}
