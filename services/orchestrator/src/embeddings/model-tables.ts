import { rowWidth, type ModelSpec } from "@pangea/model";
import { OrchestratorErrors } from "../errors.js";
import type { SlotConfig } from "./embedding-store.js";

export interface TableSettings {
  defaults: SlotConfig;
  perSlot: ReadonlyMap<number, SlotConfig>;
}

/**
 * The table settings a model's embedding tables are made with: every slot
 * the model's embedding dim (a --slot-config or feature list asking for
 * another is refused, naming the slot), stored in rows of the model's row
 * width (the dim plus what the architecture keeps per id beside it).
 */
export function tablesFor(spec: ModelSpec, s: TableSettings): TableSettings {
  const D = spec.embeddingDim;
  const refuse = (who: string, dim: number) =>
    OrchestratorErrors.create("ORCH_ERR_BAD_SLOT_CONFIG", `${who} asks for embedding dim ${dim}, but the ${spec.architecture.name} model gives every slot --embedding-dim ${D}`);
  if (s.defaults.dim !== D) throw refuse("the default slot", s.defaults.dim);
  for (const [slot, c] of s.perSlot) if (c.dim !== D) throw refuse(`slot ${slot}`, c.dim);
  const W = rowWidth(spec);
  return { defaults: { ...s.defaults, dim: W }, perSlot: new Map([...s.perSlot].map(([slot, c]) => [slot, { ...c, dim: W }])) };
}
