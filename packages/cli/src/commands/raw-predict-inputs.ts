import { printableNames, UsageError } from "@pangea/kit";

/**
 * Raw feature values by name (Criteo's I1..I13 and C1..C26, a feature
 * list's names, or dense_values/slot_values by position) as serving's gRPC
 * Predict takes them: one tensor per feature, shape [B] (one value an
 * example) or [B, k] (k each); or, where examples give a feature different
 * numbers of values (a list of another length, a null, the feature left
 * out: none), ragged: its values [nnz] and `<feature>_lengths` [B], which
 * serving reads as REST reads the lists. The JSON forms are REST's; what a
 * gRPC tensor cannot carry (a null inside a list, strings and numbers
 * mixed) is refused naming the feature and example, with where to send it
 * instead.
 *
 * Types follow the values: whole numbers go as DT_INT64, other numbers as
 * DT_DOUBLE, strings as DT_STRING (with "" beside whole numbers: Criteo's
 * counts with fields missing); serving then checks each value against what
 * its feature takes, by its gRPC rules (decimal text in a DT_STRING tensor
 * is a number there, as REST's JSON string is not).
 */
export function rawTensors(body: { instances?: Record<string, unknown>[]; inputs?: Record<string, unknown> }, names: readonly string[]): Record<string, unknown> {
  const columns = body.instances ? byInstance(body.instances, names) : byColumn(body.inputs!);
  // Over gRPC a tensor named after another input plus _lengths or _row_splits is that input's ragged rows (unless the
  // model has a feature of that name, which this command cannot tell): a key of the input so named is refused.
  for (const name of columns.keys()) {
    const suffix = RAGGED_SUFFIXES.find((x) => name.endsWith(x) && columns.has(name.slice(0, -x.length)));
    if (suffix) throw new UsageError(`invalid --input: ${printableNames([name])} beside ${printableNames([name.slice(0, -suffix.length)])} would be read over gRPC as the rows of ${printableNames([name.slice(0, -suffix.length)])} (serving's ragged form); for a feature of that name send the examples to serving's REST API (${CURL})`);
  }
  // No prototype: a feature named "__proto__" is a key like any other (serving names it as no input).
  const out = Object.create(null) as Record<string, unknown>;
  for (const [name, values] of columns) {
    const lengths = raggedLengths(values);
    if (lengths && POSITIONAL.includes(name)) {
      const e = lengths.findIndex((n) => n !== lengths[0]);
      throw new UsageError(`invalid --input: ${name} of example ${e < 0 ? 0 : e} has ${lengths[e < 0 ? 0 : e]} values, example 0 ${lengths[0]}; by position every example gives every value (a missing one as null is for serving's REST API: ${CURL})`);
    }
    if (!lengths) {
      out[name] = tensorOf(name, values, false);
      continue;
    }
    const companion = `${name}${RAGGED_SUFFIXES[0]}`;
    out[name] = tensorOf(name, values, true);
    out[companion] = { dtype: "DT_INT64", tensor_shape: { dim: [{ size: lengths.length }] }, int64_val: lengths.map(String) };
  }
  return out;
}

/** What serving takes beside a feature's values [nnz]: how many of them each example has (sent), or where each starts. */
const RAGGED_SUFFIXES = ["_lengths", "_row_splits"];
/** Raw values by position: every example gives them all, so they have no ragged form. */
const POSITIONAL = ["dense_values", "slot_values"];

/**
 * Each example's number of values when they differ (a lone value is one, a null or a feature left out none), so that
 * the feature goes ragged; null when every example gives it as many, as one [B] or [B, k] tensor carries it.
 */
function raggedLengths(perExample: unknown[]): number[] | null {
  const lengths = perExample.map((v) => (v === undefined || v === null ? 0 : Array.isArray(v) ? v.length : 1));
  const uneven = lengths.some((n) => n !== lengths[0]) || perExample.some((v) => v === undefined || v === null);
  return uneven ? lengths : null;
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
      // A feature left out of an example has no values there (undefined), as REST reads it.
      instances.map((r) => (Object.hasOwn(r, name) ? r[name] : undefined)),
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
 * needed); `ragged`, every example's values in order [nnz] (a null or a
 * feature left out gives none). A Monolith record is {"b64": ...}, as REST
 * carries it.
 */
function tensorOf(name: string, perExample: unknown[], ragged: boolean): Record<string, unknown> {
  const values: (string | number | Buffer)[] = [];
  perExample.forEach((v, e) => {
    if (v === undefined || v === null) return; // only when ragged (raggedLengths)
    const where = `feature ${printableNames([name])} of example ${e}`;
    for (const x of Array.isArray(v) ? v : [v]) values.push(valueOf(x, where));
  });
  const k = Array.isArray(perExample[0]) ? perExample[0].length : 1;
  const shape = { dim: ragged ? [{ size: values.length }] : perExample.some(Array.isArray) ? [{ size: perExample.length }, { size: k }] : [{ size: perExample.length }] };
  if (values.length === 0) return { dtype: "DT_STRING", tensor_shape: shape, string_val: [] };
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
  // A whole feature's null is sent as no values (raggedLengths); one inside a list has no place among them.
  if (x === null) throw new UsageError(`invalid --input: ${where} has a null in its list, which a gRPC tensor cannot carry (a null for the whole feature is sent as no values); serving's REST API reads it as missing (${CURL})`);
  if (typeof x === "string") return x;
  if (typeof x === "number") {
    if (!Number.isFinite(x)) throw new UsageError(`invalid --input: ${where} is a number beyond a double's range (JSON reads it as Infinity)`);
    return x;
  }
  if (typeof x === "object" && !Array.isArray(x) && Object.keys(x).length === 1 && typeof (x as { b64?: unknown }).b64 === "string") return Buffer.from((x as { b64: string }).b64, "base64");
  throw new UsageError(`invalid --input: ${where} must be a string, a number or {"b64": ...}, got ${Array.isArray(x) ? "a list" : typeof x}`);
}

