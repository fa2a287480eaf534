import { printable } from "@pangea/kit";
import { z } from "zod";
import { SLOT_KINDS, type FeatureListConfig, type SlotKind } from "./feature-list.js";

/**
 * How a data set's features became a model's inputs: each slot's name and
 * how its values became ids, each dense feature's name, width and
 * transform. Two feature lists that agree on these encode a record alike;
 * a model trained through one predicts wrongly through another.
 */
export interface FeatureInputs {
  slots: { name: string; slot: number; type: SlotKind }[];
  dense: { name: string; size: number; transform: "none" | "log1p" }[];
}

export function featureInputsOf(list: FeatureListConfig): FeatureInputs {
  return {
    slots: list.slots.map((s) => ({ name: s.name, slot: s.slot, type: s.type })),
    dense: list.dense.map((d) => ({ name: d.name, size: d.size, transform: d.transform })),
  };
}

/** Kinds whose values are hashed into ids: the same value hashes otherwise as bytes than as an int64. Ids (fid_v1/fid_v2) are taken as they are. */
const HASHED: ReadonlySet<SlotKind> = new Set(["bytes", "int64"]);

/**
 * Why `list` would encode inputs otherwise than the training data was
 * encoded (`trained`), or null: a slot's values hashed as another kind, a
 * name that is another slot's or dense feature's in training (swapped or
 * reordered), a dense feature of another size or transform. A new name is
 * a rename, and ids declared for a slot training hashed are the ids the
 * hashing made (a client may send those), so neither is refused. Which
 * slots and how many dense values a model has is featureListMismatch's.
 */
export function featureInputsMismatch(trained: FeatureInputs, list: FeatureInputs): string | null {
  const q = (name: string) => `'${printable(name, 40)}'`;
  for (const s of list.slots) {
    const t = trained.slots.find((x) => x.slot === s.slot);
    if (!t) continue;
    const elsewhere = trained.slots.find((x) => x.name === s.name && x.slot !== s.slot);
    if (elsewhere) return `this list names slot ${s.slot} ${q(s.name)}, which is slot ${elsewhere.slot} in the training data's feature list (slot ${s.slot} is ${q(t.name)} there)`;
    if (HASHED.has(t.type) && HASHED.has(s.type) && t.type !== s.type) return `slot ${s.slot} (${q(s.name)}) was hashed as type ${t.type} in training, this list says ${s.type}`;
  }
  const n = Math.min(trained.dense.length, list.dense.length);
  for (let i = 0; i < n; i++) {
    const t = trained.dense[i]!;
    const d = list.dense[i]!;
    const j = trained.dense.findIndex((x) => x.name === d.name);
    if (j >= 0 && j !== i) return `this list has dense feature ${q(d.name)} at position ${i + 1}, the training data's feature list at ${j + 1} (${q(t.name)} is at ${i + 1} there)`;
    if (t.size !== d.size) return `dense feature ${q(d.name)} at position ${i + 1} has size ${d.size} in this list, ${t.size} in training`;
    if (t.transform !== d.transform) return `dense feature ${q(d.name)} was read with transform ${t.transform} in training, this list says ${d.transform}`;
  }
  return null;
}

const inputsSchema = z.object({
  slots: z.array(z.object({ name: z.string(), slot: z.number().int().min(0), type: z.enum(SLOT_KINDS) })).max(1 << 16),
  dense: z.array(z.object({ name: z.string(), size: z.number().int().positive(), transform: z.enum(["none", "log1p"]) })).max(1 << 20),
});

/** The JSON SourceInfo.feature_inputs carries, read back: null for "" (a compute that does not say); throws naming what is wrong otherwise. */
export function parseFeatureInputs(json: string): FeatureInputs | null {
  if (!json) return null;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new Error("feature_inputs is not JSON");
  }
  const r = inputsSchema.safeParse(v);
  if (!r.success) throw new Error(`feature_inputs: ${r.error.issues[0]!.path.join(".")}: ${r.error.issues[0]!.message}`);
  return r.data;
}
