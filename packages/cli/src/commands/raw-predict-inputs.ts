import { printable, UsageError } from "@pangea/kit";

/**
 * Raw feature values by name (Criteo's I1..I13 and C1..C26, a feature
 * list's names, or dense_values/slot_values by position) as serving's gRPC
 * Predict takes them: one tensor per feature, shape [B] (one value an
 * example) or [B, k] (k each). The JSON forms are REST's; what a gRPC tensor
 * cannot carry (a null, a feature left out of some example, lists of
 * different lengths) is refused naming the feature and example, with where
 * to send it instead.
 *
 * Types follow the values: a feature with any string goes as DT_STRING
 * (numbers among them as their decimal text: serving reads counts and ids
 * from text as REST does), whole numbers as DT_INT64, other numbers as
 * DT_DOUBLE; serving then checks each against what its feature takes.
 */
export function rawTensors(body: { instances?: Record<string, unknown>[]; inputs?: Record<string, unknown> }): Record<string, unknown> {
  const columns = body.instances ? byInstance(body.instances) : byColumn(body.inputs!);
  const out: Record<string, unknown> = {};
  for (const [name, values] of columns) out[name] = tensorOf(name, values);
  return out;
}

const CURL = "curl -d @file http://<rest address>/v1/models/<name>:predict";

function byInstance(instances: Record<string, unknown>[]): Map<string, unknown[]> {
  if (instances.length === 0) throw new UsageError("invalid --input: no examples; give at least one");
  const names = [...new Set(instances.flatMap((r) => Object.keys(r)))];
  const columns = new Map<string, unknown[]>();
  for (const name of names) {
    columns.set(
      name,
      instances.map((r, e) => {
        if (!Object.hasOwn(r, name)) throw new UsageError(`invalid --input: feature ${show(name)} is left out of example ${e}; over gRPC every example gives every feature: give it, or send the examples to serving's REST API, which reads a feature left out as missing (${CURL})`);
        return r[name];
      }),
    );
  }
  return columns;
}

function byColumn(inputs: Record<string, unknown>): Map<string, unknown[]> {
  const columns = new Map<string, unknown[]>();
  let examples = -1;
  let first = "";
  for (const [name, v] of Object.entries(inputs)) {
    if (!Array.isArray(v)) throw new UsageError(`invalid --input: input ${show(name)} must be a list with one entry per example`);
    if (examples < 0) [examples, first] = [v.length, name];
    else if (v.length !== examples) throw new UsageError(`invalid --input: input ${show(name)} has ${v.length} examples, ${show(first)} ${examples}`);
    columns.set(name, v);
  }
  if (examples <= 0) throw new UsageError("invalid --input: no examples; give at least one");
  return columns;
}

/** One feature's values over the examples as a TensorProto. */
function tensorOf(name: string, perExample: unknown[]): Record<string, unknown> {
  const lists = perExample.map(Array.isArray);
  const k = lists[0] ? (perExample[0] as unknown[]).length : 1;
  const values: (string | number)[] = [];
  perExample.forEach((v, e) => {
    const where = `feature ${show(name)} of example ${e}`;
    if (lists[e] !== lists[0]) throw new UsageError(`invalid --input: ${where} is ${lists[e] ? "a list" : "one value"}, of example 0 ${lists[0] ? "a list" : "one value"}; over gRPC a feature has as many values in every example`);
    const each = lists[e] ? (v as unknown[]) : [v];
    if (each.length !== k) throw new UsageError(`invalid --input: ${where} has ${each.length} values, example 0 ${k}; over gRPC a feature has as many values in every example; serving's REST API takes lists of any length (${CURL})`);
    for (const x of each) {
      if (x === null) throw new UsageError(`invalid --input: ${where} is null, which a gRPC tensor cannot carry (for a Criteo count give ""); serving's REST API reads a null as missing (${CURL})`);
      if (typeof x === "number" && Number.isFinite(x)) values.push(x);
      else if (typeof x === "string") values.push(x);
      else throw new UsageError(`invalid --input: ${where} must be a string or a number, got ${Array.isArray(x) ? "a list" : typeof x}`);
    }
  });
  if (k === 0) throw new UsageError(`invalid --input: feature ${show(name)} has no values; give it one or more in each example`);
  const shape = { dim: lists[0] ? [{ size: perExample.length }, { size: k }] : [{ size: perExample.length }] };
  if (values.some((x) => typeof x === "string")) return { dtype: "DT_STRING", tensor_shape: shape, string_val: values.map((x) => Buffer.from(String(x))) };
  if (values.every((x) => Number.isSafeInteger(x))) return { dtype: "DT_INT64", tensor_shape: shape, int64_val: values.map(String) };
  return { dtype: "DT_DOUBLE", tensor_shape: shape, double_val: values };
}

const show = (name: string) => `"${printable(name, 64)}"`;
