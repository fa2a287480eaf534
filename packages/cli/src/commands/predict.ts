import { jsonIdProblem, jsonIdText } from "@pangea/features";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { z } from "zod";
import { address, duplicateJsonKey, notANumberProblem, parseConfig, positiveInt, printable, printableNames, readRegularFile, usageText, UsageError, type FlagTable } from "@pangea/kit";
import { loadTfServingProtos, predictBodyProblem } from "@pangea/schema";
import { CHANNEL_OPTIONS, channelCredentials, diagnoseConnection, isWrongPort, loadTransportSecurity, oneLineDetails, readBearerToken, remoteCode, trustOnlyCredentials } from "@pangea/rpc";
import { ClusterError } from "../cluster-error.js";
import { noExamples, rawTensors } from "./raw-predict-inputs.js";
import { usableTlsDir } from "../tls-dir.js";

export const PREDICT_FLAGS: FlagTable = {
  address: { description: "serving's gRPC address (host:port)", default: "127.0.0.1:8500" },
  model: { description: "model name", default: "pangea" },
  version: { description: "model version (default: the newest)" },
  input: { description: "JSON file with {\"instances\": [{\"dense_features\": [...], \"feature_ids\": [...]}]} or {\"inputs\": {...}}, or raw feature values by name ({\"instances\": [{\"I1\": 5, \"C1\": \"68fd1e64\", ...}]}); - = stdin" },
  "timeout-ms": { description: "how long to wait for the answer", default: "10000" },
  "tls-dir": { description: "serving runs with TLS: a directory with the cluster's ca.crt (trusted), and admin.crt/admin.key if you have them (then no token is needed)" },
  "token-file": { description: "a file holding serving's API token (serving --api-token-file), sent as 'authorization: Bearer'" },
};

const schema = z.object({
  address: address.default("127.0.0.1:8500"),
  model: z.string().min(1, "expected a model name").default("pangea"),
  version: positiveInt("a positive version").optional(),
  input: z.string({ message: "expected a JSON file (or - for stdin)" }).min(1),
  // grpc-js turns a deadline past 2^31 ms into an immediate DEADLINE_EXCEEDED (and past 2^53 throws): a day is plenty.
  timeoutMs: positiveInt("milliseconds", { max: 86_400_000, message: "expected at most 86400000 milliseconds (a day)" }).default(10_000),
  tlsDir: z.string().min(1, "expected a path").optional(),
  tokenFile: z.string().min(1, "expected a path").optional(),
});

interface PredictAnswer {
  outputs: Record<string, { float_val?: number[] }>;
  model_spec: { version: { value: string } };
}

/** As serving's REST answers rows: one output gives each example's value, several an object {output: value} per example (a multi-task model's tasks). */
function predictionsOf(outputs: PredictAnswer["outputs"]): number[] | Record<string, number>[] {
  const named = Object.entries(outputs).map(([name, t]) => [name, t.float_val ?? []] as const);
  if (named.length === 1) return [...named[0]![1]];
  return Array.from({ length: named[0]?.[1].length ?? 0 }, (_, e) => Object.fromEntries(named.map(([name, v]) => [name, v[e]!])));
}

const predictUsage = () => usageText("pangea predict", "Send examples to a serving replica's TensorFlow Serving Predict RPC and print the predictions as JSON (a multi-task model's: an object of its tasks' outputs per example).", PREDICT_FLAGS);

type Row = { dense_features?: unknown; feature_ids?: unknown };

const ID_INPUTS = ["dense_features", "feature_ids"];

/**
 * The request's tensors from REST-style JSON: the id form's two, or raw
 * feature values by name (rawTensors) when the body names no id input; or a
 * one-line usage error naming what is wrong.
 */
function requestInputs(body: unknown): Record<string, unknown> {
  const problem = predictBodyProblem(body, "pangea predict");
  if (problem) throw new UsageError(`invalid --input: ${problem}`);
  const b = body as { instances?: Record<string, unknown>[]; inputs?: Record<string, unknown> };
  const names = [...new Set(b.instances ? b.instances.flatMap((r) => Object.keys(r)) : Object.keys(b.inputs!))];
  if (!names.some((n) => ID_INPUTS.includes(n))) return rawTensors(b, names);
  const other = names.filter((n) => !ID_INPUTS.includes(n));
  if (other.length) {
    throw new UsageError(`invalid --input: ${printableNames(other)} beside dense_features and feature_ids; give the ids' two inputs or raw feature values by name, not both`);
  }
  const { dense, ids } = tensors(b as { instances?: Row[]; inputs?: Row });
  return {
    dense_features: { dtype: "DT_FLOAT", tensor_shape: { dim: [{ size: dense.length }, { size: dense[0]?.length ?? 0 }] }, float_val: dense.flat() },
    ...idTensors(ids),
  };
}

/** The id form's two tensors' values, or a one-line usage error naming what is wrong. */
function tensors(b: { instances?: Row[]; inputs?: Row }): { dense: number[][]; ids: Cell[][] } {
  let dense: unknown;
  let ids: unknown;
  if (b.instances) {
    dense = b.instances.map((r) => r.dense_features);
    ids = b.instances.map((r) => r.feature_ids);
  } else {
    dense = b.inputs!.dense_features;
    ids = b.inputs!.feature_ids;
  }
  const rows = (v: unknown, name: string) => {
    if (!Array.isArray(v) || !v.every((r) => Array.isArray(r))) throw new UsageError(`invalid --input: ${name} must be a list of rows`);
    if (v.length === 0) throw noExamples();
    // Named here by example: serving would see only a tensor whose values do not fill its shape.
    const width = (v[0] as unknown[]).length;
    const odd = v.findIndex((r: unknown[]) => r.length !== width);
    const n = odd >= 0 ? (v[odd] as unknown[]).length : 0;
    if (odd >= 0) throw new UsageError(`invalid --input: ${name} of example ${odd} has ${n} value${n === 1 ? "" : "s"}; example 0 has ${width}`);
    return v as unknown[][];
  };
  const d = rows(dense, "dense_features") as number[][];
  d.forEach((r, e) =>
    r.forEach((x, j) => {
      const problem = notANumberProblem(x);
      if (problem) throw new UsageError(`invalid --input: dense_features of example ${e}, value ${j} ${problem}`);
    }),
  );
  const i = rows(ids, "feature_ids") as Cell[][];
  if (d.length !== i.length) throw new UsageError(`invalid --input: ${d.length} examples of dense_features, ${i.length} of feature_ids`);
  return { dense: d, ids: i };
}

/** A cell of feature_ids: one id, or a list of several (pooled as the slot pools them) or none. */
type Cell = string | number | (string | number)[];

/** An id as the request carries it (a decimal string), or a usage error naming the example and slot. */
function idText(x: unknown, e: number, s: number): string {
  const text = jsonIdText(x);
  if (text === null) throw new UsageError(`invalid --input: feature_ids of example ${e}, slot #${s}: ${jsonIdProblem(x)}`);
  return text;
}

/**
 * feature_ids as the request's tensors: [B, S] with one id a cell, or, when
 * some cell is a list, the ragged form (every id in order, [nnz], with
 * feature_ids_lengths [B, S]).
 */
function idTensors(ids: Cell[][]): Record<string, unknown> {
  const B = ids.length;
  const S = ids[0]?.length ?? 0;
  if (!ids.some((r) => r.some(Array.isArray))) {
    return { feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: B }, { size: S }] }, uint64_val: ids.flatMap((r, e) => r.map((x, s) => idText(x, e, s))) } };
  }
  const values: string[] = [];
  const lengths: number[] = [];
  ids.forEach((r, e) =>
    r.forEach((cell, s) => {
      const list = Array.isArray(cell) ? cell : [cell];
      lengths.push(list.length);
      for (const x of list) values.push(idText(x, e, s));
    }),
  );
  return {
    feature_ids: { dtype: "DT_UINT64", tensor_shape: { dim: [{ size: values.length }] }, uint64_val: values },
    feature_ids_lengths: { dtype: "DT_INT64", tensor_shape: { dim: [{ size: B }, { size: S }] }, int64_val: lengths.map(String) },
  };
}

/** The largest --input file: a predict request of this size is far past what one call should carry. */
const MAX_INPUT_BYTES = 64 << 20;

export async function predictCommand(argv: string[]): Promise<number> {
  const c = parseConfig(schema, PREDICT_FLAGS, argv, {});
  if (!c) {
    process.stdout.write(predictUsage());
    return 0;
  }
  let bytes: Buffer;
  if (c.input === "-") {
    try {
      bytes = readFileSync(0);
    } catch (err) {
      throw new UsageError(`invalid --input: cannot read the standard input: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else {
    // A regular file of bounded size: /dev/zero would fill the memory, a FIFO wait for ever.
    bytes = readRegularFile(c.input, printable(c.input), (msg) => new UsageError(`invalid --input: ${msg}`), { maxBytes: MAX_INPUT_BYTES });
  }
  let text: string;
  try {
    // As serving's REST reads a body: bytes that are no UTF-8 are refused, not replaced with U+FFFD.
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`invalid --input: ${printable(c.input)} is not UTF-8 text; JSON must be UTF-8`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`invalid --input: ${printable(c.input)} is not JSON: ${printable((err as Error).message, 160)}`);
  }
  // As serving's REST refuses a body that does: JSON.parse keeps the last of two, and the first would not be predicted.
  const twice = duplicateJsonKey(text);
  if (twice !== null) throw new UsageError(`invalid --input: ${printable(c.input)} gives ${JSON.stringify(printable(twice, 80))} twice in one object; JSON.parse would keep only the last: give each key once`);
  const inputs = requestInputs(body);
  const meta = new grpc.Metadata();
  if (c.tokenFile) meta.set("authorization", `Bearer ${readBearerToken("invalid --token-file", c.tokenFile)}`);
  const credentials = usableTlsDir(() =>
    !c.tlsDir
      ? grpc.credentials.createInsecure()
      : existsSync(join(c.tlsDir, "admin.crt"))
        ? channelCredentials(["serving"], loadTransportSecurity(c.tlsDir, "admin"))
        : trustOnlyCredentials(c.tlsDir, ["serving"]),
  );
  const client = new (loadTfServingProtos().PredictionService)(c.address, credentials, CHANNEL_OPTIONS) as unknown as {
    Predict(req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: PredictAnswer) => void): void;
    close(): void;
  };
  const request = {
    model_spec: { name: c.model, ...(c.version ? { version: { value: String(c.version) } } : {}) },
    inputs,
  };
  try {
    const res = await new Promise<PredictAnswer>((resolve, reject) =>
      client.Predict(request, meta, { deadline: Date.now() + c.timeoutMs }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    process.stdout.write(`${JSON.stringify({ predictions: predictionsOf(res.outputs), model_version: Number(res.model_spec.version.value) })}\n`);
    return 0;
  } catch (err) {
    const e = err as grpc.ServiceError;
    // Serving's own UNAVAILABLE (no version loaded: SERVING_ERR_NOT_READY) is an answer: serving was reached.
    const answered = remoteCode(e) !== null;
    if ((e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) && !answered) {
      // A TLS mismatch reaches gRPC as "no connection established": name it.
      const side = c.tlsDir ? { dir: c.tlsDir, ca: readFileSync(join(c.tlsDir, "ca.crt")) } : null;
      // What answers there, when it can be told: an HTTP/1 port (most often serving's REST port), TLS or not, another
      // service of the cluster.
      const d = await diagnoseConnection(c.address, side, ["serving"]);
      const hint = isWrongPort(d) ? " (--address takes serving's gRPC port, --port of pangea serve)" : "";
      const details = oneLineDetails(e.details);
      throw new ClusterError(d.reason ? `serving at ${c.address} cannot be reached${d.reason}${hint}` : `serving at ${c.address}: ${grpc.status[e.code]}: ${details}`, d.kind === "role" ? 1 : 3);
    }
    process.stderr.write(`pangea predict: serving at ${c.address}: ${grpc.status[e.code] ?? "error"}: ${e.details ?? e.message}\n`);
    // Serving refused what --input holds (a width the model does not have, say): the input's mistake, as the checks above.
    return e.code === grpc.status.INVALID_ARGUMENT ? 2 : 1;
  } finally {
    client.close();
  }
}
