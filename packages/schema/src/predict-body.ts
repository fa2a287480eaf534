import { kindOf, valueSnippet } from "@pangea/kit";

/** The keys of TF Serving's REST predict body; output_filter is gRPC's only. */
const BODY_KEYS = ["instances", "inputs", "signature_name"];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * What is wrong with a predict body's outline in TF Serving's REST form
 * ({"instances": [{...}]} or {"inputs": {...}}), or null. One wording for
 * serving's REST API and `pangea predict`, which reads the same JSON.
 * `answers`: who answers every output, for the output_filter case.
 */
export function predictBodyProblem(body: unknown, answers: string): string | null {
  if (!isObject(body)) return `the body must be a JSON object with "instances" or "inputs", got ${kindOf(body)}`;
  // Other keys are ignored, as TF Serving ignores them (a client's own metadata, Vertex AI's "parameters"), except
  // those that say the client expects something not done: an output_filter, a misspelt key of its own.
  const mistaken = Object.keys(body).filter((k) => k === "output_filter" || BODY_KEYS.some((known) => oneEditFrom(k, known)));
  if (mistaken.length) {
    return `unknown key${mistaken.length === 1 ? "" : "s"} ${mistaken.map((k) => valueSnippet(k)).join(", ")} in the body; a predict body takes "instances" or "inputs", and optionally "signature_name"${mistaken.includes("output_filter") ? ` (output_filter is gRPC's; ${answers} answers every output)` : ""}`;
  }
  if (body.inputs !== undefined && body.instances !== undefined) return 'the body has both "inputs" and "instances"; give one of them';
  if (body.inputs === undefined && body.instances === undefined) return `the body needs "inputs" {dense_features, feature_ids} or "instances" [{dense_features, feature_ids}], or the same with raw feature values`;
  if (body.inputs !== undefined && !isObject(body.inputs)) return `"inputs" must be an object of named inputs, each a list with one entry per example; got ${kindOf(body.inputs)}`;
  if (body.instances !== undefined) {
    if (!Array.isArray(body.instances)) return `"instances" must be a list of objects of named inputs, got ${kindOf(body.instances)}`;
    const odd = body.instances.findIndex((r) => !isObject(r));
    if (odd >= 0) return `instance ${odd} must be an object of named inputs, got ${kindOf(body.instances[odd])}`;
  }
  // As over gRPC: the one signature there is.
  if (body.signature_name !== undefined && body.signature_name !== "serving_default" && body.signature_name !== "") {
    return `unknown signature ${valueSnippet(body.signature_name)}; the model has serving_default`;
  }
  return null;
}

/** Whether a key is one edit (a letter added, dropped, changed or two swapped) from another. */
function oneEditFrom(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1 || a === b) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const rest = (x: string, y: string) => x.slice(i + 1) === y.slice(i + 1);
  if (a.length === b.length) return rest(a, b) || (a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2));
  return a.length > b.length ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1);
}

