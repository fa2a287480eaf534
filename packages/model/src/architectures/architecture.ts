import type { z } from "zod";
import type { Ops } from "./ops.js";

/** What the data fixes about a model: its inputs. */
export interface ModelShape {
  numDense: number;
  numSlots: number;
  /** The width of each slot's embedding vector (the model's, not the table row's: see rowWidth). */
  embeddingDim: number;
}

/** A dense parameter: per layer, a weight [in, out] and a bias [out]. */
export interface DenseParam {
  name: string;
  shape: [number] | [number, number];
}

/** An architecture's inputs for one batch: dense [B, numDense], and one pooled embedding row per slot, [B, numSlots * rowWidth]. */
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
  /** Why this configuration cannot serve this shape (one line), or null. */
  check(shape: ModelShape, config: C): string | null;
  /** The width of an embedding table's row: the embedding dim, plus what the architecture keeps per id beside it (e.g. a first-order weight). */
  rowWidth(shape: ModelShape, config: C): number;
  /** The dense parameters in the order every party stores them. */
  params(shape: ModelShape, config: C): DenseParam[];
  /** The logits [B, 1]. */
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

/** The layers mlpParams declared, each ReLU'd. */
export function mlp<T>(ops: Ops<T>, param: (name: string) => T, prefix: string, x: T, layers: number): T {
  let h = x;
  for (let i = 0; i < layers; i++) h = ops.linear(h, param(`${prefix}.${i}.w`), param(`${prefix}.${i}.b`), true);
  return h;
}
