import { printable } from "@pangea/kit";
import { denseParams, type ModelSpec } from "./spec.js";

/**
 * How the dense parameters a checkpoint or an export lists (its manifest's `denseParams`) differ from those this
 * build's architecture declares for the same model, or null when they are the same, in order. The values are stored
 * flat in that order, so an architecture whose params() changed since they were written (a parameter renamed,
 * reordered or reshaped; the same total or not) would cut them into the wrong tensors and answer wrong predictions.
 * `corrupt`: the list is no list of names and shapes (a damaged manifest, not a changed definition).
 */
export function storedParamsDifference(stored: unknown, spec: ModelSpec): { text: string; corrupt: boolean } | null {
  const text = difference(stored, spec);
  return text === null ? null : { text, corrupt: text.startsWith(CORRUPT) };
}

const CORRUPT = "its manifest's denseParams ";

function difference(stored: unknown, spec: ModelSpec): string | null {
  const declared = denseParams(spec);
  const arch = `this build's ${spec.architecture.name}`;
  if (!Array.isArray(stored)) return `${CORRUPT}is no list of the dense parameters' names and shapes`;
  const shape = (s: readonly number[]) => `[${s.join(", ")}]`;
  for (let i = 0; i < Math.max(stored.length, declared.length); i++) {
    const p = stored[i] as { name?: unknown; shape?: unknown } | undefined;
    const d = declared[i];
    const storedShape = p && Array.isArray(p.shape) && p.shape.every((n) => Number.isSafeInteger(n) && n >= 0) ? (p.shape as number[]) : null;
    if (p !== undefined && (typeof p?.name !== "string" || !storedShape)) return `${CORRUPT}entry ${i} is not a name and a shape`;
    if (!p) return `it lists ${stored.length} dense parameters, ${arch} declares ${declared.length} (the first it lacks: ${d!.name} ${shape(d!.shape)})`;
    const name = printable(p.name as string, 80);
    if (!d) return `it lists ${stored.length} dense parameters, ${arch} declares ${declared.length} (the first it has beyond them: ${name} ${shape(storedShape!)})`;
    if (p.name !== d.name || storedShape!.join() !== d.shape.join()) {
      return `its dense parameter ${i} is ${name} ${shape(storedShape!)}, where ${arch} declares ${d.name} ${shape(d.shape)}`;
    }
  }
  return null;
}
