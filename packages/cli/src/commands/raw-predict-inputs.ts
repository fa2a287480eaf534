import { printableNames, UsageError } from "@pangea/kit";

/**
 * Raw feature values by name (Criteo's I1..I13 and C1..C26, a feature
 * list's names, or dense_values/slot_values by position) as serving's gRPC
 * Predict takes them: one tensor per feature, shape [B] (one value an
 * example) or [B, k] (k each). The JSON forms are REST's; what a gRPC tensor
 * cannot carry (a null, a feature left out of some example, lists of
 * different lengths) is refused naming the feature and example, with where
 * to send it instead.
 *
 * Types follow the values: whole numbers go as DT_INT64, other numbers as
 * DT_DOUBLE, strings as DT_STRING (with "" beside whole numbers: Criteo's
 * counts with fields missing); serving then checks each value against what
 * its feature takes, by its gRPC rules (decimal text in a DT_STRING tensor
 * is a number there, as REST's JSON string is not).
 */
export function rawTensors(body: { instances?: Record<string, unknown>[]; inputs?: Record<string, unknown> }, names: readonly string[]): Record<string, unknown> {
  const columns = body.instances ? byInstance(body.instances, names) : byColumn(body.inputs!);
  // No prototype: a feature named "__proto__" is a key like any other (serving names it as no input).
  const out = Object.create(null) as Record<string, unknown>;
  for (const [name, values] of columns) out[name] = tensorOf(name, values);
  return out;
}

/** The refusal of a body with no examples, in either form. */
export const noExamples = () => new UsageError("invalid --input: no examples; give at least one");

const CURL = "curl -d @file http://<rest address>/v1/models/<name>:predict";

/** By feature from instances, whose `names` (every key any instance gives) the caller has gathered. */
function byInstance(instances: Record<string, unknown>[], names: readonly string[]): Map<string, unknown[]> {
  if (instances.length === 0) throw noExamples();
  if (names.length === 0) throw new UsageError("invalid --input: the instances name no inputs; give dense_features and feature_ids, or raw feature values by name");
  const columns = new Map<string, unknown[]>();
  for (const name of names) {
    columns.set(
      name,
      instances.map((r, e) => {
        if (!Object.hasOwn(r, name)) throw new UsageError(`invalid --input: feature ${printableNames([name])} is left out of example ${e}; over gRPC every example gives every feature: give it, or send the examples to serving's REST API, which reads a feature left out as missing (${CURL})`);
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
    if (!Array.isArray(v)) throw new UsageError(`invalid --input: input ${printableNames([name])} must be a list with one entry per example`);
    if (examples < 0) [examples, first] = [v.length, name];
    else if (v.length !== examples) throw new UsageError(`invalid --input: input ${printableNames([name])} has ${v.length} examples, ${printableNames([first])} ${examples}`);
    columns.set(name, v);
  }
  if (examples <= 0) throw noExamples();
  return columns;
}

/**
 * One feature's values over the examples as a TensorProto: [B] when every
 * example gives one value, [B, k] when some give a list (a lone value is a
 * list of one); [B, 0] when every example gives an empty list, which serving
 * reads as REST reads [] (missing for a feature, refused where values are
 * needed). A Monolith record is {"b64": ...}, as REST carries it.
 */
function tensorOf(name: string, perExample: unknown[]): Record<string, unknown> {
  const anyList = perExample.some(Array.isArray);
  const values: (string | number | Buffer)[] = [];
  let k = -1;
  perExample.forEach((v, e) => {
    const where = `feature ${printableNames([name])} of example ${e}`;
    const each = Array.isArray(v) ? v : [v];
    if (k < 0) k = each.length;
    else if (each.length !== k) throw new UsageError(`invalid --input: ${where} has ${plural(each.length, "value")}, example 0 ${k}; over gRPC a feature has as many values in every example; serving's REST API takes lists of any length (${CURL})`);
    for (const x of each) values.push(valueOf(x, where));
  });
  const shape = { dim: anyList ? [{ size: perExample.length }, { size: k }] : [{ size: perExample.length }] };
  if (k === 0) return { dtype: "DT_STRING", tensor_shape: shape, string_val: [] };
  const numbers = values.filter((x) => typeof x === "number");
  if (numbers.length === values.length) {
    if (numbers.every((x) => Number.isSafeInteger(x))) return { dtype: "DT_INT64", tensor_shape: shape, int64_val: numbers.map(String) };
    return { dtype: "DT_DOUBLE", tensor_shape: shape, double_val: numbers };
  }
  // One tensor has one type. Strings and numbers together only as Criteo's counts do: whole numbers and "" for none.
  if (numbers.length && !values.every((x) => x === "" || Number.isSafeInteger(x))) {
    throw new UsageError(`invalid --input: feature ${printableNames([name])} mixes strings and numbers, which one gRPC tensor cannot carry (only "" beside whole numbers, as missing counts); give all as strings or all as numbers, or send the examples to serving's REST API (${CURL})`);
  }
  return { dtype: "DT_STRING", tensor_shape: shape, string_val: values.map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(String(x)))) };
}

function valueOf(x: unknown, where: string): string | number | Buffer {
  if (x === null) throw new UsageError(`invalid --input: ${where} is null, which a gRPC tensor cannot carry (a Criteo count may be given as ""); serving's REST API reads a null as missing (${CURL})`);
  if (typeof x === "string") return x;
  if (typeof x === "number") {
    if (!Number.isFinite(x)) throw new UsageError(`invalid --input: ${where} is a number beyond a double's range (JSON reads it as Infinity)`);
    return x;
  }
  if (typeof x === "object" && !Array.isArray(x) && Object.keys(x).length === 1 && typeof (x as { b64?: unknown }).b64 === "string") return Buffer.from((x as { b64: string }).b64, "base64");
  throw new UsageError(`invalid --input: ${where} must be a string, a number or {"b64": ...}, got ${Array.isArray(x) ? "a list" : typeof x}`);
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
