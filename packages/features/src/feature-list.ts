import { z } from "zod";
import { duplicateJsonKey, printable, readRegularFile, valueSnippet, zodIssueText } from "@pangea/kit";
import { FeatureErrors } from "./errors.js";
import { V1_MAX_SLOT, V2_MAX_SLOT } from "./feature-id.js";

/**
 * How a configured feature's values become feature ids:
 *   fid_v1 / fid_v2  the data already holds ids (v1 are converted to v2)
 *   bytes / int64    raw values, hashed into ids of the feature's slot
 */
export const SLOT_KINDS = ["fid_v1", "fid_v2", "bytes", "int64"] as const;
export type SlotKind = (typeof SLOT_KINDS)[number];

const slotSchema = z.object({
  name: z.string().min(1),
  slot: z.number().int().min(0).max(V2_MAX_SLOT),
  type: z.enum(SLOT_KINDS).default("fid_v2"),
  /** The slot's embedding width; absent: the job's --embedding-dim. */
  dim: z.number().int().positive().max(1024).optional(),
  /** How a cell's several ids become one vector (Monolith's combiner): sum, mean (sum / n) or sqrtn (sum / sqrt(n)); absent: sum. */
  pooling: z.enum(["sum", "mean", "sqrtn"], { message: 'expected pooling "sum", "mean" or "sqrtn"' }).optional(),
}).strict();

const denseSchema = z.object({
  name: z.string().min(1),
  size: z.number().int().positive().default(1),
  transform: z.enum(["none", "log1p"]).default("none"),
}).strict();

/** What a task's name must be (it names a serving output and a metrics label): a letter, then letters, digits or _, at most 64. */
export const TASK_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Names that are not a task's: serving's own output names. */
export const RESERVED_TASK_NAMES: readonly string[] = ["probabilities", "predictions", "scores"];

/** One task's label: where a record holds it and how the model learns it. */
const labelSchema = z
  .object({
    /** The task's name (its output's in serving, its metrics' label). */
    name: z.string().regex(TASK_NAME, "expected a name of a letter then letters, digits or _"),
    /** Which of a Monolith sample's labels holds it; absent: the label's position in this list. */
    index: z.number().int().min(0).optional(),
    /** Which Parquet column holds it; absent: the name. */
    column: z.string().min(1).optional(),
    /** bce: a binary label (> 0 is 1); mse: a real-valued target (e.g. watch time). */
    loss: z.enum(["bce", "mse"], { message: 'expected loss "bce" or "mse"' }).default("bce"),
    /** The task's loss weight in the total. */
    weight: z.number().min(0).default(1),
  })
  .strict();

const listSchema = z
  .object({
    slots: z.array(slotSchema).min(1, "declare at least one slot"),
    dense: z.array(denseSchema).default([]),
    /** One binary label (the task "ctr"). */
    label: z
      .object({
        // Which of a Monolith sample's labels to train on.
        index: z.number().int().min(0).default(0),
        // Which column holds the label in a Parquet file.
        column: z.string().min(1).default("label"),
      })
      .strict()
      .optional(),
    /** Several tasks' labels (multi-task training), instead of label. */
    labels: z.array(labelSchema).min(1, "declare at least one label").max(16, "at most 16 labels").optional(),
    /** The slot whose id groups records for GAUC (e.g. the user id's). */
    groupSlot: z.number().int().min(0).max(V2_MAX_SLOT).optional(),
  })
  .strict()
  .refine((l) => !(l.label && l.labels), { message: 'give either "label" (one task) or "labels" (several), not both', path: ["labels"] });

/** Where one task's label is in a record, and how it is learned. */
export interface LabelSpec {
  name: string;
  loss: "bce" | "mse";
  weight: number;
  /** Its index in a Monolith sample's label list. */
  index: number;
  /** Its Parquet column. */
  column: string;
}

export type FeatureListConfig = z.infer<typeof listSchema>;

/** A feature list compiled for the decoders: lookups by slot id and by name. */
export interface FeatureList {
  readonly config: FeatureListConfig;
  readonly slotIds: number[];
  /** Column of each v2 slot id, -1 when the slot is not configured. */
  readonly columnOfSlot: Int32Array;
  readonly slotByName: ReadonlyMap<string, { column: number; slot: number; kind: SlotKind }>;
  readonly denseByName: ReadonlyMap<string, { offset: number; size: number; log1p: boolean }>;
  readonly numDense: number;
  /** The labels a record carries, in task order (TrainingBatch's [B, T]). */
  readonly labels: readonly LabelSpec[];
  /** Whether the list names its tasks (labels); false: one binary label, the default task. */
  readonly namedTasks: boolean;
  /** The slot grouping records for GAUC, or null. */
  readonly groupSlot: number | null;
}

/**
 * Where in the list an issue is: an entry of slots, dense or labels by its
 * position and, when it has one, its name (`slots[2] "C3".dim`), since
 * "slots.2" read as slot 2 to users of --slot-config, whose keys are slot numbers.
 */
function issuePath(raw: unknown, path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  let out = "";
  let at: unknown = raw;
  for (const key of path) {
    at = at !== null && typeof at === "object" ? (at as Record<PropertyKey, unknown>)[key] : undefined;
    if (typeof key === "number") {
      const name = at !== null && typeof at === "object" ? (at as { name?: unknown }).name : undefined;
      out += `[${key}]${typeof name === "string" ? ` ${valueSnippet(name, 40)}` : ""}`;
    } else out += `${out ? "." : ""}${String(key)}`;
  }
  return out;
}

export function compileFeatureList(config: FeatureListConfig, where: string): FeatureList {
  const bad = (msg: string) => FeatureErrors.create("FEATURES_ERR_BAD_LIST", `${where}: ${msg}`);
  const columnOfSlot = new Int32Array(V2_MAX_SLOT + 1).fill(-1);
  const slotByName = new Map<string, { column: number; slot: number; kind: SlotKind }>();
  config.slots.forEach((s, column) => {
    if (columnOfSlot[s.slot] !== -1) throw bad(`slot ${s.slot} is declared twice`);
    if (slotByName.has(s.name)) throw bad(`feature '${printable(s.name, 40)}' is declared twice`);
    if (s.type === "fid_v1" && s.slot > V1_MAX_SLOT) throw bad(`feature '${printable(s.name, 40)}': v1 fids have 10-bit slots, ${s.slot} is above ${V1_MAX_SLOT}`);
    columnOfSlot[s.slot] = column;
    slotByName.set(s.name, { column, slot: s.slot, kind: s.type });
  });
  const labels: LabelSpec[] = config.labels
    ? config.labels.map((l, i) => ({ name: l.name, loss: l.loss, weight: l.weight, index: l.index ?? i, column: l.column ?? l.name }))
    : [{ name: "ctr", loss: "bce", weight: 1, index: config.label?.index ?? 0, column: config.label?.column ?? "label" }];
  const names = new Set<string>();
  // Two tasks reading one label are a copy-paste slip, not a model.
  const byIndex = new Map<number, string>();
  const byColumn = new Map<string, string>();
  for (const l of labels) {
    if (names.has(l.name)) throw bad(`label '${l.name}' is declared twice`);
    if (RESERVED_TASK_NAMES.includes(l.name)) throw bad(`label '${l.name}': the name is serving's own output's; choose another`);
    if (byIndex.has(l.index)) throw bad(`labels '${byIndex.get(l.index)}' and '${l.name}' both read a Monolith sample's label ${l.index}`);
    if (byColumn.has(l.column)) throw bad(`labels '${byColumn.get(l.column)}' and '${l.name}' both read column '${printable(l.column, 40)}'`);
    names.add(l.name);
    byIndex.set(l.index, l.name);
    byColumn.set(l.column, l.name);
  }
  if (labels.every((l) => l.weight === 0)) throw bad(`every label has weight 0: the loss would be 0 and nothing learned`);
  if (config.groupSlot !== undefined && columnOfSlot[config.groupSlot] === -1) throw bad(`groupSlot ${config.groupSlot} is not a declared slot`);
  const denseByName = new Map<string, { offset: number; size: number; log1p: boolean }>();
  let offset = 0;
  for (const d of config.dense) {
    if (denseByName.has(d.name) || slotByName.has(d.name)) throw bad(`feature '${printable(d.name, 40)}' is declared twice`);
    denseByName.set(d.name, { offset, size: d.size, log1p: d.transform === "log1p" });
    offset += d.size;
  }
  for (const l of labels) {
    if (slotByName.has(l.column) || denseByName.has(l.column)) {
      throw bad(`feature '${printable(l.column, 40)}' is the column the label '${l.name}' is read from: the model would be given its own answer (its AUC reads 1.0); leave the label out of slots and dense`);
    }
  }
  return {
    config,
    slotIds: config.slots.map((s) => s.slot),
    columnOfSlot,
    slotByName,
    denseByName,
    numDense: offset,
    labels,
    namedTasks: config.labels !== undefined,
    groupSlot: config.groupSlot ?? null,
  };
}

/**
 * Reads a feature list: JSON ({"slots": [...], "dense": [...], "label": {...}})
 * or Monolith's feature_list.conf text, whose lines of key=value pairs give
 * each feature's name (feature_name or name) and slot (dense features and
 * types need the JSON form).
 */
/** A feature list's largest size: thousands of slots take a few hundred KB. */
export const MAX_FEATURE_LIST_BYTES = 16 << 20;

export function loadFeatureList(path: string): FeatureList {
  // A regular file of bounded size: /dev/zero or a FIFO given by mistake would fill the memory or wait for ever.
  const text = readRegularFile(path, `feature list ${path}`, (msg) => FeatureErrors.create("FEATURES_ERR_BAD_LIST", msg), { maxBytes: MAX_FEATURE_LIST_BYTES }).toString("utf8");
  let raw: unknown;
  const start = text.trimStart();
  // An empty file and JSON that is not an object would otherwise read as a .conf without a slot line.
  if (!start) throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path} is empty; expected a JSON object ({"slots": [...], ...}) or feature_list.conf lines (feature_name=... slot=...)`);
  if (/^[[\]"]/.test(start) || /^(true|false|null|-?\d+(\.\d*)?)\s*$/.test(start)) {
    let held = `text starting ${JSON.stringify(printable(start.slice(0, 20)))}`;
    try {
      const v: unknown = JSON.parse(text);
      held = Array.isArray(v) ? "a JSON array" : v === null ? "JSON null" : `a JSON ${typeof v}`;
    } catch {
      // not JSON either, and no .conf line starts so: say what it starts with
    }
    throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path} holds ${held}; expected a JSON object ({"slots": [...], ...}) or feature_list.conf lines (feature_name=... slot=...)`);
  }
  if (start.startsWith("{")) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path} is not valid JSON: ${printable((err as Error).message, 160)}`);
    }
    const twice = duplicateJsonKey(text);
    if (twice !== null) throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path} gives ${JSON.stringify(twice)} twice; give each field once`);
  } else {
    raw = parseConf(text, path);
  }
  const parsed = listSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A misspelt key would otherwise be dropped silently (e.g. "pooing": "mean" leaving the slot summing).
    const message = zodIssueText(issue, raw);
    throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path}: ${issuePath(raw, issue.path)}: ${message}`);
  }
  return compileFeatureList(parsed.data, `feature list ${path}`);
}

function parseConf(text: string, path: string): unknown {
  const slots: { name: string; slot: number; type?: string; dim?: number; pooling?: string }[] = [];
  text.split("\n").forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith("#") || l.startsWith("column_name") || l.startsWith("cache") || l.startsWith("feed")) return;
    const kv = new Map<string, string>();
    for (const m of l.matchAll(/([A-Za-z_]+)\s*=\s*([^\s,;]+)/g)) {
      // The last would win silently, as in a JSON object given a key twice.
      if (kv.has(m[1]!)) throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path}:${i + 1}: ${m[1]} is given twice; give each key once`);
      kv.set(m[1]!, m[2]!);
    }
    if (kv.has("feature_name") && kv.has("name")) throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path}:${i + 1}: both feature_name and name are given; give one`);
    const name = kv.get("feature_name") ?? kv.get("name");
    const slot = kv.get("slot");
    if (!name || slot === undefined || !/^\d+$/.test(slot)) {
      throw FeatureErrors.create("FEATURES_ERR_BAD_LIST", `feature list ${path}:${i + 1}: expected feature_name=... slot=<integer>, got '${printable(l)}'`);
    }
    slots.push({ name, slot: Number(slot), ...(kv.has("type") ? { type: kv.get("type") } : {}), ...(kv.has("dim") ? { dim: Number(kv.get("dim")) } : {}), ...(kv.has("pooling") ? { pooling: kv.get("pooling") } : {}) });
  });
  return { slots };
}

/**
 * A record's value for a task's label: a binary label as 0 or 1 (> 0 is 1),
 * a regression target as it is; NaN when it is missing or not a finite
 * number (the caller names the record and refuses it).
 */
export function labelValue(label: LabelSpec, raw: unknown): number {
  const n = typeof raw === "number" ? raw : typeof raw === "bigint" ? Number(raw) : typeof raw === "boolean" ? Number(raw) : Number.NaN;
  if (!Number.isFinite(n)) return Number.NaN;
  if (label.loss === "bce") return n > 0 ? 1 : 0;
  return Math.abs(n) <= MAX_TARGET ? n : Number.NaN;
}

/**
 * The largest regression target taken: a squared error of a larger one can
 * overflow float32 (3.4e38) in a batch's loss, which would stop every
 * trainer instead of refusing the record.
 */
export const MAX_TARGET = 1e12;

/** For a regression target beyond MAX_TARGET, why it is refused (to follow "label ... "); else null. */
export function targetOutOfRange(label: LabelSpec, raw: unknown): string | null {
  if (label.loss !== "mse" || typeof raw !== "number" || !Number.isFinite(raw) || Math.abs(raw) <= MAX_TARGET) return null;
  return `is ${raw}, beyond the ${MAX_TARGET.toExponential()} a regression target may reach (its squared error would overflow)`;
}

/** The model's tasks as the feature list declares them: empty for one unnamed binary label (the default task). */
export function tasksOfList(list: FeatureList): { name: string; loss: "bce" | "mse"; weight: number }[] {
  return list.namedTasks ? list.labels.map((l) => ({ name: l.name, loss: l.loss, weight: l.weight })) : [];
}

/** Why a feature list cannot describe a model's inputs (its slots in order, its dense width), or null: export and serving refuse such a pair. */
export function featureListMismatch(list: FeatureList, slotIds: readonly number[], numDense: number): string | null {
  if (list.slotIds.join() !== slotIds.join()) return `the feature list's slots ${list.slotIds.join(",")} are not the model's ${slotIds.join(",")}`;
  if (list.numDense !== numDense) return `the feature list has ${list.numDense} dense values, the model ${numDense}`;
  return null;
}

/** Each column's slot name, in column order. */
export function slotNamesOf(list: FeatureList): string[] {
  const names = new Array<string>(list.slotIds.length).fill("?");
  for (const [name, s] of list.slotByName) names[s.column] = name;
  return names;
}
