import { featureListMismatch, type FeatureList } from "@pangea/features";
import { printable } from "@pangea/kit";
import { dimsOf, poolingOf, tasksOf } from "./architectures/architecture.js";
import type { ModelSpec } from "./spec.js";

/**
 * Why a feature list cannot go with a trained model, or null: its slots and
 * dense width (what serving decodes inputs by), and what it declares of the
 * model itself (a slot's dim and pooling, the tasks its labels name), which
 * must be what the model was trained with. Export and a job's
 * --export-feature-list refuse such a list: a version carrying it would say
 * one model and hold another.
 */
export function featureListModelMismatch(list: FeatureList, spec: ModelSpec, slotIds: readonly number[]): string | null {
  const inputs = featureListMismatch(list, slotIds, spec.numDense);
  if (inputs) return inputs;
  const dims = dimsOf(spec);
  const pooling = poolingOf(spec);
  for (const s of list.config.slots) {
    const i = slotIds.indexOf(s.slot);
    if (s.dim !== undefined && s.dim !== dims[i]) return `slot ${s.slot} (${printable(s.name, 40)}): the feature list gives embedding dim ${s.dim}, the model has ${dims[i]}`;
    if (s.pooling !== undefined && s.pooling !== pooling[i]) return `slot ${s.slot} (${printable(s.name, 40)}): the feature list pools with ${s.pooling}, the model with ${pooling[i]}`;
  }
  // A list's "label" (one binary label) is the task ctr, as training reads it; a list giving neither says nothing of tasks.
  if (list.namedTasks || list.config.label !== undefined) {
    const named = (tasks: readonly { name: string; loss: string }[]) => tasks.map((t) => `${t.name} (${t.loss})`).join(", ");
    const listed = named(list.labels);
    const trained = named(tasksOf(spec));
    if (listed !== trained) return `the feature list's labels are the tasks ${listed}, the model's tasks are ${trained}`;
  }
  return null;
}
