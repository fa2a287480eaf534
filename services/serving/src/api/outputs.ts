import { valueSnippet } from "@pangea/kit";
import { tasksOf, type ModelShape, type TaskSpec } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import { INPUT_DENSE, INPUT_IDS, OUTPUT_PROBS } from "./tensors.js";

/** One named output of the serving signature: task `column`'s predictions, [B] floats. */
export interface ModelOutput {
  name: string;
  column: number;
}

/**
 * The model's named outputs. A model with one binary task answers
 * `probabilities`, as every model did before tasks had names; any other
 * model has one output per task, named by the task (a task cannot be named
 * `probabilities`), so no client reads a regression value as a probability.
 */
export function outputsOf(tasks: readonly TaskSpec[]): ModelOutput[] {
  if (tasks.length === 1 && tasks[0]!.loss === "bce") return [{ name: OUTPUT_PROBS, column: 0 }];
  return tasks.map((task, column) => ({ name: task.name, column }));
}

/**
 * The outputs a Predict request asks for (TF Serving's output_filter: empty
 * means all, in the model's order; else those named, in the request's order).
 * An unknown or repeated name is refused, naming it and the model's outputs.
 */
export function selectOutputs(tasks: readonly TaskSpec[], filter: readonly string[]): ModelOutput[] {
  const all = outputsOf(tasks);
  if (filter.length === 0) return all;
  const seen = new Set<string>();
  return filter.map((name) => {
    const out = all.find((o) => o.name === name);
    if (!out) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `unknown output ${valueSnippet(name)} in output_filter; the model outputs ${all.map((o) => o.name).join(", ")}`);
    if (seen.has(name)) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `output ${valueSnippet(name)} is named twice in output_filter`);
    seen.add(name);
    return out;
  });
}

/** A TensorFlow TensorInfo as the metadata lists an input or output: its name, dtype and shape (-1: the batch). */
interface TensorInfo {
  name: string;
  dtype: string;
  tensor_shape: { dim: { size: string }[] };
}

/** TensorFlow's SignatureDef of a Predict signature. */
export interface SignatureDef {
  inputs: Record<string, TensorInfo>;
  outputs: Record<string, TensorInfo>;
  method_name: string;
}

/** The one metadata field there is: the model's signatures (TF Serving's name). */
export const METADATA_SIGNATURE_DEF = "signature_def";

/** The method name TensorFlow gives a Predict signature. */
const PREDICT_METHOD = "tensorflow/serving/predict";

/**
 * The `serving_default` signature GetModelMetadata reports: the id form of
 * the inputs (the other forms serving takes are in the README) and each
 * named output, [B] floats (a multi-task model's tasks).
 */
export function signatureOf(spec: ModelShape): SignatureDef {
  const info = (name: string, dtype: string, dims: number[]): TensorInfo => ({ name, dtype, tensor_shape: { dim: dims.map((d) => ({ size: String(d) })) } });
  return {
    inputs: { [INPUT_DENSE]: info(INPUT_DENSE, "DT_FLOAT", [-1, spec.numDense]), [INPUT_IDS]: info(INPUT_IDS, "DT_INT64", [-1, spec.numSlots]) },
    outputs: Object.fromEntries(outputsOf(tasksOf(spec)).map((o) => [o.name, info(o.name, "DT_FLOAT", [-1])])),
    method_name: PREDICT_METHOD,
  };
}
