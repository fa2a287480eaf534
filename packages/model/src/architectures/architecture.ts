import type { z } from "zod";
import type { Ops } from "./ops.js";

/** What the data fixes about a model: its inputs. */
export interface ModelShape {
  numDense: number;
  numSlots: number;
  /** The width of a slot's embedding vector (the model's, not the table row's: see rowWidth), for every slot slotDims does not set. */
  embeddingDim: number;
  /** Each slot's embedding width, in slot order, where slots differ; absent when every slot has embeddingDim. */
  slotDims?: readonly number[];
  /** Each slot's pooling of a cell's several ids, in slot order, where some slot does not sum; absent when every slot sums. */
  slotPooling?: readonly Pooling[];
  /** What the model predicts, one output column each, in order; absent: one binary task, "ctr". */
  tasks?: readonly TaskSpec[];
}

/** A task's loss: binary cross-entropy on a 0/1 label (its output a probability), or mean squared error on a real-valued target (its output the value itself). */
export const LOSSES = ["bce", "mse"] as const;
export type Loss = (typeof LOSSES)[number];

/** One thing a model predicts: a name (its output's), its loss and that loss's weight in the total. */
export interface TaskSpec {
  name: string;
  loss: Loss;
  weight: number;
}

/** The single task of a model that names none: a click, by binary cross-entropy. */
export const DEFAULT_TASK: TaskSpec = Object.freeze({ name: "ctr", loss: "bce", weight: 1 });

/** The model's tasks, in output order. */
export function tasksOf(shape: ModelShape): TaskSpec[] {
  return shape.tasks?.length ? shape.tasks.map((t) => ({ ...t })) : [{ ...DEFAULT_TASK }];
}

/** How many outputs (tasks) the model has. */
export function taskCount(shape: ModelShape): number {
  return shape.tasks?.length || 1;
}

/** Task t's column of a row-major [rows, T] matrix of predictions or labels; with one task, the matrix itself. */
export function taskColumn(m: Float32Array, T: number, t: number): Float32Array {
  if (T === 1) return m;
  const out = new Float32Array(m.length / T);
  for (let i = 0; i < out.length; i++) out[i] = m[i * T + t]!;
  return out;
}

/** How a cell's several rows become one (Monolith's combiners): their sum, mean (sum / n) or sum / sqrt(n). */
export const POOLINGS = ["sum", "mean", "sqrtn"] as const;
export type Pooling = (typeof POOLINGS)[number];

/** Every slot's pooling, in slot order. */
export function poolingOf(shape: ModelShape): Pooling[] {
  return shape.slotPooling ? [...shape.slotPooling] : new Array<Pooling>(shape.numSlots).fill("sum");
}

/** The factor a cell of n values' sum is scaled by under a pooling (a cell with none stays zeros). */
export function poolingScale(pooling: Pooling, n: number): number {
  return n <= 1 || pooling === "sum" ? 1 : pooling === "mean" ? 1 / n : 1 / Math.sqrt(n);
}

/** Every slot's embedding width, in slot order. */
export function dimsOf(shape: ModelShape): number[] {
  return shape.slotDims ? [...shape.slotDims] : new Array<number>(shape.numSlots).fill(shape.embeddingDim);
}

/** The width of [dense, every slot's embedding vector] side by side: dcn-v2's x0, the multi-task architectures' input. */
export function denseAndSlotsWidth(shape: ModelShape): number {
  return shape.numDense + dimsOf(shape).reduce((a, d) => a + d, 0);
}

/**
 * Why an architecture that needs one width for all slots cannot take this
 * shape, naming the slots (`slots[i]`: a slot id, or words for it; by
 * position when absent) and the architectures that take mixed dims
 * (`mixedOk`), or null.
 */
export function mixedDimsProblem(shape: ModelShape, architecture: string, why: string, mixedOk: readonly string[], slots?: readonly (number | string)[]): string | null {
  const dims = dimsOf(shape);
  const other = dims.map((d, s) => [d, s] as const).filter(([d]) => d !== shape.embeddingDim);
  if (other.length === 0) return null;
  const needs = `${architecture} needs one embedding dim for every slot (${why})`;
  if (other.length === dims.length && dims.every((d) => d === dims[0])) {
    return `${needs}, and every slot has ${dims[0]} but --embedding-dim is ${shape.embeddingDim}: give --embedding-dim ${dims[0]}`;
  }
  const listed = other.slice(0, 6).map(([d, s]) => `${slotName(slots, s)} has ${d}`).join(", ");
  return `${needs}, but ${listed}${other.length > 6 ? ", ..." : ""} where the model's is --embedding-dim ${shape.embeddingDim}; ${mixedOk.slice(0, -1).join(", ")}${mixedOk.length > 1 ? " and " : ""}${mixedOk[mixedOk.length - 1]} take mixed dims`;
}

/** Why `arch`, configured so, needs one embedding dim for every slot (its `oneDim`), or null. */
export function oneDimReason<C>(arch: Pick<Architecture<C>, "oneDim">, config: C): string | null {
  return typeof arch.oneDim === "function" ? arch.oneDim(config) : (arch.oneDim ?? null);
}

/** How a message names the slot at position i. */
export function slotName(slots: readonly (number | string)[] | undefined, i: number): string {
  const s = slots?.[i];
  return s === undefined ? `slot #${i}` : typeof s === "number" ? `slot ${s}` : s;
}

/** A dense parameter: per layer, a weight [in, out] and a bias [out]. */
export interface DenseParam {
  name: string;
  shape: [number] | [number, number];
}

/** An architecture's inputs for one batch: dense [B, numDense], and one pooled embedding row per slot side by side, [B, sum of the slots' row widths]. */
export interface ModelInputs<T> {
  dense: T;
  emb: T;
}

/**
 * One CTR architecture, written once: its hyper-parameters (a zod schema
 * with defaults), the dense parameters it needs and its forward pass over
 * Ops, which the trainer runs on TensorFlow.js and serving on plain arrays.
 */
export interface Architecture<C = Record<string, unknown>> {
  /** The name --model takes. */
  readonly name: string;
  /** One line for help texts. */
  readonly summary: string;
  /** The hyper-parameters, defaults included; unknown keys are refused. */
  readonly config: z.ZodType<C>;
  /** Built for several tasks (experts or towers shared among task heads): on the built-in data, `pangea run` generates two tasks for it. */
  readonly multiTask?: boolean;
  /**
   * Why every slot must have the one embedding dim, for an architecture whose slots meet in dot products; absent: any
   * mix of dims. Where that depends on a hyper-parameter (an optional FM term), a function of the config giving the
   * reason, or null when this configuration takes any mix: the refusal names the slots either way, and only an
   * architecture without `oneDim` is listed as taking mixed dims.
   */
  readonly oneDim?: string | ((config: C) => string | null);
  /**
   * Why this configuration cannot serve this shape (one line), or null. `slots`: the slots' ids or names in slot order
   * where they are known (the data's), for naming a slot with slotName.
   */
  check(shape: ModelShape, config: C, slots?: readonly (number | string)[]): string | null;
  /** The width of an embedding table's row for a slot of embedding width dim: dim, plus what the architecture keeps per id beside it (e.g. a first-order weight). */
  rowWidth(dim: number, config: C): number;
  /** The dense parameters in the order every party stores them. */
  params(shape: ModelShape, config: C): DenseParam[];
  /** The outputs [B, T], one column per task (tasksOf): a binary task's logit, a regression task's value. */
  forward<T>(ops: Ops<T>, param: (name: string) => T, input: ModelInputs<T>, shape: ModelShape, config: C): T;
}

/** Weight and bias of a sequence of layers named `${prefix}.${i}` from width `from`; returns the last width. */
export function mlpParams(out: DenseParam[], prefix: string, from: number, widths: readonly number[]): number {
  let width = from;
  widths.forEach((w, i) => {
    out.push({ name: `${prefix}.${i}.w`, shape: [width, w] }, { name: `${prefix}.${i}.b`, shape: [w] });
    width = w;
  });
  return width;
}

/** The layers mlpParams declared, each ReLU'd, then dropped out at rate `dropout` (the hyper-parameter; 0 or absent: none). */
export function mlp<T>(ops: Ops<T>, param: (name: string) => T, prefix: string, x: T, layers: number, dropout = 0): T {
  return layers === 0 ? x : mlpFrom(ops, param, prefix, ops.linear(x, param(`${prefix}.0.w`), param(`${prefix}.0.b`), true), layers, dropout);
}

/** The first layer of mlp (`${prefix}.0`, ReLU'd) as `first` (computed elsewhere, e.g. by Ops.linears), then the rest of its `layers`. */
export function mlpFrom<T>(ops: Ops<T>, param: (name: string) => T, prefix: string, first: T, layers: number, dropout = 0): T {
  let h = first;
  for (let i = 0; i < layers; i++) {
    if (i > 0) h = ops.linear(h, param(`${prefix}.${i}.w`), param(`${prefix}.${i}.b`), true);
    if (dropout > 0) h = ops.dropout(h, dropout, `${prefix}.${i}`);
  }
  return h;
}
