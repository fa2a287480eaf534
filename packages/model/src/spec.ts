import { Rng, printable, zodIssueText } from "@pangea/kit";
import { ModelErrors } from "./errors.js";
import { RESERVED_TASK_NAMES, TASK_NAME } from "@pangea/features";
import { LOSSES, POOLINGS, dimsOf, mixedDimsProblem, oneDimReason, poolingOf, slotName, tasksOf, type Loss, type Pooling, type DenseParam, type ModelShape, type Architecture, type TaskSpec, DEFAULT_TASK } from "./architectures/architecture.js";
import { ARCHITECTURES, ARCHITECTURE_NAMES } from "./architectures/registry.js";
import { forwardShapeProblem } from "./architectures/forward-shapes.js";


/** An architecture's name and its hyper-parameters, defaults filled in. */
export interface ArchitectureConfig {
  name: string;
  [hyper: string]: unknown;
}

/** The model every trainer, the parameter server and serving agree on: its inputs and its architecture. */
export interface ModelSpec extends ModelShape {
  architecture: ArchitectureConfig;
}

/** The architectures that take slots of different embedding dims. */
const MIXED_DIMS = ARCHITECTURE_NAMES.filter((n) => !ARCHITECTURES.get(n)!.oneDim);

const bad = (msg: string) => ModelErrors.create("MODEL_ERR_BAD_SPEC", msg);

function architectureNamed(name: string): Architecture<any> {
  const a = ARCHITECTURES.get(name);
  if (!a) throw bad(`unknown model "${name}"; expected one of ${ARCHITECTURE_NAMES.join(", ")}`);
  return a;
}

/**
 * The hyper-parameters of architecture `name` from a user's (possibly
 * partial) object, validated and with defaults: errors name the field.
 */
export function architectureConfig(name: string, hyper: unknown): ArchitectureConfig {
  const a = architectureNamed(name);
  const parsed = a.config.safeParse(hyper ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".");
    const message = zodIssueText(issue, hyper, () => `${name} takes ${Object.keys((a.config as unknown as { shape: object }).shape).join(", ")}`);
    throw bad(`model ${name}${field ? ` field ${field}` : ""}: ${message}`);
  }
  const { dropout, ...rest } = parsed.data as { dropout?: number };
  // No dropout reads as dropout 0 left out: the config, its JSON and the job summary stay as they were without it.
  return { name, ...rest, ...(dropout ? { dropout } : {}) };
}

/**
 * The spec, checked: its shape, its hyper-parameters and whether they fit
 * together (errors name slots by slotIds when given). Returns it with
 * defaults filled in. With inputKnown false (at start, before the data's
 * shape is known, on a stand-in input as wide as any data's) the parameter
 * budget waits for the real shape.
 */
export function validateSpec(spec: ModelSpec, slotIds?: readonly (number | string)[], opts: { inputKnown?: boolean } = {}): ModelSpec {
  if (!Number.isInteger(spec.numDense) || spec.numDense < 1) throw bad(`model needs at least one dense feature, got ${spec.numDense}`);
  if (!Number.isInteger(spec.numSlots) || spec.numSlots < 1) throw bad(`model needs at least one categorical slot, got ${spec.numSlots}`);
  if (!Number.isInteger(spec.embeddingDim) || spec.embeddingDim < 1) throw bad(`embedding dim must be a positive integer, got ${spec.embeddingDim}`);
  if (spec.slotDims !== undefined) {
    if (!Array.isArray(spec.slotDims) || spec.slotDims.length !== spec.numSlots) throw bad(`slot dims ${JSON.stringify(spec.slotDims)} must give one dim for each of the ${spec.numSlots} slots`);
    const wrong = spec.slotDims.findIndex((d) => !Number.isInteger(d) || d < 1 || d > MAX_EMBEDDING_DIM);
    if (wrong >= 0) throw bad(`${slotName(slotIds, wrong)}: embedding dim must be an integer 1..${MAX_EMBEDDING_DIM}, got ${spec.slotDims[wrong]}`);
  }
  if (spec.slotPooling !== undefined) {
    if (!Array.isArray(spec.slotPooling) || spec.slotPooling.length !== spec.numSlots) throw bad(`slot pooling ${JSON.stringify(spec.slotPooling)} must give one pooling for each of the ${spec.numSlots} slots`);
    const wrong = spec.slotPooling.findIndex((p) => !POOLINGS.includes(p));
    if (wrong >= 0) throw bad(`${slotName(slotIds, wrong)}: pooling must be ${POOLINGS.join(", ")}, got ${JSON.stringify(spec.slotPooling[wrong])}`);
  }
  const tasks = spec.tasks === undefined ? undefined : validateTasks(spec.tasks);
  // Every slot at the common width, or every slot summing, or the one default task, is the same model as none given: specs compare (and old checkpoints match) as such.
  const slotDims = spec.slotDims && spec.slotDims.some((d) => d !== spec.embeddingDim) ? [...spec.slotDims] : undefined;
  const slotPooling = spec.slotPooling && spec.slotPooling.some((p) => p !== "sum") ? [...spec.slotPooling] : undefined;
  const namedTasks = tasks && !(tasks.length === 1 && sameTask(tasks[0]!, DEFAULT_TASK)) ? tasks : undefined;
  const shape: ModelShape = {
    numDense: spec.numDense,
    numSlots: spec.numSlots,
    embeddingDim: spec.embeddingDim,
    ...(slotDims ? { slotDims } : {}),
    ...(slotPooling ? { slotPooling } : {}),
    ...(namedTasks ? { tasks: namedTasks } : {}),
  };
  const { name, ...hyper } = spec.architecture ?? { name: "" };
  const architecture = architectureConfig(name, hyper);
  const { name: _n, ...filled } = architecture;
  const arch = architectureNamed(name);
  const inputKnown = opts.inputKnown ?? true;
  const oneDim = oneDimReason(arch, filled);
  const problem = arch.check(shape, filled, slotIds) ?? (oneDim ? mixedDimsProblem(shape, name, oneDim, MIXED_DIMS, slotIds) : null);
  if (problem) throw bad(problem);
  const shapes = forwardShapeProblem(arch, shape, filled, dimsOf(shape).map((d) => arch.rowWidth(d, filled)), !inputKnown);
  if (shapes) throw bad(shapes);
  if (!inputKnown) {
    // Parameters only grow with the input: a model over the budget on the narrowest input (one dense feature, one
    // slot of dim 1: a slot config or the data's feature list may still narrow the dims) is over it on any data, so it
    // is refused now, not when the data comes.
    const narrowest: ModelShape = { numDense: 1, numSlots: 1, embeddingDim: 1, ...(shape.tasks ? { tasks: shape.tasks } : {}) };
    const over = overBudget(name, arch.params(narrowest, filled), " on any data");
    if (over) throw bad(over);
    return { ...shape, architecture };
  }
  const over = overBudget(name, arch.params(shape, filled), "");
  if (over) throw bad(over);
  return { ...shape, architecture };
}

/** Why a model's dense parameters are more than a job may have, or null. */
function overBudget(name: string, params: readonly DenseParam[], where: string): string | null {
  const values = params.reduce((a, p) => a + paramSize(p), 0);
  if (values <= MAX_DENSE_VALUES) return null;
  const largest = params.reduce((a, p) => (paramSize(p) > paramSize(a) ? p : a));
  return `model ${name} would have ${where ? "at least " : ""}${values.toLocaleString("en-US")} dense parameters${where} (the largest, ${largest.name}, is [${largest.shape.join(", ")}]); at most ${MAX_DENSE_VALUES.toLocaleString("en-US")}: narrow its layers`;
}

/** The most tasks a model may have. */
export const MAX_TASKS = 16;

// A task's name rules are the feature list's, whose labels name the tasks.
export { RESERVED_TASK_NAMES };

function sameTask(a: TaskSpec, b: TaskSpec): boolean {
  return a.name === b.name && a.loss === b.loss && a.weight === b.weight;
}

/** The tasks, checked (names unique and usable as output names, a known loss, a weight >= 0), weights defaulted to 1. */
export function validateTasks(tasks: readonly Partial<TaskSpec>[]): TaskSpec[] {
  if (!Array.isArray(tasks) || tasks.length < 1) throw bad(`a model needs at least one task, got ${JSON.stringify(tasks)}`);
  if (tasks.length > MAX_TASKS) throw bad(`a model has at most ${MAX_TASKS} tasks, got ${tasks.length}`);
  const seen = new Set<string>();
  const checked = tasks.map((t, i) => {
    const name = t?.name;
    if (typeof name !== "string" || !TASK_NAME.test(name)) throw bad(`task #${i}: name must be a letter then letters, digits or _ (at most 64), got ${JSON.stringify(name)}`);
    if (RESERVED_TASK_NAMES.includes(name)) throw bad(`task ${name}: the name is serving's own output's (${RESERVED_TASK_NAMES.join(", ")}); choose another`);
    if (seen.has(name)) throw bad(`task ${name} is declared twice`);
    seen.add(name);
    const loss = (t.loss ?? "bce") as Loss;
    if (!LOSSES.includes(loss)) throw bad(`task ${name}: loss must be ${LOSSES.map((l) => `"${l}"`).join(" or ")}, got ${JSON.stringify(t.loss)}`);
    const weight = t.weight ?? 1;
    if (typeof weight !== "number" || !Number.isFinite(weight) || weight < 0) throw bad(`task ${name}: weight must be a number >= 0, got ${JSON.stringify(t.weight)}`);
    return { name, loss, weight };
  });
  if (checked.every((t) => t.weight === 0)) throw bad(`every task has weight 0: the loss would be 0 and nothing learned`);
  return checked;
}

/** The most dense parameters a model may have (512 MB of float32, before optimizer state). */
export const MAX_DENSE_VALUES = 1 << 27;

/** The widest embedding a slot may have. */
export const MAX_EMBEDDING_DIM = 1024;

/**
 * A spec as stored in a checkpoint or export manifest or sent in a job spec:
 * today's form, or the DLRM-only form older versions wrote (bottomMlp and
 * topMlp beside the shape, no architecture).
 */
export function parseModelSpec(stored: unknown): ModelSpec {
  if (typeof stored !== "object" || stored === null) throw bad(`expected a model spec object, got ${JSON.stringify(stored)}`);
  const s = stored as Record<string, unknown>;
  const architecture = (s.architecture as ArchitectureConfig | undefined) ?? { name: "dlrm", bottomMlp: s.bottomMlp, topMlp: s.topMlp };
  const slotDims = s.slotDims as number[] | undefined;
  const slotPooling = s.slotPooling as Pooling[] | undefined;
  const tasks = s.tasks as TaskSpec[] | undefined;
  return validateSpec({ numDense: s.numDense as number, numSlots: s.numSlots as number, embeddingDim: s.embeddingDim as number, ...(slotDims ? { slotDims } : {}), ...(slotPooling ? { slotPooling } : {}), ...(tasks ? { tasks } : {}), architecture });
}

/** Whether two specs describe the same model (hyper-parameters included). */
export function sameModel(a: ModelSpec, b: ModelSpec): boolean {
  return canonical(a) === canonical(b);
}

/** How `other` differs from `spec`, in words naming the field and slot (the first difference), or null when they are the same model (task loss weights aside). */
export function specDifference(spec: ModelSpec, other: ModelSpec, slotIds?: readonly number[]): string | null {
  // Task loss weights and dropout weigh training, not what the model is: a checkpoint restores under others.
  if (modelIdentity(spec) === modelIdentity(other)) return null;
  if (spec.numDense !== other.numDense) return `${other.numDense} dense features against ${spec.numDense}`;
  if (spec.numSlots !== other.numSlots) return `${other.numSlots} slots against ${spec.numSlots}`;
  if (spec.architecture.name !== other.architecture.name) return `model ${other.architecture.name} against ${spec.architecture.name}`;
  const ta = tasksOf(spec);
  const tb = tasksOf(other);
  // Bracketed: a list of several tasks is still one side of "against".
  const tn = (ts: TaskSpec[]) => `[${ts.map((t) => `${t.name} (${t.loss})`).join(", ")}]`;
  if (tn(ta) !== tn(tb)) return `tasks ${tn(tb)} against ${tn(ta)}`;
  if (spec.embeddingDim !== other.embeddingDim) return `embedding dim ${other.embeddingDim} against ${spec.embeddingDim}`;
  const a = dimsOf(spec);
  const b = dimsOf(other);
  const dim = a.findIndex((d, i) => d !== b[i]);
  if (dim >= 0) return `${slotName(slotIds, dim)}'s embedding dim ${b[dim]} against ${a[dim]}`;
  const pa = poolingOf(spec);
  const pb = poolingOf(other);
  const pool = pa.findIndex((p, i) => p !== pb[i]);
  if (pool >= 0) return `${slotName(slotIds, pool)}'s pooling ${pb[pool]} against ${pa[pool]}`;
  return `${other.architecture.name} hyper-parameters ${JSON.stringify(other.architecture)} against ${JSON.stringify(spec.architecture)}`;
}

/**
 * What identifies the function serving computes with a model's weights, as a
 * stable string (a canonical spec): the architecture and its
 * hyper-parameters, the input shape, each slot's dim and pooling, each
 * task's name and loss. Task loss weights and the dropout rate only steer
 * training, so they are left out: two models that differ only in them take
 * each other's weights.
 * parseModelSpec reads it back, for specDifference.
 */
export function modelIdentity(spec: ModelSpec): string {
  const tasks = tasksOf(spec).map((t) => ({ name: t.name, loss: t.loss, weight: 1 }));
  const { tasks: _t, architecture, ...rest } = spec;
  // Dropout only acts in training steps: models of any rate compute the same function.
  const { dropout: _d, ...computed } = architecture;
  const named = tasks.length === 1 && sameTask(tasks[0]!, DEFAULT_TASK) ? null : tasks;
  return canonical({ ...rest, architecture: computed as ArchitectureConfig, ...(named ? { tasks: named } : {}) });
}

/** The spec as a stable string: keys sorted, so equal models print equally. */
export function canonical(spec: ModelSpec): string {
  return JSON.stringify(spec, (_k, v: unknown) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1))) : v));
}

/** The architecture and its hyper-parameters in words: "mmoe (numExperts 4, expertMlp [64, 32], towerMlp [32])". */
export function describeArchitecture(spec: ModelSpec): string {
  const hyper = Object.entries(hyperOf(spec)).map(([k, v]) => `${k} ${Array.isArray(v) ? `[${v.join(", ")}]` : String(v)}`);
  return hyper.length ? `${spec.architecture.name} (${hyper.join(", ")})` : spec.architecture.name;
}

/** The spec's architecture. */
export function architectureOf(spec: ModelSpec): Architecture<any> {
  return architectureNamed(spec.architecture.name);
}

function hyperOf(spec: ModelSpec): Record<string, unknown> {
  const { name: _name, ...hyper } = spec.architecture;
  return hyper;
}

/** Each slot's embedding width, in slot order. */
export function slotDimsOf(spec: ModelSpec): number[] {
  return dimsOf(spec);
}

/** The width of each slot's table rows, in slot order (what its table, pulls, pushes and exports carry): its dim plus the architecture's per-id extras. */
export function rowWidths(spec: ModelSpec): number[] {
  const arch = architectureOf(spec);
  const hyper = hyperOf(spec);
  return dimsOf(spec).map((d) => arch.rowWidth(d, hyper));
}

/** The row width every slot shares, or null when slots differ. */
export function uniformRowWidth(spec: ModelSpec): number | null {
  const w = rowWidths(spec);
  return w.every((x) => x === w[0]) ? w[0]! : null;
}

/** Dense parameters in the order every party uses. */
export function denseParams(spec: ModelSpec): DenseParam[] {
  return architectureOf(spec).params(spec, hyperOf(spec));
}

/** The spec's hyper-parameters, for an architecture's forward pass. */
export function hyperParams(spec: ModelSpec): Record<string, unknown> {
  return hyperOf(spec);
}

export function paramSize(p: DenseParam): number {
  return p.shape.reduce((a, b) => a * b, 1);
}

/** Glorot-uniform weights and zero biases, deterministic in the seed. */
export function initDenseParams(spec: ModelSpec, seed: number): Float32Array[] {
  const rng = new Rng(seed ^ 0x5eed);
  return denseParams(spec).map((p) => {
    const values = new Float32Array(paramSize(p));
    if (p.shape.length === 2) {
      const limit = Math.sqrt(6 / (p.shape[0] + p.shape[1]));
      for (let i = 0; i < values.length; i++) values[i] = rng.uniform(-limit, limit);
    }
    return values;
  });
}

/** A DLRM spec (the default architecture), as older code and tests build it. */
export function dlrmSpec(numDense: number, numSlots: number, embeddingDim: number, bottomMlp: readonly number[], topMlp: readonly number[]): ModelSpec {
  return validateSpec({ numDense, numSlots, embeddingDim, architecture: { name: "dlrm", bottomMlp: [...bottomMlp], topMlp: [...topMlp] } });
}

/** The model as the job spec carries it (the protobuf ModelSpec's fields). */
export interface WireModelSpec {
  numDense: number;
  slotIds: number[];
  embeddingDim: number;
  bottomMlp: number[];
  topMlp: number[];
  architectureJson: string;
  /** Each slot's embedding dim where slots differ; empty when every slot has embeddingDim. */
  slotDims: number[];
  /** Each slot's pooling where some slot does not sum; empty when every slot sums. */
  slotPooling: string[];
  /** The tasks, in output order; empty for the one default task. */
  tasks: TaskSpec[];
}

export function modelSpecToWire(spec: ModelSpec, slotIds: readonly number[]): WireModelSpec {
  const dlrm = spec.architecture.name === "dlrm";
  return {
    numDense: spec.numDense,
    slotIds: [...slotIds],
    embeddingDim: spec.embeddingDim,
    bottomMlp: dlrm ? [...(spec.architecture.bottomMlp as number[])] : [],
    topMlp: dlrm ? [...(spec.architecture.topMlp as number[])] : [],
    architectureJson: JSON.stringify(spec.architecture),
    slotDims: spec.slotDims ? [...spec.slotDims] : [],
    slotPooling: spec.slotPooling ? [...spec.slotPooling] : [],
    tasks: spec.tasks ? spec.tasks.map((t) => ({ ...t })) : [],
  };
}

/** The model a job spec carries; an orchestrator older than architectures sends DLRM's widths only. */
export function modelSpecFromWire(m: Readonly<Record<"slotIds" | "bottomMlp" | "topMlp" | "slotDims", readonly number[]> & { slotPooling?: readonly string[]; tasks?: readonly { name: string; loss: string; weight: number }[] } & Pick<WireModelSpec, "numDense" | "embeddingDim" | "architectureJson">>): ModelSpec {
  let architecture: ArchitectureConfig;
  if (m.architectureJson) {
    try {
      architecture = JSON.parse(m.architectureJson) as ArchitectureConfig;
    } catch (err) {
      throw bad(`the job's architecture is not JSON: ${printable((err as Error).message, 160)}`);
    }
  } else architecture = { name: "dlrm", bottomMlp: [...m.bottomMlp], topMlp: [...m.topMlp] };
  return validateSpec({ numDense: m.numDense, numSlots: m.slotIds.length, embeddingDim: m.embeddingDim, ...(m.slotDims.length ? { slotDims: [...m.slotDims] } : {}), ...(m.slotPooling?.length ? { slotPooling: [...m.slotPooling] as Pooling[] } : {}), ...(m.tasks?.length ? { tasks: m.tasks.map((t) => ({ name: t.name, loss: t.loss as Loss, weight: t.weight })) } : {}), architecture });
}
